//! `Engine`: a loaded MobileCLIP2 model directory (HF `timm/MobileCLIP2-<V>-OpenCLIP` layout)
//! and the batched entry points. One per process; the extension keeps it per backend.

use std::path::{Path, PathBuf};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::runtime;
use crate::text::TextTower;
use crate::tokenizer::ClipTokenizer;
use crate::weights::Weights;

pub const CONFIG_FILE: &str = "open_clip_config.json";
pub const WEIGHTS_FILE: &str = "open_clip_model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Texts longer than this (bytes) are cut at a whitespace before it: open_clip keeps only
/// the first 77 tokens, which come from far fewer bytes, and this bounds the work a huge
/// input can cause.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Inputs per MLX batch; larger batches are split (and cancellation is checked between).
    pub batch_size: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { batch_size: 16 }
    }
}

pub struct Engine {
    dir: PathBuf,
    config: ModelConfig,
    tokenizer: ClipTokenizer,
    text: TextTower,
    options: LoadOptions,
}

fn file_in(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        return Err(EngineError::NotFound(format!(
            "{}: no such file (a model directory holds {CONFIG_FILE}, {WEIGHTS_FILE}, {TOKENIZER_FILE})",
            p.display()
        )));
    }
    Ok(p)
}

impl Engine {
    pub fn load(dir: &Path, options: LoadOptions) -> Result<Self> {
        runtime::init(Default::default())?;
        if !dir.is_dir() {
            return Err(EngineError::NotFound(format!("model directory {}: not found", dir.display())));
        }
        let config = ModelConfig::from_file(&file_in(dir, CONFIG_FILE)?)?;
        let tc = config.text();
        let tokenizer = ClipTokenizer::from_file(&file_in(dir, TOKENIZER_FILE)?, tc.vocab_size, tc.context_length)?;
        let weights = Weights::open(&file_in(dir, WEIGHTS_FILE)?)?;
        let text = TextTower::load(&weights, tc, config.model_cfg.embed_dim)?;
        let options = LoadOptions { batch_size: options.batch_size.clamp(1, 256) };
        Ok(Engine { dir: dir.to_path_buf(), config, tokenizer, text, options })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn embed_dim(&self) -> usize {
        self.text.embed_dim()
    }

    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// open_clip's token ids for one text (context length, zero padded).
    pub fn tokenize(&self, text: &str) -> Result<Vec<i32>> {
        self.tokenizer.encode(bounded(text))
    }

    /// Embeddings of already-tokenized rows (each `context_length` ids), L2-normalised.
    pub fn embed_token_ids(&self, ids: &[i32], normalize: bool) -> Result<Vec<Vec<f32>>> {
        let ctx = self.text.context_length();
        let rows = ids.len() / ctx.max(1);
        let mut out = Vec::with_capacity(rows);
        for chunk in ids.chunks(self.options.batch_size * ctx) {
            let emb = self.text.forward(chunk, chunk.len() / ctx, normalize)?;
            out.extend(self.rows(&emb)?);
        }
        Ok(out)
    }

    /// Embeddings of `ids` (rows of `context_length`) as ONE MLX batch, however many rows.
    /// For benchmarks; callers bound the size.
    pub fn embed_token_ids_batch(&self, ids: &[i32], rows: usize) -> Result<Vec<Vec<f32>>> {
        let emb = self.text.forward(ids, rows, true)?;
        self.rows(&emb)
    }

    /// L2-normalised text embeddings, in input order, in batches of the load-time batch size.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_texts_with(texts, self.options.batch_size, &mut || {})
    }

    /// As `embed_texts`, in batches of `batch_size`, calling `between_batches` before each
    /// MLX batch: the extension passes a cancellation check (which may unwind).
    pub fn embed_texts_with(
        &self,
        texts: &[&str],
        batch_size: usize,
        between_batches: &mut dyn FnMut(),
    ) -> Result<Vec<Vec<f32>>> {
        let ctx = self.text.context_length();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch_size.clamp(1, 256)) {
            between_batches();
            let mut ids = Vec::with_capacity(chunk.len() * ctx);
            for t in chunk {
                ids.extend(self.tokenize(t)?);
            }
            let emb = self.text.forward(&ids, chunk.len(), true)?;
            out.extend(self.rows(&emb)?);
        }
        Ok(out)
    }

    fn rows(&self, emb: &mlx_rs::Array) -> Result<Vec<Vec<f32>>> {
        emb.eval()?;
        let flat = emb.try_as_slice::<f32>().map_err(|e| EngineError::Mlx(e.to_string()))?;
        Ok(flat.chunks(self.embed_dim()).map(|c| c.to_vec()).collect())
    }
}

/// `text` cut to at most MAX_TEXT_BYTES, at a whitespace (pieces never span whitespace, so
/// the tokens of the kept prefix are unchanged).
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].rfind(char::is_whitespace) {
        Some(i) if i > 0 => &text[..i],
        _ => &text[..end],
    }
}
