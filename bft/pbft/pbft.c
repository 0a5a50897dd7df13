/* PBFT engine: lifecycle, the Ready/Advance plumbing, signed statements and
 * the input dispatcher.
 *
 * Invariant kept here: every statement this replica signs is persisted
 * (rd.hardstate: view, highest seq voted in it) before the message that
 * carries it is sent, and a restarted replica never votes again at a
 * (view, seq) it may have voted at before the crash; every signature from
 * another replica is checked at most once (the verified cache) and before
 * the statement is counted toward any certificate. Paper: OSDI 1999 sec. 4
 * (signed messages, sec. 4.1 deviation: signatures instead of MACs). */
#include <stdlib.h>
#include <string.h>
#include "bft/pbft/pbft.h"
#include "core/ready.h"
#include "core/envelope.h"
#include "core/chunks.h"
#include "crypto/sy_err.h"

uint32_t sy_pbft_quorum(uint32_t n, uint32_t f)
{
    /* ceil((n+f+1)/2): 2q - n >= f+1, so two quorums share a correct
     * replica; q <= n-f whenever n >= 3f+1, so correct replicas suffice. */
    return (n + f + 2) / 2;
}

bool pbft_behaves(const pbft *p, uint32_t b)
{
#ifdef SYNOD_TESTING
    return p->behaviour == b;
#else
    (void)p;
    (void)b;
    return false;
#endif
}

int pbft_snap_digest(const pbft *p, const uint8_t *blob, size_t len, sy_digest *out)
{
    return sy_chunks_digest(blob, len, p->chunk, out);
}

void pbft_set_h_snap(pbft *p, uint8_t *blob, size_t len)
{
    free(p->h_snap);
    free(p->h_tree);
    p->h_tree = NULL;
    p->h_ntree = 0;
    p->h_snap = blob;
    p->h_snap_len = blob ? len : 0;
}

static void kept_clear(pbft_kept *k)
{
    free(k->snap);
    free(k->tree);
    sy_pbft_sig *sigs = k->sigs;
    memset(k, 0, sizeof *k);
    k->sigs = sigs;
}

/* Some peer was served chunks of checkpoint seq within PBFT_KEEP_HB
 * heartbeats. */
static bool fetched_lately(const pbft *p, uint64_t seq)
{
    uint64_t keep = PBFT_KEEP_HB * (uint64_t)p->cfg.heartbeat_ms;
    for (uint32_t i = 0; i < p->n; i++)
        if (p->fetch_seq[i] == seq && p->fetch_ms[i] && p->now < p->fetch_ms[i] + keep)
            return true;
    return false;
}

pbft_kept *pbft_kept_find(pbft *p, uint64_t seq)
{
    for (uint32_t i = 0; seq && i < p->n; i++)
        if (p->kept[i].seq == seq)
            return &p->kept[i];
    return NULL;
}

/* h is about to move on: if a replica is fetching its snapshot, keep the
 * blob (with its tree and proof) so that the fetch can finish. Without it,
 * a snapshot that takes longer to cross than the cluster takes to make the
 * next stable checkpoint was never fetched at all: every responder
 * answered with its newest one and the fetcher started over (a slow link
 * under steady load; test_a_fetch_slower_than_a_checkpoint_interval_completes).
 * A blob is kept while a peer fetches it and each peer fetches one, so a
 * fetcher never loses its blob to another's (or to a Byzantine replica
 * that asks for chunks: it can hold one blob of its own, no more). The
 * price is memory: one state-sized blob per replica fetching an old
 * checkpoint, none in a cluster where nobody lags. */
void pbft_keep_h_snap(pbft *p)
{
    if (!p->h_snap || !fetched_lately(p, p->h))
        return;
    pbft_kept *k = NULL;
    for (uint32_t i = 0; i < p->n && !k; i++)
        if (!p->kept[i].seq || !fetched_lately(p, p->kept[i].seq))
            k = &p->kept[i];   /* n slots, at most n-1 fetchers: one is free */
    if (!k)
        return;
    kept_clear(k);
    k->seq = p->h;
    k->d = p->h_digest;
    k->nsigs = p->h_nsigs;
    memcpy(k->sigs, p->h_sigs, p->h_nsigs * sizeof *p->h_sigs);
    k->snap = p->h_snap;
    k->len = p->h_snap_len;
    k->tree = p->h_tree;
    k->ntree = p->h_ntree;
    p->h_snap = NULL;
    p->h_snap_len = 0;
    p->h_tree = NULL;
    p->h_ntree = 0;
}

/* From the heartbeat: blobs nobody fetches any more are freed. */
void pbft_kept_expire(pbft *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        if (p->kept[i].seq && !fetched_lately(p, p->kept[i].seq))
            kept_clear(&p->kept[i]);
}

void pbft_xin_clear(pbft *p)
{
    free(p->xin.buf);
    free(p->xin.got);
    free(p->xin.ask_ms);
    memset(&p->xin, 0, sizeof p->xin);
}

/* ------------------------------------------------------------ signatures */

void pbft_sign_stmt(pbft *p, uint8_t type, uint64_t view, uint64_t seq,
                    const sy_digest *d, sy_sig *out)
{
    uint8_t buf[SY_PBFT_STMT_MAX];
    size_t len = sy_pbft_stmt_bytes(p->cfg.cluster_id, type, view, seq, d, p->self, buf);
    sy_sign(p->cfg.signer, buf, len, out);
    if (pbft_behaves(p, SY_PBFT_BAD_SIG))
        out->b[0] ^= 0x5a;   /* a forged-looking signature */
}

bool pbft_verify_stmt(pbft *p, uint8_t type, uint64_t view, uint64_t seq,
                      const sy_digest *d, uint32_t replica, const sy_sig *sig)
{
    uint8_t buf[SY_PBFT_STMT_MAX];
    sy_hasher hh;
    sy_digest key;
    if (replica >= p->n)
        return false;
    size_t len = sy_pbft_stmt_bytes(p->cfg.cluster_id, type, view, seq, d, replica, buf);
    /* Cache key binds signer, statement and signature: a cache hit means
     * these exact bytes were verified before. */
    sy_hash_init(&hh);
    sy_hash_update(&hh, buf, len);
    sy_hash_update(&hh, sig->b, SY_SIG_LEN);
    sy_hash_final(&hh, &key);
    uint32_t slot = ((uint32_t)key.b[0] | (uint32_t)key.b[1] << 8 | (uint32_t)key.b[2] << 16) %
                    PBFT_VCACHE;
    if (p->vcache_have[slot] && sy_digest_eq(&p->vcache[slot], &key))
        return true;
    if (!sy_verify(p->cfg.verifier, &p->cfg.node_keys[replica], buf, len, sig))
        return false;
    p->vcache[slot] = key;
    p->vcache_have[slot] = true;
    return true;
}

/* ------------------------------------------------------------ accumulators */

/* Appends blob to a list of owned allocations; frees it when the list
 * cannot grow. */
static void *keep_in(void ***list, size_t *n, size_t *cap, void *blob)
{
    if (!blob)
        return NULL;
    if (sy_grow((void **)list, cap, *n + 1, sizeof **list)) {
        free(blob);
        return NULL;
    }
    (*list)[(*n)++] = blob;
    return blob;
}

void *pbft_keep(pbft *p, void *blob)
{
    return keep_in(&p->blobs, &p->n_blobs, &p->cap_blobs, blob);
}

int pbft_send(pbft *p, uint32_t to, const sy_msg *m)
{
    sy_buf b;
    if (pbft_behaves(p, SY_PBFT_SILENT))
        return SY_OK;
#ifdef SYNOD_TESTING
    /* bad-new-view: commits to one replica only, which then runs ahead of
     * the other two; the wrong O of its NEW-VIEW needs such a split */
    if (pbft_behaves(p, SY_PBFT_BAD_NEW_VIEW) && m->type == SY_MSG_PBFT_COMMIT && to == SY_NO_NODE)
        to = (p->self + 1) % p->n;
#endif
    if (sy_grow((void **)&p->owned, &p->cap_owned, p->n_owned + 1, sizeof *p->owned))
        return SY_ENOMEM;
    sy_buf_init(&b);
    int rc = sy_msg_encode_body(m, &b);
    if (rc) {
        sy_buf_free(&b);
        return rc;
    }
    pbft_stored *st = &p->owned[p->n_owned];
    memset(st, 0, sizeof *st);
    st->buf = sy_buf_take(&b, &st->len);
    /* The outgoing message is a decoded copy of its own encoding: it owns
     * everything it points to, whatever happens to the engine's state
     * before advance(). */
    rc = sy_msg_decode_body(m->type, st->buf, st->len, &st->msg);
    if (rc) {
        free(st->buf);
        return rc;
    }
    st->have = true;
    p->n_owned++;
    uint32_t cnt = to == SY_NO_NODE ? p->n - 1 : 1;
    if (sy_grow((void **)&p->out, &p->cap_out, p->n_out + cnt, sizeof *p->out))
        return SY_ENOMEM;
    for (uint32_t i = 0; i < p->n; i++) {
        if (to == SY_NO_NODE ? i == p->self : i != to)
            continue;
        memset(&p->out[p->n_out], 0, sizeof p->out[p->n_out]); /* not early */
        p->out[p->n_out].to = i;
        p->out[p->n_out].msg = st->msg;
        p->n_out++;
    }
    return SY_OK;
}

int pbft_commit_entry(pbft *p, uint64_t seq, uint64_t view, uint8_t type,
                      const uint8_t *data, size_t len, const sy_bytes *evidence)
{
    if (sy_grow((void **)&p->ents, &p->cap_ents, p->n_ents + 1, sizeof *p->ents) ||
        sy_grow((void **)&p->comm, &p->cap_comm, p->n_comm + 1, sizeof *p->comm))
        return SY_ENOMEM;
    uint8_t *copy = NULL;
    if (len) {
        copy = pbft_keep(p, malloc(len));
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, data, len);
    }
    sy_entry e = { .index = seq, .term = view, .type = type,
                   .data = { copy, (uint32_t)len } };
    p->ents[p->n_ents++] = e;
    /* the certificate is the evidence: nothing for the host to sign */
    p->comm[p->n_comm] = (sy_committed){
        .entry = e, .evidence = evidence ? *evidence : (sy_bytes){ NULL, 0 } };
    p->n_comm++;
    return SY_OK;
}

/* ------------------------------------------------------------ tables */

pbft_slot *pbft_slot_get(pbft *p, uint64_t seq)
{
    if (seq <= p->h || seq > p->h + p->L)
        return NULL;
    pbft_slot *s = &p->slots[seq % p->L];
    if (s->seq != seq) {
        pbft_slot_clear(p, s);
        s->seq = seq;
        if (seq > p->slot_hi)
            p->slot_hi = seq;
    }
    return s;
}

void pbft_slot_clear(pbft *p, pbft_slot *s)
{
    free(s->batch);
    free(s->cbatch);
    pbft_vote *prep = s->prep, *com = s->com;
    sy_pbft_sig *cp = s->cert_prep, *cc = s->ccert;
    memset(prep, 0, p->n * sizeof *prep);
    memset(com, 0, p->n * sizeof *com);
    memset(s, 0, sizeof *s);
    s->prep = prep;
    s->com = com;
    s->cert_prep = cp;
    s->ccert = cc;
}

static uint32_t client_hash(uint32_t c) { return c * 2654435761u; }

pbft_client *pbft_client_get(pbft *p, uint32_t client, bool create)
{
    if (p->cap_clients == 0 || (create && (p->n_clients + 1) * 2 > p->cap_clients)) {
        if (!create)
            return NULL;
        uint32_t nc = p->cap_clients ? p->cap_clients * 2 : 64;
        pbft_client *t = calloc(nc, sizeof *t);
        if (!t)
            return NULL;
        for (uint32_t i = 0; i < p->cap_clients; i++) {
            if (!p->clients[i].client)
                continue;
            uint32_t j = client_hash(p->clients[i].client) & (nc - 1);
            while (t[j].client)
                j = (j + 1) & (nc - 1);
            t[j] = p->clients[i];
        }
        free(p->clients);
        p->clients = t;
        p->cap_clients = nc;
    }
    uint32_t j = client_hash(client) & (p->cap_clients - 1);
    while (p->clients[j].client) {
        if (p->clients[j].client == client)
            return &p->clients[j];
        j = (j + 1) & (p->cap_clients - 1);
    }
    if (!create)
        return NULL;
    p->clients[j].client = client;
    p->n_clients++;
    return &p->clients[j];
}

void pbft_note_vote(pbft *p, uint64_t seq)
{
    if (p->vote_view != p->view || seq > p->vote_hi) {
        if (p->vote_view != p->view)
            p->vote_hi = 0;
        p->vote_view = p->view;
        if (seq > p->vote_hi)
            p->vote_hi = seq;
        p->hs_dirty = true;
    }
}

/* Misbehaviour evidence: two validly signed, conflicting statements by one
 * replica. Kept as a bounded log of (type, replica, view, seq, d1, d2); the
 * signatures themselves sit in the certificates that exposed them. */
#define PBFT_EVIDENCE_LOG_MAX (64u * 1024u)
void pbft_record_evidence(pbft *p, uint8_t type, uint32_t replica, uint64_t view,
                          uint64_t seq, const sy_digest *a, const sy_digest *b)
{
    p->evidence++;
    p->evidence_from = replica;
    if (replica < SY_MAX_NODES)
        p->accused.evidence[replica]++;
    if (p->evid_log.len + 96 > PBFT_EVIDENCE_LOG_MAX)
        return;
    uint8_t rec[1 + 4 + 8 + 8 + 2 * SY_DIGEST_LEN];
    rec[0] = type;
    memcpy(rec + 1, &replica, 4);
    memcpy(rec + 5, &view, 8);
    memcpy(rec + 13, &seq, 8);
    memcpy(rec + 21, a->b, SY_DIGEST_LEN);
    memcpy(rec + 21 + SY_DIGEST_LEN, b->b, SY_DIGEST_LEN);
    sy_buf_append(&p->evid_log, rec, sizeof rec);
}

void pbft_reset_timer(pbft *p)
{
    p->probed = false;
    if (p->in_vc)
        return;
    if (p->n_waiting == 0) {
        p->vc_deadline = 0;
        return;
    }
    uint32_t shift = p->vc_backoff < PBFT_MAX_BACKOFF_SHIFT ? p->vc_backoff : PBFT_MAX_BACKOFF_SHIFT;
    p->vc_deadline = p->now + ((uint64_t)p->cfg.request_timeout_ms << shift);
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void pbft_note_peer_view(pbft *p, uint32_t from, uint64_t view)
{
    if (from >= p->n || view <= p->peer_view[from])
        return;
    p->peer_view[from] = view;
    pbft_follow_higher_views(p);
}

void pbft_follow_higher_views(pbft *p)
{
    /* Per replica, the highest view it is known to run (a verified
     * statement) or to want (its VIEW-CHANGE). The paper's rule (4.5.2)
     * counts VIEW-CHANGEs only; a replica that runs a view sends none, so
     * one replica left behind in view v while one peer runs v+1 and another
     * asks for v+2 never moved (sim seed 824, faults all). Either kind
     * shows that replica beyond our view, and f+1 of them include a correct
     * one, so moving is still never forced by faulty replicas alone. */
    uint64_t v[SY_MAX_NODES];
    uint32_t k = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        if (i == p->self)
            continue;
        uint64_t w = p->peer_view[i];
        if (p->vcs && p->vcs[i].have && p->vcs[i].msg.u.pbft.vc.new_view > w)
            w = p->vcs[i].msg.u.pbft.vc.new_view;
        v[k++] = w;
    }
    qsort(v, k, sizeof *v, cmp_desc);
    /* f+1 replicas are in or want a view >= v[f]: join the smallest such;
     * our VIEW-CHANGE makes its primary resend its NEW-VIEW if it has one */
    if (k > p->f && v[p->f] > p->view)
        pbft_start_view_change(p, v[p->f]);
}

/* ------------------------------------------------------------ hardstate */

/* A view change may assign a sequence number null or another batch while
 * this replica holds a prepared certificate for it; a later view may pick
 * that certificate again (it is the highest one reported), and then its
 * batch is needed. Freeing it when the other pre-prepare arrived left every
 * replica fetching a batch none had, for good (sim seed 189, pbft, faults
 * all, clients asking the primary and f backups). */
void pbft_slot_set_batch(pbft_slot *s, uint8_t *batch, size_t len, bool have,
                         const sy_digest *d)
{
    bool cert_leaves = s->have_cert && s->have_batch && s->batch &&
                       sy_digest_eq(&s->d, &s->cert_d) && !sy_digest_eq(d, &s->cert_d);
    if (cert_leaves) {
        free(s->cbatch);
        s->cbatch = s->batch;
        s->cbatch_len = s->batch_len;
    } else {
        free(s->batch);
    }
    s->batch = batch;
    s->batch_len = len;
    s->have_batch = have;
    if (!have && s->cbatch && s->have_cert && sy_digest_eq(d, &s->cert_d)) {
        s->batch = s->cbatch;   /* the certificate's batch, back in use */
        s->batch_len = s->cbatch_len;
        s->have_batch = true;
        s->cbatch = NULL;
        s->cbatch_len = 0;
    }
}

static void put64(uint8_t *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* Hard state: version u8 | view u64 | in_vc u8 | vote_view u64 |
 * vote_hi u64 | h u64 | h_digest 32 | nsigs u8 | (replica u8 | sig 64) *
 * nsigs | SECTIONS | nv_len u32 | NEW-VIEW body (little endian).
 * SECTIONS, for some sequence numbers:
 *   ncerts u16 | ncerts * (view u64 | seq u64 | digest 32 | pp_sig 64 |
 *                          nprep u8 | (replica u8 | sig 64) * nprep) |
 *   nccerts u16 | nccerts * (view u64 | seq u64 | digest 32 | n u8 |
 *                            (replica u8 | sig 64) * n) |
 *   nbatches u16 | nbatches * (seq u64 | len u32 | batch)
 * Version 1 held the sections of the whole window in the hard state, so
 * every ready rewrote every certificate in it (tens of KB at K = 128, MBs
 * at K = 2048: 35% of the throughput at 64 clients). Version 2 leaves them
 * empty there and keeps one engine record per sequence number, key = seq,
 * value = SECTIONS for that number alone; a ready writes the records that
 * changed (pbft_records) and drops those at or below h. The prepared
 * certificates above h are durable before the COMMIT that follows them is
 * sent, so a replica that crashes and comes back still reports them in its
 * VIEW-CHANGEs: a committed request keeps its sequence number whatever
 * crashes. */
static void hs_put(sy_buf *b, const void *p, size_t n) { sy_buf_append(b, p, n); }
static void hs_put64(sy_buf *b, uint64_t v)
{
    uint8_t t[8];
    put64(t, v);
    hs_put(b, t, 8);
}
static void hs_put8(sy_buf *b, uint8_t v) { hs_put(b, &v, 1); }
/* little-endian u16 counts and u32 lengths of the hardstate's sections */
static void hs_put16(sy_buf *b, uint32_t v) { hs_put8(b, (uint8_t)v); hs_put8(b, (uint8_t)(v >> 8)); }
static void hs_put32(sy_buf *b, uint32_t v)
{
    hs_put16(b, v & 0xffffu);
    hs_put16(b, v >> 16);
}
static uint32_t get16(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8; }
static uint32_t get32(const uint8_t *b) { return get16(b) | get16(b + 2) << 16; }

/* The batch a slot holds, unexecuted: the one this replica pre-prepared
 * or voted for (the paper logs the pre-prepare with its requests before
 * the PREPARE goes out), or the one its prepared certificate names. */
static bool hs_keeps_batch(const pbft *p, const pbft_slot *s, uint64_t seq)
{
    return s->seq == seq && (s->have_pp || s->have_cert || s->boot_batch) && !s->executed &&
           seq > p->executed && s->have_batch && s->batch_len;
}

/* Its own statements at an unexecuted number (hs_sections). The flags
 * say which; the record is written in the ready whose messages carry
 * them, before they go out. A non-null digest needs its batch beside it
 * (logged by hs_keeps_batch), or a restart could not use it. */
static uint8_t own_flags(const pbft *p, const pbft_slot *s, uint64_t seq)
{
    if (s->seq != seq || !s->have_pp || s->executed || seq <= p->executed)
        return 0;
    if (!pbft_digest_is_null(&s->d) && !(s->have_batch && s->batch_len))
        return 0;
    /* Only what it signed for the slot's (pp_view, d), and only while
     * pp_sig is that pre-prepare's: state transfer (pbft_on_state) puts
     * certified entries into slots whose votes it leaves as they were -- a
     * PREPARE for another digest the equivocating primary sent it, say.
     * Logging that vote under the slot's digest would have it sign the
     * certified digest too after a restart (a review found it); unlogged,
     * the number stays guarded. */
    const pbft_vote *vp = &s->prep[p->self], *vc = &s->com[p->self];
    uint8_t f = 0;
    if (!s->pp_signed)
        return 0;
    if (s->sent_prepare && vp->have && vp->view == s->pp_view && sy_digest_eq(&vp->d, &s->d))
        f |= PBFT_OWN_PREPARE;
    if (s->sent_commit && vc->have && vc->view == s->pp_view && sy_digest_eq(&vc->d, &s->d))
        f |= PBFT_OWN_COMMIT;
    if (pbft_primary(p, s->pp_view) == p->self)
        f |= PBFT_OWN_PRE_PREPARE;
    return f;
}

static bool hs_keeps_cbatch(const pbft *p, const pbft_slot *s, uint64_t seq)
{
    return s->seq == seq && s->cbatch && s->cbatch_len && s->have_cert && !s->executed &&
           seq > p->executed;
}

/* The per-sequence-number sections for lo..hi (inside the window h+1..h+L;
 * lo > hi: three empty sections). */
static void hs_sections(pbft *p, sy_buf *b, uint64_t lo, uint64_t hi)
{
    uint16_t nc = 0;
    for (uint64_t seq = lo; seq <= hi; seq++) {
        const pbft_slot *s = &p->slots[seq % p->L];
        if (s->seq == seq && s->have_cert)
            nc++;
    }
    hs_put16(b, nc);
    for (uint64_t seq = lo; seq <= hi; seq++) {
        const pbft_slot *s = &p->slots[seq % p->L];
        if (s->seq != seq || !s->have_cert)
            continue;
        hs_put64(b, s->cert_view);
        hs_put64(b, seq);
        hs_put(b, s->cert_d.b, SY_DIGEST_LEN);
        hs_put(b, s->cert_pp_sig.b, SY_SIG_LEN);
        hs_put8(b, (uint8_t)s->cert_n);
        for (uint32_t k = 0; k < s->cert_n; k++) {
            hs_put8(b, (uint8_t)s->cert_prep[k].replica);
            hs_put(b, s->cert_prep[k].sig.b, SY_SIG_LEN);
        }
    }
    /* commit certificates of the executed entries above h: after a restart
     * this replica can still serve them to a lagging replica, which may
     * have no other way to catch up (no newer stable checkpoint forms
     * without it) */
    uint16_t ncc = 0;
    for (uint64_t seq = lo; seq <= p->executed && seq <= hi; seq++) {
        const pbft_slot *s = &p->slots[seq % p->L];
        if (s->seq == seq && s->executed && s->ccert_n >= p->q)
            ncc++;
    }
    hs_put16(b, ncc);
    for (uint64_t seq = lo; seq <= p->executed && seq <= hi; seq++) {
        const pbft_slot *s = &p->slots[seq % p->L];
        if (s->seq != seq || !s->executed || s->ccert_n < p->q)
            continue;
        hs_put64(b, s->ccert_view);
        hs_put64(b, seq);
        hs_put(b, s->d.b, SY_DIGEST_LEN);
        hs_put8(b, (uint8_t)s->ccert_n);
        for (uint32_t k = 0; k < s->ccert_n; k++) {
            hs_put8(b, (uint8_t)s->ccert[k].replica);
            hs_put(b, s->ccert[k].sig.b, SY_SIG_LEN);
        }
    }
    /* the batches of pre-prepared or prepared, not yet executed sequence
     * numbers: a prepared certificate names a batch by digest only, and
     * the paper's replicas log the pre-prepare with its requests before
     * they send the PREPARE. Without them a restart forgot the batch, and
     * once every replica that held it had restarted, the certified
     * sequence number could be re-proposed in a new view but executed
     * nowhere: each replica fetched a batch no one had, for good (sim seed
     * 62, pbft, faults all). Keeping only prepared ones was not enough: a
     * replica that voted but never saw the certificate form lost the batch
     * in a crash while another kept the certificate (sim seed 2981 with
     * clients that ask the primary and f backups). Only a window's worth
     * (max_inflight) is ever unexecuted in normal operation. */
    uint16_t nb = 0;
    for (uint64_t seq = lo; seq <= hi; seq++)
        nb += (uint16_t)(hs_keeps_batch(p, &p->slots[seq % p->L], seq) +
                         hs_keeps_cbatch(p, &p->slots[seq % p->L], seq));
    hs_put16(b, nb);
    /* the slots' batches first, then certificates' set-aside ones: a
     * restart restores them in that order (hs_decode) */
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t seq = lo; seq <= hi; seq++) {
            const pbft_slot *s = &p->slots[seq % p->L];
            bool keep = pass == 0 ? hs_keeps_batch(p, s, seq) : hs_keeps_cbatch(p, s, seq);
            if (!keep)
                continue;
            uint32_t len = (uint32_t)(pass == 0 ? s->batch_len : s->cbatch_len);
            hs_put64(b, seq);
            hs_put32(b, len);
            hs_put(b, pass == 0 ? s->batch : s->cbatch, len);
        }
    /* Version 3: this replica's own statements at unexecuted numbers --
     * the view and digest of the pre-prepare it accepted or made, that
     * pre-prepare's signature, and which of PRE-PREPARE, PREPARE and
     * COMMIT it sent for them. Castro & Liskov log every message a replica
     * sends; with this a restarted replica knows what it signed at each
     * number, resends it (Ed25519 signs the same bytes the same way) and
     * goes on voting there, where it used to stay silent at every number
     * up to vote_hi in that view (pbft_normal.c, guarded) and a restarted
     * primary handed its view on. */
    uint16_t no = 0;
    for (uint64_t seq = lo; seq <= hi; seq++)
        no += own_flags(p, &p->slots[seq % p->L], seq) != 0;
    hs_put16(b, no);
    for (uint64_t seq = lo; seq <= hi; seq++) {
        const pbft_slot *s = &p->slots[seq % p->L];
        uint8_t f = own_flags(p, s, seq);
        if (!f)
            continue;
        hs_put64(b, seq);
        hs_put64(b, s->pp_view);
        hs_put(b, s->d.b, SY_DIGEST_LEN);
        hs_put(b, s->pp_sig.b, SY_SIG_LEN);
        hs_put8(b, f);
    }
}

static int hs_encode(pbft *p)
{
    sy_buf *b = &p->hs;
    sy_buf_reset(b);
    hs_put8(b, PBFT_HS_VERSION);
    hs_put64(b, p->view);
    hs_put8(b, p->in_vc ? 1 : 0);
    hs_put64(b, p->vote_view);
    hs_put64(b, p->vote_hi);
    hs_put64(b, p->h);
    hs_put(b, p->h_digest.b, SY_DIGEST_LEN);
    hs_put8(b, (uint8_t)p->h_nsigs);
    for (uint32_t i = 0; i < p->h_nsigs; i++) {
        hs_put8(b, (uint8_t)p->h_sigs[i].replica);
        hs_put(b, p->h_sigs[i].sig.b, SY_SIG_LEN);
    }
    hs_sections(p, b, 1, 0);   /* version 2: in engine records (pbft_records) */
    /* The primary's own NEW-VIEW for the view it runs. A backup that missed
     * it asks again with a VIEW-CHANGE for that view and the primary repeats
     * it (pbft_on_view_change); a primary that restarted had nothing to
     * repeat, and the backup stayed in its view change for good unless f+1
     * others asked for a higher view (sim seeds 409, 669, 824: faults all). */
    bool nv = p->nv.have && !p->in_vc && p->nv.msg.u.pbft.nv.view == p->view &&
              pbft_primary(p, p->view) == p->self;
    uint32_t nvl = nv ? (uint32_t)p->nv.len : 0;
    hs_put32(b, nvl);
    if (nv)
        hs_put(b, p->nv.buf, p->nv.len);
    return b->err;
}

static int hs_decode_sections(pbft *p, sy_bytes hs, size_t *op, uint64_t only_seq, int version);

static void rec_fp(const pbft *p, uint64_t seq, pbft_recfp *fp)
{
    const pbft_slot *s = &p->slots[seq % p->L];
    memset(fp, 0, sizeof *fp);
    if (s->seq != seq)
        return;
    if (s->have_cert) {
        fp->what |= 1;
        fp->cert_view = s->cert_view;
        fp->cert_d = s->cert_d;
        fp->cert_n = s->cert_n;
    }
    if (seq <= p->executed && s->executed && s->ccert_n >= p->q) {
        fp->what |= 2;
        fp->ccert_view = s->ccert_view;
        fp->ccert_n = s->ccert_n;
    }
    if (hs_keeps_batch(p, s, seq)) {
        fp->what |= 4;
        fp->batch = s->batch;
        fp->batch_len = s->batch_len;
    }
    if (hs_keeps_cbatch(p, s, seq)) {
        fp->what |= 8;
        fp->cbatch = s->cbatch;
        fp->cbatch_len = s->cbatch_len;
    }
    if (fp->what & 6)
        fp->d = s->d;   /* the commit certificate's digest, the batch's */
    uint8_t of = own_flags(p, s, seq);
    if (of) {
        fp->what |= 16;
        fp->own_flags = of;
        fp->own_view = s->pp_view;
        fp->own_d = s->d;
    }
}

static bool rec_fp_eq(const pbft_recfp *a, const pbft_recfp *b)
{
    return a->what == b->what && a->cert_view == b->cert_view &&
           a->ccert_view == b->ccert_view && sy_digest_eq(&a->cert_d, &b->cert_d) &&
           sy_digest_eq(&a->d, &b->d) && a->cert_n == b->cert_n && a->ccert_n == b->ccert_n &&
           a->batch_len == b->batch_len && a->cbatch_len == b->cbatch_len &&
           a->batch == b->batch && a->cbatch == b->cbatch && a->own_flags == b->own_flags &&
           a->own_view == b->own_view && sy_digest_eq(&a->own_d, &b->own_d);
}

/* The engine records that changed since the last ready: each number of
 * the window whose fingerprint moved is encoded (its SECTIONS alone) and
 * written, an empty one deleted if storage holds one; when h moved, every
 * record up to h is dropped. Version 1 encoded and wrote the whole window
 * at every ready; now a ready encodes and writes what changed. Values live
 * in p->rec_buf until the next ready. */
static int pbft_records(pbft *p)
{
    static const uint8_t empty[8];   /* four empty sections */
    sy_buf_reset(&p->rec_buf);
    p->n_rec_out = 0;
    p->rec_drop = 0;
    if (p->h > p->rec_h) {
        p->rec_drop = p->h + 1;
        p->rec_h = p->h;
    }
    /* numbers no slot was ever opened for hold nothing, here or in storage */
    uint64_t hi = p->slot_hi < p->h + p->L ? p->slot_hi : p->h + p->L;
    for (uint64_t seq = p->h + 1; seq <= hi; seq++) {
        pbft_rec *k = &p->rec_kept[seq % p->L];
        if (k->seq != seq) {
            /* storage holds nothing for seq: the slot's earlier number was
             * at or below h, and numbers above h + L are never written */
            memset(k, 0, sizeof *k);
            k->seq = seq;
        }
        pbft_recfp fp;
        rec_fp(p, seq, &fp);
        if (k->known && rec_fp_eq(&k->fp, &fp))
            continue;
        sy_buf *sc = &p->rec_scratch;
        sy_buf_reset(sc);
        hs_sections(p, sc, seq, seq);
        if (sc->err)
            return sc->err;
        size_t nl = sc->len == sizeof empty && !memcmp(sc->p, empty, sizeof empty) ? 0 : sc->len;
        k->fp = fp;
        k->known = true;
        if (!nl && !k->stored)
            continue;
        k->stored = nl > 0;
        if (sy_grow((void **)&p->rec_out, &p->cap_rec_out, p->n_rec_out + 1, sizeof *p->rec_out))
            return SY_ENOMEM;
        /* val.p holds the offset in rec_buf until the buffer stops moving */
        p->rec_out[p->n_rec_out++] = (sy_record){ seq, { (const uint8_t *)(uintptr_t)p->rec_buf.len,
                                                        (uint32_t)nl } };
        sy_buf_append(&p->rec_buf, sc->p, nl);
        if (p->rec_buf.err)
            return SY_ENOMEM;
    }
    for (size_t i = 0; i < p->n_rec_out; i++) {
        sy_record *r = &p->rec_out[i];
        r->val.p = r->val.len ? p->rec_buf.p + (uintptr_t)r->val.p : NULL;
    }
    return SY_OK;
}

/* One engine record at boot: its sections go into the window's slot. What
 * storage holds for the number is marked stored but not known, so the
 * first ready writes it once more from the state the boot ends with. */
static int boot_record(pbft *p, const sy_record *r)
{
    if (r->key <= p->h)
        return SY_OK;   /* below the stable checkpoint: dropped at the next ready */
    if (r->key > p->h + p->L && r->key <= p->h + SY_PBFT_MAX_WINDOW && r->val.len)
        return SY_ECONFIG;    /* written under a larger window: L was lowered */
    if (r->key > p->h + p->L || !r->val.len)
        return SY_ECORRUPT;   /* never written: records live in the window */
    size_t o = 0;
    int rc = hs_decode_sections(p, r->val, &o, r->key, PBFT_HS_VERSION);
    if (rc)
        return rc;
    if (o != r->val.len)
        return SY_ECORRUPT;
    pbft_rec *k = &p->rec_kept[r->key % p->L];
    memset(k, 0, sizeof *k);
    k->seq = r->key;
    k->stored = true;
    return SY_OK;
}

/* The per-sequence-number sections (prepared certificates, commit
 * certificates, batches, own statements) from hs.p + *op on; all but the
 * first may be absent (written before they existed; own statements only
 * from version 3 on, where a hard state ends in its NEW-VIEW instead).
 * only_seq != 0: an engine record, whose items must all be for that
 * sequence number. */
static int hs_decode_sections(pbft *p, sy_bytes hs, size_t *op, uint64_t only_seq, int version)
{
    const uint8_t *b = hs.p;
    size_t o = *op;
    if (hs.len - o < 2)
        return SY_ECORRUPT;
    uint32_t nc = get16(b + o);
    o += 2;
    for (uint32_t c = 0; c < nc; c++) {
        size_t rec = 8 + 8 + SY_DIGEST_LEN + SY_SIG_LEN + 1;
        if (hs.len - o < rec)
            return SY_ECORRUPT;
        uint64_t view = get64(b + o), seq = get64(b + o + 8);
        uint32_t np = b[o + rec - 1];
        if (only_seq && seq != only_seq)
            return SY_ECORRUPT;
        if (np > p->n || hs.len - o < rec + np * (1u + SY_SIG_LEN))
            return SY_ECORRUPT;
        pbft_slot *s = pbft_slot_get(p, seq);
        if (s) {
            s->have_cert = true;
            s->cert_view = view;
            memcpy(s->cert_d.b, b + o + 16, SY_DIGEST_LEN);
            memcpy(s->cert_pp_sig.b, b + o + 16 + SY_DIGEST_LEN, SY_SIG_LEN);
            s->cert_n = np;
            for (uint32_t k = 0; k < np; k++) {
                const uint8_t *r = b + o + rec + k * (1u + SY_SIG_LEN);
                s->cert_prep[k].replica = r[0];
                memcpy(s->cert_prep[k].sig.b, r + 1, SY_SIG_LEN);
            }
        }
        o += rec + np * (1u + SY_SIG_LEN);
    }
    /* optional (absent in hardstates written before it existed): commit
     * certificates of executed entries; the batches come from boot.entries */
    if (o < hs.len) {
        if (hs.len - o < 2)
            return SY_ECORRUPT;
        uint32_t ncc = get16(b + o);
        o += 2;
        for (uint32_t c = 0; c < ncc; c++) {
            size_t rec = 8 + 8 + SY_DIGEST_LEN + 1;
            if (hs.len - o < rec)
                return SY_ECORRUPT;
            uint64_t view = get64(b + o), seq = get64(b + o + 8);
            uint32_t nsig = b[o + rec - 1];
            if (only_seq && seq != only_seq)
                return SY_ECORRUPT;
            if (nsig > p->n || hs.len - o < rec + nsig * (1u + SY_SIG_LEN))
                return SY_ECORRUPT;
            pbft_slot *s = pbft_slot_get(p, seq);
            if (s) {
                s->ccert_view = view;
                memcpy(s->d.b, b + o + 16, SY_DIGEST_LEN);
                s->ccert_n = nsig;
                for (uint32_t k = 0; k < nsig; k++) {
                    const uint8_t *r = b + o + rec + k * (1u + SY_SIG_LEN);
                    s->ccert[k].replica = r[0];
                    memcpy(s->ccert[k].sig.b, r + 1, SY_SIG_LEN);
                }
            }
            o += rec + nsig * (1u + SY_SIG_LEN);
        }
    }
    /* optional too: the batches of prepared, unexecuted sequence numbers */
    if (o < hs.len) {
        if (hs.len - o < 2)
            return SY_ECORRUPT;
        uint32_t nb = get16(b + o);
        o += 2;
        for (uint32_t c = 0; c < nb; c++) {
            if (hs.len - o < 12)
                return SY_ECORRUPT;
            uint64_t seq = get64(b + o);
            uint32_t len = get32(b + o + 8);
            if (only_seq && seq != only_seq)
                return SY_ECORRUPT;
            o += 12;
            if (hs.len - o < len)
                return SY_ECORRUPT;
            pbft_slot *s = pbft_slot_get(p, seq);
            sy_digest d;
            sy_hash(b + o, len, &d);
            /* a certificate's batch, or one we voted for without a
             * certificate: either way pbft_on_fetch serves it and
             * enter_view keeps it for an O-set entry with this digest */
            if (s && len && !s->have_batch) {
                if (!(s->batch = malloc(len)))
                    return SY_ENOMEM;
                memcpy(s->batch, b + o, len);
                s->batch_len = len;
                s->have_batch = true;
                s->boot_batch = true;   /* no pre-prepare of this run vouches for it */
                s->d = d;
            } else if (s && len && s->have_cert && sy_digest_eq(&d, &s->cert_d) &&
                       !sy_digest_eq(&d, &s->d) && !s->cbatch) {
                if (!(s->cbatch = malloc(len)))
                    return SY_ENOMEM;
                memcpy(s->cbatch, b + o, len);
                s->cbatch_len = len;
            }
            o += len;
        }
    }
    /* optional (version 3): own statements, restored by boot_own once the
     * boot knows what was executed */
    if (version >= 3 && o < hs.len) {
        if (hs.len - o < 2)
            return SY_ECORRUPT;
        uint32_t no = get16(b + o);
        o += 2;
        for (uint32_t c = 0; c < no; c++) {
            size_t rec = PBFT_OWN_ITEM_LEN;
            if (hs.len - o < rec)
                return SY_ECORRUPT;
            uint64_t seq = get64(b + o), view = get64(b + o + 8);
            uint8_t f = b[o + rec - 1];
            if ((only_seq && seq != only_seq) || view > SY_INDEX_MAX || !f ||
                (f & ~(PBFT_OWN_PREPARE | PBFT_OWN_COMMIT | PBFT_OWN_PRE_PREPARE)))
                return SY_ECORRUPT;
            pbft_slot *s = pbft_slot_get(p, seq);
            if (s) {
                s->own_logged = true;
                s->own_flags = f;
                s->own_view = view;
                memcpy(s->own_d.b, b + o + 16, SY_DIGEST_LEN);
                memcpy(s->own_pp_sig.b, b + o + 16 + SY_DIGEST_LEN, SY_SIG_LEN);
            }
            o += rec;
        }
    }
    *op = o;
    return SY_OK;
}

static int hs_decode(pbft *p, sy_bytes hs)
{
    const uint8_t *b = hs.p;
    size_t o = 0, fixed = PBFT_HS_FIXED;
    if (hs.len == 0)
        return SY_OK;
    /* version 1 kept the per-sequence sections here; version 2 keeps them
     * in engine records and leaves them empty here; version 3 adds a
     * fourth (own statements), empty here too */
    if (hs.len < fixed + 2 || b[0] < 1 || b[0] > PBFT_HS_VERSION)
        return SY_ECORRUPT;
    o = 1;
    p->view = get64(b + o); o += 8;
    if (b[o] > 1)
        return SY_ECORRUPT;
    p->in_vc = b[o++] == 1;
    p->vote_view = get64(b + o); o += 8;
    p->vote_hi = get64(b + o); o += 8;
    p->h = get64(b + o); o += 8;
    /* fuzz_boot: h = 2^64 - 9 made the window loop h+1..h+L spin forever */
    if (p->view > SY_INDEX_MAX || p->vote_view > SY_INDEX_MAX || p->vote_hi > SY_INDEX_MAX ||
        p->h > SY_INDEX_MAX)
        return SY_ECORRUPT;
    memcpy(p->h_digest.b, b + o, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    uint32_t ns = b[o++];
    if (ns > p->n || hs.len < fixed + ns * (1u + SY_SIG_LEN) + 2)
        return SY_ECORRUPT;
    for (uint32_t i = 0; i < ns; i++) {
        p->h_sigs[i].replica = b[o++];
        memcpy(p->h_sigs[i].sig.b, b + o, SY_SIG_LEN);
        o += SY_SIG_LEN;
    }
    p->h_nsigs = ns;
    int rc = hs_decode_sections(p, hs, &o, 0, b[0]);
    if (rc)
        return rc;
    /* optional too: this primary's NEW-VIEW for the view it runs */
    if (o < hs.len) {
        if (hs.len - o < 4)
            return SY_ECORRUPT;
        uint32_t len = get32(b + o);
        o += 4;
        if (hs.len - o < len)
            return SY_ECORRUPT;
        if (len) {
            uint8_t *copy = malloc(len);
            if (!copy)
                return SY_ENOMEM;
            memcpy(copy, b + o, len);
            sy_msg m;
            memset(&m, 0, sizeof m);
            if (sy_msg_decode_body(SY_MSG_PBFT_NEW_VIEW, copy, len, &m) != SY_OK) {
                free(copy);
                return SY_ECORRUPT;
            }
            if (m.u.pbft.nv.view == p->view && !p->in_vc && !p->nv.have) {
                p->nv = (pbft_stored){ .buf = copy, .len = len, .msg = m, .have = true };
            } else {
                sy_msg_free(&m);
                free(copy);
            }
            o += len;
        }
    }
    if (o != hs.len)
        return SY_ECORRUPT;
    p->guard_view = p->vote_view;
    p->guard_hi = p->vote_hi;
    return SY_OK;
}

/* ------------------------------------------------------------ lifecycle */

static void pbft_destroy(void *e);

/* A persisted entry whose commit certificate the hardstate kept goes back
 * into its slot as executed, so state transfer can serve it again. An
 * entry whose certificate does not name its digest is left out (it is
 * never served without one). */
static int boot_restore_slot(pbft *p, const sy_entry *e)
{
    pbft_slot *s = pbft_slot_get(p, e->index);
    if (!s || s->ccert_n < p->q || s->executed)
        return SY_OK;
    sy_digest d;
    memset(&d, 0, sizeof d);
    if (e->type == SY_ENTRY_NORMAL)
        sy_hash(e->data.p, e->data.len, &d);
    if (!sy_digest_eq(&d, &s->d)) {
        s->ccert_n = 0;
        return SY_OK;
    }
    if (e->type == SY_ENTRY_NORMAL && e->data.len) {
        free(s->batch);   /* one the hardstate restored for this number, if any */
        s->batch = malloc(e->data.len);
        if (!s->batch)
            return SY_ENOMEM;
        memcpy(s->batch, e->data.p, e->data.len);
        s->batch_len = e->data.len;
    }
    s->have_batch = true;
    s->have_pp = true;
    s->pp_view = s->ccert_view;
    s->prepared = s->committed = s->executed = true;
    return SY_OK;
}

/* After the boot's records and entries: each unexecuted number whose
 * record logged this replica's own statements in the view it boots into
 * gets them back -- the pre-prepare it accepted or made (with its batch,
 * which the same record holds), and its PREPARE and COMMIT, signed again
 * (the same bytes: Ed25519 is deterministic). The restart guard then
 * stands aside at those numbers (pbft_normal.c, guarded): the replica
 * knows the one digest it may vote for there, and a pre-prepare for
 * another is equivocation, refused as always. Numbers at or below
 * vote_hi without a log entry stay guarded (a record written before
 * version 3, or one that could not be restored). */
static void boot_own(pbft *p)
{
    for (uint64_t i = 0; i < p->L; i++) {
        pbft_slot *s = &p->slots[i];
        if (!s->own_logged)
            continue;
        s->own_logged = false;
        if (!s->seq || s->executed || s->seq <= p->executed || p->in_vc ||
            s->own_view != p->view)
            continue;
        bool null_req = pbft_digest_is_null(&s->own_d);
        if (null_req && s->have_batch && s->batch_len && s->have_cert && !s->cbatch &&
            sy_digest_eq(&s->d, &s->cert_d)) {
            /* the certificate's batch, logged set aside behind the null
             * request that took its place: set aside again */
            s->cbatch = s->batch;
            s->cbatch_len = s->batch_len;
            s->batch = NULL;
            s->batch_len = 0;
            s->have_batch = false;
        }
        if (null_req ? (s->have_batch && s->batch_len)
                     : (!s->have_batch || !sy_digest_eq(&s->d, &s->own_d)))
            continue;   /* its batch is not the one it signed for: stay guarded */
        if ((s->own_flags & PBFT_OWN_PRE_PREPARE) && pbft_primary(p, s->own_view) != p->self)
            continue;
        s->have_pp = true;
        s->pp_view = s->own_view;
        s->d = s->own_d;
        s->pp_sig = s->own_pp_sig;
        s->pp_signed = true;
        s->have_batch = true;
        s->boot_batch = false;   /* its pre-prepare vouches for it again */
        s->prepared = s->have_cert && s->cert_view == s->pp_view &&
                      sy_digest_eq(&s->cert_d, &s->d);
        s->committed = false;
        if (s->own_flags & PBFT_OWN_PREPARE) {
            pbft_vote *v = &s->prep[p->self];
            *v = (pbft_vote){ true, s->pp_view, s->d, { { 0 } } };
            pbft_sign_stmt(p, SY_MSG_PBFT_PREPARE, s->pp_view, s->seq, &s->d, &v->sig);
            s->sent_prepare = true;
        }
        if (s->own_flags & PBFT_OWN_COMMIT) {
            pbft_vote *v = &s->com[p->self];
            *v = (pbft_vote){ true, s->pp_view, s->d, { { 0 } } };
            pbft_sign_stmt(p, SY_MSG_PBFT_COMMIT, s->pp_view, s->seq, &s->d, &v->sig);
            s->sent_commit = true;
        }
        s->restored = true;
        if (s->seq > p->last_pp)
            p->last_pp = s->seq;
    }
}

/* A restarted primary's numbers above what it executed, up to the
 * highest it signed at in its view, that its log did not give back: it
 * cannot resend their pre-prepares, and nothing else fills them in its
 * view (the step for SY_IN_TICK hands the view on). */
static bool boot_hole(pbft *p)
{
    if (p->guard_view != p->view || p->guard_hi <= p->executed)
        return false;
    for (uint64_t seq = p->executed + 1; seq <= p->guard_hi; seq++) {
        pbft_slot *s = pbft_slot_get(p, seq);
        if (!s || !s->restored || !s->have_pp || s->pp_view != p->view)
            return true;
    }
    return false;
}

/* The snapshots the host took at checkpoints that were not yet stable
 * when the replica stopped (storage keeps them beside the stable one
 * until then, sy_txn_checkpoint_snapshot): the replica signs each of
 * those checkpoints again -- the same blob, so the same digest and the
 * same statement -- and keeps the blob, as when the host first took it,
 * so that it can serve the state once the checkpoint is stable. Without
 * this, a cluster whose replicas all restarted with their window full of
 * executed but unstable checkpoints would never move h again: nobody
 * would vote for one. A store written before 0.15 kept such a snapshot as
 * its only one (snap_index above h): the same applies. (The digest is
 * over chunks of state_chunk_bytes: a replica restarted with another
 * chunk size signs another digest for the same number -- docs/pbft.md.) */
static int boot_one_checkpoint(pbft *p, uint64_t at, sy_bytes blob)
{
    if (at <= p->h || at > p->executed || at % p->K || !blob.len)
        return SY_OK;
    int rc = pbft_on_snapshot(p, at, blob.p, blob.len, NULL);
    return rc == SY_ENOMEM ? rc : SY_OK;   /* a blob it cannot digest: no vote, as before */
}

static int boot_checkpoint(pbft *p, const sy_engine_boot *boot)
{
    int rc = boot_one_checkpoint(p, boot->snap_index, boot->snap_data);
    for (size_t i = 0; !rc && i < boot->n_ckpts; i++)
        rc = boot_one_checkpoint(p, boot->ckpts[i].index, boot->ckpts[i].data);
    return rc;
}

/* Data of the entries a restart hands the host again: kept apart from
 * p->blobs (freed after every ready) until the last of them went out. */
static void *boot_keep(pbft *p, void *blob)
{
    return keep_in(&p->boot_blobs, &p->n_boot_blobs, &p->cap_boot_blobs, blob);
}

static void boot_blobs_free(pbft *p)
{
    for (size_t i = 0; i < p->n_boot_blobs; i++)
        free(p->boot_blobs[i]);
    free(p->boot_blobs);
    p->boot_blobs = NULL;
    p->n_boot_blobs = p->cap_boot_blobs = 0;
}

/* A snapshot of checkpoint c is stored (handed back at boot, or taken
 * since): at h, or pending. */
static bool boot_has_snapshot(const pbft *p, uint64_t c)
{
    if (c == p->boot_snap_at)
        return true;
    for (size_t i = 0; i < p->n_boot_ck; i++)
        if (p->boot_ck[i] == c)
            return true;
    return false;
}

/* A checkpoint above h without a stored snapshot (for its vote), or h
 * itself when the replica holds no snapshot of it (it went stable on the
 * others' votes before the host stored this replica's: taken now, it can
 * be served). */
static bool boot_wants_snapshot(const pbft *p, uint64_t c)
{
    if (!c || c % p->K || c < p->h || boot_has_snapshot(p, c))
        return false;
    return c > p->h || !p->h_snap;
}

/* The next point where a ready of the restart's entries must stop so the
 * host snapshots a checkpoint that has none: the host's applied index
 * itself (from) when it is one, else the first such checkpoint among the
 * boot's entries still to go out. The engine asks for a checkpoint's
 * snapshot when it executes it; a replica that crashed between executing
 * one and its host storing the snapshot would otherwise never take it,
 * never vote for it, and serve no state until the next one. Sets
 * ckpt_index (which also holds execution back, as always). */
static void boot_next_cut(pbft *p, uint64_t from)
{
    p->boot_cut = false;
    uint64_t c = 0;
    if (from && boot_wants_snapshot(p, from) && from <= p->executed)
        c = from;
    for (size_t i = 0; !c && i < p->boot_left && i < p->n_comm; i++) {
        uint64_t at = p->comm[i].entry.index;
        if (boot_wants_snapshot(p, at))
            c = at;
    }
    if (c) {
        p->ckpt_index = c;
        p->boot_cut = true;
    }
}

static int pbft_create(const sy_engine_cfg *cfg, const sy_engine_boot *boot, void **out)
{
    if (!cfg || cfg->n == 0 || cfg->n > SY_MAX_NODES || cfg->self >= cfg->n ||
        cfg->n < 3 * cfg->f + 1 || !cfg->node_keys || !cfg->signer || !cfg->verifier)
        return SY_EINVAL;
    pbft *p = calloc(1, sizeof *p);
    if (!p)
        return SY_ENOMEM;
    p->cfg = *cfg;
    p->n = cfg->n;
    p->f = cfg->f;
    p->q = sy_pbft_quorum(cfg->n, cfg->f);
    p->self = cfg->self;
#ifdef SYNOD_TESTING
    p->behaviour = cfg->test_behaviour;
#endif
    p->K = cfg->checkpoint_interval ? cfg->checkpoint_interval : PBFT_DEFAULT_K;
    p->L = cfg->watermark_window ? cfg->watermark_window : 2 * p->K;
    if (p->L < 2 * p->K)
        p->L = 2 * p->K;   /* the window must hold a checkpoint going stable */
    if (p->L > SY_PBFT_MAX_WINDOW || p->K > p->L) {
        free(p);
        return SY_EINVAL;
    }
    p->chunk = cfg->state_chunk_bytes ? cfg->state_chunk_bytes : SY_STATE_CHUNK_DEF;
    if (p->chunk > SY_STATE_CHUNK_MAX) {
        free(p);   /* a chunk must leave room in a message for the entries */
        return SY_EINVAL;
    }
    if (!p->cfg.batch_max)
        p->cfg.batch_max = PBFT_DEFAULT_BATCH_MAX;
    if (p->cfg.batch_max > SY_MAX_BATCH)
        p->cfg.batch_max = SY_MAX_BATCH;
    if (!p->cfg.max_pending)
        p->cfg.max_pending = PBFT_DEFAULT_PENDING;
    if (!p->cfg.request_timeout_ms)
        p->cfg.request_timeout_ms = PBFT_DEFAULT_TIMEOUT_MS;
    if (!p->cfg.heartbeat_ms)
        p->cfg.heartbeat_ms = PBFT_DEFAULT_HEARTBEAT_MS;
    if (!p->cfg.max_inflight)
        p->cfg.max_inflight = (uint32_t)p->L;
    sy_rng_seed(&p->rng, cfg->rng_seed ^ ((uint64_t)cfg->self << 32));
    sy_buf_init(&p->evid_log);
    sy_buf_init(&p->hs);
    p->nck = (uint32_t)(p->L / p->K) + 2;
    p->slots = calloc(p->L, sizeof *p->slots);
    p->cks = calloc(p->nck, sizeof *p->cks);
    p->hi_ck = calloc(p->n, sizeof *p->hi_ck);
    p->peer_view = calloc(p->n, sizeof *p->peer_view);
    p->h_sigs = calloc(p->n, sizeof *p->h_sigs);
    p->kept = calloc(p->n, sizeof *p->kept);
    p->fetch_seq = calloc(p->n, sizeof *p->fetch_seq);
    p->fetch_ms = calloc(p->n, sizeof *p->fetch_ms);
    for (uint32_t i = 0; p->kept && i < p->n; i++)
        if (!(p->kept[i].sigs = calloc(p->n, sizeof *p->kept[i].sigs)))
            goto err_destroy;
    p->vcs = calloc(p->n, sizeof *p->vcs);
    p->nv_resent_ms = calloc(p->n, sizeof *p->nv_resent_ms);
    p->vcache = calloc(PBFT_VCACHE, sizeof *p->vcache);
    p->vcache_have = calloc(PBFT_VCACHE, sizeof *p->vcache_have);
    p->waiting = calloc(PBFT_MAX_WAITING, sizeof *p->waiting);
    p->waiting_since = calloc(PBFT_MAX_WAITING, sizeof *p->waiting_since);
    p->rec_kept = calloc(p->L, sizeof *p->rec_kept);
    if (!p->slots || !p->cks || !p->hi_ck || !p->peer_view || !p->h_sigs || !p->kept || !p->fetch_seq ||
        !p->fetch_ms || !p->rec_kept ||
        !p->vcs ||
        !p->nv_resent_ms || !p->vcache || !p->vcache_have || !p->waiting || !p->waiting_since)
        goto err_destroy;
    for (uint64_t i = 0; i < p->L; i++) {
        pbft_slot *s = &p->slots[i];
        s->prep = calloc(p->n, sizeof *s->prep);
        s->com = calloc(p->n, sizeof *s->com);
        s->cert_prep = calloc(p->n, sizeof *s->cert_prep);
        s->ccert = calloc(p->n, sizeof *s->ccert);
        if (!s->prep || !s->com || !s->cert_prep || !s->ccert)
            goto err_destroy;
    }
    for (uint32_t i = 0; i < p->nck; i++) {
        p->cks[i].have = calloc(p->n, sizeof *p->cks[i].have);
        p->cks[i].d = calloc(p->n, sizeof *p->cks[i].d);
        p->cks[i].sig = calloc(p->n, sizeof *p->cks[i].sig);
        if (!p->cks[i].have || !p->cks[i].d || !p->cks[i].sig)
            goto err_destroy;
    }
    if (boot) {
        if (boot->hardstate.len >= PBFT_HS_FIXED + 2 && boot->hardstate.p[0] > PBFT_HS_VERSION &&
            boot->hardstate.p[0] <= PBFT_HS_VERSION_PLAUSIBLE) {
            /* Written by a newer synod: the wrong binary, not damage (the
             * host's store checksums the hard state; bytes shorter than
             * any version's header, or a version byte far past ours, are
             * damage all the same). */
            pbft_destroy(p);
            return SY_EVERSION;
        }
        if (hs_decode(p, boot->hardstate) || boot->snap_index > SY_INDEX_MAX ||
            boot->applied > SY_INDEX_MAX)
            goto err_destroy;
        for (size_t i = 0; i < boot->n_records; i++) {
            int brc = boot_record(p, &boot->records[i]);
            if (brc == SY_ECONFIG) {
                /* certificates of numbers the smaller window cannot hold:
                 * dropping them could lose a prepared request's number */
                pbft_destroy(p);
                return SY_ECONFIG;
            }
            if (brc)
                goto err_destroy;
        }
        sy_digest bd;
        /* serve only the certified state (a blob cut with another chunk
         * size, or damaged, would be refused by every receiver anyway) */
        if (boot->snap_index == p->h && boot->snap_data.len &&
            pbft_snap_digest(p, boot->snap_data.p, boot->snap_data.len, &bd) == SY_OK &&
            sy_digest_eq(&bd, &p->h_digest)) {
            p->h_snap = malloc(boot->snap_data.len);
            if (!p->h_snap)
                goto err_destroy;
            memcpy(p->h_snap, boot->snap_data.p, boot->snap_data.len);
            p->h_snap_len = boot->snap_data.len;
        }
        p->executed = boot->snap_index > p->h ? boot->snap_index : p->h;
        for (size_t i = 0; i < boot->n_entries; i++) {
            const sy_entry *e = &boot->entries[i];
            if (e->index <= p->executed) {
                if (boot_restore_slot(p, e))
                    goto err_destroy;
                continue;
            }
            if (e->index != p->executed + 1)
                goto err_destroy;   /* a hole in the persisted log */
            p->executed = e->index;
            if (e->type == SY_ENTRY_NORMAL)
                pbft_note_batch_executed(p, e->data.p, e->data.len);
            if (boot_restore_slot(p, e))
                goto err_destroy;
            if (e->index > boot->applied) {
                /* durable but not applied before the crash (the host's
                 * apply was not committed with it): apply now, with the
                 * commit certificate the hard state kept for it as the
                 * ledger block's evidence, as at execution */
                if (sy_grow((void **)&p->comm, &p->cap_comm, p->n_comm + 1, sizeof *p->comm))
                    goto err_destroy;
                uint8_t *copy = e->data.len ? boot_keep(p, malloc(e->data.len)) : NULL;
                if (e->data.len && !copy)
                    goto err_destroy;
                if (copy)
                    memcpy(copy, e->data.p, e->data.len);
                sy_bytes evb = { NULL, 0 };
                pbft_slot *s = pbft_slot_get(p, e->index);
                if (s && s->executed && s->ccert_n >= p->q) {
                    sy_buf ev;
                    size_t evlen = 0;
                    sy_buf_init(&ev);
                    int erc = sy_pbft_evidence_encode(s->ccert_view, s->seq, &s->d, s->ccert,
                                                      s->ccert_n, &ev);
                    evb.p = erc ? NULL : boot_keep(p, sy_buf_take(&ev, &evlen));
                    sy_buf_free(&ev);
                    if (!evb.p)
                        goto err_destroy;   /* as pbft_execute: no block without it */
                    evb.len = (uint32_t)evlen;
                }
                p->comm[p->n_comm] = (sy_committed){ .entry = *e, .evidence = evb };
                p->comm[p->n_comm].entry.data.p = copy;
                p->n_comm++;
                p->boot_left++;
            }
        }
    }
    for (uint64_t i = 0; boot && i < p->L; i++) {
        pbft_slot *s = &p->slots[i];
        if (s->seq && !s->executed && s->ccert_n) {
            /* certificate of an entry that was not persisted: forget it */
            s->ccert_n = 0;
            memset(&s->d, 0, sizeof s->d);
        }
    }
    p->last_pp = p->executed;
    if (boot)
        boot_own(p);
    if (boot && boot_checkpoint(p, boot)) {
        pbft_destroy(p);
        return SY_ENOMEM;   /* its only failure: not a damaged store */
    }
    if (boot) {
        p->boot_snap_at = boot->snap_data.len ? boot->snap_index : 0;
        p->boot_ck = calloc(boot->n_ckpts + 1, sizeof *p->boot_ck);
        if (!p->boot_ck) {
            pbft_destroy(p);
            return SY_ENOMEM;
        }
        for (size_t i = 0; i < boot->n_ckpts; i++)
            if (boot->ckpts[i].data.len)
                p->boot_ck[p->n_boot_ck++] = boot->ckpts[i].index;
        boot_next_cut(p, boot->applied);
    }
    p->next_seq = p->executed + 1;
    if (p->vote_view == p->view && p->vote_hi >= p->next_seq)
        p->next_seq = p->vote_hi + 1;
    p->boot_check = boot != NULL;
    *out = p;
    return SY_OK;

err_destroy:
    pbft_destroy(p);
    return boot ? SY_ECORRUPT : SY_ENOMEM;
}

static void free_stored(pbft_stored *s)
{
    if (!s->have)
        return;
    sy_msg_free(&s->msg);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* Releases what the last ready handed out (everything: all = true, at
 * destroy); what steps added since stays for the next ready. */
static void clear_ready(pbft *p, bool all)
{
    size_t ho = all ? p->n_owned : p->h_owned, hb = all ? p->n_blobs : p->h_blobs;
    for (size_t i = 0; i < ho && i < p->n_owned; i++)
        free_stored(&p->owned[i]);
    for (size_t i = 0; i < hb && i < p->n_blobs; i++)
        free(p->blobs[i]);
    sy_drop_front(p->owned, &p->n_owned, ho, sizeof *p->owned);
    sy_drop_front(p->blobs, &p->n_blobs, hb, sizeof *p->blobs);
    sy_drop_front(p->out, &p->n_out, all ? p->n_out : p->h_out, sizeof *p->out);
    sy_drop_front(p->ents, &p->n_ents, all ? p->n_ents : p->h_ents, sizeof *p->ents);
    sy_drop_front(p->comm, &p->n_comm, all ? p->n_comm : p->h_comm, sizeof *p->comm);
    sy_drop_front(p->reads, &p->n_reads, all ? p->n_reads : p->h_reads, sizeof *p->reads);
    sy_drop_front(p->rejects, &p->n_rejects, all ? p->n_rejects : p->h_rejects,
               sizeof *p->rejects);
    /* the checkpoint and the install block execution until the host has
     * them durable; one a step set after the ready waits for the next */
    if (all || (p->h_ckpt && p->ckpt_index == p->h_ckpt))
        p->ckpt_index = 0;
    if (all || p->h_install) {
        p->install = false;
        free(p->install_pending);
        p->install_pending = NULL;
    }
    p->h_out = p->h_owned = p->h_ents = p->h_comm = p->h_blobs = p->h_reads = p->h_rejects = 0;
    p->h_ckpt = 0;
    p->h_install = false;
}

static void pbft_destroy(void *e)
{
    pbft *p = e;
    if (!p)
        return;
    clear_ready(p, true);
    if (p->slots)
        for (uint64_t i = 0; i < p->L; i++) {
            free(p->slots[i].batch);
            free(p->slots[i].cbatch);
            free(p->slots[i].prep);
            free(p->slots[i].com);
            free(p->slots[i].cert_prep);
            free(p->slots[i].ccert);
        }
    if (p->cks)
        for (uint32_t i = 0; i < p->nck; i++) {
            free(p->cks[i].have);
            free(p->cks[i].d);
            free(p->cks[i].sig);
            free(p->cks[i].snap);
        }
    if (p->vcs)
        for (uint32_t i = 0; i < p->n; i++)
            free_stored(&p->vcs[i]);
    free_stored(&p->nv);
    for (uint32_t i = 0; i < p->n_pending; i++)
        free(p->pending[i].raw);
    free(p->pending);
    free(p->clients);
    for (uint32_t i = 0; p->waiting && i < p->n_waiting; i++)
        free(p->waiting[i].raw);
    free(p->waiting);
    free(p->waiting_since);
    free(p->slots);
    free(p->cks);
    free(p->hi_ck);
    free(p->peer_view);
    free(p->h_sigs);
    pbft_set_h_snap(p, NULL, 0);
    for (uint32_t i = 0; p->kept && i < p->n; i++) {
        kept_clear(&p->kept[i]);
        free(p->kept[i].sigs);
    }
    free(p->kept);
    free(p->fetch_seq);
    free(p->fetch_ms);
    pbft_xin_clear(p);
    free(p->vcs);
    free(p->nv_resent_ms);
    free(p->vcache);
    free(p->vcache_have);
    sy_buf_free(&p->evid_log);
    sy_buf_free(&p->hs);
    free(p->rec_kept);
    free(p->rec_out);
    sy_buf_free(&p->rec_buf);
    sy_buf_free(&p->rec_scratch);
    free(p->out);
    free(p->owned);
    free(p->ents);
    free(p->comm);
    free(p->blobs);
    boot_blobs_free(p);
    free(p->boot_ck);
    free(p->reads);
    free(p->rejects);
    free(p);
}

/* ------------------------------------------------------------ step */

static void heartbeat(pbft *p)
{
    if (p->now < p->hb_last + p->cfg.heartbeat_ms)
        return;
    p->hb_last = p->now;
    pbft_kept_expire(p);
    pbft_retransmit(p);
    pbft_fetch_batches(p);
    pbft_maybe_fetch_state(p);
#ifdef SYNOD_TESTING
    pbft_byz_tick(p);
#endif
}

static bool vc_bounded(const sy_pbft_view_change *v)
{
    if (v->new_view > SY_INDEX_MAX || v->ckpt.seq > SY_INDEX_MAX)
        return false;
    for (uint32_t i = 0; i < v->n_pcerts; i++)
        if (v->pcerts[i].view > SY_INDEX_MAX || v->pcerts[i].seq > SY_INDEX_MAX)
            return false;
    return true;
}

/* Every view and sequence number a message names is at most SY_INDEX_MAX,
 * the bound durable state keeps (core/engine.h). No correct replica ever
 * sends more, and the window and quorum checks would refuse such numbers
 * later anyway; refusing them here, in one place, keeps every comparison
 * and `+ 1` downstream far from UINT64_MAX whatever a Byzantine replica
 * sends. */
static bool msg_bounded(const sy_msg *m)
{
    const sy_pbft_body *b = &m->u.pbft;
    switch (m->type) {
    case SY_MSG_PBFT_PRE_PREPARE:
    case SY_MSG_PBFT_PREPARE:
    case SY_MSG_PBFT_COMMIT:
    case SY_MSG_PBFT_CHECKPOINT:
        return b->stmt.view <= SY_INDEX_MAX && b->stmt.seq <= SY_INDEX_MAX;
    case SY_MSG_PBFT_VIEW_CHANGE:
        return vc_bounded(&b->vc);
    case SY_MSG_PBFT_NEW_VIEW:
        if (b->nv.view > SY_INDEX_MAX)
            return false;
        for (uint32_t i = 0; i < b->nv.n_vcs; i++)
            if (!vc_bounded(&b->nv.vcs[i]))
                return false;
        for (uint32_t i = 0; i < b->nv.n_o; i++)
            if (b->nv.o[i].seq > SY_INDEX_MAX)
                return false;
        return true;
    case SY_MSG_PBFT_STATE_REQ:
        return b->state_req.have <= SY_INDEX_MAX && b->state_req.seq <= SY_INDEX_MAX;
    case SY_MSG_PBFT_STATE:
        if (b->state.ckpt.seq > SY_INDEX_MAX)
            return false;
        for (uint32_t i = 0; i < b->state.n_entries; i++)
            if (b->state.entries[i].view > SY_INDEX_MAX || b->state.entries[i].seq > SY_INDEX_MAX)
                return false;
        return true;
    default:
        return true;   /* FETCH, BATCH, FORWARD name no view or seq */
    }
}

static int on_msg(pbft *p, const sy_input *in)
{
    const sy_msg *m = in->u.msg.msg;
    uint32_t from = in->u.msg.from;
    if (!m || from >= p->n || from == p->self)
        return SY_ESENDER;
    if (!msg_bounded(m))
        return SY_EFIELD;
    if ((m->type == SY_MSG_PBFT_PRE_PREPARE || m->type == SY_MSG_PBFT_PREPARE ||
         m->type == SY_MSG_PBFT_COMMIT) &&
        m->u.pbft.stmt.view < p->view)
        pbft_nv_to_laggard(p, from);
    switch (m->type) {
    case SY_MSG_PBFT_PRE_PREPARE: return pbft_on_pre_prepare(p, from, &m->u.pbft.stmt);
    case SY_MSG_PBFT_PREPARE:
    case SY_MSG_PBFT_COMMIT: return pbft_on_vote(p, m->type, from, &m->u.pbft.stmt);
    case SY_MSG_PBFT_CHECKPOINT: return pbft_on_checkpoint(p, from, &m->u.pbft.stmt);
    case SY_MSG_PBFT_VIEW_CHANGE: return pbft_on_view_change(p, from, m);
    case SY_MSG_PBFT_NEW_VIEW: return pbft_on_new_view(p, from, m);
    case SY_MSG_PBFT_FETCH: return pbft_on_fetch(p, from, &m->u.pbft.batch);
    case SY_MSG_PBFT_BATCH: return pbft_on_batch(p, from, &m->u.pbft.batch);
    case SY_MSG_PBFT_FORWARD: return pbft_on_forward(p, from, &m->u.pbft.fwd);
    case SY_MSG_PBFT_STATE_REQ: return pbft_on_state_req(p, from, &m->u.pbft.state_req);
    case SY_MSG_PBFT_STATE: return pbft_on_state(p, from, &m->u.pbft.state);
    default: return SY_EMSGTYPE;
    }
}

static int pbft_step(void *e, const sy_input *in)
{
    pbft *p = e;
    int rc = SY_OK;
    if (p->broken)
        return SY_EFATAL;
    if (in->now_ms > p->now)
        p->now = in->now_ms;
    switch (in->kind) {
    case SY_IN_TICK:
        if (p->boot_check) {
            /* A primary that pre-prepared numbers it has not executed
             * before it crashed resends them from its log (boot_own) and
             * goes on above vote_hi. Where its log cannot give one back (a
             * record written before version 3, a batch it never had),
             * nothing in its view can fill that number and execution,
             * strictly in order, stops there until a view change. Seen
             * after a crash of every replica: an idle cluster looked
             * healthy and its first write waited out a request timeout,
             * two with the next primary down. So such a primary hands its
             * view on at once, as on SIGTERM; the NEW-VIEW fills the
             * numbers (re-proposing what prepared). */
            p->boot_check = false;
            if (!p->in_vc && pbft_primary(p, p->view) == p->self && boot_hole(p))
                (void)pbft_abdicate(p, SY_NO_NODE);
        }
        pbft_arm_vc_timer(p);
        if (p->vc_deadline && p->now >= p->vc_deadline) {
            if (!p->in_vc && pbft_behind(p) &&
                p->now < p->progress_ms + 4u * (uint64_t)p->cfg.request_timeout_ms) {
                /* our own lag is not the primary's fault: catch up first --
                 * but not forever: a replica that cannot catch up (its
                 * sources are themselves stuck waiting for a quorum) must
                 * still be able to blame the primary, or the view change
                 * that would unblock everyone never gathers its quorum */
                p->vc_deadline = p->now + p->cfg.request_timeout_ms;
                pbft_maybe_fetch_state(p);
            } else {
                pbft_start_view_change(p, p->view + 1);
            }
        }
        break;
    case SY_IN_MSG:
        rc = on_msg(p, in);
        /* the envelope verified, so its sender signed what is inside: a
         * statement (or certificate) in it that does not verify is that
         * sender's doing -- a correct replica checks what it relays */
        if (rc == SY_ESIG) {
            p->bad_sigs++;
            p->bad_sig_from = in->u.msg.from;
            if (in->u.msg.from < SY_MAX_NODES)
                p->accused.bad_sigs[in->u.msg.from]++;
        }
        break;
    case SY_IN_REQUEST:
        if (!in->u.request.req || !in->u.request.raw)
            return SY_EINVAL;
        rc = pbft_on_request(p, in->u.request.raw, in->u.request.raw_len, in->u.request.req,
                             true);
        break;
    case SY_IN_READ:
        /* Read-only optimisation (paper 5.1.3): answer from the executed
         * state at once; the client needs a quorum of matching replies and
         * falls back to an ordered read otherwise (docs/pbft.md). */
        if (sy_grow((void **)&p->reads, &p->cap_reads, p->n_reads + 1, sizeof *p->reads))
            return SY_ENOMEM;
        p->reads[p->n_reads++] = (sy_read_state){ in->u.read.read_id, p->executed, SY_OK };
        break;
    case SY_IN_SNAPSHOT:
        rc = pbft_on_snapshot(p, in->u.snapshot.index, in->u.snapshot.data.p,
                              in->u.snapshot.data.len, in->u.snapshot.digest);
        break;
    case SY_IN_APPLIED:
        rc = pbft_on_snapshot(p, in->u.applied.index, NULL, 0, &in->u.applied.digest);
        break;
    case SY_IN_SESSIONS:
        if (in->u.sessions.n && !in->u.sessions.recs)
            return SY_EINVAL;
        rc = pbft_on_sessions(p, in->u.sessions.index, in->u.sessions.recs, in->u.sessions.n);
        break;
    case SY_IN_TRANSFER:
        rc = pbft_abdicate(p, in->u.transfer.target);
        break;
    default:
        rc = SY_EINVAL;   /* conf change: not in PBFT */
        break;
    }
    if (rc && rc != SY_EFATAL && rc != SY_ENOMEM)
        p->dropped++;
    if (rc == SY_EFATAL || rc == SY_ENOMEM)
        return rc;
    pbft_try_batch(p);
    heartbeat(p);
    return rc;
}

static void pbft_ready(void *e, sy_ready *rd)
{
    pbft *p = e;
    memset(rd, 0, sizeof *rd);
    if (p->hs_dirty) {
        if (hs_encode(p) == SY_OK && pbft_records(p) == SY_OK) {
            rd->hardstate_dirty = true;
            rd->hardstate = (sy_bytes){ p->hs.p, (uint32_t)p->hs.len };
            rd->records_drop_below = p->rec_drop;
            rd->records = p->rec_out;
            rd->n_records = p->n_rec_out;
            p->hs_dirty = false;   /* a step from now on dirties it again */
        } else {
            /* out of memory encoding what must be durable before this
             * ready's messages: none goes out, and the next step stops the
             * replica (SY_EFATAL) rather than vote on state it may forget */
            p->broken = true;
        }
    }
    if (p->install && !p->h_install) {
        p->h_install = true;
        rd->snapshot_install = true;
        rd->snap_index = p->install_index;
        rd->snap_term = 0;
        rd->snap_members.n_voters = p->n;
        for (uint32_t i = 0; i < p->n; i++)
            rd->snap_members.voters[i] = i;
        rd->snap_data = (sy_bytes){ p->install_data, (uint32_t)p->install_len };
    }
    rd->entries = p->ents;
    rd->n_entries = p->n_ents;
    rd->compact_to = p->compact_to;
    rd->msgs = p->out;
    rd->n_msgs = p->broken ? 0 : p->n_out;
    rd->committed = p->comm;
    rd->n_committed = p->n_comm;
    if (p->boot_cut && p->ckpt_index < p->h) {
        /* a checkpoint past the cut went stable since it was set (the
         * entries up to it were executed before the restart): cut again
         * from there, or this ready's compact_to would drop entries the
         * host has not applied yet (a review found it) */
        p->ckpt_index = 0;
        boot_next_cut(p, 0);
    }
    if (p->boot_cut) {
        size_t k = 0;
        while (k < p->n_comm && p->comm[k].entry.index <= p->ckpt_index)
            k++;
        rd->n_committed = k;
    }
    rd->reads = p->reads;
    rd->n_reads = p->n_reads;
    rd->rejects = p->rejects;
    rd->n_rejects = p->n_rejects;
    rd->checkpoint_index = p->ckpt_index != p->h_ckpt ? p->ckpt_index : 0;
    p->h_ckpt = p->ckpt_index;
    p->compact_to = 0;
    p->h_out = p->n_out;
    p->h_owned = p->n_owned;
    p->h_ents = p->n_ents;
    p->h_comm = rd->n_committed;
    p->h_blobs = p->n_blobs;
    p->h_reads = p->n_reads;
    p->h_rejects = p->n_rejects;
}

static void pbft_advance(void *e, uint64_t now_ms)
{
    pbft *p = e;
    if (now_ms > p->now)
        p->now = now_ms;
    size_t gone = p->h_comm < p->boot_left ? p->h_comm : p->boot_left;
    bool was_cut = p->boot_cut && p->h_ckpt && p->h_ckpt == p->ckpt_index;
    clear_ready(p, false);
    p->boot_left -= gone;
    if (was_cut)
        boot_next_cut(p, 0);
    if (!p->boot_left && !p->boot_cut && p->n_boot_blobs)
        boot_blobs_free(p);   /* the restart's entries are all out */
    /* a ready stops at a checkpoint so the host can snapshot exactly there */
    pbft_execute(p);
    /* an execution may have opened the window (pbft_batch_deadline sets no
     * timer while it is full) */
    pbft_try_batch(p);
}

static void pbft_status(void *e, sy_engine_status *st)
{
    pbft *p = e;
    memset(st, 0, sizeof *st);
    st->role = p->in_vc ? SY_ROLE_VIEW_CHANGE : pbft_is_primary(p) ? SY_ROLE_PRIMARY
                                                                   : SY_ROLE_BACKUP;
    st->term = p->view;
    st->leader = p->in_vc ? SY_NO_NODE : pbft_primary(p, p->view);
    st->last_index = p->last_pp > p->executed ? p->last_pp : p->executed;
    st->commit_index = p->executed;
    st->snap_index = p->h;
    st->leader_changes = p->view_changes;
    st->evidence = p->evidence;
    st->evidence_from = p->evidence_from;
    st->bad_sigs = p->bad_sigs;
    st->bad_sig_from = p->bad_sig_from;
    st->dissent = p->dissent;
    st->dissent_from = p->dissent_from;
    st->dissent_primary = p->dissent_primary;
    st->dropped = p->dropped;
}

static void pbft_accused(void *e, sy_accused *out)
{
    const pbft *p = e;
    *out = p->accused;
}

static uint64_t pbft_next_deadline(void *e)
{
    pbft *p = e;
    if (p->now == 0)
        return 1;
    uint64_t d = p->hb_last + p->cfg.heartbeat_ms;
    if (p->vc_deadline && p->vc_deadline < d)
        d = p->vc_deadline;
    uint64_t b = pbft_batch_deadline(p);
    if (b && b < d)
        d = b;
    return d;
}

const sy_engine_ops sy_pbft_ops = {
    .name = "pbft",
    .create = pbft_create,
    .destroy = pbft_destroy,
    .step = pbft_step,
    .ready = pbft_ready,
    .advance = pbft_advance,
    .pipelined = true,
    .status = pbft_status,
    .next_deadline = pbft_next_deadline,
    .accused = pbft_accused,
};
