//! FastViT forward timings (not a correctness test; #[ignore]d):
//! `FASTVIT_BENCH=S0,S2 cargo test --release -p mobileclip-engine --test fastvit_bench -- --ignored --nocapture`
//! Weights: FASTVIT_MODELS/<V>/open_clip_model.safetensors (default /tmp/mobileclip-models,
//! what `mobileclip random-model` writes). Input: 256x256, batch 1 and 16; median of several
//! runs after a warm-up; FASTVIT_PROFILE=1 adds a per-stage breakdown of one batch.

use std::path::PathBuf;
use std::time::Instant;

use mlx_rs::Array;
use mobileclip_engine::random_model::uniform;
use mobileclip_engine::testing::{FastVit, FastVitSpec, Weights};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark"]
fn fastvit_forward_timings() {
    mobileclip_engine::runtime::init(Default::default()).unwrap();
    let variants = std::env::var("FASTVIT_BENCH").unwrap_or_else(|_| "S0".into());
    let models = PathBuf::from(std::env::var("FASTVIT_MODELS").unwrap_or_else(|_| "/tmp/mobileclip-models".into()));
    println!("| variant | batch | ms / image (median) | runs |");
    println!("|---|---:|---:|---:|");
    for v in variants.split(',') {
        let (name, embed) = match v {
            "S0" => ("fastvit_mci0", 512),
            "S2" => ("fastvit_mci2", 512),
            "S3" => ("fastvit_mci3", 768),
            "S4" => ("fastvit_mci4", 768),
            other => panic!("unknown variant {other}"),
        };
        let spec = FastVitSpec::from_timm_name(name).unwrap();
        let w = Weights::open(&models.join(v).join("open_clip_model.safetensors")).unwrap();
        let t = Instant::now();
        let tower = FastVit::load(&mobileclip_engine::testing::Params::build(&w), &spec, embed).unwrap();
        eprintln!("{v}: load + reparameterize {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
        for batch in [1usize, 16] {
            let x = Array::from_slice(&uniform(batch * 256 * 256 * 3, 7), &[batch as i32, 256, 256, 3]);
            tower.forward(&x).unwrap().eval().unwrap(); // warm-up
            let runs = if batch == 1 {
                9
            } else if v == "S0" || v == "S2" {
                5
            } else {
                3
            };
            let mut tb = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                tower.forward(&x).unwrap().eval().unwrap();
                tb.push(t.elapsed().as_secs_f64() * 1e3);
            }
            println!("| {v} | {batch} | {:.1} | {runs} |", median(tb) / batch as f64);
            if std::env::var_os("FASTVIT_PROFILE").is_some() {
                let (_, parts) = tower.forward_profiled(&x).unwrap();
                let s: Vec<String> = parts.iter().map(|(n, ms)| format!("{n} {ms:.1}")).collect();
                println!("|   profile (ms, whole batch) | {batch} | {} | |", s.join(", "));
            }
        }
    }
}
