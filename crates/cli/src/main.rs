//! The `mobileclip` command: the engine from the shell (no Postgres involved).

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, Subcommand};
use mobileclip_engine::{microbench, runtime};

#[derive(Parser)]
#[command(name = "mobileclip", version, about = "MobileCLIP2 on MLX: runtime info, benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the MLX runtime facts (version, device, bound BLAS, threads, self-check) as JSON.
    Info,
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
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
    let result = match cli.cmd {
        Cmd::Info => info(),
        Cmd::Bench { what: BenchWhat::Runtime { runs, python, json } } => bench_runtime(runs, &python, json),
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

fn info() -> CliResult {
    runtime::init(Default::default())?;
    let info = runtime::runtime_info()?;
    println!("{}", serde_json::to_string_pretty(&info)?);
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
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(req.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
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
        let runs: Vec<f64> = numpy.as_ref()?["results"][i]["runs_ms"]
            .as_array()?
            .iter()
            .filter_map(|v| v.as_f64())
            .collect();
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
