// Shared by the build.rs of every crate that produces a final artifact linking MLX (the
// extension cdylib, the CLI, and the engine's test binaries). Cargo applies rustc-link-arg
// only to the emitting package's own cdylib/bins/tests, so each of them includes this file.
//
// 1. rpath to libmlx: `$ORIGIN/mlx/lib` first (the installed layout: scripts/setup copies the
//    wheel's mlx/lib and mlx_cpu.libs beside the extension in Postgres' pkglibdir), then the
//    wheel directory the build used (development and tests). No LD_LIBRARY_PATH needed.
// 2. OpenBLAS: libmlx from the wheel references a reference BLAS by hashed soname (~5 GF/s).
//    Putting libopenblas.so.0 in our own DT_NEEDED makes the dynamic linker's breadth-first
//    search bind libmlx's cblas_sgemm to OpenBLAS (~180 GF/s). rustc passes --as-needed, which
//    would drop an unused -lopenblas, hence --no-as-needed around it.
fn link_mlx() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let libdir = std::env::var("DEP_MLX_LIBDIR")
        .expect("DEP_MLX_LIBDIR missing: list mlx-sys as a direct dependency of this crate");
    if target_os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,@loader_path/mlx/lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libdir}");
    } else {
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/mlx/lib:{libdir}");
        println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed");
        println!("cargo:rustc-link-arg=-lopenblas");
        println!("cargo:rustc-link-arg=-Wl,--pop-state");
    }
    println!("cargo:rerun-if-env-changed=DEP_MLX_LIBDIR");
}
