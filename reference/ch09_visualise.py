"""ch09_visualise.py — golden files for Chapter 09 (seeing what the network learned), computed by PyTorch.

Run through make_golden.py (`/usr/bin/python3 reference/make_golden.py --chapter 09`). Writes into
reference/golden/ch09/:

  explain_p<P>_<param>       random weights (PyTorch's default initialisation) of the course's CNN at a narrow,
                             odd width (5 and 7 channels, 11 hidden units) with padding P (0 and 1), for
                             conv1_w, conv1_b, conv2_w, conv2_b, fc1_w, fc1_b, fc2_w, fc2_b
  explain_p<P>_x             input images (N, 1, 28, 28), N = 5 (P = 0) and 3 (P = 1)
  explain_p<P>_logits        the logits (N, 10), no dropout
  explain_p<P>_predicted     the predicted class (N,) int32: the largest logit
  explain_p<P>_saliency      d logits[b][predicted[b]] / d x[b], (N, 28, 28): torch.autograd.grad
  explain_p<P>_gradcam       Grad-CAM on conv2 (N, H2, W2): Z = conv2's output (before its ReLU), A = relu(Z),
                             G = d logit / d Z, alpha = G averaged over the plane, cam = relu(sum_k alpha_k A_k)
  pca_x                      rows (157, 13) drawn with very different variances along random directions
  pca_components             the first 3 principal directions (3, 13), from numpy's SVD of the centred rows,
                             each signed so that its largest-magnitude entry is positive
  pca_variances              their variances (3,): singular value squared / (n - 1)

Everything is computed in float64 (golden.f64) and rounded to float32 once (golden.out32). The network is
narrow so that its weights stay small (fc1 is 11 x 1008 or 11 x 1372 values); the C code is the same at
any width.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from golden import f64, out32

SEED = 20261206
CONV1, CONV2, HIDDEN = 5, 7, 11
IMAGES = {0: 5, 1: 3}


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


class Net(nn.Module):
    """The course's network (no dropout: it is off for every picture), keeping conv2's output for Grad-CAM."""

    def __init__(self, padding):
        super().__init__()
        self.conv1 = nn.Conv2d(1, CONV1, 3, 1, padding)
        self.conv2 = nn.Conv2d(CONV1, CONV2, 3, 1, padding)
        side = (28 + 4 * padding - 4) // 2
        self.fc1 = nn.Linear(CONV2 * side * side, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, 10)

    def forward(self, x):
        a2 = self.conv2(F.relu(self.conv1(x)))  # conv2's output Z: Grad-CAM's gradient is taken here
        h = F.max_pool2d(F.relu(a2), 2)
        h = F.relu(self.fc1(torch.flatten(h, 1)))
        return self.fc2(h), a2


PARAMS = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def gen_explain(writer, rng):
    for padding, count in IMAGES.items():
        torch.manual_seed(SEED + padding)
        net = Net(padding)
        prefix = f"explain_p{padding}"
        for name, value in net.named_parameters():
            writer.save(f"{prefix}_{name.replace('.weight', '_w').replace('.bias', '_b')}", value.detach().numpy())
        net.double()  # the float32 weights, computed with in float64
        images = f32(rng.random((count, 1, 28, 28)) * 2.8 - 0.42)  # about the range of normalised MNIST pixels
        x = f64(images, grad=True)
        logits, a2 = net(x)
        predicted = logits.argmax(dim=1)
        chosen = logits.gather(1, predicted[:, None]).sum()  # image b's logit depends on image b only
        saliency, g = torch.autograd.grad(chosen, [x, a2])
        alpha = g.mean(dim=(2, 3), keepdim=True)  # (N, C2, 1, 1)
        cam = F.relu((alpha * F.relu(a2)).sum(dim=1))  # (N, H2, W2)
        writer.save(f"{prefix}_x", images)
        writer.save(f"{prefix}_logits", out32(logits))
        writer.save(f"{prefix}_predicted", predicted.numpy().astype(np.int32))
        writer.save(f"{prefix}_saliency", out32(saliency[:, 0]))
        writer.save(f"{prefix}_gradcam", out32(cam))


def gen_pca(writer, rng):
    n, d, k = 157, 13, 3
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.geomspace(5.0, 0.05, d)  # well-separated variances: each direction is well defined
    x = f32((rng.standard_normal((n, d)) * scales) @ rotation.T + rng.standard_normal(d))
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:k]
    largest = np.abs(components).argmax(axis=1)
    components = components * np.sign(components[np.arange(k), largest])[:, None]
    writer.save("pca_x", x)
    writer.save("pca_components", f32(components))
    writer.save("pca_variances", f32(s[:k] ** 2 / (n - 1)))


def generate(writer):
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    gen_explain(writer, rng)
    gen_pca(writer, rng)
