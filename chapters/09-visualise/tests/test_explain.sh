#!/usr/bin/env bash
# test_explain.sh — chapter 09's end-to-end test of mnist_explain (ctest -R ch09.explain).
#
#   bash test_explain.sh MNIST_EXPLAIN MAKE_CHECKPOINT DATA_DIR WORK_DIR
#
# 1. A random network (make_checkpoint, narrow and fast) explained on the data's test set: exit 0, index.html
#    names every file it shows (img src), each exists and starts with the PNG signature, and every PNG written is
#    named in index.html.
# 2. Checkpoints of other networks are refused with a message naming the file, and nothing is written: a
#    perceptron's weights (not the course's CNN), a CNN with 5 outputs, a CNN for 20x20 images.
set -euo pipefail
explain=$1 make_checkpoint=$2 data=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL $*"; exit 1; }

"$make_checkpoint" --out "$work/random.safetensors" --conv1 4 --conv2 6 --hidden 16 --seed 3
"$explain" --checkpoint "$work/random.safetensors" --data "$data" --out "$work/out" > "$work/log.txt" 2>&1 ||
    { cat "$work/log.txt"; fail "mnist_explain exited with status $?"; }
html="$work/out/index.html"
[ -s "$html" ] || fail "no index.html"
mapfile -t shown < <(grep -o 'src="[^"]*"' "$html" | sed 's/^src="//; s/"$//' | sort -u)
# A set of the names shown, looked up without a pipe: `printf | grep -q` under pipefail fails at random when grep
# exits on its first match and printf is killed by SIGPIPE.
declare -A is_shown=()
for name in "${shown[@]}"; do is_shown[$name]=1; done
[ ${#shown[@]} -ge 20 ] || fail "index.html shows only ${#shown[@]} files"
for name in "${shown[@]}"; do
    [ -f "$work/out/$name" ] || fail "index.html shows $name, which does not exist"
    [ "$(head -c 8 "$work/out/$name" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
        fail "$name is not a PNG file"
done
for path in "$work"/out/*.png; do
    name=$(basename "$path")
    [ -n "${is_shown[$name]:-}" ] || fail "$name was written but index.html does not show it"
done
for name in filters.png digits.png saliency.png gradcam.png mistakes.png confusion.png embedding.png \
            conv1_mean.png conv2_mean.png conv1_maps_7.png conv2_maps_7.png; do
    [ -n "${is_shown[$name]:-}" ] || fail "index.html does not show $name"
done
others=$(cd "$work/out" && ls -A | grep -v -e '\.png$' -e '^index\.html$' || true)
[ -z "$others" ] || fail "files left in the output folder besides the PNGs and index.html: $others"
echo "ok index.html shows ${#shown[@]} PNG files, all present, and nothing else is left in the folder"

refuse() { # refuse CHECKPOINT EXPECTED_TEXT
    local out="$work/refused"
    rm -rf "$out"
    if "$explain" --checkpoint "$1" --data "$data" --out "$out" > "$work/refused.txt" 2>&1; then
        fail "$1 was accepted"
    fi
    grep -qF "$1" "$work/refused.txt" || { cat "$work/refused.txt"; fail "the message does not name $1"; }
    grep -qF "$2" "$work/refused.txt" || { cat "$work/refused.txt"; fail "the message does not say '$2'"; }
    [ ! -e "$out" ] || fail "a refused checkpoint still created $out"
    echo "ok refused: $(cat "$work/refused.txt")"
}
"$make_checkpoint" --out "$work/mlp.safetensors" --mlp
refuse "$work/mlp.safetensors" "not a checkpoint of this course's CNN"
"$make_checkpoint" --out "$work/five.safetensors" --conv1 2 --conv2 3 --hidden 4 --classes 5
refuse "$work/five.safetensors" "has 5 outputs"
"$make_checkpoint" --out "$work/small.safetensors" --conv1 2 --conv2 3 --hidden 4 --image-size 20
refuse "$work/small.safetensors" "takes 20x20 images"
rm -rf "$work"
