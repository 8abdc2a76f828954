//! The weights cache (issue 11): towers mapped from a cache file give exactly the embeddings
//! of towers made privately from the model file; a cache file that is truncated, extended or
//! edited is detected and rebuilt, never used; an unusable cache directory (not creatable,
//! full) falls back to private memory with the reason; processes building the same cache at
//! once all get correct results and leave one complete file. Models: random-weight S0
//! (FastViT + text) and B (ViT), "mcrand v1".

use std::path::{Path, PathBuf};
use std::process::Command;

use mobileclip_engine::preprocess::ImageLimits;
use mobileclip_engine::random_model::write_model_dir;
use mobileclip_engine::CacheState;
use mobileclip_engine::{Engine, LoadOptions};

const TEXTS: [&str; 3] = ["a photo of a dog", "a red bicycle leaning on a wall", ""];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mobileclip-wcache-{}-{name}", std::process::id()));
        std::fs::remove_dir_all(&p).ok();
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn model(variant: &str, tmp: &TempDir) -> PathBuf {
    let dir = tmp.0.join(variant);
    write_model_dir(&root().join("tests/fixtures"), variant, &dir, false).unwrap();
    dir
}

fn engine(dir: &Path, cache: Option<&Path>) -> Engine {
    Engine::load(dir, LoadOptions { cache_dir: cache.map(Path::to_path_buf), ..LoadOptions::default() }).unwrap()
}

/// Text and image embeddings of fixed inputs, as bits (equality must be exact).
fn outputs(e: &Engine) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = e.embed_texts(&TEXTS).unwrap().into_iter().map(|v| v.iter().map(|x| x.to_bits()).collect()).collect();
    let img = std::fs::read(root().join("tests/fixtures/images/src/jpeg_420.jpg")).unwrap();
    let px = e.image_pixels(&img, &ImageLimits::default()).unwrap();
    out.extend(e.embed_pixels(&px, 1, true).unwrap().into_iter().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()));
    out
}

fn states(e: &Engine) -> Vec<(String, String)> {
    e.towers().iter().map(|t| (t.name.to_string(), t.cache.as_ref().map_or("-".into(), |c| c.label().to_string()))).collect()
}

fn all(e: &Engine, label: &str) -> bool {
    e.towers().iter().all(|t| t.cache.as_ref().map(|c| c.label()) == Some(label))
}

fn cache_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Built, then hit: both bit-equal to the private load, mapped without a copy.
#[test]
fn cached_towers_equal_private_ones() {
    mobileclip_engine::runtime::init(Default::default()).unwrap();
    let tmp = TempDir::new("equal");
    for v in ["S0", "B"] {
        let dir = model(v, &tmp);
        let cache = tmp.0.join(format!("cache-{v}"));
        let want = outputs(&engine(&dir, None));
        let built = engine(&dir, Some(&cache));
        assert!(all(&built, "built"), "{v}: {:?}", states(&built));
        assert_eq!(outputs(&built), want, "{v}: built cache differs from the private load");
        drop(built);
        let hit = engine(&dir, Some(&cache));
        assert!(all(&hit, "hit"), "{v}: {:?}", states(&hit));
        assert!(hit.towers().iter().all(|t| t.copied == 0), "{v}: arrays were copied, not mapped");
        assert_eq!(outputs(&hit), want, "{v}: mapped cache differs from the private load");
        assert_eq!(cache_files(&cache, "text-").len(), 1);
        assert_eq!(cache_files(&cache, "image-").len(), 1);
        assert!(cache_files(&cache, ".").is_empty(), "temporary files left behind");
        println!("{v}: private = built = hit, bit for bit; {:?}", states(&hit));
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// A named way to damage a file's bytes.
type Damage<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// Truncated, extended, one data byte flipped, metadata edited: each is detected, rebuilt,
/// and the embeddings stay exact.
#[test]
fn damaged_cache_files_are_rebuilt() {
    mobileclip_engine::runtime::init(Default::default()).unwrap();
    let tmp = TempDir::new("damaged");
    let dir = model("S0", &tmp);
    let cache = tmp.0.join("cache");
    let want = outputs(&engine(&dir, None));
    drop(engine(&dir, Some(&cache)));
    let damages: [Damage; 4] = [
        ("truncated", &|b: &mut Vec<u8>| b.truncate(b.len() - 100)),
        ("extended", &|b: &mut Vec<u8>| b.extend_from_slice(&[0; 64])),
        ("data byte flipped", &|b: &mut Vec<u8>| {
            let i = b.len() - 12_345;
            b[i] ^= 0x40
        }),
        ("metadata edited", &|b: &mut Vec<u8>| {
            // Still valid JSON: only the layout version's (last) digit changes.
            let pat = b"\"layout\":\"";
            let i = b.windows(pat.len()).position(|w| w == pat).expect("layout in header") + pat.len();
            let end = i + b[i..].iter().position(|&c| c == b'"').expect("layout value");
            b[end - 1] = if b[end - 1] == b'7' { b'8' } else { b'7' };
        }),
    ];
    for (what, damage) in damages {
        for tower in ["text-", "image-"] {
            let f = &cache_files(&cache, tower)[0];
            let mut bytes = std::fs::read(f).unwrap();
            damage(&mut bytes);
            std::fs::write(f, &bytes).unwrap();
        }
        let e = engine(&dir, Some(&cache));
        for t in e.towers() {
            match t.cache {
                Some(CacheState::Built { ref why }) => assert!(why.starts_with("rebuilt:"), "{what}: {why}"),
                ref other => panic!("{what}: {} tower {other:?}, expected a rebuild", t.name),
            }
        }
        assert_eq!(outputs(&e), want, "{what}: embeddings changed");
        let again = engine(&dir, Some(&cache));
        assert!(all(&again, "hit"), "{what}: the rebuilt file is not used: {:?}", states(&again));
        println!("{what}: detected, rebuilt, exact; {:?}", e.towers().iter().map(|t| format!("{:?}", t.cache)).collect::<Vec<_>>());
    }
}

/// A cache directory that cannot be created (a path under a regular file): private memory,
/// the reason reported, results exact.
#[test]
fn unusable_cache_dir_falls_back_to_private_memory() {
    mobileclip_engine::runtime::init(Default::default()).unwrap();
    let tmp = TempDir::new("unusable");
    let dir = model("S0", &tmp);
    let want = outputs(&engine(&dir, None));
    let blocker = tmp.0.join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let e = engine(&dir, Some(&blocker.join("cache")));
    for t in e.towers() {
        match t.cache {
            Some(CacheState::Unavailable { ref why }) => println!("{}: unavailable: {why}", t.name),
            ref other => panic!("{}: {other:?}", t.name),
        }
    }
    assert_eq!(outputs(&e), want);
}

/// A full disk, then a read-only one: a 1 MiB tmpfs as the cache directory (needs root and
/// mount; says so when it cannot run). The writes fail, no partial file stays, the results
/// are exact.
#[test]
fn full_or_read_only_disk_falls_back_to_private_memory() {
    mobileclip_engine::runtime::init(Default::default()).unwrap();
    let tmp = TempDir::new("full");
    let mnt = tmp.0.join("tiny");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&mnt).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        println!("SKIPPED full_or_read_only_disk_falls_back_to_private_memory: cannot mount a tmpfs here (not root?)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            Command::new("umount").arg(&self.0).status().ok();
        }
    }
    let _u = Unmount(mnt.clone());
    let dir = model("S0", &tmp);
    let want = outputs(&engine(&dir, None));
    let e = engine(&dir, Some(&mnt));
    for t in e.towers() {
        assert!(matches!(t.cache, Some(CacheState::Unavailable { .. })), "{}: {:?}", t.name, t.cache);
        println!("{}: {:?}", t.name, t.cache);
    }
    assert_eq!(outputs(&e), want);
    let left: Vec<_> =
        std::fs::read_dir(&mnt).unwrap().map(|e| e.unwrap().file_name()).filter(|n| !n.to_string_lossy().starts_with("source-")).collect();
    assert!(left.is_empty(), "left in the full cache directory: {left:?}");
    // The same directory remounted read-only (root ignores permission bits; a read-only
    // filesystem it cannot): the cache cannot be written either.
    let ro = Command::new("mount").args(["-o", "remount,ro"]).arg(&mnt).status().map(|s| s.success()).unwrap_or(false);
    assert!(ro, "remount read-only failed");
    let e = engine(&dir, Some(&mnt));
    for t in e.towers() {
        assert!(matches!(t.cache, Some(CacheState::Unavailable { .. })), "{}: {:?}", t.name, t.cache);
        println!("read-only: {}: {:?}", t.name, t.cache);
    }
    assert_eq!(outputs(&e), want);
}

/// Four processes start building the same cache at once; each must get exact embeddings,
/// and one complete file per tower remains (the last rename wins; readers keep theirs).
#[test]
fn concurrent_builders_agree() {
    if let Ok(job) = std::env::var("MOBILECLIP_WCACHE_CHILD") {
        // Child mode: load with the cache and write the outputs.
        let (dir, cache, out) = {
            let mut it = job.split('|');
            (PathBuf::from(it.next().unwrap()), PathBuf::from(it.next().unwrap()), PathBuf::from(it.next().unwrap()))
        };
        mobileclip_engine::runtime::init(Default::default()).unwrap();
        let e = engine(&dir, Some(&cache));
        let o = outputs(&e);
        let text: Vec<String> = o.iter().map(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")).collect();
        std::fs::write(out, format!("{:?}\n{}", states(&e), text.join("\n"))).unwrap();
        return;
    }
    mobileclip_engine::runtime::init(Default::default()).unwrap();
    let tmp = TempDir::new("concurrent");
    let dir = model("S0", &tmp);
    let cache = tmp.0.join("cache");
    let want = outputs(&engine(&dir, None));
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|i| {
            let out = tmp.0.join(format!("out{i}"));
            let child = Command::new(&exe)
                .args(["--exact", "concurrent_builders_agree", "--test-threads", "1"])
                .env("MOBILECLIP_WCACHE_CHILD", format!("{}|{}|{}", dir.display(), cache.display(), out.display()))
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let want_text: Vec<String> = want.iter().map(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")).collect();
    for (mut c, out) in children {
        assert!(c.wait().unwrap().success());
        let got = std::fs::read_to_string(&out).unwrap();
        let (st, rest) = got.split_once('\n').unwrap();
        assert_eq!(rest, want_text.join("\n"), "a concurrent builder got different embeddings ({st})");
        println!("child: {st}");
    }
    assert_eq!(cache_files(&cache, "text-").len(), 1);
    assert_eq!(cache_files(&cache, "image-").len(), 1);
    assert!(cache_files(&cache, ".").is_empty(), "temporary files left behind");
    assert!(all(&engine(&dir, Some(&cache)), "hit"));
}
