/* Simulator throughput: simulated client requests completed per CPU-second,
 * per protocol, with the cheap keyed-hash signature scheme (and, for
 * comparison, Ed25519), no faults, 3 nodes (4 for pbft). This is the rate
 * that bounds how many seeds a sweep can afford, not a protocol benchmark.
 * Usage: bench_sim [requests-per-run, default 2000] [runs, default 3] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tests/sim/sim.h"
#include "core/engine.h"
#include "crypto/sy_err.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(const char *proto, bool ed25519, uint32_t requests, uint32_t runs)
{
    const sy_engine_ops *ops = sy_engine_lookup(proto);
    if (!ops) {
        printf("%-6s %-8s not built\n", proto, ed25519 ? "ed25519" : "simsig");
        return 0;
    }
    sy_sim_opts o;
    sy_sim_opts_default(&o);
    o.protocol = proto;
    o.ops = ops;
    o.nodes = strcmp(proto, "pbft") == 0 ? 4 : 3;
    o.requests = requests;
    o.clients = 10;
    o.ed25519 = ed25519;
    /* a short "fault phase" packs the workload densely: clients think
     * fault_ms * clients / requests ms between operations */
    o.fault_ms = requests / 2 + 1;
    FILE *devnull = fopen("/dev/null", "w");
    o.out = devnull;   /* a failing run is summarised in one line below */
    uint64_t ops_ok = 0, events = 0, msgs = 0, sim_ms = 0;
    double t0 = cpu_s();
    for (uint32_t r = 0; r < runs; r++) {
        sy_sim_stats st;
        o.seed = 1 + r;
        int rc = sy_sim_run(&o, &st);
        if (rc || st.failed) {
            printf("%-6s %-8s FAILED at seed %u: %s: %s (replay with synod-sim)\n", proto,
                   ed25519 ? "ed25519" : "simsig", r + 1, rc ? "setup" : st.check,
                   rc ? sy_strerror(rc) : st.why);
            if (devnull)
                fclose(devnull);
            return 1;
        }
        ops_ok += st.ops_ok;
        events += st.events;
        msgs += st.msgs_sent;
        sim_ms += st.sim_ms;
    }
    double cpu = cpu_s() - t0;
    if (devnull)
        fclose(devnull);
    printf("%-6s %-8s %10.0f req/cpu-s %12.0f events/cpu-s %12.0f msgs/cpu-s "
           "%8.1f sim-s/cpu-s\n", proto, ed25519 ? "ed25519" : "simsig",
           (double)ops_ok / cpu, (double)events / cpu, (double)msgs / cpu,
           (double)sim_ms / 1000.0 / cpu);
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t requests = argc > 1 ? (uint32_t)atoi(argv[1]) : 2000;
    uint32_t runs = argc > 2 ? (uint32_t)atoi(argv[2]) : 3;
    if (requests < 1 || runs < 1) {
        fprintf(stderr, "usage: bench_sim [requests-per-run] [runs]\n");
        return 2;
    }
    if (sy_crypto_init())
        return 1;
    static const char *const protos[] = { "raft", "paxos", "pbft" };
    int rc = 0;
    for (size_t i = 0; i < 3; i++)
        rc |= bench(protos[i], false, requests, runs);
    for (size_t i = 0; i < 3; i++)
        rc |= bench(protos[i], true, requests / 4 + 1, runs);
    return rc ? 1 : 0;
}
