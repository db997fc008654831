#!/usr/bin/env bash
# run_fuzz.sh — fuzz the course's file readers (npy, IDX, safetensors) for a bounded time; this is what CI runs.
#
#   tests/fuzz/run_fuzz.sh SECONDS [BUILD_DIR]
#
#   tests/fuzz/run_fuzz.sh 30                  # CI: the `fuzz` preset (build-fuzz/), 30 s per target
#   tests/fuzz/run_fuzz.sh 10 build-my-fuzz    # another build folder (configured here with clang, COURSE_FUZZ=ON)
#
# Configures and builds the libFuzzer targets fuzz_npy, fuzz_idx, fuzz_safetensors and fuzz_serve_request (chapter
# 08's request decoder; needs libjansson-dev and libpng-dev), then runs each for
# SECONDS seconds, starting from a temporary copy of its committed seed corpus (tests/fuzz/corpus/<reader>/): libFuzzer adds
# every input that reaches new code to the folder it is given, and those must never land in the repository.
# Exits 0 when no target found anything. Otherwise exits 1 and prints the path of each reproducer (crash-*,
# leak-*, timeout-*, oom-*); they are kept in BUILD_DIR/fuzz-artifacts/<reader>/ with the full log beside
# them. Replay one with:  BUILD_DIR/bin/fuzz_<reader> PATH
#
# Needs clang with libFuzzer (Debian: apt-get install clang libclang-rt-dev), CMake >= 3.25 and zlib.
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS [BUILD_DIR]   (SECONDS: how long to fuzz each target, a positive integer)" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
seconds=$1
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fuzz_dir=$repo/tests/fuzz
jobs=${CMAKE_BUILD_PARALLEL_LEVEL:-2}

if [[ $# -eq 2 ]]; then
    build=$(mkdir -p "$2" && cd "$2" && pwd)
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER="${CC:-clang}" -DCOURSE_FUZZ=ON
else
    build=$repo/build-fuzz
    (cd "$repo" && cmake --preset fuzz)
fi
cmake --build "$build" -j "$jobs" --target fuzz_npy fuzz_idx fuzz_safetensors
cmake --build "$build" -j "$jobs" --target fuzz_serve_request   # chapter 08's request decoder

# The temporary corpora live here and are removed however the script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/course-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Print each UBSan finding with a stack; ASan's defaults already do. libFuzzer handles leaks (LeakSanitizer).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

failed=0
for reader in npy idx safetensors serve_request; do
    exe=$build/bin/fuzz_$reader
    artifacts=$build/fuzz-artifacts/$reader
    log=$build/fuzz-artifacts/$reader.log
    rm -rf "$artifacts"                      # findings of an earlier run are not this run's
    mkdir -p "$artifacts" "$work/$reader"
    cp "$fuzz_dir/corpus/$reader/"* "$work/$reader/"

    echo "== fuzz_$reader: $seconds s from $(ls "$work/$reader" | wc -l) seeds (log: $log)"
    status=0
    "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 \
        -dict="$fuzz_dir/$reader.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        "$work/$reader" >"$log" 2>&1 || status=$?

    findings=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | sort)
    if [[ $status -eq 0 && -z $findings ]]; then
        # The final stats: how many inputs were run, how fast, how much code was reached.
        grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|Done )' \
            "$log" || tail -n 5 "$log"
        echo "== fuzz_$reader: no crash, leak or timeout"
    else
        failed=1
        tail -n 80 "$log"
        echo "== fuzz_$reader: FAILED (exit status $status)"
        if [[ -n $findings ]]; then
            while IFS= read -r finding; do
                echo "   reproducer: $finding   (replay: $exe $finding)"
            done <<<"$findings"
        else
            echo "   no reproducer was written; see the log: $log"
        fi
    fi
done

if [[ $failed -ne 0 ]]; then
    echo "run_fuzz.sh: a fuzz target failed; reproducers are listed above" >&2
    exit 1
fi
echo "run_fuzz.sh: every target ran $seconds s each without a finding"
