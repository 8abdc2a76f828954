#!/usr/bin/env python3
"""Synthetic stress corpus for the Rust preprocessing (issue 9), with open_clip's reference crops.

Every image is synthetic, drawn from a fixed seed (SEED below): hard edges and saturated
rectangles, stripes of every period from 1 to 250 pixels, checkerboards, single bright pixels,
sawtooth channels, extreme aspect ratios (1:20 and 20:1 with 4000 px sides), and each PIL mode
and file format the extension accepts (PNG 1/L/P/P+tRNS/LA/RGB/RGBA/I;16/16-bit RGB and
Adam7-interlaced, JPEG baseline/progressive/grey/CMYK, GIF P and L and animated, WebP lossy/
lossless/alpha/animated, BMP 1/4/8/16/24/32-bit and RLE4/RLE8, TIFF raw/LZW/deflate/PackBits/
palette/1-bit/L/LA/RGBA/CMYK/I;16/I;16B/JPEG-compressed). The EXIF set holds one non-square,
asymmetric image per orientation 1..8 in JPEG, PNG (eXIf), WebP (EXIF chunk) and TIFF (tag 274),
plus orientation in XMP only.

What this writes (in --out, default tests/fixtures/images/stress):

  src/<name>              The images (small: synthetic content compresses well).
  manifest.json           Per file: class, PIL format/mode/size, the orientation Pillow reads, the
                          file's sha256, and per spec ((256, bilinear), (224, bilinear), (224,
                          bicubic)) the SHA-256 of open_clip 3.3.0's 8-bit crop (u8 = round(t *
                          255), asserted within 1e-4 of an integer): "crops" of
                          `preprocess(PIL.Image.open(file))` (what `mobileclip.exif_orientation =
                          ignore` must give), and for the EXIF set "exif_apply" of
                          `preprocess(ImageOps.exif_transpose(PIL.Image.open(file)))` (`apply`).
                          Refused files with the reason (Pillow opens them, we do not).

The crops themselves are not committed (a few MB of mostly incompressible bytes): the test
(crates/engine/tests/preprocess_stress.rs) compares hashes, i.e. requires bit-exactness. To see
level differences, write them with --crops DIR and point MOBILECLIP_STRESS_CROPS at DIR.

Files that Pillow 13.0.0 opens but the extension refuses on purpose (lossless JPEG: Debian's
libjpeg-turbo 2.1.5 has no lossless decoder) are written too, with no crops, under "refused".

Run from the repository root with the reference env (see make_image_fixtures.py):

    .venv-reference/bin/python tests/reference/make_stress_corpus.py [--out DIR] [--check]

--check regenerates into a temporary directory and fails if anything differs byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np
import PIL
import torch
from PIL import Image, ImageOps, features

import open_clip
from open_clip.transform import image_transform

SEED = 20261130
SPECS = [(256, "bilinear"), (224, "bilinear"), (224, "bicubic")]


def check_versions() -> None:
    assert PIL.__version__ == "13.0.0", PIL.__version__
    assert open_clip.__version__ == "3.3.0", open_clip.__version__
    assert torch.__version__.startswith("2.15.0"), torch.__version__
    assert features.version("libjpeg_turbo") == "3.2.0", features.version("libjpeg_turbo")
    assert features.version("webp") == "1.6.0", features.version("webp")
    assert features.version("libtiff") == "4.7.2", features.version("libtiff")
    assert np.__version__ == "2.4.6", np.__version__


# ---------------------------------------------------------------- patterns (H x W x 3 uint8)

def vivid(rng) -> np.ndarray:
    """A saturated colour: each channel 0 or 255, or a random extreme."""
    c = rng.choice([0, 255], size=3)
    if rng.random() < 0.3:
        c[rng.integers(3)] = rng.integers(0, 256)
    return c.astype(np.uint8)


def p_rects(rng, w, h):
    a = np.empty((h, w, 3), np.uint8)
    a[:] = vivid(rng)
    for _ in range(rng.integers(1, 6)):
        x0, x1 = sorted(rng.integers(0, w + 1, 2))
        y0, y1 = sorted(rng.integers(0, h + 1, 2))
        a[y0:y1 + 1, x0:x1 + 1] = vivid(rng)
    return a


def p_stripes(rng, w, h, vertical=None, period=None):
    vertical = rng.random() < 0.5 if vertical is None else vertical
    period = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 13, 32, 77, 250])) if period is None else period
    c0, c1 = vivid(rng), vivid(rng)
    idx = np.arange(w if vertical else h) // period % 2
    line = np.where(idx[:, None] == 0, c0, c1)
    return np.broadcast_to(line[None, :, :] if vertical else line[:, None, :], (h, w, 3)).copy()


def p_diag(rng, w, h):
    period = int(rng.choice([2, 3, 6, 11, 40]))
    yy, xx = np.mgrid[0:h, 0:w]
    m = ((xx + yy * int(rng.choice([1, -1, 2]))) // period) % 2
    return np.where(m[..., None] == 0, vivid(rng), vivid(rng)).astype(np.uint8)


def p_checker(rng, w, h):
    c = int(rng.choice([1, 2, 3, 5, 8, 16, 33]))
    yy, xx = np.mgrid[0:h, 0:w]
    m = (xx // c + yy // c) % 2
    return np.where(m[..., None] == 0, vivid(rng), vivid(rng)).astype(np.uint8)


def p_dots(rng, w, h):
    bright = rng.random() < 0.7
    a = np.full((h, w, 3), 0 if bright else 255, np.uint8)
    n = int(rng.integers(1, 12))
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    a[ys, xs] = 255 if bright else 0
    if rng.random() < 0.5:
        a[ys, xs] = np.stack([vivid(rng) for _ in range(n)])
    return a


def p_sawtooth(rng, w, h):
    yy, xx = np.mgrid[0:h, 0:w]
    k = int(rng.choice([1, 3, 7, 16, 51]))
    a = np.empty((h, w, 3), np.uint8)
    a[..., 0] = (xx * k) % 256
    a[..., 1] = (yy * k) % 256
    a[..., 2] = ((xx + yy) * k * 3) % 256
    return a


def p_issue9(rng, w, h):
    """The file of issue 9: flat colour blocks, a saturated rectangle with vertical edges,
    250-row stripes, a sawtooth channel."""
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.where((yy // 250) % 2 == 0, 30, 220)
    a[..., 1] = (yy * 7) % 256
    a[..., 2] = np.where(xx < w // 2, 40, 200)
    x0, x1 = w // 3, 2 * w // 3
    a[h // 4 : 3 * h // 4, x0:x1] = (255, 0, 255)
    return a


def p_lines(rng, w, h):
    a = np.full((h, w, 3), vivid(rng), np.uint8)
    for _ in range(int(rng.integers(2, 8))):
        if rng.random() < 0.5:
            a[int(rng.integers(0, h)), :] = vivid(rng)
        else:
            a[:, int(rng.integers(0, w))] = vivid(rng)
    return a


def p_noise(rng, w, h):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


PATTERNS = {"rects": p_rects, "stripes": p_stripes, "diagonal": p_diag, "checker": p_checker,
            "dots": p_dots, "sawtooth": p_sawtooth, "lines": p_lines}

SIZES = [(17, 23), (64, 48), (97, 301), (300, 197), (231, 224), (224, 225), (255, 257), (513, 380),
         (640, 427), (1000, 63), (45, 700), (2, 300), (300, 2)]
EXTREME = [(200, 4000), (4000, 200), (300, 4000), (4000, 300)]


# ---------------------------------------------------------------- hand-written encoders

def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path: str, arr: np.ndarray, ctype: int, depth: int, interlace: bool = False, palette=None, trns=None,
              extra: bytes = b"") -> None:
    """PNG writer for what Pillow cannot save: 16-bit RGB(A), Adam7 interlacing. `arr` holds
    samples (H x W x C, or H x W for grey/palette); depth 8 or 16 (or 1/2/4 for grey/palette)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w, c = arr.shape

    def raw_rows(a):
        out = b""
        for y in range(a.shape[0]):
            if depth == 16:
                row = a[y].astype(">u2").tobytes()
            elif depth == 8:
                row = a[y].astype(np.uint8).tobytes()
            else:
                row = np.packbits(np.unpackbits(a[y].astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - depth:].reshape(-1)).tobytes()
            out += b"\x00" + row
        return out

    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = arr[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += raw_rows(sub)
    else:
        raw = raw_rows(arr)
    body = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0)) + extra
    if palette is not None:
        body += png_chunk(b"PLTE", bytes(palette))
    if trns is not None:
        body += png_chunk(b"tRNS", bytes(trns))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def write_bmp(path: str, width: int, height: int, bits: int, pixel_rows: list[bytes], palette=None, compression=0,
              masks=None, top_down=False, image_data: bytes | None = None) -> None:
    """BMP writer (BITMAPV4-less: 40-byte header, or 56-byte with bitfield masks incl. alpha).
    `pixel_rows` are the rows top to bottom, unpadded, already packed for `bits`."""
    if image_data is None:
        rows = pixel_rows if top_down else pixel_rows[::-1]
        image_data = b"".join(r + b"\x00" * ((-len(r)) % 4) for r in rows)
    hsize = 56 if masks is not None else 40
    pal = b"".join(bytes([b, g, r, 0]) for r, g, b in palette) if palette is not None else b""
    off = 14 + hsize + pal.__len__()
    hdr = struct.pack("<IiiHHIIiiII", hsize, width, -height if top_down else height, 1, bits, compression,
                      len(image_data), 2835, 2835, len(palette) if palette is not None else 0, 0)
    if masks is not None:
        hdr += struct.pack("<IIII", *masks)
    with open(path, "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", off + len(image_data), 0, 0, off) + hdr + pal + image_data)


def rle8(rows_bottom_up: list[np.ndarray]) -> bytes:
    out = bytearray()
    for row in rows_bottom_up:
        x = 0
        n = len(row)
        while x < n:
            run = 1
            while x + run < n and run < 255 and row[x + run] == row[x]:
                run += 1
            if run >= 3 or n - x < 3:
                out += bytes([run, int(row[x])])
                x += run
            else:
                # absolute mode: up to 255 literal pixels, padded to a word
                lit = 3
                while x + lit < n and lit < 255 and not (x + lit + 2 < n and row[x + lit] == row[x + lit + 1] == row[x + lit + 2]):
                    lit += 1
                out += bytes([0, lit]) + bytes(int(v) for v in row[x:x + lit])
                if lit % 2:
                    out += b"\x00"
                x += lit
        out += b"\x00\x00"
    out += b"\x00\x01"
    return bytes(out)


def rle4(rows_bottom_up: list[np.ndarray]) -> bytes:
    out = bytearray()
    for row in rows_bottom_up:
        x = 0
        n = len(row)
        while x < n:
            # encoded run of alternating pair (a, b): up to 255 pixels
            a = int(row[x])
            b = int(row[x + 1]) if x + 1 < n else 0
            run = 1
            while x + run < n and run < 255 and row[x + run] == (a if run % 2 == 0 else b):
                run += 1
            out += bytes([run, (a << 4) | b])
            x += run
        out += b"\x00\x00"
    out += b"\x00\x01"
    return bytes(out)


def lossless_jpeg(path: str, grey: np.ndarray) -> None:
    """A lossless JPEG (SOF3, predictor 1, 8-bit, one component) with one Huffman table that
    codes every difference category 0..16 (ITU T.81 Annex H)."""
    h, w = grey.shape
    bits = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    # canonical code: 17 symbols, lengths: 5 of 3 bits... use simple: all 5-bit codes (17 <= 32)
    bits[4] = 17
    vals = list(range(17))
    codes = {s: (i, 5) for i, s in enumerate(vals)}
    out = bytearray()
    acc, nacc = 0, 0

    def put(v, n):
        nonlocal acc, nacc
        for i in range(n - 1, -1, -1):
            acc = (acc << 1) | ((v >> i) & 1)
            nacc += 1
            if nacc == 8:
                out.append(acc)
                if acc == 0xFF:
                    out.append(0)
                acc, nacc = 0, 0

    g = grey.astype(np.int32)
    for y in range(h):
        for x in range(w):
            if x == 0 and y == 0:
                pred = 1 << 7
            elif y == 0:
                pred = g[y, x - 1]
            elif x == 0:
                pred = g[y - 1, x]
            else:
                pred = g[y, x - 1]
            d = int(g[y, x] - pred)
            d = ((d + 32768) % 65536) - 32768
            ssss = 0 if d == 0 else int(abs(d)).bit_length()
            c, n = codes[ssss]
            put(c, n)
            if ssss and ssss != 16:
                put(d if d > 0 else d + (1 << ssss) - 1, ssss)
    if nacc:
        put((1 << (8 - nacc)) - 1, 8 - nacc)
    dht = bytes([0x00]) + bytes(bits) + bytes(vals)
    seg = lambda m, d: bytes([0xFF, m]) + struct.pack(">H", len(d) + 2) + d  # noqa: E731
    sof = bytes([8]) + struct.pack(">HH", h, w) + bytes([1, 1, 0x11, 0])
    sos = bytes([1, 1, 0x00, 1, 0, 0])  # Ss = predictor 1, Se = 0, Ah/Al = 0
    with open(path, "wb") as f:
        f.write(b"\xff\xd8" + seg(0xC3, sof) + seg(0xC4, dht) + seg(0xDA, sos) + bytes(out) + b"\xff\xd9")


# ---------------------------------------------------------------- the corpus

class Corpus:
    def __init__(self, src: str):
        self.src = src
        self.files: list[dict] = []
        self.refused: list[dict] = []

    def add(self, name: str, cls: str, case: str, **extra) -> None:
        assert not any(f["name"] == name for f in self.files), name
        self.files.append({"name": name, "class": cls, "case": case, **extra})

    def path(self, name: str) -> str:
        return os.path.join(self.src, name)

    def save(self, im: Image.Image, name: str, cls: str, case: str, **kw) -> None:
        im.save(self.path(name), **kw)
        self.add(name, cls, case)


def build(c: Corpus) -> None:
    rng = np.random.default_rng(SEED)

    # --- 1. patterns x sizes, RGB PNG (the bulk of the resampling stress)
    for pname, fn in PATTERNS.items():
        for (w, h) in SIZES:
            c.save(Image.fromarray(fn(rng, w, h)), f"{pname}_{w}x{h}.png", pname, f"{pname}, RGB PNG {w}x{h}")
    for pname in ("rects", "stripes", "checker", "dots", "sawtooth", "lines"):
        for (w, h) in EXTREME:
            c.save(Image.fromarray(PATTERNS[pname](rng, w, h)), f"{pname}_{w}x{h}.png", "extreme",
                   f"{pname}, RGB PNG {w}x{h} (1:20 / 20:1 or 3:40)")
    # Stripes of 250 rows / columns across extreme sizes, both orientations.
    for (w, h) in EXTREME:
        c.save(Image.fromarray(p_stripes(rng, w, h, vertical=w > h, period=250)), f"stripes250_{w}x{h}.png", "extreme",
               f"250-pixel stripes across the long side, {w}x{h}")
    for (w, h) in [(300, 4000), (4000, 300), (300, 3000), (299, 4001), (600, 4000), (180, 2000)]:
        c.save(Image.fromarray(p_issue9(rng, w, h)), f"issue9_{w}x{h}.png", "extreme",
               f"issue 9's file: saturated rectangle, 250-row stripes, sawtooth, {w}x{h}")
    for (w, h) in [(64, 48), (37, 29), (11, 160)]:
        c.save(Image.fromarray(p_noise(rng, w, h)), f"noise_{w}x{h}.png", "noise", f"uniform noise {w}x{h}")

    # --- 2. PIL modes (PNG)
    base = p_rects(rng, 300, 197)
    saw = p_sawtooth(rng, 257, 199)
    chk = p_checker(rng, 203, 311)
    for nm, arr in (("rects", base), ("saw", saw), ("checker", chk)):
        c.save(Image.fromarray(arr).convert("L"), f"mode_L_{nm}.png", "modes", "PNG L")
        c.save(Image.fromarray(arr).convert("1", dither=Image.Dither.NONE), f"mode_1_{nm}.png", "modes", "PNG 1-bit (NEAREST)")
        c.save(Image.fromarray(arr).quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE),
               f"mode_P_{nm}.png", "modes", "PNG P (NEAREST)")
        hh, ww = arr.shape[:2]
        yy, xx = np.mgrid[0:hh, 0:ww]
        alpha = ((xx * 5 + yy * 3) % 256).astype(np.uint8)
        alpha[:, : ww // 5] = 0
        alpha[:, -ww // 5:] = 255
        c.save(Image.fromarray(np.dstack([arr, alpha]), "RGBA"), f"mode_RGBA_{nm}.png", "modes", "PNG RGBA, alpha ramps, hidden colour")
        c.save(Image.fromarray(np.dstack([np.asarray(Image.fromarray(arr).convert("L")), alpha]), "LA"), f"mode_LA_{nm}.png",
               "modes", "PNG LA")
        c.save(Image.fromarray(arr).convert("CMYK"), f"mode_CMYK_{nm}.tif", "modes", "TIFF CMYK, LZW", compression="tiff_lzw")
        g16 = (np.asarray(Image.fromarray(arr).convert("L"), dtype=np.uint16) * 131 + (xx % 7).astype(np.uint16)) % 700
        c.save(Image.fromarray(g16.astype(np.uint16)), f"mode_I16_{nm}.png", "modes", "PNG I;16, values 0..699 (clamped at 255)")
        write_png(c.path(f"mode_RGB16_{nm}.png"), arr.astype(np.uint16) * 257 - (xx % 3)[..., None].astype(np.uint16), 2, 16)
        c.add(f"mode_RGB16_{nm}.png", "modes", "PNG 16-bit RGB")
        pal = Image.fromarray(arr).quantize(32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        c.save(pal, f"mode_Ptrns_{nm}.png", "modes", "PNG P with tRNS", transparency=bytes(range(0, 256, 8)))

    # --- 3. PNG: Adam7 interlacing, every colour type, sub-byte depths
    for (w, h) in [(1, 1), (3, 5), (9, 9), (301, 197), (45, 700)]:
        a = p_checker(rng, w, h)
        write_png(c.path(f"png_adam7_rgb_{w}x{h}.png"), a, 2, 8, interlace=True)
        c.add(f"png_adam7_rgb_{w}x{h}.png", "png", f"Adam7-interlaced RGB {w}x{h}")
    a = p_sawtooth(rng, 113, 79)
    g = np.asarray(Image.fromarray(a).convert("L"))
    write_png(c.path("png_adam7_L.png"), g, 0, 8, interlace=True)
    c.add("png_adam7_L.png", "png", "Adam7 L")
    write_png(c.path("png_adam7_L16.png"), g.astype(np.uint16) * 3, 0, 16, interlace=True)
    c.add("png_adam7_L16.png", "png", "Adam7 16-bit grey (I;16)")
    write_png(c.path("png_adam7_RGBA.png"), np.dstack([a, 255 - g]), 6, 8, interlace=True)
    c.add("png_adam7_RGBA.png", "png", "Adam7 RGBA")
    write_png(c.path("png_adam7_LA.png"), np.dstack([g, (g.astype(np.uint16) * 3 % 256).astype(np.uint8)]), 4, 8, interlace=True)
    c.add("png_adam7_LA.png", "png", "Adam7 LA")
    write_png(c.path("png_adam7_RGB16.png"), a.astype(np.uint16) * 251, 2, 16, interlace=True)
    c.add("png_adam7_RGB16.png", "png", "Adam7 16-bit RGB")
    q = Image.fromarray(a).quantize(16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    idx = np.asarray(q)
    palette = q.getpalette()[: 16 * 3]
    for d in (4, 8):
        write_png(c.path(f"png_adam7_P{d}.png"), idx, 3, d, interlace=True, palette=palette)
        c.add(f"png_adam7_P{d}.png", "png", f"Adam7 palette, {d} bits")
    for d in (1, 2, 4):
        gg = (g >> (8 - d)).astype(np.uint8)
        write_png(c.path(f"png_grey{d}.png"), gg, 0, d)
        c.add(f"png_grey{d}.png", "png", f"{d}-bit grey")
        write_png(c.path(f"png_adam7_grey{d}.png"), gg, 0, d, interlace=True)
        c.add(f"png_adam7_grey{d}.png", "png", f"Adam7 {d}-bit grey")

    # --- 4. JPEG
    for i, (w, h) in enumerate([(300, 197), (231, 224), (640, 427), (4000, 200), (97, 301)]):
        a = p_rects(rng, w, h)
        for sub in (0, 1, 2):
            c.save(Image.fromarray(a), f"jpeg_rects{i}_s{sub}.jpg", "jpeg", f"JPEG subsampling {sub}, {w}x{h}", quality=90, subsampling=sub)
    a = p_checker(rng, 301, 203)
    c.save(Image.fromarray(a), "jpeg_checker_prog.jpg", "jpeg", "progressive JPEG", quality=85, progressive=True)
    c.save(Image.fromarray(a).convert("L"), "jpeg_checker_L.jpg", "jpeg", "grey JPEG", quality=90)
    c.save(Image.fromarray(a).convert("CMYK"), "jpeg_checker_cmyk.jpg", "jpeg", "CMYK JPEG", quality=90)
    c.save(Image.fromarray(p_stripes(rng, 200, 4000, vertical=False, period=250)), "jpeg_stripes_200x4000.jpg", "jpeg",
           "JPEG 1:20", quality=92)

    # --- 5. GIF (P, L, animated)
    for i, (w, h) in enumerate([(300, 197), (45, 700), (231, 224)]):
        q = Image.fromarray(p_rects(rng, w, h)).quantize(50, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        c.save(q, f"gif_P_{i}.gif", "gif", "GIF P", optimize=False)
    for i, (w, h) in enumerate([(300, 197), (17, 23)]):
        c.save(Image.fromarray(p_sawtooth(rng, w, h)).convert("L"), f"gif_L_{i}.gif", "gif", "GIF from an L image (mode L)")
    frames = [Image.fromarray(p_checker(rng, 240, 160)).quantize(32, dither=Image.Dither.NONE) for _ in range(3)]
    frames[0].save(c.path("gif_anim.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0, optimize=False)
    c.add("gif_anim.gif", "gif", "animated GIF: first frame")

    # --- 6. WebP
    for i, (w, h) in enumerate([(300, 197), (231, 224), (4000, 200)]):
        a = p_rects(rng, w, h)
        c.save(Image.fromarray(a), f"webp_lossy_{i}.webp", "webp", "WebP lossy", quality=80, method=4)
        c.save(Image.fromarray(a), f"webp_lossless_{i}.webp", "webp", "WebP lossless", lossless=True)
    a = p_checker(rng, 301, 197)
    hh, ww = a.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww]
    alpha = ((xx * 3) % 256).astype(np.uint8)
    c.save(Image.fromarray(np.dstack([a, alpha]), "RGBA"), "webp_alpha_lossy.webp", "webp", "WebP lossy + alpha", quality=80, exact=True)
    c.save(Image.fromarray(np.dstack([a, alpha]), "RGBA"), "webp_alpha_lossless.webp", "webp", "WebP lossless + alpha", lossless=True, exact=True)
    # Animated: RGB frames; RGBA frames whose first frame is transparent at the borders (the
    # encoder may store it as a sub-rectangle with an offset).
    fr = [Image.fromarray(p_rects(rng, 240, 160)) for _ in range(3)]
    fr[0].save(c.path("webp_anim_rgb.webp"), save_all=True, append_images=fr[1:], duration=80, loop=0, lossless=True)
    c.add("webp_anim_rgb.webp", "webp", "animated WebP, lossless RGB frames: first frame")
    fr = [Image.fromarray(p_checker(rng, 240, 160)) for _ in range(3)]
    fr[0].save(c.path("webp_anim_lossy.webp"), save_all=True, append_images=fr[1:], duration=80, loop=0, quality=75)
    c.add("webp_anim_lossy.webp", "webp", "animated WebP, lossy frames: first frame")
    fa = []
    for k in range(3):
        f = np.zeros((160, 240, 4), np.uint8)
        f[30 + 5 * k:120, 40:200 - 7 * k, :3] = p_rects(rng, 160 - 7 * k, 90 - 5 * k)
        f[30 + 5 * k:120, 40:200 - 7 * k, 3] = 255
        fa.append(Image.fromarray(f, "RGBA"))
    fa[0].save(c.path("webp_anim_rgba.webp"), save_all=True, append_images=fa[1:], duration=80, loop=0, lossless=True)
    c.add("webp_anim_rgba.webp", "webp", "animated WebP, RGBA, transparent borders: first frame")
    fa[0].save(c.path("webp_anim_rgba_lossy.webp"), save_all=True, append_images=fa[1:], duration=80, loop=0, quality=70)
    c.add("webp_anim_rgba_lossy.webp", "webp", "animated WebP, lossy RGBA, transparent borders: first frame")

    # --- 7. BMP
    a = p_rects(rng, 103, 67)
    c.save(Image.fromarray(a), "bmp_24.bmp", "bmp", "BMP 24-bit")
    c.save(Image.fromarray(a).convert("L"), "bmp_8_L.bmp", "bmp", "BMP 8-bit grey palette (mode L)")
    c.save(Image.fromarray(a).quantize(100, dither=Image.Dither.NONE), "bmp_8_P.bmp", "bmp", "BMP 8-bit palette")
    c.save(Image.fromarray(a).convert("1", dither=Image.Dither.NONE), "bmp_1.bmp", "bmp", "BMP 1-bit")
    h, w = a.shape[:2]
    # 4-bit palette
    q = Image.fromarray(a).quantize(16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    idx = np.asarray(q)
    pal16 = pal_of(q, 16)
    rows4 = [bytes(((idx[y, 0::2].astype(np.uint8) << 4) | np.append(idx[y, 1::2], [0] * (w % 2)).astype(np.uint8)).tolist()) for y in range(h)]
    write_bmp(c.path("bmp_4.bmp"), w, h, 4, rows4, palette=pal16)
    c.add("bmp_4.bmp", "bmp", "BMP 4-bit palette")
    # RLE8 / RLE4
    q8 = Image.fromarray(p_stripes(rng, 103, 67, vertical=True, period=5)).quantize(40, dither=Image.Dither.NONE)
    i8 = np.asarray(q8)
    pal8 = pal_of(q8, 256)
    write_bmp(c.path("bmp_rle8.bmp"), w, h, 8, [], palette=pal8, compression=1, image_data=rle8([i8[y] for y in range(h - 1, -1, -1)]))
    c.add("bmp_rle8.bmp", "bmp", "BMP RLE8")
    q8b = Image.fromarray(a).quantize(60, dither=Image.Dither.NONE)
    i8b = np.asarray(q8b)
    write_bmp(c.path("bmp_rle8_rects.bmp"), w, h, 8, [], palette=pal_of(q8b, 256),
              compression=1, image_data=rle8([i8b[y] for y in range(h - 1, -1, -1)]))
    c.add("bmp_rle8_rects.bmp", "bmp", "BMP RLE8 with absolute runs")
    write_bmp(c.path("bmp_rle4.bmp"), w, h, 4, [], palette=pal16, compression=2, image_data=rle4([idx[y] for y in range(h - 1, -1, -1)]))
    c.add("bmp_rle4.bmp", "bmp", "BMP RLE4")
    # 16-bit 5-5-5 (BI_RGB) and 5-6-5 (bitfields)
    r5, g5, b5 = (a[..., 0] >> 3).astype(np.uint16), (a[..., 1] >> 3).astype(np.uint16), (a[..., 2] >> 3).astype(np.uint16)
    v555 = (r5 << 10) | (g5 << 5) | b5
    write_bmp(c.path("bmp_16_555.bmp"), w, h, 16, [v555[y].astype("<u2").tobytes() for y in range(h)])
    c.add("bmp_16_555.bmp", "bmp", "BMP 16-bit 5-5-5")
    g6 = (a[..., 1] >> 2).astype(np.uint16)
    v565 = (r5 << 11) | (g6 << 5) | b5
    write_bmp(c.path("bmp_16_565.bmp"), w, h, 16, [v565[y].astype("<u2").tobytes() for y in range(h)], compression=3,
              masks=(0xF800, 0x07E0, 0x001F, 0))
    c.add("bmp_16_565.bmp", "bmp", "BMP 16-bit 5-6-5 bitfields")
    # 32-bit: BGRX, and bitfields with an alpha mask (RGBA)
    bgrx = np.dstack([a[..., 2], a[..., 1], a[..., 0], np.full((h, w), 7, np.uint8)])
    write_bmp(c.path("bmp_32.bmp"), w, h, 32, [bgrx[y].tobytes() for y in range(h)])
    c.add("bmp_32.bmp", "bmp", "BMP 32-bit BGRX")
    yy, xx = np.mgrid[0:h, 0:w]
    bgra = np.dstack([a[..., 2], a[..., 1], a[..., 0], ((xx * 4) % 256).astype(np.uint8)])
    write_bmp(c.path("bmp_32_alpha.bmp"), w, h, 32, [bgra[y].tobytes() for y in range(h)], compression=3,
              masks=(0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000))
    c.add("bmp_32_alpha.bmp", "bmp", "BMP 32-bit with an alpha bitfield (RGBA)")
    write_bmp(c.path("bmp_24_topdown.bmp"), w, h, 24, [a[y][:, ::-1].tobytes() for y in range(h)], top_down=True)
    c.add("bmp_24_topdown.bmp", "bmp", "BMP 24-bit top-down (negative height)")

    # --- 8. TIFF
    a = p_rects(rng, 113, 83)
    for comp in (None, "tiff_lzw", "tiff_adobe_deflate", "packbits"):
        nm = comp or "raw"
        c.save(Image.fromarray(a), f"tiff_rgb_{nm}.tif", "tiff", f"TIFF RGB {nm}", **({"compression": comp} if comp else {}))
    c.save(Image.fromarray(a).convert("L"), "tiff_L.tif", "tiff", "TIFF L")
    c.save(Image.fromarray(a).convert("1", dither=Image.Dither.NONE), "tiff_1.tif", "tiff", "TIFF 1-bit")
    c.save(Image.fromarray(a).convert("1", dither=Image.Dither.NONE), "tiff_1_packbits.tif", "tiff", "TIFF 1-bit PackBits", compression="packbits")
    for i, cols in enumerate((256, 60)):
        c.save(Image.fromarray(a).quantize(cols, dither=Image.Dither.NONE), f"tiff_P_{i}.tif", "tiff", f"TIFF palette (P), {cols} colours")
    c.save(Image.fromarray(p_sawtooth(rng, 97, 111)).quantize(200, dither=Image.Dither.NONE), "tiff_P_lzw.tif", "tiff", "TIFF palette LZW",
           compression="tiff_lzw")
    hh, ww = a.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww]
    alpha = ((yy * 5) % 256).astype(np.uint8)
    c.save(Image.fromarray(np.dstack([a, alpha]), "RGBA"), "tiff_RGBA.tif", "tiff", "TIFF RGBA")
    c.save(Image.fromarray(np.dstack([np.asarray(Image.fromarray(a).convert("L")), alpha]), "LA"), "tiff_LA.tif", "tiff", "TIFF LA")
    g16 = ((np.asarray(Image.fromarray(a).convert("L"), dtype=np.uint32) * 3 + xx) % 1000).astype(np.uint16)
    c.save(Image.fromarray(g16), "tiff_I16.tif", "tiff", "TIFF 16-bit grey, little-endian (I;16)")
    Image.frombytes("I;16B", (ww, hh), g16.astype(">u2").tobytes()).save(c.path("tiff_I16B.tif"))
    c.add("tiff_I16B.tif", "tiff", "TIFF 16-bit grey, big-endian (I;16B: Pillow resamples the bytes as little-endian)")
    small16 = (np.asarray(Image.fromarray(a).convert("L"), dtype=np.uint16))
    Image.frombytes("I;16B", (ww, hh), small16.astype(">u2").tobytes()).save(c.path("tiff_I16B_small.tif"))
    c.add("tiff_I16B_small.tif", "tiff", "TIFF I;16B, values < 256")
    for i, (w, h) in enumerate([(211, 163), (300, 197), (64, 4000)]):
        arr = p_rects(rng, w, h)
        c.save(Image.fromarray(arr), f"tiff_jpeg_rgb_{i}.tif", "tiff", "TIFF JPEG-compressed RGB (YCbCr)", compression="jpeg", quality=90)
    c.save(Image.fromarray(a).convert("L"), "tiff_jpeg_L.tif", "tiff", "TIFF JPEG-compressed grey", compression="jpeg", quality=90)

    # --- 9. EXIF orientation 1..8: JPEG, PNG (eXIf), WebP (EXIF chunk), TIFF (tag 274)
    ex = p_rects(rng, 151, 97)
    ex[:20, :30] = (255, 0, 0)  # a marker in the top-left corner: every orientation differs
    ex[-13:, -45:] = (0, 0, 255)
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        im = Image.fromarray(ex)
        c.save(im, f"exif{o}.jpg", "exif", f"JPEG, EXIF orientation {o}", quality=92, exif=exif)
        c.save(im, f"exif{o}.png", "exif", f"PNG eXIf orientation {o}", exif=exif)
        c.save(im, f"exif{o}.webp", "exif", f"WebP EXIF orientation {o}", lossless=True, exif=exif)
        c.save(im, f"exif{o}.tif", "exif", f"TIFF orientation tag {o}", tiffinfo={274: o}, compression="tiff_lzw")
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">' \
          b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    c.save(Image.fromarray(ex), "exif_xmp6.jpg", "exif", "JPEG, orientation 6 in XMP only", quality=92, xmp=xmp)
    exif = Image.Exif()
    exif[0x0112] = 3
    c.save(Image.fromarray(ex), "exif3_xmp6.jpg", "exif", "JPEG, EXIF 3 and XMP 6: EXIF wins", quality=92, exif=exif, xmp=xmp)
    c.save(Image.fromarray(ex).quantize(64, dither=Image.Dither.NONE), "exif8_P.png", "exif", "PNG P, eXIf orientation 8",
           exif=exif_with(8))
    c.save(Image.fromarray(ex).convert("L"), "exif5_L.jpg", "exif", "grey JPEG, orientation 5", quality=90, exif=exif_with(5))
    from PIL import PngImagePlugin
    xmp8 = xmp.replace(b'tiff:Orientation="6"', b'tiff:Orientation="8"')
    for zipped in (False, True):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp8.decode(), zip=zipped)
        c.save(Image.fromarray(ex), f"exif_xmp8{'_z' if zipped else ''}.png", "exif",
               f"PNG, orientation 8 in an {'compressed ' if zipped else ''}iTXt XMP chunk only", pnginfo=info)
    c.save(Image.fromarray(ex), "exif_xmp8.tif", "exif", "TIFF, orientation 8 in XMP (tag 700) only: Pillow turns it on load",
           tiffinfo={700: xmp8})

    # --- 10. refused on purpose: Pillow opens it, we do not
    lj = np.asarray(Image.fromarray(p_rects(rng, 97, 61)).convert("L"))
    lossless_jpeg(c.path("jpeg_lossless.jpg"), lj)
    with Image.open(c.path("jpeg_lossless.jpg")) as im:
        im.load()
        assert np.array_equal(np.asarray(im), lj), "Pillow does not decode the lossless JPEG to its samples"
    c.refused.append({"name": "jpeg_lossless.jpg", "error": "Unsupported",
                      "why": "lossless JPEG (SOF3): Pillow 13.0.0 decodes it with libjpeg-turbo 3.2.0; Debian's 2.1.5 cannot"})


def pal_of(q: Image.Image, n: int) -> list[tuple[int, int, int]]:
    """The first n palette entries of q, zero-padded."""
    p = q.getpalette() or []
    p = p + [0] * (3 * n - len(p))
    return [tuple(p[3 * i:3 * i + 3]) for i in range(n)]


def exif_with(o: int) -> Image.Exif:
    e = Image.Exif()
    e[0x0112] = o
    return e


# ---------------------------------------------------------------- references

def transform(size: int, interp: str):
    return image_transform(size, is_train=False, mean=(0.0,) * 3, std=(1.0,) * 3, resize_mode="shortest", interpolation=interp)


def to_u8(t: torch.Tensor, what: str) -> np.ndarray:
    x = t.numpy().astype(np.float64) * 255.0
    u8f = np.round(x)
    dev = float(np.abs(x - u8f).max())
    assert dev < 1e-4 and u8f.min() >= 0 and u8f.max() <= 255, (what, dev)
    return np.ascontiguousarray(u8f.astype(np.uint8).transpose(1, 2, 0))


def reference_crops(c: Corpus, crops_dir: str | None) -> None:
    """Per file and spec: the SHA-256 of open_clip's 8-bit crop (S*S*3 bytes, HWC RGB) under
    "crops", and for the EXIF set of the exif_transpose'd image under "exif_apply". With
    `crops_dir`, also the crops themselves as PNG (not committed: for diagnosing a mismatch)."""
    for size, interp in SPECS:
        t = transform(size, interp)
        key = f"{size}_{interp}"
        for f in c.files:
            variants = [("crops", lambda im: im)]
            if f["class"] == "exif":
                variants.append(("exif_apply", ImageOps.exif_transpose))
            for kind, pre in variants:
                with Image.open(c.path(f["name"])) as im:
                    try:
                        u8 = to_u8(t(pre(im)), f["name"])
                    except ValueError as e:
                        # Pillow 13 fails on a TIFF whose only orientation is in XMP: `open`
                        # reports the unturned size, `load` turns the pixels, and resize's box
                        # (taken before load) no longer fits. No reference exists then.
                        f.setdefault(kind + "_pillow_error", {})[key] = str(e)
                        continue
                f.setdefault(kind, {})[key] = hashlib.sha256(u8.tobytes()).hexdigest()
                if crops_dir:
                    d = os.path.join(crops_dir, kind, key)
                    os.makedirs(d, exist_ok=True)
                    Image.fromarray(u8, "RGB").save(os.path.join(d, f["name"].replace(".", "_") + ".png"))


def generate(out: str, crops_dir: str | None) -> None:
    src = os.path.join(out, "src")
    os.makedirs(src)
    c = Corpus(src)
    build(c)
    for f in c.files:
        p = c.path(f["name"])
        with Image.open(p) as im:
            f.update({"format": im.format, "mode": im.mode, "size": list(im.size),
                      "orientation": int(im.getexif().get(0x0112, 1)) if not isinstance(im.getexif().get(0x0112, 1), tuple) else 1})
            if getattr(im, "n_frames", 1) != 1:
                f["n_frames"] = im.n_frames
        f["sha256"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    for f in c.refused:
        f["sha256"] = hashlib.sha256(open(c.path(f["name"]), "rb").read()).hexdigest()
    reference_crops(c, crops_dir)
    classes = sorted({f["class"] for f in c.files})
    manifest = {
        "generator": "tests/reference/make_stress_corpus.py",
        "seed": SEED,
        "versions": {"pillow": PIL.__version__, "open_clip": open_clip.__version__, "torch": torch.__version__.split("+")[0],
                     "libjpeg-turbo": features.version("libjpeg_turbo"), "libwebp": features.version("webp"),
                     "libtiff": features.version("libtiff"), "numpy": np.__version__},
        "specs": [{"size": s, "interpolation": i, "key": f"{s}_{i}"} for s, i in SPECS],
        "crop_hash": "sha256 of the S*S*3 bytes (HWC RGB) u8 = round(open_clip tensor with mean 0, std 1 * 255); "
                     "crops: preprocess(Image.open(f)); exif_apply: preprocess(ImageOps.exif_transpose(Image.open(f)))",
        "crop_pngs": "--crops DIR writes them as DIR/<crops|exif_apply>/<key>/<name with '.' -> '_'>.png",
        "classes": {k: sum(f["class"] == k for f in c.files) for k in classes},
        "files": c.files,
        "refused": c.refused,
    }
    with open(os.path.join(out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/images/stress")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--crops", default=None, help="also write the reference crops as PNG into this directory")
    args = ap.parse_args()
    check_versions()
    with tempfile.TemporaryDirectory() as tmp:
        gen = os.path.join(tmp, "stress")
        generate(gen, args.crops)
        if args.check:
            bad = []

            def walk(cmp, prefix=""):
                bad.extend(prefix + n for n in cmp.left_only + cmp.right_only + cmp.funny_files)
                _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
                bad.extend(prefix + n for n in mismatch + errors)
                for name, sub in cmp.subdirs.items():
                    walk(sub, prefix + name + "/")

            walk(filecmp.dircmp(args.out, gen))
            if bad:
                sys.exit("differs: " + ", ".join(sorted(bad)[:50]))
            print(f"OK: {args.out} is up to date")
            return
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        shutil.copytree(gen, args.out)
    m = json.load(open(os.path.join(args.out, "manifest.json")))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(args.out) for f in fs)
    srcb = sum(os.path.getsize(os.path.join(args.out, "src", f["name"])) for f in m["files"])
    print(f"{len(m['files'])} files ({m['classes']}), {len(m['refused'])} refused; sources {srcb / 1e6:.2f} MB, "
          f"total {total / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
