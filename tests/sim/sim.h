/* Deterministic simulator: N engine instances, a simulated network, disks,
 * clocks and clients, all driven by one event queue and one 64-bit seed.
 *
 * Everything that varies between runs (latencies, drops, partitions, crash
 * points, clock skew, election timeouts via the engines' rng seeds, the
 * client workload) is drawn from generators derived from the seed, and
 * events are ordered by (simulated time, sequence number), so a seed replays
 * bit-for-bit. Messages travel as real signed envelopes through the real
 * codec; nodes run the same ready/persist/send/apply/advance host loop as
 * the daemon (core/engine.h).
 *
 * A run has two phases: a fault phase (faults injected per opts.faults), then
 * a calm phase (network healed, crashed nodes restarted, pauses ended) in
 * which every outstanding client request must complete within liveness_ms.
 * The checks (see docs/simulator.md) run during and at the end of the run. */
#ifndef SY_SIM_H
#define SY_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/engine.h"

enum sy_sim_fault {
    SY_FAULT_DROP = 1u << 0,      /* messages lost */
    SY_FAULT_DUP = 1u << 1,       /* messages delivered twice */
    SY_FAULT_REORDER = 1u << 2,   /* extra random delay: later sends overtake */
    SY_FAULT_PARTITION = 1u << 3, /* one- and two-way partitions, isolated
                                     node, clogged links; come and go */
    SY_FAULT_CRASH = 1u << 4,     /* crash (losing unsynced writes), restart */
    SY_FAULT_PAUSE = 1u << 5,     /* node stops processing for a while */
    SY_FAULT_SKEW = 1u << 6,      /* per-node clock offset and drift */
    SY_FAULT_DISK = 1u << 7,      /* slow fsyncs; crashes mid-fsync; a crash
                                     may corrupt one stored value (bit rot) */
    /* leader-churn: a node that becomes leader is, with some probability,
     * cut off (alone or with a minority) or crashed a few ms later, after
     * it has sent its first appends: provokes the Raft "Figure 8" runs
     * (an old-term entry on a minority, competing leaders at one index).
     * Opt-in: not part of "all". */
    SY_FAULT_CHURN = 1u << 8,
    /* handoff: a node that becomes leader or primary is, with some
     * probability, asked a little later to hand leadership on (what synod
     * does on SIGTERM: SY_IN_TRANSFER), under whatever else is going on.
     * Opt-in: not part of "all". */
    SY_FAULT_HANDOFF = 1u << 9,
    /* lose: as the calm phase begins, as many correct nodes as the fault
     * budget leaves room for -- the leader or primary first -- stop for
     * good instead of coming back; the others, some of them just
     * restarted, others lagging, must catch up from each other, converge
     * and serve. Opt-in: not part of "all". */
    SY_FAULT_LOSE = 1u << 10,
    /* replace (Raft, Paxos): a node's disk dies -- crashed, or found
     * corrupt by the disk fault -- and it restarts on an empty one with
     * cfg.rejoin, as synod --rejoin does (docs/operations.md, section 7);
     * it counts toward the fault budget until it has finished rejoining
     * and caught up. Opt-in: not part of "all". */
    SY_FAULT_REPLACE = 1u << 11,
    /* outage: as the calm phase begins, f+1 correct nodes -- the leader or
     * primary first -- are down at once, so no quorum is up: f of them for
     * good (as with lose), one crashed and restarted from its disk 1-8 s
     * later, in whatever view or term it had. Requests wait out the outage;
     * then the n-f nodes, the restarted one among them, must serve them
     * all (what tests/integration/cluster_suite.sh asks of a real cluster
     * after f+1 nodes went down). Opt-in: not part of "all". */
    SY_FAULT_OUTAGE = 1u << 12,
    SY_FAULT_ALL = 0xffu,
};
#define SY_SIM_N_FAULTS 13

/* Parses "drop,dup" / "all" / "" / "none" into a mask. On an unknown name
 * returns SY_EINVAL and *bad points at it inside list (NUL-terminated copy
 * in badbuf). */
int sy_sim_parse_faults(const char *list, uint32_t *mask, char *badbuf, size_t badcap);
const char *sy_sim_fault_name(uint32_t bit);

#define SY_SIM_MAX_NODES 16u
#define SY_SIM_MAX_CLIENTS 64u
#define SY_SIM_MAX_BYZ SY_SIM_MAX_NODES   /* Byzantine + mutant nodes */

/* Behaviour codes at or above this are mutants: correct-looking replicas
 * with a planted bug, which the checks must catch, so they stay in every
 * check. Codes below it (1..) are Byzantine: the checks skip those nodes. */
#define SY_SIM_MUTANT_BASE 100u
/* "twins": the simulator runs a second, honest engine with the same
 * identity; half of the other nodes talk to one twin, half to the other. */
#define SY_SIM_TWINS 10u

/* Disk fault, corruption: what a crash may corrupt (opts.corrupt_what; 0 =
 * all). One byte of one stored value flips, as a torn or rotten sector. */
enum sy_sim_corrupt {
    SY_CORRUPT_LOG = 1u << 0,     /* a log entry */
    SY_CORRUPT_LEDGER = 1u << 1,  /* a ledger block */
    SY_CORRUPT_META = 1u << 2,    /* a meta value: hard state, snapshot, ... */
};
#define SY_SIM_CORRUPT_PCT 25u    /* default: share of disk-fault crashes, % */
#define SY_SIM_CORRUPT_OFF UINT32_MAX

typedef struct sy_sim_byz {
    uint32_t node;
    uint32_t behaviour;           /* engine-defined cfg.test_behaviour value */
} sy_sim_byz;

typedef struct sy_sim_opts {
    const char *protocol;         /* name, for reports and the replay line */
    const sy_engine_ops *ops;     /* the engine under test */
    uint32_t nodes;               /* 1..SY_SIM_MAX_NODES */
    uint32_t f;                   /* 0 = derived: (n-1)/2, or (n-1)/3 for pbft */
    uint64_t seed;
    uint32_t requests;            /* client operations in the workload */
    uint32_t clients;             /* 0 = default 5 */
    uint32_t keys;                /* distinct keys (0 = default 5) */
    uint32_t faults;              /* enum sy_sim_fault mask */
    bool ed25519;                 /* real signatures instead of simsig */
    bool verbose;                 /* print every event to out */
    uint32_t n_byz;
    sy_sim_byz byz[SY_SIM_MAX_BYZ];
    uint64_t fault_ms;            /* length of the fault phase (0 = 20000) */
    uint64_t liveness_ms;         /* calm-phase bound (0 = 60000) */
    uint64_t max_sim_ms;          /* hard stop (0 = fault + liveness + 10000) */
    FILE *out;                    /* failure reports, verbose trace (NULL = stderr) */
    const char *replay_prefix;    /* e.g. "build/bin/synod-sim" (NULL = synod-sim) */
    uint32_t fault_budget;        /* max nodes crashed/paused at once (0 = f) */
    uint32_t snapshot_every;      /* host snapshot period in applied entries
                                     (0 = 64, UINT32_MAX = never) */
    uint32_t compact_keep;        /* engines' compact_keep (0 = their default):
                                     small values make lagging peers need
                                     snapshots, so installs happen often */
    /* disk fault: percent of crashes that also corrupt one value on the
     * crashed node's disk, while the nodes down or corrupt stay within
     * the fault budget (0 = SY_SIM_CORRUPT_PCT, SY_SIM_CORRUPT_OFF = never) */
    uint32_t corrupt_pct;
    uint32_t corrupt_what;        /* enum sy_sim_corrupt mask (0 = all) */
} sy_sim_opts;

typedef struct sy_sim_stats {
    uint64_t events;
    uint64_t sim_ms;              /* simulated time at the end */
    uint64_t msgs_sent, msgs_delivered, msgs_dropped, msgs_duplicated, msgs_delayed;
    uint64_t msgs_rejected;       /* envelopes the decoder refused */
    uint64_t partitions, crashes, restarts, pauses, skewed_nodes;
    uint64_t churns;              /* leader-churn: new leaders cut off or crashed */
    uint64_t lost_nodes;          /* lose: nodes stopped for good at the calm */
    uint64_t outages;             /* outage: quorums lost at the calm (0 or 1) */
    uint64_t replaced;            /* replace: disks replaced by empty ones */
    uint64_t rejoined;            /* ... whose node then finished rejoining */
    uint64_t handoffs;            /* handoff: transfers a leader accepted */
    uint64_t handoffs_done;       /* ... after which it followed another leader */
    uint64_t handoff_ms;          /* ... simulated ms from transfer to that, summed */
    uint64_t disk_writes, disk_lost;  /* unsynced writes lost to crashes */
    uint64_t held_writes;             /* apply-only writes left unsynced */
    uint64_t session_replies;     /* requests applied already, answered from
                                     the session table (at arrival or at
                                     the 1 s re-check) */
    uint64_t snapshots;
    uint64_t snapshots_late;      /* stored after a delay (the snapshot thread) */
    uint64_t snapshots_dropped;   /* superseded by an install while taken */
    uint64_t installs;            /* snapshots installed from a leader / peers */
    /* disk corruption: injected, and how each one ended: the node refused
     * to start, stopped when it read the value while running, or the read
     * at the end of the run refused it; or the value was overwritten or
     * deleted before anything read it (healed) */
    uint64_t corruptions, corrupt_at_boot, corrupt_at_run, corrupt_at_end, corrupt_healed;
    char corrupt_note[256];       /* the first detection, e.g. "n1 refused to
                                     start: log entry 17 failed its checksum" */
    uint64_t ops_ok, ops_gave_up, ops_retries, ops_redirects;
    uint64_t max_commit;          /* highest committed index seen */
    uint64_t leader_changes;
    /* checks that ran (counts of individual assertions) */
    uint64_t chk_agreement, chk_validity, chk_exactly_once, chk_convergence,
             chk_durability;
    uint64_t chk_said;            /* PBFT statements checked by no-equivocation */
    uint64_t chk_accused;         /* PBFT accusations checked by no-false-accusation */
    uint64_t chk_ledger_blocks;   /* blocks checked by the end-of-run ledger
                                     verify (disk-fault runs) */
    size_t linz_ops;
    int linz_verdict;             /* enum sy_linz_verdict */
    bool liveness_ok;
    /* outcome */
    bool failed;
    char check[32];               /* name of the failed check */
    char why[512];                /* one line */
} sy_sim_stats;

/* Fills opts with defaults (nodes 3, requests 200, no faults, ...). */
void sy_sim_opts_default(sy_sim_opts *o);

/* Runs one simulation. Returns SY_OK when the run completed (whether or not
 * a check failed: see st->failed), or an error for a setup failure
 * (SY_EINVAL for bad options, SY_ENOMEM). On a check failure it prints the
 * seed, protocol, the replay command line and the last events of the trace
 * to opts.out. */
int sy_sim_run(const sy_sim_opts *o, sy_sim_stats *st);

/* Writes the synod-sim command line that replays o into buf. */
void sy_sim_replay_line(const sy_sim_opts *o, char *buf, size_t cap);

#endif
