#!/usr/bin/env python3
"""plot_log.py — draws the training log of chapter 07's trainer (mnist_train --log LOG.csv) as a PNG.

    /usr/bin/python3 chapters/07-mnist-gpu/plot_log.py train.csv               # -> train.png beside it
    /usr/bin/python3 chapters/07-mnist-gpu/plot_log.py train.csv -o curves.png

Left panel: training loss against the SGD step ("train" rows) and the test loss after each epoch ("test" rows).
Right panel: test accuracy against the epoch.

The log is a CSV with this header (one row per --log-every steps, and one per epoch's evaluation):

    kind,epoch,step,samples,train_loss,test_loss,test_accuracy,seconds

A resumed run appends to the same file, so a step may appear twice: the LAST row for each (kind, epoch, step)
is the one kept. Needs matplotlib (Debian: python3-matplotlib): run it with /usr/bin/python3.
"""
import argparse
import csv
import math
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")                    # draw to a file; no display needed
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("error: matplotlib is not importable by this Python (Debian: apt-get install python3-matplotlib; "
             "run the script with /usr/bin/python3)")

HEADER = ["kind", "epoch", "step", "samples", "train_loss", "test_loss", "test_accuracy", "seconds"]


class LogError(Exception):
    """A log that cannot be read; the message names the file (and the line)."""


def parse_field(path, line, name, text, kind):
    """One field of a row as int or float (None for an empty test field on a "train" row)."""
    if name in ("test_loss", "test_accuracy") and kind == "train":
        if text != "":
            raise LogError(f"{path}:{line}: {name} must be empty on a \"train\" row, got \"{text}\"")
        return None
    number_type = int if name in ("epoch", "step", "samples") else float
    try:
        return number_type(text)
    except ValueError:
        what = "an integer" if number_type is int else "a number"
        raise LogError(f"{path}:{line}: {name} is \"{text}\", not {what}")


def read_log(path):
    """The rows of the log as dicts, the last one kept for each (kind, epoch, step), sorted by step."""
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except FileNotFoundError:
        raise LogError(f"{path}: no such file")
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LogError(f"{path}: cannot read it ({e})")
    if not lines:
        raise LogError(f"{path}: the file is empty (expected the header: {','.join(HEADER)})")
    if [field.strip() for field in lines[0]] != HEADER:
        raise LogError(f"{path}:1: wrong header \"{','.join(lines[0])}\" (expected \"{','.join(HEADER)}\")")
    rows = {}
    for line, fields in enumerate(lines[1:], start=2):
        if not fields:
            continue                          # a blank line
        if len(fields) != len(HEADER):
            raise LogError(f"{path}:{line}: {len(fields)} fields, expected {len(HEADER)}")
        fields = [field.strip() for field in fields]
        kind = fields[0]
        if kind not in ("train", "test"):
            raise LogError(f"{path}:{line}: kind is \"{kind}\", expected \"train\" or \"test\"")
        row = {"kind": kind}
        for name, text in zip(HEADER[1:], fields[1:]):
            row[name] = parse_field(path, line, name, text, kind)
        rows[(kind, row["epoch"], row["step"])] = row      # a later row (a resumed run) replaces an earlier one
    if not rows:
        raise LogError(f"{path}: no rows after the header (did the run log anything? see mnist_train --log-every)")
    return sorted(rows.values(), key=lambda r: (r["step"], r["kind"] == "test"))


def plot(rows, title, out_path):
    train = [r for r in rows if r["kind"] == "train"]
    test = [r for r in rows if r["kind"] == "test"]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))

    if train:
        loss_ax.plot([r["step"] for r in train], [r["train_loss"] for r in train], lw=1, label="training loss")
    if test:
        loss_ax.plot([r["step"] for r in test], [r["test_loss"] for r in test], "o-", label="test loss (per epoch)")
    loss_ax.set_xlabel("SGD step")
    loss_ax.set_ylabel("mean cross-entropy")
    loss_ax.grid(alpha=0.3)
    loss_ax.legend()

    if test:
        acc_ax.plot([r["epoch"] for r in test], [100 * r["test_accuracy"] for r in test], "o-", color="tab:green")
        acc_ax.set_xticks(sorted({r["epoch"] for r in test}))
    else:
        acc_ax.text(0.5, 0.5, "no test rows yet\n(no epoch finished)", ha="center", va="center",
                    transform=acc_ax.transAxes)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("test accuracy (%)")
    acc_ax.grid(alpha=0.3)

    fig.suptitle(title)
    fig.tight_layout()
    tmp = out_path + ".tmp"
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.replace(tmp, out_path)


def summary(rows):
    """One line about the run: steps, epochs, last test accuracy."""
    test = [r for r in rows if r["kind"] == "test"]
    text = f"{len(rows)} rows, last step {rows[-1]['step']}"
    if test:
        last = test[-1]
        text += f", {len(test)} evaluations, last: epoch {last['epoch']} test accuracy " \
                f"{100 * last['test_accuracy']:.2f} %, test loss {last['test_loss']:.4f}"
    bad = sum(1 for r in rows for v in (r["train_loss"], r["test_loss"]) if v is not None and not math.isfinite(v))
    if bad:
        text += f" (warning: {bad} losses are NaN or Inf)"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="the CSV written by mnist_train --log")
    parser.add_argument("-o", "--output", help="PNG to write (default: the log's name with .png, beside it)")
    args = parser.parse_args()
    out_path = args.output or os.path.splitext(args.log)[0] + ".png"
    try:
        rows = read_log(args.log)
    except LogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        plot(rows, os.path.basename(args.log), out_path)
    except OSError as e:
        print(f"error: {out_path}: cannot write it ({e.strerror})", file=sys.stderr)
        return 1
    print(f"{args.log}: {summary(rows)}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
