/* safetensors.c — the .safetensors reader and writer of safetensors.h.
 *
 * The header is JSON, so the reader carries a small JSON parser: just enough for what a safetensors header
 * may hold (objects, arrays, strings with escapes, non-negative integers), strict about everything else. The tests (tests/test_safetensors.c) and the fuzz
 * target (tests/fuzz/fuzz_safetensors.c) exercise it on broken files.
 */
#include "safetensors.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "file_util.h"

/* ---- Writing ------------------------------------------------------------------------------------------- */

static size_t view_count(const SafetensorsTensorView *t)
{
    size_t count = 1;
    for (int d = 0; d < t->ndim; ++d) {
        count *= t->shape[d];
    }
    return count;
}

/* Append to a growing string. */
typedef struct Text {
    char *chars;
    size_t length, capacity;
} Text;

static void text_add(Text *t, const char *s, size_t n)
{
    if (t->length + n + 1 > t->capacity) {
        t->capacity = 2 * (t->length + n + 1);
        char *grown = realloc(t->chars, t->capacity);
        if (grown == NULL) {
            die("out of memory building a safetensors header");
        }
        t->chars = grown;
    }
    memcpy(t->chars + t->length, s, n);
    t->length += n;
    t->chars[t->length] = '\0';
}

static void text_printf(Text *t, const char *fmt, ...) COURSE_PRINTF(2, 3);
static void text_printf(Text *t, const char *fmt, ...)
{
    char buffer[256];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(buffer, sizeof buffer, fmt, args);
    va_end(args);
    text_add(t, buffer, (size_t)n < sizeof buffer ? (size_t)n : sizeof buffer - 1);
}

/* A JSON string literal: quotes, backslashes and control characters escaped. */
static void text_json_string(Text *t, const char *s)
{
    text_add(t, "\"", 1);
    for (; *s != '\0'; ++s) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char escaped[2] = {'\\', (char)c};
            text_add(t, escaped, 2);
        } else if (c < 0x20) {
            text_printf(t, "\\u%04x", c);
        } else {
            text_add(t, s, 1);
        }
    }
    text_add(t, "\"", 1);
}

int safetensors_write_f32(const char *path, const SafetensorsTensorView *tensors, size_t n_tensors,
                          const SafetensorsMeta *meta, size_t n_meta, CourseError *err)
{
    /* The data section's CRC first: it goes into the header. */
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < n_tensors; ++i) {
        size_t bytes = view_count(&tensors[i]) * sizeof(float);
        const unsigned char *p = (const unsigned char *)tensors[i].data;
        while (bytes > 0) { /* crc32 takes a uInt length: feed it in pieces */
            const uInt piece = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
            crc = crc32(crc, p, piece);
            p += piece;
            bytes -= piece;
        }
    }

    Text header = {0};
    text_add(&header, "{\"__metadata__\":{", 17);
    for (size_t i = 0; i < n_meta; ++i) {
        if (strcmp(meta[i].key, "data_crc32") == 0) {
            free(header.chars);
            return error_set(err, path, "metadata key data_crc32 is reserved for the writer");
        }
        text_json_string(&header, meta[i].key);
        text_add(&header, ":", 1);
        text_json_string(&header, meta[i].value);
        text_add(&header, ",", 1);
    }
    text_printf(&header, "\"data_crc32\":\"%08lx\"}", (unsigned long)crc);
    size_t offset = 0;
    for (size_t i = 0; i < n_tensors; ++i) {
        const size_t bytes = view_count(&tensors[i]) * sizeof(float);
        text_add(&header, ",", 1);
        text_json_string(&header, tensors[i].name);
        text_add(&header, ":{\"dtype\":\"F32\",\"shape\":[", 25);
        for (int d = 0; d < tensors[i].ndim; ++d) {
            text_printf(&header, d == 0 ? "%zu" : ",%zu", tensors[i].shape[d]);
        }
        text_printf(&header, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        offset += bytes;
    }
    text_add(&header, "}", 1);
    /* Pad with spaces so that the data section starts at a multiple of 8 bytes (as the reference writer does:
     * a reader that maps the file can then use the tensors in place). */
    while ((8 + header.length) % 8 != 0) {
        text_add(&header, " ", 1);
    }

    AtomicFile file;
    if (atomic_file_open(&file, path, err) != 0) {
        free(header.chars);
        return -1;
    }
    unsigned char length_bytes[8];
    for (int b = 0; b < 8; ++b) {
        length_bytes[b] = (unsigned char)((uint64_t)header.length >> (8 * b)); /* little-endian */
    }
    bool ok = fwrite(length_bytes, 1, 8, file.stream) == 8 &&
              fwrite(header.chars, 1, header.length, file.stream) == header.length;
    /* float32 is stored little-endian; this course targets little-endian machines (x86-64, ARM64). */
    for (size_t i = 0; ok && i < n_tensors; ++i) {
        const size_t count = view_count(&tensors[i]);
        ok = fwrite(tensors[i].data, sizeof(float), count, file.stream) == count;
    }
    free(header.chars);
    if (!ok) {
        atomic_file_abort(&file);
        return error_set(err, path, "write failed (disk full?)");
    }
    return atomic_file_commit(&file, err);
}

/* ---- A small JSON reader --------------------------------------------------------------------------------- */

/* The header's nesting is fixed (object of objects of arrays), so the parser below is written for exactly
 * that shape, without recursion: nothing an input holds can make it go deeper. */
typedef struct Json {
    const char *start, *p, *end; /* the header's text, and the parser's position in it */
    const char *source;
    CourseError *err;
} Json;

static int json_fail(Json *j, const char *what)
{
    return error_set(j->err, j->source, "bad header JSON at byte %zu of the header: %s", (size_t)(j->p - j->start),
                     what);
}

static void json_space(Json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        ++j->p;
    }
}

static bool json_take(Json *j, char c)
{
    json_space(j);
    if (j->p < j->end && *j->p == c) {
        ++j->p;
        return true;
    }
    return false;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A string literal into a malloc'ed, NUL-terminated UTF-8 string. Refuses embedded NULs (\u0000) and lone
 * surrogates, which no name or metadata value needs. */
static int json_string(Json *j, char **out)
{
    *out = NULL;
    if (!json_take(j, '"')) {
        return json_fail(j, "expected a string");
    }
    Text t = {0};
    text_add(&t, "", 0);
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) {
            free(t.chars);
            return json_fail(j, "control character in a string");
        }
        if (c != '\\') {
            text_add(&t, (const char *)&c, 1);
            continue;
        }
        if (j->p >= j->end) {
            break;
        }
        const char e = *j->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple != NULL && e != '\0') {
            static const char decoded[] = "\"\\/\b\f\n\r\t";
            text_add(&t, &decoded[simple - "\"\\/bfnrt"], 1);
        } else if (e == 'u' && j->end - j->p >= 4) {
            unsigned code = 0;
            for (int k = 0; k < 4; ++k) {
                const int h = hex_digit(j->p[k]);
                if (h < 0) {
                    free(t.chars);
                    return json_fail(j, "bad \\u escape");
                }
                code = code * 16 + (unsigned)h;
            }
            j->p += 4;
            if (code == 0 || (code >= 0xD800 && code <= 0xDFFF)) {
                free(t.chars);
                return json_fail(j, "\\u0000 or a surrogate in a string");
            }
            char utf8[3];
            size_t n;
            if (code < 0x80) {
                utf8[0] = (char)code;
                n = 1;
            } else if (code < 0x800) {
                utf8[0] = (char)(0xC0 | (code >> 6));
                utf8[1] = (char)(0x80 | (code & 0x3F));
                n = 2;
            } else {
                utf8[0] = (char)(0xE0 | (code >> 12));
                utf8[1] = (char)(0x80 | ((code >> 6) & 0x3F));
                utf8[2] = (char)(0x80 | (code & 0x3F));
                n = 3;
            }
            text_add(&t, utf8, n);
        } else {
            free(t.chars);
            return json_fail(j, "bad escape in a string");
        }
    }
    if (j->p >= j->end) {
        free(t.chars);
        return json_fail(j, "unterminated string");
    }
    ++j->p; /* the closing quote */
    *out = t.chars;
    return 0;
}

/* A non-negative integer that fits in size_t (shapes and offsets). */
static int json_size(Json *j, size_t *out)
{
    json_space(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
        return json_fail(j, "expected a non-negative integer");
    }
    size_t value = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        const size_t digit = (size_t)(*j->p - '0');
        if (value > (SIZE_MAX - digit) / 10) {
            return json_fail(j, "integer too large");
        }
        value = value * 10 + digit;
        ++j->p;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) {
        return json_fail(j, "expected an integer, found a fraction");
    }
    *out = value;
    return 0;
}

/* "[a, b, ...]" of sizes into out (at most max); *n gets the count. */
static int json_size_array(Json *j, size_t *out, int max, int *n)
{
    *n = 0;
    if (!json_take(j, '[')) {
        return json_fail(j, "expected an array");
    }
    if (json_take(j, ']')) {
        return 0;
    }
    do {
        if (*n == max) {
            return json_fail(j, "array too long");
        }
        if (json_size(j, &out[*n]) != 0) {
            return -1;
        }
        ++*n;
    } while (json_take(j, ','));
    if (!json_take(j, ']')) {
        return json_fail(j, "expected ',' or ']'");
    }
    return 0;
}

/* ---- Reading --------------------------------------------------------------------------------------------- */

typedef struct Dtype {
    const char *name;
    size_t size;
} Dtype;

static const Dtype DTYPES[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
                               {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4},
                               {"U64", 8}};

/* One tensor's description: {"dtype": ..., "shape": [...], "data_offsets": [b, e]} in any order. */
static int parse_tensor(Json *j, SafetensorsEntry *e)
{
    bool have_dtype = false, have_shape = false, have_offsets = false;
    if (!json_take(j, '{')) {
        return json_fail(j, "a tensor's description must be an object");
    }
    do {
        char *key;
        if (json_string(j, &key) != 0) {
            return -1;
        }
        if (!json_take(j, ':')) {
            free(key);
            return json_fail(j, "expected ':'");
        }
        int rc = 0;
        if (strcmp(key, "dtype") == 0 && !have_dtype) {
            char *dtype;
            rc = json_string(j, &dtype);
            if (rc == 0) {
                e->element_size = 0;
                for (size_t d = 0; d < sizeof DTYPES / sizeof DTYPES[0]; ++d) {
                    if (strcmp(dtype, DTYPES[d].name) == 0) {
                        e->element_size = DTYPES[d].size;
                        snprintf(e->dtype, sizeof e->dtype, "%s", DTYPES[d].name);
                    }
                }
                if (e->element_size == 0) {
                    rc = error_set(j->err, j->source, "tensor '%s': unknown dtype '%.20s'", e->name, dtype);
                }
                free(dtype);
            }
            have_dtype = true;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            rc = json_size_array(j, e->shape, SAFETENSORS_MAX_DIMS, &e->ndim);
            have_shape = true;
        } else if (strcmp(key, "data_offsets") == 0 && !have_offsets) {
            size_t offsets[2];
            int n = 0;
            rc = json_size_array(j, offsets, 2, &n);
            if (rc == 0 && n != 2) {
                rc = error_set(j->err, j->source, "tensor '%s': data_offsets needs 2 numbers", e->name);
            }
            e->begin = offsets[0];
            e->end = offsets[1];
            have_offsets = true;
        } else {
            rc = error_set(j->err, j->source, "tensor '%s': unexpected or repeated key '%.40s'", e->name, key);
        }
        free(key);
        if (rc != 0) {
            return -1;
        }
    } while (json_take(j, ','));
    if (!json_take(j, '}')) {
        return json_fail(j, "expected ',' or '}'");
    }
    if (!have_dtype || !have_shape || !have_offsets) {
        return error_set(j->err, j->source, "tensor '%s' lacks %s", e->name,
                         !have_dtype ? "its dtype" : !have_shape ? "its shape" : "its data_offsets");
    }
    /* Elements and bytes, with overflow checks: a shape can claim anything. */
    e->count = 1;
    for (int d = 0; d < e->ndim; ++d) {
        if (e->shape[d] != 0 && e->count > SIZE_MAX / e->shape[d]) {
            return error_set(j->err, j->source, "tensor '%s': shape too large", e->name);
        }
        e->count *= e->shape[d];
    }
    if (e->count > SIZE_MAX / e->element_size || e->end < e->begin ||
        e->end - e->begin != e->count * e->element_size) {
        return error_set(j->err, j->source,
                         "tensor '%s': data_offsets [%zu, %zu] do not hold %zu elements of %s (%zu bytes each)",
                         e->name, e->begin, e->end, e->count, e->dtype, e->element_size);
    }
    return 0;
}

static int parse_metadata(Json *j, SafetensorsFile *out)
{
    if (!json_take(j, '{')) {
        return json_fail(j, "__metadata__ must be an object");
    }
    if (json_take(j, '}')) {
        return 0;
    }
    do {
        char *key = NULL, *value = NULL;
        if (json_string(j, &key) != 0) {
            return -1;
        }
        if (!json_take(j, ':')) {
            free(key);
            return json_fail(j, "expected ':'");
        }
        if (json_string(j, &value) != 0) {
            error_set(j->err, j->source, "metadata '%.40s': every metadata value must be a string", key);
            free(key);
            return -1;
        }
        if (safetensors_meta(out, key) != NULL) {
            CourseError copy;
            error_set(&copy, j->source, "metadata key '%.40s' appears twice", key);
            free(key);
            free(value);
            *j->err = copy;
            return -1;
        }
        SafetensorsMeta *grown = realloc(out->meta, (out->n_meta + 1) * sizeof *grown);
        if (grown == NULL) {
            die("out of memory reading %s", j->source);
        }
        out->meta = grown;
        out->meta[out->n_meta].key = key;
        out->meta[out->n_meta].value = value;
        out->n_meta++;
    } while (json_take(j, ','));
    if (!json_take(j, '}')) {
        return json_fail(j, "expected ',' or '}'");
    }
    return 0;
}

static int compare_begin(const void *a, const void *b)
{
    const SafetensorsEntry *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* A tensor entry "name": {...}; takes ownership of name. */
static int parse_tensor_entry(Json *j, SafetensorsFile *out, char *name)
{
    if (safetensors_find(out, name) != NULL) {
        CourseError copy;
        error_set(&copy, j->source, "tensor '%.60s' appears twice", name);
        free(name);
        *j->err = copy;
        return -1;
    }
    SafetensorsEntry *grown = realloc(out->tensors, (out->n_tensors + 1) * sizeof *grown);
    if (grown == NULL) {
        die("out of memory reading %s", j->source);
    }
    out->tensors = grown;
    SafetensorsEntry *e = &out->tensors[out->n_tensors++];
    memset(e, 0, sizeof *e);
    e->name = name;
    return parse_tensor(j, e);
}

static int parse_header(Json *j, SafetensorsFile *out)
{
    if (!json_take(j, '{')) {
        return json_fail(j, "the header must be a JSON object");
    }
    bool more = !json_take(j, '}');
    while (more) {
        char *key;
        if (json_string(j, &key) != 0) {
            return -1;
        }
        if (!json_take(j, ':')) {
            free(key);
            return json_fail(j, "expected ':'");
        }
        if (strcmp(key, "__metadata__") == 0) {
            free(key);
            if (out->meta != NULL) {
                return error_set(j->err, j->source, "__metadata__ appears twice");
            }
            if (parse_metadata(j, out) != 0) {
                return -1;
            }
        } else if (parse_tensor_entry(j, out, key) != 0) {
            return -1;
        }
        more = json_take(j, ',');
        if (!more && !json_take(j, '}')) {
            return json_fail(j, "expected ',' or '}'");
        }
    }
    json_space(j);
    if (j->p != j->end) {
        return json_fail(j, "text after the header's closing '}'");
    }
    return 0;
}

int safetensors_parse(const unsigned char *bytes, size_t length, const char *source, SafetensorsFile *out,
                      CourseError *err)
{
    memset(out, 0, sizeof *out);
    if (length < 8) {
        return error_set(err, source, "not a safetensors file: %zu bytes, shorter than the 8-byte header length",
                         length);
    }
    uint64_t header_length = 0;
    for (int b = 7; b >= 0; --b) {
        header_length = (header_length << 8) | bytes[b];
    }
    if (header_length > length - 8 || header_length > SAFETENSORS_MAX_HEADER) {
        return error_set(err, source,
                         "not a safetensors file, or truncated: the header claims %" PRIu64
                         " bytes, the file has %zu after the length",
                         header_length, length - 8);
    }
    const char *header = (const char *)bytes + 8;
    Json j = {header, header, header + header_length, source, err};
    if (parse_header(&j, out) != 0) {
        safetensors_free(out);
        return -1;
    }
    /* The data section: every byte belongs to exactly one tensor (no overlaps, no gaps, nothing after). */
    out->data_size = length - 8 - (size_t)header_length;
    if (out->n_tensors > 1) { /* qsort(NULL, 0, ...) is undefined behaviour: the fuzzer found it */
        qsort(out->tensors, out->n_tensors, sizeof *out->tensors, compare_begin);
    }
    size_t expected = 0;
    for (size_t i = 0; i < out->n_tensors; ++i) {
        const SafetensorsEntry *e = &out->tensors[i];
        if (e->end > out->data_size) {
            error_set(err, source, "truncated: tensor '%s' needs bytes [%zu, %zu) of the data section, which has %zu",
                      e->name, e->begin, e->end, out->data_size);
            safetensors_free(out);
            return -1;
        }
        if (e->begin != expected) {
            error_set(err, source,
                      "tensor '%s' occupies bytes [%zu, %zu) of the %zu-byte data section; expected it to start at %zu "
                      "(tensors must follow each other without gaps or overlaps)",
                      e->name, e->begin, e->end, out->data_size, expected);
            safetensors_free(out);
            return -1;
        }
        expected = e->end;
    }
    if (expected != out->data_size) {
        error_set(err, source, "%zu bytes after the last tensor's data (the file is longer than its header says)",
                  out->data_size - expected);
        safetensors_free(out);
        return -1;
    }
    out->data = malloc(out->data_size > 0 ? out->data_size : 1);
    if (out->data == NULL) {
        die("out of memory reading %s", source);
    }
    memcpy(out->data, bytes + 8 + header_length, out->data_size);

    const char *crc_text = safetensors_meta(out, "data_crc32");
    if (crc_text != NULL) {
        uLong crc = crc32(0L, Z_NULL, 0);
        for (size_t done = 0; done < out->data_size;) {
            const size_t piece = out->data_size - done > (1u << 30) ? (1u << 30) : out->data_size - done;
            crc = crc32(crc, out->data + done, (uInt)piece);
            done += piece;
        }
        char actual[16];
        snprintf(actual, sizeof actual, "%08lx", (unsigned long)crc);
        if (strcmp(actual, crc_text) != 0) {
            error_set(err, source, "corrupt: the data's CRC-32 is %s, the header says %.16s (a damaged file)", actual,
                      crc_text);
            safetensors_free(out);
            return -1;
        }
    }
    return 0;
}

int safetensors_read(const char *path, SafetensorsFile *out, CourseError *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *bytes;
    size_t length;
    if (file_read_all(path, &bytes, &length, err) != 0) {
        return -1;
    }
    const int rc = safetensors_parse(bytes, length, path, out, err);
    free(bytes);
    return rc;
}

const SafetensorsEntry *safetensors_find(const SafetensorsFile *file, const char *name)
{
    for (size_t i = 0; i < file->n_tensors; ++i) {
        if (strcmp(file->tensors[i].name, name) == 0) {
            return &file->tensors[i];
        }
    }
    return NULL;
}

const char *safetensors_meta(const SafetensorsFile *file, const char *key)
{
    for (size_t i = 0; i < file->n_meta; ++i) {
        if (strcmp(file->meta[i].key, key) == 0) {
            return file->meta[i].value;
        }
    }
    return NULL;
}

void safetensors_copy_f32(const SafetensorsFile *file, const SafetensorsEntry *entry, float *out)
{
    memcpy(out, file->data + entry->begin, entry->count * sizeof(float)); /* memcpy: no alignment needed */
}

void safetensors_free(SafetensorsFile *file)
{
    for (size_t i = 0; i < file->n_tensors; ++i) {
        free(file->tensors[i].name);
    }
    for (size_t i = 0; i < file->n_meta; ++i) {
        free((char *)file->meta[i].key);
        free((char *)file->meta[i].value);
    }
    free(file->tensors);
    free(file->meta);
    free(file->data);
    memset(file, 0, sizeof *file);
}
