/* libsodium-backed Ed25519, BLAKE2b and the simulator's keyed-hash scheme. */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "crypto/crypto.h"
#include "crypto/sy_err.h"

_Static_assert(sizeof(crypto_generichash_state) <= sizeof(((sy_hasher *)0)->state),
               "sy_hasher too small for crypto_generichash_state");

struct sy_seckey {
    uint8_t seed[SY_SEED_LEN];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    sy_pubkey pk;
};

int sy_crypto_init(void)
{
    return sodium_init() < 0 ? SY_EFATAL : SY_OK;
}

int sy_seckey_from_seed(const uint8_t seed[SY_SEED_LEN], sy_seckey **out)
{
    if (sy_crypto_init())
        return SY_EFATAL;
    sy_seckey *k = sodium_malloc(sizeof *k);
    if (!k)
        return SY_ENOMEM;
    memcpy(k->seed, seed, SY_SEED_LEN);
    crypto_sign_seed_keypair(k->pk.b, k->sk, seed);
    sodium_mprotect_readonly(k);
    *out = k;
    return SY_OK;
}

int sy_seckey_generate(sy_seckey **out)
{
    if (sy_crypto_init())
        return SY_EFATAL;
    uint8_t seed[SY_SEED_LEN];
    randombytes_buf(seed, sizeof seed);
    int rc = sy_seckey_from_seed(seed, out);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

void sy_seckey_free(sy_seckey *sk)
{
    /* sodium_free wipes the memory before releasing it. */
    if (sk)
        sodium_free(sk);
}

void sy_seckey_public(const sy_seckey *sk, sy_pubkey *out) { *out = sk->pk; }

void sy_seckey_seed(const sy_seckey *sk, uint8_t out[SY_SEED_LEN])
{
    memcpy(out, sk->seed, SY_SEED_LEN);
}

void sy_ed25519_sign(const sy_seckey *sk, const void *msg, size_t len, sy_sig *out)
{
    crypto_sign_detached(out->b, NULL, msg, len, sk->sk);
}

bool sy_ed25519_verify(const sy_pubkey *pk, const void *msg, size_t len, const sy_sig *sig)
{
    return crypto_sign_verify_detached(sig->b, msg, len, pk->b) == 0;
}

uint32_t sy_random_below(uint32_t bound)
{
    return randombytes_uniform(bound);
}

void sy_hash(const void *data, size_t len, sy_digest *out)
{
    crypto_generichash(out->b, SY_DIGEST_LEN, data, len, NULL, 0);
}

void sy_hash_init(sy_hasher *h)
{
    crypto_generichash_init((crypto_generichash_state *)h->state, NULL, 0, SY_DIGEST_LEN);
}

void sy_hash_update(sy_hasher *h, const void *data, size_t len)
{
    crypto_generichash_update((crypto_generichash_state *)h->state, data, len);
}

void sy_hash_final(sy_hasher *h, sy_digest *out)
{
    crypto_generichash_final((crypto_generichash_state *)h->state, out->b, SY_DIGEST_LEN);
}

bool sy_digest_eq(const sy_digest *a, const sy_digest *b)
{
    return memcmp(a->b, b->b, SY_DIGEST_LEN) == 0;
}

void sy_digest_hex(const sy_digest *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    if (n > SY_DIGEST_LEN)
        n = SY_DIGEST_LEN;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d->b[i] >> 4];
        out[2 * i + 1] = hx[d->b[i] & 15];
    }
    out[2 * n] = 0;
}

int sy_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap)
{
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if (outcap < need)
        return SY_EINVAL;
    sodium_bin2base64(out, outcap, in, len, sodium_base64_VARIANT_ORIGINAL);
    return SY_OK;
}

int sy_b64_decode(const char *in, uint8_t *out, size_t outcap, size_t *outlen)
{
    const char *end = NULL;
    size_t n = 0;
    if (sodium_base642bin(out, outcap, in, strlen(in), NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return SY_EINVAL;
    if (end && *end)
        return SY_EINVAL;
    *outlen = n;
    return SY_OK;
}

static void ed_sign(void *ctx, const void *msg, size_t len, sy_sig *out)
{
    sy_ed25519_sign((const sy_seckey *)ctx, msg, len, out);
}

static bool ed_verify(void *ctx, const sy_pubkey *pk, const void *msg, size_t len,
                      const sy_sig *sig)
{
    (void)ctx;
    return sy_ed25519_verify(pk, msg, len, sig);
}

void sy_signer_ed25519(sy_signer *s, const sy_seckey *sk)
{
    s->sign = ed_sign;
    s->ctx = (void *)sk;
    s->pub = sk->pk;
}

void sy_verifier_ed25519(sy_verifier *v)
{
    v->verify = ed_verify;
    v->ctx = NULL;
}

/* ---- keyed-hash scheme for the simulator ---- */

struct simsig_id {
    sy_pubkey pk;
    uint8_t secret[32];
};

struct sy_simsig {
    size_t n, cap;
    struct simsig_id *ids;
    struct simsig_signer { struct sy_simsig *reg; size_t idx; } *signers;
};

int sy_simsig_new(size_t max_ids, sy_simsig **out)
{
    sy_simsig *r = calloc(1, sizeof *r);
    if (!r)
        return SY_ENOMEM;
    r->ids = calloc(max_ids ? max_ids : 1, sizeof *r->ids);
    r->signers = calloc(max_ids ? max_ids : 1, sizeof *r->signers);
    if (!r->ids || !r->signers) {
        free(r->ids);
        free(r->signers);
        free(r);
        return SY_ENOMEM;
    }
    r->cap = max_ids;
    *out = r;
    return SY_OK;
}

void sy_simsig_free(sy_simsig *r)
{
    if (!r)
        return;
    sodium_memzero(r->ids, r->cap * sizeof *r->ids);
    free(r->ids);
    free(r->signers);
    free(r);
}

static void mac(const uint8_t secret[32], const void *msg, size_t len, sy_sig *out)
{
    memset(out->b, 0, sizeof out->b);
    crypto_generichash(out->b, 32, msg, len, secret, 32);
}

static void sim_sign(void *ctx, const void *msg, size_t len, sy_sig *out)
{
    struct simsig_signer *s = ctx;
    mac(s->reg->ids[s->idx].secret, msg, len, out);
}

static bool sim_verify(void *ctx, const sy_pubkey *pk, const void *msg, size_t len,
                       const sy_sig *sig)
{
    sy_simsig *r = ctx;
    for (size_t i = 0; i < r->n; i++) {
        if (memcmp(r->ids[i].pk.b, pk->b, SY_PUBKEY_LEN) == 0) {
            sy_sig want;
            mac(r->ids[i].secret, msg, len, &want);
            return sodium_memcmp(want.b, sig->b, SY_SIG_LEN) == 0;
        }
    }
    return false;
}

int sy_simsig_add(sy_simsig *r, const uint8_t seed[SY_SEED_LEN], sy_signer *out)
{
    if (r->n >= r->cap)
        return SY_EFULL;
    struct simsig_id *id = &r->ids[r->n];
    crypto_generichash(id->secret, 32, seed, SY_SEED_LEN, (const uint8_t *)"synod-simsig-key", 16);
    crypto_generichash(id->pk.b, 32, id->secret, 32, NULL, 0);
    r->signers[r->n].reg = r;
    r->signers[r->n].idx = r->n;
    out->sign = sim_sign;
    out->ctx = &r->signers[r->n];
    out->pub = id->pk;
    r->n++;
    return SY_OK;
}

void sy_verifier_simsig(sy_verifier *v, sy_simsig *r)
{
    v->verify = sim_verify;
    v->ctx = r;
}
