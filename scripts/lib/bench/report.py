"""Tables (Markdown), raw JSON and the ratio chart (PNG) of a scripts/bench run.

write(res, into_repo, root, cache): prints the Markdown to stdout; with into_repo it replaces
the section between BEGIN and END in BENCHMARKS.md and writes docs/bench.json and
docs/bench.png, otherwise cache/last.{json,png,md}.
"""
import json
import os
import sys

BEGIN = "<!-- bench:begin (written by scripts/bench; edits inside are overwritten) -->"
END = "<!-- bench:end -->"
COLS = ["ours", "sql", "pt_train", "pt_reparam", "ort"]


def f_ms(x):
    if x is None:
        return "–"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def f_ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def f_g(flops, ms):
    return f"{flops / ms / 1e6:.0f}" if flops and ms else "–"


def engine_full_ms(row):
    """Our engine's time for what the SQL call does: + preprocessing (images) or tokenizing."""
    m = row["median_ms"].get("ours")
    if m is None:
        return None
    if row["tower"] == "image":
        return m + row["batch"] * (row.get("ours_preprocess_ms_per_image") or 0)
    return m + (row.get("ours_tokenize_ms") or 0)


def header(res):
    m = res["meta"]
    mc, v = m["machine"], m["versions"]
    sg0, sg1 = m["sgemm_start"], m.get("sgemm_end") or m["sgemm_start"]
    checks = res.get("checks", [])
    ort_d = [x for c in checks for k, x in c.items() if k.startswith("ort_vs_pt_max_abs")]
    tr_d = [x for c in checks for k, x in c.items() if k.startswith("pt_train_vs_reparam")]
    noop = sorted({f"{c['variant']} {c['tower']}" for c in checks if c.get("reparam_noop")})
    lines = [
        f"Command: `{m['command']}` — {m['date']}, {m.get('wall_s', '?')} s"
        + (f"; CLI `{m['cli']}`." if m.get("cli") and not m["cli"].endswith("target/release/mobileclip") else "."),
        f"Machine: {mc['cpu']}, {mc['cores']} cores ({', '.join(mc['isa'])}), {mc['mem_gib']} GiB, {mc['os']}; "
        f"load average {mc['loadavg_start'][0]:.2f} at start, {mc.get('loadavg_end', [0])[0]:.2f} at end.",
        f"Versions: mobileclip {v.get('mobileclip')} ({v.get('mobileclip_git')}), MLX {v.get('mlx')} + {v.get('blas')}; "
        f"PyTorch {v.get('torch')}, open_clip {v.get('open_clip')}, timm {v.get('timm')}, onnxruntime {v.get('onnxruntime')}, "
        f"onnx {v.get('onnx')}, numpy {v.get('numpy')}, Pillow {v.get('PIL')}, Python {v.get('python')}.",
        f"Threads: {m['threads']} for every engine (ours: {m['ours_threads']}; SQL: {m.get('sql_threads', '–')}; "
        f"PyTorch `set_num_threads`, interop 1; ORT intra-op {m['threads']}, inter-op 1).",
        f"sgemm (numpy {sg0['numpy']} 2048³ fp32, {m['threads']} threads, median of 9): {sg0['median_gflops']:.0f} GFLOP/s "
        f"at start, {sg1['median_gflops']:.0f} at end.",
        f"Median of {m['runs']} runs per engine and row after {m['warmup']} warm-up call(s), engines alternating "
        f"(order rotated each run), each timed call right after an untimed one of the same engine and batch; "
        f"fp32; milliseconds per call (batch b: per batch). "
        f"Inputs: `{m['image']}` (pixels from open_clip's preprocessing; the SQL path gets the file's bytes) and "
        f"4 captions of 10-14 tokens, cycled to fill the batch.",
    ]
    if ort_d:
        lines.append(f"ONNX Runtime vs PyTorch (reparameterized), same input: max abs difference {max(ort_d):.1e} "
                     f"over all rows; PyTorch training form vs reparameterized: {max(tr_d):.1e}." if tr_d else
                     f"ONNX Runtime vs PyTorch (reparameterized), same input: max abs difference {max(ort_d):.1e}.")
    if m.get("extension_older_than_sources") or m.get("extension_older_than_cli"):
        lines.append(f"**Caution**: the installed extension ({m['builds']['extension']}) is older than the sources "
                     f"(CLI built {m['builds']['cli']}): the SQL column may measure another build.")
    if noop:
        lines.append(f"Nothing to reparameterize (training = reparam, measured once): {', '.join(noop)}.")
    return lines


LEGEND = """Columns: **ours engine** = `mobileclip bench image|text` (normalised pixels / token ids ->
normalised embeddings, no decoding or tokenizing); **ours SQL** = `clip_embed_images(bytea[])` /
`clip_embed_texts(text[])` in a Postgres backend with the model loaded, timed in the server
around the call (includes decoding + preprocessing / tokenizing); **PyTorch training** =
open_clip `local-dir:` as loaded, `encode_*(x, normalize=True)` under `inference_mode`;
**PyTorch reparam** = the same after `timm.utils.reparameterize_model`; **ORT** = onnxruntime
on the ONNX export of the reparameterized model (legacy exporter, opset 17, dynamic batch,
ORT_ENABLE_ALL). Ratios > 1: ours faster. **SQL/engine** = ours SQL / (ours engine + its
preprocessing or tokenizing time for the batch, measured by the CLI): the cost of the SQL path.
**GFLOP/s** = FLOPs of the reparameterized PyTorch forward as `torch.utils.flop_counter.FlopCounterMode`
counts them (matmul/linear/bmm/conv/attention only, 2 per multiply-add; element-wise ops not
counted) / median time."""


def table(res, tower):
    rows = [r for r in res["rows"] if r["tower"] == tower]
    if not rows:
        return []
    out = [f"**{tower.capitalize()} tower** (ms)", "",
           "| variant | b | ours engine | ours SQL | PyTorch training | PyTorch reparam | ORT | PT-reparam/ours | ORT/ours "
           "| SQL/engine | GFLOP (fwd) | ours GFLOP/s | ORT GFLOP/s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["median_ms"]
        o = m.get("ours")
        out.append(f"| {r['variant']} | {r['batch']} | {f_ms(o)} | {f_ms(m.get('sql'))} | {f_ms(m.get('pt_train'))} | "
                   f"{f_ms(m.get('pt_reparam'))} | {f_ms(m.get('ort'))} | {f_ratio(m.get('pt_reparam'), o)} | "
                   f"{f_ratio(m.get('ort'), o)} | {f_ratio(m.get('sql'), engine_full_ms(r))} | {r['flops'] / 1e9:.1f} | "
                   f"{f_g(r['flops'], o)} | {f_g(r['flops'], m.get('ort'))} |")
    return out + [""]


def markdown(res, png_rel):
    md = header(res) + [""] + [LEGEND, ""] + table(res, "image") + table(res, "text")
    if png_rel:
        md += [f"![ratios: theirs / ours per row]({png_rel})", ""]
    return "\n".join(l for l in md)


def chart(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    towers = [t for t in ("image", "text") if any(r["tower"] == t for r in res["rows"])]
    per_tower = max(len([r for r in res["rows"] if r["tower"] == t]) for t in towers)
    fig, axes = plt.subplots(len(towers), 1, figsize=(max(8, 1.1 * per_tower), 3.4 * len(towers) + 0.8), squeeze=False)

    def ratio(r, key):
        m = r["median_ms"]
        if key == "sql":
            full = engine_full_ms(r)
            return full / m["sql"] if m.get("sql") and full else 0
        return m[key] / m["ours"] if m.get(key) and m.get("ours") else 0

    series = [("pt_train", "PyTorch training / ours", "#bbbbbb"), ("pt_reparam", "PyTorch reparam / ours", "#4c72b0"),
              ("ort", "ONNX Runtime / ours", "#dd8452"), ("sql", "ours engine (+preproc.) / ours SQL", "#55a868")]
    series = [s for s in series if any(ratio(r, s[0]) for r in res["rows"])]
    for ax, tower in zip(axes[:, 0], towers):
        rows = [r for r in res["rows"] if r["tower"] == tower]
        w = 0.8 / max(len(series), 1)
        for i, (key, name, color) in enumerate(series):
            vals = [ratio(r, key) for r in rows]
            xs = [j + (i - (len(series) - 1) / 2) * w for j in range(len(rows))]
            ax.bar(xs, vals, w, label=name, color=color)
            for x, val in zip(xs, vals):
                if val:
                    ax.text(x, val, f"{val:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(0.8, color="#dd8452", lw=0.6, ls="--", label="0.8 (ORT target)")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{r['variant']}\nb{r['batch']}" for r in rows], fontsize=8)
        ax.set_ylabel("ratio (> 1: ours faster)")
        ax.set_title(f"{tower} tower, fp32, {res['meta']['threads']} threads", fontsize=10)
        top = max([b.get_height() for b in ax.patches] + [1.2])
        ax.set_ylim(0, top * 1.2)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.suptitle(f"mobileclip vs PyTorch vs ONNX Runtime — {res['meta']['date']}", fontsize=10)
    fig.tight_layout(rect=(0, 0.09 if len(labels) > 3 else 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replace_section(path, body):
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        post = rest.split(END, 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    open(path, "w").write(text)


def write(res, into_repo, root, cache):
    if into_repo:
        os.makedirs(os.path.join(root, "docs"), exist_ok=True)
        jpath, ppath = os.path.join(root, "docs/bench.json"), os.path.join(root, "docs/bench.png")
        png_rel = "docs/bench.png"
    else:
        os.makedirs(cache, exist_ok=True)
        jpath, ppath = os.path.join(cache, "last.json"), os.path.join(cache, "last.png")
        png_rel = None
    with open(jpath, "w") as f:
        json.dump(res, f, indent=1)
    chart(res, ppath)
    md = markdown(res, png_rel)
    print(md)
    if into_repo:
        replace_section(os.path.join(root, "BENCHMARKS.md"), md)
        print(f"[bench] wrote BENCHMARKS.md (section between the bench markers), {jpath}, {ppath}", file=sys.stderr)
    else:
        open(os.path.join(cache, "last.md"), "w").write(md + "\n")
        print(f"[bench] wrote {jpath}, {ppath}, {os.path.join(cache, 'last.md')} (repo files untouched)", file=sys.stderr)
