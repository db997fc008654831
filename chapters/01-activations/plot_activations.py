#!/usr/bin/python3
"""plot_activations.py — draw Chapter 01's figures from the CSV that activations_table writes.

    /usr/bin/python3 chapters/01-activations/plot_activations.py --program build/bin/activations_table
    /usr/bin/python3 chapters/01-activations/plot_activations.py --csv curves.csv

With --program it runs

    activations_table --range -6 6 481 --slope 0.1 --csv <temporary file> --quiet

itself; with --csv it reads a table you made (any range; the header must be the program's). It writes into
chapters/01-activations/figures/ (or --out DIR):

    sigmoid.png  tanh.png  relu.png  leaky_relu.png   each function with its derivative
    saturation.png                                    sigmoid' and tanh' on one axis, maxima 1/4 and 1 marked

Every value drawn comes from the C program, so the figures show what the course's code computes. The leaky ReLU
slope is read back from the table (d_leaky_relu left of 0), so the caption always says the slope it drew; 0.1
is the default here because the library's 0.01 is too flat to see.

Needs matplotlib from Debian (python3-matplotlib); uses the non-interactive Agg backend, so no display is
needed. The PNGs carry no timestamp or version string, so re-running on the same input gives the same bytes.
Each PNG is written to a temporary file and renamed, so a failed run leaves the old figures in place.
"""
import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")  # render to files only; no display needed (must precede pyplot)
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ["x", "sigmoid", "d_sigmoid", "tanh", "d_tanh", "relu", "d_relu", "leaky_relu", "d_leaky_relu",
           "softmax", "log_softmax"]
RANGE = ("-6", "6", "481")  # step 0.025, so x = 0 is one of the points
DEFAULT_SLOPE = 0.1
DPI = 100
FUNCTION_COLOR = "#1f77b4"
DERIVATIVE_COLOR = "#d62728"
TANH_COLOR = "#2ca02c"


class InputError(Exception):
    """A problem with the CSV or the program: reported as one line, exit status 1."""


def run_program(program, slope, csv_path):
    """Run activations_table over RANGE and let it write its CSV to csv_path."""
    command = [program, "--range", *RANGE, "--slope", repr(slope), "--csv", csv_path, "--quiet"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as e:
        raise InputError(f"{program}: cannot run it ({e.strerror})") from e
    if result.returncode != 0:
        raise InputError(f"{program} exited with status {result.returncode}: {result.stderr.strip()}")


def read_table(path):
    """The CSV as a dict column name -> list of floats, checked: header, numbers, sorted finite x."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror})") from e
    if not rows or rows[0] != COLUMNS:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise InputError(f"{path}: expected the header {','.join(COLUMNS)}, found {found}")
    table = {name: [] for name in COLUMNS}
    for line_number, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS):
            raise InputError(f"{path}:{line_number}: expected {len(COLUMNS)} fields, found {len(row)}")
        for name, text in zip(COLUMNS, row):
            try:
                table[name].append(float(text))  # accepts the C library's "nan", "-nan", "inf"
            except ValueError:
                raise InputError(f"{path}:{line_number}: {name} is '{text}', not a number") from None
    xs = table["x"]
    if len(xs) < 2:
        raise InputError(f"{path}: needs at least 2 rows to draw a curve, found {len(xs)}")
    if not all(math.isfinite(x) for x in xs) or any(b <= a for a, b in zip(xs, xs[1:])):
        raise InputError(f"{path}: x must be finite and increasing (write it with activations_table --range)")
    for name in COLUMNS[1:9]:
        if not all(math.isfinite(v) for v in table[name]):
            raise InputError(f"{path}: column {name} holds NaN or inf for finite x (is the library broken?)")
    return table


def leaky_slope(table, path):
    """The negative slope the table was made with: d_leaky_relu at every x < 0 (all must agree)."""
    slopes = {d for x, d in zip(table["x"], table["d_leaky_relu"]) if x < 0}
    if len(slopes) != 1:
        raise InputError(f"{path}: need rows with x < 0 that share one d_leaky_relu value (the slope), "
                         f"found {sorted(slopes)}")
    return slopes.pop()


def split_at_jumps(xs, ys, jump=0.5):
    """Break a step-shaped curve into pieces, so that no vertical line is drawn across a discontinuity."""
    pieces, start = [], 0
    for i in range(1, len(xs)):
        if abs(ys[i] - ys[i - 1]) > jump:
            pieces.append((xs[start:i], ys[start:i]))
            start = i
    pieces.append((xs[start:], ys[start:]))
    return pieces


def value_at(table, column, x):
    """table[column] at exactly x, or None if x is not one of the rows."""
    for xi, v in zip(table["x"], table[column]):
        if xi == x:
            return v
    return None


def new_axes(title):
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=DPI)
    ax.set_title(title)
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.axvline(0.0, color="0.6", linewidth=0.8)
    ax.grid(True, color="0.9")
    ax.set_xlabel("x")
    return fig, ax


def plot_smooth(table, name, label, derivative_label, title, ylim):
    fig, ax = new_axes(title)
    xs = table["x"]
    ax.plot(xs, table[name], color=FUNCTION_COLOR, linewidth=2, label=label)
    ax.plot(xs, table["d_" + name], color=DERIVATIVE_COLOR, linewidth=2, linestyle="--", label=derivative_label)
    ax.set_ylim(*ylim)
    ax.legend(loc="upper left")
    return fig


def plot_piecewise(table, name, label, derivative_label, title, ylim, kink_note):
    """A function with a kink at 0: the derivative is drawn as separate pieces, with its value at 0 as a dot
    (the subgradient the course and PyTorch choose) and the other one-sided limit as an open circle."""
    fig, ax = new_axes(title)
    xs = table["x"]
    ax.plot(xs, table[name], color=FUNCTION_COLOR, linewidth=2, label=label)
    pieces = split_at_jumps(xs, table["d_" + name])
    for k, (px, py) in enumerate(pieces):
        ax.plot(px, py, color=DERIVATIVE_COLOR, linewidth=2, linestyle="--",
                label=derivative_label if k == 0 else None)
    at_zero = value_at(table, "d_" + name, 0.0)
    if at_zero is not None and xs[-1] > 0.0:
        right_limit = next(d for x, d in zip(xs, table["d_" + name]) if x > 0.0)
        ax.plot([0.0], [right_limit], marker="o", markersize=7, markerfacecolor="white",
                markeredgecolor=DERIVATIVE_COLOR, linestyle="none")
        ax.plot([0.0], [at_zero], marker="o", markersize=7, color=DERIVATIVE_COLOR, linestyle="none")
        ax.annotate(kink_note.format(at_zero), xy=(0.0, at_zero), xytext=(0.5, -0.7),
                    arrowprops={"arrowstyle": "->", "color": "0.3"}, fontsize=9)
    ax.set_xlim(-3.0, 3.0)  # the kink is the point of interest; the straight pieces just continue outside
    ax.set_ylim(*ylim)
    ax.legend(loc="upper left")
    return fig


def plot_saturation(table):
    fig, ax = new_axes("Saturation: the derivatives of sigmoid and tanh")
    xs = table["x"]
    ax.plot(xs, table["d_sigmoid"], color=FUNCTION_COLOR, linewidth=2,
            label=r"$\sigma'(x) = \sigma(x)\,(1 - \sigma(x)) \leq 1/4$")
    ax.plot(xs, table["d_tanh"], color=TANH_COLOR, linewidth=2, label=r"$\tanh'(x) = 1 - \tanh^2(x) \leq 1$")
    for peak, color in ((0.25, FUNCTION_COLOR), (1.0, TANH_COLOR)):
        ax.axhline(peak, color=color, linewidth=0.8, linestyle=":")
        ax.plot([0.0], [peak], marker="o", markersize=6, color=color, linestyle="none")
    ax.annotate("max 1/4 at x = 0", xy=(0.0, 0.25), xytext=(1.2, 0.33), fontsize=9,
                arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.annotate("max 1 at x = 0", xy=(0.0, 1.0), xytext=(1.2, 0.9), fontsize=9,
                arrowprops={"arrowstyle": "->", "color": "0.3"})
    far = max((x for x in xs if x <= 5.0), default=None)
    if far is not None and far >= 4.0:  # a saturated point, labelled with the values the program computed there
        ds, dt = value_at(table, "d_sigmoid", far), value_at(table, "d_tanh", far)
        ax.annotate(f"at x = {far:g}:\n$\\sigma'$ = {ds:.2g}, $\\tanh'$ = {dt:.2g}\n(saturated: almost no gradient)",
                    xy=(far, ds), xytext=(xs[-1], 0.45), horizontalalignment="right", fontsize=9,
                    arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.set_ylim(-0.05, 1.1)
    ax.legend(loc="upper left", fontsize=9)
    return fig


def save(fig, out_dir, name):
    """Write the figure to a temporary file in out_dir, then rename it over out_dir/name."""
    final = os.path.join(out_dir, name)
    fd, temporary = tempfile.mkstemp(prefix="." + name + ".", suffix=".png", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            # No "Software" (matplotlib version) text chunk: identical bytes on every run with the same input.
            fig.savefig(f, format="png", dpi=DPI, metadata={"Software": None})
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a figure is an ordinary readable file
        os.replace(temporary, final)
    except BaseException:
        os.unlink(temporary)
        raise
    finally:
        plt.close(fig)
    print(f"wrote {final} ({os.path.getsize(final)} bytes)")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--program", help="path to activations_table (run over x in [-6, 6], 481 points)")
    source.add_argument("--csv", help="a CSV written by activations_table --csv")
    parser.add_argument("--slope", type=float, default=DEFAULT_SLOPE,
                        help=f"leaky ReLU negative slope, with --program (default {DEFAULT_SLOPE}: visible)")
    parser.add_argument("--out", default=os.path.join(HERE, "figures"), help="output folder (default: figures/)")
    args = parser.parse_args(argv)

    try:
        if args.program:
            with tempfile.TemporaryDirectory() as work:
                csv_path = os.path.join(work, "curves.csv")
                run_program(args.program, args.slope, csv_path)
                table = read_table(csv_path)
                source_name = args.program
        else:
            table = read_table(args.csv)
            source_name = args.csv
        slope = leaky_slope(table, source_name)
        if not os.path.isdir(args.out):
            raise InputError(f"{args.out}: not a folder")
    except InputError as e:
        print(f"plot_activations.py: error: {e}", file=sys.stderr)
        return 1

    plt.rcParams.update({"font.size": 10})
    figures = {
        "sigmoid.png": plot_smooth(table, "sigmoid", r"$\sigma(x) = 1 / (1 + e^{-x})$",
                                   r"$\sigma'(x) = \sigma(x)\,(1 - \sigma(x))$",
                                   "Sigmoid and its derivative", (-0.1, 1.1)),
        "tanh.png": plot_smooth(table, "tanh", "tanh(x)", r"$\tanh'(x) = 1 - \tanh^2(x)$",
                                "Tanh and its derivative", (-1.15, 1.15)),
        "relu.png": plot_piecewise(table, "relu", "relu(x) = max(0, x)", "relu'(x)",
                                   "ReLU and its derivative", (-1.0, 3.0), "relu'(0) = {:g} (as PyTorch)"),
        "leaky_relu.png": plot_piecewise(table, "leaky_relu", f"leaky_relu(x), slope {slope:g}",
                                         "leaky_relu'(x)", f"Leaky ReLU (negative slope {slope:g}) and its derivative",
                                         (-1.0, 3.0), "leaky_relu'(0) = slope = {:g}"),
        "saturation.png": plot_saturation(table),
    }
    for name, fig in figures.items():
        fig.tight_layout()
        save(fig, args.out, name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
