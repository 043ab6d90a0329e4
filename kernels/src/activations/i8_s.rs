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
    let max = x.iter().fold(1e-5f64, |m, &v| m.max(f64::from(v.abs())));
    let scale = (127.0 / max) as f32;
    let qs: Vec<i8> = x
        .iter()
        .map(|&v| nearest_int(v * scale).clamp(-128, 127) as i8)
        .collect();
    let sum = qs.iter().map(|&q| i32::from(q)).sum();
    Ok(I8sRow { qs, sum, scale })
}

#[cfg(test)]
mod tests {
    use super::*;

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
