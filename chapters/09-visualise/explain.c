/* explain.c — Chapter 09: saliency, Grad-CAM, whole-split inference, precision/recall and PCA (see explain.h). */
#include "explain.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "layers.h"
#include "train_util.h"

int explain_check_network(const Cnn *net, const char *checkpoint, const MnistSplit *split, CourseError *err)
{
    const CnnConfig *c = &net->config;
    if (c->image_size != (int)split->rows || c->image_size != (int)split->cols) {
        return error_set(err, checkpoint, "its network takes %dx%d images, the data's are %zux%zu", c->image_size,
                         c->image_size, split->rows, split->cols);
    }
    if (c->classes != 10) {
        return error_set(err, checkpoint, "its network has %d outputs; a digit classifier has 10 (one per digit)",
                         c->classes);
    }
    return 0;
}

void explain_saliency(Cnn *net, const float *x, int n, const int32_t *classes, float *saliency)
{
    /* BEGIN EXERCISE ch09.saliency: forward without dropout; net->d_logits = one-hot rows (1 at classes[b]); chapter 03's cnn_backward_from_logits with saliency as the input gradient (about 8 lines) | zh: 不带 dropout 做前向传播；net->d_logits 设为 one-hot 行（classes[b] 处为 1）；调用第 03 章的 cnn_backward_from_logits，把 saliency 作为输入梯度（约 8 行） */
    const size_t K = (size_t)net->config.classes;
    cnn_forward(net, x, n, false);
    memset(net->d_logits, 0, (size_t)n * K * sizeof *net->d_logits);
    for (int b = 0; b < n; ++b) {
        net->d_logits[(size_t)b * K + (size_t)classes[b]] = 1.0f;
    }
    cnn_backward_from_logits(net, n, saliency);
    /* END EXERCISE */
}

void explain_gradcam(const Cnn *net, int n, float *cam)
{
    /* BEGIN EXERCISE ch09.gradcam: per image: alpha[k] = mean of net->d_conv2's plane k; cam = relu(sum_k alpha[k] * relu(net->a2's plane k)) (about 20 lines) | zh: 逐张图像：alpha[k] = net->d_conv2 第 k 个平面的均值；cam = relu(sum_k alpha[k] * relu(net->a2 的第 k 个平面))（约 20 行） */
    const size_t C2 = (size_t)net->config.conv2_channels, plane = (size_t)net->h2 * net->w2;
    double *alpha = xmalloc(C2 * sizeof *alpha);
    double *sum = xmalloc(plane * sizeof *sum);
    for (int b = 0; b < n; ++b) {
        const float *A = net->a2 + (size_t)b * C2 * plane; /* (C2, H2, W2) */
        const float *G = net->d_conv2 + (size_t)b * C2 * plane; /* (C2, H2, W2) */
        for (size_t k = 0; k < C2; ++k) {
            double total = 0.0;
            for (size_t p = 0; p < plane; ++p) {
                total += G[k * plane + p];
            }
            alpha[k] = total / (double)plane;
        }
        memset(sum, 0, plane * sizeof *sum);
        for (size_t k = 0; k < C2; ++k) {
            for (size_t p = 0; p < plane; ++p) {
                sum[p] += alpha[k] * (A[k * plane + p] > 0.0f ? A[k * plane + p] : 0.0f);
            }
        }
        for (size_t p = 0; p < plane; ++p) {
            cam[(size_t)b * plane + p] = sum[p] > 0.0 ? (float)sum[p] : 0.0f;
        }
    }
    free(alpha);
    free(sum);
    /* END EXERCISE */
}

void explain_predict_split(Cnn *net, const MnistSplit *split, float *probs, int32_t *predicted, float *hidden)
{
    const size_t K = (size_t)net->config.classes, H = (size_t)net->config.hidden;
    DataLoader loader;
    data_loader_init(&loader, split, (size_t)net->max_batch, false, 0);
    data_loader_start_epoch(&loader);
    float *x = xmalloc((size_t)net->max_batch * loader.sample_size * sizeof *x); /* (B, 1, S, S) */
    int32_t *labels = xmalloc((size_t)net->max_batch * sizeof *labels); /* (B) */
    size_t done = 0, n;
    while ((n = data_loader_next(&loader, x, labels)) > 0) {
        const float *logits = cnn_forward(net, x, (int)n, false); /* (n, K) */
        for (size_t b = 0; b < n; ++b) {
            softmax(logits + b * K, probs + (done + b) * K, K);
            predicted[done + b] = (int32_t)argmax(logits + b * K, K);
        }
        if (hidden != NULL) {
            memcpy(hidden + done * H, net->hidden_act, n * H * sizeof *hidden);
        }
        done += n;
    }
    free(x);
    free(labels);
    data_loader_free(&loader);
}

void confusion_precision_recall(const size_t *confusion, int classes, double *precision, double *recall)
{
    for (int k = 0; k < classes; ++k) {
        size_t predicted_k = 0, true_k = 0;
        for (int i = 0; i < classes; ++i) {
            predicted_k += confusion[(size_t)i * classes + k];
            true_k += confusion[(size_t)k * classes + i];
        }
        const double hits = (double)confusion[(size_t)k * classes + k];
        precision[k] = predicted_k > 0 ? hits / (double)predicted_k : 0.0;
        recall[k] = true_k > 0 ? hits / (double)true_k : 0.0;
    }
}

void pca_covariance(const float *x, size_t n, size_t d, double *mean, double *cov)
{
    /* BEGIN EXERCISE ch09.pca_covariance: mean of every column in double; then cov[i][j] = sum over rows of centred x[r][i] * x[r][j] / (n - 1), filling both triangles (about 20 lines) | zh: 用 double 求每一列的均值；然后 cov[i][j] = 对所有行求中心化后的 x[r][i] * x[r][j] 之和 / (n - 1)，上下两个三角都填满（约 20 行） */
    memset(mean, 0, d * sizeof *mean);
    for (size_t r = 0; r < n; ++r) {
        for (size_t i = 0; i < d; ++i) {
            mean[i] += x[r * d + i];
        }
    }
    for (size_t i = 0; i < d; ++i) {
        mean[i] /= (double)n;
    }
    memset(cov, 0, d * d * sizeof *cov);
    double *centred = xmalloc(d * sizeof *centred); /* one row at a time */
    for (size_t r = 0; r < n; ++r) {
        for (size_t i = 0; i < d; ++i) {
            centred[i] = x[r * d + i] - mean[i];
        }
        for (size_t i = 0; i < d; ++i) { /* the upper triangle; the matrix is symmetric */
            for (size_t j = i; j < d; ++j) {
                cov[i * d + j] += centred[i] * centred[j];
            }
        }
    }
    for (size_t i = 0; i < d; ++i) {
        for (size_t j = i; j < d; ++j) {
            cov[i * d + j] /= (double)(n - 1);
            cov[j * d + i] = cov[i * d + j];
        }
    }
    free(centred);
    /* END EXERCISE */
}

int pca_fit(const float *x, size_t n, size_t d, int k, float *mean, float *components, double *variances,
            CourseError *err)
{
    if (n < 2 || k < 1 || (size_t)k > d) {
        return error_set(err, "pca", "needs at least 2 rows and 1 <= k <= d (got n %zu, d %zu, k %d)", n, d, k);
    }
    double *mean64 = xmalloc(d * sizeof *mean64);
    double *cov = xmalloc(d * d * sizeof *cov); /* (d, d); becomes the eigenvectors, one per COLUMN */
    double *eigenvalues = xmalloc(d * sizeof *eigenvalues); /* ascending */
    pca_covariance(x, n, d, mean64, cov);
    /* dsyevd: all eigenvalues and eigenvectors of a symmetric matrix (divide and conquer). 'V': vectors too;
     * 'U': read the upper triangle. On return column j of cov is the unit eigenvector of eigenvalues[j]. */
    const lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, cov, (lapack_int)d, eigenvalues);
    if (info != 0) {
        free(mean64);
        free(cov);
        free(eigenvalues);
        return error_set(err, "pca", "LAPACKE_dsyevd failed (info %d)", (int)info);
    }
    for (int c = 0; c < k; ++c) {
        const size_t column = d - 1 - (size_t)c; /* largest eigenvalue first */
        size_t largest = 0;
        for (size_t i = 1; i < d; ++i) {
            if (fabs(cov[i * d + column]) > fabs(cov[largest * d + column])) {
                largest = i;
            }
        }
        const double sign = cov[largest * d + column] < 0.0 ? -1.0 : 1.0;
        for (size_t i = 0; i < d; ++i) {
            components[(size_t)c * d + i] = (float)(sign * cov[i * d + column]);
        }
        variances[c] = eigenvalues[column];
    }
    for (size_t i = 0; i < d; ++i) {
        mean[i] = (float)mean64[i];
    }
    free(mean64);
    free(cov);
    free(eigenvalues);
    return 0;
}

void pca_project(const float *x, size_t n, size_t d, int k, const float *mean, const float *components, float *y)
{
    for (size_t r = 0; r < n; ++r) {
        for (int c = 0; c < k; ++c) {
            double dot = 0.0;
            for (size_t i = 0; i < d; ++i) {
                dot += ((double)x[r * d + i] - mean[i]) * components[(size_t)c * d + i];
            }
            y[r * (size_t)k + (size_t)c] = (float)dot;
        }
    }
}
