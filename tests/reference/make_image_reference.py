#!/usr/bin/env python3
"""open_clip reference image embeddings of the mcrand test models (tests/fixtures/models/image_<V>.json).

For each variant V, the full-size random model written by make_model_fixtures.py to
MODELS_DIR/<V> (Hugging Face layout; regenerable bit-exactly with
`mobileclip random-model --variant V --out DIR`) is loaded the way users load the HF repo,
`open_clip.create_model_and_transforms('local-dir:<dir>')`, and checked to hold exactly the mcrand
weights (float32 SHA-256 equal to the one recorded in text_<V>.json). Then for each image in
IMAGES (files of tests/fixtures/images/src, made by make_image_fixtures.py):

  pixels = preprocess(PIL.Image.open(file))          # the transform open_clip returns for V
  emb    = model.encode_image(pixels, normalize=True) # fp32, no_grad

and it is checked that `pixels` equals, bit for bit, the committed reference crop
tests/fixtures/images/crops/<size>_<interp>/<name>.png normalised as float32 (u8/255 - mean)/std,
so the Rust parity test can feed exactly open_clip's pixels to the tower ("same pixels") and,
separately, run its own preprocessing from the file bytes ("end to end").

Written: tests/fixtures/models/image_<V>.json with the image names, the preprocessing spec, the
normalised embeddings, the norms before normalisation, the spread (pairwise cosines: a parity
figure on embeddings that are all alike would prove nothing), and how far a one-level shift of
every pixel moves each embedding (for scale).

Run from the repository root (venv from scripts/setup-bench-env):

    .venv-reference/bin/python tests/reference/make_image_reference.py [V ...] [--models-dir DIR] [--check]

--check: compute into memory and require the committed files to agree (names/spec exactly,
floats within 1e-6) instead of writing them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_fixtures import VARIANTS, float_sha256  # noqa: E402

import open_clip  # noqa: E402

IMAGES_DIR = REPO / "tests/fixtures/images"
FIXTURES = REPO / "tests/fixtures/models"
# Real photos and the edge cases most likely to go wrong, one of each kind (the pixel tests in
# crates/engine/tests/preprocess_pixels.rs cover every file of the corpus at the pixel level).
IMAGES = [
    "jpeg_420.jpg",
    "jpeg_progressive.jpg",
    "jpeg_cmyk.jpg",
    "jpeg_gray.jpg",
    "jpeg_exif6.jpg",
    "png_palette_trns.png",
    "png_rgba_hidden.png",
    "png_gray16.png",
    "gif_anim.gif",
    "webp_lossy.webp",
    "tiny_3x700.png",
    "crop_half_261x256.png",
]


def crop_pixels(name: str, size: int, interp: str, mean, std) -> torch.Tensor:
    png = IMAGES_DIR / "crops" / f"{size}_{interp}" / (Path(name).stem + ".png")
    u8 = np.asarray(Image.open(png).convert("RGB"), dtype=np.uint8)
    t = torch.from_numpy(u8.copy()).permute(2, 0, 1).float().div(255)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (t - m) / s


def reference(variant: str, models_dir: Path) -> dict:
    mdir = models_dir / variant
    text_fx = json.loads((FIXTURES / f"text_{variant}.json").read_text())
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{mdir}")
    model.eval()
    sha = float_sha256(model.state_dict())
    want = text_fx["weights"]["float32_sha256"]
    assert sha == want, f"{mdir} does not hold the mcrand weights ({sha} != {want}); regenerate it"

    cfg = json.loads((mdir / "open_clip_config.json").read_text())
    pre = cfg["preprocess_cfg"]
    size = int(cfg["model_cfg"]["vision_cfg"]["image_size"])
    interp, mean, std = pre["interpolation"], pre["mean"], pre["std"]

    pix = []
    for name in IMAGES:
        with Image.open(IMAGES_DIR / "src" / name) as im:
            t = preprocess(im)
        c = crop_pixels(name, size, interp, mean, std)
        assert t.shape == c.shape and torch.equal(t, c), f"{name}: crop PNG is not open_clip's pixels"
        pix.append(t)
    x = torch.stack(pix)
    with torch.no_grad():
        raw = model.encode_image(x)
        emb = torch.nn.functional.normalize(raw, dim=-1)
        shifted = torch.nn.functional.normalize(model.encode_image(x + (1 / 255) / torch.tensor(std)[:, None, None]), dim=-1)
    e = emb.numpy().astype(np.float64)
    cos = e @ e.T
    iu = np.triu_indices(len(IMAGES), 1)
    one_level = 1 - (emb * shifted).sum(-1).numpy()
    return {
        "variant": variant,
        "generator": "tests/reference/make_image_reference.py",
        "weights_float32_sha256": sha,
        "loaded_via": "open_clip.create_model_and_transforms('local-dir:<dir>'); preprocess(PIL.Image.open(file))",
        "versions": {"torch": torch.__version__.split("+")[0], "open_clip": open_clip.__version__,
                     "pillow": Image.__version__},
        "torch_threads": torch.get_num_threads(),
        "preprocess": {"size": size, "interpolation": interp, "mean": mean, "std": std},
        "images": IMAGES,
        "embeddings": emb.numpy().tolist(),
        "unnormalized_norms": raw.norm(dim=-1).numpy().tolist(),
        "spread": {"mean_pairwise_cos": float(cos[iu].mean()), "min_pairwise_cos": float(cos[iu].min()),
                   "max_pairwise_cos": float(cos[iu].max()), "n_pairs": int(len(iu[0]))},
        "every_pixel_plus_one_level_1_minus_cos": {"min": float(one_level.min()), "median": float(np.median(one_level))},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="*", default=VARIANTS)
    ap.add_argument("--models-dir", type=Path, default=Path("/tmp/mobileclip-models"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bad = []
    for v in a.variants:
        out = reference(v, a.models_dir)
        path = FIXTURES / f"image_{v}.json"
        sp = out["spread"]
        print(f"{v}: {len(IMAGES)} images, mean pairwise cos {sp['mean_pairwise_cos']:.4f} "
              f"(min {sp['min_pairwise_cos']:.4f}, max {sp['max_pairwise_cos']:.4f}); "
              f"+1 level moves 1-cos >= {out['every_pixel_plus_one_level_1_minus_cos']['min']:.2e}", flush=True)
        if a.check:
            old = json.loads(path.read_text())
            for k in ("images", "preprocess", "weights_float32_sha256"):
                if old.get(k) != out[k]:
                    bad.append(f"{path.name}: {k} differs")
            d = np.abs(np.array(old["embeddings"]) - np.array(out["embeddings"])).max()
            if d > 1e-6:
                bad.append(f"{path.name}: embeddings differ by {d:.2e}")
        else:
            path.write_text(json.dumps(out, indent=1) + "\n")
    if bad:
        sys.exit("\n".join(bad))


if __name__ == "__main__":
    main()
