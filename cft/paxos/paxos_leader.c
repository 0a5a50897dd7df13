/* Proposer / leader side: phase 1 once for all open slots, takeover,
 * phase 2 per slot with batching and a bounded pipeline, heartbeats,
 * catch-up, linearizable reads, client requests.
 *
 * Invariants:
 *  - ballots are (round, node) with round % SY_MAX_NODES == node, so two
 *    proposers never share a ballot (Paxos Made Simple 2.5) and a leader
 *    proposes at most one value per slot per ballot (PMMC 3 "Leaders");
 *  - phase 1 (Paxos Made Simple 3: "executes phase 1 for infinitely many
 *    instances" at once) covers every slot above the proposer's chosen
 *    prefix; only after a majority of complete promises does it propose;
 *  - takeover (PMMC "pmax"): for each slot reported by a promise the leader
 *    proposes the value with the highest ballot, adopts outright a value a
 *    promiser reported as chosen, and fills gaps up to the highest reported
 *    slot with no-ops, so a value that could have been chosen is never
 *    replaced;
 *  - a slot is chosen once a majority accepted it in the leader's ballot;
 *    the leader's own accept counts only once handed out in a ready;
 *  - reads: answered with the commit index only after (a) every takeover slot
 *    is chosen and (b) a majority acknowledged the leader's ballot in a
 *    round that started after the read arrived (docs/paxos.md). */
#include <stdlib.h>
#include <string.h>
#include "cft/paxos/paxos.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

static inline uint64_t bit(uint32_t id) { return 1ull << id; }

/* ---------------------------------------------------------- roles */

static void pv_clear(paxos *p)
{
    for (size_t i = 0; i < p->n_pv; i++)
        free(p->pv[i].data);
    p->n_pv = 0;
}

void px_become_follower(paxos *p, uint32_t leader)
{
    if (p->role == PX_LEADER) {
        uint32_t hint = leader;
        for (size_t k = 0; k < p->q_n; k++) {
            px_reject(p, p->q[k].client_id, p->q[k].req_no, SY_ENOTLEADER, hint);
            free((void *)p->q[k].raw.p);
        }
        p->q_n = 0;
        for (size_t k = 0; k < p->n_reads; k++)
            px_read_state(p, p->reads[k].read_id, 0, SY_ENOTLEADER);
        p->n_reads = 0;
        p->inflight_reqs = 0;
    }
    pv_clear(p);
    p->role = PX_FOLLOWER;
    p->leader = leader;
    p->probing = false;
    p->xfer_to = SY_NO_NODE;
}

static int pv_merge(paxos *p, const sy_entry *e, bool chosen)
{
    if (e->index < p->p1_from)
        return SY_OK;
    uint64_t i = e->index - p->p1_from;
    if (i >= p->n_pv) {
        if (sy_grow((void **)&p->pv, &p->cap_pv, i + 1, sizeof(px_pval)))
            return SY_ENOMEM;
        memset(p->pv + p->n_pv, 0, (i + 1 - p->n_pv) * sizeof(px_pval));
        p->n_pv = i + 1;
    }
    px_pval *v = &p->pv[i];
    if (v->chosen)
        return SY_OK;
    if (!chosen && e->term <= v->ballot)
        return SY_OK;
    uint8_t *copy = NULL;
    if (e->data.len) {
        copy = malloc(e->data.len);
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, e->data.p, e->data.len);
    }
    free(v->data);
    v->data = copy;
    v->len = e->data.len;
    v->type = e->type;
    v->ballot = e->term;
    v->chosen = chosen;
    return SY_OK;
}

static void leader_advance_commit(paxos *p)
{
    while (p->commit + 1 < p->next_slot && p->commit + 1 <= px_last(p) &&
           (uint32_t)__builtin_popcountll(px_meta_of(p, p->commit + 1)->acks) >= p->quorum)
        p->commit++;
}

/* ACCEPTs for slots [lo, hi] to one peer (to < n) or every peer (to ==
 * SY_NO_NODE), in messages bounded by px_slice. */
static int send_range(paxos *p, uint32_t to, uint64_t lo, uint64_t hi, uint64_t read_ctx)
{
    while (lo <= hi) {
        sy_entry *arr;
        uint32_t n;
        int rc = px_slice(p, lo, hi, &arr, &n);
        if (rc)
            return rc;
        if (n == 0)
            break;
        for (uint32_t i = 0; i < p->cfg.n; i++) {
            if (i == p->cfg.self || (to != SY_NO_NODE && i != to))
                continue;
            sy_msg *m = px_send(p, i, SY_MSG_PAXOS_ACCEPT);
            if (!m)
                return SY_ENOMEM;
            sy_paxos_accept *a = &m->u.paxos.accept;
            a->ballot = p->promised;
            a->chosen = p->commit;
            a->read_ctx = read_ctx;
            a->entries = arr;
            a->n_entries = n;
        }
        for (uint32_t k = 0; k < n; k++)
            px_meta_of(p, lo + k)->sent_ms = p->now;
        lo += n;
    }
    return SY_OK;
}

static int bcast_heartbeat(paxos *p, uint64_t read_ctx)
{
    for (uint32_t i = 0; i < p->cfg.n; i++) {
        if (i == p->cfg.self)
            continue;
        sy_msg *m = px_send(p, i, SY_MSG_PAXOS_ACCEPT);
        if (!m)
            return SY_ENOMEM;
        m->u.paxos.accept.ballot = p->promised;
        m->u.paxos.accept.chosen = p->commit;
        m->u.paxos.accept.read_ctx = read_ctx;
    }
    p->bcast_chosen = p->commit;
    return SY_OK;
}

static int put_noop(paxos *p, uint64_t slot, uint64_t b)
{
    uint8_t hdr[PX_VAL_HDR];
    px_val_put_origin(hdr, b);
    return px_log_put(p, slot, b, SY_ENTRY_NOOP, hdr, PX_VAL_HDR, false);
}

/* The value of a new slot: origin header, then the sy_batch_encode batch. */
static int encode_value(paxos *p, const sy_bytes *reqs, uint32_t n, uint8_t **out,
                        size_t *out_len)
{
    sy_buf b;
    msgpack_packer pk;
    uint8_t hdr[PX_VAL_HDR];
    sy_buf_init(&b);
    px_val_put_origin(hdr, p->promised);
    sy_buf_append(&b, hdr, sizeof hdr);
    sy_mp_writer_init(&pk, &b);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        sy_mp_put_bin(&pk, reqs[i].p, reqs[i].len);
    if (b.err) {
        int rc = b.err;
        sy_buf_free(&b);
        return rc;
    }
    *out = sy_buf_take(&b, out_len);
    return SY_OK;
}

static int become_leader(paxos *p)
{
    uint64_t b = p->promised;
    p->role = PX_LEADER;
    if (p->leader != p->cfg.self)
        p->leader_changes++;
    p->leader = p->cfg.self;
    p->xfer_to = SY_NO_NODE;
    p->xfer_skip = 0;
    /* Takeover: slots p1_from .. hi get the chosen value, the highest-ballot
     * value reported, or a no-op for a gap. Slots that became chosen here
     * meanwhile (CHOSEN during phase 1) are left as they are. */
    int rc = SY_OK;
    uint64_t hi = p->p1_from + p->n_pv - 1;
    for (size_t i = 0; i < p->n_pv && rc == SY_OK; i++) {
        uint64_t s = p->p1_from + i;
        px_pval *v = &p->pv[i];
        if (s <= p->commit || s < p->log_start)
            continue;
#ifdef SYNOD_TESTING
        /* planted bug (paxos.h SY_PAXOS_MUTANT_IGNORE_PROMISED_VALUES):
         * forget the reported value, so the slot gets a no-op below */
        if (p->cfg.test_behaviour == SY_PAXOS_MUTANT_IGNORE_PROMISED_VALUES && !v->chosen) {
            free(v->data);
            v->data = NULL;
            v->ballot = 0;
        }
#endif
        if (v->chosen)
            rc = px_log_put(p, s, v->ballot, v->type, v->data, v->len, true);
        else if (v->ballot)
            rc = px_log_put(p, s, b, v->type, v->data, v->len, true);
        else
            rc = put_noop(p, s, b);
        if (rc == SY_OK)
            v->data = NULL;
    }
    if (rc) {
        px_become_follower(p, SY_NO_NODE);
        return rc;
    }
    /* chosen values adopted from promises extend the prefix at once */
    while (p->commit + 1 >= p->p1_from && p->commit + 1 - p->p1_from < p->n_pv &&
           p->pv[p->commit + 1 - p->p1_from].chosen)
        p->commit++;
    pv_clear(p);
    if (hi < p->commit)
        hi = p->commit;
    p->takeover_hi = hi;
    p->next_slot = (px_last(p) > hi ? px_last(p) : hi) + 1;
    for (uint32_t i = 0; i < SY_MAX_NODES; i++) {
        px_peer *pr = &p->peers[i];
        pr->commit = 0;
        pr->read_ack = 0;
        pr->last_ack_ms = p->now;
        pr->heard = false;
        pr->chosen_sent = 0;
        pr->snap_index = 0;
    }
    p->hb_prev_commit = p->commit;
    p->heartbeat_deadline = p->now + p->cfg.heartbeat_ms;
    p->new_lo = 1;
    p->new_hi = 0;
    if (p->commit + 1 < p->next_slot)
        rc = send_range(p, SY_NO_NODE, p->commit + 1, p->next_slot - 1, 0);
    if (rc == SY_OK)
        rc = bcast_heartbeat(p, 0);   /* announce the leader and the prefix */
    return rc;
}

/* PREPARE (or, with probe, the pre-prepare question) to every other node. */
static int send_prepares(paxos *p, uint64_t ballot, uint64_t from_slot, bool probe)
{
    for (uint32_t i = 0; i < p->cfg.n; i++) {
        if (i == p->cfg.self)
            continue;
        sy_msg *m = px_send(p, i, SY_MSG_PAXOS_PREPARE);
        if (!m)
            return SY_ENOMEM;
        m->u.paxos.prepare.ballot = ballot;
        m->u.paxos.prepare.from_slot = from_slot;
        m->u.paxos.prepare.probe = probe;
    }
    return SY_OK;
}

static int campaign_now(paxos *p)
{
    uint64_t above = p->max_seen > p->promised ? p->max_seen : p->promised;
    uint64_t b = px_ballot_next(above, p->cfg.self);
    px_become_follower(p, SY_NO_NODE);
    p->role = PX_CANDIDATE;
    px_promise(p, b);
    p->p1_from = p->commit + 1;
    p->p1_done = bit(p->cfg.self);
    px_reset_election(p, false);   /* phase 1 not done by then: try again */
    /* our own promise: what this acceptor accepted from p1_from on */
    for (uint64_t s = p->p1_from; s >= p->log_start && s <= px_last(p); s++) {
        const sy_entry *e = px_ent(p, s);
        if (e->term == 0)
            continue;
        int rc = pv_merge(p, e, false);
        if (rc)
            return rc;
    }
    int rc = send_prepares(p, b, p->p1_from, false);
    if (rc)
        return rc;
    if ((uint32_t)__builtin_popcountll(p->p1_done) >= p->quorum)
        return become_leader(p);
    return SY_OK;
}

/* Pre-prepare: the Raft thesis's pre-vote (9.6) carried over to phase 1.
 * Before a node raises its ballot it asks every acceptor whether it would
 * promise a higher one; an acceptor says yes only when it has not heard
 * from a leader within the minimum election timeout, and the question
 * changes nothing at either end. Only with a majority of yeses does the
 * node run phase 1. A node cut off from the majority therefore never
 * raises its ballot, and when it comes back it cannot depose the healthy
 * leader with a ballot inflated while it was away (docs/paxos.md,
 * deviations). Safety is untouched: phase 1 and 2 are exactly as before,
 * only when phase 1 starts changes. */
static int probe(paxos *p)
{
    uint64_t above = p->max_seen > p->promised ? p->max_seen : p->promised;
    px_become_follower(p, SY_NO_NODE);
    p->probing = true;
    p->probe_ballot = px_ballot_next(above, p->cfg.self);
    p->probe_ok = bit(p->cfg.self);
    px_reset_election(p, false);   /* no majority by then: ask again */
    if ((uint32_t)__builtin_popcountll(p->probe_ok) >= p->quorum)
        return campaign_now(p);
    return send_prepares(p, p->probe_ballot, p->commit + 1, true);
}

int px_campaign(paxos *p)
{
    if (p->rejoining) {   /* px_rejoin_check: no phase 1 until caught up */
        px_reset_election(p, false);
        return SY_OK;
    }
    return p->cfg.prevote ? probe(p) : campaign_now(p);
}

/* The leader we follow hands over to us (px_on_transfer): phase 1 now. A
 * TAKEOVER from a ballot we have promised past is stale; one we have not
 * heard of yet is still its sender's own ballot (ballots name their
 * proposer), so it leads or led there. */
int px_recv_takeover(paxos *p, uint32_t from, const sy_paxos_takeover *m)
{
    if (px_ballot_node(m->ballot) != from)
        return SY_ESENDER;
    if (m->ballot < p->promised || p->role != PX_FOLLOWER || p->rejoining)
        return SY_OK;
    return campaign_now(p);
}

int px_recv_promise(paxos *p, uint32_t from, const sy_paxos_promise *m)
{
    px_see_ballot(p, m->promised);
    if (m->probe) {
        /* a yes to a ballot we have since promised past is stale */
        if (!p->probing || m->ballot != p->probe_ballot || !m->ok || p->probe_ballot <= p->promised)
            return SY_OK;
        p->probe_ok |= bit(from);
        if ((uint32_t)__builtin_popcountll(p->probe_ok) >= p->quorum)
            return campaign_now(p);
        return SY_OK;
    }
    if (p->role != PX_CANDIDATE || m->ballot != p->promised)
        return SY_OK;   /* stale: another round */
    if (!m->ok) {
        if (m->promised > p->promised) {
            px_become_follower(p, SY_NO_NODE);
            px_reset_election(p, true);
        }
        return SY_OK;
    }
    if (m->snap_index >= p->p1_from) {
        /* Slots we lack were chosen and compacted there: we cannot propose
         * for them without their values. Fetch the snapshot, retry later. */
        sy_msg *r = px_send(p, from, SY_MSG_PAXOS_LEARN);
        if (r)
            r->u.paxos.learn.from_slot = p->commit + 1;
        px_become_follower(p, SY_NO_NODE);
        px_reset_election(p, true);
        return SY_OK;
    }
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (!px_val_ok(&m->entries[i]))
            return SY_EINVAL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        int rc = pv_merge(p, &m->entries[i], m->entries[i].index <= m->commit);
        if (rc)
            return rc;
    }
    if (m->next_slot) {
        sy_msg *r = px_send(p, from, SY_MSG_PAXOS_PREPARE);
        if (!r)
            return SY_ENOMEM;
        r->u.paxos.prepare.ballot = p->promised;
        r->u.paxos.prepare.from_slot = m->next_slot;
        return SY_OK;
    }
    p->p1_done |= bit(from);
    if ((uint32_t)__builtin_popcountll(p->p1_done) >= p->quorum)
        return become_leader(p);
    return SY_OK;
}

/* ---------------------------------------------------------- phase 2 */

int px_recv_accepted(paxos *p, uint32_t from, const sy_paxos_accepted *m)
{
    px_see_ballot(p, m->promised);
    px_peer *pr = &p->peers[from];
    if (!m->ok) {
        if (m->promised > p->promised && p->role != PX_FOLLOWER) {
            /* preempted (PMMC "Preempted"): a higher ballot is out there */
            px_become_follower(p, SY_NO_NODE);
            px_reset_election(p, true);
        }
        return SY_OK;
    }
    /* The latest report wins, a lower one too: an acceptor restarted on an
     * empty disk (docs/operations.md, section 7) reports a shorter chosen
     * prefix than it once did, and only this lets the catch-up (below and
     * in px_leader_tick) start again from what it holds; kept as a maximum,
     * the leader would wait forever for it to learn values it never will.
     * A report that arrives out of order costs at most one catch-up that
     * was not needed. */
    pr->commit = m->commit;
    bool catching_up = pr->chosen_sent && m->commit >= pr->chosen_sent;
    if (catching_up)
        pr->chosen_sent = 0;
    if (p->role == PX_LEADER && m->ballot == p->promised) {
        pr->last_ack_ms = p->now;
        pr->heard = true;
        if (m->read_ctx > pr->read_ack)
            pr->read_ack = m->read_ctx;
        for (uint64_t s = m->first; s < m->first + m->count; s++) {
            if (s <= p->commit || s >= p->next_slot || s < p->log_start)
                continue;
            if (px_ent(p, s)->term == p->promised)
                px_meta_of(p, s)->acks |= bit(from);
        }
        leader_advance_commit(p);
    }
    if (catching_up && pr->commit < p->commit)
        return px_send_catchup(p, from, pr->commit + 1);
    return SY_OK;
}

void px_leader_self_ack(paxos *p, uint64_t lo, uint64_t hi)
{
    if (lo <= p->commit)
        lo = p->commit + 1;
    if (hi >= p->next_slot)
        hi = p->next_slot - 1;
    for (uint64_t s = lo; s <= hi; s++)
        if (px_ent(p, s)->term == p->promised)
            px_meta_of(p, s)->acks |= bit(p->cfg.self);
    leader_advance_commit(p);
}

/* ---------------------------------------------------------- hand-off */

/* Leadership transfer, for a leader about to stop (synod on SIGTERM). The
 * papers have none: a leader that stops costs the others an election
 * timeout before one of them runs phase 1. Here the leader names a peer
 * and sends it TAKEOVER; the peer runs phase 1 at once, skipping its
 * pre-prepare (which the other acceptors would refuse: they still hear
 * from us). Phase 1 is the ordinary one, so safety is untouched: whatever
 * we had accepted or chosen reaches the new leader through the promises,
 * and the target need not be caught up. Meanwhile we take no new requests
 * (refused with the target as hint; those already queued still get their
 * slots, which phase 1 carries over like any other), resend TAKEOVER every
 * heartbeat, and give up after election_max_ms (a lost or dead target):
 * then we lead on as before. A higher ballot ends it (px_become_follower). */
static int send_takeover(paxos *p)
{
    sy_msg *m = px_send(p, p->xfer_to, SY_MSG_PAXOS_TAKEOVER);
    if (!m)
        return SY_ENOMEM;
    m->u.paxos.takeover.ballot = p->promised;
    return SY_OK;
}

/* The peer heard from recently that knows the most chosen slots, leaving
 * out those in skip; SY_NO_NODE if none. */
static uint32_t best_target(const paxos *p, uint64_t skip)
{
    uint32_t target = SY_NO_NODE;
    for (uint32_t i = 0; i < p->cfg.n; i++) {
        if (i == p->cfg.self || !p->peers[i].heard ||
            p->peers[i].last_ack_ms + p->cfg.election_min_ms < p->now || (skip >> i & 1u))
            continue;
        if (target == SY_NO_NODE || p->peers[i].commit > p->peers[target].commit)
            target = i;
    }
    return target;
}

static int start_transfer(paxos *p, uint32_t target, bool chosen)
{
    p->xfer_to = target;
    p->xfer_auto = chosen;
    p->xfer_deadline = p->now + p->cfg.election_max_ms;
    return send_takeover(p);
}

int px_on_transfer(paxos *p, uint32_t target)
{
    bool chosen = target == SY_NO_NODE;
    if (p->role != PX_LEADER)
        return SY_ENOTLEADER;
    /* a peer that did not take over when asked comes last */
    if (chosen && (target = best_target(p, p->xfer_skip)) == SY_NO_NODE &&
        (target = best_target(p, 0)) == SY_NO_NODE)
        return SY_EUNREACH;
    if (target == p->cfg.self)
        return SY_OK;
    if (target >= p->cfg.n)
        return SY_EINVAL;
    if (p->xfer_to == target)
        return SY_OK;
    return start_transfer(p, target, chosen);
}

/* Nobody took over in time: lead on. A target we picked ourselves is
 * passed over for the next best peer until none is left -- the most
 * caught-up peer may be one that will not run phase 1 (a node still
 * rejoining after a replaced disk ignores TAKEOVER) while another would. */
static int transfer_expired(paxos *p)
{
    uint32_t next;
    bool chosen = p->xfer_auto;
    if (p->xfer_to < SY_MAX_NODES)
        p->xfer_skip |= 1ull << p->xfer_to;
    p->xfer_to = SY_NO_NODE;
    p->xfer_auto = false;
    if (!chosen || (next = best_target(p, p->xfer_skip)) == SY_NO_NODE)
        return SY_OK;
    return start_transfer(p, next, true);
}

int px_leader_tick(paxos *p)
{
    if (p->now < p->heartbeat_deadline)
        return SY_OK;
    p->heartbeat_deadline = p->now + p->cfg.heartbeat_ms;
    if (p->xfer_to != SY_NO_NODE) {
        int rc = p->now >= p->xfer_deadline ? transfer_expired(p) : send_takeover(p);
        if (rc != SY_OK)
            return rc;
    }
    if (p->cfg.check_quorum) {
        /* A leader cut off from a majority steps down, so clients and
         * reads go elsewhere instead of waiting on it. */
        uint32_t alive = 1;
        for (uint32_t i = 0; i < p->cfg.n; i++)
            if (i != p->cfg.self && p->peers[i].last_ack_ms + p->cfg.election_max_ms >= p->now)
                alive++;
        if (alive < p->quorum) {
            px_become_follower(p, SY_NO_NODE);
            px_reset_election(p, true);
            return SY_OK;
        }
    }
    int rc = SY_OK;
    /* Retransmit open slots a peer has not accepted within a period. The
     * send time is kept per slot, not per peer: a retransmit to one peer in
     * this tick (sent_ms == now) must not hold back the others, or a dead
     * peer early in the loop starves a live one that lost an ACCEPT (found
     * by the simulator with a replica lost for good). */
    for (uint32_t i = 0; i < p->cfg.n && rc == SY_OK; i++) {
        if (i == p->cfg.self)
            continue;
        uint64_t budget = p->cfg.max_inflight;
        uint64_t s = p->commit + 1;
        while (s < p->next_slot && budget && rc == SY_OK) {
            px_meta *mt = px_meta_of(p, s);
            if ((mt->acks & bit(i)) ||
                (mt->sent_ms + p->cfg.heartbeat_ms > p->now && mt->sent_ms != p->now)) {
                s++;
                continue;
            }
            uint64_t e = s;
            while (e + 1 < p->next_slot && e - s + 1 < budget) {
                px_meta *nx = px_meta_of(p, e + 1);
                if ((nx->acks & bit(i)) ||
                    (nx->sent_ms + p->cfg.heartbeat_ms > p->now && nx->sent_ms != p->now))
                    break;
                e++;
            }
            rc = send_range(p, i, s, e, 0);
            budget -= e - s + 1;
            s = e + 1;
        }
    }
    /* Catch-up: a peer whose chosen prefix stayed behind ours for a whole
     * period lacks values it cannot learn from accepts: push them (or keep
     * a snapshot transfer going from where it stands). */
    for (uint32_t i = 0; i < p->cfg.n && rc == SY_OK; i++) {
        px_peer *pr = &p->peers[i];
        if (i == p->cfg.self || !pr->heard || pr->commit >= p->hb_prev_commit)
            continue;
        if (pr->snap_index && pr->snap_index == p->snap_index)
            rc = px_send_snap_chunk(p, i, pr->snap_offset);
        else
            rc = px_send_catchup(p, i, pr->commit + 1);
    }
    p->hb_prev_commit = p->commit;
    /* An idle leader whose chosen prefix ends in a slot first proposed in
     * an older ballot (a takeover that re-proposed old values and had no
     * gap to fill) proposes a no-op of its own ballot: a node rejoining
     * after a replaced disk promises again only once the announced prefix
     * ends in such a slot (px_rejoin_check), and with no writes it waited
     * for the next one. Once per takeover, in an idle cluster only. */
    uint64_t origin;
    if (rc == SY_OK && p->q_n == 0 && p->commit > 0 && p->commit + 1 == p->next_slot &&
        (!px_origin_at(p, p->commit, &origin) || origin != p->promised)) {
        uint64_t s = p->next_slot;
        rc = put_noop(p, s, p->promised);
        if (rc == SY_OK) {
            p->next_slot++;
            rc = send_range(p, SY_NO_NODE, s, s, 0);
        }
    }
    if (rc == SY_OK)
        rc = bcast_heartbeat(p, p->n_reads ? p->read_seq : 0);
    return rc;
}

/* ---------------------------------------------------------- clients */

int px_on_request(paxos *p, const sy_input *in)
{
    const sy_client_req *req = in->u.request.req;
    if (!req || !in->u.request.raw || in->u.request.raw_len == 0 ||
        in->u.request.raw_len > SY_MAX_ENVELOPE)
        return SY_EINVAL;
    if (p->role != PX_LEADER)
        return px_reject(p, req->client_id, req->req_no, SY_ENOTLEADER, p->leader);
    if (p->xfer_to != SY_NO_NODE)   /* handing off: new requests go there */
        return px_reject(p, req->client_id, req->req_no, SY_ENOTLEADER, p->xfer_to);
    if (p->q_n + p->inflight_reqs >= p->cfg.max_pending) {
        p->dropped++;
        return px_reject(p, req->client_id, req->req_no, SY_EFULL, p->cfg.self);
    }
    if (sy_grow((void **)&p->q, &p->q_cap, p->q_n + 1, sizeof(px_qreq)))
        return SY_ENOMEM;
    uint8_t *copy = malloc(in->u.request.raw_len);
    if (!copy)
        return SY_ENOMEM;
    memcpy(copy, in->u.request.raw, in->u.request.raw_len);
    px_qreq *q = &p->q[p->q_n++];
    q->raw.p = copy;
    q->raw.len = (uint32_t)in->u.request.raw_len;
    q->client_id = req->client_id;
    q->req_no = req->req_no;
    return SY_OK;
}

int px_leader_flush(paxos *p)
{
    p->new_lo = p->next_slot;
    p->new_hi = p->next_slot - 1;
    size_t i = 0;
    int rc = SY_OK;
    sy_bytes v[SY_MAX_BATCH];
    while (i < p->q_n && p->next_slot - p->commit - 1 < p->cfg.max_inflight) {
        size_t n = 0;
        uint64_t bytes = 0;
        while (i + n < p->q_n && n < p->cfg.batch_max) {
            uint32_t len = p->q[i + n].raw.len;
            if (n > 0 && bytes + len > p->cfg.batch_bytes_max)
                break;
            bytes += len;
            v[n] = p->q[i + n].raw;
            n++;
        }
        uint8_t *data = NULL;
        size_t len = 0;
        rc = encode_value(p, v, (uint32_t)n, &data, &len);
        if (rc == SY_OK && len > UINT32_MAX)
            rc = SY_ETOOBIG;
        if (rc == SY_OK)
            rc = px_log_put(p, p->next_slot, p->promised, SY_ENTRY_NORMAL, data,
                            (uint32_t)len, true);
        if (rc) {
            free(data);
            /* could not be proposed: tell those clients now */
            for (size_t k = i; k < i + n; k++) {
                px_reject(p, p->q[k].client_id, p->q[k].req_no, rc, p->cfg.self);
                free((void *)p->q[k].raw.p);
            }
            i += n;
            continue;
        }
        px_meta_of(p, p->next_slot)->nreq = (uint32_t)n;
        p->inflight_reqs += n;
        p->next_slot++;
        for (size_t k = i; k < i + n; k++)
            free((void *)p->q[k].raw.p);
        i += n;
    }
    if (i) {
        memmove(p->q, p->q + i, (p->q_n - i) * sizeof *p->q);
        p->q_n -= i;
    }
    p->new_hi = p->next_slot - 1;
    return rc;
}

int px_on_read(paxos *p, uint64_t read_id)
{
    if (p->role != PX_LEADER)
        return px_read_state(p, read_id, 0, SY_ENOTLEADER);
    if (p->n_reads >= p->cfg.max_pending) {
        p->dropped++;
        return px_read_state(p, read_id, 0, SY_EFULL);
    }
    if (sy_grow((void **)&p->reads, &p->cap_reads, p->n_reads + 1, sizeof(px_read)))
        return SY_ENOMEM;
    p->reads[p->n_reads].read_id = read_id;
    p->reads[p->n_reads].ctx = 0;
    p->n_reads++;
    return SY_OK;
}

/* Highest read ctx acknowledged by a majority (ourselves included). */
static uint64_t quorum_read_ack(paxos *p)
{
    uint64_t acks[SY_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->cfg.n; i++)
        acks[n++] = i == p->cfg.self ? p->read_seq : p->peers[i].read_ack;
    /* quorum-th largest: partial selection sort, n is small */
    for (uint32_t k = 0; k < p->quorum; k++) {
        uint32_t best = k;
        for (uint32_t j = k + 1; j < n; j++)
            if (acks[j] > acks[best])
                best = j;
        uint64_t t = acks[k];
        acks[k] = acks[best];
        acks[best] = t;
    }
    return acks[p->quorum - 1];
}

int px_leader_emit(paxos *p)
{
    int rc = SY_OK;
    uint64_t ctx = 0;
    bool fresh = false;
    for (size_t k = 0; k < p->n_reads; k++)
        if (p->reads[k].ctx == 0)
            fresh = true;
    if (fresh) {
        ctx = ++p->read_seq;
        for (size_t k = 0; k < p->n_reads; k++)
            if (p->reads[k].ctx == 0)
                p->reads[k].ctx = ctx;
    }
    if (p->new_lo <= p->new_hi) {
        rc = send_range(p, SY_NO_NODE, p->new_lo, p->new_hi, ctx);
        p->bcast_chosen = p->commit;
        p->new_lo = 1;
        p->new_hi = 0;
    } else if (fresh) {
        /* a read round. A new chosen prefix alone sends nothing: it rides
         * on the next proposal or heartbeat (heartbeat_ms at most). An
         * immediate notice cost two signatures here, two verifications
         * and two acks (two more verifications) per commit at low load,
         * for nothing a client sees: the leader answers clients, and
         * followers apply in bulk anyway (lazy apply, docs/storage.md). */
        rc = bcast_heartbeat(p, ctx);
    }
    if (rc)
        return rc;
    if (p->n_reads == 0 || p->commit < p->takeover_hi)
        return SY_OK;
    uint64_t ok = quorum_read_ack(p);
    size_t keep = 0;
    for (size_t k = 0; k < p->n_reads; k++) {
        if (p->reads[k].ctx && p->reads[k].ctx <= ok) {
            rc = px_read_state(p, p->reads[k].read_id, p->commit, SY_OK);
            if (rc)
                return rc;
        } else {
            p->reads[keep++] = p->reads[k];
        }
    }
    p->n_reads = keep;
    return SY_OK;
}
