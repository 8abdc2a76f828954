//! Compiles the kernel layer (cpp/) against the exact MLX headers the wheel ships (mlx-sys
//! passes their path as DEP_MLX_INCLUDE) and the vendored mlx-c headers.
//!
//! -ffp-contract=off for the element-wise kernels: they do the same float operations in the
//! same order as the MLX op chains they replace, so no multiply-add may be fused behind our
//! back. The convolutions and GEMMs may fuse (their sums are ordered differently from any
//! reference). The loops are vectorized by GCC and cloned per ISA at run time (kernels.h,
//! MCK_CLONES); the register-tiled GEMM and depthwise bodies are compiled once per ISA (tiles.cpp).

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let apple = target_os == "macos" || target_os == "ios";
    let include = env::var("DEP_MLX_INCLUDE").expect("DEP_MLX_INCLUDE (mlx-sys metadata)");
    println!("cargo:rerun-if-changed=cpp");

    // Element-wise kernels: no contraction (bit-equal to the MLX op chains). Convolutions and
    // GEMMs: multiply-adds may fuse (FMA), as their summation order differs from any reference
    // anyway.
    build(&manifest, &include, apple, &["pool.cpp", "elementwise.cpp", "primitives.cpp", "external.cpp"], "off", "mobileclip_kernels");
    build(&manifest, &include, apple, &["conv.cpp", "tiles.cpp"], "fast", "mobileclip_kernels_fma");
    if !apple {
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
}

fn build(manifest: &std::path::Path, include: &str, apple: bool, files: &[&str], contract: &str, name: &str) {
    let cpp = manifest.join("cpp");
    let mut b = cc::Build::new();
    b.cpp(true)
        .std("c++20")
        .pic(true)
        .opt_level(3)
        .warnings(true)
        .flag_if_supported(format!("-ffp-contract={contract}"))
        .flag_if_supported("-fno-math-errno")
        .flag_if_supported("-fno-trapping-math")
        .flag(format!("-ffile-prefix-map={}=.", manifest.display()));
    // -isystem: MLX's headers are not ours to warn about.
    for dir in env::split_paths(include) {
        b.flag("-isystem").flag(dir.to_string_lossy().as_ref());
    }
    if !apple {
        // libstdc++ 12 (Debian 12) lacks <format>, which MLX's headers include.
        b.flag("-include").flag(manifest.join("../mlx-sys/native/compat_format.h").to_string_lossy().as_ref());
    } else {
        b.define("ACCELERATE_NEW_LAPACK", None).define("_METAL_", None);
    }
    for f in files {
        b.file(cpp.join(f));
    }
    b.compile(name);
}
