//! Pillow's mode conversions, ported from Pillow 13.0.0 `src/libImaging/Convert.c`
//! (`rgbA2rgba`, `rgba2rgbA`, `lA2la`, `la2lA`, `l2rgb`, `la2rgb`, `rgba2rgb`, `cmyk2rgb`,
//! `I16_RGB`) with the integer helpers of `src/libImaging/ImagingUtils.h`.

/// `MULDIV255(a, b)`: like (a * b + 127) / 255, Pillow's exact integer form.
#[inline]
fn muldiv255(a: u32, b: u32) -> u32 {
    let tmp = a * b + 128;
    ((tmp >> 8) + tmp) >> 8
}

/// RGBA -> RGBa and LA -> La (`rgbA2rgba`, `lA2la`): colour channels times alpha / 255.
/// `bands` is 4 (RGBA) or 2 (LA); alpha is the last channel.
pub(crate) fn premultiply(px: &mut [u8], bands: usize) {
    for p in px.chunks_exact_mut(bands) {
        let a = p[bands - 1] as u32;
        for c in &mut p[..bands - 1] {
            *c = muldiv255(*c as u32, a) as u8;
        }
    }
}

/// RGBa -> RGBA and La -> LA (`rgba2rgbA`, `la2lA`): alpha 0 and 255 leave the colour as it
/// is; otherwise CLIP8(255 * c / alpha) with integer division (truncation).
pub(crate) fn unpremultiply(px: &mut [u8], bands: usize) {
    for p in px.chunks_exact_mut(bands) {
        let a = p[bands - 1] as u32;
        if a != 0 && a != 255 {
            for c in &mut p[..bands - 1] {
                *c = ((255 * *c as u32) / a).min(255) as u8;
            }
        }
    }
}

/// The 8-bit working modes that reach `convert('RGB')`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode8 {
    L,
    La,
    Rgb,
    Rgba,
    Cmyk,
}

impl Mode8 {
    pub(crate) fn bands(self) -> usize {
        match self {
            Mode8::L => 1,
            Mode8::La => 2,
            Mode8::Rgb => 3,
            Mode8::Rgba | Mode8::Cmyk => 4,
        }
    }
}

/// `convert('RGB')`: grey replicated, alpha dropped (never composited), CMYK by Pillow's
/// naive `cmyk2rgb` (no ICC): nk = 255 - K; channel = CLIP8(nk - MULDIV255(c, nk)).
pub(crate) fn to_rgb(px: &[u8], mode: Mode8) -> Vec<u8> {
    let mut out = Vec::with_capacity(px.len() / mode.bands() * 3);
    match mode {
        Mode8::Rgb => out.extend_from_slice(px),
        Mode8::L => px.iter().for_each(|&v| out.extend_from_slice(&[v, v, v])),
        Mode8::La => px.chunks_exact(2).for_each(|p| out.extend_from_slice(&[p[0], p[0], p[0]])),
        Mode8::Rgba => px.chunks_exact(4).for_each(|p| out.extend_from_slice(&p[..3])),
        Mode8::Cmyk => px.chunks_exact(4).for_each(|p| {
            let nk = 255 - p[3] as i32;
            for &c in &p[..3] {
                out.push((nk - muldiv255(c as u32, nk as u32) as i32).clamp(0, 255) as u8);
            }
        }),
    }
    out
}

/// I;16 -> RGB (`I16_RGB`): values above 255 are clamped to 255, not scaled.
pub(crate) fn i16_to_rgb(px: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(px.len() * 3);
    for &v in px {
        let g = v.min(255) as u8;
        out.extend_from_slice(&[g, g, g]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn muldiv255_matches_rounded_division() {
        for a in 0..=255u32 {
            for b in 0..=255u32 {
                assert_eq!(muldiv255(a, b), (a * b + 127) / 255, "{a} {b}");
            }
        }
    }

    #[test]
    fn premultiply_round_trip_keeps_hidden_colour_only_at_alpha_0_and_255() {
        let mut px = vec![200, 100, 50, 0, 200, 100, 50, 255, 200, 100, 50, 128];
        premultiply(&mut px, 4);
        assert_eq!(&px[..4], &[0, 0, 0, 0]);
        assert_eq!(&px[4..8], &[200, 100, 50, 255]);
        unpremultiply(&mut px, 4);
        assert_eq!(&px[8..12], &[199, 99, 49, 128]);
    }

    #[test]
    fn cmyk_and_i16() {
        assert_eq!(to_rgb(&[0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255], Mode8::Cmyk), vec![255, 255, 255, 0, 255, 255, 0, 0, 0]);
        assert_eq!(i16_to_rgb(&[7, 255, 256, 65535]), vec![7, 7, 7, 255, 255, 255, 255, 255, 255, 255, 255, 255]);
    }
}
