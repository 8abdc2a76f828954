"""PyTorch side of scripts/bench-text: open_clip's encode_text on the same token ids.

Usage: python text_torch.py MODEL_DIR BATCHES RUNS THREADS   (BATCHES like 1,16)
Prints JSON {"torch": version, "rows": [{"batch", "runs_ms"}]}. The model directory is loaded
the way a user loads the Hugging Face repo (open_clip 'local-dir:'); the captions are the ones
`mobileclip bench text` uses, tokenized by open_clip's tokenizer.
"""
import json
import sys
import time

import open_clip
import torch

TEXTS = [
    "a photo of a dog playing in the snow",
    "two people riding bicycles along a river at sunset",
    "a bowl of ramen with a soft-boiled egg and green onions",
    "satellite image of farmland and a winding road",
]


def main():
    model_dir, batches, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    model.eval()
    tok = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    rows = []
    with torch.inference_mode():
        for b in (int(x) for x in batches.split(",")):
            ids = tok([TEXTS[i % len(TEXTS)] for i in range(b)])
            model.encode_text(ids, normalize=True)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                model.encode_text(ids, normalize=True)
                times.append((time.perf_counter() - t) * 1e3)
            rows.append({"batch": b, "runs_ms": times})
    json.dump({"torch": torch.__version__, "threads": threads, "rows": rows}, sys.stdout)


main()
