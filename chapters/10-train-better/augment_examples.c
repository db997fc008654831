/* augment_examples.c — Chapter 10: a picture of what the augmentations do, for the lesson and for a learner who
 * changes them: the first training digits as they are, then with four draws of the affine transform and four
 * of the elastic distortion (the C code the trainer uses, augment_batch_cpu), in one PNG.
 *
 *   build/bin/augment_examples --out chapters/10-train-better/figures/augment_examples.png
 *   build/bin/augment_examples --data /usr/share/datasets/fashion-mnist --count 10 --seed 3 --out fashion.png
 *
 * Rows: the originals; affine at training steps 0..3; elastic at steps 0..3 (each step draws new parameters
 * for every image, as the trainer does at every step). Written with chapter 09's PNG writer (libpng).
 */
#include <stdio.h>
#include <stdlib.h>

#include "augment.h"
#include "course_error.h"
#include "idx.h"
#include "image.h" /* chapter 09: Image, png_write_rgb */
#include "train_util.h"

#define GAP 2 /* white pixels between tiles */
#define DRAWS 4 /* rows per augmentation */

int main(int argc, char **argv)
{
    const char *data = NULL, *out = NULL;
    int count = 8, seed = 1, scale = 3;
    const FlagSpec flags[] = {
        {"--data", FLAG_STRING, &data, 0, 0, "folder with the MNIST IDX files (default: the bundled data/)"},
        {"--out", FLAG_STRING, &out, 0, 0, "the PNG file to write"},
        {"--count", FLAG_INT, &count, 1, 64, "training images, one column each"},
        {"--seed", FLAG_INT, &seed, 0, 2147483647, "the seed (mnist_train --seed)"},
        {"--scale", FLAG_INT, &scale, 1, 16, "pixels per image pixel"},
    };
    CourseError err;
    const int parsed = flags_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "augment_examples",
                                   "A PNG of training digits, plain and augmented (chapter 10).", &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != FLAGS_OK) {
        error_exit(&err);
    }
    if (out == NULL) {
        die("augment_examples: --out FILE.png is required (--help for more)");
    }
    if (data == NULL) {
        data = train_default_data_dir(COURSE_DATA_DIR_DEFAULT);
    }
    MnistSplit train, test;
    if (train_load_mnist(data, &train, &test, &err) != 0) {
        error_exit(&err);
    }
    if ((size_t)count > train.count || train.rows != train.cols) {
        die("%s: need %d square training images, found %zu of %zux%zu", data, count, train.count, train.rows,
            train.cols);
    }
    const int S = (int)train.rows, tile = S * scale, rows = 1 + 2 * DRAWS;
    uint32_t *indices = xmalloc((size_t)count * sizeof *indices); /* (count) */
    for (int b = 0; b < count; ++b) {
        indices[b] = (uint32_t)b;
    }
    float *x = xmalloc((size_t)count * S * S * sizeof *x); /* (count, 1, S, S) normalised */
    Image img = image_create(count * tile + (count + 1) * GAP, rows * tile + (rows + 1) * GAP, IMAGE_WHITE);
    for (int row = 0; row < rows; ++row) {
        const AugmentKind kind = row == 0 ? AUGMENT_NONE : row <= DRAWS ? AUGMENT_AFFINE : AUGMENT_ELASTIC;
        const AugmentConfig config = augment_default_config(kind);
        const uint64_t step = row == 0 ? 0 : (uint64_t)((row - 1) % DRAWS);
        augment_batch_cpu(&config, &train, indices, count, (uint64_t)seed, step, x);
        for (int b = 0; b < count; ++b) {
            /* Back to [0, 1] for the picture: the inverse of the loader's normalisation. */
            float *pixels = x + (size_t)b * S * S;
            for (int p = 0; p < S * S; ++p) {
                pixels[p] = pixels[p] * MNIST_STD + MNIST_MEAN;
            }
            image_draw_map(&img, GAP + b * (tile + GAP), GAP + row * (tile + GAP), pixels, S, S, scale, 0.0f, 1.0f,
                           colormap_gray);
        }
    }
    if (png_write_rgb(out, &img, &err) != 0) {
        error_exit(&err);
    }
    printf("wrote %s: %d training images of %s; rows: as stored, affine x %d, elastic x %d (seed %d)\n", out, count,
           data, DRAWS, DRAWS, seed);
    image_free(&img);
    free(x);
    free(indices);
    mnist_free(&train);
    mnist_free(&test);
    return 0;
}
