/* Ed25519 keys, detached signatures, BLAKE2b-256 digests (libsodium), and a
 * signer/verifier interface that the simulator backs with a cheap keyed-hash
 * scheme. A real node only ever uses Ed25519.
 *
 * Ownership: sy_seckey objects live in guarded memory (sodium_malloc) and are
 * wiped by sy_seckey_free. Everything else here is plain values. */
#ifndef SY_CRYPTO_H
#define SY_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SY_PUBKEY_LEN 32
#define SY_SIG_LEN 64
#define SY_DIGEST_LEN 32
#define SY_SEED_LEN 32

typedef struct { uint8_t b[SY_PUBKEY_LEN]; } sy_pubkey;
typedef struct { uint8_t b[SY_SIG_LEN]; } sy_sig;
typedef struct { uint8_t b[SY_DIGEST_LEN]; } sy_digest;
typedef struct sy_seckey sy_seckey;

/* Must be called once before anything else (idempotent, thread-safe). */
int sy_crypto_init(void);

/* New random key pair. *out is owned by the caller (sy_seckey_free). */
int sy_seckey_generate(sy_seckey **out);
/* Deterministic key pair from a 32-byte seed (simulator, tests). */
int sy_seckey_from_seed(const uint8_t seed[SY_SEED_LEN], sy_seckey **out);
void sy_seckey_free(sy_seckey *sk);
void sy_seckey_public(const sy_seckey *sk, sy_pubkey *out);
/* The 32-byte seed the key was derived from (for writing key files). */
void sy_seckey_seed(const sy_seckey *sk, uint8_t out[SY_SEED_LEN]);

/* Raw Ed25519. */
void sy_ed25519_sign(const sy_seckey *sk, const void *msg, size_t len, sy_sig *out);
bool sy_ed25519_verify(const sy_pubkey *pk, const void *msg, size_t len, const sy_sig *sig);

/* BLAKE2b-256. */
void sy_hash(const void *data, size_t len, sy_digest *out);
/* A uniformly random number in [0, bound) from the system's CSPRNG
 * (bound >= 1). Needs sy_crypto_init. */
uint32_t sy_random_below(uint32_t bound);
typedef struct { uint8_t state[384] __attribute__((aligned(64))); } sy_hasher;
void sy_hash_init(sy_hasher *h);
void sy_hash_update(sy_hasher *h, const void *data, size_t len);
void sy_hash_final(sy_hasher *h, sy_digest *out);
bool sy_digest_eq(const sy_digest *a, const sy_digest *b);
/* Lowercase hex of the first n bytes (n <= 32) into out (2n+1 bytes). */
void sy_digest_hex(const sy_digest *d, size_t n, char *out);

/* Base64 (standard alphabet, padded). Returns SY_OK or SY_EINVAL. */
int sy_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap);
int sy_b64_decode(const char *in, uint8_t *out, size_t outcap, size_t *outlen);

/* ---- signer / verifier interface ----
 * A signer signs as one identity. A verifier checks any identity's
 * signature. Engines and the runtime only see these, so the simulator can
 * swap Ed25519 for the keyed-hash scheme without touching protocol code. */
typedef struct sy_signer {
    void (*sign)(void *ctx, const void *msg, size_t len, sy_sig *out);
    void *ctx;
    sy_pubkey pub;
} sy_signer;

typedef struct sy_verifier {
    bool (*verify)(void *ctx, const sy_pubkey *pk, const void *msg, size_t len,
                   const sy_sig *sig);
    void *ctx;
} sy_verifier;

static inline void sy_sign(const sy_signer *s, const void *msg, size_t len, sy_sig *out)
{
    s->sign(s->ctx, msg, len, out);
}
static inline bool sy_verify(const sy_verifier *v, const sy_pubkey *pk, const void *msg,
                             size_t len, const sy_sig *sig)
{
    return v->verify(v->ctx, pk, msg, len, sig);
}

/* Ed25519 signer borrowing sk (sk must outlive the signer). */
void sy_signer_ed25519(sy_signer *s, const sy_seckey *sk);
/* Ed25519 verifier (stateless). */
void sy_verifier_ed25519(sy_verifier *v);

/* ---- cheap keyed-hash scheme, simulator only ----
 * Each identity has a 32-byte secret; its "public key" is H(secret) and its
 * signature is keyed BLAKE2b(secret, msg) padded to 64 bytes. A registry
 * that maps public keys to secrets plays the role of the verifier. Inside one
 * process an engine only ever holds its own signer, so it cannot produce
 * another identity's signature: the same unforgeability an engine sees with
 * Ed25519, at a fraction of the cost. */
typedef struct sy_simsig sy_simsig;
int sy_simsig_new(size_t max_ids, sy_simsig **out);
void sy_simsig_free(sy_simsig *r);
/* Register identity from a seed; fills a signer for it. The registry owns the
 * secret; the signer borrows the registry. */
int sy_simsig_add(sy_simsig *r, const uint8_t seed[SY_SEED_LEN], sy_signer *out);
void sy_verifier_simsig(sy_verifier *v, sy_simsig *r);

#endif
