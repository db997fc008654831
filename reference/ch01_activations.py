"""ch01_activations.py — golden files for Chapter 01 (activations), computed by PyTorch.

Run through make_golden.py. Writes into reference/golden/ch01/:
  x, dy                      (1029,) random inputs and upstream gradients (odd size on purpose)
  <f>_y, <f>_dydx, <f>_dx    forward f(x), derivative f'(x), and backward dy * f'(x), for
                             f in sigmoid, tanh, relu, leaky_relu (slope 0.01), leaky_relu_0.2 (slope 0.2)
  extremes_x, <f>_extremes_y, <f>_extremes_dydx
                             +-100, +-1e4, +-0, tiny and denormal values, +-inf and NaN
  sigmoid_tail_x, sigmoid_tail_y
                             x in [-95, -87]: sigmoid computed in float64 and rounded to float32 (float32
                             PyTorch flushes some of these to 0; the course's sigmoid keeps them)
  softmax_<n>_x, _dy, softmax_<n>_y, _dx, log_softmax_<n>_y, _dx
                             vectors of n = 1, 7, 10, 127, 129, 1000
  softmax_extreme<k>_x, softmax_extreme<k>_y, log_softmax_extreme<k>_y
                             logits that overflow or underflow a naive implementation

Derivatives are what autograd returns for y.sum() (that is f'(x) elementwise), with one deliberate
difference: where x is NaN the course requires a NaN derivative, while PyTorch 1.13's backward passes return a
number there (relu's backward zeroes the gradient only where "output <= 0", which is false for NaN, so it gives
1 * dy; leaky_relu's gives slope * dy). Those positions are set to NaN below; the lesson says why.
"""
import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261124

EXTREMES = [
    -1e4, -100.0, -88.0, -20.0, -1.0, -1e-3, -0.0, 0.0, 1e-30, 1e-38, 1e-40, 1e-45, -1e-40,
    1e-3, 1.0, 20.0, 88.0, 100.0, 1e4, float("inf"), float("-inf"), float("nan"),
]

FUNCTIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
    "leaky_relu_0.2": lambda t: F.leaky_relu(t, 0.2),
}


def forward_and_derivative(f, x_np, dy_np=None):
    """f(x), f'(x) (elementwise) and, if dy is given, dy * f'(x) — all from autograd, in float32."""
    x = torch.tensor(x_np, dtype=torch.float32, requires_grad=True)
    y = f(x)
    (dydx,) = torch.autograd.grad(y.sum(), x)
    dydx = dydx.numpy().copy()
    dydx[np.isnan(x_np)] = np.nan  # NaN in, NaN out (see the module docstring)
    dx = None
    if dy_np is not None:
        x2 = torch.tensor(x_np, dtype=torch.float32, requires_grad=True)
        (dx,) = torch.autograd.grad(f(x2), x2, grad_outputs=torch.tensor(dy_np))
        dx = dx.numpy()
    return y.detach().numpy(), dydx, dx


def generate(writer):
    rng = np.random.default_rng(SEED)
    n = 1029
    # Mostly N(0, 3^2) plus a few wide values, so both the linear middle and the saturated tails are covered.
    x = (rng.standard_normal(n) * 3.0).astype(np.float32)
    x[::37] = rng.uniform(-30.0, 30.0, size=x[::37].shape).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    writer.save("x", x)
    writer.save("dy", dy)
    extremes = np.array(EXTREMES, dtype=np.float32)
    writer.save("extremes_x", extremes)

    for name, f in FUNCTIONS.items():
        y, dydx, dx = forward_and_derivative(f, x, dy)
        writer.save(f"{name}_y", y)
        writer.save(f"{name}_dydx", dydx)
        writer.save(f"{name}_dx", dx)
        y, dydx, _ = forward_and_derivative(f, extremes)
        writer.save(f"{name}_extremes_y", y)
        writer.save(f"{name}_extremes_dydx", dydx)

    tail = np.linspace(-95.0, -87.0, 33, dtype=np.float32)
    writer.save("sigmoid_tail_x", tail)
    writer.save("sigmoid_tail_y", torch.sigmoid(torch.tensor(tail, dtype=torch.float64)).numpy().astype(np.float32))

    for size in (1, 7, 10, 127, 129, 1000):
        scale = rng.uniform(0.5, 20.0)
        v = (rng.standard_normal(size) * scale).astype(np.float32)
        g = rng.standard_normal(size).astype(np.float32)
        writer.save(f"softmax_{size}_x", v)
        writer.save(f"softmax_{size}_dy", g)
        for op_name, op in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
            t = torch.tensor(v, requires_grad=True)
            out = op(t, 0)
            (grad,) = torch.autograd.grad(out, t, grad_outputs=torch.tensor(g))
            writer.save(f"{op_name}_{size}_y", out.detach().numpy())
            writer.save(f"{op_name}_{size}_dx", grad.numpy())

    extreme_vectors = [
        [1000.0, -1000.0, 0.0, 1.0],  # e^1000 overflows float
        [-1e4, -1e4 + 1.0, -1e4 - 3.0],  # every e^x underflows to 0: naive softmax is 0/0
        [88.0, 88.0, 88.0, 88.0, 88.0],  # sum of e^88 overflows in float
        [3.0, float("-inf"), 1.0, float("-inf")],  # masked logits
        [1e4, 1e4 - 1.0, -1e4, 0.0, 50.0, -50.0, 100.0],
    ]
    for k, values in enumerate(extreme_vectors):
        v = np.array(values, dtype=np.float32)
        writer.save(f"softmax_extreme{k}_x", v)
        writer.save(f"softmax_extreme{k}_y", torch.softmax(torch.tensor(v), 0).numpy())
        writer.save(f"log_softmax_extreme{k}_y", torch.log_softmax(torch.tensor(v), 0).numpy())
