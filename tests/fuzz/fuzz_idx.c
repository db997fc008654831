/* fuzz_idx.c — libFuzzer target for the IDX reader: idx_parse() and mnist_from_arrays() in common/idx.c.
 *
 * Each input is used twice:
 *   1. as one IDX file, given to idx_parse();
 *   2. as an image file followed by a label file, the way MNIST comes: the input is split where the first
 *      file's own header says it ends, both halves go through idx_parse(), and if both parse, the pair goes
 *      through mnist_from_arrays(), so that its cross-checks (3-D images, 1-D labels, equal counts, labels
 *      0..9) are fuzzed too. Seeds of this kind are simply two IDX files concatenated (see make_corpus.py).
 * AddressSanitizer and UBSan turn any out-of-bounds access, leak or undefined behaviour into a crash that
 * libFuzzer saves. The target also checks what idx.h promises: on success, arrays consistent with the input;
 * on failure, a message naming the file.
 *
 *   tests/fuzz/run_fuzz.sh 60                     # build (clang, COURSE_FUZZ=ON) and fuzz each target 60 s
 *   build-fuzz/bin/fuzz_idx crash-1234abcd        # replay one input (a reproducer, or any plain IDX file)
 *   ctest --test-dir build-fuzz -L fuzz           # replay the committed corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"

/* libFuzzer's entry point; its prototype is here because no libFuzzer header declares it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise is a bug even when memory is intact: abort, so that libFuzzer saves the input. */
#define FUZZ_REQUIRE(condition)                                                                     \
    do {                                                                                            \
        if (!(condition)) {                                                                         \
            fprintf(stderr, "fuzz_idx: %s:%d: requirement failed: %s\n", __FILE__, __LINE__, #condition); \
            abort();                                                                                \
        }                                                                                           \
    } while (0)

#define WHOLE_SOURCE "fuzz-input.idx"
#define IMAGES_SOURCE "fuzz-images.idx"
#define LABELS_SOURCE "fuzz-labels.idx"

/* A refusal leaves a terminated message starting with "<source>: " and a problem after it. */
static void require_error_names(const CourseError *err, const char *source)
{
    FUZZ_REQUIRE(memchr(err->message, '\0', sizeof err->message) != NULL);
    size_t source_length = strlen(source);
    FUZZ_REQUIRE(strncmp(err->message, source, source_length) == 0);
    FUZZ_REQUIRE(strncmp(err->message + source_length, ": ", 2) == 0);
    FUZZ_REQUIRE(strlen(err->message) > source_length + 2);
}

/* Parse bytes as one IDX file and check the result either way. Returns 1 if it parsed (array then owns its
 * data), 0 if it was refused (array then holds nothing). */
static int parse_and_check(const uint8_t *bytes, size_t length, const char *source, IdxArray *array)
{
    CourseError err;
    memset(&err, 0, sizeof err);
    if (idx_parse(bytes, length, source, array, &err) != 0) {
        require_error_names(&err, source);
        FUZZ_REQUIRE(array->data == NULL);
        return 0;
    }
    FUZZ_REQUIRE(array->ndim >= 1 && array->ndim <= IDX_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < array->ndim; i++) {
        count *= array->dims[i]; /* cannot overflow: idx_parse refused products above IDX_MAX_BYTES */
    }
    FUZZ_REQUIRE(count == array->count);
    FUZZ_REQUIRE(array->data != NULL);
    /* The header is 4 + 4 * ndim bytes and the data fills the rest of the file exactly. Comparing reads every
     * byte, which also lets ASan check the buffer's size. */
    size_t header = 4 + 4 * (size_t)array->ndim;
    FUZZ_REQUIRE(length == header + count);
    FUZZ_REQUIRE(memcmp(array->data, bytes + header, count) == 0);
    return 1;
}

/* Where an IDX file at the start of `data` ends by its own header (4 + 4 * ndim bytes, then the product of
 * the dimensions), or `size` when that is unreadable or beyond the input. The rest is the second file. */
static size_t first_file_length(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return size;
    }
    size_t ndim = data[3];
    size_t header = 4 + 4 * ndim;
    if (header > size) {
        return size;
    }
    size_t count = 1;
    for (size_t i = 0; i < ndim; i++) {
        const uint8_t *p = data + 4 + 4 * i;
        size_t dim = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | (size_t)p[3];
        if (dim != 0 && count > size / dim) {
            return size; /* more bytes than the input has (also keeps the product from overflowing) */
        }
        count *= dim;
    }
    if (count > size - header) {
        return size;
    }
    return header + count;
}

static void fuzz_image_label_pair(const uint8_t *data, size_t size)
{
    size_t split = first_file_length(data, size);
    IdxArray images, labels;
    int have_images = parse_and_check(data, split, IMAGES_SOURCE, &images);
    int have_labels = parse_and_check(data + split, size - split, LABELS_SOURCE, &labels);
    if (have_images && have_labels) {
        MnistSplit mnist;
        CourseError err;
        memset(&err, 0, sizeof err);
        size_t image_bytes = images.count;
        if (mnist_from_arrays(&mnist, &images, IMAGES_SOURCE, &labels, LABELS_SOURCE, &err) == 0) {
            /* Accepted: the split took over both arrays' data and describes them. */
            FUZZ_REQUIRE(images.data == NULL && labels.data == NULL);
            FUZZ_REQUIRE(mnist.images != NULL && mnist.labels != NULL);
            FUZZ_REQUIRE(mnist.rows > 0 && mnist.cols > 0);
            FUZZ_REQUIRE(mnist.count == labels.count);
            FUZZ_REQUIRE(mnist.count * mnist.rows * mnist.cols == image_bytes);
            FUZZ_REQUIRE(memcmp(mnist.images, data + split - image_bytes, image_bytes) == 0);
            for (size_t i = 0; i < mnist.count; i++) {
                FUZZ_REQUIRE(mnist.labels[i] <= 9);
            }
            mnist_free(&mnist);
        } else {
            /* Refused: the message names one of the two files, and both arrays still own their data. */
            int names_labels = strncmp(err.message, LABELS_SOURCE, strlen(LABELS_SOURCE)) == 0;
            require_error_names(&err, names_labels ? LABELS_SOURCE : IMAGES_SOURCE);
            FUZZ_REQUIRE(images.data != NULL && labels.data != NULL);
        }
    }
    idx_free(&images); /* safe on a refused or handed-over array: its data is NULL */
    idx_free(&labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    IdxArray whole;
    if (parse_and_check(data, size, WHOLE_SOURCE, &whole)) {
        idx_free(&whole);
    }
    fuzz_image_label_pair(data, size);
    return 0;
}
