//! Zero-shot classification in SQL: `clip_classify(image or embedding, labels, template)`
//! returns one row per label with open_clip's probability. The math is the engine's
//! (`Engine::classify`); here: inputs, the per-session label cache, rows out.

use pgrx::prelude::*;

use mobileclip_engine::EngineError;

use crate::backend_engine::{self, Loaded};
use crate::errors::{raise, OrRaise};
use crate::guc;
use crate::vector::Vector;

/// Zero-shot labels for an encoded image, as open_clip: each label's caption is `template`
/// with `{}` replaced by the label; probability = softmax over the labels of
/// exp(logit_scale) x cosine(image, caption). One row per label, in the order given.
/// Label embeddings are cached per session (same template and labels: embedded once).
#[pg_extern(stable, strict, parallel_safe, cost = 1000000)]
fn clip_classify(
    image: &[u8],
    labels: Array<'_, &str>,
    template: default!(&str, "'a photo of a {}.'"),
) -> TableIterator<'static, (name!(label, String), name!(probability, f32))> {
    let labels = label_list(labels);
    let loaded = backend_engine::engine().or_raise();
    let emb = loaded
        .engine
        .embed_images_with(&[Some(image)], 1, &guc::image_limits(), &mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise()
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_default();
    rows(&loaded, &emb, &labels, template)
}

/// As `clip_classify(image, ...)` for an embedding already computed (a stored
/// `clip_embed_image` result, or any vector of the model's dimensions: it is normalised).
#[pg_extern(stable, strict, parallel_safe, cost = 100000, name = "clip_classify")]
fn clip_classify_embedding(
    embedding: Vector,
    labels: Array<'_, &str>,
    template: default!(&str, "'a photo of a {}.'"),
) -> TableIterator<'static, (name!(label, String), name!(probability, f32))> {
    let labels = label_list(labels);
    let loaded = backend_engine::engine().or_raise();
    rows(&loaded, &embedding.0, &labels, template)
}

/// Labels per call: each is a caption to embed (ImageNet-21k has 21,843 classes).
const MAX_LABELS: usize = 100_000;

/// The labels, which must be present, non-NULL and not empty strings.
fn label_list(labels: Array<'_, &str>) -> Vec<String> {
    let bad = |m: String| -> ! { raise(EngineError::InvalidInput(m)) };
    let mut out = Vec::with_capacity(labels.len());
    for (i, l) in labels.iter().enumerate() {
        match l {
            None => bad(format!("labels[{}] is NULL: every label needs a name", i + 1)),
            Some(l) if l.trim().is_empty() => bad(format!("labels[{}] is empty", i + 1)),
            Some(l) => out.push(l.to_owned()),
        }
    }
    if out.is_empty() {
        bad("labels is empty: give at least one label".into());
    }
    if out.len() > MAX_LABELS {
        raise(EngineError::LimitExceeded(format!("{} labels: at most {MAX_LABELS} per call", out.len())));
    }
    out
}

fn rows(loaded: &Loaded, image: &[f32], labels: &[String], template: &str) -> TableIterator<'static, (String, f32)> {
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let texts = loaded
        .label_embeddings(template, &labels, guc::batch_size(), &mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise();
    let refs: Vec<&[f32]> = texts.iter().map(Vec::as_slice).collect();
    let probs = loaded.engine.classify(image, &refs).or_raise();
    backend_engine::after_call(loaded);
    let out: Vec<(String, f32)> = labels.iter().map(|l| l.to_string()).zip(probs).collect();
    TableIterator::new(out)
}
