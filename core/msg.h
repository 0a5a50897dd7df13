/* Message bodies carried inside envelopes, as validated structs.
 *
 * Every wire message is one envelope (core/envelope.h) whose body is one of
 * the structs below, encoded as msgpack. Bodies are decoded only by the
 * envelope decoder; everything past it works on these structs.
 *
 * Ownership: a decoded message's sy_bytes point into the envelope's raw
 * buffer (zero copy) and arrays are allocated by the decoder; both live until
 * sy_msg_free / sy_env_free. Code that keeps data past that copies it. */
#ifndef SY_MSG_H
#define SY_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "crypto/crypto.h"

/* ---- limits (named, so hitting one is a counted event) ---- */
#define SY_MAX_KEY 1024u                  /* bytes */
#define SY_MAX_VALUE (1024u * 1024u)      /* bytes */
#define SY_MAX_SCAN 1000u                 /* results per scan */
#define SY_MAX_SCAN_BYTES (4u * 1024u * 1024u)
#define SY_MAX_ENVELOPE (16u * 1024u * 1024u) /* whole frame */
#define SY_MAX_ENTRIES_PER_MSG 4096u
#define SY_MAX_BATCH 4096u                /* requests per batch */
#define SY_MAX_NODES 64u
#define SY_MAX_CLUSTER_ID 64u
#define SY_CLIENT_ID_BASE 0x10000u        /* sender ids >= this are clients */

typedef struct {
    const uint8_t *p;
    uint32_t len;
} sy_bytes;

/* ---- message types (stable numbers; they are on the wire) ---- */
enum sy_msg_type {
    SY_MSG_PING = 1,
    SY_MSG_PONG = 2,
    SY_MSG_CLIENT_REQ = 10,
    SY_MSG_CLIENT_REPLY = 11,
    SY_MSG_STATUS_REQ = 12,
    SY_MSG_STATUS_REPLY = 13,
    SY_MSG_TRANSFER_REQ = 14,     /* operator: hand leadership on */
    SY_MSG_TRANSFER_REPLY = 15,
    /* Raft (thesis ch. 3, 4, 5, 6) */
    SY_MSG_RAFT_VOTE = 20,
    SY_MSG_RAFT_VOTE_RESP = 21,
    SY_MSG_RAFT_APPEND = 22,
    SY_MSG_RAFT_APPEND_RESP = 23,
    SY_MSG_RAFT_SNAPSHOT = 24,
    SY_MSG_RAFT_SNAPSHOT_RESP = 25,
    SY_MSG_RAFT_TIMEOUT_NOW = 26,
    /* Multi-Paxos: 30..39, PBFT: 40..59 (added by their engines) */
    SY_MSG_TYPE_MAX = 64
};
const char *sy_msg_type_name(int type);

/* ---- client operations ---- */
enum sy_op_type {
    SY_OP_NOOP = 0,
    SY_OP_PUT = 1,
    SY_OP_GET = 2,
    SY_OP_DEL = 3,
    SY_OP_CAS = 4,   /* key, old (expected; empty + flag = absent), val (new) */
    SY_OP_SCAN = 5,  /* key = from (inclusive), val = to (exclusive, empty = end), limit */
};
#define SY_REQ_STALE_OK 0x1u    /* client accepts a possibly stale read */
#define SY_CAS_EXPECT_ABSENT 0x2u
#define SY_REQ_ORDERED 0x4u     /* read: order it through the log (PBFT fallback) */
/* The kind of cluster the client's manifest describes, so a node can refuse
 * a client that trusts it the wrong way (one reply from a PBFT replica, or
 * f+1 matching replies from a crash-fault cluster): SY_ECONFIG. Clients
 * before 0.16 set neither; nodes before 0.16 ignore both. */
#define SY_REQ_CLIENT_CFT 0x8u  /* raft or paxos: believes one node's reply */
#define SY_REQ_CLIENT_BFT 0x10u /* pbft: waits for f+1 matching replies */

typedef struct {
    uint32_t client_id;   /* == envelope sender */
    uint64_t req_no;      /* per client, strictly increasing from 1 */
    uint8_t op;           /* enum sy_op_type */
    uint8_t flags;
    uint32_t limit;       /* scan only */
    sy_bytes key, val, old;
    /* A PBFT client's digest of the membership its manifest describes
     * (sy_cluster_cfg.membership: cluster id, protocol, n, f, node keys),
     * from which it counts the matching replies it believes; a replica
     * whose own differs refuses the request (SY_EMEMBERSHIP) rather than let a client
     * with a smaller f trust too few replies. An optional ninth field on
     * the wire: crash-fault clients, and clients before 0.19, send none,
     * and nodes before 0.19 do not decode it. */
    bool has_membership;
    sy_digest membership;
} sy_client_req;

typedef struct {
    sy_bytes key, val;
} sy_kv;

typedef struct {
    uint32_t client_id;
    uint64_t req_no;
    uint8_t status;       /* enum sy_err: SY_OK, SY_ENOTFOUND, SY_ECASFAIL, ... */
    uint32_t leader;      /* leader/primary hint, UINT32_MAX if unknown */
    uint64_t index;       /* log position that decided it (0 for redirects) */
    sy_bytes val;         /* get: value; cas failure: current value */
    uint32_t n_kvs;       /* scan results */
    sy_kv *kvs;
} sy_client_reply;

/* What the replicas of a Byzantine cluster must agree on in a reply before
 * a client believes it: everything the caller will see (status, log
 * index, value, scan results), not the leader hint. Used by the client
 * library (net/client.c) and the simulator's client (tests/sim/client.c),
 * so both accept on the same f+1 (or read-quorum) matches. */
void sy_client_reply_digest(const sy_client_reply *r, sy_digest *out);

typedef struct {
    uint64_t nonce;
    uint64_t time_ms;
} sy_ping;

/* Operator status (synodctl status). with_faults (a second field, 1)
 * asks for the fault fields of the reply; a node before 0.20 refuses a
 * request that has it, so clients ask only nodes upgraded first. */
typedef struct {
    uint64_t nonce;
    bool with_faults;
} sy_status_req;

typedef struct {
    uint64_t nonce;
    uint32_t node;
    sy_bytes protocol;        /* "raft" | "paxos" | "pbft" */
    uint8_t role;             /* enum sy_role (core/engine.h) */
    uint64_t term;            /* term / ballot round / view */
    uint32_t leader;
    uint64_t last_index, commit_index, applied_index, snap_index;
    uint32_t peers_connected;
    uint64_t evidence;
    uint64_t leader_changes;
    sy_digest state_digest;
    sy_digest ledger_head;
    /* present when asked for (with_faults): whom this node's protocol
     * engine names as faulty (PBFT; sy_engine_status has the meanings) */
    bool has_faults;
    uint32_t evidence_from;   /* SY_NO_NODE: no evidence */
    uint64_t bad_sigs;
    uint32_t bad_sig_from;    /* SY_NO_NODE: none */
    uint64_t dissent;
    uint32_t dissent_from, dissent_primary;   /* SY_NO_NODE: none */
} sy_status_reply;

/* Operator leadership transfer (synodctl transfer): a client marked admin
 * in the manifest asks the node it believes leads to hand leadership on.
 * The request names that node and its term (view, ballot round): a node
 * acts only on a request for itself in its current term, so a copy
 * replayed later, or to another node, moves nothing. */
typedef struct {
    uint64_t nonce;
    uint32_t leader;          /* the node asked */
    uint64_t term;            /* its term as the client saw it lead */
    uint32_t target;          /* UINT32_MAX (SY_NO_NODE): the leader picks */
} sy_transfer_req;

typedef struct {
    uint64_t nonce;
    uint32_t node;
    uint8_t status;           /* SY_OK: started; else why not (enum sy_err) */
    uint32_t leader;          /* SY_OK: the target; else the leader it knows */
} sy_transfer_reply;

/* ---- log entries (shared by all engines and storage) ---- */
enum sy_entry_type {
    SY_ENTRY_NORMAL = 0,  /* data = encoded batch of signed client requests */
    SY_ENTRY_NOOP = 1,    /* leader's first entry of a term / PBFT null request */
    SY_ENTRY_CONFIG = 2,  /* data = encoded membership (sy_members) */
};

typedef struct {
    uint64_t index;
    uint64_t term;        /* Raft term, Paxos ballot round, PBFT view */
    uint8_t type;         /* enum sy_entry_type */
    sy_bytes data;
} sy_entry;

/* The identity of an entry: BLAKE2b over index and term (8 bytes each, host
 * order), type and data. Two entries with one digest are the same entry
 * (the simulator's and the fuzzers' agreement checks compare these). */
void sy_entry_digest(const sy_entry *e, sy_digest *out);

/* A batch is a msgpack array of bin, each bin one signed client-request
 * envelope exactly as the client sent it (so the ledger can re-verify it). */
int sy_batch_encode(const sy_bytes *reqs, uint32_t n, uint8_t **out, size_t *out_len);
/* Decodes into borrowed slices of buf; *reqs allocated (free()). */
int sy_batch_decode(const uint8_t *buf, size_t len, sy_bytes **reqs, uint32_t *n);

/* Membership: voters and learners by node id. */
typedef struct {
    uint32_t n_voters, n_learners;
    uint32_t voters[SY_MAX_NODES];
    uint32_t learners[SY_MAX_NODES];
} sy_members;
int sy_members_encode(const sy_members *m, uint8_t **out, size_t *out_len);
int sy_members_decode(const uint8_t *buf, size_t len, sy_members *out);

/* ---- Raft ---- */
typedef struct {
    uint64_t term;
    uint64_t last_index, last_term;
    bool prevote;         /* thesis 9.6: does not change terms */
    bool transfer;        /* sent after TimeoutNow: bypass leader stickiness */
} sy_raft_vote;

typedef struct {
    uint64_t term;
    bool granted;
    bool prevote;
} sy_raft_vote_resp;

typedef struct {
    uint64_t term;
    uint64_t prev_index, prev_term;
    uint64_t commit;
    uint64_t read_ctx;    /* ReadIndex round being confirmed (0 = none) */
    uint32_t n_entries;
    sy_entry *entries;
} sy_raft_append;

typedef struct {
    uint64_t term;
    bool success;
    uint64_t match_index;    /* on success: last index known to match */
    uint64_t conflict_index; /* on reject: hint for fast backtracking */
    uint64_t conflict_term;  /* 0 when the follower's log is too short */
    uint64_t last_index;     /* follower's last log index */
    uint64_t read_ctx;
} sy_raft_append_resp;

typedef struct {
    uint64_t term;
    uint64_t last_index, last_term;  /* snapshot covers 1..last_index */
    sy_members members;
    uint64_t offset;                 /* chunk position in the snapshot */
    bool done;                       /* last chunk */
    sy_bytes data;
} sy_raft_snapshot;

typedef struct {
    uint64_t term;
    uint64_t last_index;             /* snapshot index now held */
    uint64_t next_offset;            /* next chunk wanted */
    bool done;
} sy_raft_snapshot_resp;

typedef struct {
    uint64_t term;
} sy_raft_timeout_now;

/* Protocol-specific bodies live in their own headers (each engine's author
 * owns one) and codecs (core/msg_paxos.c, core/msg_pbft.c). */
#include "core/msg_paxos.h"
#include "core/msg_pbft.h"
#define SY_MSG_PAXOS_FIRST 30
#define SY_MSG_PAXOS_LAST 39
#define SY_MSG_PBFT_FIRST 40
#define SY_MSG_PBFT_LAST 59

/* ---- the tagged union ---- */
typedef struct sy_msg {
    uint8_t type;         /* enum sy_msg_type */
    union {
        sy_ping ping;
        sy_status_req status_req;
        sy_status_reply status;
        sy_transfer_req transfer_req;
        sy_transfer_reply transfer;
        sy_client_req req;
        sy_client_reply reply;
        sy_raft_vote vote;
        sy_raft_vote_resp vote_resp;
        sy_raft_append append;
        sy_raft_append_resp append_resp;
        sy_raft_snapshot snap;
        sy_raft_snapshot_resp snap_resp;
        sy_raft_timeout_now timeout_now;
        sy_paxos_body paxos;
        sy_pbft_body pbft;
    } u;
} sy_msg;

/* Body codec. encode appends the msgpack body to a growable buffer;
 * decode is strict (exact types, required fields, limits, no trailing
 * bytes) and borrows from buf. */
struct sy_buf;
int sy_msg_encode_body(const sy_msg *m, struct sy_buf *out);
int sy_msg_decode_body(uint8_t type, const uint8_t *buf, size_t len, sy_msg *out);
/* Frees arrays the decoder allocated (not the borrowed bytes). */
void sy_msg_free(sy_msg *m);

/* Per-protocol codec hooks called by the generic codec for their type
 * ranges. The reader/packer types come from core/mp.h. encode returns
 * SY_EMSGTYPE for a type it does not know; decode must be strict and leave
 * the reader at the end of the body (the caller checks for trailing bytes). */
int sy_msg_paxos_encode(const sy_msg *m, void *packer);
int sy_msg_paxos_decode(sy_msg *m, void *reader);
void sy_msg_paxos_free(sy_msg *m);
const char *sy_msg_paxos_name(int type);
int sy_msg_pbft_encode(const sy_msg *m, void *packer);
int sy_msg_pbft_decode(sy_msg *m, void *reader);
void sy_msg_pbft_free(sy_msg *m);
const char *sy_msg_pbft_name(int type);

#endif
