/* The replicated state machine: a key-value store with exactly-once client
 * sessions, a hash-chained ledger (core/ledger.h) and an incremental state
 * digest, all living in the storage backend.
 *
 * The host applies each committed entry inside the same storage write
 * transaction that persists the engine's sy_ready (core/storage.h), so the
 * state, the session table, the ledger block and the applied index become
 * durable together, or not at all.
 *
 * Determinism: sy_kv_apply is a pure function of (stored state, entry,
 * directory): every replica produces byte-identical results blobs, state and
 * digest, including for bad requests (they get a deterministic error
 * result). Nothing here reads a clock or a random source.
 *
 * Results: each applied request yields one sy_client_reply. status is an
 * enum sy_err: SY_OK; SY_ENOTFOUND (get/del of an absent key); SY_ECASFAIL
 * (val = current value, empty if absent); SY_ETOOBIG (key/value over a
 * limit); SY_EINVAL (empty key, unknown op); SY_ESTALE (req_no older than
 * the client's last applied one); decode errors (client_id = sender when
 * known, req_no 0). A retry of the last applied req_no gets the cached reply,
 * byte for byte. leader is always SY_NO_NODE here (the runtime fills it). */
#ifndef SY_KV_H
#define SY_KV_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/storage.h"
#include "core/envelope.h"
#include "core/engine.h"

#define SY_KV_MAX_SESSIONS 100000u  /* default bound on the session table */
/* LMDB keys are at most 511 bytes; keys longer than this are stored under
 * their first SY_KV_KEY_PREFIX bytes plus a hash, order kept (kv.c). */
#define SY_KV_KEY_PREFIX 448u
#define SY_KV_SNAPSHOT_MAGIC "SYKVSNP1"

/* The state machine bound to one storage. Holds configuration only; all
 * state is in the storage. */
typedef struct sy_kvm {
    sy_storage *s;
    sy_env_opts dec;        /* decode opts for logged requests (verifier NULL) */
    char cluster_id[SY_MAX_CLUSTER_ID + 1];
    uint32_t max_sessions;
} sy_kvm;

/* dec->cluster_id and dec->dir are borrowed/copied: dir must outlive kv.
 * max_sessions 0 = SY_KV_MAX_SESSIONS. dec->verifier is ignored (requests
 * in the log were verified on admission). */
int sy_kv_init(sy_kvm *kv, sy_storage *s, const sy_env_opts *dec, uint32_t max_sessions);

/* Results of one entry (or one direct read). replies[i].val / kvs point
 * into blob; kvs arrays are allocated. Free with sy_kv_results_free. */
typedef struct sy_kv_results {
    sy_client_reply *replies;
    size_t n;
    uint8_t *blob;          /* deterministic encoding of all replies */
    size_t blob_len;
    sy_digest digest;       /* BLAKE2b(blob): the ledger's results digest */
    bool skipped;           /* entry at or below applied: nothing done */
    bool block;             /* a ledger block was written */
    uint64_t height;        /* its height, when block */
} sy_kv_results;
void sy_kv_results_free(sy_kv_results *r);

/* Applies committed entry c->entry inside write txn t: executes each
 * request (NORMAL), updates sessions and the state digest, appends the
 * ledger block with c->evidence, and sets applied = index. NOOP and CONFIG
 * only advance applied. An index <= applied is skipped (out->skipped).
 * Returns SY_OK with per-request errors in the results; a non-OK return is
 * a storage failure: abort the txn. */
int sy_kv_apply(sy_kvm *kv, sy_txn *t, const sy_committed *c, sy_kv_results *out);

/* Serves a GET or SCAN from the current applied state without changing
 * anything (ReadIndex / lease reads). out has one reply, index = applied. */
int sy_kv_read(sy_kvm *kv, const sy_client_req *req, sy_kv_results *out);

/* Direct helpers (tests, tools): value of key copied into *val (free()). */
int sy_kv_get(sy_kvm *kv, const void *key, size_t kl, uint8_t **val, size_t *vl);
/* The state digest: sum mod 2^256 of BLAKE2b(u32be keylen || key || value)
 * over all live keys, as a 256-bit little-endian number. */
int sy_kv_digest(sy_kvm *kv, sy_digest *out);
/* The same, read in the caller's transaction (with its applied index, so a
 * status report pairs the two from one snapshot of the store). */
int sy_kv_digest_txn(sy_txn *t, sy_digest *out);
int sy_kv_applied(sy_kvm *kv, uint64_t *applied);
/* Session of a client: highest applied req_no (0 if none). */
int sy_kv_session(sy_kvm *kv, uint32_t client_id, uint64_t *req_no);
/* A request already applied, answered from the session table: SY_OK with
 * the cached reply in out (one reply, byte for byte what it got when it
 * was applied; free with sy_kv_results_free) when req_no is the client's
 * last applied one; SY_ESTALE when it is older; SY_ENOTFOUND when it is
 * newer or the client has no session. Reads committed state only. */
int sy_kv_session_reply(sy_kvm *kv, uint32_t client_id, uint64_t req_no, sy_kv_results *out);
/* Number of live sessions. */
int sy_kv_session_count(sy_kvm *kv, uint64_t *n);
/* Every live session's client and last applied req_no, in client order
 * (*out allocated, free(); NULL when none), and the applied index they go
 * with, from one read of the store. */
int sy_kv_sessions(sy_kvm *kv, sy_session_rec **out, size_t *n, uint64_t *applied);

/* Snapshot of state + sessions + applied index + ledger tip, as one
 * checksummed blob (*out owned by the caller, free()). */
int sy_kv_snapshot(sy_kvm *kv, uint8_t **out, size_t *len);
/* The same from transaction t (read or write; not ended here), which fixes
 * the state it is taken of: a read transaction opened on one thread may be
 * serialised on another while writes go on (the storage's MDB_NOTLS). */
int sy_kv_snapshot_txn(sy_txn *t, uint8_t **out, size_t *len);
/* Replaces the state machine with a snapshot inside write txn t: state,
 * sessions, applied index; the ledger restarts after the snapshot's tip.
 * Recomputes the digest and checks it against the blob's (SY_ECORRUPT). */
int sy_kv_restore(sy_kvm *kv, sy_txn *t, const uint8_t *blob, size_t len);

/* The generic replicated-state-machine face, for hosts that may one day
 * run a different machine. sm is the machine's object (sy_kvm *). */
typedef struct sy_sm_ops {
    const char *name;
    int (*apply)(void *sm, sy_txn *t, const sy_committed *c, sy_kv_results *out);
    int (*snapshot)(void *sm, uint8_t **out, size_t *len);
    int (*restore)(void *sm, sy_txn *t, const uint8_t *blob, size_t len);
    int (*digest)(void *sm, sy_digest *out);
} sy_sm_ops;
extern const sy_sm_ops sy_kv_sm_ops;

/* Reply encoding used in results blobs and the session table (exposed for
 * clients of the ledger and for tests). Decodes one reply at *off; kvs is
 * allocated when n_kvs > 0; bytes borrowed from buf. */
int sy_kv_reply_decode(const uint8_t *buf, size_t len, size_t *off, sy_client_reply *out);

#endif
