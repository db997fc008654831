/* explain.h — Chapter 09: the numbers behind the pictures of a trained CNN (chapter 03's network, loaded from a
 * chapter 07 checkpoint): saliency, Grad-CAM, the test set's predictions and fc1 activations, the confusion
 * matrix's precision and recall, and PCA.
 *
 *   explain_saliency(&net, x, n, classes, saliency);     // (n, S, S): d logit[class] / d pixel
 *   explain_gradcam(&net, n, cam);                        // right after: (n, H2, W2) Grad-CAM on conv2
 *   pca_fit(hidden, count, 128, 2, mean, components, variances, &err);   // the two main directions of fc1
 *
 * Lesson: chapters/09-visualise/README.md. Tests: ctest --test-dir build -L ch09.
 */
#ifndef CH09_EXPLAIN_H
#define CH09_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "cnn.h"
#include "course_error.h"
#include "idx.h"

/* Whether the network loaded from `checkpoint` can explain the digits of `split`: its input must be the
 * split's image size and it must have one logit per digit (10 classes). Returns 0, or -1 with err naming the
 * checkpoint and what does not fit. */
int explain_check_network(const Cnn *net, const char *checkpoint, const MnistSplit *split, CourseError *err);

/* Saliency: the gradient of one logit with respect to the input pixels. For each image b of x (n, 1, S, S)
 * (already normalised; n <= net->max_batch), saliency[b] (S, S) = d logits[b][classes[b]] / d x[b]. One forward
 * pass without dropout and one backward pass (chapter 03's cnn_backward_from_logits) from a one-hot gradient of
 * the logits: image b's logits depend on image b only, so the batch's sum of the chosen logits has exactly
 * these per-image gradients. Leaves the forward's activations and the backward's gradients in net (for
 * explain_gradcam). */
void explain_saliency(Cnn *net, const float *x, int n, const int32_t *classes, float *saliency);

/* Grad-CAM on conv2, from the activations and gradients explain_saliency left in net: with Z = conv2's output
 * (C2, H2, W2) (the Conv2d layer's, before its ReLU), A = relu(Z) its feature maps and G = d logit / d Z,
 *   alpha[k] = mean over (i, j) of G[k][i][j]         (how much channel k matters for this class)
 *   cam[i][j] = max(0, sum over k of alpha[k] A[k][i][j]).
 * (G is zero wherever Z <= 0, and there A is zero too: the gradient and the maps are those of the same
 * units. Z itself in place of A would let a negative weight times a negative, switched-off unit light up the
 * background.) cam (n, H2, W2). */
void explain_gradcam(const Cnn *net, int n, float *cam);

/* Whole-split inference in batches of net->max_batch, without dropout: probs (count, classes) the softmax of
 * the logits, predicted (count) the first largest logit, hidden (count, hidden) fc1's activations after its ReLU
 * (may be NULL). */
void explain_predict_split(Cnn *net, const MnistSplit *split, float *probs, int32_t *predicted, float *hidden);

/* Per-class precision and recall from a confusion matrix (classes, classes), row = true label, column =
 * predicted: precision[k] = C[k][k] / sum_i C[i][k], recall[k] = C[k][k] / sum_j C[k][j] (0 when the sum is 0). */
void confusion_precision_recall(const size_t *confusion, int classes, double *precision, double *recall);

/* PCA, step 1: the mean (d) of the rows of x (n, d) and their covariance (d, d),
 *   cov[i][j] = sum over r of (x[r][i] - mean[i]) (x[r][j] - mean[j]) / (n - 1),
 * summed in double (n >= 2). */
void pca_covariance(const float *x, size_t n, size_t d, double *mean, double *cov);

/* PCA: the k (1 <= k <= d) directions of largest variance of the rows of x (n, d): the eigenvectors of the
 * covariance with the largest eigenvalues, found by LAPACK's symmetric eigensolver (LAPACKE_dsyevd).
 * components (k, d) unit rows, largest variance first, each signed so that its largest-magnitude entry is
 * positive (an eigenvector's sign is arbitrary); variances (k) the eigenvalues; mean (d). Returns 0, or -1 with
 * err when LAPACK fails. */
int pca_fit(const float *x, size_t n, size_t d, int k, float *mean, float *components, double *variances,
            CourseError *err);

/* The coordinates of every row of x (n, d) along the components: y (n, k) = (x - mean) components^T. */
void pca_project(const float *x, size_t n, size_t d, int k, const float *mean, const float *components, float *y);

#endif
