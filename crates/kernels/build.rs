//! Compiles the kernel layer (cpp/) against the exact MLX headers the wheel ships (mlx-sys
//! passes their path as DEP_MLX_INCLUDE) and the vendored mlx-c headers.
//!
//! -ffp-contract=off: the kernels do the same float operations in the same order as the MLX
//! op chains they replace, so no multiply-add may be fused behind our back. The loops are
//! vectorized by GCC and cloned per ISA at run time (kernels.h, MCK_CLONES).

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let apple = target_os == "macos" || target_os == "ios";
    let include = env::var("DEP_MLX_INCLUDE").expect("DEP_MLX_INCLUDE (mlx-sys metadata)");
    let cpp = manifest.join("cpp");
    println!("cargo:rerun-if-changed=cpp");

    let mut b = cc::Build::new();
    b.cpp(true)
        .std("c++20")
        .pic(true)
        .opt_level(3)
        .warnings(true)
        .flag_if_supported("-ffp-contract=off")
        .flag_if_supported("-fno-math-errno")
        .flag_if_supported("-fno-trapping-math")
        .flag(format!("-ffile-prefix-map={}=.", manifest.display()));
    // -isystem: MLX's headers are not ours to warn about.
    for dir in env::split_paths(&include) {
        b.flag("-isystem").flag(dir.to_string_lossy().as_ref());
    }
    if !apple {
        // libstdc++ 12 (Debian 12) lacks <format>, which MLX's headers include.
        b.flag("-include").flag(manifest.join("../mlx-sys/native/compat_format.h").to_string_lossy().as_ref());
    } else {
        b.define("ACCELERATE_NEW_LAPACK", None).define("_METAL_", None);
    }
    for f in ["pool.cpp", "elementwise.cpp", "conv.cpp", "primitives.cpp"] {
        b.file(cpp.join(f));
    }
    b.compile("mobileclip_kernels");
    if !apple {
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
}
