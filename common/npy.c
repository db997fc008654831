/* npy.c — see npy.h. Format reference: numpy/lib/format.py, "The .npy format" (NEP 1). */
#include "npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"

static const unsigned char NPY_MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
#define NPY_PREAMBLE 10 /* magic (6) + version (2) + header length (2) */

size_t npy_dtype_size(NpyDtype dtype)
{
    switch (dtype) {
    case NPY_FLOAT32: return 4;
    case NPY_INT32: return 4;
    case NPY_INT64: return 8;
    case NPY_UINT8: return 1;
    }
    return 0;
}

const char *npy_dtype_name(NpyDtype dtype)
{
    switch (dtype) {
    case NPY_FLOAT32: return "float32";
    case NPY_INT32: return "int32";
    case NPY_INT64: return "int64";
    case NPY_UINT8: return "uint8";
    }
    return "unknown";
}

/* The 'descr' strings numpy writes for our dtypes on a little-endian machine. */
static const char *npy_descr(NpyDtype dtype)
{
    switch (dtype) {
    case NPY_FLOAT32: return "<f4";
    case NPY_INT32: return "<i4";
    case NPY_INT64: return "<i8";
    case NPY_UINT8: return "|u1";
    }
    return "";
}

char *npy_shape_string(int ndim, const size_t *shape, char *buf, size_t buf_size)
{
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf + used, buf_size - used, "(");
    for (int i = 0; i < ndim && used < buf_size; i++) {
        used += (size_t)snprintf(buf + used, buf_size - used, i ? ", %zu" : "%zu", shape[i]);
    }
    if (used < buf_size) {
        snprintf(buf + used, buf_size - used, ndim == 1 ? ",)" : ")");
    }
    return buf;
}

/* ---- header parsing: a tiny reader for the one dict literal numpy writes ---- */

typedef struct HeaderCursor {
    const char *text;
    size_t length;
    size_t pos;
} HeaderCursor;

static void skip_spaces(HeaderCursor *c)
{
    while (c->pos < c->length && (c->text[c->pos] == ' ' || c->text[c->pos] == '\t')) {
        c->pos++;
    }
}

static int accept_char(HeaderCursor *c, char ch)
{
    skip_spaces(c);
    if (c->pos < c->length && c->text[c->pos] == ch) {
        c->pos++;
        return 1;
    }
    return 0;
}

/* Read a quoted Python string ('...' or "...") into out (NUL-terminated). */
static int read_quoted(HeaderCursor *c, char *out, size_t out_size)
{
    skip_spaces(c);
    if (c->pos >= c->length || (c->text[c->pos] != '\'' && c->text[c->pos] != '"')) {
        return -1;
    }
    char quote = c->text[c->pos++];
    size_t n = 0;
    while (c->pos < c->length && c->text[c->pos] != quote) {
        if (n + 1 >= out_size) {
            return -1;
        }
        out[n++] = c->text[c->pos++];
    }
    if (c->pos >= c->length) {
        return -1;
    }
    c->pos++; /* closing quote */
    out[n] = '\0';
    return 0;
}

static int parse_shape(HeaderCursor *c, NpyArray *out, const char *source, CourseError *err)
{
    if (!accept_char(c, '(')) {
        return error_set(err, source, "npy header: 'shape' is not a tuple");
    }
    out->ndim = 0;
    for (;;) {
        if (accept_char(c, ')')) {
            break;
        }
        if (out->ndim == NPY_MAX_DIMS) {
            return error_set(err, source, "npy header: more than %d dimensions are not supported", NPY_MAX_DIMS);
        }
        skip_spaces(c);
        size_t value = 0;
        size_t digits = 0;
        while (c->pos < c->length && c->text[c->pos] >= '0' && c->text[c->pos] <= '9') {
            size_t digit = (size_t)(c->text[c->pos] - '0');
            if (value > (SIZE_MAX - digit) / 10) {
                return error_set(err, source, "npy header: a dimension in 'shape' overflows");
            }
            value = value * 10 + digit;
            c->pos++;
            digits++;
        }
        if (digits == 0) {
            return error_set(err, source, "npy header: 'shape' holds something that is not a non-negative integer");
        }
        out->shape[out->ndim++] = value;
        if (!accept_char(c, ',')) {
            if (!accept_char(c, ')')) {
                return error_set(err, source, "npy header: 'shape' tuple is not closed");
            }
            break;
        }
    }
    return 0;
}

static int parse_header(const char *text, size_t length, const char *source, NpyArray *out, CourseError *err)
{
    HeaderCursor c = {text, length, 0};
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!accept_char(&c, '{')) {
        return error_set(err, source, "npy header is not a Python dict");
    }
    while (!accept_char(&c, '}')) {
        char key[32];
        if (read_quoted(&c, key, sizeof key) != 0 || !accept_char(&c, ':')) {
            return error_set(err, source, "npy header is malformed (expected 'key': value)");
        }
        if (strcmp(key, "descr") == 0) {
            char descr[32];
            if (read_quoted(&c, descr, sizeof descr) != 0) {
                return error_set(err, source, "npy header: 'descr' is not a string (structured arrays are not supported)");
            }
            if (strcmp(descr, "<f4") == 0) {
                out->dtype = NPY_FLOAT32;
            } else if (strcmp(descr, "<i4") == 0) {
                out->dtype = NPY_INT32;
            } else if (strcmp(descr, "<i8") == 0) {
                out->dtype = NPY_INT64;
            } else if (strcmp(descr, "|u1") == 0 || strcmp(descr, "<u1") == 0) {
                out->dtype = NPY_UINT8;
            } else {
                return error_set(err, source,
                                 "unsupported dtype '%s' (supported: little-endian float32 '<f4', int32 '<i4', "
                                 "int64 '<i8', uint8 '|u1')",
                                 descr);
            }
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            skip_spaces(&c);
            if (c.length - c.pos >= 5 && strncmp(c.text + c.pos, "False", 5) == 0) {
                c.pos += 5;
            } else if (c.length - c.pos >= 4 && strncmp(c.text + c.pos, "True", 4) == 0) {
                return error_set(err, source, "Fortran-order arrays are not supported (save with np.ascontiguousarray)");
            } else {
                return error_set(err, source, "npy header: 'fortran_order' is neither True nor False");
            }
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(&c, out, source, err) != 0) {
                return -1;
            }
            have_shape = 1;
        } else {
            return error_set(err, source, "npy header has an unknown key '%s'", key);
        }
        if (!accept_char(&c, ',')) {
            if (!accept_char(&c, '}')) {
                return error_set(err, source, "npy header is malformed (expected ',' or '}')");
            }
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape) {
        return error_set(err, source, "npy header lacks one of 'descr', 'fortran_order', 'shape'");
    }
    return 0;
}

int npy_parse(const unsigned char *bytes, size_t length, const char *source, NpyArray *out, CourseError *err)
{
    memset(out, 0, sizeof *out);
    if (length < NPY_PREAMBLE) {
        return error_set(err, source, "not a .npy file: only %zu bytes, shorter than the 10-byte preamble", length);
    }
    if (memcmp(bytes, NPY_MAGIC, sizeof NPY_MAGIC) != 0) {
        return error_set(err, source, "not a .npy file: wrong magic (expected \\x93NUMPY)");
    }
    if (bytes[6] != 1 || bytes[7] != 0) {
        return error_set(err, source, "unsupported .npy format version %u.%u (only 1.0 is supported)", bytes[6],
                         bytes[7]);
    }
    size_t header_length = (size_t)bytes[8] | ((size_t)bytes[9] << 8); /* little-endian uint16 */
    if (header_length > length - NPY_PREAMBLE) {
        return error_set(err, source, "truncated: header says %zu header bytes, the file has %zu after the preamble",
                         header_length, length - NPY_PREAMBLE);
    }
    if (parse_header((const char *)bytes + NPY_PREAMBLE, header_length, source, out, err) != 0) {
        return -1;
    }
    /* Element count and byte size, refusing products that overflow size_t. */
    size_t count = 1;
    for (int i = 0; i < out->ndim; i++) {
        if (out->shape[i] == 0) {
            count = 0; /* an empty array, whatever the other dimensions say */
            break;
        }
        if (count > SIZE_MAX / out->shape[i]) {
            return error_set(err, source, "shape's element count overflows");
        }
        count *= out->shape[i];
    }
    size_t item = npy_dtype_size(out->dtype);
    if (count > SIZE_MAX / item) {
        return error_set(err, source, "shape's byte size overflows");
    }
    size_t data_bytes = count * item;
    size_t available = length - NPY_PREAMBLE - header_length;
    if (available < data_bytes) {
        char shape[128];
        return error_set(err, source, "truncated: shape %s of %s needs %zu data bytes, the file has %zu",
                         npy_shape_string(out->ndim, out->shape, shape, sizeof shape), npy_dtype_name(out->dtype),
                         data_bytes, available);
    }
    if (available > data_bytes) {
        return error_set(err, source, "%zu unexpected bytes after the data (shape and file size disagree)",
                         available - data_bytes);
    }
    out->count = count;
    out->data = malloc(data_bytes ? data_bytes : 1);
    if (out->data == NULL) {
        return error_set(err, source, "out of memory for %zu bytes", data_bytes);
    }
    memcpy(out->data, bytes + NPY_PREAMBLE + header_length, data_bytes);
    return 0;
}

int npy_load(const char *path, NpyArray *out, CourseError *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *bytes = NULL;
    size_t length = 0;
    if (file_read_all(path, &bytes, &length, err) != 0) {
        return -1;
    }
    int status = npy_parse(bytes, length, path, out, err);
    free(bytes);
    return status;
}

int npy_save(const char *path, NpyDtype dtype, int ndim, const size_t *shape, const void *data, CourseError *err)
{
    if (ndim < 0 || ndim > NPY_MAX_DIMS) {
        return error_set(err, path, "cannot save an array of %d dimensions", ndim);
    }
    char shape_text[256];
    npy_shape_string(ndim, shape, shape_text, sizeof shape_text);
    char header[512];
    int used = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                        npy_descr(dtype), shape_text);
    if (used < 0 || (size_t)used + 64 >= sizeof header) {
        return error_set(err, path, "npy header too long");
    }
    /* Pad with spaces and a final newline so that preamble + header is a multiple of 64 bytes, as numpy does:
     * then the data starts aligned. */
    size_t total = NPY_PREAMBLE + (size_t)used + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t header_length = padded - NPY_PREAMBLE;
    memset(header + used, ' ', header_length - (size_t)used - 1);
    header[header_length - 1] = '\n';

    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        count *= shape[i];
    }
    unsigned char preamble[NPY_PREAMBLE];
    memcpy(preamble, NPY_MAGIC, sizeof NPY_MAGIC);
    preamble[6] = 1;
    preamble[7] = 0;
    preamble[8] = (unsigned char)(header_length & 0xff);
    preamble[9] = (unsigned char)(header_length >> 8);

    AtomicFile file;
    if (atomic_file_open(&file, path, err) != 0) {
        return -1;
    }
    if (fwrite(preamble, 1, sizeof preamble, file.stream) != sizeof preamble ||
        fwrite(header, 1, header_length, file.stream) != header_length ||
        fwrite(data, npy_dtype_size(dtype), count, file.stream) != count) {
        atomic_file_abort(&file);
        return error_set(err, path, "write failed: %s", strerror(errno));
    }
    return atomic_file_commit(&file, err);
}

void npy_free(NpyArray *array)
{
    free(array->data);
    array->data = NULL;
    array->count = 0;
}
