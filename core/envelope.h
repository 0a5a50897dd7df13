/* The signed envelope: the only wire format, and the only place untrusted
 * bytes are parsed.
 *
 * Wire layout (msgpack):  [ signed : bin, sig : bin(64) ]
 *   where `signed` holds the msgpack array
 *   [ version : uint, cluster_id : str, type : uint, sender : uint, body : bin ]
 * The signature covers the bytes of `signed` exactly, so a verifier checks
 * the bytes it received and never re-encodes anything. `body` is the
 * message's msgpack encoding (core/msg.h).
 *
 * Decoding is strict: a size cap, exact types, required fields, no trailing
 * bytes at any level; and it fails with a distinct code per reason:
 * SY_ETOOBIG, SY_ETRUNC, SY_ETYPE, SY_EFIELD, SY_ETRAILING, SY_EVERSION,
 * SY_ECLUSTER, SY_ESENDER, SY_EMSGTYPE, SY_ESIG. */
#ifndef SY_ENVELOPE_H
#define SY_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/msg.h"
#include "core/buf.h"
#include "crypto/crypto.h"

#define SY_ENV_VERSION 1

/* Who may send: maps a sender id to its public key (NULL = not a member).
 * Node ids are < SY_CLIENT_ID_BASE, client ids >= it. */
typedef struct sy_directory {
    const sy_pubkey *(*key_of)(void *ctx, uint32_t sender);
    void *ctx;
} sy_directory;

typedef struct sy_env_opts {
    const char *cluster_id;
    const sy_directory *dir;
    const sy_verifier *verifier;  /* NULL: skip the signature check (only for
                                     bytes this node already verified, e.g.
                                     requests read back from its own log) */
    size_t max_size;              /* 0 = SY_MAX_ENVELOPE */
} sy_env_opts;

typedef struct sy_env {
    uint8_t version;
    uint8_t type;
    uint32_t sender;
    char cluster_id[SY_MAX_CLUSTER_ID + 1];
    sy_msg msg;                   /* decoded body, borrows from raw */
    const uint8_t *raw;           /* whole frame as received (borrowed) */
    size_t raw_len;
    const uint8_t *signed_part;   /* the bytes the signature covers */
    size_t signed_len;
    sy_sig sig;
    sy_digest digest;             /* BLAKE2b of signed_part: dedupe key */
} sy_env;

/* Encodes and signs m as `sender`. Appends the frame to out. */
int sy_env_encode(const char *cluster_id, uint32_t sender, const sy_msg *m,
                  const sy_signer *signer, sy_buf *out);

/* Decodes and verifies buf. On success *out borrows from buf (keep buf
 * alive until sy_env_free). On failure *why (if non-NULL) gets a one-line
 * static reason and nothing needs freeing. */
int sy_env_decode(const sy_env_opts *o, const uint8_t *buf, size_t len, sy_env *out,
                  const char **why);

/* Frees what the decoder allocated (not buf). */
void sy_env_free(sy_env *e);

#endif
