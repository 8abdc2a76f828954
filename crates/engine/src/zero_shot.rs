//! Zero-shot classification as open_clip does it: one caption per label from a template,
//! `softmax(exp(logit_scale) * image · caption)` over the labels, with L2-normalised features.
//! (open_clip's README writes the scale as 100, which is what a trained model's clamped
//! `logit_scale.exp()` is; the model's own value is used here.) A `logit_bias` would add the
//! same constant to every logit, which softmax ignores.

use crate::error::{EngineError, Result};

/// open_clip's single-template default (its `SIMPLE_IMAGENET_TEMPLATES[0]` form).
pub const DEFAULT_TEMPLATE: &str = "a photo of a {}.";

/// The caption for `label`: every `{}` in `template` replaced by the label, as Python's
/// `template.format(label)` does for the templates open_clip ships. A template without `{}`
/// would give every label the same caption, so it is refused.
pub fn caption(template: &str, label: &str) -> Result<String> {
    if !template.contains("{}") {
        return Err(EngineError::InvalidInput(format!(
            "template {template:?} has no {{}} placeholder for the label (e.g. '{DEFAULT_TEMPLATE}')"
        )));
    }
    Ok(template.replace("{}", label))
}

/// The probability of each label for one image, in label order: `image` is any non-zero
/// embedding (normalised here), `labels` the labels' caption embeddings (normalised here too),
/// `logit_scale` the model's parameter (its exp is the softmax temperature's inverse).
/// Computed in f64; the result sums to 1.
pub fn probabilities(image: &[f32], labels: &[&[f32]], logit_scale: f32) -> Result<Vec<f32>> {
    if labels.is_empty() {
        return Err(EngineError::InvalidInput("no labels to classify against".into()));
    }
    let image = unit(image, "the image embedding")?;
    let scale = f64::from(logit_scale).exp();
    if !scale.is_finite() {
        // Trained models clamp it at ln(100); this one cannot give finite logits.
        return Err(EngineError::Model(format!("logit_scale {logit_scale}: its exp() overflows, the model is damaged")));
    }
    let mut logits = Vec::with_capacity(labels.len());
    for (i, l) in labels.iter().enumerate() {
        if l.len() != image.len() {
            return Err(EngineError::InvalidInput(format!(
                "label {} has {} dimensions, the image embedding {}",
                i + 1,
                l.len(),
                image.len()
            )));
        }
        let l = unit(l, "a label embedding")?;
        logits.push(scale * image.iter().zip(&l).map(|(a, b)| a * b).sum::<f64>());
    }
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|z| (z - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    Ok(exps.iter().map(|e| (e / sum) as f32).collect())
}

/// `v / |v|` in f64; a zero or non-finite vector cannot be classified.
fn unit(v: &[f32], what: &str) -> Result<Vec<f64>> {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(EngineError::InvalidInput(format!("{what} has length {norm}: it must be finite and non-zero")));
    }
    Ok(v.iter().map(|&x| f64::from(x) / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_fills_every_placeholder_and_refuses_none() {
        assert_eq!(caption(DEFAULT_TEMPLATE, "cat").unwrap(), "a photo of a cat.");
        assert_eq!(caption("{} or {}", "x").unwrap(), "x or x");
        assert!(caption("a photo", "cat").unwrap_err().to_string().contains("placeholder"));
    }

    #[test]
    fn probabilities_are_a_softmax_of_scaled_cosines() {
        // Two labels at cosines 1 and 0 with exp(scale) = 10: softmax([10, 0]).
        let p = probabilities(&[2.0, 0.0], &[&[1.0, 0.0], &[0.0, 3.0]], 10f32.ln()).unwrap();
        let e = (10f64).exp();
        assert!((f64::from(p[0]) - e / (e + 1.0)).abs() < 1e-7, "{p:?}");
        assert!((p.iter().map(|&x| f64::from(x)).sum::<f64>() - 1.0).abs() < 1e-6);
        // A huge scale does not overflow (max subtracted); one whose exp overflows is refused.
        let p = probabilities(&[1.0, 0.0], &[&[1.0, 0.0], &[0.0, 1.0]], 700.0).unwrap();
        assert_eq!(p, vec![1.0, 0.0]);
        assert!(probabilities(&[1.0, 0.0], &[&[1.0, 0.0]], 1000.0).unwrap_err().to_string().contains("overflows"));
    }

    #[test]
    fn probabilities_refuse_what_has_no_direction() {
        assert!(probabilities(&[0.0, 0.0], &[&[1.0, 0.0]], 1.0).is_err());
        assert!(probabilities(&[1.0, 0.0], &[&[f32::NAN, 0.0]], 1.0).is_err());
        assert!(probabilities(&[1.0, 0.0], &[&[1.0, 0.0, 0.0]], 1.0).is_err());
        assert!(probabilities(&[1.0, 0.0], &[], 1.0).is_err());
    }
}
