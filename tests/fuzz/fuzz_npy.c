/* fuzz_npy.c — libFuzzer target for the .npy reader, npy_parse() in common/npy.c.
 *
 * libFuzzer calls LLVMFuzzerTestOneInput() with millions of byte strings, mutated from the seed files in
 * tests/fuzz/corpus/npy/ and spliced with the tokens of tests/fuzz/npy.dict, keeping the ones that reach new
 * code. AddressSanitizer and UBSan turn any out-of-bounds access, leak or undefined behaviour into a crash,
 * and libFuzzer saves the input that caused it. Beyond "does not crash", this target checks what npy.h
 * promises: on success a consistent array holding the file's last bytes, on failure a message naming the file.
 *
 *   tests/fuzz/run_fuzz.sh 60                     # build (clang, COURSE_FUZZ=ON) and fuzz each target 60 s
 *   build-fuzz/bin/fuzz_npy crash-1234abcd        # replay one input (a reproducer, or any .npy file)
 *   ctest --test-dir build-fuzz -L fuzz           # replay the committed corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

/* libFuzzer's entry point; its prototype is here because no libFuzzer header declares it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise is a bug even when memory is intact: abort, so that libFuzzer saves the input. */
#define FUZZ_REQUIRE(condition)                                                                     \
    do {                                                                                            \
        if (!(condition)) {                                                                         \
            fprintf(stderr, "fuzz_npy: %s:%d: requirement failed: %s\n", __FILE__, __LINE__, #condition); \
            abort();                                                                                \
        }                                                                                           \
    } while (0)

#define SOURCE "fuzz-input.npy"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    NpyArray array;
    CourseError err;
    memset(&err, 0, sizeof err);

    if (npy_parse(data, size, SOURCE, &array, &err) != 0) {
        /* Refused: the message is a terminated string that starts with the file's name, and nothing is kept. */
        FUZZ_REQUIRE(memchr(err.message, '\0', sizeof err.message) != NULL);
        FUZZ_REQUIRE(strncmp(err.message, SOURCE ": ", strlen(SOURCE ": ")) == 0);
        FUZZ_REQUIRE(strlen(err.message) > strlen(SOURCE ": "));
        FUZZ_REQUIRE(array.data == NULL);
        return 0;
    }

    /* Accepted: the shape, the count and the data agree with each other and with the input. */
    FUZZ_REQUIRE(array.ndim >= 0 && array.ndim <= NPY_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < array.ndim; i++) {
        count *= array.shape[i]; /* cannot overflow: npy_parse refused such shapes */
    }
    FUZZ_REQUIRE(count == array.count);
    size_t item = npy_dtype_size(array.dtype);
    FUZZ_REQUIRE(item == 1 || item == 4 || item == 8);
    FUZZ_REQUIRE(array.count <= size / item);
    size_t data_bytes = array.count * item;
    FUZZ_REQUIRE(array.data != NULL);
    /* The file ends with the data (npy_parse refuses trailing bytes), so the array must equal the input's last
     * data_bytes bytes. Comparing reads every byte, which also lets ASan check the buffer's size. */
    FUZZ_REQUIRE(memcmp(array.data, data + size - data_bytes, data_bytes) == 0);

    npy_free(&array);
    FUZZ_REQUIRE(array.data == NULL);
    return 0;
}
