//! Minimal NumPy `.npy` (format 1.0) for little-endian float32 C-order arrays: what
//! `mobileclip preprocess --out` writes and what the tests read back from the reference side.

use std::io::Write;

use crate::error::{EngineError, Result};

/// Serialises `data` with `shape` as a `.npy` file body.
pub fn to_bytes(data: &[f32], shape: &[usize]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(EngineError::InvalidInput(format!("{} values for shape {shape:?}", data.len())));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple
    // of 64 and ended by a newline, as numpy writes it.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.write_all(&v.to_le_bytes()).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
    }
    Ok(out)
}

/// Parses a `.npy` holding little-endian float32 in C order; returns (values, shape).
pub fn from_bytes(bytes: &[u8]) -> Result<(Vec<f32>, Vec<usize>)> {
    let bad = |why: &str| EngineError::InvalidInput(format!("not a float32 .npy file: {why}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(bad("unknown version")),
    };
    let header =
        std::str::from_utf8(bytes.get(start..start + hlen).ok_or_else(|| bad("short header"))?).map_err(|_| bad("header is not text"))?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("only '<f4' in C order is read"));
    }
    let open = header.find("'shape': (").ok_or_else(|| bad("no shape"))? + "'shape': (".len();
    let close = header[open..].find(')').ok_or_else(|| bad("no shape"))? + open;
    let shape: Vec<usize> = header[open..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    let data = &bytes[start + hlen..];
    if data.len() != n * 4 {
        return Err(bad("data length does not match the shape"));
    }
    Ok((data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(), shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b = to_bytes(&v, &[2, 3, 4]).unwrap();
        assert_eq!((b.len() - v.len() * 4) % 64, 0);
        let (w, s) = from_bytes(&b).unwrap();
        assert_eq!((w, s), (v, vec![2, 3, 4]));
        assert!(from_bytes(b"garbage").is_err());
    }
}
