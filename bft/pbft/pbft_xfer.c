/* PBFT state transfer and batch fetching (TOCS 2002 sec. 5.3.2, 6.2,
 * simplified: whole snapshots instead of a partition tree).
 *
 * Invariant kept here: nothing fetched from another replica is adopted
 * before it is checked against quorum-signed statements. A snapshot is
 * installed only if sy_hash(blob) equals a checkpoint digest carried by a
 * valid proof (q CHECKPOINT signatures); a log entry only if q COMMIT
 * signatures for (view, seq, sy_hash(batch)) verify; a fetched batch only
 * if its hash is the digest of a pre-prepare this replica accepted. A
 * replica that serves anything else is counted and another one is asked. */
#include <stdlib.h>
#include <string.h>
#include "bft/pbft/pbft.h"
#include "crypto/sy_err.h"

static const sy_digest zero_digest;

#define PBFT_STATE_BYTES_MAX (8u * 1024u * 1024u)

/* ------------------------------------------------------------ batches */

int pbft_on_fetch(pbft *p, uint32_t from, const sy_pbft_batch *b)
{
    for (uint64_t i = 0; i < p->L; i++) {
        pbft_slot *s = &p->slots[i];
        if (s->seq && s->have_batch && s->batch_len && sy_digest_eq(&s->d, &b->digest)) {
            sy_msg m = { .type = SY_MSG_PBFT_BATCH };
            m.u.pbft.batch.digest = s->d;
            m.u.pbft.batch.batch = (sy_bytes){ s->batch, (uint32_t)s->batch_len };
            return pbft_send(p, from, &m);
        }
        if (s->seq && s->cbatch && s->have_cert && sy_digest_eq(&s->cert_d, &b->digest)) {
            sy_msg m = { .type = SY_MSG_PBFT_BATCH };
            m.u.pbft.batch.digest = s->cert_d;
            m.u.pbft.batch.batch = (sy_bytes){ s->cbatch, (uint32_t)s->cbatch_len };
            return pbft_send(p, from, &m);
        }
    }
    return SY_ENOTFOUND;
}

int pbft_on_batch(pbft *p, uint32_t from, const sy_pbft_batch *b)
{
    sy_digest d;
    (void)from;
    sy_hash(b->batch.p, b->batch.len, &d);
    if (!sy_digest_eq(&d, &b->digest) || b->batch.len == 0)
        return SY_ECORRUPT;
    bool used = false;
    for (uint64_t seq = p->executed + 1; seq <= p->last_pp && seq <= p->h + p->L; seq++) {
        pbft_slot *s = pbft_slot_get(p, seq);
        if (!s || !s->have_pp || s->have_batch || !sy_digest_eq(&s->d, &d))
            continue;
        s->batch = malloc(b->batch.len);
        if (!s->batch)
            return SY_ENOMEM;
        memcpy(s->batch, b->batch.p, b->batch.len);
        s->batch_len = b->batch.len;
        s->have_batch = true;
        used = true;
    }
    if (used)
        pbft_execute(p);
    return used ? SY_OK : SY_ESTALE;
}

void pbft_fetch_batches(pbft *p)
{
    uint32_t sent = 0;
    for (uint64_t seq = p->executed + 1;
         seq <= p->last_pp && seq <= p->h + p->L && sent < PBFT_MAX_FETCH; seq++) {
        pbft_slot *s = pbft_slot_get(p, seq);
        if (!s || !s->have_pp || s->have_batch || sy_digest_eq(&s->d, &zero_digest))
            continue;
        if (s->fetch_ms && p->now < s->fetch_ms + p->cfg.heartbeat_ms)
            continue;
        s->fetch_ms = p->now;
        sy_msg m = { .type = SY_MSG_PBFT_FETCH };
        m.u.pbft.batch.digest = s->d;
        pbft_send(p, SY_NO_NODE, &m);
        sent++;
    }
}

/* ------------------------------------------------------------ state */

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

bool pbft_behind(const pbft *p)
{
    uint64_t his[SY_MAX_NODES];
    uint32_t k = 0;
    if (p->stable_seen > p->executed)
        return true;
    for (uint32_t i = 0; i < p->n; i++)
        if (i != p->self)
            his[k++] = p->hi_ck[i];
    qsort(his, k, sizeof *his, cmp_desc);
    /* f+1 replicas signed a checkpoint past us: at least one is correct */
    return k > p->f && his[p->f] > p->executed;
}

static void send_state_req(pbft *p)
{
    do
        p->xfer_peer = (p->xfer_peer + 1) % p->n;
    while (p->xfer_peer == p->self);
    sy_msg m = { .type = SY_MSG_PBFT_STATE_REQ };
    m.u.pbft.state_req.have = p->executed;
    pbft_send(p, p->xfer_peer, &m);
}

void pbft_maybe_fetch_state(pbft *p)
{
    if (!p->in_vc && p->n_waiting && !p->probed && p->vc_deadline &&
        p->now + p->cfg.request_timeout_ms / 2 >= p->vc_deadline) {
        /* halfway to accusing the primary: first make sure we are not the
         * one behind (an idle cluster sends nothing that would tell us);
         * f+1 peers include a correct one */
        p->probed = true;
        for (uint32_t i = 0; i <= p->f; i++)
            send_state_req(p);
        return;
    }
    bool behind = pbft_behind(p);
    bool stuck = p->hi_seen > p->executed && p->now >= p->progress_ms + 2 * p->cfg.heartbeat_ms;
    if (!behind && !stuck)
        return;
    if (p->xfer_ms && p->now < p->xfer_ms + 2 * p->cfg.heartbeat_ms)
        return;
    p->xfer_ms = p->now;
    send_state_req(p);
}

int pbft_on_state_req(pbft *p, uint32_t from, const sy_pbft_state_req *r)
{
    sy_msg m = { .type = SY_MSG_PBFT_STATE };
    sy_pbft_state *st = &m.u.pbft.state;
    uint64_t base = r->have;
    if (r->have < p->h) {
        if (!p->h_snap)
            return SY_ENOTFOUND;   /* no blob to serve (host used SY_IN_APPLIED) */
        st->ckpt = (sy_pbft_ckproof){ .seq = p->h, .digest = p->h_digest,
                                      .n_sigs = p->h_nsigs, .sigs = p->h_sigs };
        st->snapshot = (sy_bytes){ p->h_snap, (uint32_t)p->h_snap_len };
        base = p->h;
    }
    sy_pbft_centry *ents = calloc(SY_PBFT_MAX_STATE_ENTRIES, sizeof *ents);
    if (!ents)
        return SY_ENOMEM;
    size_t bytes = 0;
    uint32_t n = 0;
    for (uint64_t seq = base + 1; seq <= p->executed && n < SY_PBFT_MAX_STATE_ENTRIES; seq++) {
        pbft_slot *s = pbft_slot_get(p, seq);
        if (!s || !s->committed || !s->have_batch || s->ccert_n < p->q)
            break;
        if (bytes + s->batch_len > PBFT_STATE_BYTES_MAX)
            break;
        bytes += s->batch_len;
        ents[n++] = (sy_pbft_centry){ .view = s->ccert_view, .seq = seq, .digest = s->d,
                                      .batch = { s->batch, (uint32_t)s->batch_len },
                                      .n_commits = s->ccert_n, .commits = s->ccert };
    }
    st->n_entries = n;
    st->entries = ents;
    int rc = SY_OK;
    if (n || st->snapshot.len)
        rc = pbft_send(p, from, &m);
    free(ents);
    return rc;
}

static bool centry_valid(pbft *p, const sy_pbft_centry *e)
{
    sy_digest d;
    if (e->batch.len == 0) {
        if (!sy_digest_eq(&e->digest, &zero_digest))
            return false;
    } else {
        sy_hash(e->batch.p, e->batch.len, &d);
        if (!sy_digest_eq(&d, &e->digest))
            return false;
    }
    uint64_t seen = 0;
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < e->n_commits; i++) {
        uint32_t r = e->commits[i].replica;
        if (r >= p->n || (seen >> r & 1))
            return false;
        if (!pbft_verify_stmt(p, SY_MSG_PBFT_COMMIT, e->view, e->seq, &e->digest, r,
                              &e->commits[i].sig))
            return false;
        seen |= 1ull << r;
        cnt++;
    }
    return cnt >= p->q;
}

static int bad_state(pbft *p)
{
    /* corrupt or forged state: count it and ask another replica now */
    p->xfer_bad++;
    p->xfer_ms = 0;
    return SY_ECORRUPT;
}

int pbft_on_state(pbft *p, uint32_t from, const sy_pbft_state *st)
{
    (void)from;
    if (st->ckpt.seq > p->executed && st->snapshot.len) {
        sy_digest d;
        if (!pbft_ckproof_valid(p, &st->ckpt))
            return bad_state(p);
        if (pbft_snap_digest(p, st->snapshot.p, st->snapshot.len, &d) ||
            !sy_digest_eq(&d, &st->ckpt.digest))
            return bad_state(p);
        if (p->n_comm || p->install)
            return SY_EFULL;   /* applies pending in this ready: install later */
        uint8_t *inst = malloc(st->snapshot.len), *keep = malloc(st->snapshot.len);
        if (!inst || !keep) {
            free(inst);
            free(keep);
            return SY_ENOMEM;
        }
        memcpy(inst, st->snapshot.p, st->snapshot.len);
        memcpy(keep, st->snapshot.p, st->snapshot.len);
        p->install = true;
        p->install_index = st->ckpt.seq;
        p->install_data = inst;
        p->install_len = st->snapshot.len;
        p->install_pending = inst;
        /* the snapshot holds the host's client table, not ours: clients
         * we have no record of no longer start our view-change timer */
        p->clients_partial = true;
        /* what we proposed at or below the installed checkpoint was either
         * executed in it or is gone: a retransmission may be ordered again
         * (a primary that jumped past its own proposal ignored every
         * retransmission of it as "already ordered in this view", and the
         * backups' forwards with it: sim seed 1602, pbft, faults all) */
        for (uint32_t i = 0; i < p->cap_clients; i++)
            p->clients[i].proposed = 0;
        p->executed = st->ckpt.seq;
        p->progress_ms = p->now;
        pbft_stabilize(p, st->ckpt.seq, &st->ckpt.digest, st->ckpt.sigs, st->ckpt.n_sigs);
        free(p->h_snap);
        p->h_snap = keep;
        p->h_snap_len = st->snapshot.len;
        p->hs_dirty = true;
    }
    uint64_t next = p->executed + 1;
    for (uint32_t i = 0; i < st->n_entries; i++) {
        const sy_pbft_centry *e = &st->entries[i];
        if (e->seq < next)
            continue;
        if (e->seq != next)
            break;
        pbft_slot *s = pbft_slot_get(p, e->seq);
        if (!s)
            break;
        if (s->committed && sy_digest_eq(&s->d, &e->digest) && s->have_batch) {
            next++;
            continue;
        }
        if (!centry_valid(p, e))
            return bad_state(p);
        uint8_t *copy = NULL;
        if (e->batch.len) {
            copy = malloc(e->batch.len);
            if (!copy)
                return SY_ENOMEM;
            memcpy(copy, e->batch.p, e->batch.len);
        }
        free(s->batch);
        s->batch = copy;
        s->batch_len = e->batch.len;
        s->have_batch = true;
        s->have_pp = true;
        s->pp_view = e->view;
        s->d = e->digest;
        s->prepared = s->committed = true;
        s->ccert_view = e->view;
        s->ccert_n = e->n_commits < p->n ? e->n_commits : p->n;
        memcpy(s->ccert, e->commits, s->ccert_n * sizeof *s->ccert);
        if (e->seq > p->last_pp)
            p->last_pp = e->seq;
        next++;
    }
    return pbft_execute(p);
}
