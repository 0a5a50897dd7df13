/* Key files: the on-disk form of node and client identities.
 *
 * Format (text, two lines, nothing else):
 *
 *     synod-ed25519-secret-v1          (or synod-ed25519-public-v1)
 *     <base64 of 32 bytes>             (standard alphabet, padded, 44 chars)
 *
 * A secret file holds the 32-byte Ed25519 seed; a public file holds the
 * 32-byte public key. A trailing "\r" on either line and blank lines after
 * the key are tolerated (files edited on other systems); anything else is an
 * error. The version suffix lets a later format coexist with this one.
 *
 * Secret files are created with mode 0600 and refused at load time if any
 * group or other permission bit is set, as ssh does: a key others can read
 * is a key others may have copied, and we would rather stop than sign with
 * it. Public files are 0644.
 *
 * Every load/save function fills `why` (if non-NULL, `whylen` bytes) with a
 * one-line reason naming the file and the fix when it fails. Codes:
 *   SY_ENOTFOUND  file missing
 *   SY_EPERM      file unreadable/unwritable, or a secret file too open
 *   SY_EEXIST     output exists and SY_KEYFILE_FORCE was not given
 *   SY_ECORRUPT   wrong header, bad base64, wrong length, junk after the key
 *   SY_EIO        other operating-system errors
 */
#ifndef SY_KEYFILE_H
#define SY_KEYFILE_H

#include <stddef.h>
#include "crypto/crypto.h"

#define SY_KEYFILE_SECRET_HEADER "synod-ed25519-secret-v1"
#define SY_KEYFILE_PUBLIC_HEADER "synod-ed25519-public-v1"
/* base64 of 32 bytes is 44 characters; plus the terminating NUL. */
#define SY_KEY_B64_LEN 45
/* A valid key file is under 80 bytes; reading stops here so a wrong path
 * (say, a log file) fails fast instead of being slurped. */
#define SY_KEYFILE_MAX_BYTES 1024
#define SY_KEYFILE_PUB_SUFFIX ".pub"

enum sy_keyfile_flags {
    SY_KEYFILE_FORCE = 1u, /* replace existing files */
};

/* Writes sk's seed to `path` (mode 0600) and its public key to `path`.pub
 * (mode 0644). Without SY_KEYFILE_FORCE, fails with SY_EEXIST before writing
 * anything if either file exists. sk is borrowed. */
int sy_keyfile_save(const char *path, const sy_seckey *sk, unsigned flags,
                    char *why, size_t whylen);

/* Writes a public key file (mode 0644) at exactly `path`. */
int sy_keyfile_save_public(const char *path, const sy_pubkey *pk, unsigned flags,
                           char *why, size_t whylen);

/* Loads a secret key file. *out is owned by the caller (sy_seckey_free).
 * Fails with SY_EPERM if the file is group- or world-accessible. */
int sy_keyfile_load_secret(const char *path, sy_seckey **out, char *why, size_t whylen);

/* Loads a public key file. */
int sy_keyfile_load_public(const char *path, sy_pubkey *out, char *why, size_t whylen);

/* Public key from either kind of key file (a secret file gets the same
 * permission check as sy_keyfile_load_secret). */
int sy_keyfile_load_any_public(const char *path, sy_pubkey *out, char *why, size_t whylen);

/* Base64 text of a public key into out (SY_KEY_B64_LEN bytes). */
void sy_pubkey_to_b64(const sy_pubkey *pk, char out[SY_KEY_B64_LEN]);
/* Parses base64 text of exactly 32 bytes. SY_EINVAL if not. */
int sy_pubkey_from_b64(const char *text, sy_pubkey *out);

#endif
