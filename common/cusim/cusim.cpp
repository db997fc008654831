/* cusim.cpp — the CUDA simulator's runtime: fibers, the block scheduler, barrier and warp checks, and the
 * host API (memory, copies, errors, events, device properties). See cusim.h for the model.
 *
 * Fibers. Each simulated thread runs on its own stack (CUSIM_STACK_KB, default 64). Switching between a
 * thread and the scheduler must not make a system call (swapcontext calls sigprocmask, which would make a
 * 256^3 tiled SGEMM take tens of seconds), so on x86-64 a ten-instruction assembly routine saves the
 * callee-saved registers and swaps stack pointers. Elsewhere the portable ucontext fallback is used.
 * Stacks are allocated once (with a guard page below each, so an overflow faults instead of corrupting)
 * and reused by every block.
 *
 * AddressSanitizer: every switch is announced with __sanitizer_start_switch_fiber /
 * __sanitizer_finish_switch_fiber, so ASan knows which stack is live; device allocations are then exact
 * heap blocks, and an out-of-bounds access in a kernel is an ordinary heap-buffer-overflow report.
 */
#include "cusim.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstdarg>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CUSIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUSIM_ASAN 1
#endif
#endif
#ifdef CUSIM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* ThreadSanitizer mode (cmake -DCOURSE_CUSIM_TSAN=ON): the kernels are compiled with -fsanitize=thread, this
 * file is not (its bookkeeping is shared by every fiber and would be reported). It tells TSan that each
 * fiber is a thread of its own (__tsan_switch_to_fiber without synchronisation) and where CUDA orders
 * threads: __syncthreads and warp operations (release on arrival, acquire on leaving, with the objects
 * alternating between consecutive barriers so that a barrier never orders the phases after it), and the
 * end of a block before the next. Two threads of a block touching the same address with a write and no
 * barrier in between are then a reported data race. */
#ifdef CUSIM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(__x86_64__) && !defined(CUSIM_USE_UCONTEXT)
#define CUSIM_USE_UCONTEXT 1
#endif
#ifdef CUSIM_USE_UCONTEXT
#include <ucontext.h>
#endif

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

namespace cusim {
namespace {

/* ------------------------------------------------------------------------------------------------ */
/* Errors                                                                                            */

cudaError_t last_error = cudaSuccess; /* returned (and cleared) by cudaGetLastError */
cudaError_t sticky_error = cudaSuccess; /* a failed kernel: every later call returns it, as on a GPU */
char last_message[2048];
int error_count = 0;

__attribute__((format(printf, 2, 3))) cudaError_t report(cudaError_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "cusim: error: %s [%s]\n", last_message, cudaGetErrorName(code));
    error_count++;
    last_error = code;
    return code;
}

/* ------------------------------------------------------------------------------------------------ */
/* Device memory: every cudaMalloc block is NaN-filled (contents are undefined on a GPU) and, outside ASan,
 * surrounded by guard bytes that are checked after every launch and at cudaFree. Like CUDA's, the pointer
 * cudaMalloc returns is 256-byte aligned (a kernel may rely on that for its float2/float4 accesses).    */

constexpr size_t DEVICE_ALIGNMENT = 256;
#ifdef CUSIM_ASAN
constexpr size_t GUARD = 0; /* ASan's own redzones do the job, and see reads too */
#else
constexpr size_t GUARD = DEVICE_ALIGNMENT; /* a multiple of 256: raw + GUARD keeps raw's alignment */
#endif
constexpr unsigned char GUARD_BYTE = 0xA5;

struct Allocation {
    unsigned char *user; /* what cudaMalloc returned */
    size_t size;
    bool reported;
};
std::vector<Allocation> allocations;

Allocation *find_allocation(const void *p)
{
    const unsigned char *c = static_cast<const unsigned char *>(p);
    for (Allocation &a : allocations) {
        if (c >= a.user && c < a.user + (a.size ? a.size : 1)) {
            return &a;
        }
    }
    return nullptr;
}

/* Returns the first damaged guard byte's offset from the user block (negative: before it), or 0. */
long damaged_guard(const Allocation &a)
{
    for (size_t i = 0; i < GUARD; i++) {
        if (a.user[-(long)GUARD + (long)i] != GUARD_BYTE) {
            return -(long)GUARD + (long)i;
        }
    }
    for (size_t i = 0; i < GUARD; i++) {
        if (a.user[a.size + i] != GUARD_BYTE) {
            return (long)(a.size + i);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Fibers                                                                                            */

#ifdef CUSIM_ASAN
size_t stack_size = 256 * 1024; /* ASan's redzones make frames several times larger */
#else
size_t stack_size = 64 * 1024;
#endif

struct Fiber {
    unsigned char *stack; /* lowest usable address */
    size_t size;
#ifdef CUSIM_USE_UCONTEXT
    ucontext_t context;
#else
    void *sp;
#endif
    bool abandoned; /* left in the middle of a kernel (error): its ASan stack shadow needs a reset */
    unsigned char *dirty_from; /* ASan: frames from here to the top never returned (their redzones stay
                                  poisoned) and must be unpoisoned before the stack is reused */
#ifdef CUSIM_TSAN
    void *tsan_fiber;
#endif
};
/* A fixed pool (a block has at most 1024 threads): static storage, so that nothing is freed at exit
 * while LeakSanitizer still looks. */
Fiber fiber_pool[1024];
unsigned fiber_count = 0;

#ifdef CUSIM_USE_UCONTEXT
ucontext_t scheduler_context;
#else
void *scheduler_sp;
#endif

#ifdef CUSIM_ASAN
const void *main_stack_bottom;
size_t main_stack_size;
#endif
#ifdef CUSIM_TSAN
void *tsan_scheduler_fiber;
char tsan_block_sync[2]; /* block b's threads acquire [b & 1] at start and release [(b + 1) & 1] at end */
char tsan_barrier_sync[2];
char tsan_warp_sync[32][2];
unsigned tsan_block_number;
#endif

enum ThreadState { READY, AT_BARRIER, AT_WARP_OP, DONE };

struct Thread {
    uint3 index;
    unsigned linear; /* x + y*bx + z*bx*by: lanes and warps count in this order */
    ThreadState state;
    Fiber *fiber;
    /* Where it waits: barrier or warp operation. */
    const char *wait_file;
    int wait_line;
    WarpOp op;
    unsigned op_mask;
    uint64_t op_value;
    int op_arg, op_width;
    uint64_t op_result;
    unsigned barriers_passed, warp_ops_passed; /* (TSan: which of two sync objects this phase uses) */
};

struct LaunchState {
    const LaunchConfig *config;
    void (*body)(void *);
    void *context;
    std::vector<Thread> threads;
    unsigned block_threads;
    Thread *current;
    bool failed;
    cudaError_t failure;
    unsigned char *dynamic_shared;
    size_t dynamic_size;
    size_t static_shared;
    bool opted_in; /* cudaFuncSetAttribute raised this kernel's dynamic shared memory limit */
    std::vector<void *> shared_seen; /* static __shared__ variables already NaN-filled in this block */
};
LaunchState *active; /* the launch being run, or null on the host */

enum Order { FORWARD, REVERSE, RANDOM };
Order order = FORWARD;
uint64_t random_seed = 1;
uint64_t random_state = 1;
bool order_from_environment_done = false;

uint32_t next_random(void)
{
    /* splitmix64: small, good enough to shuffle thread orders reproducibly */
    uint64_t z = (random_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

const char *order_name(void)
{
    static char buffer[64];
    if (order == FORWARD) {
        return "forward";
    }
    if (order == REVERSE) {
        return "reverse";
    }
    snprintf(buffer, sizeof buffer, "random:%llu", (unsigned long long)random_seed);
    return buffer;
}

void fiber_entry(void);

#ifndef CUSIM_USE_UCONTEXT
/* cusim_switch_context(save, load): push the callee-saved registers and the SSE/x87 control words, store
 * the stack pointer in *save, load `load` as the stack pointer, and pop the same in reverse. A new fiber's
 * stack is prepared (prepare_fiber) so that this pop "returns" into fiber_entry. */
extern "C" void cusim_switch_context(void **save, void *load);
__asm__(".text\n"
        ".globl cusim_switch_context\n"
        ".type cusim_switch_context,@function\n"
        "cusim_switch_context:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size cusim_switch_context, .-cusim_switch_context\n");
#endif

void prepare_fiber(Fiber *f)
{
#ifdef CUSIM_ASAN
    unsigned char *from = f->abandoned ? f->stack : f->dirty_from;
    if (from && from < f->stack + f->size) {
        ASAN_UNPOISON_MEMORY_REGION(from, (size_t)(f->stack + f->size - from));
    }
    f->dirty_from = nullptr;
#endif
    f->abandoned = false;
#ifdef CUSIM_USE_UCONTEXT
    getcontext(&f->context);
    f->context.uc_stack.ss_sp = f->stack;
    f->context.uc_stack.ss_size = f->size;
    f->context.uc_link = nullptr;
    makecontext(&f->context, fiber_entry, 0);
#else
    uintptr_t top = ((uintptr_t)(f->stack + f->size)) & ~(uintptr_t)15;
    uint64_t *sp = reinterpret_cast<uint64_t *>(top);
    *--sp = 0; /* fiber_entry's return address: it never returns */
    *--sp = (uint64_t)(uintptr_t)&fiber_entry; /* where `ret` goes */
    for (int i = 0; i < 6; i++) {
        *--sp = 0; /* rbp rbx r12..r15 */
    }
    --sp;
    uint32_t mxcsr = __builtin_ia32_stmxcsr();
    uint16_t fpucw;
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    uint32_t words[2] = {mxcsr, fpucw};
    std::memcpy(sp, words, sizeof words);
    f->sp = sp;
#endif
}

void init_fiber(Fiber *f)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t size = (stack_size + (size_t)page - 1) / (size_t)page * (size_t)page;
    void *mem = mmap(nullptr, size + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        fprintf(stderr, "cusim: cannot allocate a %zu-byte fiber stack\n", size);
        abort();
    }
    mprotect(mem, (size_t)page, PROT_NONE); /* guard page: a stack overflow faults */
    f->stack = static_cast<unsigned char *>(mem) + page;
    f->size = size;
    f->abandoned = false;
    f->dirty_from = nullptr;
#ifdef CUSIM_TSAN
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
}

/* Scheduler -> thread t; returns when t waits, finishes or fails. */
void run_thread(Thread *t)
{
    active->current = t;
    threadIdx = t->index;
#ifdef CUSIM_ASAN
    void *fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, t->fiber->stack, t->fiber->size);
#endif
#ifdef CUSIM_TSAN
    __tsan_switch_to_fiber(t->fiber->tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef CUSIM_USE_UCONTEXT
    swapcontext(&scheduler_context, &t->fiber->context);
#else
    cusim_switch_context(&scheduler_sp, t->fiber->sp);
#endif
#ifdef CUSIM_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

/* Thread -> scheduler. `finished`: the thread will never be resumed. */
void yield_to_scheduler(bool finished)
{
    Fiber *f = active->current->fiber;
#ifdef CUSIM_ASAN
    if (finished) {
        /* fiber_entry's frame and ours never return: remember where they are (with a margin for the
         * sanitizer's own calls below us) so that prepare_fiber can clear their poisoned redzones. */
        unsigned char *frame = static_cast<unsigned char *>(__builtin_frame_address(0)) - 4096;
        f->dirty_from = frame > f->stack ? frame : f->stack;
    }
    void *fake_stack = nullptr;
    __sanitizer_start_switch_fiber(finished ? nullptr : &fake_stack, main_stack_bottom, main_stack_size);
#else
    (void)finished;
#endif
#ifdef CUSIM_TSAN
    __tsan_switch_to_fiber(tsan_scheduler_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef CUSIM_USE_UCONTEXT
    swapcontext(&f->context, &scheduler_context);
#else
    cusim_switch_context(&f->sp, scheduler_sp);
#endif
#ifdef CUSIM_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, &main_stack_bottom, &main_stack_size);
#endif
    threadIdx = active->current->index;
}

void fiber_entry(void)
{
#ifdef CUSIM_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &main_stack_bottom, &main_stack_size);
#endif
#ifdef CUSIM_TSAN
    __tsan_acquire(&tsan_block_sync[tsan_block_number & 1]);
#endif
    active->body(active->context);
#ifdef CUSIM_TSAN
    __tsan_release(&tsan_block_sync[(tsan_block_number + 1) & 1]);
#endif
    active->current->state = DONE;
    yield_to_scheduler(true);
    abort(); /* unreachable: a finished fiber is only ever restarted from the top */
}

/* Stop the launch from inside a thread: record the error and never come back. */
[[noreturn]] void fail_in_thread(cudaError_t code)
{
    active->failed = true;
    active->failure = code;
    active->current->fiber->abandoned = true;
    yield_to_scheduler(true);
    abort();
}

void describe_thread(char *out, size_t n, const Thread &t)
{
    snprintf(out, n, "thread (%u,%u,%u) of block (%u,%u,%u)", t.index.x, t.index.y, t.index.z, blockIdx.x,
             blockIdx.y, blockIdx.z);
}

#define LAUNCH_SITE_FMT " (kernel %s launched at %s:%d, thread order %s)"
#define LAUNCH_SITE_ARGS active->config->kernel_name, active->config->file, active->config->line, order_name()

/* ------------------------------------------------------------------------------------------------ */
/* Warp operations                                                                                   */

unsigned lanes_in_warp(unsigned warp)
{
    unsigned first = warp * 32;
    unsigned n = active->block_threads - first;
    return n >= 32 ? 0xffffffffu : ((1u << n) - 1u);
}

/* All lanes of `t`'s mask have arrived at the same operation: compute every lane's result. */
void resolve_warp_op(Thread *t)
{
    unsigned warp = t->linear / 32;
    Thread *lane0 = &active->threads[warp * 32];
    unsigned mask = t->op_mask;
    uint64_t ballot = 0;
    for (unsigned l = 0; l < 32; l++) {
        if (mask & (1u << l)) {
            ballot |= (uint64_t)(lane0[l].op_value != 0) << l;
        }
    }
    for (unsigned l = 0; l < 32; l++) {
        if (!(mask & (1u << l))) {
            continue;
        }
        Thread *me = &lane0[l];
        int width = me->op_width;
        int segment = (int)l & ~(width - 1); /* first lane of my width-sized segment */
        int source = (int)l;
        switch (me->op) {
        case SHFL_IDX:
            source = segment + (me->op_arg & (width - 1));
            break;
        case SHFL_UP:
            source = ((int)l - me->op_arg >= segment) ? (int)l - me->op_arg : (int)l;
            break;
        case SHFL_DOWN:
            source = ((int)l + me->op_arg < segment + width) ? (int)l + me->op_arg : (int)l;
            break;
        case SHFL_XOR:
            /* CUDA: a lane may read an earlier width-group, but reading a later one returns its own value */
            source = (int)l ^ (me->op_arg & 31);
            if (source >= segment + width) {
                source = (int)l;
            }
            break;
        default:
            break;
        }
        if (me->op == BALLOT) {
            me->op_result = ballot;
        } else if (me->op == ANY) {
            me->op_result = ballot != 0;
        } else if (me->op == ALL) {
            me->op_result = ballot == (mask & 0xffffffffu);
        } else if (me->op == WARP_SYNC) {
            me->op_result = 0;
        } else {
            if (source < 0 || source > 31 || !(mask & (1u << source))) {
                char who[128];
                describe_thread(who, sizeof who, *me);
                report(cudaErrorLaunchFailure,
                       "%s:%d: %s reads lane %d in a shuffle, but lane %d is not in the mask 0x%08x: the "
                       "value is undefined on a GPU" LAUNCH_SITE_FMT,
                       me->wait_file, me->wait_line, who, source, source, mask, LAUNCH_SITE_ARGS);
                fail_in_thread(cudaErrorLaunchFailure);
            }
            me->op_result = lane0[source].op_value;
        }
    }
    for (unsigned l = 0; l < 32; l++) {
        if ((mask & (1u << l)) && &lane0[l] != t) {
            lane0[l].state = READY;
        }
    }
}

const char *warp_op_name(WarpOp op)
{
    switch (op) {
    case WARP_SYNC: return "__syncwarp";
    case SHFL_IDX: return "__shfl_sync";
    case SHFL_UP: return "__shfl_up_sync";
    case SHFL_DOWN: return "__shfl_down_sync";
    case SHFL_XOR: return "__shfl_xor_sync";
    case BALLOT: return "__ballot_sync";
    case ANY: return "__any_sync";
    case ALL: return "__all_sync";
    default: return "warp operation";
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Running one block                                                                                 */

/* Everything runnable has run and no thread is READY: either the block is done, or every live thread
 * waits at a barrier (release them, if they agree), or something is stuck (report it). */
bool settle_block(void)
{
    unsigned done = 0, at_barrier = 0, at_warp = 0;
    const Thread *first_barrier = nullptr, *first_warp = nullptr, *first_done = nullptr;
    for (const Thread &t : active->threads) {
        if (t.state == DONE) {
            done++;
            if (!first_done) first_done = &t;
        } else if (t.state == AT_BARRIER) {
            at_barrier++;
            if (!first_barrier) first_barrier = &t;
        } else if (t.state == AT_WARP_OP) {
            at_warp++;
            if (!first_warp) first_warp = &t;
        }
    }
    if (done == active->block_threads) {
        return false;
    }
    char who[128];
    if (at_warp > 0) {
        /* A lane of its mask never arrived: it returned, waits at a barrier, or waits elsewhere. */
        const Thread *w = first_warp;
        unsigned warp = w->linear / 32;
        const Thread *lane0 = &active->threads[warp * 32];
        unsigned missing = 0;
        for (unsigned l = 0; l < 32; l++) {
            if ((w->op_mask & (1u << l)) && lane0[l].state != AT_WARP_OP) {
                missing = l;
                break;
            }
        }
        describe_thread(who, sizeof who, *w);
        const Thread &m = lane0[missing];
        report(cudaErrorLaunchFailure,
               "%s:%d: %s waits in %s with mask 0x%08x, but lane %u %s" LAUNCH_SITE_FMT, w->wait_file,
               w->wait_line, who, warp_op_name(w->op), w->op_mask, missing,
               m.state == DONE ? "has returned (the mask names a lane that does not take part)"
               : m.state == AT_BARRIER ? "waits at __syncthreads (divergent warp operation)"
                                       : "waits at a different warp operation",
               LAUNCH_SITE_ARGS);
        active->failed = true;
        active->failure = cudaErrorLaunchFailure;
        return false;
    }
    /* Every live thread is at a barrier. */
    for (const Thread &t : active->threads) {
        if (t.state == AT_BARRIER &&
            (t.wait_line != first_barrier->wait_line ||
             (t.wait_file != first_barrier->wait_file && strcmp(t.wait_file, first_barrier->wait_file) != 0))) {
            char who2[128];
            describe_thread(who, sizeof who, *first_barrier);
            describe_thread(who2, sizeof who2, t);
            report(cudaErrorLaunchFailure,
                   "threads of one block wait at different barriers: %s at %s:%d, %s at %s:%d (a "
                   "__syncthreads inside a divergent branch?)" LAUNCH_SITE_FMT,
                   who, first_barrier->wait_file, first_barrier->wait_line, who2, t.wait_file, t.wait_line,
                   LAUNCH_SITE_ARGS);
            active->failed = true;
            active->failure = cudaErrorLaunchFailure;
            return false;
        }
    }
    if (done > 0) {
        describe_thread(who, sizeof who, *first_done);
        report(cudaErrorLaunchFailure,
               "%s:%d: __syncthreads reached by only %u of the %u threads of block (%u,%u,%u); the other %u "
               "returned before it (e.g. %s): an early return or a divergent branch before a "
               "barrier" LAUNCH_SITE_FMT,
               first_barrier->wait_file, first_barrier->wait_line, at_barrier, active->block_threads, blockIdx.x,
               blockIdx.y, blockIdx.z, done, who, LAUNCH_SITE_ARGS);
        active->failed = true;
        active->failure = cudaErrorLaunchFailure;
        return false;
    }
    for (Thread &t : active->threads) {
        t.state = READY;
    }
    return true;
}

void run_block(std::vector<unsigned> &order_buffer)
{
    LaunchState *s = active;
    unsigned n = s->block_threads;
    const dim3 b = s->config->block;
    while (fiber_count < n) {
        init_fiber(&fiber_pool[fiber_count++]);
    }
    for (unsigned i = 0; i < n; i++) {
        Thread &t = s->threads[i];
        t.index = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
        t.linear = i;
        t.state = READY;
        t.fiber = &fiber_pool[i];
        t.barriers_passed = t.warp_ops_passed = 0;
        prepare_fiber(t.fiber);
    }
#ifdef CUSIM_TSAN
    /* The scheduler's NaN fill below comes after the previous block and before this one. */
    __tsan_acquire(&tsan_block_sync[tsan_block_number & 1]);
#endif
    s->shared_seen.clear();
    s->static_shared = 0;
    if (s->dynamic_size > 0) {
        memset(s->dynamic_shared, 0xFF, s->dynamic_size); /* undefined at block start: NaN pattern */
    }
#ifdef CUSIM_TSAN
    __tsan_release(&tsan_block_sync[tsan_block_number & 1]);
#endif
    for (;;) {
        bool progress = false;
        for (unsigned i = 0; i < n; i++) {
            order_buffer[i] = order == REVERSE ? n - 1 - i : i;
        }
        if (order == RANDOM) {
            for (unsigned i = n - 1; i > 0; i--) {
                unsigned j = next_random() % (i + 1);
                std::swap(order_buffer[i], order_buffer[j]);
            }
        }
        for (unsigned k = 0; k < n && !s->failed; k++) {
            Thread *t = &s->threads[order_buffer[k]];
            if (t->state == READY) {
                run_thread(t);
                progress = true;
            }
        }
        if (s->failed) {
            break;
        }
        if (!progress && !settle_block()) {
            break;
        }
    }
    if (s->failed) {
        for (unsigned i = 0; i < n; i++) {
            if (s->threads[i].state != DONE) {
                s->threads[i].fiber->abandoned = true;
#ifdef CUSIM_TSAN
                /* An abandoned thread never reaches its end: order what it did before the host, for it. */
                __tsan_switch_to_fiber(s->threads[i].fiber->tsan_fiber, __tsan_switch_to_fiber_no_sync);
                __tsan_release(&tsan_block_sync[(tsan_block_number + 1) & 1]);
                __tsan_switch_to_fiber(tsan_scheduler_fiber, __tsan_switch_to_fiber_no_sync);
#endif
            }
        }
    }
}

void read_order_from_environment(void)
{
    if (order_from_environment_done) {
        return;
    }
    order_from_environment_done = true;
    const char *spec = getenv("CUSIM_ORDER");
    if (spec && *spec && cusimSetOrder(spec) != 0) {
        fprintf(stderr, "cusim: CUSIM_ORDER=%s not understood (forward, reverse, random or random:SEED); using "
                        "forward\n", spec);
    }
    const char *kb = getenv("CUSIM_STACK_KB");
    if (kb && atoi(kb) >= 16) {
        stack_size = (size_t)atoi(kb) * 1024;
    }
}

/* Per-kernel opt-in for dynamic shared memory above 48 KiB (cudaFuncSetAttribute). */
struct FunctionAttributes {
    const void *function;
    int max_dynamic_shared;
};
std::vector<FunctionAttributes> function_attributes;

constexpr size_t DEFAULT_SHARED_LIMIT = 48 * 1024;
constexpr size_t OPTIN_SHARED_LIMIT = 227 * 1024; /* an H100's sharedMemPerBlockOptin */

size_t dynamic_shared_limit(const void *kernel)
{
    for (const FunctionAttributes &f : function_attributes) {
        if (f.function == kernel) {
            return (size_t)f.max_dynamic_shared;
        }
    }
    return DEFAULT_SHARED_LIMIT;
}

void check_guards_after_launch(const LaunchConfig &config)
{
    for (Allocation &a : allocations) {
        long at = GUARD ? damaged_guard(a) : 0;
        if (at != 0 && !a.reported) {
            a.reported = true;
            report(cudaErrorIllegalAddress,
                   "kernel %s launched at %s:%d wrote outside a %zu-byte cudaMalloc buffer at %p: the byte at "
                   "offset %ld is %s the buffer (an off-by-one index or a missing bounds check? build with "
                   "-DCOURSE_SANITIZE=ON to see the exact line)",
                   config.kernel_name, config.file, config.line, a.size, (void *)a.user, at,
                   at < 0 ? "before" : "past the end of");
            sticky_error = cudaErrorIllegalAddress;
        }
    }
}

} /* namespace */

/* ------------------------------------------------------------------------------------------------ */
/* Device-side entry points                                                                          */

void syncthreads(const char *file, int line)
{
    if (!active) {
        fprintf(stderr, "cusim: %s:%d: __syncthreads called outside a kernel\n", file, line);
        abort();
    }
    Thread *t = active->current;
    t->state = AT_BARRIER;
    t->wait_file = file;
    t->wait_line = line;
#ifdef CUSIM_TSAN
    char *sync = &tsan_barrier_sync[t->barriers_passed++ & 1];
    __tsan_release(sync);
#endif
    yield_to_scheduler(false);
#ifdef CUSIM_TSAN
    __tsan_acquire(sync);
#endif
}

uint64_t warp_op(WarpOp op, const char *file, int line, unsigned mask, uint64_t value, int lane_arg, int width)
{
    if (!active) {
        fprintf(stderr, "cusim: %s:%d: %s called outside a kernel\n", file, line, warp_op_name(op));
        abort();
    }
    Thread *t = active->current;
    unsigned lane = t->linear % 32;
    unsigned warp = t->linear / 32;
    char who[128];
    if (!(mask & (1u << lane))) {
        describe_thread(who, sizeof who, *t);
        report(cudaErrorLaunchFailure,
               "%s:%d: %s called by lane %u (%s) with mask 0x%08x, which does not include lane %u" LAUNCH_SITE_FMT,
               file, line, warp_op_name(op), lane, who, mask, lane, LAUNCH_SITE_ARGS);
        fail_in_thread(cudaErrorLaunchFailure);
    }
    unsigned existing = lanes_in_warp(warp);
    if (mask & ~existing) {
        report(cudaErrorLaunchFailure,
               "%s:%d: %s with mask 0x%08x names lanes that do not exist in this warp (the block has %u "
               "threads, so warp %u has lane mask 0x%08x)" LAUNCH_SITE_FMT,
               file, line, warp_op_name(op), mask, active->block_threads, warp, existing, LAUNCH_SITE_ARGS);
        fail_in_thread(cudaErrorLaunchFailure);
    }
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        report(cudaErrorLaunchFailure, "%s:%d: %s width %d is not a power of two in 1..32" LAUNCH_SITE_FMT, file,
               line, warp_op_name(op), width, LAUNCH_SITE_ARGS);
        fail_in_thread(cudaErrorLaunchFailure);
    }
    t->op = op;
    t->op_mask = mask;
    t->op_value = value;
    t->op_arg = lane_arg;
    t->op_width = width;
    t->wait_file = file;
    t->wait_line = line;
    t->state = AT_WARP_OP;
    /* Has every lane of the mask arrived at this same operation? Lanes waiting elsewhere are a mismatch. */
    Thread *lane0 = &active->threads[warp * 32];
    bool complete = true;
    for (unsigned l = 0; l < 32; l++) {
        if (!(mask & (1u << l))) {
            continue;
        }
        Thread *o = &lane0[l];
        if (o->state != AT_WARP_OP) {
            complete = false;
            continue;
        }
        if (o->op != op || o->op_mask != mask || o->wait_line != line ||
            (o->wait_file != file && strcmp(o->wait_file, file) != 0)) {
            char who2[128];
            describe_thread(who, sizeof who, *t);
            describe_thread(who2, sizeof who2, *o);
            report(cudaErrorLaunchFailure,
                   "warp operations disagree: %s is in %s at %s:%d with mask 0x%08x, %s is in %s at %s:%d with "
                   "mask 0x%08x" LAUNCH_SITE_FMT,
                   who, warp_op_name(op), file, line, mask, who2, warp_op_name(o->op), o->wait_file, o->wait_line,
                   o->op_mask, LAUNCH_SITE_ARGS);
            fail_in_thread(cudaErrorLaunchFailure);
        }
    }
#ifdef CUSIM_TSAN
    char *sync = &tsan_warp_sync[warp % 32][t->warp_ops_passed++ & 1];
    __tsan_release(sync);
#endif
    if (complete) {
        resolve_warp_op(t);
        t->state = READY;
    } else {
        yield_to_scheduler(false);
    }
#ifdef CUSIM_TSAN
    __tsan_acquire(sync);
#endif
    return t->op_result;
}

unsigned active_mask(void)
{
    if (!active) {
        return 0;
    }
    unsigned warp = active->current->linear / 32;
    unsigned mask = 0;
    for (unsigned l = 0; l < 32; l++) {
        unsigned i = warp * 32 + l;
        if (i < active->block_threads && active->threads[i].state != DONE) {
            mask |= 1u << l;
        }
    }
    return mask;
}

void *dynamic_shared(void)
{
    return active ? active->dynamic_shared : nullptr;
}

void shared_declared(void *address, size_t size, const char *file, int line)
{
    if (!active) {
        return;
    }
    for (void *seen : active->shared_seen) {
        if (seen == address) {
#ifdef CUSIM_TSAN
            __tsan_acquire(address); /* the fill below is not a write of the block's threads */
#endif
            return;
        }
    }
    active->shared_seen.push_back(address);
    memset(address, 0xFF, size); /* shared memory is undefined at block start: NaN for floats, -1 for ints */
#ifdef CUSIM_TSAN
    __tsan_release(address);
#endif
    active->static_shared += size;
    /* Without an opt-in a block's static plus dynamic shared memory must fit in 48 KiB; with
     * cudaFuncSetAttribute it may reach the device's opt-in limit. */
    size_t limit = active->opted_in ? OPTIN_SHARED_LIMIT : DEFAULT_SHARED_LIMIT;
    if (active->static_shared > DEFAULT_SHARED_LIMIT || active->static_shared + active->dynamic_size > limit) {
        report(cudaErrorInvalidValue,
               "%s:%d: this block's shared memory is %zu bytes of static __shared__ variables + %zu bytes "
               "dynamic, more than the %zu bytes allowed (static alone at most %zu; above 48 KiB the kernel "
               "must opt in with cudaFuncSetAttribute)" LAUNCH_SITE_FMT,
               file, line, active->static_shared, active->dynamic_size, limit, DEFAULT_SHARED_LIMIT,
               LAUNCH_SITE_ARGS);
        fail_in_thread(cudaErrorInvalidValue);
    }
}

void trap(const char *file, int line, const char *what)
{
    if (!active) {
        fprintf(stderr, "cusim: %s:%d: %s on the host\n", file, line, what);
        abort();
    }
    char who[128];
    describe_thread(who, sizeof who, *active->current);
    report(cudaErrorLaunchFailure, "%s:%d: %s in %s" LAUNCH_SITE_FMT, file, line, what, who, LAUNCH_SITE_ARGS);
    fail_in_thread(cudaErrorLaunchFailure);
}

/* ------------------------------------------------------------------------------------------------ */
/* Misaligned accesses (cudaErrorMisalignedAddress)                                                  */

#ifdef CUSIM_ALIGNMENT_CHECK
/* The simulated code is compiled with -fsanitize=alignment (cmake/CourseCuda.cmake): before each load or
 * store the compiler checks that the address is a multiple of the type's alignment (16 for float4, 8 for
 * float2) and, if not, calls __ubsan_handle_type_mismatch_v1 with the file, line, type and alignment. The
 * UBSan runtime is not linked in this build: the simulator defines that one function itself, so that a
 * misaligned access in a kernel is reported and fails the launch as a GPU would, instead of being undefined
 * behaviour on the CPU. (In the ASan + UBSan build the real runtime reports it, and this is not compiled.)
 * The structures are the compiler's, as GCC's and Clang's UBSan runtimes declare them; extern "C" gives the
 * handlers their plain C names although they sit in namespace cusim. */
struct UbsanSourceLocation {
    const char *file;
    uint32_t line;
    uint32_t column;
};
struct UbsanTypeDescriptor {
    uint16_t kind;
    uint16_t info;
    char name[1]; /* the type's name, as written in the source, NUL-terminated */
};
struct UbsanTypeMismatch {
    UbsanSourceLocation location;
    const UbsanTypeDescriptor *type;
    unsigned char log_alignment; /* the type's alignment is 1 << log_alignment */
    unsigned char check_kind; /* what the access was: see access_kind */
};

static const char *access_kind(unsigned char kind)
{
    static const char *const names[] = {"load of", "store to", "reference binding to", "member access within",
                                        "member call on", "constructor call on"};
    return kind < sizeof names / sizeof names[0] ? names[kind] : "access to";
}

extern "C" void __ubsan_handle_type_mismatch_v1(UbsanTypeMismatch *data, uintptr_t pointer)
{
    const size_t alignment = (size_t)1 << data->log_alignment;
    const UbsanSourceLocation &at = data->location;
    if (!active) {
        fflush(stdout);
        fprintf(stderr, "cusim: %s:%u: %s misaligned address %p for type %s, which requires %zu-byte alignment "
                        "(in host code)\n", at.file, at.line, access_kind(data->check_kind), (void *)pointer,
                data->type->name, alignment);
        abort();
    }
    char who[128];
    describe_thread(who, sizeof who, *active->current);
    report(cudaErrorMisalignedAddress,
           "%s:%u: %s misaligned address %p for type %s, which requires %zu-byte alignment (the address is %zu "
           "bytes past a multiple of %zu), in %s" LAUNCH_SITE_FMT,
           at.file, at.line, access_kind(data->check_kind), (void *)pointer, data->type->name, alignment,
           (size_t)(pointer % alignment), alignment, who, LAUNCH_SITE_ARGS);
    fail_in_thread(cudaErrorMisalignedAddress);
}

/* The variant the compiler calls with -fno-sanitize-recover: the same (fail_in_thread never returns). */
extern "C" void __ubsan_handle_type_mismatch_v1_abort(UbsanTypeMismatch *data, uintptr_t pointer)
{
    __ubsan_handle_type_mismatch_v1(data, pointer);
    abort();
}
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Launch                                                                                            */

cudaError_t launch(const LaunchConfig &config, const void *kernel, void (*body)(void *), void *context)
{
    read_order_from_environment();
    if (sticky_error != cudaSuccess) {
        last_error = sticky_error;
        return sticky_error;
    }
    if (active) {
        fprintf(stderr, "cusim: %s:%d: kernel %s launched from inside a kernel (dynamic parallelism is not "
                        "simulated)\n", config.file, config.line, config.kernel_name);
        abort();
    }
    const dim3 g = config.grid, b = config.block;
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024) {
        return report(cudaErrorInvalidConfiguration,
                      "%s:%d: launch of %s with block (%u,%u,%u) = %llu threads: a block may have at most 1024 "
                      "threads, x and y at most 1024, z at most 64, none zero",
                      config.file, config.line, config.kernel_name, b.x, b.y, b.z, threads);
    }
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
        return report(cudaErrorInvalidConfiguration,
                      "%s:%d: launch of %s with grid (%u,%u,%u): x may be 1..2^31-1, y and z 1..65535",
                      config.file, config.line, config.kernel_name, g.x, g.y, g.z);
    }
    size_t limit = dynamic_shared_limit(kernel);
    if (config.dynamic_shared > limit) {
        return report(cudaErrorInvalidValue,
                      "%s:%d: launch of %s asks for %zu bytes of dynamic shared memory; the limit for this kernel "
                      "is %zu (above 48 KiB a kernel must opt in with cudaFuncSetAttribute(kernel, "
                      "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))",
                      config.file, config.line, config.kernel_name, config.dynamic_shared, limit);
    }

    LaunchState state;
    state.config = &config;
    state.body = body;
    state.context = context;
    state.block_threads = (unsigned)threads;
    state.threads.resize(threads);
    state.current = nullptr;
    state.failed = false;
    state.failure = cudaSuccess;
    state.dynamic_size = config.dynamic_shared;
    /* 256-byte aligned, as on a GPU (so `extern __shared__ float4 x[]` is aligned), and exactly the requested
     * size, so that ASan sees an overrun of dynamic shared memory. */
    void *dynamic_block = nullptr;
    if (posix_memalign(&dynamic_block, DEVICE_ALIGNMENT, config.dynamic_shared ? config.dynamic_shared : 1) != 0) {
        fprintf(stderr, "cusim: out of memory allocating %zu bytes of dynamic shared memory\n", config.dynamic_shared);
        abort();
    }
    state.dynamic_shared = static_cast<unsigned char *>(dynamic_block);
    state.static_shared = 0;
    state.opted_in = limit != DEFAULT_SHARED_LIMIT;
    std::vector<unsigned> order_buffer(threads);
    active = &state;
    blockDim = b;
    gridDim = g;
#ifdef CUSIM_TSAN
    tsan_scheduler_fiber = __tsan_get_current_fiber();
    tsan_block_number = 0;
    __tsan_release(&tsan_block_sync[0]); /* the host's writes before the launch come before every thread */
#endif
    for (unsigned z = 0; z < g.z && !state.failed; z++) {
        for (unsigned y = 0; y < g.y && !state.failed; y++) {
            for (unsigned x = 0; x < g.x && !state.failed; x++) {
                blockIdx = uint3{x, y, z};
                run_block(order_buffer);
#ifdef CUSIM_TSAN
                tsan_block_number++;
#endif
            }
        }
    }
    active = nullptr;
#ifdef CUSIM_TSAN
    /* ... and the whole kernel before the host (the last block run, even one that failed, released the
     * object of the block after it, and tsan_block_number has moved on to that block) */
    __tsan_acquire(&tsan_block_sync[tsan_block_number & 1]);
#endif
    free(state.dynamic_shared);
    if (state.failed) {
        sticky_error = state.failure == cudaErrorInvalidValue ? cudaSuccess : state.failure;
        last_error = state.failure;
        return state.failure;
    }
    check_guards_after_launch(config);
    return last_error;
}


/* ------------------------------------------------------------------------------------------------ */
/* Stream capture and graphs                                                                         */

struct Capture {
    cudaStream_t stream = nullptr; /* the stream being captured; nullptr when none */
    bool invalidated = false; /* an illegal call happened during the capture */
    std::vector<std::pair<const char *, std::function<cudaError_t()>>> nodes;
};
Capture capture;

/* An operation that may not happen while a stream is captured (a synchronous copy, a wait, an allocation):
 * refused with cudaErrorStreamCaptureUnsupported, and the capture invalidated, as CUDA does. */
static cudaError_t refuse_during_capture(const char *what)
{
    capture.invalidated = true;
    return report(cudaErrorStreamCaptureUnsupported,
                  "%s while a stream is being captured into a CUDA Graph: a capture records work enqueued on the "
                  "captured stream only; calls that wait for the GPU or allocate are not allowed until "
                  "cudaStreamEndCapture (the capture is now invalidated)",
                  what);
}

CaptureAction capture_action(cudaStream_t stream, const char *what, const char *file, int line)
{
    if (capture.stream == nullptr) {
        return CAPTURE_RUN_NOW;
    }
    if (stream == capture.stream) {
        return CAPTURE_RECORD;
    }
    if (stream == nullptr) {
        capture.invalidated = true;
        char site[512] = "";
        if (file != nullptr) {
            snprintf(site, sizeof site, "%s:%d: ", file, line);
        }
        report(cudaErrorStreamCaptureImplicit,
               "%s%s on the legacy default stream (0) while another stream is being captured: the legacy "
               "stream waits for every other stream, so this would depend on the capture; enqueue it on the "
               "captured stream (the capture is now invalidated)",
               site, what);
        return CAPTURE_REFUSED;
    }
    return CAPTURE_RUN_NOW; /* another created stream is independent of the capture */
}

void capture_record(const char *what, std::function<cudaError_t()> run)
{
    capture.nodes.emplace_back(what, std::move(run));
}

} /* namespace cusim */

/* ---------------------------------------------------------------------------------------------------- */
/* Host API                                                                                              */

using cusim::allocations;
using cusim::last_error;
using cusim::sticky_error;

#define RETURN_IF_STICKY() \
    do { \
        if (sticky_error != cudaSuccess) { \
            last_error = sticky_error; \
            return sticky_error; \
        } \
    } while (0)

/* For the calls a stream capture forbids (see cusim::refuse_during_capture). */
#define REFUSE_DURING_CAPTURE(what) \
    do { \
        if (cusim::capture.stream != nullptr) { \
            return cusim::refuse_during_capture(what); \
        } \
    } while (0)

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    RETURN_IF_STICKY();
    REFUSE_DURING_CAPTURE("cudaMalloc");
    if (!ptr) {
        return cusim::report(cudaErrorInvalidValue, "cudaMalloc: null pointer for the result");
    }
    *ptr = nullptr;
    /* posix_memalign, not aligned_alloc: the size need not be a multiple of the alignment, and under ASan
     * the block is then exactly `size` bytes, so that ASan sees an access just past it. */
    void *block = nullptr;
    unsigned char *raw = nullptr;
    if (posix_memalign(&block, cusim::DEVICE_ALIGNMENT, size + 2 * cusim::GUARD + (size == 0)) == 0) {
        raw = static_cast<unsigned char *>(block);
    }
    if (!raw) {
        return cusim::report(cudaErrorMemoryAllocation, "cudaMalloc: out of memory allocating %zu bytes", size);
    }
    memset(raw, cusim::GUARD_BYTE, cusim::GUARD);
    memset(raw + cusim::GUARD, 0xFF, size); /* undefined on a GPU: NaN-filled here */
    memset(raw + cusim::GUARD + size, cusim::GUARD_BYTE, cusim::GUARD);
    allocations.push_back(cusim::Allocation{raw + cusim::GUARD, size, false});
    *ptr = raw + cusim::GUARD;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    REFUSE_DURING_CAPTURE("cudaFree");
    if (!ptr) {
        return cudaSuccess;
    }
    for (size_t i = 0; i < allocations.size(); i++) {
        cusim::Allocation a = allocations[i];
        if (a.user == ptr) {
            long at = cusim::GUARD ? cusim::damaged_guard(a) : 0;
            allocations.erase(allocations.begin() + (long)i);
            free(a.user - cusim::GUARD);
            if (at != 0 && !a.reported) {
                sticky_error = cudaErrorIllegalAddress;
                return cusim::report(cudaErrorIllegalAddress,
                                     "cudaFree(%p): the guard bytes around this %zu-byte buffer were overwritten "
                                     "(offset %ld): something wrote outside it",
                                     ptr, a.size, at);
            }
            return cudaSuccess;
        }
    }
    return cusim::report(cudaErrorInvalidValue, "cudaFree(%p): not a pointer returned by cudaMalloc (or freed twice)",
                         ptr);
}

cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    RETURN_IF_STICKY();
    *ptr = nullptr;
    if (posix_memalign(ptr, cusim::DEVICE_ALIGNMENT, size ? size : 1) != 0) {
        *ptr = nullptr;
    }
    return *ptr ? cudaSuccess
                : cusim::report(cudaErrorMemoryAllocation, "cudaMallocHost: out of memory allocating %zu bytes", size);
}

cudaError_t cudaFreeHost(void *ptr)
{
    free(ptr);
    return cudaSuccess;
}

/* A device-side range must lie inside one cudaMalloc buffer. */
static cudaError_t check_device_range(const char *what, const void *p, size_t count)
{
    cusim::Allocation *a = cusim::find_allocation(p);
    if (!a) {
        return cusim::report(cudaErrorInvalidValue, "%s: %p is not inside any cudaMalloc buffer", what, p);
    }
    size_t offset = (size_t)(static_cast<const unsigned char *>(p) - a->user);
    if (count > a->size - offset) {
        return cusim::report(cudaErrorInvalidValue,
                             "%s: %zu bytes at offset %zu run past the end of a %zu-byte cudaMalloc buffer", what,
                             count, offset, a->size);
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    RETURN_IF_STICKY();
    REFUSE_DURING_CAPTURE("cudaMemcpy (synchronous)");
    if (count == 0) {
        return cudaSuccess;
    }
    if ((int)kind < 0 || (int)kind > 4) {
        return cusim::report(cudaErrorInvalidMemcpyDirection, "cudaMemcpy: invalid kind %d", (int)kind);
    }
    if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) {
        if (check_device_range("cudaMemcpy destination", dst, count) != cudaSuccess) {
            return last_error;
        }
    }
    if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice) {
        if (check_device_range("cudaMemcpy source", src, count) != cudaSuccess) {
            return last_error;
        }
    }
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream)
{
    switch (cusim::capture_action(stream, "cudaMemcpyAsync", nullptr, 0)) {
    case cusim::CAPTURE_RUN_NOW:
        break;
    case cusim::CAPTURE_RECORD: /* a copy node: it copies what the memory holds when the graph runs */
        cusim::capture_record("cudaMemcpyAsync", [=]() { return cudaMemcpy(dst, src, count, kind); });
        return cudaSuccess;
    case cusim::CAPTURE_REFUSED:
        return cudaErrorStreamCaptureImplicit;
    }
    return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void *dst, int value, size_t count)
{
    RETURN_IF_STICKY();
    REFUSE_DURING_CAPTURE("cudaMemset (synchronous)");
    if (count == 0) {
        return cudaSuccess;
    }
    if (check_device_range("cudaMemset", dst, count) != cudaSuccess) {
        return last_error;
    }
    memset(dst, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream)
{
    switch (cusim::capture_action(stream, "cudaMemsetAsync", nullptr, 0)) {
    case cusim::CAPTURE_RUN_NOW:
        break;
    case cusim::CAPTURE_RECORD:
        cusim::capture_record("cudaMemsetAsync", [=]() { return cudaMemset(dst, value, count); });
        return cudaSuccess;
    case cusim::CAPTURE_REFUSED:
        return cudaErrorStreamCaptureImplicit;
    }
    return cudaMemset(dst, value, count);
}

cudaError_t cudaDeviceSynchronize(void)
{
    REFUSE_DURING_CAPTURE("cudaDeviceSynchronize");
    return sticky_error; /* launches are synchronous here: a kernel's failure is already known */
}

/* As on a GPU, a reset ends the process's use of the device: every cudaMalloc buffer is freed (a pointer kept
 * from before is then refused, as freed memory), sticky errors are cleared, and a capture in progress is
 * dropped. Streams, events and graphs are plain host objects here and are left to their owners. */
cudaError_t cudaDeviceReset(void)
{
    for (const cusim::Allocation &a : allocations) {
        free(a.user - cusim::GUARD);
    }
    allocations.clear();
    sticky_error = cudaSuccess;
    last_error = cudaSuccess;
    cusim::function_attributes.clear();
    cusim::capture = cusim::Capture();
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = sticky_error;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return last_error;
}

const char *cudaGetErrorName(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorAssert: return "cudaErrorAssert";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorAssert: return "device-side assert triggered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing "
                                                 "blocking stream";
    }
    return "unknown error";
}

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : cusim::report(cudaErrorInvalidDevice, "cudaSetDevice(%d): the simulator has "
                                                                             "one device, 0", device);
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
    if (device != 0) {
        return cusim::report(cudaErrorInvalidDevice, "cudaGetDeviceProperties(%d): the simulator has one device, 0",
                             device);
    }
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "cusim CPU simulator (no GPU: timings say nothing about a GPU)");
    prop->totalGlobalMem = (size_t)8 << 30;
    prop->sharedMemPerBlock = cusim::DEFAULT_SHARED_LIMIT;
    prop->sharedMemPerBlockOptin = cusim::OPTIN_SHARED_LIMIT;
    prop->sharedMemPerMultiprocessor = 228 * 1024;
    prop->regsPerBlock = 65536;
    prop->warpSize = 32;
    prop->memPitch = (size_t)1 << 31;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = 1024;
    prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = 65535;
    prop->maxGridSize[2] = 65535;
    prop->totalConstMem = 65536;
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->l2CacheSize = 0;
    prop->maxThreadsPerMultiProcessor = 2048;
    prop->memoryBusWidth = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device)
{
    if (device != 0) {
        return cusim::report(cudaErrorInvalidDevice, "cudaDeviceGetAttribute: the simulator has one device, 0");
    }
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)cusim::DEFAULT_SHARED_LIMIT; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = 1; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)cusim::OPTIN_SHARED_LIMIT; break;
    /* A CPU has no GPU clock or memory bus: 0 says "unknown", so no peak bandwidth is computed. */
    case cudaDevAttrClockRate:
    case cudaDevAttrMemoryClockRate:
    case cudaDevAttrGlobalMemoryBusWidth:
    case cudaDevAttrL2CacheSize: *value = 0; break;
    default: return cusim::report(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute %d not simulated",
                                  (int)attr);
    }
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value)
{
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {
        return cudaSuccess;
    }
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
        return cusim::report(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d not simulated", (int)attr);
    }
    if (value < 0 || (size_t)value > cusim::OPTIN_SHARED_LIMIT) {
        return cusim::report(cudaErrorInvalidValue,
                             "cudaFuncSetAttribute: %d bytes of dynamic shared memory is more than the %zu a block "
                             "may opt in to",
                             value, cusim::OPTIN_SHARED_LIMIT);
    }
    for (cusim::FunctionAttributes &f : cusim::function_attributes) {
        if (f.function == func) {
            f.max_dynamic_shared = value;
            return cudaSuccess;
        }
    }
    cusim::function_attributes.push_back(cusim::FunctionAttributes{func, value});
    return cudaSuccess;
}

struct CUstream_st {
    int unused;
};
struct CUevent_st {
    double seconds;
    bool recorded;
};

cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    *stream = new CUstream_st();
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    (void)flags;
    return cudaStreamCreate(stream);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    REFUSE_DURING_CAPTURE("cudaStreamSynchronize");
    return sticky_error;
}

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    *event = new CUevent_st{0.0, false};
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags)
{
    (void)flags;
    return cudaEventCreate(event);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    switch (cusim::capture_action(stream, "cudaEventRecord", nullptr, 0)) {
    case cusim::CAPTURE_RUN_NOW:
        break;
    case cusim::CAPTURE_RECORD:
        return cusim::report(cudaErrorNotSupported, "cudaEventRecord on a stream being captured: event nodes are "
                                                    "not simulated");
    case cusim::CAPTURE_REFUSED:
        return cudaErrorStreamCaptureImplicit;
    }
    if (!event) {
        return cusim::report(cudaErrorInvalidResourceHandle, "cudaEventRecord: null event");
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    event->seconds = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    event->recorded = true;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    (void)event;
    REFUSE_DURING_CAPTURE("cudaEventSynchronize");
    return sticky_error;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!start || !end) {
        return cusim::report(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: null event");
    }
    if (!start->recorded || !end->recorded) {
        return cusim::report(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: event not recorded");
    }
    *ms = (float)((end->seconds - start->seconds) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

/* ---- Graphs ---- */

struct CUgraph_st {
    std::vector<std::pair<const char *, std::function<cudaError_t()>>> nodes;
};
struct CUgraphExec_st {
    std::vector<std::pair<const char *, std::function<cudaError_t()>>> nodes;
};

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    (void)mode;
    RETURN_IF_STICKY();
    if (stream == nullptr) {
        return cusim::report(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: the legacy default stream "
                                                                "(0) cannot be captured; create a stream");
    }
    if (cusim::capture.stream != nullptr) {
        return cusim::report(cudaErrorNotSupported, "cudaStreamBeginCapture: a capture is already under way (the "
                                                    "simulator captures one stream at a time)");
    }
    cusim::capture = cusim::Capture();
    cusim::capture.stream = stream;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    if (stream == nullptr || stream != cusim::capture.stream) {
        return cusim::report(cudaErrorIllegalState, "cudaStreamEndCapture: this stream is not being captured");
    }
    const bool invalidated = cusim::capture.invalidated;
    auto nodes = std::move(cusim::capture.nodes);
    cusim::capture = cusim::Capture();
    *graph = nullptr;
    if (invalidated) {
        return cusim::report(cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture: the capture was invalidated "
                                                                "by an earlier error (see above)");
    }
    *graph = new CUgraph_st{std::move(nodes)};
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status)
{
    *status = stream != nullptr && stream == cusim::capture.stream
                  ? (cusim::capture.invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive)
                  : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    (void)flags;
    if (!graph) {
        return cusim::report(cudaErrorInvalidValue, "cudaGraphInstantiate: null graph");
    }
    REFUSE_DURING_CAPTURE("cudaGraphInstantiate");
    *exec = new CUgraphExec_st{graph->nodes};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    (void)stream;
    RETURN_IF_STICKY();
    if (!exec) {
        return cusim::report(cudaErrorInvalidValue, "cudaGraphLaunch: null graph");
    }
    REFUSE_DURING_CAPTURE("cudaGraphLaunch");
    /* The nodes in capture order: one stream's capture is a chain, each node depending on the one before. */
    for (auto &node : exec->nodes) {
        const cudaError_t e = node.second();
        if (e != cudaSuccess) {
            return e;
        }
    }
    return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *count)
{
    if (!graph || !count) {
        return cusim::report(cudaErrorInvalidValue, "cudaGraphGetNodes: null graph or count");
    }
    if (nodes) {
        const size_t n = *count < graph->nodes.size() ? *count : graph->nodes.size();
        for (size_t i = 0; i < n; i++) {
            nodes[i] = reinterpret_cast<cudaGraphNode_t>(i + 1); /* opaque handles, not usable otherwise */
        }
    }
    *count = graph->nodes.size();
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    delete graph;
    return cudaSuccess;
}

int cusimSetOrder(const char *spec)
{
    if (strcmp(spec, "forward") == 0) {
        cusim::order = cusim::FORWARD;
    } else if (strcmp(spec, "reverse") == 0) {
        cusim::order = cusim::REVERSE;
    } else if (strncmp(spec, "random", 6) == 0 && (spec[6] == '\0' || spec[6] == ':')) {
        cusim::order = cusim::RANDOM;
        cusim::random_seed = spec[6] == ':' ? strtoull(spec + 7, nullptr, 10) : 1;
        cusim::random_state = cusim::random_seed;
    } else {
        return -1;
    }
    cusim::order_from_environment_done = true;
    return 0;
}

const char *cusimLastErrorMessage(void)
{
    return cusim::last_message;
}

int cusimErrorCount(void)
{
    return cusim::error_count;
}
