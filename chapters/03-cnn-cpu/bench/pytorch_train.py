#!/usr/bin/env python3
"""pytorch_train.py — the PyTorch reference run for the trainers' accuracy bars: the course's network (README.md,
"Chapters"; chapters/03-cnn-cpu/cnn.h) trained in PyTorch with the settings of cnn_train / mnist_train (batch 64,
SGD lr 0.01 momentum 0.9, MNIST normalisation 0.1307 / 0.3081, reshuffled every epoch, last partial batch kept),
then its test accuracy.

    /usr/bin/python3 chapters/03-cnn-cpu/bench/pytorch_train.py --data /usr/share/datasets/fashion-mnist \\
        --epochs 2 --seed 1

Its figures sit next to ours in docs/benchmarks.md: the accuracy after a few epochs depends on the seed by a few
tenths of a point, so a bar "within X points of PyTorch" is judged against several of these runs. Needs PyTorch
(Debian: python3-torch; run with /usr/bin/python3). The CPU, --threads threads (default 1).
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("error: PyTorch is not importable by this Python (Debian: apt-get install python3-torch; "
             "run the script with /usr/bin/python3)")

sys.dont_write_bytecode = True  # no __pycache__ left in the bench folder
from cnn_bench import Net  # noqa: E402  (this folder's benchmark defines the network once)


def read_idx(path, magic):
    """An IDX file (.gz or plain) as a numpy uint8 array, its magic number and sizes checked."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    if struct.unpack(">I", data[:4])[0] != magic:
        sys.exit(f"error: {path}: not an IDX file with magic {magic}")
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if array.size != int(np.prod(shape)):
        sys.exit(f"error: {path}: {array.size} bytes of data for shape {shape}")
    return array.reshape(shape)


def load_split(folder, prefix):
    def find(name):
        for candidate in (name + ".gz", name):
            if os.path.exists(os.path.join(folder, candidate)):
                return os.path.join(folder, candidate)
        sys.exit(f"error: {folder}: no {name} or {name}.gz")
    images = read_idx(find(f"{prefix}-images-idx3-ubyte"), 2051)
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte"), 2049)
    x = (torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255 - 0.1307) / 0.3081  # (N, 1, 28, 28)
    return x, torch.tensor(labels.astype(np.int64))


def sgd_epoch(net, optimizer, x_train, y_train, batch_size=64, order=None):
    """One epoch of the trainers' recipe: a fresh torch.randperm order (or the given one), batches of 64, the
    last one partial."""
    if order is None:
        order = torch.randperm(len(x_train))
    for first in range(0, len(x_train), batch_size):
        batch = order[first:first + batch_size]
        optimizer.zero_grad()
        F.cross_entropy(net(x_train[batch]), y_train[batch]).backward()
        optimizer.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "data"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    net = Net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(1, args.epochs + 1):
        net.train()
        sgd_epoch(net, optimizer, x_train, y_train)
        net.eval()
        with torch.no_grad():
            correct = sum((net(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum().item()
                          for i in range(0, len(x_test), 1000))
        print(f"epoch {epoch}/{args.epochs}: test accuracy {100 * correct / len(x_test):.2f} % "
              f"({correct}/{len(x_test)})", flush=True)
    print(f"PyTorch {torch.__version__}, seed {args.seed}, {args.data}")


if __name__ == "__main__":
    main()
