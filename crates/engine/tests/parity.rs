//! Full-size text-tower parity against open_clip (PyTorch) for all six MobileCLIP2 variants.
//!
//! The reference side (tests/reference/make_model_fixtures.py) built each model with random
//! "mcrand v1" weights, loaded it through open_clip as a user loads the HF directory, and
//! committed only its outputs (tests/fixtures/models/text_<V>.json). Here the same weights are
//! regenerated bit-exactly from tests/fixtures/models/init_<V>.tsv, written as a model
//! directory in the Hugging Face layout, and loaded through the real `Engine::load`.

use std::path::PathBuf;

use mobileclip_engine::random_model::{compare, write_model_dir};
use mobileclip_engine::{Engine, LoadOptions};

const VARIANTS: [&str; 6] = ["S0", "S2", "B", "S3", "S4", "L-14"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Reference {
    texts: Vec<String>,
    ids: Vec<Vec<i32>>,
    embeddings: Vec<Vec<f32>>,
    mean_pairwise_cos: f64,
}

fn reference(v: &str) -> Reference {
    let p = root().join(format!("tests/fixtures/models/text_{v}.json"));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let f32s = |x: &serde_json::Value| -> Vec<f32> { x.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect() };
    Reference {
        texts: j["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect(),
        ids: j["ids"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i32).collect()).collect(),
        embeddings: j["embeddings"].as_array().unwrap().iter().map(f32s).collect(),
        mean_pairwise_cos: j["spread"]["mean_pairwise_cos"].as_f64().unwrap(),
    }
}

/// A model directory for variant `v` with only the text tower (+ logit_scale) in the
/// safetensors: what the text loader reads.
fn model_dir(v: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mobileclip-{test}-{}-{v}", std::process::id()));
    write_model_dir(&root().join("tests/fixtures"), v, &dir, true).unwrap();
    dir
}

fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max)
}

fn check_variant(v: &str, engine: &Engine, r: &Reference) -> (f64, f64) {
    let ids: Vec<i32> = r.ids.iter().flatten().copied().collect();
    let got = engine.embed_token_ids(&ids, true).unwrap();
    assert_eq!(got.len(), r.embeddings.len(), "{v}: rows");
    assert!(got.iter().zip(&r.embeddings).all(|(g, e)| g.len() == e.len()), "{v}: embed dim");
    compare(&got, &r.embeddings)
}

#[test]
fn text_tower_matches_open_clip_for_every_variant() {
    let mut table = Vec::new();
    for v in VARIANTS {
        let r = reference(v);
        let dir = model_dir(v, "parity");
        let engine = Engine::load(&dir, LoadOptions::default()).unwrap();
        let (min_cos, worst) = check_variant(v, &engine, &r);
        table.push(format!(
            "| {v} | {} | {:.1e} | {worst:.2e} | {:.4} |",
            r.texts.len(),
            1.0 - min_cos,
            r.mean_pairwise_cos
        ));
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
        assert!(min_cos >= 0.99999, "{v}: min cosine {min_cos}"); // also fails on NaN
        assert!(worst <= 1e-4, "{v}: max abs diff {worst}");
    }
    println!("| variant | texts | 1 - min cosine | max abs diff | reference mean pairwise cosine |");
    println!("|---|---:|---:|---:|---:|");
    for row in table {
        println!("{row}");
    }
}

#[test]
fn a_batch_equals_one_by_one() {
    let r = reference("S0");
    let dir = model_dir("S0", "batch");
    let engine = Engine::load(&dir, LoadOptions::default()).unwrap();
    let all: Vec<i32> = r.ids.iter().flatten().copied().collect();
    let batched = engine.embed_token_ids(&all, true).unwrap();
    let mut worst = 0.0f64;
    for (row, b) in r.ids.iter().zip(&batched) {
        let single = engine.embed_token_ids(row, true).unwrap();
        worst = worst.max(max_abs(&single[0], b));
    }
    println!("S0: batch of {} vs one by one: max abs diff {worst:.2e}", r.ids.len());
    std::fs::remove_dir_all(&dir).ok();
    assert!(worst <= 1e-6, "batch vs single: {worst}");
}

#[test]
fn strings_tokenize_to_the_reference_ids() {
    let r = reference("S0");
    let dir = model_dir("S0", "tokenize");
    let engine = Engine::load(&dir, LoadOptions::default()).unwrap();
    let mut mismatches = Vec::new();
    for (t, want) in r.texts.iter().zip(&r.ids) {
        let got = engine.tokenize(t).unwrap();
        if &got != want {
            mismatches.push(t.clone());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(mismatches.is_empty(), "texts tokenized differently from open_clip: {mismatches:?}");
}

