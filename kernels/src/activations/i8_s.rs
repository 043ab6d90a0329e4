//! Per-token int8 absmax activations (bitnet.cpp's I8_S, type 37): BitNet b1.58's W1.58A8 input.
//!
//! One scale per activation row: γ = 127 / max(max|x|, 1e-5), q = round_half_even(x·γ) clamped to
//! [-128, 127], and the row sum Σq so that offset-coded weights (code = w + 1) can subtract it.
//! As in the fork's `quantize_row_i8_s` (llama.cpp fork 406a5036), the maximum and the quotient
//! 127/max are taken in f64, then rounded to f32 (the same as an f32 division: 53 ≥ 2·24 + 2 bits
//! makes the double rounding harmless); x·γ is an f32 product.

use super::nearest_int;
use crate::formats::check_finite;
use crate::KernelError;

/// One quantized activation row.
#[derive(Debug, Clone, PartialEq)]
pub struct I8sRow {
    pub qs: Vec<i8>,
    /// Σ qs, what an offset code's extra +1 adds to the integer dot.
    pub sum: i32,
    /// γ, the multiplier that took x to q (divide by it to go back).
    pub scale: f32,
}

pub const NAME: &str = "i8_s";

/// Quantize one activation row (a token) with its own absmax scale.
pub fn quantize_i8_s(x: &[f32]) -> Result<I8sRow, KernelError> {
    check_finite(NAME, "activations", x)?;
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
        // SAFETY: the features were just detected.
        return Ok(unsafe { x86::quantize_avx512(x) });
    }
    Ok(quantize_ref(x))
}

/// γ for a row whose largest magnitude is `max_abs` (f64, as the fork takes it).
fn gamma(max_abs: f32) -> f32 {
    (127.0 / f64::from(max_abs).max(1e-5)) as f32
}

/// One value: round half to even, clamped (a product can pass 127 by f32 rounding of γ).
fn quantize_one(v: f32, gamma: f32) -> i8 {
    nearest_int(v * gamma).clamp(-128, 127) as i8
}

/// The reference quantizer (and the oracle of [`x86::quantize_avx512`]).
fn quantize_ref(x: &[f32]) -> I8sRow {
    let scale = gamma(x.iter().fold(0.0f32, |m, &v| m.max(v.abs())));
    let qs: Vec<i8> = x.iter().map(|&v| quantize_one(v, scale)).collect();
    let sum = qs.iter().map(|&q| i32::from(q)).sum();
    I8sRow { qs, sum, scale }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{gamma, quantize_one, I8sRow};

    /// [`super::quantize_ref`] 16 values at a time: `cvtps_epi32` rounds half to even, as
    /// `nearest_int` does over the ±128 range the products stay in.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn quantize_avx512(x: &[f32]) -> I8sRow {
        let load = |c: &[f32]| {
            // SAFETY: `c` is 16 f32, one unaligned 512-bit load.
            unsafe { _mm512_loadu_ps(c.as_ptr()) }
        };
        let chunks = x.chunks_exact(16);
        let tail = chunks.remainder();
        let m = chunks.clone().fold(_mm512_setzero_ps(), |m, c| {
            _mm512_max_ps(m, _mm512_abs_ps(load(c)))
        });
        let max = tail
            .iter()
            .fold(_mm512_reduce_max_ps(m), |m, v| m.max(v.abs()));
        let scale = gamma(max);
        let g = _mm512_set1_ps(scale);
        let (lo, hi) = (_mm512_set1_epi32(-128), _mm512_set1_epi32(127));
        let mut qs = vec![0i8; x.len()];
        let mut sums = _mm512_setzero_si512();
        for (c, q) in chunks.zip(qs.chunks_exact_mut(16)) {
            let i = _mm512_cvtps_epi32(_mm512_mul_ps(load(c), g));
            let i = _mm512_max_epi32(_mm512_min_epi32(i, hi), lo);
            sums = _mm512_add_epi32(sums, i);
            // SAFETY: `q` is 16 bytes, one unaligned 128-bit store.
            unsafe { _mm_storeu_si128(q.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(i)) };
        }
        let mut sum = _mm512_reduce_add_epi32(sums);
        let done = x.len() - tail.len();
        for (q, &v) in qs[done..].iter_mut().zip(tail) {
            *q = quantize_one(v, scale);
            sum += i32::from(*q);
        }
        I8sRow { qs, sum, scale }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatched_quantizer_equals_the_reference_bit_for_bit() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for len in [1, 15, 16, 17, 33, 2560, 6913] {
            for case in 0..8 {
                let x: Vec<f32> = (0..len)
                    .map(|i| match case {
                        // Halves around a maximum of 127 put every product on a tie.
                        0 => (next() % 255) as f32 - 127.0 + if i % 3 == 0 { 0.5 } else { 0.0 },
                        1 => 0.0,
                        2 => -1e-7,
                        _ => (next() as i32) as f32 * 1e-9 * case as f32,
                    })
                    .collect();
                let (got, want) = (quantize_i8_s(&x).unwrap(), quantize_ref(&x));
                assert_eq!(got, want, "length {len}, case {case}");
            }
        }
    }

    #[test]
    fn ties_round_to_even_like_the_forks_nearest_int() {
        // max = 127 gives γ = 1 exactly, so x·γ lands on the ties themselves.
        let a = quantize_i8_s(&[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5]).unwrap();
        assert_eq!(a.qs, [127, 0, 2, 2, 0, -2, -2]);
        assert_eq!(a.sum, 127);
        assert_eq!(a.scale, 1.0);
    }

    #[test]
    fn an_all_zero_token_uses_the_1e5_floor() {
        let a = quantize_i8_s(&[0.0; 8]).unwrap();
        assert_eq!(a.scale, (127.0f64 / 1e-5) as f32);
        assert!(a.qs.iter().all(|&q| q == 0) && a.sum == 0);
    }

    #[test]
    fn products_past_127_clamp() {
        // f32 rounding of γ can push the maximum's product just past 127; it must stay in range.
        for i in 1..10_000u32 {
            let m = 1.0 + i as f32 * 1.3e-4;
            let a = quantize_i8_s(&[m, -m]).unwrap();
            assert_eq!((a.qs[0], a.qs[1]), (127, -127), "max {m}");
        }
    }
}
