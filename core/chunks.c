/* Chunked digest (core/chunks.h): a Merkle tree over fixed-size chunks,
 * shaped as in RFC 9162 2.1.1 so the audit path and its check follow that
 * text (2.1.3.1 and 2.1.3.2). Domain bytes keep leaves, inner nodes and the
 * final digest apart, so no inner node can pass for a chunk. */
#include <stdlib.h>
#include <string.h>
#include "core/chunks.h"
#include "crypto/sy_err.h"

void sy_merkle_leaf(const void *p, size_t len, sy_digest *out)
{
    static const uint8_t tag = 0x00;
    sy_hasher h;
    sy_hash_init(&h);
    sy_hash_update(&h, &tag, 1);
    sy_hash_update(&h, p, len);
    sy_hash_final(&h, out);
}

void sy_merkle_node(const sy_digest *l, const sy_digest *r, sy_digest *out)
{
    static const uint8_t tag = 0x01;
    sy_hasher h;
    sy_hash_init(&h);
    sy_hash_update(&h, &tag, 1);
    sy_hash_update(&h, l->b, SY_DIGEST_LEN);
    sy_hash_update(&h, r->b, SY_DIGEST_LEN);
    sy_hash_final(&h, out);
}

static void final_hash(uint64_t len, uint32_t chunk, const sy_digest *root, sy_digest *out)
{
    uint8_t b[13];
    b[0] = 0x02;
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(len >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        b[9 + i] = (uint8_t)(chunk >> (24 - 8 * i));
    sy_hasher h;
    sy_hash_init(&h);
    sy_hash_update(&h, b, sizeof b);
    sy_hash_update(&h, root->b, SY_DIGEST_LEN);
    sy_hash_final(&h, out);
}

uint32_t sy_chunks_count(uint64_t len, uint32_t chunk)
{
    if (!chunk || len >= (1ull << 32))
        return 0;
    if (len == 0)
        return 1;
    return (uint32_t)((len + chunk - 1) / chunk);
}

/* Built bottom-up: each level pairs neighbours and carries an odd last
 * node up unchanged, which gives exactly RFC 9162's left-balanced tree
 * (split at the largest power of two below n). Levels lie back to back,
 * leaves first, root last: under 2n + 32 digests. */
int sy_chunks_tree(const uint8_t *blob, size_t len, uint32_t chunk, sy_digest **tree, uint32_t *n)
{
    uint32_t cnt = sy_chunks_count(len, chunk);
    if (!cnt)
        return SY_EINVAL;
    sy_digest *t = malloc(((size_t)2 * cnt + SY_CHUNKS_MAX_PATH) * sizeof *t);
    if (!t)
        return SY_ENOMEM;
    for (uint32_t i = 0; i < cnt; i++) {
        size_t off = (size_t)i * chunk;
        size_t cl = len - off < chunk ? len - off : chunk;
        sy_merkle_leaf(blob + off, cl, &t[i]);
    }
    size_t ls = 0, count = cnt;
    while (count > 1) {
        size_t up = (count + 1) / 2, ps = ls + count;
        for (size_t j = 0; j < up; j++) {
            if (2 * j + 1 < count)
                sy_merkle_node(&t[ls + 2 * j], &t[ls + 2 * j + 1], &t[ps + j]);
            else
                t[ps + j] = t[ls + 2 * j];
        }
        ls = ps;
        count = up;
    }
    *tree = t;
    *n = cnt;
    return SY_OK;
}

static const sy_digest *tree_root(const sy_digest *tree, uint32_t n)
{
    size_t ls = 0, count = n;
    while (count > 1) {
        ls += count;
        count = (count + 1) / 2;
    }
    return &tree[ls];
}

void sy_chunks_tree_digest(const sy_digest *tree, uint32_t n, uint64_t len, uint32_t chunk,
                           sy_digest *out)
{
    final_hash(len, chunk, tree_root(tree, n), out);
}

int sy_chunks_digest(const uint8_t *blob, size_t len, uint32_t chunk, sy_digest *out)
{
    sy_digest *t;
    uint32_t n;
    int rc = sy_chunks_tree(blob, len, chunk, &t, &n);
    if (rc)
        return rc;
    sy_chunks_tree_digest(t, n, len, chunk, out);
    free(t);
    return SY_OK;
}

void sy_chunks_path(const sy_digest *tree, uint32_t n, uint32_t idx, sy_digest *path,
                    uint32_t *plen)
{
    /* a carried node has no sibling at its level: nothing on the path, as
     * RFC 9162 2.1.3.1 gives for the right edge */
    size_t ls = 0, count = n, pos = idx;
    uint32_t k = 0;
    while (count > 1 && k < SY_CHUNKS_MAX_PATH) {
        if ((pos ^ 1) < count)
            path[k++] = tree[ls + (pos ^ 1)];
        ls += count;
        pos >>= 1;
        count = (count + 1) / 2;
    }
    *plen = k;
}

bool sy_chunks_verify(const sy_digest *d, uint64_t len, uint32_t chunk, uint32_t idx,
                      const uint8_t *data, size_t dlen, const sy_digest *path, uint32_t plen)
{
    uint32_t n = sy_chunks_count(len, chunk);
    if (!n || idx >= n || plen > SY_CHUNKS_MAX_PATH)
        return false;
    uint64_t off = (uint64_t)idx * chunk;
    uint64_t want = len - off < chunk ? len - off : chunk;
    if (dlen != want)
        return false;
    /* RFC 9162 2.1.3.2 */
    uint32_t fn = idx, sn = n - 1;
    sy_digest r;
    sy_merkle_leaf(data, dlen, &r);
    for (uint32_t i = 0; i < plen; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            sy_merkle_node(&path[i], &r, &r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            sy_merkle_node(&r, &path[i], &r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return false;
    sy_digest got;
    final_hash(len, chunk, &r, &got);
    return sy_digest_eq(&got, d);
}
