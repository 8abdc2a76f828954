"""Reference for the FastViT image-tower parity test (crates/engine/tests/fastvit_parity.rs).

Loads the mcrand v1 random model of variant V through open_clip's `local-dir:` path (the
directory `mobileclip random-model --variant V --out DIR` writes; default
/tmp/mobileclip-models/V), feeds 4 deterministic images (the Rust test regenerates them and
checks the hash) and writes
  crates/engine/tests/fastvit_reference/V.json   the visual outputs (raw and normalised), spread
  OUT/V/reparam.safetensors                      the visual state dict after timm's
                                                 reparameterize_model (for FASTVIT_REPARAM_DIR)
  OUT/V/info.json                                spread, reparam-vs-training check, timings
With --time, also times model.visual in PyTorch (2 threads, median) at batch 1 and 16, in
training and reparameterized form.

usage: make_fastvit_reference.py V [--time] [--models DIR] [--out DIR]   (OUT default /tmp/fastvit-dev)
Environment: the reference venv (open_clip_torch 3.3.0, timm 1.0.31, torch 2.15.0).
"""
import copy, json, statistics, sys, time
from pathlib import Path
import numpy as np
import torch
import open_clip
from safetensors.numpy import save_file
from timm.utils.model import reparameterize_model

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_model_fixtures import u  # mcrand v1: u(key, n) float32 in [-1, 1)

S = 256
OPENAI = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))

# per image: (coarse grid g, sharp blocks?, noise amplitude): sharp colour blocks, smooth
# gradients and noise, so the random model's embeddings spread (mean pairwise cos ~0.9)
IMAGES = [(4, True, 0.0), (8, True, 0.1), (16, False, 0.1), (2, False, 0.0)]

def pixels(i: int, mean, std) -> np.ndarray:
    """[S, S, 3] float32 normalised, same f32 operation order as the Rust side."""
    g, sharp, noise_amp = IMAGES[i]
    f = np.float32
    c = (f(0.5) + f(0.5) * u(f"pixels-coarse-{i}", (g + 1) * (g + 1) * 3)).reshape(g + 1, g + 1, 3)
    cell = S // g
    ys = np.arange(S)
    iy = ys // cell
    if sharp:
        v = (c > f(0.5)).astype(np.float32)[iy][:, iy]
    else:
        fy = ((ys % cell).astype(np.float32) / f(cell))[:, None, None]
        fx = ((ys % cell).astype(np.float32) / f(cell))[None, :, None]
        c00 = c[iy][:, iy]; c10 = c[iy + 1][:, iy]; c01 = c[iy][:, iy + 1]; c11 = c[iy + 1][:, iy + 1]
        one = f(1)
        v = (c00 * (one - fy) + c10 * fy) * (one - fx) + (c01 * (one - fy) + c11 * fy) * fx
    noise = u(f"pixels-noise-{i}", S * S * 3).reshape(S, S, 3)
    p = v + f(noise_amp) * noise
    return ((p - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)).astype(np.float32)

def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h

def main():
    v = sys.argv[1]
    timing = "--time" in sys.argv
    torch.set_num_threads(2)
    arg = lambda flag, default: sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default
    models = Path(arg("--models", "/tmp/mobileclip-models"))
    out = Path(arg("--out", "/tmp/fastvit-dev")) / v
    out.mkdir(parents=True, exist_ok=True)
    model, _, pre = open_clip.create_model_and_transforms(f"local-dir:{models / v}")
    model.eval()
    norm = [t for t in pre.transforms if type(t).__name__ == "Normalize"][0]
    mean, std = tuple(norm.mean), tuple(norm.std)
    x = np.stack([pixels(i, mean, std) for i in range(4)])
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        raw = model.visual(xt)
        rep = reparameterize_model(copy.deepcopy(model)).eval()
        raw_rep = rep.visual(xt)
    e = torch.nn.functional.normalize(raw, dim=-1).numpy()
    cos = e @ e.T
    spread = float(cos[np.triu_indices(4, 1)].mean())
    res = {"pixels": x, "raw": raw.numpy(), "normalized": e, "raw_reparam": raw_rep.numpy(),
           "normalized_reparam": torch.nn.functional.normalize(raw_rep, dim=-1).numpy()}
    save_file(res, str(out / "ref.safetensors"))
    if not (out / "reparam.safetensors").exists():
        sd = {k: t.detach().contiguous().numpy() for k, t in rep.state_dict().items() if k.startswith("visual.")}
        save_file(sd, str(out / "reparam.safetensors"))
    fixture = {"variant": v, "images": IMAGES, "size": S, "mean": mean, "std": std,
               "pixels_fnv1a64": "%016x" % fnv1a64(x.tobytes()),
               "raw": raw.numpy().tolist(), "normalized": e.tolist(), "mean_pairwise_cos": spread,
               "versions": {"open_clip": open_clip.__version__, "torch": torch.__version__}}
    fixtures = HERE.parent.parent / "crates/engine/tests/fastvit_reference"
    fixtures.mkdir(parents=True, exist_ok=True)
    (fixtures / f"{v}.json").write_text(json.dumps(fixture))
    info = {"mean_pairwise_cos": spread, "mean": mean, "std": std,
            "reparam_vs_train_max_abs": float((raw - raw_rep).abs().max())}
    print(v, json.dumps(info))
    if timing:
        t = {}
        for name, m in (("training", model), ("reparam", rep)):
            for b in (1, 16):
                xb = xt[[i % 4 for i in range(b)]].contiguous()
                runs = 7 if b == 1 else (5 if v in ("S0", "S2") else 3)
                with torch.no_grad():
                    m.visual(xb)  # warm-up
                    ts = []
                    for _ in range(runs):
                        t0 = time.perf_counter(); m.visual(xb); ts.append(time.perf_counter() - t0)
                t[f"{name}_b{b}_ms_per_image"] = statistics.median(ts) * 1000 / b
                print(v, name, b, round(t[f"{name}_b{b}_ms_per_image"], 1), "ms/image", flush=True)
        info["torch_timing"] = t
    (out / "info.json").write_text(json.dumps(info, indent=1))

main()
