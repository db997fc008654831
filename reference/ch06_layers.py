"""ch06_layers.py — golden files for Chapter 06 (the CNN layers on the GPU), computed by PyTorch.

Run through make_golden.py (`/usr/bin/python3 reference/make_golden.py --chapter 06`). Writes into
reference/golden/ch06/:

  conv_<case>_x, _w, _b, _dy    input (N, C, H, W), weight (OC, C, KH, KW), bias (OC,), upstream gradient
                                (N, OC, OH, OW); conv_<case>_meta (int32): [N, C, H, W, OC, KH, KW, padding, stride]
  conv_<case>_z                 F.conv2d(x, w, b), no activation
  conv_<case>_dx, _dw, _db      its autograd gradients for dy
  conv_<case>_y                 relu(F.conv2d(x, w, b)): the fused bias + ReLU epilogue
  conv_<case>_rdx, _rdw, _rdb   the gradients through the ReLU (what the fused backward computes)
  pool_<case>_x, _dy, _y, _dx, _idx
                                F.max_pool2d(kernel 2, stride 2) and its gradient; idx (int32) is PyTorch's
                                return_indices (ih * W + iw within one plane). The "ties" case draws from
                                {0, 1, 2}, so that windows hold equal maxima (PyTorch keeps the first)
  linear_x, _w, _b, _dy, _z, _dx, _dw, _db, _y, _rdx, _rdw, _rdb
                                F.linear (Y = X W^T + b) on x (3, 37), w (11, 37), without (z, d*) and with a
                                ReLU (y, rd*)
  dropout_x, _dy, _mask, _y, _dx
                                inverted dropout, p = 0.25, with the mask of the Philox stream below
  philox_kat_<i>_in (uint32 as int64: counter[4], key[2]), _out (4 words)
                                Philox4x32-10 of this file's own Python implementation on the Random123 test
                                inputs (a third, independent implementation to the C header and the paper)
  philox_mask_<n>               uint8 keep-mask of n elements, seed PHILOX_SEED, offset PHILOX_OFFSET,
                                p = 0.25, computed here in Python from the definition in common/philox.h
  xent_logits, _labels (int32), _probs, _loss (shape (1,)), _dlogits
                                F.cross_entropy (mean over the batch) on (13, 10) logits
  sgd_<i>_p0, sgd_<i>_g<s>, sgd_<i>_p<s+1>
                                torch.optim.SGD(lr 0.01, momentum 0.9, weight_decay WD) on three tensors of odd
                                sizes, three steps with given gradients; sgd_wd holds WD

The Philox masks are not produced by PyTorch (its generator is a different stream); they come from the
straightforward Python transcription of the algorithm below, never from the C code under test.
"""
import numpy as np
import torch
import torch.nn.functional as F

from golden import f64, out32

SEED = 20261106

CONV_CASES = [
    # name, N, C, H, W, OC, KH, KW, padding, stride
    ("c1_7x9_p0_s1", 2, 1, 7, 9, 3, 3, 3, 0, 1),
    ("c3_13x13_p1_s2", 3, 3, 13, 13, 5, 3, 3, 1, 2),
    ("c5_7x9_p1_s1", 1, 5, 7, 9, 4, 3, 3, 1, 1),
    ("c3_9x7_p0_s2", 2, 3, 9, 7, 2, 3, 3, 0, 2),
]

POOL_CASES = [
    # name, N, C, H, W, ties
    ("7x9", 2, 3, 7, 9, False),
    ("13x13", 1, 5, 13, 13, False),
    ("ties_8x6", 3, 1, 8, 6, True),
]

PHILOX_SEED = 0x0123456789ABCDEF
PHILOX_OFFSET = 7
PHILOX_P = 0.25
PHILOX_SIZES = [1, 7, 129, 1003]

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF

KAT_INPUTS = [
    ([0, 0, 0, 0], [0, 0]),
    ([MASK32] * 4, [MASK32] * 2),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]),
]


def philox4x32_10(counter, key):
    """Philox4x32-10 on Python integers, as in Salmon et al. (SC'11) and Random123."""
    c = list(counter)
    k0, k1 = key
    for r in range(10):
        if r > 0:
            k0 = (k0 + W0) & MASK32
            k1 = (k1 + W1) & MASK32
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c[3] ^ k1) & MASK32, p0 & MASK32]
    return c


def philox_mask(seed, offset, p, n):
    """keep[i] = (top 24 bits of word i % 4 of philox(counter=(i//4, offset), key=seed)) * 2^-24 >= p."""
    key = [seed & MASK32, seed >> 32]
    mask = np.zeros(n, dtype=np.uint8)
    for block in range((n + 3) // 4):
        words = philox4x32_10([block & MASK32, block >> 32, offset & MASK32, offset >> 32], key)
        for j in range(4):
            i = 4 * block + j
            if i < n:
                mask[i] = 1 if (words[j] >> 8) / 16777216.0 >= p else 0
    return mask


def generate(writer):
    rng = np.random.default_rng(SEED)

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    for name, n, c, h, w, oc, kh, kw, pad, stride in CONV_CASES:
        x, wt, b = normal(n, c, h, w), normal(oc, c, kh, kw, scale=0.5), normal(oc, scale=0.5)
        oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
        dy = normal(n, oc, oh, ow)
        for prefix, act in (("", lambda t: t), ("r", torch.relu)):
            xt, wtt, bt = (f64(a, True) for a in (x, wt, b))
            out = act(F.conv2d(xt, wtt, bt, stride=stride, padding=pad))
            gx, gw, gb = torch.autograd.grad(out, (xt, wtt, bt), grad_outputs=f64(dy))
            writer.save(f"conv_{name}_{'y' if prefix else 'z'}", out32(out))
            writer.save(f"conv_{name}_{prefix}dx", out32(gx))
            writer.save(f"conv_{name}_{prefix}dw", out32(gw))
            writer.save(f"conv_{name}_{prefix}db", out32(gb))
        writer.save(f"conv_{name}_x", x)
        writer.save(f"conv_{name}_w", wt)
        writer.save(f"conv_{name}_b", b)
        writer.save(f"conv_{name}_dy", dy)
        writer.save(f"conv_{name}_meta", np.array([n, c, h, w, oc, kh, kw, pad, stride], dtype=np.int32))

    for name, n, c, h, w, ties in POOL_CASES:
        x = rng.integers(0, 3, size=(n, c, h, w)).astype(np.float32) if ties else normal(n, c, h, w)
        dy = normal(n, c, h // 2, w // 2)
        xt = torch.tensor(x, requires_grad=True)
        y, idx = F.max_pool2d(xt, 2, 2, return_indices=True)
        (gx,) = torch.autograd.grad(y, xt, grad_outputs=torch.tensor(dy))
        for suffix, a in (("x", x), ("dy", dy), ("y", y.detach().numpy()), ("dx", gx.numpy()),
                          ("idx", idx.numpy().astype(np.int32))):
            writer.save(f"pool_{name}_{suffix}", a)

    x, wt, b, dy = normal(3, 37), normal(11, 37, scale=0.3), normal(11, scale=0.3), normal(3, 11)
    for prefix, act in (("", lambda t: t), ("r", torch.relu)):
        xt, wtt, bt = (f64(a, True) for a in (x, wt, b))
        out = act(F.linear(xt, wtt, bt))
        gx, gw, gb = torch.autograd.grad(out, (xt, wtt, bt), grad_outputs=f64(dy))
        writer.save(f"linear_{'y' if prefix else 'z'}", out32(out))
        writer.save(f"linear_{prefix}dx", out32(gx))
        writer.save(f"linear_{prefix}dw", out32(gw))
        writer.save(f"linear_{prefix}db", out32(gb))
    for suffix, a in (("x", x), ("w", wt), ("b", b), ("dy", dy)):
        writer.save(f"linear_{suffix}", a)

    for i, (counter, key) in enumerate(KAT_INPUTS):
        writer.save(f"philox_kat_{i}_in", np.array(counter + key, dtype=np.int64))
        writer.save(f"philox_kat_{i}_out", np.array(philox4x32_10(counter, key), dtype=np.int64))
    for n in PHILOX_SIZES:
        writer.save(f"philox_mask_{n}", philox_mask(PHILOX_SEED, PHILOX_OFFSET, PHILOX_P, n))

    # Dropout, p = 0.25, on a (5, 7, 9) tensor (315 elements) with the Philox mask of the same stream.
    n = 5 * 7 * 9
    mask = philox_mask(PHILOX_SEED, PHILOX_OFFSET, PHILOX_P, n).reshape(5, 7, 9)
    x, dy = normal(5, 7, 9), normal(5, 7, 9)
    xt = torch.tensor(x, requires_grad=True)
    y = xt * torch.tensor(mask, dtype=torch.float32) / (1.0 - PHILOX_P)
    (gx,) = torch.autograd.grad(y, xt, grad_outputs=torch.tensor(dy))
    for suffix, a in (("x", x), ("dy", dy), ("mask", mask), ("y", y.detach().numpy()), ("dx", gx.numpy())):
        writer.save(f"dropout_{suffix}", a)

    logits = normal(13, 10, scale=3.0)
    labels = rng.integers(0, 10, size=13).astype(np.int32)
    lt = torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(lt, torch.tensor(labels, dtype=torch.int64))
    (gl,) = torch.autograd.grad(loss, lt)
    writer.save("xent_logits", logits)
    writer.save("xent_labels", labels)
    writer.save("xent_probs", torch.softmax(torch.tensor(logits), dim=1).numpy())
    writer.save("xent_loss", np.array([loss.item()], dtype=np.float32))
    writer.save("xent_dlogits", gl.numpy())

    # SGD with momentum (and weight decay) over three tensors: what the flat-buffer kernel must reproduce.
    weight_decay = 5e-4
    shapes = [(5, 3, 3, 3), (5,), (7, 129)]
    params = [torch.tensor(normal(*s), requires_grad=True) for s in shapes]
    for i, p in enumerate(params):
        writer.save(f"sgd_{i}_p0", p.detach().numpy().copy())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=weight_decay)
    for step in range(3):
        for i, p in enumerate(params):
            g = normal(*shapes[i])
            writer.save(f"sgd_{i}_g{step}", g)
            p.grad = torch.tensor(g)
        opt.step()
        for i, p in enumerate(params):
            writer.save(f"sgd_{i}_p{step + 1}", p.detach().numpy().copy())
    writer.save("sgd_wd", np.array([weight_decay], dtype=np.float32))
