/* cnn_parity.h — the CNN's parity run against PyTorch, shared by the tests of chapter 03 (the CPU network) and
 * chapter 07 (the GPU network): load PyTorch's initial weights, batches, dropout masks, losses and final
 * weights (reference/golden/ch03/net_p<P>_*, written by reference/ch03_cnn.py), and check a network's losses
 * and weights after the 5 SGD steps against them.
 *
 *   CnnParity parity;
 *   Cnn net;                                   // created with cnn_parity_config(padding), batch parity.batch
 *   if (!cnn_parity_load(golden_dir, padding, &net, &parity)) return TEST_FAIL;   // writes the initial weights
 *   for (int step = 0; step < parity.steps; ++step)
 *       losses[step] = ...train on cnn_parity_images(&parity, step), _labels, _mask1, _mask2...;
 *   bool ok = cnn_parity_check(&parity, "GPU", losses, &net);    // prints each comparison
 *   cnn_parity_free(&parity);
 */
#ifndef CH03_CNN_PARITY_H
#define CH03_CNN_PARITY_H

#include <stdbool.h>
#include <stdint.h>

#include "cnn.h"
#include "npy.h"

/* The parity network: the course's architecture (cnn.h) at a narrower width (8 and 16 channels, 32 hidden units), so
 * that the golden files stay small; see reference/ch03_cnn.py. */
CnnConfig cnn_parity_config(int padding);

#define CNN_PARITY_BATCH 8
#define CNN_PARITY_STEPS 5
#define CNN_PARITY_LR 0.01f
#define CNN_PARITY_MOMENTUM 0.9f

typedef struct CnnParity {
    int padding;
    size_t features, hidden; /* F and hidden of the network, for the mask sizes */
    NpyArray images; /* (steps * batch, 1, 28, 28) normalised */
    NpyArray labels; /* (steps * batch) int32 */
    NpyArray mask1, mask2; /* (steps, batch, F) and (steps, batch, hidden) uint8 */
    NpyArray losses; /* (steps) */
    float *final[CNN_TENSORS]; /* PyTorch's weights after the steps */
} CnnParity;

/* Load the goldens for `padding` and write PyTorch's initial weights into net (created with
 * cnn_parity_config(padding)). Prints the problem and returns false if a file is missing or mis-sized. */
bool cnn_parity_load(const char *golden_dir, int padding, Cnn *net, CnnParity *parity);

/* Step `step`'s batch: images (batch, 1, 28, 28), labels (batch), masks (batch, F) and (batch, hidden). */
const float *cnn_parity_images(const CnnParity *parity, int step);
const int32_t *cnn_parity_labels(const CnnParity *parity, int step);
const uint8_t *cnn_parity_mask1(const CnnParity *parity, int step);
const uint8_t *cnn_parity_mask2(const CnnParity *parity, int step);

/* Compare the step losses (CNN_PARITY_STEPS of them) and net's weights with PyTorch's; `what` labels the
 * printed checks ("CPU, OpenBLAS GEMM"). */
bool cnn_parity_check(const CnnParity *parity, const char *what, const float *losses, const Cnn *net);

void cnn_parity_free(CnnParity *parity);

#endif
