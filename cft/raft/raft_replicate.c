/* Leader side of log replication (thesis 3.5, 3.6.2, 5.2, 6.2, 10.2.1).
 *
 * Invariants:
 *  - Commit rule (3.6.2, Figure 3.7/"Figure 8"): the leader advances commit
 *    only to an index replicated on a quorum of voters whose entry is from
 *    its current term; older entries commit indirectly. Its own match counts
 *    only up to what it handed out in a ready (durable before any ack).
 *  - Flow control per follower: PROBE sends one append at a time until the
 *    consistency check finds the match point; REPLICATE pipelines up to
 *    cfg.max_inflight appends, advancing next_index optimistically; SNAPSHOT
 *    streams InstallSnapshot chunks when next_index fell below the log start.
 *  - Fast backtracking (5.3, etcd's optimisation): a reject carries the
 *    follower's conflicting term and the first index it has for that term;
 *    the leader jumps to just past its own last entry of that term if it has
 *    one, else to that first index, skipping a whole term per round trip.
 *  - Check-quorum (6.2): a leader that did not hear from a quorum within an
 *    election timeout steps down. */
#include <stdlib.h>
#include <string.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

static void infl_clear(raft_progress *p) { p->infl_head = p->infl_n = 0; }

static void infl_add(raft *r, raft_progress *p, uint64_t last)
{
    uint32_t cap = r->cfg.max_inflight;
    p->infl[(p->infl_head + p->infl_n) % cap] = last;
    p->infl_n++;
}

static void infl_free_to(raft *r, raft_progress *p, uint64_t idx)
{
    uint32_t cap = r->cfg.max_inflight;
    while (p->infl_n && p->infl[p->infl_head] <= idx) {
        p->infl_head = (p->infl_head + 1) % cap;
        p->infl_n--;
    }
}

void raft_pr_reset(raft *r, uint32_t id)
{
    raft_progress *p = &r->prs[id];
    p->state = RAFT_PR_PROBE;
    p->match = 0;
    p->next = raft_last_index(r) + 1;
    p->probe_sent = false;
    p->recent_active = false;
    p->acked_since_hb = false;
    p->commit_sent = 0;
    p->proved = false;
    p->read_ack = 0;
    p->snap_index = p->snap_offset = 0;
    infl_clear(p);
}

bool raft_commit_in_term(const raft *r)
{
    uint64_t t;
    return raft_term_of(r, r->commit, &t) && t == r->term;
}

static int send_snapshot_chunk(raft *r, uint32_t id)
{
    raft_progress *p = &r->prs[id];
    p->state = RAFT_PR_SNAPSHOT;
    p->proved = false;   /* an install carries no commit (resend_commit) */
    if (p->snap_index != r->snap_index) {
        p->snap_index = r->snap_index;
        p->snap_offset = 0;
    }
    if (p->snap_offset > r->snap_len)
        p->snap_offset = 0;
    uint64_t left = r->snap_len - p->snap_offset;
    uint32_t chunk = left < r->cfg.batch_bytes_max ? (uint32_t)left : r->cfg.batch_bytes_max;
    sy_msg *m = raft_send(r, id, SY_MSG_RAFT_SNAPSHOT);
    if (!m)
        return SY_ENOMEM;
    m->u.snap.term = r->term;
    m->u.snap.last_index = r->snap_index;
    m->u.snap.last_term = r->snap_term;
    m->u.snap.members = r->snap_members;
    m->u.snap.offset = p->snap_offset;
    m->u.snap.done = p->snap_offset + chunk >= r->snap_len;
    m->u.snap.data.p = r->snap_data ? r->snap_data + p->snap_offset : NULL;
    m->u.snap.data.len = chunk;
    return SY_OK;
}

/* Sends at most one append; true if another may follow at once. */
static bool send_one(raft *r, uint32_t id, int *rc)
{
    raft_progress *p = &r->prs[id];
    *rc = SY_OK;
    if (!p->member || p->state == RAFT_PR_SNAPSHOT)
        return false;
    uint64_t last = raft_last_index(r);
    if (p->next > last + 1)
        p->next = last + 1;
    if (p->state == RAFT_PR_PROBE && p->probe_sent)
        return false;
    if (p->state == RAFT_PR_REPLICATE && (p->next > last || p->infl_n >= r->cfg.max_inflight))
        return false;
    uint64_t prev = p->next - 1, pt;
    /* the first test: term_of(0) is always known (0), yet entry 1 may be
     * compacted away -- found by sim seed 1058 (raft, faults all) */
    if (p->next < r->log_start || !raft_term_of(r, prev, &pt)) {
        /* 5.2: what the follower needs was compacted away */
        p->snap_index = 0;
        *rc = send_snapshot_chunk(r, id);
        return false;
    }
    uint32_t n = 0;
    uint64_t bytes = 0;
    while (p->next + n <= last && n < SY_MAX_ENTRIES_PER_MSG) {
        uint32_t len = raft_entry(r, p->next + n)->data.len;
        if (n > 0 && bytes + len > r->cfg.batch_bytes_max)
            break;
        bytes += len;
        n++;
    }
    sy_entry *ents = NULL;
    if (n) {
        ents = malloc(n * sizeof *ents);
        if (!ents) {
            *rc = SY_ENOMEM;
            return false;
        }
        memcpy(ents, raft_entry(r, p->next), n * sizeof *ents);
    }
    sy_msg *m = raft_send(r, id, SY_MSG_RAFT_APPEND);
    if (m)
        raft_mark_early(r);
    if (!m) {
        free(ents);
        *rc = SY_ENOMEM;
        return false;
    }
    m->u.append.term = r->term;
    m->u.append.prev_index = prev;
    m->u.append.prev_term = pt;
    m->u.append.commit = r->commit;
    m->u.append.read_ctx = r->read_seq;
    m->u.append.n_entries = n;
    m->u.append.entries = ents;
    if (n && raft_commit_in_term(r))
        p->proved = true;
    uint64_t vouched = prev + n;
    p->commit_sent = r->commit < vouched ? r->commit : vouched;
    if (p->state == RAFT_PR_PROBE) {
        p->probe_sent = true;
        return false;
    }
    p->next = vouched + 1;
    infl_add(r, p, vouched);
    return true;
}

int raft_send_append(raft *r, uint32_t id)
{
    int rc = SY_OK;
    while (send_one(r, id, &rc))
        ;
    return rc;
}

int raft_send_heartbeat(raft *r, uint32_t id)
{
    raft_progress *p = &r->prs[id];
    if (!p->member)
        return SY_OK;
    uint64_t prev = p->match, pt;
    if (!raft_term_of(r, prev, &pt))
        prev = pt = 0;
    sy_msg *m = raft_send(r, id, SY_MSG_RAFT_APPEND);
    if (m)
        raft_mark_early(r);
    if (!m)
        return SY_ENOMEM;
    m->u.append.term = r->term;
    m->u.append.prev_index = prev;
    m->u.append.prev_term = pt;
    /* never let a follower commit past what we know it holds */
    m->u.append.commit = r->commit < prev ? r->commit : prev;
    m->u.append.read_ctx = r->read_seq;
    p->commit_sent = m->u.append.commit;
    return SY_OK;
}

int raft_bcast_heartbeat(raft *r)
{
    int rc = SY_OK;
    for (uint32_t id = 0; id < SY_MAX_NODES && rc == SY_OK; id++)
        if (r->prs[id].member)
            rc = raft_send_heartbeat(r, id);
    return rc;
}

int raft_bcast_append(raft *r)
{
    int rc = SY_OK;
    for (uint32_t id = 0; id < SY_MAX_NODES && rc == SY_OK; id++) {
        raft_progress *p = &r->prs[id];
        if (!p->member)
            continue;
        rc = raft_send_append(r, id);
        /* A new commit index alone sends nothing: it rides on the next
         * append or heartbeat (at most heartbeat_ms later), as the thesis
         * allows (3.5: "the leader ... includes that index in future
         * AppendEntries RPCs (including heartbeats)"). An immediate notice
         * cost two signatures and two verifications per commit at low load
         * for nothing a client sees: the leader answers clients, and a
         * crash-fault follower applies in bulk anyway (lazy apply). */
    }
    return rc;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int raft_maybe_commit(raft *r)
{
    if (r->role != SY_ROLE_LEADER || r->conf.n_voters == 0)
        return SY_OK;
    uint64_t m[SY_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->conf.n_voters; i++) {
        uint32_t id = r->conf.voters[i];
        m[n++] = id == r->cfg.self ? r->unstable_from - 1 : r->prs[id].match;
    }
    qsort(m, n, sizeof m[0], cmp_desc);
    uint64_t q = m[raft_quorum(r) - 1], t;
    bool any_term = false;
#ifdef SYNOD_TESTING
    /* planted bug (raft.h SY_RAFT_MUTANT_OLD_TERM_COMMIT): no term check */
    any_term = r->cfg.test_behaviour == SY_RAFT_MUTANT_OLD_TERM_COMMIT;
#endif
    if (q <= r->commit || !raft_term_of(r, q, &t) || (t != r->term && !any_term))
        return SY_OK;   /* 3.6.2: only current-term entries commit by count */
    r->commit = q;
    int rc = raft_reads_on_commit(r);
    if (rc)
        return rc;
    /* 4.2.2: a leader removed from the configuration steps down once the
     * entry removing it is committed. */
    if (r->conf_index <= r->commit && !raft_is_voter(r, r->cfg.self)) {
        raft_become_follower(r, r->term, SY_NO_NODE);
        return SY_OK;
    }
    return raft_maybe_promote(r);
}

int raft_recv_append_resp(raft *r, uint32_t from, const sy_raft_append_resp *m)
{
    if (r->role != SY_ROLE_LEADER || m->term != r->term)
        return SY_OK;
    raft_progress *p = &r->prs[from];
    if (!p->member)
        return SY_OK;
    p->recent_active = true;
    p->last_resp_ms = r->now;
    int rc = SY_OK;
    if (m->read_ctx > p->read_ack) {
        p->read_ack = m->read_ctx;
        rc = raft_check_reads(r);
        if (rc)
            return rc;
    }
    if (m->success) {
        bool updated = false;
        if (m->match_index > p->match) {
            p->match = m->match_index;
            p->acked_since_hb = true;
            updated = true;
        }
        if (p->next < p->match + 1)
            p->next = p->match + 1;
        if (p->state == RAFT_PR_PROBE) {
            if (p->match + 1 >= p->next) {
                p->state = RAFT_PR_REPLICATE;
                infl_clear(p);
            }
            p->probe_sent = false;
        } else if (p->state == RAFT_PR_REPLICATE) {
            infl_free_to(r, p, p->match);
        }
        if (updated) {
            rc = raft_maybe_commit(r);
            if (rc || r->role != SY_ROLE_LEADER)
                return rc;
            if (raft_is_learner(r, from))
                rc = raft_maybe_promote(r);   /* 4.2.1: caught up now? */
            if (rc == SY_OK && from == r->transfer_target)
                rc = raft_transfer_progress(r, from);
        }
        return rc;
    }
    /* reject: match_index echoes the prev_index that failed */
    uint64_t rej = m->match_index;
    if (p->state == RAFT_PR_SNAPSHOT)
        return SY_OK;
    if (rej == p->match && rej > 0) {
        /* It lacks the very entry it acknowledged in this term (heartbeats
         * and probes name prev_index = match). Raft assumes stable storage
         * (thesis 3.1) and would leave such a follower stuck: match never
         * falls, so every probe asks again below nothing it still has.
         * It happens when a node's disk died and it was restarted on an
         * empty one (docs/operations.md, section 7): match falls to 0 and
         * the probe below (from its hint) finds where it stands, and it is
         * caught up again from the log or a snapshot. Not to the hint: a
         * length is no proof that the entries are ours (an empty node
         * takes appends of any term, a deposed leader's too); only a
         * success raises match again. Lowering match is always safe -- the
         * commit index never falls, and a quorum is only counted stricter
         * -- so a stale reject that lands here (reordered after the ack of
         * the same index) costs one more probe round, not correctness. */
        p->match = 0;
    } else if (rej <= p->match) {
        return SY_OK;   /* answers an append below what it acknowledged since */
    }
    if (p->state == RAFT_PR_PROBE && rej + 1 != p->next)
        return SY_OK;   /* answer to an older probe */
    uint64_t nx = m->conflict_index;
    if (m->conflict_term != 0) {
        uint64_t i = rej < raft_last_index(r) ? rej : raft_last_index(r), t = 0;
        while (i >= r->log_start && raft_term_of(r, i, &t) && t > m->conflict_term)
            i--;
        if (raft_term_of(r, i, &t) && t == m->conflict_term)
            nx = i + 1;
    }
    if (nx > rej)
        nx = rej;
    if (nx < p->match + 1)
        nx = p->match + 1;
    p->next = nx;
    p->state = RAFT_PR_PROBE;
    p->probe_sent = false;
    infl_clear(p);
    return SY_OK;
}

int raft_recv_snapshot_resp(raft *r, uint32_t from, const sy_raft_snapshot_resp *m)
{
    if (r->role != SY_ROLE_LEADER || m->term != r->term)
        return SY_OK;
    raft_progress *p = &r->prs[from];
    if (!p->member)
        return SY_OK;
    p->recent_active = true;
    p->last_resp_ms = r->now;
    if (p->state != RAFT_PR_SNAPSHOT)
        return SY_OK;
    p->acked_since_hb = true;
    if (m->done) {
        if (m->last_index > p->match)
            p->match = m->last_index;
        p->next = p->match + 1;
        p->state = RAFT_PR_PROBE;
        p->probe_sent = false;
        int rc = raft_maybe_commit(r);
        if (rc || r->role != SY_ROLE_LEADER)
            return rc;
        if (raft_is_learner(r, from) && (rc = raft_maybe_promote(r)) != SY_OK)
            return rc;
        return from == r->transfer_target ? raft_transfer_progress(r, from) : SY_OK;
    }
    if (m->last_index != p->snap_index)
        return SY_OK;
    p->snap_offset = m->next_offset;
    return send_snapshot_chunk(r, from);
}

/* A rejoining follower (raft_rejoin_check) takes a commit index as proof
 * only from an append with entries (a heartbeat's is capped at what the
 * follower holds), and only one of this term. A follower that holds
 * everything (match == last) is sent no more entries while the cluster is
 * idle, yet none it got may have carried such a commit: the append that
 * carried this term's no-op left before the no-op committed, and a
 * snapshot install carries no commit. So a node rejoining an idle cluster
 * waited for the next write. At each heartbeat tick (raft_leader_tick), a
 * follower in that state (proved false) is sent its last entry again --
 * the next append goes from next = last, as a probe -- or, when that entry
 * was compacted away, true asks the caller for a no-op of this term;
 * either append carries the commit. At most once per follower per term
 * and per snapshot install: a follower that is not rejoining just holds
 * the entry already. */
static bool resend_commit(raft *r, uint32_t id)
{
    raft_progress *p = &r->prs[id];
    uint64_t last = raft_last_index(r);
    if (!p->member || p->proved || last == 0 || p->match < last ||
        p->state == RAFT_PR_SNAPSHOT || !raft_commit_in_term(r))
        return false;
    if (last < r->log_start)
        return true;
    p->next = last;
    p->state = RAFT_PR_PROBE;
    p->probe_sent = false;
    infl_clear(p);
    return false;
}

int raft_leader_tick(raft *r)
{
    int rc = SY_OK;
    r->leader_contact = r->now;
    if (r->now >= r->heartbeat_deadline) {
        bool need_noop = false;
        r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
        for (uint32_t id = 0; id < SY_MAX_NODES; id++) {
            raft_progress *p = &r->prs[id];
            if (!p->member)
                continue;
            if (p->state == RAFT_PR_REPLICATE && p->infl_n > 0 && !p->acked_since_hb) {
                /* appends (or their acks) were lost: find the match again */
                p->state = RAFT_PR_PROBE;
                p->next = p->match + 1;
                infl_clear(p);
            }
            if (p->state == RAFT_PR_PROBE)
                p->probe_sent = false;
            if (p->state == RAFT_PR_SNAPSHOT && !p->acked_since_hb) {
                rc = send_snapshot_chunk(r, id);
                if (rc)
                    return rc;
            }
            p->acked_since_hb = false;
            need_noop |= resend_commit(r, id);
            rc = raft_send_heartbeat(r, id);
            if (rc)
                return rc;
        }
        if (need_noop && (rc = raft_log_append(r, r->term, SY_ENTRY_NOOP, NULL, 0, 0)) != SY_OK)
            return rc;
    }
    if (r->cfg.check_quorum && r->now >= r->quorum_deadline) {
        uint32_t active = 0;
        for (uint32_t i = 0; i < r->conf.n_voters; i++) {
            uint32_t id = r->conf.voters[i];
            if (id == r->cfg.self || r->prs[id].recent_active)
                active++;
        }
        for (uint32_t id = 0; id < SY_MAX_NODES; id++)
            r->prs[id].recent_active = false;
        r->quorum_deadline = r->now + r->cfg.election_min_ms;
        if (active < raft_quorum(r)) {
            raft_become_follower(r, r->term, SY_NO_NODE);
            return SY_OK;
        }
    }
    if (r->transfer_target != SY_NO_NODE && r->now >= r->transfer_deadline)
        return raft_transfer_expired(r);   /* 3.10: abort, accept requests again */
    return SY_OK;
}
