/* Deterministic pseudo-random generator (xoshiro256**, seeded by splitmix64).
 * Engines draw all randomness from one handed to them, so a seed reproduces
 * a run. Not for keys: keys come from libsodium. */
#ifndef SY_RNG_H
#define SY_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } sy_rng;

static inline uint64_t sy_rng_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void sy_rng_seed(sy_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = sy_rng_splitmix(&seed);
}

static inline uint64_t sy_rng_next(sy_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t sy_rng_below(sy_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)sy_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t sy_rng_range(sy_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + sy_rng_below(r, hi - lo + 1);
}

#endif
