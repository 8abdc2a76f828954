//! Seeded mutation fuzzing of what a caller controls (issue 13): image file bytes, texts, and
//! the files of a model directory.
//! Deterministic (SplitMix64 from a seed), so any case can be replayed from (seed, index).
//! The CI runs a bounded number of cases (crates/engine/tests/fuzz.rs); `scripts/fuzz` runs
//! the long campaign through `mobileclip fuzz`. The contract checked on every case:
//! - images: preprocessing returns Ok or an Err with a message, never panics (a codec panic is
//!   caught inside and becomes an Err; one reaching here is counted as a failure);
//! - texts: any valid UTF-8 (what a Postgres `text` holds) tokenizes: Ok, exactly
//!   context_length ids, each inside the vocabulary;
//! - models: a mutated open_clip_config.json, safetensors file (header and data) or
//!   tokenizer.json is Ok or an Err with a message; no panic, no tensor read past the
//!   element limit.
//!
//! Image mutations work on real files of every format (the test corpus): bit flips,
//! interesting bytes, lying 16/32-bit fields (dimensions, chunk lengths), truncation,
//! insertion, chunk duplication, splices of two files, and a real magic number followed by
//! noise, mostly aimed at the first kilobyte where headers live.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use std::path::Path;

use crate::config::ModelConfig;
use crate::error::EngineError;
use crate::preprocess::{self, ImageLimits, Interpolation};
use crate::tokenizer::ClipTokenizer;
use crate::weights::Weights;

/// SplitMix64: the same generator as rng.rs, as integers.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A position in 0..len, half the time inside the first kilobyte (the headers).
    fn position(&mut self, len: usize) -> usize {
        if self.below(2) == 0 {
            self.below(len.min(1024))
        } else {
            self.below(len)
        }
    }
}

/// What a class of cases came to.
#[derive(Debug, Default)]
pub struct Outcome {
    pub cases: usize,
    pub ok: usize,
    /// Errors by kind (the EngineError variant: what becomes the SQLSTATE).
    pub errors: BTreeMap<&'static str, usize>,
    /// Contract violations: a panic, an error without a message, a malformed result. Each
    /// with the case index, to replay it.
    pub failures: Vec<(usize, String)>,
}

fn kind(e: &EngineError) -> &'static str {
    match e {
        EngineError::Mlx(_) => "mlx",
        EngineError::InvalidInput(_) => "invalid_input",
        EngineError::LimitExceeded(_) => "limit_exceeded",
        EngineError::OutOfMemory(_) => "out_of_memory",
        EngineError::Unsupported(_) => "unsupported",
        EngineError::NotFound(_) => "not_found",
        EngineError::Model(_) => "model",
        EngineError::NotConfigured(_) => "not_configured",
        EngineError::NonFinite(_) => "non_finite",
    }
}

/// One mutated image file from `seeds`.
pub fn mutate_image(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.below(seeds.len())].clone();
    // Half the cases one mutation (a file that is almost right reaches deep into a decoder),
    // the others up to four.
    let ops = if rng.below(2) == 0 { 1 } else { 1 + rng.below(4) };
    for _ in 0..ops {
        if b.is_empty() {
            b.push(0);
        }
        let len = b.len();
        match rng.below(8) {
            0 => {
                let p = rng.position(len);
                b[p] ^= 1 << rng.below(8);
            }
            1 => {
                let p = rng.position(len);
                b[p] = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            2 => {
                // A lying length or dimension: 16 or 32 bits, either byte order.
                let v: u32 = [0, 1, 0xffff, 0x7fff_ffff, 0xffff_ffff, 0x1_0000, 65_500, 1 << 24][rng.below(8)];
                let bytes = if rng.below(2) == 0 { v.to_be_bytes() } else { v.to_le_bytes() };
                let w = if rng.below(2) == 0 { 2 } else { 4 };
                let p = rng.position(len.saturating_sub(w).max(1));
                for (k, byte) in bytes[4 - w..].iter().enumerate() {
                    if p + k < len {
                        b[p + k] = *byte;
                    }
                }
            }
            3 => b.truncate(rng.below(len)),
            4 => {
                let p = rng.position(len);
                let n = 1 + rng.below(64);
                let noise: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                b.splice(p..p, noise);
            }
            5 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(4096));
                let chunk = b[from..from + n].to_vec();
                let to = rng.position(len);
                b.splice(to..to, chunk);
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len);
                let from = rng.below(other.len().max(1));
                b.truncate(cut);
                b.extend_from_slice(&other[from.min(other.len())..]);
            }
            _ => {
                b.truncate(len.min(16));
                let n = rng.below(4096);
                b.extend((0..n).map(|_| rng.next_u64() as u8));
            }
        }
    }
    b
}

/// `cases` mutated images through open_clip's preprocessing (decode, resize, crop) at
/// `size`/`interp` under `limits`. `before` sees each case first (the CLI saves it, so that a
/// crash that kills the process leaves the input behind).
pub fn images(
    seeds: &[Vec<u8>],
    cases: usize,
    seed: u64,
    size: u32,
    interp: Interpolation,
    limits: &ImageLimits,
    before: &mut dyn FnMut(usize, &[u8]),
) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    for i in 0..cases {
        let b = mutate_image(&mut rng, seeds);
        before(i, &b);
        out.cases += 1;
        match catch_unwind(AssertUnwindSafe(|| preprocess::load_crop(&b, size, interp, limits))) {
            Ok(Ok(crop)) if crop.len() == (size * size * 3) as usize => out.ok += 1,
            Ok(Ok(crop)) => out.failures.push((i, format!("a crop of {} bytes", crop.len()))),
            Ok(Err(e)) if e.to_string().trim().is_empty() => out.failures.push((i, format!("{} error without a message", kind(&e)))),
            Ok(Err(e)) => *out.errors.entry(kind(&e)).or_default() += 1,
            Err(_) => out.failures.push((i, "panic".into())),
        }
    }
    out
}

/// Characters that break naive text code: combining marks, bidi and zero-width controls,
/// ZWJ emoji parts, noncharacters, the replacement character, astral letters.
const HARD: &[char] = &[
    '\u{0301}',
    '\u{0336}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{200E}',
    '\u{200F}',
    '\u{202E}',
    '\u{2066}',
    '\u{FEFF}',
    '\u{FFFD}',
    '\u{FDD0}',
    '\u{FFFF}',
    '\u{1F469}',
    '\u{1F3FD}',
    '\u{2764}',
    '\u{FE0F}',
    '\u{E0067}',
    '\u{10FFFD}',
    '\u{0}',
    '\u{7F}',
    '\u{85}',
    '\u{2028}',
    '\u{1D400}',
    '\u{0E01}',
    '\u{0627}',
    '\u{05D0}',
    '\u{4E00}',
    '\u{AC00}',
    '\u{3000}',
];

/// One text: a corpus line mutated as bytes (then made valid UTF-8), random code points from
/// every plane, storms of hard characters, HTML entities, or (rarely) a string up to 1 MB.
pub fn mutate_text(rng: &mut Rng, corpus: &[String]) -> String {
    match rng.below(6) {
        0 | 1 => {
            let line = corpus[rng.below(corpus.len())].as_bytes().to_vec();
            let b = mutate_image(rng, &[line]);
            String::from_utf8_lossy(&b).into_owned()
        }
        2 => (0..rng.below(200)).filter_map(|_| char::from_u32(rng.below(0x11_0000) as u32)).collect(),
        3 => {
            let base = &corpus[rng.below(corpus.len())];
            let mut s = String::new();
            for c in base.chars() {
                s.push(c);
                for _ in 0..rng.below(4) {
                    s.push(HARD[rng.below(HARD.len())]);
                }
            }
            s
        }
        4 => {
            let ents = ["&amp;", "&lt;", "&#x1F600;", "&#0;", "&#xD800;", "&#99999999;", "&nbsp;", "&amp;amp;", "&", "&#", "&#x;"];
            (0..1 + rng.below(50)).map(|_| ents[rng.below(ents.len())]).collect::<Vec<_>>().join(if rng.below(2) == 0 { " " } else { "" })
        }
        _ => {
            let n = if rng.below(50) == 0 { 1 << 20 } else { rng.below(100_000) };
            let unit = &corpus[rng.below(corpus.len())];
            let mut s = String::with_capacity(n + unit.len());
            while s.len() < n {
                s.push_str(unit);
                if rng.below(3) == 0 {
                    s.push(HARD[rng.below(HARD.len())]);
                }
            }
            s
        }
    }
}

/// `cases` texts through the tokenizer (cut as the engine cuts them first): every one must
/// give exactly `context_length` ids inside the vocabulary.
pub fn texts(
    tok: &ClipTokenizer,
    vocab: usize,
    corpus: &[String],
    cases: usize,
    seed: u64,
    before: &mut dyn FnMut(usize, &str),
) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    let ctx = tok.context_length();
    for i in 0..cases {
        let t = mutate_text(&mut rng, corpus);
        before(i, &t);
        out.cases += 1;
        match catch_unwind(AssertUnwindSafe(|| tok.encode(crate::engine::bounded(&t)))) {
            Ok(Ok(ids)) if ids.len() == ctx && ids.iter().all(|&id| id >= 0 && (id as usize) < vocab) => out.ok += 1,
            Ok(Ok(ids)) => out.failures.push((i, format!("{} ids, or one outside the vocabulary", ids.len()))),
            Ok(Err(e)) => out.failures.push((i, format!("valid UTF-8 refused: {e}"))),
            Err(_) => out.failures.push((i, "panic".into())),
        }
    }
    out
}

/// A JSON text mutated: as bytes, or a number or string value replaced by a hostile one
/// (huge, negative, zero, fractional, wrong type), or cut short.
pub fn mutate_json(rng: &mut Rng, text: &str) -> String {
    const VALUES: &[&str] = &[
        "0",
        "-1",
        "1e309",
        "4294967297",
        "18446744073709551616",
        "0.5",
        "-0.0",
        "null",
        "true",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
        "[1,2]",
        "99999999",
        "1e-300",
    ];
    match rng.below(4) {
        0 => String::from_utf8_lossy(&mutate_image(rng, &[text.as_bytes().to_vec()])).into_owned(),
        1 | 2 => {
            // Replace one value: a run of digits (a number) or a quoted string.
            let b = text.as_bytes();
            let starts: Vec<usize> = (0..b.len())
                .filter(|&i| {
                    (b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric())) || (b[i] == b'"' && rng.below(4) == 0)
                })
                .collect();
            if starts.is_empty() {
                return text.to_string();
            }
            let s = starts[rng.below(starts.len())];
            let e = if b[s] == b'"' {
                s + 1 + b[s + 1..].iter().position(|&c| c == b'"').map_or(0, |p| p + 1)
            } else {
                s + b[s..].iter().take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'-')).count()
            };
            format!("{}{}{}", &text[..s], VALUES[rng.below(VALUES.len())], &text[e.min(text.len())..])
        }
        _ => {
            let mut cut = rng.below(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text[..cut].to_string()
        }
    }
}

/// A small safetensors file with the tensor kinds a model has: f32 matrices, f16, bf16, a
/// scalar, a BatchNorm variance, an int tensor; the seed the weights cases mutate.
pub fn seed_safetensors() -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let f32s = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| (i as f32 * 0.25 - 1.0).to_le_bytes()).collect() };
    let halfs = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| half::f16::from_f32(i as f32 * 0.5).to_le_bytes()).collect() };
    let b16 = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| half::bf16::from_f32(i as f32).to_le_bytes()).collect() };
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("text.token_embedding.weight", Dtype::F32, vec![8, 4], f32s(32)),
        ("text.ln_final.weight", Dtype::F16, vec![4], halfs(4)),
        ("visual.trunk.stem.0.bn.running_var", Dtype::F32, vec![4], f32s(4).iter().map(|_| 0x3f).collect()),
        ("visual.trunk.head.fc.weight", Dtype::BF16, vec![2, 3], b16(6)),
        ("logit_scale", Dtype::F32, vec![], 2.6592f32.to_le_bytes().to_vec()),
        ("text.attn_mask", Dtype::I64, vec![2], vec![0; 16]),
    ];
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(k, d, s, b)| (k.to_string(), TensorView::new(*d, s.clone(), b).expect("consistent seed tensor"))).collect();
    safetensors::serialize(views, None).expect("serializable seed")
}

/// `cases` mutated model files: 45% configs (every reference config; parsed and its
/// preprocessing derived), 50% safetensors files (opened, every tensor read with its checks),
/// 5% tokenizer.json (loaded, then used), written under `scratch` where a file is needed.
#[allow(clippy::too_many_arguments)]
pub fn models(
    configs: &[String],
    tokenizer_json: &str,
    vocab: usize,
    cases: usize,
    seed: u64,
    scratch: &Path,
    before: &mut dyn FnMut(usize, &str, &[u8]),
) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    let weights_seed = seed_safetensors();
    let wpath = scratch.join("open_clip_model.safetensors");
    let tpath = scratch.join("tokenizer.json");
    for i in 0..cases {
        out.cases += 1;
        let pick = rng.below(100);
        let result: std::thread::Result<std::result::Result<(), EngineError>> = if pick < 45 {
            let k = rng.below(configs.len());
            let c = mutate_json(&mut rng, &configs[k]);
            before(i, "config", c.as_bytes());
            catch_unwind(|| ModelConfig::from_json(&c).and_then(|m| m.image_preprocess().map(|_| ())))
        } else if pick < 95 {
            let b = mutate_image(&mut rng, std::slice::from_ref(&weights_seed));
            before(i, "weights", &b);
            if let Err(e) = std::fs::write(&wpath, &b) {
                out.failures.push((i, format!("scratch write: {e}")));
                continue;
            }
            catch_unwind(|| {
                let w = Weights::open(&wpath)?;
                for k in w.keys() {
                    let shape = w.shape(&k).unwrap_or_default();
                    w.f32_vec(&k, &shape)?;
                }
                Ok(())
            })
        } else {
            let t = mutate_json(&mut rng, tokenizer_json);
            before(i, "tokenizer", t.as_bytes());
            if let Err(e) = std::fs::write(&tpath, &t) {
                out.failures.push((i, format!("scratch write: {e}")));
                continue;
            }
            catch_unwind(|| {
                let tok = ClipTokenizer::from_file(&tpath, vocab, 77)?;
                let ids = tok.encode("a photo of a cat")?;
                match ids.len() == 77 && ids.iter().all(|&id| id >= 0 && (id as usize) < vocab) {
                    true => Ok(()),
                    false => Err(EngineError::InvalidInput("malformed ids".into())),
                }
            })
        };
        match result {
            Ok(Ok(())) => out.ok += 1,
            Ok(Err(EngineError::InvalidInput(m))) if m == "malformed ids" => {
                out.failures.push((i, "a loaded tokenizer gave malformed ids".into()))
            }
            Ok(Err(e)) if e.to_string().trim().is_empty() => out.failures.push((i, format!("{} error without a message", kind(&e)))),
            Ok(Err(e)) => *out.errors.entry(kind(&e)).or_default() += 1,
            Err(_) => out.failures.push((i, "panic".into())),
        }
    }
    out
}
