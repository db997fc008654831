#!/usr/bin/env bash
# test_resume.sh — any of the course's trainers (mlp_train, cnn_train, mnist_train: common/trainer.h): a run
# killed with SIGKILL in the middle of an epoch resumes from its checkpoint and ends with exactly the weights of
# a run that was never interrupted; the checkpoint on disk is readable at every moment (never half-written);
# Ctrl-C (SIGINT) writes a last checkpoint and exits 130; stray temporary files of a killed save are removed.
#
#   bash tests/scripts/test_resume.sh BIN_DIR DATA_DIR DEVICE TRAIN_LIMIT BATCH
#   e.g. bash tests/scripts/test_resume.sh build/bin data cpu 1280 32                       # mnist_train
#        TRAINER=build/bin/mlp_train bash tests/scripts/test_resume.sh build/bin data - 2560 32
#
# BIN_DIR holds the trainer (mnist_train, or $TRAINER) and checkpoint_info (or BIN_DIR is checkpoint_info). DEVICE is mnist_train's --device
# (cpu or cuda), or - for the CPU-only trainers, which have no --device. Steps:
#   1. the reference: 2 epochs straight, checkpoint at the end;
#   1b. a copy of it with one byte changed is refused by --resume (exit 1, a message naming the file);
#   2. the same run with a checkpoint after every step; a watcher reads the checkpoint again and again while
#      the trainer writes it (every read must find a complete, valid file) and kills the trainer with SIGKILL
#      once a checkpoint from the middle of epoch 1 exists;
#   3. the checkpoint left behind is valid and is from the middle of an epoch;
#   4. --resume runs to the end: the final checkpoint's data (weights + momentum) has the reference's CRC-32,
#      i.e. the same bits. On the CUDA path the reference launches kernel by kernel and the other runs replay
#      CUDA Graphs, so this also checks that a graph computes the same bits;
#   5. a stray temporary file beside the checkpoint (what a SIGKILL during a save leaves) is removed, with a
#      message, by the next start; none is left at the end;
#   6. (CPU runs) SIGINT in the middle of an epoch: exit status 130, a checkpoint from that moment, and resuming
#      ends bit for bit at the reference.
# With REQUIRE_GPU=1 in the environment it skips (exit 77) where there is no NVIDIA GPU. EXTRA_FLAGS (in the
# environment, split on spaces) are given to every run, resumes included: chapter 10 checks its options with it
# (e.g. EXTRA_FLAGS="--augment affine --optimizer adam").
# Exit 0 pass, 1 fail, 77 skip.
set -u
bin_dir=$1 data_dir=$2 device=$3 train_limit=$4 batch=$5
if [[ ${REQUIRE_GPU:-0} == 1 ]] && ! nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
    echo "SKIP: no NVIDIA GPU on this machine (nvidia-smi -L lists none)"
    exit 77
fi
if [[ -f $bin_dir ]]; then # the checkpoint_info program itself, rather than its folder
    info=$bin_dir bin_dir=$(dirname "$bin_dir")
else
    info=$bin_dir/checkpoint_info
fi
trainer=${TRAINER:-$bin_dir/mnist_train}
work=$(mktemp -d "${TMPDIR:-/tmp}/course-resume-XXXXXX")
trap 'kill -9 "${pid:-}" 2>/dev/null; rm -rf "$work"' EXIT
device_flags=()
[[ $device != - ]] && device_flags=(--device "$device")
read -r -a extra_flags <<< "${EXTRA_FLAGS:-}"
device_flags+=("${extra_flags[@]}") # every run gets them, the resumed ones too
common=("${device_flags[@]}" --data "$data_dir" --epochs 2 --batch "$batch" --train-limit "$train_limit"
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

# 1b. A damaged checkpoint is refused with a message naming the file, and nothing is trained.
damaged=$work/damaged.safetensors
cp "$work/reference.safetensors" "$damaged"
size=$(stat -c %s "$damaged")
printf '\x55' | dd of="$damaged" bs=1 seek=$((size - 5)) conv=notrunc status=none
status=0
"$trainer" "${common[@]}" --resume "$damaged" > "$work/damaged.log" 2>&1 || status=$?
[[ $status == 1 ]] && grep -q "damaged.safetensors: corrupt" "$work/damaged.log" ||
    { cat "$work/damaged.log"; fail "a damaged checkpoint was not refused with exit status 1 and a message naming it"; }
echo "a damaged checkpoint is refused: $(grep -o 'corrupt.*' "$work/damaged.log" | head -1)"

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
stray=$checkpoint.tmp.AbC123 # as file_util.c's mkstemp names them
echo "half a checkpoint" > "$stray"
"$trainer" "${device_flags[@]}" --data "$data_dir" --epochs 2 --train-limit "$train_limit" --test-limit 100 \
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
echo "killed mid-epoch, resumed, and ended bit for bit where the uninterrupted run ended (data_crc32 $resumed_crc, test accuracy $res_acc)"

# 5. The stray temporary file.
[[ ! -e $stray ]] || fail "the stray temporary file $stray is still there after a run with --save"
grep -q "^removed .*tmp.AbC123" "$work/resumed.log" || fail "the trainer did not say it removed $stray"
leftovers=$(ls "$work" | grep -c '\.tmp\.')
[[ $leftovers == 0 ]] || fail "temporary files left in the folder: $(ls "$work" | grep '\.tmp\.')"
echo "a stray temporary file was removed, with a message"

# 6. Ctrl-C: wait until the CSV log shows step 2 of epoch 1 done, then SIGINT. The handling is the shared loop's
#    (common/trainer.c), the same on both devices, so the slow simulated CUDA path leaves it to the CPU runs.
if [[ $device == cuda ]]; then
    echo "PASS: killed mid-epoch, resumed, and ended bit for bit where the uninterrupted run ended (data_crc32 $resumed_crc, test accuracy $res_acc)"
    exit 0
fi
interrupted=$work/interrupted.safetensors
"$trainer" "${common[@]}" --save "$interrupted" --log "$work/run.csv" --log-every 1 > "$work/sigint.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null && ! grep -q "^train,1,2," "$work/run.csv" 2>/dev/null; do
    sleep 0.01
done
kill -INT "$pid" 2>/dev/null
wait "$pid"
status=$?
[[ $status == 130 ]] || { cat "$work/sigint.log"; fail "after SIGINT the trainer exited with $status, not 130"; }
grep -q "^interrupted: checkpoint" "$work/sigint.log" || { cat "$work/sigint.log"; fail "no 'interrupted: checkpoint' message"; }
[[ $(meta "$interrupted" epoch) != 2 ]] || fail "the SIGINT checkpoint is from the end of the run, not from its middle"
echo "SIGINT: exit 130, checkpoint after epoch $(meta "$interrupted" epoch) and $(meta "$interrupted" step_in_epoch) steps"
"$trainer" "${device_flags[@]}" --data "$data_dir" --epochs 2 --train-limit "$train_limit" --test-limit 100 \
    --resume "$interrupted" --save "$interrupted" > "$work/resumed2.log" 2>&1 ||
    { cat "$work/resumed2.log"; fail "resuming after SIGINT failed"; }
[[ $(meta "$interrupted" data_crc32) == "$reference_crc" ]] ||
    fail "after SIGINT and resume, the weights differ from the uninterrupted run's"
seconds=$(meta "$interrupted" history_epoch_seconds)
[[ $seconds =~ ^[0-9.e+-]+,[0-9.e+-]+$ && ! $seconds =~ ^0, ]] ||
    fail "history_epoch_seconds '$seconds' should hold two real figures (epoch 1's from before the interruption)"
echo "PASS: SIGKILL and SIGINT mid-epoch, resumed, bit for bit the uninterrupted run (data_crc32 $resumed_crc, test accuracy $res_acc)"
