#!/usr/bin/env python3
"""Random-weight MobileCLIP2 models ("mcrand v1") and their open_clip reference outputs.

The weights of every model come from a counter-based PRNG that the Rust side re-implements
bit-exactly (spec: tests/reference/RANDOM_WEIGHTS.md), so only small files are committed and the
full-size models are regenerated wherever they are needed.

For each variant V in S0 S2 B S3 S4 L-14 (open_clip name `MobileCLIP2-<V>`):

 1. `open_clip.create_model('MobileCLIP2-<V>', pretrained=None)`, fp32, eval; every state-dict
    tensor is generated from its key (seed = FNV-1a 64 of the key, SplitMix64 stream, uniform
    in [-1, 1), then `offset + scale * u` in float32) with (offset, scale) chosen from the type
    of the module that owns the tensor; `load_state_dict(strict=True)`.
 2. A model directory in the layout of the Hugging Face repo `timm/MobileCLIP2-<V>-OpenCLIP` is
    written to MODELS_DIR/<V> (not committed): `open_clip_model.safetensors` (training form,
    `safetensors.torch.save_file`), `open_clip_config.json` (copy of
    tests/fixtures/configs/open_clip_config_<V>.json, the config of the Hugging Face repo) and
    `tokenizer.json` (copy of
    tests/fixtures/tokenizer/tokenizer.json when it exists).
 3. That directory is loaded back the way users load the HF repo,
    `open_clip.create_model_and_transforms('local-dir:<dir>')` +
    `open_clip.get_tokenizer('local-dir:<dir>')`; the reloaded weights are checked bit-equal to
    the generated ones, and THIS model produces the reference outputs.
 4. Text reference: TEXTS below, tokenized (context 77), `encode_text` fp32 under no_grad.

Committed outputs (tests/fixtures/models/):

  init_<V>.tsv   one line per state-dict key, in state_dict() order:
                 key<TAB>[shape]<TAB>dtype<TAB>offset<TAB>scale
                 (offset/scale are exact float32 values, written as repr(float(np.float32(x)));
                 int64 tensors are all zero and have offset = scale = 0.0). The first three
                 columns must equal those of the committed init_<V>.tsv line for line
                 (checked when it exists: the key inventory does not change).
  text_<V>.json  texts, their open_clip ids [N, 77], normalised embeddings (float32 values),
                 the norms before normalisation, the spread of the embeddings, the largest
                 |activation| in the text tower, logit_scale, a SHA-256 of all float32 weights
                 (for checking a re-implementation of the generator), package versions.

Run (from the repository root; the venv comes from scripts/setup-bench-env):

    .venv-reference/bin/python tests/reference/make_model_fixtures.py [V ...]

Options: variants as positional arguments (default: all six), --models-dir DIR (default
/tmp/mobileclip-models; each model goes to DIR/<V>), --fixtures DIR (default
tests/fixtures/models), --threads N (torch CPU threads, default 1: keeps the float results
reproducible run to run), --check (write nothing into --fixtures: regenerate into a temporary
directory, then require init_<V>.tsv byte-identical and text_<V>.json identical except for
float outputs, which must agree within 1e-6; the model directories are still written).

Deterministic: the weights depend only on the keys and shapes; the text outputs are
reproducible for the pinned versions on the same CPU with the same thread count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "tests/fixtures/configs"
COMMITTED = REPO / "tests/fixtures/models"
VARIANTS = ["S0", "S2", "B", "S3", "S4", "L-14"]
PINNED = {"torch": "2.15.0", "open_clip": "3.3.0", "timm": "1.0.31"}
SPEC = "mcrand v1"
CONTEXT_LENGTH = 77

# ---------------------------------------------------------------------------------------------
# The PRNG (identical to `uniform` in crates/engine/src/rng.rs, seeded per tensor)
# ---------------------------------------------------------------------------------------------

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
CHUNK = 1 << 22


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def key_seed(key: str) -> int:
    return fnv1a64(key.encode("utf-8"))


def u_into(out: np.ndarray, seed: int) -> np.ndarray:
    """Fill the 1-d float32 array `out` with the first len(out) values of the stream `seed`."""
    state0 = np.uint64(((seed * GOLDEN) & MASK) ^ 0xD1B54A32D192ED03)
    n = out.shape[0]
    with np.errstate(over="ignore"):
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            # value i (0-based) uses state0 + (i + 1) * GOLDEN (wrapping), the counter form of
            # "state += GOLDEN" before each draw
            z = state0 + np.arange(start + 1, stop + 1, dtype=np.uint64) * np.uint64(GOLDEN)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z ^= z >> np.uint64(31)
            out[start:stop] = ((z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
                               * np.float32(2) - np.float32(1))
    return out


def u(key: str, n: int) -> np.ndarray:
    return u_into(np.empty(n, dtype=np.float32), key_seed(key))


def u_scalar(key: str, n: int) -> list[float]:
    """The generator written out literally (one value at a time); used to check u()."""
    state = ((key_seed(key) * GOLDEN) & MASK) ^ 0xD1B54A32D192ED03
    vals = []
    for _ in range(n):
        state = (state + GOLDEN) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        vals.append(np.float32(z >> 40) / np.float32(1 << 24) * np.float32(2) - np.float32(1))
    return vals


def self_test_prng() -> None:
    global CHUNK
    for key in ["text.positional_embedding", "logit_scale", "a", ""]:
        assert [float(x) for x in u(key, 1000)] == [float(x) for x in u_scalar(key, 1000)], key
    saved, CHUNK = CHUNK, 7  # chunk boundaries must not matter
    try:
        small = u("visual.trunk.head.fc.weight", 100)
    finally:
        CHUNK = saved
    assert np.array_equal(small, u("visual.trunk.head.fc.weight", 100))
    assert fnv1a64(b"") == 0xCBF29CE484222325 and fnv1a64(b"a") == 0xAF63DC4C8601EC8C


# ---------------------------------------------------------------------------------------------
# Initialisation rules: (offset, scale) per tensor, decided by the owning module's type
# ---------------------------------------------------------------------------------------------

SQRT3 = math.sqrt(3.0)


def normal(std: float) -> tuple[float, float]:
    """N(0, std) replaced by the uniform of equal variance U(-sqrt(3) std, sqrt(3) std)."""
    return 0.0, SQRT3 * std


def uniform(a: float, b: float) -> tuple[float, float]:
    return (a + b) / 2.0, (b - a) / 2.0


def fan_in_rule(shape) -> tuple[float, float]:
    fan_in = int(np.prod(shape[1:]))
    return 0.0, math.sqrt(3.0 / fan_in)  # = sqrt(3) * (1 / sqrt(fan_in))


def init_rule(module, leaf: str, shape: tuple, is_float: bool) -> tuple[str, float, float]:
    """(kind, offset, scale) in float64; raises on anything not covered."""
    import torch.nn as nn

    tname = type(module).__name__
    if not is_float:
        assert leaf == "num_batches_tracked", (tname, leaf)
        return "int_zero", 0.0, 0.0
    if isinstance(module, nn.modules.batchnorm._BatchNorm):  # BatchNorm2d, BatchNormAct2d
        return {
            "weight": ("bn_weight", *uniform(0.5, 1.5)),
            "bias": ("bn_bias", *normal(0.1)),
            "running_mean": ("bn_running_mean", *normal(0.1)),
            "running_var": ("bn_running_var", *uniform(0.5, 1.5)),
        }[leaf]
    if isinstance(module, nn.LayerNorm):  # LayerNorm, timm LayerNorm2d
        return {"weight": ("ln_weight", *uniform(0.5, 1.5)),
                "bias": ("ln_bias", *normal(0.1))}[leaf]
    if isinstance(module, (nn.Conv2d, nn.Linear)):  # incl. MHA out_proj, SE fc1/fc2, RepCPE
        if leaf == "weight":
            assert len(shape) >= 2
            return "fan_in", *fan_in_rule(shape)
        assert leaf == "bias", (tname, leaf)
        return "bias", *normal(0.1)
    if isinstance(module, nn.MultiheadAttention):
        if leaf == "in_proj_weight":
            return "fan_in", *fan_in_rule(shape)
        assert leaf == "in_proj_bias", leaf
        return "bias", *normal(0.1)
    if isinstance(module, nn.Embedding):
        assert leaf == "weight"
        return "embedding", *normal(0.02)
    if tname == "LayerScale2d" and leaf == "gamma":
        return "layer_scale", 0.1, 0.05  # U(0.5, 1.5) x 0.1 = U(0.05, 0.15)
    if tname == "TextTransformer" and leaf == "positional_embedding":
        return "embedding", *normal(0.02)
    if tname == "TextTransformer" and leaf == "text_projection":
        width = shape[0]
        return "text_projection", *normal(width ** -0.5)
    if tname == "VisionTransformer" and leaf in ("cls_token", "pos_embed"):
        return "embedding", *normal(0.02)
    if tname == "CustomTextCLIP" and leaf == "logit_scale":
        return "logit_scale", math.log(1 / 0.07), 0.5
    raise ValueError(f"no init rule for {tname}.{leaf} {shape}")


def f32(x: float) -> float:
    return float(np.float32(x))


def init_table(model) -> list[dict]:
    import torch

    modules = dict(model.named_modules())
    rows = []
    for key, t in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        module = modules[owner]
        shape = tuple(t.shape)
        is_float = t.dtype == torch.float32
        assert is_float or t.dtype == torch.int64, (key, t.dtype)
        kind, off, sc = init_rule(module, leaf, shape, is_float)
        rows.append({"key": key, "shape": shape, "dtype": str(t.dtype).removeprefix("torch."),
                     "kind": kind, "module": type(module).__name__,
                     "offset": f32(off), "scale": f32(sc)})
    return rows


def shape_str(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def init_tsv(rows) -> str:
    return "".join(f"{r['key']}\t{shape_str(r['shape'])}\t{r['dtype']}\t"
                   f"{r['offset']!r}\t{r['scale']!r}\n" for r in rows)


def generate(rows) -> dict:
    """The state dict, in order, as torch tensors."""
    import torch

    sd = {}
    for r in rows:
        n = int(np.prod(r["shape"], dtype=np.int64))
        if r["dtype"] == "int64":
            sd[r["key"]] = torch.zeros(r["shape"], dtype=torch.int64)
            continue
        vals = u_into(np.empty(n, dtype=np.float32), key_seed(r["key"]))
        vals *= np.float32(r["scale"])   # float32 multiply, then float32 add (no FMA)
        vals += np.float32(r["offset"])
        sd[r["key"]] = torch.from_numpy(vals.reshape(r["shape"]))
    return sd


def float_sha256(sd) -> str:
    """SHA-256 over the raw little-endian bytes of every float32 tensor, in state-dict order."""
    import torch

    h = hashlib.sha256()
    for t in sd.values():
        if t.dtype == torch.float32:
            h.update(t.contiguous().numpy().astype("<f4", copy=False).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Text reference
# ---------------------------------------------------------------------------------------------

LONG_TEXT = (
    "A very long caption that keeps going well past the context window of the text encoder: "
    "an old wooden fishing boat with peeling blue paint rests on the pebbles of a quiet "
    "harbour at dawn, gulls circle above the mast, nets and orange buoys are piled on the deck, "
    "a lighthouse stands on the far breakwater, thin clouds glow pink over the hills, and a "
    "child in a yellow raincoat walks a small dog along the seawall while the tide comes in."
)

TEXTS = [
    "a photo of a cat",
    "a photo of a dog",
    "a diagram of a transformer neural network",
    "two people riding bicycles along a river at sunset",
    "a bowl of ramen with a soft-boiled egg",
    "satellite image of farmland and a winding road",
    "",
    "   \t\n  ",
    LONG_TEXT,
    "東京の夜景",
    "一只在草地上奔跑的小狗",
    "Привет, мир! Это тест.",
    "🐶🐱 emoji party 🎉🎉",
    "Tom &amp; Jerry &lt;3 &amp;amp; friends",
    "MiXeD CaSe TeXt WITH SHOUTING",
    "a red car <end_of_text> a blue bicycle",
    "café crème brûlée",
    "cafÃ© mojibake fixed by ftfy",
    "the numbers 1234567890 and 3.14159",
    "It's a dog's life, isn't it? We'll see, they'd say.",
    "!!!???...",
    "x",
    "مرحبا بالعالم",
    "  leading and trailing spaces  ",
]


class ActivationMax:
    """Largest |value| over the float outputs of every module of a tower during one forward."""

    def __init__(self, tower):
        self.value = 0.0
        self.handles = [m.register_forward_hook(self.hook) for m in tower.modules()]

    def hook(self, _module, _inputs, output):
        import torch

        outs = output if isinstance(output, (tuple, list)) else (output,)
        for o in outs:
            if isinstance(o, torch.Tensor) and o.is_floating_point() and o.numel():
                self.value = max(self.value, float(o.detach().abs().max()))

    def remove(self):
        for h in self.handles:
            h.remove()


def spread(emb: np.ndarray, ids: np.ndarray) -> dict:
    """Pairwise cosines of normalised embeddings, over pairs whose token ids differ."""
    e = emb.astype(np.float64)
    cos = e @ e.T
    vals, same = [], 0
    for i in range(len(e)):
        for j in range(i + 1, len(e)):
            if np.array_equal(ids[i], ids[j]):
                same += 1
            else:
                vals.append(cos[i, j])
    vals = np.array(vals)
    return {"mean_pairwise_cos": float(vals.mean()), "max_pairwise_cos": float(vals.max()),
            "min_pairwise_cos": float(vals.min()), "n_pairs": int(len(vals)),
            "n_pairs_with_identical_ids_excluded": same}


def sensitivity(model, ids, emb) -> dict:
    """1 - cos of each text's embedding under two plausible implementation mistakes:
    padding with 49407 (the HF tokenizer's pad) instead of 0 after the final EOT, and the
    causal mask toggled (on for bidirectional variants, off for B). min / median over texts
    whose ids are changed by the mistake."""
    import torch

    out = {}
    pos = torch.arange(ids.shape[1])
    last_eot = torch.stack([torch.nonzero(r == 49407).max() for r in ids])
    padded = ids.clone()
    padded[pos[None, :] > last_eot[:, None]] = 49407
    changed = (padded != ids).any(dim=1)
    text = model.text
    saved = text.attn_mask
    with torch.no_grad():
        e_pad = model.encode_text(padded, normalize=True)
        text.attn_mask = text.build_causal_mask() if saved is None else None
        try:
            e_mask = model.encode_text(ids, normalize=True)
        finally:
            text.attn_mask = saved
    for name, e, rows in (("pad_with_49407", e_pad, changed),
                          ("causal_mask_toggled", e_mask, torch.ones_like(changed))):
        d = (1 - (e * emb).sum(-1).double())[rows]
        out[name] = {"min_1_minus_cos": float(d.min()), "median_1_minus_cos": float(d.median()),
                     "n_texts": int(rows.sum())}
    return out


def text_reference(model, tokenizer) -> dict:
    import torch

    ids = tokenizer(TEXTS)
    assert ids.shape == (len(TEXTS), CONTEXT_LENGTH) and ids.dtype == torch.long
    with torch.no_grad():
        act = ActivationMax(model.text)
        raw = model.encode_text(ids, normalize=False)
        act.remove()
        emb = model.encode_text(ids, normalize=True)
    assert raw.dtype == emb.dtype == torch.float32
    norms = raw.norm(dim=-1)
    # normalize=True must be F.normalize of the raw output
    assert torch.allclose(emb, raw / norms[:, None], atol=1e-6)
    assert torch.isfinite(raw).all()
    ids_np = ids.numpy()
    return {
        "texts": TEXTS,
        "ids": ids_np.tolist(),
        "embeddings": emb.numpy().tolist(),
        "unnormalized_norms": norms.numpy().tolist(),
        "spread": spread(emb.numpy(), ids_np),
        "max_abs_activation": act.value,
        "sensitivity": sensitivity(model, ids, emb),
    }


# ---------------------------------------------------------------------------------------------
# Model directory, reload, fixtures
# ---------------------------------------------------------------------------------------------


def write_model_dir(variant: str, sd: dict, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*"):  # a stale second checkpoint would change what local-dir loads
        if stale.name not in ("open_clip_model.safetensors", "open_clip_config.json",
                              "tokenizer.json"):
            sys.exit(f"unexpected file {stale} in the model directory; remove it first")
    save_file(sd, str(out / "open_clip_model.safetensors"))
    shutil.copyfile(CONFIGS / f"open_clip_config_{variant}.json", out / "open_clip_config.json")
    tok = REPO / "tests/fixtures/tokenizer/tokenizer.json"
    if tok.is_file():
        shutil.copyfile(tok, out / "tokenizer.json")


def dump_json(obj: dict) -> str:
    """Pretty JSON with one list element per line for the per-text lists."""
    parts = []
    for k, v in obj.items():
        if isinstance(v, list) and v and isinstance(v[0], (list, str)):
            inner = ",\n  ".join(json.dumps(x, ensure_ascii=False) for x in v)
            parts.append(f" {json.dumps(k)}: [\n  {inner}\n ]")
        else:
            parts.append(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def versions() -> dict:
    import open_clip
    import safetensors
    import timm
    import torch

    found = {"torch": torch.__version__.split("+")[0], "open_clip": open_clip.__version__,
             "timm": timm.__version__}
    bad = {k: (v, PINNED[k]) for k, v in found.items() if v != PINNED[k]}
    if bad:
        sys.exit(f"unexpected package versions (found, pinned): {bad}")
    found.update(torch_full=torch.__version__, numpy=np.__version__,
                 safetensors=safetensors.__version__, python=sys.version.split()[0])
    return found


def check_keys(variant: str, tsv: str) -> None:
    """Keys, shapes and dtypes (the first three columns) equal the committed init_<V>.tsv's."""
    committed = COMMITTED / f"init_{variant}.tsv"
    if not committed.is_file():
        print(f"{variant}: no committed {committed.name}: key inventory not compared", file=sys.stderr)
        return
    cols = lambda text: ["\t".join(line.split("\t")[:3]) for line in text.splitlines()]
    got, want = cols(tsv), cols(committed.read_text())
    if got != want:
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(got, want)) if a != b][:5]
        sys.exit(f"{variant}: keys/shapes differ from the committed {committed.name} "
                 f"({len(got)} vs {len(want)} lines; first differences {diff})")


def run_variant(variant: str, models_dir: Path, fixtures: Path, vers: dict) -> dict:
    import open_clip
    import torch

    t0 = time.time()
    name = f"MobileCLIP2-{variant}"
    model = open_clip.create_model(name, pretrained=None, precision="fp32").eval()
    rows = init_table(model)
    tsv = init_tsv(rows)
    check_keys(variant, tsv)
    sd = generate(rows)
    model.load_state_dict(sd, strict=True)
    del model
    t_gen = time.time()

    mdir = models_dir / variant
    write_model_dir(variant, sd, mdir)
    sha = float_sha256(sd)
    t_write = time.time()

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{mdir}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{mdir}")
    assert type(tokenizer).__name__ == "SimpleTokenizer", type(tokenizer)
    assert tokenizer.context_length == CONTEXT_LENGTH
    reloaded = model.state_dict()
    assert list(reloaded) == list(sd), "reloaded key order differs"
    for k, t in sd.items():
        r = reloaded[k]
        assert r.dtype == t.dtype and r.shape == t.shape and torch.equal(r, t), k
    del sd, reloaded
    t_load = time.time()

    text = text_reference(model, tokenizer)
    # (an image part will go here: model.encode_image on preprocess(PIL image))
    t_text = time.time()

    kinds = {}
    for r in rows:
        label = (f"{r['module']}.{r['key'].rpartition('.')[2]} -> {r['kind']} "
                 f"(offset {r['offset']!r}, scale {'fan-in' if r['kind'] == 'fan_in' else repr(r['scale'])})")
        kinds[label] = kinds.get(label, 0) + 1
    out = {
        "variant": variant,
        "model": name,
        "generator": "tests/reference/make_model_fixtures.py",
        "weights": {"spec": SPEC, "init_file": f"init_{variant}.tsv",
                    "float32_sha256": sha, "n_keys": len(rows),
                    "n_float_values": int(sum(np.prod(r["shape"]) for r in rows
                                              if r["dtype"] == "float32"))},
        "loaded_via": f"open_clip.create_model_and_transforms('local-dir:<dir>'), "
                      f"open_clip.get_tokenizer('local-dir:<dir>') (SimpleTokenizer, context 77)",
        "versions": vers,
        "torch_threads": torch.get_num_threads(),
        "logit_scale": float(model.logit_scale.detach()),
        **text,
    }
    (fixtures / f"init_{variant}.tsv").write_text(tsv)
    (fixtures / f"text_{variant}.json").write_text(dump_json(out), encoding="utf-8")
    del model
    times = {"generate_s": t_gen - t0, "write_s": t_write - t_gen, "reload_s": t_load - t_write,
             "text_s": t_text - t_load, "total_s": time.time() - t0}
    return {"spread": text["spread"], "max_abs_activation": text["max_abs_activation"],
            "sensitivity": text["sensitivity"],
            "norms": (min(text["unnormalized_norms"]), max(text["unnormalized_norms"])),
            "sha": sha, "times": times, "kinds": kinds,
            "safetensors_bytes": (mdir / "open_clip_model.safetensors").stat().st_size}


def compare(variant: str, new: Path, old: Path) -> list[str]:
    errs = []
    a, b = new / f"init_{variant}.tsv", old / f"init_{variant}.tsv"
    if not b.is_file() or a.read_bytes() != b.read_bytes():
        errs.append(f"{b.name} differs")
    a, b = new / f"text_{variant}.json", old / f"text_{variant}.json"
    if not b.is_file():
        return errs + [f"{b.name} missing"]
    ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
    floats = ("embeddings", "unnormalized_norms", "spread", "max_abs_activation", "logit_scale",
              "sensitivity")
    for k in set(ja) | set(jb):
        if k in ("versions", "torch_threads"):
            continue
        if k in floats:
            x, y = np.array(_flat(ja.get(k))), np.array(_flat(jb.get(k)))
            if x.shape != y.shape or np.abs(x - y).max(initial=0) > 1e-6:
                errs.append(f"{b.name}: {k} differs beyond 1e-6")
        elif ja.get(k) != jb.get(k):
            errs.append(f"{b.name}: {k} differs")
    return errs


def _flat(v):
    if isinstance(v, dict):
        return [x for key in sorted(v) for x in _flat(v[key])]
    if isinstance(v, list):
        return [x for e in v for x in _flat(e)]
    return [float(v)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="*", metavar="V",
                    help=f"any of {' '.join(VARIANTS)} (default: all)")
    ap.add_argument("--models-dir", type=Path, default=Path("/tmp/mobileclip-models"))
    ap.add_argument("--fixtures", type=Path, default=REPO / "tests/fixtures/models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    args.variants = args.variants or VARIANTS
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {' '.join(VARIANTS)}")

    import torch

    torch.set_num_threads(args.threads)
    vers = versions()
    self_test_prng()
    seed = key_seed("text.positional_embedding")
    first = u("text.positional_embedding", 5)
    print(f"PRNG check: fnv1a64('text.positional_embedding') = {seed:#018x}")
    print("  u('text.positional_embedding', 5) = "
          + ", ".join(f"{float(x)!r} ({np.float32(x).view(np.uint32):#010x})" for x in first))

    tmp = tempfile.TemporaryDirectory() if args.check else None
    fixtures = Path(tmp.name) if tmp else args.fixtures
    fixtures.mkdir(parents=True, exist_ok=True)
    failed = []
    for v in args.variants:
        r = run_variant(v, args.models_dir, fixtures, vers)
        s, t = r["spread"], r["times"]
        print(f"{v}: spread mean/max/min cos {s['mean_pairwise_cos']:.4f} / "
              f"{s['max_pairwise_cos']:.4f} / {s['min_pairwise_cos']:.4f} over {s['n_pairs']} "
              f"pairs ({s['n_pairs_with_identical_ids_excluded']} identical-id pairs excluded); "
              f"max|act| {r['max_abs_activation']:.3f}; raw norms {r['norms'][0]:.3f}.."
              f"{r['norms'][1]:.3f}; float32 sha256 {r['sha'][:16]}…; "
              f"safetensors {r['safetensors_bytes'] / 2**20:.1f} MiB; "
              + ", ".join(f"{k} {x:.1f}" for k, x in t.items()), flush=True)
        for k, x in r["sensitivity"].items():
            print(f"    sensitivity {k}: 1-cos min {x['min_1_minus_cos']:.3g}, "
                  f"median {x['median_1_minus_cos']:.3g} over {x['n_texts']} texts")
        for k, n in sorted(r["kinds"].items()):
            print(f"    {n:5d}  {k}")
        if s["mean_pairwise_cos"] > 0.99:
            print(f"  WARNING: {v} text spread is degenerate (mean pairwise cos > 0.99)")
        if args.check:
            errs = compare(v, fixtures, args.fixtures)
            for e in errs:
                print(f"  CHECK FAILED: {e}")
            failed += errs
    if args.check:
        tmp.cleanup()
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
