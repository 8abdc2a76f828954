//! Random-weight models that open_clip and this engine can both build bit-exactly
//! ("mcrand v1", tests/reference/RANDOM_WEIGHTS.md): every tensor is a pure function of its
//! key, its shape and an (offset, scale) pair listed per variant in
//! tests/fixtures/models/init_<V>.tsv. Full-size parity checks regenerate the weights here
//! and commit only the reference outputs.
//!
//! Test data, not product: built only with the `testdata` feature (the CLI's `random-model`
//! and `parity`, the engine's tests).

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{EngineError, Result};

/// `n` values in [-1, 1) from SplitMix64 seeded with `seed` (exact in f32): the stream every
/// tensor is drawn from.
pub fn uniform(n: usize, seed: u64) -> Vec<f32> {
    crate::rng::uniform(n, seed)
}

/// FNV-1a 64 of the key's UTF-8 bytes: the per-tensor seed.
pub fn fnv1a64(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// One row of init_<V>.tsv.
#[derive(Clone, Debug)]
pub struct InitRow {
    pub key: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub offset: f32,
    pub scale: f32,
}

pub fn parse_init_tsv(text: &str) -> Result<Vec<InitRow>> {
    let bad = |n: usize, why: &str| EngineError::InvalidInput(format!("init tsv line {}: {why}", n + 1));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(n, line)| {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 5 {
                return Err(bad(n, "expected 5 tab-separated columns"));
            }
            let dims = cols[1].trim().trim_start_matches('[').trim_end_matches(']');
            let shape = if dims.trim().is_empty() {
                Vec::new()
            } else {
                dims.split(',').map(|d| d.trim().parse::<usize>().map_err(|_| bad(n, "bad shape"))).collect::<Result<_>>()?
            };
            Ok(InitRow {
                key: cols[0].to_string(),
                shape,
                dtype: cols[2].to_string(),
                offset: cols[3].parse::<f64>().map_err(|_| bad(n, "bad offset"))? as f32,
                scale: cols[4].parse::<f64>().map_err(|_| bad(n, "bad scale"))? as f32,
            })
        })
        .collect()
}

/// The tensor of `row`: offset + scale * u, two f32 roundings (no fused multiply-add).
pub fn tensor(row: &InitRow) -> Vec<f32> {
    let n = row.shape.iter().product::<usize>();
    uniform(n, fnv1a64(&row.key)).into_iter().map(|u| row.offset + row.scale * u).collect()
}

/// A change to one generated float32 tensor, to make damaged checkpoints for tests:
/// `KEY:[I]=V` sets the element at flat index I, `KEY:*=S` multiplies every element by S,
/// `KEY:=V` sets every element to V (values parse as f32: "inf", "-inf", "NaN" accepted).
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    pub key: String,
    pub op: EditOp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EditOp {
    Set(usize, f32),
    Scale(f32),
    Fill(f32),
}

impl std::str::FromStr for Edit {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Edit> {
        let bad = || EngineError::InvalidInput(format!("edit {s:?}: expected KEY:[I]=V, KEY:*=S or KEY:=V"));
        let (key, op) = s.rsplit_once(':').ok_or_else(bad)?;
        let num = |v: &str| v.trim().parse::<f32>().map_err(|_| bad());
        let op = if let Some(v) = op.strip_prefix("*=") {
            EditOp::Scale(num(v)?)
        } else if let Some(v) = op.strip_prefix('=') {
            EditOp::Fill(num(v)?)
        } else if let Some(rest) = op.strip_prefix('[') {
            let (i, v) = rest.split_once("]=").ok_or_else(bad)?;
            EditOp::Set(i.trim().parse().map_err(|_| bad())?, num(v)?)
        } else {
            return Err(bad());
        };
        Ok(Edit { key: key.to_string(), op })
    }
}

impl Edit {
    fn apply(&self, v: &mut [f32]) -> Result<()> {
        match self.op {
            EditOp::Set(i, x) => {
                let n = v.len();
                *v.get_mut(i).ok_or_else(|| EngineError::InvalidInput(format!("{}: index {i} of {n}", self.key)))? = x
            }
            EditOp::Scale(k) => v.iter_mut().for_each(|x| *x *= k),
            EditOp::Fill(x) => v.iter_mut().for_each(|y| *y = x),
        }
        Ok(())
    }
}

/// Writes `open_clip_model.safetensors` with the tensors of the rows `keep` selects.
pub fn write_safetensors(path: &Path, rows: &[InitRow], keep: impl Fn(&str) -> bool) -> Result<()> {
    write_safetensors_edited(path, rows, keep, &[])
}

/// As `write_safetensors`, with `edits` applied to the generated values.
pub fn write_safetensors_edited(path: &Path, rows: &[InitRow], keep: impl Fn(&str) -> bool, edits: &[Edit]) -> Result<()> {
    for e in edits {
        if !rows.iter().any(|r| r.key == e.key && r.dtype == "float32" && keep(&r.key)) {
            return Err(EngineError::InvalidInput(format!("edit: no float32 tensor {:?} in the checkpoint", e.key)));
        }
    }
    let mut owned: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    for row in rows.iter().filter(|r| keep(&r.key)) {
        let (dtype, bytes) = match row.dtype.as_str() {
            "float32" => {
                let mut v = tensor(row);
                for e in edits.iter().filter(|e| e.key == row.key) {
                    e.apply(&mut v)?;
                }
                (Dtype::F32, v.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            "int64" => (Dtype::I64, vec![0u8; 8 * row.shape.iter().product::<usize>()]),
            other => return Err(EngineError::InvalidInput(format!("{}: dtype {other}", row.key))),
        };
        owned.push((row.key.clone(), row.shape.clone(), dtype, bytes));
    }
    let views = owned
        .iter()
        .map(|(k, shape, dtype, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| EngineError::InvalidInput(format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| EngineError::InvalidInput(format!("{}: {e}", path.display())))
}

/// Writes a model directory in the Hugging Face `timm/MobileCLIP2-<V>-OpenCLIP` layout for
/// `variant` from the repository's fixtures directory (tests/fixtures): the mcrand weights
/// (all of them, or the text tower and logit_scale only), the variant's config and the
/// tokenizer.
pub fn write_model_dir(fixtures: &Path, variant: &str, out: &Path, text_only: bool) -> Result<()> {
    write_model_dir_edited(fixtures, variant, out, text_only, &[])
}

/// As `write_model_dir`, with `edits` applied to the weights (damaged models for tests).
pub fn write_model_dir_edited(fixtures: &Path, variant: &str, out: &Path, text_only: bool, edits: &[Edit]) -> Result<()> {
    let io = |what: &Path, e: std::io::Error| EngineError::NotFound(format!("{}: {e}", what.display()));
    let init = fixtures.join(format!("models/init_{variant}.tsv"));
    let rows = parse_init_tsv(&std::fs::read_to_string(&init).map_err(|e| io(&init, e))?)?;
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    write_safetensors_edited(
        &out.join("open_clip_model.safetensors"),
        &rows,
        |k| !text_only || k.starts_with("text.") || k == "logit_scale",
        edits,
    )?;
    for (from, to) in [
        (fixtures.join(format!("configs/open_clip_config_{variant}.json")), "open_clip_config.json"),
        (fixtures.join("tokenizer/tokenizer.json"), "tokenizer.json"),
    ] {
        std::fs::copy(&from, out.join(to)).map_err(|e| io(&from, e))?;
    }
    Ok(())
}

/// Closeness of two sets of embeddings, row by row: (min cosine, max abs difference), in f64.
pub fn compare(got: &[Vec<f32>], want: &[Vec<f32>]) -> (f64, f64) {
    let (mut min_cos, mut max_abs) = (1.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        let dot: f64 = g.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
        let ng = g.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nw = w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        min_cos = min_cos.min(dot / (ng * nw));
        max_abs = g.iter().zip(w).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(max_abs, f64::max);
    }
    if got.len() != want.len() {
        min_cos = f64::NAN;
    }
    (min_cos, max_abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of tests/reference/RANDOM_WEIGHTS.md, printed by the Python generator.
    #[test]
    fn matches_the_python_generator() {
        assert_eq!(fnv1a64("text.positional_embedding"), 0x180bef2d217d89e8);
        let u: Vec<u32> = uniform(5, 0x180bef2d217d89e8).iter().map(|v| v.to_bits()).collect();
        assert_eq!(u, vec![0xbea83d78, 0x3eeed2c0, 0x3d77d700, 0xbf1da936, 0x3eeb2b88]);
        let row = InitRow {
            key: "text.positional_embedding".into(),
            shape: vec![77, 512],
            dtype: "float32".into(),
            offset: 0.0,
            scale: 0.03464101627469063f64 as f32,
        };
        let t: Vec<u32> = tensor(&row)[..5].iter().map(|v| v.to_bits()).collect();
        assert_eq!(t, vec![0xbc3a7f0c, 0x3c845e89, 0x3b095de6, 0xbcaec4e8, 0x3c82582f]);
        let ls =
            InitRow { key: "logit_scale".into(), shape: vec![], dtype: "float32".into(), offset: 2.6592600345611572f64 as f32, scale: 0.5 };
        assert_eq!(fnv1a64("logit_scale"), 0xccda59a2223ea645);
        assert_eq!(tensor(&ls)[0].to_bits(), 0x4024b678);
    }

    #[test]
    fn fnv_and_rows_parse() {
        assert_eq!(fnv1a64(""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64("a"), 0xaf63dc4c8601ec8c);
        let rows = parse_init_tsv("logit_scale\t[]\tfloat32\t2.6592600345611572\t0.5\nx\t[2, 3]\tfloat32\t0.0\t0.1\n").unwrap();
        assert_eq!(rows[0].shape, Vec::<usize>::new());
        assert_eq!(rows[1].shape, vec![2, 3]);
        assert_eq!(tensor(&rows[1]).len(), 6);
        assert!(parse_init_tsv("a\tb").is_err());
    }
}
