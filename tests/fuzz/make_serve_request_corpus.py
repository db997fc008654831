#!/usr/bin/env python3
"""make_serve_request_corpus.py — write the seed corpus of fuzz_serve_request (tests/fuzz/corpus/serve_request/).

    /usr/bin/python3 tests/fuzz/make_serve_request_corpus.py

The seeds are committed; run this only to change them (it replaces the folder's contents). Standard library
only; the output is deterministic. fuzz_serve_request.c reads each input twice, as a request body and as the
bytes of a PNG, so the corpus holds both: JSON bodies (pixels in both scales, PNGs in base64, broken ones) and
raw PNG files (gray, RGBA with transparency, 16-bit, palette, one whose header claims 100000x100000 pixels).
"""
import base64
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDER = os.path.join(HERE, "corpus", "serve_request")


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, colour_type, bit_depth, rows, extra=b""):
    """rows: the raw scanlines (each with its filter byte)."""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def digit(size):
    """A small '1'-like stroke in a size x size gray image, bytes."""
    return bytes(255 if abs(x - size // 2) <= size // 8 and size // 6 <= y < size - size // 6 else 0
                 for y in range(size) for x in range(size))


def gray_png(size):
    pixels = digit(size)
    return png(size, size, 0, 8, b"".join(b"\x00" + pixels[y * size:(y + 1) * size] for y in range(size)))


def main():
    seeds = {}
    pixels = digit(28)
    seeds["pixels_bytes.json"] = ('{"pixels": [' + ",".join(map(str, pixels)) + "]}").encode()
    seeds["pixels_unit_center.json"] = ('{"pixels": [' + ",".join("%.3g" % (v / 255) for v in pixels)
                                        + '], "center": true}').encode()
    seeds["png_28_gray.json"] = ('{"png": "' + base64.b64encode(gray_png(28)).decode() + '", "center": false}').encode()
    seeds["png_40_prefix.json"] = ('{"png": "data:image/png;base64,' + base64.b64encode(gray_png(40)).decode()
                                   + '"}').encode()
    seeds["bad_truncated.json"] = b'{"pixels": [0, 0.5, 1'
    seeds["bad_both.json"] = b'{"pixels": [], "png": "", "center": 1}'
    seeds["bad_base64.json"] = b'{"png": "iVBORw0KGgo=A==="}'
    seeds["gray_28.png"] = gray_png(28)
    rgba = bytes(c for v in digit(12) for c in (0, 0, 0, v))  # dark strokes on a transparent canvas
    seeds["rgba_12_transparent.png"] = png(12, 12, 6, 8, b"".join(b"\x00" + rgba[y * 48:(y + 1) * 48] for y in range(12)))
    wide = bytes(v for v in digit(8) for _ in (0, 1))  # 16-bit gray: each byte twice
    seeds["gray16_8.png"] = png(8, 8, 0, 16, b"".join(b"\x00" + wide[y * 16:(y + 1) * 16] for y in range(8)))
    palette = chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff")
    seeds["palette_8.png"] = png(8, 8, 3, 8, b"".join(b"\x00" + bytes(1 if v else 0 for v in digit(8)[y * 8:(y + 1) * 8])
                                                      for y in range(8)), palette)
    seeds["bad_bomb_header.png"] = png(100000, 100000, 0, 8, b"\x00" * 64)
    if os.path.isdir(FOLDER):
        shutil.rmtree(FOLDER)
    os.makedirs(FOLDER)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(FOLDER, name), "wb") as f:
            f.write(data)
    print(f"{FOLDER}: {len(seeds)} files, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()
