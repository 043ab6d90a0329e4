//! TQ2_0 (ggml type 35): 256 ternary weights in 66 bytes, 2.0625 bits per weight.
//!
//! Layout (ggml `block_tq2_0`): `qs[64]` then `d` (f16). qs is two 32-byte halves of 128 weights;
//! in half h, byte m holds weights 128h + m + 32n in bits 2n+1:2n (LSB first), as the code c = w + 1.
//! The quantizer takes d = max|x| per block and c = round_half_away(x / d) + 1, so it accepts any
//! input and rounds it, as ggml does. Activations: Q8_K.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytemuck::{Pod, Zeroable};

use super::{BlockFormat, FormatInfo, Origin, RowDot, RowsDot, WholeMatMul};
use crate::activations::q8_k::{BlockQ8K, Q8K, QK_K};
use crate::activations::F16Bytes;
use crate::cpu::Isa;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockTq2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: F16Bytes,
}

const _: () = assert!(std::mem::size_of::<BlockTq2_0>() == 66);

impl BlockTq2_0 {
    /// Ternary weight i of the block (-1, 0 or +1).
    pub fn weight(&self, i: usize) -> i8 {
        let (half, m, n) = (i / 128, i % 32, (i % 128) / 32);
        ((self.qs[32 * half + m] >> (2 * n)) & 3) as i8 - 1
    }
}

pub struct Tq2_0;

impl BlockFormat for Tq2_0 {
    const INFO: FormatInfo = FormatInfo {
        name: "tq2_0",
        block_size: QK_K,
        block_bytes: 66,
        bits_per_weight: FormatInfo::bits(QK_K, 66),
        activation: "q8_K",
        origin: Origin::Ggml,
        ternary: true,
    };
    type Block = BlockTq2_0;
    type Act = Q8K;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockTq2_0]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let d = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.qs = [0; QK_K / 4];
            for (i, &v) in x.iter().enumerate() {
                let code = (v * id).round() as i32 + 1;
                let (half, m, n) = (i / 128, i % 32, (i % 128) / 32);
                y.qs[32 * half + m] |= (code as u8) << (2 * n);
            }
            y.d = F16Bytes::from_f32(d);
        }
    }

    fn dequantize_blocks(src: &[BlockTq2_0], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.to_f32();
            for (i, out) in y.iter_mut().enumerate() {
                *out = f32::from(x.weight(i)) * d;
            }
        }
    }

    fn dot_blocks(w: &[BlockTq2_0], a: &[BlockQ8K]) -> f32 {
        dot_tq2_0_q8_k(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }

    fn multi_row_variants() -> &'static [(Isa, RowsDot<Self>)] {
        MULTI_ROW_VARIANTS
    }

    fn whole_variants() -> &'static [(Isa, Isa, WholeMatMul<Self>)] {
        &[
            #[cfg(target_arch = "x86_64")]
            (Isa::Amx, Isa::Avx512Vnni, amx::wrap),
        ]
    }
}

/// Multi-row kernels (decode shares activation loads across rows and prefetches the weights).
const MULTI_ROW_VARIANTS: &[(Isa, RowsDot<Tq2_0>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::rows_tq2_0_q8_k_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::AvxVnni, x86::rows_tq2_0_q8_k_avxvnni),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::rows_tq2_0_q8_k_avx512),
];

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, RowDot<Tq2_0>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_tq2_0_q8_k_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::AvxVnni, x86::dot_tq2_0_q8_k_avxvnni),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_tq2_0_q8_k_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_tq2_0_q8_k_neon),
    #[cfg(target_arch = "aarch64")]
    (Isa::Dotprod, aarch64::dot_tq2_0_q8_k_dotprod),
];

/// Σ over blocks of (Σ w·q) · d_w · d_a; the integer sum is exact.
pub fn dot_tq2_0_q8_k(w: &[BlockTq2_0], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let sumi: i32 = (0..QK_K)
            .map(|i| i32::from(x.weight(i)) * i32::from(y.qs[i]))
            .sum();
        sum += sumi as f32 * (y.d() * x.d.to_f32());
    }
    sum
}
