//! Minimal NumPy `.npy` (format 1.0) writer for little-endian float32 C-order arrays: what
//! `mobileclip preprocess --out` writes, for comparison with open_clip's tensors in Python.

/// Serialises `data` with `shape` as a `.npy` file body.
pub fn to_bytes(data: &[f32], shape: &[usize]) -> Result<Vec<u8>, String> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(format!("{} values for shape {shape:?}", data.len()));
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
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes numpy 1.x/2.x writes for `np.save(f, np.arange(6, dtype='<f4').reshape(2, 3) - 2.5)`.
    #[test]
    fn writes_what_numpy_writes() {
        let v: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        let b = to_bytes(&v, &[2, 3]).unwrap();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut want = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
        want.extend_from_slice(header.as_bytes());
        want.extend(std::iter::repeat_n(b' ', 118 - header.len() - 1));
        want.push(b'\n');
        want.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        assert_eq!(b, want);
        assert_eq!((b.len() - 24) % 64, 0);
        // 1-d shapes have the tuple's trailing comma.
        let one = to_bytes(&[1.0], &[1]).unwrap();
        assert!(std::str::from_utf8(&one[10..74]).unwrap().contains("'shape': (1,), }"));
        assert!(to_bytes(&v, &[4, 2]).is_err());
    }
}
