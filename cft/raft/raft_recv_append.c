/* Follower side of AppendEntries (thesis 3.5, Figure 3.1 receiver rules).
 *
 * Invariant: Log Matching — entries are accepted only after the consistency
 * check on (prev_index, prev_term) passes; a conflicting suffix is truncated
 * (never below commit: that would contradict Leader Completeness, so it is
 * SY_EFATAL) and commit advances only to min(leader_commit, last entry this
 * message vouched for). On a mismatch the reply carries conflict hints for
 * fast backtracking (5.3 / etcd): the term at prev_index and the first index
 * this follower holds for that term, or conflict_term 0 and last_index + 1
 * when the log is too short. On a reject, match_index echoes the rejected
 * prev_index so the leader can discard stale rejects. */
#include <string.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

static int reply(raft *r, uint32_t to, bool ok, uint64_t match, uint64_t ci,
                 uint64_t ct, uint64_t ctx)
{
    /* A success in this term says "my log matches yours up to match":
     * cumulative, like read_ctx (the leader keeps the highest). If the last
     * answer to this leader still waits in the next ready (pipelined: the
     * appends arrived during one write), it leaves with the same write
     * anyway, so it carries this one's news instead of a second signed
     * message for the leader to verify. Dropping the older answer is what
     * a lost message does, and it says less than this one. */
    for (size_t i = r->out.n_msgs; ok && i-- > r->out.h_msgs;) {
        sy_outmsg *o = &r->out.msgs[i];
        if (o->to != to || o->msg.type != SY_MSG_RAFT_APPEND_RESP)
            continue;
        sy_raft_append_resp *a = &o->msg.u.append_resp;
        if (a->term != r->term || !a->success)
            break;
        if (match > a->match_index)
            a->match_index = match;
        if (ctx > a->read_ctx)
            a->read_ctx = ctx;
        a->last_index = raft_last_index(r);
        return SY_OK;
    }
    sy_msg *m = raft_send(r, to, SY_MSG_RAFT_APPEND_RESP);
    if (!m)
        return SY_ENOMEM;
    m->u.append_resp.term = r->term;
    m->u.append_resp.success = ok;
    m->u.append_resp.match_index = match;
    m->u.append_resp.conflict_index = ci;
    m->u.append_resp.conflict_term = ct;
    m->u.append_resp.last_index = raft_last_index(r);
    m->u.append_resp.read_ctx = ctx;
    return SY_OK;
}

int raft_recv_append(raft *r, uint32_t from, const sy_raft_append *m)
{
    if (m->term < r->term)   /* stale leader: our term tells it to step down */
        return reply(r, from, false, m->prev_index, 0, 0, m->read_ctx);
    if (r->role != SY_ROLE_FOLLOWER || r->leader != from)
        raft_become_follower(r, m->term, from);
    r->leader_contact = r->now;
    raft_reset_election(r);

    uint64_t prev = m->prev_index, prev_term = m->prev_term;
    const sy_entry *ents = m->entries;
    uint32_t n = m->n_entries;
    if (n && !ents)
        return SY_EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (ents[i].index != prev + 1 + i)
            return SY_EINVAL;
    /* an append with entries carries the leader's own commit index (a
     * heartbeat's is capped at what we hold): what a rejoining node must
     * hold before it votes (raft_rejoin_check) */
    if (r->rejoining && n && m->commit > r->rejoin_commit)
        r->rejoin_commit = m->commit;
    /* Entries at or below commit already match the leader's (they are
     * committed): skip them and check consistency at commit instead. */
    if (prev < r->commit) {
        uint64_t skip = r->commit - prev;
        if (skip >= n)
            return reply(r, from, true, r->commit, 0, 0, m->read_ctx);
        ents += skip;
        n -= (uint32_t)skip;
        prev = r->commit;
        prev_term = ents[-1].term;
        uint64_t mine;
        if (!raft_term_of(r, prev, &mine) || mine != prev_term)
            return SY_EFATAL;   /* a committed entry differs from the leader's */
    }

    uint64_t t;
    if (!raft_term_of(r, prev, &t)) {
        uint64_t last = raft_last_index(r);
        return reply(r, from, false, prev, last + 1, 0, m->read_ctx);
    }
    if (t != prev_term) {
        uint64_t ci = prev;
        uint64_t tt;
        while (ci - 1 > r->commit && raft_term_of(r, ci - 1, &tt) && tt == t)
            ci--;
        return reply(r, from, false, prev, ci, t, m->read_ctx);
    }

    uint64_t last = raft_last_index(r);
    for (uint32_t i = 0; i < n; i++) {
        const sy_entry *e = &ents[i];
        if (e->index <= last) {
            uint64_t et;
            raft_term_of(r, e->index, &et);
            if (et == e->term)
                continue;
            int rc = raft_log_truncate(r, e->index);
            if (rc)
                return rc;
            last = raft_last_index(r);
        }
        int rc = raft_log_append(r, e->term, e->type, e->data.p, e->data.len, 0);
        if (rc)
            return rc;
        last++;
    }
    uint64_t vouched = prev + n;
    uint64_t nc = m->commit < vouched ? m->commit : vouched;
    if (nc > r->commit)
        r->commit = nc;
    return reply(r, from, true, vouched, 0, 0, m->read_ctx);
}
