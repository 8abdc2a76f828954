//! The project's one deterministic generator: SplitMix64 values in [-1, 1), exact in f32.
//! The runtime's self-check and the micro-benchmarks draw their inputs from it, so runs (and
//! the numpy side of `mobileclip bench runtime`) agree without shipping data; the random-weight
//! test models ("mcrand v1", tests/reference/RANDOM_WEIGHTS.md) are built from the same stream.

/// `n` values in [-1, 1) from SplitMix64 seeded with `seed` (exact in f32).
pub(crate) fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_range_and_deterministic() {
        let a = uniform(1000, 5);
        assert_eq!(a, uniform(1000, 5));
        assert_ne!(a, uniform(1000, 6));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean: f32 = a.iter().sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.1, "mean {mean}");
    }
}
