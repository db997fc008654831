#!/usr/bin/env bash
# test_course.sh — the tests of tools/course (CTest label `tools`, registered in tests/CMakeLists.txt).
#
#   bash tools/tests/test_course.sh CASE WORK_DIR        (ctest -L tools runs every case)
#   bash tools/tests/test_course.sh --list
#
# Each case runs the CLI and asserts on its exit status and output; WORK_DIR is a scratch folder. The
# malformed-marker fixtures are in tests/fixtures/exercise_markers/01-fixture/. Exit 0 pass, 1 fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
COURSE="$ROOT/tools/course"
FIXTURES="tests/fixtures/exercise_markers/01-fixture"
export NO_COLOR=1

CH01_IDS="ch01.sigmoid ch01.sigmoid_derivative ch01.tanh ch01.tanh_derivative ch01.relu ch01.relu_derivative
ch01.leaky_relu ch01.leaky_relu_derivative ch01.softmax ch01.log_softmax ch01.softmax_backward
ch01.log_softmax_backward"

failures=0
fail() {
    printf 'FAIL: %s\n' "$*"
    failures=$((failures + 1))
}

# run ARGS... : runs tools/course from the root; sets $status, $out (stdout) and $err (stderr).
run() {
    (cd "$ROOT" && "$COURSE" "$@") >"$WORK/out" 2>"$WORK/err"
    status=$?
    out=$(cat "$WORK/out")
    err=$(cat "$WORK/err")
    printf '$ tools/course %s   -> exit %d\n' "$*" "$status"
}

# run_lang LANG ARGS... : run ARGS with that LANG (and LC_ALL, LC_MESSAGES unset, so that LANG decides).
run_lang() {
    local lang=$1
    shift
    (cd "$ROOT" && env -u LC_ALL -u LC_MESSAGES LANG="$lang" "$COURSE" "$@") >"$WORK/out" 2>"$WORK/err"
    status=$?
    out=$(cat "$WORK/out")
    err=$(cat "$WORK/err")
    printf '$ LANG=%s tools/course %s   -> exit %d\n' "$lang" "$*" "$status"
}

expect_status() { [ "$status" -eq "$1" ] || fail "expected exit status $1, got $status${err:+; stderr: $err}"; }
expect_failure() { [ "$status" -ne 0 ] || fail "expected a non-zero exit status, got 0"; }
expect_out() { grep -q -F -- "$1" "$WORK/out" || fail "stdout lacks \"$1\"; it was: $out"; }
expect_err() { grep -q -F -- "$1" "$WORK/err" || fail "stderr lacks \"$1\"; it was: $err"; }

# A malformed fixture must be refused by --check with the given message.
refused() {
    run exercises --check "$FIXTURES/$1.c"
    expect_status 1
    expect_err "$FIXTURES/$1.c:"
    expect_err "$2"
    printf '%s\n' "$err"
}

case_hint() {
    run hint ch01.relu
    expect_status 0
    expect_out "ch01.relu"
    expect_out "return x for x > 0, else 0"
    expect_out "relu() in chapters/01-activations/activations.c"
    expect_out "chapters/01-activations/README.md"
    printf '%s\n' "$out"
}

# The Chinese hint of a marker (after " | zh: "): printed by `hint` when LANG starts with zh, kept in the stub's
# TODO comment, and read back from a stub.
case_hint_zh() {
    run_lang zh_CN.UTF-8 hint ch01.relu
    expect_status 0
    expect_out "x > 0 时返回 x，否则返回 0"
    expect_out "（约 1 行）"
    expect_out "return x for x > 0, else 0"
    run_lang C.UTF-8 hint ch01.relu
    expect_status 0
    grep -q "时返回" "$WORK/out" && fail "hint printed the Chinese hint with LANG=C.UTF-8"
    run exercises --preview chapters/01-activations/activations.c --only ch01.relu
    expect_status 0
    expect_out "/* TODO(ch01.relu): return x for x > 0, else 0; NaN must stay NaN (about 1 line) | zh: x > 0 时返回 x"
    # A stub read back (as in a student edition): both hints, in their own columns.
    mkdir -p "$WORK/chapters/01-activations"
    cp "$WORK/out" "$WORK/chapters/01-activations/activations.c"
    (cd "$WORK" && awk -v mode=scan -f "$ROOT/tools/markers.awk" chapters/01-activations/activations.c) >"$WORK/scan.tsv" ||
        fail "the scan of the stubbed file failed"
    awk -F '\t' '$1 == "ch01.relu" && $6 == "stub" && $8 ~ /NaN must stay NaN \(about 1 line\)$/ && $9 ~ /^x > 0 时返回 x/ { ok = 1 }
        END { exit !ok }' "$WORK/scan.tsv" || fail "the stub of ch01.relu does not give back both hints: $(cat "$WORK/scan.tsv")"
    # Every exercise of the course has its Chinese hint.
    awk -F '\t' '$9 == "" { print "no Chinese hint: " $1 " (" $2 ":" $3 ")"; bad = 1 } END { exit bad }' \
        < <(cd "$ROOT" && awk -v mode=scan -f tools/markers.awk $(cd "$ROOT" && find chapters -name '*.c' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' | LC_ALL=C sort)) ||
        fail "exercises without a Chinese hint (above)"
    printf '%s\n' "$out" | grep TODO
}

# status, test and hint in Chinese (LANG=zh_CN.UTF-8), on a tiny course of its own: one chapter, one exercise,
# three tests (one passes, one reaches a stub, one fails), so that nothing of the real course is built.
case_messages_zh() {
    local mini="$WORK/mini"
    rm -rf "$mini"
    mkdir -p "$mini/tools" "$mini/chapters/01-mini"
    cp "$ROOT/tools/course" "$ROOT/tools/markers.awk" "$mini/tools/"
    cat >"$mini/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(mini NONE)
enable_testing()
add_test(NAME mini.passes COMMAND sh -c "exit 0")
add_test(NAME mini.stub COMMAND sh -c "echo 'ch01.twice is not implemented yet (see chapters/01-mini/README.md)'; exit 1")
add_test(NAME mini.fails COMMAND sh -c "echo 'mismatch at 3'; exit 1")
set_tests_properties(mini.passes mini.stub mini.fails PROPERTIES LABELS ch01)
CMAKE
    cat >"$mini/chapters/01-mini/mini.c" <<'C'
int twice(int x);

int twice(int x)
{
    /* BEGIN EXERCISE ch01.twice: return 2 * x (about 1 line) | zh: 返回 2 * x（约 1 行） */
    return 2 * x;
    /* END EXERCISE */
}
C
    printf '# Mini\n' >"$mini/chapters/01-mini/README.md"
    printf '# 迷你\n' >"$mini/chapters/01-mini/README.zh.md"
    local course_env=(env -u LC_ALL -u LC_MESSAGES LANG=zh_CN.UTF-8 COURSE_BUILD_DIR="$WORK/mini-build")
    (cd "$mini" && "${course_env[@]}" tools/course status) >"$WORK/out" 2>"$WORK/err"
    status=$?; out=$(cat "$WORK/out"); err=$(cat "$WORK/err")
    printf '$ LANG=zh_CN.UTF-8 tools/course status   -> exit %d\n%s\n' "$status" "$out"
    expect_out "进度"
    expect_out "1/3 个测试通过"
    expect_out "1 个失败"
    expect_out "1 个练习未实现"
    expect_out "下一步：\`tools/course test 01\` 会显示第 01 章哪里出了错。"
    (cd "$mini" && "${course_env[@]}" tools/course test 01) >"$WORK/out" 2>"$WORK/err"
    status=$?; out=$(cat "$WORK/out"); err=$(cat "$WORK/err")
    printf '$ LANG=zh_CN.UTF-8 tools/course test 01   -> exit %d\n%s\n' "$status" "$out"
    expect_status 1
    expect_out "正在运行第 01 章的测试"
    expect_out "还没有实现：ch01.twice"
    expect_out "查看提示：\`tools/course hint ch01.twice\`"
    (cd "$mini" && "${course_env[@]}" tools/course hint ch01.twice) >"$WORK/out" 2>"$WORK/err"
    status=$?; out=$(cat "$WORK/out"); err=$(cat "$WORK/err")
    expect_status 0
    expect_out "返回 2 * x（约 1 行）"
    expect_out "课文：  chapters/01-mini/README.zh.md"
    (cd "$mini" && "${course_env[@]}" tools/course test 7) >"$WORK/out" 2>"$WORK/err"
    status=$?; out=$(cat "$WORK/out"); err=$(cat "$WORK/err")
    expect_failure
    expect_err "没有第 07 章"
    # The English messages are unchanged without zh.
    (cd "$mini" && env -u LC_ALL -u LC_MESSAGES LANG=C.UTF-8 COURSE_BUILD_DIR="$WORK/mini-build" tools/course test 01) >"$WORK/out" 2>"$WORK/err"
    status=$?; out=$(cat "$WORK/out"); err=$(cat "$WORK/err")
    expect_status 1
    expect_out "Running the tests of chapter 01"
    expect_out "1/3 tests passing  (1 failing, 1 exercise not implemented)"
}

case_hint_unknown() {
    run hint ch01.rleu
    expect_failure
    expect_err "there is no exercise named 'ch01.rleu'"
    expect_err "ch01.relu"
    run hint no_such_exercise_anywhere
    expect_failure
    expect_err "tools/course exercises --list"
    printf '%s\n' "$err"
}

case_list() {
    run exercises --list
    expect_status 0
    local id
    for id in $CH01_IDS; do
        grep -q -E "^  $id( |$)" "$WORK/out" || fail "exercises --list does not list $id"
    done
    printf '%s\n' "$out" | head -n 14
}

case_check() {
    run exercises --check
    expect_status 0
    expect_out "Exercise markers OK"
    printf '%s\n' "$out"
}

case_usage() {
    run frobnicate
    expect_status 2
    expect_err "unknown command 'frobnicate'"
    run test
    expect_status 2
    run exercises --bogus
    expect_status 2
    expect_err "unknown option '--bogus'"
    run test 99
    expect_failure
    expect_err "there is no chapter 99"
    run help
    expect_status 0
    expect_out "Usage: tools/course"
}

case_preview_signatures() {
    run exercises --preview "$FIXTURES/signatures.c"
    expect_status 0
    if ! diff -u "$ROOT/$FIXTURES/signatures.stubbed.c" "$WORK/out"; then
        fail "the stubbed signatures.c differs from $FIXTURES/signatures.stubbed.c (diff above)"
    fi
    # The stubs must compile without a single warning, with the flags of the course.
    local cc=${CC:-cc}
    if command -v "$cc" >/dev/null 2>&1; then
        cp "$WORK/out" "$WORK/signatures_stubbed.c"
        "$cc" -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror -I"$ROOT/common" \
            -c "$WORK/signatures_stubbed.c" -o "$WORK/signatures_stubbed.o" || fail "the stubbed file does not compile cleanly with $cc"
    else
        fail "no C compiler ($cc) to compile the stubs with"
    fi
    run exercises --preview "$FIXTURES/signatures.c" --only ch01.clear
    expect_status 0
    expect_out 'course_todo("ch01.clear"'
    grep -q 'course_todo("ch01.dot"' "$WORK/out" && fail "--only ch01.clear stubbed ch01.dot too"
    grep -q 'multiply(x\[i\], y\[i\])' "$WORK/out" || fail "--only ch01.clear removed the solution of ch01.dot"
}

case_student_edition() {
    local dir="$WORK/student"
    run exercises --list
    expect_status 0
    if grep -q -E '^  ch01\.relu .*\[stub\]$' "$WORK/out"; then
        echo "SKIP: ch01.relu is a stub here (this is a student edition), so there is no solution to stub"
        exit 77
    fi
    rm -rf "$dir"
    run exercises --out "$dir" --only ch01.relu
    expect_status 0
    expect_out "1 exercise stubbed in 1 file"
    local file="$dir/chapters/01-activations/activations.c"
    grep -q -F '/* TODO(ch01.relu): return x for x > 0' "$file" || fail "no TODO stub for ch01.relu in $file"
    grep -q -F 'course_todo("ch01.relu", "chapters/01-activations/README.md");' "$file" || fail "no course_todo call in $file"
    grep -q -F '#include "exercise.h"' "$file" || fail "$file does not include exercise.h"
    grep -q -F 'BEGIN EXERCISE ch01.relu:' "$file" && fail "the solution of ch01.relu is still in $file"
    grep -q -F 'BEGIN EXERCISE ch01.tanh:' "$file" || fail "ch01.tanh was stubbed although only ch01.relu was asked for"
    grep -q -F 'ch01.relu' "$dir/STUDENT_EDITION.md" || fail "STUDENT_EDITION.md does not name ch01.relu"
    [ -x "$dir/tools/course" ] || fail "tools/course is not executable in the student edition"
    [ -e "$dir/.git" ] && fail "the student edition contains .git"
    cmp -s "$ROOT/chapters/01-activations/activations.h" "$dir/chapters/01-activations/activations.h" ||
        fail "activations.h was not copied unchanged"
    # Writing again: nothing changes, no mtime moves.
    touch -d '2001-01-01 00:00:00' "$file" "$dir/CMakeLists.txt"
    run exercises --out "$dir" --only ch01.relu
    expect_status 0
    expect_out "0 files updated"
    [ "$(date -r "$file" +%Y)" = 2001 ] || fail "an unchanged stubbed file was rewritten"
    [ "$(date -r "$dir/CMakeLists.txt" +%Y)" = 2001 ] || fail "an unchanged file was rewritten"
    # Another selection: only the file that changes is rewritten.
    run exercises --out "$dir" --only ch01.tanh
    expect_status 0
    expect_out "1 file updated"
    expect_out "updated: chapters/01-activations/activations.c"
    grep -q -F 'BEGIN EXERCISE ch01.relu:' "$file" || fail "ch01.relu was not restored"
    [ "$(date -r "$dir/CMakeLists.txt" +%Y)" = 2001 ] || fail "an unchanged file was rewritten"
    printf '%s\n' "$out"
}

case_out_refuses() {
    local dir="$WORK/not_a_student_edition"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "precious" >"$dir/notes.txt"
    run exercises --out "$dir"
    expect_failure
    expect_err "is not empty and is not a student edition"
    [ "$(cat "$dir/notes.txt")" = precious ] && [ "$(ls -A "$dir")" = notes.txt ] || fail "the folder was modified"
    run exercises --out "$ROOT"
    expect_failure
    expect_err "is the course itself"
    run exercises --out "$WORK/new" --only ch01.no_such_thing
    expect_failure
    expect_err "--only ch01.no_such_thing: there is no exercise with that ID"
    [ -z "$(ls -A "$WORK/new" 2>/dev/null)" ] || fail "a refused --only still wrote files"
    printf '%s\n' "$err"
}

case_fixture_begin_without_end() { refused begin_without_end "BEGIN EXERCISE ch01.relu has no END EXERCISE"; }
case_fixture_end_without_begin() { refused end_without_begin "END EXERCISE without a BEGIN EXERCISE"; }
case_fixture_nested() { refused nested "regions cannot nest"; }
case_fixture_duplicate_ids() { refused duplicate_ids "duplicate exercise ID ch01.relu"; }
case_fixture_wrong_chapter() { refused wrong_chapter "its ID must start with ch01."; }
case_fixture_not_whole_body() { refused not_whole_body "is not a whole function body"; }
case_fixture_malformed_marker() { refused malformed_marker "malformed marker"; }
case_fixture_empty_zh() { refused empty_zh "the Chinese hint after \"| zh:\" is empty"; }
case_fixture_function_pointer() { refused function_pointer "function-pointer parameters are not supported"; }

CASES="hint hint_zh messages_zh hint_unknown list check usage preview_signatures student_edition out_refuses
fixture_begin_without_end fixture_end_without_begin fixture_nested fixture_duplicate_ids fixture_wrong_chapter
fixture_not_whole_body fixture_malformed_marker fixture_function_pointer fixture_empty_zh"

if [ "${1:-}" = --list ]; then
    printf '%s\n' $CASES
    exit 0
fi
if [ $# -ne 2 ] || [[ " $(echo $CASES) " != *" $1 "* ]]; then
    echo "usage: test_course.sh CASE WORK_DIR   (cases: $(echo $CASES))" >&2
    exit 1
fi
WORK="$2/$1"
mkdir -p "$WORK"
"case_$1"
if [ $failures -gt 0 ]; then
    echo "$1: $failures check(s) failed"
    exit 1
fi
echo "$1: ok"
