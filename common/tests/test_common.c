/* test_common.c — tests of common/: npy and IDX readers (good and bad files), the comparison helper, the RNG,
 * the timer and atomic writes.
 *
 *   build/bin/test_common --list
 *   build/bin/test_common npy.bad_files
 *
 * Bad files are written to a temporary folder by the test itself; each must be refused with a message that
 * names the file and says what is wrong.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "course_error.h"
#include "file_util.h"
#include "idx.h"
#include "npy.h"
#include "rng.h"
#include "safetensors.h"
#include "testing.h"
#include "timer.h"

static char temp_dir[256];

static const char *make_temp_dir(void)
{
    if (temp_dir[0] == '\0') {
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(temp_dir, sizeof temp_dir, "%s/course-test-XXXXXX", base);
        if (mkdtemp(temp_dir) == NULL) {
            die("cannot create a temporary folder under %s", base);
        }
    }
    return temp_dir;
}

static void temp_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", make_temp_dir(), name);
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        die("%s: cannot write test file", path);
    }
}

/* A hand-made .npy file: preamble + header text + data bytes. */
static size_t make_npy(unsigned char *out, const char *header, const void *data, size_t data_bytes, int major)
{
    size_t hlen = strlen(header);
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    out[8] = (unsigned char)(hlen & 0xff);
    out[9] = (unsigned char)(hlen >> 8);
    memcpy(out + 10, header, hlen);
    if (data_bytes) {
        memcpy(out + 10 + hlen, data, data_bytes);
    }
    return 10 + hlen + data_bytes;
}

/* Expect a reader to refuse `bytes`, with a message containing the file name and `keyword`. */
static bool expect_npy_error(const char *name, const unsigned char *bytes, size_t n, const char *keyword)
{
    char path[512];
    temp_path(path, sizeof path, name);
    write_bytes(path, bytes, n);
    NpyArray a;
    CourseError err = {{0}};
    int status = npy_load(path, &a, &err);
    if (status == 0) {
        npy_free(&a);
        return check_true(false, "%s: npy_load accepted a bad file (%s expected)", name, keyword);
    }
    printf("refused as expected: %s\n", err.message);
    return check_true(strstr(err.message, path) != NULL && strstr(err.message, keyword) != NULL,
                      "%s: message should name the file and say '%s', got: %s", name, keyword, err.message);
}

static int test_npy_roundtrip(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    char path[512];
    temp_path(path, sizeof path, "roundtrip.npy");
    Rng rng;
    rng_seed(&rng, 7, 0);
    /* float32 (3, 7, 129) */
    size_t shape[3] = {3, 7, 129};
    size_t n = 3 * 7 * 129;
    float *f = xmalloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)rng_normal(&rng);
    }
    CourseError err;
    NpyArray a;
    ok &= check_true(npy_save(path, NPY_FLOAT32, 3, shape, f, &err) == 0, "save float32: %s", err.message);
    ok &= check_true(npy_load(path, &a, &err) == 0, "load float32: %s", err.message);
    if (ok) {
        ok &= check_true(a.dtype == NPY_FLOAT32 && a.ndim == 3 && a.shape[0] == 3 && a.shape[1] == 7 &&
                             a.shape[2] == 129 && a.count == n,
                         "float32 header round trip");
        ok &= check_true(memcmp(a.data, f, n * sizeof *f) == 0, "float32 data round trip");
        npy_free(&a);
    }
    free(f);
    /* int32, int64, uint8 of odd shapes, and a 0-d scalar and an empty array */
    int32_t i32[5] = {-1, 0, 1, 2147483647, -2147483647 - 1};
    float scalar = 3.5f;
    int64_t i64[2] = {INT64_MIN, 1234567890123LL};
    uint8_t u8[6] = {0, 1, 127, 128, 254, 255};
    size_t s5[1] = {5}, s2[2] = {2, 1}, s6[2] = {3, 2}, s0[1] = {0};
    struct {
        NpyDtype dtype;
        int ndim;
        size_t *shape;
        const void *data;
        size_t bytes;
    } cases[] = {
        {NPY_INT32, 1, s5, i32, sizeof i32}, {NPY_INT64, 2, s2, i64, sizeof i64}, {NPY_UINT8, 2, s6, u8, sizeof u8},
        {NPY_FLOAT32, 0, NULL, &scalar, sizeof scalar}, {NPY_FLOAT32, 1, s0, i32, 0},
    };
    for (size_t k = 0; k < COUNT_OF(cases); k++) {
        ok &= check_true(npy_save(path, cases[k].dtype, cases[k].ndim, cases[k].shape, cases[k].data, &err) == 0,
                         "save %s: %s", npy_dtype_name(cases[k].dtype), err.message);
        ok &= check_true(npy_load(path, &a, &err) == 0, "load %s: %s", npy_dtype_name(cases[k].dtype), err.message);
        if (a.data) {
            ok &= check_true(a.dtype == cases[k].dtype && a.ndim == cases[k].ndim, "%s header round trip",
                             npy_dtype_name(cases[k].dtype));
            ok &= check_true(a.count * npy_dtype_size(a.dtype) == cases[k].bytes &&
                                 memcmp(a.data, cases[k].data, cases[k].bytes) == 0,
                             "%s data round trip", npy_dtype_name(cases[k].dtype));
            npy_free(&a);
        }
    }
    /* Saving leaves no temporary file behind. */
    char command[700];
    snprintf(command, sizeof command, "ls %s | grep -q tmp", make_temp_dir());
    ok &= check_true(system(command) != 0, "npy_save left a temporary file in %s", make_temp_dir());
    return ok ? TEST_PASS : TEST_FAIL;
}

/* A file numpy wrote (a golden file) is read with the right shape. */
static int test_npy_numpy_written(const TestContext *ctx)
{
    NpyArray a;
    if (!golden_load(ctx, "ch01/x.npy", &a)) {
        return TEST_FAIL;
    }
    bool ok = check_true(a.ndim == 1 && a.shape[0] == 1029, "ch01/x.npy should be (1029,), is ndim %d", a.ndim);
    const float *x = a.data;
    bool finite = true;
    for (size_t i = 0; i < a.count; i++) {
        finite &= isfinite(x[i]) != 0;
    }
    ok &= check_true(finite, "ch01/x.npy holds non-finite values");
    npy_free(&a);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_npy_bad_files(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    unsigned char buf[512];
    float four[4] = {1, 2, 3, 4};
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n";
    size_t n = make_npy(buf, good, four, sizeof four, 1);
    ok &= expect_npy_error("truncated_data.npy", buf, n - 3, "truncated");
    ok &= expect_npy_error("truncated_header.npy", buf, 20, "truncated");
    ok &= expect_npy_error("tiny.npy", buf, 5, "preamble");
    unsigned char extra[512];
    n = make_npy(extra, good, four, sizeof four, 1);
    extra[n] = 0;
    ok &= expect_npy_error("extra_bytes.npy", extra, n + 1, "unexpected");
    n = make_npy(buf, good, four, sizeof four, 1);
    buf[1] = 'X';
    ok &= expect_npy_error("bad_magic.npy", buf, n, "magic");
    n = make_npy(buf, good, four, sizeof four, 2);
    ok &= expect_npy_error("version2.npy", buf, n, "version");
    n = make_npy(buf, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }\n", four, sizeof four, 1);
    ok &= expect_npy_error("big_endian.npy", buf, n, "unsupported dtype");
    n = make_npy(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n", four, sizeof four, 1);
    ok &= expect_npy_error("float64.npy", buf, n, "unsupported dtype '<f8'");
    n = make_npy(buf, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n", four, sizeof four, 1);
    ok &= expect_npy_error("object.npy", buf, n, "unsupported dtype");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", four, sizeof four, 1);
    ok &= expect_npy_error("fortran.npy", buf, n, "Fortran");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n",
                 four, sizeof four, 1);
    ok &= expect_npy_error("overflow.npy", buf, n, "overflows");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }\n", four,
                 sizeof four, 1);
    ok &= expect_npy_error("huge_dim.npy", buf, n, "overflows");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }\n", four, sizeof four, 1);
    ok &= expect_npy_error("shape_too_big.npy", buf, n, "truncated");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, }\n", four, sizeof four, 1);
    ok &= expect_npy_error("no_shape.npy", buf, n, "lacks");
    n = make_npy(buf, "not a dict at all", four, sizeof four, 1);
    ok &= expect_npy_error("not_dict.npy", buf, n, "dict");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }\n", four, sizeof four, 1);
    ok &= expect_npy_error("negative.npy", buf, n, "non-negative");

    /* A missing file names the file and the reason. */
    NpyArray a;
    CourseError err;
    ok &= check_true(npy_load("/nonexistent/dir/x.npy", &a, &err) != 0 && strstr(err.message, "/nonexistent/dir/x.npy"),
                     "missing file: %s", err.message);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- IDX ---- */

static size_t make_idx(unsigned char *out, int type, int ndim, const uint32_t *dims, const unsigned char *data,
                       size_t data_bytes)
{
    out[0] = 0;
    out[1] = 0;
    out[2] = (unsigned char)type;
    out[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        out[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        out[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        out[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        out[7 + 4 * i] = (unsigned char)dims[i];
    }
    memcpy(out + 4 + 4 * ndim, data, data_bytes);
    return 4 + 4 * (size_t)ndim + data_bytes;
}

static void write_gzip(const char *path, const unsigned char *bytes, size_t n)
{
    gzFile f = gzopen(path, "wb");
    if (f == NULL || gzwrite(f, bytes, (unsigned)n) != (int)n || gzclose(f) != Z_OK) {
        die("%s: cannot write gzip test file", path);
    }
}

static bool expect_idx_error(const char *name, const unsigned char *bytes, size_t n, const char *keyword)
{
    char path[512];
    temp_path(path, sizeof path, name);
    write_bytes(path, bytes, n);
    IdxArray a;
    CourseError err = {{0}};
    if (idx_load(path, &a, &err) == 0) {
        idx_free(&a);
        return check_true(false, "%s: idx_load accepted a bad file (%s expected)", name, keyword);
    }
    printf("refused as expected: %s\n", err.message);
    return check_true(strstr(err.message, path) != NULL && strstr(err.message, keyword) != NULL,
                      "%s: message should name the file and say '%s', got: %s", name, keyword, err.message);
}

static int test_idx_roundtrip(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    /* 3 images of 5x7 and 3 labels, plain and gzip'd, loaded as a data set. */
    unsigned char pixels[3 * 5 * 7];
    for (size_t i = 0; i < sizeof pixels; i++) {
        pixels[i] = (unsigned char)(i * 37 % 256);
    }
    unsigned char labels[3] = {7, 0, 9};
    unsigned char buf[512];
    uint32_t image_dims[3] = {3, 5, 7}, label_dims[1] = {3};
    const char *dir = make_temp_dir();
    char path[1100];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    write_bytes(path, buf, make_idx(buf, 0x08, 3, image_dims, pixels, sizeof pixels));
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_gzip(path, buf, make_idx(buf, 0x08, 1, label_dims, labels, sizeof labels));
    MnistSplit split;
    CourseError err;
    ok &= check_true(mnist_load(&split, dir, "t10k", &err) == 0, "plain images + gzip labels: %s", err.message);
    if (ok) {
        ok &= check_true(split.count == 3 && split.rows == 5 && split.cols == 7, "dimensions");
        ok &= check_true(memcmp(split.images, pixels, sizeof pixels) == 0, "pixels");
        ok &= check_true(memcmp(split.labels, labels, sizeof labels) == 0, "labels");
        mnist_free(&split);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_idx_bundled_mnist(const TestContext *ctx)
{
    bool ok = true;
    const char *splits[2] = {"train", "t10k"};
    for (int s = 0; s < 2; s++) {
        MnistSplit split;
        CourseError err;
        if (mnist_load(&split, ctx->data_dir, splits[s], &err) != 0) {
            printf("FAIL %s\n", err.message);
            return TEST_FAIL;
        }
        ok &= check_true(split.count == 10000 && split.rows == 28 && split.cols == 28,
                         "%s: expected 10000 images of 28x28, got %zu of %zux%zu", splits[s], split.count, split.rows,
                         split.cols);
        size_t histogram[10] = {0};
        double mean = 0.0;
        for (size_t i = 0; i < split.count; i++) {
            histogram[split.labels[i]]++;
        }
        for (size_t i = 0; i < split.count * split.rows * split.cols; i++) {
            mean += split.images[i];
        }
        mean /= 255.0 * (double)(split.count * split.rows * split.cols);
        for (int d = 0; d < 10; d++) {
            ok &= check_true(histogram[d] > 800 && histogram[d] < 1300, "%s: digit %d appears %zu times", splits[s], d,
                             histogram[d]);
        }
        /* MNIST's mean pixel is 0.1307 (the normalisation constant the trainers use). */
        ok &= check_true(fabs(mean - 0.1307) < 0.005, "%s: mean pixel %.4f, expected about 0.1307", splits[s], mean);
        printf("%s: %zu images, mean pixel %.4f\n", splits[s], split.count, mean);
        mnist_free(&split);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_idx_bad_files(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    unsigned char pixels[2 * 3 * 3] = {0};
    unsigned char buf[512];
    uint32_t dims[3] = {2, 3, 3};
    size_t n = make_idx(buf, 0x08, 3, dims, pixels, sizeof pixels);
    ok &= expect_idx_error("truncated-data", buf, n - 1, "truncated");
    ok &= expect_idx_error("truncated-header", buf, 9, "truncated");
    ok &= expect_idx_error("three-bytes", buf, 3, "shorter");
    ok &= expect_idx_error("empty", buf, 0, "shorter");
    unsigned char extra[512];
    memcpy(extra, buf, n);
    extra[n] = 1;
    ok &= expect_idx_error("extra-data", extra, n + 1, "size mismatch");
    memcpy(extra, buf, n);
    extra[0] = 0x1f; /* e.g. a gzip file renamed without being gzip: 0x1f 0x8b */
    ok &= expect_idx_error("bad-magic", extra, n, "magic");
    n = make_idx(buf, 0x0D, 3, dims, pixels, sizeof pixels);
    ok &= expect_idx_error("float-type", buf, n, "not supported");
    n = make_idx(buf, 0x08, 0, dims, pixels, 0);
    ok &= expect_idx_error("zero-dims", buf, n, "dimensions");
    uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
    n = make_idx(buf, 0x08, 3, huge, pixels, sizeof pixels);
    ok &= expect_idx_error("overflow", buf, n, "overflow");

    /* A gzip file cut short, and one with corrupted compressed bytes. */
    char path[1100];
    temp_path(path, sizeof path, "whole.gz");
    n = make_idx(buf, 0x08, 3, dims, pixels, sizeof pixels);
    write_gzip(path, buf, n);
    unsigned char *gz = NULL;
    size_t gz_length = 0;
    CourseError err;
    if (file_read_all(path, &gz, &gz_length, &err) != 0) {
        error_exit(&err);
    }
    ok &= expect_idx_error("cut.gz", gz, gz_length - 6, "truncated");
    gz[gz_length / 2] ^= 0x55;
    gz[gz_length / 2 + 1] ^= 0xaa;
    ok &= expect_idx_error("corrupt.gz", gz, gz_length, "corrupt");
    free(gz);

    /* Images and labels that disagree; labels out of range. */
    const char *dir = make_temp_dir();
    unsigned char labels[3] = {1, 2, 3};
    uint32_t label_dims[1] = {3};
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    write_bytes(path, buf, make_idx(buf, 0x08, 3, dims, pixels, sizeof pixels));
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    write_bytes(path, buf, make_idx(buf, 0x08, 1, label_dims, labels, sizeof labels));
    MnistSplit split;
    ok &= check_true(mnist_load(&split, dir, "train", &err) != 0 && strstr(err.message, "2 images") &&
                         strstr(err.message, "3 labels"),
                     "count mismatch: %s", err.message);
    printf("refused as expected: %s\n", err.message);
    label_dims[0] = 2;
    labels[1] = 10;
    write_bytes(path, buf, make_idx(buf, 0x08, 1, label_dims, labels, 2));
    ok &= check_true(mnist_load(&split, dir, "train", &err) != 0 && strstr(err.message, "label 1 is 10"),
                     "label out of range: %s", err.message);
    printf("refused as expected: %s\n", err.message);
    ok &= check_true(mnist_load(&split, "/nonexistent", "train", &err) != 0 && strstr(err.message, "/nonexistent"),
                     "missing directory: %s", err.message);
    printf("refused as expected: %s\n", err.message);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- the comparison helper must fail on NaN, Inf and real mismatches, and pass on close values ---- */

static int test_check_helper(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    float expected[4] = {1.0f, -2.0f, 0.0f, 1e-3f};
    float close[4] = {1.0f + 1e-7f, -2.0f, 1e-9f, 1e-3f};
    float with_nan[4] = {1.0f, NAN, 0.0f, 1e-3f};
    float with_inf[4] = {1.0f, -2.0f, INFINITY, 1e-3f};
    float off[4] = {1.0f, -2.0f, 0.0f, 2e-3f};
    size_t shape[2] = {2, 2};
    printf("-- the next three checks must fail --\n");
    ok &= check_true(check_close("close", close, expected, 4, shape, 2, 1e-6, 1e-5), "close values must pass");
    ok &= check_true(!check_close("nan", with_nan, expected, 4, shape, 2, 1e-6, 1e-5), "NaN must fail");
    ok &= check_true(!check_close("inf", with_inf, expected, 4, shape, 2, 1e-6, 1e-5), "Inf must fail");
    ok &= check_true(!check_close("off", off, expected, 4, shape, 2, 1e-6, 1e-5), "a real mismatch must fail");
    /* NaN where NaN is expected: only with CHECK_NAN_EXPECTED. */
    float nan_expected[2] = {NAN, 1.0f};
    float nan_got[2] = {NAN, 1.0f};
    ok &= check_true(!check_close("nan strict", nan_got, nan_expected, 2, NULL, 1, 1e-6, 1e-5),
                     "strict mode must fail on NaN even where NaN is expected");
    ok &= check_true(check_close_ex("nan expected", nan_got, nan_expected, 2, NULL, 1, 1e-6, 1e-5, CHECK_NAN_EXPECTED),
                     "CHECK_NAN_EXPECTED accepts NaN where NaN is expected");
    float number_for_nan[2] = {0.0f, 1.0f};
    ok &= check_true(!check_close_ex("nan hidden", number_for_nan, nan_expected, 2, NULL, 1, 1e-6, 1e-5,
                                     CHECK_NAN_EXPECTED),
                     "a number where NaN is expected must fail");
    float infs[2] = {INFINITY, -INFINITY};
    ok &= check_true(check_close("same infinities", infs, infs, 2, NULL, 1, 0, 0), "equal infinities match");
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_rng(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    Rng a, b, c;
    rng_seed(&a, 42, 0);
    rng_seed(&b, 42, 0);
    rng_seed(&c, 42, 1);
    int same = 1, differs = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = rng_u32(&a), y = rng_u32(&b), z = rng_u32(&c);
        same &= x == y;
        differs |= x != z;
    }
    ok &= check_true(same, "same seed and stream must give the same sequence");
    ok &= check_true(differs, "another stream must give another sequence");
    /* Uniform: in [0,1), mean 1/2. Normal: mean 0, variance 1. below(): every value, in range. */
    double sum = 0.0, sum_n = 0.0, sum_n2 = 0.0;
    int in_range = 1;
    size_t counts[7] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&a);
        in_range &= u >= 0.0f && u < 1.0f;
        sum += u;
        double z = rng_normal(&a);
        sum_n += z;
        sum_n2 += z * z;
        uint32_t k = rng_below(&a, 7);
        in_range &= k < 7;
        counts[k < 7 ? k : 0]++;
    }
    ok &= check_true(in_range, "values out of range");
    ok &= check_true(fabs(sum / n - 0.5) < 0.005, "uniform mean %.4f", sum / n);
    ok &= check_true(fabs(sum_n / n) < 0.01 && fabs(sum_n2 / n - 1.0) < 0.02, "normal mean %.4f, variance %.4f",
                     sum_n / n, sum_n2 / n);
    for (int k = 0; k < 7; k++) {
        ok &= check_true(fabs((double)counts[k] / n - 1.0 / 7) < 0.005, "rng_below(7): %d drawn %zu times", k, counts[k]);
    }
    /* A shuffle is a permutation, and not the identity. */
    uint32_t idx[257];
    for (uint32_t i = 0; i < 257; i++) {
        idx[i] = i;
    }
    rng_shuffle(&a, idx, 257);
    int seen[257] = {0}, moved = 0;
    for (uint32_t i = 0; i < 257; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    int perm = 1;
    for (int i = 0; i < 257; i++) {
        perm &= seen[i] == 1;
    }
    ok &= check_true(perm && moved > 200, "shuffle must permute (moved %d of 257)", moved);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_timer(const TestContext *ctx)
{
    (void)ctx;
    double t0 = timer_seconds();
    struct timespec pause = {0, 20000000}; /* 20 ms */
    nanosleep(&pause, NULL);
    double dt = timer_seconds() - t0;
    return check_true(dt >= 0.019 && dt < 1.0, "20 ms sleep measured as %.4f s", dt) ? TEST_PASS : TEST_FAIL;
}

/* An aborted atomic write leaves the old file untouched and no temporary behind. */
static int test_atomic_write(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    char path[512];
    temp_path(path, sizeof path, "atomic.txt");
    write_bytes(path, "old", 3);
    AtomicFile f;
    CourseError err;
    ok &= check_true(atomic_file_open(&f, path, &err) == 0, "open: %s", err.message);
    fputs("half-written new content", f.stream);
    atomic_file_abort(&f);
    unsigned char *bytes;
    size_t n;
    ok &= check_true(file_read_all(path, &bytes, &n, &err) == 0 && n == 3 && memcmp(bytes, "old", 3) == 0,
                     "aborted write changed the file");
    free(bytes);
    ok &= check_true(atomic_file_open(&f, path, &err) == 0, "open: %s", err.message);
    fputs("new", f.stream);
    ok &= check_true(atomic_file_commit(&f, &err) == 0, "commit: %s", err.message);
    ok &= check_true(file_read_all(path, &bytes, &n, &err) == 0 && n == 3 && memcmp(bytes, "new", 3) == 0,
                     "committed write did not replace the file");
    free(bytes);
    ok &= check_true(atomic_file_open(&f, "/nonexistent/dir/file", &err) != 0 && strstr(err.message, "/nonexistent"),
                     "unwritable folder: %s", err.message);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- safetensors ----------------------------------------------------------------------------------------- */

/* Write two tensors (one of odd shape, one scalar-like) with metadata, read them back bit for bit. */
static int test_safetensors_roundtrip(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    float a[3 * 5 * 7], b[1] = {-0.0f};
    Rng rng;
    rng_seed(&rng, 7, 1);
    for (size_t i = 0; i < COUNT_OF(a); ++i) {
        a[i] = rng_uniform(&rng) * 2.0f - 1.0f;
    }
    a[4] = NAN; /* a NaN survives a round trip as bits */
    char path[512];
    temp_path(path, sizeof path, "round.safetensors");
    SafetensorsTensorView views[2] = {{"layer.weight", 3, {3, 5, 7}, a}, {"layer.bias", 1, {1}, b}};
    SafetensorsMeta meta[2] = {{"epoch", "3"}, {"note", "quote \" backslash \\ tab \t done"}};
    CourseError err = {{0}};
    if (safetensors_write_f32(path, views, 2, meta, 2, &err) != 0) {
        printf("FAIL write: %s\n", err.message);
        return TEST_FAIL;
    }
    SafetensorsFile f;
    if (safetensors_read(path, &f, &err) != 0) {
        printf("FAIL read: %s\n", err.message);
        return TEST_FAIL;
    }
    const SafetensorsEntry *ea = safetensors_find(&f, "layer.weight");
    const SafetensorsEntry *eb = safetensors_find(&f, "layer.bias");
    ok &= check_true(ea != NULL && eb != NULL && f.n_tensors == 2, "both tensors found");
    if (ea != NULL && eb != NULL) {
        ok &= check_true(ea->ndim == 3 && ea->shape[0] == 3 && ea->shape[1] == 5 && ea->shape[2] == 7 &&
                             strcmp(ea->dtype, "F32") == 0 && ea->begin == 0,
                         "layer.weight is F32 (3, 5, 7) at offset 0");
        float got[3 * 5 * 7], got_b[1];
        safetensors_copy_f32(&f, ea, got);
        safetensors_copy_f32(&f, eb, got_b);
        ok &= check_true(memcmp(got, a, sizeof a) == 0 && memcmp(got_b, b, sizeof b) == 0,
                         "the data comes back bit for bit (NaN and -0 included)");
    }
    const char *epoch = safetensors_meta(&f, "epoch");
    const char *note = safetensors_meta(&f, "note");
    ok &= check_true(epoch != NULL && strcmp(epoch, "3") == 0, "metadata epoch = 3");
    ok &= check_true(note != NULL && strcmp(note, meta[1].value) == 0, "escaped metadata comes back");
    ok &= check_true(safetensors_meta(&f, "data_crc32") != NULL, "the writer adds data_crc32");
    safetensors_free(&f);
    /* The data section starts 8-byte aligned (as the reference implementation writes it). */
    unsigned char *bytes;
    size_t length;
    if (file_read_all(path, &bytes, &length, &err) == 0) {
        uint64_t header = 0;
        for (int i = 7; i >= 0; --i) {
            header = (header << 8) | bytes[i];
        }
        ok &= check_true((8 + header) % 8 == 0 && length == 8 + header + sizeof a + sizeof b,
                         "header padded to 8 bytes, data right after it");
        free(bytes);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* A safetensors file from a header text and `data_bytes` bytes of data (0x3F each). */
static size_t make_safetensors(unsigned char *out, const char *header, size_t data_bytes)
{
    const size_t n = strlen(header);
    for (int i = 0; i < 8; ++i) {
        out[i] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(out + 8, header, n);
    memset(out + 8 + n, 0x3F, data_bytes);
    return 8 + n + data_bytes;
}

static bool expect_safetensors_error(const char *name, const unsigned char *bytes, size_t n, const char *keyword)
{
    char path[512];
    temp_path(path, sizeof path, name);
    write_bytes(path, bytes, n);
    SafetensorsFile f;
    CourseError err = {{0}};
    if (safetensors_read(path, &f, &err) == 0) {
        safetensors_free(&f);
        return check_true(false, "%s: safetensors_read accepted a bad file ('%s' expected)", name, keyword);
    }
    printf("refused as expected: %s\n", err.message);
    return check_true(strstr(err.message, path) != NULL && strstr(err.message, keyword) != NULL,
                      "%s: message should name the file and say '%s', got: %s", name, keyword, err.message);
}

static int test_safetensors_bad_files(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    unsigned char buf[1024];
    const char *good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    size_t n = make_safetensors(buf, good, 24);
    {
        char path[512];
        temp_path(path, sizeof path, "good.safetensors");
        write_bytes(path, buf, n);
        SafetensorsFile f;
        CourseError err = {{0}};
        ok &= check_true(safetensors_read(path, &f, &err) == 0, "a minimal valid file is accepted (%s)", err.message);
        safetensors_free(&f);
    }
    ok &= expect_safetensors_error("short.safetensors", buf, 5, "shorter than");
    ok &= expect_safetensors_error("truncated.safetensors", buf, n - 4, "truncated");
    ok &= expect_safetensors_error("header_cut.safetensors", buf, 30, "truncated");
    n = make_safetensors(buf, good, 28);
    ok &= expect_safetensors_error("trailing.safetensors", buf, n, "after the last tensor");
    struct {
        const char *name, *header;
        size_t data; /* bytes of data after the header */
        const char *keyword;
    } cases[] = {
        {"not_json.safetensors", "hello", 0, "JSON"},
        {"not_object.safetensors", "[1,2]", 0, "JSON"},
        {"unterminated.safetensors", "{\"w\":{\"dtype\":\"F32", 0, "JSON"},
        {"bad_dtype.safetensors", "{\"w\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"size_mismatch.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
         "do not hold"},
        {"negative.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "integer"},
        {"fraction.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "fraction"},
        {"huge_shape.safetensors",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4, "too large"},
        {"no_offsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
        {"gap.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "without gaps"},
        {"overlap.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlaps"},
        {"duplicate.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, "twice"},
        {"meta_number.safetensors", "{\"__metadata__\":{\"epoch\":3}}", 0, "must be a string"},
        {"bad_crc.safetensors",
         "{\"__metadata__\":{\"data_crc32\":\"00000000\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[0,4]}}",
         4, "CRC-32"},
        {"extra_key.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
         "unexpected"},
        {"trailing_text.safetensors", "{} x", 0, "after the header"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); ++i) {
        n = make_safetensors(buf, cases[i].header, cases[i].data);
        ok &= expect_safetensors_error(cases[i].name, buf, n, cases[i].keyword);
    }
    /* A real file with one flipped data bit fails its CRC. */
    float w[6] = {1, 2, 3, 4, 5, 6};
    char path[512];
    temp_path(path, sizeof path, "flip.safetensors");
    SafetensorsTensorView view = {"w", 2, {2, 3}, w};
    CourseError err = {{0}};
    unsigned char *bytes;
    size_t length;
    if (safetensors_write_f32(path, &view, 1, NULL, 0, &err) != 0 || file_read_all(path, &bytes, &length, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    bytes[length - 5] ^= 0x10;
    ok &= expect_safetensors_error("flip.safetensors", bytes, length, "CRC-32");
    free(bytes);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase CASES[] = {
    {"npy.roundtrip", test_npy_roundtrip},
    {"npy.numpy_written", test_npy_numpy_written},
    {"npy.bad_files", test_npy_bad_files},
    {"idx.roundtrip", test_idx_roundtrip},
    {"idx.bundled_mnist", test_idx_bundled_mnist},
    {"idx.bad_files", test_idx_bad_files},
    {"check.helper", test_check_helper},
    {"rng.properties", test_rng},
    {"timer.monotonic", test_timer},
    {"file.atomic_write", test_atomic_write},
    {"safetensors.roundtrip", test_safetensors_roundtrip},
    {"safetensors.bad_files", test_safetensors_bad_files},
};

int main(int argc, char **argv)
{
    int status = test_main(argc, argv, CASES, COUNT_OF(CASES));
    if (temp_dir[0] != '\0') {
        char command[400];
        snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
        if (system(command) != 0) {
            fprintf(stderr, "warning: could not remove %s\n", temp_dir);
        }
    }
    return status;
}
