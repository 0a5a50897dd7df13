/* Chunked digest of a byte string, so that a large blob can be moved in
 * pieces and every piece checked on arrival against one 32-byte digest.
 *
 * The blob is cut into chunks of `chunk` bytes (the last one may be shorter;
 * an empty blob is one empty chunk). Leaves are H(0x00 || chunk_i), inner
 * nodes H(0x01 || left || right) over the binary tree that splits n leaves
 * at the largest power of two below n (the Merkle tree shape of RFC 6962 /
 * RFC 9162, 2.1.1), and
 *
 *     digest = H(0x02 || u64be len || u32be chunk || root)
 *
 * with H = sy_hash (BLAKE2b-256). The length and the chunk size are inside
 * the digest, so a verified digest also fixes how many chunks there are and
 * how long each one is: a receiver can allocate the whole blob once the
 * first chunk checks out. Each chunk travels with its audit path (the
 * sibling hashes from the leaf up, at most SY_CHUNKS_MAX_PATH of them).
 *
 * PBFT's checkpoint digest is this digest of the snapshot blob
 * (bft/pbft/pbft_xfer.c, docs/pbft.md "State transfer"). */
#ifndef SY_CHUNKS_H
#define SY_CHUNKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "crypto/crypto.h"

#define SY_CHUNKS_MAX_PATH 32u   /* blobs are < 2^32 bytes: at most 2^32 leaves */

/* The two node hashes of every Merkle tree here (also the envelope's reply
 * batches, core/envelope.c, whose tree pairs bottom-up instead):
 * H(0x00 || data) for a leaf, H(0x01 || l || r) for an inner node. */
void sy_merkle_leaf(const void *data, size_t len, sy_digest *out);
void sy_merkle_node(const sy_digest *l, const sy_digest *r, sy_digest *out);

/* Number of chunks of a blob of len bytes (chunk >= 1); 0 when len is
 * 2^32 or more (too large to chunk). */
uint32_t sy_chunks_count(uint64_t len, uint32_t chunk);

/* The whole tree of blob, every level (leaves first, root last; under 2n
 * + SY_CHUNKS_MAX_PATH digests, allocated into *tree, free()), so that
 * audit paths cost O(log n) each; *n = sy_chunks_count(len, chunk).
 * SY_EINVAL for chunk 0 or a blob too large; SY_ENOMEM. */
int sy_chunks_tree(const uint8_t *blob, size_t len, uint32_t chunk, sy_digest **tree, uint32_t *n);

/* The digest of the blob of len bytes whose tree this is. */
void sy_chunks_tree_digest(const sy_digest *tree, uint32_t n, uint64_t len, uint32_t chunk,
                           sy_digest *out);

/* The digest of a blob (builds the tree; SY_EINVAL, SY_ENOMEM). */
int sy_chunks_digest(const uint8_t *blob, size_t len, uint32_t chunk, sy_digest *out);

/* Audit path of leaf idx < n of a tree from sy_chunks_tree, leaf first,
 * into path[SY_CHUNKS_MAX_PATH]; *plen hashes. */
void sy_chunks_path(const sy_digest *tree, uint32_t n, uint32_t idx, sy_digest *path,
                    uint32_t *plen);

/* true iff data is chunk idx of the blob of len bytes cut in chunks of
 * `chunk` bytes whose digest is d, by the audit path. Checks the chunk's
 * length too, so a true answer means the bytes can be copied to offset
 * idx * chunk of a len-byte buffer. */
bool sy_chunks_verify(const sy_digest *d, uint64_t len, uint32_t chunk, uint32_t idx,
                      const uint8_t *data, size_t dlen, const sy_digest *path, uint32_t plen);

#endif
