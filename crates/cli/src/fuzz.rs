//! `mobileclip fuzz images|texts|models`: the seeded mutation campaign of the engine's fuzz
//! module over the repository's corpora (every image format of tests/fixtures/images, the
//! tokenizer's hard-case corpus, the six reference configs, a small safetensors file with
//! every tensor kind, the tokenizer.json), with a JSON summary. Before each case its input is written
//! to `<crash-dir>/current.*`, so a crash that kills the process leaves the input behind;
//! contract violations are written there by index.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mobileclip_engine::fuzz::{self, Outcome};
use mobileclip_engine::preprocess::{ImageLimits, Interpolation};
use mobileclip_engine::tokenizer::ClipTokenizer;

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The files of `dirs` (not recursive), sorted.
fn files(dirs: &[PathBuf]) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut paths = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(d).map_err(|e| format!("{}: {e}", d.display()))? {
            let p = e?.path();
            if p.is_file() {
                paths.push(p);
            }
        }
    }
    paths.sort();
    Ok(paths.iter().map(std::fs::read).collect::<Result<_, _>>()?)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn run(class: &str, cases: usize, seed: u64, fixtures: &Path, crash_dir: &Path) -> CliResult {
    std::fs::create_dir_all(crash_dir)?;
    let t = Instant::now();
    let outcome: Outcome = match class {
        "images" => {
            let seeds = files(&[fixtures.join("images/src"), fixtures.join("images/stress/src")])?;
            let current = crash_dir.join("current.bin");
            let mut before = |_: usize, b: &[u8]| {
                let _ = std::fs::write(&current, b);
            };
            // Both preprocessing geometries the models use: half the seeds' cases each.
            let limits = ImageLimits::default();
            let half = cases / 2;
            let mut a = fuzz::images(&seeds, half, seed, 256, Interpolation::Bilinear, &limits, &mut before);
            let b = fuzz::images(&seeds, cases - half, seed ^ 0x5555, 224, Interpolation::Bicubic, &limits, &mut before);
            a.cases += b.cases;
            a.ok += b.ok;
            for (k, n) in b.errors {
                *a.errors.entry(k).or_default() += n;
            }
            a.failures.extend(b.failures.into_iter().map(|(i, m)| (half + i, m)));
            a
        }
        "texts" => {
            let tok = ClipTokenizer::from_file(&fixtures.join("tokenizer/tokenizer.json"), 49408, 77)?;
            let corpus: Vec<String> = std::fs::read_to_string(fixtures.join("tokenizer/corpus.jsonl"))?
                .lines()
                .filter_map(|l| serde_json::from_str::<String>(l).ok())
                .collect();
            if corpus.is_empty() {
                return Err("empty tokenizer corpus".into());
            }
            let current = crash_dir.join("current.txt");
            fuzz::texts(&tok, 49408, &corpus, cases, seed, &mut |_, t| {
                let _ = std::fs::write(&current, t);
            })
        }
        "models" => {
            let mut configs = Vec::new();
            for e in std::fs::read_dir(fixtures.join("configs"))? {
                configs.push(std::fs::read_to_string(e?.path())?);
            }
            configs.sort();
            let tokenizer = std::fs::read_to_string(fixtures.join("tokenizer/tokenizer.json"))?;
            let scratch = crash_dir.join("model");
            std::fs::create_dir_all(&scratch)?;
            let current = crash_dir.join("current.model");
            fuzz::models(&configs, &tokenizer, 49408, cases, seed, &scratch, &mut |_, part, b| {
                let _ = std::fs::write(&current, [part.as_bytes(), b"\n", b].concat());
            })
        }
        other => return Err(format!("unknown class {other:?}: images, texts or models").into()),
    };
    let summary = serde_json::json!({
        "class": class,
        "seed": seed,
        "cases": outcome.cases,
        "ok": outcome.ok,
        "errors": outcome.errors,
        "failures": outcome.failures.len(),
        "first_failures": outcome.failures.iter().take(10).map(|(i, m)| format!("case {i}: {m}")).collect::<Vec<_>>(),
        "seconds": t.elapsed().as_secs_f64(),
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{summary}");
    if outcome.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} contract violation(s) in {class}", outcome.failures.len()).into())
    }
}
