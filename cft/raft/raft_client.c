/* Client- and operator-facing inputs: requests (batched), ReadIndex reads,
 * leadership transfer, membership changes, local snapshots.
 *
 * Invariants:
 *  - Only a leader that is not transferring orders requests; each request
 *    lands in exactly one entry or one reject. Requests stepped between two
 *    ready() calls are packed into as few entries as batch_max and
 *    batch_bytes_max allow (group commit, 10.2.1). Queued plus uncommitted
 *    requests stay below max_pending.
 *  - ReadIndex (6.4): a read is answered SY_OK with index = the commit index
 *    recorded when it arrived, only once (a) the leader has committed an
 *    entry of its own term and (b) a quorum acknowledged a heartbeat sent
 *    after the read arrived. Losing leadership fails all pending reads.
 *  - Membership (4.1-4.3): one server at a time, at most one uncommitted
 *    config entry, and none until the leader committed an entry of its term.
 *    New servers join as learners and are promoted once caught up to commit.
 *  - Transfer (3.10): stop taking requests, catch the target up, send
 *    TimeoutNow; abort after an election timeout. */
#include <stdlib.h>
#include <string.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

/* ---------------------------------------------------------- requests */

int raft_on_request(raft *r, const sy_input *in)
{
    const sy_client_req *req = in->u.request.req;
    if (!req || !in->u.request.raw || in->u.request.raw_len == 0 ||
        in->u.request.raw_len > SY_MAX_ENVELOPE)
        return SY_EINVAL;
    if (r->role != SY_ROLE_LEADER)
        return raft_reject(r, req->client_id, req->req_no, SY_ENOTLEADER, r->leader);
    if (r->transfer_target != SY_NO_NODE)
        return raft_reject(r, req->client_id, req->req_no, SY_ENOTLEADER, r->transfer_target);
    if (r->q_n + r->inflight_reqs >= r->cfg.max_pending) {
        r->dropped++;
        return raft_reject(r, req->client_id, req->req_no, SY_EFULL, r->cfg.self);
    }
    size_t cap2 = r->q_cap;
    if (sy_grow((void **)&r->q, &r->q_cap, r->q_n + 1, sizeof(raft_qreq)))
        return SY_ENOMEM;
    if (sy_grow((void **)&r->q_raw, &cap2, r->q_cap, sizeof(sy_bytes))) {
        r->q_cap = cap2 < r->q_cap ? cap2 : r->q_cap;
        return SY_ENOMEM;
    }
    uint8_t *copy = malloc(in->u.request.raw_len);
    if (!copy)
        return SY_ENOMEM;
    memcpy(copy, in->u.request.raw, in->u.request.raw_len);
    r->q_raw[r->q_n].p = copy;
    r->q_raw[r->q_n].len = (uint32_t)in->u.request.raw_len;
    raft_qreq *q = &r->q[r->q_n++];
    q->client_id = req->client_id;
    q->req_no = req->req_no;
    r->q_bytes += in->u.request.raw_len;
    return SY_OK;
}

static int flush_one(raft *r, size_t from, size_t n)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sy_batch_encode(r->q_raw + from, (uint32_t)n, &data, &len);
    if (rc)
        return rc;
    if (len > UINT32_MAX) {
        free(data);
        return SY_ETOOBIG;
    }
    rc = raft_log_append_owned(r, r->term, SY_ENTRY_NORMAL, data, (uint32_t)len, (uint32_t)n);
    if (rc) {
        free(data);
        return rc;
    }
    r->inflight_reqs += n;
    return SY_OK;
}

int raft_flush_requests(raft *r)
{
    size_t i = 0;
    int rc = SY_OK;
    while (i < r->q_n && rc == SY_OK) {
        size_t n = 0;
        uint64_t bytes = 0;
        while (i + n < r->q_n && n < r->cfg.batch_max) {
            uint32_t len = r->q_raw[i + n].len;
            if (n > 0 && bytes + len > r->cfg.batch_bytes_max)
                break;
            bytes += len;
            n++;
        }
        rc = flush_one(r, i, n);
        if (rc == SY_OK)
            i += n;
    }
    for (size_t k = 0; k < r->q_n; k++) {
        if (k >= i)   /* could not be logged: tell the client now */
            raft_reject(r, r->q[k].client_id, r->q[k].req_no, rc, r->cfg.self);
        free((void *)r->q_raw[k].p);
    }
    r->q_n = 0;
    r->q_bytes = 0;
    return rc;
}

void raft_fail_pending(raft *r)
{
    for (size_t k = 0; k < r->q_n; k++) {
        raft_reject(r, r->q[k].client_id, r->q[k].req_no, SY_ENOTLEADER, r->leader);
        free((void *)r->q_raw[k].p);
    }
    r->q_n = 0;
    r->q_bytes = 0;
    r->inflight_reqs = 0;
    for (size_t k = 0; k < r->n_reads; k++)
        raft_read_state(r, r->reads[k].read_id, 0, SY_ENOTLEADER);
    r->n_reads = 0;
    r->read_round_open = false;
    r->transfer_target = SY_NO_NODE;
}

/* ---------------------------------------------------------- ReadIndex */

static int open_round(raft *r)
{
    if (r->read_round_open && r->read_round_commit == r->commit)
        return SY_OK;
    r->read_seq++;
    r->read_round_open = true;
    r->read_round_commit = r->commit;
    for (uint32_t i = 0; i < r->conf.n_voters; i++) {
        uint32_t id = r->conf.voters[i];
        if (id == r->cfg.self)
            continue;
        int rc = raft_send_heartbeat(r, id);
        if (rc)
            return rc;
    }
    return SY_OK;
}

int raft_on_read(raft *r, uint64_t read_id)
{
    if (r->role != SY_ROLE_LEADER)
        return raft_read_state(r, read_id, 0, SY_ENOTLEADER);
    if (r->n_reads >= r->cfg.max_pending) {
        r->dropped++;
        return raft_read_state(r, read_id, 0, SY_EFULL);
    }
    if (sy_grow((void **)&r->reads, &r->cap_reads, r->n_reads + 1, sizeof(raft_read)))
        return SY_ENOMEM;
    raft_read *rd = &r->reads[r->n_reads++];
    rd->read_id = read_id;
    rd->ctx = 0;
    rd->index = 0;
#ifdef SYNOD_TESTING
    /* planted bug (raft.h SY_RAFT_MUTANT_OLD_TERM_COMMIT): the leader's
     * no-op is appended only once a read needs it */
    if (r->cfg.test_behaviour == SY_RAFT_MUTANT_OLD_TERM_COMMIT && raft_last_term(r) != r->term) {
        int arc = raft_log_append(r, r->term, SY_ENTRY_NOOP, NULL, 0, 0);
        if (arc)
            return arc;
    }
#endif
    if (!raft_commit_in_term(r))
        return SY_OK;   /* wait for our no-op to commit (6.4 step 1) */
    int rc = open_round(r);
    if (rc)
        return rc;
    rd = &r->reads[r->n_reads - 1];
    rd->ctx = r->read_seq;
    rd->index = r->commit;
    return raft_check_reads(r);
}

int raft_reads_on_commit(raft *r)
{
    bool waiting = false;
    for (size_t k = 0; k < r->n_reads; k++)
        if (r->reads[k].ctx == 0)
            waiting = true;
    if (!waiting || !raft_commit_in_term(r))
        return SY_OK;
    r->read_round_open = false;   /* fresh round: these reads came earlier */
    int rc = open_round(r);
    if (rc)
        return rc;
    for (size_t k = 0; k < r->n_reads; k++) {
        if (r->reads[k].ctx == 0) {
            r->reads[k].ctx = r->read_seq;
            r->reads[k].index = r->commit;
        }
    }
    return raft_check_reads(r);
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int raft_check_reads(raft *r)
{
    if (r->role != SY_ROLE_LEADER || r->n_reads == 0 || r->conf.n_voters == 0)
        return SY_OK;
    uint64_t acks[SY_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->conf.n_voters; i++) {
        uint32_t id = r->conf.voters[i];
        acks[n++] = id == r->cfg.self ? UINT64_MAX : r->prs[id].read_ack;
    }
    qsort(acks, n, sizeof acks[0], cmp_desc);
    uint64_t confirmed = acks[raft_quorum(r) - 1];
    size_t k = 0;
    while (k < r->n_reads && r->reads[k].ctx != 0 && r->reads[k].ctx <= confirmed) {
        int rc = raft_read_state(r, r->reads[k].read_id, r->reads[k].index, SY_OK);
        if (rc)
            break;
        k++;
    }
    if (k) {
        memmove(r->reads, r->reads + k, (r->n_reads - k) * sizeof(raft_read));
        r->n_reads -= k;
    }
    return SY_OK;
}

/* ---------------------------------------------------------- transfer */

int raft_transfer_progress(raft *r, uint32_t id)
{
    if (r->transfer_target != id || r->timeout_now_sent)
        return SY_OK;
    if (r->prs[id].match < raft_last_index(r))
        return raft_send_append(r, id);
    sy_msg *m = raft_send(r, id, SY_MSG_RAFT_TIMEOUT_NOW);
    if (!m)
        return SY_ENOMEM;
    m->u.timeout_now.term = r->term;
    r->timeout_now_sent = true;
    return SY_OK;
}

/* The voter other than us with the highest match index (lowest id on a
 * tie) among those that answered us within the last election_min_ms and
 * are not in skip: the thesis's advice (3.10) for picking a transfer
 * target, since it needs the fewest entries before it can take over, and
 * a peer that has gone quiet may be down (its match stays where it was).
 * SY_NO_NODE if no voter qualifies. */
static uint32_t best_target(const raft *r, uint64_t skip)
{
    uint32_t best = SY_NO_NODE;
    for (uint32_t i = 0; i < SY_MAX_NODES; i++) {
        if (i == r->cfg.self || !raft_is_voter(r, i) || !r->prs[i].last_resp_ms ||
            r->prs[i].last_resp_ms + r->cfg.election_min_ms <= r->now || (skip >> i & 1u))
            continue;
        if (best == SY_NO_NODE || r->prs[i].match > r->prs[best].match)
            best = i;
    }
    return best;
}

static int start_transfer(raft *r, uint32_t target, bool chosen)
{
    r->transfer_target = target;
    r->transfer_auto = chosen;
    r->transfer_deadline = r->now + r->cfg.election_max_ms;
    r->timeout_now_sent = false;
    return raft_transfer_progress(r, target);
}

int raft_on_transfer(raft *r, uint32_t target)
{
    bool chosen = target == SY_NO_NODE;
    if (r->role != SY_ROLE_LEADER)
        return SY_ENOTLEADER;
    /* a peer that did not take over when asked this term comes last */
    if (chosen && (target = best_target(r, r->transfer_skip)) == SY_NO_NODE &&
        (target = best_target(r, 0)) == SY_NO_NODE)
        return SY_EUNREACH; /* nobody to hand over to: alone, or peers quiet */
    if (target == r->cfg.self)
        return SY_OK;
    if (target >= SY_MAX_NODES || !raft_is_voter(r, target))
        return SY_EINVAL;
    if (r->transfer_target == target)
        return SY_OK;
    return start_transfer(r, target, chosen);
}

/* The transfer's time is up and we still lead (3.10: abort and take
 * requests again). Deviation: a target we picked ourselves is passed over
 * for the next best peer, until none is left. The thesis's transfer has
 * one target; but a stopping leader (synod on SIGTERM) asks for any, and
 * the most caught-up peer may be one that will not run -- a node still
 * rejoining after a replaced disk -- while another would. */
int raft_transfer_expired(raft *r)
{
    uint32_t next;
    bool chosen = r->transfer_auto;
    if (r->transfer_target < SY_MAX_NODES)
        r->transfer_skip |= 1ull << r->transfer_target;
    r->transfer_target = SY_NO_NODE;
    r->transfer_auto = false;
    if (!chosen || (next = best_target(r, r->transfer_skip)) == SY_NO_NODE)
        return SY_OK;
    return start_transfer(r, next, true);
}

/* ---------------------------------------------------------- membership */

static int append_conf(raft *r, const sy_members *m)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sy_members_encode(m, &data, &len);
    if (rc)
        return rc;
    rc = raft_log_append_owned(r, r->term, SY_ENTRY_CONFIG, data, (uint32_t)len, 0);
    if (rc)
        free(data);
    return rc;
}

static bool conf_busy(const raft *r)
{
    return r->conf_index > r->commit || !raft_commit_in_term(r);
}

static bool list_remove(uint32_t *v, uint32_t *n, uint32_t id)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (v[i] == id) {
            memmove(v + i, v + i + 1, (*n - i - 1) * sizeof *v);
            (*n)--;
            return true;
        }
    }
    return false;
}

int raft_on_conf_change(raft *r, uint32_t node, bool add)
{
    if (r->role != SY_ROLE_LEADER)
        return SY_ENOTLEADER;
    if (node >= SY_MAX_NODES)
        return SY_EINVAL;
    if (conf_busy(r) || r->transfer_target != SY_NO_NODE)
        return SY_EFULL;   /* one change at a time (4.1) */
    sy_members m = r->conf;
    if (add) {
        if (raft_is_voter(r, node) || raft_is_learner(r, node))
            return SY_EEXIST;
        if (m.n_learners >= SY_MAX_NODES || m.n_voters + m.n_learners >= SY_MAX_NODES)
            return SY_EFULL;
        m.learners[m.n_learners++] = node;
    } else if (!list_remove(m.learners, &m.n_learners, node)) {
        if (!list_remove(m.voters, &m.n_voters, node))
            return SY_ENOTFOUND;
        if (m.n_voters == 0)
            return SY_EINVAL;
    }
    return append_conf(r, &m);
}

int raft_maybe_promote(raft *r)
{
    if (r->role != SY_ROLE_LEADER || conf_busy(r) || r->transfer_target != SY_NO_NODE)
        return SY_OK;
    for (uint32_t i = 0; i < r->conf.n_learners; i++) {
        uint32_t id = r->conf.learners[i];
        /* caught up: it holds everything committed so far */
        if (r->prs[id].member && r->prs[id].match >= r->commit) {
            sy_members m = r->conf;
            list_remove(m.learners, &m.n_learners, id);
            m.voters[m.n_voters++] = id;
            return append_conf(r, &m);
        }
    }
    return SY_OK;
}

/* ---------------------------------------------------------- snapshots */

int raft_on_snapshot(raft *r, uint64_t index, uint64_t term, sy_bytes data)
{
    uint64_t t;
    if (index <= r->snap_index)
        return SY_OK;   /* already have a newer one */
    if (index > r->commit || index >= r->unstable_from || !raft_term_of(r, index, &t) || t != term)
        return SY_EINVAL;
    uint8_t *copy = NULL;
    if (data.len) {
        copy = malloc(data.len);
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, data.p, data.len);
    }
    raft_conf_at(r, index, &r->snap_members);
    raft_defer_free(r, r->snap_data);
    r->snap_data = copy;
    r->snap_len = data.len;
    r->snap_index = index;
    r->snap_term = term;
    r->snap_meta = true;
    uint64_t keep = r->cfg.compact_keep ? r->cfg.compact_keep : RAFT_COMPACT_KEEP;
    uint64_t upto = index > keep ? index - keep : 0;
    return raft_log_compact(r, upto);
}
