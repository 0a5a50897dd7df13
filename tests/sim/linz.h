/* Linearizability checker for key-value histories (Wing & Gong search with
 * Lowe's memoisation, in the shape Porcupine made popular).
 *
 * A history is a set of operations, each with an invocation time, a response
 * time and a result. It is linearizable if every operation can be given one
 * point between its invocation and its response such that, in the order of
 * those points, a sequential key-value store returns exactly the observed
 * results. Single-key operations commute across keys, so the history is
 * partitioned by key and each partition is searched on its own.
 *
 * An operation whose response never arrived (the client gave up, or crashed)
 * is "pending": its response time is infinity and any result is accepted, so
 * it may take effect at any point after its invocation, or not at all
 * (linearizing it last is the same as never).
 *
 * The search is exponential in the worst case, so it is bounded: past
 * max_steps (or 512 MiB of memo table) the verdict is SY_LINZ_UNKNOWN rather
 * than a hang.
 *
 * Times are opaque ordered integers chosen by the caller (the simulator uses
 * simulated time scaled with an event sequence, so ties never hide order).
 * On equal times a call is ordered before a return, which only ever makes
 * the checker more permissive, never wrongly strict. */
#ifndef SY_LINZ_H
#define SY_LINZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SY_LINZ_PENDING UINT64_MAX    /* response time of a pending op */
#define SY_LINZ_MAX_OPS (1u << 22)    /* ops per history */

enum sy_linz_verdict {
    SY_LINZ_OK = 0,          /* linearizable */
    SY_LINZ_VIOLATION = 1,   /* provably not linearizable */
    SY_LINZ_UNKNOWN = 2,     /* work bound hit before a verdict */
};

typedef struct sy_linz sy_linz;

typedef struct sy_linz_result {
    int verdict;             /* enum sy_linz_verdict */
    uint64_t steps;          /* search steps over all partitions */
    size_t partitions;
    /* on VIOLATION / UNKNOWN: the first partition that failed */
    char key[64];            /* printable prefix of the key */
    size_t key_ops;          /* ops in that partition */
    size_t bad_op;           /* an op of that partition (history id) that
                                could not be linearized at the deepest point */
} sy_linz_result;

/* New empty history; *out owned by caller (sy_linz_free). */
int sy_linz_new(sy_linz **out);
void sy_linz_free(sy_linz *h);

/* Records an invocation. op is SY_OP_PUT / GET / DEL / CAS (core/msg.h);
 * flags may carry SY_CAS_EXPECT_ABSENT. val is the new value (put, cas),
 * old the expected value (cas). Bytes are copied. *id identifies the op for
 * sy_linz_return. Other op types are rejected with SY_EINVAL. */
int sy_linz_invoke(sy_linz *h, uint32_t client, uint64_t t, uint8_t op, uint8_t flags,
                   const void *key, size_t klen, const void *val, size_t vlen,
                   const void *old, size_t olen, size_t *id);

/* Records the response to op id at time t >= its invocation. status is the
 * store's answer: SY_OK; SY_ENOTFOUND (get/del of an absent key); SY_ECASFAIL
 * (cas mismatch). val is the value a get returned, or for a failed cas the
 * current value, which synod's store always reports (core/kv.c): empty
 * means the key was absent (or held the empty value).
 * Bytes are copied. An op never returned stays pending. */
int sy_linz_return(sy_linz *h, size_t id, uint64_t t, int status, const void *val,
                   size_t vlen);

size_t sy_linz_count(const sy_linz *h);

/* Checks the whole history; max_steps bounds the search (0 = a default of
 * 10 million). Returns SY_OK with the verdict in *res, or an error (SY_ENOMEM). */
int sy_linz_check(const sy_linz *h, uint64_t max_steps, sy_linz_result *res);

/* One line describing op id ("c65536 put k=v [t1,t2] -> ok") into buf. */
void sy_linz_describe(const sy_linz *h, size_t id, char *buf, size_t cap);

#endif
