#!/usr/bin/env python3
"""open_clip's zero-shot probabilities for the SQL suite (tests/sql/60_classify.sql).

With the random-weight MobileCLIP2-S0 ("mcrand v1", `mobileclip random-model --variant S0
--out DIR`; checked to hold exactly the mcrand weights), for each case (an image of
tests/fixtures/images/src or, for the embedding form, a text's embedding, a template, a list of labels) as open_clip's README does it, with
the model's own logit scale:

    text = model.encode_text(tokenizer([template.format(l) for l in labels]), normalize=True)
    image = model.encode_image(preprocess(Image.open(f)).unsqueeze(0), normalize=True)
    probs = (model.logit_scale.exp() * image @ text.T).softmax(dim=-1)

Also written per case: the spread of the probabilities (max - min) and of the cosines, so a
reader can see the check is not comparing near-uniform numbers (random weights make inputs
look alike). Written: tests/fixtures/models/classify_S0.json.

    .venv-reference/bin/python tests/reference/make_classify_reference.py --model-dir /tmp/mobileclip-models/S0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_fixtures import float_sha256  # noqa: E402

import open_clip  # noqa: E402

IMAGES = REPO / "tests/fixtures/images/src"
OUT = REPO / "tests/fixtures/models/classify_S0.json"
LABELS = ["cat", "dog", "astronaut", "cup of coffee", "rocket launch", "red bicycle", "bowl of ramen", "satellite image"]
CASES = [
    ("jpeg_420.jpg", "a photo of a {}.", LABELS),
    ("png_rgb.png", "a photo of a {}.", LABELS),
    ("gif_static.gif", "a photo of a {}.", LABELS),
    ("bmp_24.bmp", "a photo of a {}.", LABELS),
    ("jpeg_420.jpg", "a blurry photo of a {}, {}.", LABELS[:3]),
    ("png_rgb.png", "{}", ["astronaut"]),
    # The embedding form with a stored vector that is one label's own caption embedding: far
    # from uniform (random image features all look alike; this one does not).
    ("text:a photo of a cat.", "a photo of a {}.", LABELS),
    # ... and a direction that separates the labels widely: the difference of two caption
    # embeddings (in SQL: clip_embed_text(a) - clip_embed_text(b), pgvector's subtraction).
    ("textdiff:a photo of a cat.|a photo of a dog.", "a photo of a {}.", LABELS),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/mobileclip-models/S0"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    name = f"local-dir:{a.model_dir}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    want = json.loads((REPO / "tests/fixtures/models/text_S0.json").read_text())["weights"]["float32_sha256"]
    assert float_sha256(model.state_dict()) == want, "the model dir does not hold the mcrand S0 weights"
    out = {"generator": "tests/reference/make_classify_reference.py", "variant": "S0",
           "versions": {"torch": torch.__version__.split("+")[0], "open_clip": open_clip.__version__},
           "logit_scale_exp": float(model.logit_scale.detach().exp()), "cases": []}
    for image, template, labels in CASES:
        with torch.no_grad():
            text = model.encode_text(tokenizer([template.format(*[l] * template.count("{}")) for l in labels]), normalize=True)
            if image.startswith("textdiff:"):
                a_, b_ = image[9:].split("|")
                img = model.encode_text(tokenizer([a_]), normalize=True) - model.encode_text(tokenizer([b_]), normalize=True)
                img = img / img.norm(dim=-1, keepdim=True)
            elif image.startswith("text:"):
                img = model.encode_text(tokenizer([image[5:]]), normalize=True)
            else:
                with Image.open(IMAGES / image) as im:
                    img = model.encode_image(preprocess(im).unsqueeze(0), normalize=True)
            cos = (img @ text.T)[0]
            probs = (model.logit_scale.exp() * img @ text.T).softmax(dim=-1)[0]
        out["cases"].append({"image": image, "template": template, "labels": labels,
                             "probabilities": [float(f"{p:.9g}") for p in probs],
                             "probability_spread": float(probs.max() - probs.min()),
                             "cosine_spread": float(cos.max() - cos.min())})
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    for c in out["cases"]:
        print(c["image"], c["template"], f"spread p {c['probability_spread']:.4f} cos {c['cosine_spread']:.4f}",
              [round(p, 4) for p in c["probabilities"]])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
