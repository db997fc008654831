#!/usr/bin/env python3
"""make_golden.py — write (or check) the golden files the C tests compare against, with PyTorch as the oracle.

    /usr/bin/python3 reference/make_golden.py                 # regenerate every chapter into reference/golden/
    /usr/bin/python3 reference/make_golden.py --chapter 01    # one chapter
    /usr/bin/python3 reference/make_golden.py --check         # regenerate into a temporary folder and compare

Needs PyTorch and numpy (Debian: apt-get install python3-torch python3-numpy). The tests themselves need
neither: the golden files are committed. --check exits 1 when a regenerated file differs from the committed
one beyond the tolerance below (different PyTorch builds round a few ulp differently; that is not a change).
"""
import argparse
import importlib
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import golden  # noqa: E402

# chapter number -> module that generates it: every reference/chNN_<name>.py is a chapter's generator.
CHAPTERS = {
    name[2:4]: name[:-3]
    for name in sorted(os.listdir(HERE))
    if name.startswith("ch") and name[2:4].isdigit() and name.endswith(".py")
}

# Regenerated files may differ from the committed ones by float rounding across PyTorch/numpy builds.
CHECK_ATOL = 1e-6
CHECK_RTOL = 1e-5


def generate_chapter(number, root):
    module = importlib.import_module(CHAPTERS[number])
    folder = os.path.join(root, "ch" + number)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(".npy"):
                os.remove(os.path.join(folder, name))
    writer = golden.GoldenWriter(folder)
    module.generate(writer)
    golden.write_versions(folder)
    return writer.names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapter", action="append", help="chapter number (e.g. 01); default: all")
    parser.add_argument("--check", action="store_true", help="regenerate into a temporary folder and compare")
    args = parser.parse_args()

    chapters = args.chapter or sorted(CHAPTERS)
    for number in chapters:
        if number not in CHAPTERS:
            golden.fail(f"no golden generator for chapter {number!r} (known: {', '.join(sorted(CHAPTERS))})")

    committed_root = os.path.join(HERE, "golden")
    if not args.check:
        for number in chapters:
            names = generate_chapter(number, committed_root)
            print(f"ch{number}: wrote {len(names)} files to {os.path.join(committed_root, 'ch' + number)}")
        return 0

    failures = 0
    temp_root = tempfile.mkdtemp(prefix="golden-check-")
    try:
        for number in chapters:
            generate_chapter(number, temp_root)
            committed = os.path.join(committed_root, "ch" + number)
            if not os.path.isdir(committed):
                print(f"ch{number}: FAIL no committed goldens in {committed}")
                failures += 1
                continue
            problems = golden.compare_folders(committed, os.path.join(temp_root, "ch" + number), CHECK_ATOL, CHECK_RTOL)
            count = len([n for n in os.listdir(committed) if n.endswith(".npy")])
            if problems:
                failures += 1
                print(f"ch{number}: FAIL {len(problems)} problem(s) in {count} files")
                for p in problems:
                    print(f"  {p}")
            else:
                print(f"ch{number}: ok, {count} files match within atol {CHECK_ATOL}, rtol {CHECK_RTOL}")
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
