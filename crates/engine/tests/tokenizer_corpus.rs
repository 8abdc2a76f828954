//! The Rust tokenizer against open_clip on the committed corpus
//! (tests/fixtures/tokenizer/, made by tests/reference/make_tokenizer_fixtures.py):
//!
//! 1. `text_clean::clean` against `cleaned.jsonl` (open_clip's
//!    `whitespace_clean(basic_clean(s)).lower()`),
//! 2. `ClipTokenizer::encode` against `reference_ids.jsonl` (padded back to 77 with 0), and
//!    `encode_raw` against `reference_ids_untruncated.jsonl`.
//!
//! Every line must agree, except lines that `manifest.json` lists in
//! `unicode_version_sensitive_lines` (code points unassigned in Unicode 14.0, where open_clip's
//! result depends on the Unicode tables of Python and of the `regex` module); those are counted
//! and reported but do not fail the test.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use mobileclip_engine::testing::text_clean;
use mobileclip_engine::tokenizer::ClipTokenizer;

const CONTEXT: usize = 77;
const VOCAB: usize = 49408;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer")
}

fn jsonl<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().enumerate().map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name} line {i}: {e}"))).collect()
}

struct Fixtures {
    corpus: Vec<String>,
    cleaned: Vec<String>,
    ids: Vec<Vec<i32>>,
    sensitive: BTreeSet<usize>,
}

fn load() -> Fixtures {
    let corpus: Vec<String> = jsonl("corpus.jsonl");
    let cleaned: Vec<String> = jsonl("cleaned.jsonl");
    let ids: Vec<Vec<i32>> = jsonl("reference_ids.jsonl");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json"))
            .expect("manifest.json is JSON");
    let n = manifest["lines"].as_u64().expect("manifest: lines") as usize;
    assert_eq!(corpus.len(), n, "corpus.jsonl line count");
    assert_eq!(cleaned.len(), n, "cleaned.jsonl line count");
    assert_eq!(ids.len(), n, "reference_ids.jsonl line count");
    let sensitive: BTreeSet<usize> = manifest["unicode_version_sensitive_lines"]
        .as_array()
        .expect("manifest: unicode_version_sensitive_lines")
        .iter()
        .map(|v| v.as_u64().expect("line number") as usize)
        .collect();
    Fixtures { corpus, cleaned, ids, sensitive }
}

fn tokenizer() -> ClipTokenizer {
    ClipTokenizer::from_file(&fixtures().join("tokenizer.json"), VOCAB, CONTEXT).expect("tokenizer.json loads")
}

/// Print a summary and fail on any disagreement outside the Unicode-version-sensitive lines.
fn verdict(what: &str, f: &Fixtures, bad: &[(usize, String)]) {
    let n = f.corpus.len();
    let bad_lines: BTreeSet<usize> = bad.iter().map(|(i, _)| *i).collect();
    let hard: Vec<&(usize, String)> = bad.iter().filter(|(i, _)| !f.sensitive.contains(i)).collect();
    let sens_bad = bad_lines.intersection(&f.sensitive).count();
    println!(
        "{what}: {}/{n} lines agree; outside the {} Unicode-version-sensitive lines {}/{}; \
         sensitive lines agreeing {}/{}",
        n - bad_lines.len(),
        f.sensitive.len(),
        n - f.sensitive.len() - hard.len(),
        n - f.sensitive.len(),
        f.sensitive.len() - sens_bad,
        f.sensitive.len(),
    );
    for (i, msg) in bad.iter().filter(|(i, _)| f.sensitive.contains(i)) {
        println!("  (sensitive) line {i}: {msg}");
    }
    for (i, msg) in hard.iter().take(40) {
        println!("  MISMATCH line {i}: {msg}");
    }
    assert!(hard.is_empty(), "{what}: {} lines differ from open_clip outside the sensitive set", hard.len());
}

#[test]
fn clean_matches_open_clip() {
    let f = load();
    let start = Instant::now();
    let mut bad = Vec::new();
    for (i, (text, want)) in f.corpus.iter().zip(&f.cleaned).enumerate() {
        let got = text_clean::clean(text);
        if &got != want {
            bad.push((i, format!("input {text:?}\n      got  {got:?}\n      want {want:?}")));
        }
    }
    let dt = start.elapsed();
    println!(
        "clean: {} lines in {:.1} ms ({:.1} us/line)",
        f.corpus.len(),
        dt.as_secs_f64() * 1e3,
        dt.as_secs_f64() * 1e6 / f.corpus.len() as f64
    );
    verdict("clean", &f, &bad);
}

#[test]
fn ids_match_open_clip() {
    let f = load();
    let tok = tokenizer();
    let start = Instant::now();
    let mut bad = Vec::new();
    for (i, (text, want)) in f.corpus.iter().zip(&f.ids).enumerate() {
        assert!(want.len() <= CONTEXT && want.last() == Some(&49407), "reference line {i} malformed");
        let mut want = want.clone();
        want.resize(CONTEXT, 0);
        match tok.encode(text) {
            Ok(got) if got == want => {}
            Ok(got) => bad.push((i, format!("input {text:?}\n      got  {got:?}\n      want {want:?}"))),
            Err(e) => bad.push((i, format!("input {text:?}: error {e}"))),
        }
    }
    let dt = start.elapsed();
    println!(
        "encode: {} lines in {:.1} ms ({:.1} us/line)",
        f.corpus.len(),
        dt.as_secs_f64() * 1e3,
        dt.as_secs_f64() * 1e6 / f.corpus.len() as f64
    );
    verdict("ids", &f, &bad);
}

#[derive(serde::Deserialize)]
struct Untruncated {
    line: usize,
    ids: Vec<i32>,
}

#[test]
fn untruncated_ids_match_open_clip() {
    let f = load();
    let tok = tokenizer();
    let rows: Vec<Untruncated> = jsonl("reference_ids_untruncated.jsonl");
    assert!(!rows.is_empty());
    let mut bad = Vec::new();
    for row in &rows {
        let text = &f.corpus[row.line];
        let want = &row.ids[1..row.ids.len() - 1];
        match tok.encode_raw(text) {
            Ok(got) if got == want => {}
            Ok(got) => bad.push((row.line, format!("got {} ids, want {}: {got:?}", got.len(), want.len()))),
            Err(e) => bad.push((row.line, format!("error {e}"))),
        }
    }
    let hard: Vec<&(usize, String)> = bad.iter().filter(|(i, _)| !f.sensitive.contains(i)).collect();
    println!(
        "untruncated ids (encode_raw): {}/{} long lines agree ({} differing lines are Unicode-version-sensitive)",
        rows.len() - bad.len(),
        rows.len(),
        bad.len() - hard.len()
    );
    for (i, msg) in &hard {
        println!("  MISMATCH line {i}: {msg}");
    }
    assert!(hard.is_empty(), "untruncated ids: {} lines differ from open_clip", hard.len());
}

#[derive(serde::Deserialize)]
struct FuzzCase {
    text: String,
    cleaned: String,
    ids: Vec<i32>,
}

/// Differential test on random cases written by tests/reference/make_tokenizer_fuzz.py
/// (`MOBILECLIP_TOKENIZER_FUZZ=<file>`); not part of the default run. Fails on any
/// disagreement in a case without code points unassigned in Unicode 14.
#[test]
#[ignore = "needs MOBILECLIP_TOKENIZER_FUZZ=<jsonl from tests/reference/make_tokenizer_fuzz.py>"]
fn fuzz_against_open_clip() {
    let Ok(path) = std::env::var("MOBILECLIP_TOKENIZER_FUZZ") else {
        panic!("set MOBILECLIP_TOKENIZER_FUZZ to a file written by tests/reference/make_tokenizer_fuzz.py");
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let tok = tokenizer();
    let (mut n, mut bad_clean, mut bad_ids, mut shown) = (0, 0, 0, 0);
    let start = Instant::now();
    for (i, line) in text.lines().enumerate() {
        let case: FuzzCase = serde_json::from_str(line).unwrap_or_else(|e| panic!("{path} line {i}: {e}"));
        n += 1;
        let cleaned = text_clean::clean(&case.text);
        let ids = tok.encode_raw(&case.text).map(|mut v| {
            v.insert(0, 49406);
            v.push(49407);
            v
        });
        let clean_ok = cleaned == case.cleaned;
        let ids_ok = ids.as_ref().is_ok_and(|v| *v == case.ids);
        bad_clean += usize::from(!clean_ok);
        bad_ids += usize::from(!ids_ok);
        if (!clean_ok || !ids_ok) && shown < 30 {
            shown += 1;
            println!(
                "case {i}: input {:?}\n   got  {cleaned:?}\n   want {:?}\n   ids {}",
                case.text,
                case.cleaned,
                if ids_ok { "ok" } else { "DIFFER" }
            );
        }
    }
    println!("fuzz: {n} cases in {:.1} ms; clean differs on {bad_clean}, ids differ on {bad_ids}", start.elapsed().as_secs_f64() * 1e3);
    assert!(n > 0 && bad_clean == 0 && bad_ids == 0);
}
