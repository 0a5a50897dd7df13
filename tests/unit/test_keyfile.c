/* Key files: round trip, permissions, and every way a file can be wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "crypto/crypto.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"

typedef struct fixture {
    char dir[512];
    char path[600];
    char why[1024];
} fixture;

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    const char *base = getenv("SYNOD_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0755);
    snprintf(fx->dir, sizeof fx->dir, "%s/keyfile-XXXXXX", base);
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/k.key", fx->dir);
    assert_int_equal(sy_crypto_init(), SY_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void write_raw(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static sy_seckey *key_from(uint8_t fill)
{
    uint8_t seed[SY_SEED_LEN];
    memset(seed, fill, sizeof seed);
    sy_seckey *sk = NULL;
    assert_int_equal(sy_seckey_from_seed(seed, &sk), SY_OK);
    return sk;
}

static void test_secret_key_round_trips_through_its_file(void **state)
{
    fixture *fx = *state;
    sy_seckey *sk = key_from(7);
    assert_int_equal(sy_keyfile_save(fx->path, sk, 0, fx->why, sizeof fx->why), SY_OK);

    sy_seckey *back = NULL;
    assert_int_equal(sy_keyfile_load_secret(fx->path, &back, fx->why, sizeof fx->why), SY_OK);
    uint8_t s1[SY_SEED_LEN], s2[SY_SEED_LEN];
    sy_seckey_seed(sk, s1);
    sy_seckey_seed(back, s2);
    assert_memory_equal(s1, s2, SY_SEED_LEN);

    /* The .pub file and the secret file both yield the same public key,
     * and a signature made with the loaded key verifies under it. */
    sy_pubkey want, from_pub, from_any;
    sy_seckey_public(sk, &want);
    char pub[700];
    snprintf(pub, sizeof pub, "%s.pub", fx->path);
    assert_int_equal(sy_keyfile_load_public(pub, &from_pub, fx->why, sizeof fx->why), SY_OK);
    assert_memory_equal(want.b, from_pub.b, SY_PUBKEY_LEN);
    assert_int_equal(sy_keyfile_load_any_public(fx->path, &from_any, fx->why, sizeof fx->why),
                     SY_OK);
    assert_memory_equal(want.b, from_any.b, SY_PUBKEY_LEN);
    sy_sig sig;
    sy_ed25519_sign(back, "hello", 5, &sig);
    assert_true(sy_ed25519_verify(&from_pub, "hello", 5, &sig));

    sy_seckey_free(sk);
    sy_seckey_free(back);
}

static void test_saved_files_have_the_documented_format_and_modes(void **state)
{
    fixture *fx = *state;
    sy_seckey *sk = key_from(1);
    umask(0);  /* a permissive umask must not widen the secret file */
    assert_int_equal(sy_keyfile_save(fx->path, sk, 0, fx->why, sizeof fx->why), SY_OK);
    umask(022);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char pub[700];
    snprintf(pub, sizeof pub, "%s.pub", fx->path);
    assert_int_equal(stat(pub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    FILE *f = fopen(pub, "r");
    assert_non_null(f);
    char l1[128], l2[128];
    assert_non_null(fgets(l1, sizeof l1, f));
    assert_non_null(fgets(l2, sizeof l2, f));
    fclose(f);
    assert_string_equal(l1, SY_KEYFILE_PUBLIC_HEADER "\n");
    sy_pubkey pk;
    char b64[SY_KEY_B64_LEN + 1];
    sy_seckey_public(sk, &pk);
    sy_pubkey_to_b64(&pk, b64);
    strcat(b64, "\n");
    assert_string_equal(l2, b64);
    sy_seckey_free(sk);
}

static void test_save_refuses_to_overwrite_unless_forced(void **state)
{
    fixture *fx = *state;
    sy_seckey *a = key_from(1), *b = key_from(2);
    assert_int_equal(sy_keyfile_save(fx->path, a, 0, fx->why, sizeof fx->why), SY_OK);
    assert_int_equal(sy_keyfile_save(fx->path, b, 0, fx->why, sizeof fx->why), SY_EEXIST);
    assert_non_null(strstr(fx->why, "already exists"));
    assert_non_null(strstr(fx->why, "--force"));

    sy_pubkey pa, pb, got;
    sy_seckey_public(a, &pa);
    sy_seckey_public(b, &pb);
    assert_int_equal(sy_keyfile_load_any_public(fx->path, &got, fx->why, sizeof fx->why), SY_OK);
    assert_memory_equal(got.b, pa.b, SY_PUBKEY_LEN);

    assert_int_equal(sy_keyfile_save(fx->path, b, SY_KEYFILE_FORCE, fx->why, sizeof fx->why),
                     SY_OK);
    assert_int_equal(sy_keyfile_load_any_public(fx->path, &got, fx->why, sizeof fx->why), SY_OK);
    assert_memory_equal(got.b, pb.b, SY_PUBKEY_LEN);
    sy_seckey_free(a);
    sy_seckey_free(b);
}

static void test_save_refuses_when_only_the_pub_file_exists(void **state)
{
    fixture *fx = *state;
    char pub[700];
    snprintf(pub, sizeof pub, "%s.pub", fx->path);
    write_raw(pub, "something\n", 0644);
    sy_seckey *a = key_from(1);
    assert_int_equal(sy_keyfile_save(fx->path, a, 0, fx->why, sizeof fx->why), SY_EEXIST);
    struct stat st;
    assert_int_not_equal(stat(fx->path, &st), 0); /* nothing written */
    sy_seckey_free(a);
}

static void test_secret_key_readable_by_others_is_rejected(void **state)
{
    fixture *fx = *state;
    sy_seckey *sk = key_from(3);
    assert_int_equal(sy_keyfile_save(fx->path, sk, 0, fx->why, sizeof fx->why), SY_OK);
    assert_int_equal(chmod(fx->path, 0644), 0);
    sy_seckey *back = NULL;
    assert_int_equal(sy_keyfile_load_secret(fx->path, &back, fx->why, sizeof fx->why), SY_EPERM);
    assert_null(back);
    assert_non_null(strstr(fx->why, fx->path));
    assert_non_null(strstr(fx->why, "readable by others (mode 0644)"));
    assert_non_null(strstr(fx->why, "chmod 600"));

    /* Group-writable only is refused too. */
    assert_int_equal(chmod(fx->path, 0620), 0);
    assert_int_equal(sy_keyfile_load_secret(fx->path, &back, fx->why, sizeof fx->why), SY_EPERM);
    /* Read-only for the owner is fine. */
    assert_int_equal(chmod(fx->path, 0400), 0);
    assert_int_equal(sy_keyfile_load_secret(fx->path, &back, fx->why, sizeof fx->why), SY_OK);
    sy_seckey_free(back);
    sy_seckey_free(sk);
}

static void test_missing_key_file_names_the_file(void **state)
{
    fixture *fx = *state;
    sy_seckey *sk = NULL;
    assert_int_equal(sy_keyfile_load_secret(fx->path, &sk, fx->why, sizeof fx->why),
                     SY_ENOTFOUND);
    assert_non_null(strstr(fx->why, fx->path));
    assert_non_null(strstr(fx->why, "does not exist"));
}

static void expect_corrupt(fixture *fx, const char *text, const char *reason)
{
    write_raw(fx->path, text, 0600);
    sy_seckey *sk = NULL;
    assert_int_equal(sy_keyfile_load_secret(fx->path, &sk, fx->why, sizeof fx->why),
                     SY_ECORRUPT);
    assert_null(sk);
    assert_non_null(strstr(fx->why, fx->path));
    if (!strstr(fx->why, reason))
        fail_msg("'%s' does not mention '%s'", fx->why, reason);
}

static void test_wrong_header_is_rejected(void **state)
{
    expect_corrupt(*state, "ssh-ed25519-secret\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                   "wrong header");
    expect_corrupt(*state, "", "empty");
    /* random text with no newline at all is a wrong header, not a truncated key */
    expect_corrupt(*state, "qwertyuiopasdfghjkl", "wrong header");
}

static void test_bad_base64_is_rejected(void **state)
{
    expect_corrupt(*state, SY_KEYFILE_SECRET_HEADER "\nthis is not base64!!\n", "base64");
}

static void test_truncated_key_is_rejected(void **state)
{
    expect_corrupt(*state, SY_KEYFILE_SECRET_HEADER "\n", "truncated");
    expect_corrupt(*state, SY_KEYFILE_SECRET_HEADER, "truncated");
    /* base64 of 16 bytes: valid base64, wrong length */
    expect_corrupt(*state, SY_KEYFILE_SECRET_HEADER "\nAAAAAAAAAAAAAAAAAAAAAA==\n",
                   "wrong length (16 bytes, expected 32)");
}

static void test_extra_text_after_key_is_rejected(void **state)
{
    expect_corrupt(*state,
                   SY_KEYFILE_SECRET_HEADER "\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nmore\n",
                   "extra text");
}

static void test_public_file_is_not_accepted_as_secret(void **state)
{
    expect_corrupt(*state,
                   SY_KEYFILE_PUBLIC_HEADER "\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                   "is a public key");
}

static void test_crlf_line_endings_are_accepted(void **state)
{
    fixture *fx = *state;
    write_raw(fx->path,
              SY_KEYFILE_SECRET_HEADER "\r\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
              0600);
    sy_seckey *sk = NULL;
    assert_int_equal(sy_keyfile_load_secret(fx->path, &sk, fx->why, sizeof fx->why), SY_OK);
    uint8_t seed[SY_SEED_LEN], zero[SY_SEED_LEN] = {0};
    sy_seckey_seed(sk, seed);
    assert_memory_equal(seed, zero, SY_SEED_LEN);
    sy_seckey_free(sk);
}

static void test_pubkey_base64_helpers_round_trip(void **state)
{
    (void)state;
    sy_pubkey pk, back;
    for (int i = 0; i < SY_PUBKEY_LEN; i++)
        pk.b[i] = (uint8_t)(i * 37);
    char b64[SY_KEY_B64_LEN];
    sy_pubkey_to_b64(&pk, b64);
    assert_int_equal(strlen(b64), 44);
    assert_int_equal(sy_pubkey_from_b64(b64, &back), SY_OK);
    assert_memory_equal(pk.b, back.b, SY_PUBKEY_LEN);
    assert_int_equal(sy_pubkey_from_b64("AAAA", &back), SY_EINVAL);
    assert_int_equal(sy_pubkey_from_b64("", &back), SY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secret_key_round_trips_through_its_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_saved_files_have_the_documented_format_and_modes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_to_overwrite_unless_forced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_when_only_the_pub_file_exists, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_secret_key_readable_by_others_is_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_file_names_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_header_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_base64_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_key_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_text_after_key_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_file_is_not_accepted_as_secret, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crlf_line_endings_are_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pubkey_base64_helpers_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
