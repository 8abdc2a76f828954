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
pub static MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(16);

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
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"mobileclip.batch_size",
        c"Inputs per MLX batch in clip_embed_texts/clip_embed_images.",
        c"Larger batches use more memory; cancellation is checked between batches.",
        &BATCH_SIZE,
        1,
        256,
        GucContext::Userset,
        GucFlags::default(),
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
    MODEL_PATH
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|s| !s.trim().is_empty())
}

pub fn batch_size() -> usize {
    BATCH_SIZE.get().clamp(1, 256) as usize
}
