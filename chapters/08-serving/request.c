/* request.c — Chapter 08: decode a POST /predict body (JSON, base64, PNG) into the network's 28x28 input.
 * The rules (scales, ink, centring) are in request.h. JSON is parsed by jansson, PNG by libpng's simplified
 * API; only base64, which neither library offers, is decoded here.
 *
 * Every path that refuses an input says what is wrong in err->message; nothing here aborts or prints, so the
 * server answers 400 and carries on (tests/fuzz/fuzz_serve_request.c checks both promises).
 */
#include "request.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <png.h>


static int refuse(RequestError *err, int status, const char *format, ...)
{
    err->status = status;
    va_list args;
    va_start(args, format);
    vsnprintf(err->message, sizeof err->message, format, args);
    va_end(args);
    return -1;
}

/* ---- base64 ---------------------------------------------------------------------------------------------- */

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

unsigned char *request_base64_decode(const char *text, size_t length, size_t *out_length)
{
    /* Groups of 4 characters carry 3 bytes; the last group may end in "=" or "==" (2 or 1 bytes). */
    if (length == 0 || length % 4 != 0) return NULL;
    const size_t padding = text[length - 1] == '=' ? (text[length - 2] == '=' ? 2 : 1) : 0;
    const size_t bytes = length / 4 * 3 - padding;
    unsigned char *out = malloc(bytes > 0 ? bytes : 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < length; i += 4) {
        const bool last = i + 4 == length;
        uint32_t group = 0;
        for (size_t j = 0; j < 4; j++) {
            const unsigned char c = (unsigned char)text[i + j];
            int v = base64_value(c);
            if (c == '=' && last && j >= 4 - padding) v = 0; /* padding: only at the very end */
            if (v < 0) {
                free(out);
                return NULL;
            }
            group = group << 6 | (uint32_t)v;
        }
        const unsigned char three[3] = {(unsigned char)(group >> 16), (unsigned char)(group >> 8), (unsigned char)group};
        const size_t take = last ? 3 - padding : 3;
        memcpy(out + o, three, take);
        o += take;
    }
    *out_length = bytes;
    return out;
}

/* ---- MNIST's centring ------------------------------------------------------------------------------------ */

void request_center_of_mass_offset(const float *img, int w, int h, int side, int *row, int *col)
{
    /* BEGIN EXERCISE ch08.center_of_mass: total = sum of img; the centre of mass cy = sum (y + 0.5) img[y][x] / total, cx likewise (pixel centres at +0.5); *row = round(side / 2 - cy), *col = round(side / 2 - cx); a blank image (total 0) is centred by its box: (side - h) / 2, (side - w) / 2 (about 15 lines) | zh: total = img 之和；质心 cy = sum (y + 0.5) img[y][x] / total，cx 同理（像素中心在 +0.5 处）；*row = round(side / 2 - cy)，*col = round(side / 2 - cx)；空白图像（total 为 0）按它的框居中：(side - h) / 2、(side - w) / 2（约 15 行） */
    double total = 0, sum_y = 0, sum_x = 0;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            const double v = img[(size_t)y * w + x];
            total += v;
            sum_y += (y + 0.5) * v;
            sum_x += (x + 0.5) * v;
        }
    }
    if (total <= 0) {
        *row = (side - h) / 2;
        *col = (side - w) / 2;
        return;
    }
    *row = (int)lround(side / 2.0 - sum_y / total);
    *col = (int)lround(side / 2.0 - sum_x / total);
    /* END EXERCISE */
}

/* The overlap of source pixel i's extent [i, i + 1) with the interval [lo, hi). */
static double overlap(int i, double lo, double hi)
{
    const double a = i > lo ? i : lo, b = i + 1 < hi ? i + 1 : hi;
    return b > a ? b - a : 0;
}

void request_center_digit(const float *ink, int width, int height, float *out)
{
    memset(out, 0, REQUEST_PIXELS * sizeof *out);
    /* The ink's bounding box. */
    int top = height, bottom = -1, left = width, right = -1;
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            if (ink[(size_t)y * width + x] > 0) {
                top = y < top ? y : top;
                bottom = y > bottom ? y : bottom;
                left = x < left ? x : left;
                right = x > right ? x : right;
            }
        }
    }
    if (bottom < 0) return; /* no ink at all */
    const int w = right - left + 1, h = bottom - top + 1;

    /* Scale the box to fit REQUEST_DIGIT_BOX on its longer side. Each output pixel is the mean of the source
     * area it covers (fractional pixels at its edges weighted by their overlap): the anti-aliasing of MNIST's
     * own scaling, which a nearest-pixel resize would lose. Works for enlarging a small drawing too. */
    const int longer = w > h ? w : h;
    int ow = (int)lround((double)w * REQUEST_DIGIT_BOX / longer), oh = (int)lround((double)h * REQUEST_DIGIT_BOX / longer);
    ow = ow < 1 ? 1 : ow;
    oh = oh < 1 ? 1 : oh;
    float scaled[REQUEST_DIGIT_BOX * REQUEST_DIGIT_BOX]; /* (oh, ow) */
    const double fx = (double)w / ow, fy = (double)h / oh; /* source pixels per output pixel */
    for (int oy = 0; oy < oh; oy++) {
        const double y0 = oy * fy, y1 = (oy + 1) * fy;
        for (int ox = 0; ox < ow; ox++) {
            const double x0 = ox * fx, x1 = (ox + 1) * fx;
            double sum = 0;
            for (int y = (int)y0; y < h && y < y1; y++) {
                const double wy = overlap(y, y0, y1);
                const float *src = ink + (size_t)(top + y) * width + left;
                for (int x = (int)x0; x < w && x < x1; x++) {
                    sum += wy * overlap(x, x0, x1) * src[x];
                }
            }
            scaled[oy * ow + ox] = (float)(sum / (fx * fy));
        }
    }

    /* Place it so that its centre of mass lands on the field's centre (pixels pushed over the edge are cut). */
    int row = 0, col = 0;
    request_center_of_mass_offset(scaled, ow, oh, REQUEST_SIDE, &row, &col);
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            const int r = row + y, c = col + x;
            if (r >= 0 && r < REQUEST_SIDE && c >= 0 && c < REQUEST_SIDE) {
                out[r * REQUEST_SIDE + c] = scaled[y * ow + x];
            }
        }
    }
}

/* ---- the two input forms ---------------------------------------------------------------------------------- */

/* "pixels": [784 numbers] -> image (28, 28) in [0, 1]. */
static int decode_pixels(const json_t *array, float *image, RequestError *err)
{
    if (!json_is_array(array)) return refuse(err, 400, "\"pixels\" must be an array of %d numbers", REQUEST_PIXELS);
    const size_t n = json_array_size(array);
    if (n != REQUEST_PIXELS) {
        return refuse(err, 400, "\"pixels\" has %zu values; expected %d (28x28, row by row)", n, REQUEST_PIXELS);
    }
    double values[REQUEST_PIXELS];
    bool byte_scale = false;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(array, i);
        if (!json_is_number(v)) return refuse(err, 400, "\"pixels\"[%zu] is not a number", i);
        values[i] = json_number_value(v);
        /* jansson refuses NaN, Infinity and numbers beyond double's range as malformed JSON; check anyway. */
        if (!isfinite(values[i])) return refuse(err, 400, "\"pixels\"[%zu] is not a finite number", i);
        if (values[i] < 0 || values[i] > 255) {
            return refuse(err, 400, "\"pixels\"[%zu] is %g: values must be in [0, 1] or [0, 255]", i, values[i]);
        }
        byte_scale |= values[i] > 1;
    }
    for (size_t i = 0; i < n; i++) {
        /* (float)v / 255.0f: the trainer's expression for a byte (normalize_pixels in common/train_util.c). */
        image[i] = byte_scale ? (float)values[i] / 255.0f : (float)values[i];
    }
    return 0;
}

/* "png": "<base64>" -> ink (height, width) in [0, 1], malloc'ed. */
static int decode_png(const json_t *string, float **ink_out, int *width_out, int *height_out, RequestError *err)
{
    if (!json_is_string(string)) return refuse(err, 400, "\"png\" must be a base64 string");
    const char *text = json_string_value(string);
    size_t length = json_string_length(string);
    static const char prefix[] = "data:image/png;base64,";
    if (length >= sizeof prefix - 1 && memcmp(text, prefix, sizeof prefix - 1) == 0) {
        text += sizeof prefix - 1;
        length -= sizeof prefix - 1;
    }
    size_t bytes;
    unsigned char *png = request_base64_decode(text, length, &bytes);
    if (png == NULL) return refuse(err, 400, "\"png\" is not valid base64 (RFC 4648, with padding)");

    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, png, bytes)) {
        refuse(err, 400, "\"png\" is not a readable PNG: %s", image.message);
        png_image_free(&image);
        free(png);
        return -1;
    }
    /* The header's size, checked before a single pixel is decompressed. */
    if (image.width > REQUEST_PNG_MAX_SIDE || image.height > REQUEST_PNG_MAX_SIDE) {
        refuse(err, 400, "the PNG is %ux%u; at most %dx%d is accepted", image.width, image.height,
               REQUEST_PNG_MAX_SIDE, REQUEST_PNG_MAX_SIDE);
        png_image_free(&image);
        free(png);
        return -1;
    }
    const int width = (int)image.width, height = (int)image.height;
    image.format = PNG_FORMAT_RGBA;
    unsigned char *rgba = malloc(PNG_IMAGE_SIZE(image)); /* (height, width, 4) */
    if (rgba == NULL || !png_image_finish_read(&image, NULL, rgba, 0, NULL)) {
        refuse(err, 400, "\"png\" is a damaged PNG: %s", rgba == NULL ? "out of memory" : image.message);
        png_image_free(&image);
        free(rgba);
        free(png);
        return -1;
    }
    free(png);

    const size_t pixels = (size_t)width * height;
    float *ink = malloc(pixels * sizeof *ink);
    bool transparent = false;
    double luminance_sum = 0;
    for (size_t i = 0; i < pixels; i++) {
        const unsigned char *p = rgba + 4 * i;
        transparent |= p[3] < 255;
        ink[i] = (float)((0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]) / 255.0);
        luminance_sum += ink[i];
    }
    if (transparent) {
        for (size_t i = 0; i < pixels; i++) ink[i] = rgba[4 * i + 3] / 255.0f;
    } else if (luminance_sum > 0.5 * (double)pixels) {
        for (size_t i = 0; i < pixels; i++) ink[i] = 1.0f - ink[i];
    }
    free(rgba);
    *ink_out = ink;
    *width_out = width;
    *height_out = height;
    return 0;
}

/* ---- the whole body --------------------------------------------------------------------------------------- */

static int decode_object(const json_t *root, float *image, RequestError *err)
{
    if (!json_is_object(root)) return refuse(err, 400, "the body must be a JSON object: {\"pixels\": [...]} or {\"png\": \"...\"}");
    const json_t *pixels = NULL, *png = NULL, *center = NULL;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)root, key, value) {
        if (strcmp(key, "pixels") == 0) pixels = value;
        else if (strcmp(key, "png") == 0) png = value;
        else if (strcmp(key, "center") == 0) center = value;
        else return refuse(err, 400, "unknown field \"%.60s\" (expected \"pixels\" or \"png\", and optionally \"center\")", key);
    }
    if ((pixels == NULL) == (png == NULL)) {
        return refuse(err, 400, pixels ? "give \"pixels\" or \"png\", not both" : "missing \"pixels\" or \"png\"");
    }
    if (center != NULL && !json_is_boolean(center)) return refuse(err, 400, "\"center\" must be true or false");
    const bool centering = center != NULL ? json_is_true(center) : png != NULL;

    float *ink = image; /* (height, width) in [0, 1] */
    int width = REQUEST_SIDE, height = REQUEST_SIDE;
    if (pixels != NULL) {
        if (decode_pixels(pixels, image, err) != 0) return -1;
        if (!centering) return 0;
    } else {
        if (decode_png(png, &ink, &width, &height, err) != 0) return -1;
        if (!centering && (width != REQUEST_SIDE || height != REQUEST_SIDE)) {
            free(ink);
            return refuse(err, 400, "the PNG is %dx%d: with \"center\": false it must be %dx%d", width, height,
                          REQUEST_SIDE, REQUEST_SIDE);
        }
    }
    float centered[REQUEST_PIXELS];
    if (centering) {
        request_center_digit(ink, width, height, centered);
    } else {
        memcpy(centered, ink, sizeof centered);
    }
    if (ink != image) free(ink);
    /* Quantise to bytes, as MNIST's images are (a no-op for an 8-bit PNG sent uncentred). */
    for (int i = 0; i < REQUEST_PIXELS; i++) {
        const float v = centered[i] < 0 ? 0 : centered[i] > 1 ? 1 : centered[i];
        image[i] = (float)lrintf(v * 255.0f) / 255.0f;
    }
    return 0;
}

int request_decode(const char *body, size_t length, float *pixels, RequestError *err)
{
    if (length > REQUEST_MAX_BODY) {
        return refuse(err, 413, "the body is %zu bytes; at most %zu are accepted", length, REQUEST_MAX_BODY);
    }
    json_error_t json_err;
    json_t *root = json_loadb(body, length, JSON_REJECT_DUPLICATES, &json_err);
    if (root == NULL) {
        return refuse(err, 400, "malformed JSON: %s (line %d, column %d)", json_err.text, json_err.line, json_err.column);
    }
    const int rc = decode_object(root, pixels, err);
    json_decref(root);
    return rc;
}

/* ---- the answers ------------------------------------------------------------------------------------------- */

/* json_dumps with a final newline (so that curl's output ends cleanly); takes the reference to value. */
static char *dump(json_t *value)
{
    /* 9 significant digits: enough for every float32 to read back as the same float. */
    char *text = json_dumps(value, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(value);
    if (text == NULL) return NULL;
    const size_t length = strlen(text);
    char *line = realloc(text, length + 2);
    if (line == NULL) {
        free(text);
        return NULL;
    }
    memcpy(line + length, "\n", 2);
    return line;
}

char *request_answer_json(int digit, const float *probabilities, int classes, long long latency_us, int batch_size)
{
    json_t *p = json_array();
    for (int k = 0; k < classes; k++) json_array_append_new(p, json_real(probabilities[k]));
    return dump(json_pack("{si so sI si}", "digit", digit, "probabilities", p, "latency_us", (json_int_t)latency_us,
                          "batch_size", batch_size));
}

char *request_error_json(const char *message)
{
    /* A message that quotes the request (a field's name cut at 60 bytes, a token jansson quotes) may not be
     * valid UTF-8, which JSON strings must be: then json_pack fails, and a plainer message is sent instead. */
    json_t *error = json_pack("{ss}", "error", message);
    if (error == NULL) error = json_pack("{ss}", "error", "the request is malformed (and quoting it would not be valid UTF-8)");
    return dump(error);
}
