/* optim.cu — Chapter 10: SGD with momentum, Adam and AdamW as one fused kernel each over the flat parameter
 * buffer (see optim.h), with the learning rate and the step count read from device memory.
 *
 * Why from device memory: chapter 07 captures the whole training step in a CUDA Graph and replays it. A kernel
 * argument is frozen into the graph at capture, so a learning rate passed by value would need a new capture
 * every time the schedule changes it (every step for cosine and one-cycle). A POINTER is frozen instead, and
 * the kernel reads whatever was written behind it when it runs: by the host (cudaMemcpyAsync, as the test
 * does), or by an earlier kernel of the same step (mnist_train's step_lr_kernel in train_better.cu, which takes
 * the step's rate from a table uploaded once per epoch).
 *
 * Each kernel is one pass: every thread reads p, g, m (and v) once and writes them once — the fused update,
 * instead of torch's single-tensor code's eight or so whole-tensor operations per parameter. The element
 * arithmetic is optim_math.h's, the same as optim_step_cpu's. Tested by tests/test_optim.cu:
 *
 *   build/bin/test_optim_sim gpu_equals_cpu.adam --golden reference/golden
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "optim_math.h"

/* Threads per block, and the most blocks per range: each thread of the grid-stride loop takes the rest. */
#define OPTIM_THREADS 256
#define OPTIM_MAX_BLOCKS 4096

/* The ranges of one lr scale (optim_ranges), passed BY VALUE: they are fixed for a run, so a graph may freeze
 * them. Row blockIdx.y of the grid updates range blockIdx.y, so a thread computes its range's constants once
 * (two pow in double), not once per element. */
typedef struct OptimRangeTable {
    int count;
    OptimRange range[OPTIM_MAX_RANGES];
} OptimRangeTable;

/* SGD with momentum: p, g, m (n,) flat; range blockIdx.y of `table`. */
__global__ void optim_sgd_kernel(OptimizerConfig config, OptimRangeTable table, float *p, const float *g, float *m,
                                 const float *lr, const uint64_t *t)
{
    const OptimRange range = table.range[blockIdx.y];
    const OptimStepConstants k = optim_step_constants(&config, *lr * range.lr_scale, *t);
    for (size_t i = range.start + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < range.end;
         i += (size_t)blockDim.x * gridDim.x) {
        optim_sgd_element(&k, &p[i], g[i], &m[i]);
    }
}

/* Adam and AdamW (the constants tell them apart): p, g, m, v (n,) flat; range blockIdx.y of `table`. */
__global__ void optim_adam_kernel(OptimizerConfig config, OptimRangeTable table, float *p, const float *g, float *m,
                                  float *v, const float *lr, const uint64_t *t)
{
    const OptimRange range = table.range[blockIdx.y];
    const OptimStepConstants k = optim_step_constants(&config, *lr * range.lr_scale, *t);
    for (size_t i = range.start + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < range.end;
         i += (size_t)blockDim.x * gridDim.x) {
        p[i] = optim_adam_element(&k, p[i], g[i], &m[i], &v[i]);
    }
}

extern "C" void optim_step_gpu(const OptimizerConfig *config, const OptimSegments *segments, float *p, const float *g,
                               float *m, float *v, size_t n, const float *lr, const uint64_t *t, void *stream)
{
    OptimRangeTable table;
    table.count = optim_ranges(segments, n, table.range);
    if (table.count == 0) {
        return; /* nothing to update: n = 0, or everything frozen */
    }
    size_t longest = 0;
    for (int r = 0; r < table.count; r++) {
        const size_t len = table.range[r].end - table.range[r].start;
        longest = len > longest ? len : longest;
    }
    size_t blocks = (longest + OPTIM_THREADS - 1) / OPTIM_THREADS;
    blocks = blocks < OPTIM_MAX_BLOCKS ? blocks : OPTIM_MAX_BLOCKS;
    const dim3 grid((unsigned)blocks, (unsigned)table.count);
    cudaStream_t s = (cudaStream_t)stream;
    if (config->kind == OPTIM_SGD) {
        optim_sgd_kernel<<<grid, OPTIM_THREADS, 0, s>>>(*config, table, p, g, m, lr, t);
    } else {
        optim_adam_kernel<<<grid, OPTIM_THREADS, 0, s>>>(*config, table, p, g, m, v, lr, t);
    }
    CUDA_CHECK(cudaGetLastError());
}
