//! The bounded fuzz run of CI (issue 13): a few thousand mutated image files of every format
//! through preprocessing, texts through the tokenizer and model files through their loaders,
//! from a fixed seed; no panic, every image or model file Ok or an error with a message,
//! every text tokenized. `scripts/fuzz` runs
//! the long campaign (the CLI's `fuzz`, 100,000+ cases per class).

use std::path::PathBuf;

use mobileclip_engine::fuzz;
use mobileclip_engine::preprocess::{ImageLimits, Interpolation};
use mobileclip_engine::tokenizer::ClipTokenizer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn files(dir: PathBuf) -> Vec<Vec<u8>> {
    let mut p: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    p.sort();
    p.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn mutated_images_are_crops_or_errors() {
    let mut seeds = files(fixtures().join("images/src"));
    seeds.extend(files(fixtures().join("images/stress/src")));
    let o = fuzz::images(&seeds, 3000, 13, 256, Interpolation::Bilinear, &ImageLimits::default(), &mut |_, _| {});
    println!("images: {} cases, {} ok, errors {:?}, failures {:?}", o.cases, o.ok, o.errors, o.failures);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    // The mutations reach both outcomes (a fuzzer that only ever errors tests nothing).
    assert!(o.ok > 100 && o.errors.values().sum::<usize>() > 100, "{o:?}");
}

#[test]
fn any_utf8_tokenizes() {
    let tok = ClipTokenizer::from_file(&fixtures().join("tokenizer/tokenizer.json"), 49408, 77).unwrap();
    let corpus: Vec<String> = std::fs::read_to_string(fixtures().join("tokenizer/corpus.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<String>(l).ok())
        .collect();
    let o = fuzz::texts(&tok, 49408, &corpus, 5000, 13, &mut |_, _| {});
    println!("texts: {} cases, {} ok, failures {:?}", o.cases, o.ok, o.failures);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(o.ok, 5000);
}

#[test]
fn mutations_are_deterministic() {
    let seeds = vec![b"GIF89a\x01\x00\x01\x00".to_vec(), vec![0u8; 300]];
    let a: Vec<Vec<u8>> = {
        let mut r = fuzz::Rng::new(7);
        (0..50).map(|_| fuzz::mutate_image(&mut r, &seeds)).collect()
    };
    let mut r = fuzz::Rng::new(7);
    let b: Vec<Vec<u8>> = (0..50).map(|_| fuzz::mutate_image(&mut r, &seeds)).collect();
    assert_eq!(a, b);
    assert!(a.iter().any(|m| !seeds.contains(m)));
}

#[test]
fn mutated_model_files_load_or_fail_cleanly() {
    let mut configs: Vec<String> =
        std::fs::read_dir(fixtures().join("configs")).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    configs.sort();
    let tokenizer = std::fs::read_to_string(fixtures().join("tokenizer/tokenizer.json")).unwrap();
    let scratch = std::env::temp_dir().join(format!("mobileclip-fuzz-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let o = fuzz::models(&configs, &tokenizer, 49408, 2000, 13, &scratch, &mut |_, _, _| {});
    let _ = std::fs::remove_dir_all(&scratch);
    println!("models: {} cases, {} ok, errors {:?}, failures {:?}", o.cases, o.ok, o.errors, o.failures);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert!(o.ok > 50 && o.errors.values().sum::<usize>() > 50, "{o:?}");
}
