/* cuda_layers.cu — Chapter 06: the CNN's other layers on the GPU, and the host functions that launch them
 * (declared in cuda_layers.h): 2x2 max pooling, dropout with Philox, the fully connected layer, softmax +
 * cross-entropy, and SGD with momentum over one flat buffer. Chapter 03's twin is cnn_layers.c (and chapter
 * 02's layers.c for the loss and SGD); the convolution is in cuda_conv.cu, the GEMM in cuda_gemm.cu.
 *
 * Checked against chapter 03's CPU layers and PyTorch's golden files by tests/test_cuda_layers.cu:
 *   ctest --preset default -L ch06          (on the CPU simulator, and on the GPU if there is one)
 *
 * Reading order, that of the lesson (chapters/06-cuda-layers/README.md, sections 5 to 8): pooling (section 1
 * below), dropout with Philox (2), the fully connected layer (3), softmax + cross-entropy (4), the flat SGD
 * kernel (5). As in cuda_conv.cu, each thread writes its own output elements and gathers what it needs: no
 * atomics, the same bits on every run.
 */
#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "cuda_basics.h" /* chapter 04: softmax_xent_backward_kernel */
#include "cuda_check.h"
#include "cuda_layers.h"
#include "exercise.h"
#include "philox.h"

/* ---- 1. Max pooling 2x2, stride 2 ------------------------------------------------------------------------ */

/* One thread per output: scan the 2x2 window in row-major order, keep the first strictly larger value (ties
 * stay with the earlier pixel) or a NaN (which then propagates), as chapter 03 and PyTorch do. */
__global__ void maxpool2_forward_kernel(const float *x, float *y, int32_t *argmax, int planes, int height,
                                        int width)
{
    /* BEGIN EXERCISE ch06.maxpool2_forward: for each output (plane, i, j) (grid-stride over planes * (H/2) * (W/2)): scan rows 2i..2i+1, columns 2j..2j+1 of its plane in row-major order, keep the first strictly larger value or a NaN; write the max to y and ih*W + iw to argmax (about 25 lines) | zh: 对每个输出 (plane, i, j)（在 planes * (H/2) * (W/2) 上做网格跨步循环）：按行优先顺序扫描它所在平面的第 2i..2i+1 行、第 2j..2j+1 列，只在遇到严格更大的值或 NaN 时更新；把最大值写进 y，把 ih*W + iw 写进 argmax（约 25 行） */
    const int out_h = height / 2, out_w = width / 2;
    const size_t total = (size_t)planes * out_h * out_w;
    for (size_t o = (size_t)blockIdx.x * blockDim.x + threadIdx.x; o < total; o += (size_t)blockDim.x * gridDim.x) {
        const int j = (int)(o % out_w);
        const int i = (int)((o / out_w) % out_h);
        const size_t plane = o / ((size_t)out_w * out_h);
        const float *x_plane = x + plane * height * width; /* (H, W) */
        int best_index = (2 * i) * width + 2 * j;
        float best = x_plane[best_index];
        for (int di = 0; di < 2; di++) {
            for (int dj = 0; dj < 2; dj++) {
                const int index = (2 * i + di) * width + 2 * j + dj;
                const float v = x_plane[index];
                if (v > best || isnan(v)) {
                    best = v;
                    best_index = index;
                }
            }
        }
        y[o] = best;
        argmax[o] = best_index;
    }
    /* END EXERCISE */
}

/* One thread per INPUT pixel: its window is (ih/2, iw/2); it receives that output's gradient if it is the
 * window's argmax, else 0 (and 0 in a dropped odd last row or column). Every pixel of dx is written exactly
 * once, so dx needs no zeroing first and no two threads collide. */
__global__ void maxpool2_backward_kernel(const float *dy, const int32_t *argmax, float *dx, int planes,
                                         int height, int width)
{
    /* BEGIN EXERCISE ch06.maxpool2_backward: for each input pixel (plane, ih, iw) (grid-stride): its window is (ih/2, iw/2); write dy of that window if ih < 2*(H/2), iw < 2*(W/2) and the window's argmax equals ih*W + iw, else 0 (about 15 lines) | zh: 对每个输入像素 (plane, ih, iw)（网格跨步循环）：它的窗口是 (ih/2, iw/2)；若 ih < 2*(H/2)、iw < 2*(W/2) 且该窗口的 argmax 等于 ih*W + iw，写入该窗口的 dy，否则写 0（约 15 行） */
    const int out_h = height / 2, out_w = width / 2;
    const size_t total = (size_t)planes * height * width;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int iw = (int)(i % width);
        const int ih = (int)((i / width) % height);
        const size_t plane = i / ((size_t)width * height);
        float g = 0.0f;
        if (ih / 2 < out_h && iw / 2 < out_w) {
            const size_t o = (plane * out_h + ih / 2) * out_w + iw / 2;
            if (argmax[o] == ih * width + iw) {
                g = dy[o];
            }
        }
        dx[i] = g;
    }
    /* END EXERCISE */
}

void maxpool2_forward_gpu(const float *x, float *y, int32_t *argmax, int batch, int channels, int height,
                          int width)
{
    const size_t total = (size_t)batch * channels * (height / 2) * (width / 2);
    if (total == 0) {
        return;
    }
    maxpool2_forward_kernel<<<ch06_blocks_for(total), CH06_THREADS, 0, cuda_layers_stream()>>>(
        x, y, argmax, batch * channels, height, width);
    CUDA_CHECK(cudaGetLastError());
}

void maxpool2_backward_gpu(const float *dy, const int32_t *argmax, float *dx, int batch, int channels, int height,
                           int width)
{
    const size_t total = (size_t)batch * channels * height * width;
    if (total == 0) {
        return;
    }
    maxpool2_backward_kernel<<<ch06_blocks_for(total), CH06_THREADS, 0, cuda_layers_stream()>>>(
        dy, argmax, dx, batch * channels, height, width);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 2. Dropout with a counter-based RNG ------------------------------------------------------------------ */

void dropout_philox_mask_cpu(uint64_t seed, uint64_t offset, float p, uint8_t *mask, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mask[i] = (uint8_t)philox_keep(seed, offset, i, p);
    }
}

/* One thread per group of 4 elements: one Philox call gives 4 random words, one for each of elements
 * 4g .. 4g+3 (exactly the words philox_keep(seed, offset, i, p) uses for element i, so the CPU mask is the
 * same). y = x * scale where kept, 0 where dropped; scale = 1 / (1 - p) is computed once on the host, the
 * same float chapter 03 multiplies by. */
__global__ void dropout_forward_kernel(const float *x, float *y, uint8_t *mask, size_t n, float p, float scale,
                                       uint64_t seed, uint64_t offset_add, const uint64_t *offset_base)
{
    /* BEGIN EXERCISE ch06.dropout_forward: offset = offset_add + (offset_base ? *offset_base : 0); for each group g of 4 elements (grid-stride, g < ceil(n/4)): words = philox_block(seed, offset, g); for j = 0..3 with i = 4g + j < n: keep = philox_to_uniform(words.v[j]) >= p; mask[i] = keep; y[i] = keep ? x[i] * scale : 0 (about 12 lines) | zh: offset = offset_add + (offset_base ? *offset_base : 0)；对每组 4 个元素 g（网格跨步循环，g < ceil(n/4)）：words = philox_block(seed, offset, g)；对 j = 0..3 且 i = 4g + j < n：keep = philox_to_uniform(words.v[j]) >= p；mask[i] = keep；y[i] = keep ? x[i] * scale : 0（约 12 行） */
    /* The Philox offset: a value, plus (for a CUDA Graph) a base read from device memory. */
    const uint64_t offset = offset_add + (offset_base != NULL ? *offset_base : 0);
    const size_t groups = (n + 3) / 4;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += (size_t)blockDim.x * gridDim.x) {
        const Philox4x32 words = philox_block(seed, offset, g);
        for (int j = 0; j < 4; j++) {
            const size_t i = 4 * g + j;
            if (i < n) {
                const bool keep = philox_to_uniform(words.v[j]) >= p;
                mask[i] = keep ? 1 : 0;
                y[i] = keep ? x[i] * scale : 0.0f;
            }
        }
    }
    /* END EXERCISE */
}

__global__ void dropout_backward_kernel(const float *dy, const uint8_t *mask, float *dx, size_t n, float scale)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) {
        dx[i] = mask[i] ? dy[i] * scale : 0.0f;
    }
}

static void launch_dropout_forward(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                                   uint64_t offset_add, const uint64_t *offset_base)
{
    if (n == 0) {
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    dropout_forward_kernel<<<ch06_blocks_for((n + 3) / 4), CH06_THREADS, 0, cuda_layers_stream()>>>(
        x, y, mask, n, p, scale, seed, offset_add, offset_base);
    CUDA_CHECK(cudaGetLastError());
}

void dropout_forward_gpu(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                         uint64_t offset)
{
    launch_dropout_forward(x, y, mask, n, p, seed, offset, NULL);
}

void dropout_forward_gpu_device_offset(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                                       const uint64_t *offset_base, uint64_t offset_add)
{
    launch_dropout_forward(x, y, mask, n, p, seed, offset_add, offset_base);
}

void dropout_backward_gpu(const float *dy, const uint8_t *mask, float *dx, size_t n, float p)
{
    if (n == 0) {
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    dropout_backward_kernel<<<ch06_blocks_for(n), CH06_THREADS, 0, cuda_layers_stream()>>>(dy, mask, dx, n, scale);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 3. Fully connected layer ------------------------------------------------------------------------------ */

/* y[r][j] = relu?(y[r][j] + b[j]) in place: the GEMM's epilogue.  y (rows, cols) */
__global__ void bias_act_rows_kernel(float *y, const float *b, int rows, int cols, bool relu)
{
    const size_t total = (size_t)rows * cols;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        float v = y[i] + b[i % cols];
        if (relu && v < 0.0f) {
            v = 0.0f;
        }
        y[i] = v;
    }
}

/* db[j] = sum over r of dz[r][j]: one thread per column, rows added in order (deterministic; the batch is
 * small, and consecutive threads read consecutive addresses of each row). */
__global__ void column_sums_kernel(const float *dz, float *db, int rows, int cols)
{
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += blockDim.x * gridDim.x) {
        float sum = 0.0f;
        for (int r = 0; r < rows; r++) {
            sum += dz[(size_t)r * cols + j];
        }
        db[j] = sum;
    }
}

__global__ void relu_backward_kernel(const float *y, const float *dy, float *dx, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) {
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

void relu_backward_gpu(const float *y, const float *dy, float *dx, size_t n)
{
    if (n == 0) {
        return;
    }
    relu_backward_kernel<<<ch06_blocks_for(n), CH06_THREADS, 0, cuda_layers_stream()>>>(y, dy, dx, n);
    CUDA_CHECK(cudaGetLastError());
}

void linear_forward_gpu(GpuGemm backend, const float *x, const float *w, const float *b, float *y, int batch,
                        int in, int out, bool relu)
{
    /* y (batch, out) = x (batch, in) · W^T, W stored (out, in) */
    gemm_gpu(backend, false, true, batch, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    bias_act_rows_kernel<<<ch06_blocks_for((size_t)batch * out), CH06_THREADS, 0, cuda_layers_stream()>>>(
        y, b, batch, out, relu);
    CUDA_CHECK(cudaGetLastError());
}

void linear_backward_gpu(GpuGemm backend, const float *x, const float *w, const float *y, const float *dy,
                         bool relu, float *dz_scratch, float *dx, float *dw, float *db, int batch, int in,
                         int out)
{
    const float *dz = dy; /* (batch, out) */
    if (relu) {
        relu_backward_gpu(y, dy, dz_scratch, (size_t)batch * out);
        dz = dz_scratch;
    }
    if (dx) {
        /* dx (batch, in) = dz (batch, out) · W (out, in) */
        gemm_gpu(backend, false, false, batch, in, out, 1.0f, dz, out, w, in, 0.0f, dx, in);
    }
    /* dW (out, in) = dz^T (out, batch) · x (batch, in) */
    gemm_gpu(backend, true, false, out, in, batch, 1.0f, dz, out, x, in, 0.0f, dw, in);
    column_sums_kernel<<<(out + CH06_THREADS - 1) / CH06_THREADS, CH06_THREADS, 0, cuda_layers_stream()>>>(
        dz, db, batch, out);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 4. Softmax + cross-entropy, the loss left on the device ----------------------------------------------- */

/* ONE block: thread t handles rows t, t + blockDim.x, ... (softmax of a row of `classes` values, max
 * subtracted first, and its loss logsumexp - logit[label]); then a shared-memory tree adds the per-thread
 * losses in a fixed order. The loss stays in device memory: the trainer reads it when it wants to (every
 * N steps), and the GPU never waits for the host. */
__global__ void softmax_xent_forward_kernel(const float *logits, const int32_t *labels, float *probs, float *loss,
                                            int batch, int classes)
{
    __shared__ float partial[CH06_THREADS];
    float thread_loss = 0.0f;
    for (int r = threadIdx.x; r < batch; r += blockDim.x) {
        const float *row = logits + (size_t)r * classes;
        float *p = probs + (size_t)r * classes;
        float m = row[0];
        for (int c = 1; c < classes; c++) {
            m = fmaxf(m, row[c]);
        }
        float sum = 0.0f;
        for (int c = 0; c < classes; c++) {
            sum += expf(row[c] - m);
        }
        for (int c = 0; c < classes; c++) {
            p[c] = expf(row[c] - m) / sum;
        }
        const int label = labels[r];
        thread_loss += (label >= 0 && label < classes) ? logf(sum) + m - row[label] : NAN;
    }
    partial[threadIdx.x] = thread_loss;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) {
            partial[threadIdx.x] += partial[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        loss[0] = partial[0] / batch;
    }
}

void softmax_xent_forward_gpu(const float *logits, const int32_t *labels, float *probs, float *loss, int batch,
                              int classes)
{
    softmax_xent_forward_kernel<<<1, CH06_THREADS, 0, cuda_layers_stream()>>>(logits, labels, probs, loss, batch,
                                                                              classes);
    CUDA_CHECK(cudaGetLastError());
}

void softmax_xent_backward_gpu(const float *probs, const int32_t *labels, float *dlogits, int batch, int classes)
{
    if (batch <= 0 || classes <= 0) {
        return;
    }
    softmax_xent_backward_kernel<<<ch06_blocks_for((size_t)batch * classes), CH06_THREADS, 0, cuda_layers_stream()>>>(
        probs, labels, dlogits, batch, classes);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 5. SGD with momentum: one kernel over every parameter ------------------------------------------------- */

size_t flat_layout(const size_t *sizes, int count, size_t *offsets)
{
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        offsets[i] = total;
        total += (sizes[i] + 3) / 4 * 4;
    }
    return total;
}

/* The update is elementwise and the same for every tensor, so with all parameters (and their gradients and
 * velocities) in one flat buffer, a single launch updates the whole network: 1 launch instead of one per
 * tensor (8 for chapter 03's network), each thread reading p, g, v and writing p, v once. */
__global__ void sgd_momentum_kernel(float *params, const float *grads, float *velocity, size_t n, float lr,
                                    float momentum, float weight_decay)
{
    /* BEGIN EXERCISE ch06.sgd_momentum: for each i < n (grid-stride): g = grads[i] + weight_decay * params[i]; v = momentum * velocity[i] + g; store v; params[i] -= lr * v (about 6 lines) | zh: 对每个 i < n（网格跨步循环）：g = grads[i] + weight_decay * params[i]；v = momentum * velocity[i] + g；保存 v；params[i] -= lr * v（约 6 行） */
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) {
        const float g = grads[i] + weight_decay * params[i];
        const float v = momentum * velocity[i] + g;
        velocity[i] = v;
        params[i] -= lr * v;
    }
    /* END EXERCISE */
}

void sgd_momentum_gpu(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum,
                      float weight_decay)
{
    if (n == 0) {
        return;
    }
    sgd_momentum_kernel<<<ch06_blocks_for(n), CH06_THREADS, 0, cuda_layers_stream()>>>(
        params, grads, velocity, n, lr, momentum, weight_decay);
    CUDA_CHECK(cudaGetLastError());
}
