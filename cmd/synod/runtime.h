/* The synod daemon's runtime: one thread that wires the configured engine to
 * the NNG transport, LMDB storage and the key-value state machine.
 *
 * Per loop iteration (the engine contract in core/engine.h):
 *   wait for verified inbound events (or the engine's next deadline)
 *   step them into the engine, then a tick
 *   ready -> one LMDB write transaction: hard state, log, snapshot install,
 *            apply committed entries (state + sessions + ledger + applied)
 *            -> commit (one fsync: group commit for everything above)
 *         -> sign and send messages (only now: persist-before-send)
 *         -> answer clients whose requests were applied, reads, rejects
 *   advance */
#ifndef SYNOD_RUNTIME_H
#define SYNOD_RUNTIME_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct synod_opts {
    const char *config_path;
    const char *byzantine;        /* test-only behaviour name, or NULL */
    bool slow_snapshot;           /* test-only: --slow-snapshot given */
    uint32_t slow_snapshot_ms;    /* added to every snapshot (snapshot thread) */
    uint32_t stall_close_ms;      /* test-only: sy_net_close stalls this long (0: no) */
    bool *net_left_behind;        /* out (optional): set when closing the network was
                                     left behind in NNG; then do not call nng_fini */
    int log_level;                /* -1: from the node file */
    bool rejoin;                  /* --rejoin: the node's disk was replaced
                                     (docs/operations.md, section 7) */
} synod_opts;

/* Runs until *stop becomes non-zero. Returns the process exit code: 0 after
 * a clean stop, 1 for a run-time failure, 2 for a configuration error (with
 * one line on stderr already printed). */
int synod_run(const synod_opts *o, volatile sig_atomic_t *stop);

#endif
