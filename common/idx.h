/* idx.h — read the IDX files MNIST and Fashion-MNIST are distributed in, gzip-compressed or plain.
 *
 * IDX format (big-endian): two zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of
 * dimensions, then one uint32 per dimension, then the data in row-major order. MNIST's image files are
 * 3-dimensional (count, 28, 28), magic 0x00000803 = 2051; label files 1-dimensional (count), magic 2049.
 *
 *   MnistSplit train; CourseError err;
 *   if (mnist_load(&train, "data", "train", &err) != 0) error_exit(&err);
 *   // train.images: (count, rows, cols) bytes 0..255;  train.labels: (count) digits 0..9
 *   mnist_free(&train);
 *
 * Every check names the file: wrong magic, unsupported element type, dimensions that disagree with the file
 * size, counts that overflow, label values out of range, image and label counts that differ.
 */
#ifndef COURSE_IDX_H
#define COURSE_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "course_error.h"

#define IDX_MAX_DIMS 4
/* Larger decompressed files are refused (full MNIST's largest is 47 MB): a guard against zip bombs. */
#define IDX_MAX_BYTES ((size_t)1 << 30)

typedef struct IdxArray {
    int ndim;
    size_t dims[IDX_MAX_DIMS];
    size_t count; /* product of dims */
    uint8_t *data; /* owned; release with idx_free */
} IdxArray;

/* Parse a whole (decompressed) IDX file held in memory. `source` names it in errors. Returns 0 or -1. */
int idx_parse(const unsigned char *bytes, size_t length, const char *source, IdxArray *out, CourseError *err);

/* Read an IDX file; a gzip-compressed file (.gz) is decompressed on the fly, a plain one read as is. */
int idx_load(const char *path, IdxArray *out, CourseError *err);

void idx_free(IdxArray *array);

typedef struct MnistSplit {
    size_t count, rows, cols;
    uint8_t *images; /* (count, rows, cols), pixel bytes 0..255 */
    uint8_t *labels; /* (count), class indices 0..9 */
} MnistSplit;

/* Check that an image array and a label array form a data set: 3-D images, 1-D labels, equal counts, labels
 * below 10. On success takes ownership of both arrays' data. `images_source`/`labels_source` name them. */
int mnist_from_arrays(MnistSplit *out, IdxArray *images, const char *images_source, IdxArray *labels,
                      const char *labels_source, CourseError *err);

/* Load "<dir>/<split>-images-idx3-ubyte[.gz]" and "<dir>/<split>-labels-idx1-ubyte[.gz]" where split is
 * "train" or "t10k". The .gz name is tried first. */
int mnist_load(MnistSplit *out, const char *dir, const char *split, CourseError *err);

void mnist_free(MnistSplit *split);

#endif
