#!/usr/bin/env python3
"""torch_serve.py — the PyTorch baseline of chapter 08's benchmark: the same checkpoint served over HTTP by a
small Python server (the standard library's http.server and PyTorch), with the same POST /predict as mnist_serve.

    /usr/bin/python3 chapters/08-serving/bench/torch_serve.py --checkpoint mnist.safetensors --port 8081
    /usr/bin/python3 chapters/08-serving/bench/torch_serve.py --checkpoint mnist.safetensors --port 0 \\
        --max-batch 32 --batch-window-us 1000

    # the model alone: median time of the forward pass for batches of 1 and 8 (no HTTP), then exit
    /usr/bin/python3 chapters/08-serving/bench/torch_serve.py --checkpoint mnist.safetensors --time-forward 1,8

It prints "listening on http://HOST:PORT" when it is ready (with --port 0 the system picks the port), like
mnist_serve, so that serve_bench can start either the same way. What it serves:

  POST /predict   {"pixels": [784 numbers, in [0, 1] or 0-255]} -> {"digit", "probabilities", "latency_us",
                  "batch_size"}; errors are 400 {"error": "..."}. (No PNG: the benchmark sends pixels, so that
                  both servers are timed on the network and the model, not on image decoding.)
  GET /healthz    "ok"

One model, one worker thread. Every HTTP connection has its own thread (ThreadingHTTPServer); it puts its image
in a queue and waits. The worker takes the first waiting image, then keeps taking more until it has --max-batch
of them or --batch-window-us has passed since the first, runs the network once on the whole batch (eval mode, no
gradients) and hands every request its row. --max-batch 1 is the plain server that calls the model one request
at a time. The network is chapter 07's PyTorch twin of the C network, and the checkpoint is read by chapter 07's
load_checkpoint.py (which checks every field).
"""
import argparse
import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "07-mnist-gpu"))
import load_checkpoint  # noqa: E402  (exits with a clear message when torch or numpy is missing)
from load_checkpoint import MEAN, STD, torch  # noqa: E402

MAX_BODY = 1 << 20          # bytes: 784 numbers as JSON take well under 16 KiB


class Request:
    """One image waiting for the worker, and the slot its answer comes back in."""

    def __init__(self, image):
        self.image = image                      # (1, 28, 28) normalised
        self.done = threading.Event()
        self.answer = None


class Batcher:
    """The single worker thread: gathers requests into batches and runs the model on them."""

    def __init__(self, model, device, max_batch, window_s):
        self.model, self.device = model, device
        self.max_batch, self.window_s = max_batch, window_s
        self.waiting = queue.Queue()
        threading.Thread(target=self.run, daemon=True).start()

    def predict(self, image):
        request = Request(image)
        self.waiting.put(request)
        request.done.wait()
        return request.answer

    def gather(self):
        batch = [self.waiting.get()]            # block until there is work
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self.waiting.get(timeout=remaining) if remaining > 0 else self.waiting.get_nowait())
            except queue.Empty:
                break
        return batch

    @torch.no_grad()
    def run(self):
        while True:
            batch = self.gather()
            x = torch.stack([r.image for r in batch]).to(self.device)             # (B, 1, 28, 28)
            probabilities = torch.softmax(self.model(x), dim=1).cpu().tolist()   # (B, 10)
            for request, p in zip(batch, probabilities):
                request.answer = (p, len(batch))
                request.done.set()


def image_from_pixels(values):
    """784 numbers -> the normalised (1, 28, 28) tensor; 0-255 when any value is above 1."""
    if not isinstance(values, list) or len(values) != 784:
        raise ValueError("\"pixels\" must be an array of 784 numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 255 for v in values):
        raise ValueError("\"pixels\" must hold numbers in [0, 1] or 0-255")
    x = torch.tensor(values, dtype=torch.float32).reshape(1, 28, 28)
    if x.max() > 1:
        x = x / 255.0
    return (x - MEAN) / STD


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"               # keep-alive, as mnist_serve (the benchmark's clients reuse connections)
    batcher = None

    def log_message(self, *args):               # quiet: the benchmark sends thousands of requests
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "ok\n", "text/plain")
        else:
            self.reply(404, json.dumps({"error": f"no such page: {self.path}"}))

    def do_POST(self):
        started = time.perf_counter()
        if self.path != "/predict":
            return self.reply(404, json.dumps({"error": f"no such endpoint: {self.path}"}))
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self.reply(400, json.dumps({"error": f"the body must be 1 to {MAX_BODY} bytes"}))
        try:
            image = image_from_pixels(json.loads(self.rfile.read(length)).get("pixels"))
        except (ValueError, AttributeError) as e:
            return self.reply(400, json.dumps({"error": str(e)}))
        probabilities, batch_size = self.batcher.predict(image)
        digit = max(range(len(probabilities)), key=probabilities.__getitem__)
        self.reply(200, json.dumps({"digit": digit, "probabilities": probabilities,
                                    "latency_us": round((time.perf_counter() - started) * 1e6),
                                    "batch_size": batch_size}))


@torch.no_grad()
def time_forward(model, device, batches):
    for batch in batches:
        x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1)).to(device)
        times = []
        for i in range(55):
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 5:
                times.append(time.perf_counter() - started)
        times.sort()
        print(f"forward pass, batch {batch}: {times[len(times) // 2] * 1e3:.3f} ms (median of {len(times)})")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0: any free port")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-batch", type=int, default=1, help="1: one request at a time")
    parser.add_argument("--batch-window-us", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--time-forward", metavar="B1,B2,...",
                        help="only time the forward pass (median of 50, after 5 warm-ups) at these batch sizes")
    args = parser.parse_args()
    if args.max_batch < 1 or args.batch_window_us < 0 or args.threads < 1:
        parser.error("--max-batch and --threads must be at least 1, --batch-window-us at least 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda, but PyTorch sees no CUDA device here")
    torch.set_num_threads(args.threads)
    try:
        _, arch, tensors = load_checkpoint.read_checkpoint(args.checkpoint)
    except load_checkpoint.CheckpointError as e:
        sys.exit(f"error: {e}")
    model = load_checkpoint.build_model(arch, tensors).to(args.device).eval()
    if args.time_forward:
        return time_forward(model, args.device, [int(b) for b in args.time_forward.split(",")])
    Handler.batcher = Batcher(model, args.device, args.max_batch, args.batch_window_us * 1e-6)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
