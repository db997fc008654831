/* request.h — Chapter 08: the body of a POST /predict request -> the 28x28 image the network is given, prepared
 * as the trainer prepares its images; and the JSON of the answers. Kept apart from the HTTP server (mnist_serve.c) so that a fuzz target
 * (tests/fuzz/fuzz_serve_request.c) can feed it arbitrary bytes.
 *
 * The body is a JSON object with one of two fields (and optionally "center"):
 *
 *   {"pixels": [784 numbers]}      row-major 28x28, ink bright (MNIST's polarity). Two scales are accepted:
 *                                  if any value is above 1, all are read as 0..255 (integers or not), else
 *                                  all as 0..1. A negative value or one above 255 is refused, as is any
 *                                  non-number. ("center" defaults to false: MNIST images are centred.)
 *   {"png": "<base64>"}            a PNG of any size up to REQUEST_PNG_MAX_SIDE per side, optionally with
 *                                  the "data:image/png;base64," prefix of canvas.toDataURL(). Any colour
 *                                  type (libpng converts it to RGBA). The ink of a pixel is
 *                                    - its alpha, when the image has transparent pixels (strokes drawn on a
 *                                      transparent canvas, whatever their colour);
 *                                    - else its luminance (0.299 R + 0.587 G + 0.114 B), inverted when the
 *                                      mean luminance is above one half (dark strokes on a light page).
 *                                  ("center" defaults to true.)
 *   "center": true|false           MNIST's own preprocessing (LeCun et al.): crop to the ink's bounding
 *                                  box, scale it to fit a 20x20 box keeping its aspect ratio (averaging
 *                                  the covered area: anti-aliased, like MNIST's), then place it in the
 *                                  28x28 field so that its centre of mass is at the field's centre. A PNG
 *                                  sent with "center": false must already be 28x28.
 *
 * The result is the image in [0, 1]; serve_model_normalize then normalises it as training does. A 0..255 value
 * v gives v / 255 in float, the trainer's very expression (normalize_pixels in common/train_util.c), so an
 * MNIST image sent as its 784 bytes reaches the network bit for bit as in training. A drawn (PNG) image is
 * quantised to bytes after centring, as MNIST's images are.
 *
 *   float pixels[REQUEST_PIXELS];  RequestError e;
 *   if (request_decode(body, length, pixels, &e) != 0) respond(e.status, request_error_json(e.message));
 */
#ifndef CH08_REQUEST_H
#define CH08_REQUEST_H

#include <stddef.h>

#define REQUEST_SIDE 28
#define REQUEST_PIXELS (REQUEST_SIDE * REQUEST_SIDE)
/* MNIST's digits fill a 20x20 box inside the 28x28 field. */
#define REQUEST_DIGIT_BOX 20
/* A PNG wider or taller than this is refused before its pixels are decoded (a few hundred bytes of PNG can
 * claim a 100000x100000 image: a decompression bomb). 1024x1024 RGBA is 4 MiB. */
#define REQUEST_PNG_MAX_SIDE 1024
/* The largest request body read (the server answers 413 beyond it without reading the rest): room for a
 * 1024x1024 PNG that does not compress at all, in base64. */
#define REQUEST_MAX_BODY ((size_t)8 << 20)

typedef struct RequestError {
    int status; /* the HTTP status to answer: 400 (malformed) or 413 (too large) */
    char message[256]; /* what is wrong, for {"error": ...} */
} RequestError;

/* Decode a request body (not necessarily NUL-terminated) into pixels (28, 28) in [0, 1].
 * Returns 0, or -1 with err filled (pixels is then unspecified). Never reads beyond body[length). */
int request_decode(const char *body, size_t length, float *pixels, RequestError *err);

/* The answers, as malloc'ed NUL-terminated JSON text ending in a newline (NULL if out of memory):
 * {"digit": d, "probabilities": [...], "latency_us": n, "batch_size": b} and {"error": "..."}. */
char *request_answer_json(int digit, const float *probabilities, int classes, long long latency_us, int batch_size);
char *request_error_json(const char *message);

/* Strict base64 (RFC 4648, with '=' padding, no whitespace): decode text[0..length) into a malloc'ed buffer.
 * Returns it with *out_length set, or NULL when the text is not base64 (or empty). */
unsigned char *request_base64_decode(const char *text, size_t length, size_t *out_length);

/* MNIST's centring of a grayscale image ink (height, width) in [0, 1] into out (28, 28) in [0, 1]: crop to
 * the bounding box of the non-zero ink, scale to fit 20x20 keeping the aspect ratio, centre of mass to the
 * centre. An image without ink gives an all-zero out. */
void request_center_digit(const float *ink, int width, int height, float *out);

/* The translation that puts the centre of mass of img (h, w) at the centre of a side x side field: top-left
 * corner (*row, *col) where img is to be placed (rounded to whole pixels). A blank image is centred by box. */
void request_center_of_mass_offset(const float *img, int w, int h, int side, int *row, int *col);

#endif
