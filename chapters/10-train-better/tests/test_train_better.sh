#!/usr/bin/env bash
# test_train_better.sh — chapter 10's flags of mnist_train, end to end (ctest -R ch10.train).
#
#   bash test_train_better.sh MNIST_TRAIN CHECKPOINT_INFO DATA_DIR CASE
#
# CASE:
#   sgd_path     chapter 10's step with SGD at a constant rate (forced on with --lr-schedule step --step-epochs
#                1000, which never steps) computes chapter 07's bits exactly, on the CPU path and the CUDA path;
#   cpu_cuda     with affine augmentation, Adam and a one-cycle schedule the CPU path and the CUDA path (the
#                hooks inside the training step: augmentation kernel, fused Adam kernel, the device table of
#                learning rates) train the same run: the same losses to 4 digits and the same test accuracy;
#   transfer     --init-from takes conv1 and conv2 of an Adam run (any optimiser's checkpoint serves) and leaves
#                fc1 and fc2 fresh; --freeze conv1,conv2 keeps the convolutions bit for bit through training while
#                fc1 changes; --layer-lr conv1=0.1 changes conv1, by less than the unscaled run does;
#   refuse       wrong names and mismatched resumes are refused with exit 1 and a message naming the flag.
set -euo pipefail
train=$1 info=$2 data=$3 case=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/course-ch10-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL $*"; exit 1; }
crc() { "$info" --crc "$2" "$1"; }
small=(--data "$data" --train-limit 96 --test-limit 64 --batch 32 --seed 5)

case $case in
sgd_path)
    for device in cpu cuda; do
        "$train" "${small[@]}" --device "$device" --epochs 1 --save "$work/ch07.safetensors" > "$work/a.log" 2>&1 ||
            { cat "$work/a.log"; fail "chapter 07's run failed"; }
        "$train" "${small[@]}" --device "$device" --epochs 1 --lr-schedule step --step-epochs 1000 \
            --save "$work/ch10.safetensors" > "$work/b.log" 2>&1 || { cat "$work/b.log"; fail "chapter 10's run failed"; }
        grep -q "^chapter 10: " "$work/b.log" || fail "the forced run did not take chapter 10's step"
        for tensor in conv1.weight fc1.weight fc2.bias; do
            [[ $(crc "$work/ch07.safetensors" $tensor) == $(crc "$work/ch10.safetensors" $tensor) ]] ||
                fail "$device: $tensor differs between chapter 07's SGD and chapter 10's SGD at a constant rate"
        done
        echo "ok $device: chapter 10's SGD at a constant rate computes chapter 07's weights bit for bit"
    done
    ;;
cpu_cuda)
    flags=("${small[@]}" --epochs 2 --augment affine --optimizer adam --lr 0.002 --lr-schedule onecycle)
    for device in cpu cuda; do
        "$train" "${flags[@]}" --device "$device" --summary-json "$work/$device.json" > "$work/$device.log" 2>&1 ||
            { cat "$work/$device.log"; fail "the $device run failed"; }
    done
    mapfile -t a < <(grep -o '"epoch_train_loss": *\[[^]]*\]' "$work/cpu.json" | sed 's/.*\[//; s/\]//' | tr ',' '\n')
    mapfile -t b < <(grep -o '"epoch_train_loss": *\[[^]]*\]' "$work/cuda.json" | sed 's/.*\[//; s/\]//' | tr ',' '\n')
    [[ ${#a[@]} == 2 && ${#b[@]} == 2 ]] || fail "expected 2 epoch losses, got '${a[*]}' and '${b[*]}'"
    for e in 0 1; do
        # Float rounding differs (OpenBLAS on the CPU, the simulated cuBLAS): 1e-4 relative is far below what a
        # wrong learning rate, a wrong step count or another augmentation would change.
        awk -v x="${a[$e]}" -v y="${b[$e]}" 'BEGIN { d = x - y; if (d < 0) d = -d; exit !(x == x && d <= 1e-4 * (x < 0 ? -x : x)) }' ||
            fail "epoch $((e + 1)) train loss: cpu ${a[$e]}, cuda ${b[$e]}"
    done
    acc_cpu=$(grep -o '"test_accuracy": *[0-9.e+-]*' "$work/cpu.json") acc_cuda=$(grep -o '"test_accuracy": *[0-9.e+-]*' "$work/cuda.json")
    [[ $acc_cpu == "$acc_cuda" ]] || fail "test accuracy: cpu $acc_cpu, cuda $acc_cuda"
    echo "ok the CPU and CUDA paths train the same run: losses ${a[*]} / ${b[*]}, $acc_cpu"
    ;;
transfer)
    "$train" "${small[@]}" --device cpu --epochs 1 --optimizer adam --lr 0.001 --save "$work/source.safetensors" \
        > "$work/source.log" 2>&1 || { cat "$work/source.log"; fail "the source run failed"; }
    "$train" "${small[@]}" --device cpu --epochs 1 --seed 9 --save "$work/scratch.safetensors" > "$work/scratch.log" 2>&1 ||
        { cat "$work/scratch.log"; fail "the scratch run failed"; }
    # --epochs 0 would train nothing; one step on 32 images with lr 0 shows the initial weights.
    "$train" "${small[@]}" --device cpu --epochs 1 --seed 9 --train-limit 32 --lr 0 --init-from "$work/source.safetensors" \
        --save "$work/init.safetensors" > "$work/init.log" 2>&1 || { cat "$work/init.log"; fail "--init-from failed"; }
    grep -q "^init: conv1 and conv2 from" "$work/init.log" || fail "--init-from did not say what it took"
    for tensor in conv1.weight conv1.bias conv2.weight conv2.bias; do
        [[ $(crc "$work/init.safetensors" $tensor) == $(crc "$work/source.safetensors" $tensor) ]] ||
            fail "--init-from did not copy $tensor"
    done
    "$train" "${small[@]}" --device cpu --epochs 1 --seed 9 --train-limit 32 --lr 0 --save "$work/fresh.safetensors" \
        > /dev/null 2>&1 || fail "the fresh run failed"
    [[ $(crc "$work/init.safetensors" fc1.weight) == $(crc "$work/fresh.safetensors" fc1.weight) ]] ||
        fail "--init-from changed fc1 (it should start fresh, as without --init-from)"
    for device in cpu cuda; do
        "$train" "${small[@]}" --device "$device" --epochs 1 --seed 9 --init-from "$work/source.safetensors" \
            --freeze conv1,conv2 --save "$work/frozen.safetensors" > "$work/frozen.log" 2>&1 ||
            { cat "$work/frozen.log"; fail "$device: --freeze failed"; }
        for tensor in conv1.weight conv1.bias conv2.weight conv2.bias; do
            [[ $(crc "$work/frozen.safetensors" $tensor) == $(crc "$work/source.safetensors" $tensor) ]] ||
                fail "$device: --freeze conv1,conv2 changed $tensor"
        done
        [[ $(crc "$work/frozen.safetensors" fc1.weight) != $(crc "$work/fresh.safetensors" fc1.weight) ]] ||
            fail "$device: fc1 did not learn"
        echo "ok $device: --init-from + --freeze conv1,conv2: the convolutions are the source's bit for bit, fc1 learned"
    done
    "$train" "${small[@]}" --device cpu --epochs 1 --seed 9 --layer-lr conv1=0.1 --save "$work/slow.safetensors" \
        > "$work/slow.log" 2>&1 || { cat "$work/slow.log"; fail "--layer-lr failed"; }
    [[ $(crc "$work/slow.safetensors" conv1.weight) != $(crc "$work/fresh.safetensors" conv1.weight) ]] ||
        fail "--layer-lr conv1=0.1 did not change conv1"
    [[ $(crc "$work/slow.safetensors" conv1.weight) != $(crc "$work/scratch.safetensors" conv1.weight) ]] ||
        fail "--layer-lr conv1=0.1 changed conv1 exactly as the unscaled run did"
    echo "ok --layer-lr conv1=0.1 trains conv1, differently from the unscaled run"
    ;;
refuse)
    expect() { # expect TEXT ARGS...: exit 1 and TEXT in the message
        local text=$1
        shift
        local status=0
        "$train" "$@" > "$work/refused.log" 2>&1 || status=$?
        [[ $status == 1 ]] || { cat "$work/refused.log"; fail "'$*' exited with $status, not 1"; }
        grep -qF -- "$text" "$work/refused.log" || { cat "$work/refused.log"; fail "'$*': the message does not say '$text'"; }
        echo "ok refused: $(grep -m1 error "$work/refused.log")"
    }
    expect "--augment" "${small[@]}" --device cpu --augment mirror
    expect "--optimizer" "${small[@]}" --device cpu --optimizer rmsprop
    expect "--lr-schedule" "${small[@]}" --device cpu --lr-schedule linear
    expect "not a layer" "${small[@]}" --device cpu --freeze conv3
    expect "LAYER=SCALE" "${small[@]}" --device cpu --layer-lr conv1
    expect "--init-from" "${small[@]}" --device cpu --init-from "$work/no-such.safetensors"
    "$train" "${small[@]}" --device cpu --epochs 1 --optimizer adam --augment affine --save "$work/adam.safetensors" \
        > /dev/null 2>&1 || fail "the adam run failed"
    expect "give one of them" "${small[@]}" --device cpu --epochs 2 --resume "$work/adam.safetensors" --init-from "$work/adam.safetensors"
    expect "--optimizer adam" "${small[@]}" --device cpu --epochs 2 --augment affine --resume "$work/adam.safetensors"
    expect "--augment" "${small[@]}" --device cpu --epochs 2 --optimizer adam --resume "$work/adam.safetensors"
    expect "--dropout1" "${small[@]}" --device cpu --epochs 2 --optimizer adam --augment affine --dropout1 0.3 \
        --resume "$work/adam.safetensors"
    "$train" "${small[@]}" --device cpu --epochs 2 --optimizer adam --augment affine --resume "$work/adam.safetensors" \
        > "$work/ok.log" 2>&1 || { cat "$work/ok.log"; fail "resuming with the same settings failed"; }
    echo "ok the same settings resume"
    # A cosine schedule's rate depends on the run's length: a resume with another --epochs is refused.
    "$train" "${small[@]}" --device cpu --epochs 1 --lr-schedule cosine --save "$work/cosine.safetensors" \
        > /dev/null 2>&1 || fail "the cosine run failed"
    expect "--epochs" "${small[@]}" --device cpu --epochs 2 --lr-schedule cosine --resume "$work/cosine.safetensors"
    ;;
*)
    fail "unknown case '$case'"
    ;;
esac
