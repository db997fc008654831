/* npy.h — read and write NumPy .npy files (format version 1.0), the course's golden-file format.
 *
 * A .npy file is a 10-byte preamble (magic "\x93NUMPY", version 1.0, header length), a Python-dict header
 * such as {'descr': '<f4', 'fortran_order': False, 'shape': (64, 10), } padded with spaces to a multiple of
 * 64 bytes, then the raw little-endian elements in C (row-major) order. Learners can open every file the
 * course writes with numpy.load().
 *
 * Supported element types: float32 ('<f4'), int32 ('<i4'), int64 ('<i8'), uint8 ('|u1'). Anything else —
 * another version, big-endian data, Fortran order, object arrays, a truncated file — is refused with a
 * message naming the file and the problem.
 *
 *   NpyArray a; CourseError err;
 *   if (npy_load("reference/golden/ch01/sigmoid_x.npy", &a, &err) != 0) error_exit(&err);
 *   float *x = a.data;   // a.shape[0] elements when a.ndim == 1
 *   npy_free(&a);
 */
#ifndef COURSE_NPY_H
#define COURSE_NPY_H

#include <stddef.h>

#include "course_error.h"

#define NPY_MAX_DIMS 8

typedef enum NpyDtype {
    NPY_FLOAT32,
    NPY_INT32,
    NPY_INT64,
    NPY_UINT8,
} NpyDtype;

typedef struct NpyArray {
    NpyDtype dtype;
    int ndim; /* 0 for a scalar */
    size_t shape[NPY_MAX_DIMS];
    size_t count; /* product of shape (1 for a scalar) */
    void *data; /* count elements, C order; owned, release with npy_free */
} NpyArray;

/* Bytes per element of a dtype, and its name ("float32", ...). */
size_t npy_dtype_size(NpyDtype dtype);
const char *npy_dtype_name(NpyDtype dtype);

/* Parse a whole .npy file held in memory. `source` names it in error messages. On success the array owns a
 * copy of the data. Returns 0, or -1 with err filled. */
int npy_parse(const unsigned char *bytes, size_t length, const char *source, NpyArray *out, CourseError *err);

/* Read a .npy file. Returns 0, or -1 with err filled ("<path>: <problem>"). */
int npy_load(const char *path, NpyArray *out, CourseError *err);

/* Write a .npy file atomically: into a temporary file beside `path`, then renamed over it, so a crash never
 * leaves a half-written file. Returns 0, or -1 with err filled. */
int npy_save(const char *path, NpyDtype dtype, int ndim, const size_t *shape, const void *data, CourseError *err);

/* Release the data of an array (safe on a zeroed array). */
void npy_free(NpyArray *array);

/* Format a shape as "(2, 3)" or "(7,)" into buf; returns buf. */
char *npy_shape_string(int ndim, const size_t *shape, char *buf, size_t buf_size);

#endif
