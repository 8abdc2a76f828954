//! Full-size FastViT image-tower parity against open_clip 3.3.0 / timm 1.0.31 (PyTorch, fp32).
//!
//! The reference side (tests/reference/make_fastvit_reference.py) loaded the mcrand v1 random
//! model of each variant through open_clip's `local-dir:` path, fed 4 deterministic images
//! (sharp colour blocks, smooth gradients, noise: see `pixels`) and stored the `visual`
//! outputs in tests/fastvit_reference/<V>.json. Here the same weights are regenerated
//! bit-exactly from tests/fixtures/models/init_<V>.tsv (training form, as released), the same
//! pixels are generated (checked by hash), and `FastVit` reparameterizes at load and runs.
//!
//! All four run in CI (about 40 s together here); they run one at a time (S4 regenerates a
//! 1.3 GB weights file in the temp dir and holds the tower in memory). Print the table with
//! `cargo test --release -p mobileclip-engine --test fastvit_parity -- --nocapture`.
//! With FASTVIT_REPARAM_DIR=<dir> holding <V>/reparam.safetensors (timm-reparameterized
//! state dicts written by the reference script), the already-reparameterized path is checked
//! against the same reference too.

use std::path::{Path, PathBuf};

use mlx_rs::Array;
use mobileclip_engine::config::ModelConfig;
use mobileclip_engine::random_model::{compare, fnv1a64, parse_init_tsv, uniform, write_safetensors};
use mobileclip_engine::testing::{l2_normalize, FastVit, FastVitSpec, Weights};

const S: usize = 256;
/// (coarse grid, sharp blocks, noise amplitude) per image; must match the Python script.
const IMAGES: [(usize, bool, f32); 4] = [(4, true, 0.0), (8, true, 0.1), (16, false, 0.1), (2, false, 0.0)];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Image `i` as [S, S, 3] normalised float32, in the Python script's f32 operation order.
fn pixels(i: usize, mean: &[f32; 3], std: &[f32; 3]) -> Vec<f32> {
    let (g, sharp, noise_amp) = IMAGES[i];
    let c: Vec<f32> = uniform((g + 1) * (g + 1) * 3, fnv1a64(&format!("pixels-coarse-{i}"))).iter().map(|u| 0.5 + 0.5 * u).collect();
    let at = |y: usize, x: usize, ch: usize| c[(y * (g + 1) + x) * 3 + ch];
    let noise = uniform(S * S * 3, fnv1a64(&format!("pixels-noise-{i}")));
    let cell = S / g;
    let mut out = Vec::with_capacity(S * S * 3);
    for y in 0..S {
        for x in 0..S {
            let (iy, ix) = (y / cell, x / cell);
            let fy = (y % cell) as f32 / cell as f32;
            let fx = (x % cell) as f32 / cell as f32;
            for ch in 0..3 {
                let v = if sharp {
                    if at(iy, ix, ch) > 0.5 {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    (at(iy, ix, ch) * (1.0 - fy) + at(iy + 1, ix, ch) * fy) * (1.0 - fx)
                        + (at(iy, ix + 1, ch) * (1.0 - fy) + at(iy + 1, ix + 1, ch) * fy) * fx
                };
                let p = v + noise_amp * noise[(y * S + x) * 3 + ch];
                out.push((p - mean[ch]) / std[ch]);
            }
        }
    }
    out
}

fn fnv_bytes(v: &[f32]) -> u64 {
    v.iter().flat_map(|x| x.to_le_bytes()).fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

struct Reference {
    mean: [f32; 3],
    std: [f32; 3],
    pixels_hash: u64,
    raw: Vec<Vec<f32>>,
    normalized: Vec<Vec<f32>>,
    spread: f64,
}

fn reference(v: &str) -> Reference {
    let p = root().join(format!("crates/engine/tests/fastvit_reference/{v}.json"));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let f32s = |x: &serde_json::Value| -> Vec<f32> { x.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect() };
    let three = |x: &serde_json::Value| -> [f32; 3] { f32s(x).try_into().unwrap() };
    Reference {
        mean: three(&j["mean"]),
        std: three(&j["std"]),
        pixels_hash: u64::from_str_radix(j["pixels_fnv1a64"].as_str().unwrap(), 16).unwrap(),
        raw: j["raw"].as_array().unwrap().iter().map(f32s).collect(),
        normalized: j["normalized"].as_array().unwrap().iter().map(f32s).collect(),
        spread: j["mean_pairwise_cos"].as_f64().unwrap(),
    }
}

fn spec_of(v: &str) -> (FastVitSpec, usize) {
    let cfg = ModelConfig::from_file(&root().join(format!("tests/fixtures/configs/open_clip_config_{v}.json"))).unwrap();
    let name = cfg.model_cfg.vision_cfg.timm_model_name.clone().unwrap();
    (FastVitSpec::from_timm_name(&name).unwrap(), cfg.model_cfg.embed_dim)
}

fn rows(a: &Array) -> Vec<Vec<f32>> {
    a.eval().unwrap();
    let d = a.shape()[1] as usize;
    a.try_as_slice::<f32>().unwrap().chunks(d).map(|r| r.to_vec()).collect()
}

/// (min cosine, max abs diff of normalised, max abs diff of raw).
fn run(tower: &FastVit, x: &Array, r: &Reference) -> (f64, f64, f64) {
    let raw = tower.forward(x).unwrap();
    let norm = l2_normalize(&raw).unwrap();
    let (min_cos, max_abs) = compare(&rows(&norm), &r.normalized);
    let (_, raw_abs) = compare(&rows(&raw), &r.raw);
    (min_cos, max_abs, raw_abs)
}

/// One variant at a time: memory and temp-disk peak of a single tower.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check(v: &str) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    mobileclip_engine::runtime::init(Default::default()).unwrap();
    let r = reference(v);
    let (spec, embed) = spec_of(v);
    let px: Vec<f32> = (0..4).flat_map(|i| pixels(i, &r.mean, &r.std)).collect();
    assert_eq!(fnv_bytes(&px), r.pixels_hash, "{v}: pixels differ from the Python generator's");
    let x = Array::from_slice(&px, &[4, S as i32, S as i32, 3]);

    // the released (training) form, regenerated
    let file: PathBuf = std::env::temp_dir().join(format!("fastvit-parity-{}-{v}.safetensors", std::process::id()));
    let init = parse_init_tsv(&std::fs::read_to_string(root().join(format!("tests/fixtures/models/init_{v}.tsv"))).unwrap()).unwrap();
    write_safetensors(&file, &init, |k| k.starts_with("visual.")).unwrap();
    let w = Weights::open(&file).unwrap();
    let tower = FastVit::load(&mobileclip_engine::testing::Params::build(&w), &spec, embed).unwrap();
    drop(w);
    std::fs::remove_file(&file).ok();
    assert_eq!(tower.reparam_counts().1, 0);
    let (min_cos, max_abs, raw_abs) = run(&tower, &x, &r);
    println!("| {v} | training | {:.2e} | {max_abs:.2e} | {raw_abs:.2e} | {:.4} |", 1.0 - min_cos, r.spread);
    assert!(min_cos >= 0.99999, "{v}: min cosine {min_cos}"); // also fails on NaN
    assert!(max_abs <= 1e-4, "{v}: max abs diff {max_abs}");
    drop(tower);

    // timm-reparameterized file, when provided
    if let Some(dir) = std::env::var_os("FASTVIT_REPARAM_DIR") {
        let p = Path::new(&dir).join(v).join("reparam.safetensors");
        let w = Weights::open(&p).unwrap();
        let tower = FastVit::load(&mobileclip_engine::testing::Params::build(&w), &spec, embed).unwrap();
        assert_eq!(tower.reparam_counts().0, 0, "{v}: the timm file should be fully reparameterized");
        let (min_cos, max_abs, raw_abs) = run(&tower, &x, &r);
        println!("| {v} | timm reparam | {:.2e} | {max_abs:.2e} | {raw_abs:.2e} | {:.4} |", 1.0 - min_cos, r.spread);
        assert!(min_cos >= 0.99999, "{v} reparam: min cosine {min_cos}");
        assert!(max_abs <= 1e-4, "{v} reparam: max abs diff {max_abs}");
    }
}

#[test]
fn fastvit_s0_matches_open_clip() {
    check("S0");
}

#[test]
fn fastvit_s2_matches_open_clip() {
    check("S2");
}

#[test]
fn fastvit_s3_matches_open_clip() {
    check("S3");
}

#[test]
fn fastvit_s4_matches_open_clip() {
    check("S4");
}
