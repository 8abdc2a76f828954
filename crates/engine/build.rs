include!("../../build/link_mlx.rs");

fn main() {
    link_mlx();
    build_jpeg_shim();
}

/// JPEG is decoded by libjpeg-turbo, the library Pillow decodes with (preprocess/jpeg.c):
/// the system's libjpeg (Debian: libjpeg62-turbo-dev), found with pkg-config when it is
/// there, else the compiler's default paths and `-ljpeg`.
fn build_jpeg_shim() {
    println!("cargo:rerun-if-changed=src/preprocess/jpeg.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let mut build = cc::Build::new();
    build.file("src/preprocess/jpeg.c").warnings(true);
    // Printed after `compile` so that -ljpeg follows the static shim on the link line.
    let mut link = Vec::new();
    let pc = |arg: &str| {
        std::process::Command::new("pkg-config")
            .args([arg, "libjpeg"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_string).collect::<Vec<_>>())
    };
    if let (Some(cflags), Some(libs)) = (pc("--cflags"), pc("--libs")) {
        for f in cflags {
            if let Some(dir) = f.strip_prefix("-I") {
                build.include(dir);
            }
        }
        for l in libs {
            if let Some(dir) = l.strip_prefix("-L") {
                link.push(format!("cargo:rustc-link-search=native={dir}"));
            } else if let Some(lib) = l.strip_prefix("-l") {
                link.push(format!("cargo:rustc-link-lib={lib}"));
            }
        }
    }
    if !link.iter().any(|l| l.starts_with("cargo:rustc-link-lib=")) {
        link.push("cargo:rustc-link-lib=jpeg".into());
    }
    build.compile("mobileclip_jpeg");
    link.iter().for_each(|l| println!("{l}"));
}
