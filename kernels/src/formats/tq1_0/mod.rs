//! TQ1_0 (ggml type 34): 256 ternary weights in 54 bytes, 1.6875 bits per weight.
//!
//! Layout (ggml `block_tq1_0`): `qs[48]`, `qh[4]`, `d` (f16). Five trits per byte (3^5 = 243):
//! qs[0..32] byte m packs weights m + 32n (n = 0..5, weights 0..160); qs[32..48] byte m packs
//! 160 + m + 16n (weights 160..240); qh[j] packs 240 + j + 4n (n = 0..4) plus a fifth zero trit.
//! A byte stores ceil(v·256/243) for v = Σ c_n·3^(4-n), first trit most significant, so trit n
//! comes out as ((byte·3^n mod 256)·3) >> 8 without division. Activations: Q8_K.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytemuck::{Pod, Zeroable};

use super::{BlockFormat, FormatInfo, Origin, RowDot};
use crate::activations::q8_k::{BlockQ8K, Q8K, QK_K};
use crate::activations::F16Bytes;
use crate::cpu::Isa;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockTq1_0 {
    pub qs: [u8; 48],
    pub qh: [u8; 4],
    pub d: F16Bytes,
}

const _: () = assert!(std::mem::size_of::<BlockTq1_0>() == 54);

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Where weight i lives: (byte index into qs ++ qh, trit position 0..5).
fn position(i: usize) -> (usize, usize) {
    match i {
        0..160 => (i % 32, i / 32),
        160..240 => (32 + (i - 160) % 16, (i - 160) / 16),
        _ => (48 + (i - 240) % 4, (i - 240) / 4),
    }
}

/// Trit n (0..5) of a packed byte, as the code 0, 1 or 2.
pub fn trit(byte: u8, n: usize) -> u8 {
    let q = byte.wrapping_mul(POW3[n]);
    ((u16::from(q) * 3) >> 8) as u8
}

/// Pack five codes (first most significant) into one byte.
fn pack_trits(codes: [u8; 5]) -> u8 {
    let v = codes.iter().fold(0u16, |v, &c| v * 3 + u16::from(c));
    (v * 256).div_ceil(243) as u8
}

impl BlockTq1_0 {
    fn byte(&self, idx: usize) -> u8 {
        if idx < 48 {
            self.qs[idx]
        } else {
            self.qh[idx - 48]
        }
    }

    /// Ternary weight i of the block (-1, 0 or +1).
    pub fn weight(&self, i: usize) -> i8 {
        let (idx, n) = position(i);
        trit(self.byte(idx), n) as i8 - 1
    }
}

pub struct Tq1_0;

impl BlockFormat for Tq1_0 {
    const INFO: FormatInfo = FormatInfo {
        name: "tq1_0",
        block_size: QK_K,
        block_bytes: 54,
        bits_per_weight: FormatInfo::bits(QK_K, 54),
        activation: "q8_K",
        origin: Origin::Ggml,
        ternary: true,
    };
    type Block = BlockTq1_0;
    type Act = Q8K;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockTq1_0]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let d = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            // codes[byte][trit]; the fifth trit of each qh byte stays 0.
            let mut codes = [[0u8; 5]; 52];
            for (i, &v) in x.iter().enumerate() {
                let (idx, n) = position(i);
                codes[idx][n] = ((v * id).round() as i32 + 1) as u8;
            }
            for (idx, c) in codes.iter().enumerate() {
                let b = pack_trits(*c);
                if idx < 48 {
                    y.qs[idx] = b;
                } else {
                    y.qh[idx - 48] = b;
                }
            }
            y.d = F16Bytes::from_f32(d);
        }
    }

    fn dequantize_blocks(src: &[BlockTq1_0], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.to_f32();
            for (i, out) in y.iter_mut().enumerate() {
                *out = f32::from(x.weight(i)) * d;
            }
        }
    }

    fn dot_blocks(w: &[BlockTq1_0], a: &[BlockQ8K]) -> f32 {
        dot_tq1_0_q8_k(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }
}

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, RowDot<Tq1_0>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_tq1_0_q8_k_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::AvxVnni, x86::dot_tq1_0_q8_k_avxvnni),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_tq1_0_q8_k_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_tq1_0_q8_k_neon),
    #[cfg(target_arch = "aarch64")]
    (Isa::Dotprod, aarch64::dot_tq1_0_q8_k_dotprod),
];

/// Σ over blocks of (Σ w·q) · d_w · d_a; the integer sum is exact.
pub fn dot_tq1_0_q8_k(w: &[BlockTq1_0], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let sumi: i32 = (0..QK_K)
            .map(|i| i32::from(x.weight(i)) * i32::from(y.qs[i]))
            .sum();
        sum += sumi as f32 * (x.d.to_f32() * y.d());
    }
    sum
}
