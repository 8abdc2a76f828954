//! `open_clip_config.json` as the Hugging Face repos `timm/MobileCLIP2-<V>-OpenCLIP` ship it:
//! `{"model_cfg": {...}, "preprocess_cfg": {...}}`. Only what inference needs is read; values
//! this engine cannot honour are rejected with an error that names the field, instead of
//! being ignored.

use std::path::Path;

use serde::Deserialize;

use crate::error::{EngineError, Result};

#[derive(Clone, Debug, Deserialize)]
pub struct ModelConfig {
    pub model_cfg: ModelCfg,
    #[serde(default)]
    pub preprocess_cfg: Option<PreprocessCfg>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ModelCfg {
    pub embed_dim: usize,
    pub text_cfg: TextCfg,
    pub vision_cfg: VisionCfg,
    #[serde(default)]
    pub custom_text: bool,
}

/// open_clip `CLIPTextCfg`, the fields MobileCLIP2 uses (defaults as in open_clip).
#[derive(Clone, Debug, Deserialize)]
pub struct TextCfg {
    #[serde(default = "default_context_length")]
    pub context_length: usize,
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// open_clip default false: a causal mask unless the config says otherwise.
    #[serde(default)]
    pub no_causal_mask: bool,
    #[serde(default)]
    pub ls_init_value: Option<f64>,
    #[serde(default)]
    pub hf_model_name: Option<String>,
    #[serde(default)]
    pub hf_tokenizer_name: Option<String>,
    #[serde(default)]
    pub pool_type: Option<String>,
    #[serde(default)]
    pub embed_cls: bool,
    #[serde(default)]
    pub pad_id: usize,
    #[serde(default)]
    pub proj_bias: bool,
    #[serde(default)]
    pub attn_mask: Option<bool>,
    #[serde(default)]
    pub use_pad_mask: bool,
}

fn default_context_length() -> usize {
    77
}
fn default_vocab_size() -> usize {
    49408
}
fn default_mlp_ratio() -> f64 {
    4.0
}

/// open_clip `CLIPVisionCfg`, the timm-tower fields MobileCLIP2 uses (defaults as open_clip's).
#[derive(Clone, Debug, Deserialize)]
pub struct VisionCfg {
    #[serde(default)]
    pub timm_model_name: Option<String>,
    #[serde(default)]
    pub timm_model_pretrained: bool,
    #[serde(default = "default_timm_pool")]
    pub timm_pool: String,
    /// open_clip's default is "linear" (an extra projection head); MobileCLIP2 configs say
    /// null: the timm classifier head, resized to embed_dim, is the projection.
    #[serde(default = "default_timm_proj")]
    pub timm_proj: Option<String>,
    /// An int, or [h, w] (must be square here).
    #[serde(default = "default_image_size")]
    pub image_size: serde_json::Value,
}

fn default_timm_pool() -> String {
    "avg".into()
}
fn default_timm_proj() -> Option<String> {
    Some("linear".into())
}
fn default_image_size() -> serde_json::Value {
    224.into()
}

/// OpenAI CLIP's normalisation, open_clip's default when the config has none.
// The digits are open_clip's (OPENAI_DATASET_MEAN/STD) as written, so they can be compared
// with the source; they round to the same f32 values PyTorch uses.
#[allow(clippy::excessive_precision)]
pub const OPENAI_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
#[allow(clippy::excessive_precision)]
pub const OPENAI_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The image preprocessing open_clip would build from this config (eval branch).
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePreprocess {
    pub size: u32,
    /// "bilinear" or "bicubic".
    pub interpolation: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Clone, Debug, Deserialize)]
pub struct PreprocessCfg {
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    #[serde(default)]
    pub std: Option<Vec<f32>>,
    #[serde(default)]
    pub interpolation: Option<String>,
    #[serde(default)]
    pub resize_mode: Option<String>,
    #[serde(default)]
    pub size: Option<serde_json::Value>,
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::Model(format!("{}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| match e {
            EngineError::Model(m) => EngineError::Model(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: ModelConfig = serde_json::from_str(text).map_err(|e| EngineError::Model(format!("not a valid open_clip config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let t = &self.model_cfg.text_cfg;
        let bad = |field: &str, why: String| Err(EngineError::Model(format!("model_cfg.text_cfg.{field}: {why}")));
        if let Some(name) = &t.hf_model_name {
            return bad("hf_model_name", format!("Hugging Face text towers ({name}) are not supported"));
        }
        if let Some(name) = &t.hf_tokenizer_name {
            return bad("hf_tokenizer_name", format!("{name}: only open_clip's own tokenizer is supported"));
        }
        if t.width == 0 || t.heads == 0 || !t.width.is_multiple_of(t.heads) {
            return bad("heads", format!("width {} is not a multiple of heads {}", t.width, t.heads));
        }
        if t.layers == 0 || t.layers > 256 {
            return bad("layers", format!("{} is out of range", t.layers));
        }
        if t.context_length < 2 || t.context_length > 1024 {
            return bad("context_length", format!("{} is out of range", t.context_length));
        }
        if t.vocab_size < 3 || t.vocab_size > 1 << 20 {
            return bad("vocab_size", format!("{} is out of range", t.vocab_size));
        }
        let hidden = t.width as f64 * t.mlp_ratio;
        if hidden.fract() != 0.0 || hidden < 1.0 {
            return bad("mlp_ratio", format!("{} gives a fractional hidden width", t.mlp_ratio));
        }
        match t.pool_type.as_deref() {
            None | Some("argmax") => {}
            Some(other) => return bad("pool_type", format!("\"{other}\" is not supported (argmax is)")),
        }
        if t.embed_cls {
            return bad("embed_cls", "true is not supported".into());
        }
        if t.use_pad_mask {
            return bad("use_pad_mask", "true is not supported".into());
        }
        if t.proj_bias {
            return bad("proj_bias", "true is not supported".into());
        }
        if t.ls_init_value.is_some() {
            return bad("ls_init_value", "layer scale in the text tower is not supported".into());
        }
        if !self.model_cfg.custom_text {
            return Err(EngineError::Model(
                "model_cfg.custom_text: false (a CLIP-style shared tower) is not supported; MobileCLIP2 configs have true".into(),
            ));
        }
        if self.model_cfg.embed_dim == 0 {
            return Err(EngineError::Model("model_cfg.embed_dim: 0".into()));
        }
        let v = self.vision();
        let vbad = |field: &str, why: String| Err(EngineError::Model(format!("model_cfg.vision_cfg.{field}: {why}")));
        if v.timm_model_name.is_none() {
            return vbad("timm_model_name", "missing: only timm image towers are supported".into());
        }
        if let Some(p) = &v.timm_proj {
            return vbad("timm_proj", format!("\"{p}\" is not supported (null: the timm head is the projection)"));
        }
        self.image_preprocess()?;
        Ok(())
    }

    pub fn text(&self) -> &TextCfg {
        &self.model_cfg.text_cfg
    }

    pub fn vision(&self) -> &VisionCfg {
        &self.model_cfg.vision_cfg
    }

    /// The MobileCLIP2 variant (S0, S2, B, S3, S4, L-14) this config describes, told by its
    /// image tower (the HF directory carries no name); None for another timm tower.
    pub fn variant(&self) -> Option<&'static str> {
        Some(match self.vision().timm_model_name.as_deref()? {
            "fastvit_mci0" => "S0",
            "fastvit_mci2" => "S2",
            "vit_base_mci_224" => "B",
            "fastvit_mci3" => "S3",
            "fastvit_mci4" => "S4",
            "vit_large_patch14_clip_224" => "L-14",
            _ => return None,
        })
    }

    /// The eval-time image preprocessing: `preprocess_cfg` over open_clip's defaults (OpenAI
    /// mean/std, bicubic, shortest-side resize), size from `preprocess_cfg.size` if present,
    /// else `vision_cfg.image_size` (as open_clip's `merge_preprocess_dict`).
    pub fn image_preprocess(&self) -> Result<ImagePreprocess> {
        let pre = self.preprocess_cfg.clone().unwrap_or(PreprocessCfg {
            mean: None,
            std: None,
            interpolation: None,
            resize_mode: None,
            size: None,
        });
        let bad = |field: &str, why: String| EngineError::Model(format!("{field}: {why}"));
        let size_of = |field: &str, v: &serde_json::Value| -> Result<u32> {
            let n = match v {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::Array(a) if a.len() == 2 && a[0] == a[1] => a[0].as_u64(),
                _ => None,
            };
            match n {
                Some(n) if (16..=2048).contains(&n) => Ok(n as u32),
                _ => Err(bad(field, format!("{v} is not a supported (square, 16..2048) image size"))),
            }
        };
        let size = match &pre.size {
            Some(v) => size_of("preprocess_cfg.size", v)?,
            None => size_of("model_cfg.vision_cfg.image_size", &self.vision().image_size)?,
        };
        let interpolation = pre.interpolation.clone().unwrap_or_else(|| "bicubic".into());
        if interpolation != "bilinear" && interpolation != "bicubic" {
            return Err(bad("preprocess_cfg.interpolation", format!("\"{interpolation}\" is not supported (bilinear, bicubic are)")));
        }
        match pre.resize_mode.as_deref() {
            None | Some("shortest") => {}
            Some(other) => return Err(bad("preprocess_cfg.resize_mode", format!("\"{other}\" is not supported (shortest is)"))),
        }
        let three = |field: &str, v: &Option<Vec<f32>>, default: [f32; 3]| -> Result<[f32; 3]> {
            match v {
                None => Ok(default),
                Some(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
                Some(v) if v.len() == 1 => Ok([v[0]; 3]),
                Some(v) => Err(bad(field, format!("{} values, expected 3", v.len()))),
            }
        };
        let mean = three("preprocess_cfg.mean", &pre.mean, OPENAI_MEAN)?;
        let std = three("preprocess_cfg.std", &pre.std, OPENAI_STD)?;
        if std.iter().any(|s| !s.is_finite() || *s <= 0.0) || mean.iter().any(|m| !m.is_finite()) {
            return Err(bad("preprocess_cfg.std", format!("mean {mean:?} / std {std:?} are not usable")));
        }
        Ok(ImagePreprocess { size, interpolation, mean, std })
    }
}

impl TextCfg {
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
    pub fn mlp_width(&self) -> usize {
        (self.width as f64 * self.mlp_ratio) as usize
    }
    /// open_clip builds the causal mask unless `no_causal_mask` is set.
    pub fn causal(&self) -> bool {
        !self.no_causal_mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(v: &str) -> String {
        let p = format!("{}/../../tests/fixtures/configs/open_clip_config_{v}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn reads_all_six_reference_configs() {
        for (v, width, embed, causal) in [
            ("S0", 512, 512, false),
            ("S2", 512, 512, false),
            ("B", 512, 512, true),
            ("S3", 768, 768, false),
            ("S4", 768, 768, false),
            ("L-14", 768, 768, false),
        ] {
            let c = ModelConfig::from_json(&reference(v)).unwrap();
            assert_eq!(c.text().width, width, "{v}");
            assert_eq!(c.model_cfg.embed_dim, embed, "{v}");
            assert_eq!(c.text().causal(), causal, "{v}");
            assert_eq!(c.variant(), Some(v));
            assert_eq!(c.text().head_dim(), 64, "{v}");
            assert_eq!(c.text().mlp_width(), 4 * width, "{v}");
            assert_eq!(c.text().context_length, 77);
            let p = c.image_preprocess().unwrap();
            let (size, interp) = match v {
                "B" => (224, "bilinear"),
                "L-14" => (224, "bicubic"),
                _ => (256, "bilinear"),
            };
            assert_eq!((p.size, p.interpolation.as_str()), (size, interp), "{v}");
            let openai = matches!(v, "S3" | "S4" | "L-14");
            assert_eq!(p.mean, if openai { OPENAI_MEAN } else { [0.0; 3] }, "{v}");
            assert_eq!(p.std, if openai { OPENAI_STD } else { [1.0; 3] }, "{v}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_run_naming_the_field() {
        let mut j: serde_json::Value = serde_json::from_str(&reference("S0")).unwrap();
        j["model_cfg"]["text_cfg"]["heads"] = 7.into();
        let e = ModelConfig::from_json(&j.to_string()).unwrap_err().to_string();
        assert!(e.contains("text_cfg.heads"), "{e}");
        let mut j: serde_json::Value = serde_json::from_str(&reference("S0")).unwrap();
        j["model_cfg"]["text_cfg"]["hf_model_name"] = "bert-base".into();
        let e = ModelConfig::from_json(&j.to_string()).unwrap_err().to_string();
        assert!(e.contains("hf_model_name"), "{e}");
        let e = ModelConfig::from_json("{\"model_cfg\": 3}").unwrap_err().to_string();
        assert!(e.contains("not a valid open_clip config"), "{e}");
    }
}
