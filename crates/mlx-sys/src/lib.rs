//! Raw bindings to mlx-c, built against a prebuilt MLX wheel (see build.rs and README.md).
//!
//! A drop-in for crates.io `mlx-sys` 0.7.0, used through `[patch.crates-io]`.
#![allow(non_upper_case_globals)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
// The rest of this crate is bindgen's output, included below: its naming follows the C
// headers, and its code is not ours to restyle or annotate (the unsafe blocks of bindgen's
// layout tests and bitfield accessors carry no SAFETY comments).
#![allow(clippy::all)]
#![allow(clippy::undocumented_unsafe_blocks)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// mlx-rs 0.33.0 calls the macOS function `mach_approximate_time` without a cfg when it seeds
/// its default random state (random.rs `RandomState::new`). Elsewhere we supply it: the wall
/// clock in nanoseconds since the Unix epoch. Not monotonic, and it need not be: the value
/// is only a seed.
#[cfg(not(target_vendor = "apple"))]
#[no_mangle]
pub extern "C" fn mach_approximate_time() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    // Any varying value works as a seed; avoid libc so the crate stays dependency-free.
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
