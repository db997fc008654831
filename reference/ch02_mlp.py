"""ch02_mlp.py — golden files for Chapter 02 (backpropagation and the MLP), computed by PyTorch.

Run through make_golden.py (/usr/bin/python3 reference/make_golden.py --chapter 02). Writes into
reference/golden/ch02/:

  linear_<B>x<IN>x<OUT>_{x,w,b,dy,y,dx,dw,db}
        one fully connected layer Y = X W^T + b (W (OUT, IN) as nn.Linear) and its backward pass for the
        upstream gradient dy, for (B, IN, OUT) in (1, 5, 3), (7, 127, 10), (33, 129, 17)
  relu_{x,dy,y,dx}        the ReLU layer (chapter 01's functions) on a (7, 129) batch
  loss_<B>x<C>_{logits,labels,loss,probs,dlogits}
        fused softmax + cross-entropy (mean over the batch) and d(loss)/d(logits), for (1, 10), (33, 10),
        (7, 129); labels are int32
  loss_extreme_{logits,labels,loss,probs,dlogits}
        logits of +-1e4, +-100, -inf, equal rows: where a naive exp/log overflows or takes log(0)
  l2_{w,loss,grad}        (lambda / 2) * ||w||^2 with lambda = 0.01, and its gradient
  sgd_{param0,grads,params}
        three torch.optim.SGD steps (lr 0.1, momentum 0.9, weight decay 0.01) on a (129,) parameter
  parity_<name>_*         a parity run of the whole MLP (see PARITY below): initial weights, the batches, the
                          gradients of the first step, the loss before every step, and the final weights

Layer goldens are computed in float64 from float32 inputs and rounded to float32 (the exact answer, so the C
code's float32 rounding is the only difference); the parity runs are float32, as training is.
"""
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261124
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

# name: (hidden, batch sizes of the steps, lr, momentum, weight decay, input source)
PARITY = {
    # The real thing: the first 6 * 64 training digits in a fixed shuffled order, 784-128-10, the program's
    # default hyperparameters.
    "mnist": dict(hidden=128, batches=[64] * 6, lr=0.01, momentum=0.9, weight_decay=0.0, inputs="mnist"),
    # Odd sizes, weight decay, and a last partial batch (7, 7, 7, 7, 3), on random inputs of width 129.
    "odd": dict(hidden=33, batches=[7, 7, 7, 7, 3], lr=0.05, momentum=0.9, weight_decay=0.01, inputs=129),
}


def f32(a):
    return np.asarray(a, dtype=np.float32)


def linear_params(rng, fan_in, fan_out):
    """PyTorch's default nn.Linear initialisation: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    w = f32(rng.uniform(-bound, bound, size=(fan_out, fan_in)))
    b = f32(rng.uniform(-bound, bound, size=(fan_out,)))
    return w, b


def save_linear(writer, rng, batch, fan_in, fan_out):
    x = f32(rng.standard_normal((batch, fan_in)))
    w, b = linear_params(rng, fan_in, fan_out)
    dy = f32(rng.standard_normal((batch, fan_out)))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    y = F.linear(xt, wt, bt)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    name = f"linear_{batch}x{fan_in}x{fan_out}"
    for suffix, array in [("x", x), ("w", w), ("b", b), ("dy", dy), ("y", y.detach().numpy()),
                          ("dx", xt.grad.numpy()), ("dw", wt.grad.numpy()), ("db", bt.grad.numpy())]:
        writer.save(f"{name}_{suffix}", f32(array))


def save_relu(writer, rng):
    x = f32(rng.standard_normal((7, 129)) * 2.0)
    dy = f32(rng.standard_normal((7, 129)))
    xt = torch.tensor(x, requires_grad=True)
    y = torch.relu(xt)
    y.backward(torch.tensor(dy))
    for suffix, array in [("x", x), ("dy", dy), ("y", y.detach().numpy()), ("dx", xt.grad.numpy())]:
        writer.save(f"relu_{suffix}", f32(array))


def save_loss(writer, name, logits, labels):
    zt = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(zt, torch.tensor(labels, dtype=torch.long))  # mean over the batch
    loss.backward()
    writer.save(f"{name}_logits", f32(logits))
    writer.save(f"{name}_labels", np.asarray(labels, dtype=np.int32))
    writer.save(f"{name}_loss", f32([loss.item()]))
    writer.save(f"{name}_probs", f32(torch.softmax(zt.detach(), dim=1).numpy()))
    writer.save(f"{name}_dlogits", f32(zt.grad.numpy()))


def extreme_logits():
    c = 10
    rows, labels = [], []

    def row(values, label):
        r = np.zeros(c, dtype=np.float32)
        for k, v in values.items():
            r[k] = v
        rows.append(r)
        labels.append(label)

    row({3: 1e4}, 3)  # confident and right: loss ~0
    row({3: 1e4}, 5)  # confident and wrong: loss 1e4 (naive: log(0) = -inf)
    row({0: -1e4, 1: 1e4}, 0)  # label at -1e4, another at +1e4: loss 2e4
    row({k: 100.0 for k in range(c)}, 7)  # all equal and large: loss log(10) (naive: exp(100) overflows)
    row({k: -100.0 for k in range(c)}, 2)  # all equal and very negative: loss log(10) (naive: 0/0)
    row({0: 88.0, 1: -88.0, 2: 89.0}, 1)  # around float's exp overflow at 88.7
    row({4: float("-inf"), 5: 3.0}, 5)  # a -inf logit elsewhere: probability exactly 0, loss finite
    row({9: 1e-30}, 9)  # tiny values: loss ~log(10)
    return np.stack(rows), np.array(labels, dtype=np.int64)


def save_l2(writer, rng):
    lam = 0.01  # the C test uses the same lambda
    w = f32(rng.standard_normal((129, 7)))
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * lam * (wt * wt).sum()
    loss.backward()
    writer.save("l2_w", w)
    writer.save("l2_loss", f32([loss.item()]))
    writer.save("l2_grad", f32(wt.grad.numpy()))


def save_sgd(writer, rng):
    p0 = f32(rng.standard_normal(129))
    grads = f32(rng.standard_normal((3, 129)))
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    after = []
    for g in grads:
        opt.zero_grad()
        p.grad = torch.tensor(g)
        opt.step()
        after.append(p.detach().numpy().copy())
    writer.save("sgd_param0", p0)
    writer.save("sgd_grads", grads)
    writer.save("sgd_params", f32(np.stack(after)))


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def save_parity(writer, rng, name, cfg):
    total = sum(cfg["batches"])
    if cfg["inputs"] == "mnist":
        images = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 784)
        labels = read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz"), 8)
        order = rng.permutation(len(images))[:total]
        pixels = images[order]  # (total, 784) uint8: the C test normalises them itself
        y = labels[order].astype(np.int64)
        # torchvision's ToTensor + Normalize, in float32
        x = (torch.tensor(pixels, dtype=torch.float32) / 255.0 - 0.1307) / 0.3081
        writer.save(f"parity_{name}_pixels", np.ascontiguousarray(pixels))
    else:
        x = torch.tensor(f32(rng.standard_normal((total, cfg["inputs"]))))
        y = rng.integers(0, 10, size=total).astype(np.int64)
        writer.save(f"parity_{name}_x", x.numpy())
    writer.save(f"parity_{name}_labels", y.astype(np.int32))
    writer.save(f"parity_{name}_batches", np.array(cfg["batches"], dtype=np.int32))
    writer.save(f"parity_{name}_hyper", f32([cfg["lr"], cfg["momentum"], cfg["weight_decay"]]))

    fan_in, hidden = x.shape[1], cfg["hidden"]
    w1, b1 = linear_params(rng, fan_in, hidden)
    w2, b2 = linear_params(rng, hidden, 10)
    params = [torch.nn.Parameter(torch.tensor(a)) for a in (w1, b1, w2, b2)]
    for pname, a in zip(("w1", "b1", "w2", "b2"), (w1, b1, w2, b2)):
        writer.save(f"parity_{name}_{pname}_init", a)
    opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    yt = torch.tensor(y)
    losses, start = [], 0
    for step, size in enumerate(cfg["batches"]):
        xb, yb = x[start:start + size], yt[start:start + size]
        start += size
        opt.zero_grad()
        hidden_out = torch.relu(F.linear(xb, params[0], params[1]))
        loss = F.cross_entropy(F.linear(hidden_out, params[2], params[3]), yb)
        loss.backward()
        if step == 0:  # the gradients of one whole backward pass, before any update
            for pname, p in zip(("w1", "b1", "w2", "b2"), params):
                writer.save(f"parity_{name}_d{pname}_step0", p.grad.numpy().copy())
        opt.step()
        losses.append(loss.item())
    writer.save(f"parity_{name}_losses", f32(losses))
    for pname, p in zip(("w1", "b1", "w2", "b2"), params):
        writer.save(f"parity_{name}_{pname}_final", p.detach().numpy().copy())


def generate(writer):
    torch.set_num_threads(1)  # one summation order, so regenerating gives the same float32 bits
    rng = np.random.default_rng(SEED)
    for batch, fan_in, fan_out in [(1, 5, 3), (7, 127, 10), (33, 129, 17)]:
        save_linear(writer, rng, batch, fan_in, fan_out)
    save_relu(writer, rng)
    for batch, classes in [(1, 10), (33, 10), (7, 129)]:
        logits = rng.standard_normal((batch, classes)) * 3.0
        labels = rng.integers(0, classes, size=batch)
        save_loss(writer, f"loss_{batch}x{classes}", f32(logits), labels)
    logits, labels = extreme_logits()
    save_loss(writer, "loss_extreme", logits, labels)
    save_l2(writer, rng)
    save_sgd(writer, rng)
    for name, cfg in PARITY.items():
        save_parity(writer, rng, name, cfg)
