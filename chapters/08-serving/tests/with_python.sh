#!/bin/sh
# with_python.sh — run one of chapter 08's Python tests with Debian's /usr/bin/python3 (the interpreter the
# course's Python scripts are run with, docs/setup.md), or skip (exit 77) where there is none.
#
#   sh chapters/08-serving/tests/with_python.sh chapters/08-serving/tests/test_serve.py predict --server ...
[ -x /usr/bin/python3 ] || { echo "skipped: this test needs /usr/bin/python3"; exit 77; }
exec /usr/bin/python3 "$@"
