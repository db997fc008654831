/* image.h — Chapter 09: RGB pictures in memory, the colour maps that turn numbers into colours, and PNG files
 * written and read through libpng (Debian: libpng-dev).
 *
 *   Image img = image_create(280, 28, IMAGE_WHITE);                    // width, height, background
 *   image_draw_map(&img, 0, 0, saliency, 28, 28, 4, 0.0f, max, colormap_heat);   // a (28, 28) map, 4x larger
 *   if (png_write_rgb("out/saliency.png", &img, &err) != 0) error_exit(&err);    // atomic: temp file + rename
 *   image_free(&img);
 *
 * Pixels are stored row by row, 3 bytes (red, green, blue) each, top row first: what a PNG of colour type RGB
 * holds, so libpng takes the rows as they are.
 */
#ifndef CH09_IMAGE_H
#define CH09_IMAGE_H

#include <stdint.h>

#include "course_error.h"

typedef struct Rgb {
    uint8_t r, g, b;
} Rgb;

#define IMAGE_WHITE ((Rgb){255, 255, 255})

typedef struct Image {
    int width, height;
    uint8_t *rgb; /* (height, width, 3) */
} Image;

Image image_create(int width, int height, Rgb background);
void image_free(Image *img);
void image_set(Image *img, int x, int y, Rgb colour); /* pixels outside the image are ignored */
void image_fill_rect(Image *img, int x, int y, int width, int height, Rgb colour);

/* A colour map: t in [0, 1] -> a colour. */
typedef Rgb (*Colormap)(float t);
Rgb colormap_gray(float t); /* black (0) to white (1): MNIST digits as they are stored */
Rgb colormap_heat(float t); /* black, red, yellow, white: for magnitudes (saliency, activations, counts) */
Rgb colormap_diverging(float t); /* blue (0), white (0.5), red (1): for signed values (filters, weights) */
Rgb class_colour(int k); /* ten distinguishable colours for the classes 0..9 (Tableau 10) */

/* Draw values (rows, cols) with its top-left corner at (x, y), every value a scale x scale square coloured
 * map((v - lo) / (hi - lo)), clamped to [0, 1] (NaN drawn as 0; hi <= lo draws everything at 0). */
void image_draw_map(Image *img, int x, int y, const float *values, int rows, int cols, int scale, float lo,
                    float hi, Colormap map);

/* Write img as an 8-bit RGB PNG at path, atomically (a temporary file in the same folder, flushed, synced and
 * renamed: a reader never sees half a file, and a failure leaves any previous file untouched). Returns 0, or -1
 * with err naming the file. */
int png_write_rgb(const char *path, const Image *img, CourseError *err);

/* Read a PNG (any bit depth and colour type: libpng converts it) into an RGB image. Returns 0, or -1 with err
 * naming the file and libpng's complaint. */
int png_read_rgb(const char *path, Image *img, CourseError *err);

#endif
