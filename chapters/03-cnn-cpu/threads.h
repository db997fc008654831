/* threads.h — Chapter 03: the two OpenMP queries the chapter's parallel loops need, usable with or without
 * OpenMP (a build without it runs everything on one thread).
 *
 *   float *scratch = xmalloc(parallel_max_threads() * size);       // one scratch buffer per thread
 *   #pragma omp parallel for
 *   for (...) { float *mine = scratch + parallel_thread_index() * size; ... }
 */
#ifndef CH03_THREADS_H
#define CH03_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#endif

/* The number of threads the next parallel region will use. */
static inline int parallel_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* This thread's index in the current parallel region, 0 .. parallel_max_threads() - 1 (0 outside one). */
static inline int parallel_thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#endif
