#!/usr/bin/env bash
# test_resume.sh — chapter 07: a run killed with SIGKILL in the middle of an epoch resumes from its checkpoint
# and ends with exactly the weights of a run that was never interrupted; the checkpoint on disk is readable at
# every moment (never half-written).
#
#   bash chapters/07-mnist-gpu/tests/test_resume.sh BIN_DIR DATA_DIR DEVICE TRAIN_LIMIT BATCH
#   e.g. bash chapters/07-mnist-gpu/tests/test_resume.sh build/bin data cpu 1280 32
#
# BIN_DIR holds the trainer (mnist_train, or $TRAINER) and checkpoint_info. Steps:
#   1. the reference: 2 epochs straight, checkpoint at the end;
#   2. the same run with a checkpoint after every step; a watcher reads the checkpoint again and again while
#      the trainer writes it (every read must find a complete, valid file) and kills the trainer with SIGKILL
#      once a checkpoint from the middle of epoch 1 exists;
#   3. the checkpoint left behind is valid and is from the middle of an epoch;
#   4. --resume runs to the end: the final checkpoint's data (weights + momentum) has the reference's CRC-32,
#      i.e. the same bits. On the CUDA path the reference launches kernel by kernel and the other runs replay
#      CUDA Graphs, so this also checks that a graph computes the same bits.
# With REQUIRE_GPU=1 in the environment it skips (exit 77) where there is no NVIDIA GPU.
# Exit 0 pass, 1 fail, 77 skip.
set -u
bin_dir=$1 data_dir=$2 device=$3 train_limit=$4 batch=$5
if [[ ${REQUIRE_GPU:-0} == 1 ]] && ! nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
    echo "SKIP: no NVIDIA GPU on this machine (nvidia-smi -L lists none)"
    exit 77
fi
trainer=${TRAINER:-$bin_dir/mnist_train}
info=$bin_dir/checkpoint_info
work=$(mktemp -d "${TMPDIR:-/tmp}/ch07-resume-XXXXXX")
trap 'kill -9 "${pid:-}" 2>/dev/null; rm -rf "$work"' EXIT
common=(--device "$device" --data "$data_dir" --epochs 2 --batch "$batch" --train-limit "$train_limit"
        --test-limit 100 --seed 3)

fail() { echo "FAIL: $*"; exit 1; }
meta() { "$info" --meta "$2" "$1" 2>/dev/null; }

# 1. The uninterrupted reference. On the CUDA path it launches kernel by kernel (--cuda-graph off) while the
#    killed and resumed runs replay CUDA Graphs (the default): the same bits, the jump of a resume included.
reference_flags=()
[[ $device == cuda ]] && reference_flags=(--cuda-graph off)
"$trainer" "${common[@]}" "${reference_flags[@]}" --save "$work/reference.safetensors" > "$work/reference.log" 2>&1 ||
    { cat "$work/reference.log"; fail "the reference run failed"; }
reference_crc=$(meta "$work/reference.safetensors" data_crc32) || fail "the reference checkpoint is unreadable"
echo "reference run: data_crc32 $reference_crc"

# 2. The run that gets killed.
checkpoint=$work/run.safetensors
"$trainer" "${common[@]}" --save "$checkpoint" --save-every 1 > "$work/killed.log" 2>&1 &
pid=$!
reads=0 killed=0
while kill -0 "$pid" 2>/dev/null; do
    if [[ -e $checkpoint ]]; then
        # Whatever moment this read falls on, the file under the final name must be whole and valid.
        "$info" "$checkpoint" > "$work/read.txt" 2>&1 || { cat "$work/read.txt"; fail "a read during training found a damaged checkpoint"; }
        reads=$((reads + 1))
        step=$(meta "$checkpoint" step_in_epoch) epoch=$(meta "$checkpoint" epoch)
        if [[ $epoch == 0 && ${step:-0} -ge 2 ]]; then
            kill -9 "$pid"
            killed=1
            break
        fi
    fi
    sleep 0.02
done
wait "$pid" 2>/dev/null
[[ $killed == 1 ]] || fail "the trainer finished before it could be killed in epoch 1 (make the run longer)"
echo "killed the trainer with SIGKILL after $reads checkpoint reads"

# 3. What the kill left.
"$info" "$checkpoint" > "$work/after.txt" 2>&1 || { cat "$work/after.txt"; fail "the checkpoint left by the kill is damaged"; }
step=$(meta "$checkpoint" step_in_epoch)
echo "checkpoint after the kill: epoch $(meta "$checkpoint" epoch), step $step of epoch 1, global step $(meta "$checkpoint" global_step)"
[[ $step -ge 1 ]] || fail "the checkpoint after the kill is not from the middle of an epoch"

# 4. Resume to the end.
"$trainer" --device "$device" --data "$data_dir" --epochs 2 --train-limit "$train_limit" --test-limit 100 \
    --resume "$checkpoint" --save "$checkpoint" > "$work/resumed.log" 2>&1 ||
    { cat "$work/resumed.log"; fail "the resumed run failed"; }
grep -E "^resumed" "$work/resumed.log"
resumed_crc=$(meta "$checkpoint" data_crc32)
[[ $(meta "$checkpoint" epoch) == 2 ]] || fail "the resumed run did not finish epoch 2"
if [[ $resumed_crc != "$reference_crc" ]]; then
    fail "after resuming, the weights differ from the uninterrupted run's (data_crc32 $resumed_crc vs $reference_crc)"
fi
ref_acc=$(meta "$work/reference.safetensors" test_accuracy) res_acc=$(meta "$checkpoint" test_accuracy)
[[ $ref_acc == "$res_acc" ]] || fail "test accuracy $res_acc after resuming, $ref_acc without interruption"
echo "PASS: killed mid-epoch, resumed, and ended bit for bit where the uninterrupted run ended (data_crc32 $resumed_crc, test accuracy $res_acc)"
