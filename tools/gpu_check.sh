#!/usr/bin/env bash
# gpu_check.sh — every check and measurement that needs an NVIDIA GPU, in one command, with every log in one
# folder. What CI cannot do (it has no GPU): run the `gpu`-labelled tests, compute-sanitizer over them, and the
# benchmarks whose figures go to docs/benchmarks.md.
#
#   bash tools/gpu_check.sh OUT_DIR [--steps build,test,sanitize,bench] [--build DIR] [--data DIR]
#
#   --steps     which steps, in this order (default: all four). A later step reuses an earlier run's build, so
#               the work can be split over several sessions of a time-limited machine.
#   --build     build folder (default: build-gpu-check)
#   --data      full-size data for the trainer's benchmark and its 2-epoch accuracy (default:
#               /usr/share/datasets/fashion-mnist; Debian: apt-get install dataset-fashion-mnist)
#   CMAKE_ARGS  (environment) extra arguments for the configure step, e.g. where OpenBLAS is
#   PYTHON      (environment) a Python with PyTorch built for CUDA, for the benchmark (default: python3)
#
# The steps:
#   build     configure (RelWithDebInfo) and build everything with nvcc; the GPU variants must exist;
#   test      ctest -L gpu: every GPU test must pass, and none may skip (a skip here means a broken setup);
#   sanitize  compute-sanitizer memcheck over every GPU test binary's cases, racecheck and synccheck over
#             those of chapters 04-07 (the kernels with shared memory and barriers), and memcheck over a short
#             run of the trainer with its CUDA Graph on and off (each run stopped after 10 minutes);
#   bench     chapter 04's bandwidth, chapter 05's SGEMM table against cuBLAS, chapter 07's trainer against
#             PyTorch on the same GPU (with and without the CUDA Graph) and its 2-epoch accuracy, chapter 08's
#             server against PyTorch serving the same checkpoint (serve_bench.py --device cuda); chapter 10's
#             augmentation and Adam inside the GPU step (mnist_train --augment ... on the bundled data).
#
# OUT_DIR/summary.txt gets one line per check (PASS, FAIL or SKIP, and its log); the exit status is 0 when no
# check failed, 1 otherwise, 77 when there is no GPU here.
set -u
usage() { sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 2; }
[[ $# -ge 1 && $1 != -* ]] || usage
out=$1
shift
steps=build,test,sanitize,bench
build="build-gpu-check"
data=/usr/share/datasets/fashion-mnist
while [[ $# -gt 0 ]]; do
    case $1 in
        --steps) steps=${2:?--steps needs a list}; shift 2 ;;
        --build) build=${2:?--build needs a folder}; shift 2 ;;
        --data) data=${2:?--data needs a folder}; shift 2 ;;
        *) usage ;;
    esac
done
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
jobs=$(nproc)

if ! nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
    echo "SKIP: no NVIDIA GPU on this machine (nvidia-smi -L lists none): nothing to check here"
    exit 77
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary=$out/summary.txt
failed=0
{ date -u +"%Y-%m-%dT%H:%M:%SZ"; nvidia-smi -L; git -C "$repo" log -1 --format="commit %H" 2>/dev/null; } > "$out/machine.txt"
nvidia-smi >> "$out/machine.txt" 2>&1

# record STATUS NAME LOG: one line of the summary (and on the terminal).
record() {
    printf '%-5s %-48s %s\n' "$1" "$2" "${3:+${3#"$out"/}}" | tee -a "$summary"
    [[ $1 == FAIL ]] && failed=1
    return 0
}
# check NAME LOG COMMAND...: run the command with its output in LOG; PASS when it exits 0.
check() {
    local name=$1 log=$2
    shift 2
    if "$@" > "$log" 2>&1; then record PASS "$name" "$log"; else record FAIL "$name" "$log"; fi
}
want() { [[ ,$steps, == *,$1,* ]]; }

if want build; then
    # shellcheck disable=SC2086  # CMAKE_ARGS is a list of arguments
    check "configure" "$out/configure.log" cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        ${CMAKE_ARGS:-}
    check "build" "$out/build.log" cmake --build "$build" -j "$jobs"
    if ! grep -q "programs run on the GPU" "$out/configure.log"; then
        record FAIL "configure found the GPU (nvcc and a device)" "$out/configure.log"
    fi
fi
[[ -d $build ]] || { record FAIL "a build in $build (run the build step first)" ""; exit 1; }

if want test; then
    log=$out/ctest_gpu.log
    if ctest --test-dir "$build" -L gpu -j "$jobs" --output-on-failure > "$log" 2>&1; then
        record PASS "ctest -L gpu" "$log"
    else
        record FAIL "ctest -L gpu" "$log"
    fi
    skipped=$(grep -c '\*\*\*Skipped' "$log")
    if [[ $skipped -gt 0 ]]; then
        record FAIL "no gpu test skipped ($skipped did)" "$log"
    fi
fi

if want sanitize; then
    if ! command -v compute-sanitizer > /dev/null; then
        record SKIP "compute-sanitizer (not on PATH)" ""
    else
        # The gpu tests that run a test binary (*_gpu), with their arguments, from ctest's own list.
        ctest --test-dir "$build" -L gpu --show-only=json-v1 > "$out/gpu_tests.json"
        "$python" - "$out/gpu_tests.json" > "$out/gpu_tests.txt" << 'EOF'
import json, shlex, sys
for test in json.load(open(sys.argv[1]))["tests"]:
    command = test.get("command", [])
    if command and command[0].endswith("_gpu"):
        print(test["name"], shlex.join(command))
EOF
        mkdir -p "$out/sanitizer"
        while read -r name command; do
            tools=(memcheck)
            [[ $name =~ ^ch0[4-7]\. ]] && tools+=(racecheck synccheck)
            for tool in "${tools[@]}"; do
                log=$out/sanitizer/$name.$tool.log
                # shellcheck disable=SC2086  # the test's command line, split as ctest lists it
                check "$tool $name" "$log" timeout 600 compute-sanitizer --tool "$tool" --error-exitcode 99 $command
            done
        done < "$out/gpu_tests.txt"
        for graph in on off; do
            log=$out/sanitizer/mnist_train.graph_$graph.memcheck.log
            check "memcheck mnist_train (CUDA Graph $graph)" "$log" \
                timeout 600 compute-sanitizer --tool memcheck --error-exitcode 99 "$build/bin/mnist_train" --device cuda \
                --data "$repo/data" --epochs 2 --train-limit 1000 --test-limit 500 --cuda-graph "$graph"
        done
    fi
fi

if want bench; then
    check "ch04 bandwidth" "$out/bandwidth.log" "$build/bin/bandwidth" --json "$out/bandwidth.json"
    check "ch05 sgemm_bench" "$out/sgemm_bench.log" "$build/bin/sgemm_bench" --json "$out/sgemm.json"
    if [[ -s $out/sgemm.json ]]; then
        check "ch05 table" "$out/sgemm_table.md" "$python" "$repo/chapters/05-sgemm/make_table.py" \
            "$out/sgemm.json" --date "$(date -u +%Y-%m-%d)" --machine "$(nvidia-smi -L | head -1)"
    fi
    if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
        record SKIP "ch07 mnist_bench ($python has no PyTorch with CUDA)" ""
    elif [[ ! -d $data ]]; then
        record SKIP "ch07 mnist_bench (no data folder $data)" ""
    else
        # Speed: 3 timed epochs after a warm-up one, 3 rounds. Accuracy: 2 epochs (1 warm-up + 1 timed), 3
        # rounds: the final accuracy is then that after 2 epochs, for both sides.
        check "ch07 mnist_bench, speed" "$out/mnist_bench_speed.log" "$python" \
            "$repo/chapters/07-mnist-gpu/bench/mnist_bench.py" --exe "$build/bin/mnist_train" --data "$data" \
            --epochs 3 --rounds 3 --json "$out/mnist_bench_speed.json"
        check "ch07 mnist_bench, 2-epoch accuracy" "$out/mnist_bench_accuracy.log" "$python" \
            "$repo/chapters/07-mnist-gpu/bench/mnist_bench.py" --exe "$build/bin/mnist_train" --data "$data" \
            --epochs 1 --rounds 3 --cuda-graph on --json "$out/mnist_bench_accuracy.json"
    fi
    check "ch07 mnist_train, bundled data, 4 epochs" "$out/mnist_train_bundled.log" "$build/bin/mnist_train" \
        --device cuda --data "$repo/data" --epochs 4 --seed 1 --summary-json "$out/mnist_train_bundled.json" \
        --save "$out/mnist.safetensors"
    # Chapter 10: what augmentation and Adam cost inside the GPU's training step (samples/s from each summary),
    # and the accuracy they buy on the bundled 10,000 digits, with chapter 07's run above as the baseline.
    for variant in "affine:--augment affine" "elastic:--augment elastic" "adam:--optimizer adam --lr 0.001" \
                   "affine_cosine15:--augment affine --lr-schedule cosine --epochs 15"; do
        name=${variant%%:*}
        read -r -a extra <<< "${variant#*:}"
        check "ch10 mnist_train --${variant#*:--}, bundled data" "$out/ch10_$name.log" "$build/bin/mnist_train" \
            --device cuda --data "$repo/data" --epochs 4 --seed 1 "${extra[@]}" --summary-json "$out/ch10_$name.json"
    done
    # Chapter 08: mnist_serve on the GPU under 8 clients, next to PyTorch serving the same checkpoint on the GPU.
    if [[ -x $build/bin/mnist_serve && -s $out/mnist.safetensors ]]; then
        baseline=()
        "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null \
            || baseline=(--no-pytorch)
        check "ch08 serve_bench" "$out/serve_bench.log" "$python" "$repo/chapters/08-serving/bench/serve_bench.py" \
            --server "$build/bin/mnist_serve" --device cuda --checkpoint "$out/mnist.safetensors" --requests 4000 \
            --rounds 3 "${baseline[@]}" --json "$out/serve_bench.json"
    fi
fi

echo "summary: $summary"
exit $failed
