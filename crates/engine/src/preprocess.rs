//! Image preprocessing exactly as open_clip's eval transform does it on a PIL image
//! (docs/ARCHITECTURE.md §3, "Image file bytes -> vector"): `Resize(S)` on the shorter side
//! in the image's own mode (Pillow 13.0.0 semantics), `CenterCrop(S)` with Python's
//! round-half-even offsets, `convert('RGB')`, then `ToTensor` + `Normalize` in float32.
//!
//! `load_crop` goes from the encoded bytes to the S x S x 3 crop; `normalize` makes the
//! float tensor. The pixel tests (tests/preprocess_pixels.rs) compare crops with open_clip's
//! on the corpus in tests/fixtures/images.

mod convert;
mod decode;
mod exif;
mod resample;

pub use decode::libjpeg_turbo_version;

use std::str::FromStr;

use crate::error::{EngineError, Result};
use convert::Mode8;
use decode::{Decoded, Format, Pixels};
use resample::{Filter, Window};

/// The resize filter (open_clip's `interpolation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    Bilinear,
    Bicubic,
}

impl FromStr for Interpolation {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bilinear" => Ok(Interpolation::Bilinear),
            "bicubic" => Ok(Interpolation::Bicubic),
            other => {
                Err(EngineError::InvalidInput(format!("image interpolation {other:?} is not supported (use \"bilinear\" or \"bicubic\")")))
            }
        }
    }
}

impl Interpolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        }
    }

    fn filter(self) -> Filter {
        match self {
            Interpolation::Bilinear => Filter::Bilinear,
            Interpolation::Bicubic => Filter::Bicubic,
        }
    }
}

/// What to do with an EXIF orientation (`mobileclip.exif_orientation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExifOrientation {
    /// As open_clip: `preprocess(Image.open(f))` never looks at the orientation, so a photo
    /// stored sideways is embedded sideways.
    #[default]
    Ignore,
    /// As `preprocess(ImageOps.exif_transpose(Image.open(f)))` (what photo libraries show).
    Apply,
}

impl FromStr for ExifOrientation {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ignore" => Ok(ExifOrientation::Ignore),
            "apply" => Ok(ExifOrientation::Apply),
            other => Err(EngineError::InvalidInput(format!("exif orientation {other:?} is not supported (use \"ignore\" or \"apply\")"))),
        }
    }
}

/// Limits checked before decoding: on the encoded size, and on width x height as the header
/// states it (so a decompression bomb fails before anything is allocated). Default pixels:
/// Pillow's `Image.MAX_IMAGE_PIXELS` (where it warns of a decompression bomb). Also the one
/// preprocessing option, `exif_orientation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_pixels: u64,
    pub max_bytes: usize,
    pub exif_orientation: ExifOrientation,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: 89_478_485, max_bytes: 128 * 1024 * 1024, exif_orientation: ExifOrientation::Ignore }
    }
}

/// What Pillow's `Image.open` would report: `format` ("JPEG", "PNG", "GIF", "WEBP", "BMP",
/// "TIFF"), `size`, `mode` ("1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I;16", "I;16B"), and
/// the EXIF orientation `getexif()` finds (1 when none; reported whatever the setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub mode: &'static str,
    pub orientation: u32,
}

/// Reads the header only and enforces both limits.
pub fn probe(bytes: &[u8], limits: &ImageLimits) -> Result<ImageInfo> {
    guarded(|| {
        let h = checked_header(bytes, limits)?;
        let orientation = exif::orientation(h.format, bytes);
        // TiffImagePlugin applies the orientation itself when it loads, and `open` reports
        // the turned size when tag 274 says 5..8 (not when the orientation is in XMP only).
        let swap = h.format == Format::Tiff
            && exif::tiff_tag_orientation(bytes).and_then(exif::Transpose::from_orientation).is_some_and(|t| t.swaps());
        let (width, height) = if swap { (h.height, h.width) } else { (h.width, h.height) };
        Ok(ImageInfo { format: h.format.name(), width, height, mode: h.mode, orientation })
    })
}

/// Decodes `bytes` and returns open_clip's centre crop as S*S*3 RGB bytes, HWC row-major.
pub fn load_crop(bytes: &[u8], size: u32, interp: Interpolation, limits: &ImageLimits) -> Result<Vec<u8>> {
    if size == 0 || size > 4096 {
        return Err(EngineError::InvalidInput(format!("image size {size} is out of range (1..=4096)")));
    }
    guarded(|| {
        let h = checked_header(bytes, limits)?;
        // What the codecs may allocate: the decoded image at 8 bytes per pixel (16-bit
        // RGBA, the widest layout) plus slack; the pixel limit has already been checked.
        let max_alloc = (h.width as u64 * h.height as u64).saturating_mul(8).saturating_add(1 << 24);
        let mut d = decode::decode(&h, bytes, max_alloc)?;
        check_pixels(d.width, d.height, limits)?;
        // TIFF: Pillow's TiffImagePlugin.load_end runs exif_transpose on every TIFF it loads,
        // so open_clip sees TIFFs upright even when it ignores EXIF elsewhere.
        if limits.exif_orientation == ExifOrientation::Apply || h.format == Format::Tiff {
            if let Some(t) = exif::Transpose::from_orientation(exif::orientation(h.format, bytes)) {
                d = transposed(d, t);
            }
        }
        Ok(crop(d, size, interp.filter()))
    })
}

/// `ToTensor` + `Normalize`: (v / 255 - mean) / std in float32, HWC like the input.
pub fn normalize(rgb: &[u8], mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    rgb.iter().enumerate().map(|(i, &v)| (v as f32 / 255.0 - mean[i % 3]) / std[i % 3]).collect()
}

/// Decoding is the one place where data the user controls drives third-party code: a panic
/// there (a codec bug) must become an error, not a backend crash.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(EngineError::InvalidInput(format!("image: the decoder failed on this data ({what})")))
        }
    }
}

fn checked_header(bytes: &[u8], limits: &ImageLimits) -> Result<decode::Header> {
    if bytes.is_empty() {
        return Err(EngineError::InvalidInput("image: empty input (0 bytes)".into()));
    }
    if bytes.len() > limits.max_bytes {
        return Err(EngineError::LimitExceeded(format!(
            "image is {} bytes, more than mobileclip.max_image_bytes = {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let fmt = decode::sniff(bytes)?;
    let mut h = decode::header(fmt, bytes)?;
    check_pixels(h.width, h.height, limits)?;
    if fmt == Format::Gif {
        // The mode needs the first frame's palette, and the canvas grows to the frame.
        let (w, hh, mode) = decode::gif_mode_and_size(bytes)?;
        check_pixels(w, hh, limits)?;
        h = decode::Header { width: w, height: hh, mode, ..h };
    }
    Ok(h)
}

fn check_pixels(w: u32, h: u32, limits: &ImageLimits) -> Result<()> {
    let n = w as u64 * h as u64;
    if n > limits.max_pixels {
        return Err(EngineError::LimitExceeded(format!(
            "image is {w} x {h} = {n} pixels, more than mobileclip.max_image_pixels = {}",
            limits.max_pixels
        )));
    }
    Ok(())
}

/// Python's `round` on k / 2 (half to even), for non-negative k: CenterCrop's offset.
fn half_round_even(k: u64) -> u64 {
    let q = k / 2;
    if k % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// torchvision `Resize(S)` output size and `CenterCrop(S)` offsets.
pub(crate) fn geometry(w: u32, h: u32, s: u32) -> Window {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    // `int(S * long / short)`: both products are exact in f64, the division correctly
    // rounded like Python's int / int, then truncated.
    let new_long = ((s as f64 * long as f64) / short as f64) as u64;
    let (out_w, out_h) = if w <= h { (s as u64, new_long) } else { (new_long, s as u64) };
    let left = half_round_even(out_w - s as u64);
    let top = half_round_even(out_h - s as u64);
    Window { out_w: out_w as u32, out_h: out_h as u32, left: left as u32, top: top as u32, win_w: s, win_h: s }
}

/// `Image.transpose`: exact pixel moves, so doing it on the decoded (palette-expanded) pixels
/// before the resize gives what Pillow gives doing it on the opened image.
fn transposed(d: Decoded, t: exif::Transpose) -> Decoded {
    let (w, h) = (d.width as usize, d.height as usize);
    let (width, height) = if t.swaps() { (d.height, d.width) } else { (d.width, d.height) };
    let pixels = match d.pixels {
        Pixels::U16(px, be) => Pixels::U16(exif::transpose(&px, w, h, 1, t), be),
        Pixels::U8(px, mode) => Pixels::U8(exif::transpose(&px, w, h, mode.bands(), t), mode),
    };
    Decoded { width, height, pixels, ..d }
}

fn crop(d: Decoded, s: u32, filter: Filter) -> Vec<u8> {
    let win = geometry(d.width, d.height, s);
    // torchvision returns the image untouched when the size already matches (and Pillow
    // would return a copy): a plain crop, no filtering, no premultiplication.
    let same = win.out_w == d.width && win.out_h == d.height;
    match d.pixels {
        Pixels::U16(px, false) => {
            let out = if same { crop_plain(&px, d.width, 1, win) } else { resample::resample(&px, d.width, d.height, 1, win, filter) };
            convert::i16_to_rgb(&out)
        }
        Pixels::U16(px, true) => {
            // I;16B: Pillow's 16-bit resample reads every sample little-endian (its big-endian
            // switch is for I;16N only), i.e. it resamples the byte-swapped values, and stores
            // them back the same way; convert('RGB') then reads them big-endian again
            // (I;16B -> L -> RGB, clamped at 255).
            let out = if same {
                crop_plain(&px, d.width, 1, win)
            } else {
                let swapped: Vec<u16> = px.iter().map(|v| v.swap_bytes()).collect();
                resample::resample(&swapped, d.width, d.height, 1, win, filter).into_iter().map(u16::swap_bytes).collect()
            };
            convert::i16_to_rgb(&out)
        }
        Pixels::U8(mut px, mode) => {
            let bands = mode.bands();
            let out = if same {
                crop_plain(&px, d.width, bands, win)
            } else if d.nearest {
                resample::nearest_u8(&px, d.width, d.height, bands, win)
            } else if matches!(mode, Mode8::La | Mode8::Rgba) {
                // Image.resize: LA/RGBA are resampled as La/RGBa and converted back.
                convert::premultiply(&mut px, bands);
                let mut out = resample::resample(&px, d.width, d.height, bands, win, filter);
                convert::unpremultiply(&mut out, bands);
                out
            } else {
                resample::resample(&px, d.width, d.height, bands, win, filter)
            };
            convert::to_rgb(&out, mode)
        }
    }
}

fn crop_plain<T: Copy>(px: &[T], w: u32, bands: usize, win: Window) -> Vec<T> {
    let (stride, l, ww) = (w as usize * bands, win.left as usize * bands, win.win_w as usize * bands);
    (win.top as usize..(win.top + win.win_h) as usize).flat_map(|r| px[r * stride + l..r * stride + l + ww].iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_torchvision() {
        let g = geometry(448, 459, 224);
        assert_eq!((g.out_w, g.out_h, g.left, g.top), (224, 229, 0, 2));
        let g = geometry(233, 224, 224);
        assert_eq!((g.out_w, g.out_h, g.left, g.top), (233, 224, 4, 0));
        let g = geometry(3, 700, 256);
        assert_eq!((g.out_w, g.out_h), (256, 59733));
        let g = geometry(227, 224, 224);
        assert_eq!(g.left, 2); // 1.5 -> 2
        let g = geometry(225, 224, 224);
        assert_eq!(g.left, 0); // 0.5 -> 0
    }

    #[test]
    fn interpolation_parses_open_clip_names_only() {
        assert_eq!("bilinear".parse::<Interpolation>().ok(), Some(Interpolation::Bilinear));
        assert_eq!("bicubic".parse::<Interpolation>().ok(), Some(Interpolation::Bicubic));
        assert!(matches!("lanczos".parse::<Interpolation>(), Err(EngineError::InvalidInput(_))));
    }
}
