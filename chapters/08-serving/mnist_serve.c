/* mnist_serve.c — Chapter 08's program: serve a network trained by chapter 07's mnist_train over HTTP, with
 * dynamic batching.
 *
 *   build/bin/mnist_train --epochs 1 --save mnist.safetensors        # a checkpoint (chapter 07)
 *   build/bin/mnist_serve --checkpoint mnist.safetensors             # http://127.0.0.1:8080/ : draw a digit
 *   build/bin/mnist_serve --checkpoint mnist.safetensors --port 0 --max-batch 64 --batch-window-us 2000
 *   curl -s localhost:8080/predict -d '{"pixels": [0, 0, ..., 0]}'   # 784 values (request.h)
 *   curl -s localhost:8080/metrics                                    # Prometheus text format
 *   build/bin/mnist_serve --help
 *
 * The endpoints:
 *   POST /predict   {"pixels": [784 numbers]} or {"png": "<base64>"}, optionally "center" (request.h) ->
 *                   200 {"digit": d, "probabilities": [10], "latency_us": n, "batch_size": b}, or 4xx
 *                   {"error": "..."}. latency_us: from the whole body received to the answer ready (decoding,
 *                   waiting for the batch, the forward pass); batch_size: the images of its forward pass.
 *   GET /           the drawing page, web/index.html of --web-root
 *   GET /healthz    200 "ok" once the model is loaded
 *   GET /metrics    requests by status code, the /predict latency and batch-size histograms
 *
 * HTTP is libmicrohttpd's: its threads (--threads of them) read requests and decode them (request.c). A
 * decoded image is queued and its connection SUSPENDED — the thread goes on serving other connections
 * instead of waiting. The batching loop (on the main thread) takes the queue: the first image opens a batch,
 * which closes when it holds --max-batch images or --batch-window-us after that image arrived, whichever
 * comes first; one forward pass answers them all, and each connection is resumed to send its own answer.
 * A larger window gathers larger batches (more images per second under load) at the price of that much
 * extra latency for each image.
 *
 * SIGINT or SIGTERM: the server stops accepting connections, answers every request already received (and
 * those the clients of open connections are still sending, within --timeout), then exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <microhttpd.h>

#include "course_error.h"
#include "file_util.h"
#include "gemm.h"
#include "gpu_cnn.h"
#include "request.h"
#include "serve_model.h"
#include "train_util.h"

#ifndef COURSE_WEB_ROOT_DEFAULT
#define COURSE_WEB_ROOT_DEFAULT "chapters/08-serving/web"
#endif

#define MAX_BATCH_LIMIT 1024
#define CLASSES 10

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- Metrics (Prometheus text format) --------------------------------------------------------------------- */

static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25, 0.5, 1, 2.5, 10}; /* seconds, upper bounds */
#define LATENCY_BUCKETS (sizeof latency_buckets / sizeof latency_buckets[0])
static const int batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
#define BATCH_BUCKETS (sizeof batch_buckets / sizeof batch_buckets[0])

typedef struct Metrics {
    pthread_mutex_t lock;
    uint64_t by_status[600]; /* requests answered, by HTTP status code */
    uint64_t latency_count[LATENCY_BUCKETS + 1]; /* per bucket (not cumulative); the last is +Inf */
    double latency_sum;
    uint64_t batch_count[BATCH_BUCKETS + 1];
    uint64_t batch_sum, batches;
} Metrics;

static void metrics_status(Metrics *m, unsigned status)
{
    pthread_mutex_lock(&m->lock);
    m->by_status[status < 600 ? status : 599]++;
    pthread_mutex_unlock(&m->lock);
}

static void metrics_latency(Metrics *m, double seconds)
{
    size_t b = 0;
    while (b < LATENCY_BUCKETS && seconds > latency_buckets[b]) b++;
    pthread_mutex_lock(&m->lock);
    m->latency_count[b]++;
    m->latency_sum += seconds;
    pthread_mutex_unlock(&m->lock);
}

static void metrics_batch(Metrics *m, int size)
{
    size_t b = 0;
    while (b < BATCH_BUCKETS && size > batch_buckets[b]) b++;
    pthread_mutex_lock(&m->lock);
    m->batch_count[b]++;
    m->batch_sum += (uint64_t)size;
    m->batches++;
    pthread_mutex_unlock(&m->lock);
}

/* The text of GET /metrics, malloc'ed. Histogram buckets are cumulative in this format: le="x" counts every
 * observation <= x. */
static char *metrics_text(Metrics *m)
{
    size_t capacity = 1 << 14, used = 0;
    char *text = malloc(capacity);
#define EMIT(...) used += (size_t)snprintf(text + used, capacity - used, __VA_ARGS__)
    pthread_mutex_lock(&m->lock);
    EMIT("# HELP mnist_serve_requests_total HTTP requests answered, by status code.\n");
    EMIT("# TYPE mnist_serve_requests_total counter\n");
    for (int code = 100; code < 600; code++) {
        if (m->by_status[code] > 0) EMIT("mnist_serve_requests_total{code=\"%d\"} %" PRIu64 "\n", code, m->by_status[code]);
    }
    EMIT("# HELP mnist_serve_predict_latency_seconds Time from a /predict body received to its answer ready.\n");
    EMIT("# TYPE mnist_serve_predict_latency_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= LATENCY_BUCKETS; b++) {
        cumulative += m->latency_count[b];
        if (b < LATENCY_BUCKETS) {
            EMIT("mnist_serve_predict_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", latency_buckets[b], cumulative);
        } else {
            EMIT("mnist_serve_predict_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
        }
    }
    EMIT("mnist_serve_predict_latency_seconds_sum %.9g\n", m->latency_sum);
    EMIT("mnist_serve_predict_latency_seconds_count %" PRIu64 "\n", cumulative);
    EMIT("# HELP mnist_serve_batch_size Images per forward pass.\n");
    EMIT("# TYPE mnist_serve_batch_size histogram\n");
    cumulative = 0;
    for (size_t b = 0; b <= BATCH_BUCKETS; b++) {
        cumulative += m->batch_count[b];
        if (b < BATCH_BUCKETS) {
            EMIT("mnist_serve_batch_size_bucket{le=\"%d\"} %" PRIu64 "\n", batch_buckets[b], cumulative);
        } else {
            EMIT("mnist_serve_batch_size_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
        }
    }
    EMIT("mnist_serve_batch_size_sum %" PRIu64 "\n", m->batch_sum);
    EMIT("mnist_serve_batch_size_count %" PRIu64 "\n", m->batches);
    pthread_mutex_unlock(&m->lock);
#undef EMIT
    return text;
}

/* ---- One request -------------------------------------------------------------------------------------------- */

typedef enum RequestStage { STAGE_RECEIVING, STAGE_QUEUED, STAGE_ANSWERED } RequestStage;

typedef struct Request {
    struct MHD_Connection *connection;
    char *body; /* the upload so far (POST /predict) */
    size_t length, capacity;
    bool too_large; /* the body passed REQUEST_MAX_BODY: the rest is read and dropped, then 413 */
    RequestStage stage;
    double received; /* when the whole body was there */
    float x[REQUEST_PIXELS]; /* (1, 28, 28) the decoded, normalised image */
    /* Filled by the batching loop. */
    float probabilities[CLASSES];
    int digit, batch_size;
    double answered;
    struct Request *next; /* in the queue */
} Request;

/* ---- The server ----------------------------------------------------------------------------------------------- */

typedef struct Server {
    ServeModel model;
    int max_batch;
    double window_seconds;
    const char *web_root;
    Metrics metrics;

    /* The queue of decoded images, oldest first, and the batching loop's state. */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a request was queued, or stopping was set */
    Request *head, *tail;
    bool stopping; /* the batching loop ends once the queue is empty */
    int in_flight; /* requests begun and not yet completed (MHD's completion callback) */
    pthread_cond_t idle; /* in_flight reached 0 */
    bool shutting_down; /* answers carry "Connection: close" */
    struct MHD_Daemon *daemon;
    MHD_socket listener; /* handed back by MHD_quiesce_daemon, for us to close */
    int timeout; /* --timeout, seconds */
    int unanswered; /* requests still unfinished when the shutdown gave up waiting */
} Server;

static double queued_at(const Request *r) { return r->received; }

/* pthread_cond_timedwait until the CLOCK_MONOTONIC time `deadline` (the condition variables here use that
 * clock, so a change of the wall clock cannot stretch or cut a batch window). */
static void cond_timedwait_until(pthread_cond_t *cond, pthread_mutex_t *lock, double deadline)
{
    struct timespec t;
    t.tv_sec = (time_t)deadline;
    t.tv_nsec = (long)((deadline - (double)t.tv_sec) * 1e9);
    if (t.tv_nsec >= 1000000000L) t.tv_nsec = 999999999L;
    pthread_cond_timedwait(cond, lock, &t);
}

/* Take the next batch from the queue into batch[]: wait for a first request, then gather more until the batch
 * holds max_batch requests or `window` seconds have passed since that first request arrived. Returns the
 * batch's size; 0 only when the server is stopping and the queue is empty. */
static int gather_batch(Server *s, Request **batch, int max_batch, double window)
{
    /* BEGIN EXERCISE ch08.gather_batch: under s->lock: wait on s->changed while the queue (s->head) is empty and not s->stopping (return 0 if still empty); deadline = the first request's queued_at + window; pop requests from the head into batch while fewer than max_batch, and while the queue is empty and before the deadline wait on s->changed with a timeout (cond_timedwait_until); return the count (about 20 lines) | zh: 持有 s->lock：当队列（s->head）为空且 s->stopping 为假时在 s->changed 上等待（仍为空就返回 0）；deadline = 第一个请求的 queued_at + window；当 batch 里不足 max_batch 个时从队首弹出请求放进 batch，队列为空且未到 deadline 时带超时地在 s->changed 上等待（cond_timedwait_until）；返回请求个数（约 20 行） */
    pthread_mutex_lock(&s->lock);
    while (s->head == NULL && !s->stopping) pthread_cond_wait(&s->changed, &s->lock);
    int n = 0;
    if (s->head != NULL) {
        const double deadline = queued_at(s->head) + window;
        while (n < max_batch) {
            if (s->head != NULL) {
                batch[n++] = s->head;
                s->head = s->head->next;
                if (s->head == NULL) s->tail = NULL;
            } else if (s->stopping || now_seconds() >= deadline) {
                break;
            } else {
                cond_timedwait_until(&s->changed, &s->lock, deadline);
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
    /* END EXERCISE */
}

/* The batching loop: batch after batch, one forward pass each, until the server stops. It runs on the main
 * thread: the forward pass's OpenMP threads (and chapter 03's per-thread GEMM buffers) then live as long as
 * the program, instead of being torn down with a thread of their own. */
static void run_batches(Server *s)
{
    Request **batch = xmalloc((size_t)s->max_batch * sizeof *batch);
    float *x = xmalloc((size_t)s->max_batch * REQUEST_PIXELS * sizeof *x); /* (B, 1, 28, 28) */
    float *probabilities = xmalloc((size_t)s->max_batch * CLASSES * sizeof *probabilities); /* (B, 10) */
    int *digits = xmalloc((size_t)s->max_batch * sizeof *digits); /* (B) */
    int n;
    while ((n = gather_batch(s, batch, s->max_batch, s->window_seconds)) > 0) {
        for (int i = 0; i < n; i++) memcpy(x + (size_t)i * REQUEST_PIXELS, batch[i]->x, sizeof batch[i]->x);
        serve_model_predict(&s->model, x, n, probabilities, digits);
        metrics_batch(&s->metrics, n);
        const double answered = now_seconds();
        for (int i = 0; i < n; i++) {
            Request *r = batch[i];
            memcpy(r->probabilities, probabilities + (size_t)i * CLASSES, sizeof r->probabilities);
            r->digit = digits[i];
            r->batch_size = n;
            r->answered = answered;
            r->stage = STAGE_ANSWERED;
            /* The last touch of r by this thread: once resumed, the connection's thread sends the answer and
             * may free r. */
            MHD_resume_connection(r->connection);
        }
    }
    free(batch);
    free(x);
    free(probabilities);
    free(digits);
}

/* ---- HTTP ----------------------------------------------------------------------------------------------------- */

static enum MHD_Result respond(Server *s, struct MHD_Connection *c, unsigned status, const char *content_type,
                               void *body, size_t length, enum MHD_ResponseMemoryMode mode, const char *allow)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(length, body, mode);
    if (response == NULL) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (allow != NULL) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
    pthread_mutex_lock(&s->lock);
    const bool closing = s->shutting_down;
    pthread_mutex_unlock(&s->lock);
    if (closing) MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    const enum MHD_Result result = MHD_queue_response(c, status, response);
    MHD_destroy_response(response);
    if (result != MHD_YES) fprintf(stderr, "mnist_serve: libmicrohttpd refused to queue a %u answer\n", status);
    metrics_status(&s->metrics, status);
    return result;
}

/* A JSON answer (request.c writes it). */
static enum MHD_Result respond_json(Server *s, struct MHD_Connection *c, unsigned status, char *text,
                                    const char *allow)
{
    if (text == NULL) { /* out of memory, or a value JSON cannot hold (NaN): say so rather than drop the client */
        static const char failure[] = "{\"error\":\"the server could not write its answer\"}\n";
        fprintf(stderr, "mnist_serve: the JSON answer with status %u could not be written\n", status);
        return respond(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", (void *)failure,
                       sizeof failure - 1, MHD_RESPMEM_PERSISTENT, NULL);
    }
    return respond(s, c, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE, allow);
}

static enum MHD_Result respond_error(Server *s, struct MHD_Connection *c, unsigned status, const char *allow,
                                     const char *message)
{
    return respond_json(s, c, status, request_error_json(message), allow);
}

/* POST /predict, called by libmicrohttpd once per piece of the body, once more at its end, and once again
 * after the batching loop resumed the connection. */
static enum MHD_Result handle_predict(Server *s, Request *r, const char *upload, size_t *upload_size)
{
    struct MHD_Connection *c = r->connection;
    if (r->stage == STAGE_ANSWERED) {
        const double latency = r->answered - r->received;
        metrics_latency(&s->metrics, latency);
        return respond_json(s, c, MHD_HTTP_OK,
                            request_answer_json(r->digit, r->probabilities, CLASSES, (long long)(latency * 1e6 + 0.5),
                                                r->batch_size),
                            NULL);
    }
    if (r->stage == STAGE_QUEUED) return MHD_YES; /* not reached: a queued request's connection is suspended */
    if (*upload_size > 0) {
        if (!r->too_large && r->length + *upload_size > REQUEST_MAX_BODY) {
            r->too_large = true; /* read the rest and drop it, then answer 413 */
            free(r->body);
            r->body = NULL;
        }
        if (!r->too_large) {
            if (r->length + *upload_size > r->capacity) {
                r->capacity = 2 * (r->length + *upload_size);
                r->body = realloc(r->body, r->capacity);
                if (r->body == NULL) die("out of memory for a %zu-byte request body", r->capacity);
            }
            memcpy(r->body + r->length, upload, *upload_size);
            r->length += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* The whole body is here. */
    r->received = now_seconds();
    if (r->too_large) {
        char message[128];
        snprintf(message, sizeof message, "the body is over %zu bytes, the most accepted", REQUEST_MAX_BODY);
        return respond_error(s, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, message);
    }
    RequestError e;
    float pixels[REQUEST_PIXELS]; /* (28, 28) in [0, 1] */
    const int rc = request_decode(r->body != NULL ? r->body : "", r->length, pixels, &e);
    free(r->body);
    r->body = NULL;
    if (rc != 0) return respond_error(s, c, (unsigned)e.status, NULL, e.message);
    serve_model_normalize(pixels, r->x, REQUEST_PIXELS);
    pthread_mutex_lock(&s->lock);
    if (s->stopping) { /* the batching loop is ending (a request that came in at the very end of a shutdown) */
        pthread_mutex_unlock(&s->lock);
        return respond_error(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "the server is shutting down");
    }
    /* Suspend first, then queue: the batching loop may resume the connection as soon as it is queued. */
    r->stage = STAGE_QUEUED;
    MHD_suspend_connection(c);
    r->next = NULL;
    if (s->tail != NULL) s->tail->next = r;
    else s->head = r;
    s->tail = r;
    pthread_cond_signal(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return MHD_YES;
}

static enum MHD_Result handle_page(Server *s, struct MHD_Connection *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/index.html", s->web_root);
    unsigned char *bytes;
    size_t length;
    CourseError err;
    if (file_read_all(path, &bytes, &length, &err) != 0) {
        return respond_error(s, c, MHD_HTTP_NOT_FOUND, NULL, err.message);
    }
    return respond(s, c, MHD_HTTP_OK, "text/html; charset=utf-8", bytes, length, MHD_RESPMEM_MUST_FREE, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **context)
{
    (void)version;
    Server *s = cls;
    Request *r = *context;
    const bool predict = strcmp(url, "/predict") == 0;
    if (r == NULL) { /* the request's first call: its headers are in, its body (if any) not yet */
        r = xcalloc(1, sizeof *r);
        r->connection = c;
        *context = r;
        pthread_mutex_lock(&s->lock);
        s->in_flight++;
        pthread_mutex_unlock(&s->lock);
        /* A declared length over the limit is refused before a byte of the body is read. */
        const char *declared = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (predict && strcmp(method, MHD_HTTP_METHOD_POST) == 0 && declared != NULL && strtoull(declared, NULL, 10) > REQUEST_MAX_BODY) {
            char message[160];
            snprintf(message, sizeof message, "the body is %s bytes; at most %zu are accepted", declared,
                     REQUEST_MAX_BODY);
            return respond_error(s, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, message);
        }
        return MHD_YES;
    }
    const bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (predict) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
            if (*upload_size > 0) { *upload_size = 0; return MHD_YES; } /* drop a body, answer at its end */
            return respond_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST", "/predict takes POST");
        }
        return handle_predict(s, r, upload, upload_size);
    }
    if (*upload_size > 0) { /* a body where none is expected: read and drop it */
        *upload_size = 0;
        return MHD_YES;
    }
    const bool page = strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0;
    if (page || strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
        if (!get) {
            char message[96];
            snprintf(message, sizeof message, "%.40s takes GET", url);
            return respond_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD", message);
        }
        if (page) return handle_page(s, c);
        if (strcmp(url, "/healthz") == 0) {
            return respond(s, c, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n", 3, MHD_RESPMEM_PERSISTENT, NULL);
        }
        char *text = metrics_text(&s->metrics);
        return respond(s, c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
                       MHD_RESPMEM_MUST_FREE, NULL);
    }
    char message[200];
    snprintf(message, sizeof message, "no such path: %.100s (try POST /predict, GET /, /healthz or /metrics)", url);
    return respond_error(s, c, MHD_HTTP_NOT_FOUND, NULL, message);
}

/* libmicrohttpd calls this when a request ends: answered, or its client gone or timed out. */
static void completed(void *cls, struct MHD_Connection *c, void **context, enum MHD_RequestTerminationCode why)
{
    (void)c;
    (void)why;
    Server *s = cls;
    Request *r = *context;
    if (r == NULL) return;
    free(r->body);
    free(r);
    *context = NULL;
    pthread_mutex_lock(&s->lock);
    if (--s->in_flight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* The signal handler only posts a semaphore (sem_post is async-signal-safe; locking a mutex is not). */
static sem_t shutdown_signal;
static volatile sig_atomic_t signal_number;

static void on_signal(int number)
{
    signal_number = number;
    sem_post(&shutdown_signal);
}

/* Waits for SIGINT or SIGTERM, then shuts down: no new connections; the requests begun are answered (the
 * batching loop still runs); then the batching loop is told to stop. */
static void *shutdown_thread(void *arg)
{
    Server *s = arg;
    while (sem_wait(&shutdown_signal) != 0 && errno == EINTR) continue; /* EINTR: another signal came first */
    fprintf(stderr, "mnist_serve: %s: answering the requests in flight, then exiting\n",
            signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    /* The listening socket is closed only after MHD_stop_daemon: libmicrohttpd's threads take it out of their
     * epoll sets after this call returns, and abort if it is already closed. */
    s->listener = MHD_quiesce_daemon(s->daemon);
    pthread_mutex_lock(&s->lock);
    s->shutting_down = true;
    const double deadline = now_seconds() + s->timeout + 5;
    while (s->in_flight > 0 && now_seconds() < deadline) cond_timedwait_until(&s->idle, &s->lock, deadline);
    s->unanswered = s->in_flight;
    s->stopping = true;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- main ----------------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *checkpoint = NULL, *device_name = "auto", *host = "127.0.0.1", *web_root = COURSE_WEB_ROOT_DEFAULT;
    int port = 8080, max_batch = 32, window_us = 1000, threads = 2, timeout = 10;
    const FlagSpec flags[] = {
        {"--checkpoint", FLAG_STRING, &checkpoint, 0, 0, "the .safetensors of chapter 07's mnist_train --save (required)"},
        {"--device", FLAG_STRING, &device_name, 0, 0, "auto (the GPU if there is one, else the CPU), cuda or cpu"},
        {"--host", FLAG_STRING, &host, 0, 0, "address to listen on (IPv4 or IPv6; 0.0.0.0: every interface)"},
        {"--port", FLAG_INT, &port, 0, 65535, "TCP port (0: any free one; the port is printed)"},
        {"--max-batch", FLAG_INT, &max_batch, 1, MAX_BATCH_LIMIT, "images per forward pass at most"},
        {"--batch-window-us", FLAG_INT, &window_us, 0, 10000000, "how long a batch waits for more images after its first (µs)"},
        {"--threads", FLAG_INT, &threads, 1, 256, "CPU threads: the forward pass's (OpenMP) and libmicrohttpd's"},
        {"--timeout", FLAG_INT, &timeout, 1, 3600, "seconds a connection may stay silent before it is closed"},
        {"--web-root", FLAG_STRING, &web_root, 0, 0, "folder of the drawing page, index.html"},
    };
    CourseError err;
    const int parsed = flags_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "mnist_serve",
                                   "Serve a trained MNIST network over HTTP with dynamic batching.", &err);
    if (parsed == FLAGS_HELP) return 0;
    if (parsed != 0) error_exit(&err);
    if (checkpoint == NULL) die("--checkpoint FILE is required (a checkpoint of mnist_train --save)");

    /* The device, as mnist_train chooses it. */
    char gpu_name[256] = "", why[256] = "";
    const bool have_gpu = gpu_cnn_device_available(gpu_name, sizeof gpu_name, why, sizeof why);
    ServeDevice device;
    if (strcmp(device_name, "auto") == 0) {
        device = have_gpu ? SERVE_DEVICE_CUDA : SERVE_DEVICE_CPU;
    } else if (strcmp(device_name, "cuda") == 0) {
        if (!have_gpu && !gpu_cnn_is_simulator()) die("--device cuda: %s", why);
        device = SERVE_DEVICE_CUDA;
    } else if (strcmp(device_name, "cpu") == 0) {
        device = SERVE_DEVICE_CPU;
    } else {
        die("--device: '%s' is not one of: auto, cuda, cpu", device_name);
    }

    /* The address, checked before the (slower) model load. */
    struct sockaddr_storage address;
    memset(&address, 0, sizeof address);
    unsigned ip_flag = 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        ip_flag = MHD_USE_IPv6;
    } else {
        die("--host: '%s' is not an IPv4 or IPv6 address (for example 127.0.0.1, 0.0.0.0 or ::1)", host);
    }

    /* SIGINT and SIGTERM start the shutdown (shutdown_thread). A handler rather than sigwait(): libraries start
     * threads of their own before main() (OpenBLAS's pool), with the signals unblocked, and the kernel may
     * deliver a signal to any of them; a handler runs wherever it lands. SIGPIPE (a client gone) is ignored:
     * the failed write is reported to libmicrohttpd as an error instead. */
    sem_init(&shutdown_signal, 0, 0);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    gemm_set_openblas_threads(1);

    static Server s; /* static: the server lives as long as the program; zero-initialised */
    s.max_batch = max_batch;
    s.window_seconds = window_us * 1e-6;
    s.web_root = web_root;
    if (serve_model_load(&s.model, checkpoint, device, max_batch, &err) != 0) error_exit(&err);
    const CnnConfig *cfg = &s.model.net.config;
    printf("model: %s: padding %d, widths %d-%d-%d, %d epochs, test accuracy %.2f %% (on %zu images)\n", checkpoint,
           cfg->padding, cfg->conv1_channels, cfg->conv2_channels, cfg->hidden, s.model.state.epoch,
           s.model.state.epoch > 0 ? 100 * s.model.state.test_accuracy[s.model.state.epoch - 1] : 0.0,
           s.model.state.test_count);
    if (device == SERVE_DEVICE_CUDA && have_gpu) {
        printf("device: cuda (%s)\n", gpu_name);
    } else if (device == SERVE_DEVICE_CUDA) {
        printf("device: cuda on the CPU simulator (%s): correct but slow\n", why);
    } else {
        printf("device: cpu, %d threads\n", threads);
    }
    printf("batching: up to %d images, window %d us\n", max_batch, window_us);

    pthread_mutex_init(&s.metrics.lock, NULL);
    pthread_mutex_init(&s.lock, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&s.changed, &monotonic);
    pthread_cond_init(&s.idle, &monotonic);

    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG |
            ip_flag,
        (uint16_t)port, NULL, NULL, handle, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&address,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout,
        MHD_OPTION_NOTIFY_COMPLETED, completed, &s, MHD_OPTION_END);
    if (daemon == NULL) {
        die("cannot listen on %s port %d: %s", host, port,
            errno != 0 ? strerror(errno) : "libmicrohttpd refused to start");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    const unsigned bound = info != NULL ? info->port : (unsigned)port;
    printf(ip_flag ? "listening on http://[%s]:%u\n" : "listening on http://%s:%u\n", host, bound);
    fflush(stdout);

    s.daemon = daemon;
    s.listener = MHD_INVALID_SOCKET;
    s.timeout = timeout;
    pthread_t stopper;
    if (pthread_create(&stopper, NULL, shutdown_thread, &s) != 0) die("cannot start a thread");
    run_batches(&s); /* until the shutdown thread sets stopping and the queue is empty */
    pthread_mutex_lock(&s.lock);
    const bool stopping = s.stopping;
    pthread_mutex_unlock(&s.lock);
    if (!stopping) {
        /* gather_batch returned 0 although no shutdown has begun (a bug, or the exercise's stub): nothing is left
         * to answer requests, and every client would wait for its time-out. Better to exit now and say why;
         * _exit, because libmicrohttpd's threads are still running and must not see the process tear down. */
        fprintf(stderr, "mnist_serve: gather_batch returned no batch while the server was running (it must wait "
                        "for a request, and return 0 only once the server is stopping): exiting\n");
        fflush(stdout);
        _exit(1);
    }
    pthread_join(stopper, NULL);
    MHD_stop_daemon(daemon);
    if (s.listener != MHD_INVALID_SOCKET) close(s.listener);
    serve_model_free(&s.model);
    if (s.unanswered > 0) {
        fprintf(stderr, "mnist_serve: %d requests were still unfinished after %d s\n", s.unanswered, s.timeout + 5);
        return 1;
    }
    fprintf(stderr, "mnist_serve: stopped\n");
    return 0;
}
