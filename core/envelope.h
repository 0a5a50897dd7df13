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
 * Batch-signed frames (client replies only): a node answers every client
 * whose reply it has ready at once with ONE signature over a Merkle tree of
 * the replies, and each client gets its own frame
 *     [ signed : bin, sig : bin(64), [ n : uint, i : uint, path : [bin(32)..] ] ]
 * where leaf_i = H(0x00 || signed_i), an inner node = H(0x01 || left ||
 * right), the last node of an odd level is carried up unchanged, and the
 * signature covers SY_ENV_BATCH_DOMAIN || u32be(n) || root. A verifier
 * rebuilds the root from its own `signed` bytes and the path, so it still
 * checks exactly the bytes it received; it learns nothing of the other
 * replies but their hashes. The domain string cannot begin a msgpack array,
 * so a batch signature can never pass for a single-frame signature or the
 * reverse. Nodes accept only single-signed frames (batch_ok false).
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
    bool batch_ok;                /* accept batch-signed client replies */
} sy_env_opts;

#define SY_ENV_BATCH_DOMAIN "synod-reply-batch-v1"
#define SY_ENV_BATCH_DOMAIN_LEN 20
#define SY_ENV_BATCH_MAX 1024u     /* leaves per signature (path <= 10) */
#define SY_ENV_BATCH_KEEP (1u << 20) /* buffer bytes kept between batches */
#define SY_ENV_BATCH_MSG_LEN (SY_ENV_BATCH_DOMAIN_LEN + 4 + SY_DIGEST_LEN)

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
    bool batched;                 /* batch-signed: sig covers batch_msg */
    uint8_t batch_msg[SY_ENV_BATCH_MSG_LEN];
} sy_env;

/* The bytes e->sig signs: signed_part, or batch_msg for a batch-signed
 * frame. What a caller that verifies by itself must check. */
const uint8_t *sy_env_sig_msg(const sy_env *e, size_t *len);

/* Encodes and signs m as `sender`. Appends the frame to out. */
int sy_env_encode(const char *cluster_id, uint32_t sender, const sy_msg *m,
                  const sy_signer *signer, sy_buf *out);

/* The signed bytes and signature of the last message encoded through it.
 * A sender that encodes one message for several peers (an engine builds a
 * broadcast or the same append once per peer) signs it once: Ed25519
 * signatures are deterministic, so reusing the signature for the same
 * bytes gives exactly the frame signing again would. One thread. */
typedef struct {
    sy_buf inner;
    sy_sig sig;
    bool valid;
} sy_env_memo;

void sy_env_memo_init(sy_env_memo *memo);
void sy_env_memo_free(sy_env_memo *memo);

/* sy_env_encode, signing only when the signed bytes differ from the last
 * ones encoded through memo. *signed_now (may be NULL): a signature was
 * made. */
int sy_env_encode_memo(const char *cluster_id, uint32_t sender, const sy_msg *m,
                       const sy_signer *signer, sy_env_memo *memo, sy_buf *out,
                       bool *signed_now);

/* Decodes and verifies buf. On success *out borrows from buf (keep buf
 * alive until sy_env_free). On failure *why (if non-NULL) gets a one-line
 * static reason and nothing needs freeing. */
int sy_env_decode(const sy_env_opts *o, const uint8_t *buf, size_t len, sy_env *out,
                  const char **why);

/* Batch signing. Add the replies, then seal: one signature for all of them
 * (chunks of SY_ENV_BATCH_MAX), and emit() is called once per reply, in the
 * order added, with its frame. A batch of one is emitted as an ordinary
 * single-signed frame. Seal empties the batch for reuse. */
typedef struct sy_env_batch {
    sy_buf inner;                 /* the `signed` parts, back to back */
    size_t *off;                  /* start of each in inner; n + 1 used */
    size_t n, cap;
    sy_buf frame;                 /* scratch for emitted frames */
    sy_digest *tree;              /* scratch: every level of one chunk */
    size_t tree_cap;
} sy_env_batch;
typedef void (*sy_env_emit_fn)(void *ctx, size_t i, const uint8_t *frame, size_t len);
void sy_env_batch_init(sy_env_batch *b);
/* Only SY_MSG_CLIENT_REPLY (SY_EINVAL otherwise). */
int sy_env_batch_add(sy_env_batch *b, const char *cluster_id, uint32_t sender, const sy_msg *m);
/* SY_OK or the first error (out of memory; a frame over SY_MAX_ENVELOPE):
 * a frame that cannot be built is not emitted, the others are. *nsigs (if
 * non-NULL) gets the number of signatures made. The batch is emptied
 * either way, and buffers grown past SY_ENV_BATCH_KEEP are given back. */
int sy_env_batch_seal(sy_env_batch *b, const sy_signer *signer, sy_env_emit_fn emit, void *ctx,
                      size_t *nsigs);
void sy_env_batch_free(sy_env_batch *b);

/* Frees what the decoder allocated (not buf). */
void sy_env_free(sy_env *e);

#endif
