/* Write-ahead log in front of LMDB for the durable part of a ready.
 *
 * Why: an LMDB commit is durable only after two flushes (data pages, then
 * the meta page that points at them) and writes every copy-on-write page the
 * transaction touched. A crash-fault node must make its hard state and new
 * log entries durable before it sends the vote or ack that depends on them,
 * once per ready; the rest (applying entries, a commit index) may wait
 * (held apply, cmd/synod/runtime.c). So the daemon writes each ready into
 * one long LMDB transaction that stays open, and makes the durable part of
 * the ready durable by appending it to this log and syncing once: one small
 * sequential write and one fdatasync. The LMDB transaction is committed
 * every 250 ms or so (or sooner: snapshot, read, shutdown), after which
 * the log is reused from the start. This is etcd's WAL + backend split.
 *
 * File: `wal` in the data directory, zero-filled to its full size when it
 * is created, so syncing an overwrite has no file metadata to write.
 * Records back to back from offset 0:
 *     u32be magic 'SYWL' | u32be payload length | u64be seq |
 *     8-byte checksum of (log id, length, seq, payload) | payload
 * Sequence numbers are consecutive and never reused. In the same LMDB
 * transaction as a record's changes the meta value "wal_seq" is set to its
 * seq, so an LMDB commit says which records it contains. Recovery (before
 * anything reads the store) replays, from offset 0, the records wal_seq+1,
 * wal_seq+2, ... and stops at the first that is torn, corrupt or not the
 * next number -- a record of an earlier round, which the reuse of the file
 * left behind, always has a smaller number. A record is replayed with
 * sy_txn_persist_ready into the committed LMDB state, which holds exactly
 * the records before it: the same writes in the same order as the first
 * time. Applied state is never logged: it is re-applied from the log.
 *
 * Payload (the durable part of a sy_ready; snapshots and compaction are
 * not logged, the daemon commits LMDB for those):
 *     u8 version (1) | u8 flags (bit 0: hard state, bit 1: engine records) |
 *     [u32be len | hard state] | u64be truncate_from | u32be n |
 *     n x (u64be index | u64be term | u8 type | u32be len | data) |
 *     [u64be records_drop_below | u32be m | m x (u64be key | u32be len | value)]
 * (A node of a version without engine records refuses a record with bit 1
 * as corrupt rather than dropping what it cannot read.)
 *
 * One thread uses a sy_wal (the daemon's event loop, or boot). */
#ifndef SY_WAL_H
#define SY_WAL_H

#include <stddef.h>
#include <stdint.h>
#include "core/storage.h"

#define SY_WAL_FILE "wal"
#define SY_WAL_DEFAULT_SIZE (8u << 20)

typedef struct sy_wal sy_wal;

/* Opens dir/wal, creating it zero-filled to `size` bytes (0: the default)
 * when absent. On failure errmsg (SY_STORAGE_ERRMSG bytes, may be NULL)
 * gets one line. */
int sy_wal_open(const char *dir, uint64_t size, sy_wal **out, char *errmsg);
void sy_wal_close(sy_wal *w);

/* Replays every record after the store's "wal_seq" into s in one synced
 * LMDB transaction (nothing to do: no transaction). Afterwards new records
 * go from offset 0. *replayed (may be NULL) gets the number applied.
 * SY_ECORRUPT when a record in the middle of the log is damaged (a later
 * record exists) or one that checks out cannot be applied; SY_EIO when the
 * file cannot be read. sy_storage_errmsg(s) says which. A store gets a
 * random log id (meta "wal_id") the first time; every record's checksum
 * covers it, so another store's leftover log is never replayed. */
int sy_wal_recover(sy_wal *w, sy_storage *s, size_t *replayed);

/* True when rd's durable part can be logged (no snapshot, compaction or
 * checkpoint: those need an LMDB commit). */
bool sy_wal_loggable(const sy_ready *rd);

/* Appends the durable part of rd (already written into t, the open write
 * transaction) as the next record, sets "wal_seq" in t and syncs the file.
 * *full set (and SY_OK): no room before the end of the file -- nothing was
 * written; the caller commits t (which holds rd's changes) and calls
 * sy_wal_reset. Any error: the node must stop (t may be unusable). */
int sy_wal_log(sy_wal *w, sy_txn *t, const sy_ready *rd, bool *full);

/* After an LMDB commit that contains every logged record: the file is
 * written from its start again. */
void sy_wal_reset(sy_wal *w);

/* Bytes in use since the last reset (tests, diagnostics). */
uint64_t sy_wal_used(const sy_wal *w);

/* After recovery: the store had logged records ("wal_seq" > 0) but the
 * file was not there (sy_wal_open created it) -- after a clean stop, so
 * nothing was lost (recovery refuses the unclean case with SY_ECORRUPT). */
bool sy_wal_missing(const sy_wal *w);

/* A clean stop: puts the mark "everything logged is in LMDB" into t, the
 * daemon's last transaction (the caller commits it; a snapshot
 * being stored may still commit after it: it writes no log record). The
 * next recovery clears it durably before any record is written. */
int sy_wal_mark_clean(sy_wal *w, sy_txn *t);

#endif
