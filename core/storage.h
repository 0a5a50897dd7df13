/* Durable storage for one replica: hard state, log, snapshot metadata, the
 * state machine's data, the client session table and the ledger.
 *
 * One interface, two backends behind a small vtable:
 *   - LMDB (the daemon): one environment per data dir, named sub-databases
 *     meta, log, state, sessions, ledger; a commit returns once durable.
 *   - memory (the simulator): tells what was synced apart from what was only
 *     written, so a simulated crash loses exactly the unsynced part.
 *
 * A backend is an ordered byte-key table store with transactions. The typed
 * layer (storage.c: log entries, hard state, snapshot, applied index) and the
 * state machine (kv.c) and ledger (ledger.c) all work through one write
 * transaction, so everything the host persists for one engine sy_ready —
 * hard state, truncation, appended entries, applied batches, session updates,
 * ledger blocks, applied index — becomes durable together with one fsync
 * (group commit) or not at all (no partial batch is ever visible).
 *
 * Every log entry, meta value and ledger block is stored with a checksum and
 * verified on read; a mismatch returns SY_ECORRUPT and sy_storage_errmsg()
 * names the entry index / block height. Nothing corrupt is served silently.
 *
 * Threading: one writer at a time; a storage object is used by one thread
 * (the node's runtime thread or the simulator). No global state.
 * See docs/storage.md for the on-disk layout and the durability argument. */
#ifndef SY_STORAGE_H
#define SY_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/msg.h"
#include "core/engine.h"

enum sy_table {
    SY_TBL_META = 0,     /* hard state, applied index, snapshot, digest, tips */
    SY_TBL_LOG,          /* u64be index -> checksummed entry */
    SY_TBL_STATE,        /* the KV machine's data (kv.c owns the encoding) */
    SY_TBL_SESSIONS,     /* client sessions (kv.c owns the encoding) */
    SY_TBL_LEDGER,       /* u64be height -> block (ledger.c owns the encoding) */
    SY_TBL_ENGINE,       /* u64be key -> engine record (sy_record), checksummed */
    SY_TBL_COUNT
};

#define SY_STORAGE_ERRMSG 256
#define SY_STORAGE_DEFAULT_MAP_SIZE (64ull << 30) /* sparse; LMDB only */
#define SY_CHECKSUM_LEN 8   /* truncated BLAKE2b-256 */

typedef struct sy_storage sy_storage;

/* A transaction (read-only or read-write). Lives on the caller's stack. */
typedef struct sy_txn {
    sy_storage *s;
    void *impl;
    bool write;
} sy_txn;

/* Backend ops: an ordered table store. Returned sy_bytes are borrowed from
 * the backend and valid until the transaction ends or its next write. */
typedef struct sy_storage_ops {
    const char *name;
    int (*begin)(sy_storage *s, bool write, void **txn);
    /* Write txn: returns SY_OK only once everything it wrote is durable
     * (memory backend in manual-sync mode: once written; see mem header). */
    int (*commit)(sy_storage *s, void *txn);
    void (*abort)(sy_storage *s, void *txn);
    int (*get)(sy_storage *s, void *txn, int tbl, const void *k, size_t kl, sy_bytes *v);
    int (*put)(sy_storage *s, void *txn, int tbl, const void *k, size_t kl,
               const void *v, size_t vl);
    int (*del)(sy_storage *s, void *txn, int tbl, const void *k, size_t kl); /* absent: OK */
    int (*clear)(sy_storage *s, void *txn, int tbl);
    /* Last pair of the table; SY_ENOTFOUND when empty. */
    int (*last)(sy_storage *s, void *txn, int tbl, sy_bytes *key, sy_bytes *val);
    /* Every pair with key >= k (k NULL: from the first) in key order, to
     * cb, until cb returns nonzero (that code is returned) or the table
     * ends (SY_OK). One cursor for the whole walk. sy_txn_seek is its
     * first step. */
    int (*scan)(sy_storage *s, void *txn, int tbl, const void *k, size_t kl,
                int (*cb)(void *ctx, sy_bytes key, sy_bytes val), void *ctx);
    void (*close)(sy_storage *s);
} sy_storage_ops;

struct sy_storage {
    const sy_storage_ops *ops;
    void *impl;
    char err[SY_STORAGE_ERRMSG];  /* last error, one line */
};

/* ---- backends ---- */
typedef struct sy_storage_lmdb_opts {
    uint64_t map_size;     /* 0 = SY_STORAGE_DEFAULT_MAP_SIZE */
    bool read_only;        /* verifier: open an existing dir without writing */
} sy_storage_lmdb_opts;
/* Opens (creating if needed, unless read_only) the environment in data_dir.
 * opts may be NULL. *out owned by the caller (sy_storage_close). On failure
 * errmsg (if non-NULL, SY_STORAGE_ERRMSG bytes) gets a one-line reason. */
int sy_storage_lmdb_open(const char *data_dir, const sy_storage_lmdb_opts *opts,
                         sy_storage **out, char *errmsg);

typedef struct sy_storage_mem_opts {
    /* false: every commit is durable at once. true: a commit is only
     * "written"; it becomes durable at sy_storage_mem_sync(), and
     * sy_storage_mem_crash() undoes everything written since. */
    bool manual_sync;
} sy_storage_mem_opts;
int sy_storage_mem_new(const sy_storage_mem_opts *opts, sy_storage **out);
/* Makes every committed transaction durable, except deferred ones. */
void sy_storage_mem_sync(sy_storage *s);
/* The next commit is deferred: sy_storage_mem_sync leaves it unsynced,
 * sy_storage_mem_sync_all syncs it, a crash loses it. It models a host
 * whose write-ahead log makes a ready's log and hard state durable while
 * the transaction holding its applies commits later (cmd/synod/runtime.c).
 * Use it only for transactions whose keys the later synced ones do not
 * touch (applies: state, sessions, ledger, applied index -- never the log
 * or hard state), since a crash undoes them under those. */
void sy_storage_mem_defer_next(sy_storage *s);
/* Makes every committed transaction durable, deferred ones included. */
void sy_storage_mem_sync_all(sy_storage *s);
/* Simulated crash: drops every committed-but-unsynced transaction, newest
 * first (call it with no transaction open). The object stays usable: it is the "disk" a restarted
 * node reopens. Returns how many transactions were lost. */
size_t sy_storage_mem_crash(sy_storage *s);
/* Fault injection: flip one byte of the current stored value (as bit rot
 * on disk; use it with nothing unsynced). SY_ENOTFOUND if no such key or
 * the offset is past the value. */
int sy_storage_mem_corrupt(sy_storage *s, int tbl, const void *k, size_t kl, size_t offset);
/* Number of commits so far that had to be synced (for stats/tests). */
uint64_t sy_storage_mem_syncs(const sy_storage *s);

void sy_storage_close(sy_storage *s);
const char *sy_storage_errmsg(const sy_storage *s);
/* Fills *view with a second handle on the open store s, with an error
 * buffer of its own: a thread that runs its transactions through the view
 * (the node's snapshot thread) writes its failures there, never into the
 * buffer the owner's thread is writing or reading. The view borrows s:
 * never close it, and stop using it before s is closed. */
void sy_storage_view(const sy_storage *s, sy_storage *view);

/* ---- transactions ---- */
int sy_txn_begin(sy_storage *s, bool write, sy_txn *t);
/* Commit a write txn (durable on SY_OK) or end a read txn. On failure the
 * transaction is aborted. */
int sy_txn_commit(sy_txn *t);
void sy_txn_abort(sy_txn *t);

/* Raw table access (used by kv.c and ledger.c; values borrowed as above). */
int sy_txn_get(sy_txn *t, int tbl, const void *k, size_t kl, sy_bytes *v);
int sy_txn_put(sy_txn *t, int tbl, const void *k, size_t kl, const void *v, size_t vl);
int sy_txn_del(sy_txn *t, int tbl, const void *k, size_t kl);
int sy_txn_clear(sy_txn *t, int tbl);
int sy_txn_seek(sy_txn *t, int tbl, const void *k, size_t kl, bool after, sy_bytes *key,
                sy_bytes *val);
int sy_txn_last(sy_txn *t, int tbl, sy_bytes *key, sy_bytes *val);
/* Walks the pairs from k (NULL: the first) in key order, each borrowed for
 * the call to cb; stops at cb's first nonzero return and returns it. */
int sy_txn_scan(sy_txn *t, int tbl, const void *k, size_t kl,
                int (*cb)(void *ctx, sy_bytes key, sy_bytes val), void *ctx);

/* Checksummed meta values: stored as checksum || value, verified on get
 * (SY_ECORRUPT naming the meta key on mismatch). *v borrowed. */
int sy_txn_meta_get(sy_txn *t, const char *name, sy_bytes *v);
int sy_txn_meta_put(sy_txn *t, const char *name, const void *v, size_t vl);
int sy_txn_meta_get_u64(sy_txn *t, const char *name, uint64_t *out); /* absent: 0 */
int sy_txn_meta_put_u64(sy_txn *t, const char *name, uint64_t v);

/* ---- the typed write batch (one per engine sy_ready) ---- */
int sy_txn_set_hardstate(sy_txn *t, sy_bytes hs);
/* Engine records: drops every record with key < drop_below (0: none), then
 * puts each of recs (an empty value deletes that key). Values copied. */
int sy_txn_records(sy_txn *t, uint64_t drop_below, const sy_record *recs, size_t n);
/* Drops entries with index >= from. */
int sy_txn_truncate(sy_txn *t, uint64_t from);
/* Appends entries (consecutive indexes, the first = last_index + 1, or
 * anything after a truncate/snapshot that leaves the log empty). Data copied. */
int sy_txn_append(sy_txn *t, const sy_entry *e, size_t n);
/* Drops entries with index <= upto (log compaction). The first index becomes
 * upto + 1 even if the log held nothing past upto. A pending checkpoint
 * snapshot (sy_txn_checkpoint_snapshot) at upto becomes the snapshot; those
 * below upto are dropped. */
int sy_txn_compact(sy_txn *t, uint64_t upto);
/* Records snapshot metadata and blob (the state machine's own restore is the
 * caller's business, in the same txn: sy_kv_restore). Drops log entries
 * <= index unless they match (index, term) — like Raft, a matching suffix is
 * kept — and the pending checkpoint snapshots at or below index. */
int sy_txn_set_snapshot(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m,
                        sy_bytes data);
/* Records a snapshot this node took of its own state machine at `index`
 * (applied from its own log): stores metadata and blob and compacts the log
 * through index; every entry above index stays, whatever its term. Hosts
 * use this for local snapshots and sy_txn_set_snapshot (via
 * sy_txn_persist_ready) for snapshots installed from a peer. SY_ESTALE,
 * writing nothing, when the store already holds a snapshot at index or
 * later (an install committed while this one was being taken). */
int sy_txn_local_snapshot(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m,
                          sy_bytes data);
/* PBFT: records the snapshot this replica took at its checkpoint `index`
 * before that checkpoint is stable. It is kept beside the stored snapshot
 * -- the last stable checkpoint's, which a lagging replica may still need
 * to fetch -- with every other pending one, and the log is left whole:
 * the engine's rd.compact_to when the checkpoint goes stable
 * (sy_txn_compact) makes it the snapshot and drops the pending ones below.
 * When the log is already compacted through index (the checkpoint went
 * stable on the others' votes first), it is stored as the snapshot at
 * once. SY_ESTALE, writing nothing, when the store holds a snapshot at
 * index or later, or this one, or the log is compacted past index. Boot
 * hands the pending ones back (sy_engine_boot.ckpts) so the replica can
 * sign those checkpoints again and serve them once they are stable. */
int sy_txn_checkpoint_snapshot(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m,
                               sy_bytes data);
int sy_txn_set_applied(sy_txn *t, uint64_t applied);
int sy_txn_get_applied(sy_txn *t, uint64_t *applied);

/* ---- reads ---- */
/* first = snapshot/compaction index + 1; last = last stored index (or
 * first - 1 when the log is empty). */
int sy_txn_log_bounds(sy_txn *t, uint64_t *first, uint64_t *last);
/* One entry; e->data borrowed from the txn. SY_ECOMPACTED below first,
 * SY_ENOTFOUND above last, SY_ECORRUPT on checksum mismatch. */
int sy_txn_entry(sy_txn *t, uint64_t index, sy_entry *e);

/* Entries [lo, hi] copied into one allocation: *out owned by the caller,
 * free(*out) frees everything (data points inside it). */
int sy_storage_entries(sy_storage *s, uint64_t lo, uint64_t hi, sy_entry **out, size_t *n);

/* Everything needed to fill sy_engine_boot at restart. The boot struct
 * borrows from the holder; sy_storage_boot_free releases it. */
typedef struct sy_storage_boot {
    sy_engine_boot boot;
    uint8_t *hardstate;
    uint8_t *snap_data;
    sy_ckpt_snap *ckpts;  /* each data.p its own allocation */
    sy_entry *entries;
    sy_record *records;   /* one allocation, values inside it */
} sy_storage_boot;
int sy_storage_load_boot(sy_storage *s, sy_storage_boot *out);
void sy_storage_boot_free(sy_storage_boot *b);

/* Convenience for hosts: persist step 1 of a sy_ready into an open write
 * txn (hard state, engine records, truncate, entries, snapshot metadata,
 * compaction). The caller then applies rd->committed via the KV and
 * commits. */
int sy_txn_persist_ready(sy_txn *t, const sy_ready *rd);

/* ---- helpers shared by kv.c / ledger.c ---- */
void sy_checksum(const void *a, size_t al, const void *b, size_t bl,
                 uint8_t out[SY_CHECKSUM_LEN]);
static inline void sy_put_u64be(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint64_t sy_get_u64be(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}
static inline void sy_put_u32be(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint32_t sy_get_u32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
/* Sets s->err (printf-style) and returns code. */
int sy_storage_fail(sy_storage *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
