/* sgemm_kernels.cu — Chapter 05: the table of SGEMM kernels, in the order the lesson introduces them, for
 * the tests (tests/test_sgemm.cu) and the benchmark (sgemm_bench.cu). */
#include <stdlib.h>
#include <string.h>

#include "sgemm.h"

const SgemmKernel SGEMM_KERNELS[] = {
    {"01_naive", "naive (one thread per element, uncoalesced)", sgemm_01_naive},
    {"02_coalesced", "global-memory coalescing", sgemm_02_coalesced},
    {"03_shared_tiling", "shared-memory tiling (32x32)", sgemm_03_shared_tiling},
    {"04_blocktile_1d", "1D register blocking (64x64, 8 per thread)", sgemm_04_blocktile_1d},
    {"05_blocktile_2d", "2D register blocking (128x128, 8x8 per thread)", sgemm_05_blocktile_2d},
    {"06_vectorized", "float4 loads + transposed A tile", sgemm_06_vectorized},
    {"07_warptile", "warp tiling (64x64 per warp)", sgemm_07_warptile},
    {"08_splitk", "07 with shape-chosen tile and split-K", sgemm_08_splitk},
};
const int SGEMM_KERNEL_COUNT = (int)(sizeof SGEMM_KERNELS / sizeof SGEMM_KERNELS[0]);

const SgemmKernel *sgemm_find_kernel(const char *id)
{
    for (int i = 0; i < SGEMM_KERNEL_COUNT; i++) {
        const char *name = SGEMM_KERNELS[i].id;
        if (strcmp(id, name) == 0) {
            return &SGEMM_KERNELS[i];
        }
        /* "05" or "5": the number before the underscore */
        char *end = NULL;
        long number = strtol(id, &end, 10);
        if (end != id && *end == '\0' && number == atol(name)) {
            return &SGEMM_KERNELS[i];
        }
    }
    return NULL;
}
