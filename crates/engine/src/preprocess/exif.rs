//! The EXIF orientation as Pillow 13.0.0's `Image.getexif()` finds it, for
//! `mobileclip.exif_orientation = apply` (`ImageOps.exif_transpose`), and the eight transposes.
//!
//! Where Pillow looks (and so where this looks):
//! - JPEG: APP1 segments starting `Exif\0\0` before the first scan (the first one holds the TIFF
//!   header; later ones are appended, as `JpegImagePlugin` does); XMP from APP1
//!   `http://ns.adobe.com/xap/1.0/\0` (the last one).
//! - PNG: the `eXIf` chunk anywhere before IEND (the last one: `load_end` reads chunks after
//!   IDAT too); XMP from an `iTXt` chunk `XML:com.adobe.xmp` (zlib-compressed or not).
//! - WebP: the first `EXIF` chunk (with or without the `Exif\0\0` prefix); XMP from `XMP `.
//! - TIFF: tag 274 in the first IFD of the file itself; XMP from tag 700 of that IFD.
//! - GIF, BMP: none (GIF XMP application extensions are not read here).
//!
//! The orientation is tag 274 of IFD0 when present (one BYTE/SHORT/LONG value); otherwise
//! `tiff:Orientation="N"` or `<tiff:Orientation>N` in the XMP, as `getexif` falls back to.
//! Values other than 2..8 leave the image as it is, as in `exif_transpose`. Malformed EXIF
//! (which makes Pillow raise) counts as no orientation.

use super::decode::Format;

/// `ImageOps.exif_transpose`'s methods, by orientation value.
// The variants are Pillow's `Image.Transpose` members by name, `TRANSPOSE` included.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transpose {
    FlipLeftRight,
    Rotate180,
    FlipTopBottom,
    Transpose,
    Rotate270,
    Transverse,
    Rotate90,
}

impl Transpose {
    pub(crate) fn from_orientation(o: u32) -> Option<Transpose> {
        Some(match o {
            2 => Transpose::FlipLeftRight,
            3 => Transpose::Rotate180,
            4 => Transpose::FlipTopBottom,
            5 => Transpose::Transpose,
            6 => Transpose::Rotate270,
            7 => Transpose::Transverse,
            8 => Transpose::Rotate90,
            _ => return None,
        })
    }

    /// Whether width and height swap.
    pub(crate) fn swaps(self) -> bool {
        matches!(self, Transpose::Transpose | Transpose::Rotate270 | Transpose::Transverse | Transpose::Rotate90)
    }
}

/// `px` (w x h, `bands` samples a pixel) transposed; the new size is (h, w) when `t.swaps()`.
pub(crate) fn transpose<T: Copy>(px: &[T], w: usize, h: usize, bands: usize, t: Transpose) -> Vec<T> {
    let (ow, oh) = if t.swaps() { (h, w) } else { (w, h) };
    let mut out = Vec::with_capacity(px.len());
    for y in 0..oh {
        for x in 0..ow {
            // The input pixel that lands at (x, y) (Pillow's Geometry.c transposes).
            let (sx, sy) = match t {
                Transpose::FlipLeftRight => (w - 1 - x, y),
                Transpose::Rotate180 => (w - 1 - x, h - 1 - y),
                Transpose::FlipTopBottom => (x, h - 1 - y),
                Transpose::Transpose => (y, x),
                Transpose::Rotate270 => (y, h - 1 - x),
                Transpose::Transverse => (w - 1 - y, h - 1 - x),
                Transpose::Rotate90 => (w - 1 - y, x),
            };
            let at = (sy * w + sx) * bands;
            out.extend_from_slice(&px[at..at + bands]);
        }
    }
    out
}

/// The orientation value Pillow's `getexif()` reports for this file (1 when there is none).
pub(crate) fn orientation(fmt: Format, b: &[u8]) -> u32 {
    let (exif, xmp) = match fmt {
        Format::Jpeg => jpeg_metadata(b),
        Format::Png => png_metadata(b),
        Format::WebP => webp_metadata(b),
        Format::Tiff => (Some(b.to_vec()), tiff_tag_bytes(b, 700)),
        Format::Gif | Format::Bmp => (None, None),
    };
    if let Some(o) = exif.as_deref().and_then(tiff_orientation) {
        return o;
    }
    xmp.as_deref().and_then(xmp_orientation).unwrap_or(1)
}

fn be16(b: &[u8], i: usize) -> Option<usize> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?) as usize)
}

fn jpeg_metadata(b: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (mut exif, mut xmp): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xff {
            i += 1;
            continue;
        }
        let m = b[i + 1];
        if m == 0xff {
            i += 1;
            continue;
        }
        if m == 0xd8 || (0xd0..=0xd7).contains(&m) || m == 0x01 {
            i += 2;
            continue;
        }
        if m == 0xda || m == 0xd9 {
            break;
        }
        let Some(len) = be16(b, i + 2) else { break };
        let Some(s) = b.get(i + 4..i + 2 + len.max(2)) else { break };
        if m == 0xe1 {
            if let Some(rest) = s.strip_prefix(b"Exif\0\0") {
                match &mut exif {
                    Some(e) => e.extend_from_slice(rest),
                    None => exif = Some(s.to_vec()),
                }
            } else if s.starts_with(b"http://ns.adobe.com/xap/1.0/\0") {
                xmp = s.splitn(2, |&c| c == 0).nth(1).map(|x| x.to_vec());
            }
        }
        i += 2 + len;
    }
    (exif, xmp)
}

fn png_metadata(b: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (mut exif, mut xmp) = (None, None);
    let mut i = 8;
    while let (Some(len), Some(kind)) = (b.get(i..i + 4), b.get(i + 4..i + 8)) {
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        let Some(data) = b.get(i + 8..(i + 8).saturating_add(len)) else { break };
        match kind {
            b"eXIf" => exif = Some(data.to_vec()),
            b"iTXt" => {
                // keyword \0 compression-flag compression-method language \0 translated \0 text
                if let Some(rest) = data.strip_prefix(b"XML:com.adobe.xmp\0") {
                    let (flag, method) = (rest.first().copied(), rest.get(1).copied());
                    let mut parts = rest.get(2..).unwrap_or_default().splitn(3, |&c| c == 0);
                    let (_, _, text) = (parts.next(), parts.next(), parts.next());
                    match (flag, method, text) {
                        (Some(0), _, Some(t)) => xmp = Some(t.to_vec()),
                        // Compressed (method 0 = zlib), bounded: XMP is a few kB.
                        (Some(_), Some(0), Some(t)) => {
                            if let Ok(v) = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(t, 1 << 22) {
                                xmp = Some(v);
                            }
                        }
                        _ => {}
                    }
                }
            }
            b"IEND" => break,
            _ => {}
        }
        i += 12 + len;
    }
    (exif, xmp)
}

fn webp_metadata(b: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (mut exif, mut xmp) = (None, None);
    let mut i = 12;
    while let (Some(kind), Some(len)) = (b.get(i..i + 4), b.get(i + 4..i + 8)) {
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let Some(data) = b.get(i + 8..(i + 8).saturating_add(len)) else { break };
        match kind {
            b"EXIF" if exif.is_none() => exif = Some(data.to_vec()),
            b"XMP " if xmp.is_none() => xmp = Some(data.to_vec()),
            _ => {}
        }
        i += 8 + len + (len & 1);
    }
    (exif, xmp)
}

/// The bytes of tag `tag` (BYTE or UNDEFINED) in IFD0 of a TIFF file.
fn tiff_tag_bytes(d: &[u8], tag: u32) -> Option<Vec<u8>> {
    let le = match d.get(0..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16at = |i: usize| -> Option<u32> {
        let s: [u8; 2] = d.get(i..i + 2)?.try_into().ok()?;
        Some(if le { u16::from_le_bytes(s) } else { u16::from_be_bytes(s) } as u32)
    };
    let u32at = |i: usize| -> Option<u32> {
        let s: [u8; 4] = d.get(i..i + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) })
    };
    let ifd = u32at(4)? as usize;
    for k in 0..u16at(ifd)? as usize {
        let e = ifd + 2 + 12 * k;
        if u16at(e)? == tag && matches!(u16at(e + 2)?, 1 | 7) {
            let n = u32at(e + 4)? as usize;
            let at = if n <= 4 { e + 8 } else { u32at(e + 8)? as usize };
            return d.get(at..at.checked_add(n)?).map(|x| x.to_vec());
        }
    }
    None
}

/// Tag 274 of IFD0 in a TIFF structure (optionally prefixed `Exif\0\0`).
fn tiff_orientation(d: &[u8]) -> Option<u32> {
    let d = d.strip_prefix(b"Exif\0\0").unwrap_or(d);
    let le = match d.get(0..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16at = |i: usize| -> Option<u32> {
        let s: [u8; 2] = d.get(i..i + 2)?.try_into().ok()?;
        Some(if le { u16::from_le_bytes(s) } else { u16::from_be_bytes(s) } as u32)
    };
    let u32at = |i: usize| -> Option<u32> {
        let s: [u8; 4] = d.get(i..i + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) })
    };
    let ifd = u32at(4)? as usize;
    let n = u16at(ifd)? as usize;
    for k in 0..n {
        let e = ifd + 2 + 12 * k;
        if u16at(e)? != 274 {
            continue;
        }
        let (typ, count) = (u16at(e + 2)?, u32at(e + 4)?);
        if count != 1 {
            return None;
        }
        // The value sits in the entry's first bytes (BYTE, SHORT, LONG and their signed forms).
        return match typ {
            1 | 6 => d.get(e + 8).map(|&v| v as u32),
            3 | 8 => u16at(e + 8),
            4 | 9 => u32at(e + 8),
            _ => None,
        };
    }
    None
}

/// Tag 274 of a TIFF file's first IFD (what TiffImagePlugin's `_setup` sizes the image by).
pub(crate) fn tiff_tag_orientation(b: &[u8]) -> Option<u32> {
    tiff_orientation(b)
}

/// `re.search(rb'tiff:Orientation(="|>)([0-9])', xmp)`.
fn xmp_orientation(x: &[u8]) -> Option<u32> {
    const KEY: &[u8] = b"tiff:Orientation";
    let mut i = 0;
    while let Some(p) = x.get(i..)?.windows(KEY.len()).position(|w| w == KEY) {
        let at = i + p + KEY.len();
        let digit = match x.get(at..) {
            Some([b'=', b'"', d, ..]) => Some(*d),
            Some([b'>', d, ..]) => Some(*d),
            _ => None,
        };
        if let Some(d) = digit.filter(u8::is_ascii_digit) {
            return Some((d - b'0') as u32);
        }
        i = at;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_move_the_corners_like_pillow() {
        // 3 x 2 image, one band: values = index.
        let px: Vec<u8> = (0..6).collect();
        // Pillow: Image.frombytes('L', (3, 2), bytes(range(6))).transpose(m).tobytes()
        let want: [(Transpose, [u8; 6]); 7] = [
            (Transpose::FlipLeftRight, [2, 1, 0, 5, 4, 3]),
            (Transpose::Rotate180, [5, 4, 3, 2, 1, 0]),
            (Transpose::FlipTopBottom, [3, 4, 5, 0, 1, 2]),
            (Transpose::Transpose, [0, 3, 1, 4, 2, 5]),
            (Transpose::Rotate270, [3, 0, 4, 1, 5, 2]),
            (Transpose::Transverse, [5, 2, 4, 1, 3, 0]),
            (Transpose::Rotate90, [2, 5, 1, 4, 0, 3]),
        ];
        for (t, w) in want {
            assert_eq!(transpose(&px, 3, 2, 1, t), w, "{t:?}");
        }
    }

    #[test]
    fn xmp_patterns() {
        assert_eq!(xmp_orientation(b"<a tiff:Orientation=\"6\"/>"), Some(6));
        assert_eq!(xmp_orientation(b"<tiff:Orientation>3</tiff:Orientation>"), Some(3));
        assert_eq!(xmp_orientation(b"tiff:Orientation='6' tiff:Orientation=\"8\""), Some(8));
        assert_eq!(xmp_orientation(b"nothing"), None);
    }
}
