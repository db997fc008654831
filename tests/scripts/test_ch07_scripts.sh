#!/usr/bin/env bash
# test_ch07_scripts.sh — tests chapter 07's helper scripts: the checkpoint reader/writer (load_checkpoint.py),
# the log plotter (plot_log.py) and the full-MNIST fetch script (data/fetch_mnist.sh). Uses no network.
#
#   bash tests/scripts/test_ch07_scripts.sh REPO_ROOT [PYTHON]      (PYTHON: default /usr/bin/python3)
#
# What it checks, in a temporary folder:
#   1. load_checkpoint.py --write-test-checkpoint writes a checkpoint that load_checkpoint.py reads and
#      evaluates (an untrained network: accuracy near 10 %);
#   2. damaged copies are refused (exit status != 0, a message naming the file): too short, truncated data,
#      header length too big, bad JSON, a flipped data byte (CRC), fc1 with the wrong shape, wrong dtype,
#      overlapping tensors, a missing tensor, another format;
#   3. plot_log.py draws a small log holding a duplicated step (as a resumed run leaves) to a non-empty PNG,
#      and refuses a bad header and a non-numeric field, naming the line;
#   4. fetch_mnist.sh against local fake mirrors (file:// URLs): a correct file is accepted and renamed into
#      place; a file with the wrong SHA-256 is refused and no file with its final name is left; no mirror
#      reachable gives the offline message and a non-zero exit status.
# Exit status: 0 all passed, 1 something failed, 77 skipped (PYTHON lacks torch, numpy or matplotlib).
set -uo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: bash tests/scripts/test_ch07_scripts.sh REPO_ROOT [PYTHON]" >&2
    exit 1
fi
ROOT=$(cd "$1" && pwd -P) || { echo "test_ch07_scripts.sh: no folder $1" >&2; exit 1; }
PYTHON=${2:-/usr/bin/python3}
CHAPTER="$ROOT/chapters/07-mnist-gpu"
LOADER="$CHAPTER/load_checkpoint.py"
PLOTTER="$CHAPTER/plot_log.py"
FETCH="$ROOT/data/fetch_mnist.sh"

if ! "$PYTHON" -c "import torch, numpy, matplotlib" 2>/dev/null; then
    echo "SKIP: $PYTHON cannot import torch, numpy and matplotlib (Debian: apt-get install python3-torch" \
         "python3-numpy python3-matplotlib)"
    exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_ch07_scripts.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); printf '  ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$*"; }

# run NAME COMMAND...: runs a command, its stdout+stderr into $WORK/NAME.out; sets $status.
run() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>&1
    status=$?
}

show() {     # the output of a failed check, indented
    sed 's/^/        | /' "$WORK/$1.out" | tail -n 15
}

# expect_refused NAME FILE PATTERN COMMAND...: COMMAND must exit != 0 and print FILE's path and PATTERN.
expect_refused() {
    local name=$1 file=$2 pattern=$3
    shift 3
    run "$name" "$@"
    if [ "$status" -eq 0 ]; then
        fail "$name: exit status 0, expected a refusal"
        show "$name"
    elif [ "$status" -ge 124 ]; then
        fail "$name: exit status $status (a crash or a signal, not a clean refusal)"
        show "$name"
    elif ! grep -qF -- "$file" "$WORK/$name.out"; then
        fail "$name: refused (status $status) but the message does not name $file"
        show "$name"
    elif ! grep -qiE -- "$pattern" "$WORK/$name.out"; then
        fail "$name: refused (status $status) but the message does not match /$pattern/"
        show "$name"
    else
        pass "$name: refused: $(grep -iE -- "$pattern" "$WORK/$name.out" | head -n 1 | cut -c1-110)"
    fi
}

# ---- 1. write a checkpoint and read it back -------------------------------------------------------------------
echo "load_checkpoint.py"
GOOD="$WORK/init.safetensors"
run write "$PYTHON" "$LOADER" --write-test-checkpoint "$GOOD" --padding 0 --seed 3
if [ "$status" -eq 0 ] && [ -s "$GOOD" ]; then
    pass "--write-test-checkpoint wrote $(stat -c %s "$GOOD") bytes"
else
    fail "--write-test-checkpoint (status $status)"
    show write
fi
if ls "$WORK"/*.tmp >/dev/null 2>&1; then fail "a temporary file was left beside the checkpoint"; fi

run read_back "$PYTHON" "$LOADER" "$GOOD"
accuracy=$(sed -n 's/^accuracy *\([0-9.]*\) %.*/\1/p' "$WORK/read_back.out")
if [ "$status" -ne 0 ] || [ -z "$accuracy" ]; then
    fail "reading the written checkpoint (status $status, accuracy '${accuracy}')"
    show read_back
elif awk -v a="$accuracy" 'BEGIN { exit !(a >= 2 && a <= 25) }'; then
    pass "read it back and evaluated it: accuracy $accuracy % (untrained: near 10 %)"
else
    fail "untrained network's accuracy is $accuracy %, expected near 10 %"
    show read_back
fi

run padding1 "$PYTHON" "$LOADER" --write-test-checkpoint "$WORK/pad1.safetensors" --padding 1 --seed 3
if [ "$status" -eq 0 ] && grep -q "fc1_inputs 12544" "$WORK/padding1.out"; then
    pass "--padding 1 writes fc1 with 12544 inputs"
else
    fail "--write-test-checkpoint --padding 1 (status $status)"
    show padding1
fi

# ---- 2. damaged checkpoints -----------------------------------------------------------------------------------
# edit_header IN OUT MODE: rewrites the JSON header of a checkpoint (re-padded; the data section is kept).
cat >"$WORK/edit_header.py" <<'EOF'
import json, struct, sys
src, dst, mode = sys.argv[1:4]
blob = open(src, "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
header, data = json.loads(blob[8:8 + n]), blob[8 + n:]
if mode == "fc1_shape":                      # fc1 as padding 1 would have it, in a padding-0 checkpoint
    header["fc1.weight"]["shape"] = [128, 12544]
elif mode == "dtype":
    header["conv1.bias"]["dtype"] = "F16"
elif mode == "overlap":                      # conv1.bias starts 4 bytes inside conv1.weight
    begin, end = header["conv1.bias"]["data_offsets"]
    header["conv1.bias"]["data_offsets"] = [begin - 4, end - 4]
elif mode == "missing":
    del header["momentum_buffer.fc2.bias"]
elif mode == "format":
    header["__metadata__"]["format"] = "some-other-net"
text = json.dumps(header).encode()
text += b" " * (-(8 + len(text)) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + data)
EOF

damaged() {   # damaged NAME: the path of a fresh copy of the good checkpoint for NAME
    cp -- "$GOOD" "$WORK/$1.safetensors"
    echo "$WORK/$1.safetensors"
}

if [ -s "$GOOD" ]; then
    f=$(damaged too_short); truncate -s 5 "$f"
    expect_refused too_short "$f" "too short" "$PYTHON" "$LOADER" "$f"

    f=$(damaged truncated_header); truncate -s 1000 "$f"
    expect_refused truncated_header "$f" "header length" "$PYTHON" "$LOADER" "$f"

    f=$(damaged truncated_data); truncate -s -100 "$f"
    expect_refused truncated_data "$f" "out of range" "$PYTHON" "$LOADER" "$f"

    f=$(damaged header_length_too_big)
    printf '\377\377\377\377\377\377\000\000' | dd of="$f" bs=1 seek=0 conv=notrunc status=none
    expect_refused header_length_too_big "$f" "header length" "$PYTHON" "$LOADER" "$f"

    f=$(damaged bad_json)
    printf 'X' | dd of="$f" bs=1 seek=8 conv=notrunc status=none      # the header's opening brace
    expect_refused bad_json "$f" "JSON" "$PYTHON" "$LOADER" "$f"

    f=$(damaged flipped_byte)
    size=$(stat -c %s "$f")
    byte=$(od -An -tu1 -j $((size - 4321)) -N1 "$f" | tr -d ' ')
    printf '%b' "\\$(printf '%03o' $(((byte + 1) % 256)))" | dd of="$f" bs=1 seek=$((size - 4321)) conv=notrunc status=none
    expect_refused flipped_byte "$f" "crc32 mismatch" "$PYTHON" "$LOADER" "$f"

    for mode in fc1_shape dtype overlap missing format; do
        case $mode in
            fc1_shape) pattern="fc1.weight.*shape" ;;
            dtype) pattern="dtype" ;;
            overlap) pattern="overlap" ;;
            missing) pattern="missing tensors" ;;
            format) pattern="format" ;;
        esac
        f="$WORK/$mode.safetensors"
        if "$PYTHON" "$WORK/edit_header.py" "$GOOD" "$f" "$mode"; then
            expect_refused "$mode" "$f" "$pattern" "$PYTHON" "$LOADER" "$f"
        else
            fail "$mode: could not make the damaged copy"
        fi
    done

    expect_refused no_such_file "$WORK/none.safetensors" "cannot read" "$PYTHON" "$LOADER" "$WORK/none.safetensors"
    expect_refused check_without_accuracy "$GOOD" "no test_accuracy" "$PYTHON" "$LOADER" "$GOOD" --check
else
    fail "no checkpoint to damage (the writer failed)"
fi

# ---- 3. plot_log.py -------------------------------------------------------------------------------------------
echo "plot_log.py"
LOG="$WORK/train.csv"
cat >"$LOG" <<'EOF'
kind,epoch,step,samples,train_loss,test_loss,test_accuracy,seconds
train,1,50,3200,1.21,,,0.8
train,1,100,6400,0.62,,,1.6
test,1,157,10000,0.85,0.31,0.9102,2.5
train,2,200,12800,0.45,,,3.2
train,2,200,12800,0.40,,,3.3
train,2,250,16000,0.35,,,4.0
test,2,314,20000,0.37,0.21,0.9391,5.0
EOF
run plot "$PYTHON" "$PLOTTER" "$LOG"
if [ "$status" -eq 0 ] && [ -s "$WORK/train.png" ] && [ "$(head -c 4 "$WORK/train.png" | od -An -c | tr -d ' ')" = "211PNG" ]; then
    pass "plotted a log with a duplicated step: train.png, $(stat -c %s "$WORK/train.png") bytes"
else
    fail "plot_log.py $LOG (status $status; train.png missing, empty or not a PNG)"
    show plot
fi
if grep -q "6 rows" "$WORK/plot.out"; then
    pass "the duplicated step was kept once (6 rows of 7)"
else
    fail "the duplicated step: expected '6 rows' in the summary"
    show plot
fi
run plot_o "$PYTHON" "$PLOTTER" "$LOG" -o "$WORK/other.png"
if [ "$status" -eq 0 ] && [ -s "$WORK/other.png" ]; then pass "-o other.png"; else fail "-o other.png"; show plot_o; fi

printf 'kind,epoch,step\ntrain,1,2\n' >"$WORK/bad_header.csv"
expect_refused plot_bad_header "$WORK/bad_header.csv" "wrong header" "$PYTHON" "$PLOTTER" "$WORK/bad_header.csv"
sed '5s/0.45/zero/' "$LOG" >"$WORK/bad_number.csv"
expect_refused plot_non_numeric "$WORK/bad_number.csv:5" "not a number" "$PYTHON" "$PLOTTER" "$WORK/bad_number.csv"
expect_refused plot_missing_file "$WORK/absent.csv" "no such file" "$PYTHON" "$PLOTTER" "$WORK/absent.csv"

# ---- 4. fetch_mnist.sh with fake mirrors ----------------------------------------------------------------------
echo "fetch_mnist.sh"
# A copy of the script in a folder with no bundled data beside it, so that the t10k files must come from the
# mirror; the repository's data/ folder is the mirror: its t10k files are the official ones (right hash), its
# train files are the 10,000-digit subset (wrong hash for full MNIST).
mkdir -p "$WORK/fetch/script" "$WORK/mirror"
cp -- "$FETCH" "$WORK/fetch/script/fetch_mnist.sh"
OUT="$WORK/fetch/out"
run fetch_mixed env MNIST_MIRRORS="file:///nonexistent-mirror/ file://$ROOT/data/" \
    bash "$WORK/fetch/script/fetch_mnist.sh" --out "$OUT"
if [ -f "$OUT/t10k-images-idx3-ubyte.gz" ] && [ -f "$OUT/t10k-labels-idx1-ubyte.gz" ] &&
   cmp -s "$OUT/t10k-labels-idx1-ubyte.gz" "$ROOT/data/t10k-labels-idx1-ubyte.gz"; then
    pass "files with the right SHA-256 were fetched from the second mirror and renamed into place"
else
    fail "the t10k files with the right SHA-256 are not in $OUT"
    show fetch_mixed
fi
if [ "$status" -eq 1 ] && grep -q "train-images-idx3-ubyte.gz.*wrong SHA-256" "$WORK/fetch_mixed.out" &&
   grep -q "expected 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" "$WORK/fetch_mixed.out"; then
    pass "a file with the wrong SHA-256 was refused (status 1, names the file and the expected hash)"
else
    fail "wrong SHA-256: expected status 1 and a message naming the file and the hashes (status $status)"
    show fetch_mixed
fi
if [ ! -e "$OUT/train-images-idx3-ubyte.gz" ] && [ ! -e "$OUT/train-labels-idx1-ubyte.gz" ] &&
   [ -z "$(find "$OUT" -name '.*part*')" ]; then
    pass "no file with a final name (and no temporary file) was left for the refused downloads"
else
    fail "a refused download left a file behind: $(find "$OUT" -mindepth 1 -printf '%f ')"
fi

# Garbage in a fake mirror, with the real script (its bundled t10k files are copied, the train files are not).
head -c 5000 /dev/urandom >"$WORK/mirror/train-images-idx3-ubyte.gz"
run fetch_garbage env MNIST_MIRRORS="file://$WORK/mirror/" bash "$FETCH" --out "$WORK/fetch/out2"
if [ "$status" -ne 0 ] && grep -q "wrong SHA-256" "$WORK/fetch_garbage.out" &&
   [ ! -e "$WORK/fetch/out2/train-images-idx3-ubyte.gz" ]; then
    pass "a garbage file on the mirror was refused (status $status), nothing left under its final name"
else
    fail "a garbage file on the mirror: status $status"
    show fetch_garbage
fi

# Nothing reachable: a closed local port and a missing folder (never the real mirrors: tests use no network).
run fetch_offline env MNIST_MIRRORS="http://127.0.0.1:9/ file:///nonexistent-mirror/" \
    bash "$WORK/fetch/script/fetch_mnist.sh" --out "$WORK/fetch/out3"
if [ "$status" -ne 0 ] && grep -q "offline" "$WORK/fetch_offline.out" &&
   grep -q "dataset-fashion-mnist" "$WORK/fetch_offline.out" && [ -z "$(ls -A "$WORK/fetch/out3")" ]; then
    pass "no mirror reachable: offline message, status $status, folder left empty"
else
    fail "no mirror reachable: expected the offline message and a non-zero status (status $status)"
    show fetch_offline
fi

run fetch_usage bash "$FETCH" --no-such-option
if [ "$status" -eq 2 ]; then pass "an unknown option is a usage error (status 2)"; else fail "unknown option: status $status"; fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
