"""scripts/bench: mobileclip (engine and SQL) next to PyTorch (open_clip, training form and
reparameterized) and ONNX Runtime, in one run, on the same model directories and inputs.

Run through scripts/bench (which prepares the venv and the CLI); `--help` lists the options.
Everything heavy (torch, onnxruntime) is imported lazily so `--help` works with any python3.

Per variant: the random-weight model directory (`mobileclip random-model`, HF layout) is
loaded by every engine; the ONNX graphs are exported from the reparameterized PyTorch model
(cached). Per variant and tower every engine is warmed up, then RUNS repeats follow; in each
repeat every engine times one call per batch size right after an untimed call of its own with
the same batch (the CLI, a new process per repeat, loads the model and makes that call itself),
the engines' order rotating from repeat to repeat so that machine noise falls on all of them
alike. Reported: the median of the RUNS.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VARIANTS = ["S0", "S2", "B", "S3", "S4", "L-14"]
ENGINES = ["ours", "sql", "pt_train", "pt_reparam", "ort"]
# The captions `mobileclip bench text` uses (crates/cli/src/main.rs BENCH_TEXTS), cycled to
# fill a batch; the SQL path gets the same texts.
TEXTS = [
    "a photo of a dog playing in the snow",
    "two people riding bicycles along a river at sunset",
    "a bowl of ramen with a soft-boiled egg and green onions",
    "satellite image of farmland and a winding road",
]
PG_BIN = "/usr/lib/postgresql/15/bin"
CACHE = os.environ.get("BENCH_CACHE", "/tmp/mobileclip-bench")
MODELS = os.environ.get("BENCH_MODELS", os.path.join(CACHE, "models"))


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def csv(s):
    return [x for x in s.split(",") if x]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="mobileclip (engine + SQL) vs PyTorch (training form + reparameterized) vs ONNX Runtime, "
        "side by side in one run; writes BENCHMARKS.md (marked section), docs/bench.json, docs/bench.png.")
    p.add_argument("--variants", type=csv, default=VARIANTS, help="comma list (default: all six)")
    p.add_argument("--towers", type=csv, default=["image", "text"], help="image,text (default both)")
    p.add_argument("--batches", type=lambda s: [int(x) for x in csv(s)], default=[1, 16], help="default 1,16")
    p.add_argument("--runs", type=int, default=5, help="timed repeats per engine and row; the median is reported (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per engine and batch before the repeats (default 1)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every engine (default: nproc)")
    p.add_argument("--engines", type=csv, default=ENGINES, help=f"subset of {','.join(ENGINES)}")
    p.add_argument("--image", default=os.path.join(ROOT, "tests/fixtures/images/src/jpeg_420.jpg"),
                   help="the image every engine embeds (repeated to fill a batch)")
    p.add_argument("--gap", type=float, default=0.2, help="seconds of rest between two engines (idle thread pools stop spinning)")
    p.add_argument("--quick", action="store_true", help="smoke run: S0, batch 1, 2 runs, writes nothing in the repo unless --write")
    p.add_argument("--write", dest="write", action="store_true", default=None, help="write BENCHMARKS.md/docs (default unless --quick)")
    p.add_argument("--no-write", dest="write", action="store_false", help="print the tables only; raw JSON goes to $BENCH_CACHE/last.json")
    p.add_argument("--report", metavar="JSON", help="no measuring: render tables/chart from a saved raw JSON")
    p.add_argument("--cli", default=os.environ.get("MOBILECLIP_CLI", os.path.join(ROOT, "target/release/mobileclip")))
    a = p.parse_args(argv)
    if a.quick:
        given = set(x.split("=")[0] for x in argv)
        if "--variants" not in given:
            a.variants = ["S0"]
        if "--batches" not in given:
            a.batches = [1]
        if "--runs" not in given:
            a.runs = 2
    if a.write is None:
        a.write = not a.quick
    for v in a.variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v}")
    for e in a.engines:
        if e not in ENGINES:
            p.error(f"unknown engine {e}")
    for t in a.towers:
        if t not in ("image", "text"):
            p.error(f"unknown tower {t}")
    a.argv = argv
    return a


# --- machine facts --------------------------------------------------------------------

def machine():
    cpu, flags = platform.processor(), []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile") if f in flags]
    mem = 0
    try:
        mem = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "isa": isa, "mem_gib": round(mem, 1),
            "os": platform.platform(), "loadavg_start": os.getloadavg()}


SGEMM = r"""
import json, sys, time, numpy as np
n, runs = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32); b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
ts = []
for _ in range(runs):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
cfg = ""
try:
    cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
except Exception:
    pass
ts.sort()
print(json.dumps({"n": n, "runs_s": ts, "median_gflops": 2 * n**3 / ts[len(ts) // 2] / 1e9,
                  "best_gflops": 2 * n**3 / ts[0] / 1e9, "numpy": np.__version__, "blas": cfg}))
"""


def newest_source():
    """The newest modification time of the files the extension is built from."""
    newest = 0.0
    for top in ("src", "crates", "sql", "Cargo.toml", "Cargo.lock", "mobileclip.control"):
        path = os.path.join(ROOT, top)
        if os.path.isfile(path):
            newest = max(newest, os.path.getmtime(path))
        for d, dirs, files in os.walk(path):
            dirs[:] = [x for x in dirs if x != "target"]
            for f in files:
                newest = max(newest, os.path.getmtime(os.path.join(d, f)))
    return newest


def sgemm(threads, n=2048, runs=9):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", SGEMM, str(n), str(runs)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


# --- our engine through the CLI --------------------------------------------------------

class Ours:
    """`mobileclip bench image|text` for one repeat: the CLI loads the model, warms up once
    per batch and times one call per batch (its JSON); load and warm-up are not timed."""

    def __init__(self, cli, threads):
        self.cli, self.threads = cli, threads
        h = subprocess.run([cli, "bench", "image", "--help"], capture_output=True, text=True).stdout
        self.threads_flag = "--threads" in h
        self.env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
        self.last = {}

    def info(self):
        out = subprocess.run([self.cli, "info"], capture_output=True, text=True, env=self.env)
        try:
            return json.loads(out.stdout)
        except ValueError:
            return {}

    def repeat(self, model_dir, tower, batches, image):
        cmd = [self.cli, "bench", tower, "--model", model_dir, "--batches", ",".join(map(str, batches)), "--runs", "1"]
        if tower == "image":
            cmd += ["--image", image]
        if self.threads_flag:
            cmd += ["--threads", str(self.threads)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=ROOT)
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed:\n{p.stderr}")
        j = json.loads(p.stdout)
        self.last = j
        return {r["batch"]: r["runs_ms"][0] for r in j["rows"]}, j


# --- our engine through SQL ------------------------------------------------------------

class Cluster:
    """A throwaway Postgres 15 cluster (scripts/lib/common.sh) on 127.0.0.1 and a free port."""

    def __init__(self, threads):
        os.makedirs(CACHE, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=CACHE)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.threads = threads
        self.env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
        self.started = False

    def _common(self, script, *args):
        subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/lib/common.sh"; {script}', "_", *args],
                       check=True, env=self.env)

    def start(self):
        log(f"postgres: throwaway cluster in {self.dir}, port {self.port}")
        self._common('start_cluster "$1" "$2"', self.dir, str(self.port))
        self.started = True

    def stop(self):
        if self.started:
            self._common('stop_cluster "$1"', self.dir)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def session(self):
        return Psql(self)


class Psql:
    """One psql session (one backend) kept open; a statement's result is read up to a marker."""
    END = "@@bench-end@@"

    def __init__(self, cluster):
        user = os.environ.get("MOBILECLIP_PG_USER", "postgres")
        cmd = [f"{PG_BIN}/psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(cluster.port),
               "-U", "postgres", "-d", "postgres"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", user, "--"] + cmd
        self.err = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                  cwd="/", env=cluster.env)

    def q(self, sql):
        self.p.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo " + self.END + "\n")
        self.p.stdin.flush()
        lines = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                self.err.seek(0)
                raise RuntimeError(f"psql ended: {self.err.read()[-2000:]}\nstatement: {sql[:300]}")
            line = line.rstrip("\n")
            if line == self.END:
                return lines
            lines.append(line)

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


class Sql:
    """clip_embed_images(bytea[]) / clip_embed_texts(text[]) in a backend that has the model
    loaded, timed inside the server (clock_timestamp() around the call in a PL/pgSQL function;
    the array argument is built before the clock starts). One backend per batch size, as an
    application would have (search sessions embed one query at a time, an ETL session
    batches): a backend's buffer cache stays what its own calls need (mobileclip.idle_cache_size),
    where one backend alternating b1 and b16 released the b16 buffers at each transaction end and
    timed the b1 call after it with all its memory faulted in anew."""

    def __init__(self, cluster, threads):
        self.cluster, self.threads, self.sessions = cluster, threads, {}

    def open(self, model_dir, image_bytes, batches):
        self.close()
        info = None
        for b in batches:
            s = self.sessions[b] = self.cluster.session()
            s.q("CREATE EXTENSION IF NOT EXISTS mobileclip CASCADE")
            s.q("LOAD 'mobileclip'")
            self.threads_guc = s.q("SELECT count(*) FROM pg_settings WHERE name = 'mobileclip.threads'") == ["1"]
            if self.threads_guc:
                # a setting a session may not change (e.g. postmaster-level) keeps its value; recorded below
                s.q(f"""DO $$ BEGIN PERFORM set_config('mobileclip.threads', '{self.threads}', false);
                        EXCEPTION WHEN others THEN NULL; END $$""")
                self.threads_guc = s.q("SELECT current_setting('mobileclip.threads')")[0]
            s.q(f"SET mobileclip.model_path = '{model_dir}'")
            s.q(f"SET mobileclip.batch_size = {max(batches)}")
            s.q("CREATE TEMP TABLE bench_image AS SELECT decode('" + image_bytes.hex() + "', 'hex') AS b")
            s.q("""CREATE FUNCTION pg_temp.t_images(a bytea[]) RETURNS float8 LANGUAGE plpgsql AS $$
                   DECLARE t timestamptz; r vector[];
                   BEGIN t := clock_timestamp(); r := clip_embed_images(a);
                         RETURN 1000 * extract(epoch FROM clock_timestamp() - t); END $$""")
            s.q("""CREATE FUNCTION pg_temp.t_texts(a text[]) RETURNS float8 LANGUAGE plpgsql AS $$
                   DECLARE t timestamptz; r vector[];
                   BEGIN t := clock_timestamp(); r := clip_embed_texts(a);
                         RETURN 1000 * extract(epoch FROM clock_timestamp() - t); END $$""")
            t = time.perf_counter()
            loaded = json.loads(s.q("SELECT clip_load()")[0])
            loaded["client_load_ms"] = (time.perf_counter() - t) * 1e3
            if info is None:  # the first backend's load (the others find the weights cache warm)
                info = loaded
                self.runtime = json.loads(s.q("SELECT clip_runtime_info()")[0])
        return info

    def time(self, tower, b):
        if tower == "image":
            sql = f"SELECT pg_temp.t_images((SELECT array_fill(b, ARRAY[{b}]) FROM bench_image))"
        else:
            arr = ",".join("'" + TEXTS[i % len(TEXTS)].replace("'", "''") + "'" for i in range(b))
            sql = f"SELECT pg_temp.t_texts(ARRAY[{arr}]::text[])"
        return float(self.sessions[b].q(sql)[0])

    def close(self):
        for s in self.sessions.values():
            s.close()
        self.sessions = {}


def module_signature(module):
    return [(n, type(m).__name__) for n, m in module.named_modules()]


def tower_modules(model, tower):
    if tower == "image":
        return model.visual
    import torch
    mods = torch.nn.ModuleDict({k: v for k, v in model.named_children() if k != "visual"})
    return mods


class TorchSide:
    """open_clip loads the directory as a user loads the HF repo (`local-dir:`); the training
    form is what that gives, `timm.utils.reparameterize_model` makes the inference form."""

    def __init__(self, threads):
        import torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        self.torch = torch

    def load(self, model_dir, image_path):
        import open_clip
        import timm.utils
        from PIL import Image
        torch = self.torch
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
        model.eval()
        self.train = model
        self.rep = timm.utils.reparameterize_model(model)
        self.rep.eval()
        self.same = {t: module_signature(tower_modules(self.train, t)) == module_signature(tower_modules(self.rep, t))
                     for t in ("image", "text")}
        with Image.open(image_path) as im:
            self.pixels = preprocess(im)
        self.tok = open_clip.get_tokenizer(f"local-dir:{model_dir}")
        self.inputs = {}

    def input(self, tower, b):
        key = (tower, b)
        if key not in self.inputs:
            if tower == "image":
                self.inputs[key] = self.pixels.unsqueeze(0).repeat(b, 1, 1, 1).contiguous()
            else:
                self.inputs[key] = self.tok([TEXTS[i % len(TEXTS)] for i in range(b)])
        return self.inputs[key]

    def forward(self, model, tower, x):
        with self.torch.inference_mode():
            if tower == "image":
                return model.encode_image(x, normalize=True)
            return model.encode_text(x, normalize=True)

    def time(self, which, tower, b):
        model = self.train if which == "pt_train" else self.rep
        x = self.input(tower, b)
        t = time.perf_counter()
        self.forward(model, tower, x)
        return (time.perf_counter() - t) * 1e3

    def flops(self, tower, b):
        from torch.utils.flop_counter import FlopCounterMode
        x = self.input(tower, b)
        # nn.MultiheadAttention's inference fast path is one fused op the counter does not
        # know; counted with it off (same maths: in_proj/out_proj matmuls + attention bmm)
        mha = self.torch.backends.mha
        fast = mha.get_fastpath_enabled()
        mha.set_fastpath_enabled(False)
        try:
            with FlopCounterMode(display=False) as fc:
                self.forward(self.rep, tower, x)
        finally:
            mha.set_fastpath_enabled(fast)
        return int(fc.get_total_flops()), {str(k): int(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}


def tower_module(model, tower):
    """The tower as its own module: encode_image / encode_text with normalize=True."""
    import torch

    class TowerModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            return self.m.encode_image(x, normalize=True) if tower == "image" else self.m.encode_text(x, normalize=True)

    # eval: the legacy exporter restores the wrapper's train/eval mode recursively afterwards,
    # so a wrapper left in training mode would switch the model's BatchNorms to batch statistics
    return TowerModule().eval()


def onnx_path(variant, model_dir, tower):
    st = os.stat(os.path.join(model_dir, "open_clip_model.safetensors"))
    d = os.path.join(CACHE, "onnx", variant)
    return d, os.path.join(d, f"{tower}.onnx"), {"size": st.st_size, "mtime": st.st_mtime}


def export_onnx(ts, variant, model_dir, tower):
    """Legacy (TorchScript) exporter, opset 17, dynamic batch axis, from the reparameterized
    model; cached under $BENCH_CACHE/onnx/<variant>/ and reused while the model file is the same."""
    import torch
    d, path, stamp = onnx_path(variant, model_dir, tower)
    stamp["torch"] = torch.__version__
    sp = path + ".stamp.json"
    if os.path.exists(path) and os.path.exists(sp) and json.load(open(sp)) == stamp:
        return path, False
    os.makedirs(d, exist_ok=True)
    x = ts.input(tower, 2)
    name = "pixels" if tower == "image" else "token_ids"
    tmp = path + ".tmp"
    t = time.perf_counter()
    log(f"{variant} {tower}: exporting ONNX (legacy exporter, opset 17) -> {path}")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tower_module(ts.rep, tower), (x,), tmp, dynamo=False, opset_version=17, input_names=[name],
                          output_names=["embedding"], dynamic_axes={name: {0: "batch"}, "embedding": {0: "batch"}})
    ts.rep.eval()
    os.replace(tmp, path)
    json.dump(stamp, open(sp, "w"))
    log(f"{variant} {tower}: exported in {time.perf_counter() - t:.0f} s ({os.path.getsize(path) / 2**20:.0f} MiB)")
    return path, True


class Ort:
    def __init__(self, path, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.name = self.s.get_inputs()[0].name
        self.inputs = {}

    def input(self, ts, tower, b):
        if (tower, b) not in self.inputs:
            x = ts.input(tower, b).numpy()
            self.inputs[(tower, b)] = x.astype("int64") if tower == "text" else x
        return self.inputs[(tower, b)]

    def run(self, ts, tower, b):
        return self.s.run(None, {self.name: self.input(ts, tower, b)})[0]

    def time(self, ts, tower, b):
        x = self.input(ts, tower, b)
        t = time.perf_counter()
        self.s.run(None, {self.name: x})
        return (time.perf_counter() - t) * 1e3


# --- the run ---------------------------------------------------------------------------

def versions(ours_info):
    v = {"python": platform.python_version()}
    for mod in ("torch", "onnxruntime", "onnx", "open_clip", "timm", "numpy", "PIL"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    v["mlx"] = ours_info.get("mlx_version")
    v["blas"] = (ours_info.get("blas") or {}).get("openblas_config")
    v["mobileclip"] = ours_info.get("engine_version")
    try:
        v["mobileclip_git"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                                             text=True).stdout.strip()
    except OSError:
        pass
    return v


def ensure_model(cli, variant):
    d = os.path.join(MODELS, variant)
    if not os.path.exists(os.path.join(d, "open_clip_model.safetensors")):
        log(f"{variant}: writing the random-weight model directory {d}")
        subprocess.run([cli, "random-model", "--variant", variant, "--out", d], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    # the Postgres server (another OS user) reads it too; random-model writes the weights 0600
    for dirpath, _, files in os.walk(d):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    p = os.path.dirname(os.path.abspath(d))
    while p != "/":
        if not os.stat(p).st_mode & 0o001:
            log(f"WARNING: {p} is not searchable by other users: the Postgres server cannot read {d}")
        p = os.path.dirname(p)
    return d


def med(xs):
    return statistics.median(xs) if xs else None


def measure(a):
    import numpy as np
    t_start = time.time()
    threads = a.threads
    os.makedirs(CACHE, exist_ok=True)
    if not os.access(a.cli, os.X_OK):
        raise SystemExit(f"no CLI at {a.cli}: cargo build --release -p mobileclip-cli (or set MOBILECLIP_CLI)")
    load1 = os.getloadavg()[0]
    if load1 > 0.5 * (os.cpu_count() or 1):
        log(f"WARNING: load average {load1:.1f} on {os.cpu_count()} cores: other work is running; PyTorch (OpenMP) "
            "suffers most from a busy machine, so ratios taken now are not representative")
    ours = Ours(a.cli, threads)
    info = ours.info()
    log(f"threads {threads}; ours: CLI {a.cli} ({'--threads' if ours.threads_flag else 'OPENBLAS_NUM_THREADS'})")
    log("sgemm (numpy, 2048^3, 9 runs)")
    sg = sgemm(threads)
    log(f"sgemm: {sg['median_gflops']:.0f} GFLOP/s median ({sg['best_gflops']:.0f} best)")
    builds = {}
    try:
        lib = subprocess.run([f"{PG_BIN}/pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip()
        builds = {"cli": os.path.getmtime(a.cli), "extension": os.path.getmtime(os.path.join(lib, "mobileclip.so")),
                  "sources": newest_source()}
    except OSError:
        pass
    # The CLI is built just now (cargo build above); the extension only by scripts/setup. It
    # is stale when a source file changed after it was installed. (Comparing it with the
    # CLI's time flagged fresh installs: setup links the CLI minutes after the extension.)
    stale = "sql" in a.engines and builds and builds["extension"] < builds["sources"]
    if stale:
        log("WARNING: a source file changed after the extension was installed; run scripts/setup so SQL measures "
            "the same build as the CLI")
    ts = TorchSide(threads)
    image_bytes = open(a.image, "rb").read()
    res = {
        "meta": {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": "scripts/bench " + shlex.join(a.argv), "cli": a.cli, "threads": threads, "runs": a.runs,
                 "warmup": a.warmup, "batches": a.batches, "engines": a.engines, "image": os.path.relpath(a.image, ROOT),
                 "machine": machine(), "versions": versions(info), "sgemm_start": sg,
                 "ours_threads": "--threads" if ours.threads_flag else "OPENBLAS_NUM_THREADS",
                 "builds": {k: datetime.datetime.fromtimestamp(v, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                            for k, v in builds.items()}, "extension_older_than_sources": bool(stale)},
        "rows": [], "checks": [],
    }
    cluster = sql = None
    try:
        if "sql" in a.engines:
            cluster = Cluster(threads)
            cluster.start()
            sql = Sql(cluster, threads)
        for variant in a.variants:
            model_dir = ensure_model(a.cli, variant)
            log(f"{variant}: loading PyTorch (open_clip local-dir:, + reparameterize_model)")
            ts.load(model_dir, a.image)
            if sql:
                li = sql.open(model_dir, image_bytes, a.batches)
                res["meta"]["sql_threads"] = (f"mobileclip.threads = {sql.threads_guc}" if sql.threads_guc
                                              else "OPENBLAS_NUM_THREADS (server env)")
                res["meta"]["sql_runtime"] = sql.runtime.get("threads")
                log(f"{variant}: SQL session loaded the model in {li.get('load_ms', 0):.0f} ms")
            for tower in a.towers:
                engines = [e for e in ENGINES if e in a.engines]
                same = ts.same[tower]
                if same and "pt_train" in engines and "pt_reparam" in engines:
                    engines.remove("pt_train")  # nothing to reparameterize: one model, reported in both columns
                ort = None
                check = {"variant": variant, "tower": tower, "reparam_noop": same}
                if "ort" in engines:
                    path, fresh = export_onnx(ts, variant, model_dir, tower)
                    ort = Ort(path, threads)
                    for b in sorted(set(a.batches) | {1}):
                        ref = ts.forward(ts.rep, tower, ts.input(tower, b)).numpy()
                        got = ort.run(ts, tower, b)
                        check[f"ort_vs_pt_max_abs_b{b}"] = float(np.abs(got - ref).max())
                    check["onnx"] = path
                    worst = max(v for k, v in check.items() if k.startswith("ort_vs_pt"))
                    if worst > 1e-4:
                        log(f"WARNING: {variant} {tower}: ONNX Runtime differs from PyTorch by {worst:.1e} (> 1e-4)")
                if not same:
                    b = a.batches[0]
                    x = ts.input(tower, b)
                    d = (ts.forward(ts.train, tower, x) - ts.forward(ts.rep, tower, x)).abs().max().item()
                    check[f"pt_train_vs_reparam_max_abs_b{b}"] = d
                res["checks"].append(check)
                log(f"{variant} {tower}: " + ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}"
                                                       for k, v in check.items() if k not in ("variant", "tower")))
                rows = {}
                for b in a.batches:
                    fl, by_op = ts.flops(tower, b)
                    rows[b] = {"variant": variant, "tower": tower, "batch": b, "flops": fl, "flops_by_op": by_op,
                               "runs_ms": {e: [] for e in engines}, "reparam_noop": same}
                log(f"{variant} {tower}: warm-up")
                for b in a.batches:
                    for _ in range(a.warmup):
                        for e in engines:
                            if e in ("pt_train", "pt_reparam"):
                                ts.time(e, tower, b)
                            elif e == "ort":
                                ort.time(ts, tower, b)
                            elif e == "sql":
                                sql.time(tower, b)
                ours_extra = []
                for r in range(a.runs):
                    order = engines[r % len(engines):] + engines[:r % len(engines)]
                    line = []
                    for e in order:
                        time.sleep(a.gap)
                        if e == "ours":
                            ms, j = ours.repeat(model_dir, tower, a.batches, a.image)
                            ours_extra.append(j)
                            for b in a.batches:
                                rows[b]["runs_ms"]["ours"].append(ms[b])
                        else:
                            for b in a.batches:
                                # an untimed call first, as the CLI makes one before its timed
                                # call: each engine is timed hot, right after a call of its own
                                # (not after whatever the engine before it left in the caches)
                                for timed in (False, True):
                                    if e == "sql":
                                        ms = sql.time(tower, b)
                                    elif e == "ort":
                                        ms = ort.time(ts, tower, b)
                                    else:
                                        ms = ts.time(e, tower, b)
                                rows[b]["runs_ms"][e].append(ms)
                        line.append(e + " " + "/".join(f"{rows[b]['runs_ms'][e][-1]:.0f}" for b in a.batches))
                    log(f"{variant} {tower} run {r + 1}/{a.runs} (ms, b{'/'.join(map(str, a.batches))}): " + ", ".join(line))
                for b in a.batches:
                    row = rows[b]
                    if ours_extra:
                        if tower == "image":
                            row["ours_preprocess_ms_per_image"] = med([j["preprocess_ms"] for j in ours_extra])
                        else:
                            row["ours_tokenize_ms"] = med([next(x["tokenize_ms"] for x in j["rows"] if x["batch"] == b)
                                                           for j in ours_extra])
                        row["ours_load_ms"] = med([j["load_ms"] for j in ours_extra])
                    if same and "pt_reparam" in row["runs_ms"] and "pt_train" in a.engines:
                        row["runs_ms"]["pt_train"] = row["runs_ms"]["pt_reparam"]
                    row["median_ms"] = {e: med(v) for e, v in row["runs_ms"].items()}
                    res["rows"].append(row)
                del ort
            if sql:
                sql.close()
    finally:
        if sql:
            sql.close()
        if cluster:
            cluster.stop()
    log("sgemm again (end of run)")
    res["meta"]["sgemm_end"] = sgemm(threads)
    res["meta"]["machine"]["loadavg_end"] = os.getloadavg()
    res["meta"]["wall_s"] = round(time.time() - t_start)
    return res


def main(argv):
    a = parse_args(argv)
    import report
    if a.report:
        res = json.load(open(a.report))
    else:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        res = measure(a)
    report.write(res, a.write, ROOT, CACHE)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
