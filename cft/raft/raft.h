/* Raft engine (Ongaro, "Consensus: Bridging Theory and Practice", 2014).
 *
 * Public face: sy_raft_ops, an sy_engine_ops (core/engine.h). Everything else
 * in this header is internal to cft/raft/ *.c and only here because C has no
 * package scope; nothing outside cft/raft/ (tests aside) should use it.
 *
 * Host contract beyond core/engine.h (see docs/raft.md):
 *  - pipelined (core/engine.h): step() may come between ready() and
 *    advance(), and at most one ready is in flight;
 *  - rd.hardstate is an opaque blob to store and hand back in boot.hardstate;
 *  - on compaction (SY_IN_SNAPSHOT) the ready carries snap_index/snap_term/
 *    snap_members with snapshot_install == false: store those members beside
 *    the snapshot and hand them back in boot.snap_members;
 *  - before the first input the engine has no notion of time and asks for a
 *    tick at once (next_deadline() == 1). */
#ifndef SY_RAFT_H
#define SY_RAFT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/engine.h"
#include "core/outbox.h"
#include "core/msg.h"
#include "core/buf.h"

extern const sy_engine_ops sy_raft_ops;

/* ---- hardstate blob: version u8 | term u64 LE | voted_for u32 LE |
 *      commit u64 LE (21 bytes). ---- */
#define RAFT_HS_VERSION 1u
#define RAFT_HS_LEN 21u
typedef struct {
    uint64_t term;
    uint32_t vote;     /* SY_NO_NODE if none */
    uint64_t commit;
} raft_hardstate;
void raft_hs_encode(const raft_hardstate *hs, uint8_t out[RAFT_HS_LEN]);
/* Empty blob decodes to the fresh state. SY_ECORRUPT on anything else odd. */
int raft_hs_decode(sy_bytes b, raft_hardstate *out);

/* ---- test-only mutant (cfg.test_behaviour; compiled in only with
 * SYNOD_TESTING, ignored otherwise). A planted bug that the simulator's
 * checks must catch (docs/simulator.md "Mutants"): never use outside tests.
 *  SY_RAFT_MUTANT_OLD_TERM_COMMIT: the leader advances commit by counting
 *    replicas of an entry from an older term (thesis 3.6.2 / Figure 3.7,
 *    "Figure 8"). A correct leader here ships its no-op together with the
 *    old entries, so no follower ever reports a match below it and the
 *    missing term check alone could never fire; the mutant therefore also
 *    writes no no-op when it wins (as in the thesis figure), only when a
 *    ReadIndex needs an entry of its term (6.4), so reads still finish. */
#define SY_RAFT_MUTANT_OLD_TERM_COMMIT 100u
/*  SY_RAFT_MUTANT_FORGET_REJOIN: cfg.rejoin is ignored, so a node on a
 *    replaced disk votes at once (operations.md section 7's hazard). */
#define SY_RAFT_MUTANT_FORGET_REJOIN 101u

/* ===================== internal (cft/raft/ *.c only) ===================== */

/* Entries kept below a snapshot at compaction so a follower slightly behind
 * catches up from the log instead of needing the whole snapshot. */
#define RAFT_COMPACT_KEEP 64u
#define RAFT_DEFAULT_BATCH_MAX 512u
#define RAFT_DEFAULT_BATCH_BYTES (1024u * 1024u)
#define RAFT_DEFAULT_INFLIGHT 64u
#define RAFT_DEFAULT_PENDING 65536u
#define RAFT_MAX_INFLIGHT 1024u

enum raft_pr_state { RAFT_PR_PROBE = 0, RAFT_PR_REPLICATE, RAFT_PR_SNAPSHOT };

/* Leader's view of one peer (thesis 3.5, plus etcd-style flow control). */
typedef struct {
    bool member;          /* voter or learner other than self */
    uint8_t state;
    uint64_t match, next;
    bool probe_sent;      /* probe: one append outstanding */
    bool recent_active;   /* heard from it this check-quorum window (6.2) */
    uint64_t last_resp_ms;/* last response in our term (transfer target choice) */
    bool acked_since_hb;  /* some progress since the last heartbeat tick */
    bool sent_this_ready;
    uint64_t commit_sent;
    bool proved;          /* sent an append with entries carrying a commit
                             of this term (resend_commit) */
    uint64_t read_ack;    /* highest ReadIndex ctx it echoed this term */
    uint64_t *infl;       /* ring of last indices of appends in flight */
    uint32_t infl_head, infl_n;
    uint64_t snap_index, snap_offset;
} raft_progress;

typedef struct {
    uint64_t read_id, ctx, index; /* ctx 0: waiting for a commit in term */
} raft_read;

typedef struct {
    uint32_t client_id;
    uint64_t req_no;
} raft_qreq;

typedef struct raft {
    sy_engine_cfg cfg;
    sy_rng rng;
    uint64_t now;
    bool armed;           /* timers set (first input seen) */

    /* persistent state (3.2, Figure 3.1) */
    uint64_t term;
    uint32_t vote;
    bool hs_dirty;
    uint64_t hs_commit;              /* commit in the last handed-out hardstate */
    uint8_t hs_buf[RAFT_HS_LEN];

    /* in-memory log: ents[i] has index log_start + i */
    sy_entry *ents;
    uint32_t *nreq;       /* requests per entry (leader's pending bound) */
    size_t n_ents, cap_ents;
    uint64_t log_start;
    uint64_t prev_index, prev_term;  /* entry just before log_start */
    uint64_t unstable_from;          /* first index not handed out in a ready */
    uint64_t trunc_from;             /* pending for the next ready, 0 none */
    uint64_t commit, reported;
    uint64_t compact_to;             /* pending for the next ready */

    /* latest snapshot (local or installed), kept to send to followers */
    uint64_t snap_index, snap_term;
    sy_members snap_members;
    uint8_t *snap_data;
    uint32_t snap_len;
    bool snap_install;               /* pending for the next ready */
    bool snap_meta;                  /* compaction meta pending */
    /* incoming InstallSnapshot being assembled */
    uint64_t in_snap_index, in_snap_term;
    sy_members in_snap_members;
    sy_buf in_snap;

    /* membership (chapter 4): in effect as soon as appended */
    sy_members conf;
    uint64_t conf_index;             /* 0: from base_conf */
    sy_members base_conf;            /* config at prev_index */

    /* role */
    uint8_t role;
    uint32_t leader;
    uint64_t election_deadline, heartbeat_deadline, quorum_deadline;
    uint64_t leader_contact;         /* last time a leader was heard from */
    uint64_t votes_yes, votes_no;    /* bitmasks by node id */
    raft_progress prs[SY_MAX_NODES];

    /* leader: client requests waiting for the next ready (batching) */
    sy_bytes *q_raw;                 /* owned copies of the signed requests */
    raft_qreq *q;                    /* parallel to q_raw */
    size_t q_n, q_cap, q_bytes;
    uint64_t inflight_reqs;          /* in uncommitted entries */
    raft_read *reads;
    size_t n_reads, cap_reads;
    uint64_t read_seq;
    bool read_round_open;
    uint64_t read_round_commit;
    uint32_t transfer_target;
    uint64_t transfer_deadline;
    bool timeout_now_sent;
    /* A transfer whose target we picked (raft_on_transfer with SY_NO_NODE)
     * moves on to the next best peer when the target does not take over
     * in time; transfer_skip has the peers that did not in this term (a
     * rejoining node ignores TimeoutNow; raft.c, raft_rejoin_check). */
    bool transfer_auto;
    uint64_t transfer_skip;          /* bit per node id */

    /* effects since the last advance: messages, read states, rejects and
     * memory freed at advance (core/outbox.h); committed entries */
    sy_outbox out;
    sy_committed *committed;
    size_t cap_committed;

    /* cfg.rejoin (raft_rejoin_check): deaf until rejoin_after, then no
     * votes until it holds rejoin_commit, the highest commit index a
     * leader of its term sent it uncapped (an append with entries) */
    bool rejoining;
    bool rejoin_ready;    /* the last ready held everything rejoin needs */
    uint64_t rejoin_after, rejoin_commit;

    /* leaders learned: one per term whose leader this node came to know
     * (itself included); leader_term is the last such term */
    uint64_t leader_changes, leader_term, dropped;
} raft;

/* util / log (raft_log.c) */
/* frees p at the next advance(); out of memory: leaks it (counted) */
void raft_defer_free(raft *r, void *p);
static inline uint64_t raft_last_index(const raft *r)
{
    return r->log_start + r->n_ents - 1;
}
static inline sy_entry *raft_entry(raft *r, uint64_t idx)
{
    return &r->ents[idx - r->log_start];
}
bool raft_term_of(const raft *r, uint64_t idx, uint64_t *term);
uint64_t raft_last_term(const raft *r);
/* Copies data. Applies a config entry at once (4.1). */
int raft_log_append(raft *r, uint64_t term, uint8_t type, const uint8_t *data,
                    uint32_t len, uint32_t nreq);
/* Same, taking ownership of malloc'd data on success. */
int raft_log_append_owned(raft *r, uint64_t term, uint8_t type, uint8_t *data,
                          uint32_t len, uint32_t nreq);
int raft_log_truncate(raft *r, uint64_t from);
int raft_log_compact(raft *r, uint64_t upto);
void raft_conf_at(raft *r, uint64_t idx, sy_members *out);
void raft_conf_recompute(raft *r);
void raft_conf_apply(raft *r, const sy_members *m, uint64_t index);
bool raft_is_voter(const raft *r, uint32_t id);
bool raft_is_learner(const raft *r, uint32_t id);
uint32_t raft_quorum(const raft *r);

/* core (raft.c) */
sy_msg *raft_send(raft *r, uint32_t to, uint8_t type);
void raft_mark_early(raft *r);
void raft_reset_election(raft *r);
int raft_reject(raft *r, uint32_t client_id, uint64_t req_no, int status, uint32_t hint);
int raft_read_state(raft *r, uint64_t read_id, uint64_t index, int status);

/* elections (raft_elect.c) */
void raft_become_follower(raft *r, uint64_t term, uint32_t leader);
int raft_become_leader(raft *r);
int raft_campaign(raft *r, bool transfer);
/* Rejoining (cfg.rejoin; see raft.c): at ready(), whether the log handed
 * out so far holds what it must; at advance(), ends rejoining if it did. */
void raft_rejoin_at_ready(raft *r);
void raft_rejoin_check(raft *r);
bool raft_in_lease(const raft *r);
int raft_recv_vote(raft *r, uint32_t from, const sy_raft_vote *m);
int raft_recv_vote_resp(raft *r, uint32_t from, const sy_raft_vote_resp *m);
int raft_recv_timeout_now(raft *r, uint32_t from, const sy_raft_timeout_now *m);

/* follower side (raft_recv_append.c, raft_recv_snapshot.c) */
int raft_recv_append(raft *r, uint32_t from, const sy_raft_append *m);
int raft_recv_snapshot(raft *r, uint32_t from, const sy_raft_snapshot *m);

/* leader side (raft_replicate.c) */
void raft_pr_reset(raft *r, uint32_t id);
int raft_send_append(raft *r, uint32_t id);
int raft_send_heartbeat(raft *r, uint32_t id);
int raft_bcast_heartbeat(raft *r);
int raft_bcast_append(raft *r);
int raft_maybe_commit(raft *r);
bool raft_commit_in_term(const raft *r);
int raft_recv_append_resp(raft *r, uint32_t from, const sy_raft_append_resp *m);
int raft_recv_snapshot_resp(raft *r, uint32_t from, const sy_raft_snapshot_resp *m);
int raft_leader_tick(raft *r);

/* client-facing (raft_client.c) */
int raft_on_request(raft *r, const sy_input *in);
int raft_flush_requests(raft *r);
void raft_fail_pending(raft *r);
int raft_on_read(raft *r, uint64_t read_id);
int raft_reads_on_commit(raft *r);
int raft_check_reads(raft *r);
int raft_on_transfer(raft *r, uint32_t target);
/* A running transfer's deadline passed (raft_client.c). */
int raft_transfer_expired(raft *r);
int raft_transfer_progress(raft *r, uint32_t id);
int raft_on_conf_change(raft *r, uint32_t node, bool add);
int raft_maybe_promote(raft *r);
int raft_on_snapshot(raft *r, uint64_t index, uint64_t term, sy_bytes data);

#endif
