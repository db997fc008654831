"""bench_common.py — what chapter 10's measurement scripts (augment_table.py, transfer.py) share: the paths of the
trainer and the data, checks with clear messages, running one training as a subprocess and reading its
--summary-json, a results file that a run continues (resumable), the machine's description, Markdown tables.

Not a program: augment_table.py and transfer.py import it (run those with /usr/bin/python3, see their --help).
"""
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_TRAINER = os.path.join(REPO_ROOT, "build", "bin", "mnist_train")
BUNDLED_DATA = os.path.join(REPO_ROOT, "data")
FASHION_DATA = "/usr/share/datasets/fashion-mnist"          # Debian's dataset-fashion-mnist
PYTORCH_TRAIN = os.path.join(HERE, "pytorch_train.py")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def fail(message):
    """Stops the script with `error: message` on stderr and exit status 1."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def check_data(folder, what):
    """Exits with a message unless `folder` holds the four IDX files (.gz or plain) of an MNIST-like data set."""
    if not os.path.isdir(folder):
        fail(f"{folder}: no such folder ({what})")
    for name in IDX_FILES:
        if not any(os.path.isfile(os.path.join(folder, name + ext)) for ext in (".gz", "")):
            fail(f"{folder}: no {name} or {name}.gz ({what})")


def check_trainer(trainer, flags):
    """Exits with a message unless `trainer` is an executable whose --help lists every one of `flags`."""
    if not (os.path.isfile(trainer) and os.access(trainer, os.X_OK)):
        fail(f"{trainer}: no such executable (build it: cmake --preset default && "
             "cmake --build build --target mnist_train -j2; or pass --trainer PATH)")
    result = subprocess.run([trainer, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    missing = [flag for flag in flags if f"{flag} " not in result.stdout and f"{flag}=" not in result.stdout]
    if missing:
        fail(f"{trainer}: --help lists no {', '.join(missing)} (chapter 10's trainer flags; rebuild it: "
             "cmake --build build --target mnist_train)")


def check_pytorch():
    """Exits with a message unless torch and torchvision import (this Python: Debian's /usr/bin/python3)."""
    result = subprocess.run([sys.executable, "-c", "import torch, torchvision"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        fail(f"{sys.executable} cannot import torch and torchvision (Debian: apt-get install python3-torch "
             f"python3-torchvision; run the script with /usr/bin/python3):\n{result.stdout.strip()}")


def run_training(command, label):
    """Runs one training (a list of arguments, without --summary-json) and returns (its summary dict, the wall
    seconds, the command as a string). The program's output is kept in memory and shown only when it fails."""
    with tempfile.TemporaryDirectory(prefix="ch10-bench-") as folder:
        summary_path = os.path.join(folder, "summary.json")
        full = list(command) + ["--summary-json", summary_path]
        started = time.perf_counter()
        result = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0 or not os.path.isfile(summary_path):
            tail = "\n".join(result.stdout.strip().splitlines()[-15:])
            fail(f"{label}: exit status {result.returncode}; the command:\n  {shlex.join(full)}\n"
                 f"its last lines:\n{tail}")
        with open(summary_path) as f:
            summary = json.load(f)
    shown = shlex.join(command)
    return summary, wall, shown


def check_summary(summary, expected, label):
    """Exits unless the run's JSON summary has the `expected` values for those of its keys it has (so a trainer
    that silently ignored a flag is caught)."""
    wrong = [f"{key} {summary[key]!r}, not {value!r}" for key, value in expected.items()
             if key in summary and summary[key] != value]
    if wrong:
        fail(f"{label}: the run's summary says {'; '.join(wrong)}")


def run_main(main, results_path):
    """Runs the script's main(); Ctrl-C ends it with a line saying where the finished runs are (exit 130)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished runs are in {results_path}; the same command continues", file=sys.stderr)
        sys.exit(130)


def write_json(path, data):
    """Writes `data` to `path` atomically (a temporary file next to it, fsync, rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_results(path, recipe):
    """The results file `path` (a dict with "recipe", "runs", "sessions") if it exists and holds runs of the same
    `recipe`, else a new one; this invocation (command, date, machine) is added to its sessions. Exits if the
    file is unreadable or its recipe differs (nothing overwritten)."""
    results = {"recipe": recipe, "runs": [], "sessions": []}
    if os.path.exists(path):
        try:
            with open(path) as f:
                results = json.load(f)
            stored = results["recipe"]
            if not (isinstance(stored, dict) and isinstance(results.get("runs"), list)
                    and isinstance(results.get("sessions"), list)):
                raise ValueError("no recipe, runs and sessions in it")
        except (OSError, ValueError, KeyError, TypeError) as e:
            fail(f"{path}: not a results file of this script ({e}); pass another --json, or remove it")
        if stored != recipe:
            changed = sorted(k for k in set(stored) | set(recipe) if stored.get(k) != recipe.get(k))
            fail(f"{path}: holds runs of another recipe (differs in: {', '.join(changed)}); pass another --json, "
                 "or remove the file to start again")
    results["sessions"].append({"command": command_line(), "date": utc_now(), **machine()})
    return results


def print_sessions(results, path):
    """The machine, date and command of every invocation that added runs to the results file."""
    for session in results["sessions"]:
        print(f"machine: {session['cpu']}, {session['cpus']} CPUs, load average {session['load_average']} at "
              f"the start; {session['date']}")
        print(f"command: {session['command']}")
    print(f"results: {path}")


def machine():
    """The CPU model (from /proc/cpuinfo), the number of CPUs and the load average, as a dict."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "unknown"
    return {"cpu": model, "cpus": os.cpu_count(), "load_average": load}


def utc_now():
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def command_line():
    """This script's command line as typed, with the Python that runs it."""
    return shlex.join([sys.executable] + sys.argv)


def median(values):
    return statistics.median(values) if values else float("nan")


def markdown_table(header, rows, text_columns=1):
    """A Markdown table: header is a list of column titles, rows lists of strings; the first text_columns
    columns aligned left, the others (numbers) right."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def percent(fraction):
    return f"{100 * fraction:.2f} %"
