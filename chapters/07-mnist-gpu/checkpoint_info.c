/* checkpoint_info.c — print what a .safetensors file holds: its metadata, and each tensor's dtype, shape and
 * value range. Any safetensors file works (PyTorch's, Hugging Face's); the file is fully validated first
 * (common/safetensors.h), so this is also the quickest way to ask "is this checkpoint intact?". For the
 * course's own checkpoints (common/train_checkpoint.h: mlp_train's, cnn_train's, mnist_train's) it first says
 * which network and trainer the file is of and where its run stands.
 *
 *   build/bin/checkpoint_info run.safetensors
 *   build/bin/checkpoint_info --meta data_crc32 run.safetensors     # print one metadata value (scripts, tests)
 *   build/bin/checkpoint_info --crc conv1.weight run.safetensors    # CRC-32 of one tensor's bytes: did it change?
 *
 * Exit status 0 for a valid file, 1 (with a message naming the file and the problem) otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "course_error.h"
#include "safetensors.h"

static void usage(void)
{
    printf("usage: checkpoint_info [--meta KEY | --crc TENSOR] FILE.safetensors\n"
           "Validate a .safetensors file and print its metadata and tensors (or, with --meta, one metadata value;\n"
           "with --crc, the CRC-32 of one tensor's bytes, to tell whether two files hold the same tensor).\n");
}

int main(int argc, char **argv)
{
    const char *key = NULL, *tensor = NULL, *path = NULL;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else if (strcmp(argv[i], "--meta") == 0 && i + 1 < argc) {
            key = argv[++i];
        } else if (strcmp(argv[i], "--crc") == 0 && i + 1 < argc) {
            tensor = argv[++i];
        } else if (path == NULL && argv[i][0] != '-') {
            path = argv[i];
        } else {
            usage();
            die("unexpected argument '%s'", argv[i]);
        }
    }
    if (path == NULL) {
        usage();
        die("no file given");
    }
    SafetensorsFile f;
    CourseError err;
    if (safetensors_read(path, &f, &err) != 0) {
        error_exit(&err);
    }
    if (tensor != NULL) {
        const SafetensorsEntry *e = safetensors_find(&f, tensor);
        if (e == NULL) {
            safetensors_free(&f);
            die("%s: no tensor '%s'", path, tensor);
        }
        printf("%08lx\n", crc32(0L, f.data + e->begin, (uInt)(e->end - e->begin)));
        safetensors_free(&f);
        return 0;
    }
    if (key != NULL) {
        const char *value = safetensors_meta(&f, key);
        if (value == NULL) {
            safetensors_free(&f);
            die("%s: no metadata '%s'", path, key);
        }
        printf("%s\n", value);
        safetensors_free(&f);
        return 0;
    }
    printf("%s: valid safetensors file, %zu tensors, %zu bytes of data\n", path, f.n_tensors, f.data_size);
    const char *format = safetensors_meta(&f, "format");
    if (format != NULL && strncmp(format, "course-", 7) == 0) {
        const char *trainer = safetensors_meta(&f, "trainer"), *epoch = safetensors_meta(&f, "epoch");
        const char *step = safetensors_meta(&f, "step_in_epoch"), *accuracy = safetensors_meta(&f, "test_accuracy");
        printf("a checkpoint of the course's %s network, written by %s: after epoch %s%s%s%s%s%s\n", format + 7,
               trainer != NULL && trainer[0] != '\0' ? trainer : "a trainer of this course", epoch ? epoch : "?",
               step && strcmp(step, "0") != 0 ? ", " : "", step && strcmp(step, "0") != 0 ? step : "",
               step && strcmp(step, "0") != 0 ? " steps into the next" : "", accuracy ? ", test accuracy " : "",
               accuracy ? accuracy : "");
    }
    printf("metadata:\n");
    for (size_t i = 0; i < f.n_meta; ++i) {
        printf("  %-24s %.100s%s\n", f.meta[i].key, f.meta[i].value, strlen(f.meta[i].value) > 100 ? "..." : "");
    }
    printf("tensors:\n");
    for (size_t i = 0; i < f.n_tensors; ++i) {
        const SafetensorsEntry *e = &f.tensors[i];
        char shape[128] = "";
        for (int d = 0; d < e->ndim; ++d) {
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), d ? ", %zu" : "%zu", e->shape[d]);
        }
        printf("  %-36s %-4s (%s)", e->name, e->dtype, shape);
        if (strcmp(e->dtype, "F32") == 0 && e->count > 0) {
            float *values = xmalloc(e->count * sizeof *values);
            safetensors_copy_f32(&f, e, values);
            double min = INFINITY, max = -INFINITY, sum_squares = 0.0;
            size_t non_finite = 0;
            for (size_t k = 0; k < e->count; ++k) {
                if (!isfinite(values[k])) {
                    ++non_finite;
                    continue;
                }
                min = fmin(min, values[k]);
                max = fmax(max, values[k]);
                sum_squares += (double)values[k] * values[k];
            }
            printf("  min %+.4g max %+.4g rms %.4g", min, max, sqrt(sum_squares / (double)e->count));
            if (non_finite > 0) {
                printf("  %zu NaN/inf!", non_finite);
            }
            free(values);
        }
        printf("\n");
    }
    safetensors_free(&f);
    return 0;
}
