//! The `mobileclip.*` settings. The prefix is reserved, so a typo such as
//! `SET mobileclip.devcie = ...` is an error instead of a silently ignored placeholder.

use pgrx::prelude::*;
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

pub fn register() {
    GucRegistry::define_enum_guc(
        c"mobileclip.device",
        c"Device MLX computes on: cpu, or gpu (Metal, macOS only).",
        c"Takes effect at the next mobileclip call in the session.",
        &DEVICE,
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
