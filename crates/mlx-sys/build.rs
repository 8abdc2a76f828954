//! Builds mlx-c against a prebuilt MLX from the PyPI wheel instead of building MLX with cmake.
//!
//! Linux x86_64: the `mlx-cpu==0.32.2` wheel (`scripts/setup` installs it into
//! `<workspace>/third_party/mlx`). macOS: the `mlx-metal==0.32.2` wheel in the same layout
//! (untested, see README.md). The wheel directory can be overridden with `MLX_WHEEL_DIR`.
//!
//! Dependents that produce a final artifact read `DEP_MLX_LIBDIR` to set their rpath.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

/// mlx-c as vendored here is pinned to this MLX release (mlx-c/CMakeLists.txt, GIT_TAG).
const MLX_VERSION: &str = "0.32.2";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let target = Target {
        apple: target_os == "macos" || target_os == "ios",
        // half types exist natively only on aarch64 (mlx-c half.h); elsewhere the shim
        // supplies the four half accessors mlx-rs calls, and bindgen gets a prelude for them.
        half_shim: target_arch != "aarch64",
    };

    println!("cargo:rerun-if-env-changed=MLX_WHEEL_DIR");
    println!("cargo:rerun-if-changed=native");
    println!("cargo:rerun-if-changed=mlx-c");

    let wheel = wheel_dir(&manifest);
    let include = wheel.join("mlx/include");
    let libdir = wheel.join("mlx/lib");
    check_version(&include);
    let mlx_c_root = manifest.join("mlx-c");

    compile_mlx_c(&manifest, &mlx_c_root, &include, target);
    link_and_metadata(&wheel, &libdir, &include, &mlx_c_root, target);
    generate_bindings(&manifest, &mlx_c_root, target);
}

#[derive(Clone, Copy)]
struct Target {
    apple: bool,
    half_shim: bool,
}

/// The wheel directory: `MLX_WHEEL_DIR`, else `<workspace>/third_party/mlx`.
fn wheel_dir(manifest: &Path) -> PathBuf {
    let wheel = match env::var_os("MLX_WHEEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => manifest.join("../../third_party/mlx"),
    };
    wheel.canonicalize().unwrap_or_else(|_| {
        panic!(
            "MLX wheel directory {} not found: run scripts/setup (it installs mlx-cpu=={MLX_VERSION} \
             there) or set MLX_WHEEL_DIR",
            wheel.display()
        )
    })
}

/// mlx-c, compiled with the system C++ compiler against the wheel's headers, into libmlxc.a.
fn compile_mlx_c(manifest: &Path, mlx_c_root: &Path, include: &Path, target: Target) {
    let native = manifest.join("native");
    let mut sources: Vec<PathBuf> = list(&mlx_c_root.join("mlx/c"), "cpp");
    if target.half_shim {
        sources.push(native.join("half_shim.cpp"));
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .pic(true)
        .opt_level(2)
        .warnings(false)
        .include(mlx_c_root)
        .include(include)
        .flag(format!("-ffile-prefix-map={}=.", manifest.display()))
        .files(&sources);
    if !target.apple {
        // libstdc++ 12 (Debian 12) lacks <format>; the header is inert where it exists.
        build.flag("-include").flag(native.join("compat_format.h").to_string_lossy().as_ref());
    } else {
        // The mlx-metal wheel's MLXConfig.cmake adds these (untested here).
        build.define("ACCELERATE_NEW_LAPACK", None).define("_METAL_", None);
        build.include(include.join("metal_cpp"));
    }
    build.compile("mlxc");
}

/// Links the wheel's libmlx and tells direct dependents where it is (DEP_MLX_*).
fn link_and_metadata(wheel: &Path, libdir: &Path, include: &Path, mlx_c_root: &Path, target: Target) {
    println!("cargo:rustc-link-search=native={}", libdir.display());
    println!("cargo:rustc-link-lib=dylib=mlx");
    if target.apple {
        println!("cargo:rustc-link-lib=c++");
    }
    println!("cargo::metadata=libdir={}", libdir.display());
    println!("cargo::metadata=wheel={}", wheel.display());
    println!("cargo::metadata=include={}", env::join_paths([include, mlx_c_root]).expect("include paths").to_string_lossy());
    println!("cargo::metadata=version={MLX_VERSION}");
}

/// The Rust bindings of every mlx-c header, into $OUT_DIR/bindings.rs.
fn generate_bindings(manifest: &Path, mlx_c_root: &Path, target: Target) {
    let mut headers = list(&mlx_c_root.join("mlx/c"), "h");
    if target.half_shim {
        headers.insert(0, manifest.join("native/bindgen_prelude.h"));
    }
    let bindings = headers
        .iter()
        .fold(
            bindgen::Builder::default()
                .rust_target("1.73.0".parse().expect("rust-version"))
                .clang_arg(format!("-I{}", mlx_c_root.display()))
                .blocklist_function("malloc")
                .blocklist_function("realloc"),
            |b, h| b.header(h.to_string_lossy()),
        )
        .generate()
        .expect("bindgen failed on the mlx-c headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");
}

fn list(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension() == Some(OsStr::new(ext)))
        .collect();
    files.sort();
    files
}

fn check_version(include: &Path) {
    let header = include.join("mlx/version.h");
    let text = fs::read_to_string(&header).unwrap_or_else(|e| panic!("{}: {e} (is this an MLX wheel directory?)", header.display()));
    let num = |name: &str| text.lines().find_map(|l| l.trim().strip_prefix("#define ")?.strip_prefix(name)?.trim().parse::<u32>().ok());
    let found = format!(
        "{}.{}.{}",
        num("MLX_VERSION_MAJOR").unwrap_or(0),
        num("MLX_VERSION_MINOR").unwrap_or(0),
        num("MLX_VERSION_PATCH").unwrap_or(0)
    );
    if found != MLX_VERSION {
        panic!("{} is MLX {found}; mlx-c here needs exactly {MLX_VERSION}", header.display());
    }
}
