/* test_cusim.cu — the CUDA simulator's own tests: good kernels it must run right, and known-bad kernels it
 * must catch and report (a test asserts each report).
 *
 *   build/bin/test_cusim_sim --list
 *   CUSIM_ORDER=reverse build/bin/test_cusim_sim shared.nan_fill
 *
 * (ctest -L cusim runs every case in forward, reverse and random thread order.) These tests use the
 * simulator-only calls cusimSetOrder and cusimLastErrorMessage, so they are built for the simulator only;
 * the chapters' tests are the ones that also run on a GPU.
 */
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "check.h"
#include "rng.h"
#include "testing.h"
#include "timer.h"
}

/* Every test starts from a clean device (errors from an earlier case are sticky, as on a GPU). */
static void fresh_device(void)
{
    cudaDeviceReset();
}

static bool expect_error(cudaError_t got, cudaError_t want, const char *what, const char *message_part)
{
    bool ok = check_true(got == want, "%s: expected %s, got %s", what, cudaGetErrorName(want), cudaGetErrorName(got));
    if (message_part) {
        ok &= check_true(strstr(cusimLastErrorMessage(), message_part) != NULL,
                         "%s: the simulator's message should mention \"%s\"; it is: %s", what, message_part,
                         cusimLastErrorMessage());
    }
    return ok;
}

/* ---- Grids and blocks ------------------------------------------------------------------------------ */

__global__ void index_1d(int *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = 2 * i + 1;
    }
}

__global__ void index_2d(int *out, int width, int height)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < width && y < height) {
        out[y * width + x] = y * 1000 + x;
    }
}

__global__ void index_3d(int *out, int width, int height, int depth, int *dims)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int z = blockIdx.z * blockDim.z + threadIdx.z;
    if (x < width && y < height && z < depth) {
        out[(z * height + y) * width + x] = z * 1000000 + y * 1000 + x;
    }
    if (x == 0 && y == 0 && z == 0) {
        dims[0] = blockDim.x, dims[1] = blockDim.y, dims[2] = blockDim.z;
        dims[3] = gridDim.x, dims[4] = gridDim.y, dims[5] = gridDim.z;
    }
}

static int test_grid_1d(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    const int n = 1000;
    int *d = NULL;
    int host[1000];
    cudaMalloc(&d, n * sizeof(int));
    index_1d<<<(n + 127) / 128, 128>>>(d, n);
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(host, d, n * sizeof(int), cudaMemcpyDeviceToHost);
    for (int i = 0; i < n && ok; i++) {
        ok = check_true(host[i] == 2 * i + 1, "out[%d] = %d, expected %d", i, host[i], 2 * i + 1);
    }
    cudaFree(d);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_grid_2d(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    const int width = 37, height = 29;
    int *d = NULL;
    static int host[37 * 29];
    cudaMalloc(&d, sizeof host);
    dim3 block(8, 4);
    dim3 grid((width + block.x - 1) / block.x, (height + block.y - 1) / block.y);
    index_2d<<<grid, block>>>(d, width, height);
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost);
    for (int y = 0; y < height && ok; y++) {
        for (int x = 0; x < width && ok; x++) {
            ok = check_true(host[y * width + x] == y * 1000 + x, "out[%d][%d] = %d", y, x, host[y * width + x]);
        }
    }
    cudaFree(d);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_grid_3d(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    const int width = 13, height = 7, depth = 5;
    int *d = NULL, *d_dims = NULL;
    static int host[13 * 7 * 5];
    int dims[6];
    cudaMalloc(&d, sizeof host);
    cudaMalloc(&d_dims, sizeof dims);
    dim3 block(4, 3, 2);
    dim3 grid(4, 3, 3);
    index_3d<<<grid, block>>>(d, width, height, depth, d_dims);
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost);
    cudaMemcpy(dims, d_dims, sizeof dims, cudaMemcpyDeviceToHost);
    for (int z = 0; z < depth && ok; z++) {
        for (int y = 0; y < height && ok; y++) {
            for (int x = 0; x < width && ok; x++) {
                int got = host[(z * height + y) * width + x];
                ok = check_true(got == z * 1000000 + y * 1000 + x, "out[%d][%d][%d] = %d", z, y, x, got);
            }
        }
    }
    ok &= check_true(dims[0] == 4 && dims[1] == 3 && dims[2] == 2 && dims[3] == 4 && dims[4] == 3 && dims[5] == 3,
                     "blockDim/gridDim seen in the kernel: (%d,%d,%d) (%d,%d,%d)", dims[0], dims[1], dims[2],
                     dims[3], dims[4], dims[5]);
    cudaFree(d);
    cudaFree(d_dims);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Shared memory --------------------------------------------------------------------------------- */

/* Reverse each block's slice through shared memory (needs the barrier between write and read). */
__global__ void reverse_static(const float *in, float *out)
{
    __shared__ float tile[64];
    int t = threadIdx.x, base = blockIdx.x * 64;
    tile[t] = in[base + t];
    __syncthreads();
    out[base + t] = tile[63 - t];
}

__global__ void reverse_dynamic(const float *in, float *out)
{
    extern __shared__ float buffer[];
    int t = threadIdx.x, n = blockDim.x, base = blockIdx.x * blockDim.x;
    buffer[t] = in[base + t];
    __syncthreads();
    out[base + t] = buffer[n - 1 - t];
}

/* A template kernel with two __shared__ variables in one declaration and one in a __device__ helper. */
__device__ float block_sum_helper(float v)
{
    __shared__ float partial[128];
    partial[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if ((int)threadIdx.x < s) {
            partial[threadIdx.x] += partial[threadIdx.x + s];
        }
        __syncthreads();
    }
    float total = partial[0];
    __syncthreads();
    return total;
}

template <int SCALE>
__global__ void scaled_sums(const float *in, float *out)
{
    __shared__ float a[4], b[4];
    if (threadIdx.x < 4) {
        a[threadIdx.x] = SCALE;
        b[threadIdx.x] = 1.0f;
    }
    __syncthreads();
    float total = block_sum_helper(in[blockIdx.x * blockDim.x + threadIdx.x]);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = total * a[3] * b[0];
    }
}

/* Reads shared memory nobody wrote: must see the NaN fill, in every block. */
__global__ void read_before_write(float *out)
{
    __shared__ float never_written[32];
    extern __shared__ float dynamic_never_written[];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[2 * i] = never_written[threadIdx.x];
    out[2 * i + 1] = dynamic_never_written[threadIdx.x];
    __syncthreads();
    never_written[threadIdx.x] = 1.0f; /* the next block must still start from NaN */
    dynamic_never_written[threadIdx.x] = 1.0f;
}

static int test_shared_static_dynamic(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    enum { BLOCKS = 5, N = 64 * BLOCKS };
    float in[N], out[N], out2[N];
    for (int i = 0; i < N; i++) {
        in[i] = (float)i;
    }
    float *d_in, *d_out, *d_out2;
    cudaMalloc(&d_in, sizeof in);
    cudaMalloc(&d_out, sizeof out);
    cudaMalloc(&d_out2, sizeof out2);
    cudaMemcpy(d_in, in, sizeof in, cudaMemcpyHostToDevice);
    reverse_static<<<BLOCKS, 64>>>(d_in, d_out);
    reverse_dynamic<<<BLOCKS, 64, 64 * sizeof(float)>>>(d_in, d_out2);
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(out, d_out, sizeof out, cudaMemcpyDeviceToHost);
    cudaMemcpy(out2, d_out2, sizeof out2, cudaMemcpyDeviceToHost);
    for (int i = 0; i < N && ok; i++) {
        float want = (float)((i / 64) * 64 + 63 - i % 64);
        ok = check_true(out[i] == want && out2[i] == want, "out[%d] = %g (static), %g (dynamic), expected %g", i,
                        out[i], out2[i], want);
    }
    /* Template kernel + shared variables in a __device__ helper. */
    scaled_sums<3><<<BLOCKS, 64>>>(d_in, d_out);
    ok &= check_true(cudaGetLastError() == cudaSuccess, "template launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(out, d_out, BLOCKS * sizeof(float), cudaMemcpyDeviceToHost);
    for (int b = 0; b < BLOCKS && ok; b++) {
        float want = 3.0f * (float)(64 * (64 * b) + 64 * 63 / 2);
        ok = check_true(out[b] == want, "scaled_sums block %d = %g, expected %g", b, out[b], want);
    }
    cudaFree(d_in);
    cudaFree(d_out);
    cudaFree(d_out2);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_shared_nan_fill(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    enum { BLOCKS = 3, THREADS = 32 };
    float out[2 * BLOCKS * THREADS];
    float *d_out;
    cudaMalloc(&d_out, sizeof out);
    read_before_write<<<BLOCKS, THREADS, THREADS * sizeof(float)>>>(d_out);
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(out, d_out, sizeof out, cudaMemcpyDeviceToHost);
    int nan_count = 0;
    for (int i = 0; i < 2 * BLOCKS * THREADS; i++) {
        nan_count += isnan(out[i]) != 0;
    }
    ok &= check_true(nan_count == 2 * BLOCKS * THREADS,
                     "shared memory read before any write must be NaN in every block: %d of %d were", nan_count,
                     2 * BLOCKS * THREADS);
    cudaFree(d_out);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Atomics --------------------------------------------------------------------------------------- */

__global__ void atomics_kernel(const int *values, int n, int *histogram, float *sum, int *maximum, int *cas_sum)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int v = values[i];
        atomicAdd(&histogram[v % 7], 1);
        atomicAdd(sum, 0.5f);
        atomicMax(maximum, v);
        int old = atomicAdd(cas_sum, 0), assumed; /* an atomic read (a plain one races with the CAS) */
        do { /* the classic compare-and-swap loop */
            assumed = old;
            old = atomicCAS(cas_sum, assumed, assumed + v);
        } while (old != assumed);
    }
}

static int test_atomics(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    enum { N = 1000 };
    int values[N], want_histogram[7] = {0}, want_max = 0, want_sum = 0;
    Rng rng;
    rng_seed(&rng, 5, 1);
    for (int i = 0; i < N; i++) {
        values[i] = (int)rng_below(&rng, 100000);
        want_histogram[values[i] % 7]++;
        want_max = values[i] > want_max ? values[i] : want_max;
        want_sum += values[i];
    }
    int *d_values, *d_histogram, *d_max, *d_cas;
    float *d_sum;
    cudaMalloc(&d_values, sizeof values);
    cudaMalloc(&d_histogram, 7 * sizeof(int));
    cudaMalloc(&d_max, sizeof(int));
    cudaMalloc(&d_cas, sizeof(int));
    cudaMalloc(&d_sum, sizeof(float));
    cudaMemcpy(d_values, values, sizeof values, cudaMemcpyHostToDevice);
    cudaMemset(d_histogram, 0, 7 * sizeof(int));
    cudaMemset(d_max, 0, sizeof(int));
    cudaMemset(d_cas, 0, sizeof(int));
    cudaMemset(d_sum, 0, sizeof(float));
    atomics_kernel<<<3, 96>>>(d_values, N, d_histogram, d_sum, d_max, d_cas);
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    int histogram[7], maximum, cas_sum;
    float sum;
    cudaMemcpy(histogram, d_histogram, sizeof histogram, cudaMemcpyDeviceToHost);
    cudaMemcpy(&maximum, d_max, sizeof maximum, cudaMemcpyDeviceToHost);
    cudaMemcpy(&cas_sum, d_cas, sizeof cas_sum, cudaMemcpyDeviceToHost);
    cudaMemcpy(&sum, d_sum, sizeof sum, cudaMemcpyDeviceToHost);
    for (int b = 0; b < 7; b++) {
        ok &= check_true(histogram[b] == want_histogram[b], "histogram[%d] = %d, expected %d", b, histogram[b],
                         want_histogram[b]);
    }
    ok &= check_true(maximum == want_max, "atomicMax: %d, expected %d", maximum, want_max);
    ok &= check_true(cas_sum == want_sum, "atomicCAS sum: %d, expected %d", cas_sum, want_sum);
    ok &= check_true(sum == 0.5f * N, "atomicAdd float: %g, expected %g", sum, 0.5 * N);
    cudaFree(d_values);
    cudaFree(d_histogram);
    cudaFree(d_max);
    cudaFree(d_cas);
    cudaFree(d_sum);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Warp operations ------------------------------------------------------------------------------- */

/* out per thread: [0] shfl_down sum (valid in lane 0), [1] shfl_xor sum (all lanes), [2] inclusive
 * shfl_up scan, [3] broadcast of lane 5, [4] ballot of odd values, [5] sum within groups of 8 lanes. */
__global__ void warp_ops(const int *in, int *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x % 32;
    int v = in[i];
    int down = v;
    for (int offset = 16; offset > 0; offset /= 2) {
        down += __shfl_down_sync(0xffffffff, down, offset);
    }
    int butterfly = v;
    for (int mask = 16; mask > 0; mask /= 2) {
        butterfly += __shfl_xor_sync(0xffffffff, butterfly, mask);
    }
    int scan = v;
    for (int offset = 1; offset < 32; offset *= 2) {
        int up = __shfl_up_sync(0xffffffff, scan, offset);
        if (lane >= offset) {
            scan += up;
        }
    }
    int broadcast = __shfl_sync(0xffffffff, v, 5);
    unsigned odd = __ballot_sync(0xffffffff, v % 2 != 0);
    int group = v;
    for (int offset = 4; offset > 0; offset /= 2) {
        group += __shfl_xor_sync(0xffffffff, group, offset, 8);
    }
    __syncwarp();
    out[6 * i + 0] = down;
    out[6 * i + 1] = butterfly;
    out[6 * i + 2] = scan;
    out[6 * i + 3] = broadcast;
    out[6 * i + 4] = (int)odd;
    out[6 * i + 5] = group;
}

static int test_warp_ops(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    enum { N = 128 };
    int in[N], out[6 * N];
    Rng rng;
    rng_seed(&rng, 9, 2);
    for (int i = 0; i < N; i++) {
        in[i] = (int)rng_below(&rng, 1000);
    }
    int *d_in, *d_out;
    cudaMalloc(&d_in, sizeof in);
    cudaMalloc(&d_out, sizeof out);
    cudaMemcpy(d_in, in, sizeof in, cudaMemcpyHostToDevice);
    warp_ops<<<2, 64>>>(d_in, d_out);
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(out, d_out, sizeof out, cudaMemcpyDeviceToHost);
    for (int w = 0; w < N / 32 && ok; w++) {
        int total = 0, scan = 0;
        unsigned odd = 0;
        for (int l = 0; l < 32; l++) {
            total += in[32 * w + l];
            odd |= (unsigned)(in[32 * w + l] % 2 != 0) << l;
        }
        for (int l = 0; l < 32 && ok; l++) {
            int i = 32 * w + l;
            int group = 0;
            for (int g = l / 8 * 8; g < l / 8 * 8 + 8; g++) {
                group += in[32 * w + g];
            }
            scan += in[i];
            if (l == 0) {
                ok &= check_true(out[6 * i] == total, "warp %d shfl_down sum %d, expected %d", w, out[6 * i], total);
            }
            ok &= check_true(out[6 * i + 1] == total, "lane %d shfl_xor sum %d, expected %d", i, out[6 * i + 1], total);
            ok &= check_true(out[6 * i + 2] == scan, "lane %d shfl_up scan %d, expected %d", i, out[6 * i + 2], scan);
            ok &= check_true(out[6 * i + 3] == in[32 * w + 5], "lane %d broadcast %d", i, out[6 * i + 3]);
            ok &= check_true((unsigned)out[6 * i + 4] == odd, "lane %d ballot %08x, expected %08x", i,
                             (unsigned)out[6 * i + 4], odd);
            ok &= check_true(out[6 * i + 5] == group, "lane %d width-8 sum %d, expected %d", i, out[6 * i + 5], group);
        }
    }
    cudaFree(d_in);
    cudaFree(d_out);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Launch limits --------------------------------------------------------------------------------- */

__global__ void touch(int *flag)
{
    extern __shared__ unsigned char bytes[];
    bytes[threadIdx.x] = 1;
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        *flag = 1;
    }
}

__global__ void big_static(int *flag, int use)
{
    __shared__ float big[10 * 1024]; /* 40 KiB: fine alone, too much with 16 KiB of dynamic memory */
    big[threadIdx.x] = (float)use;
    if (threadIdx.x == 0) {
        *flag = 1;
    }
}

static int test_launch_limits(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    int *d_flag;
    int flag = 0;
    cudaMalloc(&d_flag, sizeof(int));
    cudaMemset(d_flag, 0, sizeof(int));
    bool ok = true;
    touch<<<1, 1025>>>(d_flag);
    ok &= expect_error(cudaGetLastError(), cudaErrorInvalidConfiguration, "1025 threads", "1025 threads");
    ok &= check_true(cudaGetLastError() == cudaSuccess, "a configuration error must not be sticky");
    touch<<<1, dim3(1, 1, 65)>>>(d_flag);
    ok &= expect_error(cudaGetLastError(), cudaErrorInvalidConfiguration, "block z = 65", "test_cusim.cu");
    touch<<<dim3(1, 65536), 32>>>(d_flag);
    ok &= expect_error(cudaGetLastError(), cudaErrorInvalidConfiguration, "grid y = 65536", NULL);
    touch<<<1, 32, 48 * 1024 + 4>>>(d_flag);
    ok &= expect_error(cudaGetLastError(), cudaErrorInvalidValue, "48 KiB + 4 of dynamic shared memory",
                       "cudaFuncSetAttribute");
    cudaMemcpy(&flag, d_flag, sizeof flag, cudaMemcpyDeviceToHost);
    ok &= check_true(flag == 0, "a kernel whose launch failed must not have run");
    /* Opting in raises the limit up to the device's sharedMemPerBlockOptin. */
    ok &= check_true(cudaFuncSetAttribute(touch, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess,
                     "cudaFuncSetAttribute 64 KiB");
    touch<<<1, 32, 64 * 1024>>>(d_flag);
    ok &= check_true(cudaGetLastError() == cudaSuccess, "64 KiB after opt-in: %s", cusimLastErrorMessage());
    cudaMemcpy(&flag, d_flag, sizeof flag, cudaMemcpyDeviceToHost);
    ok &= check_true(flag == 1, "the opted-in kernel ran");
    ok &= expect_error(cudaFuncSetAttribute(touch, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024),
                       cudaErrorInvalidValue, "opt-in beyond the device limit", NULL);
    cudaGetLastError();
    big_static<<<1, 32>>>(d_flag, 1);
    ok &= check_true(cudaGetLastError() == cudaSuccess, "40 KiB of static shared memory: %s", cusimLastErrorMessage());
    big_static<<<1, 32, 16 * 1024>>>(d_flag, 1);
    ok &= expect_error(cudaGetLastError(), cudaErrorInvalidValue, "40 KiB static + 16 KiB dynamic", "static");
    cudaFree(d_flag);
    return ok ? TEST_PASS : TEST_FAIL;
}

__constant__ float constant_table[4];

__global__ void read_constants(float *out)
{
    out[threadIdx.x] = constant_table[threadIdx.x] * 2.0f;
}

/* ---- Host API -------------------------------------------------------------------------------------- */

static int test_host_api(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    bool ok = true;
    int count = 0;
    cudaDeviceProp prop;
    ok &= check_true(cudaGetDeviceCount(&count) == cudaSuccess && count == 1, "one simulated device");
    ok &= check_true(cudaSetDevice(0) == cudaSuccess, "cudaSetDevice(0)");
    ok &= check_true(cudaGetDeviceProperties(&prop, 0) == cudaSuccess && strstr(prop.name, "simulator") != NULL,
                     "device name says simulator: %s", prop.name);
    ok &= check_true(prop.maxThreadsPerBlock == 1024 && prop.warpSize == 32 && prop.sharedMemPerBlock == 48 * 1024,
                     "device limits");
    enum { N = 129 };
    float host[N], back[N], *pinned, *d_a, *d_b;
    for (int i = 0; i < N; i++) {
        host[i] = (float)i * 0.25f;
    }
    ok &= check_true(cudaMallocHost(&pinned, sizeof host) == cudaSuccess, "cudaMallocHost");
    cudaMalloc(&d_a, sizeof host);
    cudaMalloc(&d_b, sizeof host);
    ok &= check_true(cudaMemcpy(d_a, host, sizeof host, cudaMemcpyHostToDevice) == cudaSuccess, "H2D");
    ok &= check_true(cudaMemcpy(d_b, d_a, sizeof host, cudaMemcpyDeviceToDevice) == cudaSuccess, "D2D");
    ok &= check_true(cudaMemcpy(pinned, d_b, sizeof host, cudaMemcpyDeviceToHost) == cudaSuccess, "D2H");
    ok &= check_true(cudaMemcpy(back, pinned, sizeof host, cudaMemcpyHostToHost) == cudaSuccess, "H2H");
    ok &= check_true(memcmp(back, host, sizeof host) == 0, "copies round trip");
    ok &= check_true(cudaMemset(d_a, 0, sizeof host) == cudaSuccess, "memset");
    cudaMemcpy(back, d_a, sizeof host, cudaMemcpyDeviceToHost);
    ok &= check_true(back[0] == 0.0f && back[N - 1] == 0.0f, "memset wrote zeros");
    /* Sizes past the buffer are refused (an easy mistake: bytes vs elements). */
    ok &= expect_error(cudaMemcpy(d_a, host, sizeof host + 4, cudaMemcpyHostToDevice), cudaErrorInvalidValue,
                       "copy 4 bytes past the end", "past the end");
    ok &= expect_error(cudaFree(host), cudaErrorInvalidValue, "cudaFree of a host pointer", "not a pointer");
    cudaGetLastError();
    /* Fresh device memory is undefined on a GPU: NaN here. */
    float *d_fresh;
    cudaMalloc(&d_fresh, sizeof(float));
    float fresh = 0.0f;
    cudaMemcpy(&fresh, d_fresh, sizeof fresh, cudaMemcpyDeviceToHost);
    ok &= check_true(isnan(fresh), "fresh cudaMalloc memory reads as NaN");
    cudaEvent_t start, stop;
    float ms = -1.0f;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    cudaEventRecord(start);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    ok &= check_true(cudaEventElapsedTime(&ms, start, stop) == cudaSuccess && ms >= 0.0f, "event time %g ms", ms);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    ok &= check_true(strcmp(cudaGetErrorName(cudaErrorInvalidConfiguration), "cudaErrorInvalidConfiguration") == 0 &&
                         strcmp(cudaGetErrorString(cudaErrorInvalidValue), "invalid argument") == 0,
                     "error names and strings");
    /* __constant__ memory, filled with cudaMemcpyToSymbol. */
    const float table[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float doubled[4], back_table[4];
    ok &= check_true(cudaMemcpyToSymbol(constant_table, table, sizeof table) == cudaSuccess, "cudaMemcpyToSymbol");
    ok &= check_true(cudaMemcpyFromSymbol(back_table, constant_table, sizeof table) == cudaSuccess &&
                         memcmp(back_table, table, sizeof table) == 0,
                     "cudaMemcpyFromSymbol");
    read_constants<<<1, 4>>>(d_b);
    cudaMemcpy(doubled, d_b, sizeof doubled, cudaMemcpyDeviceToHost);
    ok &= check_true(doubled[0] == 2.0f && doubled[3] == 8.0f, "kernel reads __constant__ memory");
    ok &= check_true(cudaDeviceSynchronize() == cudaSuccess && cudaGetLastError() == cudaSuccess, "no error left");
    cudaFree(d_a);
    cudaFree(d_b);
    cudaFree(d_fresh);
    cudaFreeHost(pinned);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* cudaDeviceReset frees every device buffer, as on a GPU: a pointer kept from before is refused afterwards
 * (under ASan, LeakSanitizer would also report the buffers at exit if the reset had only forgotten them). */
static int test_device_reset(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    bool ok = true;
    float *d_a = NULL, *d_b = NULL, host[37] = {0};
    ok &= check_true(cudaMalloc(&d_a, sizeof host) == cudaSuccess && cudaMalloc(&d_b, 3) == cudaSuccess,
                     "two buffers");
    ok &= check_true(cudaMemcpy(d_a, host, sizeof host, cudaMemcpyHostToDevice) == cudaSuccess, "copy before");
    ok &= check_true(cudaDeviceReset() == cudaSuccess, "cudaDeviceReset");
    ok &= expect_error(cudaMemcpy(d_a, host, sizeof host, cudaMemcpyHostToDevice), cudaErrorInvalidValue,
                       "a copy into a buffer from before the reset", "not inside any cudaMalloc buffer");
    ok &= expect_error(cudaFree(d_b), cudaErrorInvalidValue, "cudaFree of a buffer from before the reset",
                       "not a pointer returned by cudaMalloc");
    cudaGetLastError();
    float *d_c = NULL;
    ok &= check_true(cudaMalloc(&d_c, sizeof host) == cudaSuccess &&
                         cudaMemcpy(d_c, host, sizeof host, cudaMemcpyHostToDevice) == cudaSuccess &&
                         cudaFree(d_c) == cudaSuccess,
                     "the device works after the reset");
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Known-bad kernels ----------------------------------------------------------------------------- */

__global__ void reduce_good(const float *in, float *out)
{
    __shared__ float partial[256];
    int t = threadIdx.x;
    partial[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        __syncthreads();
    }
    if (t == 0) {
        out[blockIdx.x] = partial[0];
    }
}

__global__ void reduce_missing_barrier(const float *in, float *out)
{
    __shared__ float partial[256];
    int t = threadIdx.x;
    partial[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        /* BUG: no __syncthreads() here, so a thread may read partial[t + s] before its owner updated it */
    }
    if (t == 0) {
        out[blockIdx.x] = partial[0];
    }
}

static int test_bad_missing_syncthreads(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    enum { BLOCKS = 3, THREADS = 256, N = BLOCKS * THREADS };
    float in[N], want[BLOCKS] = {0};
    for (int i = 0; i < N; i++) {
        in[i] = (float)(i % 13); /* small integers: every order of additions gives the exact sum */
        want[i / THREADS] += in[i];
    }
    float *d_in, *d_out;
    cudaMalloc(&d_in, sizeof in);
    cudaMalloc(&d_out, BLOCKS * sizeof(float));
    cudaMemcpy(d_in, in, sizeof in, cudaMemcpyHostToDevice);
    const char *orders[] = {"forward", "reverse", "random:1", "random:2", "random:3"};
    bool ok = true;
    int wrong_orders = 0;
    for (size_t o = 0; o < COUNT_OF(orders); o++) {
        float got[BLOCKS];
        cusimSetOrder(orders[o]);
        reduce_good<<<BLOCKS, THREADS>>>(d_in, d_out);
        cudaMemcpy(got, d_out, sizeof got, cudaMemcpyDeviceToHost);
        for (int b = 0; b < BLOCKS; b++) {
            ok &= check_true(got[b] == want[b], "good reduction, order %s, block %d: %g, expected %g", orders[o], b,
                             got[b], want[b]);
        }
        reduce_missing_barrier<<<BLOCKS, THREADS>>>(d_in, d_out);
        cudaMemcpy(got, d_out, sizeof got, cudaMemcpyDeviceToHost);
        bool wrong = false;
        for (int b = 0; b < BLOCKS; b++) {
            wrong |= got[b] != want[b];
        }
        printf("reduction without the loop's __syncthreads, order %-8s: %s (block 0: %g, expected %g)\n", orders[o],
               wrong ? "WRONG" : "right by luck", got[0], want[0]);
        wrong_orders += wrong;
    }
    ok &= check_true(wrong_orders > 0, "the missing barrier must give a wrong sum in at least one thread order");
    ok &= check_true(cudaGetLastError() == cudaSuccess, "no launch error expected: %s", cusimLastErrorMessage());
    cudaFree(d_in);
    cudaFree(d_out);
    return ok ? TEST_PASS : TEST_FAIL;
}

__global__ void barrier_in_branch(float *out)
{
    if (threadIdx.x < 16) {
        __syncthreads(); /* BUG: only half the block gets here */
    }
    out[threadIdx.x] = 1.0f;
}

__global__ void barriers_in_both_branches(float *out)
{
    if (threadIdx.x % 2 == 0) {
        __syncthreads(); /* BUG: even and odd threads wait at two different barriers */
        out[threadIdx.x] = 1.0f;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}

__global__ void early_return_then_barrier(const float *in, float *out, int n)
{
    __shared__ float tile[64];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return; /* BUG: the last block's extra threads never reach the barrier below */
    }
    tile[threadIdx.x] = in[i];
    __syncthreads();
    out[i] = tile[(threadIdx.x + 1) % 64];
}

static int run_bad_barrier(int which)
{
    fresh_device();
    float *d_a, *d_b;
    cudaMalloc(&d_a, 100 * sizeof(float));
    cudaMalloc(&d_b, 100 * sizeof(float));
    cudaMemset(d_a, 0, 100 * sizeof(float));
    int errors_before = cusimErrorCount();
    const char *expected_text;
    if (which == 0) {
        barrier_in_branch<<<1, 32>>>(d_a);
        expected_text = "reached by only 16 of the 32 threads";
    } else if (which == 1) {
        barriers_in_both_branches<<<1, 32>>>(d_a);
        expected_text = "different barriers";
    } else {
        early_return_then_barrier<<<2, 64>>>(d_a, d_b, 100);
        expected_text = "returned before it";
    }
    bool ok = expect_error(cudaGetLastError(), cudaErrorLaunchFailure, "bad barrier kernel", expected_text);
    ok &= check_true(strstr(cusimLastErrorMessage(), "test_cusim.cu:") != NULL,
                     "the report must name the file and line: %s", cusimLastErrorMessage());
    ok &= check_true(cusimErrorCount() == errors_before + 1, "exactly one report");
    /* Like a kernel fault on a GPU, the error is sticky: synchronize reports it too. */
    ok &= check_true(cudaDeviceSynchronize() == cudaErrorLaunchFailure, "cudaDeviceSynchronize reports it too");
    cudaDeviceReset();
    cudaFree(d_a);
    cudaFree(d_b);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_bad_barrier_in_branch(const TestContext *ctx)
{
    (void)ctx;
    return run_bad_barrier(0);
}

static int test_bad_different_barriers(const TestContext *ctx)
{
    (void)ctx;
    return run_bad_barrier(1);
}

static int test_bad_early_return(const TestContext *ctx)
{
    (void)ctx;
    return run_bad_barrier(2);
}

__global__ void shuffle_mask_without_caller(int *out)
{
    int v = threadIdx.x;
    v += __shfl_down_sync(0xfffffffe, v, 1); /* BUG: lane 0 calls with a mask that leaves it out */
    out[threadIdx.x] = v;
}

__global__ void shuffle_source_outside_mask(int *out)
{
    int v = threadIdx.x;
    if (threadIdx.x < 16) {
        v += __shfl_down_sync(0x0000ffff, v, 8); /* BUG: lanes 8..15 read lanes 16..23, not in the mask */
    }
    out[threadIdx.x] = v;
}

__global__ void shuffle_lane_returned(int *out)
{
    if (threadIdx.x >= 24) {
        return; /* lanes 24..31 leave ... */
    }
    int v = __shfl_sync(0xffffffff, (int)threadIdx.x, 0); /* BUG: ... but the full mask waits for them */
    out[threadIdx.x] = v;
}

static int run_bad_shuffle(int which)
{
    fresh_device();
    int *d_out;
    cudaMalloc(&d_out, 32 * sizeof(int));
    const char *expected_text;
    if (which == 0) {
        shuffle_mask_without_caller<<<1, 32>>>(d_out);
        expected_text = "does not include lane 0";
    } else if (which == 1) {
        shuffle_source_outside_mask<<<1, 32>>>(d_out);
        expected_text = "is not in the mask";
    } else {
        shuffle_lane_returned<<<1, 32>>>(d_out);
        expected_text = "has returned";
    }
    bool ok = expect_error(cudaGetLastError(), cudaErrorLaunchFailure, "bad shuffle", expected_text);
    ok &= check_true(strstr(cusimLastErrorMessage(), "test_cusim.cu:") != NULL,
                     "the report must name the file and line: %s", cusimLastErrorMessage());
    cudaDeviceReset();
    cudaFree(d_out);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_bad_shuffle_mask_without_caller(const TestContext *ctx)
{
    (void)ctx;
    return run_bad_shuffle(0);
}

static int test_bad_shuffle_source_outside_mask(const TestContext *ctx)
{
    (void)ctx;
    return run_bad_shuffle(1);
}

static int test_bad_shuffle_lane_returned(const TestContext *ctx)
{
    (void)ctx;
    return run_bad_shuffle(2);
}

__global__ void scale_off_by_one(float *x, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) { /* BUG: should be i < n; thread n writes one element past the end */
        x[i] = 2.0f * x[i];
    }
}

/* Normal build: the guard bytes after the buffer catch the write, reported as an illegal address. Under
 * ASan (COURSE_SANITIZE) the write itself stops the program with a heap-buffer-overflow report naming
 * this line (CTest checks for that report). */
static int test_bad_out_of_bounds(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    const int n = 100;
    float *d_x;
    cudaMalloc(&d_x, n * sizeof(float));
    cudaMemset(d_x, 0, n * sizeof(float));
    scale_off_by_one<<<1, 128>>>(d_x, n);
    cudaError_t e = cudaGetLastError();
    bool ok = expect_error(e, cudaErrorIllegalAddress, "off-by-one write", "past the end");
    ok &= check_true(strstr(cusimLastErrorMessage(), "test_cusim.cu:") != NULL, "the report names the launch site");
    ok &= check_true(cudaDeviceSynchronize() == cudaErrorIllegalAddress, "and it is sticky, as on a GPU");
    cudaDeviceReset();
    cudaFree(d_x);
    return ok ? TEST_PASS : TEST_FAIL;
}

__global__ void shared_off_by_one(float *out)
{
    __shared__ float tile[32];
    float *row = tile; /* (through a pointer, so that UBSan's array-bounds check leaves it to ASan) */
    row[threadIdx.x + 1] = 1.0f; /* BUG: thread 31 writes tile[32] */
    __syncthreads();
    out[threadIdx.x] = tile[threadIdx.x];
}

/* ASan build only: an overrun of a static __shared__ array (a global-buffer-overflow report). */
static int test_asan_shared_out_of_bounds(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    float *d_out;
    cudaMalloc(&d_out, 32 * sizeof(float));
    shared_off_by_one<<<1, 32>>>(d_out);
    cudaFree(d_out);
    printf("no overflow report: this case only means something in the ASan build\n");
    return TEST_FAIL;
}

/* ---- Alignment: what CUDA guarantees, and a misaligned vector access reported as on a GPU ------------ */

/* Writes the addresses of its shared arrays, its dynamic shared memory and (per thread) two local vectors. */
__global__ void report_addresses(unsigned long long *out, int n_threads)
{
    __shared__ float odd[3]; /* 12 bytes first, so that an array after it is not aligned by accident */
    __shared__ float4 shared_vec[3];
    __shared__ __align__(16) float tile[5];
    extern __shared__ float4 dynamic[];
    float4 local_vec = make_float4(1.0f, 2.0f, 3.0f, (float)threadIdx.x);
    float2 local_pair = make_float2(1.0f, (float)threadIdx.x);
    if (threadIdx.x == 0) { /* (one thread touches the shared arrays: no barrier needed) */
        odd[0] = 1.0f;
        shared_vec[0] = local_vec;
        tile[0] = local_pair.x;
        dynamic[0] = shared_vec[0];
        out[0] = (unsigned long long)(uintptr_t)shared_vec;
        out[1] = (unsigned long long)(uintptr_t)tile;
        out[2] = (unsigned long long)(uintptr_t)dynamic;
    }
    /* Every thread is a fiber with its own stack: each one's locals must be aligned. */
    out[3 + threadIdx.x] = (unsigned long long)(uintptr_t)&local_vec;
    out[3 + n_threads + threadIdx.x] = (unsigned long long)(uintptr_t)&local_pair;
}

/* cudaMalloc: 256-byte aligned whatever the size; shared arrays aligned to their type; dynamic shared memory
 * 256-byte aligned; a kernel's local float4/float2 16/8-byte aligned in every thread. */
static int test_alignment_guarantees(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    bool ok = true;
    const size_t sizes[] = {1, 3, 4, 7, 100, 1000, 4097};
    void *buffers[COUNT_OF(sizes)];
    for (size_t i = 0; i < COUNT_OF(sizes); i++) {
        ok &= check_true(cudaMalloc(&buffers[i], sizes[i]) == cudaSuccess, "cudaMalloc(%zu)", sizes[i]);
        ok &= check_true((uintptr_t)buffers[i] % 256 == 0, "cudaMalloc(%zu) returned %p: not 256-byte aligned",
                         sizes[i], buffers[i]);
    }
    void *host = NULL;
    ok &= check_true(cudaMallocHost(&host, 7) == cudaSuccess && (uintptr_t)host % 256 == 0,
                     "cudaMallocHost(7) returned %p: not 256-byte aligned", host);
    cudaFreeHost(host);
    const int n_threads = 64;
    unsigned long long *d_out;
    cudaMalloc(&d_out, (3 + 2 * n_threads) * sizeof(unsigned long long));
    report_addresses<<<2, n_threads, 100>>>(d_out, n_threads);
    ok &= check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    unsigned long long addresses[3 + 2 * 64];
    cudaMemcpy(addresses, d_out, sizeof addresses, cudaMemcpyDeviceToHost);
    ok &= check_true(addresses[0] % 16 == 0, "__shared__ float4[3] at %#llx: not 16-byte aligned", addresses[0]);
    ok &= check_true(addresses[1] % 16 == 0, "__shared__ __align__(16) float[5] at %#llx: not 16-byte aligned",
                     addresses[1]);
    ok &= check_true(addresses[2] % 256 == 0, "dynamic shared memory at %#llx: not 256-byte aligned", addresses[2]);
    for (int t = 0; t < n_threads; t++) {
        ok &= check_true(addresses[3 + t] % 16 == 0, "thread %d's local float4 at %#llx: not 16-byte aligned", t,
                         addresses[3 + t]);
        ok &= check_true(addresses[3 + n_threads + t] % 8 == 0, "thread %d's local float2 at %#llx: not 8-byte "
                         "aligned", t, addresses[3 + n_threads + t]);
    }
    for (size_t i = 0; i < COUNT_OF(sizes); i++) {
        cudaFree(buffers[i]);
    }
    cudaFree(d_out);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Reads x[offset .. offset+3] as one float4: a 16-byte access, so x + offset must be 16-byte aligned. */
__global__ void load_float4_at(const float *x, int offset, float *out)
{
    const float4 v = *reinterpret_cast<const float4 *>(x + offset); /* BUG when offset % 4 != 0 */
    out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

/* Writes (1, 2) to x[offset], x[offset+1] as one float2: x + offset must be 8-byte aligned. */
__global__ void store_float2_at(float *x, int offset)
{
    if (threadIdx.x == 0) {
        *reinterpret_cast<float2 *>(x + offset) = make_float2(1.0f, 2.0f); /* BUG when offset is odd */
    }
}

/* One misaligned launch: cudaErrorMisalignedAddress (sticky, as on a GPU) and a report naming the kernel,
 * the line of the access, the type and the address. */
static bool expect_misaligned(const char *kernel, const char *type, const void *address)
{
    bool ok = expect_error(cudaGetLastError(), cudaErrorMisalignedAddress, kernel, "misaligned address");
    char address_text[32];
    snprintf(address_text, sizeof address_text, "%p", address);
    const char *message = cusimLastErrorMessage();
    ok &= check_true(strstr(message, "test_cusim.cu:") != NULL, "the report names the line: %s", message);
    ok &= check_true(strstr(message, kernel) != NULL, "the report names the kernel %s: %s", kernel, message);
    ok &= check_true(strstr(message, type) != NULL, "the report names the type %s: %s", type, message);
    ok &= check_true(strstr(message, address_text) != NULL, "the report gives the address %s: %s", address_text,
                     message);
    ok &= check_true(cudaDeviceSynchronize() == cudaErrorMisalignedAddress, "and the error is sticky");
    cudaDeviceReset();
    return ok;
}

/* Under ASan + UBSan (COURSE_SANITIZE) the first misaligned load stops the program with UBSan's report
 * naming this file and line (CTest checks for that report). */
static int test_bad_misaligned_vector(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    float *d_x, *d_out;
    cudaMalloc(&d_x, 64 * sizeof(float));
    cudaMalloc(&d_out, 32 * sizeof(float));
    cudaMemset(d_x, 0, 64 * sizeof(float));
    load_float4_at<<<1, 32>>>(d_x, 4, d_out); /* 16 bytes in: aligned */
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "aligned float4 load: %s", cusimLastErrorMessage());
    store_float2_at<<<1, 32>>>(d_x, 2); /* 8 bytes in: aligned */
    ok &= check_true(cudaGetLastError() == cudaSuccess, "aligned float2 store: %s", cusimLastErrorMessage());
    load_float4_at<<<1, 32>>>(d_x, 1, d_out);
    ok &= expect_misaligned("load_float4_at", "float4", d_x + 1);
    store_float2_at<<<1, 32>>>(d_x, 3);
    ok &= expect_misaligned("store_float2_at", "float2", d_x + 3);
    cudaFree(d_x);
    cudaFree(d_out);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Speed: a 256^3 shared-memory tiled SGEMM must take about a second, not tens of seconds -------- */

#define TILE 16
__global__ void sgemm_tiled(const float *A, const float *B, float *C, int n)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    int row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    for (int t = 0; t < n; t += TILE) {
        As[threadIdx.y][threadIdx.x] = A[row * n + t + threadIdx.x];
        Bs[threadIdx.y][threadIdx.x] = B[(t + threadIdx.y) * n + col];
        __syncthreads();
        for (int k = 0; k < TILE; k++) {
            acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
        }
        __syncthreads();
    }
    C[row * n + col] = acc;
}

static int test_sgemm_256(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    enum { N = 256 };
    static float A[N * N], B[N * N], C[N * N], want[N * N];
    Rng rng;
    rng_seed(&rng, 7, 3);
    for (int i = 0; i < N * N; i++) {
        A[i] = rng_uniform_range(&rng, -1.0f, 1.0f);
        B[i] = rng_uniform_range(&rng, -1.0f, 1.0f);
    }
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < N; k++) {
                s += (double)A[i * N + k] * B[k * N + j];
            }
            want[i * N + j] = (float)s;
        }
    }
    float *dA, *dB, *dC;
    cudaMalloc(&dA, sizeof A);
    cudaMalloc(&dB, sizeof B);
    cudaMalloc(&dC, sizeof C);
    cudaMemcpy(dA, A, sizeof A, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, B, sizeof B, cudaMemcpyHostToDevice);
    double t0 = timer_seconds();
    sgemm_tiled<<<dim3(N / TILE, N / TILE), dim3(TILE, TILE)>>>(dA, dB, dC, N);
    double seconds = timer_seconds() - t0;
    bool ok = check_true(cudaGetLastError() == cudaSuccess, "launch failed: %s", cusimLastErrorMessage());
    cudaMemcpy(C, dC, sizeof C, cudaMemcpyDeviceToHost);
    /* float32 sums of 256 products of values in [-1, 1]: ~1e-5 absolute error */
    size_t shape[2] = {N, N};
    ok &= check_close("sgemm_tiled 256^3", C, want, (size_t)N * N, shape, 2, 1e-4, 1e-4);
    printf("simulated 256x256x256 tiled SGEMM (%d blocks of %d threads, %d barriers each): %.3f s\n",
           (N / TILE) * (N / TILE), TILE * TILE, 2 * N / TILE, seconds);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- cuBLAS ---------------------------------------------------------------------------------------- */

static int test_cublas_sgemm(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    cublasHandle_t handle;
    bool ok = check_true(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
    ok &= check_true(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH) == CUBLAS_STATUS_SUCCESS, "math mode");
    void *workspace;
    cudaMalloc(&workspace, 1 << 20);
    ok &= check_true(cublasSetWorkspace(handle, workspace, 1 << 20) == CUBLAS_STATUS_SUCCESS, "a workspace");
    ok &= check_true(cublasSetWorkspace(handle, NULL, 1 << 20) == CUBLAS_STATUS_INVALID_VALUE,
                     "a NULL workspace of 1 MiB is refused");
    const int m = 7, n = 5, k = 3;
    Rng rng;
    rng_seed(&rng, 11, 4);
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            /* Column-major storage with padded leading dimensions. */
            int lda = (ta ? k : m) + 2, ldb = (tb ? n : k) + 1, ldc = m + 3;
            int cols_a = ta ? m : k, cols_b = tb ? k : n;
            float A[16 * 16], B[16 * 16], C[16 * 16], want[16 * 16];
            for (int i = 0; i < 256; i++) {
                A[i] = rng_uniform_range(&rng, -1, 1);
                B[i] = rng_uniform_range(&rng, -1, 1);
                C[i] = rng_uniform_range(&rng, -1, 1);
            }
            const float alpha = 1.5f, beta = -0.5f;
            memcpy(want, C, sizeof C);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) {
                        double a = ta ? A[p + i * lda] : A[i + p * lda];
                        double b = tb ? B[j + p * ldb] : B[p + j * ldb];
                        s += a * b;
                    }
                    want[i + j * ldc] = (float)(alpha * s + beta * C[i + j * ldc]);
                }
            }
            float *dA, *dB, *dC;
            cudaMalloc(&dA, sizeof A);
            cudaMalloc(&dB, sizeof B);
            cudaMalloc(&dC, sizeof C);
            cudaMemcpy(dA, A, (size_t)lda * cols_a * sizeof(float), cudaMemcpyHostToDevice);
            cudaMemcpy(dB, B, (size_t)ldb * cols_b * sizeof(float), cudaMemcpyHostToDevice);
            cudaMemcpy(dC, C, sizeof C, cudaMemcpyHostToDevice);
            cublasStatus_t status = cublasSgemm(handle, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                m, n, k, &alpha, dA, lda, dB, ldb, &beta, dC, ldc);
            ok &= check_true(status == CUBLAS_STATUS_SUCCESS, "cublasSgemm: %s", cublasGetStatusName(status));
            cudaMemcpy(C, dC, sizeof C, cudaMemcpyDeviceToHost);
            char name[64];
            snprintf(name, sizeof name, "cublasSgemm %s%s", ta ? "T" : "N", tb ? "T" : "N");
            ok &= check_close(name, C, want, (size_t)ldc * n, NULL, 0, 1e-5, 1e-5);
            cudaFree(dA);
            cudaFree(dB);
            cudaFree(dC);
        }
    }
    /* beta = 0: C is not read, so NaN in it must not leak into the result. */
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 0, 0, 1}, C[4] = {NAN, NAN, NAN, NAN};
    const float one = 1.0f, zero = 0.0f;
    ok &= check_true(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 2, B, 2, &zero, C, 2) ==
                         CUBLAS_STATUS_SUCCESS,
                     "beta = 0 call");
    ok &= check_close("beta = 0 ignores C", C, A, 4, NULL, 0, 0, 0);
    ok &= check_true(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 1, B, 2, &zero, C, 2) ==
                         CUBLAS_STATUS_INVALID_VALUE,
                     "lda < m must be CUBLAS_STATUS_INVALID_VALUE");
    ok &= check_true(cublasDestroy(handle) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
    cudaFree(workspace);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- CUDA Graphs by stream capture ------------------------------------------------------------------- */

__global__ void add_to_all(int *data, int n, int amount)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        data[i] += amount;
    }
}

/* data[i] = data[i] * counter[0]; counter[0] += 1 (by the block's thread 0, after everyone has read it). */
__global__ void scale_by_counter(int *data, int n, int *counter)
{
    __shared__ int factor;
    if (threadIdx.x == 0) {
        factor = counter[0];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        data[i] *= factor;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        counter[0] += 1;
    }
}

/* What was enqueued on the captured stream runs at each cudaGraphLaunch, not at capture, in capture order,
 * with the arguments it had at capture and the memory as it is at launch. */
static int test_graph_capture_replay(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    enum { N = 37 };
    int host[N], back[N], *d_data, *d_counter, *pinned;
    for (int i = 0; i < N; i++) {
        host[i] = i - 5;
    }
    cudaMalloc(&d_data, sizeof host);
    cudaMalloc(&d_counter, sizeof(int));
    cudaMallocHost(&pinned, sizeof host);
    cudaMemcpy(d_data, host, sizeof host, cudaMemcpyHostToDevice);
    const int one = 1;
    cudaMemcpy(d_counter, &one, sizeof one, cudaMemcpyHostToDevice);
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    cublasHandle_t handle;
    cublasCreate(&handle);
    cublasSetStream(handle, stream);
    float a[6] = {1, 2, 3, 4, 5, 6}, *d_a, *d_c, c[4];
    cudaMalloc(&d_a, sizeof a);
    cudaMalloc(&d_c, sizeof c);
    cudaMemcpy(d_a, a, sizeof a, cudaMemcpyHostToDevice);

    bool ok = check_true(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal) == cudaSuccess, "begin capture");
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(stream, &status);
    ok &= check_true(status == cudaStreamCaptureStatusActive, "the stream reports it is capturing");
    add_to_all<<<2, 8, 0, stream>>>(d_data, N, 3);
    scale_by_counter<<<1, 16, 0, stream>>>(d_data, N, d_counter);
    const float alpha = 1.0f, beta = 0.0f;
    /* C (2x2) = A (2x3) A^T, column-major A with lda 2 */
    ok &= check_true(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, 2, 2, 3, &alpha, d_a, 2, d_a, 2, &beta, d_c, 2) ==
                         CUBLAS_STATUS_SUCCESS,
                     "cublasSgemm is captured");
    cudaMemcpyAsync(pinned, d_data, sizeof host, cudaMemcpyDeviceToHost, stream);
    cudaGraph_t graph = NULL;
    ok &= check_true(cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph != NULL, "end capture");
    size_t nodes = 0;
    cudaGraphGetNodes(graph, NULL, &nodes);
    ok &= check_true(nodes == 4, "4 nodes captured (2 kernels, 1 SGEMM, 1 copy); got %zu", nodes);
    /* Nothing ran during the capture. */
    cudaMemcpy(back, d_data, sizeof back, cudaMemcpyDeviceToHost);
    ok &= check_true(memcmp(back, host, sizeof host) == 0, "capture does not run the kernels");
    int counter = 0;
    cudaMemcpy(&counter, d_counter, sizeof counter, cudaMemcpyDeviceToHost);
    ok &= check_true(counter == 1, "counter untouched by the capture (%d)", counter);

    cudaGraphExec_t exec = NULL;
    ok &= check_true(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess, "instantiate");
    int want[N];
    memcpy(want, host, sizeof want);
    for (int launch = 1; launch <= 3; launch++) {
        ok &= check_true(cudaGraphLaunch(exec, stream) == cudaSuccess, "launch %d", launch);
        cudaStreamSynchronize(stream);
        for (int i = 0; i < N; i++) {
            want[i] = (want[i] + 3) * launch; /* the counter advanced by the graph itself: 1, 2, 3 */
        }
        ok &= check_true(memcmp(pinned, want, sizeof want) == 0, "launch %d: the replayed kernels and copy", launch);
    }
    cudaMemcpy(c, d_c, sizeof c, cudaMemcpyDeviceToHost);
    const float c_want[4] = {1 * 1 + 3 * 3 + 5 * 5, 1 * 2 + 3 * 4 + 5 * 6, /* column-major (2, 2) */
                             1 * 2 + 3 * 4 + 5 * 6, 2 * 2 + 4 * 4 + 6 * 6};
    ok &= check_close("the replayed SGEMM", c, c_want, 4, NULL, 0, 0, 0);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cublasDestroy(handle);
    cudaStreamDestroy(stream);
    cudaFree(d_data);
    cudaFree(d_counter);
    cudaFree(d_a);
    cudaFree(d_c);
    cudaFreeHost(pinned);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Work on the legacy default stream during a capture is refused, named, and invalidates the capture; so is
 * a synchronous copy. */
static int test_bad_capture_legacy_stream(const TestContext *ctx)
{
    (void)ctx;
    fresh_device();
    int *d_data;
    cudaMalloc(&d_data, 8 * sizeof(int));
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    cublasHandle_t handle;
    cublasCreate(&handle); /* its stream stays the legacy one */
    float one = 1.0f, zero = 0.0f, *d_x;
    cudaMalloc(&d_x, sizeof one);
    bool ok = true;
    for (int which = 0; which < 3; which++) {
        cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal);
        add_to_all<<<1, 8, 0, stream>>>(d_data, 8, 1);
        if (which == 0) {
            add_to_all<<<1, 8>>>(d_data, 8, 1); /* forgot the stream */
            ok &= expect_error(cudaGetLastError(), cudaErrorStreamCaptureImplicit, "a launch on the legacy stream",
                               "add_to_all on the legacy default stream");
            ok &= check_true(strstr(cusimLastErrorMessage(), "test_cusim.cu:") != NULL,
                             "the message names the launch's line: %s", cusimLastErrorMessage());
        } else if (which == 1) {
            int host[8];
            ok &= expect_error(cudaMemcpy(host, d_data, sizeof host, cudaMemcpyDeviceToHost),
                               cudaErrorStreamCaptureUnsupported, "a synchronous copy", "cudaMemcpy (synchronous)");
        } else {
            ok &= check_true(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, d_x, 1, d_x, 1, &zero, d_x,
                                         1) == CUBLAS_STATUS_EXECUTION_FAILED,
                             "cuBLAS on the legacy stream during a capture fails");
            ok &= check_true(strstr(cusimLastErrorMessage(), "cublasSgemm on the legacy default stream") != NULL,
                             "the message names cublasSgemm: %s", cusimLastErrorMessage());
        }
        cudaGraph_t graph = (cudaGraph_t)d_data; /* must be overwritten with NULL */
        ok &= expect_error(cudaStreamEndCapture(stream, &graph), cudaErrorStreamCaptureInvalidated, "end capture",
                           "invalidated");
        ok &= check_true(graph == NULL, "no graph from an invalidated capture");
        cudaGetLastError();
    }
    cublasDestroy(handle);
    cudaStreamDestroy(stream);
    cudaFree(d_x);
    cudaFree(d_data);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase cases[] = {
    {"grid.1d", test_grid_1d},
    {"grid.2d", test_grid_2d},
    {"grid.3d", test_grid_3d},
    {"shared.static_dynamic", test_shared_static_dynamic},
    {"shared.nan_fill", test_shared_nan_fill},
    {"atomics", test_atomics},
    {"warp_ops", test_warp_ops},
    {"launch_limits", test_launch_limits},
    {"host_api", test_host_api},
    {"device_reset", test_device_reset},
    {"sgemm_256", test_sgemm_256},
    {"cublas_sgemm", test_cublas_sgemm},
    {"graph.capture_replay", test_graph_capture_replay},
    {"bad.capture_legacy_stream", test_bad_capture_legacy_stream},
    {"bad.missing_syncthreads", test_bad_missing_syncthreads},
    {"bad.barrier_in_branch", test_bad_barrier_in_branch},
    {"bad.different_barriers", test_bad_different_barriers},
    {"bad.early_return", test_bad_early_return},
    {"bad.shuffle_mask_without_caller", test_bad_shuffle_mask_without_caller},
    {"bad.shuffle_source_outside_mask", test_bad_shuffle_source_outside_mask},
    {"bad.shuffle_lane_returned", test_bad_shuffle_lane_returned},
    {"bad.out_of_bounds", test_bad_out_of_bounds},
    {"asan.shared_out_of_bounds", test_asan_shared_out_of_bounds},
    {"alignment.guarantees", test_alignment_guarantees},
    {"bad.misaligned_vector", test_bad_misaligned_vector},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, COUNT_OF(cases));
}
