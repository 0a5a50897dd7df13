/* Multi-Paxos engine: durable state, the log, the input dispatcher and the
 * Ready/Advance effect cycle.
 *
 * Invariants kept here:
 *  - persist-before-send (Paxos Made Simple 2.3 "an acceptor must remember
 *    ... even if it fails and restarts"): a change of the promised ballot or
 *    of an accepted (ballot, slot, value) is handed out in the same ready as
 *    every message that depends on it; core/engine.h makes the host persist
 *    before it sends;
 *  - the log at or below the commit index holds only chosen values, so
 *    rd.committed (slot order, PMMC 3 "Replicas": decisions applied in slot
 *    order) reports exactly the decided sequence, and only entries already
 *    handed out in this or an earlier ready;
 *  - slots are never rewritten at or below commit. */
#include <stdlib.h>
#include <string.h>
#include "cft/paxos/paxos.h"
#include "crypto/sy_err.h"

/* ---------------------------------------------------------- hardstate */

static void put64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void px_hs_encode(const px_hardstate *hs, uint8_t out[PX_HS_LEN])
{
    out[0] = PX_HS_VERSION;
    put64le(out + 1, hs->promised);
    put64le(out + 9, hs->commit);
}

int px_hs_decode(sy_bytes b, px_hardstate *out)
{
    out->promised = 0;
    out->commit = 0;
    if (b.len == 0)
        return SY_OK;
    if (b.len != PX_HS_LEN)
        return SY_ECORRUPT;
    if (b.p[0] != PX_HS_VERSION)
        return SY_EVERSION;
    out->promised = get64le(b.p + 1);
    out->commit = get64le(b.p + 9);
    return SY_OK;
}

/* ---------------------------------------------------------- utilities */

int px_defer_free(paxos *p, void *ptr)
{
    if (sy_outbox_defer_free(&p->out, ptr)) {
        p->dropped++;   /* the caller frees it, or leaks it rather than leave it dangling */
        return SY_ENOMEM;
    }
    return SY_OK;
}

sy_msg *px_send(paxos *p, uint32_t to, uint8_t type)
{
    return sy_outbox_msg(&p->out, to, type);
}

int px_reject(paxos *p, uint32_t client_id, uint64_t req_no, int status, uint32_t hint)
{
    return sy_outbox_reject(&p->out, client_id, req_no, status, hint);
}

int px_read_state(paxos *p, uint64_t read_id, uint64_t index, int status)
{
    return sy_outbox_read(&p->out, read_id, index, status);
}

void px_reset_election(paxos *p, bool backoff)
{
    uint32_t lo = p->cfg.election_min_ms, hi = p->cfg.election_max_ms;
    uint64_t d = sy_rng_range(&p->rng, lo, hi - 1);
    /* Dueling proposers (Paxos Made Simple 3, "progress"): a proposer that
     * lost a ballot race also waits a random extra fraction, so the next
     * attempts spread out and one gets through. */
    if (backoff)
        d += sy_rng_below(&p->rng, (uint64_t)(hi - lo) + 1);
    p->election_deadline = p->now + d;
}

void px_see_ballot(paxos *p, uint64_t b)
{
    if (b > p->max_seen)
        p->max_seen = b;
}

void px_promise(paxos *p, uint64_t b)
{
    if (b > p->promised) {
        p->promised = b;
        p->hs_dirty = true;
        p->known_chosen = 0;   /* the old leader's chosen prefix says nothing in b */
        p->rejoin_commit = 0;
    }
    px_see_ballot(p, b);
}

/* ---------------------------------------------------------- log */

static int log_reserve(paxos *p, size_t need)
{
    if (need <= p->cap_ents)
        return SY_OK;
    size_t nc = p->cap_ents ? p->cap_ents : 64;
    while (nc < need)
        nc *= 2;
    sy_entry *ne = realloc(p->ents, nc * sizeof *ne);
    if (!ne)
        return SY_ENOMEM;
    p->ents = ne;
    px_meta *nm = realloc(p->meta, nc * sizeof *nm);
    if (!nm)
        return SY_ENOMEM;
    p->meta = nm;
    p->cap_ents = nc;
    return SY_OK;
}

int px_log_put(paxos *p, uint64_t slot, uint64_t ballot, uint8_t type, const uint8_t *data,
               uint32_t len, bool owned)
{
    if (slot < p->log_start || slot <= p->commit)
        return SY_EINVAL;
    uint64_t last = px_last(p);
    if (slot > last) {
        uint64_t gap = slot - last;  /* placeholders + the slot itself */
        if (gap > SY_MAX_ENTRIES_PER_MSG * 16ull)
            return SY_ETOOBIG;       /* a slot that far ahead is no real proposal */
        if (log_reserve(p, p->n_ents + gap))
            return SY_ENOMEM;
    }
    uint8_t *copy = NULL;
    if (owned) {
        copy = (uint8_t *)data;
    } else if (len) {
        copy = malloc(len);
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, data, len);
    }
    if (slot > last) {
        for (uint64_t s = last + 1; s < slot; s++) {
            sy_entry *e = &p->ents[p->n_ents];
            memset(e, 0, sizeof *e);
            e->index = s;
            e->type = SY_ENTRY_NOOP;
            memset(&p->meta[p->n_ents], 0, sizeof(px_meta));
            p->n_ents++;
        }
        p->n_ents++;
        if (p->unstable_from > last + 1)
            p->unstable_from = last + 1;
    } else {
        px_defer_free(p, (void *)px_ent(p, slot)->data.p);
        if (p->unstable_from > slot)
            p->unstable_from = slot;
    }
    sy_entry *e = px_ent(p, slot);
    e->index = slot;
    e->term = ballot;
    e->type = type;
    e->data.p = copy;
    e->data.len = len;
    memset(px_meta_of(p, slot), 0, sizeof(px_meta));
    return SY_OK;
}

int px_slice(paxos *p, uint64_t lo, uint64_t hi, sy_entry **out, uint32_t *n)
{
    *out = NULL;
    *n = 0;
    if (lo < p->log_start)
        lo = p->log_start;
    if (hi > px_last(p))
        hi = px_last(p);
    if (lo > hi)
        return SY_OK;
    uint64_t cnt = hi - lo + 1;
    if (cnt > p->cfg.msg_entries_max)
        cnt = p->cfg.msg_entries_max;
    uint64_t bytes = 0;
    uint64_t k = 0;
    for (; k < cnt; k++) {
        uint32_t l = px_ent(p, lo + k)->data.len;
        if (k > 0 && bytes + l > SY_PAXOS_MSG_BYTES)
            break;
        bytes += l;
    }
    sy_entry *e = malloc(k * sizeof *e);
    if (!e)
        return SY_ENOMEM;
    if (px_defer_free(p, e)) {
        free(e);
        return SY_ENOMEM;
    }
    memcpy(e, px_ent(p, lo), k * sizeof *e);
    *out = e;
    *n = (uint32_t)k;
    return SY_OK;
}

/* ---------------------------------------------------------- create */

static void cfg_defaults(sy_engine_cfg *c)
{
    if (!c->heartbeat_ms)
        c->heartbeat_ms = 100;
    if (!c->election_min_ms)
        c->election_min_ms = 10 * c->heartbeat_ms;
    if (c->election_max_ms <= c->election_min_ms)
        c->election_max_ms = 2 * c->election_min_ms;
    if (!c->batch_max || c->batch_max > SY_MAX_BATCH)
        c->batch_max = c->batch_max ? SY_MAX_BATCH : PX_DEFAULT_BATCH_MAX;
    if (!c->batch_bytes_max)
        c->batch_bytes_max = PX_DEFAULT_BATCH_BYTES;
    if (c->batch_bytes_max > SY_PAXOS_MSG_BYTES)
        c->batch_bytes_max = SY_PAXOS_MSG_BYTES;
    if (!c->max_inflight)
        c->max_inflight = PX_DEFAULT_INFLIGHT;
    if (c->max_inflight > PX_MAX_INFLIGHT)
        c->max_inflight = PX_MAX_INFLIGHT;
    if (!c->max_pending)
        c->max_pending = PX_DEFAULT_PENDING;
    if (!c->msg_entries_max || c->msg_entries_max > SY_MAX_ENTRIES_PER_MSG)
        c->msg_entries_max = SY_MAX_ENTRIES_PER_MSG;
}

static void px_free(paxos *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_ents; i++)
        free((void *)p->ents[i].data.p);
    sy_outbox_free(&p->out, NULL);   /* messages own nothing: entries are deferred */
    for (size_t i = 0; i < p->q_n; i++)
        free((void *)p->q[i].raw.p);
    for (size_t i = 0; i < p->n_pv; i++)
        free(p->pv[i].data);
    free(p->ents);
    free(p->meta);
    free(p->pv);
    free(p->snap_data);
    sy_buf_free(&p->in_snap);
    free(p->q);
    free(p->reads);
    free(p->committed);
    free(p);
}

static int px_create(const sy_engine_cfg *cfg, const sy_engine_boot *boot, void **out)
{
    if (!cfg || !out || cfg->n == 0 || cfg->n > SY_MAX_NODES || cfg->self >= cfg->n)
        return SY_EINVAL;
    paxos *p = calloc(1, sizeof *p);
    if (!p)
        return SY_ENOMEM;
    int rc = SY_ENOMEM;
    p->cfg = *cfg;
    cfg_defaults(&p->cfg);
    p->quorum = cfg->n / 2 + 1;
    sy_rng_seed(&p->rng, cfg->rng_seed);
    sy_buf_init(&p->in_snap);
    p->self_lo = 1;   /* none pending (see px_advance) */
    p->leader = SY_NO_NODE;
    p->xfer_to = SY_NO_NODE;
    p->role = PX_FOLLOWER;

    sy_engine_boot empty;
    memset(&empty, 0, sizeof empty);
    if (!boot)
        boot = &empty;
    px_hardstate hs;
    rc = px_hs_decode(boot->hardstate, &hs);
    if (rc)
        goto err_free_paxos;
    if (hs.promised > SY_INDEX_MAX || hs.commit > SY_INDEX_MAX ||
        boot->snap_index > SY_INDEX_MAX || boot->snap_term > SY_INDEX_MAX ||
        boot->applied > SY_INDEX_MAX) {
        rc = SY_ECORRUPT;
        goto err_free_paxos;
    }
    p->promised = hs.promised;
    p->max_seen = hs.promised;
    p->snap_index = boot->snap_index;
    p->snap_term = boot->snap_term;
    p->log_start = boot->snap_index + 1;
    p->commit = boot->snap_index;
    if (boot->snap_data.len) {
        p->snap_data = malloc(boot->snap_data.len);
        if (!p->snap_data) {
            rc = SY_ENOMEM;
            goto err_free_paxos;
        }
        memcpy(p->snap_data, boot->snap_data.p, boot->snap_data.len);
        p->snap_len = boot->snap_data.len;
    }
    /* Accepted values survive restart: the log is the acceptor's memory. */
    for (size_t i = 0; i < boot->n_entries; i++) {
        const sy_entry *e = &boot->entries[i];
        if (e->index <= p->snap_index)
            continue;
        if (e->index != px_last(p) + 1) {
            rc = SY_ECORRUPT;
            goto err_free_paxos;
        }
        px_see_ballot(p, e->term);
        if (e->term != 0 && !px_val_ok(e)) {
            rc = SY_ECORRUPT;
            goto err_free_paxos;
        }
        if ((rc = px_log_put(p, e->index, e->term, e->type, e->data.p, e->data.len, false)))
            goto err_free_paxos;
    }
    p->unstable_from = UINT64_MAX;
    uint64_t c = hs.commit > p->snap_index ? hs.commit : p->snap_index;
    if (boot->applied > c)
        c = boot->applied;
    if (c > px_last(p) && c > p->snap_index) {
        rc = SY_ECORRUPT;
        goto err_free_paxos;
    }
    for (uint64_t s = p->log_start; s <= c; s++)
        if (px_ent(p, s)->term == 0) {
            rc = SY_ECORRUPT;   /* a placeholder can never be chosen */
            goto err_free_paxos;
        }
    p->commit = c;
    p->hs_commit = c;
    p->reported = boot->applied > p->snap_index ? boot->applied : p->snap_index;
    p->next_slot = px_last(p) + 1;
    p->rejoining = cfg->rejoin && cfg->n > 1;
#ifdef SYNOD_TESTING
    if (cfg->test_behaviour == SY_PAXOS_MUTANT_FORGET_REJOIN)
        p->rejoining = false;   /* planted bug (paxos.h) */
#endif
    *out = p;
    return SY_OK;

err_free_paxos:
    px_free(p);
    return rc;
}

static void px_destroy(void *e)
{
    px_free(e);
}

/* ---------------------------------------------------------- step */

static int step_msg(paxos *p, uint32_t from, const sy_msg *m)
{
    if (from >= p->cfg.n || from == p->cfg.self)
        return SY_EINVAL;
    const sy_paxos_body *b = &m->u.paxos;
    switch (m->type) {
    case SY_MSG_PAXOS_PREPARE: return px_recv_prepare(p, from, &b->prepare);
    case SY_MSG_PAXOS_PROMISE: return px_recv_promise(p, from, &b->promise);
    case SY_MSG_PAXOS_ACCEPT: return px_recv_accept(p, from, &b->accept);
    case SY_MSG_PAXOS_ACCEPTED: return px_recv_accepted(p, from, &b->accepted);
    case SY_MSG_PAXOS_CHOSEN: return px_recv_chosen(p, from, &b->chosen);
    case SY_MSG_PAXOS_LEARN: return px_recv_learn(p, from, &b->learn);
    case SY_MSG_PAXOS_SNAPSHOT: return px_recv_snapshot(p, from, &b->snap);
    case SY_MSG_PAXOS_SNAPSHOT_ACK: return px_recv_snapshot_ack(p, from, &b->snap_ack);
    case SY_MSG_PAXOS_TAKEOVER: return px_recv_takeover(p, from, &b->takeover);
    default: return SY_EMSGTYPE;
    }
}

static int step_tick(paxos *p)
{
    if (p->role == PX_LEADER)
        return px_leader_tick(p);
    if (p->now >= p->election_deadline)
        return px_campaign(p);
    return SY_OK;
}

static int px_step(void *e, const sy_input *in)
{
    paxos *p = e;
    if (in->now_ms > p->now)
        p->now = in->now_ms;
    if (!p->armed) {
        p->armed = true;
        px_reset_election(p, false);
        p->rejoin_after = p->now + sy_rejoin_wait_ms(&p->cfg);
    }
    /* rejoining: deaf at first (px_rejoin_check) */
    if (p->rejoining && in->kind == SY_IN_MSG && p->now < p->rejoin_after)
        return SY_OK;
    int rc;
    switch (in->kind) {
    case SY_IN_TICK: rc = step_tick(p); break;
    case SY_IN_MSG:
        rc = in->u.msg.msg ? step_msg(p, in->u.msg.from, in->u.msg.msg) : SY_EINVAL;
        break;
    case SY_IN_REQUEST: rc = px_on_request(p, in); break;
    case SY_IN_READ: rc = px_on_read(p, in->u.read.read_id); break;
    case SY_IN_SNAPSHOT:
        rc = px_on_snapshot(p, in->u.snapshot.index, in->u.snapshot.term, in->u.snapshot.data);
        break;
    case SY_IN_APPLIED: rc = SY_OK; break;   /* PBFT's; nothing to do here */
    case SY_IN_SESSIONS: rc = SY_OK; break;
    case SY_IN_TRANSFER: rc = px_on_transfer(p, in->u.transfer.target); break;
    default: rc = SY_EINVAL; break;          /* conf change: unsupported */
    }
    if (rc != SY_OK && rc != SY_EFATAL)
        p->dropped++;
    return rc;
}

/* ---------------------------------------------------------- ready */

static void fill_members(const paxos *p, sy_members *m)
{
    memset(m, 0, sizeof *m);
    m->n_voters = p->cfg.n;
    for (uint32_t i = 0; i < p->cfg.n; i++)
        m->voters[i] = i;
}

static void px_ready(void *e, sy_ready *rd)
{
    paxos *p = e;
    memset(rd, 0, sizeof *rd);
    uint64_t last = px_last(p);
    /* 1. what this ready makes durable */
    if (p->unstable_from < p->log_start)
        p->unstable_from = p->log_start;
    uint64_t lo = p->unstable_from, hi = last;
    if (p->role == PX_LEADER && px_leader_flush(p) != SY_OK)
        p->dropped++;
    last = px_last(p);
    if (p->unstable_from < lo)
        lo = p->unstable_from;
    hi = last;
    p->self_lo = 1;
    p->self_hi = 0;
    if (lo <= hi) {
        rd->entries = px_ent(p, lo);
        rd->n_entries = hi - lo + 1;
        if (p->role == PX_LEADER) {
            p->self_lo = lo;
            p->self_hi = hi;
        }
    }
    p->unstable_from = UINT64_MAX;
    px_rejoin_at_ready(p);
    /* The leader's ACCEPTs leave before this ready's durable write, in
     * parallel with it, as Raft's AppendEntries do (thesis 10.2.1): the
     * leader counts its own acceptance of these slots only after advance()
     * (px_advance), so nothing is chosen on the strength of a write that a
     * crash could undo. Not while the promise itself is being written:
     * ACCEPTs under a ballot go out only once its promise is durable. A
     * leader that crashes before its write never proposes under that
     * ballot again -- it must win phase 1 with a higher one. */
    size_t m0 = p->out.n_msgs;
    if (p->role == PX_LEADER && px_leader_emit(p) != SY_OK)
        p->dropped++;
    if (p->role == PX_LEADER && !p->hs_dirty)
        for (size_t i = m0; i < p->out.n_msgs; i++)
            if (p->out.msgs[i].msg.type == SY_MSG_PAXOS_ACCEPT)
                p->out.msgs[i].early = true;

    /* Only the commit point moved: lazy (core/engine.h). The promise is
     * what must never be forgotten; a lost commit point is learnt again. */
    bool commit_only = !p->hs_dirty && p->commit != p->hs_commit;
    if (p->commit != p->hs_commit)
        p->hs_dirty = true;
    if (p->hs_dirty) {
        rd->hardstate_lazy = commit_only;
        px_hardstate hs = { p->promised, p->commit };
        px_hs_encode(&hs, p->hs_buf);
        p->hs_commit = p->commit;
        rd->hardstate_dirty = true;
        rd->hardstate.p = p->hs_buf;
        rd->hardstate.len = PX_HS_LEN;
        p->hs_dirty = false;
    }
    if (p->snap_install || p->snap_meta) {
        rd->snapshot_install = p->snap_install;
        rd->snap_index = p->snap_index;
        rd->snap_term = p->snap_term;
        fill_members(p, &rd->snap_members);
        if (p->snap_install) {
            rd->snap_data.p = p->snap_data;
            rd->snap_data.len = p->snap_len;
        }
        p->snap_install = p->snap_meta = false;
    }
    rd->compact_to = p->compact_to;
    p->compact_to = 0;

    /* 3. commits in slot order, all durable by this ready's step 1 */
    if (p->commit > p->reported) {
        size_t n = p->commit - p->reported;
        if (sy_grow((void **)&p->committed, &p->cap_committed, n, sizeof(sy_committed)) == SY_OK) {
            for (size_t i = 0; i < n; i++) {
                uint64_t s = p->reported + 1 + i;
                sy_committed *c = &p->committed[i];
                const sy_entry *le = px_ent(p, s);
                c->entry.index = s;
                c->entry.term = px_val_origin(le);
                c->entry.type = le->type;
                c->entry.data.p = le->data.p + PX_VAL_HDR;
                c->entry.data.len = le->data.len - PX_VAL_HDR;
                /* signed by the host, off the ack's and reply's path (core/engine.h) */
                c->evidence = (sy_bytes){NULL, 0};
                c->attest = "SYPX";
                if (p->role == PX_LEADER) {
                    uint32_t k = px_meta_of(p, s)->nreq;
                    p->inflight_reqs = p->inflight_reqs > k ? p->inflight_reqs - k : 0;
                }
            }
            rd->committed = p->committed;
            rd->n_committed = n;
            p->reported = p->commit;
        }
    }
    sy_outbox_hand_out(&p->out, rd);
}

static void px_advance(void *e, uint64_t now_ms)
{
    paxos *p = e;
    if (now_ms > p->now)
        p->now = now_ms;
    sy_outbox_release(&p->out, NULL);
    /* the last ready is durable: the leader's own acceptance counts now */
    if (p->self_lo <= p->self_hi && p->role == PX_LEADER)
        px_leader_self_ack(p, p->self_lo, p->self_hi);
    p->self_lo = 1;
    p->self_hi = 0;
    px_rejoin_check(p);
}

/* Rejoining after a replaced disk (cfg.rejoin): the acceptor has forgotten
 * its promises and the values it accepted, so a phase 1 answered by it and
 * by nodes that lack a chosen value would not learn that value, and the
 * slot could be chosen again with another. Paxos Made Live (Chandra et
 * al., 2007, 5.1) has the rule for this: take part without promising until
 * a decision made without you has been seen. As the Raft engine does
 * (raft_rejoin_check, which gives the reasons at length):
 *  - deaf (drops every message) until rejoin_after: a phase 1 its old self
 *    promised in has ended, and a leader its old self kept in office has
 *    lost its quorum and stepped down (check-quorum, required by the host);
 *  - then it accepts and learns but promises nothing (probes included),
 *    runs no phase 1 and ignores TAKEOVER;
 *  - it promises again once it durably holds the chosen prefix up to
 *    rejoin_commit, the chosen prefix the leader of its promised ballot b
 *    announced in an ACCEPT (the leader's own, uncapped), and the value in
 *    that slot was first proposed in b (its origin, paxos.h). Such a slot
 *    lies above every slot of a chosen prefix of before the leader took
 *    over -- every slot any node had executed, every write a client was
 *    told of: a promise majority reports each of those (the promisers
 *    exclude this node, which promises nothing), the takeover re-proposes
 *    them with their old origins and fills only the gaps, which therefore
 *    lie above them, with no-ops of b, and fresh values come after both
 *    (an idle leader proposes a no-op of b when its prefix ends in an
 *    older ballot's slot, px_leader_tick, so such a slot comes without a
 *    write).
 *    And as the ACCEPT left after this node started, everything executed
 *    before then is at or below it. (Not every slot *chosen* before: a
 *    value chosen above a gap that no node could execute yet may be lost
 *    with the forgotten acceptance, and its client retries it; found in
 *    review.) "Durably" is decided at ready() and applied at advance(), as
 *    in raft_rejoin_at_ready and for the same reason.
 * The deaf period assumes bounded message delays and pauses (see the Raft
 * engine and docs/operations.md). */
bool px_origin_at(const paxos *p, uint64_t slot, uint64_t *origin)
{
    if (slot >= p->log_start && slot <= px_last(p)) {
        const sy_entry *e = &p->ents[slot - p->log_start];
        if (e->term == 0 || e->data.len < PX_VAL_HDR)
            return false;
        *origin = px_val_origin(e);
        return true;
    }
    if (slot == p->snap_index && slot > 0) {
        *origin = p->snap_term;   /* a snapshot's term is its last slot's origin */
        return true;
    }
    return false;
}

void px_rejoin_at_ready(paxos *p)
{
    uint64_t origin;
    p->rejoin_ready = p->rejoining && p->role == PX_FOLLOWER && p->leader != SY_NO_NODE &&
                      p->leader == px_ballot_node(p->promised) && p->rejoin_commit > 0 &&
                      p->commit >= p->rejoin_commit && !p->snap_install &&
                      px_origin_at(p, p->rejoin_commit, &origin) && origin == p->promised;
}

void px_rejoin_check(paxos *p)
{
    if (p->rejoin_ready && p->now >= p->rejoin_after)
        p->rejoining = false;
    p->rejoin_ready = false;
}

static void px_status(void *e, sy_engine_status *st)
{
    paxos *p = e;
    memset(st, 0, sizeof *st);
    st->role = p->role == PX_LEADER      ? SY_ROLE_LEADER
               : p->role == PX_CANDIDATE ? SY_ROLE_CANDIDATE
               : p->probing              ? SY_ROLE_PRECANDIDATE
                                         : SY_ROLE_FOLLOWER;
    st->term = p->promised;
    st->leader = p->leader;
    st->last_index = px_last(p);
    st->commit_index = p->commit;
    st->snap_index = p->snap_index;
    st->leader_changes = p->leader_changes;
    st->dropped = p->dropped + p->out.dropped;
    st->rejoining = p->rejoining;
}

static uint64_t px_next_deadline(void *e)
{
    paxos *p = e;
    if (!p->armed)
        return 1;
    if (p->role == PX_LEADER)
        return p->heartbeat_deadline;
    return p->election_deadline;
}

const sy_engine_ops sy_paxos_ops = {
    .name = "paxos",
    .create = px_create,
    .destroy = px_destroy,
    .step = px_step,
    .ready = px_ready,
    .advance = px_advance,
    .pipelined = true,
    .status = px_status,
    .next_deadline = px_next_deadline,
};
