#!/usr/bin/env python3
"""serve_bench.py — chapter 08's benchmark: throughput and latency of mnist_serve under concurrent clients, for
several dynamic-batching settings, next to a PyTorch server (torch_serve.py) serving the same checkpoint, all
measured in one run on loopback.

    /usr/bin/python3 chapters/08-serving/bench/serve_bench.py --server build/bin/mnist_serve \\
        --checkpoint mnist.safetensors
    /usr/bin/python3 chapters/08-serving/bench/serve_bench.py --server build/bin/mnist_serve \\
        --checkpoint mnist.safetensors --clients 16 --requests 4000 --rounds 3 --json serve_bench.json
    # a few seconds, to see that it runs (not a measurement):
    /usr/bin/python3 chapters/08-serving/bench/serve_bench.py --server build/bin/mnist_serve \\
        --checkpoint mnist.safetensors --requests 200 --rounds 1 --quick

What is measured, for each server setting (a row of the table):
  - the server is started on 127.0.0.1 with --port 0 (it prints its port), --device (default cpu), --threads
    (default 2) and the row's --max-batch and --batch-window-us, and waited for on GET /healthz. Both servers
    run with OMP_WAIT_POLICY=passive in their environment (--omp-wait-policy; both use OpenMP on the CPU):
    OpenMP's default lets idle worker threads spin at the end of every parallel region, which on a small
    machine takes the CPU from the threads that read requests; one extra row, "OpenMP default", shows what
    that costs mnist_serve;
  - --clients client processes (default 8; processes, not threads, so that Python's lock does not serialise
    them) each open one keep-alive HTTP/1.1 connection and send POST /predict requests one after another, each
    {"pixels": [...]} of an MNIST test image (the bundled test set, image i for request i), until --requests
    requests have been sent in all (or --time-limit seconds have passed: then the row says how many were done);
    the first 5 requests of each client are a warm-up and are not counted;
  - latency: from just before a request is sent to just after its whole answer is read, on the client; the
    table gives its 50th, 90th and 99th percentiles (nearest rank) in milliseconds; throughput: the counted
    requests divided by the time from the first counted request to the last answer; mean batch: the average
    "batch_size" the server answered with (how many requests its model call served together);
  - every answer is checked: status 200, a digit in 0-9, ten probabilities. A row with a failed request is
    marked and its figures are not used;
  - rounds: every setting once per round, in the same order, --rounds times; the table gives the median of the
    rounds' figures. The last column is the throughput against PyTorch's one-request-at-a-time server in the
    same round (the median of those ratios).

The clients run on the same machine as the server: on a small machine they take CPU from it, which the
lesson says next to the figures. It is a benchmark, not a test. Needs PyTorch for the baseline (Debian:
python3-torch python3-numpy): run it with /usr/bin/python3; --no-pytorch leaves the baseline out.
"""
import argparse
import gzip
import http.client
import json
import multiprocessing
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True                      # no __pycache__ left in the chapter folders

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
TORCH_SERVE = os.path.join(HERE, "torch_serve.py")
WARM_UP = 5                 # requests per client not counted


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.path.join(REPO_ROOT, "build", "bin", "mnist_serve"))
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of mnist_train --save")
    parser.add_argument("--data", default=os.path.join(REPO_ROOT, "data"), help="folder with the MNIST test set")
    parser.add_argument("--device", default="cpu", help="mnist_serve --device and torch_serve.py --device")
    parser.add_argument("--threads", type=int, default=2, help="the servers' --threads")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="counted requests per row")
    parser.add_argument("--time-limit", type=float, default=60, help="seconds per row at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", default="0,200,1000,5000", help="--batch-window-us values (µs) at --max-batch 32")
    parser.add_argument("--max-batches", default="1,8,64", help="--max-batch values at a 1000 µs window")
    parser.add_argument("--omp-wait-policy", default="passive",
                        help="OMP_WAIT_POLICY of both servers (default passive; 'default': leave it unset)")
    parser.add_argument("--quick", action="store_true", help="only mnist_serve 1/0 and 32/1000, PyTorch 1/0")
    parser.add_argument("--no-pytorch", action="store_true", help="leave the PyTorch baseline out")
    parser.add_argument("--json", help="write every measured figure here")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < args.clients or args.rounds < 1:
        parser.error("need --clients >= 1, --requests >= --clients, --rounds >= 1")
    return args


def settings(args):
    """[(server name, max batch, window µs, OMP_WAIT_POLICY or None)], in the order they run within a round."""
    policy = None if args.omp_wait_policy == "default" else args.omp_wait_policy
    if args.quick:
        rows = [("mnist_serve", 1, 0, policy), ("mnist_serve", 32, 1000, policy)]
    else:
        rows = [("mnist_serve", 32, int(w), policy) for w in args.windows.split(",")]
        rows += [("mnist_serve", int(b), 1000, policy) for b in args.max_batches.split(",")
                 if (int(b), 1000) != (32, 1000)]
        if policy is not None:
            rows.append(("mnist_serve", 32, 1000, None))
    if not args.no_pytorch:
        rows = [("pytorch", 1, 0, policy)] + rows + ([] if args.quick else [("pytorch", 32, 1000, policy)])
    return rows


# ---- the request bodies ---------------------------------------------------------------------------------------

def test_image_bodies(folder, count):
    """JSON bodies {"pixels": [784 values 0-255]} of the first `count` test images (cycled)."""
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
                blob = f.read()
            break
    else:
        sys.exit(f"error: {folder}: no t10k-images-idx3-ubyte(.gz)")
    images = (len(blob) - 16) // 784
    if blob[:4] != b"\x00\x00\x08\x03" or images < 1:
        sys.exit(f"error: {path}: not an IDX file of images")
    return [json.dumps({"pixels": list(blob[16 + 784 * (i % images):16 + 784 * (i % images + 1)])}).encode()
            for i in range(min(count, images))]


# ---- one server -----------------------------------------------------------------------------------------------

def start(args, name, max_batch, window_us, policy):
    if name == "mnist_serve":
        command = [args.server]
    else:
        command = [sys.executable, TORCH_SERVE]
    command += ["--checkpoint", args.checkpoint, "--device", args.device, "--host", "127.0.0.1", "--port", "0",
                "--threads", str(args.threads), "--max-batch", str(max_batch), "--batch-window-us", str(window_us)]
    log = tempfile.TemporaryFile(mode="w+")                  # the server's stderr, shown if it fails to start
    environment = dict(os.environ)
    environment.pop("OMP_WAIT_POLICY", None)
    if policy is not None:
        environment["OMP_WAIT_POLICY"] = policy
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=environment)
    deadline = time.monotonic() + 60
    for line in process.stdout:                               # skip anything printed before the port
        if line.startswith("listening on http://127.0.0.1:"):
            port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
            break
        if time.monotonic() > deadline:
            break
    else:
        port = None
    if port is None:
        process.kill()
        log.seek(0)
        sys.exit(f"error: {' '.join(command)} did not say where it listens; it wrote: {log.read()[-1000:]}")
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"error: {' '.join(command)}: GET /healthz did not answer within 60 s")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def client(job):
    """One client: `count` requests over one connection. Returns (latencies s, batch sizes, first, last, errors)."""
    port, bodies, first_index, count, deadline = job
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, batches, errors = [], [], []
    started = finished = None
    for i in range(WARM_UP + count):
        if time.monotonic() > deadline:
            break
        body = bodies[(first_index + i) % len(bodies)]
        sent = time.perf_counter()
        try:
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
            answered = time.perf_counter()
            answer = json.loads(data)
            if response.status != 200 or not 0 <= answer["digit"] <= 9 or len(answer["probabilities"]) != 10:
                raise ValueError(f"status {response.status}: {data[:200]!r}")
        except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException) as e:
            errors.append(str(e))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        if i >= WARM_UP:
            started = sent if started is None else started
            finished = answered
            latencies.append(answered - sent)
            batches.append(answer["batch_size"])
    connection.close()
    return latencies, batches, started, finished, errors


def measure(args, pool, bodies, name, max_batch, window_us, policy):
    process, port = start(args, name, max_batch, window_us, policy)
    try:
        per_client = [args.requests // args.clients + (c < args.requests % args.clients) for c in range(args.clients)]
        deadline = time.monotonic() + args.time_limit
        jobs = [(port, bodies, 997 * c, n, deadline) for c, n in enumerate(per_client)]
        results = pool.map(client, jobs)
    finally:
        stop(process)
    latencies = sorted(x for r in results for x in r[0])
    errors = [e for r in results for e in r[4]]
    if not latencies:
        return {"server": name, "max_batch": max_batch, "window_us": window_us, "omp_wait_policy": policy,
                "errors": errors or ["no answers"]}
    start_time = min(r[2] for r in results if r[2] is not None)
    end_time = max(r[3] for r in results if r[3] is not None)

    def percentile(p):                                        # nearest rank
        return latencies[max(0, -(-p * len(latencies) // 100) - 1)] * 1e3

    return {"server": name, "max_batch": max_batch, "window_us": window_us, "omp_wait_policy": policy,
            "requests": len(latencies),
            "throughput": len(latencies) / (end_time - start_time),
            "p50_ms": percentile(50), "p90_ms": percentile(90), "p99_ms": percentile(99),
            "mean_batch": statistics.fmean(b for r in results for b in r[1]), "errors": errors}


# ---- the table ------------------------------------------------------------------------------------------------

def machine(device):
    """The machine line: the CPU's model name (lscpu), its cores, the kernel, and the GPU with --device cuda."""
    def run(command):
        try:
            return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
    model = re.search(r"^Model name:\s*(.+)$", run(["lscpu"]), re.M)
    line = f"{model.group(1) if model else platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}"
    return line + (f"; {run(['nvidia-smi', '-L']).strip() or 'no nvidia-smi'}" if device == "cuda" else "")


def main():
    args = parse_args()
    bodies = test_image_bodies(args.data, 1000)
    rows = settings(args)
    rounds = []
    load_before = os.getloadavg()
    # fork would copy this process's state into the clients; spawn starts them clean
    with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
        for r in range(args.rounds):
            results = []
            for name, max_batch, window_us, policy in rows:
                result = measure(args, pool, bodies, name, max_batch, window_us, policy)
                print(f"round {r + 1}/{args.rounds}: {name:11s} max-batch {max_batch:3d} window {window_us:5d} µs"
                      f" OMP_WAIT_POLICY {policy or 'unset'}: "
                      + (f"{result['throughput']:7.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
                         f"p99 {result['p99_ms']:.2f} ms, mean batch {result['mean_batch']:.1f}"
                         if "throughput" in result else "FAILED")
                      + (f" ({len(result['errors'])} failed requests: {result['errors'][0]})" if result["errors"] else ""),
                      flush=True)
                results.append(result)
            baseline = next((x for x in results if x["server"] == "pytorch" and x["max_batch"] == 1
                             and "throughput" in x and not x["errors"]), None)
            for x in results:
                if baseline and "throughput" in x:
                    x["vs_pytorch_1"] = x["throughput"] / baseline["throughput"]
            rounds.append(results)

    load = {"before": load_before, "after": os.getloadavg()}
    print(f"\nmachine: {machine(args.device)}; {args.clients} clients on the same machine, {args.requests} requests a row, "
          f"device {args.device}, --threads {args.threads}, OMP_WAIT_POLICY {args.omp_wait_policy}; "
          f"median of {args.rounds} rounds; load average "
          f"(1, 5, 15 min) {' / '.join(f'{x:.2f}' for x in load['before'])} before, "
          f"{' / '.join(f'{x:.2f}' for x in load['after'])} after")
    print("| server | max batch | window (µs) | requests/s | p50 (ms) | p90 (ms) | p99 (ms) | mean batch | "
          "throughput vs PyTorch, one at a time |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for i, (name, max_batch, window_us, policy) in enumerate(rows):
        good = [rnd[i] for rnd in rounds if "throughput" in rnd[i] and not rnd[i]["errors"]]
        if len(good) < len(rounds):
            print(f"| {name} | {max_batch} | {window_us} | failed in {len(rounds) - len(good)} of {len(rounds)} "
                  "rounds | | | | | |")
            summary.append({"server": name, "max_batch": max_batch, "window_us": window_us, "omp_wait_policy": policy,
                            "failed": True})
            continue
        median = {key: statistics.median(x[key] for x in good)
                  for key in ("throughput", "p50_ms", "p90_ms", "p99_ms", "mean_batch", "vs_pytorch_1") if key in good[0]}
        ratio = f"{median['vs_pytorch_1']:.2f}" if "vs_pytorch_1" in median else "—"
        label = "PyTorch (torch_serve.py)" if name == "pytorch" else "mnist_serve"
        if policy is None and args.omp_wait_policy != "default":
            label += ", OpenMP default (spinning)"
        print(f"| {label} | {max_batch} | {window_us} | {median['throughput']:.0f} | {median['p50_ms']:.2f} | "
              f"{median['p90_ms']:.2f} | {median['p99_ms']:.2f} | {median['mean_batch']:.1f} | {ratio} |")
        summary.append({"server": name, "max_batch": max_batch, "window_us": window_us, "omp_wait_policy": policy,
                        **median})
    if args.json:
        temporary = args.json + ".tmp"
        with open(temporary, "w") as f:
            json.dump({"machine": machine(args.device), "clients": args.clients, "requests": args.requests,
                       "device": args.device, "threads": args.threads, "load_average": load, "rounds": rounds, "median": summary}, f,
                      indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
