/* philox.h — Philox4x32-10, the counter-based random number generator of Salmon, Moraes, Dror and Shaw,
 * "Parallel Random Numbers: As Easy as 1, 2, 3" (SC'11), usable from C and from CUDA alike.
 *
 * A counter-based generator is a pure function: 4 random 32-bit words = philox4x32_10(counter, key). There
 * is no state to carry from one number to the next, so any element of a random stream can be computed on
 * its own, in any order, by any thread: element i of the stream (seed, offset) is word i % 4 of
 * philox4x32_10(counter = (i / 4, offset), key = seed). The CPU and the GPU therefore produce the SAME
 * numbers from the same (seed, offset, i), which is what makes chapter 06's dropout masks reproducible and
 * testable bit for bit (chapters/06-cuda-layers/README.md explains it).
 *
 *   uint32_t word = philox_u32(seed, offset, i);          // element i of stream (seed, offset)
 *   float u = philox_uniform(seed, offset, i);            // in [0, 1), 24 random bits
 *   int keep = philox_keep(seed, offset, i, p);           // 1 with probability 1 - p (dropout)
 *
 * Compiled as CUDA (nvcc, or the course's simulator) every function is __host__ __device__; a C compiler
 * sees plain static inline functions. Checked against the Random123 known-answer vectors and against an
 * independent Python implementation (reference/ch06_layers.py) by chapter 06's tests.
 */
#ifndef COURSE_PHILOX_H
#define COURSE_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__) || defined(__CUSIM__)
#define PHILOX_FUNCTION static inline __host__ __device__
#else
#define PHILOX_FUNCTION static inline
#endif

/* The constants of the paper: the two round multipliers, and the two Weyl increments that change the key
 * between rounds (the golden ratio and sqrt(3) - 1, in 32-bit fixed point). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

typedef struct Philox4x32 {
    uint32_t v[4];
} Philox4x32;

/* One round: two 32x32 -> 64-bit multiplies; their high halves are mixed with the other two words and the
 * key, and the words are permuted so that every word influences every other after a few rounds. */
PHILOX_FUNCTION Philox4x32 philox_round(Philox4x32 c, uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c.v[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c.v[2];
    Philox4x32 out;
    out.v[0] = (uint32_t)(p1 >> 32) ^ c.v[1] ^ k0;
    out.v[1] = (uint32_t)p1;
    out.v[2] = (uint32_t)(p0 >> 32) ^ c.v[3] ^ k1;
    out.v[3] = (uint32_t)p0;
    return out;
}

/* Philox4x32 with 10 rounds (the recommended count): 10 rounds, the key bumped by (W0, W1) between them. */
PHILOX_FUNCTION Philox4x32 philox4x32_10(Philox4x32 counter, uint32_t key0, uint32_t key1)
{
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            key0 += PHILOX_W0;
            key1 += PHILOX_W1;
        }
        counter = philox_round(counter, key0, key1);
    }
    return counter;
}

/* The 4 words of block `block` (elements 4*block .. 4*block + 3) of stream (seed, offset). */
PHILOX_FUNCTION Philox4x32 philox_block(uint64_t seed, uint64_t offset, uint64_t block)
{
    Philox4x32 counter;
    counter.v[0] = (uint32_t)block;
    counter.v[1] = (uint32_t)(block >> 32);
    counter.v[2] = (uint32_t)offset;
    counter.v[3] = (uint32_t)(offset >> 32);
    return philox4x32_10(counter, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* A 32-bit word to a float in [0, 1): its top 24 bits times 2^-24 (a float has 24 significant bits, so
 * every value is exact and 1.0 is never reached). */
PHILOX_FUNCTION float philox_to_uniform(uint32_t word)
{
    return (float)(word >> 8) * (1.0f / 16777216.0f);
}

/* Element `index` of stream (seed, offset). */
PHILOX_FUNCTION uint32_t philox_u32(uint64_t seed, uint64_t offset, uint64_t index)
{
    return philox_block(seed, offset, index / 4).v[index % 4];
}

PHILOX_FUNCTION float philox_uniform(uint64_t seed, uint64_t offset, uint64_t index)
{
    return philox_to_uniform(philox_u32(seed, offset, index));
}

/* Dropout's decision for element `index`: keep (1) when its uniform number is >= p, so an element is kept
 * with probability 1 - p (exactly, for p a multiple of 2^-24). */
PHILOX_FUNCTION int philox_keep(uint64_t seed, uint64_t offset, uint64_t index, float p)
{
    return philox_uniform(seed, offset, index) >= p;
}

#endif
