//! The `mobileclip.*` settings. The prefix is reserved, so a typo such as
//! `SET mobileclip.devcie = ...` is an error instead of a silently ignored placeholder.

use pgrx::prelude::*;
use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

use mobileclip_engine::runtime::Device as EngineDevice;

/// `mobileclip.device`: where MLX computes. `gpu` is Metal (macOS builds only).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Device {
    #[name = c"cpu"]
    Cpu,
    #[name = c"gpu"]
    Gpu,
}

pub static DEVICE: GucSetting<Device> = GucSetting::<Device>::new(Device::Cpu);

/// `mobileclip.exif_orientation`: `ignore` (open_clip: `preprocess(Image.open(f))`, a photo
/// stored sideways is embedded sideways) or `apply` (`preprocess(ImageOps.exif_transpose(
/// Image.open(f)))`, what photo viewers show).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExifOrientation {
    #[name = c"ignore"]
    Ignore,
    #[name = c"apply"]
    Apply,
}

pub static EXIF_ORIENTATION: GucSetting<ExifOrientation> = GucSetting::<ExifOrientation>::new(ExifOrientation::Ignore);
pub static MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `mobileclip.cache_dir`: the weights cache (relative paths are inside the data directory).
pub static CACHE_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"mobileclip_cache"));
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(16);
/// 0 = one per core the server may use.
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
/// MB of MLX's buffer cache a backend keeps between transactions.
pub static IDLE_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);
/// Pillow's own decompression-bomb threshold (Image.MAX_IMAGE_PIXELS, where it warns).
pub const DEFAULT_MAX_IMAGE_PIXELS: i32 = 89_478_485;
pub static MAX_IMAGE_PIXELS: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_IMAGE_PIXELS);
pub static MAX_IMAGE_BYTES: GucSetting<i32> = GucSetting::<i32>::new(128 * 1024 * 1024);

/// `mobileclip.threads` resolved. 0 (the default): the cores shared among the backends
/// running a statement now (sessions.rs), at least 1: one per core when this backend is the
/// only one, one each when as many or more run.
pub fn threads() -> usize {
    match THREADS.get() {
        n if n > 0 => n as usize,
        _ => (mobileclip_engine::runtime::default_threads() / crate::sessions::running_backends()).max(1),
    }
}

pub fn register() {
    GucRegistry::define_enum_guc(
        c"mobileclip.device",
        c"Device MLX computes on: cpu, or gpu (Metal, macOS only).",
        c"Takes effect at the next mobileclip call in the session.",
        &DEVICE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"mobileclip.model_path",
        c"Directory of the MobileCLIP2 model (Hugging Face timm/MobileCLIP2-<V>-OpenCLIP layout).",
        c"Holds open_clip_config.json, open_clip_model.safetensors and tokenizer.json, readable by the server. \
Superuser only: the server reads these files. Loaded on first use in each session, reloaded when it changes.",
        &MODEL_PATH,
        GucContext::Suset,
        // SUPERUSER_ONLY: SHOW and pg_settings hide the path from other roles (SECURITY.md).
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"mobileclip.cache_dir",
        c"Weights cache directory: each model's inference-form weights, mapped by every backend (one copy per machine).",
        c"Relative paths are inside the data directory (default mobileclip_cache). Empty: no cache, each backend \
loads a private copy. Files are named by the model file's content hash; stale or damaged ones are rebuilt. Superuser only.",
        &CACHE_DIR,
        GucContext::Suset,
        // SUPERUSER_ONLY: SHOW and pg_settings hide the path from other roles (SECURITY.md).
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_int_guc(
        c"mobileclip.batch_size",
        c"Inputs per MLX batch in clip_embed_texts/clip_embed_images.",
        c"Larger batches use more memory (at most 64 texts, and for images 64 x 256 x 256 pixels and 16 ViT images, \
per MLX batch); cancellation is checked inside a batch too.",
        &BATCH_SIZE,
        1,
        256,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"mobileclip.threads",
        c"Threads one backend uses to embed (OpenBLAS GEMMs and the kernel layer); 0 = the cores shared among running backends.",
        c"0 (the default): cores / backends running a statement (counted per transaction), at least 1. \
Values above the number of cores are clamped to it.",
        &THREADS,
        0,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"mobileclip.idle_cache_size",
        c"MLX buffer cache a backend keeps when a transaction ends (more is given back, all of it at 0).",
        c"Buffers of freed activations that the next call reuses: single-row calls in separate transactions then \
skip re-faulting their memory (5-15 ms a call for S0 and B). The default holds a batch of one of every variant.",
        &IDLE_CACHE_SIZE,
        0,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_enum_guc(
        c"mobileclip.exif_orientation",
        c"EXIF orientation of images: ignore (as open_clip) or apply (as PIL.ImageOps.exif_transpose).",
        c"ignore embeds the pixels as stored, exactly as open_clip's preprocess(Image.open(f)); apply first turns \
the image as its EXIF/XMP orientation says, exactly as preprocess(ImageOps.exif_transpose(Image.open(f))). \
TIFF files are always turned: Pillow itself does that when it loads them.",
        &EXIF_ORIENTATION,
        GucContext::Userset,
        GucFlags::default(),
    );
    // Superuser-only: the limits bound how much memory one call may make the backend
    // allocate, and a failed allocation aborts the backend instead of raising an error.
    GucRegistry::define_int_guc(
        c"mobileclip.max_image_pixels",
        c"Largest image (width x height, from the file header) clip_embed_image accepts.",
        c"Checked before the image is decoded (decompression bombs). Default: Pillow's MAX_IMAGE_PIXELS.",
        &MAX_IMAGE_PIXELS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"mobileclip.max_image_bytes",
        c"Largest encoded image (bytea length) clip_embed_image accepts.",
        c"Checked before anything is decoded.",
        &MAX_IMAGE_BYTES,
        1,
        1024 * 1024 * 1024 - 1,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    // SAFETY: called from _PG_init with a static NUL-terminated name.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"mobileclip".as_ptr()) };
}

pub fn device() -> EngineDevice {
    match DEVICE.get() {
        Device::Cpu => EngineDevice::Cpu,
        Device::Gpu => EngineDevice::Gpu,
    }
}

/// `mobileclip.model_path`, if set to something non-empty.
pub fn model_path() -> Option<String> {
    MODEL_PATH.get().map(|c| c.to_string_lossy().into_owned()).filter(|s| !s.trim().is_empty())
}

/// `mobileclip.cache_dir` as an absolute path (relative to the data directory), None if empty.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    let v = CACHE_DIR.get().map(|c| c.to_string_lossy().into_owned()).filter(|s| !s.trim().is_empty())?;
    let p = std::path::PathBuf::from(v.trim());
    if p.is_absolute() {
        return Some(p);
    }
    // SAFETY: DataDir is set by the postmaster before any backend runs SQL and never changes;
    // it is a NUL-terminated C string (or null in a process that has none).
    let data = unsafe { pg_sys::DataDir };
    if data.is_null() {
        return Some(p);
    }
    // SAFETY: non-null, NUL-terminated (above).
    let data = unsafe { std::ffi::CStr::from_ptr(data) }.to_string_lossy().into_owned();
    Some(std::path::Path::new(&data).join(p))
}

pub fn image_limits() -> mobileclip_engine::preprocess::ImageLimits {
    mobileclip_engine::preprocess::ImageLimits {
        max_pixels: MAX_IMAGE_PIXELS.get().max(1) as u64,
        max_bytes: MAX_IMAGE_BYTES.get().max(1) as usize,
        exif_orientation: match EXIF_ORIENTATION.get() {
            ExifOrientation::Ignore => mobileclip_engine::preprocess::ExifOrientation::Ignore,
            ExifOrientation::Apply => mobileclip_engine::preprocess::ExifOrientation::Apply,
        },
    }
}

pub fn batch_size() -> usize {
    BATCH_SIZE.get().clamp(1, 256) as usize
}

/// `mobileclip.idle_cache_size` in bytes.
pub fn idle_cache_bytes() -> usize {
    usize::try_from(IDLE_CACHE_SIZE.get()).unwrap_or(0).saturating_mul(1 << 20)
}
