/* idx.c — see idx.h. Format: http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE"). */
#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08

static const char *idx_type_name(unsigned type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
    }
}

int idx_parse(const unsigned char *bytes, size_t length, const char *source, IdxArray *out, CourseError *err)
{
    memset(out, 0, sizeof *out);
    if (length < 4) {
        return error_set(err, source, "not an IDX file: only %zu bytes, shorter than the 4-byte magic number", length);
    }
    if (bytes[0] != 0 || bytes[1] != 0) {
        return error_set(err, source,
                         "not an IDX file: wrong magic number 0x%02x%02x%02x%02x (an IDX file starts with two zero "
                         "bytes; MNIST images are 0x00000803, labels 0x00000801)",
                         bytes[0], bytes[1], bytes[2], bytes[3]);
    }
    unsigned type = bytes[2];
    int ndim = bytes[3];
    if (type != IDX_TYPE_UBYTE) {
        return error_set(err, source, "IDX element type 0x%02x (%s) is not supported; MNIST uses 0x08 (unsigned byte)",
                         type, idx_type_name(type));
    }
    if (ndim < 1 || ndim > IDX_MAX_DIMS) {
        return error_set(err, source, "IDX file has %d dimensions; 1 to %d are supported", ndim, IDX_MAX_DIMS);
    }
    size_t header = 4 + 4 * (size_t)ndim;
    if (length < header) {
        return error_set(err, source, "truncated: the header needs %zu bytes for %d dimensions, the file has %zu",
                         header, ndim, length);
    }
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *p = bytes + 4 + 4 * i;
        size_t dim = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | (size_t)p[3];
        if (dim != 0 && count > IDX_MAX_BYTES / dim) {
            return error_set(err, source, "dimensions overflow: their product exceeds %zu bytes", IDX_MAX_BYTES);
        }
        count *= dim;
        out->dims[i] = dim;
    }
    out->ndim = ndim;
    size_t available = length - header;
    if (available != count) {
        return error_set(err, source, "%s: the header's dimensions need %zu data bytes, the file has %zu",
                         available < count ? "truncated" : "size mismatch", count, available);
    }
    out->count = count;
    out->data = malloc(count ? count : 1);
    if (out->data == NULL) {
        return error_set(err, source, "out of memory for %zu bytes", count);
    }
    memcpy(out->data, bytes + header, count);
    return 0;
}

/* Read a whole file through zlib: gzread() decompresses .gz files and passes plain files through unchanged. */
static int read_maybe_gzip(const char *path, unsigned char **bytes, size_t *length, CourseError *err)
{
    *bytes = NULL;
    *length = 0;
    struct stat info;
    if (stat(path, &info) != 0) {
        return error_set(err, path, "cannot open: %s", strerror(errno));
    }
    if (S_ISDIR(info.st_mode)) {
        return error_set(err, path, "is a directory, not an IDX file");
    }
    gzFile file = gzopen(path, "rb");
    if (file == NULL) {
        return error_set(err, path, "cannot open: %s", strerror(errno));
    }
    size_t capacity = 1 << 20;
    size_t used = 0;
    unsigned char *buffer = malloc(capacity);
    if (buffer == NULL) {
        gzclose(file);
        return error_set(err, path, "out of memory");
    }
    for (;;) {
        if (used == capacity) {
            if (capacity >= IDX_MAX_BYTES) {
                free(buffer);
                gzclose(file);
                return error_set(err, path, "larger than %zu bytes decompressed; refusing", IDX_MAX_BYTES);
            }
            unsigned char *bigger = realloc(buffer, capacity * 2);
            if (bigger == NULL) {
                free(buffer);
                gzclose(file);
                return error_set(err, path, "out of memory");
            }
            buffer = bigger;
            capacity *= 2;
        }
        size_t want = capacity - used;
        if (want > (1u << 30)) {
            want = 1u << 30;
        }
        int got = gzread(file, buffer + used, (unsigned)want);
        if (got < 0) {
            int code = 0;
            const char *message = gzerror(file, &code);
            size_t path_length = strlen(path);
            if (strncmp(message, path, path_length) == 0 && strncmp(message + path_length, ": ", 2) == 0) {
                message += path_length + 2; /* zlib prefixes its message with the path; we add it ourselves */
            }
            CourseError tmp;
            error_set(&tmp, path, "corrupt gzip data: %s", message);
            free(buffer);
            gzclose(file);
            if (err) {
                *err = tmp;
            }
            return -1;
        }
        if (got == 0) {
            break;
        }
        used += (size_t)got;
    }
    /* gzread returns 0 both at a clean end and at a truncated gzip stream; gzclose tells them apart. */
    int status = gzclose(file);
    if (status == Z_BUF_ERROR) {
        free(buffer);
        return error_set(err, path, "truncated gzip file (the compressed stream ends early)");
    }
    if (status != Z_OK) {
        free(buffer);
        return error_set(err, path, "corrupt gzip data (zlib error %d)", status);
    }
    *bytes = buffer;
    *length = used;
    return 0;
}

int idx_load(const char *path, IdxArray *out, CourseError *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *bytes = NULL;
    size_t length = 0;
    if (read_maybe_gzip(path, &bytes, &length, err) != 0) {
        return -1;
    }
    int status = idx_parse(bytes, length, path, out, err);
    free(bytes);
    return status;
}

void idx_free(IdxArray *array)
{
    free(array->data);
    array->data = NULL;
    array->count = 0;
}

int mnist_from_arrays(MnistSplit *out, IdxArray *images, const char *images_source, IdxArray *labels,
                      const char *labels_source, CourseError *err)
{
    memset(out, 0, sizeof *out);
    if (images->ndim != 3) {
        return error_set(err, images_source, "expected a 3-dimensional image file (count, rows, cols), got %d dimensions",
                         images->ndim);
    }
    if (labels->ndim != 1) {
        return error_set(err, labels_source, "expected a 1-dimensional label file (count), got %d dimensions",
                         labels->ndim);
    }
    if (images->dims[0] != labels->dims[0]) {
        return error_set(err, images_source, "holds %zu images but %s holds %zu labels", images->dims[0],
                         labels_source, labels->dims[0]);
    }
    if (images->dims[0] == 0) {
        return error_set(err, images_source, "holds no images");
    }
    if (images->dims[1] == 0 || images->dims[2] == 0) {
        return error_set(err, images_source, "images of size %zu x %zu", images->dims[1], images->dims[2]);
    }
    for (size_t i = 0; i < labels->count; i++) {
        if (labels->data[i] > 9) {
            return error_set(err, labels_source, "label %zu is %u; class labels must be 0..9", i, labels->data[i]);
        }
    }
    out->count = images->dims[0];
    out->rows = images->dims[1];
    out->cols = images->dims[2];
    out->images = images->data;
    out->labels = labels->data;
    images->data = NULL;
    labels->data = NULL;
    return 0;
}

/* Find "<dir>/<name>.gz" or "<dir>/<name>"; writes the path that exists (or the .gz one if neither does). */
static void find_data_file(char *path, size_t size, const char *dir, const char *name)
{
    snprintf(path, size, "%s/%s.gz", dir, name);
    struct stat info;
    if (stat(path, &info) == 0) {
        return;
    }
    snprintf(path, size, "%s/%s", dir, name);
    if (stat(path, &info) == 0) {
        return;
    }
    snprintf(path, size, "%s/%s.gz", dir, name);
}

int mnist_load(MnistSplit *out, const char *dir, const char *split, CourseError *err)
{
    memset(out, 0, sizeof *out);
    char name[64], images_path[4096], labels_path[4096];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", split);
    find_data_file(images_path, sizeof images_path, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", split);
    find_data_file(labels_path, sizeof labels_path, dir, name);

    IdxArray images, labels;
    if (idx_load(images_path, &images, err) != 0) {
        return -1;
    }
    if (idx_load(labels_path, &labels, err) != 0) {
        idx_free(&images);
        return -1;
    }
    int status = mnist_from_arrays(out, &images, images_path, &labels, labels_path, err);
    idx_free(&images);
    idx_free(&labels);
    return status;
}

void mnist_free(MnistSplit *split)
{
    free(split->images);
    free(split->labels);
    memset(split, 0, sizeof *split);
}
