//! `Engine`: a loaded MobileCLIP2 model directory (HF `timm/MobileCLIP2-<V>-OpenCLIP` layout)
//! and the batched entry points. One per process; the extension keeps it per backend.

use std::path::{Path, PathBuf};

use once_cell::unsync::OnceCell;

use crate::config::{ImagePreprocess, ModelConfig};
use crate::error::{EngineError, Result};
use crate::loader::{self, CacheState, Loaded};
use crate::preprocess::{self, ImageLimits, Interpolation};
use crate::runtime;
use crate::text::TextTower;
use crate::tokenizer::ClipTokenizer;
use crate::vision::VisionTower;
use crate::weights::Weights;
use crate::weights_cache;
use crate::zero_shot;

pub const CONFIG_FILE: &str = "open_clip_config.json";
pub const WEIGHTS_FILE: &str = "open_clip_model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The CLIP temperature parameter's key in open_clip's state_dict (a scalar).
const LOGIT_SCALE: &str = "logit_scale";

/// Texts longer than this (bytes) are cut at a whitespace before it: open_clip keeps only
/// the first 77 tokens, which come from far fewer bytes, and this bounds the work a huge
/// input can cause.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Texts in one MLX batch, whatever the batch size asked: with the graph evaluated block by
/// block (cancellation is checked between blocks), one block of 64 texts takes well under a
/// second even for L-14, and larger batches are not faster per text.
pub const MAX_TEXT_BATCH: usize = 64;

/// Pixels (images x S x S) in one image batch: 64 images at 256 x 256. The largest tower
/// (S4) holds ~1.5 GB of activations at that size.
pub const MAX_BATCH_PIXELS: usize = 64 * 256 * 256;

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Inputs per MLX batch; larger batches are split (bounded per tower: MAX_TEXT_BATCH,
    /// MAX_BATCH_PIXELS, VisionTower::max_batch).
    pub batch_size: usize,
    /// The weights cache directory (weights_cache.rs): towers are mapped from it, shared by
    /// every process, and built into it on first use. None: private copies, no files written.
    pub cache_dir: Option<PathBuf>,
    /// Load each tower on its first use (a text-only session never loads the image tower).
    /// Either way every tensor's key, shape and dtype is checked by `load`.
    pub lazy: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { batch_size: 16, cache_dir: None, lazy: false }
    }
}

pub struct Engine {
    dir: PathBuf,
    config: ModelConfig,
    tokenizer: ClipTokenizer,
    weights: Weights,
    source_hash: OnceCell<String>,
    text: OnceCell<Loaded<TextTower>>,
    vision: OnceCell<Loaded<VisionTower>>,
    image_preprocess: ImagePreprocess,
    interpolation: Interpolation,
    options: LoadOptions,
    /// The model's `logit_scale` parameter (zero-shot classification), when the file has it.
    logit_scale: Option<f32>,
}

/// What `Engine::towers` reports per tower.
#[derive(Clone, Debug)]
pub struct TowerInfo {
    pub name: &'static str,
    pub loaded: bool,
    pub params: usize,
    pub cache: Option<CacheState>,
    pub copied: usize,
    pub load_ms: f64,
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
        // Header checks of both towers now (cheap), so a file that cannot serve one of them
        // fails here, whichever tower is used first.
        crate::text::check_header(&weights, tc, config.model_cfg.embed_dim)?;
        let image_preprocess = config.image_preprocess()?;
        let interpolation: Interpolation = image_preprocess.interpolation.parse()?;
        VisionTower::check_header(&weights, &config)?;
        let options = LoadOptions { batch_size: options.batch_size.clamp(1, 256), ..options };
        // A scalar: read now (checked finite like every weight); its absence only matters to
        // zero-shot classification, which then says so.
        let logit_scale = match weights.contains(LOGIT_SCALE) {
            true => Some(weights.f32_vec(LOGIT_SCALE, &[])?[0]),
            false => None,
        };
        let engine = Engine {
            dir: dir.to_path_buf(),
            config,
            tokenizer,
            weights,
            source_hash: OnceCell::new(),
            text: OnceCell::new(),
            vision: OnceCell::new(),
            image_preprocess,
            interpolation,
            options,
            logit_scale,
        };
        if !engine.options.lazy {
            engine.warm()?;
        }
        Ok(engine)
    }

    /// Loads both towers now (those not loaded yet).
    pub fn warm(&self) -> Result<()> {
        self.text()?;
        self.vision()?;
        Ok(())
    }

    /// (cache directory, BLAKE3 of the model file) when the cache is on; the hash is taken
    /// once per engine, from the directory's memo when the file is unchanged.
    fn cache(&self) -> Result<Option<(&Path, &str)>> {
        let Some(dir) = &self.options.cache_dir else { return Ok(None) };
        let hash = self.source_hash.get_or_try_init(|| weights_cache::source_hash_memo(dir, self.weights.path()))?;
        Ok(Some((dir.as_path(), hash.as_str())))
    }

    fn text(&self) -> Result<&TextTower> {
        let l = self.text.get_or_try_init(|| {
            let (tc, d) = (self.config.text(), self.config.model_cfg.embed_dim);
            loader::load(&self.weights, self.cache()?, "text", |p| TextTower::load(p, tc, d))
        })?;
        Ok(&l.tower)
    }

    fn vision(&self) -> Result<&VisionTower> {
        let l =
            self.vision.get_or_try_init(|| loader::load(&self.weights, self.cache()?, "image", |p| VisionTower::load(p, &self.config)))?;
        Ok(&l.tower)
    }

    /// Per tower: loaded yet, parameters, where its weights live, load time.
    pub fn towers(&self) -> Vec<TowerInfo> {
        fn info<T>(name: &'static str, l: Option<&Loaded<T>>) -> TowerInfo {
            TowerInfo {
                name,
                loaded: l.is_some(),
                params: l.map_or(0, |l| l.params),
                cache: l.map(|l| l.cache.clone()),
                copied: l.map_or(0, |l| l.copied),
                load_ms: l.map_or(0.0, |l| l.load_ms),
            }
        }
        vec![info("text", self.text.get()), info("image", self.vision.get())]
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn embed_dim(&self) -> usize {
        self.config.model_cfg.embed_dim
    }

    /// The model's `logit_scale` (ln of the softmax scale open_clip applies to cosines).
    pub fn logit_scale(&self) -> Result<f32> {
        self.logit_scale.ok_or_else(|| {
            EngineError::Model(format!(
                "{}: no \"{LOGIT_SCALE}\" tensor: zero-shot classification needs the model's logit scale",
                self.weights.path().display()
            ))
        })
    }

    /// Zero-shot probabilities of `labels` (their caption embeddings) for one image embedding,
    /// with this model's logit scale: open_clip's `(scale * img @ txt.T).softmax(-1)`.
    pub fn classify(&self, image: &[f32], labels: &[&[f32]]) -> Result<Vec<f32>> {
        if image.len() != self.embed_dim() {
            return Err(EngineError::InvalidInput(format!(
                "the embedding has {} dimensions; this model's have {}",
                image.len(),
                self.embed_dim()
            )));
        }
        zero_shot::probabilities(image, labels, self.logit_scale()?)
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
        let ctx = self.config.text().context_length;
        let rows = ids.len() / ctx.max(1);
        let mut out = Vec::with_capacity(rows);
        for chunk in ids.chunks(self.options.batch_size * ctx) {
            let emb = self.text()?.forward(chunk, chunk.len() / ctx, normalize)?;
            let k = out.len();
            out.extend(self.rows(&emb, normalize, &|i| label("token row", k + i, rows))?);
        }
        Ok(out)
    }

    /// Embeddings of `ids` (rows of `context_length`) as ONE MLX batch, however many rows.
    /// For benchmarks; callers bound the size.
    pub fn embed_token_ids_batch(&self, ids: &[i32], rows: usize) -> Result<Vec<Vec<f32>>> {
        let emb = self.text()?.forward(ids, rows, true)?;
        self.rows(&emb, true, &|i| label("token row", i, rows))
    }

    /// L2-normalised text embeddings, in input order, in batches of the load-time batch size.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_texts_with(texts, self.options.batch_size, &mut || {})
    }

    /// As `embed_texts`, in batches of `batch_size` (at most MAX_TEXT_BATCH), calling
    /// `checkpoint` before each MLX batch and after each of its blocks: the extension passes
    /// a cancellation check (which may unwind), so a cancel waits for one block of one batch.
    pub fn embed_texts_with(&self, texts: &[&str], batch_size: usize, checkpoint: &mut dyn FnMut()) -> Result<Vec<Vec<f32>>> {
        let items: Vec<Option<&str>> = texts.iter().map(|t| Some(*t)).collect();
        Ok(self.embed_text_items_with(&items, batch_size, checkpoint)?.into_iter().flatten().collect())
    }

    /// As `embed_texts_with` for items that may be absent (SQL NULL -> None, kept in place).
    /// An embedding that is not finite fails the call, naming the text by its 1-based
    /// position in `items` ("text 2 of 4").
    pub fn embed_text_items_with(
        &self,
        items: &[Option<&str>],
        batch_size: usize,
        checkpoint: &mut dyn FnMut(),
    ) -> Result<Vec<Option<Vec<f32>>>> {
        let ctx = self.config.text().context_length;
        let present: Vec<(usize, &str)> = items.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i, t))).collect();
        let mut out: Vec<Option<Vec<f32>>> = vec![None; items.len()];
        for chunk in present.chunks(batch_size.clamp(1, MAX_TEXT_BATCH)) {
            checkpoint();
            let mut ids = Vec::with_capacity(chunk.len() * ctx);
            for (_, t) in chunk {
                ids.extend(self.tokenize(t)?);
            }
            let emb = self.text()?.forward_checked(&ids, chunk.len(), true, checkpoint)?;
            let rows = self.rows(&emb, true, &|k| label("text", chunk[k].0, items.len()))?;
            for (&(i, _), v) in chunk.iter().zip(rows) {
                out[i] = Some(v);
            }
        }
        Ok(out)
    }

    /// The memory reserved before the text tower runs on the token rows `ids` (loads the
    /// tower).
    pub fn text_reserve_bytes(&self, ids: &[i32]) -> Result<usize> {
        let t = self.text()?;
        let n = ids.len() / self.config.text().context_length.max(1);
        Ok(t.activation_bytes(n, t.positions(ids)))
    }

    /// The memory the engine reserves before running the image tower on `n` images (loads
    /// the tower).
    pub fn image_reserve_bytes(&self, n: usize) -> Result<usize> {
        Ok(self.vision()?.activation_bytes(n))
    }

    /// The preprocessing open_clip builds from this model's config (size, filter, mean/std).
    pub fn image_preprocess(&self) -> &ImagePreprocess {
        &self.image_preprocess
    }

    /// open_clip's eval transform of one image file's bytes up to the 8-bit crop: decode,
    /// shortest-side resize in the file's own mode, centre crop, RGB. [S, S, 3] HWC.
    pub fn image_crop(&self, bytes: &[u8], limits: &ImageLimits) -> Result<Vec<u8>> {
        preprocess::load_crop(bytes, self.image_preprocess.size, self.interpolation, limits)
    }

    /// The normalised pixels open_clip would feed the tower: [S, S, 3] HWC float32.
    pub fn image_pixels(&self, bytes: &[u8], limits: &ImageLimits) -> Result<Vec<f32>> {
        let crop = self.image_crop(bytes, limits)?;
        Ok(preprocess::normalize(&crop, self.image_preprocess.mean, self.image_preprocess.std))
    }

    /// Image embeddings of already-normalised pixels, `n` images of [S, S, 3] HWC, as ONE
    /// MLX batch. L2-normalised unless `normalize` is false (open_clip's raw features).
    pub fn embed_pixels(&self, pixels: &[f32], n: usize, normalize: bool) -> Result<Vec<Vec<f32>>> {
        let s = self.image_preprocess.size as usize;
        if n * s * s > MAX_BATCH_PIXELS {
            return Err(EngineError::LimitExceeded(format!("{n} images of {s} x {s} in one batch: more than {MAX_BATCH_PIXELS} pixels")));
        }
        if n == 0 || pixels.len() != n * s * s * 3 {
            return Err(EngineError::InvalidInput(format!("{} pixel values for {n} images of {s} x {s} x 3", pixels.len())));
        }
        // Reserved before the pixels become an MLX array (the image tower's inputs are made
        // here, so the reservation is too).
        let tower = self.vision()?;
        let _room = runtime::reserve(tower.activation_bytes(n), &format!("a batch of {n} images"))?;
        let x = mlx_rs::Array::from_slice(pixels, &[n as i32, s as i32, s as i32, 3]);
        let emb = tower.forward(&x, normalize)?;
        self.rows(&emb, normalize, &|i| label("image", i, n))
    }

    /// L2-normalised image embeddings of encoded image files (JPEG, PNG, GIF, WebP, BMP, TIFF),
    /// in input order, in batches of the load-time batch size, with the default limits.
    pub fn embed_images(&self, images: &[&[u8]]) -> Result<Vec<Vec<f32>>> {
        let items: Vec<Option<&[u8]>> = images.iter().map(|b| Some(*b)).collect();
        let out = self.embed_images_with(&items, self.options.batch_size, &ImageLimits::default(), &mut || {})?;
        Ok(out.into_iter().flatten().collect())
    }

    /// As `embed_images` for items that may be absent (SQL NULL -> None, kept in place), in
    /// batches of `batch_size` present images (bounded by pixels and by the tower's
    /// `max_batch`), under `limits`, calling `checkpoint` before each batch and after each
    /// piece of it (VisionTower::forward_checked; the extension's cancellation check). An image that cannot be used
    /// fails the call; with several items the error says which (1-based position in `items`).
    pub fn embed_images_with(
        &self,
        items: &[Option<&[u8]>],
        batch_size: usize,
        limits: &ImageLimits,
        checkpoint: &mut dyn FnMut(),
    ) -> Result<Vec<Option<Vec<f32>>>> {
        self.embed_image_items(items, batch_size, limits, checkpoint, None)
    }

    /// As `embed_images_with`, but an image that cannot be used (not decodable, over a limit,
    /// or one on which the model overflows) gives None in its place and is passed to
    /// `skipped` with its 0-based position and the reason, instead of failing the call.
    /// Errors that are not about one input (the model, MLX) still fail it.
    pub fn embed_images_skipping(
        &self,
        items: &[Option<&[u8]>],
        batch_size: usize,
        limits: &ImageLimits,
        checkpoint: &mut dyn FnMut(),
        skipped: &mut dyn FnMut(usize, EngineError),
    ) -> Result<Vec<Option<Vec<f32>>>> {
        self.embed_image_items(items, batch_size, limits, checkpoint, Some(skipped))
    }

    fn embed_image_items(
        &self,
        items: &[Option<&[u8]>],
        batch_size: usize,
        limits: &ImageLimits,
        checkpoint: &mut dyn FnMut(),
        mut skipped: Option<&mut dyn FnMut(usize, EngineError)>,
    ) -> Result<Vec<Option<Vec<f32>>>> {
        // Bound one MLX batch by pixels as well as by count: a failed MLX allocation aborts
        // the process, so the activations of a batch must stay far from the memory size.
        let s = self.image_preprocess.size as usize;
        let batch_size = batch_size.clamp(1, 256).min((MAX_BATCH_PIXELS / (s * s)).max(1)).min(self.vision()?.max_batch());
        let present: Vec<(usize, &[u8])> = items.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, b))).collect();
        let mut out: Vec<Option<Vec<f32>>> = vec![None; items.len()];
        let name = |i: usize, e: EngineError| if items.len() > 1 { e.context(&format!("image {} of {}", i + 1, items.len())) } else { e };
        for chunk in present.chunks(batch_size) {
            checkpoint();
            let mut pixels = Vec::new();
            let mut used = Vec::with_capacity(chunk.len());
            for &(i, bytes) in chunk {
                match (self.image_pixels(bytes, limits), skipped.as_mut()) {
                    (Ok(px), _) => {
                        pixels.extend_from_slice(&px);
                        used.push(i);
                    }
                    (Err(e), Some(skip)) => skip(i, e),
                    (Err(e), None) => return Err(name(i, e)),
                }
            }
            if used.is_empty() {
                continue;
            }
            let tower = self.vision()?;
            let _room = runtime::reserve(tower.activation_bytes(used.len()), &format!("a batch of {} images", used.len()))?;
            let x = mlx_rs::Array::from_slice(&pixels, &[used.len() as i32, s as i32, s as i32, 3]);
            let emb = tower.forward_checked(&x, true, checkpoint)?;
            for (k, row) in self.raw_rows(&emb)?.into_iter().enumerate() {
                let i = used[k];
                match (check_finite(&row, true), skipped.as_mut()) {
                    (Ok(()), _) => out[i] = Some(row),
                    (Err(e), Some(skip)) => skip(i, e),
                    (Err(e), None) => return Err(e.context(&label("image", i, items.len()))),
                }
            }
        }
        Ok(out)
    }

    /// The rows of `emb`, evaluated, unchecked.
    fn raw_rows(&self, emb: &mlx_rs::Array) -> Result<Vec<Vec<f32>>> {
        emb.eval()?;
        let flat = emb.try_as_slice::<f32>().map_err(|e| EngineError::Mlx(e.to_string()))?;
        Ok(flat.chunks(self.embed_dim()).map(|c| c.to_vec()).collect())
    }

    /// The rows of `emb`, each checked to be finite (and, when `unit`, of length 1): where
    /// embeddings leave the engine, so no NaN or Inf ever reaches a caller. `what(k)` names
    /// row k for the error.
    fn rows(&self, emb: &mlx_rs::Array, unit: bool, what: &dyn Fn(usize) -> String) -> Result<Vec<Vec<f32>>> {
        let rows = self.raw_rows(emb)?;
        for (k, r) in rows.iter().enumerate() {
            check_finite(r, unit).map_err(|e| e.context(&what(k)))?;
        }
        Ok(rows)
    }
}

/// "text 2 of 4" (1-based), or "the text" when there is one.
fn label(kind: &str, i: usize, n: usize) -> String {
    if n > 1 {
        format!("{kind} {} of {n}", i + 1)
    } else {
        format!("the {kind}")
    }
}

/// An embedding with a NaN or Inf is an error: the model overflowed on this input. So is a
/// normalised (`unit`) one whose length is not 1: the features were finite but their sum of
/// squares overflowed float32, and dividing by that infinite norm left zeros.
pub fn check_finite(v: &[f32], unit: bool) -> Result<()> {
    let bad = v.iter().filter(|x| !x.is_finite()).count();
    if bad > 0 {
        let nan = v.iter().filter(|x| x.is_nan()).count();
        return Err(EngineError::NonFinite(format!(
            "the embedding has {bad} non-finite value(s) ({nan} NaN, {} infinite): the model overflowed on this input, \
             and a vector cannot hold NaN or Inf",
            bad - nan
        )));
    }
    if unit {
        let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        if (norm - 1.0).abs() > 1e-3 {
            return Err(EngineError::NonFinite(format!(
                "the embedding could not be normalised (its length is {norm} instead of 1): the model overflowed on this input"
            )));
        }
    }
    Ok(())
}
/// `text` cut as the engine cuts it before tokenizing: at most MAX_TEXT_BYTES, at a
/// whitespace (pieces never span whitespace, so the tokens of the kept prefix are unchanged).
pub fn bounded(text: &str) -> &str {
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
