/* synod: one replica of a synod cluster, in the foreground.
 *   synod --config DIR/node-<i>.ini [--log-level LEVEL]
 * Exit codes: 0 clean stop (SIGTERM/SIGINT), 1 run-time failure, 2 usage or
 * configuration error. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nng/nng.h>
#include "cmd/synod/runtime.h"
#include "core/envelope.h"
#include "core/log.h"
#include "net/transport.h"
#include "bft/pbft/pbft.h"

static volatile sig_atomic_t g_stop; /* cmd/ may hold process-wide state */

static void on_signal(int sig)
{
    (void)sig;
    /* counts (up to 2): a second signal cuts a leader's hand-off short */
    if (g_stop < 2)
        g_stop++;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: synod --config DIR/node-<i>.ini [--log-level debug|info|warn|error|off]\n"
            "             [--rejoin]\n"
            "       synod --version\n"
            "\n"
            "Runs one replica in the foreground. The node file names the node id,\n"
            "its secret key, its data directory and the cluster manifest.\n"
            "SIGTERM, SIGINT or SIGHUP (unless ignored, as under nohup) stops it cleanly\n"
            "(a leader or primary first hands its role to a peer); after a crash it\n"
            "recovers from its data directory alone.\n"
            "\n"
            "  --rejoin               (raft, paxos) this node's disk was replaced: start it\n"
            "                         on an empty data directory, and it takes no part in\n"
            "                         electing a leader until it has caught up\n"
            "                         (docs/operations.md, section 7)\n"
            "  --byzantine BEHAVIOUR  (test builds only, pbft) run as a faulty replica:\n"
            "                         silent equivocate skip-seq bad-sig replay wrong-digest\n"
            "                         fake-prepared bad-new-view flood bad-state, or a\n"
            "                         planted bug: mutant-accept-wrong-digest\n"
            "                         mutant-nv-no-recompute mutant-blame-agreeing\n"
#ifdef SYNOD_TESTING
            "  --slow-snapshot MS     (test builds only) every snapshot takes MS ms longer,\n"
            "                         as a large state's would\n"
            "  --stall-close MS       (test builds only) closing the network stalls MS ms\n"
            "                         before it starts, as a hung NNG close would\n"
#endif
            "\n"
            "exit codes: 0 stopped cleanly, 1 run-time failure, 2 usage or configuration error\n");
}

int main(int argc, char **argv)
{
    synod_opts o = {.log_level = -1};
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            if (argc != 2) {
                /* "synod --version --config f" printed and exited 0: whoever
                 * meant to start a node learnt nothing went wrong */
                fprintf(stderr, "synod: --version takes no other argument (see synod --help)\n");
                return 2;
            }
            /* what a rolling upgrade must match (docs/operations.md, Upgrades) */
            printf("synod %s (envelope format %d, PBFT hard state %u)\n", SYNOD_VERSION,
                   SY_ENV_VERSION, PBFT_HS_VERSION);
            return 0;
        } else if (!has_value && (!strcmp(argv[i], "--config") || !strcmp(argv[i], "--log-level") ||
                                  !strcmp(argv[i], "--byzantine") ||
                                  !strcmp(argv[i], "--slow-snapshot") ||
                                  !strcmp(argv[i], "--stall-close"))) {
            fprintf(stderr, "synod: %s needs a value (see synod --help)\n", argv[i]);
            return 2;
        } else if (!strcmp(argv[i], "--config") && o.config_path) {
            fprintf(stderr, "synod: --config given twice ('%s' and '%s'); give one node file\n",
                    o.config_path, argv[i + 1]);
            return 2;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            o.config_path = argv[++i];
        } else if (!strcmp(argv[i], "--log-level") && i + 1 < argc) {
            o.log_level = sy_log_level_parse(argv[++i]);
            if (o.log_level < 0) {
                fprintf(stderr, "synod: unknown log level '%s' (use debug, info, warn, error or "
                        "off)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--rejoin")) {
            o.rejoin = true;
        } else if (!strcmp(argv[i], "--byzantine") && i + 1 < argc) {
            o.byzantine = argv[++i];
        } else if (!strcmp(argv[i], "--slow-snapshot") && i + 1 < argc) {
            char *end;
            unsigned long ms = strtoul(argv[++i], &end, 10);
            if (*end || end == argv[i] || ms > 60000) {
                fprintf(stderr, "synod: --slow-snapshot wants milliseconds 0..60000, not '%s'\n",
                        argv[i]);
                return 2;
            }
            o.slow_snapshot_ms = (uint32_t)ms;
            o.slow_snapshot = true;
        } else if (!strcmp(argv[i], "--stall-close") && i + 1 < argc) {
            char *end;
            unsigned long ms = strtoul(argv[++i], &end, 10);
            if (*end || end == argv[i] || ms == 0 || ms > 600000) {
                fprintf(stderr, "synod: --stall-close wants milliseconds 1..600000, not '%s'\n",
                        argv[i]);
                return 2;
            }
            o.stall_close_ms = (uint32_t)ms;
        } else {
            fprintf(stderr, "synod: unexpected argument '%s' (see synod --help)\n", argv[i]);
            return 2;
        }
    }
    if (!o.config_path) {
        fprintf(stderr, "synod: missing --config DIR/node-<i>.ini (see synod --help)\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* a closed terminal or SSH session: stop as cleanly as for SIGTERM
     * (the default action killed the node mid-write, without a word) --
     * unless SIGHUP is ignored (nohup, a supervisor's choice): keep that */
    struct sigaction old_hup;
    if (sigaction(SIGHUP, NULL, &old_hup) == 0 && old_hup.sa_handler != SIG_IGN)
        sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bool net_left_behind = false;
    o.net_left_behind = &net_left_behind;
    int code = synod_run(&o, &g_stop);
    /* release NNG's global state before exit, unless a close hung in NNG
     * and was left behind (nng_fini would wait for it for ever) */
    if (!net_left_behind)
        nng_fini();
    return code;
}
