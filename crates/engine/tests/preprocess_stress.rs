//! The synthetic stress corpus of issue 9 (tests/fixtures/images/stress, made with a fixed seed
//! by tests/reference/make_stress_corpus.py): hard edges, stripes, checkerboards, single bright
//! pixels, 1:20 and 20:1 images with 4000 px sides, every PIL mode and file format accepted, EXIF
//! orientations 1..8. For every file and the three specs (256 bilinear, 224 bilinear, 224
//! bicubic), `load_crop` must give open_clip 3.3.0's crop on Pillow 13.0.0 bit for bit: the
//! manifest holds the SHA-256 of each reference crop. With `exif_orientation = apply`, the
//! EXIF set must give `preprocess(ImageOps.exif_transpose(Image.open(f)))` bit for bit.
//!
//! `--show-output` prints, per class, the share of bit-exact crops and the largest level
//! difference. The level difference needs the reference crops themselves: write them with
//! `make_stress_corpus.py --crops DIR` and set MOBILECLIP_STRESS_CROPS=DIR (without it, a
//! mismatch is reported as such, its size unknown).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mobileclip_engine::preprocess::{load_crop, probe, ExifOrientation, ImageLimits, Interpolation};
use mobileclip_engine::EngineError;
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images/stress")
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("stress/manifest.json (run make_stress_corpus.py)");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The reference crop PNG, if MOBILECLIP_STRESS_CROPS points at `make_stress_corpus.py --crops`.
fn reference_png(kind: &str, key: &str, name: &str) -> Option<Vec<u8>> {
    let root = std::env::var_os("MOBILECLIP_STRESS_CROPS")?;
    let path = PathBuf::from(root).join(kind).join(key).join(format!("{}.png", name.replace('.', "_")));
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).ok()?));
    let mut r = dec.read_info().ok()?;
    let mut buf = vec![0; r.output_buffer_size()?];
    let info = r.next_frame(&mut buf).ok()?;
    buf.truncate(info.buffer_size());
    Some(buf)
}

#[derive(Default)]
struct ClassStat {
    files: usize,
    crops: usize,
    exact: usize,
    /// Largest level difference seen (None: a mismatch whose size is unknown).
    max_diff: Option<u8>,
    unknown: bool,
}

fn run(kind: &str, orientation: ExifOrientation) -> (BTreeMap<String, ClassStat>, Vec<String>) {
    let m = manifest();
    let specs: Vec<(u32, Interpolation, String)> = m["specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["size"].as_u64().unwrap() as u32,
                s["interpolation"].as_str().unwrap().parse().unwrap(),
                s["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let opts = ImageLimits { exif_orientation: orientation, ..ImageLimits::default() };
    let mut stats: BTreeMap<String, ClassStat> = BTreeMap::new();
    let mut failures = Vec::new();
    for f in m["files"].as_array().unwrap() {
        let Some(want) = f.get(kind) else { continue };
        let name = f["name"].as_str().unwrap();
        let class = f["class"].as_str().unwrap().to_string();
        let bytes = std::fs::read(dir().join("src").join(name)).unwrap();
        let st = stats.entry(class).or_default();
        st.files += 1;
        match probe(&bytes, &opts) {
            Ok(info) => {
                let (fmt, mode) = (f["format"].as_str().unwrap(), f["mode"].as_str().unwrap());
                let size = (f["size"][0].as_u64().unwrap() as u32, f["size"][1].as_u64().unwrap() as u32);
                if (info.format, info.mode, (info.width, info.height)) != (fmt, mode, size) {
                    failures.push(format!("{name}: probe says {info:?}, Pillow says {fmt} {mode} {size:?}"));
                }
            }
            Err(e) => failures.push(format!("{name}: probe: {e}")),
        }
        for (size, interp, key) in &specs {
            st.crops += 1;
            let want = want[key].as_str().unwrap();
            match load_crop(&bytes, *size, *interp, &opts) {
                Ok(got) => {
                    if hex(&Sha256::digest(&got)) == want {
                        st.exact += 1;
                        st.max_diff = st.max_diff.max(Some(0));
                        continue;
                    }
                    match reference_png(kind, key, name) {
                        Some(r) if r.len() == got.len() => {
                            let (n, d) =
                                got.iter().zip(&r).fold((0usize, 0u8), |(n, d), (a, b)| (n + (a != b) as usize, d.max(a.abs_diff(*b))));
                            st.max_diff = st.max_diff.max(Some(d));
                            failures.push(format!("{name} {key}: {n} values differ, by up to {d} levels"));
                        }
                        _ => {
                            st.unknown = true;
                            failures.push(format!("{name} {key}: not bit-exact (set MOBILECLIP_STRESS_CROPS for the size)"));
                        }
                    }
                }
                Err(e) => {
                    st.unknown = true;
                    failures.push(format!("{name} {key}: {e}"));
                }
            }
        }
    }
    (stats, failures)
}

fn report(title: &str, stats: &BTreeMap<String, ClassStat>) {
    println!("{title}");
    println!("{:<10} {:>5} {:>6} {:>9} {:>9}", "class", "files", "crops", "% exact", "max diff");
    let (mut f, mut c, mut e) = (0, 0, 0);
    for (k, s) in stats {
        let md = if s.unknown { "?".to_string() } else { s.max_diff.unwrap_or(0).to_string() };
        println!("{k:<10} {:>5} {:>6} {:>9.2} {:>9}", s.files, s.crops, 100.0 * s.exact as f64 / s.crops as f64, md);
        (f, c, e) = (f + s.files, c + s.crops, e + s.exact);
    }
    println!("{:<10} {f:>5} {c:>6} {:>9.2}", "all", 100.0 * e as f64 / c as f64);
}

#[test]
fn stress_corpus_is_bit_exact() {
    let (stats, failures) = run("crops", ExifOrientation::Ignore);
    report("exif_orientation = ignore (open_clip): crops vs preprocess(Image.open(f))", &stats);
    assert!(stats.values().map(|s| s.files).sum::<usize>() >= 200, "the corpus has fewer than 200 files");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn exif_apply_is_exif_transpose() {
    let (stats, failures) = run("exif_apply", ExifOrientation::Apply);
    report("exif_orientation = apply: crops vs preprocess(ImageOps.exif_transpose(Image.open(f)))", &stats);
    let m = manifest();
    // Every orientation 1..8 is covered in each of JPEG, PNG, WebP and TIFF.
    for ext in ["jpg", "png", "webp", "tif"] {
        for o in 1..=8 {
            let name = format!("exif{o}.{ext}");
            let f = m["files"].as_array().unwrap().iter().find(|f| f["name"] == name.as_str());
            assert_eq!(f.and_then(|f| f["orientation"].as_u64()), Some(o), "{name}");
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Files Pillow opens that are refused on purpose, with the error class the manifest names.
#[test]
fn refused_files_fail_clearly() {
    let m = manifest();
    let refused = m["refused"].as_array().unwrap();
    assert!(!refused.is_empty());
    for f in refused {
        let name = f["name"].as_str().unwrap();
        let bytes = std::fs::read(dir().join("src").join(name)).unwrap();
        let e = load_crop(&bytes, 224, Interpolation::Bicubic, &ImageLimits::default()).expect_err(name);
        println!("{name}: {e}");
        match (f["error"].as_str().unwrap(), &e) {
            ("Unsupported", EngineError::Unsupported(m)) => assert!(m.contains("lossless JPEG"), "{m}"),
            (want, got) => panic!("{name}: expected {want}, got {got:?}"),
        }
    }
}
