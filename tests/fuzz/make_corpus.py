#!/usr/bin/env python3
"""make_corpus.py — write the seed corpora of the two fuzz targets (tests/fuzz/corpus/npy/ and corpus/idx/).

    /usr/bin/python3 tests/fuzz/make_corpus.py

The seeds are committed; run this only to change them (it replaces both folders' contents). Needs numpy
(Debian: apt-get install python3-numpy). The output is deterministic, so rerunning it changes nothing.

A fuzzer mutates its seeds, so good seeds are small, real examples of the format that reach deep into the
reader: one file per supported dtype, odd shapes, a scalar, an empty array. A few seeds are deliberately
broken in one way each (truncated, wrong magic, big-endian, Fortran order, ...): they exercise each refusal
from the start, and the CTest replay of the corpus (label `fuzz`) keeps checking that none of them crashes.

The IDX target reads its input twice (see fuzz_idx.c): as one IDX file, and as an image file followed by a
label file. So the IDX corpus holds single files (images, labels) and pairs (images then labels, concatenated).
"""
import gzip
import io
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN_CH01 = os.path.join(ROOT, "reference", "golden", "ch01")
DATA = os.path.join(ROOT, "data")


def npy_bytes(array):
    """The exact bytes np.save writes for `array` (format version 1.0 for these small headers)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def idx_bytes(type_code, shape, payload):
    """An IDX file: 0, 0, element type, number of dimensions, one big-endian uint32 per dimension, data."""
    return bytes([0, 0, type_code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload


def write_all(folder, files):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    for name, content in sorted(files.items()):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)


def npy_seeds():
    rng = np.random.default_rng(20261124)
    seeds = {}
    # Real golden files of chapter 01 (float32, written by reference/make_golden.py).
    for name in ("softmax_1_x.npy", "softmax_7_x.npy"):
        with open(os.path.join(GOLDEN_CH01, name), "rb") as f:
            seeds["golden_" + name] = f.read()
    # One file per supported dtype, odd shapes.
    seeds["float32_3x5.npy"] = npy_bytes(rng.standard_normal((3, 5)).astype("<f4"))
    seeds["int32_2x3.npy"] = npy_bytes(rng.integers(-1000, 1000, (2, 3)).astype("<i4"))
    seeds["int64_7.npy"] = npy_bytes(rng.integers(-2**40, 2**40, 7).astype("<i8"))
    seeds["uint8_3x4x2.npy"] = npy_bytes(rng.integers(0, 256, (3, 4, 2)).astype("u1"))
    seeds["float32_scalar.npy"] = npy_bytes(np.array(1.5, dtype="<f4"))
    seeds["float32_empty_0x4.npy"] = npy_bytes(np.zeros((0, 4), dtype="<f4"))
    seeds["int32_8dims.npy"] = npy_bytes(np.arange(2, dtype="<i4").reshape(1, 1, 1, 2, 1, 1, 1, 1))
    # Broken on purpose, one problem each.
    good = seeds["float32_3x5.npy"]
    seeds["bad_truncated_data.npy"] = good[:-3]
    seeds["bad_truncated_header.npy"] = good[:40]
    seeds["bad_trailing_bytes.npy"] = good + b"\0\0\0\0"
    seeds["bad_magic.npy"] = b"\x93NUMPX" + good[6:]
    seeds["bad_version_2.npy"] = good[:6] + b"\x02\x00" + good[8:]
    seeds["bad_big_endian.npy"] = npy_bytes(np.arange(6, dtype=">f4"))
    seeds["bad_float64.npy"] = npy_bytes(np.arange(6, dtype="<f8"))
    seeds["bad_fortran_order.npy"] = npy_bytes(np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    return seeds


def idx_seeds():
    rng = np.random.default_rng(20261125)
    seeds = {}
    images = rng.integers(0, 256, (3, 4, 5)).astype(np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    images_file = idx_bytes(0x08, images.shape, images.tobytes())
    labels_file = idx_bytes(0x08, labels.shape, labels.tobytes())
    seeds["images_3x4x5.idx"] = images_file
    seeds["labels_3.idx"] = labels_file
    seeds["pair_3x4x5.idx"] = images_file + labels_file
    # The first digit of the bundled MNIST training set, as a real 28x28 image + label pair.
    with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz"), "rb") as f:
        header = f.read(16)
        pixels = f.read(28 * 28)
    with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz"), "rb") as f:
        f.read(8)
        digit = f.read(1)
    assert header[:4] == b"\x00\x00\x08\x03"
    seeds["pair_mnist_first_digit.idx"] = idx_bytes(0x08, (1, 28, 28), pixels) + idx_bytes(0x08, (1,), digit)
    seeds["empty_pair_0x28x28.idx"] = idx_bytes(0x08, (0, 28, 28), b"") + idx_bytes(0x08, (0,), b"")
    seeds["matrix_2x3.idx"] = idx_bytes(0x08, (2, 3), bytes(range(6)))
    seeds["tensor_4dims.idx"] = idx_bytes(0x08, (1, 2, 1, 3), bytes(range(6)))
    # Broken on purpose, one problem each.
    seeds["bad_truncated.idx"] = images_file[:-5]
    seeds["bad_header_truncated.idx"] = images_file[:10]
    seeds["bad_magic.idx"] = b"\x01" + images_file[1:]
    seeds["bad_type_int32.idx"] = idx_bytes(0x0C, (2,), struct.pack(">ii", 1, 2))
    seeds["bad_dims_overflow.idx"] = idx_bytes(0x08, (0xFFFFFFFF, 0xFFFFFFFF, 2), b"")
    seeds["bad_pair_label_10.idx"] = images_file + idx_bytes(0x08, (3,), bytes([1, 10, 2]))
    seeds["bad_pair_count_mismatch.idx"] = images_file + idx_bytes(0x08, (2,), bytes([1, 2]))
    seeds["bad_pair_images_2d.idx"] = idx_bytes(0x08, (3, 20), images.tobytes()) + labels_file
    return seeds


def main():
    write_all(os.path.join(HERE, "corpus", "npy"), npy_seeds())
    write_all(os.path.join(HERE, "corpus", "idx"), idx_seeds())
    for kind in ("npy", "idx"):
        folder = os.path.join(HERE, "corpus", kind)
        total = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
        print(f"{folder}: {len(os.listdir(folder))} files, {total} bytes")


if __name__ == "__main__":
    main()
