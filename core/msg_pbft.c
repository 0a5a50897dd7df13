/* PBFT message codec hooks (see core/msg.h, core/msg_pbft.h). Bodies are
 * positional msgpack arrays; the decoder is strict (exact arity and types,
 * exact digest and signature lengths, counts under named limits) and
 * allocates nested arrays with calloc so sy_msg_pbft_free can run on a
 * partially decoded body. */
#include <stdlib.h>
#include <string.h>
#include "core/msg.h"
#include "core/mp.h"
#include "core/buf.h"
#include "core/chunks.h"
#include "crypto/sy_err.h"

/* ---------------------------------------------------------------- encode */

static void put_digest(msgpack_packer *pk, const sy_digest *d) { sy_mp_put_bin(pk, d->b, SY_DIGEST_LEN); }
static void put_sig(msgpack_packer *pk, const sy_sig *s) { sy_mp_put_bin(pk, s->b, SY_SIG_LEN); }

static void put_sigs(msgpack_packer *pk, const sy_pbft_sig *s, uint32_t n)
{
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, s[i].replica);
        put_sig(pk, &s[i].sig);
    }
}

static void put_ckproof(msgpack_packer *pk, const sy_pbft_ckproof *c)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, c->seq);
    put_digest(pk, &c->digest);
    put_sigs(pk, c->sigs, c->n_sigs);
}

static void put_pcert(msgpack_packer *pk, const sy_pbft_pcert *c)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint64(pk, c->view);
    msgpack_pack_uint64(pk, c->seq);
    put_digest(pk, &c->digest);
    put_sig(pk, &c->pp_sig);
    put_sigs(pk, c->prepares, c->n_prepares);
}

/* with_sig = false gives the content that the signature covers. */
static void put_vc(msgpack_packer *pk, const sy_pbft_view_change *v, bool with_sig)
{
    msgpack_pack_array(pk, with_sig ? 5 : 4);
    msgpack_pack_uint64(pk, v->new_view);
    msgpack_pack_uint32(pk, v->replica);
    put_ckproof(pk, &v->ckpt);
    msgpack_pack_array(pk, v->n_pcerts);
    for (uint32_t i = 0; i < v->n_pcerts; i++)
        put_pcert(pk, &v->pcerts[i]);
    if (with_sig)
        put_sig(pk, &v->sig);
}

static void put_nv(msgpack_packer *pk, const sy_pbft_new_view *v, bool with_sig)
{
    msgpack_pack_array(pk, with_sig ? 5 : 4);
    msgpack_pack_uint64(pk, v->view);
    msgpack_pack_uint32(pk, v->replica);
    msgpack_pack_array(pk, v->n_vcs);
    for (uint32_t i = 0; i < v->n_vcs; i++)
        put_vc(pk, &v->vcs[i], true);
    msgpack_pack_array(pk, v->n_o);
    for (uint32_t i = 0; i < v->n_o; i++) {
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint64(pk, v->o[i].seq);
        put_digest(pk, &v->o[i].digest);
        put_sig(pk, &v->o[i].sig);
    }
    if (with_sig)
        put_sig(pk, &v->sig);
}

int sy_msg_pbft_encode(const sy_msg *m, void *packer)
{
    msgpack_packer *pk = packer;
    const sy_pbft_body *b = &m->u.pbft;
    switch (m->type) {
    case SY_MSG_PBFT_PRE_PREPARE:
    case SY_MSG_PBFT_PREPARE:
    case SY_MSG_PBFT_COMMIT:
        msgpack_pack_array(pk, m->type == SY_MSG_PBFT_PRE_PREPARE ? 6 : 5);
        msgpack_pack_uint64(pk, b->stmt.view);
        msgpack_pack_uint64(pk, b->stmt.seq);
        put_digest(pk, &b->stmt.digest);
        msgpack_pack_uint32(pk, b->stmt.replica);
        put_sig(pk, &b->stmt.sig);
        if (m->type == SY_MSG_PBFT_PRE_PREPARE)
            sy_mp_put_bin(pk, b->stmt.batch.p, b->stmt.batch.len);
        return SY_OK;
    case SY_MSG_PBFT_CHECKPOINT:
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, b->stmt.seq);
        put_digest(pk, &b->stmt.digest);
        msgpack_pack_uint32(pk, b->stmt.replica);
        put_sig(pk, &b->stmt.sig);
        return SY_OK;
    case SY_MSG_PBFT_VIEW_CHANGE:
        put_vc(pk, &b->vc, true);
        return SY_OK;
    case SY_MSG_PBFT_NEW_VIEW:
        put_nv(pk, &b->nv, true);
        return SY_OK;
    case SY_MSG_PBFT_FETCH:
    case SY_MSG_PBFT_BATCH:
        msgpack_pack_array(pk, 2);
        put_digest(pk, &b->batch.digest);
        sy_mp_put_bin(pk, b->batch.batch.p, b->batch.batch.len);
        return SY_OK;
    case SY_MSG_PBFT_FORWARD:
        msgpack_pack_array(pk, 1);
        sy_mp_put_bin(pk, b->fwd.req.p, b->fwd.req.len);
        return SY_OK;
    case SY_MSG_PBFT_STATE_REQ:
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint64(pk, b->state_req.have);
        msgpack_pack_uint64(pk, b->state_req.seq);
        msgpack_pack_uint32(pk, b->state_req.chunk);
        return SY_OK;
    case SY_MSG_PBFT_STATE: {
        const sy_pbft_state *s = &b->state;
        msgpack_pack_array(pk, 6);
        put_ckproof(pk, &s->ckpt);
        sy_mp_put_bin(pk, s->snapshot.p, s->snapshot.len);
        msgpack_pack_array(pk, s->n_entries);
        for (uint32_t i = 0; i < s->n_entries; i++) {
            const sy_pbft_centry *e = &s->entries[i];
            msgpack_pack_array(pk, 5);
            msgpack_pack_uint64(pk, e->view);
            msgpack_pack_uint64(pk, e->seq);
            put_digest(pk, &e->digest);
            sy_mp_put_bin(pk, e->batch.p, e->batch.len);
            put_sigs(pk, e->commits, e->n_commits);
        }
        msgpack_pack_uint64(pk, s->snap_len);
        msgpack_pack_uint32(pk, s->chunk);
        msgpack_pack_array(pk, s->n_path);
        for (uint32_t i = 0; i < s->n_path; i++)
            put_digest(pk, &s->path[i]);
        return SY_OK;
    }
    default:
        return SY_EMSGTYPE;
    }
}

/* ---------------------------------------------------------------- decode */

static int get_u64(sy_mp_reader *r, uint64_t *v) { return sy_mp_uint(r, UINT64_MAX, v); }

static int get_fixed(sy_mp_reader *r, uint8_t *out, uint32_t want)
{
    const uint8_t *p = NULL;
    uint32_t len = 0;
    if (sy_mp_bin(r, want, &p, &len))
        return r->err;
    if (len != want)
        return r->err = SY_EFIELD;
    memcpy(out, p, want);
    return SY_OK;
}

static int get_digest(sy_mp_reader *r, sy_digest *d) { return get_fixed(r, d->b, SY_DIGEST_LEN); }
static int get_sig(sy_mp_reader *r, sy_sig *s) { return get_fixed(r, s->b, SY_SIG_LEN); }

static int get_bytes(sy_mp_reader *r, uint32_t max, sy_bytes *b)
{
    return sy_mp_bin(r, max, &b->p, &b->len);
}

/* Reads an array header and allocates n zeroed elements of size sz. */
static int get_array(sy_mp_reader *r, uint32_t max, size_t sz, void **out, uint32_t *n)
{
    uint32_t cnt = 0;
    if (sy_mp_array(r, &cnt))
        return r->err;
    if (cnt > max)
        return r->err = SY_ETOOBIG;
    if (cnt) {
        *out = calloc(cnt, sz);
        if (!*out)
            return r->err = SY_ENOMEM;
    }
    *n = cnt;
    return SY_OK;
}

static int get_sigs(sy_mp_reader *r, sy_pbft_sig **s, uint32_t *n)
{
    if (get_array(r, SY_MAX_NODES, sizeof **s, (void **)s, n))
        return r->err;
    for (uint32_t i = 0; i < *n && !r->err; i++) {
        sy_mp_array_exact(r, 2);
        sy_mp_u32(r, &(*s)[i].replica);
        get_sig(r, &(*s)[i].sig);
    }
    return r->err;
}

static int get_ckproof(sy_mp_reader *r, sy_pbft_ckproof *c)
{
    sy_mp_array_exact(r, 3);
    get_u64(r, &c->seq);
    get_digest(r, &c->digest);
    if (r->err)
        return r->err;
    return get_sigs(r, &c->sigs, &c->n_sigs);
}

static int get_vc(sy_mp_reader *r, sy_pbft_view_change *v)
{
    sy_mp_array_exact(r, 5);
    get_u64(r, &v->new_view);
    sy_mp_u32(r, &v->replica);
    if (r->err || get_ckproof(r, &v->ckpt))
        return r->err;
    if (get_array(r, SY_PBFT_MAX_WINDOW, sizeof *v->pcerts, (void **)&v->pcerts, &v->n_pcerts))
        return r->err;
    for (uint32_t i = 0; i < v->n_pcerts && !r->err; i++) {
        sy_pbft_pcert *c = &v->pcerts[i];
        sy_mp_array_exact(r, 5);
        get_u64(r, &c->view);
        get_u64(r, &c->seq);
        get_digest(r, &c->digest);
        get_sig(r, &c->pp_sig);
        if (!r->err)
            get_sigs(r, &c->prepares, &c->n_prepares);
    }
    get_sig(r, &v->sig);
    return r->err;
}

static void free_vc(sy_pbft_view_change *v)
{
    free(v->ckpt.sigs);
    for (uint32_t i = 0; i < v->n_pcerts; i++)
        free(v->pcerts[i].prepares);
    free(v->pcerts);
    v->ckpt.sigs = NULL;
    v->pcerts = NULL;
    v->n_pcerts = v->ckpt.n_sigs = 0;
}

int sy_msg_pbft_decode(sy_msg *m, void *reader)
{
    sy_mp_reader *r = reader;
    sy_pbft_body *b = &m->u.pbft;
    switch (m->type) {
    case SY_MSG_PBFT_PRE_PREPARE:
    case SY_MSG_PBFT_PREPARE:
    case SY_MSG_PBFT_COMMIT:
        sy_mp_array_exact(r, m->type == SY_MSG_PBFT_PRE_PREPARE ? 6 : 5);
        get_u64(r, &b->stmt.view);
        get_u64(r, &b->stmt.seq);
        get_digest(r, &b->stmt.digest);
        sy_mp_u32(r, &b->stmt.replica);
        get_sig(r, &b->stmt.sig);
        if (m->type == SY_MSG_PBFT_PRE_PREPARE)
            get_bytes(r, SY_MAX_ENVELOPE, &b->stmt.batch);
        break;
    case SY_MSG_PBFT_CHECKPOINT:
        sy_mp_array_exact(r, 4);
        get_u64(r, &b->stmt.seq);
        get_digest(r, &b->stmt.digest);
        sy_mp_u32(r, &b->stmt.replica);
        get_sig(r, &b->stmt.sig);
        break;
    case SY_MSG_PBFT_VIEW_CHANGE:
        get_vc(r, &b->vc);
        break;
    case SY_MSG_PBFT_NEW_VIEW: {
        sy_pbft_new_view *v = &b->nv;
        sy_mp_array_exact(r, 5);
        get_u64(r, &v->view);
        sy_mp_u32(r, &v->replica);
        if (r->err)
            break;
        if (get_array(r, SY_MAX_NODES, sizeof *v->vcs, (void **)&v->vcs, &v->n_vcs))
            break;
        for (uint32_t i = 0; i < v->n_vcs && !r->err; i++)
            get_vc(r, &v->vcs[i]);
        if (r->err)
            break;
        if (get_array(r, SY_PBFT_MAX_WINDOW, sizeof *v->o, (void **)&v->o, &v->n_o))
            break;
        for (uint32_t i = 0; i < v->n_o && !r->err; i++) {
            sy_mp_array_exact(r, 3);
            get_u64(r, &v->o[i].seq);
            get_digest(r, &v->o[i].digest);
            get_sig(r, &v->o[i].sig);
        }
        get_sig(r, &v->sig);
        break;
    }
    case SY_MSG_PBFT_FETCH:
    case SY_MSG_PBFT_BATCH:
        sy_mp_array_exact(r, 2);
        get_digest(r, &b->batch.digest);
        get_bytes(r, SY_MAX_ENVELOPE, &b->batch.batch);
        break;
    case SY_MSG_PBFT_FORWARD:
        sy_mp_array_exact(r, 1);
        get_bytes(r, SY_MAX_ENVELOPE, &b->fwd.req);
        break;
    case SY_MSG_PBFT_STATE_REQ:
        sy_mp_array_exact(r, 3);
        get_u64(r, &b->state_req.have);
        get_u64(r, &b->state_req.seq);
        sy_mp_u32(r, &b->state_req.chunk);
        break;
    case SY_MSG_PBFT_STATE: {
        sy_pbft_state *s = &b->state;
        sy_mp_array_exact(r, 6);
        if (r->err || get_ckproof(r, &s->ckpt))
            break;
        get_bytes(r, SY_MAX_ENVELOPE, &s->snapshot);
        if (r->err)
            break;
        if (get_array(r, SY_PBFT_MAX_STATE_ENTRIES, sizeof *s->entries, (void **)&s->entries,
                      &s->n_entries))
            break;
        for (uint32_t i = 0; i < s->n_entries && !r->err; i++) {
            sy_pbft_centry *e = &s->entries[i];
            sy_mp_array_exact(r, 5);
            get_u64(r, &e->view);
            get_u64(r, &e->seq);
            get_digest(r, &e->digest);
            get_bytes(r, SY_MAX_ENVELOPE, &e->batch);
            if (!r->err)
                get_sigs(r, &e->commits, &e->n_commits);
        }
        if (r->err)
            break;
        get_u64(r, &s->snap_len);
        sy_mp_u32(r, &s->chunk);
        if (r->err)
            break;
        if (get_array(r, SY_CHUNKS_MAX_PATH, sizeof *s->path, (void **)&s->path, &s->n_path))
            break;
        for (uint32_t i = 0; i < s->n_path && !r->err; i++)
            get_digest(r, &s->path[i]);
        break;
    }
    default:
        return SY_EMSGTYPE;
    }
    return r->err;
}

void sy_msg_pbft_free(sy_msg *m)
{
    sy_pbft_body *b = &m->u.pbft;
    switch (m->type) {
    case SY_MSG_PBFT_VIEW_CHANGE:
        free_vc(&b->vc);
        break;
    case SY_MSG_PBFT_NEW_VIEW:
        for (uint32_t i = 0; i < b->nv.n_vcs; i++)
            free_vc(&b->nv.vcs[i]);
        free(b->nv.vcs);
        free(b->nv.o);
        b->nv.vcs = NULL;
        b->nv.o = NULL;
        b->nv.n_vcs = b->nv.n_o = 0;
        break;
    case SY_MSG_PBFT_STATE:
        free(b->state.ckpt.sigs);
        for (uint32_t i = 0; i < b->state.n_entries; i++)
            free(b->state.entries[i].commits);
        free(b->state.entries);
        free(b->state.path);
        b->state.ckpt.sigs = NULL;
        b->state.entries = NULL;
        b->state.path = NULL;
        b->state.n_path = 0;
        b->state.n_entries = b->state.ckpt.n_sigs = 0;
        break;
    default:
        break;
    }
}

const char *sy_msg_pbft_name(int type)
{
    switch (type) {
    case SY_MSG_PBFT_PRE_PREPARE: return "pbft_pre_prepare";
    case SY_MSG_PBFT_PREPARE: return "pbft_prepare";
    case SY_MSG_PBFT_COMMIT: return "pbft_commit";
    case SY_MSG_PBFT_CHECKPOINT: return "pbft_checkpoint";
    case SY_MSG_PBFT_VIEW_CHANGE: return "pbft_view_change";
    case SY_MSG_PBFT_NEW_VIEW: return "pbft_new_view";
    case SY_MSG_PBFT_FETCH: return "pbft_fetch";
    case SY_MSG_PBFT_BATCH: return "pbft_batch";
    case SY_MSG_PBFT_FORWARD: return "pbft_forward";
    case SY_MSG_PBFT_STATE_REQ: return "pbft_state_req";
    case SY_MSG_PBFT_STATE: return "pbft_state";
    default: return "unknown";
    }
}

/* ---------------------------------------------------------------- statements */

/* Fixed-capacity sink so statement encoding never allocates. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} fixed_sink;

static int fixed_write(void *data, const char *buf, size_t len)
{
    fixed_sink *s = data;
    if (s->len + len > s->cap)
        return -1;
    memcpy(s->p + s->len, buf, len);
    s->len += len;
    return 0;
}

size_t sy_pbft_stmt_bytes(const char *cluster_id, uint8_t type, uint64_t view,
                          uint64_t seq, const sy_digest *digest, uint32_t replica,
                          uint8_t out[SY_PBFT_STMT_MAX])
{
    fixed_sink s = { out, 0, SY_PBFT_STMT_MAX };
    msgpack_packer pk;
    size_t cl = strnlen(cluster_id, SY_MAX_CLUSTER_ID);
    msgpack_packer_init(&pk, &s, fixed_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "pbft", 4);
    msgpack_pack_str(&pk, cl);
    msgpack_pack_str_body(&pk, cluster_id, cl);
    msgpack_pack_uint8(&pk, type);
    msgpack_pack_uint64(&pk, view);
    msgpack_pack_uint64(&pk, seq);
    msgpack_pack_bin(&pk, SY_DIGEST_LEN);
    msgpack_pack_bin_body(&pk, digest->b, SY_DIGEST_LEN);
    msgpack_pack_uint32(&pk, replica);
    return s.len;
}

static int content_digest(const void *body, bool nv, sy_digest *out)
{
    sy_buf b;
    msgpack_packer pk;
    sy_buf_init(&b);
    sy_mp_writer_init(&pk, &b);
    if (nv)
        put_nv(&pk, body, false);
    else
        put_vc(&pk, body, false);
    int rc = b.err;
    if (!rc)
        sy_hash(b.p, b.len, out);
    sy_buf_free(&b);
    return rc;
}

int sy_pbft_vc_content(const sy_pbft_view_change *vc, sy_digest *out)
{
    return content_digest(vc, false, out);
}

int sy_pbft_nv_content(const sy_pbft_new_view *nv, sy_digest *out)
{
    return content_digest(nv, true, out);
}

int sy_pbft_evidence_encode(uint64_t view, uint64_t seq, const sy_digest *d,
                            const sy_pbft_sig *sigs, uint32_t n, sy_buf *out)
{
    msgpack_packer pk;
    sy_mp_writer_init(&pk, out);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, view);
    msgpack_pack_uint64(&pk, seq);
    put_digest(&pk, d);
    put_sigs(&pk, sigs, n);
    return out->err;
}

int sy_pbft_evidence_decode(const uint8_t *p, size_t len, uint64_t *view, uint64_t *seq,
                            sy_digest *d, sy_pbft_sig **sigs, uint32_t *n)
{
    sy_mp_reader r;
    sy_pbft_sig *s = NULL;
    uint32_t cnt = 0;
    sy_mp_reader_init(&r, p, len);
    sy_mp_array_exact(&r, 4);
    get_u64(&r, view);
    get_u64(&r, seq);
    get_digest(&r, d);
    if (!r.err)
        get_sigs(&r, &s, &cnt);
    int rc = r.err ? r.err : sy_mp_done(&r);
    if (rc) {
        free(s);
        return rc;
    }
    *sigs = s;
    *n = cnt;
    return SY_OK;
}
