/* Multi-Paxos engine (Lamport, "Paxos Made Simple" 2001; van Renesse &
 * Altinbuken, "Paxos Made Moderately Complex" 2015, hereafter PMMC).
 *
 * Public face: sy_paxos_ops, an sy_engine_ops (core/engine.h). Everything
 * else here is internal to cft/paxos/ files (and the unit tests); it lives in
 * this header only because C has no package scope.
 *
 * Every node plays all of PMMC's roles: acceptor (its log is the acceptor
 * state), replica/learner (commit prefix, rd.committed) and, when it wins
 * phase 1, leader (proposer with scouts and commanders folded into per-slot
 * ack sets). See docs/paxos.md for the design note.
 *
 * Host contract beyond core/engine.h (same as the Raft engine's):
 *  - pipelined (core/engine.h): step() may come between ready() and
 *    advance(), and at most one ready is in flight;
 *  - rd.hardstate is an opaque blob to store and hand back in boot.hardstate;
 *  - log entries are stored as handed out: index = slot, term = ballot at
 *    which this acceptor accepted the value (0: a gap placeholder, nothing
 *    accepted; never at or below the commit index);
 *  - rd.entries may start at or below the stored last index: the stored
 *    suffix from entries[0].index is replaced (storage's append rule);
 *  - on compaction (SY_IN_SNAPSHOT) the ready carries snap_index/snap_term/
 *    snap_members with snapshot_install == false, as for Raft;
 *  - before the first input the engine asks for a tick at once. */
#ifndef SY_PAXOS_H
#define SY_PAXOS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/engine.h"
#include "core/outbox.h"
#include "core/msg.h"
#include "core/buf.h"

extern const sy_engine_ops sy_paxos_ops;

/* ---- ballots: round with round % PX_BALLOT_MOD == proposer id ---- */
#define PX_BALLOT_MOD ((uint64_t)SY_MAX_NODES)
static inline uint32_t px_ballot_node(uint64_t b) { return (uint32_t)(b % PX_BALLOT_MOD); }
/* Smallest ballot owned by node that is greater than above. */
static inline uint64_t px_ballot_next(uint64_t above, uint32_t node)
{
    uint64_t b = above - above % PX_BALLOT_MOD + node;
    if (b <= above || b < PX_BALLOT_MOD)   /* round 0 unused: 0 means none */
        b += PX_BALLOT_MOD;
    return b;
}

/* ---- values: u64 BE origin ballot | payload ----
 * A slot's value carries the ballot it was first proposed in. Re-proposals
 * at takeover keep it, so every node reports a chosen value with the same
 * entry term, whichever ballot it learned it in (like a Raft entry keeps the
 * term it was created in). Committed entries expose term = origin and data =
 * payload (the sy_batch_encode batch; empty for a no-op). */
#define PX_VAL_HDR 8u
static inline uint64_t px_val_origin(const sy_entry *e)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < PX_VAL_HDR; i++)
        v = (v << 8) | e->data.p[i];
    return v;
}
static inline void px_val_put_origin(uint8_t *p, uint64_t b)
{
    for (int i = PX_VAL_HDR - 1; i >= 0; i--) {
        p[i] = (uint8_t)b;
        b >>= 8;
    }
}
/* A value from the wire or the disk is well formed (placeholders aside). */
static inline bool px_val_ok(const sy_entry *e)
{
    return e->data.len >= PX_VAL_HDR && px_val_origin(e) != 0;
}

/* ---- hardstate blob: version u8 | promised u64 LE | commit u64 LE ---- */
#define PX_HS_VERSION 1u
#define PX_HS_LEN 17u
typedef struct {
    uint64_t promised;   /* highest ballot promised (phase 1b / 2b) */
    uint64_t commit;     /* chosen prefix known to this node */
} px_hardstate;
void px_hs_encode(const px_hardstate *hs, uint8_t out[PX_HS_LEN]);
/* Empty blob: fresh state. SY_ECORRUPT / SY_EVERSION otherwise if odd. */
int px_hs_decode(sy_bytes b, px_hardstate *out);

/* ---- test-only mutant (cfg.test_behaviour; compiled in only with
 * SYNOD_TESTING, ignored otherwise). A planted bug that the simulator's
 * checks must catch (docs/simulator.md "Mutants"): never use outside tests.
 *  SY_PAXOS_MUTANT_IGNORE_PROMISED_VALUES: at takeover the new leader
 *    ignores the accepted values reported in promises (and in its own log)
 *    for slots not reported chosen, and proposes no-ops there instead of
 *    the highest-ballot value (breaks PMMC "pmax"; Paxos Made Simple 2.2
 *    P2c), so a value already chosen can be replaced. */
#define SY_PAXOS_MUTANT_IGNORE_PROMISED_VALUES 100u
/*  SY_PAXOS_MUTANT_FORGET_REJOIN: cfg.rejoin is ignored, so an acceptor on
 *    a replaced disk promises at once (operations.md section 7's hazard). */
#define SY_PAXOS_MUTANT_FORGET_REJOIN 101u


/* ===================== internal (cft/paxos/ files only) ===================== */

#define PX_DEFAULT_BATCH_MAX 512u
#define PX_DEFAULT_BATCH_BYTES (1024u * 1024u)
#define PX_DEFAULT_INFLIGHT 64u
#define PX_DEFAULT_PENDING 65536u
#define PX_MAX_INFLIGHT 4096u
#define PX_SNAP_CHUNK (1024u * 1024u)    /* snapshot bytes per message */
/* Chosen slots kept below a local snapshot, so a node slightly behind
 * catches up from the log instead of needing the whole snapshot. */
#define PX_COMPACT_KEEP 64u

enum px_role_internal { PX_FOLLOWER = 0, PX_CANDIDATE, PX_LEADER };

/* Per-slot leader bookkeeping, parallel to the log. */
typedef struct {
    uint64_t acks;        /* bitmask of acceptors that accepted in our ballot */
    uint64_t sent_ms;     /* last time an ACCEPT for it went out */
    uint32_t nreq;        /* client requests in it */
} px_meta;

/* What phase 1 learned about one slot (PMMC's pvalues, highest ballot). */
typedef struct {
    uint64_t ballot;      /* 0: nothing reported */
    bool chosen;          /* reported at or below an acceptor's commit */
    uint8_t type;
    uint8_t *data;        /* owned */
    uint32_t len;
} px_pval;

/* This node's view of a peer (leader, or a node serving catch-up). */
typedef struct {
    uint64_t commit;      /* peer's chosen prefix, last reported */
    uint64_t read_ack;    /* highest read ctx it acked in our ballot */
    uint64_t last_ack_ms; /* last ACCEPTED in our ballot (check quorum) */
    bool heard;           /* acked in our ballot since we became leader */
    uint64_t chosen_sent; /* last slot pushed by CHOSEN, 0 none in flight */
    uint64_t snap_index;  /* snapshot being shipped, 0 none */
    uint64_t snap_offset;
    uint64_t prepare_next;/* candidate: promise page wanted next, 0 done */
} px_peer;

typedef struct {
    uint64_t read_id, ctx;   /* ctx 0: not yet in a round */
} px_read;

typedef struct {
    sy_bytes raw;         /* owned copy of the signed request */
    uint32_t client_id;
    uint64_t req_no;
} px_qreq;

typedef struct paxos {
    sy_engine_cfg cfg;
    sy_rng rng;
    uint64_t now;
    bool armed;
    uint32_t quorum;

    /* acceptor (Paxos Made Simple 2.2, PMMC 3 "Acceptors") */
    uint64_t promised;
    uint64_t max_seen;    /* highest ballot seen anywhere */
    bool hs_dirty;
    uint64_t hs_commit;
    uint8_t hs_buf[PX_HS_LEN];

    /* log: ents[i] is slot log_start + i; meta parallel */
    sy_entry *ents;
    px_meta *meta;
    size_t n_ents, cap_ents;
    uint64_t log_start;
    uint64_t unstable_from;   /* lowest slot changed since the last ready */
    /* leader: slots the last ready makes durable; its own acceptance of
     * them counts from advance() (self_lo > self_hi: none) */
    uint64_t self_lo, self_hi;
    uint64_t commit, reported;
    uint64_t compact_to;

    /* snapshot kept to ship (last local or installed) */
    uint64_t snap_index, snap_term;
    uint8_t *snap_data;
    uint32_t snap_len;
    bool snap_install, snap_meta;
    uint64_t in_snap_index, in_snap_term;
    sy_buf in_snap;

    /* role */
    uint8_t role;             /* enum px_role_internal */
    uint32_t leader;          /* SY_NO_NODE if unknown */
    uint64_t election_deadline, heartbeat_deadline;
    uint64_t known_chosen;    /* follower: leader's chosen prefix in promised */
    uint64_t last_contact;    /* last message from the leader of promised */

    /* pre-prepare (cfg.prevote): a follower asking whether a majority
     * would promise, before it raises its ballot */
    bool probing;
    uint64_t probe_ballot;
    uint64_t probe_ok;        /* bitmask of acceptors that would promise */

    /* candidate (PMMC "Scout") */
    uint64_t p1_from;
    uint64_t p1_done;         /* bitmask of complete promises */
    px_pval *pv;              /* slot p1_from + i */
    size_t n_pv, cap_pv;

    /* leader (PMMC "Leader"/"Commander") */
    uint64_t next_slot;
    uint64_t new_lo, new_hi;  /* slots opened by this ready's flush */
    uint64_t takeover_hi;     /* reads wait until commit >= this */
    uint64_t bcast_chosen;    /* chosen prefix last announced */
    uint64_t hb_prev_commit;  /* commit at the previous heartbeat tick */
    px_peer peers[SY_MAX_NODES];
    px_qreq *q;
    size_t q_n, q_cap;
    uint64_t inflight_reqs;
    px_read *reads;
    size_t n_reads, cap_reads;
    uint64_t read_seq;
    /* hand-off (px_on_transfer): the peer asked to take over, until when */
    uint32_t xfer_to;         /* SY_NO_NODE: none */
    uint64_t xfer_deadline;
    bool xfer_auto;           /* xfer_to is our pick (px_on_transfer, SY_NO_NODE) */
    uint64_t xfer_skip;       /* peers that did not take over since we lead (bits) */

    /* effects since the last advance: messages, read states, rejects and
     * memory freed at advance (core/outbox.h); committed entries */
    sy_outbox out;
    sy_committed *committed;
    size_t cap_committed;

    /* cfg.rejoin (px_rejoin_check): deaf until rejoin_after, then no
     * promises until it holds rejoin_commit, the highest chosen prefix the
     * leader of its promised ballot announced to it */
    bool rejoining;
    bool rejoin_ready;    /* the last ready held everything rejoin needs */
    uint64_t rejoin_after, rejoin_commit;

    uint64_t leader_changes, dropped;
} paxos;

/* util and log (paxos.c) */
/* frees ptr at the next advance(); SY_ENOMEM: not taken (core/outbox.h) */
int px_defer_free(paxos *p, void *ptr);
static inline uint64_t px_last(const paxos *p) { return p->log_start + p->n_ents - 1; }
static inline sy_entry *px_ent(paxos *p, uint64_t slot) { return &p->ents[slot - p->log_start]; }
static inline px_meta *px_meta_of(paxos *p, uint64_t slot) { return &p->meta[slot - p->log_start]; }
/* Stores (ballot, type, value) at slot (> commit, >= log_start), filling any
 * gap with placeholders. owned: takes data (malloc'd) on success; else
 * copies. */
/* The ballot slot's value was first proposed in (its origin), when the
 * slot is in the log or is the snapshot's last; false otherwise. */
bool px_origin_at(const paxos *p, uint64_t slot, uint64_t *origin);
int px_log_put(paxos *p, uint64_t slot, uint64_t ballot, uint8_t type, const uint8_t *data,
               uint32_t len, bool owned);
sy_msg *px_send(paxos *p, uint32_t to, uint8_t type);
int px_reject(paxos *p, uint32_t client_id, uint64_t req_no, int status, uint32_t hint);
int px_read_state(paxos *p, uint64_t read_id, uint64_t index, int status);
void px_reset_election(paxos *p, bool backoff);
/* Rejoining (cfg.rejoin; see paxos.c): at ready(), whether what was
 * handed out so far holds what it must; at advance(), ends it if it did. */
void px_rejoin_at_ready(paxos *p);
void px_rejoin_check(paxos *p);
void px_see_ballot(paxos *p, uint64_t b);
void px_promise(paxos *p, uint64_t b);
/* Entries [lo, hi] of the log copied as a scratch array (freed at
 * advance), cut at cfg.msg_entries_max and SY_PAXOS_MSG_BYTES. */
int px_slice(paxos *p, uint64_t lo, uint64_t hi, sy_entry **out, uint32_t *n);

/* acceptor / learner side (paxos_acceptor.c) */
int px_recv_prepare(paxos *p, uint32_t from, const sy_paxos_prepare *m);
int px_recv_accept(paxos *p, uint32_t from, const sy_paxos_accept *m);
int px_recv_chosen(paxos *p, uint32_t from, const sy_paxos_chosen *m);
int px_recv_learn(paxos *p, uint32_t from, const sy_paxos_learn *m);
int px_recv_snapshot(paxos *p, uint32_t from, const sy_paxos_snapshot *m);
/* Chosen values from from_slot (CHOSEN), or the snapshot if compacted. */
int px_send_catchup(paxos *p, uint32_t to, uint64_t from_slot);
int px_send_snap_chunk(paxos *p, uint32_t to, uint64_t offset);
int px_recv_snapshot_ack(paxos *p, uint32_t from, const sy_paxos_snapshot_ack *m);
void px_advance_commit_follower(paxos *p, uint64_t ballot);

/* proposer / leader side (paxos_leader.c) */
void px_become_follower(paxos *p, uint32_t leader);
int px_campaign(paxos *p);
int px_recv_takeover(paxos *p, uint32_t from, const sy_paxos_takeover *m);
int px_recv_promise(paxos *p, uint32_t from, const sy_paxos_promise *m);
int px_recv_accepted(paxos *p, uint32_t from, const sy_paxos_accepted *m);
int px_leader_tick(paxos *p);
int px_on_request(paxos *p, const sy_input *in);
int px_on_transfer(paxos *p, uint32_t target);
int px_on_read(paxos *p, uint64_t read_id);
/* At ready, in this order: open slots for queued requests; count the
 * leader's own accepts for slots [lo, hi] handed out in this ready; send the
 * new ACCEPTs, read rounds and commit notices, release confirmed reads. */
int px_leader_flush(paxos *p);
void px_leader_self_ack(paxos *p, uint64_t lo, uint64_t hi);
int px_leader_emit(paxos *p);
int px_on_snapshot(paxos *p, uint64_t index, uint64_t term, sy_bytes data);

#endif
