#!/usr/bin/env python3
"""open_clip reference embeddings of the issue 9 format cases, for the SQL suite
(tests/sql/45_image_formats.sql).

With the random-weight MobileCLIP2-S0 ("mcrand v1", `mobileclip random-model --variant S0
--out DIR`; checked to hold exactly the mcrand weights), for each file of the stress corpus
(tests/fixtures/images/stress/src, make_stress_corpus.py) listed below:

  ignore: model.encode_image(preprocess(PIL.Image.open(f)), normalize=True)
  apply:  model.encode_image(preprocess(ImageOps.exif_transpose(PIL.Image.open(f))), normalize=True)

Written: tests/fixtures/models/image_formats_S0.json ({"ignore": {name: [512 floats]},
"apply": {...}, "refused": {name: reason}}). scripts/test copies it and the stress images
to /tmp/mobileclip-regress, where the SQL test reads them.

    .venv-reference/bin/python tests/reference/make_format_reference.py --model-dir /tmp/mobileclip-models/S0 [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_fixtures import float_sha256  # noqa: E402

import open_clip  # noqa: E402

STRESS = REPO / "tests/fixtures/images/stress"
OUT = REPO / "tests/fixtures/models/image_formats_S0.json"

# One file per new format case of issue 9 (and the pass-order case).
IGNORE = [
    "tiff_P_0.tif",            # palette TIFF, 256 colours
    "tiff_P_lzw.tif",          # palette TIFF, LZW
    "tiff_jpeg_rgb_0.tif",     # JPEG-compressed TIFF (YCbCr), decoded by libjpeg like libtiff
    "tiff_jpeg_L.tif",         # JPEG-compressed grey TIFF
    "tiff_I16.tif",            # 16-bit grey TIFF, little-endian (I;16)
    "tiff_I16B.tif",           # 16-bit grey TIFF, big-endian (I;16B)
    "tiff_LA.tif",             # grey + alpha TIFF
    "tiff_RGBA.tif",           # RGBA TIFF
    "exif6.tif",               # TIFF orientation 6: Pillow turns TIFFs itself
    "webp_anim_rgba.webp",     # animated WebP, first frame, RGBA with transparent borders
    "webp_anim_lossy.webp",    # animated WebP, lossy
    "png_adam7_rgb_301x197.png",  # interlaced PNG
    "png_adam7_P4.png",        # interlaced 4-bit palette PNG
    "bmp_16_555.bmp",          # BMP 16-bit 5-5-5
    "bmp_16_565.bmp",          # BMP 16-bit 5-6-5 bitfields
    "bmp_32.bmp",              # BMP 32-bit BGRX
    "bmp_32_alpha.bmp",        # BMP 32-bit with alpha
    "bmp_rle8.bmp",            # BMP RLE8
    "bmp_rle4.bmp",            # BMP RLE4
    "gif_L_0.gif",             # GIF that opens in mode L
    "issue9_300x4000.png",     # the pass-order file of issue 9
    "exif6.jpg",               # EXIF 6 JPEG, ignored (open_clip)
]
APPLY = [f"exif{o}.jpg" for o in range(1, 9)] + ["exif6.png", "exif8.webp", "exif5.tif", "exif_xmp6.jpg", "exif3_xmp6.jpg",
                                                 "exif_xmp8_z.png", "exif_xmp8.tif"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/mobileclip-models/S0"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{a.model_dir}")
    model.eval()
    want = json.loads((REPO / "tests/fixtures/models/text_S0.json").read_text())["weights"]["float32_sha256"]
    assert float_sha256(model.state_dict()) == want, "the model dir does not hold the mcrand S0 weights"
    manifest = json.loads((STRESS / "manifest.json").read_text())
    out = {"generator": "tests/reference/make_format_reference.py", "variant": "S0",
           "versions": {"torch": torch.__version__.split("+")[0], "open_clip": open_clip.__version__,
                        "pillow": Image.__version__},
           "ignore": {}, "apply": {},
           "refused": {f["name"]: f["why"] for f in manifest["refused"]}}
    for kind, names, pre in (("ignore", IGNORE, lambda im: im), ("apply", APPLY, ImageOps.exif_transpose)):
        for name in names:
            with Image.open(STRESS / "src" / name) as im:
                x = preprocess(pre(im)).unsqueeze(0)
            with torch.no_grad():
                e = model.encode_image(x, normalize=True)[0]
            # 9 significant digits: every float32 round-trips.
            out[kind][name] = [float(f"{v:.9g}") for v in e.numpy().astype(np.float32)]
    if a.check:
        old = json.loads(OUT.read_text())
        for kind in ("ignore", "apply"):
            assert old[kind].keys() == out[kind].keys(), kind
            d = max(float(np.abs(np.array(old[kind][k]) - np.array(out[kind][k])).max()) for k in out[kind])
            assert d <= 1e-6, f"{kind}: differs by {d}"
        print("OK")
        return
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT}: {len(out['ignore'])} ignore, {len(out['apply'])} apply, {len(out['refused'])} refused")


if __name__ == "__main__":
    main()
