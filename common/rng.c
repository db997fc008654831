/* rng.c — PCG32 (the "XSH RR" output function), see rng.h. */
#include "rng.h"

#include <math.h>

/* The 64-bit LCG multiplier recommended for PCG (Knuth's MMIX constant). */
#define PCG_MULTIPLIER 6364136223846793005ULL

uint32_t rng_u32(Rng *rng)
{
    uint64_t old = rng->state;
    rng->state = old * PCG_MULTIPLIER + rng->increment;
    /* Output permutation: xorshift the high bits down, then rotate by the top 5 bits of the old state. */
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rotation = (uint32_t)(old >> 59u);
    return (xorshifted >> rotation) | (xorshifted << ((32u - rotation) & 31u));
}

void rng_seed(Rng *rng, uint64_t seed, uint64_t stream)
{
    rng->state = 0;
    rng->increment = (stream << 1u) | 1u; /* odd, so the LCG has full period 2^64 */
    rng_u32(rng);
    rng->state += seed;
    rng_u32(rng);
}

float rng_uniform(Rng *rng)
{
    return (float)(rng_u32(rng) >> 8) * (1.0f / 16777216.0f); /* 24 bits / 2^24 */
}

float rng_uniform_range(Rng *rng, float low, float high)
{
    return low + (high - low) * rng_uniform(rng);
}

double rng_normal(Rng *rng)
{
    /* Box-Muller: two uniforms u1 in (0, 1] and u2 in [0, 1) give one N(0,1) sample. u1 must not be 0 (log). */
    double u1 = ((double)rng_u32(rng) + 1.0) / 4294967296.0;
    double u2 = (double)rng_u32(rng) / 4294967296.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t rng_below(Rng *rng, uint32_t bound)
{
    /* Reject the few values at the bottom of the range that would make some results more likely than others:
     * 2^32 mod bound of them. threshold = (2^32 - bound) mod bound computed in 32-bit arithmetic. */
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t r = rng_u32(rng);
        if (r >= threshold) {
            return r % bound;
        }
    }
}

void rng_shuffle(Rng *rng, uint32_t *indices, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(rng, (uint32_t)i); /* 0 <= j < i */
        uint32_t tmp = indices[i - 1];
        indices[i - 1] = indices[j];
        indices[j] = tmp;
    }
}
