/* The simulator's key-value state machine with client sessions.
 *
 * A stand-in for core/kv.h while that lands: same semantics (put, get, del,
 * cas with an expected value or "expect absent", per-client sessions that
 * make a retried request return its first result instead of applying again),
 * plus an order-independent 64-bit digest kept incrementally so convergence
 * can be checked after every applied index at O(1) cost. */
#ifndef SY_SIMKV_H
#define SY_SIMKV_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/msg.h"

typedef struct simkv simkv;

typedef struct {
    int status;            /* SY_OK, SY_ENOTFOUND, SY_ECASFAIL, SY_ESTALE */
    const uint8_t *val;    /* borrowed until the next call on the kv */
    uint32_t vlen;
    bool effective;        /* false: a duplicate answered from the session */
} simkv_result;

int simkv_new(simkv **out);
void simkv_free(simkv *kv);
/* Applies one ordered request. */
int simkv_apply(simkv *kv, const sy_client_req *req, simkv_result *res);
/* Reads a key: SY_OK with *v borrowed, or SY_ENOTFOUND. */
int simkv_get(const simkv *kv, const uint8_t *k, size_t kl, const uint8_t **v, size_t *vl);
uint64_t simkv_digest(const simkv *kv);
/* Serialises the whole state (pairs and sessions); *out owned by caller. */
int simkv_save(const simkv *kv, uint8_t **out, size_t *len);
/* Replaces the state with a saved one. SY_ECORRUPT on malformed input. */
int simkv_load(simkv *kv, const uint8_t *p, size_t len);

#endif
