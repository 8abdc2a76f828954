//! No NaN or Inf leaves the engine (issue 9.4). A checkpoint with a non-finite weight, or a
//! negative / NaN BatchNorm running variance, fails to load with an error naming the tensor;
//! a finite checkpoint whose activations overflow on some input fails that call with
//! `EngineError::NonFinite` naming the input ("text 2 of 3", "image 2 of 2"), never returning
//! the vector. The models are the random-weight MobileCLIP2-S0 ("mcrand v1") with one tensor
//! edited.

use std::path::{Path, PathBuf};

use mobileclip_engine::preprocess::ImageLimits;
use mobileclip_engine::random_model::write_model_dir;
use mobileclip_engine::{Engine, EngineError, LoadOptions};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// A change made to one tensor's values.
type Edit = Box<dyn Fn(&mut [f32])>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The unedited S0 model in a directory of its own for `test` (the tests run in parallel),
/// removed when the returned guard drops.
fn base_model(test: &str) -> (PathBuf, RemoveOnDrop) {
    let dir = std::env::temp_dir().join(format!("mobileclip-nonfinite-{}-{test}-S0", std::process::id()));
    write_model_dir(&root().join("tests/fixtures"), "S0", &dir, false).unwrap();
    (dir.clone(), RemoveOnDrop(dir))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A copy of the model at `src` in `name` with tensor `key` (F32) changed by `edit`.
fn edited(src: &Path, name: &str, key: &str, edit: impl Fn(&mut [f32])) -> PathBuf {
    let out = std::env::temp_dir().join(format!("mobileclip-nonfinite-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    for f in ["open_clip_config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("open_clip_model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut found = false;
    for (k, t) in st.tensors() {
        let mut data = t.data().to_vec();
        if k == key {
            assert_eq!(t.dtype(), Dtype::F32);
            let mut v: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            edit(&mut v);
            data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            found = true;
        }
        owned.push((k, t.dtype(), t.shape().to_vec(), data));
    }
    assert!(found, "{key} not in the checkpoint");
    let views: Vec<(String, TensorView<'_>)> =
        owned.iter().map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &out.join("open_clip_model.safetensors")).unwrap();
    out
}

fn load_err(dir: &Path) -> String {
    match Engine::load(dir, LoadOptions::default()) {
        Ok(_) => panic!("{}: loaded", dir.display()),
        Err(EngineError::Model(m)) => m,
        Err(e) => panic!("{}: expected a Model error, got {e:?}", dir.display()),
    }
}

#[test]
fn non_finite_weights_and_bad_variances_fail_at_load_naming_the_tensor() {
    let (base, _cleanup) = base_model("load");
    let cases: [(&str, &str, Edit, &str); 5] = [
        ("inf-text", "text.transformer.resblocks.3.mlp.c_fc.weight", Box::new(|v| v[1234] = f32::INFINITY), "inf"),
        ("nan-image", "visual.trunk.stages.1.blocks.0.mlp.fc1.weight", Box::new(|v| v[7] = f32::NAN), "NaN"),
        ("ninf-proj", "text.text_projection", Box::new(|v| v[0] = f32::NEG_INFINITY), "-inf"),
        ("neg-var", "visual.trunk.stages.0.blocks.0.mlp.conv.bn.running_var", Box::new(|v| v[3] = -0.25), "negative"),
        ("nan-var", "visual.trunk.stem.0.conv_kxk.0.bn.running_var", Box::new(|v| v[1] = f32::NAN), "NaN"),
    ];
    for (name, key, edit, word) in cases {
        let dir = edited(&base, name, key, edit);
        let m = load_err(&dir);
        println!("{name}: {m}");
        assert!(m.contains(&format!("tensor \"{key}\"")) && m.contains(word), "{name}: {m}");
        std::fs::remove_dir_all(&dir).ok();
    }
    // The unedited model loads (the check does not reject good weights).
    Engine::load(&base, LoadOptions::default()).unwrap();
}

/// Finite weights, overflowing activations. Text: the text projection scaled by 1e36 (finite):
/// the features stay finite but their sum of squares overflows, so normalising would return
/// zeros (not a unit vector); scaled by 1e38 the features themselves overflow. Every text
/// fails; the error names the first by its position, NULLs counted.
/// Image: the image tower's last projection scaled by 1e30 (the norm overflows), or set to
/// 1e38 everywhere (the features overflow). (With random weights all images have features of
/// nearly the same size, so an overflow that hits one image and not another cannot be
/// crafted by scaling; the position in the error is what names the input.)
#[test]
fn overflow_is_an_error_naming_the_input_never_a_vector() {
    let (base, _cleanup) = base_model("overflow");
    for (scale, why) in [(1.0e36f32, "could not be normalised"), (1.0e38, "non-finite value")] {
        let dir = edited(&base, "overflow-text", "text.text_projection", |v| v.iter_mut().for_each(|x| *x *= scale));
        let e = Engine::load(&dir, LoadOptions::default()).unwrap();
        for (items, want) in [
            (vec![Some("a cat"), Some("a zebra")], "text 1 of 2"),
            (vec![Some("zebra")], "the text"),
            (vec![None, None, Some("a photo of a cat")], "text 3 of 3"),
        ] {
            match e.embed_text_items_with(&items, 2, &mut || {}) {
                Err(EngineError::NonFinite(m)) => {
                    println!("scale {scale:e}, {items:?}: {m}");
                    assert!(m.starts_with(&format!("{want}: the embedding")) && m.contains(why), "{m}");
                }
                other => panic!("{items:?}: expected NonFinite, got {other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    let img = std::fs::read(root().join("tests/fixtures/images/src/png_rgb.png")).unwrap();
    let edits: [(&str, Edit); 2] = [
        ("could not be normalised", Box::new(|v| v.iter_mut().for_each(|x| *x *= 1.0e30))),
        ("non-finite value", Box::new(|v| v.iter_mut().for_each(|x| *x = 1.0e38))),
    ];
    for (why, edit) in edits {
        let dir = edited(&base, "overflow-image", "visual.trunk.head.fc.weight", edit);
        let e = Engine::load(&dir, LoadOptions::default()).unwrap();
        match e.embed_images_with(&[None, Some(&img), Some(&img)], 4, &ImageLimits::default(), &mut || {}) {
            Err(EngineError::NonFinite(m)) => {
                println!("NULL, png_rgb.png, png_rgb.png: {m}");
                assert!(m.starts_with("image 2 of 3: the embedding") && m.contains(why), "{m}");
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        // Text is unaffected by an image-tower edit: the guard is per output.
        assert!(e.embed_texts(&["a cat"]).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}
