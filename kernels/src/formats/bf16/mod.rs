//! BF16 (ggml type 30): bfloat16, the other 16-bit baseline. Activations: BF16.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::{BlockFormat, FormatInfo, Origin, RowDot};
use crate::activations::{Bf16Act, Bf16Bytes, BlockActivation};
use crate::cpu::Isa;

pub struct Bf16;

impl BlockFormat for Bf16 {
    const INFO: FormatInfo = FormatInfo {
        name: "bf16",
        block_size: 1,
        block_bytes: 2,
        bits_per_weight: 16.0,
        activation: "bf16",
        origin: Origin::Ggml,
        ternary: false,
    };
    type Block = Bf16Bytes;
    type Act = Bf16Act;

    fn quantize_blocks(src: &[f32], dst: &mut [Bf16Bytes]) {
        Bf16Act::quantize_blocks(src, dst);
    }

    fn dequantize_blocks(src: &[Bf16Bytes], dst: &mut [f32]) {
        for (out, x) in dst.iter_mut().zip(src) {
            *out = x.to_f32();
        }
    }

    fn dot_blocks(w: &[Bf16Bytes], a: &[Bf16Bytes]) -> f32 {
        dot_bf16_bf16(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }
}

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, RowDot<Bf16>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_bf16_bf16_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_bf16_bf16_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_bf16_bf16_neon),
];

/// Products of the widened values, summed in f64 (ggml's generic path sums in `ggml_float`).
pub fn dot_bf16_bf16(w: &[Bf16Bytes], a: &[Bf16Bytes]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(x, y)| f64::from(x.to_f32() * y.to_f32()))
        .sum::<f64>() as f32
}
