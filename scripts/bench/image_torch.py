"""PyTorch side of scripts/bench-image: open_clip's encode_image on the same pixels.

Usage: python image_torch.py MODEL_DIR IMAGE BATCHES RUNS THREADS   (BATCHES like 1,16)
Prints JSON {"torch": version, "preprocess_ms", "rows": [{"batch", "runs_ms"}]}. The model
directory is loaded the way a user loads the Hugging Face repo (open_clip 'local-dir:'); the
pixels are open_clip's preprocess of IMAGE (what `mobileclip bench image` feeds MLX), repeated
to fill each batch. preprocess_ms times PIL open + decode + the eval transform of IMAGE.
"""
import json
import statistics
import sys
import time

import open_clip
import torch
from PIL import Image


def main():
    model_dir, image, batches, runs, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    model.eval()
    pre = []
    for _ in range(max(runs, 1)):
        t = time.perf_counter()
        with Image.open(image) as im:
            px = preprocess(im)
        pre.append((time.perf_counter() - t) * 1e3)
    rows = []
    with torch.inference_mode():
        for b in (int(x) for x in batches.split(",")):
            x = px.unsqueeze(0).repeat(b, 1, 1, 1).contiguous()
            model.encode_image(x, normalize=True)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                model.encode_image(x, normalize=True)
                times.append((time.perf_counter() - t) * 1e3)
            rows.append({"batch": b, "runs_ms": times})
    json.dump({"torch": torch.__version__, "threads": threads, "preprocess_ms": statistics.median(pre), "rows": rows},
              sys.stdout)


main()
