/* Key file reading and writing (format in crypto/keyfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"

enum key_kind { KIND_SECRET, KIND_PUBLIC };

static int errno_code(int e)
{
    switch (e) {
    case ENOENT: case ENOTDIR: return SY_ENOTFOUND;
    case EACCES: case EPERM: case EROFS: return SY_EPERM;
    case EEXIST: return SY_EEXIST;
    default: return SY_EIO;
    }
}

void sy_pubkey_to_b64(const sy_pubkey *pk, char out[SY_KEY_B64_LEN])
{
    /* Cannot fail: the buffer is sized for exactly 32 bytes. */
    (void)sy_b64_encode(pk->b, SY_PUBKEY_LEN, out, SY_KEY_B64_LEN);
}

int sy_pubkey_from_b64(const char *text, sy_pubkey *out)
{
    uint8_t tmp[SY_PUBKEY_LEN + 8];
    size_t n = 0;
    if (sy_b64_decode(text, tmp, sizeof tmp, &n) != SY_OK || n != SY_PUBKEY_LEN)
        return SY_EINVAL;
    memcpy(out->b, tmp, SY_PUBKEY_LEN);
    return SY_OK;
}

/* Writes "header\nbase64\n" to a new file with exactly `mode`. The file is
 * created with O_EXCL so an existing file (or a symlink planted where the
 * key should go) is never written through; with force the old file is
 * unlinked first. A failed write leaves no file behind. */
static int write_key(const char *path, const char *header, const uint8_t *bytes,
                     mode_t mode, unsigned flags, char *why, size_t whylen)
{
    char b64[SY_KEY_B64_LEN];
    char text[sizeof SY_KEYFILE_SECRET_HEADER + SY_KEY_B64_LEN + 4];
    (void)sy_b64_encode(bytes, 32, b64, sizeof b64);
    int len = snprintf(text, sizeof text, "%s\n%s\n", header, b64);
    sodium_memzero(b64, sizeof b64);

    if ((flags & SY_KEYFILE_FORCE) && unlink(path) != 0 && errno != ENOENT) {
        int e = errno;
        sodium_memzero(text, sizeof text);
        return sy_whyf(why, whylen, errno_code(e), "cannot replace key file %s: %s", path,
                    strerror(e));
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        sodium_memzero(text, sizeof text);
        if (e == EEXIST)
            return sy_whyf(why, whylen, SY_EEXIST,
                        "key file %s already exists; remove it or pass --force to overwrite",
                        path);
        return sy_whyf(why, whylen, errno_code(e), "cannot create key file %s: %s", path,
                    strerror(e));
    }
    int rc = SY_OK;
    /* The umask may have narrowed the mode; set it exactly. */
    if (fchmod(fd, mode) != 0) {
        rc = sy_whyf(why, whylen, SY_EIO, "cannot set mode of key file %s: %s", path,
                  strerror(errno));
        goto err_unlink;
    }
    ssize_t w = write(fd, text, (size_t)len);
    if (w != len) {
        rc = sy_whyf(why, whylen, SY_EIO, "cannot write key file %s: %s", path,
                  w < 0 ? strerror(errno) : "short write");
        goto err_unlink;
    }
    if (fsync(fd) != 0) {
        rc = sy_whyf(why, whylen, SY_EIO, "cannot sync key file %s: %s", path, strerror(errno));
        goto err_unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = sy_whyf(why, whylen, SY_EIO, "cannot close key file %s: %s", path, strerror(errno));
        goto err_unlink;
    }
    sodium_memzero(text, sizeof text);
    return SY_OK;

err_unlink:
    if (fd >= 0)
        close(fd);
    unlink(path);
    sodium_memzero(text, sizeof text);
    return rc;
}

static int pub_path(const char *path, char *out, size_t cap, char *why, size_t whylen)
{
    if ((size_t)snprintf(out, cap, "%s%s", path, SY_KEYFILE_PUB_SUFFIX) >= cap)
        return sy_whyf(why, whylen, SY_EINVAL, "key file path %s is too long", path);
    return SY_OK;
}

int sy_keyfile_save_public(const char *path, const sy_pubkey *pk, unsigned flags,
                           char *why, size_t whylen)
{
    return write_key(path, SY_KEYFILE_PUBLIC_HEADER, pk->b, 0644, flags, why, whylen);
}

int sy_keyfile_save(const char *path, const sy_seckey *sk, unsigned flags, char *why,
                    size_t whylen)
{
    char pub[4096];
    int rc = pub_path(path, pub, sizeof pub, why, whylen);
    if (rc)
        return rc;
    if (!(flags & SY_KEYFILE_FORCE)) {
        /* Check both first so a refusal writes nothing at all. */
        const char *paths[2] = {path, pub};
        for (int i = 0; i < 2; i++) {
            struct stat st;
            if (lstat(paths[i], &st) == 0)
                return sy_whyf(why, whylen, SY_EEXIST,
                            "key file %s already exists; remove it or pass --force to "
                            "overwrite",
                            paths[i]);
        }
    }
    uint8_t seed[SY_SEED_LEN];
    sy_pubkey pk;
    sy_seckey_seed(sk, seed);
    sy_seckey_public(sk, &pk);
    rc = write_key(path, SY_KEYFILE_SECRET_HEADER, seed, 0600, flags, why, whylen);
    sodium_memzero(seed, sizeof seed);
    if (rc)
        return rc;
    rc = write_key(pub, SY_KEYFILE_PUBLIC_HEADER, pk.b, 0644, flags, why, whylen);
    if (rc)
        unlink(path);
    return rc;
}

/* Strips one trailing "\r" so files edited on Windows still load. */
static void chomp_cr(char *s)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r')
        s[n - 1] = 0;
}

/* Reads and parses a key file. *kind_out gets which header it had; `want`
 * restricts it (-1: either). On success bytes holds the 32 key bytes. */
static int read_key(const char *path, int want, int *kind_out, uint8_t bytes[32],
                    char *why, size_t whylen)
{
    char text[SY_KEYFILE_MAX_BYTES + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return sy_whyf(why, whylen, SY_ENOTFOUND,
                        "key file %s does not exist (synod-keys gen --out %s makes one; its "
                        "public key, synod-keys pub, must then be in the cluster manifest)",
                        path, path);
        if (e == EACCES || e == EPERM)
            return sy_whyf(why, whylen, SY_EPERM,
                        "key file %s is not readable by this user (%s); check its owner and "
                        "mode",
                        path, strerror(e));
        return sy_whyf(why, whylen, SY_EIO, "cannot open key file %s: %s", path, strerror(e));
    }
    int rc = SY_OK;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sy_whyf(why, whylen, SY_EIO, "cannot stat key file %s: %s", path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = sy_whyf(why, whylen, SY_ECORRUPT, "key file %s is not a regular file", path);
        goto out_close;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, text + len, sizeof text - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sy_whyf(why, whylen, errno == EISDIR ? SY_ECORRUPT : SY_EIO,
                      "cannot read key file %s: %s", path, strerror(errno));
            goto out_close;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == sizeof text - 1) {
            rc = sy_whyf(why, whylen, SY_ECORRUPT,
                      "key file %s is too long to be a synod key file (over %d bytes)", path,
                      SY_KEYFILE_MAX_BYTES);
            goto out_close;
        }
    }
    text[len] = 0;
    if (memchr(text, 0, len)) {
        rc = sy_whyf(why, whylen, SY_ECORRUPT, "key file %s contains binary data; expected a '%s' "
                  "or '%s' header line", path, SY_KEYFILE_SECRET_HEADER,
                  SY_KEYFILE_PUBLIC_HEADER);
        goto out_clear;
    }

    char *save = NULL;
    if (len == 0) {
        rc = sy_whyf(why, whylen, SY_ECORRUPT,
                     "key file %s is empty; regenerate it with synod-keys gen", path);
        goto out_clear;
    }
    /* the first line is the header (a file of one line: all of it, and no
     * key line follows: truncated, below) */
    char *nl = strchr(text, '\n');
    if (nl)
        *nl = 0;
    char *header = text;
    char *line = nl ? nl + 1 : text + len;
    chomp_cr(header);
    int kind;
    if (strcmp(header, SY_KEYFILE_SECRET_HEADER) == 0)
        kind = KIND_SECRET;
    else if (strcmp(header, SY_KEYFILE_PUBLIC_HEADER) == 0)
        kind = KIND_PUBLIC;
    else {
        rc = sy_whyf(why, whylen, SY_ECORRUPT,
                  "key file %s has the wrong header (first line must be '%s' or '%s')", path,
                  SY_KEYFILE_SECRET_HEADER, SY_KEYFILE_PUBLIC_HEADER);
        goto out_clear;
    }
    if (want >= 0 && kind != want) {
        rc = sy_whyf(why, whylen, SY_ECORRUPT,
                  want == KIND_SECRET
                      ? "key file %s is a public key; a secret key file is needed here"
                      : "key file %s is a secret key; a public key file is needed here",
                  path);
        goto out_clear;
    }
    if (kind == KIND_SECRET && (st.st_mode & 077)) {
        rc = sy_whyf(why, whylen, SY_EPERM,
                  "key file %s is %s by others (mode %04o); run chmod 600 %s", path,
                  (st.st_mode & 044) ? "readable" : "accessible",
                  (unsigned)(st.st_mode & 07777), path);
        goto out_clear;
    }
    char *key = strtok_r(line, "\n", &save);
    if (!key) {
        rc = sy_whyf(why, whylen, SY_ECORRUPT,
                  "key file %s is truncated: no key line after the header", path);
        goto out_clear;
    }
    chomp_cr(key);
    for (char *rest = strtok_r(NULL, "\n", &save); rest; rest = strtok_r(NULL, "\n", &save)) {
        chomp_cr(rest);
        if (rest[strspn(rest, " \t")]) {
            rc = sy_whyf(why, whylen, SY_ECORRUPT,
                      "key file %s has extra text after the key line", path);
            goto out_clear;
        }
    }
    uint8_t tmp[64];
    size_t n = 0;
    if (sy_b64_decode(key, tmp, sizeof tmp, &n) != SY_OK) {
        rc = sy_whyf(why, whylen, SY_ECORRUPT,
                  "key file %s: key line is not valid base64 (standard alphabet, padded)",
                  path);
        goto out_clear;
    }
    if (n != 32) {
        sodium_memzero(tmp, sizeof tmp);
        rc = sy_whyf(why, whylen, SY_ECORRUPT,
                  "key file %s: key has the wrong length (%zu bytes, expected 32)", path, n);
        goto out_clear;
    }
    memcpy(bytes, tmp, 32);
    sodium_memzero(tmp, sizeof tmp);
    *kind_out = kind;

out_clear:
    sodium_memzero(text, sizeof text);
out_close:
    close(fd);
    return rc;
}

int sy_keyfile_load_secret(const char *path, sy_seckey **out, char *why, size_t whylen)
{
    uint8_t seed[SY_SEED_LEN];
    int kind;
    int rc = read_key(path, KIND_SECRET, &kind, seed, why, whylen);
    if (rc)
        return rc;
    rc = sy_seckey_from_seed(seed, out);
    sodium_memzero(seed, sizeof seed);
    if (rc)
        return sy_whyf(why, whylen, rc, "cannot load key file %s: %s", path, sy_strerror(rc));
    return SY_OK;
}

int sy_keyfile_load_public(const char *path, sy_pubkey *out, char *why, size_t whylen)
{
    int kind;
    return read_key(path, KIND_PUBLIC, &kind, out->b, why, whylen);
}

int sy_keyfile_load_any_public(const char *path, sy_pubkey *out, char *why, size_t whylen)
{
    uint8_t bytes[32];
    int kind;
    int rc = read_key(path, -1, &kind, bytes, why, whylen);
    if (rc)
        return rc;
    if (kind == KIND_PUBLIC) {
        memcpy(out->b, bytes, 32);
        return SY_OK;
    }
    sy_seckey *sk = NULL;
    rc = sy_seckey_from_seed(bytes, &sk);
    sodium_memzero(bytes, sizeof bytes);
    if (rc)
        return sy_whyf(why, whylen, rc, "cannot load key file %s: %s", path, sy_strerror(rc));
    sy_seckey_public(sk, out);
    sy_seckey_free(sk);
    return SY_OK;
}
