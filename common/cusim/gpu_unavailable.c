/* gpu_unavailable.c — stands in for a `gpu` test in a build without a CUDA compiler: prints why the test
 * cannot run and exits 77, which CTest shows as "skipped" (never as passed).
 *
 *   course_gpu_unavailable "ch04.vector_add: this build has no CUDA compiler"
 */
#include <stdio.h>

int main(int argc, char **argv)
{
    printf("SKIP: %s\n", argc > 1 ? argv[1] : "no GPU build");
    printf("      (install the CUDA toolkit and reconfigure to build the GPU variants; `ctest -L sim` runs the "
           "same tests on the CPU simulator)\n");
    return 77;
}
