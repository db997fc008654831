/* cusim.h — the CUDA simulator: runs the course's ordinary CUDA C (.cu) files on the CPU.
 *
 * How a .cu file becomes a CPU program (cmake/CourseCuda.cmake does all of this; nothing is needed in the
 * .cu file itself):
 *   1. cusim_translate (common/cusim/cusim_translate.c) rewrites the few pieces of CUDA syntax that are not
 *      C++: a launch `kernel<<<grid, block, smem>>>(args)` becomes
 *      `kernel | cusim::launch_config("kernel", __FILE__, __LINE__, grid, block, smem)(args)`;
 *      `__shared__ T name[N];` inside a function becomes a static variable plus a call that NaN-fills it at
 *      the start of every block; `extern __shared__ T name[];` becomes a pointer to the block's dynamic
 *      shared memory. Line numbers are kept (a #line directive names the original file).
 *   2. The result is compiled as C++17 by the host compiler with `-include cusim.h` (this file), which
 *      defines __global__, threadIdx, dim3, __syncthreads, the warp functions, atomics, and the runtime API.
 *   3. It is linked with cusim (cusim.cpp: the scheduler, fibers and host API) and, if it uses cuBLAS, with
 *      cusim's CPU cuBLAS (include/cublas_v2.h).
 *
 * The model: every CUDA thread of a block is a fiber (its own small stack); blocks run one after another;
 * a thread runs until it reaches __syncthreads, a warp operation (__shfl*_sync, __syncwarp, __ballot_sync...)
 * or returns, and only then does another thread of the block run. Thread order is chosen by the environment
 * variable CUSIM_ORDER=forward|reverse|random[:SEED] (default forward), so that a missing barrier changes
 * the result in some order. Misuse (a barrier reached by part of a block, a bad shuffle mask, too many
 * threads or too much shared memory, a write past a cudaMalloc'ed buffer, a float2/float4 access at an address
 * that is not a multiple of 8/16) is printed on stderr with the file and line and returned to the host as a
 * CUDA error, like a real launch failure.
 *
 * Alignment: as on a GPU, cudaMalloc and dynamic shared memory are 256-byte aligned, a __shared__ array is
 * aligned to its type (or its __align__), and a kernel's local variables are aligned to their type (each
 * fiber's stack is 16-byte aligned as the x86-64 ABI requires). A misaligned vector access, which a GPU
 * reports as cudaErrorMisalignedAddress, is found by compiling the simulated code with -fsanitize=alignment:
 * the compiler checks every access's alignment, and cusim.cpp (not the UBSan runtime) provides the function
 * it calls on a misaligned one, which reports the kernel, file:line and address and fails the launch.
 *
 * Sanitizers: with -DCOURSE_SANITIZE=ON (AddressSanitizer) the fibers are announced to ASan and device
 * buffers are exact heap blocks, so an out-of-bounds access in a kernel stops at its line. With
 * -DCOURSE_CUSIM_TSAN=ON the kernels are built with ThreadSanitizer and every CUDA thread is a TSan fiber
 * synchronised only by barriers and warp operations: a race between threads of a block is reported.
 *
 * The simulator runs on one OS thread; nothing here is thread-safe. It says nothing about speed.
 */
#ifndef CUSIM_H
#define CUSIM_H

#ifndef __cplusplus
#error "cusim.h is for C++ (the simulator compiles .cu files as C++17)"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define __CUSIM__ 1
#ifndef CUDART_VERSION
#define CUDART_VERSION 13000
#endif

/* ---- Function and variable qualifiers: all code is host code here. ---- */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
/* The translator rewrites `__shared__` declarations inside functions; this covers any it did not see. */
#define __shared__ static

/* ---- Vector types ---- */
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct __attribute__((aligned(8))) float2 {
    float x, y;
};
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
struct __attribute__((aligned(8))) int2 {
    int x, y;
};
struct __attribute__((aligned(16))) int4 {
    int x, y, z, w;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline int2 make_int2(int x, int y) { return int2{x, y}; }
static inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
static inline dim3 make_dim3(unsigned x, unsigned y, unsigned z) { return dim3(x, y, z); }

/* The built-in variables: the scheduler sets them before it resumes a thread. */
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
static constexpr int warpSize = 32;

/* ---- Runtime API types (values as in CUDA's driver_types.h) ---- */
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalState = 401,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorAssert = 710,
    cudaErrorMisalignedAddress = 716,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureImplicit = 906,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrClockRate = 13,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrMemoryClockRate = 36,
    cudaDevAttrGlobalMemoryBusWidth = 37,
    cudaDevAttrL2CacheSize = 38,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

/* The fields of CUDA 13's cudaDeviceProp that the course uses (removed fields such as clockRate and
 * memoryClockRate are absent here too, so code that compiles against the simulator compiles with nvcc). */
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    size_t memPitch;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    size_t totalConstMem;
    int major;
    int minor;
    int multiProcessorCount;
    int l2CacheSize;
    int maxThreadsPerMultiProcessor;
    size_t sharedMemPerMultiprocessor;
    int memoryBusWidth;
    size_t sharedMemPerBlockOptin;
};

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
typedef struct CUgraphNode_st *cudaGraphNode_t;
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};

/* ---- Host API ---- */
cudaError_t cudaMalloc(void **ptr, size_t size);
template <class T>
static inline cudaError_t cudaMalloc(T **ptr, size_t size)
{
    return cudaMalloc(reinterpret_cast<void **>(ptr), size);
}
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
template <class T>
static inline cudaError_t cudaMallocHost(T **ptr, size_t size)
{
    return cudaMallocHost(reinterpret_cast<void **>(ptr), size);
}
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream = 0);
/* __constant__ and __device__ variables are ordinary globals here: the symbol copies are plain copies. */
template <class T>
static inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                                             cudaMemcpyKind kind = cudaMemcpyHostToDevice)
{
    (void)kind;
    if (offset + count > sizeof(T)) {
        return cudaErrorInvalidValue;
    }
    std::memcpy(reinterpret_cast<unsigned char *>(const_cast<T *>(&symbol)) + offset, src, count);
    return cudaSuccess;
}
template <class T>
static inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count, size_t offset = 0,
                                               cudaMemcpyKind kind = cudaMemcpyDeviceToHost)
{
    (void)kind;
    if (offset + count > sizeof(T)) {
        return cudaErrorInvalidValue;
    }
    std::memcpy(dst, reinterpret_cast<const unsigned char *>(&symbol) + offset, count);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *dst, int value, size_t count);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream = 0);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value);
template <class F>
static inline cudaError_t cudaFuncSetAttribute(F *func, cudaFuncAttribute attr, int value)
{
    return cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t event);
/* CUDA Graphs by stream capture. Between cudaStreamBeginCapture(s) and cudaStreamEndCapture(s), what is
 * enqueued on s (kernels, cudaMemcpyAsync, cudaMemsetAsync, cuBLAS calls on a handle set to s) is recorded
 * instead of run; cudaGraphLaunch replays the recorded operations in order, with the arguments they had at
 * capture. As on a GPU (any capture mode is treated as cudaStreamCaptureModeGlobal), these are refused while
 * a capture is under way and invalidate it: work on the legacy default stream (0), and the calls that wait
 * or allocate (cudaMemcpy, cudaMemset, cudaMalloc, cudaFree, the synchronize calls). The simulator records
 * one stream's capture at a time and no event nodes. */
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
/* nodes == NULL: *count gets the number of nodes. The node handles are not usable for anything else here. */
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *count);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

/* ---- Simulator-only API (for the simulator's own tests; chapter code never calls these) ---- */
/* Thread order for the following launches: "forward", "reverse", "random" or "random:SEED". Returns 0, or
 * -1 for a spec it does not understand. */
int cusimSetOrder(const char *spec);
/* The message of the last error the simulator detected (empty if none). */
const char *cusimLastErrorMessage(void);
/* How many errors the simulator has detected so far in this process. */
int cusimErrorCount(void);

/* ---- Device functions: barriers, warp operations ---- */
namespace cusim {

struct LaunchConfig {
    const char *kernel_name;
    const char *file;
    int line;
    dim3 grid, block;
    size_t dynamic_shared;
    cudaStream_t stream;
};

/* Runs `body(context)` as every thread of every block of the launch; returns the launch's error. */
cudaError_t launch(const LaunchConfig &config, const void *kernel, void (*body)(void *), void *context);

/* Stream capture (see cudaStreamBeginCapture): what to do with an operation enqueued on `stream`. */
enum CaptureAction {
    CAPTURE_RUN_NOW, /* no capture under way, or another created stream: run it now */
    CAPTURE_RECORD, /* `stream` is being captured: give the operation to capture_record */
    CAPTURE_REFUSED, /* refused and reported (the legacy stream during a capture); the capture is invalidated */
};
CaptureAction capture_action(cudaStream_t stream, const char *what, const char *file, int line); /* file may be NULL */
/* Adds an operation to the graph being captured; `run` is called at each cudaGraphLaunch. */
void capture_record(const char *what, std::function<cudaError_t()> run);

void syncthreads(const char *file, int line);
enum WarpOp { WARP_SYNC, SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, BALLOT, ANY, ALL, MATCH_ANY };
/* One warp-wide operation by the calling thread: waits for every lane of `mask`, then returns its result
 * (the shuffled value's bits, or the ballot). */
uint64_t warp_op(WarpOp op, const char *file, int line, unsigned mask, uint64_t value, int lane_arg, int width);
unsigned active_mask(void);
void *dynamic_shared(void);
void shared_declared(void *address, size_t size, const char *file, int line);
[[noreturn]] void trap(const char *file, int line, const char *what);

template <class T>
static inline uint64_t to_bits(T v)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move values of at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    return bits;
}
template <class T>
static inline T from_bits(uint64_t bits)
{
    T v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

/* The warp functions take a default last argument (width, mask); a macro cannot, so each macro expands to
 * an object carrying the call site whose member function takes the user's arguments. */
struct WarpSite {
    const char *file;
    int line;
    template <class T>
    T shfl(unsigned mask, T v, int src_lane, int width = 32) const
    {
        return from_bits<T>(warp_op(SHFL_IDX, file, line, mask, to_bits(v), src_lane, width));
    }
    template <class T>
    T shfl_up(unsigned mask, T v, unsigned delta, int width = 32) const
    {
        return from_bits<T>(warp_op(SHFL_UP, file, line, mask, to_bits(v), (int)delta, width));
    }
    template <class T>
    T shfl_down(unsigned mask, T v, unsigned delta, int width = 32) const
    {
        return from_bits<T>(warp_op(SHFL_DOWN, file, line, mask, to_bits(v), (int)delta, width));
    }
    template <class T>
    T shfl_xor(unsigned mask, T v, int lane_mask, int width = 32) const
    {
        return from_bits<T>(warp_op(SHFL_XOR, file, line, mask, to_bits(v), lane_mask, width));
    }
    void syncwarp(unsigned mask = 0xffffffffu) const { warp_op(WARP_SYNC, file, line, mask, 0, 0, 32); }
    unsigned ballot(unsigned mask, int predicate) const
    {
        return (unsigned)warp_op(BALLOT, file, line, mask, predicate != 0, 0, 32);
    }
    int any(unsigned mask, int predicate) const { return warp_op(ANY, file, line, mask, predicate != 0, 0, 32) != 0; }
    int all(unsigned mask, int predicate) const { return warp_op(ALL, file, line, mask, predicate != 0, 0, 32) != 0; }
};

/* ---- Launch: `kernel | launch_config(...)(args...)` ---- */
template <class... A>
struct PendingLaunch {
    LaunchConfig config;
    std::tuple<A...> args;
};

struct LaunchConfigBuilder {
    LaunchConfig config;
    template <class... A>
    PendingLaunch<std::decay_t<A>...> operator()(A &&...args) const
    {
        return PendingLaunch<std::decay_t<A>...>{config, std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)};
    }
};

static inline LaunchConfigBuilder launch_config(const char *kernel_name, const char *file, int line, dim3 grid,
                                                dim3 block, size_t dynamic_shared = 0, cudaStream_t stream = 0)
{
    return LaunchConfigBuilder{LaunchConfig{kernel_name, file, line, grid, block, dynamic_shared, stream}};
}

template <class... P>
struct KernelCall {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> args; /* converted once to the kernel's parameter types */
    /* Every simulated thread calls the kernel with its own copy of the arguments, as on a GPU. */
    static void run(void *context)
    {
        KernelCall *call = static_cast<KernelCall *>(context);
        std::apply(call->kernel, call->args);
    }
};

template <class... P, class... A>
void operator|(void (*kernel)(P...), PendingLaunch<A...> &&pending)
{
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    KernelCall<P...> call{kernel, std::tuple<std::decay_t<P>...>(std::move(pending.args))};
    const LaunchConfig config = pending.config;
    const void *address = reinterpret_cast<const void *>(kernel);
    switch (capture_action(config.stream, config.kernel_name, config.file, config.line)) {
    case CAPTURE_RUN_NOW:
        launch(config, address, &KernelCall<P...>::run, &call);
        break;
    case CAPTURE_RECORD: {
        /* A graph node keeps the launch's configuration and a copy of its arguments, as CUDA's does. */
        auto saved = std::make_shared<KernelCall<P...>>(std::move(call));
        capture_record(config.kernel_name, [config, address, saved]() {
            return launch(config, address, &KernelCall<P...>::run, saved.get());
        });
        break;
    }
    case CAPTURE_REFUSED:
        break;
    }
}

} /* namespace cusim */

#define __syncthreads() cusim::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) cusim::WarpSite{__FILE__, __LINE__}.syncwarp(__VA_ARGS__)
#define __shfl_sync(...) cusim::WarpSite{__FILE__, __LINE__}.shfl(__VA_ARGS__)
#define __shfl_up_sync(...) cusim::WarpSite{__FILE__, __LINE__}.shfl_up(__VA_ARGS__)
#define __shfl_down_sync(...) cusim::WarpSite{__FILE__, __LINE__}.shfl_down(__VA_ARGS__)
#define __shfl_xor_sync(...) cusim::WarpSite{__FILE__, __LINE__}.shfl_xor(__VA_ARGS__)
#define __ballot_sync(...) cusim::WarpSite{__FILE__, __LINE__}.ballot(__VA_ARGS__)
#define __any_sync(...) cusim::WarpSite{__FILE__, __LINE__}.any(__VA_ARGS__)
#define __all_sync(...) cusim::WarpSite{__FILE__, __LINE__}.all(__VA_ARGS__)
#define __activemask() cusim::active_mask()
#define __trap() cusim::trap(__FILE__, __LINE__, "__trap()")
/* One OS thread runs every simulated thread, and switches only at barriers: fences have nothing to do. */
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

/* ---- Atomics: each runs to completion before any other simulated thread can run, so plain code is
 * atomic here. Under ThreadSanitizer they are real atomic operations, which TSan knows not to report. ---- */
#if defined(__SANITIZE_THREAD__)
#define CUSIM_ATOMIC_RMW(name, T, expr) \
    static inline T name(T *address, T val) \
    { \
        T old, desired; \
        __atomic_load(address, &old, __ATOMIC_RELAXED); \
        do { \
            desired = (expr); \
        } while (!__atomic_compare_exchange(address, &old, &desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)); \
        return old; \
    }
#else
#define CUSIM_ATOMIC_RMW(name, T, expr) \
    static inline T name(T *address, T val) \
    { \
        T old = *address; \
        *address = (expr); \
        return old; \
    }
#endif
CUSIM_ATOMIC_RMW(atomicAdd, int, old + val)
CUSIM_ATOMIC_RMW(atomicAdd, unsigned int, old + val)
CUSIM_ATOMIC_RMW(atomicAdd, unsigned long long, old + val)
CUSIM_ATOMIC_RMW(atomicAdd, float, old + val)
CUSIM_ATOMIC_RMW(atomicAdd, double, old + val)
CUSIM_ATOMIC_RMW(atomicSub, int, old - val)
CUSIM_ATOMIC_RMW(atomicSub, unsigned int, old - val)
CUSIM_ATOMIC_RMW(atomicExch, int, val)
CUSIM_ATOMIC_RMW(atomicExch, unsigned int, val)
CUSIM_ATOMIC_RMW(atomicExch, unsigned long long, val)
CUSIM_ATOMIC_RMW(atomicExch, float, val)
CUSIM_ATOMIC_RMW(atomicMax, int, old > val ? old : val)
CUSIM_ATOMIC_RMW(atomicMax, unsigned int, old > val ? old : val)
CUSIM_ATOMIC_RMW(atomicMax, long long, old > val ? old : val)
CUSIM_ATOMIC_RMW(atomicMax, unsigned long long, old > val ? old : val)
CUSIM_ATOMIC_RMW(atomicMin, int, old < val ? old : val)
CUSIM_ATOMIC_RMW(atomicMin, unsigned int, old < val ? old : val)
CUSIM_ATOMIC_RMW(atomicMin, long long, old < val ? old : val)
CUSIM_ATOMIC_RMW(atomicMin, unsigned long long, old < val ? old : val)
CUSIM_ATOMIC_RMW(atomicAnd, int, old & val)
CUSIM_ATOMIC_RMW(atomicAnd, unsigned int, old & val)
CUSIM_ATOMIC_RMW(atomicOr, int, old | val)
CUSIM_ATOMIC_RMW(atomicOr, unsigned int, old | val)
CUSIM_ATOMIC_RMW(atomicXor, int, old ^ val)
CUSIM_ATOMIC_RMW(atomicXor, unsigned int, old ^ val)
CUSIM_ATOMIC_RMW(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
#undef CUSIM_ATOMIC_RMW
#if defined(__SANITIZE_THREAD__)
#define CUSIM_ATOMIC_CAS(T) \
    static inline T atomicCAS(T *address, T compare, T val) \
    { \
        __atomic_compare_exchange(address, &compare, &val, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED); \
        return compare; /* the old value, whether or not it matched */ \
    }
#else
#define CUSIM_ATOMIC_CAS(T) \
    static inline T atomicCAS(T *address, T compare, T val) \
    { \
        T old = *address; \
        if (old == compare) { \
            *address = val; \
        } \
        return old; \
    }
#endif
CUSIM_ATOMIC_CAS(int)
CUSIM_ATOMIC_CAS(unsigned int)
CUSIM_ATOMIC_CAS(unsigned long long)
CUSIM_ATOMIC_CAS(unsigned short)
#undef CUSIM_ATOMIC_CAS

/* ---- Intrinsics and device math the course uses ---- */
template <class T>
static inline T __ldg(const T *p)
{
    return *p;
}
/* __expf, __logf, __powf: glibc's <math.h> already declares these names (as expf, logf, powf). */
static inline float __fdividef(float x, float y) { return x / y; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __int_as_float(int x) { return cusim::from_bits<float>((uint32_t)x); }
static inline int __float_as_int(float x) { return (int)(uint32_t)cusim::to_bits(x); }
static inline float __uint_as_float(unsigned x) { return cusim::from_bits<float>(x); }
static inline unsigned __float_as_uint(float x) { return (unsigned)cusim::to_bits(x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
static inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
static inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }

#endif
