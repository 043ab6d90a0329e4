//! Q4_K (ggml type 12): 256 weights in 144 bytes, 4.5 bits per weight.
//!
//! Layout (ggml `block_q4_K`): `d`, `dmin` (f16), `scales[12]`, `qs[128]`. Eight sub-blocks of 32
//! weights, each with a 6-bit scale s and 6-bit min m: weight = d·s·q − dmin·m, q in 0..16.
//! `scales`: bytes 0..4 hold s0..s3 and bytes 4..8 hold m0..m3 in their low 6 bits; bytes 8..12
//! hold s4..s7 (low nibble) and m4..m7 (high nibble), whose top 2 bits sit in the top 2 bits of
//! bytes 0..4 (s) and 4..8 (m). `qs`: 32-byte chunk c holds sub-block 2c in its low nibbles and
//! 2c + 1 in its high nibbles. The quantizer is ggml's `quantize_row_q4_K_ref` (no importance
//! matrix): a weighted scale-and-min search per sub-block, then 6-bit scales. Activations: Q8_K.

use bytemuck::{Pod, Zeroable};

use super::{BlockFormat, FormatInfo, Origin};
use crate::activations::q8_k::{BlockQ8K, Q8K, QK_K};
use crate::activations::{nearest_int, F16Bytes};

/// Weights per sub-block.
const SUB: usize = 32;
/// Sub-blocks per block.
const NSUB: usize = QK_K / SUB;
/// Largest 4-bit code.
const NMAX: i32 = 15;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: F16Bytes,
    pub dmin: F16Bytes,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// Pack eight 6-bit scales and eight 6-bit mins into ggml's 12 bytes.
pub fn pack_scales_mins(sc: &[u8; NSUB], m: &[u8; NSUB]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for j in 0..4 {
        out[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4);
    }
    out
}

/// The eight 6-bit scales and eight 6-bit mins packed in `scales` (ggml's `get_scale_min_k4`).
pub fn unpack_scales_mins(q: &[u8; 12]) -> ([u8; NSUB], [u8; NSUB]) {
    let (mut sc, mut m) = ([0u8; NSUB], [0u8; NSUB]);
    for j in 0..4 {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
        sc[j + 4] = (q[j + 8] & 0xf) | ((q[j] >> 6) << 4);
        m[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
    }
    (sc, m)
}

impl BlockQ4K {
    /// 4-bit code of weight i (0..16).
    pub fn code(&self, i: usize) -> u8 {
        let b = self.qs[32 * (i / 64) + i % 32];
        if i % 64 < 32 {
            b & 0x0f
        } else {
            b >> 4
        }
    }

    pub fn scales_mins(&self) -> ([u8; NSUB], [u8; NSUB]) {
        unpack_scales_mins(&self.scales)
    }
}

pub struct Q4K;

impl BlockFormat for Q4K {
    const INFO: FormatInfo = FormatInfo {
        name: "q4_K",
        block_size: QK_K,
        block_bytes: 144,
        bits_per_weight: FormatInfo::bits(QK_K, 144),
        activation: "q8_K",
        origin: Origin::Ggml,
        ternary: false,
    };
    type Block = BlockQ4K;
    type Act = Q8K;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ4K]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            quantize_block(x, y);
        }
    }

    fn dequantize_blocks(src: &[BlockQ4K], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let (d, dmin) = (x.d.to_f32(), x.dmin.to_f32());
            let (sc, m) = x.scales_mins();
            for (((out, &s), &mn), j) in y.chunks_exact_mut(SUB).zip(&sc).zip(&m).zip(0..) {
                let (d1, m1) = (d * f32::from(s), dmin * f32::from(mn));
                for (o, i) in out.iter_mut().zip(SUB * j..) {
                    *o = d1 * f32::from(x.code(i)) - m1;
                }
            }
        }
    }

    fn dot_blocks(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
        dot_q4_k_q8_k(w, a)
    }
}

fn quantize_block(x: &[f32], y: &mut BlockQ4K) {
    let mut codes = [0u8; QK_K];
    let (mut scales, mut mins) = ([0.0f32; NSUB], [0.0f32; NSUB]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    let mut weights = [0.0f32; SUB];
    for (((xs, ls), scale), min) in x
        .chunks_exact(SUB)
        .zip(codes.chunks_exact_mut(SUB))
        .zip(&mut scales)
        .zip(&mut mins)
    {
        let sum_x2 = xs.iter().fold(0.0f32, |s, &v| s + v * v);
        let av_x = (sum_x2 / SUB as f32).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        (*scale, *min) = make_qkx2_quants(xs, &weights, ls);
        if *scale > max_scale {
            max_scale = *scale;
        }
        if *min > max_min {
            max_min = *min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // ggml stores nearest_int into a uint8_t (wrapping) before capping at 63.
    let six_bit = |v: f32| (nearest_int(v) as u8).min(63);
    let (mut sc, mut m) = ([0u8; NSUB], [0u8; NSUB]);
    for (((s, mn), &scale), &min) in sc.iter_mut().zip(&mut m).zip(&scales).zip(&mins) {
        *s = six_bit(inv_scale * scale);
        *mn = six_bit(inv_min * min);
    }
    y.scales = pack_scales_mins(&sc, &m);
    y.d = F16Bytes::from_f32(max_scale / 63.0);
    y.dmin = F16Bytes::from_f32(max_min / 63.0);

    // Requantize against the rounded scales; a sub-block whose scale rounds to 0 keeps the search's codes.
    let (d, dmin) = (y.d.to_f32(), y.dmin.to_f32());
    for (((xs, ls), &s), &mn) in x
        .chunks_exact(SUB)
        .zip(codes.chunks_exact_mut(SUB))
        .zip(&sc)
        .zip(&m)
    {
        let d = d * f32::from(s);
        if d == 0.0 {
            continue;
        }
        let dm = dmin * f32::from(mn);
        for (l, &v) in ls.iter_mut().zip(xs) {
            *l = nearest_int((v + dm) / d).clamp(0, NMAX) as u8;
        }
    }

    for (q, pair) in y.qs.chunks_exact_mut(32).zip(codes.chunks_exact(64)) {
        let (lo, hi) = pair.split_at(32);
        for ((b, &l), &h) in q.iter_mut().zip(lo).zip(hi) {
            *b = l | (h << 4);
        }
    }
}

/// ggml's `make_qkx2_quants(32, 15, .., rmin = -1, rdelta = 0.1, nstep = 20, use_mad = false)`:
/// fit x ≈ scale·L − min (min ≥ 0) minimizing the weighted squared error, trying 21 grid scales
/// and solving least squares for each. Writes the codes L; returns (scale, min).
fn make_qkx2_quants(x: &[f32], weights: &[f32], l: &mut [u8]) -> (f32, f32) {
    const RMIN: f32 = -1.0;
    const RDELTA: f32 = 0.1;
    const NSTEP: i32 = 20;

    let mut pairs = x.iter().zip(weights);
    let Some((&x0, &w0)) = pairs.next() else {
        return (0.0, 0.0);
    };
    let (mut min, mut max, mut sum_w, mut sum_x) = (x0, x0, w0, w0 * x0);
    for (&v, &w) in pairs {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }

    let code = |iscale: f32, v: f32, min: f32| nearest_int(iscale * (v - min)).clamp(0, NMAX) as u8;
    let iscale = NMAX as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for ((li, &v), &w) in l.iter_mut().zip(x).zip(weights) {
        *li = code(iscale, v, min);
        let diff = scale * f32::from(*li) + min - v;
        best_error += w * (diff * diff);
    }

    let mut laux = [0u8; SUB];
    for is in 0..=NSTEP {
        let iscale = (RMIN + RDELTA * is as f32 + NMAX as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((la, &v), &w) in laux.iter_mut().zip(x).zip(weights) {
            *la = code(iscale, v, min);
            let lf = f32::from(*la);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = laux
                .iter()
                .zip(x)
                .zip(weights)
                .fold(0.0f32, |e, ((&la, &v), &w)| {
                    let diff = this_scale * f32::from(la) + this_min - v;
                    e + w * (diff * diff)
                });
            if cur_error < best_error {
                for (li, &la) in l.iter_mut().zip(&laux) {
                    *li = la;
                }
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Σ over blocks of d_a·(d·Σ_j s_j·Σ q·a − dmin·Σ_j m_j·Σ a); both integer sums are exact.
pub fn dot_q4_k_q8_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let (sc, m) = x.scales_mins();
        let mut sum_scaled = 0i32;
        let mut sum_mins = 0i32;
        for ((&s, &mn), j) in sc.iter().zip(&m).zip(0..) {
            let dot: i32 = (SUB * j..SUB * (j + 1))
                .map(|i| i32::from(x.code(i)) * i32::from(y.qs[i]))
                .sum();
            // Q8_K's bsums hold Σa per 16 values: two per sub-block.
            let asum = i32::from(y.bsum(2 * j)) + i32::from(y.bsum(2 * j + 1));
            sum_scaled += i32::from(s) * dot;
            sum_mins += i32::from(mn) * asum;
        }
        sum += x.d.to_f32() * y.d() * sum_scaled as f32 - x.dmin.to_f32() * y.d() * sum_mins as f32;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{quantize_row, Rows};
    use crate::WeightFormat;

    #[test]
    fn scale_min_packing_round_trips() {
        // Every 6-bit scale and min at every position, among neighbours using all six bits.
        for j in 0..NSUB {
            for s in 0..64u8 {
                for mn in 0..64u8 {
                    let mut sc = [63, 42, 21, 0, 63, 42, 21, 0];
                    let mut m = [0, 21, 42, 63, 0, 21, 42, 63];
                    (sc[j], m[j]) = (s, mn);
                    let packed = pack_scales_mins(&sc, &m);
                    assert_eq!(unpack_scales_mins(&packed), (sc, m), "j {j} s {s} m {mn}");
                }
            }
        }
    }

    #[test]
    fn zero_block_is_all_zero_bytes() {
        let q = quantize_row::<Q4K>(&[0.0; QK_K]).unwrap();
        assert_eq!(q[0], BlockQ4K::zeroed());
        let w = Rows::<Q4K>::new()
            .unpack(bytemuck::cast_slice(&q), 1, QK_K)
            .unwrap();
        assert!(w.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn outlier_keeps_its_sub_block_and_zeroes_the_rest() {
        let mut x = [0.0f32; QK_K];
        x[37] = 1000.0;
        let q = quantize_row::<Q4K>(&x).unwrap();
        let (sc, m) = q[0].scales_mins();
        assert_eq!(sc, [0, 63, 0, 0, 0, 0, 0, 0]);
        assert_eq!(m, [0; NSUB]);
        let w = Rows::<Q4K>::new()
            .unpack(bytemuck::cast_slice(&q), 1, QK_K)
            .unwrap();
        assert!((w[37] - 1000.0).abs() <= 1000.0 * 1e-3, "{}", w[37]);
        assert!(w.iter().enumerate().all(|(i, &v)| i == 37 || v == 0.0));
    }

    #[test]
    fn dequantize_is_close_on_smooth_data() {
        let x: Vec<f32> = (0..2 * QK_K).map(|i| ((i as f32) * 0.37).sin()).collect();
        let f = Rows::<Q4K>::new();
        let w = f
            .unpack(&f.pack(&x, 1, x.len()).unwrap(), 1, x.len())
            .unwrap();
        let err = x
            .iter()
            .zip(&w)
            .fold(0.0f32, |e, (a, b)| e.max((a - b).abs()));
        assert!(err < 0.1, "max error {err}");
    }
}
