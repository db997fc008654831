#!/usr/bin/env python3
"""cnn_bench.py — chapter 03's benchmark with PyTorch beside it: runs build/bin/cnn_bench and the same
measurements in PyTorch (CPU) in alternating rounds, and prints one side-by-side table.

    /usr/bin/python3 chapters/03-cnn-cpu/bench/cnn_bench.py --exe build/bin/cnn_bench
    /usr/bin/python3 chapters/03-cnn-cpu/bench/cnn_bench.py --exe build/bin/cnn_bench --threads 2 --rounds 3 \\
        --json bench.json
    /usr/bin/python3 chapters/03-cnn-cpu/bench/cnn_bench.py --exe build/bin/cnn_bench --only step --rounds 5

What PyTorch runs (torch.set_num_threads(--threads) for conv2 and the step, 1 thread for the SGEMM):
  - torch.mm at 1024^3, single thread;
  - conv2 of the network at batch 64 (F.conv2d, 32 -> 64 channels, 26x26), forward, and forward + backward
    (input, weight and bias gradients);
  - one training step of the network at batch 64: zero_grad, forward with dropout, cross-entropy, backward,
    SGD momentum step.
Each round runs the C program once (its own medians of --repeats) and then PyTorch (medians of --repeats);
the table shows the median over the rounds, so both sides see the same machine load. Needs PyTorch (Debian:
python3-torch): run it with /usr/bin/python3.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("error: PyTorch is not importable by this Python (Debian: apt-get install python3-torch; "
             "run the script with /usr/bin/python3)")


class Net(nn.Module):
    """PyTorch's examples/mnist network, the course's (README.md, "Chapters"; chapters/03-cnn-cpu/cnn.h), padding 0."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)


def median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_round(threads, repeats, only):
    out = {}
    if only == "step":
        torch.set_num_threads(threads)
        out["training step"] = torch_step(repeats)
        return out
    torch.set_num_threads(1)
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    out["torch.mm 1024^3 (1 thread)"] = median_time(lambda: torch.mm(a, b), repeats)

    torch.set_num_threads(threads)
    x = torch.randn(64, 32, 26, 26)
    w = torch.randn(64, 32, 3, 3) * 0.05
    bias = torch.randn(64) * 0.05
    out["conv2 fwd"] = median_time(lambda: F.conv2d(x, w, bias), repeats)
    xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), bias.clone().requires_grad_()
    dy = torch.randn(64, 64, 24, 24)

    def conv_fwd_bwd():
        y = F.conv2d(xg, wg, bg)
        y.backward(dy)

    out["conv2 fwd+bwd"] = median_time(conv_fwd_bwd, repeats)
    out["training step"] = torch_step(repeats)
    return out


def torch_step(repeats):
    torch.manual_seed(1)
    net = Net()
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    images = (torch.rand(64, 1, 28, 28) - 0.1307) / 0.3081
    labels = torch.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(images), labels)
        loss.backward()
        opt.step()

    return median_time(step, repeats * 2 + 1)


def c_round(exe, threads, repeats, only):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "c.json")
        subprocess.run([exe, "--threads", str(threads), "--repeats", str(repeats), "--only", only, "--json", path],
                       check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            data = json.load(f)
    return data, {r["name"]: r["seconds"] for r in data["results"]}


# (label, C result name or None, PyTorch result name or None, FLOPs or 0)
ROWS = [
    ("SGEMM 1024^3, 1 thread", None, None, 0),
    ("  naive i-j-k", "naive i-j-k 1024^3", None, 2 * 1024**3),
    ("  reordered i-k-j", "reordered i-k-j 1024^3", None, 2 * 1024**3),
    ("  blocked", "blocked 1024^3", None, 2 * 1024**3),
    ("  packed + micro-kernel (own)", "packed + 6x16 micro-kernel 1024^3", None, 2 * 1024**3),
    ("  OpenBLAS", "OpenBLAS 1024^3", "torch.mm 1024^3 (1 thread)", 2 * 1024**3),
    ("conv2, batch 64, T threads", None, None, 0),
    ("  direct fwd", "direct fwd", "conv2 fwd", 2 * 64 * 64 * 576 * 288),
    ("  im2col + own GEMM fwd", "im2col + own GEMM fwd", "conv2 fwd", 2 * 64 * 64 * 576 * 288),
    ("  im2col + OpenBLAS fwd", "im2col + OpenBLAS fwd", "conv2 fwd", 2 * 64 * 64 * 576 * 288),
    ("  direct fwd+bwd", "direct fwd+bwd", "conv2 fwd+bwd", 6 * 64 * 64 * 576 * 288),
    ("  im2col + own GEMM fwd+bwd", "im2col + own GEMM fwd+bwd", "conv2 fwd+bwd", 6 * 64 * 64 * 576 * 288),
    ("  im2col + OpenBLAS fwd+bwd", "im2col + OpenBLAS fwd+bwd", "conv2 fwd+bwd", 6 * 64 * 64 * 576 * 288),
    ("training step, batch 64, T threads", None, None, 0),
    ("  ours, OpenBLAS GEMM", "training step, openblas GEMM", "training step", 0),
    ("  ours, own GEMM", "training step, own GEMM", "training step", 0),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exe", required=True, help="path of the cnn_bench program (build/bin/cnn_bench)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating C / PyTorch rounds")
    parser.add_argument("--only", choices=["all", "step"], default="all",
                        help="step: only the training-step comparison (quick)")
    parser.add_argument("--json", help="write every figure (per round and median) to this file")
    args = parser.parse_args()
    if not os.access(args.exe, os.X_OK):
        print(f"error: {args.exe}: not an executable (build it: cmake --build build --target cnn_bench)", file=sys.stderr)
        return 1

    c_rounds, t_rounds, info = [], [], None
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: C ...", end="", flush=True)
        info, c = c_round(args.exe, args.threads, args.repeats, args.only)
        print(" PyTorch ...", end="", flush=True)
        t = torch_round(args.threads, args.repeats, args.only)
        print(" done", flush=True)
        c_rounds.append(c)
        t_rounds.append(t)
    c_med = {k: statistics.median(r[k] for r in c_rounds) for k in c_rounds[0]}
    t_med = {k: statistics.median(r[k] for r in t_rounds) for k in t_rounds[0]}

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print()
    print(f"machine: {info['cpu']}, {os.cpu_count()} CPUs; load average {' '.join(load)}; T = {args.threads}")
    print(f"PyTorch {torch.__version__}; medians of {args.rounds} rounds x {args.repeats} runs")
    print()
    header = f"{'':38s} {'ours ms':>10s} {'GFLOP/s':>8s} {'PyTorch ms':>11s} {'ours/PyTorch':>13s}"
    print(header)
    print("-" * len(header))
    for label, c_name, t_name, flops in ROWS:
        if c_name is None:
            print(label)
            continue
        ours = c_med.get(c_name)
        if ours is None:
            continue
        theirs = t_med.get(t_name) if t_name else None
        gflops = f"{flops / ours * 1e-9:8.1f}" if flops else " " * 8
        theirs_s = f"{theirs * 1e3:11.2f}" if theirs is not None else " " * 11
        ratio = f"{ours / theirs:13.2f}" if theirs else ""
        print(f"{label:38s} {ours * 1e3:10.2f} {gflops} {theirs_s} {ratio}")
    print()
    if "OpenBLAS 1024^3" in c_med:
        own = c_med["packed + 6x16 micro-kernel 1024^3"]
        print(f"own SGEMM / OpenBLAS throughput at 1024^3 (1 thread): {c_med['OpenBLAS 1024^3'] / own:.2f}  (bar: >= 0.5)")
    step = c_med["training step, openblas GEMM"]
    print(f"our step time / PyTorch step time ({args.threads} threads): {step / t_med['training step']:.2f}  (bar: <= 0.67)")
    if any(name.startswith("own ") for name in c_med):
        print()
        print("gemm shapes of the step (1 thread)        own ms  OpenBLAS ms   own/OpenBLAS time")
    for name in c_med:
        if name.startswith("own ") and ("conv2" in name or "fc1" in name):
            other = "OpenBLAS " + name[4:]
            print(f"  {name[4:]:38s} {c_med[name] * 1e3:8.3f} {c_med[other] * 1e3:11.3f} {c_med[name] / c_med[other]:10.2f}")

    if args.json:
        summary = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpu": info["cpu"],
            "machine": platform.machine(),
            "load_average": load,
            "threads": args.threads,
            "torch": torch.__version__,
            "rounds": args.rounds,
            "repeats": args.repeats,
            "ours_seconds": c_med,
            "pytorch_seconds": t_med,
            "ours_rounds": c_rounds,
            "pytorch_rounds": t_rounds,
        }
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, args.json)
        print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
