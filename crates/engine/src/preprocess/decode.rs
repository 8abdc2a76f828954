//! Bytes -> pixels in the mode Pillow 13.0.0 would open them in.
//!
//! Headers are parsed here by hand (a few bytes each) so that dimensions can be checked
//! against the limits before any codec allocates; the codec crates then decode. Where the
//! `image` crate would hide what Pillow's semantics need, its codec crates are used
//! directly: `png` (bit depth, palette, 16-bit samples), `gif` (the first frame's indices
//! and palettes), `image-webp`, `tiff`. BMP goes through `image`. JPEG goes through
//! libjpeg-turbo itself, Pillow's own decoder (jpeg.c), so that JPEG pixels are Pillow's.
//!
//! Palette (P) and bilevel (1) images are expanded here to RGB / L: Pillow resizes them with
//! NEAREST, which only selects pixels, so expanding first gives the same pixels as Pillow's
//! resize-then-`convert('RGB')`. `Decoded::nearest` carries that mode rule.

use std::io::Cursor;

use super::convert::Mode8;
use crate::error::{EngineError, Result};

pub(crate) const SUPPORTED: &str = "JPEG, PNG, GIF, WebP, BMP, TIFF";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Jpeg,
    Gif,
    WebP,
    Bmp,
    Tiff,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Gif => "GIF",
            Format::WebP => "WEBP",
            Format::Bmp => "BMP",
            Format::Tiff => "TIFF",
        }
    }
}

/// What `probe` reports: Pillow's `format`, `size` and `mode` after `Image.open`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub mode: &'static str,
}

pub(crate) enum Pixels {
    U8(Vec<u8>, Mode8),
    /// Pillow's I;16 (false) or I;16B (true: a big-endian TIFF), sample values as numbers.
    U16(Vec<u16>, bool),
}

pub(crate) struct Decoded {
    pub width: u32,
    pub height: u32,
    pub pixels: Pixels,
    /// Pillow mode P or 1: `resize` uses NEAREST whatever filter was asked for.
    pub nearest: bool,
}

fn invalid(fmt: Format, what: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidInput(format!("image: invalid {} data ({what})", fmt.name()))
}

fn truncated(fmt: Format, what: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidInput(format!("image: truncated {} data ({what})", fmt.name()))
}

/// Codec errors: running out of data is "truncated", anything else "invalid".
fn codec_err(fmt: Format, e: impl std::fmt::Display) -> EngineError {
    let msg = e.to_string();
    let l = msg.to_ascii_lowercase();
    if [
        "eof",
        "end of",
        "truncat",
        "premature",
        "unexpected end",
        "not enough data",
        "no more bytes",
        "insufficient",
        "failed to fill whole buffer",
        "exhausted data",
    ]
    .iter()
    .any(|s| l.contains(s))
    {
        truncated(fmt, msg)
    } else {
        invalid(fmt, msg)
    }
}

pub(crate) fn sniff(bytes: &[u8]) -> Result<Format> {
    use image::ImageFormat as F;
    match image::guess_format(bytes) {
        Ok(F::Png) => Ok(Format::Png),
        Ok(F::Jpeg) => Ok(Format::Jpeg),
        Ok(F::Gif) => Ok(Format::Gif),
        Ok(F::WebP) => Ok(Format::WebP),
        Ok(F::Bmp) => Ok(Format::Bmp),
        Ok(F::Tiff) => Ok(Format::Tiff),
        Ok(other) => Err(EngineError::Unsupported(format!(
            "image: {} images are not supported (supported formats: {SUPPORTED})",
            format!("{other:?}").to_uppercase()
        ))),
        // A format we can name but do not decode is "not supported" (0A000 in SQL); bytes
        // that are no known image at all are an invalid argument (22023).
        Err(_) => match other_format(bytes) {
            Some(name) => Err(EngineError::Unsupported(format!("image: {name} images are not supported (supported formats: {SUPPORTED})"))),
            None => Err(EngineError::InvalidInput(format!("image: not an image file in a known format (supported formats: {SUPPORTED})"))),
        },
    }
}

/// A few formats `image` does not sniff, so that the error can name them.
fn other_format(b: &[u8]) -> Option<&'static str> {
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return Some(match &b[8..12] {
            b"avif" | b"avis" => "AVIF",
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc" => "HEIF/HEIC",
            _ => "ISO base media (MP4/HEIF)",
        });
    }
    if b.starts_with(b"\0\0\0\x0cjP  ") || b.starts_with(&[0xff, 0x4f, 0xff, 0x51]) {
        return Some("JPEG 2000");
    }
    if b.starts_with(b"%PDF") {
        return Some("PDF");
    }
    let head = &b[..b.len().min(256)];
    if head.windows(4).any(|w| w.eq_ignore_ascii_case(b"<svg")) {
        return Some("SVG");
    }
    None
}

fn u16le(b: &[u8], i: usize) -> Option<u32> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?) as u32)
}
fn u16be(b: &[u8], i: usize) -> Option<u32> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?) as u32)
}
fn u32be(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn u32le(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn u24le(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i..i + 3)?;
    Some(s[0] as u32 | (s[1] as u32) << 8 | (s[2] as u32) << 16)
}

/// The header: format, size and Pillow mode, from the first bytes only (TIFF: the first IFD).
pub(crate) fn header(fmt: Format, b: &[u8]) -> Result<Header> {
    let short = || truncated(fmt, "the header is incomplete");
    let (width, height, mode) = match fmt {
        Format::Png => {
            if b.get(12..16) != Some(b"IHDR") {
                return Err(if b.len() < 16 { short() } else { invalid(fmt, "the first chunk is not IHDR") });
            }
            let (w, h) = (u32be(b, 16).ok_or_else(short)?, u32be(b, 20).ok_or_else(short)?);
            let (depth, ctype) = (*b.get(24).ok_or_else(short)?, *b.get(25).ok_or_else(short)?);
            let mode = match (depth, ctype) {
                (1, 0) => "1",
                (2 | 4 | 8, 0) => "L",
                (16, 0) => "I;16",
                (8 | 16, 2) => "RGB",
                (1 | 2 | 4 | 8, 3) => "P",
                (8, 4) => "LA",
                (16, 4) | (8 | 16, 6) => "RGBA",
                _ => return Err(invalid(fmt, format!("bit depth {depth} with colour type {ctype}"))),
            };
            (w, h, mode)
        }
        Format::Jpeg => jpeg_header(b)?,
        Format::Gif => {
            let (w, h) = (u16le(b, 6).ok_or_else(short)?, u16le(b, 8).ok_or_else(short)?);
            // The mode (P, or L for an identity grey palette) needs the first frame's palette;
            // it is settled by `gif_first_frame`, the size here is the logical screen.
            (w, h, "P")
        }
        Format::WebP => webp_header(b)?,
        Format::Bmp => {
            let bmp = bmp_header(b)?;
            (bmp.width, bmp.height, bmp.mode)
        }
        Format::Tiff => {
            let t = tiff_layout(b)?;
            (t.width, t.height, t.mode)
        }
    };
    if width == 0 || height == 0 {
        return Err(invalid(fmt, format!("the header says {width} x {height} pixels")));
    }
    Ok(Header { format: fmt, width, height, mode })
}

/// The frame header (SOF): size and mode.
fn jpeg_header(b: &[u8]) -> Result<(u32, u32, &'static str)> {
    let fmt = Format::Jpeg;
    let mut i = 2;
    loop {
        // Skip fill bytes and junk up to the next marker, as libjpeg does.
        while i < b.len() && b[i] != 0xff {
            i += 1;
        }
        while i < b.len() && b[i] == 0xff {
            i += 1;
        }
        let Some(&m) = b.get(i) else { return Err(truncated(fmt, "no frame header (SOF) before the end")) };
        i += 1;
        if m == 0xd8 || (0xd0..=0xd7).contains(&m) || m == 0x01 {
            continue;
        }
        if m == 0xd9 || m == 0xda {
            return Err(invalid(fmt, "no frame header (SOF) before the scan"));
        }
        let len = u16be(b, i).ok_or_else(|| truncated(fmt, "a marker segment is cut off"))? as usize;
        if matches!(m, 0xc0..=0xcf) && !matches!(m, 0xc4 | 0xc8 | 0xcc) {
            let h = u16be(b, i + 3).ok_or_else(|| truncated(fmt, "the frame header is cut off"))?;
            let w = u16be(b, i + 5).ok_or_else(|| truncated(fmt, "the frame header is cut off"))?;
            let nc = *b.get(i + 7).ok_or_else(|| truncated(fmt, "the frame header is cut off"))?;
            let mode = match nc {
                1 => "L",
                3 => "RGB",
                4 => "CMYK",
                n => return Err(invalid(fmt, format!("{n} colour components"))),
            };
            if matches!(m, 0xc3 | 0xc7 | 0xcb | 0xcf) {
                // Pillow 13.0.0's wheel bundles libjpeg-turbo 3.2.0, which decodes lossless
                // JPEG (added in 3.0); the libjpeg-turbo this is built against may not.
                let v = libjpeg_turbo_version();
                let have = if v > 0 { format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000) } else { "not libjpeg-turbo".into() };
                if v < 3_000_000 {
                    return Err(EngineError::Unsupported(format!(
                        "image: lossless JPEG (SOF{}) is not supported: the system's libjpeg-turbo ({have}) cannot decode it \
                         (lossless decoding needs libjpeg-turbo 3.0 or later)",
                        m - 0xc0
                    )));
                }
                return Err(EngineError::Unsupported(format!("image: lossless JPEG (SOF{}) is not supported", m - 0xc0)));
            }
            return Ok((w, h, mode));
        }
        i += len;
    }
}

fn webp_header(b: &[u8]) -> Result<(u32, u32, &'static str)> {
    let fmt = Format::WebP;
    let short = || truncated(fmt, "the header is incomplete");
    let chunk = b.get(12..16).ok_or_else(short)?;
    match chunk {
        b"VP8X" => {
            let flags = *b.get(20).ok_or_else(short)?;
            let w = u24le(b, 24).ok_or_else(short)? + 1;
            let h = u24le(b, 27).ok_or_else(short)? + 1;
            // Animated or not, the mode is the VP8X alpha flag's (WebPGetFeatures).
            Ok((w, h, if flags & 0x10 != 0 { "RGBA" } else { "RGB" }))
        }
        b"VP8L" => {
            if *b.get(20).ok_or_else(short)? != 0x2f {
                return Err(invalid(fmt, "bad VP8L signature"));
            }
            let bits = u32le(b, 21).ok_or_else(short)?;
            let w = (bits & 0x3fff) + 1;
            let h = ((bits >> 14) & 0x3fff) + 1;
            let alpha = (bits >> 28) & 1 == 1;
            Ok((w, h, if alpha { "RGBA" } else { "RGB" }))
        }
        b"VP8 " => {
            if b.get(23..26).ok_or_else(short)? != [0x9d, 0x01, 0x2a] {
                return Err(invalid(fmt, "bad VP8 start code"));
            }
            let w = u16le(b, 26).ok_or_else(short)? & 0x3fff;
            let h = u16le(b, 28).ok_or_else(short)? & 0x3fff;
            Ok((w, h, "RGB"))
        }
        other => Err(invalid(fmt, format!("unknown first chunk {:?}", String::from_utf8_lossy(other)))),
    }
}

struct BmpHeader {
    width: u32,
    height: u32,
    mode: &'static str,
}

/// BmpImagePlugin's mode rules: 1/4/8 bits are P unless the palette is the identity grey
/// ramp (then L, or 1 for two colours black/white); 16/24-bit RGB; 32-bit RGB unless its
/// bitfields have an alpha mask.
fn bmp_header(b: &[u8]) -> Result<BmpHeader> {
    let fmt = Format::Bmp;
    let short = || truncated(fmt, "the header is incomplete");
    let hsize = u32le(b, 14).ok_or_else(short)?;
    let (width, height, bits, compression, colors, pal_pad);
    if hsize == 12 {
        width = u16le(b, 18).ok_or_else(short)?;
        height = u16le(b, 20).ok_or_else(short)?;
        bits = u16le(b, 24).ok_or_else(short)?;
        compression = 0;
        colors = 0;
        pal_pad = 3usize;
    } else if hsize >= 40 {
        width = u32le(b, 18).ok_or_else(short)? as i32 as i64 as u64 as u32;
        let hh = u32le(b, 22).ok_or_else(short)? as i32;
        height = hh.unsigned_abs();
        bits = u16le(b, 28).ok_or_else(short)?;
        compression = u32le(b, 30).ok_or_else(short)?;
        colors = u32le(b, 46).ok_or_else(short)?;
        pal_pad = 4usize;
    } else {
        return Err(EngineError::Unsupported(format!("image: BMP header size {hsize} is not supported")));
    }
    if (width as i32) < 0 {
        return Err(invalid(fmt, "negative width"));
    }
    let mode = match bits {
        1 | 4 | 8 => {
            let colors = if colors == 0 { 1u32 << bits } else { colors };
            if colors == 0 || colors > 65536 {
                return Err(invalid(fmt, format!("palette of {colors} colours")));
            }
            let pal_at = 14 + hsize as usize;
            let grey_ref: Vec<u8> = if colors == 2 { vec![0, 255] } else { (0..colors).map(|v| v as u8).collect() };
            let mut grey = colors <= 256 || colors == 2;
            for (i, &v) in grey_ref.iter().enumerate() {
                let e = b.get(pal_at + i * pal_pad..pal_at + i * pal_pad + 3).ok_or_else(short)?;
                if e != [v, v, v] {
                    grey = false;
                }
            }
            if grey {
                if colors <= 2 {
                    "1"
                } else {
                    "L"
                }
            } else {
                "P"
            }
        }
        16 | 24 => "RGB",
        32 => {
            // BI_BITFIELDS (3) with a non-zero alpha mask, or BI_ALPHABITFIELDS (6): RGBA.
            let alpha_mask = if hsize >= 56 && compression == 3 { u32le(b, 54).unwrap_or(0) } else { 0 };
            if alpha_mask != 0 || compression == 6 {
                "RGBA"
            } else {
                "RGB"
            }
        }
        other => return Err(EngineError::Unsupported(format!("image: BMP with {other} bits per pixel is not supported"))),
    };
    Ok(BmpHeader { width, height, mode })
}

/// Full decode. `max_alloc` bounds what the codecs may allocate.
pub(crate) fn decode(h: &Header, b: &[u8], max_alloc: u64) -> Result<Decoded> {
    match h.format {
        Format::Png => decode_png(b, max_alloc),
        Format::Jpeg => decode_jpeg(h, b, max_alloc),
        Format::Gif => decode_gif(b, max_alloc),
        Format::WebP => decode_webp(h, b, max_alloc),
        Format::Bmp => decode_bmp(h, b, max_alloc),
        Format::Tiff => decode_tiff(h, b, max_alloc),
    }
}

fn u8px(width: u32, height: u32, px: Vec<u8>, mode: Mode8, nearest: bool) -> Decoded {
    Decoded { width, height, pixels: Pixels::U8(px, mode), nearest }
}

fn expand_palette(indices: impl Iterator<Item = u8>, palette: &[u8], n: usize) -> Vec<u8> {
    // Pillow's palette is 256 entries, zero-filled past the ones the file gives.
    let mut lut = [[0u8; 3]; 256];
    for (i, e) in palette.chunks_exact(3).take(256).enumerate() {
        lut[i] = [e[0], e[1], e[2]];
    }
    let mut out = Vec::with_capacity(n * 3);
    for i in indices.take(n) {
        out.extend_from_slice(&lut[i as usize]);
    }
    out
}

/// Pillow's `PngImageFile._open` reads every chunk before the first IDAT and rejects the file
/// ("cannot identify image file") when one's CRC is wrong; the png crate does not check all of
/// them (e.g. iCCP), so do it here. IDAT CRCs are not checked by Pillow either (a damaged
/// compressed stream still fails in zlib).
fn check_png_chunk_crcs(b: &[u8]) -> Result<()> {
    let mut i = 8usize;
    while let (Some(len), Some(kind)) = (u32be(b, i), b.get(i + 4..i + 8)) {
        if kind == b"IDAT" {
            return Ok(());
        }
        let end = i + 8 + len as usize;
        let (Some(body), Some(stored)) = (b.get(i + 4..end), u32be(b, end)) else {
            return Err(truncated(Format::Png, "chunk runs past the end of the data"));
        };
        if crc32fast::hash(body) != stored {
            return Err(invalid(Format::Png, format!("bad CRC in the {} chunk", String::from_utf8_lossy(kind))));
        }
        i = end + 4;
    }
    Ok(())
}

fn decode_png(b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::Png;
    check_png_chunk_crcs(b)?;
    let limits = png::Limits { bytes: max_alloc.min(usize::MAX as u64) as usize };
    let mut dec = png::Decoder::new_with_limits(Cursor::new(b), limits);
    // IDENTITY: raw samples (palette indices, 16 bits, 1/2/4-bit packing), no gamma.
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut r = dec.read_info().map_err(png_err)?;
    let info = r.info();
    let (w, h) = (info.width, info.height);
    let (depth, ctype) = (info.bit_depth as u8, info.color_type);
    let palette = info.palette.as_ref().map(|p| p.to_vec());
    let size = r.output_buffer_size().ok_or_else(|| EngineError::LimitExceeded(format!("image: PNG {w} x {h} is too large to decode")))?;
    let mut buf = vec![0u8; size];
    let fi = r.next_frame(&mut buf).map_err(png_err)?;
    let line = fi.line_size;
    let n = w as usize * h as usize;
    let rows = || buf.chunks(line).take(h as usize);
    // Sub-byte samples, MSB first, per row.
    let unpack = |bits: usize| -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let per = 8 / bits;
        let mask = (1u8 << bits) - 1;
        for row in rows() {
            for x in 0..w as usize {
                let byte = row[x / per];
                out.push((byte >> (8 - bits * (x % per + 1))) & mask);
            }
        }
        out
    };
    use png::ColorType as C;
    Ok(match (depth, ctype) {
        (1, C::Grayscale) => u8px(w, h, unpack(1).into_iter().map(|v| v * 255).collect(), Mode8::L, true),
        (2, C::Grayscale) => u8px(w, h, unpack(2).into_iter().map(|v| v * 85).collect(), Mode8::L, false),
        (4, C::Grayscale) => u8px(w, h, unpack(4).into_iter().map(|v| v * 17).collect(), Mode8::L, false),
        (8, C::Grayscale) => u8px(w, h, rows().flat_map(|r| r[..w as usize].iter().copied()).collect(), Mode8::L, false),
        (16, C::Grayscale) => {
            let v = rows().flat_map(|r| r[..2 * w as usize].chunks_exact(2).map(|s| u16::from_be_bytes([s[0], s[1]]))).collect();
            Decoded { width: w, height: h, pixels: Pixels::U16(v, false), nearest: false }
        }
        (8, C::Rgb) => u8px(w, h, rows().flat_map(|r| r[..3 * w as usize].iter().copied()).collect(), Mode8::Rgb, false),
        // 16-bit samples: Pillow's RGB;16B / RGBA;16B / LA;16B unpackers keep the high byte.
        (16, C::Rgb) => u8px(w, h, rows().flat_map(|r| r[..6 * w as usize].iter().step_by(2).copied()).collect(), Mode8::Rgb, false),
        (bits @ (1 | 2 | 4 | 8), C::Indexed) => {
            let pal = palette.ok_or_else(|| invalid(fmt, "palette image without PLTE"))?;
            let idx = if bits == 8 { rows().flat_map(|r| r[..w as usize].iter().copied()).collect() } else { unpack(bits as usize) };
            u8px(w, h, expand_palette(idx.into_iter(), &pal, n), Mode8::Rgb, true)
        }
        (8, C::GrayscaleAlpha) => u8px(w, h, rows().flat_map(|r| r[..2 * w as usize].iter().copied()).collect(), Mode8::La, false),
        // 16-bit grey+alpha opens as RGBA in Pillow (LA;16B unpacked into RGBA).
        (16, C::GrayscaleAlpha) => u8px(
            w,
            h,
            rows().flat_map(|r| r[..4 * w as usize].chunks_exact(4).flat_map(|s| [s[0], s[0], s[0], s[2]])).collect(),
            Mode8::Rgba,
            false,
        ),
        (8, C::Rgba) => u8px(w, h, rows().flat_map(|r| r[..4 * w as usize].iter().copied()).collect(), Mode8::Rgba, false),
        (16, C::Rgba) => u8px(w, h, rows().flat_map(|r| r[..8 * w as usize].iter().step_by(2).copied()).collect(), Mode8::Rgba, false),
        (d, c) => return Err(invalid(fmt, format!("bit depth {d} with colour type {c:?}"))),
    })
}

fn png_err(e: png::DecodingError) -> EngineError {
    match e {
        png::DecodingError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => truncated(Format::Png, e),
        png::DecodingError::LimitsExceeded => EngineError::LimitExceeded("image: PNG decoding would exceed the memory limit".into()),
        other => codec_err(Format::Png, other),
    }
}

mod ffi {
    use std::os::raw::{c_char, c_int, c_long};
    extern "C" {
        // preprocess/jpeg.c
        pub fn mc_jpeg_decode(
            data: *const u8,
            len: usize,
            width: u32,
            height: u32,
            components: c_int,
            out: *mut u8,
            out_len: usize,
            max_memory: c_long,
            msg: *mut c_char,
            msg_len: usize,
        ) -> c_int;
        pub fn mc_jpeg_turbo_version() -> c_int;
    }
}

/// The libjpeg-turbo version JPEG decoding was built against (e.g. 2001005 for 2.1.5), 0
/// when the libjpeg is not libjpeg-turbo.
pub fn libjpeg_turbo_version() -> i32 {
    // SAFETY: returns a compile-time constant.
    unsafe { ffi::mc_jpeg_turbo_version() }
}

/// JPEG through libjpeg-turbo (preprocess/jpeg.c), set up as Pillow's JpegDecode.c: islow
/// IDCT, fancy upsampling, output L / RGB / CMYK by the number of components. libjpeg's
/// errors, and running out of data before the last scanline, come back as errors.
fn decode_jpeg(h: &Header, b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::Jpeg;
    let mode = match h.mode {
        "L" => Mode8::L,
        "CMYK" => Mode8::Cmyk,
        _ => Mode8::Rgb,
    };
    let bands = mode.bands();
    let len = (h.width as u64 * h.height as u64).saturating_mul(bands as u64);
    if len > max_alloc {
        return Err(EngineError::LimitExceeded(format!("image: JPEG {} x {} exceeds the memory limit", h.width, h.height)));
    }
    let mut px = vec![0u8; len as usize];
    let mut msg = [0 as std::os::raw::c_char; 256];
    let max_memory = max_alloc.min(std::os::raw::c_long::MAX as u64) as std::os::raw::c_long;
    // SAFETY: `b` and `px` are valid for their lengths during the call; jpeg.c writes at
    // most `px.len()` bytes into `px` (it checks width * height * components == out_len)
    // and a NUL-terminated message of at most `msg.len()` bytes into `msg`. libjpeg's
    // fatal errors longjmp back inside jpeg.c, never across Rust frames.
    let status = unsafe {
        ffi::mc_jpeg_decode(
            b.as_ptr(),
            b.len(),
            h.width,
            h.height,
            bands as _,
            px.as_mut_ptr(),
            px.len(),
            max_memory,
            msg.as_mut_ptr(),
            msg.len(),
        )
    };
    let text = || {
        // SAFETY: jpeg.c always NUL-terminates within the buffer (snprintf, or msg[0] = 0).
        unsafe { std::ffi::CStr::from_ptr(msg.as_ptr()) }.to_string_lossy().into_owned()
    };
    match status {
        0 => {}
        1 => return Err(truncated(fmt, text())),
        4 => return Err(EngineError::LimitExceeded(format!("image: JPEG decoding exceeds a limit ({})", text()))),
        _ => return Err(invalid(fmt, text())),
    }
    if mode == Mode8::Cmyk {
        // Pillow reads every 4-component JPEG with rawmode "CMYK;I" (the Adobe convention:
        // inverted samples); libjpeg returns the samples as stored.
        px.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Ok(u8px(h.width, h.height, px, mode, false))
}

/// The first frame as Pillow 13 `GifImagePlugin` builds it: canvas = logical screen grown to
/// the frame's extent; filled with the transparency index if the frame has one, else 0;
/// mode P with the local (else global) palette, or L when that palette is the identity grey
/// ramp or absent.
fn decode_gif(b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::Gif;
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    opts.set_memory_limit(gif::MemoryLimit::Bytes(std::num::NonZeroU64::new(max_alloc.max(1)).unwrap_or(std::num::NonZeroU64::MIN)));
    opts.check_frame_consistency(false);
    let mut d = opts.read_info(Cursor::new(b)).map_err(|e| codec_err(fmt, e))?;
    let (sw, sh) = (d.width() as u32, d.height() as u32);
    let global = d.global_palette().map(|p| p.to_vec());
    let frame = d.read_next_frame().map_err(|e| codec_err(fmt, e))?.ok_or_else(|| invalid(fmt, "image not found in GIF frame"))?;
    let (x0, y0, fw, fh) = (frame.left as u32, frame.top as u32, frame.width as u32, frame.height as u32);
    let (w, h) = (sw.max(x0 + fw), sh.max(y0 + fh));
    let is_grey_ramp =
        |p: &[u8]| p.chunks_exact(3).enumerate().all(|(i, e)| e[0] as usize == i && e[1] as usize == i && e[2] as usize == i);
    let palette = match &frame.palette {
        Some(local) => (!is_grey_ramp(local)).then(|| local.clone()),
        None => global.filter(|g| !is_grey_ramp(g)),
    };
    let n = w as usize * h as usize;
    if (n as u64).saturating_mul(if palette.is_some() { 4 } else { 1 }) > max_alloc {
        return Err(EngineError::LimitExceeded(format!("image: GIF canvas {w} x {h} exceeds the memory limit")));
    }
    let mut idx = vec![frame.transparent.unwrap_or(0); n];
    let buf = &frame.buffer;
    if buf.len() < fw as usize * fh as usize {
        return Err(truncated(fmt, "the first frame has fewer pixels than its size"));
    }
    for y in 0..fh as usize {
        let dst = (y0 as usize + y) * w as usize + x0 as usize;
        idx[dst..dst + fw as usize].copy_from_slice(&buf[y * fw as usize..(y + 1) * fw as usize]);
    }
    Ok(match palette {
        Some(p) => u8px(w, h, expand_palette(idx.into_iter(), &p, n), Mode8::Rgb, true),
        None => u8px(w, h, idx, Mode8::L, false),
    })
}

pub(crate) fn gif_mode_and_size(b: &[u8]) -> Result<(u32, u32, &'static str)> {
    let fmt = Format::Gif;
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    opts.check_frame_consistency(false);
    let mut d = opts.read_info(Cursor::new(b)).map_err(|e| codec_err(fmt, e))?;
    let (sw, sh) = (d.width() as u32, d.height() as u32);
    let global = d.global_palette().map(|p| p.to_vec());
    let f = d.next_frame_info().map_err(|e| codec_err(fmt, e))?.ok_or_else(|| invalid(fmt, "image not found in GIF frame"))?;
    let is_grey_ramp =
        |p: &[u8]| p.chunks_exact(3).enumerate().all(|(i, e)| e[0] as usize == i && e[1] as usize == i && e[2] as usize == i);
    let p = match &f.palette {
        Some(local) => !is_grey_ramp(local),
        None => global.is_some_and(|g| !is_grey_ramp(&g)),
    };
    Ok((sw.max(f.left as u32 + f.width as u32), sh.max(f.top as u32 + f.height as u32), if p { "P" } else { "L" }))
}

fn decode_webp(h: &Header, b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::WebP;
    // The RIFF size says how long the file must be; shorter is a cut-off file.
    if let Some(riff) = u32le(b, 4) {
        if (riff as u64 + 8) > b.len() as u64 {
            return Err(truncated(fmt, format!("RIFF says {} bytes, got {}", riff as u64 + 8, b.len())));
        }
    }
    if let Some(frame) = webp_first_frame(b)? {
        return decode_webp_first_frame(h, &frame, max_alloc);
    }
    let mut d = image_webp::WebPDecoder::new(Cursor::new(b)).map_err(|e| codec_err(fmt, e))?;
    d.set_memory_limit(max_alloc.min(usize::MAX as u64) as usize);
    let (w, hh) = d.dimensions();
    let alpha = d.has_alpha();
    let size = d.output_buffer_size().ok_or_else(|| EngineError::LimitExceeded(format!("image: WebP {w} x {hh} is too large")))?;
    let mut buf = vec![0u8; size];
    d.read_image(&mut buf).map_err(|e| codec_err(fmt, e))?;
    let mode = if alpha { Mode8::Rgba } else { Mode8::Rgb };
    if h.mode == "RGBA" && !alpha {
        // Header says alpha but the decoder has none: Pillow would still say RGBA with
        // alpha 255; same pixels after convert('RGB'), except the resize path.
        let rgba = buf.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        return Ok(u8px(w, hh, rgba, Mode8::Rgba, false));
    }
    Ok(u8px(w, hh, buf, mode, false))
}

/// The first frame of an animated WebP (VP8X with the animation flag): its offset and size on
/// the canvas, and its bitstream chunks (ALPH + VP8, or VP8L) as a still WebP file.
struct WebPFrame {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    still: Vec<u8>,
}

fn webp_first_frame(b: &[u8]) -> Result<Option<WebPFrame>> {
    let fmt = Format::WebP;
    if b.get(12..16) != Some(b"VP8X") || b.get(20).is_none_or(|f| f & 0x02 == 0) {
        return Ok(None);
    }
    let mut i = 12;
    while let (Some(kind), Some(len)) = (b.get(i..i + 4), u32le(b, i + 4)) {
        let len = len as usize;
        let body = b.get(i + 8..(i + 8).saturating_add(len)).ok_or_else(|| truncated(fmt, "a chunk runs past the end"))?;
        if kind == b"ANMF" {
            if body.len() < 16 {
                return Err(invalid(fmt, "ANMF chunk too short"));
            }
            let (x, y) = (2 * u24le(body, 0).unwrap_or(0), 2 * u24le(body, 3).unwrap_or(0));
            let (width, height) = (u24le(body, 6).unwrap_or(0) + 1, u24le(body, 9).unwrap_or(0) + 1);
            // The frame's own chunks: ALPH (optional), then VP8 or VP8L; others are skipped.
            let (mut alph, mut bits): (Option<&[u8]>, Option<&[u8]>) = (None, None);
            let mut j = 16;
            while let (Some(k), Some(l)) = (body.get(j..j + 4), u32le(body, j + 4)) {
                let l = l as usize;
                let chunk = body.get(j..(j + 8).saturating_add(l)).ok_or_else(|| truncated(fmt, "a frame chunk runs past the end"))?;
                match k {
                    b"ALPH" => alph = Some(chunk),
                    b"VP8 " | b"VP8L" => {
                        bits = Some(chunk);
                        break;
                    }
                    _ => {}
                }
                j += 8 + l + (l & 1);
            }
            let bits = bits.ok_or_else(|| invalid(fmt, "the first frame has no VP8/VP8L bitstream"))?;
            let pad = |c: &[u8]| -> Vec<u8> {
                let mut v = c.to_vec();
                if v.len() % 2 == 1 {
                    v.push(0);
                }
                v
            };
            let mut payload = b"WEBP".to_vec();
            if let (Some(a), b"VP8 ") = (alph, &bits[..4]) {
                let mut vp8x = b"VP8X\x0a\0\0\0\x10\0\0\0".to_vec();
                vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
                vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
                payload.extend_from_slice(&vp8x);
                payload.extend_from_slice(&pad(a));
            }
            payload.extend_from_slice(&pad(bits));
            let mut still = b"RIFF".to_vec();
            still.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            still.extend_from_slice(&payload);
            return Ok(Some(WebPFrame { x, y, width, height, still }));
        }
        i += 8 + len + (len & 1);
    }
    Err(invalid(fmt, "animated WebP without frames"))
}

/// The first frame as Pillow gets it from libwebp's WebPAnimDecoder: a keyframe, so drawn on
/// a canvas cleared to transparent black (0, 0, 0, 0) without blending; RGBA output, taken as
/// RGB (alpha dropped) when the file has no alpha flag.
fn decode_webp_first_frame(h: &Header, f: &WebPFrame, max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::WebP;
    let (cw, ch) = (h.width as usize, h.height as usize);
    if f.x as usize + f.width as usize > cw || f.y as usize + f.height as usize > ch {
        return Err(invalid(fmt, "the first frame lies outside the canvas"));
    }
    let mut d = image_webp::WebPDecoder::new(Cursor::new(&f.still[..])).map_err(|e| codec_err(fmt, e))?;
    d.set_memory_limit(max_alloc.min(usize::MAX as u64) as usize);
    if d.dimensions() != (f.width, f.height) {
        return Err(invalid(fmt, "the first frame's bitstream size differs from its ANMF size"));
    }
    let alpha = d.has_alpha();
    let size = d.output_buffer_size().ok_or_else(|| EngineError::LimitExceeded("image: WebP frame is too large".into()))?;
    let mut buf = vec![0u8; size];
    d.read_image(&mut buf).map_err(|e| codec_err(fmt, e))?;
    let src_bands = if alpha { 4 } else { 3 };
    let mut canvas = vec![0u8; cw * ch * 4];
    for y in 0..f.height as usize {
        for x in 0..f.width as usize {
            let s = &buf[(y * f.width as usize + x) * src_bands..][..src_bands];
            let o = ((f.y as usize + y) * cw + f.x as usize + x) * 4;
            canvas[o..o + 3].copy_from_slice(&s[..3]);
            canvas[o + 3] = if alpha { s[3] } else { 255 };
        }
    }
    if h.mode == "RGBA" {
        Ok(u8px(h.width, h.height, canvas, Mode8::Rgba, false))
    } else {
        Ok(u8px(h.width, h.height, canvas.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(), Mode8::Rgb, false))
    }
}

fn decode_bmp(h: &Header, b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::Bmp;
    let mut r = image::ImageReader::with_format(Cursor::new(b), image::ImageFormat::Bmp);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_alloc);
    r.limits(limits);
    let img = r.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => EngineError::LimitExceeded(format!("image: BMP decoding exceeds a limit ({l})")),
        other => codec_err(fmt, other),
    })?;
    let (w, hh) = (img.width(), img.height());
    Ok(match h.mode {
        "RGBA" => u8px(w, hh, img.into_rgba8().into_raw(), Mode8::Rgba, false),
        "L" => u8px(w, hh, img.into_luma8().into_raw(), Mode8::L, false),
        // The identity grey palette (L) and black/white (1): the RGB expansion is grey.
        "1" => u8px(w, hh, img.into_rgb8().into_raw().chunks_exact(3).map(|p| p[0]).collect(), Mode8::L, true),
        "P" => u8px(w, hh, img.into_rgb8().into_raw(), Mode8::Rgb, true),
        _ => u8px(w, hh, img.into_rgb8().into_raw(), Mode8::Rgb, false),
    })
}

/// What TiffImagePlugin's OPEN_INFO table makes of the first IFD: the Pillow mode, and how
/// the samples are laid out for the decoder below.
struct TiffLayout {
    width: u32,
    height: u32,
    mode: &'static str,
    /// Photometric 3: indices of `bits` bits into the ColorMap.
    palette_bits: Option<u16>,
    /// Compression 7 (JPEG): each strip or tile is a JPEG stream, decoded by libjpeg.
    jpeg: bool,
    /// RGBA samples are premultiplied (ExtraSamples = 1: Pillow's "RGBa" unpacker).
    premultiplied: bool,
    /// The 4th (RGB) or 2nd (grey) sample is not alpha (ExtraSamples = 0): dropped.
    drop_extra: bool,
}

fn tiff_decoder(b: &[u8]) -> Result<tiff::decoder::Decoder<Cursor<&[u8]>>> {
    tiff::decoder::Decoder::new(Cursor::new(b)).map_err(|e| codec_err(Format::Tiff, e))
}

fn tiff_layout(b: &[u8]) -> Result<TiffLayout> {
    let fmt = Format::Tiff;
    let mut d = tiff_decoder(b)?;
    let (width, height) = d.dimensions().map_err(|e| codec_err(fmt, e))?;
    use tiff::tags::Tag;
    let tag16 = |d: &mut tiff::decoder::Decoder<Cursor<&[u8]>>, t: Tag| -> Result<Option<u16>> {
        d.find_tag_unsigned::<u16>(t).map_err(|e| codec_err(fmt, e))
    };
    let photometric = tag16(&mut d, Tag::PhotometricInterpretation)?;
    let compression = tag16(&mut d, Tag::Compression)?.unwrap_or(1);
    let spp = tag16(&mut d, Tag::SamplesPerPixel)?.unwrap_or(1);
    let bps = d.find_tag_unsigned_vec::<u16>(Tag::BitsPerSample).map_err(|e| codec_err(fmt, e))?.unwrap_or_else(|| vec![1]);
    let extra = d.find_tag_unsigned_vec::<u16>(Tag::ExtraSamples).map_err(|e| codec_err(fmt, e))?.unwrap_or_default();
    let planar = tag16(&mut d, Tag::PlanarConfiguration)?.unwrap_or(1);
    let unsupported = |what: String| EngineError::Unsupported(format!("image: TIFF {what} is not supported"));
    let mut t = TiffLayout { width, height, mode: "", palette_bits: None, jpeg: false, premultiplied: false, drop_extra: false };
    if compression == 6 {
        return Err(unsupported("old-style JPEG compression (6)".into()));
    }
    if compression == 7 {
        // libtiff hands each strip to libjpeg; Pillow asks for RGB output from YCbCr.
        if planar != 1 {
            return Err(unsupported("JPEG compression with separate planes".into()));
        }
        t.jpeg = true;
        t.mode = match (photometric, spp) {
            (Some(6 | 2), 3) => "RGB",
            (Some(0 | 1), 1) => "L",
            (p, n) => return Err(unsupported(format!("JPEG compression with photometric {p:?} and {n} samples"))),
        };
        return Ok(t);
    }
    if photometric == Some(3) {
        let bits = bps.first().copied().unwrap_or(0);
        if spp != 1 || !matches!(bits, 1 | 2 | 4 | 8) {
            return Err(unsupported(format!("palette image with {spp} samples of {bps:?} bits")));
        }
        t.mode = "P";
        t.palette_bits = Some(bits);
        return Ok(t);
    }
    let ct = d.colortype().map_err(|e| codec_err(fmt, e))?;
    (t.mode, t.drop_extra, t.premultiplied) = tiff_plain_mode(ct, photometric, &extra, b.starts_with(b"MM"))?;
    Ok(t)
}

/// The Pillow mode of an uncompressed/LZW/Deflate/PackBits TIFF that is not a palette image,
/// as TiffImagePlugin's OPEN_INFO maps it, with whether an unassociated extra sample is
/// dropped (`drop_extra`) and whether the alpha is associated (`premultiplied`).
fn tiff_plain_mode(ct: tiff::ColorType, photometric: Option<u16>, extra: &[u16], big_endian: bool) -> Result<(&'static str, bool, bool)> {
    use tiff::ColorType as C;
    let unsupported = |what: String| EngineError::Unsupported(format!("image: TIFF {what} is not supported"));
    Ok(match ct {
        C::Gray(1) => ("1", false, false),
        C::Gray(8) => ("L", false, false),
        // TiffImagePlugin: big-endian files open as I;16B.
        C::Gray(16) if big_endian => ("I;16B", false, false),
        C::Gray(16) => ("I;16", false, false),
        C::GrayA(8) => ("LA", false, false),
        C::Multiband { bit_depth: 8, num_samples: 2 } if matches!(photometric, Some(0 | 1)) => match extra.first() {
            Some(2) => ("LA", false, false),
            Some(0) => ("L", true, false),
            other => return Err(unsupported(format!("grey + extra sample of kind {other:?}"))),
        },
        C::RGB(8 | 16) => ("RGB", false, false),
        C::RGBA(8 | 16) => match extra.first() {
            Some(0) => ("RGB", true, false),
            Some(1) => ("RGBA", false, true),
            _ => ("RGBA", false, false),
        },
        C::CMYK(8) => ("CMYK", false, false),
        other => {
            return Err(unsupported(format!(
                "colour type {other:?} (supported: 1-bit, 8-bit and 16-bit grey, 8-bit grey+alpha, 8/16-bit RGB and \
                 RGBA, 8-bit CMYK, 1/2/4/8-bit palette, JPEG-compressed RGB/YCbCr and grey)"
            )))
        }
    })
}

/// A copy of a TIFF with the first IFD's PhotometricInterpretation set to BlackIsZero, so
/// that the tiff crate (which refuses palette images) decodes the index plane as grey.
fn tiff_as_grey(b: &[u8]) -> Option<Vec<u8>> {
    let le = b.starts_with(b"II");
    let rd = |i: usize, n: usize| -> Option<u64> {
        let s = b.get(i..i + n)?;
        Some(if le { s.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64) } else { s.iter().fold(0u64, |a, &x| a << 8 | x as u64) })
    };
    let big = rd(2, 2)? == 43;
    let (ifd, count_len, entry_len, value_at) = if big { (rd(8, 8)? as usize, 8, 20, 12) } else { (rd(4, 4)? as usize, 2, 12, 8) };
    let n = rd(ifd, count_len)? as usize;
    let mut out = b.to_vec();
    for k in 0..n {
        let e = ifd + count_len + entry_len * k;
        if rd(e, 2)? == 262 && rd(e + 2, 2)? == 3 {
            let v = if le { [1u8, 0] } else { [0u8, 1] };
            out.get_mut(e + value_at..e + value_at + 2)?.copy_from_slice(&v);
            return Some(out);
        }
    }
    None
}

/// Packed rows of `bits`-bit samples (MSB first, rows padded to a byte) -> one byte each.
fn unpack_rows(v: &[u8], w: usize, h: usize, bits: usize) -> Option<Vec<u8>> {
    let row = (w * bits).div_ceil(8);
    if v.len() < row * h {
        return None;
    }
    let per = 8 / bits;
    let mask = ((1u16 << bits) - 1) as u8;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            out.push((v[y * row + x / per] >> (8 - bits * (x % per + 1))) & mask);
        }
    }
    Some(out)
}

/// JPEG-compressed TIFF as Pillow reads it: libtiff gives every strip (or tile) to libjpeg
/// as its own stream, after the shared JPEGTables, with RGB output for YCbCr
/// (JPEGCOLORMODE_RGB: libjpeg's fancy upsampling and colour conversion). Here each chunk
/// is made into one stream, tables + chunk, and decoded by the same libjpeg-turbo as JPEG
/// files.
fn decode_tiff_jpeg(t: &TiffLayout, b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::Tiff;
    use tiff::tags::Tag;
    let mut d = tiff_decoder(b)?;
    let vec64 = |d: &mut tiff::decoder::Decoder<Cursor<&[u8]>>, tag: Tag| -> Result<Option<Vec<u64>>> {
        d.find_tag_unsigned_vec::<u64>(tag).map_err(|e| codec_err(fmt, e))
    };
    let tables = match d.find_tag(Tag::JPEGTables).map_err(|e| codec_err(fmt, e))? {
        Some(v) => Some(v.into_u8_vec().map_err(|e| codec_err(fmt, e))?),
        None => None,
    };
    let (w, h) = (t.width as usize, t.height as usize);
    let tiled = d.find_tag(Tag::TileWidth).map_err(|e| codec_err(fmt, e))?.is_some();
    let (offsets, counts, cw, ch) = if tiled {
        let tw = d.get_tag_u32(Tag::TileWidth).map_err(|e| codec_err(fmt, e))? as usize;
        let tl = d.get_tag_u32(Tag::TileLength).map_err(|e| codec_err(fmt, e))? as usize;
        (vec64(&mut d, Tag::TileOffsets)?, vec64(&mut d, Tag::TileByteCounts)?, tw, tl)
    } else {
        let rps = d.find_tag_unsigned::<u64>(Tag::RowsPerStrip).map_err(|e| codec_err(fmt, e))?.unwrap_or(h as u64);
        (vec64(&mut d, Tag::StripOffsets)?, vec64(&mut d, Tag::StripByteCounts)?, w, (rps as usize).clamp(1, h))
    };
    let (Some(offsets), Some(counts)) = (offsets, counts) else { return Err(invalid(fmt, "no strip or tile offsets")) };
    if cw == 0 || ch == 0 {
        return Err(invalid(fmt, "tile size 0"));
    }
    let across = w.div_ceil(cw);
    let down = h.div_ceil(ch);
    if offsets.len() < across * down || counts.len() < across * down {
        return Err(truncated(fmt, format!("{} chunks listed, {} needed", offsets.len().min(counts.len()), across * down)));
    }
    let bands = if t.mode == "RGB" { 3 } else { 1 };
    let mut px = vec![0u8; w * h * bands];
    for (i, (&off, &len)) in offsets.iter().zip(&counts).take(across * down).enumerate() {
        let (x0, y0) = ((i % across) * cw, (i / across) * ch);
        let chunk = b
            .get(off as usize..(off as usize).saturating_add(len as usize))
            .ok_or_else(|| truncated(fmt, format!("chunk {i} runs past the end of the data")))?;
        let stream: Vec<u8> = match &tables {
            // The tables stream is SOI ... EOI, the chunk SOI ... EOI: drop the EOI and SOI.
            Some(tb) if tb.len() >= 4 && chunk.len() >= 2 => [&tb[..tb.len() - 2], &chunk[2..]].concat(),
            _ => chunk.to_vec(),
        };
        let (sw, sh, smode) = jpeg_header(&stream).map_err(|e| e.context(&format!("TIFF chunk {i}")))?;
        if (smode == "L") != (bands == 1) || smode == "CMYK" {
            return Err(invalid(fmt, format!("chunk {i} is a {smode} JPEG in a {} image", t.mode)));
        }
        let hdr = Header { format: Format::Jpeg, width: sw, height: sh, mode: smode };
        let dj = decode_jpeg(&hdr, &stream, max_alloc).map_err(|e| e.context(&format!("TIFF chunk {i}")))?;
        let Pixels::U8(cpx, _) = dj.pixels else { return Err(invalid(fmt, "unexpected JPEG sample type")) };
        let (sw, sh) = (sw as usize, sh as usize);
        for y in 0..sh.min(h.saturating_sub(y0)) {
            let n = sw.min(w.saturating_sub(x0)) * bands;
            let dst = ((y0 + y) * w + x0) * bands;
            px[dst..dst + n].copy_from_slice(&cpx[y * sw * bands..y * sw * bands + n]);
        }
    }
    Ok(u8px(t.width, t.height, px, if bands == 3 { Mode8::Rgb } else { Mode8::L }, false))
}

/// Pillow's "RGBa" unpacker: premultiplied samples back to straight alpha (alpha 0: all 0).
fn unpremultiply_rgba_tiff(px: &mut [u8]) {
    for p in px.chunks_exact_mut(4) {
        let a = p[3] as u32;
        if a == 0 {
            p.copy_from_slice(&[0, 0, 0, 0]);
        } else if a != 255 {
            for c in &mut p[..3] {
                *c = (*c as u32 * 255 / a).min(255) as u8;
            }
        }
    }
}

fn decode_tiff(h: &Header, b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let t = tiff_layout(b)?;
    if t.jpeg {
        return decode_tiff_jpeg(&t, b, max_alloc);
    }
    if let Some(bits) = t.palette_bits {
        let fmt = Format::Tiff;
        let cmap = tiff_decoder(b)?
            .find_tag_unsigned_vec::<u16>(tiff::tags::Tag::ColorMap)
            .map_err(|e| codec_err(fmt, e))?
            .ok_or_else(|| invalid(fmt, "palette image without ColorMap"))?;
        let n = 1usize << bits;
        if cmap.len() != 3 * n {
            return Err(invalid(fmt, format!("ColorMap has {} values, expected {}", cmap.len(), 3 * n)));
        }
        // TiffImagePlugin: palette = [v // 256 for v in COLORMAP], laid out "RGB;L" (all reds,
        // then all greens, then all blues).
        let pal: Vec<u8> = (0..n).flat_map(|i| [cmap[i], cmap[n + i], cmap[2 * n + i]].map(|v| (v >> 8) as u8)).collect();
        let grey = tiff_as_grey(b).ok_or_else(|| invalid(fmt, "no PhotometricInterpretation entry"))?;
        let gh = Header { mode: if bits == 1 { "1" } else { "L" }, ..*h };
        let idx = decode_tiff_plain(&gh, &grey, max_alloc, bits)?;
        let count = h.width as usize * h.height as usize;
        return Ok(u8px(h.width, h.height, expand_palette(idx.into_iter(), &pal, count), Mode8::Rgb, true));
    }
    // With an extra sample that is not alpha, the decoder still returns it: decode as LA/RGBA.
    let dm = match (t.mode, t.drop_extra) {
        ("RGB", true) => "RGBA",
        ("L", true) => "LA",
        (m, _) => m,
    };
    let mut d = decode_tiff_samples(&Header { mode: dm, ..*h }, b, max_alloc)?;
    if t.drop_extra || t.premultiplied {
        if let Pixels::U8(px, mode) = &mut d.pixels {
            match (*mode, t.drop_extra) {
                (Mode8::Rgba, true) => {
                    *px = px.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
                    *mode = Mode8::Rgb;
                }
                (Mode8::La, true) => {
                    *px = px.chunks_exact(2).map(|p| p[0]).collect();
                    *mode = Mode8::L;
                }
                (Mode8::Rgba, false) => unpremultiply_rgba_tiff(px),
                _ => {}
            }
        }
    }
    Ok(d)
}

/// The raw index plane of a palette TIFF (made grey by `tiff_as_grey`), one byte a pixel.
fn decode_tiff_plain(h: &Header, b: &[u8], max_alloc: u64, bits: u16) -> Result<Vec<u8>> {
    let fmt = Format::Tiff;
    let mut d = tiff_decoder(b)?.with_limits(tiff_limits(max_alloc));
    let res = d.read_image().map_err(tiff_err)?;
    let (w, hh) = (h.width as usize, h.height as usize);
    match res {
        tiff::decoder::DecodingResult::U8(v) if bits == 8 && v.len() >= w * hh => Ok(v[..w * hh].to_vec()),
        tiff::decoder::DecodingResult::U8(v) if bits < 8 => {
            unpack_rows(&v, w, hh, bits as usize).ok_or_else(|| invalid(fmt, "sample buffer does not match the image size"))
        }
        _ => Err(invalid(fmt, "unexpected sample layout for a palette image")),
    }
}

fn tiff_limits(max_alloc: u64) -> tiff::decoder::Limits {
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = max_alloc.min(usize::MAX as u64) as usize;
    limits.intermediate_buffer_size = max_alloc.min(usize::MAX as u64) as usize;
    limits
}

fn tiff_err(e: tiff::TiffError) -> EngineError {
    match e {
        tiff::TiffError::LimitsExceeded => EngineError::LimitExceeded("image: TIFF decoding would exceed the memory limit".into()),
        other => codec_err(Format::Tiff, other),
    }
}

fn decode_tiff_samples(h: &Header, b: &[u8], max_alloc: u64) -> Result<Decoded> {
    let fmt = Format::Tiff;
    let mut d = tiff_decoder(b)?.with_limits(tiff_limits(max_alloc));
    let (w, hh) = d.dimensions().map_err(|e| codec_err(fmt, e))?;
    let res = d.read_image().map_err(tiff_err)?;
    use tiff::decoder::DecodingResult as R;
    let n = w as usize * hh as usize;
    let bad = || invalid(fmt, "sample buffer does not match the image size");
    Ok(match (h.mode, res) {
        ("I;16" | "I;16B", R::U16(v)) if v.len() >= n => {
            Decoded { width: w, height: hh, pixels: Pixels::U16(v[..n].to_vec(), h.mode == "I;16B"), nearest: false }
        }
        ("1", R::U8(v)) => {
            // tiff returns packed 1-bit rows; BlackIsZero assumed (WhiteIsZero is inverted by Pillow).
            let row = (w as usize).div_ceil(8);
            if v.len() < row * hh as usize {
                return Err(bad());
            }
            let mut out = Vec::with_capacity(n);
            for y in 0..hh as usize {
                for x in 0..w as usize {
                    out.push(((v[y * row + x / 8] >> (7 - x % 8)) & 1) * 255);
                }
            }
            u8px(w, hh, out, Mode8::L, true)
        }
        ("L", R::U8(v)) if v.len() >= n => u8px(w, hh, v[..n].to_vec(), Mode8::L, false),
        ("LA", R::U8(v)) if v.len() >= 2 * n => u8px(w, hh, v[..2 * n].to_vec(), Mode8::La, false),
        ("RGB", R::U8(v)) if v.len() >= 3 * n => u8px(w, hh, v[..3 * n].to_vec(), Mode8::Rgb, false),
        ("RGB", R::U16(v)) if v.len() >= 3 * n => u8px(w, hh, v[..3 * n].iter().map(|s| (s >> 8) as u8).collect(), Mode8::Rgb, false),
        ("RGBA", R::U8(v)) if v.len() >= 4 * n => u8px(w, hh, v[..4 * n].to_vec(), Mode8::Rgba, false),
        ("RGBA", R::U16(v)) if v.len() >= 4 * n => u8px(w, hh, v[..4 * n].iter().map(|s| (s >> 8) as u8).collect(), Mode8::Rgba, false),
        ("CMYK", R::U8(v)) if v.len() >= 4 * n => u8px(w, hh, v[..4 * n].to_vec(), Mode8::Cmyk, false),
        (mode, _) => return Err(EngineError::Unsupported(format!("image: TIFF mode {mode} with this sample layout is not supported"))),
    })
}
