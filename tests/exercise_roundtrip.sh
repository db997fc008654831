#!/usr/bin/env bash
# exercise_roundtrip.sh — proves, for every exercise, that the solutions pass and that each stub is noticed.
#
#   bash tests/exercise_roundtrip.sh                 every chapter that has exercises
#   bash tests/exercise_roundtrip.sh --chapter 01    only chapter 01 (repeatable)
#   bash tests/exercise_roundtrip.sh --full-build    build every target, not only those the chapter's tests run
#   bash tests/exercise_roundtrip.sh --skip-solutions  leave out step 1 (CI: its README step has just run it)
#
# CI runs it (.ci/run). Three steps, each chapter's tests run with `ctest -L chNN` (simulated tests in the
# forward thread order only: see ORDERS_SKIPPED below):
#   1. the solutions: the course built as it is (with -DCOURSE_WERROR=ON) passes every test of the chapter;
#   2. one stub at a time: for EACH exercise ID, a student edition with only that stub (tools/course exercises
#      --only ID), built with -DCOURSE_WERROR=ON, must fail at least one test, and the failing output must say
#      "<ID> is not implemented yet". A stub that no test notices is a hole in the tests, and fails this script.
#      One student folder and one build folder are reused, so each round recompiles one file;
#   3. the whole chapter stubbed at once: it builds, its tests fail, nothing crashed or hung; the IDs that the
#      output does not name (tests stopped earlier by another stub) are listed.
# Ends with "N passed, M failed"; the exit status is 1 when anything failed. Each step's header says how many
# seconds the script had run when it began.
#
# --skip-solutions leaves out step 1. CI uses it: its README step has just built the same tree (and failed on
# any compiler warning) and passed every test, and step 2 compiles every solution but one with -Werror anyway.
#
# To stay fast, it builds only the targets whose programs the chapter's tests run (read from ctest's test
# commands; everything when that finds none, or with --full-build). Work folders: build-roundtrip/ at the
# root (ignored by git), or $ROUNDTRIP_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
COURSE="$ROOT/tools/course"
WORK=${ROUNDTRIP_DIR:-$ROOT/build-roundtrip}
JOBS=${ROUNDTRIP_JOBS:-2}
# The simulated CUDA tests run in three thread orders (names ending .fwd, .rev, .rand). The README's test
# command runs all three on the solutions; here the forward order is enough (a stub fails in every order, and
# -Werror does not depend on it), which saves two thirds of the simulated tests' time. Chapter 10's end-to-end
# trainer tests (ch10.train.*: minutes of whole training runs) are left out too: its exercises' own tests catch
# every stub, and the README's test command runs the trainer tests on the solutions.
ORDERS_SKIPPED='\.(rev|rand)$|^ch10\.train\.'
full_build=0
skip_solutions=0

chapters=()
while [ $# -gt 0 ]; do
    case $1 in
        --chapter)
            [ $# -ge 2 ] || { echo "exercise_roundtrip.sh: --chapter needs a chapter number" >&2; exit 2; }
            n=${2#ch}
            n=${n%%-*}
            [ ${#n} -eq 1 ] && n="0$n"
            chapters+=("$n")
            shift 2 ;;
        --full-build)
            full_build=1
            shift ;;
        --skip-solutions)
            skip_solutions=1
            shift ;;
        -h | --help)
            sed -n '2,26p' "$0"
            exit 0 ;;
        *)
            echo "exercise_roundtrip.sh: unknown argument '$1' (usage: exercise_roundtrip.sh [--chapter NN]... [--full-build] [--skip-solutions])" >&2
            exit 2 ;;
    esac
done

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); printf '  ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); printf '  FAIL  %s\n' "$*"; }

# The exercises, in the order of the sources.
"$COURSE" exercises --check >/dev/null
mapfile -t all_ids < <(NO_COLOR=1 "$COURSE" exercises --list | awk '$1 ~ /^ch[0-9][0-9]\./ && $NF != "[stub]" { print $1 }')
if [ ${#chapters[@]} -eq 0 ]; then
    mapfile -t chapters < <(printf '%s\n' "${all_ids[@]}" | cut -c3-4 | uniq)
fi
[ ${#chapters[@]} -gt 0 ] || { echo "exercise_roundtrip.sh: no exercises found"; exit 1; }

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
started=$(date +%s)
at() { printf '[at %d s]' $(($(date +%s) - started)); }

# Lines of ctest output that mean a test crashed or hung instead of failing cleanly.
CRASH_PATTERN='Subprocess aborted|SEGFAULT|Exception:|Timeout|Child aborted|Subprocess killed|Illegal|Bus error'

# build_for BUILD_DIR LOG NN... : builds what the tests of those chapters run (their programs in bin/), or
# everything with --full-build or when no program is found.
build_for() {
    local build=$1 log=$2
    shift 2
    local targets=() nn
    if [ $full_build -eq 0 ]; then
        for nn in "$@"; do
            mapfile -t -O "${#targets[@]}" targets < <(ctest --test-dir "$build" -L "^ch$nn\$" --show-only -V 2>/dev/null |
                grep -o "$build/bin/[A-Za-z0-9_.+-]*" | sed 's|.*/||' || true)
        done
    fi
    if [ ${#targets[@]} -gt 0 ]; then
        mapfile -t targets < <(printf '%s\n' "${targets[@]}" | sort -u)
        cmake --build "$build" -j "$JOBS" --target "${targets[@]}" >"$log" 2>&1 && return 0
        # A program that is not a target of that name: build everything instead.
        grep -q "No rule to make target\|unknown target" "$log" || return 1
    fi
    cmake --build "$build" -j "$JOBS" >"$log" 2>&1
}

# --- 1. The solutions pass --------------------------------------------------------------------------------
solutions_pass() {
    echo "== 1. the solutions pass (build: $WORK/solution, -DCOURSE_WERROR=ON) $(at)"
    if ! cmake -S "$ROOT" -B "$WORK/solution" -DCOURSE_WERROR=ON >"$WORK/solution-configure.log" 2>&1; then
        tail -n 30 "$WORK/solution-configure.log"
        fail "the course does not configure (log: $WORK/solution-configure.log)"
    elif ! build_for "$WORK/solution" "$WORK/solution-build.log" "${chapters[@]}"; then
        grep -E 'error|warning' "$WORK/solution-build.log" | head -n 30 || true
        fail "the course itself does not build with -Werror (log: $WORK/solution-build.log)"
    else
        for nn in "${chapters[@]}"; do
            log="$WORK/solution-ch$nn.log"
            if ctest --test-dir "$WORK/solution" -L "^ch$nn\$" -E "$ORDERS_SKIPPED" --no-tests=error --output-on-failure -j "$JOBS" >"$log" 2>&1; then
                pass "ch$nn solutions: $(grep -E '^[0-9]+% tests passed' "$log" || echo 'tests pass')"
            else
                grep -E '^[0-9]+% tests passed|^No tests were found' "$log" || true
                fail "ch$nn solutions do not pass their own tests (log: $log)"
            fi
        done
    fi
}

if [ $skip_solutions -eq 1 ]; then
    echo "== 1. the solutions pass: skipped (--skip-solutions)"
else
    solutions_pass
fi

student="$WORK/student"
student_build="$WORK/student-build"

# generate_and_build NN ARGS... : (re)write the student edition with `tools/course exercises ARGS`, then
# build what chapter NN's tests need, with -Werror. Returns 1 (the reason printed) when either fails.
generate_and_build() {
    local nn=$1
    shift
    if ! "$COURSE" exercises --out "$student" --quiet "$@" >"$WORK/generate.log" 2>&1; then
        cat "$WORK/generate.log"
        return 1
    fi
    if [ ! -f "$student_build/CMakeCache.txt" ]; then
        cmake -S "$student" -B "$student_build" -DCOURSE_WERROR=ON >"$WORK/student-configure.log" 2>&1 ||
            { tail -n 30 "$WORK/student-configure.log"; return 1; }
    fi
    if ! build_for "$student_build" "$WORK/student-build.log" "$nn"; then
        grep -E 'error|warning' "$WORK/student-build.log" | head -n 20 || true
        return 1
    fi
}

for nn in "${chapters[@]}"; do
    ids=()
    for id in "${all_ids[@]}"; do
        [ "${id:2:2}" = "$nn" ] && ids+=("$id")
    done
    if [ ${#ids[@]} -eq 0 ]; then
        echo "== ch$nn has no exercises"
        continue
    fi

    # --- 2. Each stub alone makes a test fail that names it ------------------------------------------------
    echo "== 2. ch$nn: each of its ${#ids[@]} stubs alone must make a test fail naming it $(at)"
    for id in "${ids[@]}"; do
        if ! generate_and_build "$nn" --only "$id"; then
            fail "$id: the student edition with this stub does not build without warnings (log: $WORK/student-build.log)"
            continue
        fi
        log="$WORK/stub-$id.log"
        status=0
        # With one stub, any failing test fails because of it, so stop at the first failure (fast); only if
        # that test's output does not name the stub (a test that hides a program's stderr), run them all.
        ctest --test-dir "$student_build" -L "^ch$nn\$" -E "$ORDERS_SKIPPED" --no-tests=error --output-on-failure --stop-on-failure \
            -j "$JOBS" >"$log" 2>&1 || status=$?
        if [ $status -ne 0 ] && ! grep -q "$id is not implemented yet" "$log"; then
            status=0
            ctest --test-dir "$student_build" -L "^ch$nn\$" -E "$ORDERS_SKIPPED" --no-tests=error --output-on-failure -j "$JOBS" >"$log" 2>&1 || status=$?
        fi
        if grep -q "No tests were found" "$log"; then
            fail "$id: the build has no ch$nn tests (log: $log)"
        elif [ $status -eq 0 ]; then
            fail "$id: HOLE — with this stub every ch$nn test still passes (no test notices it)"
        elif ! grep -q "$id is not implemented yet" "$log"; then
            fail "$id: tests fail, but none says \"$id is not implemented yet\" (log: $log)"
        elif grep -E -q "$CRASH_PATTERN" "$log"; then
            fail "$id: a test crashed or timed out instead of failing cleanly (log: $log)"
        else
            pass "$id: $(grep -c -E '^ *[0-9]+/[0-9]+ +Test +#.*\*\*\*Failed' "$log") test(s) fail and name it"
        fi
    done

    # --- 3. The whole chapter stubbed at once --------------------------------------------------------------
    echo "== 3. ch$nn: all ${#ids[@]} stubs at once $(at)"
    if ! generate_and_build "$nn" --chapter "$nn"; then
        fail "ch$nn: the student edition of the whole chapter does not build without warnings (log: $WORK/student-build.log)"
        continue
    fi
    log="$WORK/stub-ch$nn-all.log"
    status=0
    ctest --test-dir "$student_build" -L "^ch$nn\$" -E "$ORDERS_SKIPPED" --no-tests=error --output-on-failure -j "$JOBS" >"$log" 2>&1 || status=$?
    missing=()
    for id in "${ids[@]}"; do
        grep -q "$id is not implemented yet" "$log" || missing+=("$id")
    done
    if grep -q "No tests were found" "$log"; then
        fail "ch$nn all stubbed: the build has no ch$nn tests (log: $log)"
    elif [ $status -eq 0 ]; then
        fail "ch$nn all stubbed: every test passes"
    elif grep -E -q "$CRASH_PATTERN" "$log"; then
        fail "ch$nn all stubbed: a test crashed or timed out: $(grep -E "$CRASH_PATTERN" "$log" | head -n 3 | tr '\n' ' ') (log: $log)"
    elif [ ${#missing[@]} -gt 0 ]; then
        # Not a failure: step 2 proved each of these is noticed on its own. Here an earlier stub (say, an
        # output-size function returning 0) stops the tests before they reach the later ones.
        pass "ch$nn all stubbed: no crash, $(grep -E '^[0-9]+% tests passed' "$log"); not reached past earlier stubs: ${missing[*]}"
    else
        pass "ch$nn all stubbed: every ID named, no crash, $(grep -E '^[0-9]+% tests passed' "$log")"
    fi
done

echo
if [ $failed -gt 0 ]; then
    echo "Failures:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed ($(( $(date +%s) - started )) s)"
[ $failed -eq 0 ]
