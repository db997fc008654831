/* rng.h — a small, seeded, reproducible random number generator (PCG32).
 *
 * Why not rand()? Its quality and sequence differ between C libraries, so "seed 1" would mean different runs on
 * different machines. PCG32 (M. E. O'Neill, "PCG: A Family of Simple Fast Space-Efficient Statistically Good
 * Algorithms for Random Number Generation", 2014) is 64 bits of state, a multiply-add per step, and a
 * permutation of the old state as output: fast, statistically good, and the same sequence everywhere.
 *
 *   Rng rng;  rng_seed(&rng, 1, 0);
 *   float u = rng_uniform(&rng);          // [0, 1)
 *   double z = rng_normal(&rng);          // N(0, 1)
 *   uint32_t k = rng_below(&rng, 10);     // 0..9, unbiased
 *
 * Two generators with the same seed and different `stream` values give independent sequences (used to give
 * data shuffling and weight initialisation their own streams). Not for cryptography.
 */
#ifndef COURSE_RNG_H
#define COURSE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct Rng {
    uint64_t state; /* advances by state = state * A + increment */
    uint64_t increment; /* must be odd; selects the stream */
} Rng;

/* Start the generator for (seed, stream). Same pair, same sequence, on every machine. */
void rng_seed(Rng *rng, uint64_t seed, uint64_t stream);

/* Next 32 uniformly distributed bits. */
uint32_t rng_u32(Rng *rng);

/* Uniform float in [0, 1): the top 24 bits, so every value is exactly representable. */
float rng_uniform(Rng *rng);

/* Uniform float in [low, high). */
float rng_uniform_range(Rng *rng, float low, float high);

/* Standard normal sample (Box-Muller transform), computed in double. */
double rng_normal(Rng *rng);

/* Uniform integer in [0, bound), without the bias of `rng_u32() % bound`. bound must be > 0. */
uint32_t rng_below(Rng *rng, uint32_t bound);

/* Shuffle indices[0..n) in place with the Fisher-Yates algorithm (every permutation equally likely). */
void rng_shuffle(Rng *rng, uint32_t *indices, size_t n);

#endif
