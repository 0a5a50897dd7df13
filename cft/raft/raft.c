/* Raft engine: construction from durable state, the input dispatcher, and
 * the Ready/Advance effect cycle.
 *
 * Invariants kept here (thesis Figure 3.1 "Rules for all servers", 3.3):
 *  - any message with a higher term makes this node a follower of that term
 *    first (except pre-vote traffic, 9.6, and vote requests ignored under
 *    leader stickiness, 4.2.3/6.2);
 *  - persist-before-send: term and vote changes, appended entries and
 *    truncations are handed out in the same ready as the messages that
 *    depend on them, and core/engine.h makes the host persist first;
 *  - rd.committed only holds entries handed out in this or an earlier
 *    ready, so they are durable once the ready's persist step completes;
 *    the leader counts its own match only up to what it has handed out. */
#include <stdlib.h>
#include <string.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

/* ---------------------------------------------------------- hardstate */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void raft_hs_encode(const raft_hardstate *hs, uint8_t out[RAFT_HS_LEN])
{
    out[0] = RAFT_HS_VERSION;
    put64(out + 1, hs->term);
    for (int i = 0; i < 4; i++)
        out[9 + i] = (uint8_t)(hs->vote >> (8 * i));
    put64(out + 13, hs->commit);
}

int raft_hs_decode(sy_bytes b, raft_hardstate *out)
{
    out->term = 0;
    out->vote = SY_NO_NODE;
    out->commit = 0;
    if (b.len == 0)
        return SY_OK;
    if (b.len != RAFT_HS_LEN)
        return SY_ECORRUPT;
    if (b.p[0] != RAFT_HS_VERSION)
        return SY_EVERSION;
    out->term = get64(b.p + 1);
    out->vote = 0;
    for (int i = 0; i < 4; i++)
        out->vote |= (uint32_t)b.p[9 + i] << (8 * i);
    out->commit = get64(b.p + 13);
    return SY_OK;
}

/* ---------------------------------------------------------- effects */

sy_msg *raft_send(raft *r, uint32_t to, uint8_t type)
{
    sy_msg *m = sy_outbox_msg(&r->out, to, type);
    if (m && to < SY_MAX_NODES)
        r->prs[to].sent_this_ready = true;
    return m;
}

/* The last message queued may leave before this ready's durable write:
 * only the leader's AppendEntries, whose entries the leader counts for
 * itself only after advance() (thesis 10.2.1). */
void raft_mark_early(raft *r)
{
    if (r->out.n_msgs && r->role == SY_ROLE_LEADER)
        r->out.msgs[r->out.n_msgs - 1].early = true;
}

int raft_reject(raft *r, uint32_t client_id, uint64_t req_no, int status, uint32_t hint)
{
    return sy_outbox_reject(&r->out, client_id, req_no, status, hint);
}

int raft_read_state(raft *r, uint64_t read_id, uint64_t index, int status)
{
    return sy_outbox_read(&r->out, read_id, index, status);
}

void raft_reset_election(raft *r)
{
    uint32_t lo = r->cfg.election_min_ms, hi = r->cfg.election_max_ms;
    r->election_deadline = r->now + sy_rng_range(&r->rng, lo, hi - 1);
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
        c->batch_max = c->batch_max ? SY_MAX_BATCH : RAFT_DEFAULT_BATCH_MAX;
    if (!c->batch_bytes_max)
        c->batch_bytes_max = RAFT_DEFAULT_BATCH_BYTES;
    if (c->batch_bytes_max > SY_MAX_ENVELOPE / 2)   /* an append must fit a frame */
        c->batch_bytes_max = SY_MAX_ENVELOPE / 2;
    if (!c->max_inflight)
        c->max_inflight = RAFT_DEFAULT_INFLIGHT;
    if (c->max_inflight > RAFT_MAX_INFLIGHT)
        c->max_inflight = RAFT_MAX_INFLIGHT;
    if (!c->max_pending)
        c->max_pending = RAFT_DEFAULT_PENDING;
}

/* An AppendEntries owns its array of entries (the entries' bytes are the
 * log's). */
static void free_msg(sy_msg *m)
{
    if (m->type == SY_MSG_RAFT_APPEND)
        free(m->u.append.entries);
}

static void raft_free(raft *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_ents; i++)
        free((void *)r->ents[i].data.p);
    sy_outbox_free(&r->out, free_msg);   /* destroyed before advance(): all of it */
    for (size_t i = 0; i < r->q_n; i++)
        free((void *)r->q_raw[i].p);
    for (uint32_t i = 0; i < SY_MAX_NODES; i++)
        free(r->prs[i].infl);
    free(r->ents);
    free(r->nreq);
    free(r->snap_data);
    sy_buf_free(&r->in_snap);
    free(r->q);
    free(r->q_raw);
    free(r->reads);
    free(r->committed);
    free(r);
}

static int raft_create(const sy_engine_cfg *cfg, const sy_engine_boot *boot, void **out)
{
    if (!cfg || !out || cfg->n == 0 || cfg->n > SY_MAX_NODES || cfg->self >= SY_MAX_NODES)
        return SY_EINVAL;
    raft *r = calloc(1, sizeof *r);
    if (!r)
        return SY_ENOMEM;
    int rc = SY_ENOMEM;
    r->cfg = *cfg;
    cfg_defaults(&r->cfg);
    sy_rng_seed(&r->rng, cfg->rng_seed);
    sy_buf_init(&r->in_snap);
    r->vote = SY_NO_NODE;
    r->leader = SY_NO_NODE;
    r->transfer_target = SY_NO_NODE;
    for (uint32_t i = 0; i < SY_MAX_NODES; i++) {
        r->prs[i].infl = calloc(r->cfg.max_inflight, sizeof(uint64_t));
        if (!r->prs[i].infl)
            goto err_free_raft;
    }

    sy_engine_boot empty;
    memset(&empty, 0, sizeof empty);
    if (!boot)
        boot = &empty;
    raft_hardstate hs;
    rc = raft_hs_decode(boot->hardstate, &hs);
    if (rc)
        goto err_free_raft;
    if (hs.term > SY_INDEX_MAX || hs.commit > SY_INDEX_MAX || boot->snap_index > SY_INDEX_MAX ||
        boot->snap_term > SY_INDEX_MAX || boot->applied > SY_INDEX_MAX) {
        rc = SY_ECORRUPT;
        goto err_free_raft;
    }
    r->term = hs.term;
    r->vote = hs.vote;

    /* snapshot and base configuration */
    r->snap_index = boot->snap_index;
    r->snap_term = boot->snap_term;
    r->prev_index = boot->snap_index;
    r->prev_term = boot->snap_term;
    r->log_start = boot->snap_index + 1;
    if (boot->snap_members.n_voters > 0) {
        r->base_conf = boot->snap_members;
    } else {
        memset(&r->base_conf, 0, sizeof r->base_conf);
        r->base_conf.n_voters = cfg->n;
        for (uint32_t i = 0; i < cfg->n; i++)
            r->base_conf.voters[i] = i;
    }
    r->snap_members = r->base_conf;
    if (boot->snap_data.len) {
        r->snap_data = malloc(boot->snap_data.len);
        if (!r->snap_data) {
            rc = SY_ENOMEM;
            goto err_free_raft;
        }
        memcpy(r->snap_data, boot->snap_data.p, boot->snap_data.len);
        r->snap_len = boot->snap_data.len;
    }
    raft_conf_apply(r, &r->base_conf, 0);

    /* persisted entries; anything at or below the snapshot is redundant */
    for (size_t i = 0; i < boot->n_entries; i++) {
        const sy_entry *e = &boot->entries[i];
        if (e->index <= r->snap_index)
            continue;
        if (e->index != raft_last_index(r) + 1 || e->term < raft_last_term(r) || e->term > r->term) {
            rc = SY_ECORRUPT;
            goto err_free_raft;
        }
        rc = raft_log_append(r, e->term, e->type, e->data.p, e->data.len, 0);
        if (rc)
            goto err_free_raft;
    }
    r->unstable_from = raft_last_index(r) + 1;
    r->commit = hs.commit > r->snap_index ? hs.commit : r->snap_index;
    if (boot->applied > r->commit)
        r->commit = boot->applied;
    if (r->commit > raft_last_index(r)) {
        rc = SY_ECORRUPT;
        goto err_free_raft;
    }
    r->hs_commit = r->commit;
    r->reported = boot->applied > r->snap_index ? boot->applied : r->snap_index;
    r->role = SY_ROLE_FOLLOWER;
    /* a lone voter has nobody to catch up from, nor anyone to mislead */
    r->rejoining = cfg->rejoin && r->conf.n_voters > 1;
#ifdef SYNOD_TESTING
    if (cfg->test_behaviour == SY_RAFT_MUTANT_FORGET_REJOIN)
        r->rejoining = false;   /* planted bug (raft.h) */
#endif
    *out = r;
    return SY_OK;

err_free_raft:
    raft_free(r);
    return rc;
}

static void raft_destroy(void *e)
{
    raft_free(e);
}

/* ---------------------------------------------------------- step */

static bool msg_term(const sy_msg *m, uint64_t *term)
{
    switch (m->type) {
    case SY_MSG_RAFT_VOTE: *term = m->u.vote.term; return true;
    case SY_MSG_RAFT_VOTE_RESP: *term = m->u.vote_resp.term; return true;
    case SY_MSG_RAFT_APPEND: *term = m->u.append.term; return true;
    case SY_MSG_RAFT_APPEND_RESP: *term = m->u.append_resp.term; return true;
    case SY_MSG_RAFT_SNAPSHOT: *term = m->u.snap.term; return true;
    case SY_MSG_RAFT_SNAPSHOT_RESP: *term = m->u.snap_resp.term; return true;
    case SY_MSG_RAFT_TIMEOUT_NOW: *term = m->u.timeout_now.term; return true;
    default: return false;
    }
}

static int step_msg(raft *r, uint32_t from, const sy_msg *m)
{
    uint64_t t;
    if (from >= SY_MAX_NODES || from == r->cfg.self || !msg_term(m, &t))
        return SY_EINVAL;
    if (t > r->term) {
        /* Figure 3.1: a higher term demotes us, except for traffic that by
         * design does not change terms (pre-vote, 9.6) and for vote requests
         * while we believe a leader is alive (stickiness, 4.2.3). */
        if (m->type == SY_MSG_RAFT_VOTE) {
            if (!m->u.vote.transfer && raft_in_lease(r))
                return SY_OK;   /* ignored: no reply, no term change */
            if (!m->u.vote.prevote)
                raft_become_follower(r, t, SY_NO_NODE);
        } else if (m->type == SY_MSG_RAFT_VOTE_RESP && m->u.vote_resp.prevote &&
                   m->u.vote_resp.granted) {
            /* granted pre-votes carry the proposed term */
        } else {
            bool from_leader = m->type == SY_MSG_RAFT_APPEND || m->type == SY_MSG_RAFT_SNAPSHOT ||
                               m->type == SY_MSG_RAFT_TIMEOUT_NOW;
            raft_become_follower(r, t, from_leader ? from : SY_NO_NODE);
        }
    }
    switch (m->type) {
    case SY_MSG_RAFT_VOTE: return raft_recv_vote(r, from, &m->u.vote);
    case SY_MSG_RAFT_VOTE_RESP: return raft_recv_vote_resp(r, from, &m->u.vote_resp);
    case SY_MSG_RAFT_APPEND: return raft_recv_append(r, from, &m->u.append);
    case SY_MSG_RAFT_APPEND_RESP: return raft_recv_append_resp(r, from, &m->u.append_resp);
    case SY_MSG_RAFT_SNAPSHOT: return raft_recv_snapshot(r, from, &m->u.snap);
    case SY_MSG_RAFT_SNAPSHOT_RESP: return raft_recv_snapshot_resp(r, from, &m->u.snap_resp);
    case SY_MSG_RAFT_TIMEOUT_NOW: return raft_recv_timeout_now(r, from, &m->u.timeout_now);
    default: return SY_EINVAL;
    }
}

static int step_tick(raft *r)
{
    if (r->role == SY_ROLE_LEADER)
        return raft_leader_tick(r);
    if (raft_is_voter(r, r->cfg.self) && r->now >= r->election_deadline)
        return raft_campaign(r, false);
    return SY_OK;
}

static int raft_step(void *e, const sy_input *in)
{
    raft *r = e;
    if (in->now_ms > r->now)
        r->now = in->now_ms;
    if (!r->armed) {
        r->armed = true;
        raft_reset_election(r);
        r->rejoin_after = r->now + sy_rejoin_wait_ms(&r->cfg);
    }
    /* rejoining: deaf at first (raft_rejoin_check) */
    if (r->rejoining && in->kind == SY_IN_MSG && r->now < r->rejoin_after)
        return SY_OK;
    int rc;
    switch (in->kind) {
    case SY_IN_TICK: rc = step_tick(r); break;
    case SY_IN_MSG:
        rc = in->u.msg.msg ? step_msg(r, in->u.msg.from, in->u.msg.msg) : SY_EINVAL;
        break;
    case SY_IN_REQUEST: rc = raft_on_request(r, in); break;
    case SY_IN_READ: rc = raft_on_read(r, in->u.read.read_id); break;
    case SY_IN_SNAPSHOT:
        rc = raft_on_snapshot(r, in->u.snapshot.index, in->u.snapshot.term, in->u.snapshot.data);
        break;
    case SY_IN_TRANSFER: rc = raft_on_transfer(r, in->u.transfer.target); break;
    case SY_IN_CONF_CHANGE: rc = raft_on_conf_change(r, in->u.conf.node, in->u.conf.add); break;
    case SY_IN_APPLIED: rc = SY_OK; break;   /* PBFT checkpoints; nothing for Raft */
    case SY_IN_SESSIONS: rc = SY_OK; break;  /* PBFT's client table; Raft keeps none */
    default: rc = SY_EINVAL; break;
    }
    if (rc != SY_OK && rc != SY_EFATAL)
        r->dropped++;
    return rc;
}

/* ---------------------------------------------------------- ready */

static void raft_ready(void *e, sy_ready *rd)
{
    raft *r = e;
    memset(rd, 0, sizeof *rd);
    if (r->role == SY_ROLE_LEADER) {
        if (raft_flush_requests(r) != SY_OK)
            r->dropped++;
    }
    /* Hand out unstable entries: from here on the leader may count them. */
    uint64_t last = raft_last_index(r);
    rd->truncate_from = r->trunc_from;
    if (r->unstable_from <= last) {
        rd->entries = raft_entry(r, r->unstable_from);
        rd->n_entries = last - r->unstable_from + 1;
    }
    r->unstable_from = last + 1;
    r->trunc_from = 0;
    raft_rejoin_at_ready(r);
    if (r->role == SY_ROLE_LEADER)
        raft_maybe_commit(r);
    if (r->role == SY_ROLE_LEADER)   /* maybe_commit may have stepped down (4.2.2) */
        raft_bcast_append(r);
    /* Only the commit index moved: lazy (core/engine.h). The thesis keeps
     * commitIndex volatile (Figure 3.1); we persist it so a restart can
     * re-apply its own committed prefix, but losing the latest value in a
     * crash is harmless: it is learnt again from the leader. */
    bool commit_only = !r->hs_dirty && r->commit != r->hs_commit;
    if (r->commit != r->hs_commit)
        r->hs_dirty = true;
    if (r->hs_dirty) {
        rd->hardstate_lazy = commit_only;
        r->hs_commit = r->commit;
        raft_hardstate hs = { r->term, r->vote, r->commit };
        raft_hs_encode(&hs, r->hs_buf);
        rd->hardstate_dirty = true;
        rd->hardstate.p = r->hs_buf;
        rd->hardstate.len = RAFT_HS_LEN;
        r->hs_dirty = false;
    }
    if (r->snap_install || r->snap_meta) {
        rd->snapshot_install = r->snap_install;
        rd->snap_index = r->snap_index;
        rd->snap_term = r->snap_term;
        rd->snap_members = r->snap_members;
        if (r->snap_install) {
            rd->snap_data.p = r->snap_data;
            rd->snap_data.len = r->snap_len;
        }
        r->snap_install = r->snap_meta = false;
    }
    rd->compact_to = r->compact_to;
    r->compact_to = 0;

    /* commits: never past what this ready makes durable */
    uint64_t upto = r->commit < last ? r->commit : last;
    if (upto > r->reported) {
        size_t n = upto - r->reported;
        if (sy_grow((void **)&r->committed, &r->cap_committed, n, sizeof(sy_committed)) == SY_OK) {
            for (size_t i = 0; i < n; i++) {
                uint64_t idx = r->reported + 1 + i;
                sy_committed *c = &r->committed[i];
                c->entry = *raft_entry(r, idx);
                /* signed by the host, off the ack's and reply's path (core/engine.h) */
                c->evidence = (sy_bytes){NULL, 0};
                c->attest = "SYRC";
                if (r->role == SY_ROLE_LEADER) {
                    uint32_t k = r->nreq[idx - r->log_start];
                    r->inflight_reqs = r->inflight_reqs > k ? r->inflight_reqs - k : 0;
                }
            }
            rd->committed = r->committed;
            rd->n_committed = n;
            r->reported = upto;
        }
    }
    sy_outbox_hand_out(&r->out, rd);
    /* The round's heartbeats are handed out now (and may leave at once:
     * they are early). A read stepped in after this must not join a round
     * whose heartbeats left before it arrived (thesis 6.4): it opens a new
     * one. */
    r->read_round_open = false;
}

static void raft_advance(void *e, uint64_t now_ms)
{
    raft *r = e;
    if (now_ms > r->now)
        r->now = now_ms;
    sy_outbox_release(&r->out, free_msg);
    for (uint32_t i = 0; i < SY_MAX_NODES; i++)
        r->prs[i].sent_this_ready = false;
    raft_rejoin_check(r);
}

/* Rejoining after a replaced disk (cfg.rejoin). Thesis 3.8 says a server
 * that lost its persistent state must rejoin under a new identity through
 * a membership change; synod's daemon has no membership change yet, so the
 * node keeps its identity and follows instead the rule Paxos Made Live
 * (Chandra et al., 2007, 5.1) gives for a replica with a corrupted disk:
 * take part without voting until a decision made without you has been
 * seen. What its old self did is unknown, so:
 *  - it is deaf (drops every message) until rejoin_after, three election
 *    timeouts and a heartbeat after its first input: by then an election
 *    its old self voted in has ended (a candidate gives up within two
 *    timeouts), and a leader its old self kept in office -- with a vote or
 *    with acknowledgements it no longer holds -- has lost its quorum and
 *    stepped down (check-quorum, 6.2; the host refuses --rejoin without
 *    it). Acknowledging a stale leader's entries before that could let it
 *    commit beside a newer leader its old self had voted for;
 *  - then it grants no vote or pre-vote, runs no election and ignores
 *    TimeoutNow, but acknowledges: it acknowledges only what it holds;
 *  - it votes again once it durably holds the log up to rejoin_commit,
 *    the highest commit index a leader sent it in an append with entries
 *    (an append's commit is the leader's own; a heartbeat's is capped at
 *    what the follower holds -- so that an idle cluster sends one, a
 *    leader re-sends its last entry to a follower that holds everything
 *    but got no commit of its term yet: raft_replicate.c,
 *    resend_commit), and that entry is of its current term: a
 *    leader that committed an entry of its own term appended it after all
 *    its earlier entries, and by Leader Completeness those include every
 *    entry committed before it; and as it was sent after this node started,
 *    every entry any node had applied by then -- every write a client was
 *    told of, with the forgotten acknowledgements -- is at or below it. (An
 *    entry stored on a majority that no leader had yet counted may be lost
 *    with the forgotten acknowledgement; nobody applied it, and its client
 *    retries it.) "Durably" is decided at ready(): if the log handed out by
 *    then holds it (commit at or above it, following the leader of its
 *    term, no install pending), the advance() of that ready ends rejoining.
 *    Deciding it at advance() against the commit of that moment would keep
 *    a node under steady load from ever finishing: appends stepped in
 *    during the write move its commit past what the write made durable.
 * The timing (the deaf period) assumes messages are not delayed and nodes
 * not paused for longer than it lasts, as Raft's own timeouts do for
 * liveness; here it is for safety, which docs/operations.md says. */
void raft_rejoin_at_ready(raft *r)
{
    uint64_t t;
    r->rejoin_ready = r->rejoining && r->role == SY_ROLE_FOLLOWER && r->leader != SY_NO_NODE &&
                      r->rejoin_commit > 0 && r->commit >= r->rejoin_commit && !r->snap_install &&
                      raft_term_of(r, r->rejoin_commit, &t) && t == r->term;
}

void raft_rejoin_check(raft *r)
{
    if (r->rejoin_ready && r->now >= r->rejoin_after)
        r->rejoining = false;
    r->rejoin_ready = false;
}

static void raft_status(void *e, sy_engine_status *st)
{
    raft *r = e;
    memset(st, 0, sizeof *st);
    st->role = r->role;
    if (r->role == SY_ROLE_FOLLOWER && !raft_is_voter(r, r->cfg.self) &&
        raft_is_learner(r, r->cfg.self))
        st->role = SY_ROLE_LEARNER;
    st->term = r->term;
    st->leader = r->leader;
    st->last_index = raft_last_index(r);
    st->commit_index = r->commit;
    st->snap_index = r->snap_index;
    st->leader_changes = r->leader_changes;
    st->dropped = r->dropped + r->out.dropped;
    st->rejoining = r->rejoining;
}

static uint64_t raft_next_deadline(void *e)
{
    raft *r = e;
    if (!r->armed)
        return 1;
    if (r->role == SY_ROLE_LEADER) {
        uint64_t d = r->heartbeat_deadline;
        if (r->cfg.check_quorum && r->quorum_deadline < d)
            d = r->quorum_deadline;
        if (r->transfer_target != SY_NO_NODE && r->transfer_deadline < d)
            d = r->transfer_deadline;
        return d;
    }
    if (!raft_is_voter(r, r->cfg.self))
        return 0;
    return r->election_deadline;
}

const sy_engine_ops sy_raft_ops = {
    .name = "raft",
    .create = raft_create,
    .destroy = raft_destroy,
    .step = raft_step,
    .ready = raft_ready,
    .advance = raft_advance,
    .pipelined = true,
    .status = raft_status,
    .next_deadline = raft_next_deadline,
};
