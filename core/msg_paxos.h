/* Multi-Paxos message bodies (types 30..39). Owned by the Paxos engine's
 * author; included by core/msg.h (include that, not this: the structs use
 * sy_entry and sy_bytes from it). Codec in core/msg_paxos.c.
 *
 * Ballots travel as one u64: the round, with round % SY_MAX_NODES naming the
 * proposer (Lamport, "Paxos Made Simple" 2.5: proposers draw ballots from
 * disjoint sets), so round order is the (round, node id) order. 0 = none.
 * Entries are sy_entry with index = slot and term = the ballot at which the
 * value was accepted (docs/paxos.md). */
#ifndef SY_MSG_PAXOS_H
#define SY_MSG_PAXOS_H

#include <stdint.h>
#include <stdbool.h>

enum sy_msg_paxos_type {
    SY_MSG_PAXOS_PREPARE = 30,      /* phase 1a */
    SY_MSG_PAXOS_PROMISE = 31,      /* phase 1b */
    SY_MSG_PAXOS_ACCEPT = 32,       /* phase 2a; no entries = heartbeat */
    SY_MSG_PAXOS_ACCEPTED = 33,     /* phase 2b, also heartbeat/chosen ack */
    SY_MSG_PAXOS_CHOSEN = 34,       /* catch-up: chosen values */
    SY_MSG_PAXOS_LEARN = 35,        /* ask for chosen values from a slot */
    SY_MSG_PAXOS_SNAPSHOT = 36,     /* catch-up past compaction, chunked */
    SY_MSG_PAXOS_SNAPSHOT_ACK = 37,
    SY_MSG_PAXOS_TAKEOVER = 38,     /* a stopping leader: run phase 1 now */
};

/* Most bytes of entries a PROMISE / ACCEPT / CHOSEN carries (below
 * SY_MAX_ENVELOPE with room for the header); more goes in further pages. */
#define SY_PAXOS_MSG_BYTES (8u * 1024u * 1024u)

typedef struct {
    uint64_t ballot;
    uint64_t from_slot;     /* report accepted values for slots >= this */
    bool probe;             /* pre-prepare: would you promise? changes nothing */
} sy_paxos_prepare;

typedef struct {
    uint64_t ballot;        /* the PREPARE's ballot, echoed */
    bool probe;             /* answers a probe: ok = would promise; no entries */
    bool ok;
    uint64_t promised;      /* acceptor's promise (> ballot when !ok) */
    uint64_t commit;        /* acceptor's chosen prefix: entries <= it are chosen */
    uint64_t snap_index;    /* slots <= this are compacted at the acceptor */
    uint64_t from_slot;     /* first slot this page covers */
    uint64_t next_slot;     /* 0: complete; else ask again from here */
    uint32_t n_entries;     /* accepted (slot, ballot, value), slots ascending */
    sy_entry *entries;
} sy_paxos_promise;

typedef struct {
    uint64_t ballot;
    uint64_t chosen;        /* leader's chosen prefix */
    uint64_t read_ctx;      /* read round being confirmed (0 = none) */
    uint32_t n_entries;     /* consecutive slots, term == ballot */
    sy_entry *entries;
} sy_paxos_accept;

typedef struct {
    uint64_t ballot;        /* the ballot answered */
    bool ok;
    uint64_t promised;      /* acceptor's promise (> ballot when !ok) */
    uint64_t first;         /* slots [first, first + count) accepted */
    uint32_t count;
    uint64_t commit;        /* acceptor's chosen prefix */
    uint64_t read_ctx;      /* echoed */
} sy_paxos_accepted;

typedef struct {
    uint64_t ballot;        /* sender's promised ballot */
    uint64_t commit;        /* sender's chosen prefix */
    uint32_t n_entries;     /* consecutive chosen slots */
    sy_entry *entries;
} sy_paxos_chosen;

typedef struct {
    uint64_t from_slot;
} sy_paxos_learn;

typedef struct {
    uint64_t ballot;        /* sender's promised ballot */
    uint64_t index, term;   /* snapshot covers slots 1..index */
    uint64_t offset;        /* chunk position */
    bool done;              /* last chunk */
    sy_bytes data;
} sy_paxos_snapshot;

typedef struct {
    uint64_t index;         /* snapshot acknowledged */
    uint64_t next_offset;   /* next chunk wanted */
    bool done;
    uint64_t commit;        /* receiver's chosen prefix now */
} sy_paxos_snapshot_ack;

/* Leadership hand-off (docs/paxos.md): the leader of `ballot` asks the
 * receiver to start phase 1 at once, without its pre-prepare. */
typedef struct {
    uint64_t ballot;        /* the sender's ballot, which it leads */
} sy_paxos_takeover;

typedef union sy_paxos_body {
    sy_paxos_prepare prepare;
    sy_paxos_promise promise;
    sy_paxos_accept accept;
    sy_paxos_accepted accepted;
    sy_paxos_chosen chosen;
    sy_paxos_learn learn;
    sy_paxos_snapshot snap;
    sy_paxos_snapshot_ack snap_ack;
    sy_paxos_takeover takeover;
} sy_paxos_body;

#endif
