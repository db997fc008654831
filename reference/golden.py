"""golden.py — shared helpers for the scripts that write the course's golden files.

Every chapter script (chNN_*.py) defines `generate(writer)` and calls `writer.save(name, array)` for each
golden file. make_golden.py runs them, either writing into reference/golden/chNN/ or, with --check,
regenerating into a temporary folder and comparing with the committed files.

Inputs are drawn from numpy's PCG64 generator with fixed seeds, and saved too: the C tests read the inputs
from the .npy files instead of regenerating them, so C and Python never need the same random stream.
"""
import json
import os
import platform
import sys

import numpy as np


class GoldenWriter:
    """Writes named arrays as .npy (float32/int32/int64/uint8, C order) into one chapter's folder."""

    ALLOWED = (np.float32, np.int32, np.int64, np.uint8)

    def __init__(self, folder):
        self.folder = folder
        self.names = []
        os.makedirs(folder, exist_ok=True)

    def save(self, name, array):
        array = np.ascontiguousarray(array)
        if array.dtype.type not in self.ALLOWED:
            raise TypeError(f"{name}: dtype {array.dtype} is not one the C reader supports")
        path = os.path.join(self.folder, name + ".npy")
        np.save(path, array, allow_pickle=False)
        self.names.append(name + ".npy")


def f64(array, grad=False):
    """A float32 input as a float64 tensor. References with long sums (a conv weight gradient adds thousands of
    products) are computed in float64 and rounded to float32 once, so that they do not depend on the order in
    which this machine's PyTorch build sums: in float32 that order differs between CPUs by more than --check
    tolerates."""
    import torch

    return torch.tensor(np.asarray(array), dtype=torch.float64, requires_grad=grad)


def out32(tensor):
    """A float64 result rounded once to float32, as a numpy array for GoldenWriter.save."""
    return tensor.detach().float().numpy()


def tool_versions():
    """The versions of everything that shaped the numbers, recorded next to the goldens."""
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }


def write_versions(folder):
    with open(os.path.join(folder, "VERSIONS.json"), "w") as f:
        json.dump(tool_versions(), f, indent=2, sort_keys=True)
        f.write("\n")


def compare_folders(committed, regenerated, atol, rtol):
    """Compare every .npy of two folders; returns a list of problems (empty when they agree)."""
    problems = []
    old = sorted(n for n in os.listdir(committed) if n.endswith(".npy"))
    new = sorted(n for n in os.listdir(regenerated) if n.endswith(".npy"))
    for name in sorted(set(old) ^ set(new)):
        where = "committed only" if name in old else "regenerated only"
        problems.append(f"{name}: {where}")
    for name in sorted(set(old) & set(new)):
        a = np.load(os.path.join(committed, name))
        b = np.load(os.path.join(regenerated, name))
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{name}: committed {a.dtype}{a.shape}, regenerated {b.dtype}{b.shape}")
            continue
        if a.dtype.kind == "f":
            same = np.isclose(a, b, atol=atol, rtol=rtol, equal_nan=True)
        else:
            same = a == b
        if not same.all():
            bad = np.flatnonzero(~same.ravel())
            i = bad[0]
            problems.append(
                f"{name}: {bad.size} of {a.size} elements differ; first at flat index {i}: "
                f"committed {a.ravel()[i]!r}, regenerated {b.ravel()[i]!r}"
            )
    return problems


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
