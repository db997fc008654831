/* exercise.h — what a stubbed exercise calls in the student edition.
 *
 * The solution code marks each region a learner writes:
 *
 *     float relu(float x)
 *     {
 *         // BEGIN EXERCISE ch01.relu: return x for x > 0, else 0 (about 1 line)
 *         ...solution...
 *         // END EXERCISE
 *     }
 *
 * (with C block comments). `tools/course exercises` replaces the region by a TODO comment carrying the hint
 * and a call course_todo("ch01.relu", "chapters/01-activations/README.md"). That call prints, once per
 * exercise, "ch01.relu is not implemented yet (see chapters/01-activations/README.md)" and makes the program
 * exit with status 1 when it ends, so every test that reaches a stub fails and names it — it never crashes
 * or hangs.
 */
#ifndef COURSE_EXERCISE_H
#define COURSE_EXERCISE_H

#ifdef __cplusplus
extern "C" { /* the CUDA chapters' .cu files are C++ (nvcc, or the simulator's g++) */
#endif

/* Report an unimplemented exercise (printed once per id) and arrange for a failing exit status. */
void course_todo(const char *exercise_id, const char *lesson_path);

/* How many distinct exercises reported themselves unimplemented so far in this process. */
int course_todo_count(void);

#ifdef __cplusplus
}
#endif

#if defined(__CUDACC__)
/* CUDA (nvcc) only. A stubbed exercise can be a __global__ or __device__ function, and device code cannot
 * call the host function above, so in .cu files `course_todo(...)` goes through course_todo_device, which
 * is callable from both sides:
 *   - on the host it is course_todo above;
 *   - on the device, the grid's first thread prints the same message with device printf and then fails a
 *     device-side assertion (a direct __assert_fail call, which NDEBUG does not remove). The kernel stops,
 *     and the host's next CUDA_CHECK (cudaGetLastError / cudaDeviceSynchronize) fails with
 *     cudaErrorAssert, so the test exits 1 right after the message naming the exercise. Other threads just
 *     return: one message, not one per thread.
 * (The CPU simulator compiles kernels as host code, so there the plain course_todo is called directly.) */
static __host__ __device__ inline void course_todo_device(const char *exercise_id, const char *lesson_path)
{
#if defined(__CUDA_ARCH__)
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0 && blockIdx.x == 0 && blockIdx.y == 0 &&
        blockIdx.z == 0) {
        printf("%s is not implemented yet (see %s)\n", exercise_id, lesson_path);
        /* glibc's assert function, which CUDA's headers declare callable on the device */
        __assert_fail("exercise not implemented yet (course_todo)", __FILE__, __LINE__, __func__);
    }
#else
    course_todo(exercise_id, lesson_path);
#endif
}
#define course_todo(exercise_id, lesson_path) course_todo_device(exercise_id, lesson_path)
#endif

#endif
