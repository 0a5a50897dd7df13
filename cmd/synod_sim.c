/* synod-sim: deterministic, seeded adversarial runs of a protocol engine
 * with safety and liveness checks (tests/sim/, docs/simulator.md).
 *
 * Exit codes: 0 every run passed every check; 1 a check failed (the report
 * names the seed and the command line that replays it); 2 usage error. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tests/sim/sim.h"
#include "tests/sim/linz.h"
#include "core/engine.h"
#include "crypto/sy_err.h"
#include "cft/raft/raft.h"
#include "cft/paxos/paxos.h"
#include "bft/pbft/pbft.h"

static const char usage[] =
    "usage: synod-sim --protocol raft|paxos|pbft [--nodes N] [--seed S] [--seeds K]\n"
    "                 [--requests R] [--clients C] [--faults LIST]\n"
    "                 [--byzantine ID:BEHAVIOUR]... [--mutant [ID:]MUTANT]...\n"
    "                 [--fault-ms MS] [--corrupt PCT] [--snapshot-every N]\n"
    "                 [--compact-keep N] [--ed25519] [--verbose]\n"
    "\n"
    "Runs seeded simulations of a cluster of N nodes (default 3) under faults and\n"
    "checks agreement, validity, exactly-once, convergence, durability,\n"
    "linearizability and liveness (PBFT: no-equivocation too). --seeds K runs\n"
    "seeds S..S+K-1 (default 1) and prints a summary; the first failing seed\n"
    "stops the sweep and prints the command line that replays it.\n"
    "\n"
    "  LIST       comma-separated drop,dup,reorder,partition,crash,pause,skew,disk,\n"
    "             leader-churn, handoff, lose, replace (raft, paxos), outage, or all\n"
    "             (every fault but leader-churn, handoff, lose, replace and outage),\n"
    "             or none\n"
    "             (default none)\n"
    "  BEHAVIOUR  (pbft only, test builds) silent equivocate skip-seq bad-sig\n"
    "             replay wrong-digest fake-prepared bad-new-view flood twins\n"
    "             bad-state; or a planted-bug\n"
    "             mutant mutant-accept-wrong-digest mutant-nv-no-recompute\n"
    "             mutant-blame-agreeing, which the\n"
    "             checks must catch (mutants stay in every check; Byzantine\n"
    "             nodes are left out of them)\n"
    "  MUTANT     (test builds) a planted bug, in node ID or, without ID:, in every\n"
    "             node not named by --byzantine; the checks must catch it:\n"
    "             raft old-term-commit, forget-rejoin (with the replace fault);\n"
    "             paxos ignore-promises, forget-rejoin (with the replace fault);\n"
    "             pbft accept-wrong-digest, nv-no-recompute, blame-agreeing\n"
    "  --fault-ms length of the fault phase in simulated ms (default 20000)\n"
    "  --snapshot-every  a host snapshot every N applied entries (default 64)\n"
    "  --compact-keep    Raft/Paxos entries kept below a snapshot (default 64);\n"
    "             small values send lagging nodes snapshots instead of entries\n"
    "  --corrupt  with the disk fault: percent of crashes that also flip a byte of\n"
    "             a stored log entry, ledger block or meta value (default 25; 0 = never)\n"
    "  --ed25519  sign with Ed25519 instead of the cheap simulator scheme\n"
    "  --verbose  print every event of the run\n"
    "\n"
    "exit: 0 all checks passed, 1 a check failed, 2 usage error\n";

/* Same numbering as the PBFT engine's test_behaviour codes. */
static const char *const byz_names[] = {
    "silent", "equivocate", "skip-seq", "bad-sig", "replay", "wrong-digest",
    "fake-prepared", "bad-new-view", "flood", "twins", "bad-state",
};

/* Planted-bug mutants (test builds only; docs/simulator.md "Mutants"): the
 * engine's cfg.test_behaviour code for each, per protocol. */
static const struct {
    const char *protocol, *name;
    uint32_t code;
} mutants[] = {
    { "raft", "old-term-commit", SY_RAFT_MUTANT_OLD_TERM_COMMIT },
    { "raft", "forget-rejoin", SY_RAFT_MUTANT_FORGET_REJOIN },
    { "paxos", "ignore-promises", SY_PAXOS_MUTANT_IGNORE_PROMISED_VALUES },
    { "paxos", "forget-rejoin", SY_PAXOS_MUTANT_FORGET_REJOIN },
    { "pbft", "accept-wrong-digest", SY_PBFT_MUTANT_ACCEPT_WRONG_DIGEST },
    { "pbft", "nv-no-recompute", SY_PBFT_MUTANT_NV_NO_RECOMPUTE },
    { "pbft", "blame-agreeing", SY_PBFT_MUTANT_BLAME_AGREEING },
};

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "synod-sim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see synod-sim --help)\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Adds the mutant spec "[ID:]NAME" (NAME may be the numeric code a replay
 * line prints) to o; without ID it goes to every node not already named.
 * Returns 0 or the exit code 2 after a one-line message. */
static int add_mutant(sy_sim_opts *o, const char *spec)
{
    const char *name = spec, *colon = strchr(spec, ':');
    uint64_t id = UINT64_MAX, num = 0;
    if (colon) {
        char idbuf[16];
        if ((size_t)(colon - spec) >= sizeof idbuf)
            return usage_error("--mutant: bad node id in '%s'", spec);
        memcpy(idbuf, spec, (size_t)(colon - spec));
        idbuf[colon - spec] = 0;
        if (!parse_u64(idbuf, &id) || id >= o->nodes) {
            fprintf(stderr, "synod-sim: --mutant: node id in '%s' is not in 0..%u\n", spec,
                    o->nodes - 1);
            return 2;
        }
        name = colon + 1;
    }
    if (strncmp(name, "mutant-", 7) == 0)
        name += 7;
    uint32_t code = 0;
    const char *other = NULL;
    for (size_t k = 0; k < sizeof mutants / sizeof mutants[0]; k++) {
        bool hit = strcmp(name, mutants[k].name) == 0 ||
                   (parse_u64(name, &num) && num == mutants[k].code);
        if (hit && strcmp(o->protocol, mutants[k].protocol) == 0)
            code = mutants[k].code;
        else if (hit && !other)
            other = mutants[k].protocol;
    }
    if (code && strcmp(name, "forget-rejoin") == 0 && !(o->faults & SY_FAULT_REPLACE))
        fprintf(stderr, "synod-sim: warning: the forget-rejoin mutant does nothing without the "
                "replace fault (--faults all,replace): no check can catch it here\n");
    if (!code) {
        if (other)
            fprintf(stderr, "synod-sim: --mutant '%s' is a %s mutant, not one of %s (raft: "
                    "old-term-commit, forget-rejoin; paxos: ignore-promises, forget-rejoin; pbft: "
                    "accept-wrong-digest, nv-no-recompute, blame-agreeing)\n", spec, other, o->protocol);
        else
            fprintf(stderr, "synod-sim: --mutant: unknown mutant in '%s' (raft: "
                    "old-term-commit, forget-rejoin; paxos: ignore-promises, forget-rejoin; pbft: "
                    "accept-wrong-digest, nv-no-recompute, blame-agreeing)\n", spec);
        return 2;
    }
    for (uint32_t i = 0; i < o->nodes; i++) {
        if (id != UINT64_MAX && i != id)
            continue;
        bool named = false;
        for (uint32_t k = 0; k < o->n_byz; k++)
            named |= o->byz[k].node == i;
        if (named && id != UINT64_MAX) {
            fprintf(stderr, "synod-sim: --mutant: node %u already has a behaviour\n", i);
            return 2;
        }
        if (named)
            continue;
        if (o->n_byz >= SY_SIM_MAX_BYZ)
            return usage_error("too many --byzantine/--mutant nodes at '%s'", spec);
        o->byz[o->n_byz++] = (sy_sim_byz){ i, code };
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    uint64_t runs, events, sim_ms, sent, dropped, dup, delayed, rejected, partitions, crashes,
        churns, lost_nodes, outages, replaced, rejoined, handoffs, handoffs_done, handoff_ms, restarts, pauses, disk_lost, held, session_replies, snapshots, snapshots_late, snapshots_dropped, installs,
        ok, gave_up, retries, redirects, leaders,
        agreement, validity, exactly_once, convergence, durability, said, accused, linz_ok, linz_unknown,
        live_ok, corrupted, corrupt_boot, corrupt_run, corrupt_end, corrupt_healed,
        ledger_blocks;
} totals;

static void add(totals *t, const sy_sim_stats *s)
{
    t->runs++;
    t->events += s->events;
    t->sim_ms += s->sim_ms;
    t->sent += s->msgs_sent;
    t->dropped += s->msgs_dropped;
    t->dup += s->msgs_duplicated;
    t->delayed += s->msgs_delayed;
    t->rejected += s->msgs_rejected;
    t->partitions += s->partitions;
    t->crashes += s->crashes;
    t->churns += s->churns;
    t->lost_nodes += s->lost_nodes;
    t->outages += s->outages;
    t->replaced += s->replaced;
    t->rejoined += s->rejoined;
    t->handoffs += s->handoffs;
    t->handoffs_done += s->handoffs_done;
    t->handoff_ms += s->handoff_ms;
    t->restarts += s->restarts;
    t->pauses += s->pauses;
    t->disk_lost += s->disk_lost;
    t->held += s->held_writes;
    t->session_replies += s->session_replies;
    t->snapshots += s->snapshots;
    t->snapshots_late += s->snapshots_late;
    t->snapshots_dropped += s->snapshots_dropped;
    t->installs += s->installs;
    t->ok += s->ops_ok;
    t->gave_up += s->ops_gave_up;
    t->retries += s->ops_retries;
    t->redirects += s->ops_redirects;
    t->leaders += s->leader_changes;
    t->agreement += s->chk_agreement;
    t->validity += s->chk_validity;
    t->exactly_once += s->chk_exactly_once;
    t->convergence += s->chk_convergence;
    t->durability += s->chk_durability;
    t->said += s->chk_said;
    t->accused += s->chk_accused;
    t->linz_ok += !s->failed && s->linz_verdict == SY_LINZ_OK;
    t->linz_unknown += !s->failed && s->linz_verdict == SY_LINZ_UNKNOWN;
    t->live_ok += s->liveness_ok;
    t->corrupted += s->corruptions;
    t->corrupt_boot += s->corrupt_at_boot;
    t->corrupt_run += s->corrupt_at_run;
    t->corrupt_end += s->corrupt_at_end;
    t->corrupt_healed += s->corrupt_healed;
    t->ledger_blocks += s->chk_ledger_blocks;
}

static void summary(const sy_sim_opts *o, const totals *t, double secs, bool failed)
{
    printf("synod-sim: %s, %u nodes, %" PRIu64 " seed%s from %" PRIu64 " in %.2fs "
           "(%.1f seeds/s, %.0f simulated s)\n",
           o->protocol, o->nodes, t->runs, t->runs == 1 ? "" : "s", o->seed, secs,
           secs > 0 ? (double)t->runs / secs : 0.0, (double)t->sim_ms / 1000.0);
    printf("  %-22s %12s\n", "faults injected", "count");
    printf("  %-22s %12" PRIu64 "\n", "messages sent", t->sent);
    printf("  %-22s %12" PRIu64 "\n", "messages dropped", t->dropped);
    printf("  %-22s %12" PRIu64 "\n", "messages duplicated", t->dup);
    printf("  %-22s %12" PRIu64 "\n", "messages delayed", t->delayed);
    printf("  %-22s %12" PRIu64 "\n", "partitions", t->partitions);
    printf("  %-22s %12" PRIu64 "\n", "crashes", t->crashes);
    if (t->churns)
        printf("  %-22s %12" PRIu64 "\n", "leaders churned", t->churns);
    if (t->lost_nodes)
        printf("  %-22s %12" PRIu64 "\n", "nodes lost for good", t->lost_nodes);
    if (t->outages)
        printf("  %-22s %12" PRIu64 "\n", "quorums lost (outage)", t->outages);
    if (t->replaced)
        printf("  %-22s %12" PRIu64 " (%" PRIu64 " rejoined and caught up)\n", "disks replaced",
               t->replaced, t->rejoined);
    if (t->handoffs)
        printf("  %-22s %12" PRIu64 "   (%" PRIu64 " then followed the next, after %" PRIu64
               " ms on average)\n", "leaders handed off", t->handoffs, t->handoffs_done,
               t->handoffs_done ? t->handoff_ms / t->handoffs_done : 0);
    printf("  %-22s %12" PRIu64 "\n", "restarts", t->restarts);
    printf("  %-22s %12" PRIu64 "\n", "pauses", t->pauses);
    printf("  %-22s %12" PRIu64 "\n", "unsynced writes lost", t->disk_lost);
    printf("  %-22s %12" PRIu64 "\n", "applies held unsynced", t->held);
    printf("  %-22s %12" PRIu64 "\n", "answered from sessions", t->session_replies);
    printf("  %-22s %12" PRIu64 "\n", "stored values corrupted", t->corrupted);
    printf("  %-22s %12" PRIu64 "\n", "envelopes rejected", t->rejected);
    printf("  %-22s %12s\n", "workload", "count");
    printf("  %-22s %12" PRIu64 "\n", "ops completed", t->ok);
    printf("  %-22s %12" PRIu64 "\n", "ops given up", t->gave_up);
    printf("  %-22s %12" PRIu64 "\n", "client retries", t->retries);
    printf("  %-22s %12" PRIu64 "\n", "client redirects", t->redirects);
    printf("  %-22s %12" PRIu64 "\n", "host snapshots", t->snapshots);
    printf("  %-22s %12" PRIu64 "\n", "  stored late", t->snapshots_late);
    printf("  %-22s %12" PRIu64 "\n", "  superseded, dropped", t->snapshots_dropped);
    printf("  %-22s %12" PRIu64 "\n", "snapshots installed", t->installs);
    printf("  %-22s %12" PRIu64 "\n", "leader changes", t->leaders);
    printf("  %-22s %12s\n", "checks passed", "assertions");
    printf("  %-22s %12" PRIu64 "\n", "agreement", t->agreement);
    printf("  %-22s %12" PRIu64 "\n", "validity", t->validity);
    printf("  %-22s %12" PRIu64 "\n", "exactly-once", t->exactly_once);
    printf("  %-22s %12" PRIu64 "\n", "convergence", t->convergence);
    printf("  %-22s %12" PRIu64 "\n", "durability", t->durability);
    if (t->said)
        printf("  %-22s %12" PRIu64 "\n", "no-equivocation", t->said);
    if (t->accused)
        printf("  %-22s %12" PRIu64 "\n", "no-false-accusation", t->accused);
    /* each corruption ends detected (at restart, on a read while running,
     * on the read at the end) or overwritten unread */
    printf("  %-22s %8" PRIu64 "/%-3" PRIu64 " corruptions (%" PRIu64 " at restart, %" PRIu64
           " running, %" PRIu64 " at end, %" PRIu64 " overwritten unread)\n",
           "corruption-detected", t->corrupt_boot + t->corrupt_run + t->corrupt_end,
           t->corrupted, t->corrupt_boot, t->corrupt_run, t->corrupt_end, t->corrupt_healed);
    printf("  %-22s %12" PRIu64 "\n", "ledger-verify blocks", t->ledger_blocks);
    printf("  %-22s %8" PRIu64 "/%-3" PRIu64 " runs%s\n", "linearizability", t->linz_ok,
           t->runs, t->linz_unknown ? " (some searches hit the work bound)" : "");
    printf("  %-22s %8" PRIu64 "/%-3" PRIu64 " runs\n", "liveness", t->live_ok, t->runs);
    printf("synod-sim: %s\n", failed ? "FAILED" : "all checks passed");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    sy_sim_opts o;
    sy_sim_opts_default(&o);
    o.protocol = NULL;
    o.replay_prefix = "synod-sim";
    uint64_t seeds = 1, v;
    const char *mutant_specs[SY_SIM_MAX_NODES];
    uint32_t n_mutant_specs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("synod-sim %s\n", SYNOD_VERSION);
            return 0;
        } else if (strcmp(a, "--ed25519") == 0) {
            o.ed25519 = true;
            continue;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o.verbose = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return usage_error("unexpected argument '%s'", a);
        static const char *const valued[] = { "--protocol", "--nodes", "--seed", "--seeds",
                                              "--requests", "--clients", "--snapshot-every",
                                              "--compact-keep", "--fault-ms", "--corrupt",
                                              "--faults", "--byzantine", "--mutant" };
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known |= strcmp(a, valued[k]) == 0;
        if (!known)
            return usage_error("unknown option '%s'", a);
        if (!val)
            return usage_error("%s needs a value", a);
        i++;
        if (strcmp(a, "--protocol") == 0) {
            o.protocol = val;
        } else if (strcmp(a, "--nodes") == 0) {
            if (!parse_u64(val, &v) || v < 1 || v > SY_SIM_MAX_NODES)
                return usage_error("--nodes wants 1..16, got '%s'", val);
            o.nodes = (uint32_t)v;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_u64(val, &o.seed))
                return usage_error("--seed wants an unsigned 64-bit number, got '%s'", val);
        } else if (strcmp(a, "--seeds") == 0) {
            if (!parse_u64(val, &seeds) || seeds < 1)
                return usage_error("--seeds wants a count >= 1, got '%s'", val);
        } else if (strcmp(a, "--requests") == 0) {
            if (!parse_u64(val, &v) || v < 1 || v > 100000)
                return usage_error("--requests wants 1..100000, got '%s'", val);
            o.requests = (uint32_t)v;
        } else if (strcmp(a, "--clients") == 0) {
            if (!parse_u64(val, &v) || v < 1 || v > SY_SIM_MAX_CLIENTS)
                return usage_error("--clients wants 1..64, got '%s'", val);
            o.clients = (uint32_t)v;
        } else if (strcmp(a, "--snapshot-every") == 0) {
            if (!parse_u64(val, &v) || v < 1 || v > 100000)
                return usage_error("--snapshot-every wants 1..100000 applied entries, got '%s'",
                                   val);
            o.snapshot_every = (uint32_t)v;
        } else if (strcmp(a, "--compact-keep") == 0) {
            if (!parse_u64(val, &v) || v < 1 || v > 100000)
                return usage_error("--compact-keep wants 1..100000 entries, got '%s'", val);
            o.compact_keep = (uint32_t)v;
        } else if (strcmp(a, "--fault-ms") == 0) {
            if (!parse_u64(val, &v) || v < 1)
                return usage_error("--fault-ms wants milliseconds >= 1, got '%s'", val);
            o.fault_ms = v;
        } else if (strcmp(a, "--corrupt") == 0) {
            if (!parse_u64(val, &v) || v > 100)
                return usage_error("--corrupt wants a percentage 0..100, got '%s'", val);
            o.corrupt_pct = v ? (uint32_t)v : SY_SIM_CORRUPT_OFF;
        } else if (strcmp(a, "--faults") == 0) {
            char bad[64];
            if (sy_sim_parse_faults(val, &o.faults, bad, sizeof bad)) {
                fprintf(stderr, "synod-sim: unknown fault '%s' (expected drop, dup, reorder, "
                        "partition, crash, pause, skew, disk, leader-churn, handoff, lose, replace, outage, all "
                        "or none)\n", bad);
                return 2;
            }
        } else if (strcmp(a, "--byzantine") == 0) {
            const char *colon = strchr(val, ':');
            char idbuf[16];
            if (!colon || (size_t)(colon - val) >= sizeof idbuf)
                return usage_error("--byzantine wants ID:BEHAVIOUR, got '%s'", val);
            memcpy(idbuf, val, (size_t)(colon - val));
            idbuf[colon - val] = 0;
            if (!parse_u64(idbuf, &v) || v >= SY_SIM_MAX_NODES)
                return usage_error("--byzantine: bad node id in '%s'", val);
            uint32_t code = 0;
            uint64_t num;
            for (uint32_t k = 0; k < sizeof byz_names / sizeof byz_names[0]; k++)
                if (strcmp(colon + 1, byz_names[k]) == 0)
                    code = k + 1;
            if (strcmp(colon + 1, "mutant-accept-wrong-digest") == 0)
                code = SY_SIM_MUTANT_BASE;
            else if (strcmp(colon + 1, "mutant-nv-no-recompute") == 0)
                code = SY_SIM_MUTANT_BASE + 1;
            else if (strcmp(colon + 1, "mutant-blame-agreeing") == 0)
                code = SY_SIM_MUTANT_BASE + 2;
            else if (!code && parse_u64(colon + 1, &num) && num > 0 && num < UINT32_MAX)
                code = (uint32_t)num;   /* numeric form, as replay lines print it */
            if (!code)
                return usage_error("--byzantine: unknown behaviour in '%s' (expected silent, "
                                   "equivocate, skip-seq, bad-sig, replay, wrong-digest, "
                                   "fake-prepared, bad-new-view, flood, twins or bad-state)", val);
            if (o.n_byz >= SY_SIM_MAX_BYZ)
                return usage_error("at most 16 --byzantine options, got more at '%s'", val);
            for (uint32_t k = 0; k < o.n_byz; k++)
                if (o.byz[k].node == (uint32_t)v)
                    return usage_error("--byzantine: a node given two behaviours at '%s' "
                                       "(one per node)", val);
            o.byz[o.n_byz++] = (sy_sim_byz){ (uint32_t)v, code };
        } else if (strcmp(a, "--mutant") == 0) {
            /* resolved once the protocol and node count are known */
            if (n_mutant_specs >= SY_SIM_MAX_NODES)
                return usage_error("at most 16 --mutant options, got more at '%s'", val);
            mutant_specs[n_mutant_specs++] = val;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (!o.protocol)
        return usage_error("%s", "--protocol is required (raft, paxos or pbft)");
    if (strcmp(o.protocol, "raft") != 0 && strcmp(o.protocol, "paxos") != 0 &&
        strcmp(o.protocol, "pbft") != 0)
        return usage_error("unknown protocol '%s' (expected raft, paxos or pbft)", o.protocol);
    o.ops = sy_engine_lookup(o.protocol);
    if (!o.ops) {
        fprintf(stderr, "synod-sim: protocol '%s' is not built into this binary yet\n",
                o.protocol);
        return 2;
    }
    bool bft = strcmp(o.protocol, "pbft") == 0;
    if (bft && (o.faults & SY_FAULT_REPLACE))
        return usage_error("%s", "the replace fault is for raft and paxos: a PBFT replica on an "
                           "empty disk is one of the f faulty ones, and needs no rejoin");
#ifndef SYNOD_TESTING
    if (o.n_byz) {
        fprintf(stderr, "synod-sim: --byzantine needs a test build: Byzantine behaviours are "
                "compiled out (reconfigure with -DSYNOD_TESTING=ON)\n");
        return 2;
    }
    if (n_mutant_specs) {
        fprintf(stderr, "synod-sim: --mutant needs a test build: mutants are compiled out "
                "(reconfigure with -DSYNOD_TESTING=ON)\n");
        return 2;
    }
#endif
    /* Byzantine proper (not mutants: those are correct-looking nodes) */
    uint32_t n_bad = 0;
    for (uint32_t i = 0; i < o.n_byz; i++)
        n_bad += o.byz[i].behaviour < SY_SIM_MUTANT_BASE;
    if (n_bad && !bft) {
        fprintf(stderr, "synod-sim: --byzantine needs --protocol pbft (%s tolerates crash "
                "faults only)\n", o.protocol);
        return 2;
    }
    for (uint32_t i = 0; i < o.n_byz; i++) {
        if (o.byz[i].node >= o.nodes) {
            fprintf(stderr, "synod-sim: --byzantine node %u is not in 0..%u\n", o.byz[i].node,
                    o.nodes - 1);
            return 2;
        }
    }
    uint32_t minn = bft ? 4 : 1;
    if (o.nodes < minn) {
        fprintf(stderr, "synod-sim: %s needs at least %u nodes, got %u\n", o.protocol, minn,
                o.nodes);
        return 2;
    }
    if (bft && n_bad > (o.nodes - 1) / 3)
        fprintf(stderr, "synod-sim: warning: %u Byzantine nodes exceed f=%u for n=%u; "
                "safety is not promised\n", n_bad, (o.nodes - 1) / 3, o.nodes);
    /* after --byzantine, so "--mutant NAME" skips the Byzantine nodes */
    for (uint32_t i = 0; i < n_mutant_specs; i++) {
        int ec = add_mutant(&o, mutant_specs[i]);
        if (ec)
            return ec;
    }

    totals t = { 0 };
    bool failed = false;
    uint64_t first = o.seed;
    double start = now_s();
    for (uint64_t k = 0; k < seeds && !failed; k++) {
        o.seed = first + k;
        sy_sim_stats st;
        int rc = sy_sim_run(&o, &st);
        if (rc) {
            fprintf(stderr, "synod-sim: seed %" PRIu64 ": could not set up the run: %s\n",
                    o.seed, sy_strerror(rc));
            return rc == SY_EINVAL ? 2 : 1;
        }
        add(&t, &st);
        if (st.failed)
            failed = true;
        else if (st.linz_verdict == SY_LINZ_UNKNOWN)
            fprintf(stderr, "synod-sim: seed %" PRIu64 ": linearizability search hit its work "
                    "bound (verdict unknown)\n", o.seed);
    }
    double secs = now_s() - start;
    o.seed = first;
    summary(&o, &t, secs, failed);
    return failed ? 1 : 0;
}
