/* A node's data directory, guarded.
 *
 * One process at a time: an exclusive flock(2) on DIR/synod.lock, held for
 * the process's life (the kernel drops it when the process dies, SIGKILL
 * included). LMDB itself admits several writers one after another, but
 * the write-ahead log beside it (core/wal.h) has one writer by design: two
 * nodes started on one directory corrupt it.
 *
 * One identity for the directory's life: the store's meta value "identity"
 * (cluster id, protocol, node id, node public key) is written at the first
 * start and compared at every later one. A node of another cluster, another
 * node of this one, or this node after its keys were regenerated would
 * otherwise boot on a state, a log and votes that are not its own.
 *
 * A rejoin mark for a replaced disk: the file DIR/rejoin, made when a node
 * is started with --rejoin on a directory that holds no identity yet, and
 * removed once the engine has caught up (sy_engine_cfg.rejoin). A crash in
 * between leaves it, so the node rejoins again: the careful side.
 *
 * No global state; used by the daemon before anything reads the store. */
#ifndef SY_DATADIR_H
#define SY_DATADIR_H

#include <stddef.h>
#include <stdint.h>
#include "core/storage.h"
#include "crypto/crypto.h"

#define SY_DATADIR_LOCK "synod.lock"
#define SY_DATADIR_REJOIN "rejoin"

/* Takes the directory's lock. SY_OK: *fd holds it (close(*fd) releases).
 * SY_EEXIST: another process holds it (why names its pid when known);
 * SY_EPERM: this user may not open the lock file (the directory or the
 * file belongs to another user); SY_EIO: the lock file cannot be opened
 * or locked for another reason. why says which. */
int sy_datadir_lock(const char *dir, int *fd, char *why, size_t whylen);

/* The identity a node claims for a data directory. */
typedef struct {
    const char *cluster_id;
    const char *protocol;        /* "raft", "paxos", "pbft" */
    uint32_t node;
    const sy_pubkey *key;        /* the node's public key (borrowed) */
} sy_datadir_id;

/* SY_OK: the store had no identity (recorded now, in a synced commit) or
 * the same one. SY_ECONFIG: the store belongs to another identity; why
 * says whose and what differs. Other codes: storage errors
 * (sy_storage_errmsg). */
int sy_datadir_identity(sy_storage *s, const sy_datadir_id *id, char *why, size_t whylen);

/* The identity recorded in the store, for messages (read transaction):
 * cluster id, protocol name (buffers of 256 bytes each), node id and, if
 * key is non-NULL, the node's public key. SY_ENOTFOUND: none recorded (a
 * directory from before 0.12). */
int sy_datadir_identity_get(sy_storage *s, char cluster[256], char proto[256], uint32_t *node,
                            sy_pubkey *key);


/* fsync(2) of a directory, so names created or removed in it are durable:
 * 0, or the errno of what failed. */
int sy_dir_sync(const char *dir);

/* The rejoin mark. Each returns SY_OK or SY_EIO (why says why); made and
 * removed durably (the file and the directory synced). */
int sy_datadir_rejoin_mark(const char *dir, char *why, size_t whylen);
int sy_datadir_rejoin_clear(const char *dir, char *why, size_t whylen);
bool sy_datadir_rejoin_marked(const char *dir);

#endif
