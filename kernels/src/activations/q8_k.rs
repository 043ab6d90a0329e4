//! Q8_K (ggml): 256 int8 values per block with an f32 scale and sixteen 16-value sums.
//!
//! The pairing activation of TQ1_0, TQ2_0, Q4_K and Q6_K. Scale finds the element of largest
//! magnitude keeping its sign (mx) and maps it to -127: d is negative when mx > 0. The bsums let
//! offset-coded formats (TQ stores w+1) subtract Σq per 16 values without another pass.

use bytemuck::{Pod, Zeroable};

use super::{nearest_int, BlockActivation};

pub const QK_K: usize = 256;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// f32 scale, little-endian.
    pub d: [u8; 4],
    pub qs: [i8; QK_K],
    /// Sums of each 16 consecutive `qs`, i16 little-endian.
    pub bsums: [[u8; 2]; QK_K / 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

impl BlockQ8K {
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    pub fn bsum(&self, i: usize) -> i16 {
        i16::from_le_bytes(self.bsums[i])
    }
}

pub struct Q8K;

impl BlockActivation for Q8K {
    const NAME: &'static str = "q8_K";
    const BLOCK: usize = QK_K;
    type Block = BlockQ8K;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ8K]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the features were just detected.
            unsafe { x86::quantize_blocks_avx512(src, dst) };
            return;
        }
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            quantize_block(x, y);
        }
    }

    fn dequantize_blocks(src: &[BlockQ8K], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            for (out, &q) in y.iter_mut().zip(&x.qs) {
                *out = f32::from(q) * x.d();
            }
        }
    }
}

/// The reference quantizer (and the oracle of [`x86::quantize_blocks_avx512`]).
fn quantize_block(x: &[f32], y: &mut BlockQ8K) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        *y = BlockQ8K::zeroed();
        return;
    }
    let iscale = -127.0 / max;
    for (q, &v) in y.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, chunk) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
        let sum: i32 = chunk.iter().map(|&q| i32::from(q)).sum();
        *s = (sum as i16).to_le_bytes();
    }
    y.d = (1.0 / iscale).to_le_bytes();
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use bytemuck::Zeroable;

    use super::{BlockQ8K, QK_K};

    /// [`super::quantize_block`] with AVX-512, bit for bit: the same first element of largest
    /// magnitude, the same `nearest_int(iscale · v)` by the same float operations, 16 values
    /// (one bsum) per vector. Activations are quantized once per token per product; at
    /// prefill the scalar loop cost as much as the matrix product itself. The bsums come from
    /// byte sums of the packed values (`vpsadbw`), not a reduction per 16 values.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn quantize_blocks_avx512(src: &[f32], dst: &mut [BlockQ8K]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            // SAFETY: x holds QK_K f32: sixteen 512-bit loads.
            let v: [__m512; QK_K / 16] =
                std::array::from_fn(|i| unsafe { _mm512_loadu_ps(x[16 * i..].as_ptr()) });
            // Magnitudes compared as integers (non-negative floats order like their bits),
            // NaN excluded as the reference's `>` excludes it.
            let inf = _mm512_set1_epi32(0x7f80_0000);
            let mag: [__m512i; QK_K / 16] = v.map(|v| {
                let m = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fff_ffff));
                _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(m, inf), m, _mm512_setzero_si512())
            });
            let amax = mag
                .iter()
                .fold(_mm512_setzero_si512(), |a, &m| _mm512_max_epi32(a, m));
            let amax = _mm512_reduce_max_epi32(amax) as u32;
            if amax == 0 {
                *y = BlockQ8K::zeroed();
                continue;
            }
            // The first value of that magnitude, sixteen at a time (NaN lanes hold 0 here).
            let target = _mm512_set1_epi32(amax as i32);
            let Some(first) = mag.iter().enumerate().find_map(|(i, &m)| {
                let hit = _mm512_cmpeq_epi32_mask(m, target);
                (hit != 0).then(|| 16 * i + hit.trailing_zeros() as usize)
            }) else {
                *y = BlockQ8K::zeroed();
                continue;
            };
            let iscale = -127.0 / x[first];
            let scale = _mm512_set1_ps(iscale);
            let magic = _mm512_set1_ps(12_582_912.0);
            let q: [__m512i; 16] = std::array::from_fn(|i| {
                // nearest_int: the rounding add, then the low mantissa bits less 2^22.
                let r = _mm512_castps_si512(_mm512_add_ps(_mm512_mul_ps(scale, v[i]), magic));
                let q = _mm512_sub_epi32(
                    _mm512_and_si512(r, _mm512_set1_epi32(0x007f_ffff)),
                    _mm512_set1_epi32(0x0040_0000),
                );
                _mm512_min_epi32(q, _mm512_set1_epi32(127))
            });
            // Four vectors (64 values, all in -127..=127) to bytes with two saturating packs,
            // which interleave them by 128-bit lane; a dword permutation puts them in order.
            let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            let bias = _mm512_set1_epi8(-128);
            let mut sad = [_mm512_setzero_si512(); 4];
            for (g, (q, sad)) in q.chunks_exact(4).zip(&mut sad).enumerate() {
                let lo = _mm512_packs_epi32(q[0], q[1]);
                let hi = _mm512_packs_epi32(q[2], q[3]);
                let bytes = _mm512_permutexvar_epi32(order, _mm512_packs_epi16(lo, hi));
                // SAFETY: 64 bytes into qs[64g..64g + 64].
                unsafe { _mm512_storeu_si512(y.qs[64 * g..].as_mut_ptr().cast(), bytes) };
                // Sums of eight bytes each, biased by 128 a byte to make them unsigned.
                *sad = _mm512_sad_epu8(_mm512_xor_si512(bytes, bias), _mm512_setzero_si512());
            }
            // Pairs of eight-byte sums are the sixteen-value bsums: sums of vectors 2j and 2j + 1
            // hold bsums 4·(2j) + lane and 4·(2j + 1) + lane, one pair per 128-bit lane.
            let pair = |a: __m512i, b: __m512i| {
                let s = _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
                _mm512_cvtepi64_epi16(s)
            };
            let (s01, s23) = (pair(sad[0], sad[1]), pair(sad[2], sad[3]));
            let sums = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(s01), s23);
            let order = _mm256_setr_epi16(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
            let sums = _mm256_sub_epi16(
                _mm256_permutexvar_epi16(order, sums),
                _mm256_set1_epi16(16 * 128),
            );
            // SAFETY: the bsums are 16 int16, 32 bytes.
            unsafe { _mm256_storeu_si256(y.bsums.as_mut_ptr().cast(), sums) };
            y.d = (1.0 / iscale).to_le_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks that stress the quantizer: ties in magnitude with either sign first, zeros and
    /// negative zeros, tiny and huge magnitudes, halves that round to even, and random values.
    /// (Not all-subnormal blocks: there −127/max overflows, in the reference as in ggml.)
    fn hard_blocks() -> Vec<Vec<f32>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut blocks = vec![
            vec![0.0; QK_K],
            vec![-0.0; QK_K],
            (0..QK_K)
                .map(|i| {
                    if i == 7 {
                        -3.0
                    } else if i == 9 {
                        3.0
                    } else {
                        1.0
                    }
                })
                .collect(),
            (0..QK_K)
                .map(|i| {
                    if i == 7 {
                        3.0
                    } else if i == 9 {
                        -3.0
                    } else {
                        -1.0
                    }
                })
                .collect(),
            (0..QK_K).map(|i| (i as f32 - 128.0) * 0.5).collect(),
            (0..QK_K).map(|i| (i as f32 + 1.0) * 1e-30).collect(),
            (0..QK_K)
                .map(|i| if i == 255 { 1e30 } else { 1e-30 })
                .collect(),
        ];
        for _ in 0..200 {
            let scale = f32::from_bits(0x3000_0000 + (next() % 0x1800_0000) as u32);
            blocks.push(
                (0..QK_K)
                    .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale)
                    .collect(),
            );
        }
        blocks
    }

    #[test]
    fn the_dispatched_quantizer_equals_the_reference_bit_for_bit() {
        for x in hard_blocks() {
            let mut want = BlockQ8K::zeroed();
            quantize_block(&x, &mut want);
            let mut got = [BlockQ8K::zeroed()];
            Q8K::quantize_blocks(&x, &mut got);
            assert_eq!(got[0], want, "block starting {:?}", &x[..4]);
        }
    }
}
