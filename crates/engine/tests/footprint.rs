//! The memory the engine reserves before a forward pass (footprint.rs, runtime::reserve)
//! bounds what MLX actually allocates: MLX's own peak-memory counter, for every tower kind
//! (FastViT and ViT images, non-causal and causal text: S0 and B), batches 1, 4 and 16. The
//! bound must hold (else a lowered memory limit could still crash a backend) and must not be
//! absurdly loose (else it would refuse batches that fit). One test: the counter is global
//! to the process, so nothing else may run beside it.

use std::path::PathBuf;

use mobileclip_engine::random_model::write_model_dir;
use mobileclip_engine::runtime;
use mobileclip_engine::{Engine, LoadOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// MLX's peak active memory while `f` runs, above what was active before (bytes).
fn peak_of(f: impl FnOnce()) -> usize {
    runtime::clear_cache();
    runtime::reset_peak_memory();
    let (before, _, _) = runtime::memory_stats();
    f();
    let (_, _, peak) = runtime::memory_stats();
    peak.saturating_sub(before)
}

#[test]
fn reserved_memory_bounds_the_measured_peak() {
    let (mut report, mut bad) = (Vec::new(), Vec::new());
    for variant in ["S0", "B"] {
        let dir = std::env::temp_dir().join(format!("mobileclip-footprint-{}-{variant}", std::process::id()));
        write_model_dir(&root().join("tests/fixtures"), variant, &dir, false).unwrap();
        let engine = Engine::load(&dir, LoadOptions::default()).unwrap();
        let s = engine.image_preprocess().size as usize;
        let pixels: Vec<f32> = (0..s * s * 3).map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0).collect();
        let ids = engine.tokenize("a photo of a red bicycle leaning against a brick wall").unwrap();
        engine.embed_token_ids_batch(&ids, 1).unwrap(); // loads the towers
        engine.embed_pixels(&pixels, 1, true).unwrap();
        for n in [1usize, 4, 16] {
            let batch: Vec<f32> = pixels.iter().copied().cycle().take(pixels.len() * n).collect();
            let image = peak_of(|| drop(engine.embed_pixels(&batch, n, true).unwrap()));
            let rows: Vec<i32> = ids.iter().copied().cycle().take(ids.len() * n).collect();
            let text = peak_of(|| drop(engine.embed_token_ids_batch(&rows, n).unwrap()));
            for (tower, measured, reserved) in
                [("image", image, engine.image_reserve_bytes(n).unwrap()), ("text", text, engine.text_reserve_bytes(&rows).unwrap())]
            {
                let mb = |b: usize| b as f64 / 1048576.0;
                report.push(format!("{variant} {tower} b{n}: MLX peak {:.1} MB, reserved {:.1} MB", mb(measured), mb(reserved)));
                if measured == 0 || reserved < measured || reserved > 4 * measured {
                    bad.push(format!("{variant} {tower} b{n}: reserved {reserved} is not within 1-4 x the measured peak {measured}"));
                }
            }
        }
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }
    println!("{}", report.join("\n"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
