#!/usr/bin/python3
"""make_table.py — Chapter 05: turn sgemm_bench's JSON into the measured tables of the lesson and of
docs/benchmarks.md. Run by hand (never at build time), with Debian's python, from the repository root:

    build/bin/sgemm_bench --json sgemm-h100.json            # on a machine with a GPU
    /usr/bin/python3 chapters/05-sgemm/make_table.py sgemm-h100.json --date 2026-11-24 \\
        --machine "NVIDIA H100 80GB HBM3, CUDA 13.0"
    /usr/bin/python3 chapters/05-sgemm/make_table.py --not-measured   # the placeholder, no figures

It rewrites the text between the markers <!-- ch05-table:begin --> and <!-- ch05-table:end --> in
chapters/05-sgemm/README.md and docs/benchmarks.md (each file written to a temporary file and renamed, so an
error leaves it as it was). A JSON written by the CPU simulator is refused: its timings mean nothing.
"""
import argparse
import json
import os
import stat
import sys
import tempfile

BEGIN = "<!-- ch05-table:begin -->"
END = "<!-- ch05-table:end -->"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = [os.path.join(ROOT, "chapters", "05-sgemm", "README.md"), os.path.join(ROOT, "docs", "benchmarks.md")]

NOT_MEASURED = ("**Not measured yet.** The kernels are checked in the CPU simulator (`ctest -L ch05`), which says "
                "nothing about speed. The figures come from `build/bin/sgemm_bench --json FILE` run on a GPU; "
                "`/usr/bin/python3 chapters/05-sgemm/make_table.py FILE --date ... --machine ...` writes them here.")


def fail(message):
    print(f"make_table.py: {message}", file=sys.stderr)
    sys.exit(1)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: cannot read the benchmark JSON: {e}")
    for key in ("device", "simulated", "peak_gflops", "problems"):
        if key not in data:
            fail(f"{path}: not sgemm_bench output (no '{key}')")
    if data["simulated"]:
        fail(f"{path}: written by the CPU simulator; its timings mean nothing about a GPU. Run sgemm_bench on a GPU.")
    return data


def table(data, problems, title):
    kernels = [k["id"] for k in problems[0]["kernels"]]
    lines = [f"**{title}** — GFLOP/s, and in parentheses % of cuBLAS in the same run", ""]
    lines.append("| kernel | " + " | ".join(p["name"] + f" ({p['m']}×{p['n']}×{p['k']})" for p in problems) + " |")
    lines.append("|---|" + "---:|" * len(problems))
    lines.append("| cuBLAS SGEMM (FP32) | " + " | ".join(f"{p['cublas']['gflops']:.0f}" for p in problems) + " |")
    for i, kid in enumerate(kernels):
        cells = []
        for p in problems:
            k = p["kernels"][i]
            share = 100.0 * k["gflops"] / p["cublas"]["gflops"] if p["cublas"]["gflops"] > 0 else 0.0
            cells.append(f"{k['gflops']:.0f} ({share:.0f} %)")
        lines.append(f"| `{kid}` | " + " | ".join(cells) + " |")
    return lines


def measured(data, date, machine):
    peak = data["peak_gflops"]
    peak_text = f"{peak:.0f} GFLOP/s" if peak > 0 else "unknown (the device did not report its clock)"
    lines = [f"**Machine:** {machine} — device `{data['device']}`, compute capability {data['compute_capability']}, "
             f"{data['sms']} SMs; FP32 peak {peak_text}. **Date:** {date}. cuBLAS: {data['cublas_math']}. "
             f"Median of {data['repeat']} runs after {data['warmup']} warm-up; every kernel checked against cuBLAS "
             f"and the CPU before it was timed.", ""]
    square = [p for p in data["problems"] if p["name"].startswith("square")]
    other = [p for p in data["problems"] if not p["name"].startswith("square")]
    if square:
        lines += table(data, square, "Square m = n = k") + [""]
    if other:
        lines += table(data, other, "The trainer's GEMMs at batch 64") + [""]
    return "\n".join(lines).rstrip()


def replace_between_markers(path, body):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        fail(f"{path}: {e}")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        fail(f"{path}: the markers {BEGIN} ... {END} are missing; nothing written")
    new = text[:start + len(BEGIN)] + "\n" + body + "\n" + text[end:]
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".make_table.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # mkstemp makes 0600; keep the file's own mode
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        fail(f"{path}: {e}")
    print(f"updated {os.path.relpath(path, ROOT)}")


def main():
    parser = argparse.ArgumentParser(description="Chapter 05: sgemm_bench JSON -> the lesson's tables")
    parser.add_argument("json", nargs="?", help="sgemm_bench --json output, from a GPU run")
    parser.add_argument("--not-measured", action="store_true", help="write the 'not measured yet' statement")
    parser.add_argument("--date", help="date of the run (required with a JSON)")
    parser.add_argument("--machine", help="the machine, in words (required with a JSON)")
    args = parser.parse_args()
    if args.not_measured == bool(args.json):
        parser.error("give either a JSON file or --not-measured")
    if args.not_measured:
        body = NOT_MEASURED
    else:
        if not args.date or not args.machine:
            parser.error("--date and --machine are required with a JSON file")
        body = measured(load(args.json), args.date, args.machine)
    for path in TARGETS:
        replace_between_markers(path, body)


if __name__ == "__main__":
    main()
