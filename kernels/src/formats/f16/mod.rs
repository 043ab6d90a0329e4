//! F16 (ggml type 1): IEEE half precision, the full-precision baseline. Activations: F16.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::{BlockFormat, FormatInfo, Origin, RowDot, RowsDot};
use crate::activations::{BlockActivation, F16Act, F16Bytes};
use crate::cpu::Isa;

pub struct F16;

impl BlockFormat for F16 {
    const INFO: FormatInfo = FormatInfo {
        name: "f16",
        block_size: 1,
        block_bytes: 2,
        bits_per_weight: 16.0,
        activation: "f16",
        origin: Origin::Ggml,
        ternary: false,
    };
    type Block = F16Bytes;
    type Act = F16Act;

    fn quantize_blocks(src: &[f32], dst: &mut [F16Bytes]) {
        F16Act::quantize_blocks(src, dst);
    }

    fn dequantize_blocks(src: &[F16Bytes], dst: &mut [f32]) {
        for (out, x) in dst.iter_mut().zip(src) {
            *out = x.to_f32();
        }
    }

    fn dot_blocks(w: &[F16Bytes], a: &[F16Bytes]) -> f32 {
        dot_f16_f16(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }

    fn multi_row_variants() -> &'static [(Isa, RowsDot<Self>)] {
        &[
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, x86::rows_f16_f16_avx512),
        ]
    }
}

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, RowDot<F16>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_f16_f16_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_f16_f16_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_f16_f16_neon),
];

/// Products of the widened halves, summed in f64 (ggml's generic path sums in `ggml_float`).
pub fn dot_f16_f16(w: &[F16Bytes], a: &[F16Bytes]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(x, y)| f64::from(x.to_f32() * y.to_f32()))
        .sum::<f64>() as f32
}
