#!/usr/bin/env bash
# test_interop.sh — chapter 07: checkpoints cross between the C trainer and PyTorch, both ways.
#
#   bash chapters/07-mnist-gpu/tests/test_interop.sh TRAINER DATA_DIR [PYTHON]
#
#   1. PyTorch writes a checkpoint of freshly initialised weights (load_checkpoint.py --write-test-checkpoint);
#   2. the C trainer resumes from it (so its reader accepts what PyTorch wrote) and trains one short epoch,
#      saving its own checkpoint;
#   3. PyTorch loads the trainer's checkpoint and evaluates it: its test accuracy must be the one the trainer
#      printed and saved (load_checkpoint.py --check, within 0.05 points: float summation order may flip a
#      prediction that sits on a tie).
# Exit 0 pass, 1 fail, 77 skip (no PyTorch/numpy for this Python).
set -u
trainer=$1 data_dir=$2 python=${3:-/usr/bin/python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! "$python" -c "import torch, numpy" 2>/dev/null; then
    echo "SKIP: $python cannot import torch and numpy (Debian: apt-get install python3-torch python3-numpy)"
    exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/ch07-interop-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$python" "$here/load_checkpoint.py" --write-test-checkpoint "$work/init.safetensors" --padding 0 --seed 4 \
    > "$work/write.log" 2>&1 || { cat "$work/write.log"; fail "PyTorch could not write a checkpoint"; }
"$trainer" --device cpu --data "$data_dir" --epochs 1 --train-limit 512 --test-limit 1000 \
    --resume "$work/init.safetensors" --save "$work/trained.safetensors" > "$work/train.log" 2>&1 ||
    { cat "$work/train.log"; fail "the trainer refused or failed on PyTorch's checkpoint"; }
grep -E "^resumed|^epoch 1/1:" "$work/train.log"
"$python" "$here/load_checkpoint.py" "$work/trained.safetensors" --data "$data_dir" --check > "$work/check.log" 2>&1 ||
    { cat "$work/check.log"; fail "PyTorch's accuracy of the trainer's checkpoint differs from the trainer's"; }
cat "$work/check.log"
echo "PASS: PyTorch -> C -> PyTorch, same accuracy on both sides"
