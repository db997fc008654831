#!/usr/bin/env python3
"""test_browser.py — chapter 08's drawing page in a real browser (headless Chromium driven by Selenium), talking
to a real mnist_serve on a loopback port.

    /usr/bin/python3 chapters/08-serving/tests/test_browser.py --server build/bin/mnist_serve \\
        --trainer build/bin/mnist_train --data data
    ... --checkpoint mnist.safetensors                     # use this checkpoint instead of training one
    ... --checkpoint mnist.safetensors --screenshot chapters/08-serving/figures/page.png   # the lesson's figure

What it does:
  1. trains a checkpoint with chapter 07's trainer (1 epoch on the bundled 10,000 training digits, CPU, seed 1;
     about 92 % test accuracy, some tens of seconds) into a temporary folder, unless --checkpoint names one
     (or into --checkpoint-cache FILE, which later runs reuse: ctest does so, in the build folder);
  2. starts `mnist_serve --port 0` on 127.0.0.1 and reads the port from its "listening on" line;
  3. opens http://127.0.0.1:PORT/ in headless Chromium and, for the first test image of every digit 0-9,
     presses Clear, draws the image on the canvas with pointer events (every run of ink pixels of a row, value
     >= 128, becomes one stroke from its first to its last pixel, scaled ten times up to the 280x280 canvas),
     presses Predict and waits for the answer to appear;
  4. checks that Predict on the blank canvas sends nothing and asks for a drawing; then, for each image:
       - the digit the page shows (#digit) is the digit the server answers when the test itself POSTs the same
         canvas (read back from the page with canvas.toDataURL) to /predict, and the ten probabilities the page
         drew as bars are the server's within 1e-4 (batches of different sizes may round differently);
       - the bars are the page's answer: ten probabilities summing to 1, the orange bar at the largest;
     and, over the ten images, that at least 7 drawn digits are recognised as their label. That last check is
     what makes the first one mean something: a canvas the server decodes wrongly (inverted, not centred,
     blank) gives the same wrong answer on both paths, but not seven right digits out of ten. (There is one
     image of each digit, so a server that always answers the same digit gets exactly 1 of 10, and one that
     guesses gets 7 or more with probability 1e-5; the checkpoint trained here gets 8 to 10.)
  5. with --screenshot PATH, draws the test image --screenshot-index (default: 0, a 7) last, predicts it and
     writes a PNG of the page to PATH (atomically).

Exit status: 0 passed; 1 failed; 77 skipped, with the reason, when Selenium, Chromium or chromedriver is missing
(Debian: apt-get install chromium chromium-driver python3-selenium). Run it with Debian's /usr/bin/python3.
"""
import argparse
import base64
import gzip
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
sys.dont_write_bytecode = True                # no __pycache__ left in the chapter's folders
from serve_bench import stop  # noqa: E402  (SIGTERM, then SIGKILL after 10 s; the standard library only)

SKIP = 77
CANVAS = 280                # the page's canvas, pixels per side
SCALE = CANVAS // 28        # canvas pixels per MNIST pixel
INK_THRESHOLD = 128         # an MNIST pixel at least this bright is traced
MIN_RECOGNISED = 7          # of the ten drawn digits, at least this many must be predicted as their label
PROBABILITY_TOLERANCE = 1e-4


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def skip(message):
    print(f"SKIP: {message}")
    sys.exit(SKIP)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="the mnist_serve program")
    parser.add_argument("--trainer", help="chapter 07's mnist_train (to train a checkpoint when none is given)")
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX files (the bundled data/)")
    parser.add_argument("--checkpoint", help="a checkpoint of mnist_train (default: train a small one)")
    parser.add_argument("--checkpoint-cache", metavar="FILE",
                        help="train into FILE once and reuse it on later runs (delete it to train again)")
    parser.add_argument("--device", default="cpu", help="mnist_serve --device (default: cpu)")
    parser.add_argument("--screenshot", help="write a PNG of the page, after drawing one digit, here")
    parser.add_argument("--screenshot-index", type=int, default=0, help="test image drawn for the screenshot")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    if not args.checkpoint and not args.trainer:
        parser.error("give --checkpoint FILE or --trainer mnist_train")
    if args.checkpoint_cache and args.checkpoint:
        parser.error("--checkpoint and --checkpoint-cache exclude each other")
    return args


# ---- the test images ------------------------------------------------------------------------------------------

def read_idx_bytes(path, magic):
    """The dimensions and the payload of an IDX file of unsigned bytes (.gz or plain)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        blob = f.read()
    ndim = magic & 0xFF
    if len(blob) < 4 + 4 * ndim or struct.unpack(">I", blob[:4])[0] != magic:
        fail(f"{path}: not an IDX file with magic number {magic}")
    dims = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
    return dims, blob[4 + 4 * ndim:]


def find_idx(folder, stem):
    for path in (os.path.join(folder, stem + ".gz"), os.path.join(folder, stem)):
        if os.path.exists(path):
            return path
    fail(f"{os.path.join(folder, stem)}(.gz): not found")


def first_image_of_each_digit(folder):
    """[(test index, label, 28 rows of 28 pixel values)] for the first test image of every digit 0-9."""
    (count, rows, cols), pixels = read_idx_bytes(find_idx(folder, "t10k-images-idx3-ubyte"), 2051)
    (label_count,), labels = read_idx_bytes(find_idx(folder, "t10k-labels-idx1-ubyte"), 2049)
    if (rows, cols) != (28, 28) or label_count != count or len(pixels) != count * 784:
        fail(f"{folder}: the test set is not 28x28 images with one label each")
    chosen = {}
    for index in range(count):
        chosen.setdefault(labels[index], index)
        if len(chosen) == 10:
            break
    return [(index, label, image_rows(pixels, index)) for label, index in sorted(chosen.items())]


def image_rows(pixels, index):
    start = index * 784
    return [pixels[start + 28 * r:start + 28 * (r + 1)] for r in range(28)]


def ink_strokes(rows):
    """Runs of ink pixels, row by row: [(x0, y0, x1, y1)] in canvas pixels, the centres of the first and last
    pixel of each run."""
    strokes = []
    for r, row in enumerate(rows):
        c = 0
        while c < 28:
            if row[c] >= INK_THRESHOLD:
                start = c
                while c + 1 < 28 and row[c + 1] >= INK_THRESHOLD:
                    c += 1
                y = r * SCALE + SCALE // 2
                strokes.append((start * SCALE + SCALE // 2, y, c * SCALE + SCALE // 2, y))
            c += 1
    return strokes


# ---- the server -----------------------------------------------------------------------------------------------

def train_checkpoint(trainer, data, path):
    command = [trainer, "--device", "cpu", "--data", data, "--epochs", "1",
               "--test-limit", "500", "--seed", "1", "--save", path]
    print("training:", " ".join(command), flush=True)
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    if result.returncode != 0 or not os.path.exists(path):
        fail(f"{trainer} exited with status {result.returncode}: {result.stderr.strip()[-500:]}")
    return path


def start_server(server, checkpoint, device):
    """Starts mnist_serve on an ephemeral loopback port; returns (process, base URL)."""
    command = [server, "--checkpoint", checkpoint, "--device", device, "--host", "127.0.0.1", "--port", "0"]
    print("starting:", " ".join(command), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True)
    lines = queue.Queue()                     # a thread reads stdout, so that a silent server cannot block us

    def read_lines():
        for line in process.stdout:
            lines.put(line.rstrip())
        lines.put(None)
    threading.Thread(target=read_lines, daemon=True).start()
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith("listening on http://127.0.0.1:"):
            return process, line.split("listening on ", 1)[1].strip().rstrip("/")
    process.kill()
    process.wait()
    fail(f"{server} did not print 'listening on http://127.0.0.1:PORT' within 30 s (status {process.returncode}; "
         f"it printed: {seen[-5:]})")


def post_png(url, data_url):
    body = json.dumps({"png": data_url, "center": True}).encode()
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        fail(f"POST /predict of the page's canvas: HTTP {e.code}: {e.read().decode(errors='replace')}")


# ---- the browser ----------------------------------------------------------------------------------------------

def open_browser(args):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip(f"{sys.executable} cannot import selenium (Debian: apt-get install python3-selenium)")
    for path, package in ((args.chromium, "chromium"), (args.chromedriver, "chromium-driver")):
        if not os.access(path, os.X_OK):
            skip(f"{path} is missing (Debian: apt-get install {package})")
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=800,600", "--force-device-scale-factor=1", "--no-first-run",
                 "--disable-extensions", "--disable-background-networking"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(args.chromedriver), options=options)


def load_page(driver, url, server):
    """Opens the server's page; a server that has exited (its stderr, above, says why) fails the test cleanly."""
    from selenium.common.exceptions import WebDriverException
    try:
        driver.get(url + "/")
    except WebDriverException as e:
        status = server.poll()
        fail(f"the browser could not open {url}/: {e.msg}" +
             (f" (the server has exited with status {status})" if status is not None else ""))


def draw(driver, pad, strokes):
    """Each stroke as one pointer press, move and release (W3C actions: Chromium fires pointer events)."""
    from selenium.webdriver.common.action_chains import ActionChains
    actions = ActionChains(driver, duration=0)
    for x0, y0, x1, y1 in strokes:
        # Selenium's offsets are from the centre of the element.
        actions.move_to_element_with_offset(pad, x0 - CANVAS // 2, y0 - CANVAS // 2).click_and_hold()
        actions.move_to_element_with_offset(pad, x1 - CANVAS // 2, y1 - CANVAS // 2).release()
    actions.perform()


def predict_on_page(driver):
    """Presses Predict and waits for the page's answer (window.lastPrediction, set when the bars are drawn)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.find_element(By.ID, "predict").click()
    try:
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return window.lastPrediction != null || document.getElementById('error').textContent !== ''"))
    except Exception:
        fail("the page showed no answer within 30 s of pressing Predict")
    error = driver.find_element(By.ID, "error").text
    if error:
        fail(f"the page shows an error: {error}")
    digit_text = driver.find_element(By.ID, "digit").text
    bars = driver.execute_script(
        "return [...Array(10).keys()].map(d => {"
        "  const bar = document.getElementById('bar-' + d);"
        "  return [parseFloat(bar.dataset.probability), bar.classList.contains('best')]; });")
    latency = driver.find_element(By.ID, "latency").text
    return digit_text, bars, latency


def check_page_answer(name, digit_text, bars, latency, server_answer):
    if not digit_text.isdigit():
        fail(f"{name}: #digit shows {digit_text!r}, not a digit")
    digit = int(digit_text)
    if digit != server_answer["digit"]:
        fail(f"{name}: the page shows {digit}, the server answers {server_answer['digit']} for the same canvas")
    probabilities = [p for p, _ in bars]
    if not all(p == p for p in probabilities):                        # NaN: the bar has no probability
        fail(f"{name}: a bar has no probability: {probabilities}")
    if not abs(sum(probabilities) - 1) <= 1e-3:
        fail(f"{name}: the bars' probabilities sum to {sum(probabilities)}, not 1")
    worst = max(abs(p - q) for p, q in zip(probabilities, server_answer["probabilities"]))
    if not worst <= PROBABILITY_TOLERANCE:
        fail(f"{name}: the page's bars differ from the server's probabilities by {worst:.3g} "
             f"(page {probabilities}, server {server_answer['probabilities']})")
    best = [d for d, (_, is_best) in enumerate(bars) if is_best]
    if best != [digit]:
        fail(f"{name}: the highlighted bar is {best}, the digit is {digit}")
    if not latency.isdigit():
        fail(f"{name}: #latency shows {latency!r}, not a number of microseconds")
    return digit


def save_screenshot(driver, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".png")
    os.close(handle)
    try:
        if not driver.save_screenshot(temporary):
            fail(f"{path}: the browser could not take a screenshot")
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)                    # mkstemp makes it private; a figure is for everyone
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    print(f"wrote {path}")


def main():
    args = parse_args()
    driver = open_browser(args)                       # first: a missing browser skips before any training
    work = tempfile.mkdtemp(prefix="test_browser.")
    server = None
    try:
        if args.checkpoint:
            checkpoint = args.checkpoint
        elif args.checkpoint_cache and os.path.exists(args.checkpoint_cache):
            checkpoint = args.checkpoint_cache                   # trained by an earlier run
            print(f"reusing {checkpoint} (delete it to train again)", flush=True)
        else:                                                    # mnist_train --save writes atomically
            checkpoint = train_checkpoint(args.trainer, args.data,
                                          args.checkpoint_cache or os.path.join(work, "browser-test.safetensors"))
        server, url = start_server(args.server, checkpoint, args.device)
        images = first_image_of_each_digit(args.data)
        load_page(driver, url, server)
        from selenium.webdriver.common.by import By
        pad = driver.find_element(By.ID, "pad")
        # A blank canvas is not sent: the page asks for a drawing (the server would answer some digit for it).
        driver.find_element(By.ID, "predict").click()
        blank = driver.execute_script("return [document.getElementById('error').textContent, window.lastPrediction];")
        if blank != ["draw a digit first", None]:
            fail(f"Predict on a blank canvas: the page shows {blank[0]!r} and answer {blank[1]!r}, expected "
                 "'draw a digit first' and no answer")
        recognised = 0
        for index, label, rows in images:
            name = f"test image {index} (a {label})"
            driver.find_element(By.ID, "clear").click()
            draw(driver, pad, ink_strokes(rows))
            digit_text, bars, latency = predict_on_page(driver)
            canvas_png = driver.execute_script("return document.getElementById('pad').toDataURL('image/png');")
            png = base64.b64decode(canvas_png[22:]) if canvas_png.startswith("data:image/png;base64,") else b""
            if len(png) < 33 or png[:8] != b"\x89PNG\r\n\x1a\n":
                fail(f"{name}: the canvas did not give a PNG")
            width, height, bit_depth, colour_type = struct.unpack(">IIBB", png[16:26])
            digit = check_page_answer(name, digit_text, bars, latency, post_png(url, canvas_png))
            recognised += digit == label
            print(f"{name}: drawn with {len(ink_strokes(rows))} strokes (canvas: a {width}x{height} PNG, "
                  f"{len(png)} bytes, colour type {colour_type}, {bit_depth} bits), the page and the server say {digit}")
        if not recognised >= MIN_RECOGNISED:
            fail(f"only {recognised} of the 10 drawn digits were recognised (at least {MIN_RECOGNISED} expected): "
                 "the canvas is not decoded as the digit that was drawn")
        print(f"ok: the page shows the server's answer for all 10 drawings; {recognised} of 10 are their label")
        if args.screenshot:
            driver.find_element(By.ID, "clear").click()
            # pixel values of the chosen test image, read again (it need not be one of the ten)
            (count, _, _), pixels = read_idx_bytes(find_idx(args.data, "t10k-images-idx3-ubyte"), 2051)
            if not 0 <= args.screenshot_index < count:
                fail(f"--screenshot-index {args.screenshot_index}: the test set has {count} images")
            draw(driver, pad, ink_strokes(image_rows(pixels, args.screenshot_index)))
            predict_on_page(driver)
            driver.execute_script("window.scrollTo(0, 0);")
            save_screenshot(driver, args.screenshot)
    finally:
        driver.quit()
        if server is not None:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
