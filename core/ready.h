/* An owned copy of an engine's sy_ready, for hosts that pipeline (see
 * core/engine.h, "Pipelining"): the host keeps stepping the engine while the
 * durable write of the last ready is in flight, which ends the validity of
 * the engine's rd. Everything the write and the after-write steps need
 * (hard state, engine records, truncation, entries, snapshot, compaction,
 * committed entries with their evidence, read states, rejects, checkpoint
 * index) is copied into one allocation; messages are not copied: the host
 * encodes them into frames before stepping again. */
#ifndef SY_READY_H
#define SY_READY_H

#include "core/engine.h"

typedef struct {
    sy_ready rd;      /* every pointer into arena, msgs NULL / n_msgs 0 */
    uint8_t *arena;   /* owned */
} sy_ready_owned;

/* Deep-copies in (except its messages) into *out. On error *out is empty. */
int sy_ready_copy(const sy_ready *in, sy_ready_owned *out);
/* Frees the copy; safe on a zeroed or already freed one. */
void sy_ready_owned_free(sy_ready_owned *o);

/* Step 1 of rd writes anything at all (a lazy hard state included). */
bool sy_ready_persists(const sy_ready *rd);
/* Step 1 of rd holds work that must be durable before rd's effects: a hard
 * state that is not lazy, engine records, truncation, entries, a snapshot,
 * compaction, or a checkpoint (whose snapshot reads committed state). */
bool sy_ready_must_sync(const sy_ready *rd);

/* Removes the first `handed` of the *n elements of arr (elsz bytes each),
 * keeping the rest in order: how a pipelined engine's advance() releases
 * what its last ready handed out while keeping what steps added since. */
void sy_drop_front(void *arr, size_t *n, size_t handed, size_t elsz);

#endif
