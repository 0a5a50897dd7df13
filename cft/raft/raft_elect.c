/* Leader election: roles, RequestVote, pre-vote, TimeoutNow.
 *
 * Invariant: Election Safety (thesis 3.4) — at most one leader per term.
 * A node grants at most one vote per term, persists that vote (hardstate in
 * the same ready as the reply, sent only after the host's durable write) and
 * grants only to candidates whose log is at least as up to date as its own
 * (3.6.1). Pre-vote (9.6) runs the same check without touching terms so a
 * partitioned node cannot inflate terms; leader stickiness (4.2.3) makes a
 * node that heard from a live leader within election_min_ms ignore vote
 * requests, unless the candidate was told to run by a leadership transfer
 * (3.10). */
#include <string.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

static uint64_t bit(uint32_t id) { return (uint64_t)1 << id; }

static uint32_t count_voters(const raft *r, uint64_t mask)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->conf.n_voters; i++)
        if (mask & bit(r->conf.voters[i]))
            n++;
    return n;
}

bool raft_in_lease(const raft *r)
{
    if (r->role == SY_ROLE_LEADER)
        return r->cfg.check_quorum;
    return r->leader != SY_NO_NODE && r->now < r->leader_contact + r->cfg.election_min_ms;
}

void raft_become_follower(raft *r, uint64_t term, uint32_t leader)
{
    bool was_leader = r->role == SY_ROLE_LEADER;
    if (term > r->term) {
        r->term = term;
        r->vote = SY_NO_NODE;
        r->hs_dirty = true;
    }
    r->role = SY_ROLE_FOLLOWER;
    r->leader = leader;
    if (leader != SY_NO_NODE)
        r->leader_contact = r->now;
    if (leader != SY_NO_NODE && r->term > r->leader_term) {
        r->leader_term = r->term;
        r->leader_changes++;
    }
    r->votes_yes = r->votes_no = 0;
    if (was_leader)
        raft_fail_pending(r);
    raft_reset_election(r);
}

int raft_become_leader(raft *r)
{
    r->role = SY_ROLE_LEADER;
    r->leader = r->cfg.self;
    if (r->term > r->leader_term) {
        r->leader_term = r->term;
        r->leader_changes++;
    }
    r->leader_contact = r->now;
    r->transfer_target = SY_NO_NODE;
    r->transfer_skip = 0;
    r->read_round_open = false;
    for (uint32_t id = 0; id < SY_MAX_NODES; id++) {
        if (r->prs[id].member)
            raft_pr_reset(r, id);
        r->prs[id].last_resp_ms = 0;   /* heard from in this term only */
    }
    r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
    r->quorum_deadline = r->now + r->cfg.election_min_ms;
#ifdef SYNOD_TESTING
    /* planted bug (raft.h SY_RAFT_MUTANT_OLD_TERM_COMMIT): no no-op; one
     * is written only when a read needs it (raft_on_read) */
    if (r->cfg.test_behaviour == SY_RAFT_MUTANT_OLD_TERM_COMMIT)
        return SY_OK;
#endif
    /* 6.4 / 3.6.2: an entry of our own term lets us commit (and serve
     * ReadIndex) without waiting for a client. */
    return raft_log_append(r, r->term, SY_ENTRY_NOOP, NULL, 0, 0);
}

static int send_votes(raft *r, uint64_t term, bool prevote, bool transfer)
{
    for (uint32_t i = 0; i < r->conf.n_voters; i++) {
        uint32_t id = r->conf.voters[i];
        if (id == r->cfg.self)
            continue;
        sy_msg *m = raft_send(r, id, SY_MSG_RAFT_VOTE);
        if (!m)
            return SY_ENOMEM;
        m->u.vote.term = term;
        m->u.vote.last_index = raft_last_index(r);
        m->u.vote.last_term = raft_last_term(r);
        m->u.vote.prevote = prevote;
        m->u.vote.transfer = transfer;
    }
    return SY_OK;
}

static int become_candidate(raft *r, bool transfer);

static int tally(raft *r)
{
    uint32_t q = raft_quorum(r);
    if (count_voters(r, r->votes_yes) >= q) {
        if (r->role == SY_ROLE_PRECANDIDATE)
            return become_candidate(r, false);
        if (r->role == SY_ROLE_CANDIDATE)
            return raft_become_leader(r);
    } else if (count_voters(r, r->votes_no) >= q) {
        raft_become_follower(r, r->term, SY_NO_NODE);
    }
    return SY_OK;
}

static int become_candidate(raft *r, bool transfer)
{
    r->term++;
    r->vote = r->cfg.self;
    r->hs_dirty = true;
    r->role = SY_ROLE_CANDIDATE;
    r->leader = SY_NO_NODE;
    r->votes_yes = bit(r->cfg.self);
    r->votes_no = 0;
    raft_reset_election(r);
    int rc = send_votes(r, r->term, false, transfer);
    if (rc)
        return rc;
    return tally(r);
}

int raft_campaign(raft *r, bool transfer)
{
    if (r->role == SY_ROLE_LEADER || !raft_is_voter(r, r->cfg.self))
        return SY_OK;
    if (r->rejoining) {   /* raft_rejoin_check: no elections until caught up */
        raft_reset_election(r);
        return SY_OK;
    }
    if (!r->cfg.prevote || transfer)
        return become_candidate(r, transfer);
    r->role = SY_ROLE_PRECANDIDATE;
    r->leader = SY_NO_NODE;
    r->votes_yes = bit(r->cfg.self);
    r->votes_no = 0;
    raft_reset_election(r);
    int rc = send_votes(r, r->term + 1, true, false);
    if (rc)
        return rc;
    return tally(r);
}

int raft_recv_vote(raft *r, uint32_t from, const sy_raft_vote *m)
{
    uint64_t lt = raft_last_term(r), li = raft_last_index(r);
    bool up_to_date = m->last_term > lt || (m->last_term == lt && m->last_index >= li);
    bool grant;
    uint64_t rterm = r->term;
    if (m->prevote) {
        /* 9.6: would we vote in the next term? Nothing changes here. */
        grant = m->term > r->term && up_to_date && !r->rejoining;
        if (grant)
            rterm = m->term;
    } else {
        grant = m->term == r->term && up_to_date && !r->rejoining &&
                (r->vote == SY_NO_NODE || r->vote == from);
        if (grant) {
            r->vote = from;
            r->hs_dirty = true;   /* persisted before the reply is sent */
            raft_reset_election(r);
        }
    }
    sy_msg *out = raft_send(r, from, SY_MSG_RAFT_VOTE_RESP);
    if (!out)
        return SY_ENOMEM;
    out->u.vote_resp.term = rterm;
    out->u.vote_resp.granted = grant;
    out->u.vote_resp.prevote = m->prevote;
    return SY_OK;
}

int raft_recv_vote_resp(raft *r, uint32_t from, const sy_raft_vote_resp *m)
{
    if (!raft_is_voter(r, from))
        return SY_OK;
    if (m->prevote) {
        if (r->role != SY_ROLE_PRECANDIDATE)
            return SY_OK;
        if (m->granted && m->term == r->term + 1)
            r->votes_yes |= bit(from);
        else if (!m->granted)
            r->votes_no |= bit(from);
    } else {
        if (r->role != SY_ROLE_CANDIDATE || m->term != r->term)
            return SY_OK;
        if (m->granted)
            r->votes_yes |= bit(from);
        else
            r->votes_no |= bit(from);
    }
    return tally(r);
}

int raft_recv_timeout_now(raft *r, uint32_t from, const sy_raft_timeout_now *m)
{
    /* 3.10: the leader caught us up and stepped aside; run at once. */
    if (m->term != r->term || r->role == SY_ROLE_LEADER || r->leader != from)
        return SY_OK;
    if (r->role != SY_ROLE_FOLLOWER)
        return SY_OK;
    if (!raft_is_voter(r, r->cfg.self) || r->rejoining)
        return SY_OK;
    return become_candidate(r, true);
}
