#!/usr/bin/env python3
"""accuracy_bar.py — chapter 02's accuracy bar, measured: mlp_train and PyTorch, the same recipe, seeds 1-5.

The recipe (chapter 02's README, sections 6-9): a 784-128-10 ReLU MLP, PyTorch's default nn.Linear
initialisation, cross-entropy, SGD lr 0.01 momentum 0.9, batch 64, MNIST normalisation 0.1307 / 0.3081, the
training set reshuffled every epoch and the last partial batch kept, 4 epochs, then the accuracy on the test set.

    cmake --build build --target mlp_train
    /usr/bin/python3 chapters/02-backprop-mlp/bench/accuracy_bar.py                  # bundled data/, seeds 1-5
    /usr/bin/python3 chapters/02-backprop-mlp/bench/accuracy_bar.py --mlp-train build/bin/mlp_train --seeds 1,2,3
    /usr/bin/python3 chapters/02-backprop-mlp/bench/accuracy_bar.py --same-draws   # + PyTorch given mlp_train's draws

The bar: the median test accuracy of `mlp_train --epochs 4` over the seeds is at least PyTorch's median over the
same seeds minus 0.3 points. One seed decides nothing (the two draw different initial weights and orders from
their own generators, and the accuracy moves with the seed by more than half a point), so both sides run every
seed, in this one run. Prints the table of both sides per seed and the medians; exit status 0 when the bar is
met, 1 when not. Needs PyTorch (Debian: python3-torch; run with /usr/bin/python3); PyTorch runs on one thread,
as mlp_train does.

With --same-draws, a third column: PyTorch again, but starting from mlp_train's own initial weights and taking
its batches in mlp_train's order (this script computes the course's PCG32 draws, common/rng.c, in Python). It
separates the two things the bar mixes: if that column equals mlp_train's, seed by seed, the C code trains
exactly as PyTorch does, and any gap between the first two columns comes from which random numbers each
generator happens to draw for those seeds.
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


# The course's generator (common/rng.c, rng.h): PCG32, XSH RR output, seeded as rng_seed(seed, stream) does.
PCG_MULTIPLIER = 6364136223846793005
MASK64 = (1 << 64) - 1
MLP_INIT_STREAM = 1  # chapters/02-backprop-mlp/mlp.h
DATA_LOADER_STREAM = 2  # common/train_util.h


class CourseRng:
    """rng_seed, rng_u32, rng_below of common/rng.c, draw for draw."""

    def __init__(self, seed, stream):
        self.increment = ((stream << 1) | 1) & MASK64
        self.state = 0
        self.u32()
        self.state = (self.state + seed) & MASK64
        self.u32()

    def u32(self):
        old = self.state
        self.state = (old * PCG_MULTIPLIER + self.increment) & MASK64
        xorshifted = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rotation = old >> 59
        return ((xorshifted >> rotation) | (xorshifted << ((32 - rotation) & 31))) & 0xFFFFFFFF

    def below(self, bound):
        threshold = ((1 << 32) - bound) % bound
        while True:
            r = self.u32()
            if r >= threshold:
                return r % bound

    def permutation(self, n):
        """data_loader_start_epoch's order: 0..n-1 shuffled by rng_shuffle (Fisher-Yates from the end)."""
        order = list(range(n))
        for i in range(n, 1, -1):
            j = self.below(i)
            order[i - 1], order[j] = order[j], order[i - 1]
        return torch.tensor(order)


def course_linear_init(linear, rng):
    """linear_init of layers.c: all weights, then all biases, uniform in [-1/sqrt(in), 1/sqrt(in)), in float32."""
    out_features, in_features = linear.weight.shape
    count = out_features * in_features + out_features
    bits = torch.tensor([rng.u32() >> 8 for _ in range(count)], dtype=torch.float32)  # the top 24 bits
    bound = 1.0 / torch.sqrt(torch.tensor(float(in_features), dtype=torch.float32))
    values = -bound + (2 * bound) * (bits * (1.0 / 16777216.0))  # low + (high - low) * u, as rng_uniform_range
    with torch.no_grad():
        linear.weight.copy_(values[:out_features * in_features].reshape(out_features, in_features))
        linear.bias.copy_(values[out_features * in_features:])


def pytorch_accuracy(x_train, y_train, x_test, y_test, seed, epochs, same_draws=False):
    """The recipe in PyTorch; returns the test accuracy in percent after the last epoch. With same_draws, the
    initial weights and the epochs' orders are mlp_train's (the course's PCG32 streams), not torch's."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    loader_rng = None
    if same_draws:
        init_rng = CourseRng(seed, MLP_INIT_STREAM)
        course_linear_init(net[1], init_rng)
        course_linear_init(net[3], init_rng)
        loader_rng = CourseRng(seed, DATA_LOADER_STREAM)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for _ in range(epochs):
        order = loader_rng.permutation(len(x_train)) if same_draws else None
        sgd_epoch(net, optimizer, x_train, y_train, order=order)
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
    parser.add_argument("--same-draws", action="store_true",
                        help="add a column: PyTorch from mlp_train's initial weights, in mlp_train's batch order")
    args = parser.parse_args()
    if not os.access(args.mlp_train, os.X_OK):
        sys.exit(f"error: {args.mlp_train}: no such program (build it: cmake --build build --target mlp_train)")
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")

    print(f"{args.epochs} epochs on {args.data} ({len(x_train)} training, {len(x_test)} test images); "
          f"PyTorch {torch.__version__}, one thread")
    third = " PyTorch with mlp_train's draws (%) |" if args.same_draws else ""
    print(f"| seed | mlp_train test accuracy (%) | PyTorch test accuracy (%) |{third}")
    print("| ---: | ---: | ---: |" + (" ---: |" if args.same_draws else ""))
    ours, theirs, same = [], [], []
    for seed in seeds:
        ours.append(mlp_train_accuracy(args.mlp_train, args.data, seed, args.epochs))
        theirs.append(pytorch_accuracy(x_train, y_train, x_test, y_test, seed, args.epochs))
        row = f"| {seed} | {ours[-1]:.2f} | {theirs[-1]:.2f} |"
        if args.same_draws:
            same.append(pytorch_accuracy(x_train, y_train, x_test, y_test, seed, args.epochs, same_draws=True))
            row += f" {same[-1]:.2f} |"
        print(row, flush=True)
    our_median, their_median = statistics.median(ours), statistics.median(theirs)
    row = f"| median | **{our_median:.2f}** | **{their_median:.2f}** |"
    if args.same_draws:
        row += f" **{statistics.median(same):.2f}** |"
    print(row)
    if args.same_draws:
        largest = max(abs(a - b) for a, b in zip(ours, same))
        print(f"mlp_train vs PyTorch with the same draws: at most {largest:.2f} points apart on any seed")
    met = our_median >= their_median - args.margin
    print(f"bar: median {our_median:.2f} >= {their_median:.2f} - {args.margin} = {their_median - args.margin:.2f}: "
          f"{'met' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
