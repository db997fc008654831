#!/usr/bin/env bash
# test_diverge.sh — chapter 07: a loss that becomes NaN or infinite stops the trainer with exit status 1 and a
# message saying where and what to try, and no checkpoint is written after it (on the GPU path the loss is
# read back in windows, so this also checks that a late-noticed NaN still stops the run before any save).
#
#   bash chapters/07-mnist-gpu/tests/test_diverge.sh TRAINER DATA_DIR DEVICE
# Exit 0 pass, 1 fail.
set -u
trainer=$1 data_dir=$2 device=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/ch07-diverge-XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
"$trainer" --device "$device" --data "$data_dir" --epochs 2 --batch 16 --train-limit 96 --test-limit 16 \
    --lr 100000 --save "$work/never.safetensors" --summary-json "$work/never.json" > "$work/out.txt" 2>&1 || status=$?
cat "$work/out.txt"
[[ $status == 1 ]] || { echo "FAIL: exit status $status, expected 1"; exit 1; }
grep -Eq "loss became (nan|inf|-inf) at epoch 1, batch [0-9]+: training diverged" "$work/out.txt" ||
    { echo "FAIL: no 'loss became ... training diverged' message"; exit 1; }
[[ ! -e $work/never.safetensors && ! -e $work/never.json ]] ||
    { echo "FAIL: a checkpoint or summary was written after the loss diverged"; exit 1; }
echo "PASS: stopped with status 1 and a clear message, nothing written"
