/* What an engine has queued for its host between two readies
 * (core/engine.h): messages to send, read states, refused requests, and
 * memory to free once the host is done with the ready that may still point
 * into it. ready() hands out everything queued (sy_outbox_hand_out);
 * advance() releases only that much (sy_outbox_release) and keeps what
 * steps added meanwhile for the next ready (core/engine.h, "Pipelining").
 * Raft and Multi-Paxos keep their effects in one; PBFT keeps more kinds
 * and its own (bft/pbft/pbft.h). One thread, like the engine. */
#ifndef SY_OUTBOX_H
#define SY_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include "core/engine.h"
#include "core/buf.h"

typedef struct sy_outbox {
    sy_outmsg *msgs;
    size_t n_msgs, cap_msgs;
    sy_read_state *reads;
    size_t n_reads, cap_reads;
    sy_reject *rejects;
    size_t n_rejects, cap_rejects;
    void **scratch;                 /* freed once released */
    size_t n_scratch, cap_scratch;
    /* how many of each the last ready handed out */
    size_t h_msgs, h_reads, h_rejects, h_scratch;
    uint64_t dropped;               /* messages not queued: out of memory */
} sy_outbox;

/* Frees a message's own allocations (an engine's hook; may be NULL). */
typedef void (*sy_outbox_msg_fn)(sy_msg *m);

/* A zeroed sy_outbox is empty and ready to use. */

/* Queues a message of `type` to `to` (SY_NO_NODE: every peer), zeroed but
 * for its type; the caller fills the body. NULL when out of memory (the
 * message is dropped and counted: the protocols tolerate loss). The
 * pointer is valid until the next call that queues a message. */
sy_msg *sy_outbox_msg(sy_outbox *o, uint32_t to, uint8_t type);
/* Queues a refusal of a client's request, or a read state. SY_ENOMEM:
 * not queued. */
int sy_outbox_reject(sy_outbox *o, uint32_t client_id, uint64_t req_no, int status,
                     uint32_t leader_hint);
int sy_outbox_read(sy_outbox *o, uint64_t read_id, uint64_t index, int status);
/* Takes ptr (NULL: nothing) and frees it at the release after the next
 * hand-out: what a queued message or a handed-out ready may point into.
 * SY_ENOMEM: not taken, the caller still owns ptr (to free it if nothing
 * can point into it yet, or to leak it rather than free it under a
 * reader). */
int sy_outbox_defer_free(sy_outbox *o, void *ptr);

/* ready(): points rd's msgs, reads and rejects at everything queued and
 * remembers how much that was. */
void sy_outbox_hand_out(sy_outbox *o, sy_ready *rd);
/* advance(): frees what the last hand-out covered (each message through
 * done, then the deferred memory) and keeps the rest, in order. */
void sy_outbox_release(sy_outbox *o, sy_outbox_msg_fn done);
/* Frees everything, handed out or not (done as above). */
void sy_outbox_free(sy_outbox *o, sy_outbox_msg_fn done);

#endif
