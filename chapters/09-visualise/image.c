/* image.c — Chapter 09: RGB images, colour maps and PNG files through libpng (see image.h). */
#include "image.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"

Image image_create(int width, int height, Rgb background)
{
    Image img = {width, height, xmalloc((size_t)width * height * 3)};
    image_fill_rect(&img, 0, 0, width, height, background);
    return img;
}

void image_free(Image *img)
{
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

void image_set(Image *img, int x, int y, Rgb colour)
{
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) {
        return;
    }
    uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
    p[0] = colour.r;
    p[1] = colour.g;
    p[2] = colour.b;
}

void image_fill_rect(Image *img, int x, int y, int width, int height, Rgb colour)
{
    for (int j = y; j < y + height; ++j) {
        for (int i = x; i < x + width; ++i) {
            image_set(img, i, j, colour);
        }
    }
}

/* ---- Colour maps: piecewise-linear between a few stops ---------------------------------------------------- */

static Rgb interpolate(const Rgb *stops, int n, float t)
{
    if (!(t > 0.0f)) { /* also NaN */
        return stops[0];
    }
    if (t >= 1.0f) {
        return stops[n - 1];
    }
    const float position = t * (float)(n - 1);
    const int i = (int)position;
    const float f = position - (float)i;
    const Rgb a = stops[i], b = stops[i + 1];
    return (Rgb){(uint8_t)lroundf(a.r + f * (b.r - a.r)), (uint8_t)lroundf(a.g + f * (b.g - a.g)),
                 (uint8_t)lroundf(a.b + f * (b.b - a.b))};
}

Rgb colormap_gray(float t)
{
    static const Rgb stops[] = {{0, 0, 0}, {255, 255, 255}};
    return interpolate(stops, 2, t);
}

Rgb colormap_heat(float t)
{
    static const Rgb stops[] = {{0, 0, 0}, {170, 20, 20}, {255, 140, 0}, {255, 230, 80}, {255, 255, 255}};
    return interpolate(stops, 5, t);
}

Rgb colormap_diverging(float t)
{
    static const Rgb stops[] = {{33, 102, 172}, {146, 197, 222}, {247, 247, 247}, {244, 165, 130}, {178, 24, 43}};
    return interpolate(stops, 5, t);
}

Rgb class_colour(int k)
{
    static const Rgb tableau10[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                      {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                                      {188, 189, 34},  {23, 190, 207}};
    return tableau10[((k % 10) + 10) % 10];
}

void image_draw_map(Image *img, int x, int y, const float *values, int rows, int cols, int scale, float lo,
                    float hi, Colormap map)
{
    const float range = hi - lo;
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            const float t = range > 0.0f ? (values[(size_t)r * cols + c] - lo) / range : 0.0f;
            image_fill_rect(img, x + c * scale, y + r * scale, scale, scale, map(t));
        }
    }
}

/* ---- PNG through libpng ------------------------------------------------------------------------------------ */

/* libpng reports errors by calling an error function that must not return; the usual way out is a longjmp
 * back to the setjmp in the caller. The message is kept for the CourseError. */
typedef struct PngErrorSink {
    char message[256];
} PngErrorSink;

static void png_error_to_sink(png_structp png, png_const_charp message)
{
    PngErrorSink *sink = png_get_error_ptr(png);
    snprintf(sink->message, sizeof sink->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_warning_ignored(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

/* The part of the write that libpng can abort with a longjmp: no automatic variable it changes is read
 * after the jump, so setjmp's rules are met. */
static int png_encode(FILE *stream, const Image *img, PngErrorSink *sink)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, png_error_to_sink, png_warning_ignored);
    if (png == NULL) {
        snprintf(sink->message, sizeof sink->message, "libpng could not start");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, stream);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; ++y) {
        png_write_row(png, img->rgb + (size_t)y * img->width * 3);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int png_write_rgb(const char *path, const Image *img, CourseError *err)
{
    if (img->width < 1 || img->height < 1) {
        return error_set(err, path, "an image must have at least one pixel (got %dx%d)", img->width, img->height);
    }
    AtomicFile file;
    if (atomic_file_open(&file, path, err) != 0) {
        return -1;
    }
    PngErrorSink sink = {""};
    if (png_encode(file.stream, img, &sink) != 0) {
        atomic_file_abort(&file);
        return error_set(err, path, "PNG encoding failed: %s", sink.message);
    }
    return atomic_file_commit(&file, err);
}

static int png_decode(FILE *stream, Image *img, PngErrorSink *sink)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, sink, png_error_to_sink, png_warning_ignored);
    if (png == NULL) {
        snprintf(sink->message, sizeof sink->message, "libpng could not start");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    /* volatile: set after setjmp and freed after a longjmp */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (info == NULL || setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_init_io(png, stream);
    png_set_user_limits(png, 1u << 14, 1u << 14); /* refuse absurd sizes before allocating */
    png_read_info(png, info);
    /* Whatever the file holds (palette, gray, 16-bit, alpha), ask libpng for 8-bit RGB. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    png_read_update_info(png, info);
    const int width = (int)png_get_image_width(png, info), height = (int)png_get_image_height(png, info);
    pixels = xmalloc((size_t)width * height * 3);
    rows = xmalloc((size_t)height * sizeof *rows);
    for (int y = 0; y < height; ++y) {
        rows[y] = pixels + (size_t)y * width * 3;
    }
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *img = (Image){width, height, pixels};
    return 0;
}

int png_read_rgb(const char *path, Image *img, CourseError *err)
{
    memset(img, 0, sizeof *img);
    FILE *stream = fopen(path, "rb");
    if (stream == NULL) {
        return error_set(err, path, "cannot open it");
    }
    unsigned char signature[8];
    if (fread(signature, 1, 8, stream) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
        fclose(stream);
        return error_set(err, path, "not a PNG file (its first 8 bytes are not the PNG signature)");
    }
    rewind(stream);
    PngErrorSink sink = {""};
    const int rc = png_decode(stream, img, &sink);
    fclose(stream);
    return rc == 0 ? 0 : error_set(err, path, "PNG decoding failed: %s", sink.message);
}
