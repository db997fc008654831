"""ch03_cnn.py — golden files for Chapter 03 (convolution on the CPU, and the CNN), computed by PyTorch.

Run through make_golden.py (`/usr/bin/python3 reference/make_golden.py --chapter 03`). Writes into
reference/golden/ch03/:

  gemm_<case>_a, _b, _c      A (M, K) (or (K, M) when transposed), B (K, N) (or (N, K)), C = op(A) @ op(B),
                             for odd sizes (1, 7, 127, 129, ...) and every transpose combination
  conv_<case>_x, _w, _b      input (N, C, H, W), weight (OC, C, KH, KW), bias (OC,)
  conv_<case>_dy             upstream gradient (N, OC, OH, OW)
  conv_<case>_y, _dx, _dw, _db
                             F.conv2d forward and its autograd gradients; conv_<case>_meta (int32):
                             [N, C, H, W, OC, KH, KW, padding, stride]
  pool_<case>_x, _dy, _y, _dx, _idx
                             F.max_pool2d(kernel 2, stride 2) forward, backward and the argmax (int32, index
                             within one H*W plane, as PyTorch's return_indices); the "ties" case has inputs
                             drawn from {0, 1, 2} so that most windows contain equal maxima
  linear_x, _w, _b, _dy, _y, _dx, _dw, _db
                             F.linear (Y = X W^T + b) on x (7, 129), w (33, 129), and its gradients
  dropout_<p>_x, _mask, _dy, _y, _dx
                             inverted dropout with a given keep-mask (uint8): y = x * mask / (1 - p)
  net_p<P>_*                 a parity run of the chapter's network (reduced width, see below) with padding P:
                             initial weights (PyTorch default init), 5 batches of 8 images, the dropout masks
                             of every step, the loss of every step, and the weights after 5 SGD steps
                             (lr 0.01, momentum 0.9)
  net_input_grad_x, _dlogits, _dx
                             the input gradient of the parity network with padding 1 (its initial weights
                             net_p1_init_*, no dropout): images x (3, 1, 28, 28), an upstream gradient of the
                             logits (3, 10), and dx = d(sum(logits * dlogits)) / dx (3, 1, 28, 28)

Why the parity network is narrower than the real one: the real fc1 weight is 128 x 9216 floats = 4.7 MB, and the
test needs it twice (initial and final). The narrow variant keeps the architecture (conv3x3, ReLU, conv3x3,
ReLU, maxpool 2, dropout .25, flatten, fc, ReLU, dropout .5, fc) and the 28x28 input, with 8 and 16 channels
and 32 hidden units, so every shape rule (including padding 1 -> fc input 16*14*14) is exercised and the whole
chapter stays well under 5 MB. The C network is the same code at either width.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from golden import f64, out32

SEED = 20261103

GEMM_CASES = [
    # name, M, N, K, transpose A, transpose B
    ("1x1x1", 1, 1, 1, False, False),
    ("7x9x5", 7, 9, 5, False, False),
    ("127x129x67", 127, 129, 67, False, False),
    ("129x127x300", 129, 127, 300, False, False),
    ("64x100x288", 64, 100, 288, False, False),
    ("33x17x129_ta", 33, 17, 129, True, False),
    ("33x17x129_tb", 33, 17, 129, False, True),
    ("31x45x19_tab", 31, 45, 19, True, True),
]

CONV_CASES = [
    # name, N, C, H, W, OC, KH, KW, padding, stride
    ("c1_7x9_p0_s1", 2, 1, 7, 9, 4, 3, 3, 0, 1),
    ("c3_13x13_p1_s2", 3, 3, 13, 13, 5, 3, 3, 1, 2),
    ("c5_7x9_p2_s1", 1, 5, 7, 9, 3, 3, 3, 2, 1),
    ("c3_11x10_p0_s2", 2, 3, 11, 10, 7, 3, 3, 0, 2),
    ("c5_9x7_k5x3_p1_s1", 2, 5, 9, 7, 4, 5, 3, 1, 1),
    ("c1_28x28_p0_s1", 1, 1, 28, 28, 32, 3, 3, 0, 1),
]

POOL_CASES = [
    # name, N, C, H, W, ties
    ("7x9", 2, 3, 7, 9, False),
    ("13x13", 1, 5, 13, 13, False),
    ("ties_8x10", 2, 3, 8, 10, True),
    ("ties_7x7", 3, 2, 7, 7, True),
]

DROPOUT_N = 1031

# The parity network.
NET_CONV1, NET_CONV2, NET_HIDDEN = 8, 16, 32
NET_BATCH, NET_STEPS = 8, 5
NET_LR, NET_MOMENTUM = 0.01, 0.9


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def gen_gemm(writer, rng):
    for name, m, n, k, ta, tb in GEMM_CASES:
        a = f32(rng.standard_normal((k, m) if ta else (m, k)))
        b = f32(rng.standard_normal((n, k) if tb else (k, n)))
        ta_ = torch.tensor(a).T if ta else torch.tensor(a)
        tb_ = torch.tensor(b).T if tb else torch.tensor(b)
        c = (ta_.double() @ tb_.double()).float()  # exact-ish reference: float64 accumulation, float32 result
        writer.save(f"gemm_{name}_a", a)
        writer.save(f"gemm_{name}_b", b)
        writer.save(f"gemm_{name}_c", c.numpy())


def gen_conv(writer, rng):
    for name, n, c, h, w, oc, kh, kw, p, s in CONV_CASES:
        x = f32(rng.standard_normal((n, c, h, w)))
        bound = 1.0 / np.sqrt(c * kh * kw)
        weight = f32(rng.uniform(-bound, bound, (oc, c, kh, kw)))
        bias = f32(rng.uniform(-bound, bound, (oc,)))
        xt, wt, bt = f64(x, True), f64(weight, True), f64(bias, True)
        y = F.conv2d(xt, wt, bt, stride=s, padding=p)
        dy = f32(rng.standard_normal(tuple(y.shape)))
        y.backward(f64(dy))
        writer.save(f"conv_{name}_meta", np.array([n, c, h, w, oc, kh, kw, p, s], dtype=np.int32))
        writer.save(f"conv_{name}_x", x)
        writer.save(f"conv_{name}_w", weight)
        writer.save(f"conv_{name}_b", bias)
        writer.save(f"conv_{name}_dy", dy)
        writer.save(f"conv_{name}_y", out32(y))
        writer.save(f"conv_{name}_dx", out32(xt.grad))
        writer.save(f"conv_{name}_dw", out32(wt.grad))
        writer.save(f"conv_{name}_db", out32(bt.grad))


def gen_pool(writer, rng):
    for name, n, c, h, w, ties in POOL_CASES:
        if ties:
            x = f32(rng.integers(0, 3, (n, c, h, w)))
        else:
            x = f32(rng.standard_normal((n, c, h, w)))
        xt = torch.tensor(x, requires_grad=True)
        y, idx = F.max_pool2d(xt, 2, 2, return_indices=True)
        dy = f32(rng.standard_normal(tuple(y.shape)))
        y.backward(torch.tensor(dy))
        writer.save(f"pool_{name}_x", x)
        writer.save(f"pool_{name}_dy", dy)
        writer.save(f"pool_{name}_y", y.detach().numpy())
        writer.save(f"pool_{name}_idx", idx.numpy().astype(np.int32))
        writer.save(f"pool_{name}_dx", xt.grad.numpy())


def gen_linear(writer, rng):
    batch, n_in, n_out = 7, 129, 33
    x = f64(f32(rng.standard_normal((batch, n_in))), True)
    bound = 1.0 / np.sqrt(n_in)
    w = f64(f32(rng.uniform(-bound, bound, (n_out, n_in))), True)
    b = f64(f32(rng.uniform(-bound, bound, (n_out,))), True)
    y = F.linear(x, w, b)
    dy = f32(rng.standard_normal((batch, n_out)))
    y.backward(f64(dy))
    for name, value in (("x", x), ("w", w), ("b", b)):
        writer.save(f"linear_{name}", out32(value))
    writer.save("linear_dy", dy)
    writer.save("linear_y", out32(y))
    writer.save("linear_dx", out32(x.grad))
    writer.save("linear_dw", out32(w.grad))
    writer.save("linear_db", out32(b.grad))


def gen_dropout(writer, rng):
    for p in (0.25, 0.5):
        tag = f"{int(p * 100):02d}"
        x = f32(rng.standard_normal(DROPOUT_N))
        mask = (rng.random(DROPOUT_N) >= p).astype(np.uint8)  # 1 = kept
        dy = f32(rng.standard_normal(DROPOUT_N))
        xt = torch.tensor(x, requires_grad=True)
        y = xt * torch.tensor(mask, dtype=torch.float32) / (1.0 - p)
        y.backward(torch.tensor(dy))
        writer.save(f"dropout_{tag}_x", x)
        writer.save(f"dropout_{tag}_mask", mask)
        writer.save(f"dropout_{tag}_dy", dy)
        writer.save(f"dropout_{tag}_y", y.detach().numpy())
        writer.save(f"dropout_{tag}_dx", xt.grad.numpy())


class Net(nn.Module):
    """The course's network (chapters/03-cnn-cpu/cnn.h) with configurable widths and padding (PyTorch's default
    initialisation)."""

    def __init__(self, c1, c2, hidden, padding):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, 1, padding)
        self.conv2 = nn.Conv2d(c1, c2, 3, 1, padding)
        side = (28 + 2 * padding - 2 + 2 * padding - 2) // 2
        self.fc1 = nn.Linear(c2 * side * side, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x, mask1, mask2):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = x * mask1 / (1.0 - 0.25)  # dropout 0.25 with the given keep-mask
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = x * mask2 / (1.0 - 0.5)  # dropout 0.5
        return self.fc2(x)


PARAMS = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def param_file_name(name):
    return name.replace(".weight", "_w").replace(".bias", "_b")


def gen_net(writer, rng):
    for padding in (0, 1):
        torch.manual_seed(SEED + padding)
        net = Net(NET_CONV1, NET_CONV2, NET_HIDDEN, padding)
        prefix = f"net_p{padding}"
        state = dict(net.named_parameters())
        for name in PARAMS:
            writer.save(f"{prefix}_init_{param_file_name(name)}", state[name].detach().numpy())
        net.double()  # float32 initial weights, trained in float64 (see f64), final weights rounded to float32
        opt = torch.optim.SGD(net.parameters(), lr=NET_LR, momentum=NET_MOMENTUM)
        c2_side = 28 + 4 * padding - 4
        pooled = c2_side // 2
        images = f32(rng.random((NET_STEPS, NET_BATCH, 1, 28, 28)) * 2.0 - 0.5)
        labels = rng.integers(0, 10, (NET_STEPS, NET_BATCH)).astype(np.int32)
        mask1 = (rng.random((NET_STEPS, NET_BATCH, NET_CONV2, pooled, pooled)) >= 0.25).astype(np.uint8)
        mask2 = (rng.random((NET_STEPS, NET_BATCH, NET_HIDDEN)) >= 0.5).astype(np.uint8)
        losses = []
        for step in range(NET_STEPS):
            opt.zero_grad()
            logits = net(f64(images[step]), f64(mask1[step]), f64(mask2[step]))
            loss = F.cross_entropy(logits, torch.tensor(labels[step], dtype=torch.int64))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        writer.save(f"{prefix}_images", images)
        writer.save(f"{prefix}_labels", labels)
        writer.save(f"{prefix}_mask1", mask1)
        writer.save(f"{prefix}_mask2", mask2)
        writer.save(f"{prefix}_losses", f32(losses))
        state = dict(net.named_parameters())
        for name in PARAMS:
            writer.save(f"{prefix}_final_{param_file_name(name)}", out32(state[name]))


def gen_input_grad(writer):
    """The gradient with respect to the input images, which the trainer never needs but chapter 09's saliency
    maps do: padding 1, so that the zero border's gradient is dropped correctly too. Its own random stream, so
    that the files above do not change."""
    rng = np.random.default_rng(SEED + 100)
    torch.manual_seed(SEED + 1)  # the same initial weights as net_p1_init_*
    net = Net(NET_CONV1, NET_CONV2, NET_HIDDEN, 1).double()
    images = f32(rng.random((3, 1, 28, 28)) * 2.0 - 0.5)
    dlogits = f32(rng.standard_normal((3, 10)))
    x = f64(images, grad=True)
    ones1 = torch.ones(1, dtype=torch.float64) * (1.0 - 0.25)  # keep-mask 1 times (1 - p): dropout off
    ones2 = torch.ones(1, dtype=torch.float64) * (1.0 - 0.5)
    logits = net(x, ones1, ones2)
    (dx,) = torch.autograd.grad((logits * f64(dlogits)).sum(), x)
    writer.save("net_input_grad_x", images)
    writer.save("net_input_grad_dlogits", dlogits)
    writer.save("net_input_grad_dx", out32(dx))


def generate(writer):
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    gen_gemm(writer, rng)
    gen_conv(writer, rng)
    gen_pool(writer, rng)
    gen_dropout(writer, rng)
    gen_linear(writer, rng)
    gen_net(writer, rng)
    gen_input_grad(writer)
