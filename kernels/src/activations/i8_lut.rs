//! Per-token int8 activations as bitnet.cpp's lookup-table kernels (TL1, TL2) quantize them.
//!
//! The generated kernels (`codegen_tl1.py` / `codegen_tl2.py`: `per_tensor_quant`, then
//! `lut_ctor` / `three_lut_ctor` / `two_lut_ctor`) take, per token, max = max|x| over the whole
//! row, γ = 127 / max computed in f32, and q = round_half_even(x·γ) (NEON `vcvtnq`, AVX2
//! `_mm256_round_ps` to nearest). This differs from I8_S ([`super::i8_s`]): there is no 1e-5
//! floor on max (tiny tokens still use the full range), no clamp and no row sum (the tables hold
//! signed sums, so no offset needs subtracting). γ is an f32 quotient, the same value I8_S's f64
//! quotient rounds to. No clamp is needed: |x·γ| ≤ 127·(1 + 2⁻²³) rounds to at most 127, so
//! q ∈ [-127, 127].
//!
//! A row of zeros (or one whose max is so small that 127/max overflows f32) gives γ = +inf.
//! Upstream then converts NaN/inf products to garbage integers, but every output is
//! acc / γ · s = 0 whatever acc is; we store q = 0 and keep γ = inf, which yields the same zeros.

use crate::formats::check_finite;
use crate::KernelError;

pub const NAME: &str = "i8_lut";

/// One quantized activation row (a token), as the LUT kernels see it.
#[derive(Debug, Clone, PartialEq)]
pub struct LutActRow {
    pub qs: Vec<i8>,
    /// γ = 127 / max|x| (f32); outputs divide by it. +inf for an all-zero row.
    pub scale: f32,
}

/// Quantize one activation row the way the TL1/TL2 kernels do.
pub fn quantize_i8_lut(x: &[f32]) -> Result<LutActRow, KernelError> {
    check_finite(NAME, "activations", x)?;
    let max = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let scale = 127.0f32 / max;
    let qs = if scale.is_finite() {
        x.iter()
            // The clamp never bites (see module doc); it only makes the i8 cast obviously exact.
            .map(|&v| (v * scale).round_ties_even().clamp(-127.0, 127.0) as i8)
            .collect()
    } else {
        vec![0; x.len()]
    };
    Ok(LutActRow { qs, scale })
}

/// Turn a kernel's integer sum into the output, in the fork's order: (f32)acc / γ · s.
pub fn finish(acc: i32, act: &LutActRow, weight_scale: f32) -> f32 {
    acc as f32 / act.scale * weight_scale
}
