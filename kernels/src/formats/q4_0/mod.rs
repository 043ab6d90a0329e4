//! Q4_0 (ggml type 2), the INT4 baseline: 32 weights in 18 bytes, 4.5 bits per weight.
//!
//! Layout: `d` (f16) then `qs[16]`; byte j holds weight j in its low nibble and weight j + 16 in
//! its high nibble, as q + 8 with q in -8..7. d = m / -8 where m is the element of largest
//! magnitude (sign kept), so m itself maps to -8. Activations: Q8_0.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytemuck::{Pod, Zeroable};

use super::{BlockFormat, FormatInfo, Origin, RowDot, WholeMatMul};
use crate::activations::q8_0::{BlockQ8_0, Q8_0};
use crate::activations::F16Bytes;
use crate::cpu::Isa;

pub const QK4_0: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: F16Bytes,
    pub qs: [u8; QK4_0 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

impl BlockQ4_0 {
    /// Signed 4-bit value of weight i (-8..7).
    pub fn value(&self, i: usize) -> i8 {
        let b = self.qs[i % 16];
        let nibble = if i < 16 { b & 0x0f } else { b >> 4 };
        nibble as i8 - 8
    }
}

pub struct Q4_0;

impl BlockFormat for Q4_0 {
    const INFO: FormatInfo = FormatInfo {
        name: "q4_0",
        block_size: QK4_0,
        block_bytes: 18,
        bits_per_weight: FormatInfo::bits(QK4_0, 18),
        activation: "q8_0",
        origin: Origin::Ggml,
        ternary: false,
    };
    type Block = BlockQ4_0;
    type Act = Q8_0;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ4_0]) {
        for (x, y) in src.chunks_exact(QK4_0).zip(dst) {
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    max = v;
                }
            }
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = F16Bytes::from_f32(d);
            // Truncating x·id + 8.5 rounds half up onto 0..16; 16 (x = -m·…) clamps to 15.
            let code = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
            for j in 0..QK4_0 / 2 {
                y.qs[j] = code(x[j]) | (code(x[j + 16]) << 4);
            }
        }
    }

    fn dequantize_blocks(src: &[BlockQ4_0], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK4_0)) {
            let d = x.d.to_f32();
            for (i, out) in y.iter_mut().enumerate() {
                *out = f32::from(x.value(i)) * d;
            }
        }
    }

    fn dot_blocks(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
        dot_q4_0_q8_0(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }

    fn whole_variants() -> &'static [(Isa, Isa, WholeMatMul<Self>)] {
        &[
            #[cfg(target_arch = "x86_64")]
            (Isa::Amx, Isa::Avx512Vnni, amx::wrap),
        ]
    }
}

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, RowDot<Q4_0>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_q4_0_q8_0_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::AvxVnni, x86::dot_q4_0_q8_0_avxvnni),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_q4_0_q8_0_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_q4_0_q8_0_neon),
    #[cfg(target_arch = "aarch64")]
    (Isa::Dotprod, aarch64::dot_q4_0_q8_0_dotprod),
];

pub fn dot_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let sumi: i32 = (0..QK4_0)
            .map(|i| i32::from(x.value(i)) * i32::from(y.qs[i]))
            .sum();
        sum += sumi as f32 * x.d.to_f32() * y.d.to_f32();
    }
    sum
}
