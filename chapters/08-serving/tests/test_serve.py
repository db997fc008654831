"""test_serve.py — chapter 08's server tests: mnist_serve on an ephemeral loopback port, spoken to over HTTP.

    /usr/bin/python3 chapters/08-serving/tests/test_serve.py CASE --server build/bin/mnist_serve \\
        --reference build/bin/test_serve_model_sim --checkpoint ckpt.safetensors --data data

CASE is one of (ctest runs each as ch08.serve.CASE, with the checkpoint the ch08.train_checkpoint test trains):
  predict         every image mnist_train evaluated (the checkpoint's test images) sent as 784 bytes: the same
                  digit as chapter 03's forward pass (test_serve_model reference) and probabilities within 1e-5,
                  and the accuracy mnist_train recorded in the checkpoint; the same image as 0..1 floats, as a
                  28x28 PNG (gray, RGBA, inverted, on a transparent canvas) answers the same bits; a 280x280
                  drawing of it, centred by the server, mostly the same digit
  batching        batching off (--max-batch 1) and on (--max-batch 64, 20 ms window) answer the same bits, and
                  batches of more than one image did form
  bad_input       each malformed request answers its 4xx with a JSON error naming the problem, and the next
                  request is answered; a silent client is disconnected after --timeout; a client that leaves
                  mid-request does not disturb the server
  concurrency     16 clients x 200 requests on keep-alive connections: none lost, each answered with its own
                  image's result; /metrics counts them all
  sigterm         SIGTERM while 16 requests wait in a batch: all 16 are answered, then the server exits 0
  bad_checkpoint  a truncated, a damaged, another architecture's, another format's and a missing checkpoint are
                  refused at start, naming the file

Python's standard library only (http.client, socket, zlib). Exit 0 pass, 1 fail.
"""
import argparse
import base64
import gzip
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

TOLERANCE = 1e-5
CLIENT_TIMEOUT = 20  # seconds a client waits for an answer (one takes milliseconds; under ASan well under 1 s)
SERVERS = []  # every server started, so that a failure shows what they printed


def fail(message):
    print(f"FAIL: {message}", flush=True)
    for server in SERVERS:
        print(f"--- stderr of {server.command}:\n{server.errors()}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


# ---- data and reference --------------------------------------------------------------------------------------

def load_test_images(data):
    """The bundled MNIST test set: (list of 784-byte images, list of labels)."""
    def read(name):
        for candidate in (name + ".gz", name):
            path = os.path.join(data, candidate)
            if os.path.exists(path):
                with (gzip.open if candidate.endswith(".gz") else open)(path, "rb") as f:
                    return f.read()
        fail(f"{data}: no {name}[.gz]")
    images, labels = read("t10k-images-idx3-ubyte"), read("t10k-labels-idx1-ubyte")
    count = struct.unpack(">I", images[4:8])[0]
    return [images[16 + 784 * i:16 + 784 * (i + 1)] for i in range(count)], list(labels[8:8 + count])


def load_reference(args, n):
    """Chapter 03's forward pass over the first n test images (test_serve_model reference)."""
    out = subprocess.run([args.reference, "reference", args.checkpoint, args.data, str(n)], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    _, recorded, measured, count = out[0].split()
    rows = []
    for line in out[1:]:
        fields = line.split()
        rows.append((int(fields[2]), [float(p) for p in fields[3:]]))
    return float(recorded), float(measured), int(count), rows


def checkpoint_test_count(args):
    return load_reference(args, 1)[2]


# ---- the server ----------------------------------------------------------------------------------------------

class Server:
    def __init__(self, args, *extra):
        self.stderr = tempfile.TemporaryFile()
        command = [args.server, "--checkpoint", args.checkpoint, "--device", "cpu", "--host", "127.0.0.1",
                   "--port", "0", "--threads", "2", *extra]
        self.command = " ".join(command)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        SERVERS.append(self)
        deadline = time.time() + 30
        self.port = None
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", line)
            if match:
                self.port = int(match.group(1))
                break
        if self.port is None:
            self.process.kill()
            fail(f"{self.command}: no 'listening on http://127.0.0.1:PORT' line")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # drain the rest

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def connection(self, timeout=CLIENT_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self):
        """SIGTERM; the server must exit 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            fail(f"{self.command}: still running 30 s after SIGTERM")
        check(status == 0, f"{self.command}: exit status {status} after SIGTERM; stderr: {self.errors()}")


def request(connection, method, path, body=None, headers=None):
    """One request on a (keep-alive) connection: (status, parsed JSON or text, headers)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    kind = response.getheader("Content-Type", "")
    payload = json.loads(data) if kind.startswith("application/json") else data.decode()
    return response.status, payload, response


def predict(connection, body):
    status, answer, _ = request(connection, "POST", "/predict", body, {"Content-Type": "application/json"})
    check(status == 200, f"POST /predict answered {status}: {answer}")
    check(set(answer) == {"digit", "probabilities", "latency_us", "batch_size"}, f"unexpected answer {answer}")
    return answer


def describe(error):
    """An exception in words; a client's time-out says so plainly."""
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"no answer within {CLIENT_TIMEOUT} s (the server hangs?)"
    return f"{type(error).__name__}: {error}"


def close_to(got, want):
    return len(got) == len(want) and all(abs(g - w) <= TOLERANCE for g, w in zip(got, want))


# ---- PNG (a minimal encoder: IHDR, one IDAT, IEND) --------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_encode(width, height, channels, pixels):
    """pixels: bytes, row-major, `channels` bytes per pixel (1 gray, 4 RGBA), 8 bits each."""
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + pixels[y * width * channels:(y + 1) * width * channels] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def png_body(png, center, prefix=True):
    text = base64.b64encode(png).decode()
    return {"png": ("data:image/png;base64," if prefix else "") + text, "center": center}


# ---- the cases ------------------------------------------------------------------------------------------------

def case_predict(args, images, labels):
    recorded, measured, count, reference = load_reference(args, checkpoint_test_count(args))
    check(recorded == measured, f"the checkpoint records test accuracy {recorded}, cnn_evaluate gives {measured}")
    server = Server(args, "--max-batch", "16", "--batch-window-us", "500")
    results = answers(server, images, list(range(count)), 8)
    correct = 0
    for i in range(count):
        answer = results[i][0]
        digit, probabilities = reference[i]
        check(answer["digit"] == digit, f"test image {i}: digit {answer['digit']}, the forward pass says {digit}")
        check(close_to(answer["probabilities"], probabilities),
              f"test image {i}: probabilities {answer['probabilities']}, expected {probabilities} (within {TOLERANCE})")
        correct += answer["digit"] == labels[i]
    check(correct / count == recorded, f"accuracy {correct}/{count} over HTTP; mnist_train recorded {recorded}")
    print(f"{count} test images over HTTP: the forward pass's digits, probabilities within {TOLERANCE}; "
          f"accuracy {100 * correct / count:.2f} % as mnist_train recorded")

    # The same image in other forms: the same bits.
    connection = server.connection()
    for i in range(20):
        image = images[i]
        want = predict(connection, {"pixels": list(image)})["probabilities"]
        forms = {
            "0..1 floats": {"pixels": [v / 255 for v in image]},
            "0..255 floats": {"pixels": [float(v) for v in image]},
            "gray PNG": png_body(png_encode(28, 28, 1, image), False),
            "gray PNG, no data: prefix": png_body(png_encode(28, 28, 1, image), False, prefix=False),
            "RGBA PNG": png_body(png_encode(28, 28, 4, bytes(c for v in image for c in (v, v, v, 255))), False),
            "inverted PNG": png_body(png_encode(28, 28, 1, bytes(255 - v for v in image)), False),
            "transparent PNG": png_body(png_encode(28, 28, 4, bytes(c for v in image for c in (0, 0, 0, v))), False),
        }
        for name, body in forms.items():
            got = predict(connection, body)["probabilities"]
            check(got == want, f"test image {i} as {name}: {got}, as bytes: {want}")
    print("20 test images as 0..1 and 0..255 floats, gray, RGBA, inverted and transparent PNGs: the same bits")

    # Drawn bigger and off-centre (a 280x280 canvas, the digit 10x larger in a corner): the server's MNIST
    # centring brings it back; the digit should mostly be the one of the original image.
    same = 0
    for i in range(50):
        canvas = bytearray(280 * 280)
        for y in range(28):
            for x in range(28):
                v = images[i][y * 28 + x]
                for dy in range(6):
                    row = (y * 6 + dy + 3) * 280 + 100 + x * 6
                    canvas[row:row + 6] = bytes([v]) * 6
        answer = predict(connection, png_body(png_encode(280, 280, 1, bytes(canvas)), True))
        same += answer["digit"] == reference[i][0]
    check(same >= 40, f"a test image drawn 6x larger off-centre and centred by the server: {same}/50 give the "
                      f"digit of the original (expected >= 40)")
    print(f"50 test images drawn 6x larger off-centre, centred by the server: {same}/50 the original's digit")

    # "center": true on an MNIST image (already centred) changes little.
    answer = predict(connection, {"pixels": list(images[0]), "center": True})
    check(answer["digit"] == reference[0][0], f"test image 0 re-centred: digit {answer['digit']}")
    connection.close()
    server.stop()


def answers(server, images, indices, clients):
    """Send images[indices] from `clients` threads on keep-alive connections; returns {index: answer}."""
    results, errors = {}, []
    lock = threading.Lock()

    def client(part):
        try:
            connection = server.connection()
            for i in part:
                answer = predict(connection, {"pixels": list(images[i])})
                with lock:
                    results.setdefault(i, []).append(answer)
            connection.close()
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(describe(e))

    threads = [threading.Thread(target=client, args=(indices[c::clients],)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"client errors: {errors[:3]}")
    return results


def case_batching(args, images, labels):
    indices = list(range(200))
    off = Server(args, "--max-batch", "1", "--batch-window-us", "0")
    unbatched = answers(off, images, indices, 16)
    off.stop()
    on = Server(args, "--max-batch", "64", "--batch-window-us", "20000")
    batched = answers(on, images, indices, 16)
    on.stop()
    for i in indices:
        check(unbatched[i][0]["batch_size"] == 1, f"--max-batch 1 answered a batch of {unbatched[i][0]['batch_size']}")
        check(batched[i][0]["probabilities"] == unbatched[i][0]["probabilities"],
              f"test image {i}: batched {batched[i][0]['probabilities']} != alone {unbatched[i][0]['probabilities']}")
    largest = max(a[0]["batch_size"] for a in batched.values())
    check(largest > 1, "with 16 clients and a 20 ms window no batch held more than one image")
    print(f"200 images from 16 clients: batching off and on (batches up to {largest}) give the same bits")


def raw_exchange(port, data, timeout=10):
    """Send raw bytes, read until the server closes: the response text."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def case_bad_input(args, images, labels):
    server = Server(args, "--timeout", "2")
    good = {"pixels": list(images[0])}
    want = predict(server.connection(), good)
    valid_png = png_encode(28, 28, 1, images[0])
    bomb = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + png_chunk(b"IEND", b""))
    damaged = bytearray(valid_png)
    damaged[40] ^= 0xFF  # inside the IDAT: its CRC no longer matches
    cases = [
        ("malformed JSON", "POST", "/predict", '{"pixels": [1, 2', 400, "malformed JSON"),
        ("empty body", "POST", "/predict", "", 400, "malformed JSON"),
        ("not an object", "POST", "/predict", "[1, 2, 3]", 400, "JSON object"),
        ("wrong length", "POST", "/predict", {"pixels": [0] * 783}, 400, "783 values"),
        ("too long", "POST", "/predict", {"pixels": [0] * 785}, 400, "785 values"),
        ("a string in pixels", "POST", "/predict", {"pixels": ["0"] * 784}, 400, "not a number"),
        ("null in pixels", "POST", "/predict", {"pixels": [None] * 784}, 400, "not a number"),
        ("negative value", "POST", "/predict", {"pixels": [-0.5] + [0] * 783}, 400, "[0, 1] or [0, 255]"),
        ("value over 255", "POST", "/predict", {"pixels": [256] + [0] * 783}, 400, "[0, 1] or [0, 255]"),
        ("NaN", "POST", "/predict", '{"pixels": [NaN' + ", 0" * 783 + "]}", 400, "malformed JSON"),
        ("Infinity", "POST", "/predict", '{"pixels": [Infinity' + ", 0" * 783 + "]}", 400, "malformed JSON"),
        ("1e999", "POST", "/predict", '{"pixels": [1e999' + ", 0" * 783 + "]}", 400, "malformed JSON"),
        ("duplicate key", "POST", "/predict", '{"pixels": [], "pixels": []}', 400, "malformed JSON"),
        ("unknown field", "POST", "/predict", {"pixel": [0] * 784}, 400, "unknown field"),
        ("unknown field, its name cut inside a UTF-8 character", "POST", "/predict",
         ('{"' + "a" * 59 + '\u00e9": 1}').encode(), 400, "not be valid UTF-8"),
        ("not UTF-8", "POST", "/predict", b'{"pixels": [\xff]}', 400, "malformed JSON"),
        ("neither field", "POST", "/predict", {"center": True}, 400, "missing"),
        ("both fields", "POST", "/predict", {"pixels": [0] * 784, "png": ""}, 400, "not both"),
        ("center not a boolean", "POST", "/predict", {"pixels": [0] * 784, "center": 1}, 400, "true or false"),
        ("png not a string", "POST", "/predict", {"png": 5}, 400, "base64 string"),
        ("png not base64", "POST", "/predict", {"png": "data:image/png;base64,@@@@"}, 400, "base64"),
        ("png bad padding", "POST", "/predict", {"png": "iVBORw0KGgo="[:-1]}, 400, "base64"),
        ("not a PNG", "POST", "/predict", png_body(b"GIF89a" + b"\x00" * 40, True), 400, "PNG"),
        ("truncated PNG", "POST", "/predict", png_body(valid_png[:len(valid_png) // 2], True), 400, "PNG"),
        ("damaged PNG", "POST", "/predict", png_body(bytes(damaged), True), 400, "PNG"),
        ("decompression bomb", "POST", "/predict", png_body(bomb, True), 400, "at most 1024x1024"),
        ("PNG of the wrong size", "POST", "/predict", png_body(png_encode(56, 56, 1, bytes(56 * 56)), False), 400,
         "must be 28x28"),
        ("unknown path", "GET", "/nowhere", None, 404, "no such path"),
        ("GET /predict", "GET", "/predict", None, 405, "POST"),
        ("DELETE /metrics", "DELETE", "/metrics", None, 405, "GET"),
        ("POST /healthz", "POST", "/healthz", "x", 405, "GET"),
    ]
    for name, method, path, body, status, words in cases:
        connection = server.connection()
        got, payload, response = request(connection, method, path, body)
        check(got == status, f"{name}: answered {got}, expected {status}: {payload}")
        check(isinstance(payload, dict) and set(payload) == {"error"} and words in payload["error"],
              f"{name}: the answer {payload!r} should be {{\"error\": \"...{words}...\"}}")
        if status == 405:
            check(response.getheader("Allow"), f"{name}: a 405 without an Allow header")
        connection.close()
        answer = predict(server.connection(), good)
        check(answer["probabilities"] == want["probabilities"], f"after {name}: the next request answered {answer}")
    print(f"{len(cases)} bad requests: each its 4xx and a JSON error naming the problem; the server answers on")

    # A declared body over the limit: 413 at once, before the body is sent (the server then closes).
    text = raw_exchange(server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (9 << 20))
    check(text.startswith("HTTP/1.1 413") and '"error":"the body is' in text, f"a 9 MiB Content-Length: {text!r}")
    # A chunked body (no Content-Length) over the limit: read, dropped, 413.
    connection = server.connection()
    connection.putrequest("POST", "/predict")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    block = b" " * (1 << 20)
    for _ in range(9):
        connection.send(b"%x\r\n" % len(block) + block + b"\r\n")
    connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    check(response.status == 413, f"a 9 MiB chunked body answered {response.status}")
    connection.close()

    # A client that goes silent in the middle of its request is disconnected after --timeout (2 s).
    started = time.time()
    text = raw_exchange(server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"pix", 15)
    waited = time.time() - started
    check(1.5 <= waited <= 8, f"a silent client was disconnected after {waited:.1f} s; --timeout is 2 s")
    check("200 OK" not in text, f"a silent client got {text[:80]!r}")
    # Clients that leave: mid-body, and right after sending a whole request (its answer has nowhere to go).
    for data in (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"pixels\": [0, ",
                 b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(json.dumps(good))).encode() + b"\r\n\r\n" + json.dumps(good).encode()):
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(data)
            s.close()
    time.sleep(0.5)
    answer = predict(server.connection(), good)
    check(answer["probabilities"] == want["probabilities"], f"after clients left: {answer}")
    print("a silent client is disconnected after --timeout; clients that leave mid-request do no harm")
    server.stop()


def case_concurrency(args, images, labels):
    count = checkpoint_test_count(args)
    _, _, _, reference = load_reference(args, count)
    server = Server(args, "--max-batch", "32", "--batch-window-us", "2000")
    clients, per_client = 16, 200
    import random
    rng = random.Random(8)
    indices = [rng.randrange(count) for _ in range(clients * per_client)]
    results = answers(server, images, indices, clients)
    got = sum(len(v) for v in results.values())
    check(got == clients * per_client, f"{got} answers for {clients * per_client} requests")
    for i, list_of_answers in results.items():
        for answer in list_of_answers:
            check(answer["digit"] == reference[i][0] and close_to(answer["probabilities"], reference[i][1]),
                  f"test image {i} was answered {answer}: not its own result {reference[i]}")
    status, metrics, _ = request(server.connection(), "GET", "/metrics")
    check(status == 200, f"GET /metrics answered {status}")
    counted = re.search(r'^mnist_serve_requests_total\{code="200"\} (\d+)$', metrics, re.M)
    check(counted and int(counted.group(1)) == clients * per_client, f"/metrics counts {counted and counted.group(1)} "
          f"answers with status 200, expected {clients * per_client}")
    batches = re.search(r"^mnist_serve_batch_size_count (\d+)$", metrics, re.M)
    images_seen = re.search(r"^mnist_serve_batch_size_sum (\d+)$", metrics, re.M)
    check(batches and images_seen and int(images_seen.group(1)) == clients * per_client,
          "/metrics: the batch sizes do not add up to the requests")
    print(f"{clients} clients x {per_client} requests: all answered, each with its own image's result "
          f"({batches.group(1)} forward passes)")
    server.stop()


def case_sigterm(args, images, labels):
    _, _, _, reference = load_reference(args, 16)
    server = Server(args, "--max-batch", "64", "--batch-window-us", "1000000")  # a batch waits 1 s
    results, errors = {}, []

    def client(i):
        try:
            results[i] = predict(server.connection(), {"pixels": list(images[i])})
        except BaseException as e:  # noqa: BLE001
            errors.append(f"image {i}: {describe(e)}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.4)  # every request sent and waiting in the batch
    server.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    check(not errors, f"requests in flight at SIGTERM were lost: {errors[:3]}")
    for i in range(16):
        check(close_to(results[i]["probabilities"], reference[i][1]), f"image {i} at SIGTERM: {results[i]}")
    try:
        status = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail("the server was still running 30 s after SIGTERM")
    check(status == 0, f"exit status {status} after SIGTERM; stderr: {server.errors()}")
    sizes = sorted({r["batch_size"] for r in results.values()})
    print(f"SIGTERM with 16 requests waiting in a batch: all 16 answered (batch sizes {sizes}), exit status 0")
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        fail("the port still accepts connections after the server exited")
    except OSError:
        pass


def case_bad_checkpoint(args, images, labels):
    with open(args.checkpoint, "rb") as f:
        original = f.read()
    header_length = struct.unpack("<Q", original[:8])[0]
    header = json.loads(original[8:8 + header_length])
    data = original[8 + header_length:]

    def with_metadata(**changes):
        h = json.loads(json.dumps(header))
        h["__metadata__"].update(changes)
        text = json.dumps(h, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + data

    damaged = bytearray(original)
    damaged[8 + header_length + len(data) // 2] ^= 0x40  # a weight's bit: the data's CRC no longer matches
    with tempfile.TemporaryDirectory(prefix="ch08-checkpoints-") as folder:
        refuse_checkpoints(args, folder, original, damaged, with_metadata)


def refuse_checkpoints(args, folder, original, damaged, with_metadata):
    cases = {
        "truncated.safetensors": original[:len(original) // 2],
        "damaged.safetensors": bytes(damaged),
        "other-width.safetensors": with_metadata(hidden="64"),
        "other-size.safetensors": with_metadata(image_size="32"),
        "other-format.safetensors": with_metadata(format="someone-elses-model"),
        "empty.safetensors": b"",
    }
    for name, content in cases.items():
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(content)
    cases["missing.safetensors"] = None
    for name in cases:
        path = os.path.join(folder, name)
        run = subprocess.run([args.server, "--checkpoint", path, "--device", "cpu", "--port", "0"],
                             capture_output=True, text=True, timeout=60)
        check(run.returncode != 0, f"{name}: mnist_serve started (status {run.returncode}): {run.stdout}")
        check("listening" not in run.stdout, f"{name}: mnist_serve listened: {run.stdout}")
        check(path in run.stderr, f"{name}: the message does not name the file: {run.stderr!r}")
        print(f"{name}: refused: {run.stderr.strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", choices=["predict", "batching", "bad_input", "concurrency", "sigterm",
                                         "bad_checkpoint"])
    parser.add_argument("--server", required=True)
    parser.add_argument("--reference", required=True, help="test_serve_model (its reference command)")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    if not os.path.exists(args.checkpoint):
        fail(f"{args.checkpoint}: no such checkpoint (ctest trains it in ch08.train_checkpoint)")
    images, labels = load_test_images(args.data)
    try:
        globals()["case_" + args.case](args, images, labels)
    except (OSError, http.client.HTTPException, ValueError) as e:
        fail(describe(e))
    finally:
        for server in SERVERS:
            if server.process.poll() is None:
                server.process.kill()
    print("PASS")


if __name__ == "__main__":
    main()
