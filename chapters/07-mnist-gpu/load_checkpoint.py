#!/usr/bin/env python3
"""load_checkpoint.py — opens a checkpoint of chapter 07's trainer (mnist_train) in PyTorch, independently of the
C code, and measures its test accuracy: proof that the file holds the network it claims to hold.

    /usr/bin/python3 chapters/07-mnist-gpu/load_checkpoint.py mnist.safetensors
    /usr/bin/python3 chapters/07-mnist-gpu/load_checkpoint.py mnist.safetensors --data data/mnist-full --device cuda
    /usr/bin/python3 chapters/07-mnist-gpu/load_checkpoint.py mnist.safetensors --check        # vs the metadata
    /usr/bin/python3 chapters/07-mnist-gpu/load_checkpoint.py mnist.safetensors --expect-accuracy 0.9912
    /usr/bin/python3 chapters/07-mnist-gpu/load_checkpoint.py mnist.safetensors --export-state-dict net.pt

It also writes checkpoints (the C side's tests use this to check that the C reader accepts a file PyTorch wrote):

    /usr/bin/python3 chapters/07-mnist-gpu/load_checkpoint.py --write-test-checkpoint init.safetensors \\
        --padding 0 --seed 1

The file is safetensors (metadata format "course-mnist-cnn"): an 8-byte little-endian header length N, N bytes
of JSON (tensor names, dtypes, shapes, byte ranges, and "__metadata__"), then the raw float32 data. It is read here by hand (struct + json + numpy; the `safetensors` package is not needed), and
every field is checked: a damaged file is refused with a message that names it and says what is wrong.

What it does with a checkpoint:
  1. reads and validates the file (header, JSON, tensors and shapes against the metadata, data_crc32);
  2. builds PyTorch's examples/mnist `Net` from the metadata (padding, channels, hidden, classes, fc1_inputs)
     and load_state_dict(strict=True) with the eight parameter tensors (the SGD momentum buffers are skipped);
  3. evaluates it on the test set of --data (eval mode: no dropout; batches of 1000) and prints the accuracy
     and the mean cross-entropy, next to the figures the trainer stored in the metadata. When the metadata has
     "test_samples" (the trainer evaluated only the first N test images), the same N images are used.

Exit status: 0 ok; 1 the checkpoint or the data is unusable, or the accuracy is outside --tolerance of the
expected one; 2 usage error. Needs PyTorch and numpy (Debian: python3-torch python3-numpy): /usr/bin/python3.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import tempfile
import zlib

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"error: {e.name} is not importable by this Python (Debian: apt-get install python3-torch "
             "python3-numpy; run the script with /usr/bin/python3)")

FORMAT = "course-mnist-cnn"
FORMAT_VERSION = "1"
MEAN, STD = 0.1307, 0.3081          # input normalisation: x = (pixel/255 - MEAN) / STD
PARAMETERS = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
              "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
MOMENTUM_PREFIX = "momentum_buffer."
# The optimiser's state tensors saved beside the weights, by metadata "optimizer" (chapter 10 adds Adam and
# AdamW; a checkpoint without the key is SGD's), under torch.optim's state names.
STATE_PREFIXES = {"sgd": [MOMENTUM_PREFIX], "adam": ["exp_avg.", "exp_avg_sq."], "adamw": ["exp_avg.", "exp_avg_sq."]}
REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file."""


class DataError(Exception):
    """A data file that cannot be used; the message names the file."""


# ---- the network ----------------------------------------------------------------------------------------------

class Net(nn.Module):
    """PyTorch's examples/mnist network; the sizes come from the checkpoint's metadata."""

    def __init__(self, padding=0, conv1_channels=32, conv2_channels=64, hidden=128, classes=10, image_size=28):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1_channels, 3, 1, padding)
        self.conv2 = nn.Conv2d(conv1_channels, conv2_channels, 3, 1, padding)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(fc1_inputs_for(padding, conv2_channels, image_size), hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):                    # x: (B, 1, 28, 28), normalised
        x = F.relu(self.conv1(x))            # (B, C1, 26, 26) with padding 0; (B, C1, 28, 28) with padding 1
        x = F.relu(self.conv2(x))            # (B, C2, 24, 24)                  (B, C2, 28, 28)
        x = F.max_pool2d(x, 2)               # (B, C2, 12, 12)                  (B, C2, 14, 14)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)              # (B, fc1_inputs)
        x = F.relu(self.fc1(x))              # (B, hidden)
        x = self.dropout2(x)
        return self.fc2(x)                   # (B, classes) logits


def fc1_inputs_for(padding, conv2_channels, image_size):
    """Flattened size after conv3x3 -> conv3x3 -> maxpool 2: each conv changes the side by 2*padding - 2."""
    side = image_size + 2 * (2 * padding - 2)
    return conv2_channels * (side // 2) * (side // 2)


def expected_shapes(arch, optimizer="sgd"):
    """Tensor name -> shape, in file order, for the sizes in `arch` (from the metadata) and the optimiser's state."""
    c1, c2, hidden, classes = arch["conv1_channels"], arch["conv2_channels"], arch["hidden"], arch["classes"]
    shapes = {
        "conv1.weight": [c1, 1, 3, 3], "conv1.bias": [c1],
        "conv2.weight": [c2, c1, 3, 3], "conv2.bias": [c2],
        "fc1.weight": [hidden, arch["fc1_inputs"]], "fc1.bias": [hidden],
        "fc2.weight": [classes, hidden], "fc2.bias": [classes],
    }
    for prefix in STATE_PREFIXES[optimizer]:
        shapes.update({prefix + name: list(shapes[name]) for name in PARAMETERS})
    return shapes


# ---- reading a checkpoint -------------------------------------------------------------------------------------

def read_checkpoint(path):
    """Reads and validates a checkpoint. Returns (metadata dict, architecture dict, {name: float32 ndarray})."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror})")
    header, data = split_header(path, blob)
    metadata = header.pop("__metadata__", None)
    metadata = check_metadata(path, metadata)
    arch = architecture(path, metadata)
    optimizer = metadata.get("optimizer", "sgd")
    if optimizer not in STATE_PREFIXES:
        raise CheckpointError(f"{path}: metadata \"optimizer\" is {optimizer!r}, not one of {', '.join(STATE_PREFIXES)}")
    tensors = check_tensors(path, header, expected_shapes(arch, optimizer), data)
    check_crc(path, metadata, data)
    check_finite(path, tensors)
    return metadata, arch, tensors


def split_header(path, blob):
    """Splits the file into (header JSON object, data section bytes)."""
    if len(blob) < 8:
        raise CheckpointError(f"{path}: too short to be a safetensors file ({len(blob)} bytes; the header length "
                              "alone takes 8)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise CheckpointError(f"{path}: the header length says {n} bytes, but the file has only {len(blob) - 8} "
                              "after the length field (truncated or not a safetensors file)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the header is not valid UTF-8 JSON ({e})")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the header JSON is a {type(header).__name__}, not an object")
    return header, blob[8 + n:]


def check_metadata(path, metadata):
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: the header has no \"__metadata__\" object")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise CheckpointError(f"{path}: metadata \"{key}\" is {json.dumps(value)}, but safetensors metadata "
                                  "values must be strings")
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata format is {json.dumps(metadata.get('format'))}, expected "
                              f"\"{FORMAT}\" (not a checkpoint of this course's MNIST network)")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {json.dumps(metadata.get('format_version'))} is not "
                              f"supported (this script reads version \"{FORMAT_VERSION}\")")
    return metadata


def metadata_int(path, metadata, key, allowed=None):
    text = metadata.get(key)
    if text is None:
        raise CheckpointError(f"{path}: metadata \"{key}\" is missing")
    try:
        value = int(text)
    except ValueError:
        raise CheckpointError(f"{path}: metadata \"{key}\" is \"{text}\", not an integer")
    if (value <= 0 and key != "padding") or (allowed is not None and value not in allowed):
        raise CheckpointError(f"{path}: metadata \"{key}\" = {value} is out of range")
    return value


def architecture(path, metadata):
    """The network sizes from the metadata, checked against each other."""
    arch = {"padding": metadata_int(path, metadata, "padding", allowed=range(0, 9))}
    for key in ("image_size", "conv1_channels", "conv2_channels", "hidden", "classes", "fc1_inputs"):
        arch[key] = metadata_int(path, metadata, key)
    needed = fc1_inputs_for(arch["padding"], arch["conv2_channels"], arch["image_size"])
    if arch["fc1_inputs"] != needed:
        raise CheckpointError(f"{path}: metadata fc1_inputs = {arch['fc1_inputs']}, but padding {arch['padding']} "
                              f"with {arch['conv2_channels']} channels on {arch['image_size']}x{arch['image_size']} "
                              f"images flattens to {needed}")
    return arch


def check_tensors(path, header, shapes, data):
    """Checks every tensor entry against the expected shapes and the data section; returns the arrays."""
    missing = [name for name in shapes if name not in header]
    if missing:
        raise CheckpointError(f"{path}: missing tensors: {', '.join(missing)}")
    unknown = [name for name in header if name not in shapes]
    if unknown:
        raise CheckpointError(f"{path}: unexpected tensors: {', '.join(unknown)}")
    spans, arrays = [], {}
    for name, shape in shapes.items():
        entry = header[name]
        if not isinstance(entry, dict):
            raise CheckpointError(f"{path}: tensor {name}: its entry is not a JSON object")
        if entry.get("dtype") != "F32":
            raise CheckpointError(f"{path}: tensor {name}: dtype {json.dumps(entry.get('dtype'))}, expected \"F32\"")
        if entry.get("shape") != shape:
            raise CheckpointError(f"{path}: tensor {name}: shape {entry.get('shape')}, but the metadata's sizes "
                                  f"need {shape}")
        offsets = entry.get("data_offsets")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise CheckpointError(f"{path}: tensor {name}: data_offsets {json.dumps(offsets)} is not [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= len(data):
            raise CheckpointError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] out of range (the data "
                                  f"section has {len(data)} bytes)")
        count = math.prod(shape)
        if end - begin != 4 * count:
            raise CheckpointError(f"{path}: tensor {name}: {end - begin} bytes, but shape {shape} of F32 needs "
                                  f"{4 * count}")
        spans.append((begin, end, name))
        arrays[name] = np.frombuffer(data, dtype="<f4", count=count, offset=begin).reshape(shape).astype(np.float32)
    check_layout(path, spans, len(data))
    return arrays


def check_layout(path, spans, data_size):
    """Tensors must tile the data section: no overlap, no gap, nothing left over."""
    position = 0
    previous = None
    for begin, end, name in sorted(spans):
        if begin < position:
            raise CheckpointError(f"{path}: tensors {previous} and {name} overlap (bytes {begin}..{position})")
        if begin > position:
            raise CheckpointError(f"{path}: {begin - position} unused bytes before tensor {name} (a gap)")
        position, previous = end, name
    if position != data_size:
        raise CheckpointError(f"{path}: {data_size - position} bytes after the last tensor (the data section has "
                              f"{data_size}, the tensors cover {position})")


def check_crc(path, metadata, data):
    stored = metadata.get("data_crc32")
    if stored is None:
        raise CheckpointError(f"{path}: metadata \"data_crc32\" is missing")
    actual = f"{zlib.crc32(data) & 0xffffffff:08x}"
    if stored.lower() != actual:
        raise CheckpointError(f"{path}: data_crc32 mismatch: the metadata says {stored}, the data section has "
                              f"{actual} (the file is damaged)")


def check_finite(path, tensors):
    for name, array in tensors.items():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise CheckpointError(f"{path}: tensor {name}: {bad} values are NaN or Inf (a diverged run?)")


def build_model(arch, tensors):
    model = Net(arch["padding"], arch["conv1_channels"], arch["conv2_channels"], arch["hidden"], arch["classes"],
                arch["image_size"])
    state = {name: torch.from_numpy(tensors[name]) for name in PARAMETERS}
    model.load_state_dict(state, strict=True)
    return model


# ---- writing a checkpoint -------------------------------------------------------------------------------------

def write_checkpoint(path, tensors, metadata):
    """Writes `tensors` ({name: float32 array}, in file order) and `metadata` ({str: str}) atomically."""
    data_parts, header, position = [], {}, 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [position, position + len(raw)]}
        data_parts.append(raw)
        position += len(raw)
    data = b"".join(data_parts)
    metadata = dict(metadata, data_crc32=f"{zlib.crc32(data) & 0xffffffff:08x}")
    text = json.dumps({"__metadata__": metadata, **header}, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)          # pad so that the data section starts 8-byte aligned
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write it ({e.strerror})")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)                # mkstemp creates it 0600; give it the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_test_checkpoint(path, padding, seed):
    """A freshly initialised network (PyTorch's default init, torch.manual_seed(seed)), momentum zero, epoch 0."""
    torch.manual_seed(seed)
    model = Net(padding)
    params = {name: value.detach().numpy() for name, value in model.state_dict().items()}
    tensors = {name: params[name] for name in PARAMETERS}
    tensors.update({MOMENTUM_PREFIX + name: np.zeros_like(params[name]) for name in PARAMETERS})
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "image_size": "28", "padding": str(padding),
        "conv1_channels": "32", "conv2_channels": "64", "hidden": "128", "classes": "10",
        "fc1_inputs": str(model.fc1.in_features), "dropout1": "0.25", "dropout2": "0.5",
        "epoch": "0", "step_in_epoch": "0", "global_step": "0",
        "seed": str(seed), "batch": "64", "lr": "0.01", "momentum": "0.9", "device": "cpu", "data": "",
        # the trainer's own bookkeeping, at its starting values (nothing trained yet)
        "train_count": "0", "epoch_samples": "0", "trained_samples": "0", "epoch_loss_sum": "0",
        "train_seconds": "0", "history_test_accuracy": "", "history_test_loss": "", "history_train_loss": "",
        "writer": f"load_checkpoint.py --write-test-checkpoint (PyTorch {torch.__version__})",
    }
    write_checkpoint(path, tensors, metadata)
    print(f"wrote {path}: padding {padding}, seed {seed}, fc1_inputs {model.fc1.in_features}, "
          f"{sum(t.size for t in tensors.values())} floats (parameters + zero momentum)")


# ---- the test set ---------------------------------------------------------------------------------------------

def open_idx(folder, stem):
    """The bytes of folder/stem or folder/stem.gz (whichever exists), and the path that was read."""
    for path in (os.path.join(folder, stem + ".gz"), os.path.join(folder, stem)):
        if os.path.exists(path):
            try:
                if path.endswith(".gz"):
                    with gzip.open(path, "rb") as f:
                        return f.read(), path
                with open(path, "rb") as f:
                    return f.read(), path
            except (OSError, EOFError) as e:
                raise DataError(f"{path}: cannot read it ({e})")
    raise DataError(f"{os.path.join(folder, stem)}(.gz): not found (the data folder needs the four MNIST IDX "
                    "files; see data/README.md)")


def read_idx(folder, stem, magic, ndim):
    """Reads an IDX file of unsigned bytes: checks the magic number and that the sizes match the file length."""
    blob, path = open_idx(folder, stem)
    header_size = 4 + 4 * ndim
    if len(blob) < header_size:
        raise DataError(f"{path}: too short for an IDX header ({len(blob)} bytes)")
    (got_magic,) = struct.unpack(">I", blob[:4])
    if got_magic != magic:
        raise DataError(f"{path}: magic number {got_magic}, expected {magic} (not an IDX {ndim}-D file of bytes)")
    dims = struct.unpack(f">{ndim}I", blob[4:header_size])
    size = header_size + math.prod(dims)
    if len(blob) != size:
        raise DataError(f"{path}: dimensions {'x'.join(map(str, dims))} need {size} bytes, the file has {len(blob)}")
    return np.frombuffer(blob, dtype=np.uint8, offset=header_size).reshape(dims), path


def load_test_set(folder, image_size, classes):
    images, images_path = read_idx(folder, "t10k-images-idx3-ubyte", 2051, 3)
    labels, labels_path = read_idx(folder, "t10k-labels-idx1-ubyte", 2049, 1)
    if images.shape[1:] != (image_size, image_size):
        raise DataError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, the checkpoint's network "
                        f"takes {image_size}x{image_size}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(labels) and labels.max() >= classes:
        raise DataError(f"{labels_path}: label {labels.max()} is not below the network's {classes} classes")
    x = (torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 255.0 - MEAN) / STD   # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y, images_path


@torch.no_grad()
def evaluate(model, x, y, device, batch=1000):
    """(correct count, mean cross-entropy) over the whole set, in eval mode (dropout off)."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(y), batch):
        xb, yb = x[start:start + batch].to(device), y[start:start + batch].to(device)
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return correct, loss_sum / max(len(y), 1)


# ---- main -----------------------------------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="the .safetensors file written by mnist_train")
    parser.add_argument("--data", default=os.path.join(REPO_ROOT, "data"),
                        help="folder with t10k-images/labels IDX files, .gz or plain (default: the bundled data/)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--check", action="store_true",
                        help="expect the test accuracy stored in the metadata (see --tolerance)")
    parser.add_argument("--expect-accuracy", type=float, metavar="A",
                        help="expected test accuracy as a fraction, e.g. 0.9912; exit 1 if further than --tolerance")
    parser.add_argument("--tolerance", type=float, default=0.0005, metavar="T",
                        help="allowed |accuracy - expected| (default 0.0005 = 0.05 points = 5 of 10,000 digits)")
    parser.add_argument("--export-state-dict", metavar="OUT.pt", help="also torch.save the model's state_dict here")
    parser.add_argument("--write-test-checkpoint", metavar="OUT",
                        help="write a freshly initialised checkpoint (see --padding, --seed) and exit")
    parser.add_argument("--padding", type=int, choices=range(0, 9), default=0, metavar="P",
                        help="for --write-test-checkpoint: 0 (fc1 9216 inputs, the default) or 1 (12544); up to 8")
    parser.add_argument("--seed", type=int, default=1, help="for --write-test-checkpoint (torch.manual_seed)")
    args = parser.parse_args()
    if args.write_test_checkpoint is None and args.checkpoint is None:
        parser.error("give a CHECKPOINT to read, or --write-test-checkpoint OUT")
    if args.write_test_checkpoint is not None and args.checkpoint is not None:
        parser.error("--write-test-checkpoint writes a file; do not also give a CHECKPOINT to read")
    if not args.tolerance >= 0:
        parser.error("--tolerance must be >= 0")
    return args


def expected_accuracy(args, metadata):
    if args.expect_accuracy is not None:
        return args.expect_accuracy
    if args.check:
        if "test_accuracy" not in metadata:
            raise CheckpointError(f"{args.checkpoint}: --check, but the metadata has no test_accuracy "
                                  "(no epoch finished before this checkpoint)")
        return stored_float(args.checkpoint, metadata, "test_accuracy")
    return None


def stored_float(path, metadata, key):
    try:
        return float(metadata[key])
    except ValueError:
        raise CheckpointError(f"{path}: metadata \"{key}\" is \"{metadata[key]}\", not a number")


def same_test_images(path, metadata, x, y):
    """The trainer may have evaluated only the first N test images (mnist_train --test-limit N); when the
    metadata says so ("test_samples"), evaluate the same ones, so that the accuracies are comparable."""
    if "test_samples" not in metadata:
        return x, y
    n = metadata_int(path, metadata, "test_samples")
    if n > len(y):
        raise CheckpointError(f"{path}: the trainer evaluated {n} test images, but this test set has only {len(y)} "
                              "(another --data?)")
    if n < len(y):
        print(f"note: the trainer evaluated the first {n} test images only (metadata test_samples); so does this")
    return x[:n], y[:n]


def report(args, metadata, arch, correct, total, loss, data_path):
    accuracy = correct / total
    print(f"checkpoint   {args.checkpoint}: epoch {metadata.get('epoch', '?')}, step_in_epoch "
          f"{metadata.get('step_in_epoch', '?')}, global_step {metadata.get('global_step', '?')}, "
          f"padding {arch['padding']}, fc1_inputs {arch['fc1_inputs']}, trained on {metadata.get('device', '?')}")
    print(f"test set     {data_path} ({total} images evaluated), PyTorch {torch.__version__} on {args.device}")
    line = f"accuracy     {100 * accuracy:.2f} % ({correct}/{total})"
    if "test_accuracy" in metadata:
        stored = stored_float(args.checkpoint, metadata, "test_accuracy")
        line += f"    trainer: {100 * stored:.2f} %    difference: {100 * (accuracy - stored):+.2f} points"
    print(line)
    line = f"mean loss    {loss:.4f}"
    if "test_loss" in metadata:
        stored = stored_float(args.checkpoint, metadata, "test_loss")
        line += f"    trainer: {stored:.4f}    difference: {loss - stored:+.4f}"
    print(line)
    return accuracy


def main():
    args = parse_args()
    try:
        if args.write_test_checkpoint is not None:
            write_test_checkpoint(args.write_test_checkpoint, args.padding, args.seed)
            return 0
        if args.device == "cuda" and not torch.cuda.is_available():
            print("error: --device cuda, but PyTorch sees no CUDA device here (use --device cpu)", file=sys.stderr)
            return 1
        metadata, arch, tensors = read_checkpoint(args.checkpoint)
        expected = expected_accuracy(args, metadata)
        model = build_model(arch, tensors).to(args.device)
        x, y, data_path = load_test_set(args.data, arch["image_size"], arch["classes"])
        x, y = same_test_images(args.checkpoint, metadata, x, y)
        correct, loss = evaluate(model, x, y, args.device)
        accuracy = report(args, metadata, arch, correct, len(y), loss, data_path)
        if args.export_state_dict:
            export_state_dict(model, args.export_state_dict)
    except (CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:                                          # writing the checkpoint or the state_dict
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    if expected is not None:
        if not abs(accuracy - expected) <= args.tolerance:        # a NaN fails too
            print(f"FAIL: accuracy {accuracy:.4f} differs from the expected {expected:.4f} by more than "
                  f"{args.tolerance}", file=sys.stderr)
            return 1
        print(f"ok: accuracy {accuracy:.4f} is within {args.tolerance} of the expected {expected:.4f}")
    return 0


def export_state_dict(model, path):
    """torch.save of the parameters (on the CPU), written atomically."""
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    print(f"state_dict   {path} (load it with: model.load_state_dict(torch.load(\"{path}\")))")


if __name__ == "__main__":
    sys.exit(main())
