/* safetensors.h — read and write the .safetensors format (Hugging Face's), the course's checkpoint format.
 *
 * A .safetensors file is three parts:
 *
 *   [8 bytes]  N, the header's length, a little-endian uint64
 *   [N bytes]  a JSON object: for every tensor  "name": {"dtype": "F32", "shape": [32, 1, 3, 3],
 *              "data_offsets": [begin, end]},  plus an optional "__metadata__": {"key": "value", ...}
 *              whose values are all strings
 *   [rest]     the data section: each tensor's bytes, C order, little-endian, at [begin, end) of this section
 *
 * That is all: no pickle, no code runs when a file is loaded, and PyTorch, NumPy, JAX... all read it
 * (`safetensors.torch.load_file`, or 20 lines of Python: chapters/07-mnist-gpu/load_checkpoint.py).
 *
 * The writer here writes F32 tensors one after another and adds "data_crc32" (CRC-32 of the data section,
 * 8 hex digits) to the metadata, so that a flipped bit anywhere in the weights is detected on reading —
 * the format itself has no checksum. Files are written atomically (temp file + rename, common/file_util.h).
 *
 * The reader checks everything a damaged or hostile file could get wrong and names the file and the problem
 * in err: too short, a header length beyond the file, bad JSON, an unknown dtype, a shape whose size does
 * not match its byte range, ranges outside the data section, overlapping or leaving gaps (the format forbids
 * both), duplicate names, a CRC mismatch. It never crashes on bad input (tests/fuzz/fuzz_safetensors.c).
 *
 *   SafetensorsTensorView t[] = {{"fc1.weight", 2, {128, 9216}, fc1_w}, ...};
 *   SafetensorsMeta m[] = {{"epoch", "3"}};
 *   safetensors_write_f32("model.safetensors", t, 1, m, 1, &err);
 *
 *   SafetensorsFile f;
 *   if (safetensors_read("model.safetensors", &f, &err) != 0) error_exit(&err);
 *   const SafetensorsEntry *e = safetensors_find(&f, "fc1.weight");      // e->shape, e->ndim, e->dtype
 *   float *w = xmalloc(e->count * sizeof *w);                            // (128, 9216)
 *   safetensors_copy_f32(&f, e, w);
 *   const char *epoch = safetensors_meta(&f, "epoch");                   // NULL when absent
 *   safetensors_free(&f);
 */
#ifndef COURSE_SAFETENSORS_H
#define COURSE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "course_error.h"

#define SAFETENSORS_MAX_DIMS 8
/* A header larger than this is refused before it is read (real headers are a few KB). */
#define SAFETENSORS_MAX_HEADER (64u << 20)

/* A float32 tensor to write: `data` holds shape[0] * ... * shape[ndim-1] floats (1 for ndim 0). */
typedef struct SafetensorsTensorView {
    const char *name;
    int ndim;
    size_t shape[SAFETENSORS_MAX_DIMS];
    const float *data;
} SafetensorsTensorView;

typedef struct SafetensorsMeta {
    const char *key;
    const char *value;
} SafetensorsMeta;

/* Write the tensors (in the given order) and the metadata, plus "data_crc32", atomically to path.
 * Metadata keys must not be "data_crc32". Returns 0, or -1 with err naming the file. */
int safetensors_write_f32(const char *path, const SafetensorsTensorView *tensors, size_t n_tensors,
                          const SafetensorsMeta *meta, size_t n_meta, CourseError *err);

typedef struct SafetensorsEntry {
    char *name;
    char dtype[8]; /* "F32", "F16", "I64", ... as in the file */
    size_t element_size; /* bytes per element of that dtype */
    int ndim;
    size_t shape[SAFETENSORS_MAX_DIMS];
    size_t count; /* elements */
    size_t begin, end; /* byte range in the data section */
} SafetensorsEntry;

typedef struct SafetensorsFile {
    SafetensorsEntry *tensors; /* in the order of their data */
    size_t n_tensors;
    SafetensorsMeta *meta; /* keys and values owned by this struct */
    size_t n_meta;
    unsigned char *data; /* the data section (owned) */
    size_t data_size;
} SafetensorsFile;

/* Parse a whole file held in memory; `source` names it in error messages. Returns 0, or -1 with err. */
int safetensors_parse(const unsigned char *bytes, size_t length, const char *source, SafetensorsFile *out,
                      CourseError *err);

/* Read and parse path (see above); verifies data_crc32 when the metadata has it. */
int safetensors_read(const char *path, SafetensorsFile *out, CourseError *err);

/* The tensor called name, or NULL. */
const SafetensorsEntry *safetensors_find(const SafetensorsFile *file, const char *name);

/* The value of metadata key, or NULL. */
const char *safetensors_meta(const SafetensorsFile *file, const char *key);

/* Copy an F32 tensor's bytes to `out` (entry->count floats), whatever the alignment of the data section. */
void safetensors_copy_f32(const SafetensorsFile *file, const SafetensorsEntry *entry, float *out);

void safetensors_free(SafetensorsFile *file);

#endif
