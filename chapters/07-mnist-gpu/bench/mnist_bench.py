#!/usr/bin/env python3
"""mnist_bench.py — chapter 07's benchmark: our GPU trainer (build/bin/mnist_train) against the same network
trained by PyTorch on the same GPU, measured side by side in one run.

    /usr/bin/python3 chapters/07-mnist-gpu/bench/mnist_bench.py                     # Fashion-MNIST if installed
    /usr/bin/python3 chapters/07-mnist-gpu/bench/mnist_bench.py --data data/mnist-full --epochs 3 --rounds 5 \\
        --json bench.json
    # smoke test of the PyTorch side without a GPU (seconds, not a measurement):
    /usr/bin/python3 chapters/07-mnist-gpu/bench/mnist_bench.py --pytorch-only --device cpu --limit 2000 \\
        --epochs 1 --rounds 1

What is measured (both sides: batch 64, SGD lr 0.01 momentum 0.9, dropout on, seed 1, FP32):
  - ours: `mnist_train --device cuda --data DIR --epochs E+1 --batch 64 --seed 1 --summary-json FILE`; the
    per-epoch training seconds come from its JSON ("epoch_train_seconds"; evaluation excluded);
  - PyTorch: examples/mnist's Net; the whole training set preloaded on the device as normalised float32, a new
    torch.randperm order on the device every epoch, each epoch timed between two torch.cuda.synchronize() calls
    (evaluation excluded); torch.backends.cudnn.benchmark = True (PyTorch picks its fastest convolution
    algorithms), TF32 off for matmul and cuDNN (our trainer computes in plain FP32, so PyTorch does too);
  - warm-up: both sides train E+1 epochs and the FIRST epoch's time is dropped (CUDA context, cuDNN autotuning,
    allocator, caches); the figure per round is the mean of the remaining E epochs;
  - ours with its training step as a CUDA Graph (--cuda-graph on, the trainer's default) and, with
    --cuda-graph both (the default here), also launching kernel by kernel (off): what the graph saves;
  - rounds: ours, then PyTorch, --rounds times; the table shows the median over the rounds, so both sides see the
    same machine state. Test accuracy is measured after the last epoch (eval mode, batch 1000).

It is a benchmark, not a test: run it on a machine with a GPU (an H100 in docs/benchmarks.md) and copy the
table. Needs PyTorch (Debian: python3-torch): run it with /usr/bin/python3.
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.dirname(HERE))           # chapters/07-mnist-gpu: the IDX reader and Net live there
sys.dont_write_bytecode = True                      # no __pycache__ left in the chapter folder

try:
    import torch
    import torch.nn.functional as F
    from load_checkpoint import MEAN, STD, Net, read_idx, DataError
except ImportError as e:
    sys.exit(f"error: {e.name} is not importable by this Python (Debian: apt-get install python3-torch "
             "python3-numpy; run the script with /usr/bin/python3)")

FASHION = "/usr/share/datasets/fashion-mnist"
BATCH, LR, MOMENTUM, SEED = 64, 0.01, 0.9, 1


# ---- data -----------------------------------------------------------------------------------------------------

def load_split(folder, split, limit, device):
    """(images (N, 1, 28, 28) normalised float32, labels (N,) int64) on `device`; the first `limit` only if set."""
    images, _ = read_idx(folder, f"{split}-images-idx3-ubyte", 2051, 3)
    labels, labels_path = read_idx(folder, f"{split}-labels-idx1-ubyte", 2049, 1)
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = (torch.from_numpy(images.copy()).float().unsqueeze(1) / 255.0 - MEAN) / STD
    y = torch.from_numpy(labels.copy()).long()
    return x.to(device), y.to(device)


# ---- the PyTorch side -----------------------------------------------------------------------------------------

def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def pytorch_round(train, test, epochs, device):
    """Trains a fresh Net for epochs + 1 epochs; returns per-epoch seconds (all of them) and the test accuracy."""
    x, y = train
    torch.manual_seed(SEED)
    model = Net().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    seconds, losses = [], []
    for _ in range(epochs + 1):
        model.train()
        synchronize(device)
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        order = torch.randperm(len(y), device=device)
        for first in range(0, len(y), BATCH):
            index = order[first:first + BATCH]          # the last partial batch is kept
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()                   # summed on the device: no sync per step
        synchronize(device)
        seconds.append(time.perf_counter() - start)
        losses.append(loss_sum.item() / ((len(y) + BATCH - 1) // BATCH))
    return {"epoch_seconds": seconds, "train_loss": losses, "test_accuracy": accuracy(model, test)}


@torch.no_grad()
def accuracy(model, test):
    x, y = test
    model.eval()
    correct = 0
    for first in range(0, len(y), 1000):
        correct += (model(x[first:first + 1000]).argmax(1) == y[first:first + 1000]).sum().item()
    return correct / len(y)


# ---- our side -------------------------------------------------------------------------------------------------

def ours_round(exe, data, epochs, device, limit, graph):
    """Runs mnist_train once (epochs + 1 epochs, --cuda-graph `graph`) in a scratch folder; returns its per-epoch
    seconds and accuracy."""
    with tempfile.TemporaryDirectory(prefix="mnist_bench.") as scratch:
        summary_path = os.path.join(scratch, "summary.json")
        command = [exe, "--device", device, "--data", data, "--epochs", str(epochs + 1), "--batch", str(BATCH),
                   "--seed", str(SEED), "--cuda-graph", graph, "--summary-json", summary_path]
        if limit:
            command += ["--train-limit", str(limit)]
        result = subprocess.run(command, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-15:])
            raise RuntimeError(f"{' '.join(command)}\nexited with status {result.returncode}; its last output:\n{tail}")
        try:
            with open(summary_path) as f:
                summary = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise RuntimeError(f"{exe} did not write a readable --summary-json file ({e})")
    for key in ("epoch_train_seconds", "test_accuracy"):
        if key not in summary:
            raise RuntimeError(f"{exe}: its --summary-json has no \"{key}\" (keys: {', '.join(sorted(summary))})")
    seconds = [float(s) for s in summary["epoch_train_seconds"]]
    if len(seconds) != epochs + 1:
        raise RuntimeError(f"{exe}: epoch_train_seconds has {len(seconds)} entries, expected {epochs + 1}")
    return {"epoch_seconds": seconds, "test_accuracy": float(summary["test_accuracy"]),
            "train_samples": int(summary.get("train_samples", 0)), "summary": summary}


# ---- the report -----------------------------------------------------------------------------------------------

def timed_mean(result):
    """Mean seconds per epoch without the first (warm-up) epoch."""
    return statistics.mean(result["epoch_seconds"][1:])


def device_description(device):
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        try:
            smi = subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            smi = "(nvidia-smi not available)"
        return name, smi
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {name}, {os.cpu_count()} cores, {torch.get_num_threads()} PyTorch threads", ""


def print_table(args, n_train, ours, theirs, device_name, smi, ours_no_graph):
    print()
    print(f"device: {device_name}")
    if smi:
        print(f"nvidia-smi -L: {smi}")
    print(f"data: {args.data} ({n_train} training images), batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}, "
          f"dropout on, FP32")
    if args.device == "cuda":
        print(f"PyTorch {torch.__version__}: torch.backends.cudnn.benchmark = {torch.backends.cudnn.benchmark} "
              "(fastest convolution algorithms);")
        print(f"  TF32 off: torch.backends.cuda.matmul.allow_tf32 = {torch.backends.cuda.matmul.allow_tf32}, "
              f"torch.backends.cudnn.allow_tf32 = {torch.backends.cudnn.allow_tf32} (our trainer is pure FP32)")
    else:
        print(f"PyTorch {torch.__version__} on the CPU (a smoke test of this script; the figures mean nothing)")
    print(f"each side trained {args.epochs} + 1 epochs per round; the first (warm-up) epoch's time is dropped; "
          f"medians of {args.rounds} rounds (ours, then PyTorch, alternating)")
    print()
    ours_s = statistics.median(timed_mean(r) for r in ours) if ours else None
    theirs_s = statistics.median(timed_mean(r) for r in theirs)
    header = f"{'':28s} {'ours':>12s} {'PyTorch':>12s} {'ours/PyTorch':>13s}"
    print(header)
    print("-" * len(header))

    def row(label, a, b, fmt, ratio=True):
        a_text = format(a, fmt) if a is not None else "-"
        ratio_text = f"{a / b:13.2f}" if ratio and a is not None and b else ""
        print(f"{label:28s} {a_text:>12s} {format(b, fmt):>12s} {ratio_text}")

    row("seconds per epoch", ours_s, theirs_s, ".3f")
    no_graph_s = statistics.median(timed_mean(r) for r in ours_no_graph) if ours_no_graph else None
    if no_graph_s is not None:
        row("  ours without CUDA Graph", no_graph_s, theirs_s, ".3f")
    ours_n = (ours[-1]["train_samples"] or n_train) if ours else n_train     # images per epoch, as ours reports
    row("samples/s", ours_n / ours_s if ours_s else None, n_train / theirs_s, ",.0f", ratio=False)
    row("final test accuracy (%)", 100 * ours[-1]["test_accuracy"] if ours else None,
        100 * theirs[-1]["test_accuracy"], ".2f", ratio=False)
    if ours_s:
        faster = "ours is faster" if ours_s < theirs_s else "PyTorch is faster"
        print(f"time per epoch, ours/PyTorch: {ours_s / theirs_s:.2f} ({faster})")
    if ours_s and no_graph_s:
        print(f"time per epoch with the CUDA Graph / without: {ours_s / no_graph_s:.2f}")
    print()
    print("per round, seconds per timed epoch (ours | PyTorch):")
    for r in range(args.rounds):
        ours_timed = f"{timed_mean(ours[r]):.3f}" if ours else "-"
        ours_warmup = f"{ours[r]['epoch_seconds'][0]:.3f}" if ours else "-"
        no_graph = f", without graph {timed_mean(ours_no_graph[r]):.3f}" if ours_no_graph else ""
        print(f"  round {r + 1}: {ours_timed} | {timed_mean(theirs[r]):.3f}    "
              f"(warm-up epoch, dropped: {ours_warmup} | {theirs[r]['epoch_seconds'][0]:.3f}){no_graph}")
    return ours_s, theirs_s, no_graph_s


def write_json(path, args, n_train, ours, theirs, ours_s, theirs_s, device_name, smi, ours_no_graph, no_graph_s):
    record = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": device_name, "nvidia_smi": smi, "torch": torch.__version__,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32": torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32,
        "data": args.data, "train_images": n_train, "batch": BATCH, "epochs_timed": args.epochs,
        "warmup_epochs_dropped": 1, "rounds": args.rounds,
        "ours_seconds_per_epoch": ours_s, "pytorch_seconds_per_epoch": theirs_s,
        "ratio_ours_over_pytorch": ours_s / theirs_s if ours_s else None,
        "ours_test_accuracy": ours[-1]["test_accuracy"] if ours else None,
        "pytorch_test_accuracy": theirs[-1]["test_accuracy"],
        "cuda_graph": args.cuda_graph,
        "ours_without_graph_seconds_per_epoch": no_graph_s,
        "ours_rounds": [{k: v for k, v in r.items() if k != "summary"} for r in ours],
        "ours_without_graph_rounds": [{k: v for k, v in r.items() if k != "summary"} for r in ours_no_graph],
        "pytorch_rounds": theirs,
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    print(f"\nresults: {path}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exe", default=os.path.join(REPO_ROOT, "build", "bin", "mnist_train"),
                        help="our trainer (default: build/bin/mnist_train)")
    parser.add_argument("--data", default=FASHION if os.path.isdir(FASHION) else os.path.join(REPO_ROOT, "data"),
                        help=f"IDX data folder (default: {FASHION} if installed, else the bundled data/)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per round (one more is run as warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating ours / PyTorch rounds; medians reported")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: only to smoke-test this script on a machine without a GPU")
    parser.add_argument("--limit", type=int, default=0, metavar="N",
                        help="train on the first N training images only (smoke tests; passed to ours as --train-limit N)")
    parser.add_argument("--pytorch-only", action="store_true", help="skip our trainer")
    parser.add_argument("--cuda-graph", choices=["on", "off", "both"], default="both",
                        help="our trainer's --cuda-graph; both (default): time it with and without the graph")
    parser.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    args = parser.parse_args()
    if args.epochs < 1 or args.rounds < 1 or args.limit < 0:
        parser.error("--epochs and --rounds must be >= 1, --limit >= 0")
    args.data = os.path.abspath(args.data)
    args.exe = os.path.abspath(args.exe)
    if not args.pytorch_only and not os.access(args.exe, os.X_OK):
        parser.error(f"{args.exe}: not an executable (build it: cmake --build build --target mnist_train; "
                     "or use --pytorch-only)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("PyTorch sees no CUDA device here (for a smoke test: --device cpu --limit 2000 --pytorch-only)")
    return args


def main():
    args = parse_args()
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        train = load_split(args.data, "train", args.limit, args.device)
        test = load_split(args.data, "t10k", 0, args.device)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n_train = len(train[1])
    device_name, smi = device_description(args.device)
    print(f"{device_name}; {n_train} training images from {args.data}")

    # "ours" is the trainer as configured (with the graph unless --cuda-graph off); with both, the run without
    # the graph goes to ours_no_graph.
    ours, theirs, ours_no_graph = [], [], []
    modes = [] if args.pytorch_only else ["on", "off"] if args.cuda_graph == "both" else [args.cuda_graph]
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}:", end="", flush=True)
        for mode in modes:
            print(f" ours (graph {mode}) ...", end="", flush=True)
            try:
                result = ours_round(args.exe, args.data, args.epochs, args.device, args.limit, mode)
            except RuntimeError as e:
                print(f"\nerror: {e}", file=sys.stderr)
                return 1
            (ours_no_graph if mode == "off" and len(modes) == 2 else ours).append(result)
        print(" PyTorch ...", end="", flush=True)
        theirs.append(pytorch_round(train, test, args.epochs, args.device))
        print(" done", flush=True)

    ours_s, theirs_s, no_graph_s = print_table(args, n_train, ours, theirs, device_name, smi, ours_no_graph)
    if args.json:
        write_json(args.json, args, n_train, ours, theirs, ours_s, theirs_s, device_name, smi, ours_no_graph,
                   no_graph_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
