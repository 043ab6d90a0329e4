//! Q6_K (ggml type 14): 256 weights in 210 bytes, 6.5625 bits per weight.
//!
//! Layout (ggml `block_q6_K`): `ql[128]`, `qh[64]`, `scales[16]` (i8), `d` (f16). Sixteen
//! sub-blocks of 16 weights: weight i = d·scales[i / 16]·(q − 32), q in 0..64. Each 128-weight
//! half h uses ql[64h..64h + 64] and qh[32h..32h + 32]: weight 128h + 32k + l (k = 0..4, l = 0..32)
//! has its low 4 bits in the low (k < 2) or high (k ≥ 2) nibble of ql[64h + 32(k % 2) + l], and
//! its high 2 bits in bits 2k+1:2k of qh[32h + l]. The quantizer is ggml's
//! `quantize_row_q6_K_ref` (no importance matrix): an x²-weighted scale search per sub-block,
//! then 8-bit scales. Activations: Q8_K.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytemuck::{Pod, Zeroable};

use super::{BlockFormat, FormatInfo, Origin, RowDot};
use crate::activations::q8_k::{BlockQ8K, Q8K, QK_K};
use crate::activations::{nearest_int, F16Bytes};
use crate::cpu::Isa;

/// Weights per sub-block.
const SUB: usize = 16;
/// Sub-blocks per block.
const NSUB: usize = QK_K / SUB;
/// Codes are stored as q = l + 32 with l in -32..32.
const NMAX: i32 = 32;
/// ggml's `GROUP_MAX_EPS`: below this a group counts as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; NSUB],
    pub d: F16Bytes,
}

const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

impl BlockQ6K {
    /// Signed 6-bit value of weight i (-32..32).
    pub fn value(&self, i: usize) -> i8 {
        let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
        let lo = self.ql[64 * half + 32 * (k % 2) + l];
        let lo = if k < 2 { lo & 0x0f } else { lo >> 4 };
        let hi = (self.qh[32 * half + l] >> (2 * k)) & 3;
        (lo | (hi << 4)) as i8 - 32
    }
}

pub struct Q6K;

impl BlockFormat for Q6K {
    const INFO: FormatInfo = FormatInfo {
        name: "q6_K",
        block_size: QK_K,
        block_bytes: 210,
        bits_per_weight: FormatInfo::bits(QK_K, 210),
        activation: "q8_K",
        origin: Origin::Ggml,
        ternary: false,
    };
    type Block = BlockQ6K;
    type Act = Q8K;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ6K]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            quantize_block(x, y);
        }
    }

    fn dequantize_blocks(src: &[BlockQ6K], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.to_f32();
            for ((out, &s), j) in y.chunks_exact_mut(SUB).zip(&x.scales).zip(0..) {
                let ds = d * f32::from(s);
                for (o, i) in out.iter_mut().zip(SUB * j..) {
                    *o = ds * f32::from(x.value(i));
                }
            }
        }
    }

    fn dot_blocks(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
        dot_q6_k_q8_k(w, a)
    }

    fn simd_variants() -> &'static [(Isa, RowDot<Self>)] {
        SIMD_VARIANTS
    }
}

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, RowDot<Q6K>)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_q6_k_q8_k_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_q6_k_q8_k_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_q6_k_q8_k_neon),
    #[cfg(target_arch = "aarch64")]
    (Isa::Dotprod, aarch64::dot_q6_k_q8_k_dotprod),
];

fn quantize_block(x: &[f32], y: &mut BlockQ6K) {
    let mut codes = [0u8; QK_K];
    let mut scales = [0.0f32; NSUB];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ((xs, ls), scale) in x
        .chunks_exact(SUB)
        .zip(codes.chunks_exact_mut(SUB))
        .zip(&mut scales)
    {
        *scale = make_qx_quants(xs, ls);
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = *scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        *y = BlockQ6K::zeroed();
        return;
    }

    // The sub-block of largest |scale| gets -128; its sign makes d negative when that scale is positive.
    let iscale = -128.0 / max_scale;
    y.d = F16Bytes::from_f32(1.0 / iscale);
    for (q, &s) in y.scales.iter_mut().zip(&scales) {
        *q = nearest_int(iscale * s).min(127) as i8;
    }

    // Requantize against the rounded scales; a sub-block whose scale rounds to 0 keeps the search's codes.
    let d = y.d.to_f32();
    for ((xs, ls), &s) in x
        .chunks_exact(SUB)
        .zip(codes.chunks_exact_mut(SUB))
        .zip(&y.scales)
    {
        let d = d * f32::from(s);
        if d == 0.0 {
            continue;
        }
        for (l, &v) in ls.iter_mut().zip(xs) {
            *l = (nearest_int(v / d).clamp(-NMAX, NMAX - 1) + NMAX) as u8;
        }
    }

    for ((ql, qh), c) in
        y.ql.chunks_exact_mut(64)
            .zip(y.qh.chunks_exact_mut(32))
            .zip(codes.chunks_exact(128))
    {
        let (ql0, ql1) = ql.split_at_mut(32);
        let (c01, c23) = c.split_at(64);
        let (c0, c1) = c01.split_at(32);
        let (c2, c3) = c23.split_at(32);
        let quads = c0.iter().zip(c1).zip(c2).zip(c3);
        for (((lo0, lo1), h), (((&q0, &q1), &q2), &q3)) in
            ql0.iter_mut().zip(ql1).zip(qh).zip(quads)
        {
            *lo0 = (q0 & 0xf) | ((q2 & 0xf) << 4);
            *lo1 = (q1 & 0xf) | ((q3 & 0xf) << 4);
            *h = (q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6);
        }
    }
}

/// ggml's `make_qx_quants(16, 32, .., rmse_type = 1, no weights)`: codes l in -32..32 for
/// x ≈ scale·l, weighting each error by x², trying 19 scales around 32/max. Writes l + 32 into
/// `l` (all 0 for an all-zero group); returns the scale, negative when the largest |x| is positive.
fn make_qx_quants(x: &[f32], l: &mut [u8]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }

    let code = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
    let sums = |iscale: f32| {
        x.iter().fold((0.0f32, 0.0f32), |(sumlx, suml2), &v| {
            let (lf, w) = (code(iscale, v) as f32, v * v);
            (sumlx + w * v * lf, suml2 + w * lf * lf)
        })
    };
    let fill = |l: &mut [u8], iscale: f32| {
        for (li, &v) in l.iter_mut().zip(x) {
            *li = (code(iscale, v) + NMAX) as u8;
        }
    };

    let iscale = -(NMAX as f32) / max;
    fill(l, iscale);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(NMAX as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill(l, iscale);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Σ over blocks of d·d_a·Σ_j scales_j·Σ q·a; the integer sum is exact.
pub fn dot_q6_k_q8_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let mut sumi = 0i32;
        for (&s, j) in x.scales.iter().zip(0..) {
            let dot: i32 = (SUB * j..SUB * (j + 1))
                .map(|i| i32::from(x.value(i)) * i32::from(y.qs[i]))
                .sum();
            sumi += i32::from(s) * dot;
        }
        sum += x.d.to_f32() * y.d() * sumi as f32;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{quantize_row, Rows};
    use crate::WeightFormat;

    #[test]
    fn value_reads_back_what_the_packing_wrote() {
        // Every sub-block holds -32, so each fits exactly with scale 1 and d·scale = 1.
        let x: Vec<f32> = (0..QK_K)
            .map(|i| {
                if i % SUB == 0 {
                    -32.0
                } else {
                    ((i * 7) % 64) as f32 - 32.0
                }
            })
            .collect();
        let q = quantize_row::<Q6K>(&x).unwrap();
        assert_eq!(q[0].scales, [-128; NSUB]);
        assert_eq!(q[0].d.to_f32() * -128.0, 1.0);
        for (i, &v) in x.iter().enumerate() {
            assert_eq!(f32::from(q[0].value(i)), v, "weight {i}");
        }
    }

    #[test]
    fn zero_block_is_all_zero_bytes() {
        let q = quantize_row::<Q6K>(&[0.0; QK_K]).unwrap();
        assert_eq!(q[0], BlockQ6K::zeroed());
        let w = Rows::<Q6K>::new()
            .unpack(bytemuck::cast_slice(&q), 1, QK_K)
            .unwrap();
        assert!(w.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn zero_sub_block_keeps_code_zero() {
        // ggml leaves an all-zero sub-block at code 0 (q = -32) with scale 0, not at q = 0.
        let mut x = [0.5f32; QK_K];
        x[16..32].fill(0.0);
        let q = quantize_row::<Q6K>(&x).unwrap();
        assert_eq!(q[0].scales[1], 0);
        assert!((16..32).all(|i| q[0].value(i) == -32));
    }

    #[test]
    fn outlier_takes_scale_minus_128() {
        let mut x = [0.01f32; QK_K];
        x[200] = 50.0;
        let q = quantize_row::<Q6K>(&x).unwrap();
        assert_eq!(q[0].scales[200 / SUB], -128);
        let w = Rows::<Q6K>::new()
            .unpack(bytemuck::cast_slice(&q), 1, QK_K)
            .unwrap();
        assert!((w[200] - 50.0).abs() <= 50.0 * 2e-3, "{}", w[200]);
    }

    #[test]
    fn dequantize_is_close_on_smooth_data() {
        let x: Vec<f32> = (0..2 * QK_K).map(|i| ((i as f32) * 0.37).sin()).collect();
        let f = Rows::<Q6K>::new();
        let w = f
            .unpack(&f.pack(&x, 1, x.len()).unwrap(), 1, x.len())
            .unwrap();
        let err = x
            .iter()
            .zip(&w)
            .fold(0.0f32, |e, (a, b)| e.max((a - b).abs()));
        assert!(err < 0.02, "max error {err}");
    }
}
