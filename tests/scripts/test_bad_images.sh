#!/usr/bin/env bash
# test_bad_images.sh — a CNN trainer (cnn_train, mnist_train) given MNIST files whose images are not square
# refuses them: exit status 1 and a message that names the folder and the problem, before any training.
#
#   bash tests/scripts/test_bad_images.sh TRAINER [TRAINER FLAGS...]
#   e.g. bash tests/scripts/test_bad_images.sh build/bin/mnist_train --device cpu
#
# The files (3 images of 20x28 pixels, valid IDX headers) are written here with printf, so that nothing but
# the shell is needed.
set -euo pipefail
trainer=$1
shift
work=$(mktemp -d "${TMPDIR:-/tmp}/course-bad-images-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL $*"; exit 1; }

for split in train t10k; do
    # IDX images: magic 2051 (0x00000803), count 3, rows 20 (0x14), columns 28 (0x1c), then the pixels.
    { printf '\x00\x00\x08\x03\x00\x00\x00\x03\x00\x00\x00\x14\x00\x00\x00\x1c'; head -c $((3 * 20 * 28)) /dev/zero; } \
        > "$work/$split-images-idx3-ubyte"
    # IDX labels: magic 2049 (0x00000801), count 3, then the labels 1, 2, 3.
    printf '\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03' > "$work/$split-labels-idx1-ubyte"
done

status=0
"$trainer" "$@" --data "$work" --epochs 1 > "$work/out.log" 2>&1 || status=$?
cat "$work/out.log"
[[ $status == 1 ]] || fail "exit status $status, expected 1"
grep -qF "$work" "$work/out.log" || fail "the message does not name the folder $work"
grep -qF "needs square images; these are 20x28" "$work/out.log" || fail "the message does not say the images are not square"
! grep -q "^epoch " "$work/out.log" || fail "it trained"
echo "ok: 20x28 images are refused, naming the folder"
