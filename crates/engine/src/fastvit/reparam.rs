//! Structural reparameterization on host arrays, as timm's `reparameterize_model` does it
//! (`MobileOneBlock._get_kernel_bias` / `_fuse_bn_tensor`, `ReparamLargeKernelConv.get_kernel_bias`,
//! `RepMixer.reparameterize`, `RepConditionalPosEnc.reparameterize`), plus the extra folds this
//! engine does (BatchNorm into a preceding or following linear map, layer scales into the
//! last conv of a branch).
//!
//! Kernels stay in PyTorch layout [out, in/groups, k, k] here; sums and products are done in
//! f64 and rounded once, so the result is at least as close to the training form as timm's
//! f32 arithmetic.

use crate::error::{EngineError, Result};

/// A conv kernel in PyTorch layout with its bias.
#[derive(Clone, Debug)]
pub struct ConvKernel {
    pub out: usize,
    /// in / groups
    pub cin_g: usize,
    pub k: usize,
    pub w: Vec<f64>,
    pub b: Vec<f64>,
}

/// BatchNorm running statistics and affine parameters (inference).
#[derive(Clone, Debug)]
pub struct Bn {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f32,
}

impl Bn {
    /// BN(x) = x * s + t per channel: s = gamma / sqrt(var + eps), t = beta - mean * s.
    pub fn scale_shift(&self) -> (Vec<f64>, Vec<f64>) {
        let s: Vec<f64> = self.gamma.iter().zip(&self.var).map(|(&g, &v)| g as f64 / (v as f64 + self.eps as f64).sqrt()).collect();
        let t = self.beta.iter().zip(&self.mean).zip(&s).map(|((&b, &m), &s)| b as f64 - m as f64 * s).collect();
        (s, t)
    }

    pub fn len(&self) -> usize {
        self.gamma.len()
    }
}

impl ConvKernel {
    pub fn zeros(out: usize, cin_g: usize, k: usize) -> Self {
        ConvKernel { out, cin_g, k, w: vec![0.0; out * cin_g * k * k], b: vec![0.0; out] }
    }

    /// A plain conv (with optional bias) taken as is.
    pub fn from_f32(w: &[f32], b: Option<&[f32]>, out: usize, cin_g: usize, k: usize) -> Result<Self> {
        if w.len() != out * cin_g * k * k || b.is_some_and(|b| b.len() != out) {
            return Err(EngineError::Model(format!("conv kernel {out}x{cin_g}x{k}x{k}: wrong number of values")));
        }
        Ok(ConvKernel {
            out,
            cin_g,
            k,
            w: w.iter().map(|&v| v as f64).collect(),
            b: b.map_or_else(|| vec![0.0; out], |b| b.iter().map(|&v| v as f64).collect()),
        })
    }

    /// conv (no bias) followed by BN: W' = W * s[o], b' = t[o].
    pub fn conv_bn(w: &[f32], bn: &Bn, cin_g: usize, k: usize) -> Result<Self> {
        let mut c = ConvKernel::from_f32(w, None, bn.len(), cin_g, k)?;
        let (s, t) = bn.scale_shift();
        let per = cin_g * k * k;
        for (row, &so) in c.w.chunks_mut(per).zip(&s) {
            row.iter_mut().for_each(|v| *v *= so);
        }
        c.b = t;
        Ok(c)
    }

    /// The identity map as a grouped k x k conv (timm's `id_tensor`): 1 at
    /// [i, i mod cin_g, k/2, k/2].
    pub fn identity(channels: usize, cin_g: usize, k: usize) -> Self {
        let mut c = ConvKernel::zeros(channels, cin_g, k);
        for i in 0..channels {
            c.w[((i * cin_g + i % cin_g) * k + k / 2) * k + k / 2] = 1.0;
        }
        c
    }

    /// A bare BN on the input written as a conv: identity kernel folded with the BN.
    pub fn identity_bn(bn: &Bn, cin_g: usize, k: usize) -> Self {
        let mut c = ConvKernel::identity(bn.len(), cin_g, k);
        let (s, t) = bn.scale_shift();
        let per = cin_g * k * k;
        for (row, &so) in c.w.chunks_mut(per).zip(&s) {
            row.iter_mut().for_each(|v| *v *= so);
        }
        c.b = t;
        c
    }

    /// Zero-pads the kernel to `k` x `k` (centred), as `F.pad(kernel, [p] * 4)`.
    pub fn pad_to(&self, k: usize) -> Result<Self> {
        if k < self.k || !(k - self.k).is_multiple_of(2) {
            return Err(EngineError::Model(format!("cannot pad a {0}x{0} kernel to {k}x{k}", self.k)));
        }
        let p = (k - self.k) / 2;
        let mut c = ConvKernel::zeros(self.out, self.cin_g, k);
        for oc in 0..self.out * self.cin_g {
            for y in 0..self.k {
                for x in 0..self.k {
                    c.w[(oc * k + y + p) * k + x + p] = self.w[(oc * self.k + y) * self.k + x];
                }
            }
        }
        c.b = self.b.clone();
        Ok(c)
    }

    /// Element-wise `self + a * other` (kernels and biases), shapes must agree.
    pub fn add_scaled(&mut self, other: &ConvKernel, a: f64) -> Result<()> {
        if (self.out, self.cin_g, self.k) != (other.out, other.cin_g, other.k) {
            return Err(EngineError::Model(format!(
                "branch kernels disagree: {}x{}x{k}x{k} vs {}x{}x{k2}x{k2}",
                self.out,
                self.cin_g,
                other.out,
                other.cin_g,
                k = self.k,
                k2 = other.k
            )));
        }
        self.w.iter_mut().zip(&other.w).for_each(|(x, y)| *x += a * y);
        self.b.iter_mut().zip(&other.b).for_each(|(x, y)| *x += a * y);
        Ok(())
    }

    /// Multiplies output channel o (kernel and bias) by `g[o]`.
    pub fn scale_out(&mut self, g: &[f64]) {
        let per = self.cin_g * self.k * self.k;
        for ((row, b), &go) in self.w.chunks_mut(per).zip(self.b.iter_mut()).zip(g) {
            row.iter_mut().for_each(|v| *v *= go);
            *b *= go;
        }
    }

    pub fn w_f32(&self) -> Vec<f32> {
        self.w.iter().map(|&v| v as f32).collect()
    }

    pub fn b_f32(&self) -> Vec<f32> {
        self.b.iter().map(|&v| v as f32).collect()
    }
}

/// MobileOneBlock branches (training form) merged into one conv: conv_kxk + padded
/// conv_scale + identity BN (timm `_get_kernel_bias`).
pub fn mobileone(kxk: ConvKernel, scale: Option<ConvKernel>, identity: Option<&Bn>) -> Result<ConvKernel> {
    let k = kxk.k;
    let mut acc = kxk;
    if let Some(sc) = scale {
        acc.add_scaled(&sc.pad_to(k)?, 1.0)?;
    }
    if let Some(bn) = identity {
        let cin_g = acc.cin_g;
        acc.add_scaled(&ConvKernel::identity_bn(bn, cin_g, k), 1.0)?;
    }
    Ok(acc)
}

/// ReparamLargeKernelConv: large + small padded to the large size.
pub fn large_kernel(large: ConvKernel, small: ConvKernel) -> Result<ConvKernel> {
    let k = large.k;
    let mut acc = large;
    acc.add_scaled(&small.pad_to(k)?, 1.0)?;
    Ok(acc)
}

/// RepMixer: W = I + gamma * (W_mixer - W_norm), b = gamma * (b_mixer - b_norm); the
/// residual x + ... is inside the kernel.
pub fn repmixer(mixer: ConvKernel, norm: ConvKernel, gamma: &[f32]) -> Result<ConvKernel> {
    let mut d = mixer;
    d.add_scaled(&norm, -1.0)?;
    d.scale_out(&gamma.iter().map(|&g| g as f64).collect::<Vec<_>>());
    let mut w = ConvKernel::identity(d.out, d.cin_g, d.k);
    w.add_scaled(&d, 1.0)?;
    Ok(w)
}

/// RepConditionalPosEnc: W = I + W_pos, b = b_pos.
pub fn rep_cpe(pos: ConvKernel) -> Result<ConvKernel> {
    let mut w = ConvKernel::identity(pos.out, pos.cin_g, pos.k);
    w.add_scaled(&pos, 1.0)?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_padding() {
        let id = ConvKernel::identity(4, 2, 3);
        // channel 3 -> input index 3 % 2 = 1, centre tap
        assert_eq!(id.w[((3 * 2 + 1) * 3 + 1) * 3 + 1], 1.0);
        assert_eq!(id.w.iter().sum::<f64>(), 4.0);
        let p = ConvKernel::from_f32(&[2.0], Some(&[0.5]), 1, 1, 1).unwrap().pad_to(3).unwrap();
        assert_eq!(p.w, vec![0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(p.b, vec![0.5]);
        assert!(p.pad_to(2).is_err());
    }
}
