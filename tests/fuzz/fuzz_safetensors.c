/* fuzz_safetensors.c — libFuzzer target for the .safetensors reader, safetensors_parse() in common/safetensors.c
 * (the checkpoint format of chapter 07).
 *
 * Beyond "does not crash", this target checks what safetensors.h promises: on failure a message naming the
 * source and nothing kept; on success tensors whose byte ranges tile the data section exactly (sorted, no gap,
 * no overlap), whose shapes match their sizes, and whose bytes are the input's.
 *
 *   tests/fuzz/run_fuzz.sh 60                          # build (clang, COURSE_FUZZ=ON) and fuzz every target
 *   build-fuzz/bin/fuzz_safetensors crash-1234abcd     # replay one input (or any .safetensors file)
 *   ctest --test-dir build-fuzz -L fuzz                # replay the committed corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

/* libFuzzer's entry point; its prototype is here because no libFuzzer header declares it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise is a bug even when memory is intact: abort, so that libFuzzer saves the input. */
#define FUZZ_REQUIRE(condition)                                                                                 \
    do {                                                                                                        \
        if (!(condition)) {                                                                                     \
            fprintf(stderr, "fuzz_safetensors: %s:%d: requirement failed: %s\n", __FILE__, __LINE__, #condition); \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

#define SOURCE "fuzz-input.safetensors"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    SafetensorsFile file;
    CourseError err;
    memset(&err, 0, sizeof err);
    if (safetensors_parse(data, size, SOURCE, &file, &err) != 0) {
        FUZZ_REQUIRE(memchr(err.message, '\0', sizeof err.message) != NULL);
        FUZZ_REQUIRE(strncmp(err.message, SOURCE ": ", strlen(SOURCE ": ")) == 0);
        FUZZ_REQUIRE(file.tensors == NULL && file.meta == NULL && file.data == NULL);
        return 0;
    }
    uint64_t header = 0;
    for (int b = 7; b >= 0; --b) {
        header = (header << 8) | data[b];
    }
    FUZZ_REQUIRE(8 + header + file.data_size == size);
    size_t expected = 0;
    for (size_t i = 0; i < file.n_tensors; ++i) {
        const SafetensorsEntry *e = &file.tensors[i];
        FUZZ_REQUIRE(e->begin == expected && e->end >= e->begin && e->end <= file.data_size);
        FUZZ_REQUIRE(e->end - e->begin == e->count * e->element_size);
        FUZZ_REQUIRE(e->ndim >= 0 && e->ndim <= SAFETENSORS_MAX_DIMS);
        FUZZ_REQUIRE(safetensors_find(&file, e->name) == e);
        expected = e->end;
    }
    FUZZ_REQUIRE(expected == file.data_size);
    /* The data is the input's tail; comparing reads every byte, so ASan checks the buffer's size. */
    FUZZ_REQUIRE(memcmp(file.data, data + size - file.data_size, file.data_size) == 0);
    for (size_t i = 0; i < file.n_meta; ++i) {
        FUZZ_REQUIRE(safetensors_meta(&file, file.meta[i].key) == file.meta[i].value);
    }
    safetensors_free(&file);
    return 0;
}
