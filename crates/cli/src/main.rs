//! The `mobileclip` command: the engine from the shell (no Postgres involved).

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

mod fuzz;
mod npy;

use mobileclip_engine::random_model::{compare, write_model_dir_edited, Edit};
use mobileclip_engine::{microbench, runtime, Engine, LoadOptions};

#[derive(Parser)]
#[command(name = "mobileclip", version, about = "MobileCLIP2 on MLX: embeddings, preprocessing, parity, benchmarks")]
struct Cli {
    /// Threads for OpenBLAS and the kernel layer (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// MLX buffer cache limit in MiB (default: the engine's, see runtime::DEFAULT_CACHE_LIMIT).
    #[arg(long, global = true)]
    cache_mb: Option<usize>,
    /// Weights cache directory: each tower is mapped from a verified cache file made from the
    /// model file (built there on first use), as the extension does. Default: no cache.
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the MLX runtime facts (version, device, bound BLAS, threads, self-check) as JSON.
    Info,
    /// Text embeddings (L2-normalised) as JSON: one array per TEXT.
    EmbedText {
        /// Model directory (Hugging Face timm/MobileCLIP2-<V>-OpenCLIP layout).
        #[arg(long)]
        model: PathBuf,
        /// Print the token ids instead of embeddings.
        #[arg(long)]
        tokens: bool,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Image embeddings (L2-normalised) as JSON: one array per FILE (JPEG, PNG, GIF, WebP, BMP, TIFF).
    EmbedImage {
        /// Model directory (Hugging Face timm/MobileCLIP2-<V>-OpenCLIP layout).
        #[arg(long)]
        model: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The normalised pixel tensors open_clip's eval transform makes of each FILE, as one
    /// float32 .npy of shape [N, 3, S, S] (NCHW, like the reference).
    Preprocess {
        #[arg(long)]
        model: PathBuf,
        /// Output .npy file.
        #[arg(long)]
        out: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Writes a random-weight model directory ("mcrand v1", tests/reference/RANDOM_WEIGHTS.md)
    /// in the Hugging Face layout, identical to the one the reference fixtures were made from.
    RandomModel {
        /// S0, S2, B, S3, S4 or L-14.
        #[arg(long)]
        variant: String,
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        /// The repository's tests/fixtures directory.
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
        /// Only the text tower's tensors (and logit_scale). Such a file does not load (the image
        /// tower is missing); it is for testing that error.
        #[arg(long)]
        text_only: bool,
        /// Damage the weights (for tests of the load and output checks): KEY:[I]=V sets one
        /// element (flat index), KEY:*=S scales a tensor, KEY:=V fills it. Repeatable.
        #[arg(long)]
        edit: Vec<Edit>,
    },
    /// Parity with open_clip: rebuilds each random-weight model and compares this engine's
    /// text and image embeddings with the committed open_clip outputs
    /// (tests/fixtures/models/text_<V>.json, image_<V>.json).
    Parity {
        /// Variants (default: all six).
        #[arg(long, value_delimiter = ',', default_value = "S0,S2,B,S3,S4,L-14")]
        variants: Vec<String>,
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
        /// Scratch directory for the generated models.
        #[arg(long, default_value_os_t = std::env::temp_dir().join("mobileclip-parity"))]
        work: PathBuf,
    },
    /// Seeded mutation fuzzing (issue 13): CLASS images (mutated files of every format through
    /// preprocessing), texts (any UTF-8 through the tokenizer) or models (mutated configs,
    /// safetensors files, tokenizer.json through their loaders). Prints a JSON summary; fails
    /// on a contract violation. scripts/fuzz runs the long campaign.
    Fuzz {
        class: String,
        #[arg(long, default_value_t = 10_000)]
        cases: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
        /// Where the current case (and a crash's input) is kept.
        #[arg(long, default_value_os_t = std::env::temp_dir().join("mobileclip-fuzz"))]
        crash_dir: PathBuf,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The text tower (token ids -> normalised embeddings) at the given batch sizes; JSON out.
    Text {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        batches: Vec<usize>,
        /// Timed runs per batch size (after one warm-up).
        #[arg(long, default_value_t = 9)]
        runs: usize,
    },
    /// The image tower (normalised pixels -> normalised embeddings) at the given batch sizes,
    /// and the preprocessing of one file (decode, resize, crop, normalise); JSON out.
    Image {
        #[arg(long)]
        model: PathBuf,
        /// The image whose pixels are used (repeated to fill a batch).
        #[arg(long, default_value = "tests/fixtures/images/src/jpeg_420.jpg")]
        image: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 9)]
        runs: usize,
    },
    /// MLX building blocks (matmul, conv2d, depthwise, attention) next to numpy in one run.
    Runtime {
        /// Timed runs per case (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 9)]
        runs: usize,
        /// Python with numpy for the side-by-side column; "none" skips it.
        #[arg(long, env = "MOBILECLIP_BENCH_PYTHON", default_value = "python3")]
        python: String,
        /// Print JSON instead of a Markdown table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = CACHE_DIR.set(cli.cache_dir.clone());
    // The first init wins (process-wide settings): the later calls in the commands are no-ops.
    if let Err(e) =
        runtime::init(runtime::InitOptions { threads: cli.threads, cache_limit: cli.cache_mb.map(|m| m << 20), ..Default::default() })
    {
        eprintln!("mobileclip: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.cmd {
        Cmd::Info => info(),
        Cmd::EmbedText { model, tokens, text } => embed_text(&model, tokens, &text),
        Cmd::EmbedImage { model, files } => embed_image(&model, &files),
        Cmd::Preprocess { model, out, files } => preprocess(&model, &out, &files),
        Cmd::RandomModel { variant, out, fixtures, text_only, edit } => random_model(&variant, &out, &fixtures, text_only, &edit),
        Cmd::Parity { variants, fixtures, work } => parity(&variants, &fixtures, &work),
        Cmd::Fuzz { class, cases, seed, fixtures, crash_dir } => fuzz::run(&class, cases, seed, &fixtures, &crash_dir),
        Cmd::Bench { what: BenchWhat::Runtime { runs, python, json } } => bench_runtime(runs, &python, json),
        Cmd::Bench { what: BenchWhat::Text { model, batches, runs } } => bench_text(&model, &batches, runs),
        Cmd::Bench { what: BenchWhat::Image { model, image, batches, runs } } => bench_image(&model, &image, &batches, runs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mobileclip: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

static CACHE_DIR: once_cell::sync::OnceCell<Option<PathBuf>> = once_cell::sync::OnceCell::new();

/// Load options from the global flags.
fn load_options() -> LoadOptions {
    LoadOptions { cache_dir: CACHE_DIR.get().cloned().flatten(), ..LoadOptions::default() }
}

/// Per tower: parameters, load time, where the weights live (for the bench JSON).
fn towers_json(engine: &Engine) -> serde_json::Value {
    serde_json::Value::Array(
        engine
            .towers()
            .iter()
            .map(|t| {
                serde_json::json!({
                    "tower": t.name, "loaded": t.loaded, "params": t.params, "load_ms": t.load_ms,
                    "cache": t.cache.as_ref().map(|c| c.label()), "cache_detail": t.cache.as_ref().map(|c| format!("{c:?}")),
                    "copied_arrays": t.copied,
                })
            })
            .collect(),
    )
}

fn info() -> CliResult {
    runtime::init(Default::default())?;
    let info = runtime::runtime_info()?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}

fn embed_text(model: &Path, tokens: bool, texts: &[String]) -> CliResult {
    let engine = Engine::load(model, load_options())?;
    if tokens {
        let ids = texts.iter().map(|t| engine.tokenize(t)).collect::<Result<Vec<_>, _>>()?;
        println!("{}", serde_json::to_string(&ids)?);
        return Ok(());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    println!("{}", serde_json::to_string(&engine.embed_texts(&refs)?)?);
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn embed_image(model: &Path, files: &[PathBuf]) -> CliResult {
    let engine = Engine::load(model, load_options())?;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let bytes = read_file(f)?;
        let e = engine.embed_images(&[&bytes]).map_err(|e| format!("{}: {e}", f.display()))?;
        out.extend(e);
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn preprocess(model: &Path, out: &Path, files: &[PathBuf]) -> CliResult {
    let engine = Engine::load(model, load_options())?;
    let s = engine.image_preprocess().size as usize;
    let mut nchw = Vec::with_capacity(files.len() * 3 * s * s);
    for f in files {
        let hwc = engine
            .image_pixels(&read_file(f)?, &mobileclip_engine::preprocess::ImageLimits::default())
            .map_err(|e| format!("{}: {e}", f.display()))?;
        for c in 0..3 {
            nchw.extend(hwc.iter().skip(c).step_by(3));
        }
    }
    std::fs::write(out, npy::to_bytes(&nchw, &[files.len(), 3, s, s])?).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {} ({} x 3 x {s} x {s} float32)", out.display(), files.len());
    Ok(())
}

fn random_model(variant: &str, out: &Path, fixtures: &Path, text_only: bool, edits: &[Edit]) -> CliResult {
    write_model_dir_edited(fixtures, variant, out, text_only, edits)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn parity(variants: &[String], fixtures: &Path, work: &Path) -> CliResult {
    println!("| variant | texts | 1 - min cosine | max abs diff | token ids equal | reference mean pairwise cosine |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut failed = false;
    let mut image_rows = Vec::new();
    for v in variants {
        let dir = work.join(v);
        random_model(v, &dir, fixtures, false, &[])?;
        let engine = Engine::load(&dir, load_options())?;
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures.join(format!("models/text_{v}.json")))?)?;
        let texts: Vec<&str> = r["texts"].as_array().ok_or("texts")?.iter().filter_map(|t| t.as_str()).collect();
        let ids: Vec<Vec<i32>> = serde_json::from_value(r["ids"].clone())?;
        let want: Vec<Vec<f32>> = serde_json::from_value(r["embeddings"].clone())?;
        let flat: Vec<i32> = ids.iter().flatten().copied().collect();
        let got = engine.embed_token_ids(&flat, true)?;
        let (min_cos, worst) = compare(&got, &want);
        let same_ids = texts.iter().zip(&ids).filter(|(t, i)| engine.tokenize(t).ok().as_ref() == Some(*i)).count();
        println!(
            "| {v} | {} | {:.1e} | {worst:.2e} | {same_ids}/{} | {:.4} |",
            texts.len(),
            1.0 - min_cos,
            texts.len(),
            r["spread"]["mean_pairwise_cos"].as_f64().unwrap_or(f64::NAN)
        );
        failed |= min_cos.is_nan() || min_cos < 0.99999 || worst > 1e-4 || same_ids != texts.len();
        let ir: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures.join(format!("models/image_{v}.json")))?)?;
        let names: Vec<String> = serde_json::from_value(ir["images"].clone())?;
        let want: Vec<Vec<f32>> = serde_json::from_value(ir["embeddings"].clone())?;
        let files = names.iter().map(|n| read_file(&fixtures.join("images/src").join(n))).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = files.iter().map(|f| f.as_slice()).collect();
        let got = engine.embed_images(&refs)?;
        let (img_cos, img_abs) = compare(&got, &want);
        image_rows.push(format!(
            "| {v} | {} | {:.1e} | {img_abs:.2e} | {:.4} |",
            names.len(),
            1.0 - img_cos,
            ir["spread"]["mean_pairwise_cos"].as_f64().unwrap_or(f64::NAN)
        ));
        failed |= img_cos.is_nan() || img_cos < 0.9999;
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }
    println!();
    println!("| variant | images (from file bytes) | 1 - min cosine | max abs diff | reference mean pairwise cosine |");
    println!("|---|---:|---:|---:|---:|");
    for row in image_rows {
        println!("{row}");
    }
    if failed {
        return Err("parity below the bar (text: min cosine >= 0.99999, max abs diff <= 1e-4, all ids equal; \
                    images from bytes: min cosine >= 0.9999)"
            .into());
    }
    Ok(())
}

/// Captions for the text benchmark: ordinary lengths (10-20 tokens), as in search queries.
const BENCH_TEXTS: [&str; 4] = [
    "a photo of a dog playing in the snow",
    "two people riding bicycles along a river at sunset",
    "a bowl of ramen with a soft-boiled egg and green onions",
    "satellite image of farmland and a winding road",
];

/// CPU time of this process so far (ms, user + system, all threads). Next to wall time it
/// shows how busy the threads were, and with --threads 1 it is the work done even on a
/// machine that other jobs keep busy.
fn cpu_ms() -> f64 {
    // SAFETY: rusage is a plain C struct of integers, for which all zeros is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage through a valid, exclusive pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f` once to warm up, then `runs` times: (wall ms, cpu ms) per run.
fn timed(runs: usize, f: impl Fn() -> Result<(), Box<dyn std::error::Error>>) -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
    f()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let (t, c) = (std::time::Instant::now(), cpu_ms());
        f()?;
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push(cpu_ms() - c);
    }
    Ok((wall, cpu))
}

/// MLX's active memory now, with its peak counter reset: what the model holds.
fn activation_mark() -> usize {
    mobileclip_engine::runtime::reset_peak_memory();
    mobileclip_engine::runtime::memory_stats().0
}

/// The most memory MLX held for activations since `activation_mark` (MB): peak - held.
fn activation_peak_mb(mark: usize) -> f64 {
    mobileclip_engine::runtime::memory_stats().2.saturating_sub(mark) as f64 / 1048576.0
}

fn bench_text(model: &Path, batches: &[usize], runs: usize) -> CliResult {
    let t = std::time::Instant::now();
    let engine = Engine::load(model, load_options())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut rows = Vec::new();
    for &b in batches {
        let b = b.clamp(1, 256);
        let ids: Vec<i32> = (0..b).map(|i| engine.tokenize(BENCH_TEXTS[i % BENCH_TEXTS.len()])).collect::<Result<Vec<_>, _>>()?.concat();
        let mark = activation_mark();
        let (runs_ms, cpu) = timed(runs, || {
            std::hint::black_box(engine.embed_token_ids_batch(&ids, b)?);
            Ok(())
        })?;
        let peak_mb = activation_peak_mb(mark);
        let t = std::time::Instant::now();
        for i in 0..b {
            std::hint::black_box(engine.tokenize(BENCH_TEXTS[i % BENCH_TEXTS.len()])?);
        }
        let tokenize_ms = t.elapsed().as_secs_f64() * 1e3;
        rows.push(serde_json::json!({
            "batch": b, "runs_ms": runs_ms, "median_ms": microbench::median(&runs_ms), "cpu_ms": microbench::median(&cpu), "tokenize_ms": tokenize_ms,
            "mlx_peak_mb": peak_mb, "reserve_mb": engine.text_reserve_bytes(&ids)? as f64 / 1048576.0,
        }));
    }
    let out = serde_json::json!({ "model": model.display().to_string(), "load_ms": load_ms, "towers": towers_json(&engine), "rows": rows });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn bench_image(model: &Path, image: &Path, batches: &[usize], runs: usize) -> CliResult {
    let t = std::time::Instant::now();
    let engine = Engine::load(model, load_options())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let bytes = read_file(image)?;
    let limits = mobileclip_engine::preprocess::ImageLimits::default();
    let mut pre_ms = Vec::new();
    let mut pixels = Vec::new();
    for _ in 0..runs.max(1) {
        let t = std::time::Instant::now();
        pixels = engine.image_pixels(&bytes, &limits)?;
        pre_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut rows = Vec::new();
    for &b in batches {
        let b = b.clamp(1, 256);
        let batch: Vec<f32> = pixels.iter().copied().cycle().take(pixels.len() * b).collect();
        let mark = activation_mark();
        let (runs_ms, cpu) = timed(runs, || {
            std::hint::black_box(engine.embed_pixels(&batch, b, true)?);
            Ok(())
        })?;
        let peak_mb = activation_peak_mb(mark);
        rows.push(serde_json::json!({
            "batch": b, "runs_ms": runs_ms, "median_ms": microbench::median(&runs_ms), "cpu_ms": microbench::median(&cpu),
            "mlx_peak_mb": peak_mb, "reserve_mb": engine.image_reserve_bytes(b)? as f64 / 1048576.0,
        }));
    }
    let out = serde_json::json!({
        "model": model.display().to_string(), "image": image.display().to_string(), "load_ms": load_ms, "towers": towers_json(&engine),
        "preprocess_ms": microbench::median(&pre_ms), "rows": rows,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

const NUMPY_SCRIPT: &str = include_str!("bench_numpy.py");

/// Runs the numpy side in a child process. Spawning (fork+exec) after MLX use is fine: only
/// a forked child that itself uses MLX hangs.
fn numpy_side(python: &str, cases: &[microbench::Case], runs: usize) -> Result<serde_json::Value, String> {
    let mut child = Command::new(python)
        .args(["-c", NUMPY_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let req = serde_json::json!({ "cases": cases, "runs": runs });
    child.stdin.take().ok_or("no stdin")?.write_all(req.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{python} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn bench_runtime(runs: usize, python: &str, json: bool) -> CliResult {
    let runs = runs.max(1);
    runtime::init(Default::default())?;
    let info = runtime::runtime_info()?;
    let cases = microbench::standard_suite();
    let mut mlx = Vec::new();
    for case in &cases {
        mlx.push(microbench::run(case, runs)?);
    }
    let numpy = if python == "none" {
        None
    } else {
        match numpy_side(python, &cases, runs) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("mobileclip: numpy side skipped: {e}");
                None
            }
        }
    };
    let np_median = |i: usize| -> Option<f64> {
        let runs: Vec<f64> = numpy.as_ref()?["results"][i]["runs_ms"].as_array()?.iter().filter_map(|v| v.as_f64()).collect();
        Some(microbench::median(&runs))
    };
    if json {
        let rows: Vec<_> = mlx
            .iter()
            .enumerate()
            .map(|(i, t)| {
                serde_json::json!({
                    "op": t.case.label(), "mlx_ms": t.median_ms(), "mlx_gflops": t.gflops(),
                    "numpy_ms": np_median(i), "mlx_runs_ms": t.runs_ms,
                })
            })
            .collect();
        let out = serde_json::json!({ "runtime": info, "numpy": numpy.as_ref().map(|n| &n["numpy"]), "rows": rows });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "MLX {} ({}), BLAS: {} [{}]; numpy {}; medians of {runs} runs, fp32, ms",
        info.mlx_version,
        info.device.as_str(),
        info.blas.sgemm_library.as_deref().unwrap_or("?"),
        info.blas.openblas_config.as_deref().unwrap_or("?"),
        numpy.as_ref().and_then(|n| n["numpy"].as_str()).unwrap_or("n/a"),
    );
    println!();
    println!("| op | MLX ms | MLX GFLOP/s | numpy ms | numpy / MLX |");
    println!("|---|---:|---:|---:|---:|");
    for (i, t) in mlx.iter().enumerate() {
        let (np, ratio) = match np_median(i) {
            Some(n) => (format!("{n:.2}"), format!("{:.2}", n / t.median_ms())),
            None => ("n/a".into(), "n/a".into()),
        };
        println!("| {} | {:.2} | {:.1} | {np} | {ratio} |", t.case.label(), t.median_ms(), t.gflops());
    }
    Ok(())
}
