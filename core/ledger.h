/* The ledger: every committed batch of client requests becomes one block in
 * a hash chain, written in the same storage transaction that applies the
 * batch, so the chain, the state and the applied index never disagree.
 *
 * Height is a counter of blocks (1, 2, 3, ... with no gaps), not the log
 * index: NOOP and CONFIG entries, and batches that do not decode, make no
 * block, and a verifier can tell a missing block from a skipped index. The
 * block records the log index and term it came from.
 *
 * A block holds the batch itself (the signed request envelopes exactly as
 * the clients sent them), so the chain stays verifiable after the log has
 * been compacted: anyone with the cluster's public keys can re-check every
 * request signature without trusting the node that stored it.
 *
 * Block hash = BLAKE2b-256 over the block's header (height, index, term,
 * prev, batch digest, results digest) -- not over the evidence, which
 * differs between replicas that committed the same batch with different
 * valid certificates; so every correct replica has the same chain and the
 * same ledger head. A separate checksum over the whole stored record
 * (evidence and batch included) catches bit rot. Reading a block checks
 * both; a mismatch is SY_ECORRUPT naming the height. See docs/storage.md. */
#ifndef SY_LEDGER_H
#define SY_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include "core/storage.h"
#include "core/envelope.h"

#define SY_LEDGER_VERSION 2
#define SY_LEDGER_WHY 256

typedef struct sy_ledger_block {
    uint64_t height;
    uint64_t index, term;        /* log position of the committed entry */
    sy_digest prev;              /* hash of block height-1 (or of the base) */
    sy_digest batch_digest;      /* BLAKE2b of the encoded batch */
    sy_digest results_digest;    /* BLAKE2b of the results blob (kv.h) */
    sy_bytes evidence;           /* protocol commit evidence (opaque) */
    sy_bytes batch;              /* encoded batch of signed requests */
    sy_digest hash;              /* this block's hash */
} sy_ledger_block;

/* Appends the next block (height = tip + 1) inside write txn t. batch and
 * evidence are copied. *out (may be NULL) gets the header; its sy_bytes are
 * borrowed from the arguments. */
int sy_ledger_append(sy_txn *t, uint64_t index, uint64_t term, sy_bytes batch,
                     const sy_digest *results_digest, sy_bytes evidence,
                     sy_ledger_block *out);

/* Fills in the evidence of block `height`, written in t with none (a host
 * that signs a commit record after answering, core/engine.h). The block's
 * hash does not cover the evidence, so the chain is unchanged.
 * SY_EINVAL if the block already has evidence. */
int sy_ledger_set_evidence(sy_txn *t, uint64_t height, sy_bytes evidence);

/* Reads and checks one block; out's sy_bytes are borrowed from the txn.
 * SY_ENOTFOUND if absent, SY_ECORRUPT (storage errmsg names the height). */
int sy_ledger_get(sy_txn *t, uint64_t height, sy_ledger_block *out);

/* Last block (height 0 and a zero hash for an empty chain). */
int sy_ledger_tip(sy_txn *t, uint64_t *height, sy_digest *hash);
/* The block the stored chain starts after: (0, zero) unless a snapshot
 * install reset the ledger to the snapshot's tip. */
int sy_ledger_base(sy_txn *t, uint64_t *height, sy_digest *hash);
/* Drops every stored block and restarts the chain after (height, hash):
 * used when a snapshot replaces the state machine. */
int sy_ledger_reset(sy_txn *t, uint64_t height, const sy_digest *hash);

/* Protocol-specific check of a block's commit evidence (e.g. a PBFT commit
 * certificate). Returns SY_OK or an error code and a one-line reason. */
typedef int (*sy_ledger_evidence_cb)(void *ctx, const sy_ledger_block *b, char *why,
                                     size_t whylen);

/* Walks the whole stored chain: heights contiguous from base+1 to the tip
 * recorded in meta, each block's hash, prev linkage, batch digest, every
 * request's envelope and signature against opts (opts->verifier must be
 * set), and evidence_cb (may be NULL).
 * On SY_OK *height_out = the tip height. On failure *height_out = the first
 * bad height and why gets one line ("height 17: request 2: signature does
 * not verify"). */
int sy_ledger_verify(sy_storage *s, const sy_env_opts *opts, sy_ledger_evidence_cb cb,
                     void *ctx, uint64_t *height_out, char *why, size_t whylen);

/* Same, opening the LMDB data dir read-only (the node may be running). */
int sy_ledger_verify_dir(const char *data_dir, const sy_env_opts *opts,
                         sy_ledger_evidence_cb cb, void *ctx, uint64_t *height_out,
                         char *why, size_t whylen);

#endif
