/* Chunked digest (core/chunks.h): every chunk of every blob shape checks
 * out against the digest with its audit path, and nothing else does -- not
 * a changed byte, a chunk at another index, a shortened or padded chunk, a
 * path from another chunk, or a claim of another length or chunk size. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "core/chunks.h"
#include "crypto/sy_err.h"

static uint8_t *blob_of(size_t len, uint8_t seed)
{
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 31u + seed);
    return b;
}

static void check_all_chunks(size_t len, uint32_t chunk)
{
    uint8_t *b = blob_of(len, 7);
    sy_digest d, d2, *tree;
    uint32_t n;
    assert_int_equal(sy_chunks_digest(b, len, chunk, &d), SY_OK);
    assert_int_equal(sy_chunks_tree(b, len, chunk, &tree, &n), SY_OK);
    assert_int_equal(n, sy_chunks_count(len, chunk));
    sy_chunks_tree_digest(tree, n, len, chunk, &d2);
    assert_true(sy_digest_eq(&d, &d2));
    for (uint32_t i = 0; i < n; i++) {
        sy_digest path[SY_CHUNKS_MAX_PATH];
        uint32_t plen;
        sy_chunks_path(tree, n, i, path, &plen);
        size_t off = (size_t)i * chunk, cl = len - off < chunk ? len - off : chunk;
        assert_true(sy_chunks_verify(&d, len, chunk, i, b + off, cl, path, plen));
        /* another index, a wrong byte, a short chunk, a claim of another
         * length or chunk size: all refused */
        if (n > 1)
            assert_false(sy_chunks_verify(&d, len, chunk, (i + 1) % n, b + off, cl, path, plen));
        if (cl) {
            b[off] ^= 1;
            assert_false(sy_chunks_verify(&d, len, chunk, i, b + off, cl, path, plen));
            b[off] ^= 1;
            assert_false(sy_chunks_verify(&d, len, chunk, i, b + off, cl - 1, path, plen));
        }
        assert_false(sy_chunks_verify(&d, len + 1, chunk, i, b + off, cl, path, plen));
        assert_false(sy_chunks_verify(&d, len, chunk + 1, i, b + off, cl, path, plen));
        if (plen) {
            path[plen - 1].b[0] ^= 1;
            assert_false(sy_chunks_verify(&d, len, chunk, i, b + off, cl, path, plen));
            path[plen - 1].b[0] ^= 1;
            assert_false(sy_chunks_verify(&d, len, chunk, i, b + off, cl, path, plen - 1));
        }
    }
    free(tree);
    free(b);
}

static void test_every_chunk_verifies_and_nothing_else_does(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 300; len += 1)
        check_all_chunks(len, 7);
    check_all_chunks(4096, 64);    /* a power of two */
    check_all_chunks(4097, 64);    /* one more leaf than a power of two */
    check_all_chunks(100, 1000);   /* one chunk */
    for (size_t len = 1000; len <= 1300; len += 7)
        check_all_chunks(len, 3); /* hundreds of leaves: deep, ragged right edges */
}

static void test_digest_depends_on_every_byte_and_on_the_chunk_size(void **state)
{
    (void)state;
    uint8_t *b = blob_of(1000, 3);
    sy_digest d1, d2, d3;
    assert_int_equal(sy_chunks_digest(b, 1000, 100, &d1), SY_OK);
    assert_int_equal(sy_chunks_digest(b, 1000, 128, &d2), SY_OK);
    assert_false(sy_digest_eq(&d1, &d2));
    b[999] ^= 0x80;
    assert_int_equal(sy_chunks_digest(b, 1000, 100, &d3), SY_OK);
    assert_false(sy_digest_eq(&d1, &d3));
    /* a prefix is not the blob */
    assert_int_equal(sy_chunks_digest(b, 900, 100, &d3), SY_OK);
    assert_false(sy_digest_eq(&d1, &d3));
    free(b);
}

static void test_an_inner_node_cannot_pass_for_a_chunk(void **state)
{
    (void)state;
    /* two leaves: the root's preimage is 0x01 || L0 || L1; offered as a
     * one-chunk blob of that content it hashes differently (leaf tag) */
    uint8_t *b = blob_of(64, 9);
    sy_digest d, *tree;
    uint32_t n;
    assert_int_equal(sy_chunks_digest(b, 64, 32, &d), SY_OK);
    assert_int_equal(sy_chunks_tree(b, 64, 32, &tree, &n), SY_OK);
    assert_int_equal(n, 2);
    uint8_t fake[65];
    fake[0] = 0x01;
    memcpy(fake + 1, tree[0].b, 32);
    memcpy(fake + 33, tree[1].b, 32);
    assert_false(sy_chunks_verify(&d, 65, 65, 0, fake, 65, NULL, 0));
    assert_false(sy_chunks_verify(&d, 64, 64, 0, fake + 1, 64, NULL, 0));
    free(tree);
    free(b);
}

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    sy_digest d, *l;
    uint32_t n;
    uint8_t b[4] = {0};
    assert_int_equal(sy_chunks_digest(b, 4, 0, &d), SY_EINVAL);
    assert_int_equal(sy_chunks_count(1ull << 32, 1024), 0);
    assert_int_equal(sy_chunks_tree(b, 4, 0, &l, &n), SY_EINVAL);
    assert_int_equal(sy_chunks_digest(b, 4, 2, &d), SY_OK);
    assert_false(sy_chunks_verify(&d, 4, 2, 2, b, 2, NULL, 0));   /* index past the end */
    assert_false(sy_chunks_verify(&d, 4, 0, 0, b, 2, NULL, 0));
    sy_digest path[SY_CHUNKS_MAX_PATH + 1];
    memset(path, 0, sizeof path);
    assert_false(sy_chunks_verify(&d, 4, 2, 0, b, 2, path, SY_CHUNKS_MAX_PATH + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_chunk_verifies_and_nothing_else_does),
        cmocka_unit_test(test_digest_depends_on_every_byte_and_on_the_chunk_size),
        cmocka_unit_test(test_an_inner_node_cannot_pass_for_a_chunk),
        cmocka_unit_test(test_bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
