/* fuzz_serve_request.c — libFuzzer target for chapter 08's request decoder, request_decode() in
 * chapters/08-serving/request.c (JSON through jansson, base64, PNG through libpng, MNIST's centring).
 *
 * Each input is decoded twice: as a request body as it is, and as the bytes of a PNG, wrapped into
 * {"png": "<base64>", "center": ...} (the first byte's low bit chooses "center"), so that the mutations reach
 * libpng and the centring code directly rather than through base64. What request.h promises is checked: on
 * success 784 pixels in [0, 1] (never NaN); on failure status 400 or 413 and a message that
 * request_error_json can always send (JSON strings must be UTF-8, and the message may quote the input).
 *
 *   tests/fuzz/run_fuzz.sh 60                                  # build (clang, COURSE_FUZZ=ON), fuzz every target
 *   build-fuzz/bin/fuzz_serve_request crash-1234abcd           # replay one input
 *   ctest --test-dir build-fuzz -L fuzz                        # replay the committed corpus
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

/* libFuzzer's entry point; its prototype is here because no libFuzzer header declares it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_REQUIRE(condition)                                                                               \
    do {                                                                                                      \
        if (!(condition)) {                                                                                   \
            fprintf(stderr, "fuzz_serve_request: %s:%d: requirement failed: %s\n", __FILE__, __LINE__, #condition); \
            abort();                                                                                          \
        }                                                                                                     \
    } while (0)

static void decode_and_check(const char *body, size_t length)
{
    float pixels[REQUEST_PIXELS];
    RequestError err;
    memset(&err, 0, sizeof err);
    if (request_decode(body, length, pixels, &err) != 0) {
        FUZZ_REQUIRE(err.status == 400 || err.status == 413);
        FUZZ_REQUIRE(memchr(err.message, '\0', sizeof err.message) != NULL);
        FUZZ_REQUIRE(err.message[0] != '\0');
        char *answer = request_error_json(err.message); /* the server can always send it */
        FUZZ_REQUIRE(answer != NULL);
        free(answer);
        return;
    }
    for (int i = 0; i < REQUEST_PIXELS; i++) {
        FUZZ_REQUIRE(pixels[i] >= 0.0f && pixels[i] <= 1.0f); /* false for NaN too */
    }
}

/* {"png": "<base64 of data>", "center": true|false} */
static char *png_request(const uint8_t *data, size_t size, size_t *length)
{
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const bool center = size > 0 && (data[0] & 1);
    char *body = malloc(64 + (size + 2) / 3 * 4);
    size_t n = (size_t)sprintf(body, "{\"png\": \"");
    for (size_t i = 0; i < size; i += 3) {
        const uint32_t group = (uint32_t)data[i] << 16 | (i + 1 < size ? (uint32_t)data[i + 1] << 8 : 0) |
                               (i + 2 < size ? data[i + 2] : 0);
        body[n++] = table[group >> 18 & 63];
        body[n++] = table[group >> 12 & 63];
        body[n++] = i + 1 < size ? table[group >> 6 & 63] : '=';
        body[n++] = i + 2 < size ? table[group & 63] : '=';
    }
    n += (size_t)sprintf(body + n, "\", \"center\": %s}", center ? "true" : "false");
    *length = n;
    return body;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_and_check((const char *)data, size);
    size_t length;
    char *body = png_request(data, size, &length);
    decode_and_check(body, length);
    free(body);
    return 0;
}
