#!/usr/bin/env python3
"""test_zh_check.py — proves that tools/zh_check catches what it is for (CTest: docs.zh.selftest, label `docs`).

    python3 tools/tests/test_zh_check.py

It builds a small course in a temporary folder (a root README and one chapter, each with its Chinese twin, a
code block, a table of figures, an image, a link to a file and an anchor), checks that zh_check passes it, then breaks it one way at a
time and checks that zh_check exits 1 naming the file and the problem: a changed code block, a changed figure
in a table, a missing Chinese page, a dead link, a different image, a missing anchor, a stale hash, an unlisted docs page. It also checks that
--fix-hash refuses while the code blocks or a table differ and makes the pair fresh once they agree, and runs the same
breakages on temporary copies of the real chapter 01 pages. Exit 0 when every case behaves, 1 otherwise.
"""

import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ZH_CHECK = os.path.join(ROOT, "tools", "zh_check")
failures = []


def blob_hash(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def zh_check(root, *args):
    run = subprocess.run([sys.executable, ZH_CHECK, "--root", root] + list(args), capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def expect(name, root, args, status, text=None):
    got, output = zh_check(root, *args)
    ok = got == status and (text is None or text in output)
    print("%s %s: zh_check %s -> exit %d" % ("ok  " if ok else "FAIL", name, " ".join(args), got))
    if not ok:
        failures.append(name)
        print("    expected exit %d%s; output:\n    %s" % (status, " and %r" % text if text else "",
                                                         output.replace("\n", "\n    ")))


EN_CHAPTER = """# Chapter 01 — Activations

[中文](README.zh.md)

See [the code](act.c) and [section 2](#2-the-code).

| run | time | speed-up |
|---|---:|---:|
| naive | 12.5 ms | 1.0 |
| tiled | 3.1 ms | 4.0 |

![the curves](figures/curves.png)

## 2. The code

```c
float relu(float x) { return x > 0 ? x : 0; }
```
"""

ZH_CHAPTER = """# 第 01 章 — 激活函数

[English](README.md)

见[代码](act.c)和[第 2 节](#2-the-code)。

| 版本 | 耗时 | 加速比 |
|---|---:|---:|
| 朴素 | 12.5 ms | 1.0 |
| 分块 | 3.1 ms | 4.0 |

![曲线](figures/curves.png)

<a id="2-the-code"></a>
## 2. 代码

```c
float relu(float x) { return x > 0 ? x : 0; }
```
"""

EN_ROOT = """# The course

[中文](README.zh.md)

[Chapter 01](chapters/01-act/README.md)
"""

ZH_ROOT = """# 课程

[English](README.md)

[第 01 章](chapters/01-act/README.zh.md)
"""


def header(root, en):
    with open(os.path.join(root, en), "rb") as f:
        return "<!-- zh-source: %s %s -->\n" % (en, blob_hash(f.read()))


def make_course(root):
    write(root, "chapters/01-act/README.md", EN_CHAPTER)
    write(root, "chapters/01-act/act.c", "/* act.c */\n")
    write(root, "chapters/01-act/figures/curves.png", "png")
    write(root, "chapters/01-act/figures/other.png", "png")
    write(root, "README.md", EN_ROOT)
    write(root, "chapters/01-act/README.zh.md", header(root, "chapters/01-act/README.md") + ZH_CHAPTER)
    write(root, "README.zh.md", header(root, "README.md") + ZH_ROOT)


def fresh_course():
    root = tempfile.mkdtemp(prefix="zh_check_test.")
    make_course(root)
    return root


def synthetic_cases():
    zh = "chapters/01-act/README.zh.md"
    en = "chapters/01-act/README.md"

    root = fresh_course()
    expect("a course in step passes", root, [], 0, "2 pairs of pages OK")
    expect("--list names the pair", root, ["--list"], 0, "chapters/01-act/README.md\tchapters/01-act/README.zh.md")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace("return x > 0 ? x : 0;", "return x > 0 ? x : 0.0f;"))
    expect("a changed code block", root, ["code_blocks"], 1, zh + ":19: code block 1 differs from " + en + ":17")
    expect("--fix-hash refuses while the code blocks or a table differ", root, ["--fix-hash", zh], 1, "nothing was written")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace("| 3.1 ms | 4.0 |", "| 3.2 ms | 4.0 |"))
    expect("a changed measured figure", root, ["tables"], 1,
           zh + ":11: this row of table 1 does not hold the numbers of " + en + ":10 (only here: 3.2; only there: 3.1)")
    expect("--fix-hash refuses while a table differs", root, ["--fix-hash", zh], 1, "nothing was written")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace("| 分块 | 3.1 ms | 4.0 |\n", ""))
    expect("a row missing from a table", root, ["tables"], 1, "table 1 has 3 lines here and 4 in " + en)
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace("```c\nfloat", "```\nfloat"))
    expect("a code block's language changed", root, ["code_blocks"], 1, "code block 1 differs")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh) + "\n```sh\nmake\n```\n")
    expect("an extra code block", root, ["code_blocks"], 1, "code block 2 is not in " + en)
    shutil.rmtree(root)

    root = fresh_course()
    os.unlink(os.path.join(root, zh))
    expect("a missing Chinese page", root, ["pages"], 1, en + ":1: the English page has no Chinese twin " + zh)
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace("(act.c)", "(act_old.c)"))
    expect("a dead link", root, ["links"], 1, zh + ":6: the link target act_old.c does not exist")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace("figures/curves.png", "figures/other.png"))
    expect("a different image", root, ["links"], 1, zh + ":1: not the same images as " + en)
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace('<a id="2-the-code"></a>\n', ""))
    expect("a missing anchor", root, ["links"], 1, zh + ":6: " + zh + " has no anchor #2-the-code")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).replace("[English](README.md)", "English"))
    expect("no link back to the English page", root, ["pages"], 1, zh + ":3: no [English](README.md) link")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, zh, read(root, zh).split("\n", 1)[1])
    expect("no zh-source header", root, ["pages"], 1, zh + ":1: the first line must be <!-- zh-source: " + en)
    shutil.rmtree(root)

    root = fresh_course()
    write(root, en, read(root, en) + "\nOne more sentence.\n")
    expect("a stale hash", root, ["fresh"], 1, zh + ":1: stale: " + en + " changed after this page was last synced")
    expect("--fix-hash records the new hash", root, ["--fix-hash", zh], 0, "recorded <!-- zh-source: " + en)
    expect("fresh again after --fix-hash", root, [], 0, "2 pairs of pages OK")
    if not read(root, zh).startswith(header(root, en)):
        failures.append("--fix-hash header")
        print("FAIL --fix-hash did not write the header of the English page's hash")
    shutil.rmtree(root)

    root = fresh_course()
    write(root, "docs/notes.md", "# Notes\n")
    expect("an unlisted docs page", root, ["pages"], 1, "docs/notes.md:1: no Chinese twin docs/zh/notes.md")
    write(root, "docs/benchmarks.md", "# Benchmarks\n")
    got, output = zh_check(root, "pages")
    if "docs/benchmarks.md" in output:
        failures.append("benchmarks English-only")
        print("FAIL docs/benchmarks.md is English-only on purpose, yet zh_check reported it:\n" + output)
    shutil.rmtree(root)


def real_pair_cases():
    """The same breakages on temporary copies of chapter 01's real pages (and the files they link to)."""
    en, zh = "chapters/01-activations/README.md", "chapters/01-activations/README.zh.md"
    if not os.path.isfile(os.path.join(ROOT, zh)):
        print("note: %s does not exist here; the cases on the real pages are left out" % zh)
        return
    root = tempfile.mkdtemp(prefix="zh_check_real.")
    for rel in (en, zh):
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), os.path.join(root, rel))
    # Every file the two pages link to, so that only the breakages below are problems.
    loader = importlib.machinery.SourceFileLoader("zh_check", ZH_CHECK)  # (the script has no .py suffix)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("zh_check", loader))
    loader.exec_module(module)
    for rel in (en, zh):
        for _, _, target in module.Page(ROOT, rel).links():
            path, _ = module.resolve(rel, target)
            if path and os.path.isfile(os.path.join(ROOT, path)) and not os.path.exists(os.path.join(root, path)):
                os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
                shutil.copy(os.path.join(ROOT, path), os.path.join(root, path))
    # (The docs pages linked from it are copied without their Chinese twins: code_blocks, links and fresh
    # leave out a pair whose Chinese page does not exist, which only `pages` reports.)
    for rel in list(os.listdir(os.path.join(root, "chapters"))):
        if rel != "01-activations":
            shutil.rmtree(os.path.join(root, "chapters", rel))
    expect("chapter 01's code blocks agree", root, ["code_blocks"], 0)
    expect("chapter 01's links agree", root, ["links"], 0)

    text = read(root, zh)
    start = text.index("```c\n")
    write(root, zh, text[:start + 5] + "/* changed */\n" + text[start + 5:])
    expect("chapter 01: a changed code block", root, ["code_blocks"], 1, zh + ":")
    write(root, zh, text)
    write(root, zh, text.replace("(activations.c)", "(activations_old.c)", 1))
    expect("chapter 01: a dead link", root, ["links"], 1, "the link target activations_old.c does not exist")
    write(root, zh, text)
    write(root, en, read(root, en) + "\n")
    expect("chapter 01: a stale hash", root, ["fresh"], 1, "stale: " + en)
    os.unlink(os.path.join(root, zh))
    expect("chapter 01: a missing page", root, ["pages"], 1, "has no Chinese twin " + zh)
    shutil.rmtree(root)


def main():
    synthetic_cases()
    real_pair_cases()
    if failures:
        print("%d case(s) failed: %s" % (len(failures), ", ".join(failures)))
        return 1
    print("zh_check self-test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
