/* Simulator internals shared by the simulator sources (not a public interface).
 *
 * One sim_world holds everything of one run; nothing is global, so runs can
 * be executed one after another (or in parallel threads) in one process. */
#ifndef SY_SIM_INT_H
#define SY_SIM_INT_H

#include <stdarg.h>
#include "tests/sim/sim.h"
#include "tests/sim/linz.h"
#include "core/storage.h"
#include "core/ready.h"
#include "core/kv.h"
#include "core/ledger.h"
#include "core/envelope.h"
#include "core/buf.h"
#include "core/rng.h"
#include "crypto/crypto.h"

#define SIM_CLUSTER_ID "sim"
#define SIM_INBOX_MAX 8192u       /* queued inputs per node; overflow is a drop */
#define SIM_TRACE 64u             /* events kept for a failure report */
#define SIM_TRACE_SHOWN 30u
#define SIM_MAX_EVENTS 50000000ull
#define SIM_CLIENT_TIMEOUT_MS 1000u
#define SIM_CLIENT_GIVE_UP_MS 8000u /* in the fault phase; then give up */
/* BFT: a write's first send reaches the primary and f backups only; it
 * goes to everyone after this long without f+1 matching replies (the
 * client library waits a few of its round trips, at least 50 ms) */
#define SIM_CLIENT_NARROW_MS 100u
#define SIM_SNAPSHOT_EVERY 64u    /* host snapshot after this many applies */
#define SIM_BFT_GRACE_MS 10000u   /* lagging correct BFT replicas: catch-up time */

enum sim_ev_kind {
    EV_DELIVER = 1,   /* bytes a -> b */
    EV_TICK,          /* node a's timer */
    EV_PUMP,          /* node a has queued inputs */
    EV_DISK_DONE,     /* node a's fsync finished */
    EV_CLIENT,        /* client a: timeout / next op / resend */
    EV_FAULT,         /* fault scheduler */
    EV_HEAL,          /* end of partition generation x */
    EV_RESTART,       /* node a restarts */
    EV_RESUME,        /* node a's pause ends */
    EV_CALM,          /* fault phase over */
    EV_CHURN,         /* leader-churn: strike node a (incarnation gen) */
    EV_HANDOFF,       /* handoff: node a (incarnation gen) transfers leadership */
    EV_SNAP_DONE,     /* node a's snapshot thread finished (incarnation gen) */
};

typedef struct {
    uint64_t t, seq;
    uint8_t kind;
    uint32_t a, b;
    uint64_t gen;
    uint8_t *data;    /* EV_DELIVER: owned frame */
    size_t len;
} sim_event;

typedef struct {
    uint64_t t;
    uint8_t kind;     /* enum sim_ev_kind or a trace-only kind below */
    uint32_t a, b;
    uint64_t x, y;
    int code;
} sim_trace_rec;

enum sim_trace_kind {
    TR_SEND = 100, TR_DROP, TR_DUP, TR_COMMIT, TR_APPLY, TR_REPLY, TR_REQ, TR_CRASH,
    TR_RESTART, TR_PAUSE, TR_PARTITION, TR_HEAL, TR_LOST_WRITE, TR_REJECT_ENV,
    TR_CLIENT_DONE, TR_CLIENT_RETRY, TR_ROLE, TR_GIVE_UP, TR_SNAPSHOT, TR_FAIL, TR_LOG_CUT,
    TR_CORRUPT, TR_CORRUPT_FOUND, TR_REPLACE, TR_REJOINED,
};

typedef struct {
    uint32_t from;
    uint8_t *data;    /* owned; NULL = tick marker */
    size_t len;
} sim_input;

typedef struct {
    uint32_t client;
    uint64_t req_no;
    uint64_t since;           /* sim ms it arrived (the re-check, sim.c) */
} sim_pend_req;

typedef struct {
    uint64_t read_id;
    uint32_t client;
    uint64_t req_no;
    uint8_t key[64];
    uint32_t klen;
    uint64_t index;
    bool have_index;
} sim_pend_read;

/* Ledger head as comparable across nodes: height, and the tip block's
 * content when the node still stores it (after a snapshot install the chain
 * restarts after the snapshot's tip, whose block is not stored). */
typedef struct {
    uint64_t height;
    bool has_content;
    sy_digest content;
} sim_ledger_head;

/* A PBFT statement a node signed: (type, view, seq) -> digest. */
typedef struct {
    uint8_t type;             /* 0 = free */
    uint64_t view, seq;
    sy_digest d;
} sim_said;

#define SIM_SAID_SLOTS 4096u  /* per node, direct-mapped */

typedef struct {
    uint32_t to;
    uint8_t type;
    uint8_t *data;            /* owned signed envelope */
    size_t len;
    sim_said *said;           /* owned: the statements it carries (PBFT) */
    uint32_t n_said;
} sim_frame;

typedef struct sim_node {
    uint32_t id;              /* node id on the wire (a twin shares its sibling's) */
    uint32_t host;            /* index in sim_world.nodes: event routing */
    bool byz;                 /* runs a Byzantine behaviour: checks skip it */
    bool mutant;              /* runs a planted bug: checked like the rest */
    /* the statements it sent, for `no-equivocation` (kept across restarts:
     * what the others have seen it sign) */
    sim_said *said;
    bool up, paused, busy, pump_queued;
    bool stepped_busy;        /* took input while its write was in flight */
    uint64_t incarnation;
    void *eng;
    sy_signer signer;
    sy_seckey *sk;            /* ed25519 mode */
    sy_storage *st;           /* memory backend, manual sync: the "disk" */
    sy_kvm kvm;               /* the daemon's state machine on that disk */
    uint64_t applied, applied_term, last_snap;
    sy_kv_results *res;       /* results of the write in flight */
    size_t n_res;
    bool txn_pending;         /* a write awaits its fsync */
    bool full_sync_due;       /* ... and it is a full (LMDB) commit */
    uint64_t last_full_sync;  /* sim ms of the last full sync */
    uint64_t visible_applied; /* applied as of the last full sync: what the
                                 daemon's readers (LMDB) would see */
    uint64_t ckpt_pending;    /* PBFT: snapshot when applied reaches it */
    /* the daemon's snapshot thread (cmd/synod/runtime.c, "snapshots"):
     * the state is captured at snap_at and stored and stepped into the
     * engine later (EV_SNAP_DONE); a crash meanwhile loses it */
    bool snap_busy;
    uint64_t snap_at, snap_term;
    uint8_t *snap_blob;
    size_t snap_len;
    /* clock: local = off + g + g * ppm / 1e6 */
    uint64_t clk_off;
    int32_t drift_ppm;
    /* volatile */
    sim_input *inbox;
    size_t in_head, in_n;
    sim_pend_req *preq;
    size_t n_preq, cap_preq;
    sim_pend_read *preads;
    size_t n_preads, cap_preads;
    uint64_t next_read_id;
    uint64_t tick_gen, tick_at;
    /* the ready whose write is in flight, copied (the engine's own may
     * change under steps taken meanwhile when it is pipelined), and its
     * messages that wait for that write, encoded when it was taken */
    sy_ready_owned own;
    sim_frame *frames;
    size_t n_frames, cap_frames;
    uint64_t leader_changes;
    /* no-false-accusation: the engine's accusation counters as last seen
     * (sy_engine_status evidence, bad_sigs, dissent) */
    uint64_t seen_evidence, seen_bad_sigs, seen_dissent;
    sy_accused seen_accused;  /* the engine's per-replica counts, as last seen */
    uint8_t last_role;
    uint64_t handoff_at;      /* handoff fault: when a transfer started, 0 none */
    /* disk corruption (disk.c): an injected corruption not yet detected,
     * and the stored value as corrupted (to tell an overwrite apart) */
    bool corrupt;
    bool dead;                /* detected it: down for the rest of the run */
    bool lost;                /* the lose fault: down for the rest of the run */
    /* the replace fault: on an empty disk; rejoin_mark is DATA_DIR/rejoin
     * (the engine gets cfg.rejoin while it is set), replaced counts the
     * node as faulty until it has rejoined and applied replace_target */
    bool rejoin_mark, replaced;
    uint64_t replace_target;
    int corrupt_tbl;
    uint8_t corrupt_key[64];
    uint32_t corrupt_kl;
    uint8_t *corrupt_val;
    size_t corrupt_vl;
    char corrupt_what[80];    /* "log entry 17", "meta value 'hardstate'" */
} sim_node;

/* Left out of the end-of-run checks: Byzantine, or down for good after a
 * detected disk corruption or the lose fault (it counts toward f, like a
 * crashed node). */
static inline bool sim_node_excluded(const sim_node *nd)
{
    return nd->byz || nd->dead || nd->lost;
}

typedef struct sim_client {
    uint32_t id;              /* SY_CLIENT_ID_BASE + index */
    sy_signer signer;
    sy_seckey *sk;
    uint64_t req_no;
    bool outstanding;
    uint64_t gen;             /* invalidates stale EV_CLIENT timers */
    uint8_t op, flags;
    bool ordered;             /* BFT read fallen back to an ordered request */
    char key[16], val[32], old[32];
    size_t hist_id;
    uint32_t target;
    uint32_t attempts;
    bool redirect;            /* next send follows a leader hint */
    uint64_t started_at;      /* simulated ms of the first send */
    /* BFT mode: the latest definite reply digest from each replica */
    sy_digest got[SY_SIM_MAX_NODES];
    bool have[SY_SIM_MAX_NODES];
    uint32_t hint[SY_SIM_MAX_NODES];  /* the primary each reply named */
    uint32_t primary;         /* believed once f+1 replies named it */
    uint8_t *env;             /* the signed request, resent verbatim */
    size_t env_len;
    uint32_t done;
} sim_client;

/* what a client submitted: validity and durability checks */
typedef struct {
    sy_digest env_digest;
    bool submitted;
    bool acked;               /* client saw a definite result */
    bool is_write;
    uint64_t applied_index;   /* where it took effect (0 = not yet) */
} sim_sub;

typedef struct sim_world {
    sy_sim_opts o;
    sy_sim_stats *st;
    uint32_t n, f, budget;
    bool bft;                 /* clients wait for f+1 (reads: q) matching replies */
    uint64_t now;
    uint64_t seq;
    sy_rng rng;               /* world: network, faults */
    sy_rng wl;                /* workload (separate so fault choices do not
                                 shift the workload between fault lists) */
    /* event heap */
    sim_event *heap;
    size_t n_heap, cap_heap;
    /* identities */
    sy_simsig *simsig;
    sy_verifier verifier;
    sy_pubkey node_keys[SY_SIM_MAX_NODES];
    sy_pubkey client_keys[SY_SIM_MAX_CLIENTS];
    sy_directory dir;
    sy_env_opts envo;
    sim_node nodes[SY_SIM_MAX_NODES + SY_SIM_MAX_BYZ];
    uint32_t n_hosts;         /* n plus twins */
    uint32_t twin_of[SY_SIM_MAX_NODES];  /* host index of id's twin, or UINT32_MAX */
    bool twin_side[SY_SIM_MAX_NODES];    /* true: this node talks to the twin */
    sim_client clients[SY_SIM_MAX_CLIENTS];
    uint32_t n_clients;
    uint32_t issued;          /* ops started */
    /* network */
    bool blocked[SY_SIM_MAX_NODES][SY_SIM_MAX_NODES];
    uint32_t clog_ms[SY_SIM_MAX_NODES][SY_SIM_MAX_NODES];
    uint64_t part_gen;
    bool part_active;
    bool calm;
    uint64_t calm_at;
    uint64_t done_at;         /* calm phase: when the workload finished */
    /* checks */
    sy_digest *commit_digest; /* by index */
    sy_digest *state_digest;  /* by index: state digest */
    sim_ledger_head *ledger_head; /* by index */
    bool *commit_known, *state_known;
    size_t cap_commit;
    sim_sub *subs;            /* [client * (requests+2) + req_no] */
    uint64_t subs_per_client;
    sy_linz *hist;
    char last_val[8][32];     /* per key: last value seen (for cas choice) */
    /* trace */
    sim_trace_rec trace[SIM_TRACE];
    uint64_t n_trace;
    sy_buf scratch;
    bool stop;
} sim_world;

/* sim.c */
void sim_trace(sim_world *w, uint8_t kind, uint32_t a, uint32_t b, uint64_t x, uint64_t y,
               int code);
void sim_fail(sim_world *w, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sim_schedule(sim_world *w, uint64_t t, uint8_t kind, uint32_t a, uint32_t b,
                 uint64_t gen, uint8_t *data, size_t len);
uint64_t sim_local_now(const sim_world *w, const sim_node *nd);
void sim_node_input(sim_world *w, sim_node *nd, uint32_t from, uint8_t *data, size_t len);
void sim_node_crash(sim_world *w, sim_node *nd);
/* The simulated fsync of the write in flight completed: the ready's log and
 * hard state are durable; so is everything else when the write needs the
 * daemon's LMDB commit or SIM_HOLD_MS passed since the last (see
 * persist_and_apply in sim.c). */
#define SIM_HOLD_MS 250
void sim_node_fsynced(sim_world *w, sim_node *nd);
void sim_node_restart(sim_world *w, sim_node *nd);
void sim_node_pump(sim_world *w, sim_node *nd);
/* Stops a running node for good (a detected corruption): volatile state
 * and the engine go, as in a crash, but it is not restarted. */
void sim_node_halt(sim_world *w, sim_node *nd);
/* The replace fault: nd (down, or crashed here) gets an empty disk, and
 * restarts with cfg.rejoin when its EV_RESTART comes. */
void sim_node_replace(sim_world *w, sim_node *nd);

/* net.c: the network and the fault scheduler */
/* type only labels the trace */
void sim_net_send(sim_world *w, uint32_t from, uint32_t to, uint8_t type, const uint8_t *data,
                  size_t len);
void sim_net_fault(sim_world *w);        /* EV_FAULT */
void sim_net_heal(sim_world *w, uint64_t gen);
void sim_net_calm(sim_world *w);         /* EV_CALM */
/* leader-churn: nd has just become leader; maybe schedule an EV_CHURN */
void sim_churn_on_leader(sim_world *w, sim_node *nd);
void sim_net_churn(sim_world *w, uint32_t host, uint64_t gen);  /* EV_CHURN */
/* disk fault: sometimes crash a node whose fsync just completed, before it
 * sends anything; true if it did (the node is down). */
bool sim_crash_after_fsync(sim_world *w, sim_node *nd);
bool sim_is_client(uint32_t id);

/* disk.c: corruption of stored values (disk fault) and the ledger check */
/* Called by sim_node_crash once the unsynced writes are gone: sometimes
 * flips one byte of one stored value of nd (budget and options allowing). */
void sim_disk_maybe_corrupt(sim_world *w, sim_node *nd);
/* A storage call of nd failed with rc. True when that is the detection of
 * the corruption injected into nd (SY_ECORRUPT naming the value): it is
 * counted, nd goes down for good, `when` says what the node did ("refused
 * to start"); or when the error names another value (a corruption-detected
 * failure is reported). False otherwise: the caller reports its failure. */
bool sim_disk_detected(sim_world *w, sim_node *nd, int rc, const char *when);
/* End of run, before the other final checks: every corruption still
 * undetected must be refused by a read of its value, unless overwritten. */
void sim_disk_check_final(sim_world *w);
/* End of a disk-fault run: every live correct node's ledger verifies. */
void sim_disk_check_ledgers(sim_world *w);
uint32_t sim_disk_lost_nodes(const sim_world *w);  /* dead or corrupt */

/* client.c */
void sim_client_start(sim_world *w);
void sim_client_event(sim_world *w, sim_client *c, uint64_t gen);
void sim_client_deliver(sim_world *w, sim_client *c, const uint8_t *data, size_t len);
bool sim_clients_done(const sim_world *w);

/* check.c */
int sim_check_init(sim_world *w);
void sim_check_free(sim_world *w);
sim_sub *sim_sub_of(sim_world *w, uint32_t client, uint64_t req_no);
void sim_check_commit(sim_world *w, sim_node *nd, const sy_entry *e);
void sim_check_applied(sim_world *w, sim_node *nd, uint64_t index);
int sim_node_digest(sim_node *nd, sy_digest *state, sim_ledger_head *ledger);
void sim_check_final(sim_world *w);

#endif
