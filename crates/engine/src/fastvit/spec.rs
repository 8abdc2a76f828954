//! The per-variant table of timm's `fastvit_mci0/2/3/4` (timm 1.0.31 `models/fastvit.py`, the
//! `model_args` of those functions plus the `FastVit` defaults they rely on).

/// Normalisation in front of the attention token mixer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnNorm {
    /// `nn.BatchNorm2d` (MCi0/2), eps 1e-5.
    BatchNorm,
    /// timm `LayerNorm2d` eps 1e-5 (MCi3/4): LayerNorm over channels per pixel.
    LayerNorm,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FastVitSpec {
    pub timm_name: &'static str,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Channels per stage.
    pub widths: Vec<usize>,
    /// Token mixer per stage: true = attention, false = RepMixer.
    pub attention: Vec<bool>,
    /// Stages that start with a RepConditionalPosEnc (7x7).
    pub pos_emb: Vec<bool>,
    /// Stages whose downsample's large-kernel conv has squeeze-excite.
    pub se_downsample: Vec<bool>,
    /// ConvMlp hidden = width * mlp_ratio (the same in every stage of the MCi models).
    pub mlp_ratio: usize,
    pub attn_norm: AttnNorm,
    /// 1x1 scale branches in stem.0 and stem.1 (`stem_use_scale_branch`).
    pub stem_scale_branch: bool,
}

/// Fixed across the MCi family (timm defaults): RepMixer kernel 3, downsample kernel 7 with a
/// 3x3 small branch, stride 2, CPE kernel 7, attention head dim 32, final_conv width ratio 2.
pub const REPMIXER_K: usize = 3;
pub const DOWN_K: usize = 7;
pub const DOWN_SMALL_K: usize = 3;
pub const CPE_K: usize = 7;
pub const MLP_CONV_K: usize = 7;
pub const HEAD_DIM: usize = 32;
pub const CLS_RATIO: usize = 2;
/// Every BatchNorm and the LayerNorm2d of MCi3/4.
pub const NORM_EPS: f32 = 1e-5;

impl FastVitSpec {
    /// `"fastvit_mci0"`, `"fastvit_mci2"`, `"fastvit_mci3"`, `"fastvit_mci4"` (the
    /// `timm_model_name` of open_clip_config.json). MCi1 is not a MobileCLIP2 tower.
    pub fn from_timm_name(name: &str) -> Option<FastVitSpec> {
        let small = |timm_name, depths: [usize; 4], widths: [usize; 4]| FastVitSpec {
            timm_name,
            depths: depths.to_vec(),
            widths: widths.to_vec(),
            attention: vec![false, false, false, true],
            pos_emb: vec![false, false, false, true],
            se_downsample: vec![false, false, true, true],
            mlp_ratio: 3,
            attn_norm: AttnNorm::BatchNorm,
            stem_scale_branch: true,
        };
        let large = |timm_name, depths: [usize; 5], widths: [usize; 5]| FastVitSpec {
            timm_name,
            depths: depths.to_vec(),
            widths: widths.to_vec(),
            attention: vec![false, false, false, true, true],
            pos_emb: vec![false, false, false, true, true],
            se_downsample: vec![false; 5],
            mlp_ratio: 4,
            attn_norm: AttnNorm::LayerNorm,
            stem_scale_branch: false,
        };
        match name {
            "fastvit_mci0" => Some(small("fastvit_mci0", [2, 6, 10, 2], [64, 128, 256, 512])),
            "fastvit_mci2" => Some(small("fastvit_mci2", [4, 12, 24, 4], [80, 160, 320, 640])),
            "fastvit_mci3" => Some(large("fastvit_mci3", [2, 12, 24, 4, 2], [96, 192, 384, 768, 1536])),
            "fastvit_mci4" => Some(large("fastvit_mci4", [2, 12, 24, 4, 4], [128, 256, 512, 1024, 2048])),
            _ => None,
        }
    }

    pub fn stages(&self) -> usize {
        self.depths.len()
    }

    /// Channels of final_conv's output = the head's input.
    pub fn final_width(&self) -> usize {
        self.widths[self.stages() - 1] * CLS_RATIO
    }

    /// SE reduction width of a stage's downsample (timm `SqueezeExcite(out, rd_ratio=0.25)`,
    /// default divisor 8).
    pub fn down_se_width(&self, stage: usize) -> Option<usize> {
        self.se_downsample[stage].then(|| make_divisible(self.widths[stage] as f64 * 0.25, 8))
    }

    /// SE reduction width of final_conv (MobileOneBlock: `SqueezeExcite(out, rd_divisor=1)`,
    /// default ratio 1/16).
    pub fn final_se_width(&self) -> usize {
        make_divisible(self.final_width() as f64 / 16.0, 1)
    }
}

/// timm `layers/helpers.py` `make_divisible(v, divisor, min_value=None, round_limit=0.)`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let new_v = divisor.max(((v + d / 2.0) / d).floor() as usize * divisor);
    // round_limit 0: never bumped up
    new_v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_timm() {
        let s0 = FastVitSpec::from_timm_name("fastvit_mci0").unwrap();
        assert_eq!(s0.final_width(), 1024);
        assert_eq!(s0.final_se_width(), 64);
        assert_eq!(s0.down_se_width(2), Some(64));
        assert_eq!(s0.down_se_width(3), Some(128));
        assert_eq!(s0.down_se_width(1), None);
        let s4 = FastVitSpec::from_timm_name("fastvit_mci4").unwrap();
        assert_eq!(s4.final_width(), 4096);
        assert_eq!(s4.final_se_width(), 256);
        assert!(FastVitSpec::from_timm_name("fastvit_mci1").is_none());
        assert!(FastVitSpec::from_timm_name("vit_base_mci_224").is_none());
    }
}
