#!/usr/bin/env python3
"""Image corpus and open_clip reference crops for the Rust preprocessing (issue 5).

What this makes (all in tests/fixtures/images/):

  src/<name>.<ext>        The test images: real photos bundled in the scikit-image wheel
                          (no download), downscaled, and edge cases derived from them with
                          Pillow (JPEG subsamplings, progressive, grey, CMYK, EXIF orientation;
                          PNG RGB/L/P/P+tRNS/4-bit P/RGBA/LA/1-bit/16-bit; GIF; WebP; BMP; TIFF;
                          tiny, upscaled, exact-size, round-half-even crop offsets, extreme
                          aspect ratios). 16-bit RGB/RGBA PNGs are written by a small PNG
                          writer below (Pillow has no 16-bit RGB mode to save from).
  crops/<S>_<interp>/<name>.png
                          The reference crop as 8-bit RGB for (256, bilinear), (224, bilinear),
                          (224, bicubic): open_clip's eval transform
                          `open_clip.transform.image_transform(S, is_train=False, mean=(0,0,0),
                          std=(1,1,1), resize_mode='shortest', interpolation=interp)` applied to
                          `PIL.Image.open(path)`, inverted as u8 = round(t * 255). The script
                          asserts that every t * 255 is within 1e-4 of an integer, and that
                          (u8 / 255 - mean) / std computed in float32 the way ToTensor + Normalize
                          do reproduces open_clip's tensor bit-exactly, for mean/std 0/1 and for
                          OpenAI mean/std (all files, all three specs).
  manifest.json           Versions, the specs, and per source file: name, PIL format, PIL mode,
                          size, sha256, the edge case it covers, the sha256 of each crop.
  README.md               Where the photos come from and their licences.

The reference decoders are those of Pillow 13.0.0's wheel (libjpeg-turbo 3.2.0, zlib-ng,
libwebp 1.6.0, libtiff 4.7.2).

Requirements: the reference env (`scripts/setup-bench-env .venv-reference`)
plus the scikit-image wheel for its bundled photos only (skimage is never imported, so its
dependencies are not needed):

    .venv-reference/bin/pip install --no-deps scikit-image==0.26.0

Run from the repository root:

    .venv-reference/bin/python tests/reference/make_image_fixtures.py

Options: --out DIR (default tests/fixtures/images); --check (regenerate into a temporary
directory and fail if any file differs byte for byte from --out; writes nothing).
Deterministic for the pinned versions (asserted at start-up).
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import importlib.util
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
from PIL import Image, features

import open_clip
from open_clip.transform import image_transform

SPECS = [(256, "bilinear"), (224, "bilinear"), (224, "bicubic")]
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

PHOTOS = {
    # name in skimage/data: (licence note)
    "astronaut.png": "Eileen Collins, NASA Great Images database; public domain (no known copyright restrictions)",
    "coffee.png": "Cup of coffee, photographed by Rachel Michetti; CC0",
    "chelsea.png": "Chelsea the cat, photographed by Stefan van der Walt; CC0",
    "rocket.jpg": "Launch of DSCOVR on Falcon 9, SpaceX; public domain (CC0)",
    "camera.png": "Camera man, photographed by Lav Varshney; CC0",
}


def check_versions() -> None:
    assert PIL.__version__ == "13.0.0", PIL.__version__
    assert open_clip.__version__ == "3.3.0", open_clip.__version__
    assert torch.__version__.startswith("2.15.0"), torch.__version__
    assert features.version("libjpeg_turbo") == "3.2.0", features.version("libjpeg_turbo")
    assert features.version("webp") == "1.6.0", features.version("webp")
    assert features.version("libtiff") == "4.7.2", features.version("libtiff")
    assert np.__version__ == "2.4.6", np.__version__


def skimage_data_dir() -> str:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-image is not installed: .venv-reference/bin/pip install --no-deps scikit-image==0.26.0")
    return os.path.join(spec.submodule_search_locations[0], "data")


def load_photos() -> dict[str, Image.Image]:
    d = skimage_data_dir()
    out = {}
    for name in PHOTOS:
        with Image.open(os.path.join(d, name)) as im:
            im.load()
            out[name.split(".")[0]] = im.copy()
    return out


def down(im: Image.Image, w: int, h: int) -> Image.Image:
    return im.resize((w, h), Image.Resampling.LANCZOS)


def write_png16(path: str, arr: np.ndarray) -> None:
    """A minimal PNG writer for 16-bit RGB (colour type 2) / RGBA (6), filter 0, no interlace."""
    h, w, c = arr.shape
    ctype = {3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def build_sources(src: str) -> list[tuple[str, str]]:
    """Writes the corpus into src/; returns [(file name, edge case)]."""
    ph = load_photos()
    astro, coffee, chelsea, rocket, camera = (ph[k] for k in ("astronaut", "coffee", "chelsea", "rocket", "camera"))
    # Working sizes: odd and non-square so that JPEG chroma edges and crop offsets are exercised.
    coffee_m = down(coffee, 453, 302)
    chelsea_m = down(chelsea, 361, 240)
    chelsea_s = down(chelsea, 181, 120)
    rocket_m = down(rocket, 509, 340)
    astro_m = down(astro.crop((40, 0, 512, 400)), 307, 260)
    camera_m = down(camera.crop((0, 60, 512, 452)), 301, 230)
    out: list[tuple[str, str]] = []

    def save(im: Image.Image, name: str, case: str, **kw) -> None:
        im.save(os.path.join(src, name), **kw)
        out.append((name, case))

    # --- JPEG ---
    save(coffee_m, "jpeg_420.jpg", "baseline JPEG, 4:2:0 chroma subsampling, odd width", quality=90, subsampling=2)
    save(chelsea_m, "jpeg_444.jpg", "baseline JPEG, 4:4:4 (no subsampling)", quality=92, subsampling=0)
    save(rocket_m, "jpeg_422.jpg", "baseline JPEG, 4:2:2 chroma subsampling", quality=88, subsampling=1)
    save(astro_m, "jpeg_progressive.jpg", "progressive JPEG, 4:2:0", quality=85, subsampling=2, progressive=True)
    save(camera_m, "jpeg_gray.jpg", "greyscale JPEG (mode L)", quality=90)
    # CMYK with a real black channel (Pillow's own RGB->CMYK leaves K = 0): K = min(C, M, Y).
    rgb = np.asarray(down(coffee, 301, 201), dtype=np.int32)
    cmy = 255 - rgb
    k = cmy.min(axis=2, keepdims=True)
    cmyk = np.concatenate([cmy - k // 2, k], axis=2).clip(0, 255).astype(np.uint8)
    save(Image.fromarray(cmyk, "CMYK"), "jpeg_cmyk.jpg", "CMYK JPEG (Adobe marker, inverted samples)", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    save(chelsea_m, "jpeg_exif6.jpg", "JPEG with EXIF orientation 6: must NOT be rotated", quality=90, exif=exif)
    save(rocket_m, "jpeg_restart.jpg", "baseline JPEG with restart markers every 2 MCU rows", quality=85, restart_marker_rows=2)

    # --- PNG ---
    save(chelsea_s, "png_rgb.png", "PNG 8-bit RGB")
    save(camera_m, "png_gray.png", "PNG 8-bit grey (mode L)")
    save(coffee_m.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).resize((302, 201), Image.Resampling.NEAREST),
         "png_palette.png", "PNG palette (P), 256 colours: resized with NEAREST in P mode")
    pal = astro_m.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    save(pal, "png_palette_trns.png", "PNG palette with tRNS alpha table (transparency ignored by convert('RGB'))",
         transparency=bytes([0, 64, 128, 200] + [255] * 60))
    save(down(chelsea, 271, 180).quantize(16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE),
         "png_palette_4bit.png", "PNG palette, 4 bits per index", bits=4)

    a = np.asarray(astro_m.convert("RGB")).copy()
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, : w // 3] = 0  # fully transparent, colour underneath kept (not black)
    alpha[:, w // 3 : 2 * w // 3] = (xx[:, w // 3 : 2 * w // 3] * 3 % 256).astype(np.uint8)  # ramps
    alpha[(yy - h // 2) ** 2 + (xx - 5 * w // 6) ** 2 < (h // 5) ** 2] = 0  # a transparent disc
    rgba = np.dstack([a, alpha])
    save(Image.fromarray(rgba, "RGBA"), "png_rgba_hidden.png", "PNG RGBA: fully transparent areas hiding non-black colour, alpha ramps")
    g = np.asarray(camera_m)
    la_alpha = np.where(xx[: g.shape[0], : g.shape[1]] < g.shape[1] // 4, 0, (yy[: g.shape[0], : g.shape[1]] * 2 + 40) % 256).astype(np.uint8)
    save(Image.fromarray(np.dstack([g, la_alpha]), "LA"), "png_la.png", "PNG grey + alpha (LA): premultiplied resize")
    save(camera_m.convert("1"), "png_1bit.png", "PNG 1-bit (mode 1, dithered): NEAREST resize")
    g16 = np.asarray(camera_m, dtype=np.uint16)
    third = g16.shape[1] // 3
    i16 = np.concatenate([g16[:, :third], g16[:, third : 2 * third] * 64 // 63, g16[:, 2 * third :] * 257], axis=1)
    i16[: g16.shape[0] // 4, third : 2 * third] //= 3
    save(Image.fromarray(i16.astype(np.uint16)), "png_gray16.png", "PNG 16-bit grey (I;16): resized in 16 bits, clamped to 255 by convert('RGB')")
    c16 = np.asarray(down(coffee, 160, 107), dtype=np.uint16)
    hh, ww = c16.shape[:2]
    yy16, xx16 = np.mgrid[0:hh, 0:ww]
    low = ((xx16 * 37 + yy16 * 11) % 256).astype(np.uint16)
    rgb16 = c16 * 256 + low[..., None]
    write_png16(os.path.join(src, "png_rgb16.png"), rgb16)
    out.append(("png_rgb16.png", "PNG 16-bit RGB: Pillow keeps the high byte (no rounding)"))
    a16 = (np.where(xx16 < ww // 4, 0, 40000 + yy16 * 150) + low).astype(np.uint16)
    write_png16(os.path.join(src, "png_rgba16.png"), np.dstack([rgb16, a16]))
    out.append(("png_rgba16.png", "PNG 16-bit RGBA: high bytes, then premultiplied resize"))

    # --- GIF ---
    frames = []
    base = down(chelsea, 181, 120).quantize(255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    for i in range(3):
        f = np.asarray(base).copy()
        f[10 + 20 * i : 50 + 20 * i, 30:100] = 255  # transparent block, moving
        fr = Image.fromarray(f, "P")
        fr.putpalette(base.getpalette() + [200, 30, 160])  # index 255: a vivid colour, not black
        frames.append(fr)
    frames[0].save(os.path.join(src, "gif_anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0,
                   transparency=255, disposal=2, optimize=False)
    out.append(("gif_anim.gif", "animated GIF, 3 frames, transparency index: first frame, palette colour under transparency"))
    save(down(coffee, 171, 114).quantize(200, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG),
         "gif_static.gif", "single-frame GIF", optimize=False)

    # --- WebP ---
    save(rocket_m, "webp_lossy.webp", "WebP lossy (VP8)", quality=80, method=4)
    save(down(astro, 170, 170), "webp_lossless.webp", "WebP lossless (VP8L)", lossless=True, quality=80, method=4)
    save(Image.fromarray(rgba, "RGBA"), "webp_alpha.webp", "WebP lossy with alpha (VP8 + ALPH)", quality=80, method=4, exact=True)

    # --- BMP ---
    save(down(coffee, 161, 107), "bmp_24.bmp", "BMP 24-bit")
    save(down(astro, 150, 150).quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE), "bmp_8bit.bmp", "BMP 8-bit palette")

    # --- TIFF ---
    save(down(rocket, 151, 101), "tiff_rgb.tif", "TIFF RGB, uncompressed")
    save(down(coffee, 181, 121), "tiff_lzw.tif", "TIFF RGB, LZW", compression="tiff_lzw")
    save(Image.fromarray(cmyk, "CMYK").resize((151, 101), Image.Resampling.LANCZOS), "tiff_cmyk.tif", "TIFF CMYK: resized in CMYK, naive CMYK->RGB")

    # --- sizes ---
    save(Image.new("RGB", (1, 1), (201, 87, 13)), "tiny_1x1.png", "1x1 image")
    save(down(rocket, 3, 700), "tiny_3x700.png", "3x700: huge upscale, long side 59733 at S=256")
    save(down(coffee, 700, 3), "tiny_700x3.png", "700x3: huge upscale, wide")
    save(down(chelsea, 67, 99), "small_upscale.png", "smaller than the target: upscaling")
    save(down(astro, 256, 256), "exact_256.png", "exactly 256x256: Pillow returns a copy at S=256 (no filtering)")
    save(down(coffee, 336, 224), "exact_224.png", "short side exactly 224: no resize at S=224, crop only")
    save(down(chelsea, 224, 229), "crop_half_224x229.png", "S=224: no resize, crop offset (229-224)/2 = 2.5 -> 2 (round half even)")
    save(down(rocket, 261, 256), "crop_half_261x256.png", "S=256: no resize, crop offset 2.5 -> 2 (round half even)")
    save(down(coffee, 448, 459), "crop_half_448x459.png", "S=224: long side int(229.5) = 229, offset 2.5 -> 2; S=256: int(262.28)")
    save(down(camera.convert("RGB"), 233, 224), "crop_half_233x224.png", "S=224: crop offset 4.5 -> 4 (round half even)")
    save(down(coffee.crop((0, 150, 600, 230)), 700, 60), "wide_700x60.png", "very wide aspect (11.7:1)")
    save(down(rocket.crop((250, 0, 330, 427)), 50, 600), "tall_50x600.png", "very tall aspect (1:12)")
    return out


def transform(size: int, interp: str, mean, std):
    return image_transform(size, is_train=False, mean=mean, std=std, resize_mode="shortest", interpolation=interp)


def renormalise(u8_chw: np.ndarray, mean, std) -> torch.Tensor:
    """(u8 / 255 - mean) / std in float32, exactly as ToTensor + Normalize compute it."""
    t = torch.from_numpy(u8_chw.copy()).to(torch.float32).div(255)
    m = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return t.sub_(m).div_(s)


def build_crops(src: str, crops: str, files: list[str]) -> tuple[dict, float]:
    sha = {}
    worst = 0.0
    for size, interp in SPECS:
        d = os.path.join(crops, f"{size}_{interp}")
        os.makedirs(d)
        t01 = transform(size, interp, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        tai = transform(size, interp, OPENAI_MEAN, OPENAI_STD)
        for name in files:
            with Image.open(os.path.join(src, name)) as im:
                t = t01(im)
            with Image.open(os.path.join(src, name)) as im:
                t_openai = tai(im)
            assert t.shape == (3, size, size), (name, t.shape)
            x = t.numpy().astype(np.float64) * 255.0
            u8f = np.round(x)
            dev = float(np.abs(x - u8f).max())
            assert dev < 1e-4 and u8f.min() >= 0 and u8f.max() <= 255, (name, dev)
            u8 = u8f.astype(np.uint8)
            for mean, std, ref in (((0.0,) * 3, (1.0,) * 3, t), (OPENAI_MEAN, OPENAI_STD, t_openai)):
                diff = float((renormalise(u8, mean, std) - ref).abs().max())
                worst = max(worst, diff)
                assert diff == 0.0, f"{name} {size} {interp}: renormalised u8 differs from open_clip by {diff}"
            out = os.path.join(d, name.rsplit(".", 1)[0] + ".png")
            Image.fromarray(np.ascontiguousarray(u8.transpose(1, 2, 0)), "RGB").save(out, optimize=True)
            sha.setdefault(name, {})[f"{size}_{interp}"] = hashlib.sha256(open(out, "rb").read()).hexdigest()
    return sha, worst


README = """# Image corpus for the preprocessing tests

Generated by `tests/reference/make_image_fixtures.py` (see its docstring); do not edit by hand.

`src/` holds the test images, `crops/<S>_<interp>/<name>.png` the reference 8-bit RGB crops
from open_clip 3.3.0's eval transform on Pillow 13.0.0, `manifest.json` what each file covers.

## Photos

All photos come from the sample data bundled in the scikit-image 0.26.0 wheel
(`skimage/data/`, shipped in the wheel, no download), downscaled and re-encoded here:

{photos}

scikit-image itself is BSD-3-Clause; the images' own terms are those above (from
`skimage/data/_fetchers.py`). Every other file here is derived from these photos or synthetic.
"""


def generate(out: str) -> None:
    src = os.path.join(out, "src")
    crops = os.path.join(out, "crops")
    os.makedirs(src)
    cases = build_sources(src)
    names = [n for n, _ in cases]
    assert len(set(names)) == len(names)
    sha, worst = build_crops(src, crops, names)
    entries = []
    for name, case in cases:
        p = os.path.join(src, name)
        with Image.open(p) as im:
            fmt, mode, size = im.format, im.mode, list(im.size)
            n_frames = getattr(im, "n_frames", 1)
        e = {"name": name, "format": fmt, "mode": mode, "size": size,
             "bytes": os.path.getsize(p), "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest(),
             "case": case, "crops_sha256": sha[name]}
        if n_frames != 1:
            e["n_frames"] = n_frames
        entries.append(e)
    manifest = {
        "generator": "tests/reference/make_image_fixtures.py",
        "versions": {"pillow": PIL.__version__, "open_clip": open_clip.__version__, "torch": torch.__version__.split("+")[0],
                     "libjpeg-turbo": features.version("libjpeg_turbo"), "libwebp": features.version("webp"),
                     "libtiff": features.version("libtiff"), "numpy": np.__version__},
        "specs": [{"size": s, "interpolation": i, "dir": f"crops/{s}_{i}"} for s, i in SPECS],
        "crop_encoding": "8-bit RGB PNG; u8 = round(open_clip tensor with mean 0, std 1 * 255); "
                         "(u8/255 - mean)/std in float32 reproduces open_clip bit-exactly (checked for 0/1 and OpenAI mean/std)",
        "max_renormalisation_error": worst,
        "files": entries,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    photos = "\n".join(f"- `{k}`: {v}" for k, v in PHOTOS.items())
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(README.format(photos=photos))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/images")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    check_versions()
    with tempfile.TemporaryDirectory() as tmp:
        gen = os.path.join(tmp, "images")
        generate(gen)
        if args.check:
            cmp = filecmp.dircmp(args.out, gen)
            bad = []

            def walk(c, prefix=""):
                bad.extend(prefix + n for n in c.left_only + c.right_only + c.funny_files)
                _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
                bad.extend(prefix + n for n in mismatch + errors)
                for name, sub in c.subdirs.items():
                    walk(sub, prefix + name + "/")

            walk(cmp)
            if bad:
                sys.exit("differs: " + ", ".join(sorted(bad)))
            print(f"OK: {args.out} is up to date")
            return
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        shutil.copytree(gen, args.out)
    m = json.load(open(os.path.join(args.out, "manifest.json")))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(args.out) for f in fs)
    for e in m["files"]:
        print(f"{e['name']:24} {e['format']:5} {e['mode']:6} {e['size'][0]:4}x{e['size'][1]:<4} {e['bytes']:8}  {e['case']}")
    print(f"{len(m['files'])} files, {total / 1e6:.2f} MB in {args.out}; max renormalisation error {m['max_renormalisation_error']}")


if __name__ == "__main__":
    main()
