/* The one place untrusted bytes are parsed. See core/envelope.h for the wire
 * layout. Order of checks: size, outer framing, inner header fields, cluster
 * id, sender membership, message type, signature, and only then the body —
 * so no body byte of an unauthenticated message is ever interpreted. */
#include <string.h>
#include "core/envelope.h"
#include "core/chunks.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

#include <stdlib.h>

/* inner = [ version, cluster_id, type, sender, body ]: the `signed` bytes. */
static int encode_inner(const char *cluster_id, uint32_t sender, const sy_msg *m, sy_buf *inner)
{
    sy_buf body;
    msgpack_packer pk;
    size_t cl = strlen(cluster_id);
    int rc;

    if (cl > SY_MAX_CLUSTER_ID)
        return SY_EINVAL;
    sy_buf_init(&body);
    if ((rc = sy_msg_encode_body(m, &body)) == SY_OK) {
        sy_mp_writer_init(&pk, inner);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint8(&pk, SY_ENV_VERSION);
        sy_mp_put_str(&pk, cluster_id, cl);
        msgpack_pack_uint8(&pk, m->type);
        msgpack_pack_uint32(&pk, sender);
        sy_mp_put_bin(&pk, body.p, body.len);
        rc = inner->err;
    }
    sy_buf_free(&body);
    return rc;
}

/* [ signed, sig ] appended to out, or SY_ETOOBIG (out unchanged). */
static int frame_single(const uint8_t *inner, size_t len, const sy_sig *sig, sy_buf *out)
{
    msgpack_packer pk;
    size_t start = out->len;
    sy_mp_writer_init(&pk, out);
    msgpack_pack_array(&pk, 2);
    sy_mp_put_bin(&pk, inner, len);
    sy_mp_put_bin(&pk, sig->b, SY_SIG_LEN);
    if (out->err)
        return out->err;
    if (out->len - start > SY_MAX_ENVELOPE) {
        out->len = start;
        return SY_ETOOBIG;
    }
    return SY_OK;
}

int sy_env_encode(const char *cluster_id, uint32_t sender, const sy_msg *m,
                  const sy_signer *signer, sy_buf *out)
{
    sy_buf inner;
    sy_buf_init(&inner);
    int rc = encode_inner(cluster_id, sender, m, &inner);
    if (rc == SY_OK) {
        sy_sig sig;
        sy_sign(signer, inner.p, inner.len, &sig);
        rc = frame_single(inner.p, inner.len, &sig, out);
    }
    sy_buf_free(&inner);
    return rc;
}

void sy_env_memo_init(sy_env_memo *memo)
{
    memset(memo, 0, sizeof *memo);
    sy_buf_init(&memo->inner);
}

void sy_env_memo_free(sy_env_memo *memo)
{
    sy_buf_free(&memo->inner);
    memo->valid = false;
}

int sy_env_encode_memo(const char *cluster_id, uint32_t sender, const sy_msg *m,
                       const sy_signer *signer, sy_env_memo *memo, sy_buf *out,
                       bool *signed_now)
{
    sy_buf inner;
    sy_buf_init(&inner);
    if (signed_now)
        *signed_now = false;
    int rc = encode_inner(cluster_id, sender, m, &inner);
    if (rc == SY_OK) {
        if (!memo->valid || memo->inner.len != inner.len ||
            memcmp(memo->inner.p, inner.p, inner.len) != 0) {
            memo->valid = false;
            sy_sign(signer, inner.p, inner.len, &memo->sig);
            if (signed_now)
                *signed_now = true;
            sy_buf_reset(&memo->inner);
            if (sy_buf_append(&memo->inner, inner.p, inner.len) == SY_OK)
                memo->valid = true;
        }
        rc = frame_single(inner.p, inner.len, &memo->sig, out);
    }
    sy_buf_free(&inner);
    return rc;
}

/* ---- batch signatures: a Merkle tree over the `signed` parts ---- */

static void batch_msg(uint32_t n, const sy_digest *root, uint8_t out[SY_ENV_BATCH_MSG_LEN])
{
    memcpy(out, SY_ENV_BATCH_DOMAIN, SY_ENV_BATCH_DOMAIN_LEN);
    out[SY_ENV_BATCH_DOMAIN_LEN] = (uint8_t)(n >> 24);
    out[SY_ENV_BATCH_DOMAIN_LEN + 1] = (uint8_t)(n >> 16);
    out[SY_ENV_BATCH_DOMAIN_LEN + 2] = (uint8_t)(n >> 8);
    out[SY_ENV_BATCH_DOMAIN_LEN + 3] = (uint8_t)n;
    memcpy(out + SY_ENV_BATCH_DOMAIN_LEN + 4, root->b, SY_DIGEST_LEN);
}

const uint8_t *sy_env_sig_msg(const sy_env *e, size_t *len)
{
    if (e->batched) {
        *len = SY_ENV_BATCH_MSG_LEN;
        return e->batch_msg;
    }
    *len = e->signed_len;
    return e->signed_part;
}

void sy_env_batch_init(sy_env_batch *b)
{
    memset(b, 0, sizeof *b);
    sy_buf_init(&b->inner);
    sy_buf_init(&b->frame);
}

void sy_env_batch_free(sy_env_batch *b)
{
    sy_buf_free(&b->inner);
    sy_buf_free(&b->frame);
    free(b->off);
    free(b->tree);
    memset(b, 0, sizeof *b);
}

int sy_env_batch_add(sy_env_batch *b, const char *cluster_id, uint32_t sender, const sy_msg *m)
{
    if (m->type != SY_MSG_CLIENT_REPLY)
        return SY_EINVAL;
    if (b->n + 2 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        size_t *no = realloc(b->off, nc * sizeof *no);
        if (!no)
            return SY_ENOMEM;
        b->off = no;
        b->cap = nc;
    }
    if (b->n == 0) {
        sy_buf_reset(&b->inner);
        b->off[0] = 0;
    }
    size_t start = b->inner.len;
    int rc = encode_inner(cluster_id, sender, m, &b->inner);
    /* the batch frame around it adds at most ~430 bytes (framing, the
     * signature, n, i and ten 34-byte path digests) */
    if (rc == SY_OK && b->inner.len - start > SY_MAX_ENVELOPE - 512)
        rc = SY_ETOOBIG;
    if (rc) {
        b->inner.len = start;
        b->inner.err = SY_OK;
        return rc;
    }
    b->off[++b->n] = b->inner.len;
    return SY_OK;
}

/* Signs leaves [a, a+k) of b with one signature and emits their frames. A
 * frame that cannot be built is skipped (its client retries); the first
 * such error is returned after the others went out. */
static int seal_chunk(sy_env_batch *b, size_t a, size_t k, const sy_signer *signer,
                      sy_env_emit_fn emit, void *ctx, size_t *nsigs)
{
    sy_sig sig;
    if (k == 1) {
        (*nsigs)++;
        const uint8_t *in = b->inner.p + b->off[a];
        size_t len = b->off[a + 1] - b->off[a];
        sy_sign(signer, in, len, &sig);
        sy_buf_reset(&b->frame);
        int rc = frame_single(in, len, &sig, &b->frame);
        if (rc == SY_OK)
            emit(ctx, a, b->frame.p, b->frame.len);
        return rc;
    }
    /* Levels of k, ceil(k/2), ... 1 nodes: under 2k + one carried node
     * per level (at most 11 levels for k <= 1024). */
    size_t need = 2 * k + 16;
    if (b->tree_cap < need) {
        sy_digest *nt = realloc(b->tree, need * sizeof *nt);
        if (!nt)
            return SY_ENOMEM;
        b->tree = nt;
        b->tree_cap = need;
    }
    /* Every level back to back: leaves at 0, then each parent level. */
    for (size_t i = 0; i < k; i++)
        sy_merkle_leaf(b->inner.p + b->off[a + i], b->off[a + i + 1] - b->off[a + i], &b->tree[i]);
    size_t ls = 0, count = k;
    while (count > 1) {
        size_t up = (count + 1) / 2, ps = ls + count;
        for (size_t j = 0; j < up; j++) {
            if (2 * j + 1 < count)
                sy_merkle_node(&b->tree[ls + 2 * j], &b->tree[ls + 2 * j + 1], &b->tree[ps + j]);
            else
                b->tree[ps + j] = b->tree[ls + 2 * j];
        }
        ls = ps;
        count = up;
    }
    uint8_t msg[SY_ENV_BATCH_MSG_LEN];
    batch_msg((uint32_t)k, &b->tree[ls], msg);
    sy_sign(signer, msg, sizeof msg, &sig);
    (*nsigs)++;
    int rc = SY_OK;

    for (size_t i = 0; i < k; i++) {
        const sy_digest *path[16];
        size_t plen = 0, pos = i, lstart = 0;
        count = k;
        while (count > 1) {
            if ((pos ^ 1) < count)
                path[plen++] = &b->tree[lstart + (pos ^ 1)];
            lstart += count;
            pos >>= 1;
            count = (count + 1) / 2;
        }
        msgpack_packer pk;
        sy_buf_reset(&b->frame);
        sy_mp_writer_init(&pk, &b->frame);
        msgpack_pack_array(&pk, 3);
        sy_mp_put_bin(&pk, b->inner.p + b->off[a + i], b->off[a + i + 1] - b->off[a + i]);
        sy_mp_put_bin(&pk, sig.b, SY_SIG_LEN);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, (uint32_t)k);
        msgpack_pack_uint32(&pk, (uint32_t)i);
        msgpack_pack_array(&pk, (uint32_t)plen);
        for (size_t p = 0; p < plen; p++)
            sy_mp_put_bin(&pk, path[p]->b, SY_DIGEST_LEN);
        int frc = b->frame.err ? b->frame.err : b->frame.len > SY_MAX_ENVELOPE ? SY_ETOOBIG : SY_OK;
        if (frc) {
            b->frame.err = SY_OK;
            rc = rc ? rc : frc;
            continue;
        }
        emit(ctx, a + i, b->frame.p, b->frame.len);
    }
    return rc;
}

int sy_env_batch_seal(sy_env_batch *b, const sy_signer *signer, sy_env_emit_fn emit, void *ctx,
                      size_t *nsigs)
{
    int rc = SY_OK;
    size_t sigs = 0;
    for (size_t a = 0; a < b->n; a += SY_ENV_BATCH_MAX) {
        size_t k = b->n - a < SY_ENV_BATCH_MAX ? b->n - a : SY_ENV_BATCH_MAX;
        int crc = seal_chunk(b, a, k, signer, emit, ctx, &sigs);
        rc = rc ? rc : crc;
    }
    /* a batch of big replies (scans) leaves big buffers: give them back */
    if (b->inner.cap > SY_ENV_BATCH_KEEP) {
        sy_buf_free(&b->inner);
        sy_buf_init(&b->inner);
    }
    if (b->frame.cap > SY_ENV_BATCH_KEEP) {
        sy_buf_free(&b->frame);
        sy_buf_init(&b->frame);
    }
    b->n = 0;
    sy_buf_reset(&b->inner);
    if (nsigs)
        *nsigs = sigs;
    return rc;
}

static int reject(const char **why, const char *reason, int code)
{
    if (why)
        *why = reason;
    return code;
}

int sy_env_decode(const sy_env_opts *o, const uint8_t *buf, size_t len, sy_env *out,
                  const char **why)
{
    size_t max = o->max_size ? o->max_size : SY_MAX_ENVELOPE;
    sy_mp_reader r, in;
    const uint8_t *inner = NULL, *sigp = NULL, *body = NULL;
    uint32_t inner_len = 0, sig_len = 0, body_len = 0, cl_len = 0;
    const char *cl = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    if (len > max)
        return reject(why, "frame exceeds the maximum envelope size", SY_ETOOBIG);
    if (len == 0)
        return reject(why, "empty frame", SY_ETRUNC);

    /* A batch proof: [ n, i, path ], path at most 10 digests for n <= 1024. */
    uint32_t outer = 0, bn = 0, bi = 0, plen = 0;
    const uint8_t *path[16];
    sy_mp_reader_init(&r, buf, len);
    if (sy_mp_array(&r, &outer) == SY_OK && outer != 2 && outer != 3)
        return reject(why, "envelope framing malformed", SY_EFIELD);
    sy_mp_bin(&r, (uint32_t)max, &inner, &inner_len);
    sy_mp_bin(&r, SY_SIG_LEN, &sigp, &sig_len);
    if (outer == 3) {
        sy_mp_array_exact(&r, 3);
        sy_mp_u32(&r, &bn);
        sy_mp_u32(&r, &bi);
        if (sy_mp_array(&r, &plen) == SY_OK && plen > 10)
            return reject(why, "batch proof too long", SY_EFIELD);
        for (uint32_t k = 0; k < plen; k++) {
            uint32_t dl = 0;
            if (sy_mp_bin(&r, SY_DIGEST_LEN, &path[k], &dl) == SY_OK && dl != SY_DIGEST_LEN)
                return reject(why, "batch proof digest has the wrong length", SY_EFIELD);
        }
    }
    if ((rc = sy_mp_done(&r)))
        return reject(why, rc == SY_ETRAILING ? "trailing bytes after envelope"
                           : rc == SY_ETRUNC ? "envelope truncated"
                                             : "envelope framing malformed", rc);
    if (sig_len != SY_SIG_LEN)
        return reject(why, "signature has the wrong length", SY_EFIELD);

    sy_mp_reader_init(&in, inner, inner_len);
    sy_mp_array_exact(&in, 5);
    sy_mp_u8(&in, &out->version);
    sy_mp_str(&in, SY_MAX_CLUSTER_ID, &cl, &cl_len);
    sy_mp_u8(&in, &out->type);
    sy_mp_u32(&in, &out->sender);
    sy_mp_bin(&in, (uint32_t)max, &body, &body_len);
    if ((rc = sy_mp_done(&in)))
        return reject(why, rc == SY_ETRAILING ? "trailing bytes after envelope header"
                           : rc == SY_ETRUNC ? "envelope header truncated"
                           : rc == SY_ETOOBIG ? "cluster id too long"
                                             : "envelope header malformed", rc);
    if (out->version != SY_ENV_VERSION)
        return reject(why, "unsupported envelope version", SY_EVERSION);
    memcpy(out->cluster_id, cl, cl_len);
    out->cluster_id[cl_len] = 0;
    if (strlen(o->cluster_id) != cl_len || memcmp(o->cluster_id, cl, cl_len) != 0)
        return reject(why, "envelope is for another cluster id", SY_ECLUSTER);
    const sy_pubkey *pk = o->dir ? o->dir->key_of(o->dir->ctx, out->sender) : NULL;
    if (!pk)
        return reject(why, "no key in the manifest for the sender id (a client not "
                           "listed, or a node id out of range)", SY_ESENDER);
    if (!sy_msg_type_name(out->type) || strcmp(sy_msg_type_name(out->type), "unknown") == 0)
        return reject(why, "unknown message type", SY_EMSGTYPE);
    memcpy(out->sig.b, sigp, SY_SIG_LEN);
    out->signed_part = inner;
    out->signed_len = inner_len;
    if (outer == 3) {
        if (!o->batch_ok)
            return reject(why, "batch-signed frame where a single signature is required", SY_EFIELD);
        if (out->type != SY_MSG_CLIENT_REPLY)
            return reject(why, "batch-signed frame that is not a client reply", SY_EFIELD);
        if (bn < 2 || bn > SY_ENV_BATCH_MAX || bi >= bn)
            return reject(why, "batch proof position out of range", SY_EFIELD);
        /* Rebuild the root from our own leaf; the path must be exactly as
         * long as the tree shape (n, i) says. */
        sy_digest node, sib;
        uint32_t used = 0, pos = bi, count = bn;
        sy_merkle_leaf(inner, inner_len, &node);
        while (count > 1) {
            if ((pos ^ 1u) < count) {
                if (used == plen)
                    return reject(why, "batch proof too short", SY_EFIELD);
                memcpy(sib.b, path[used++], SY_DIGEST_LEN);
                if (pos & 1u)
                    sy_merkle_node(&sib, &node, &node);
                else
                    sy_merkle_node(&node, &sib, &node);
            }
            pos >>= 1;
            count = (count + 1) / 2;
        }
        if (used != plen)
            return reject(why, "batch proof too long", SY_EFIELD);
        out->batched = true;
        batch_msg(bn, &node, out->batch_msg);
    }
    size_t sml;
    const uint8_t *sm = sy_env_sig_msg(out, &sml);
    if (o->verifier && !sy_verify(o->verifier, pk, sm, sml, &out->sig))
        return reject(why, "signature does not verify", SY_ESIG);

    rc = sy_msg_decode_body(out->type, body, body_len, &out->msg);
    if (rc)
        return reject(why, rc == SY_ETOOBIG ? "message body exceeds a size limit"
                           : rc == SY_ETRUNC ? "message body truncated"
                           : rc == SY_ETRAILING ? "trailing bytes after message body"
                           : rc == SY_EMSGTYPE ? "unknown message type"
                           : rc == SY_ENOMEM ? "out of memory decoding body"
                                             : "message body malformed", rc);
    /* A client request must come from the client it names. */
    if (out->type == SY_MSG_CLIENT_REQ && out->msg.u.req.client_id != out->sender) {
        sy_msg_free(&out->msg);
        return reject(why, "request names a different client than its signer", SY_EFIELD);
    }
    out->raw = buf;
    out->raw_len = len;
    sy_hash(inner, inner_len, &out->digest);
    if (why)
        *why = "ok";
    return SY_OK;
}

void sy_env_free(sy_env *e)
{
    if (e)
        sy_msg_free(&e->msg);
}
