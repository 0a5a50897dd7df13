/* synodctl bench's event-driven driver: all of bench's client identities
 * on one thread, over connections of its own (docs/client.md, "bench").
 *
 * The client library (net/client.h) gives each identity blocking calls,
 * so a bench of C clients there is C threads, each request crossing from
 * NNG's threads to the caller's and back: about 70 us of CPU per request
 * on the test machine, which bench's clients take from the nodes they
 * measure when both share the cores (docs/benchmarks.md, session 20).
 * This driver runs the same requests -- the same signed frames, the same
 * checks on every reply (net/client_wire.h), the same choice of nodes
 * and the same retries -- from one epoll loop, speaking NNG's SP protocol
 * (REQ/REP over TCP) on non-blocking sockets: about half the CPU per
 * request. It covers tcp:// client addresses only (bench_loop_usable);
 * bench uses the library's threads for tls+tcp:// and ipc://. */
#ifndef SY_CMD_BENCH_LOOP_H
#define SY_CMD_BENCH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/config.h"
#include "crypto/crypto.h"

typedef struct bench_loop_opts {
    uint32_t clients;     /* identities: keys[0..clients-1] */
    uint64_t requests;    /* in all; 0: run for duration_s */
    double duration_s;
    size_t value_size;
    double read_ratio;    /* share of gets; the rest are puts */
    uint32_t keys;        /* keys k000000000000000 .. keys-1 */
    uint32_t timeout_ms;  /* a request's deadline, retries included */
    bool stale;           /* gets flagged SY_REQ_STALE_OK */
} bench_loop_opts;

typedef struct bench_loop bench_loop;

/* The pseudo-random sequence bench draws keys and values from (xorshift64;
 * s nonzero), shared with its --threads driver. */
uint64_t bench_xorshift(uint64_t *s);

/* Whether every node's client address is one this driver speaks. */
bool bench_loop_usable(const sy_cluster_cfg *cfg);

/* Starts the loop on a thread of its own, connecting to every node for
 * every identity. cfg and keys are borrowed until bench_loop_end. Fails
 * (SY_EUNAUTH, SY_ENOMEM, SY_EIO) with one line in why. */
int bench_loop_start(const sy_cluster_cfg *cfg, sy_seckey *const *keys,
                     const bench_loop_opts *o, bench_loop **out, char *why, size_t whylen);

/* Progress, from any thread: requests done and failed so far, and the
 * connections up now (of clients x n). */
void bench_loop_progress(const bench_loop *l, uint64_t *done, uint64_t *errors,
                         uint32_t *connected);
/* Whether the loop has finished (every request done or failed). */
bool bench_loop_finished(const bench_loop *l);
/* Asks the loop to stop now, abandoning the requests in flight (they
 * count neither as done nor as failed). */
void bench_loop_stop(bench_loop *l);
/* Waits for the loop, frees it and hands over what it measured: the
 * latency of every request done, in us (malloc'ed; caller frees), the
 * last failure's code (SY_OK if none), and how long the requests ran:
 * from the first request to the end, without the connecting before it
 * (up to a second; 1,000 clients x 3 nodes take most of it). */
void bench_loop_end(bench_loop *l, uint64_t **lat_us, size_t *n_lat, int *last_err,
                    double *secs);

#endif
