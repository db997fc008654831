#!/usr/bin/env python3
"""accuracy_bar.py — chapter 02's accuracy bar, measured: mlp_train and PyTorch, the same recipe, seeds 1-5.

The recipe (chapter 02's README, sections 6-9): a 784-128-10 ReLU MLP, PyTorch's default nn.Linear
initialisation, cross-entropy, SGD lr 0.01 momentum 0.9, batch 64, MNIST normalisation 0.1307 / 0.3081, the
training set reshuffled every epoch and the last partial batch kept, 4 epochs, then the accuracy on the test set.

    cmake --build build --target mlp_train
    /usr/bin/python3 chapters/02-backprop-mlp/bench/accuracy_bar.py                  # bundled data/, seeds 1-5
    /usr/bin/python3 chapters/02-backprop-mlp/bench/accuracy_bar.py --mlp-train build/bin/mlp_train --seeds 1,2,3

The bar: the median test accuracy of `mlp_train --epochs 4` over the seeds is at least PyTorch's median over the
same seeds minus 0.3 points. One seed decides nothing (the two draw different initial weights and orders from
their own generators, and the accuracy moves with the seed by more than half a point), so both sides run every
seed, in this one run. Prints the table of both sides per seed and the medians; exit status 0 when the bar is
met, 1 when not. Needs PyTorch (Debian: python3-torch; run with /usr/bin/python3); PyTorch runs on one thread,
as mlp_train does.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))

try:
    import torch
except ImportError:
    sys.exit("error: PyTorch is not importable by this Python (Debian: apt-get install python3-torch; "
             "run the script with /usr/bin/python3)")

# The MNIST reader (IDX, .gz or plain, checked; normalised) and the epoch of SGD of chapter 03's PyTorch
# reference run: the same recipe, written once.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "chapters", "03-cnn-cpu", "bench"))
from pytorch_train import load_split, sgd_epoch  # noqa: E402


def pytorch_accuracy(x_train, y_train, x_test, y_test, seed, epochs):
    """The recipe in PyTorch; returns the test accuracy in percent after the last epoch."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for _ in range(epochs):
        sgd_epoch(net, optimizer, x_train, y_train)
    with torch.no_grad():
        correct = (net(x_test).argmax(1) == y_test).sum().item()
    return 100.0 * correct / len(x_test)


def mlp_train_accuracy(program, data, seed, epochs):
    """Runs mlp_train and reads its --summary-json; returns the test accuracy in percent."""
    with tempfile.TemporaryDirectory() as folder:
        summary = os.path.join(folder, "summary.json")
        run = subprocess.run([program, "--data", data, "--epochs", str(epochs), "--seed", str(seed),
                              "--summary-json", summary], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"error: {program} --seed {seed} failed (exit status {run.returncode}):\n{run.stderr}")
        with open(summary) as f:
            return 100.0 * json.load(f)["test_accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlp-train", default=os.path.join(ROOT, "build", "bin", "mlp_train"))
    parser.add_argument("--data", default=os.path.join(ROOT, "data"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated (default 1,2,3,4,5)")
    parser.add_argument("--margin", type=float, default=0.3, help="points below PyTorch's median allowed")
    args = parser.parse_args()
    if not os.access(args.mlp_train, os.X_OK):
        sys.exit(f"error: {args.mlp_train}: no such program (build it: cmake --build build --target mlp_train)")
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")

    print(f"{args.epochs} epochs on {args.data} ({len(x_train)} training, {len(x_test)} test images); "
          f"PyTorch {torch.__version__}, one thread")
    print("| seed | mlp_train test accuracy (%) | PyTorch test accuracy (%) |")
    print("| ---: | ---: | ---: |")
    ours, theirs = [], []
    for seed in seeds:
        ours.append(mlp_train_accuracy(args.mlp_train, args.data, seed, args.epochs))
        theirs.append(pytorch_accuracy(x_train, y_train, x_test, y_test, seed, args.epochs))
        print(f"| {seed} | {ours[-1]:.2f} | {theirs[-1]:.2f} |", flush=True)
    our_median, their_median = statistics.median(ours), statistics.median(theirs)
    print(f"| median | **{our_median:.2f}** | **{their_median:.2f}** |")
    met = our_median >= their_median - args.margin
    print(f"bar: median {our_median:.2f} >= {their_median:.2f} - {args.margin} = {their_median - args.margin:.2f}: "
          f"{'met' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
