/* PBFT state transfer and batch fetching (TOCS 2002 sec. 5.3.2, 6.2,
 * simplified: the snapshot blob is fetched in fixed-size chunks under a
 * Merkle tree (core/chunks.h) instead of the paper's partition tree).
 *
 * Invariant kept here: nothing fetched from another replica is adopted
 * before it is checked against quorum-signed statements. A snapshot chunk
 * is kept only if its audit path leads to a checkpoint digest carried by a
 * valid proof (q CHECKPOINT signatures), and the snapshot is installed once
 * every chunk is in; a log entry only if q COMMIT
 * signatures for (view, seq, sy_hash(batch)) verify; a fetched batch only
 * if its hash is the digest of a pre-prepare this replica accepted. A
 * replica that serves anything else is counted and another one is asked. */
#include <stdlib.h>
#include <string.h>
#include "bft/pbft/pbft.h"
#include "core/chunks.h"
#include "crypto/sy_err.h"


/* A STATE reply's payload; with the envelope's own fields it stays well
 * under SY_MAX_ENVELOPE (16 MiB). */
#define PBFT_STATE_BYTES_MAX (SY_MAX_ENVELOPE - 256u * 1024u)
/* Snapshot chunks asked for at once from one replica: enough to keep both
 * ends busy (the responder encodes and signs the next while the receiver
 * checks the last), few enough that a window of 1 MiB chunks stays well
 * under the peer send queue's bound. */
#define PBFT_XFER_WINDOW 4u

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
        if (!s || !s->have_pp || s->have_batch || pbft_digest_is_null(&s->d))
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

/* Asks replica `to` for state past executed and, while we assemble a
 * snapshot, for its chunk `chunk`. */
static void send_state_req_to(pbft *p, uint32_t to, uint32_t chunk)
{
    sy_msg m = { .type = SY_MSG_PBFT_STATE_REQ };
    m.u.pbft.state_req.have = p->executed;
    if (p->xin.seq > p->executed) {
        m.u.pbft.state_req.seq = p->xin.seq;
        m.u.pbft.state_req.chunk = chunk;
    }
    pbft_send(p, to, &m);
}

/* Asks the next peer (rotating) for state past executed. */
static void send_state_req(pbft *p)
{
    if (p->n == 1)
        return;
    do
        p->xfer_peer = (p->xfer_peer + 1) % p->n;
    while (p->xfer_peer == p->self);
    send_state_req_to(p, p->xfer_peer, 0);
}

/* The snapshot fetch keeps PBFT_XFER_WINDOW chunk requests out to one
 * replica (xin.peer), each with the time it was asked. When a chunk asked
 * for two heartbeats ago is not in yet and nothing at all came from that
 * replica for two heartbeats, it is gone (or lying, or too slow to count
 * as serving): the fetch moves to the next replica, which is asked again
 * for everything outstanding. A replica that goes on delivering keeps the
 * fetch however long its chunks wait behind one another: on a link slower
 * than the window (a WAN at 10 MB/s passes 1 MiB chunks 100 ms apart, so
 * the fourth of a window waits two default heartbeats) every chunk would
 * count as late, and moving to a replica that may no longer hold the
 * checkpoint costs the fetch (test_a_fetch_slower_than_a_checkpoint_
 * interval_completes). So a Byzantine responder can hold a fetch at one
 * chunk per two heartbeats (1 MiB per 400 ms at the defaults) -- a bounded
 * slowdown, the price of finishing on slow honest links. Chunks from
 * anyone are kept if they check out. */
static void xin_ask(pbft *p, uint32_t i)
{
    if (!p->xin.ask_ms[i])
        p->xin.inflight++;
    p->xin.ask_ms[i] = p->now ? p->now : 1;
    send_state_req_to(p, p->xin.peer, i);
}

static void xin_top_up(pbft *p)
{
    while (p->xin.inflight < PBFT_XFER_WINDOW && p->xin.asked < p->xin.n_chunks) {
        uint32_t i = p->xin.asked++;
        if (!p->xin.got[i] && !p->xin.ask_ms[i])
            xin_ask(p, i);
    }
}

/* The fetch moves to the next replica after xin.peer that has not said
 * it lacks our checkpoint (any, if all have), which is asked again for
 * everything outstanding. */
static void xin_rotate(pbft *p)
{
    if (p->n == 1)
        return;
    uint32_t next = p->xin.peer;
    for (uint32_t k = 0; k < p->n; k++) {
        next = (next + 1) % p->n;
        if (next != p->self && next != p->xin.peer && !(p->xin.lacks >> next & 1))
            break;
    }
    if (next == p->self || next == p->xin.peer || p->xin.lacks >> next & 1)
        do
            next = (next + 1) % p->n;
        while (next == p->self);
    p->xin.peer = next;
    p->xin.rotate = false;
    p->xin.rx_ms = p->now;
    for (uint32_t i = p->xin.lo; i < p->xin.asked; i++)
        if (!p->xin.got[i] && p->xin.ask_ms[i])
            xin_ask(p, i);
}

/* From the tick: a stalled window moves to the next replica. */
static void xin_tick(pbft *p)
{
    uint32_t lo = p->xin.lo;   /* chunks below it are all in: it only moves up */
    while (lo < p->xin.n_chunks && p->xin.got[lo])
        lo++;
    p->xin.lo = lo;
    uint64_t two = 2 * (uint64_t)p->cfg.heartbeat_ms;
    bool late = false;
    for (uint32_t i = lo; i < p->xin.asked && !late; i++)
        if (!p->xin.got[i] && p->xin.ask_ms[i] && p->now >= p->xin.ask_ms[i] + two)
            late = true;
    bool silent = late && p->now >= p->xin.rx_ms + two;
    bool stalled = p->xin.rotate || silent;
    if (!stalled && p->xin.inflight)
        return;
    if (silent && p->xin.silences[p->xin.peer] < UINT8_MAX)
        p->xin.silences[p->xin.peer]++;
    if (silent && p->xin.silences[p->xin.peer] >= 2) {
        /* A replica that stayed silent through two stalls of ours counts
         * as lacking our checkpoint, like one that answered with a newer
         * one: up to f replicas may never answer (down for good, or
         * Byzantine and silent), and a fetch that waited for all of them
         * to say so before it gave up on its old checkpoint waited forever
         * -- with f replicas lost, too few were left up to date to commit
         * (synod-sim pbft seeds 7501902 at n=4 and 7700265 at n=7). One
         * stall is not enough: a server whose chunks were lost for a while
         * is asked again and finishes the fetch (test_a_fetch_slower_than_
         * a_checkpoint_interval_completes, node 1's chunks cut for 150 ms).
         * If it serves again, its chunks are kept like anyone's. */
        p->xin.lacks |= 1ull << p->xin.peer;
    }
    if (stalled)
        xin_rotate(p);
    if (p->xin.asked < lo)
        p->xin.asked = lo;
    xin_top_up(p);
}

static int xin_install(pbft *p);

void pbft_maybe_fetch_state(pbft *p)
{
    if (p->n == 1)
        return;   /* nobody to fetch from (the peer rotations below would spin) */
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
    if (!behind && !stuck) {
        /* Idle probe. A replica that was away while the others executed
         * and checkpointed learns of it from their next messages; in an
         * idle cluster there are none (nothing they retransmit names a
         * sequence number they have executed), and without a client
         * request of its own it stayed behind for good -- stale reads and
         * `status` disagreeing until the next write. Castro & Liskov's
         * replicas send periodic status messages for this (TOCS 2002,
         * 5.2); ours ask one peer at a time, rotating, with the STATE_REQ
         * they already use: a peer that has executed more answers with
         * the entries (and, past its stable checkpoint, the snapshot's
         * first chunk), one that has not says nothing. Only while our
         * execution has not moved for PBFT_IDLE_PROBE_HB heartbeats: one
         * signed message per replica per second at the defaults, none
         * under load. In a view change too: a replica alone in one (its
         * timer accused a primary the others still follow) runs no view,
         * so nothing else tells it of entries the others executed, and
         * executing certified entries does not depend on the view
         * (test_replica_alone_in_a_view_change_catches_up_in_an_idle_cluster). */
        uint64_t every = PBFT_IDLE_PROBE_HB * (uint64_t)p->cfg.heartbeat_ms;
        if (p->now >= p->progress_ms + every &&
            p->now >= p->idle_probe_ms + every) {
            p->idle_probe_ms = p->now;
            send_state_req(p);
        }
        return;
    }
    if (p->xin.seq > p->executed) {
        if (p->xin.n_got == p->xin.n_chunks)
            xin_install(p);   /* complete, but the install had to wait */
        else
            xin_tick(p);
        return;
    }
    if (p->xfer_ms && p->now < p->xfer_ms + 2 * p->cfg.heartbeat_ms)
        return;
    p->xfer_ms = p->now;
    send_state_req(p);
}

int pbft_on_state_req(pbft *p, uint32_t from, const sy_pbft_state_req *r)
{
    sy_msg m = { .type = SY_MSG_PBFT_STATE };
    sy_pbft_state *st = &m.u.pbft.state;
    sy_digest path[SY_CHUNKS_MAX_PATH];
    uint64_t base = r->have;
    bool last = true;
    if (r->have >= p->executed)
        return SY_OK;   /* it has all we have (an idle probe): nothing to say */
    if (r->have < p->h) {
        /* the snapshot it is fetching if we kept it (pbft_keep_h_snap),
         * else our stable checkpoint's */
        pbft_kept *k = r->have < r->seq ? pbft_kept_find(p, r->seq) : NULL;
        if (!k && !p->h_snap)
            return SY_ENOTFOUND;   /* no blob to serve (host used SY_IN_APPLIED) */
        if (!k && r->seq > p->h)
            return SY_ENOTFOUND;   /* it fetches a newer checkpoint than ours */
        uint64_t seq = k ? k->seq : p->h;
        const uint8_t *snap = k ? k->snap : p->h_snap;
        size_t snap_len = k ? k->len : p->h_snap_len;
        sy_digest **tree = k ? &k->tree : &p->h_tree;
        uint32_t *ntree = k ? &k->ntree : &p->h_ntree;
        if (!*tree) {
            int rc = sy_chunks_tree(snap, snap_len, p->chunk, tree, ntree);
            if (rc)
                return rc;
        }
        /* a requester fetching another checkpoint starts ours from 0 */
        uint32_t idx = r->seq == seq && r->chunk < *ntree ? r->chunk : 0;
        size_t off = (size_t)idx * p->chunk;
        size_t len = snap_len - off < p->chunk ? snap_len - off : p->chunk;
        if (k)
            st->ckpt = (sy_pbft_ckproof){ .seq = seq, .digest = k->d, .n_sigs = k->nsigs,
                                          .sigs = k->sigs };
        else
            st->ckpt = (sy_pbft_ckproof){ .seq = seq, .digest = p->h_digest,
                                          .n_sigs = p->h_nsigs, .sigs = p->h_sigs };
        st->snapshot = (sy_bytes){ snap + off, (uint32_t)len };
        st->snap_len = snap_len;
        st->chunk = idx;
        sy_chunks_path(*tree, *ntree, idx, path, &st->n_path);
        st->path = path;
        /* what `from` fetches now: kept while it does */
        p->fetch_seq[from] = seq;
        p->fetch_ms[from] = p->now ? p->now : 1;
        /* above a kept checkpoint our log has nothing (it starts at h):
         * the fetcher asks again once it has installed it */
        base = seq;
        last = idx + 1 == *ntree;
    }
    sy_pbft_centry *ents = last ? calloc(SY_PBFT_MAX_STATE_ENTRIES, sizeof *ents) : NULL;
    if (last && !ents)
        return SY_ENOMEM;
    /* everything must fit one envelope: the chunk, its path, and each
     * entry's batch with its commit certificate (~70 bytes a signature) */
    size_t bytes = st->snapshot.len + st->n_path * (SY_DIGEST_LEN + 2u), entry;
    uint32_t n = 0;
    for (uint64_t seq = base + 1; last && seq <= p->executed && n < SY_PBFT_MAX_STATE_ENTRIES;
         seq++) {
        pbft_slot *s = pbft_slot_get(p, seq);
        if (!s || !s->committed || !s->have_batch || s->ccert_n < p->q)
            break;
        entry = s->batch_len + 64u + (size_t)s->ccert_n * (SY_SIG_LEN + 8u);
        if (bytes + entry > PBFT_STATE_BYTES_MAX)
            break;
        bytes += entry;
        ents[n++] = (sy_pbft_centry){ .view = s->ccert_view, .seq = seq, .digest = s->d,
                                      .batch = { s->batch, (uint32_t)s->batch_len },
                                      .n_commits = s->ccert_n, .commits = s->ccert };
    }
    st->n_entries = n;
    st->entries = ents;
    uint8_t *lie = NULL;
    if (pbft_behaves(p, SY_PBFT_BAD_STATE) && (n || st->snap_len)) {
        /* a replica serving state with a lie in it, in one of four places:
         * a chunk's bytes, its audit path, the blob's length, an entry's
         * batch (its commit certificate then covers another digest) */
        uint32_t what = (uint32_t)sy_rng_below(&p->rng, 4);
        if (what == 0 && st->snapshot.len && (lie = malloc(st->snapshot.len))) {
            memcpy(lie, st->snapshot.p, st->snapshot.len);
            lie[sy_rng_below(&p->rng, st->snapshot.len)] ^= 0x20;
            st->snapshot.p = lie;
        } else if (what == 1 && st->n_path) {
            path[sy_rng_below(&p->rng, st->n_path)].b[0] ^= 0x01;
        } else if (what == 2 && st->snap_len) {
            st->snap_len += 1 + sy_rng_below(&p->rng, p->chunk);
        } else if (n && ents[0].batch.len && (lie = malloc(ents[0].batch.len))) {
            memcpy(lie, ents[0].batch.p, ents[0].batch.len);
            lie[0] ^= 0x01;
            ents[0].batch.p = lie;
        }
    }
    int rc = SY_OK;
    if (n || st->snap_len)
        rc = pbft_send(p, from, &m);
    free(lie);
    free(ents);
    return rc;
}

static bool centry_valid(pbft *p, const sy_pbft_centry *e)
{
    sy_digest d;
    if (e->batch.len == 0) {
        if (!pbft_digest_is_null(&e->digest))
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

static int bad_state(pbft *p, uint32_t from)
{
    /* corrupt or forged state: count it and ask another replica now -- if
     * it came from the one we are asking (anyone else's lie changes
     * nothing we do) */
    p->xfer_bad++;
    if (p->xin.seq > p->executed) {
        if (from == p->xin.peer)
            p->xin.rotate = true;
    } else if (from == p->xfer_peer) {
        p->xfer_ms = 0;
    }
    return SY_ECORRUPT;
}

/* Installs the assembled snapshot (every chunk checked on arrival against
 * the proven digest): the host replaces its state with it in the next
 * ready. SY_EFULL when applies are pending in this ready: the tick tries
 * again (pbft_maybe_fetch_state). */
static int xin_install(pbft *p)
{
    if (p->n_comm || p->install || p->ckpt_index)
        return SY_EFULL;   /* applies, or a checkpoint's snapshot (one a
                              restart asks for has no applies with it),
                              pending in this ready: install later */
    size_t len = (size_t)p->xin.len;
    uint8_t *keep = malloc(len ? len : 1);
    if (!keep)
        return SY_ENOMEM;
    memcpy(keep, p->xin.buf, len);
    uint64_t seq = p->xin.seq;
    sy_digest d = p->xin.d;
    sy_pbft_sig sigs[SY_MAX_NODES];
    uint32_t nsigs = p->xin.nsigs;
    memcpy(sigs, p->xin.sigs, nsigs * sizeof *sigs);
    uint32_t peer = p->xin.peer;
    p->install = true;
    p->install_index = seq;
    p->install_data = p->xin.buf;
    p->install_len = len;
    p->install_pending = p->xin.buf;
    p->xin.buf = NULL;
    pbft_xin_clear(p);
    /* the snapshot holds the host's client table, not ours: until the
     * host hands us its sessions (SY_IN_SESSIONS), clients we have no
     * record of do not start our view-change timer */
    p->clients_partial = true;
    p->partial_at = seq;
    /* what we proposed at or below the installed checkpoint was either
     * executed in it or is gone: a retransmission may be ordered again
     * (a primary that jumped past its own proposal ignored every
     * retransmission of it as "already ordered in this view", and the
     * backups' forwards with it: sim seed 1602, pbft, faults all) */
    for (uint32_t i = 0; i < p->cap_clients; i++)
        p->clients[i].proposed = 0;
    p->executed = seq;
    p->progress_ms = p->now;
    pbft_stabilize(p, seq, &d, sigs, nsigs);
    pbft_set_h_snap(p, keep, len);
    p->hs_dirty = true;
    /* the entries above the checkpoint ride on the snapshot's last chunk,
     * which need not be the one that completed it: ask for them now. In an
     * idle cluster nothing else would (seen in the integration suite: a
     * replica resumed after SIGSTOP installed checkpoint 928 and stayed
     * there while the others were at 941) */
    p->xfer_ms = p->now;
    send_state_req_to(p, peer, 0);
    return SY_OK;
}

int pbft_on_sessions(pbft *p, uint64_t index, const sy_session_rec *recs, size_t n)
{
    /* Castro & Liskov keep the last reply to each client in the checkpointed
     * state (TOCS 2002, 4.1); ours is the host's session table, so after an
     * install the host hands us what it holds and our table is whole again:
     * a request from a client we now know is new exactly when its req_no
     * is above the session's, and is watched like any other. */
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].client_id)
            continue;   /* 0 marks a free slot in our table; no client has it */
        pbft_client *c = pbft_client_get(p, recs[i].client_id, true);
        if (!c)
            return SY_ENOMEM;   /* still partial: the old caution stays */
        if (recs[i].req_no > c->executed)
            c->executed = recs[i].req_no;
    }
    /* requests we were watching that the installed state executed: their
     * batches never pass through our execute, so nothing else would ever
     * stop the timer on them */
    for (uint32_t w = 0; w < p->n_waiting; w++) {
        pbft_client *c = pbft_client_get(p, p->waiting[w].client, false);
        if (c && p->waiting[w].req_no <= c->executed) {
            pbft_waiting_drop(p, w);
            w--;
        }
    }
    if (p->clients_partial && index >= p->partial_at)
        p->clients_partial = false;
    pbft_reset_timer(p);
    return SY_OK;
}

/* One chunk of a stable checkpoint's snapshot. The proof is checked once
 * per checkpoint (then the digest it proves is kept), every chunk against
 * that digest by its audit path before it is kept, so a replica that sends
 * anything else is caught at the chunk, not after the whole blob. */
static int on_chunk(pbft *p, uint32_t from, const sy_pbft_state *st)
{
    bool same = p->xin.seq == st->ckpt.seq && sy_digest_eq(&p->xin.d, &st->ckpt.digest);
    bool fetching = p->xin.seq > p->executed;
    if (!same && p->xin.seq > st->ckpt.seq)
        return SY_ESTALE;   /* older than the one we are assembling */
    if (!same && fetching && from != p->xin.peer)
        return SY_ESTALE;   /* an answer to a probe: it does not move our fetch */
    if (!same && !pbft_ckproof_valid(p, &st->ckpt))
        return bad_state(p, from);
    if (!sy_chunks_verify(&st->ckpt.digest, st->snap_len, p->chunk, st->chunk, st->snapshot.p,
                          st->snapshot.len, st->path, st->n_path))
        return bad_state(p, from);
    if (!same && fetching && p->xin.n_got) {
        /* The replica we ask no longer holds our checkpoint (we moved to
         * it after a stall; the one that served us keeps it while we
         * fetch, pbft_keep_h_snap). What we have is worth more than a
         * fresh start while some replica may still hold it: ask the next
         * one that has not said otherwise, and start over on the newer
         * checkpoint only when every replica has said so or stayed silent
         * through two stalls (xin_tick). Under a bandwidth limit
         * a stall is no proof that the server is gone, and a restart at
         * every stall never finished (test_a_fetch_slower_than_a_
         * checkpoint_interval_completes, the variant with probes). */
        p->xin.lacks |= 1ull << from;
        uint64_t all = 0;
        for (uint32_t i = 0; i < p->n; i++)
            if (i != p->self)
                all |= 1ull << i;
        if ((p->xin.lacks & all) != all) {
            xin_rotate(p);
            return SY_OK;
        }
    }
    if (!same) {
        /* a newer stable checkpoint: what we had of an older one is no use */
        uint32_t nc = sy_chunks_count(st->snap_len, p->chunk);
        pbft_xin_clear(p);
        p->xin.buf = malloc(st->snap_len ? (size_t)st->snap_len : 1);
        p->xin.got = calloc(nc, sizeof *p->xin.got);
        p->xin.ask_ms = calloc(nc, sizeof *p->xin.ask_ms);
        if (!p->xin.buf || !p->xin.got || !p->xin.ask_ms) {
            pbft_xin_clear(p);
            return SY_ENOMEM;
        }
        p->xin.seq = st->ckpt.seq;
        p->xin.d = st->ckpt.digest;
        p->xin.len = st->snap_len;
        p->xin.n_chunks = nc;
        p->xin.peer = from;   /* it answers: ask it for the rest */
        p->xin.rx_ms = p->now;
        p->xin.nsigs = st->ckpt.n_sigs < p->n ? st->ckpt.n_sigs : p->n;
        memcpy(p->xin.sigs, st->ckpt.sigs, p->xin.nsigs * sizeof *p->xin.sigs);
    }
    if (from == p->xin.peer)
        p->xin.rx_ms = p->now;   /* it serves */
    if (p->xin.got[st->chunk])
        return SY_OK;   /* a duplicate: asks for nothing more */
    memcpy(p->xin.buf + (size_t)st->chunk * p->chunk, st->snapshot.p, st->snapshot.len);
    p->xin.got[st->chunk] = true;
    p->xin.n_got++;
    if (p->xin.ask_ms[st->chunk]) {
        p->xin.ask_ms[st->chunk] = 0;
        p->xin.inflight--;
    }
    p->progress_ms = p->now;
    if (p->xin.n_got < p->xin.n_chunks) {
        xin_top_up(p);
        return SY_OK;
    }
    return xin_install(p);
}

int pbft_on_state(pbft *p, uint32_t from, const sy_pbft_state *st)
{
    if (st->ckpt.seq > p->executed && st->snap_len) {
        int rc = on_chunk(p, from, st);
        if (rc)
            return rc;
        if (p->xin.seq)
            return SY_OK;   /* more chunks to come; entries ride on the last */
    }
    /* Each commit certificate is 2f+1 verified statements made in its
     * view: what a replica that missed a view change (away, or restarted
     * with the old view on disk) learns of the view the others run, in an
     * idle cluster where no normal-case message would tell it. Noted once
     * the entries are in (pbft_follow_higher_views may start a view
     * change: its VIEW-CHANGE makes the new primary repeat its NEW-VIEW). */
    uint64_t cert_view[SY_MAX_NODES] = { 0 };
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
            return bad_state(p, from);
        for (uint32_t k = 0; k < e->n_commits; k++)
            if (e->view > cert_view[e->commits[k].replica])
                cert_view[e->commits[k].replica] = e->view;
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
        if (!s->have_pp || s->pp_view != e->view || !sy_digest_eq(&s->d, &e->digest))
            s->pp_signed = false;   /* no pre-prepare of ours for this (view, digest) */
        /* votes that came before any pre-prepare of this view are counted
         * now, as when the pre-prepare arrives (pbft_dissent_scan) */
        bool fresh_view = !s->have_pp || s->pp_view != e->view;
        s->have_pp = true;
        s->pp_view = e->view;
        s->d = e->digest;
        if (fresh_view)
            pbft_dissent_scan(p, s);
        s->prepared = s->committed = true;
        s->ccert_view = e->view;
        s->ccert_n = e->n_commits < p->n ? e->n_commits : p->n;
        memcpy(s->ccert, e->commits, s->ccert_n * sizeof *s->ccert);
        if (e->seq > p->last_pp)
            p->last_pp = e->seq;
        next++;
    }
    int rc = pbft_execute(p);
    for (uint32_t r = 0; r < p->n; r++)
        if (cert_view[r] && r != p->self)
            pbft_note_peer_view(p, r, cert_view[r]);
    return rc;
}
