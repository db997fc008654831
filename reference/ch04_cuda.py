"""ch04_cuda.py — golden files for Chapter 04 (CUDA basics), computed by PyTorch.

Run through make_golden.py (`/usr/bin/python3 reference/make_golden.py --chapter 04`). Writes into
reference/golden/ch04/:
  add_<n>_a, add_<n>_b, add_<n>_c          c = a + b                      n = 1, 7, 127, 129, 1000
  act_<n>_x, act_<n>_dy                    random inputs and upstream gradients
  <f>_<n>_y, <f>_<n>_dx                    f(x) and dy * f'(x) from autograd, for f in sigmoid, tanh, relu,
                                           leaky_relu (slope 0.01)
  reduce_<n>_x, reduce_<n>_sum, _max       sum (in float64, rounded to float32) and max, n = 1, 7, 127, 129,
                                           1000, 100003
  softmax_<r>x<c>_x, softmax_<r>x<c>_y     row-wise softmax of (r, c) logits, some of them large (|x| ~ 100,
                                           where exp overflows unless the row max is subtracted first)
  xent_<b>x<k>_logits, _labels (int32), _probs, _loss (shape (1,)), _dlogits
                                           F.cross_entropy (mean over the batch) and its gradient
Inputs are random (seeded) and oddly sized, so a wrong index cannot pass by luck.
"""
import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261104

SIZES = [1, 7, 127, 129, 1000]
ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
}
SOFTMAX_SHAPES = [(1, 1), (7, 10), (129, 127), (3, 1000), (64, 10), (5, 1025)]
XENT_SHAPES = [(1, 10), (7, 10), (64, 10), (129, 127)]


def generate(writer):
    rng = np.random.default_rng(SEED)
    for n in SIZES:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        writer.save(f"add_{n}_a", a)
        writer.save(f"add_{n}_b", b)
        writer.save(f"add_{n}_c", (torch.tensor(a) + torch.tensor(b)).numpy())

    for n in SIZES:
        x = (rng.standard_normal(n) * 3.0).astype(np.float32)
        dy = rng.standard_normal(n).astype(np.float32)
        writer.save(f"act_{n}_x", x)
        writer.save(f"act_{n}_dy", dy)
        for name, f in ACTIVATIONS.items():
            xt = torch.tensor(x, requires_grad=True)
            y = f(xt)
            (dx,) = torch.autograd.grad(y, xt, grad_outputs=torch.tensor(dy))
            writer.save(f"{name}_{n}_y", y.detach().numpy())
            writer.save(f"{name}_{n}_dx", dx.numpy())

    for n in SIZES + [100003]:
        x = rng.standard_normal(n).astype(np.float32)
        writer.save(f"reduce_{n}_x", x)
        writer.save(f"reduce_{n}_sum", np.array([torch.tensor(x, dtype=torch.float64).sum().item()], dtype=np.float32))
        writer.save(f"reduce_{n}_max", np.array([torch.tensor(x).max().item()], dtype=np.float32))

    for rows, cols in SOFTMAX_SHAPES:
        x = (rng.standard_normal((rows, cols)) * 4.0).astype(np.float32)
        x[0, :] += 100.0  # exp(100) overflows float32: only a max-subtracted softmax gets this row right
        writer.save(f"softmax_{rows}x{cols}_x", x)
        writer.save(f"softmax_{rows}x{cols}_y", torch.softmax(torch.tensor(x), dim=1).numpy())

    for batch, classes in XENT_SHAPES:
        logits = (rng.standard_normal((batch, classes)) * 3.0).astype(np.float32)
        labels = rng.integers(0, classes, size=batch).astype(np.int32)
        lt = torch.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(lt, torch.tensor(labels, dtype=torch.int64), reduction="mean")
        (dlogits,) = torch.autograd.grad(loss, lt)
        writer.save(f"xent_{batch}x{classes}_logits", logits)
        writer.save(f"xent_{batch}x{classes}_labels", labels)
        writer.save(f"xent_{batch}x{classes}_probs", torch.softmax(torch.tensor(logits), dim=1).numpy())
        writer.save(f"xent_{batch}x{classes}_loss", np.array([loss.item()], dtype=np.float32))
        writer.save(f"xent_{batch}x{classes}_dlogits", dlogits.numpy())
