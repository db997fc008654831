#!/usr/bin/python3
"""test_sweep.py — the tests of tools/sweep, chapter 10's hyper-parameter search (CTest: tools.sweep.*, labels
tools and ch10, registered in tests/CMakeLists.txt).

    /usr/bin/python3 tools/tests/test_sweep.py CASE --trainer build/bin/mnist_train --data data --work DIR
    /usr/bin/python3 tools/tests/test_sweep.py --list

Every case runs tools/sweep (with this Python) on the real trainer and the bundled data, with tiny runs
(--train-limit 256 --test-limit 200 --epochs 1 --device cpu, about a second each), and asserts on its exit
status, its output and the files it writes in WORK/CASE:
  grid       a 2x2 grid with --jobs 2: 4 JSON lines with finite accuracies in [0, 1], the table best first,
             then the same command again runs nothing
  plot       the PNG plot (skipped, exit 77, without matplotlib)
  errors     bad specs, a missing trainer and a results file of another sweep: exit 2 with a message naming
             the problem, nothing run and nothing overwritten
  failures   a failing run is recorded with its exit status and stderr and not retried without --retry-failed;
             a half-written last line (a killed sweep) is ignored with a note
  interrupt  SIGINT while a run is in flight: exit 130, the finished run's line kept, the stopped one not written
Exit status 0 pass, 1 fail, 77 skip.
"""

import argparse
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
SWEEP = os.path.join(ROOT, "tools", "sweep")
CASES = ("grid", "plot", "errors", "failures", "interrupt")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print(f"FAIL: {message}")


class Result:
    def __init__(self, status, out, err):
        self.status, self.out, self.err = status, out, err


def sweep(args, work, timeout=120):
    """Runs tools/sweep ARGS in WORK; prints the command and its exit status."""
    command = [sys.executable, SWEEP] + args
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)
    print(f"$ tools/sweep {' '.join(args)}   -> exit {done.returncode}")
    if done.returncode == 2 and done.stderr.strip():
        print("   " + done.stderr.strip().splitlines()[-1])
    return Result(done.returncode, done.stdout, done.stderr)


def expect(result, status, *in_stderr):
    check(result.status == status, f"expected exit status {status}, got {result.status}; stderr: {result.err}")
    for text in in_stderr:
        check(text in result.err, f"stderr lacks '{text}'; it was: {result.err}")


def read_lines(path):
    """The results file's lines, each parsed (a line that does not parse fails the test)."""
    with open(path, encoding="utf-8") as f:
        data = f.read()
    check(data.endswith("\n"), f"{path} does not end with a newline")
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError as e:
            check(False, f"{path}:{number}: not JSON ({e}): {line[:200]}")
    return records


def accuracy_ok(record):
    accuracy = record.get("summary", {}).get("test_accuracy")
    # not (0 <= a <= 1) is true for NaN too
    return isinstance(accuracy, (int, float)) and math.isfinite(accuracy) and 0 <= accuracy <= 1


def fresh(work, case):
    folder = os.path.join(work, case)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def tiny(options):
    return ["--", "--train-limit", "256", "--test-limit", "200", "--epochs", "1", "--device", "cpu",
            "--data", options.data]


def have_matplotlib():
    return subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode == 0


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    check(head[:8] == PNG_SIGNATURE, f"{path} does not start with the PNG signature")
    check(head[12:16] == b"IHDR", f"{path}: no IHDR chunk first")
    return struct.unpack(">II", head[16:24])


# ---- The cases ---------------------------------------------------------------------------------------------------

def case_grid(options, work):
    grid = ["--trainer", options.trainer, "--jobs", "2", "--grid", "lr=0.01,0.05", "batch=32,64"] + tiny(options)
    first = sweep(grid, work)
    expect(first, 0)
    results = os.path.join(work, "sweep", "results.jsonl")
    records = read_lines(results)
    check(len(records) == 4, f"expected 4 JSON lines, got {len(records)}")
    combos = sorted((r["params"].get("lr"), r["params"].get("batch")) for r in records)
    check(combos == [(0.01, 32), (0.01, 64), (0.05, 32), (0.05, 64)], f"the runs' parameters are {combos}")
    for r in records:
        check(r.get("status") == "ok" and r.get("exit_status") == 0, f"a run did not succeed: {r}")
        check(accuracy_ok(r), f"test_accuracy not a finite fraction in [0, 1]: {r.get('summary')}")
        check(isinstance(r.get("seconds"), (int, float)) and r["seconds"] > 0, f"no seconds: {r}")
        command = r.get("command", [])
        check(command[:1] == [options.trainer] and "--threads" in command and "--summary-json" in command,
              f"the command is {command}")
        check(["--epochs", "1"] in r.get("fixed", []), f"the fixed flags are not recorded: {r.get('fixed')}")
        batch = r.get("summary", {}).get("batch")
        check(batch == r["params"]["batch"], f"the run trained with batch {batch}, not {r['params']['batch']}")

    table_path = os.path.join(work, "sweep", "table.md")
    check(os.path.isfile(table_path), "no sweep/table.md")
    if os.path.isfile(table_path):
        with open(table_path, encoding="utf-8") as f:
            rows = [line for line in f if line.startswith("| ") and not line.startswith("| #")]
        check(len(rows) == 4, f"the table has {len(rows)} rows, not 4")
        shown = [float(row.split("|")[4].split("%")[0]) for row in rows]
        check(shown == sorted(shown, reverse=True), f"the table is not sorted best first: {shown}")
        best = max(100 * r["summary"]["test_accuracy"] for r in records if accuracy_ok(r))
        check(shown and abs(shown[0] - best) < 0.006, f"the table's best is {shown[:1]}, the results' {best:.2f}")
        check(rows[0] in first.out, "the table is not printed")
    if have_matplotlib():
        png_size(os.path.join(work, "sweep", "plot.png"))
    else:
        check("plot skipped: matplotlib" in first.err, f"no note about the skipped plot: {first.err}")

    again = sweep(grid, work)
    expect(again, 0)
    check("4 already in" in again.out and "nothing to run" in again.out, f"the second sweep ran: {again.out}")
    check(len(read_lines(results)) == 4, "the second sweep added lines")


def case_plot(options, work):
    if not have_matplotlib():
        print(f"skipped: matplotlib is not importable by {sys.executable} (Debian: python3-matplotlib); "
              f"tools/sweep skips its plot without it")
        return 77
    result = sweep(["--trainer", options.trainer, "--grid", "lr=0.01,0.05", "momentum=0.9"] + tiny(options), work)
    expect(result, 0)
    path = os.path.join(work, "sweep", "plot.png")
    check(os.path.isfile(path), "no sweep/plot.png")
    if os.path.isfile(path):
        width, height = png_size(path)
        check(os.path.getsize(path) > 5000, f"{path} is only {os.path.getsize(path)} bytes")
        check(width > 1.5 * height, f"the plot is {width}x{height}: not two panels side by side")
    check(f"plot: {os.path.join('sweep', 'plot.png')}" in result.out, "the plot is not named in the output")
    return 0


def case_errors(options, work):
    trainer = ["--trainer", options.trainer]
    bad_specs = {
        "lr0.01": "expected NAME=VALUES",
        "lr=": "no values",
        "lr=0.01,,0.03": "an empty value",
        "--lr=0.01": "without dashes",
        "dropout9=0.5": "the trainer has no flag --dropout9",
        "batch=32,6.4": "--batch takes an integer",
        "lr=0.01,nan": "finite number",
        "lr=0.001:0.1": "LO:HI is a range, for --random N",
    }
    for spec, message in bad_specs.items():
        expect(sweep(trainer + ["--grid", spec] + tiny(options), work), 2, message)
    expect(sweep(trainer + ["--random", "4", "lr=0:0.1"] + tiny(options), work), 2, "log-uniform range needs LO > 0")
    expect(sweep(trainer + ["lr=0.01"] + tiny(options) + ["--lr", "0.1"], work), 2, "both swept")
    expect(sweep(trainer + ["lr=0.01"] + tiny(options) + ["--nonsense", "1"], work), 2, "no flag --nonsense")
    expect(sweep(trainer + ["lr=0.01"] + tiny(options) + ["--save", "m.safetensors"], work), 2, "{run}")
    expect(sweep(["--trainer", os.path.join(work, "no-such-trainer"), "lr=0.01"], work), 2,
           "no-such-trainer does not exist")
    check(not os.path.exists(os.path.join(work, "sweep", "runs")), "a refused sweep started runs")

    # A results file of another sweep (other fixed flags; other parameters): refused, left as it was.
    os.makedirs(os.path.join(work, "other"))
    results = os.path.join(work, "other", "results.jsonl")
    line = {"params": {"lr": 0.01}, "fixed": [["--epochs", "3"]], "status": "ok", "exit_status": 0,
            "summary": {"test_accuracy": 0.5}}
    with open(results, "w", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    with open(results, "rb") as f:
        before = f.read()
    expect(sweep(trainer + ["--out", "other", "lr=0.01,0.05"] + tiny(options), work), 2, "holds another sweep",
           "--epochs 3")
    expect(sweep(trainer + ["--out", "other", "lr=0.01", "batch=32"] + ["--", "--epochs", "3"], work), 2,
           "holds another sweep")
    with open(results, "rb") as f:
        check(f.read() == before, "the other sweep's results file was changed")
    check(not os.path.exists(os.path.join(work, "other", "runs")), "a refused sweep started runs")

    # A damaged line that is not the last one: named with its line number.
    with open(results, "w", encoding="utf-8") as f:
        f.write("not json\n" + json.dumps(line) + "\n")
    expect(sweep(trainer + ["--out", "other", "lr=0.01"] + ["--", "--epochs", "3"], work), 2,
           "results.jsonl:1: not a JSON line")


def case_failures(options, work):
    command = ["--trainer", options.trainer, "--jobs", "2", "batch=0,32"] + tiny(options)
    first = sweep(command, work)
    expect(first, 1, "1 of 2 run(s) failed")
    results = os.path.join(work, "sweep", "results.jsonl")
    records = read_lines(results)
    check(len(records) == 2, f"expected 2 lines, got {len(records)}")
    failed = [r for r in records if r["params"].get("batch") == 0]
    check(len(failed) == 1 and failed[0]["status"] == "failed", f"the failed run's line: {failed}")
    if failed:
        check(failed[0].get("exit_status") not in (0, None), f"no exit status: {failed[0]}")
        check("--batch" in failed[0].get("stderr_tail", ""), f"no stderr tail naming --batch: {failed[0]}")
    check("failed" in first.out, "the table does not show the failed run")

    again = sweep(command, work)
    expect(again, 0)
    check("nothing to run" in again.out and "--retry-failed" in again.out, f"a failed run was retried: {again.out}")
    check(len(read_lines(results)) == 2, "the second sweep added lines")

    # A sweep killed while writing a line leaves half a line: ignored with a note, and cut off before the
    # next line is appended.
    with open(results, "a", encoding="utf-8") as f:
        f.write('{"params": {"batch": 6')
    retry = sweep(["--retry-failed"] + command, work)
    expect(retry, 1, "ignoring a half-written last line")
    records = read_lines(results)
    check(len(records) == 3, f"expected 3 whole lines after the retry, got {len(records)}")
    check(sum(r["params"].get("batch") == 32 for r in records) == 1, "the successful run was run again")


def case_interrupt(options, work):
    # The first run is short (64 images), the second long (8000 images, half a minute): SIGINT once the first
    # has its line, while the second is in flight.
    command = [sys.executable, SWEEP, "--trainer", options.trainer, "--jobs", "1", "train-limit=64,8000", "--",
               "--test-limit", "100", "--epochs", "1", "--device", "cpu", "--data", options.data]
    print(f"$ {' '.join(command[1:])} &   (SIGINT after the first line)")
    results = os.path.join(work, "sweep", "results.jsonl")
    with open(os.path.join(work, "stderr.log"), "w+") as err:
        process = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 90
        while not (os.path.exists(results) and os.path.getsize(results) > 0) and process.poll() is None:
            check(time.monotonic() < deadline, "the first run did not finish in 90 s")
            if failures:
                process.kill()
                return
            time.sleep(0.05)
        time.sleep(0.5)  # the second run starts
        process.send_signal(signal.SIGINT)
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            status = None
        err.seek(0)
        stderr = err.read()
    print(f"   -> exit {status}")
    check(status == 130, f"expected exit status 130 after SIGINT, got {status}; stderr: {stderr}")
    check("interrupted" in stderr, f"no note about the interruption: {stderr}")
    records = read_lines(results)
    check([r["params"] for r in records] == [{"train-limit": 64}], f"the lines kept: {[r['params'] for r in records]}")
    check(all(r["status"] == "ok" for r in records), "the finished run is not recorded as ok")
    long_runs = [d for d in os.listdir(os.path.join(work, "sweep", "runs")) if d.startswith("train-limit8000")]
    for d in long_runs:
        check(not os.path.exists(os.path.join(work, "sweep", "runs", d, "summary.json")),
              "the stopped run wrote a summary (it was not stopped)")


def main():
    parser = argparse.ArgumentParser(description="The tests of tools/sweep.")
    parser.add_argument("case", nargs="?", choices=CASES)
    parser.add_argument("--list", action="store_true", help="print the cases")
    parser.add_argument("--trainer", help="the trainer (mnist_train)")
    parser.add_argument("--data", default=os.path.join(ROOT, "data"), help="the MNIST folder (default: data/)")
    parser.add_argument("--work", help="a scratch folder")
    options = parser.parse_args()
    if options.list:
        print("\n".join(CASES))
        return 0
    if not options.case or not options.trainer or not options.work:
        parser.error("give CASE, --trainer and --work")
    options.trainer = os.path.abspath(options.trainer)
    options.data = os.path.abspath(options.data)
    work = fresh(os.path.abspath(options.work), options.case)
    status = globals()["case_" + options.case](options, work)
    if status == 77:
        return 77
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
