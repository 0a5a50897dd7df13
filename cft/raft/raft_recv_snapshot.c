/* Follower side of InstallSnapshot (thesis 5.2, Figure 5.3), chunked.
 *
 * Invariant: a snapshot only ever moves this node forward, and never takes
 * away entries it may have acknowledged. One covering no more than our
 * commit index is acknowledged and dropped (what it holds is already
 * committed here); so is one that describes a prefix of our log (Figure 5.3
 * step 6, below). Chunks must arrive in order (offset == bytes held);
 * anything else is answered with the offset we want. On the last chunk the
 * whole log is discarded -- what remains after the snapshot's index then
 * does not match the leader's log, so it was never committed -- and the
 * ready carries the data for the host to restore, with truncate_from = 1
 * and commit = applied = the snapshot index. */
#include <stdlib.h>
#include <string.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

static int reply(raft *r, uint32_t to, uint64_t idx, uint64_t next, bool done)
{
    sy_msg *m = raft_send(r, to, SY_MSG_RAFT_SNAPSHOT_RESP);
    if (!m)
        return SY_ENOMEM;
    m->u.snap_resp.term = r->term;
    m->u.snap_resp.last_index = idx;
    m->u.snap_resp.next_offset = next;
    m->u.snap_resp.done = done;
    return SY_OK;
}

static int install(raft *r)
{
    uint64_t idx = r->in_snap_index;
    size_t len = 0;
    uint8_t *data = sy_buf_take(&r->in_snap, &len);
    for (size_t i = 0; i < r->n_ents; i++)
        raft_defer_free(r, (void *)r->ents[i].data.p);
    raft_defer_free(r, r->snap_data);
    r->n_ents = 0;
    r->log_start = idx + 1;
    r->prev_index = idx;
    r->prev_term = r->in_snap_term;
    r->unstable_from = idx + 1;
    r->trunc_from = 1;
    r->commit = idx;
    r->reported = idx;
    r->compact_to = idx;
    r->snap_index = idx;
    r->snap_term = r->in_snap_term;
    r->snap_members = r->in_snap_members;
    r->snap_data = data;
    r->snap_len = (uint32_t)len;
    r->snap_install = true;
    r->base_conf = r->in_snap_members;
    raft_conf_apply(r, &r->base_conf, 0);
    r->in_snap_index = 0;
    return SY_OK;
}

int raft_recv_snapshot(raft *r, uint32_t from, const sy_raft_snapshot *m)
{
    if (m->term < r->term)
        return reply(r, from, 0, 0, false);
    if (r->role != SY_ROLE_FOLLOWER || r->leader != from)
        raft_become_follower(r, m->term, from);
    r->leader_contact = r->now;
    raft_reset_election(r);

    if (m->last_index <= r->commit)
        return reply(r, from, r->commit, 0, true);
    /* Figure 5.3 step 6: an entry of ours at the snapshot's last index with
     * its term means (Log Matching) that our log up to there is the
     * leader's, so we need nothing the snapshot holds, and the entries
     * after it must stay: we may have acknowledged them, and an ack still
     * on its way makes the leader count them toward a commit. Installing
     * (which empties the log) lost them; with a leader crash after that,
     * a committed entry could be lost. Not a single chunk is needed. */
    uint64_t mine;
    if (raft_term_of(r, m->last_index, &mine) && mine == m->last_term) {
        if (r->in_snap_index == m->last_index)
            r->in_snap_index = 0;
        return reply(r, from, m->last_index, 0, true);
    }
    if (m->members.n_voters == 0 || m->members.n_voters > SY_MAX_NODES ||
        m->members.n_learners > SY_MAX_NODES)
        return SY_EINVAL;
    if (m->offset == 0) {
        sy_buf_reset(&r->in_snap);
        r->in_snap_index = m->last_index;
        r->in_snap_term = m->last_term;
        r->in_snap_members = m->members;
    } else if (r->in_snap_index != m->last_index || m->offset != r->in_snap.len) {
        uint64_t want = r->in_snap_index == m->last_index ? r->in_snap.len : 0;
        return reply(r, from, m->last_index, want, false);
    }
    if (m->data.len && sy_buf_append(&r->in_snap, m->data.p, m->data.len))
        return SY_ENOMEM;
    if (!m->done)
        return reply(r, from, m->last_index, r->in_snap.len, false);
    int rc = install(r);
    if (rc)
        return rc;
    return reply(r, from, r->snap_index, r->snap_len, true);
}
