//! Q8_0 (ggml type 8): 32 weights as int8 with an f16 scale, 8.5 bits per weight. Activations: Q8_0.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use super::{BlockFormat, FormatInfo, Origin, RowDot};
use crate::activations::q8_0::{self, BlockQ8_0, QK8_0};
use crate::cpu::Isa;

pub struct Q8_0;

impl BlockFormat for Q8_0 {
    const INFO: FormatInfo = FormatInfo {
        name: "q8_0",
        block_size: QK8_0,
        block_bytes: 34,
        bits_per_weight: FormatInfo::bits(QK8_0, 34),
        activation: "q8_0",
        origin: Origin::Ggml,
        ternary: false,
    };
    type Block = BlockQ8_0;
    type Act = q8_0::Q8_0;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ8_0]) {
        q8_0::quantize_weights(src, dst);
    }

    fn dequantize_blocks(src: &[BlockQ8_0], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK8_0)) {
            let d = x.d.to_f32();
            for (out, &q) in y.iter_mut().zip(&x.qs) {
                *out = f32::from(q) * d;
            }
        }
    }

    fn dot_blocks(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
        dot_q8_0_q8_0(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }
}

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, RowDot<Q8_0>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_q8_0_q8_0_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::AvxVnni, x86::dot_q8_0_q8_0_avxvnni),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_q8_0_q8_0_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_q8_0_q8_0_neon),
    #[cfg(target_arch = "aarch64")]
    (Isa::Dotprod, aarch64::dot_q8_0_q8_0_dotprod),
];

pub fn dot_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&p, &q)| i32::from(p) * i32::from(q))
                .sum();
        sum += sumi as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}
