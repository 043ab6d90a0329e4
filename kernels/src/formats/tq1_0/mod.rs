//! TQ1_0 (ggml type 34): 256 ternary weights in 54 bytes, 1.6875 bits per weight.
//!
//! Layout (ggml `block_tq1_0`): `qs[48]`, `qh[4]`, `d` (f16). Five trits per byte (3^5 = 243):
//! qs[0..32] byte m packs weights m + 32n (n = 0..5, weights 0..160); qs[32..48] byte m packs
//! 160 + m + 16n (weights 160..240); qh[j] packs 240 + j + 4n (n = 0..4) plus a fifth zero trit.
//! A byte stores ceil(v·256/243) for v = Σ c_n·3^(4-n), first trit most significant, so trit n
//! comes out as ((byte·3^n mod 256)·3) >> 8 without division. Activations: Q8_K, carried with a
//! recombination of the same values ([`BlockQ8KTq1`]) that lets the AVX-512 kernel decode trits
//! with one multiply each.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytemuck::{Pod, Zeroable};

use super::{BlockFormat, FormatInfo, Origin, RowDot, RowsDot};
use crate::activations::q8_k::{BlockQ8K, Q8K, QK_K};
use crate::activations::{BlockActivation, F16Bytes};
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
const fn position(i: usize) -> (usize, usize) {
    match i {
        0..160 => (i % 32, i / 32),
        160..240 => (32 + (i - 160) % 16, (i - 160) / 16),
        _ => (48 + (i - 240) % 4, (i - 240) / 4),
    }
}

/// Bytes of a block's first 64 (the AVX-512 kernel's window) that hold trits: qs, then qh.
pub const TRIT_BYTES: usize = 52;

/// The window byte that the AVX-512 kernel reads as [`ONE_BYTE`] instead of the scale's first
/// byte: trit 0 of 86 is 1, so its digit slot carries -Σq, the offset of the codes c = w + 1.
pub const ONE_AT: usize = 52;
pub const ONE_BYTE: u8 = 86;

/// Q8_K (upstream's pairing for TQ1_0) with `digits` beside it, for the AVX-512 kernel.
///
/// That kernel never forms trits. With y_n = ⌊byte·3^(n+1)/256⌋ (one 16-bit `mulhi`, exact as
/// byte·243 < 2^16), trit n is y_n - 3·y_(n-1), so Σ_n trit_n·q_n = Σ_n y_n·(q_n - 3·q_(n+1)):
/// `digits[n][m % 2][m / 2]` holds q_n - 3·q_(n+1) for the weights trits n and n+1 of window
/// byte m stand for (0 past a byte's trits): even bytes apart from odd, as a 16-bit lane's low
/// and high bytes. The slot of [`ONE_AT`] in digit 0 holds -Σq. |values| ≤ 32512.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockQ8KTq1 {
    pub q8: BlockQ8K,
    pub digits: [[[i16; 32]; 2]; 5],
}

/// Write the `digits` of one Q8_K block (see [`BlockQ8KTq1`]); the oracle of
/// `x86::digit_acts_avx512`.
fn digit_acts(q: &BlockQ8K, d: &mut [[[i16; 32]; 2]; 5]) {
    for parity in 0..2 {
        let mut cur = window_acts(&q.qs, 0, parity);
        for (n, dn) in d.iter_mut().enumerate() {
            let up = window_acts(&q.qs, n + 1, parity);
            for ((o, &c), &u) in dn[parity].iter_mut().zip(&cur).zip(&up) {
                *o = c - 3 * u;
            }
            cur = up;
        }
    }
    let sum: i32 = q.qs.iter().map(|&v| i32::from(v)).sum();
    // |Σq| ≤ 256·127 < 2^15.
    d[0][ONE_AT % 2][ONE_AT / 2] = -(sum as i16);
}

/// The activations that trit n of window bytes `parity`, `parity` + 2, ... stand for (see
/// [`position`]): 0 for trit 4 of a qh byte, for bytes past qh, and for n = 5.
fn window_acts(qs: &[i8; QK_K], n: usize, parity: usize) -> [i16; 32] {
    let mut w = [0i16; 32];
    if n < 5 {
        let qh = if n < 4 { 2 } else { 0 };
        for (at, from, len) in [
            (0, 32 * n, 16),
            (16, 160 + 16 * n, 8),
            (24, 240 + 4 * n, qh),
        ] {
            for (j, o) in w[at..at + len].iter_mut().enumerate() {
                *o = i16::from(qs[from + 2 * j + parity]);
            }
        }
    }
    w
}

/// TQ1_0's activation type: [`BlockQ8KTq1`].
pub struct Q8KTq1;

impl BlockActivation for Q8KTq1 {
    const NAME: &'static str = Q8K::NAME;
    const BLOCK: usize = QK_K;
    type Block = BlockQ8KTq1;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ8KTq1]) {
        #[cfg(target_arch = "x86_64")]
        let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            Q8K::quantize_blocks(x, std::slice::from_mut(&mut y.q8));
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: the features were just detected.
                unsafe { x86::digit_acts_avx512(&y.q8, &mut y.digits) };
                continue;
            }
            digit_acts(&y.q8, &mut y.digits);
        }
    }

    fn dequantize_blocks(src: &[BlockQ8KTq1], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            Q8K::dequantize_blocks(std::slice::from_ref(&x.q8), y);
        }
    }

    fn upstream_bytes(blocks: &[BlockQ8KTq1]) -> Vec<u8> {
        blocks
            .iter()
            .flat_map(|b| bytemuck::bytes_of(&b.q8).iter().copied())
            .collect()
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
    type Act = Q8KTq1;

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

    fn dot_blocks(w: &[BlockTq1_0], a: &[BlockQ8KTq1]) -> f32 {
        dot_tq1_0_q8_k(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }

    fn multi_row_variants() -> &'static [(Isa, RowsDot<Self>)] {
        MULTI_ROW_VARIANTS
    }
}

/// Multi-row kernels: decode runs several rows side by side.
const MULTI_ROW_VARIANTS: &[(Isa, RowsDot<Tq1_0>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::rows_tq1_0_q8_k_avx512),
];

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
pub fn dot_tq1_0_q8_k(w: &[BlockTq1_0], a: &[BlockQ8KTq1]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a.iter().map(|a| &a.q8)) {
        let sumi: i32 = (0..QK_K)
            .map(|i| i32::from(x.weight(i)) * i32::from(y.qs[i]))
            .sum();
        sum += sumi as f32 * (x.d.to_f32() * y.d());
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` values in [-0.5, 0.5) from xorshift64.
    fn floats(n: usize, mut state: u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Random Q8_K blocks, each with its extreme ±127 at a random place.
    fn blocks() -> Vec<BlockQ8K> {
        let x = floats(64 * QK_K, 0x9e37_79b9_7f4a_7c15);
        let mut q = vec![BlockQ8K::zeroed(); 64];
        Q8K::quantize_blocks(&x, &mut q);
        q
    }

    #[test]
    fn digit_rows_follow_the_trit_positions() {
        for q in blocks() {
            let mut d = [[[0i16; 32]; 2]; 5];
            digit_acts(&q, &mut d);
            // a(n, m): the activation of the weight that trit n of window byte m holds.
            let a = |n: usize, m: usize| -> i16 {
                (0..QK_K)
                    .find(|&i| position(i) == (m, n))
                    .map_or(0, |i| i16::from(q.qs[i]))
            };
            let sum: i16 = q.qs.iter().map(|&v| i16::from(v)).sum();
            for (n, dn) in d.iter().enumerate() {
                for m in 0..64 {
                    let want = if (n, m) == (0, ONE_AT) {
                        -sum
                    } else {
                        a(n, m) - 3 * a(n + 1, m)
                    };
                    assert_eq!(dn[m % 2][m / 2], want, "digit {n}, window byte {m}");
                }
            }
        }
    }

    #[test]
    fn the_dispatched_digit_rows_equal_the_reference() {
        let x = floats(16 * QK_K, 0x2545_f491_4f6c_dd1d);
        let mut got = vec![BlockQ8KTq1::zeroed(); 16];
        Q8KTq1::quantize_blocks(&x, &mut got);
        for (n, b) in got.iter().enumerate() {
            let mut want = [[[0i16; 32]; 2]; 5];
            digit_acts(&b.q8, &mut want);
            assert_eq!(b.digits, want, "block {n}");
        }
    }
}
