/* mnist_explain.c — Chapter 09: pictures of what a trained CNN learned, from a chapter 07 checkpoint.
 *
 *   build/bin/mnist_train --device cpu --save run.safetensors         # chapter 07: train and save
 *   build/bin/mnist_explain --checkpoint run.safetensors --out explain/
 *   xdg-open explain/index.html                                      # any browser; no server needed
 *
 * Writes into the --out folder (created if missing) PNG files and an index.html that shows them all with
 * captions and tables:
 *   filters.png            conv1's 3x3 filters
 *   digits.png             the ten explained test images: the first of each class in the test set
 *   conv1_mean.png, conv2_mean.png, conv1_maps_<d>.png, conv2_maps_<d>.png
 *                          feature maps: each layer's channels averaged, and every channel, for digit d
 *   saliency.png           |d logit[predicted] / d pixel| of the ten images
 *   gradcam.png            Grad-CAM on conv2 over the ten images
 *   mistakes.png           the test images the network got wrong with the highest confidence
 *   confusion.png          the confusion matrix as a heat map (the counts, precision and recall: index.html)
 *   embedding.png          PCA of the test set's 128 fc1 activations, coloured by class
 * Everything runs on the CPU (chapter 03's network; the saliency and Grad-CAM backward passes are its
 * cnn_backward_from_logits). Lesson: chapters/09-visualise/README.md.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "checkpoint.h"
#include "cnn.h"
#include "explain.h"
#include "file_util.h"
#include "image.h"
#include "testing.h"
#include "train_util.h"

#ifndef COURSE_DATA_DIR_DEFAULT
#define COURSE_DATA_DIR_DEFAULT "data"
#endif

enum { DIGITS = 10, GAP = 4, EVAL_BATCH = 256 };

typedef struct Explainer {
    const char *out_dir;
    Cnn net;
    TrainState state;
    MnistSplit test;
    float *probs; /* (N, 10) */
    int32_t *predicted; /* (N) */
    float *hidden; /* (N, hidden) fc1 activations */
    size_t confusion[DIGITS * DIGITS];
    size_t chosen[DIGITS]; /* test index of the first image of each digit */
    float *x_chosen; /* (10, 1, S, S) normalised */
    FILE *html;
} Explainer;

/* ---- files --------------------------------------------------------------------------------------------------- */

/* Write img as <out>/<name> and free it (every picture is written once, then no longer needed). */
static void write_png(const Explainer *e, const char *name, Image *img)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", e->out_dir, name);
    CourseError err;
    if (png_write_rgb(path, img, &err) != 0) {
        error_exit(&err);
    }
    image_free(img);
}

/* <figure> with the image and its caption (HTML given as is: the captions are this program's own text). */
static void html_figure(const Explainer *e, const char *name, const char *alt, const char *caption)
{
    fprintf(e->html, "<figure><img src=\"%s\" alt=\"%s\"><figcaption>%s</figcaption></figure>\n", name, alt, caption);
}

/* A grid of `count` tiles of tile_w x tile_h pixels, `columns` wide, GAP pixels apart. */
static Image grid_create(int count, int columns, int tile_w, int tile_h)
{
    const int rows = (count + columns - 1) / columns;
    return image_create(columns * tile_w + (columns + 1) * GAP, rows * tile_h + (rows + 1) * GAP, IMAGE_WHITE);
}

static void grid_origin(int index, int columns, int tile_w, int tile_h, int *x, int *y)
{
    *x = GAP + (index % columns) * (tile_w + GAP);
    *y = GAP + (index / columns) * (tile_h + GAP);
}

static float max_of(const float *v, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; ++i) {
        m = v[i] > m ? v[i] : m;
    }
    return m;
}

/* The raw pixels of test image i as floats in [0, 1], for drawing. */
static void raw_pixels(const MnistSplit *split, size_t i, float *out)
{
    const size_t n = split->rows * split->cols;
    for (size_t p = 0; p < n; ++p) {
        out[p] = split->images[i * n + p] / 255.0f;
    }
}

/* ---- the figures ------------------------------------------------------------------------------------------- */

static void figure_filters(Explainer *e)
{
    const CnnTensor *w = &e->net.tensors[CNN_CONV1_W]; /* (C1, 1, 3, 3) */
    const int filters = (int)w->shape[0], scale = 16, tile = 3 * scale, columns = 8;
    float range = 0.0f;
    for (size_t i = 0; i < w->count; ++i) {
        range = fabsf(w->value[i]) > range ? fabsf(w->value[i]) : range;
    }
    Image img = grid_create(filters, columns, tile, tile);
    for (int f = 0; f < filters; ++f) {
        int x, y;
        grid_origin(f, columns, tile, tile, &x, &y);
        image_draw_map(&img, x, y, w->value + (size_t)f * 9, 3, 3, scale, -range, range, colormap_diverging);
    }
    write_png(e, "filters.png", &img);
    fprintf(e->html, "<h2>conv1's filters</h2>\n");
    char caption[512];
    snprintf(caption, sizeof caption,
             "The %d filters of conv1, 3&times;3 weights each, in channel order (left to right, top to bottom). "
             "Red is positive, blue negative, white zero; one scale for all, &plusmn;%.3f.", filters, range);
    html_figure(e, "filters.png", "conv1's 3x3 filters", caption);
}

static void figure_digits(Explainer *e)
{
    const int S = (int)e->test.rows, scale = 4, tile = S * scale;
    float *pixels = xmalloc((size_t)S * S * sizeof *pixels);
    Image img = grid_create(DIGITS, DIGITS, tile, tile);
    for (int d = 0; d < DIGITS; ++d) {
        int x, y;
        grid_origin(d, DIGITS, tile, tile, &x, &y);
        raw_pixels(&e->test, e->chosen[d], pixels);
        image_draw_map(&img, x, y, pixels, S, S, scale, 0.0f, 1.0f, colormap_gray);
    }
    free(pixels);
    write_png(e, "digits.png", &img);
    fprintf(e->html, "<h2>Ten test images</h2>\n");
    html_figure(e, "digits.png", "the first test image of each digit, 0 to 9",
                "The first image of each digit (0 to 9, left to right) in the test set: the pictures below "
                "explain these.");
    fprintf(e->html, "<table><tr><th>digit</th>");
    for (int d = 0; d < DIGITS; ++d) {
        fprintf(e->html, "<td>%d</td>", d);
    }
    fprintf(e->html, "</tr>\n<tr><th>test index</th>");
    for (int d = 0; d < DIGITS; ++d) {
        fprintf(e->html, "<td>%zu</td>", e->chosen[d]);
    }
    fprintf(e->html, "</tr>\n<tr><th>predicted</th>");
    for (int d = 0; d < DIGITS; ++d) {
        const int32_t p = e->predicted[e->chosen[d]];
        fprintf(e->html, "<td>%d (%.3f)</td>", p, e->probs[e->chosen[d] * DIGITS + (size_t)p]);
    }
    fprintf(e->html, "</tr></table>\n");
}

/* Feature maps: for each of the ten images, each layer's channels (after ReLU) averaged into one map, and every
 * channel of each digit in its own grid. Each map is scaled to its own maximum. */
static void figure_feature_maps(Explainer *e)
{
    Cnn *net = &e->net;
    cnn_forward(net, e->x_chosen, DIGITS, false);
    const int C[2] = {net->config.conv1_channels, net->config.conv2_channels};
    const int H[2] = {net->h1, net->h2}, W[2] = {net->w1, net->w2};
    fprintf(e->html, "<h2>Feature maps</h2>\n");
    for (int layer = 0; layer < 2; ++layer) {
        const size_t plane = (size_t)H[layer] * W[layer];
        const float *maps = layer == 0 ? net->r1 : net->a2; /* (10, C, H, W); conv2's ReLU is applied below */
        const int scale = 4, tile_w = W[layer] * scale, tile_h = H[layer] * scale;
        float *relu = xmalloc(plane * sizeof *relu), *mean = xmalloc(plane * sizeof *mean);
        Image mean_img = grid_create(DIGITS, DIGITS, tile_w, tile_h);
        for (int d = 0; d < DIGITS; ++d) {
            const int columns = 8, small = 2;
            Image all = grid_create(C[layer], columns, W[layer] * small, H[layer] * small);
            memset(mean, 0, plane * sizeof *mean);
            for (int c = 0; c < C[layer]; ++c) {
                const float *m = maps + ((size_t)d * C[layer] + c) * plane;
                for (size_t p = 0; p < plane; ++p) {
                    relu[p] = m[p] > 0.0f ? m[p] : 0.0f;
                    mean[p] += relu[p] / (float)C[layer];
                }
                int x, y;
                grid_origin(c, columns, W[layer] * small, H[layer] * small, &x, &y);
                image_draw_map(&all, x, y, relu, H[layer], W[layer], small, 0.0f, max_of(relu, plane), colormap_heat);
            }
            char name[64];
            snprintf(name, sizeof name, "conv%d_maps_%d.png", layer + 1, d);
            write_png(e, name, &all);
            int x, y;
            grid_origin(d, DIGITS, tile_w, tile_h, &x, &y);
            image_draw_map(&mean_img, x, y, mean, H[layer], W[layer], scale, 0.0f, max_of(mean, plane), colormap_heat);
        }
        char name[64], caption[640];
        snprintf(name, sizeof name, "conv%d_mean.png", layer + 1);
        write_png(e, name, &mean_img);
        snprintf(caption, sizeof caption,
                 "The mean response of conv%d: its %d channels after ReLU (%dx%d each), averaged, for the ten "
                 "images above. Black is 0, white the map's own maximum.", layer + 1, C[layer], H[layer], W[layer]);
        html_figure(e, name, layer == 0 ? "mean conv1 response of the ten digits" : "mean conv2 response of the ten digits",
                    caption);
        free(relu);
        free(mean);
    }
    fprintf(e->html, "<p>Every channel, after ReLU, each scaled to its own maximum (channel order left to right, top "
                     "to bottom):</p>\n<table><tr><th>digit</th><th>conv1</th><th>conv2</th></tr>\n");
    for (int d = 0; d < DIGITS; ++d) {
        fprintf(e->html,
                "<tr><td>%d</td><td><img src=\"conv1_maps_%d.png\" alt=\"conv1's channels for digit %d\"></td>"
                "<td><img src=\"conv2_maps_%d.png\" alt=\"conv2's channels for digit %d\"></td></tr>\n",
                d, d, d, d, d);
    }
    fprintf(e->html, "</table>\n");
}

/* Saliency and Grad-CAM of the predicted class, for the ten images. */
static void figure_saliency_gradcam(Explainer *e)
{
    Cnn *net = &e->net;
    const int S = net->config.image_size, scale = 4, tile = S * scale;
    const size_t image = (size_t)S * S, plane = (size_t)net->h2 * net->w2;
    int32_t classes[DIGITS];
    for (int d = 0; d < DIGITS; ++d) {
        classes[d] = e->predicted[e->chosen[d]];
    }
    float *saliency = xmalloc(DIGITS * image * sizeof *saliency); /* (10, S, S) */
    float *cam = xmalloc(DIGITS * plane * sizeof *cam); /* (10, H2, W2) */
    explain_saliency(net, e->x_chosen, DIGITS, classes, saliency);
    explain_gradcam(net, DIGITS, cam);

    Image sal_img = grid_create(DIGITS, DIGITS, tile, tile), cam_img = grid_create(DIGITS, DIGITS, tile, tile);
    float *magnitude = xmalloc(image * sizeof *magnitude), *pixels = xmalloc(image * sizeof *pixels);
    /* conv2's output pixel (i, j) sees input pixels i..i+4 - 2P (its 5x5 receptive field): its centre lies
     * `offset` pixels further in, so the CAM is drawn there rather than stretched over the image. */
    const int offset = (S - net->h2) / 2;
    for (int d = 0; d < DIGITS; ++d) {
        int x0, y0;
        grid_origin(d, DIGITS, tile, tile, &x0, &y0);
        for (size_t p = 0; p < image; ++p) {
            magnitude[p] = fabsf(saliency[d * image + p]);
        }
        image_draw_map(&sal_img, x0, y0, magnitude, S, S, scale, 0.0f, max_of(magnitude, image), colormap_heat);
        raw_pixels(&e->test, e->chosen[d], pixels);
        const float *c = cam + d * plane;
        const float top = max_of(c, plane);
        for (int y = 0; y < S; ++y) {
            for (int x = 0; x < S; ++x) {
                int cy = y - offset, cx = x - offset;
                cy = cy < 0 ? 0 : cy >= net->h2 ? net->h2 - 1 : cy;
                cx = cx < 0 ? 0 : cx >= net->w2 ? net->w2 - 1 : cx;
                const float t = top > 0.0f ? c[(size_t)cy * net->w2 + cx] / top : 0.0f;
                /* The CAM's heat colours, with the digit's strokes laid over them in blue so that one sees
                 * where on the digit the heat lies. */
                const Rgb heat = colormap_heat(t);
                const float a = 0.6f * pixels[y * S + x];
                const Rgb blend = {(uint8_t)lroundf((1 - a) * heat.r + a * 90), (uint8_t)lroundf((1 - a) * heat.g + a * 160),
                                   (uint8_t)lroundf((1 - a) * heat.b + a * 255)};
                image_fill_rect(&cam_img, x0 + x * scale, y0 + y * scale, scale, scale, blend);
            }
        }
    }
    write_png(e, "saliency.png", &sal_img);
    write_png(e, "gradcam.png", &cam_img);
    free(magnitude);
    free(pixels);
    free(saliency);
    free(cam);
    fprintf(e->html, "<h2>Saliency and Grad-CAM</h2>\n");
    html_figure(e, "saliency.png", "saliency maps of the ten digits",
                "Saliency: |&part; logit<sub>predicted</sub> / &part; pixel| for the ten images above (the gradient "
                "of the predicted class's logit with respect to each input pixel, its magnitude). Black is 0, white "
                "the image's own largest value. It shows which pixels would change the score fastest, not which "
                "pixels the decision rests on.");
    char caption[512];
    snprintf(caption, sizeof caption,
             "Grad-CAM on conv2 (%dx%d, drawn at the centres of its 5&times;5 receptive fields): conv2's channels "
             "after ReLU, each weighted by the mean gradient of the predicted class's logit with respect to it, "
             "summed, negative parts cut to 0. Black to red to white: where the evidence for the predicted class "
             "lies, scaled per image; the digit's strokes are drawn over it in blue.",
             net->h2, net->w2);
    html_figure(e, "gradcam.png", "Grad-CAM of the ten digits", caption);
}

typedef struct Mistake {
    size_t index;
    float confidence; /* probability of the (wrong) predicted class */
} Mistake;

static int by_confidence(const void *a, const void *b)
{
    const Mistake *x = a, *y = b;
    if (x->confidence != y->confidence) {
        return x->confidence < y->confidence ? 1 : -1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

static void figure_mistakes(Explainer *e, int shown)
{
    const size_t N = e->test.count;
    Mistake *wrong = xmalloc(N * sizeof *wrong);
    size_t count = 0;
    for (size_t i = 0; i < N; ++i) {
        if (e->predicted[i] != e->test.labels[i]) {
            wrong[count++] = (Mistake){i, e->probs[i * DIGITS + (size_t)e->predicted[i]]};
        }
    }
    qsort(wrong, count, sizeof *wrong, by_confidence);
    const int n = count < (size_t)shown ? (int)count : shown, columns = 5, S = (int)e->test.rows, scale = 3;
    fprintf(e->html, "<h2>The most confident mistakes</h2>\n");
    if (n == 0) {
        fprintf(e->html, "<p>The network classifies every test image correctly.</p>\n");
        free(wrong);
        return;
    }
    Image img = grid_create(n, columns, S * scale, S * scale);
    float *pixels = xmalloc((size_t)S * S * sizeof *pixels);
    for (int k = 0; k < n; ++k) {
        int x, y;
        grid_origin(k, columns, S * scale, S * scale, &x, &y);
        raw_pixels(&e->test, wrong[k].index, pixels);
        image_draw_map(&img, x, y, pixels, S, S, scale, 0.0f, 1.0f, colormap_gray);
    }
    free(pixels);
    write_png(e, "mistakes.png", &img);
    char caption[512];
    snprintf(caption, sizeof caption,
             "The %d test images the network gets wrong with the highest probability for its (wrong) answer, of "
             "%zu mistakes in %zu images; row by row, most confident first. Labels in the table below.", n, count,
             N);
    html_figure(e, "mistakes.png", "the most confidently misclassified test images", caption);
    fprintf(e->html, "<table><tr><th>#</th><th>test index</th><th>true label</th><th>predicted</th>"
                     "<th>p(predicted)</th><th>p(true label)</th></tr>\n");
    for (int k = 0; k < n; ++k) {
        const size_t i = wrong[k].index;
        const int label = e->test.labels[i];
        fprintf(e->html, "<tr><td>%d</td><td>%zu</td><td>%d</td><td>%d</td><td>%.4f</td><td>%.4f</td></tr>\n", k + 1,
                i, label, e->predicted[i], wrong[k].confidence, e->probs[i * DIGITS + (size_t)label]);
    }
    fprintf(e->html, "</table>\n");
    free(wrong);
}

static void figure_confusion(Explainer *e)
{
    const int cell = 36;
    Image img = image_create(DIGITS * cell, DIGITS * cell, IMAGE_WHITE);
    for (int t = 0; t < DIGITS; ++t) {
        size_t row = 0;
        for (int p = 0; p < DIGITS; ++p) {
            row += e->confusion[t * DIGITS + p];
        }
        for (int p = 0; p < DIGITS; ++p) {
            const double fraction = row > 0 ? (double)e->confusion[t * DIGITS + p] / (double)row : 0.0;
            /* sqrt: the diagonal holds ~99 % of a row and a typical confusion under 1 %; on a linear scale
             * every off-diagonal cell would look black. */
            image_fill_rect(&img, p * cell + 1, t * cell + 1, cell - 2, cell - 2, colormap_heat((float)sqrt(fraction)));
        }
    }
    write_png(e, "confusion.png", &img);
    fprintf(e->html, "<h2>Confusion matrix</h2>\n");
    html_figure(e, "confusion.png", "the confusion matrix as a heat map",
                "Row = true label 0..9 (top to bottom), column = predicted label 0..9 (left to right); the colour "
                "is the square root of the fraction of the row's images (black 0, white 1). The counts are below.");
    double precision[DIGITS], recall[DIGITS];
    confusion_precision_recall(e->confusion, DIGITS, precision, recall);
    fprintf(e->html, "<table><tr><th>true \\ predicted</th>");
    for (int p = 0; p < DIGITS; ++p) {
        fprintf(e->html, "<th>%d</th>", p);
    }
    fprintf(e->html, "<th>recall</th></tr>\n");
    for (int t = 0; t < DIGITS; ++t) {
        fprintf(e->html, "<tr><th>%d</th>", t);
        for (int p = 0; p < DIGITS; ++p) {
            fprintf(e->html, t == p ? "<td><b>%zu</b></td>" : "<td>%zu</td>", e->confusion[t * DIGITS + p]);
        }
        fprintf(e->html, "<td>%.4f</td></tr>\n", recall[t]);
    }
    fprintf(e->html, "<tr><th>precision</th>");
    for (int p = 0; p < DIGITS; ++p) {
        fprintf(e->html, "<td>%.4f</td>", precision[p]);
    }
    fprintf(e->html, "<td></td></tr></table>\n<p>Precision of class k: of the images predicted k, the fraction that "
                     "are k. Recall of class k: of the images that are k, the fraction predicted k.</p>\n");
}

static void figure_embedding(Explainer *e)
{
    const size_t N = e->test.count, H = (size_t)e->net.config.hidden;
    float *mean = xmalloc(H * sizeof *mean), *components = xmalloc(2 * H * sizeof *components);
    float *y = xmalloc(N * 2 * sizeof *y); /* (N, 2) */
    double variances[2];
    CourseError err;
    if (pca_fit(e->hidden, N, H, 2, mean, components, variances, &err) != 0) {
        error_exit(&err);
    }
    pca_project(e->hidden, N, H, 2, mean, components, y);
    double total = 0.0; /* the trace of the covariance: the total variance over all H directions */
    for (size_t r = 0; r < N; ++r) {
        for (size_t i = 0; i < H; ++i) {
            const double v = e->hidden[r * H + i] - mean[i];
            total += v * v / (double)(N - 1);
        }
    }
    float lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (size_t r = 0; r < N; ++r) {
        for (int c = 0; c < 2; ++c) {
            lo[c] = y[r * 2 + c] < lo[c] ? y[r * 2 + c] : lo[c];
            hi[c] = y[r * 2 + c] > hi[c] ? y[r * 2 + c] : hi[c];
        }
    }
    const int size = 600, margin = 12, dot = 3;
    Image img = image_create(size, size, IMAGE_WHITE);
    for (size_t r = 0; r < N; ++r) {
        const float u = hi[0] > lo[0] ? (y[r * 2] - lo[0]) / (hi[0] - lo[0]) : 0.5f;
        const float v = hi[1] > lo[1] ? (y[r * 2 + 1] - lo[1]) / (hi[1] - lo[1]) : 0.5f;
        const int px = margin + (int)lroundf(u * (float)(size - 2 * margin - dot));
        const int py = size - margin - dot - (int)lroundf(v * (float)(size - 2 * margin - dot)); /* up = +PC2 */
        image_fill_rect(&img, px, py, dot, dot, class_colour(e->test.labels[r]));
    }
    write_png(e, "embedding.png", &img);
    fprintf(e->html, "<h2>The fc1 embedding</h2>\n");
    char caption[640];
    snprintf(caption, sizeof caption,
             "Each of the %zu test images as a point: its %zu fc1 activations (after ReLU) projected on their two "
             "principal components (PCA; horizontal PC1, vertical PC2), coloured by true label. PC1 and PC2 hold "
             "%.1f %% and %.1f %% of the total variance.", N, H, 100.0 * variances[0] / total,
             100.0 * variances[1] / total);
    html_figure(e, "embedding.png", "PCA of the fc1 activations, coloured by class", caption);
    fprintf(e->html, "<p>Colours: ");
    for (int k = 0; k < DIGITS; ++k) {
        const Rgb c = class_colour(k);
        fprintf(e->html, "<span style=\"color:#%02x%02x%02x\">&#9632;</span>&nbsp;%d ", c.r, c.g, c.b, k);
    }
    fprintf(e->html, "</p>\n");
    free(mean);
    free(components);
    free(y);
}

static void explain_all(Explainer *e, int mistakes)
{
    const size_t N = e->test.count, S = e->test.rows;
    e->probs = xmalloc(N * DIGITS * sizeof *e->probs);
    e->predicted = xmalloc(N * sizeof *e->predicted);
    e->hidden = xmalloc(N * (size_t)e->net.config.hidden * sizeof *e->hidden);
    explain_predict_split(&e->net, &e->test, e->probs, e->predicted, e->hidden);
    size_t correct = 0;
    memset(e->confusion, 0, sizeof e->confusion);
    for (size_t i = 0; i < N; ++i) {
        e->confusion[e->test.labels[i] * DIGITS + (size_t)e->predicted[i]]++;
        correct += e->predicted[i] == e->test.labels[i];
    }
    bool found[DIGITS] = {false};
    for (size_t i = 0; i < N; ++i) {
        const int d = e->test.labels[i];
        if (!found[d]) {
            found[d] = true;
            e->chosen[d] = i;
        }
    }
    for (int d = 0; d < DIGITS; ++d) {
        if (!found[d]) {
            die("the test set has no image of the digit %d: the pictures need one of each", d);
        }
    }
    e->x_chosen = xmalloc(DIGITS * S * S * sizeof *e->x_chosen);
    for (int d = 0; d < DIGITS; ++d) {
        normalize_pixels(e->test.images + e->chosen[d] * S * S, e->x_chosen + (size_t)d * S * S, S * S);
    }

    fprintf(e->html, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                     "<title>What the network learned</title>\n<style>body{font-family:sans-serif;max-width:70em;"
                     "margin:auto;padding:1em}figure{margin:1em 0}img{image-rendering:pixelated;max-width:100%%}"
                     "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;"
                     "text-align:right}</style>\n</head><body>\n<h1>What the network learned</h1>\n");
    const double accuracy = (double)correct / (double)N;
    fprintf(e->html, "<p>A %d-%d-%d network (padding %d) after %d epoch(s) of training; %zu of %zu test images "
                     "right (%.2f %%). Made by <code>mnist_explain</code> (chapter 09 of the course); the training "
                     "curves are drawn by chapter 07's <code>plot_log.py</code>.</p>\n",
            e->net.config.conv1_channels, e->net.config.conv2_channels, e->net.config.hidden, e->net.config.padding,
            e->state.epoch, correct, N, 100.0 * accuracy);
    printf("test accuracy %.2f %% (%zu of %zu)\n", 100.0 * accuracy, correct, N);
    figure_filters(e);
    figure_digits(e);
    figure_feature_maps(e);
    figure_saliency_gradcam(e);
    figure_mistakes(e, mistakes);
    figure_confusion(e);
    figure_embedding(e);
    fprintf(e->html, "</body></html>\n");
}

int main(int argc, char **argv)
{
    const char *checkpoint = NULL, *data = NULL, *out = NULL;
    int threads = 2, mistakes = 25;
    const FlagSpec flags[] = {
        {"--checkpoint", FLAG_STRING, &checkpoint, 0, 0, "a chapter 07 checkpoint (mnist_train --save FILE)"},
        {"--data", FLAG_STRING, &data, 0, 0, "folder with the MNIST IDX files (default: the bundled data/)"},
        {"--out", FLAG_STRING, &out, 0, 0, "folder for the PNG files and index.html (created if missing)"},
        {"--mistakes", FLAG_INT, &mistakes, 1, 100, "how many of the most confident mistakes to show"},
        {"--threads", FLAG_INT, &threads, 1, 1024, "CPU threads"},
    };
    CourseError err;
    const int parsed = flags_parse(argc, argv, flags, COUNT_OF(flags), "mnist_explain",
                                   "Pictures of what a trained CNN learned: filters, feature maps, saliency, "
                                   "Grad-CAM, mistakes, the confusion matrix and the fc1 embedding, with index.html.",
                                   &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != 0) {
        error_exit(&err);
    }
    if (checkpoint == NULL || out == NULL) {
        die("mnist_explain: --checkpoint FILE and --out DIR are required (--help for more)");
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    if (data == NULL) {
        data = train_default_data_dir(COURSE_DATA_DIR_DEFAULT);
    }
    static Explainer e; /* static: zeroed */
    e.out_dir = out;
    if (checkpoint_load_network(checkpoint, EVAL_BATCH, GEMM_OPENBLAS, &e.net, &e.state, &err) != 0) {
        error_exit(&err);
    }
    if (mnist_load(&e.test, data, "t10k", &err) != 0 || explain_check_network(&e.net, checkpoint, &e.test, &err) != 0) {
        error_exit(&err);
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        die("%s: cannot create the folder: %s", out, strerror(errno));
    }
    struct stat st;
    if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode)) {
        die("%s: exists and is not a folder", out);
    }
    /* The page is built in memory and written in one go at the end, atomically: a run that stops half way
     * leaves the previous index.html (or none), never one that shows pictures not yet written. */
    char *page = NULL;
    size_t page_size = 0;
    e.html = open_memstream(&page, &page_size);
    if (e.html == NULL) {
        die("cannot allocate the page in memory");
    }
    explain_all(&e, mistakes);
    fclose(e.html);
    char html_path[4096];
    snprintf(html_path, sizeof html_path, "%s/index.html", out);
    AtomicFile html;
    if (atomic_file_open(&html, html_path, &err) != 0) {
        error_exit(&err);
    }
    if (fwrite(page, 1, page_size, html.stream) != page_size) {
        atomic_file_abort(&html);
        die("%s: write failed", html_path);
    }
    if (atomic_file_commit(&html, &err) != 0) {
        error_exit(&err);
    }
    free(page);
    printf("wrote %s (open it in a browser)\n", html_path);
    free(e.probs);
    free(e.predicted);
    free(e.hidden);
    free(e.x_chosen);
    mnist_free(&e.test);
    cnn_destroy(&e.net);
    return 0;
}
