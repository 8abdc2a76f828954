//! The embedding functions: text and images, one or an array per call; for images also the
//! ETL forms that skip unusable files (`on_error => 'null'`) and a check that names the problem.

use pgrx::prelude::*;

use mobileclip_engine::EngineError;

use crate::backend_engine;
use crate::errors::OrRaise;
use crate::guc;
use crate::vector::Vector;

/// The MobileCLIP2 text embedding of `input` (L2-normalised, the model's embed_dim: 512 or
/// 768), exactly as open_clip's `encode_text(tokenize([input]), normalize=True)`.
/// STABLE, not IMMUTABLE: the result depends on `mobileclip.model_path`. Postgres evaluates a
/// STABLE call per row in `ORDER BY emb <=> clip_embed_text('...')`; recent results are cached
/// per session, so only the first evaluation runs the model.
#[pg_extern(stable, strict, parallel_safe, cost = 100000)]
fn clip_embed_text(input: &str) -> Vector {
    let loaded = backend_engine::engine().or_raise();
    let v = loaded
        .embed_text_cached(input, &mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise();
    backend_engine::after_call(&loaded);
    Vector(v.as_ref().clone())
}

/// Text embeddings of every element, in order, batched (`mobileclip.batch_size` per MLX
/// batch); a NULL element gives a NULL vector.
#[pg_extern(stable, strict, parallel_safe, cost = 100000)]
fn clip_embed_texts(inputs: Array<'_, &str>) -> Vec<Option<Vector>> {
    let loaded = backend_engine::engine().or_raise();
    let items: Vec<Option<&str>> = inputs.iter().collect();
    check_result_size(items.len(), loaded.engine.embed_dim());
    let out = loaded
        .engine
        .embed_text_items_with(&items, guc::batch_size(), &mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise();
    backend_engine::after_call(&loaded);
    out.into_iter().map(|v| v.map(Vector)).collect()
}

/// The MobileCLIP2 image embedding of an encoded image file (JPEG, PNG, GIF, WebP, BMP,
/// TIFF), L2-normalised, as open_clip's `encode_image(preprocess(PIL.Image.open(file)),
/// normalize=True)`: resize and crop exactly as PIL/torchvision do, no EXIF rotation.
/// Limits: mobileclip.max_image_bytes, mobileclip.max_image_pixels (checked from the header).
#[pg_extern(stable, strict, parallel_safe, cost = 1000000)]
fn clip_embed_image(image: &[u8]) -> Vector {
    let loaded = backend_engine::engine().or_raise();
    let v = loaded
        .engine
        .embed_images_with(&[Some(image)], 1, &guc::image_limits(), &mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise();
    backend_engine::after_call(&loaded);
    Vector(v.into_iter().flatten().next().unwrap_or_default())
}

/// Image embeddings of every element, in order, batched (`mobileclip.batch_size` per MLX
/// batch); a NULL element gives a NULL vector. One unusable image fails the call, naming it.
#[pg_extern(stable, strict, parallel_safe, cost = 1000000)]
fn clip_embed_images(images: Array<'_, &[u8]>) -> Vec<Option<Vector>> {
    let loaded = backend_engine::engine().or_raise();
    let items: Vec<Option<&[u8]>> = images.iter().collect();
    check_result_size(items.len(), loaded.engine.embed_dim());
    let out = loaded
        .engine
        .embed_images_with(&items, guc::batch_size(), &guc::image_limits(), &mut || {
            pgrx::check_for_interrupts!();
        })
        .or_raise();
    backend_engine::after_call(&loaded);
    out.into_iter().map(|v| v.map(Vector)).collect()
}

/// What to do with an input that cannot be embedded: the default raises an ERROR (the
/// statement fails, nothing is written); `null` gives NULL in its place and a WARNING.
#[derive(Clone, Copy, PartialEq)]
enum OnError {
    Error,
    Null,
}

fn on_error(value: &str) -> OnError {
    match value.trim().to_ascii_lowercase().as_str() {
        "error" => OnError::Error,
        "null" => OnError::Null,
        _ => crate::errors::raise(EngineError::InvalidInput(format!("on_error must be 'error' or 'null', not '{value}'"))),
    }
}

/// As `clip_embed_image(image)`, choosing what an unusable image does: `on_error => 'error'`
/// (the default form's behaviour) or `'null'`: NULL instead, with a WARNING that gives the
/// reason and the call's position in the statement (the row, in a plain INSERT ... SELECT).
/// Only problems of this input turn into NULL; a missing model is still an ERROR.
#[pg_extern(stable, strict, parallel_safe, cost = 1000000, name = "clip_embed_image")]
fn clip_embed_image_on_error(image: &[u8], on_error: &str) -> Option<Vector> {
    let mode = self::on_error(on_error);
    let call = statement_call_number();
    let out = embed_images_as(&[Some(image)], 1, mode, &mut |_, e| {
        pgrx::warning!("mobileclip: clip_embed_image call {call} of this statement returned NULL: {e}");
    });
    out.into_iter().flatten().next().map(Vector)
}

/// As `clip_embed_images(images)`, choosing what an unusable image does: `'error'` fails the
/// call naming the image, `'null'` puts NULL in its place with a WARNING naming its position
/// in the array and the reason.
#[pg_extern(stable, strict, parallel_safe, cost = 1000000, name = "clip_embed_images")]
fn clip_embed_images_on_error(images: Array<'_, &[u8]>, on_error: &str) -> Vec<Option<Vector>> {
    let mode = self::on_error(on_error);
    let items: Vec<Option<&[u8]>> = images.iter().collect();
    let n = items.len();
    let out = embed_images_as(&items, guc::batch_size(), mode, &mut |i, e| {
        pgrx::warning!("mobileclip: image {} of {n}: {e}; NULL in its place (on_error => 'null')", i + 1);
    });
    out.into_iter().map(|v| v.map(Vector)).collect()
}

/// The on_error forms' one path: `items` embedded in batches of `batch`; under `Null` an
/// unusable image goes to `skipped` (its WARNING) and gives None.
fn embed_images_as(
    items: &[Option<&[u8]>],
    batch: usize,
    mode: OnError,
    skipped: &mut dyn FnMut(usize, EngineError),
) -> Vec<Option<Vec<f32>>> {
    let loaded = backend_engine::engine().or_raise();
    check_result_size(items.len(), loaded.engine.embed_dim());
    let limits = guc::image_limits();
    let mut between = || {
        pgrx::check_for_interrupts!();
    };
    let out = match mode {
        OnError::Error => loaded.engine.embed_images_with(items, batch, &limits, &mut between),
        OnError::Null => loaded.engine.embed_images_skipping(items, batch, &limits, &mut between, skipped),
    }
    .or_raise();
    backend_engine::after_call(&loaded);
    out
}

/// Why `image` cannot be embedded (the message clip_embed_image would raise), or NULL when it
/// can: decodes and preprocesses under the same limits, without running the model. For
/// finding the broken files of a collection before (or after) an ETL run.
#[pg_extern(stable, strict, parallel_safe, cost = 10000)]
fn clip_check_image(image: &[u8]) -> Option<String> {
    let loaded = backend_engine::engine().or_raise();
    match loaded.engine.image_pixels(image, &guc::image_limits()) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// Postgres' MaxAllocSize (memutils.h: 0x3fffffff), the largest value one datum can have.
const MAX_ALLOC_SIZE: usize = 0x3fff_ffff;

/// A vector[] of `n` embeddings must fit in one Postgres value (1 GB): refused before any
/// work, rather than after hours of embedding.
fn check_result_size(n: usize, dim: usize) {
    let bytes = n.saturating_mul(8 + 4 * dim).saturating_add(1024);
    if bytes > MAX_ALLOC_SIZE {
        crate::errors::raise(EngineError::LimitExceeded(format!(
            "{n} inputs give a vector[] of about {} MB, over Postgres's 1 GB limit for one value: embed them in smaller arrays",
            bytes >> 20
        )));
    }
}

/// 1, 2, 3, ... for the calls of the current statement (reset when a new statement starts):
/// the row position a WARNING can name.
fn statement_call_number() -> u64 {
    thread_local! {
        static CALLS: std::cell::Cell<(i64, u64)> = const { std::cell::Cell::new((i64::MIN, 0)) };
    }
    // SAFETY: reads a backend-global timestamp; no preconditions.
    let statement = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    CALLS.with(|c| {
        let (key, n) = c.get();
        let n = if key == statement { n + 1 } else { 1 };
        c.set((statement, n));
        n
    })
}
