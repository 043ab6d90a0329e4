//! x86-64 TQ2_0 × Q8_K row kernels. The 2-bit codes c = w + 1 ∈ {0, 1, 2} are the unsigned side
//! of `maddubs`/`vpdpbusd` against the int8 activations, so the integer dot is Σc·q and the Q8_K
//! bsums take Σq back off. Each weight block is unpacked once and serves up to four tokens.
//!
//! Overflow: an AVX2 int16 lane sums eight `maddubs` pairs (|·| ≤ 512) and one bsum (|·| ≤ 2048)
//! per block, at most 6144; the VNNI kernels stay in int32 and restart every block.
//!
//! Decode (one token) takes the multi-row entry points (`rows_*`): [`ROWS`] weight rows at a time
//! share each activation block's loads and bsum work, and the weights are prefetched
//! [`PREFETCH`] bytes ahead, so that the stream from L3 or DRAM overlaps the arithmetic. Each row
//! keeps one float vector accumulator and is reduced once, at its end.

use std::arch::x86_64::*;

use super::BlockTq2_0;
use super::Tq2_0;
use crate::activations::q8_k::BlockQ8K;
use crate::amx::transpose16;
use crate::formats::x86_rows::{by_rows, gemv_rows, prefetch_rows, row_scales};

/// Tokens that share one unpacked weight block (their accumulators stay in registers).
const GROUP: usize = 4;

/// Weight rows that share one activation block in the single-token kernels.
const ROWS: usize = 4;

/// How far ahead of the weights being read each row is prefetched: the matrices stream about
/// 1.3x faster (6912x2560, L3- or DRAM-resident) than with the hardware prefetchers alone; 4
/// and 8 KiB do about as well, 0.5 to 2 KiB worse.
const PREFETCH: usize = 4096;

pub(super) fn rows_tq2_0_q8_k_avx2(
    w: &[BlockTq2_0],
    rows: usize,
    acts: &[Vec<BlockQ8K>],
    out: &mut [f32],
) {
    if let [a] = acts {
        // SAFETY: as for dot_tq2_0_q8_k_avx2, whose variant (Isa::Avx2) this entry shares.
        unsafe { gemv_avx2(w, rows, a, out) }
    } else {
        by_rows::<Tq2_0>(w, rows, acts, out, dot_tq2_0_q8_k_avx2);
    }
}

pub(super) fn rows_tq2_0_q8_k_avxvnni(
    w: &[BlockTq2_0],
    rows: usize,
    acts: &[Vec<BlockQ8K>],
    out: &mut [f32],
) {
    if let [a] = acts {
        // SAFETY: as for dot_tq2_0_q8_k_avxvnni, whose variant (Isa::AvxVnni) this entry shares.
        unsafe { gemv_avxvnni(w, rows, a, out) }
    } else {
        by_rows::<Tq2_0>(w, rows, acts, out, dot_tq2_0_q8_k_avxvnni);
    }
}

pub(super) fn rows_tq2_0_q8_k_avx512(
    w: &[BlockTq2_0],
    rows: usize,
    acts: &[Vec<BlockQ8K>],
    out: &mut [f32],
) {
    match acts {
        // SAFETY: as for dot_tq2_0_q8_k_avx512, whose variant (Isa::Avx512Vnni) this entry shares.
        [a] => unsafe { gemv_avx512(w, rows, a, out) },
        // SAFETY: the same.
        _ if rows >= GEMM_MIN_ROWS => unsafe { gemm_avx512(w, rows, acts, out) },
        _ => by_rows::<Tq2_0>(w, rows, acts, out, dot_tq2_0_q8_k_avx512),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemv_avx2(w: &[BlockTq2_0], rows: usize, a: &[BlockQ8K], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, ROWS, rows_avx2_1t);
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemv_avxvnni(w: &[BlockTq2_0], rows: usize, a: &[BlockQ8K], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, ROWS, rows_avxvnni_1t);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn gemv_avx512(w: &[BlockTq2_0], rows: usize, a: &[BlockQ8K], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, ROWS, rows_avx512_1t);
}

pub(super) fn dot_tq2_0_q8_k_avx2(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(w, acts, out) }
}

pub(super) fn dot_tq2_0_q8_k_avxvnni(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::AvxVnni, and matmul::check_isa only hands it out after Isa::AvxVnni.available() confirmed the features.
    unsafe { rows_avxvnni(w, acts, out) }
}

pub(super) fn dot_tq2_0_q8_k_avx512(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(w, acts, out) }
}

/// Up to `N` tokens' activation rows and the weight row, all cut to the blocks they share (the
/// driver makes them equal; the reference stops at the shorter one too).
fn group<'a, const N: usize>(
    w: &'a [BlockTq2_0],
    acts: &'a [Vec<BlockQ8K>],
) -> (&'a [BlockTq2_0], [&'a [BlockQ8K]; N]) {
    let rows: [&[BlockQ8K]; N] =
        std::array::from_fn(|t| acts.get(t).map_or(&[][..], Vec::as_slice));
    let nb = rows.iter().fold(w.len(), |n, r| n.min(r.len()));
    (&w[..nb], rows.map(|r| &r[..nb]))
}

/// Split the tokens into groups of up to [`GROUP`] and write each group's dots.
macro_rules! by_groups {
    ($w:expr, $acts:expr, $out:expr, $kernel:ident) => {
        for (a, o) in $acts.chunks(GROUP).zip($out.chunks_mut(GROUP)) {
            // The caller enables the group kernel's target features, so the calls are safe.
            let r: &[f32] = match a.len() {
                1 => &$kernel::<1>(group($w, a)),
                2 => &$kernel::<2>(group($w, a)),
                3 => &$kernel::<3>(group($w, a)),
                _ => &$kernel::<4>(group($w, a)),
            };
            for (o, &r) in o.iter_mut().zip(r) {
                *o = r;
            }
        }
    };
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_avx2);
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn rows_avxvnni(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_avxvnni);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_avx512);
}

/// The eight 32-byte code vectors of a block: vector 4h + n holds codes of weights 128h + 32n +
/// 0..32, lined up with activations `qs[32·(4h + n)..]`.
#[inline]
#[target_feature(enable = "avx2")]
fn codes_avx2(x: &BlockTq2_0) -> [__m256i; 8] {
    let m3 = _mm256_set1_epi8(3);
    let mut c = [_mm256_setzero_si256(); 8];
    for (h, c) in x.qs.chunks_exact(32).zip(c.chunks_exact_mut(4)) {
        // SAFETY: `h` is 32 bytes, one unaligned 256-bit load.
        let v = unsafe { _mm256_loadu_si256(h.as_ptr().cast()) };
        c[0] = _mm256_and_si256(v, m3);
        c[1] = _mm256_and_si256(_mm256_srli_epi16::<2>(v), m3);
        c[2] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m3);
        c[3] = _mm256_and_si256(_mm256_srli_epi16::<6>(v), m3);
    }
    c
}

/// A block scale as f32. Normal halves convert on the integer ports (F16C would spend two vector
/// uops per block in a loop that is short of them); zero, subnormal, infinite and NaN take F16C.
#[inline]
#[target_feature(enable = "f16c")]
fn f16_to_f32(d: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(d);
    let bits = u32::from(h);
    let exp = bits & 0x7c00;
    if exp != 0 && exp != 0x7c00 {
        f32::from_bits((((bits & 0x7fff) << 13) + 0x3800_0000) | ((bits & 0x8000) << 16))
    } else {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(h as i16)))
    }
}

/// Sum of the eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum256(v: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
}

/// The 32-byte activation slices of one Q8_K block, and its bsums as int16.
#[inline]
#[target_feature(enable = "avx2")]
fn acts_avx2(y: &BlockQ8K) -> ([__m256i; 8], __m256i) {
    let mut q = [_mm256_setzero_si256(); 8];
    for (q, s) in q.iter_mut().zip(y.qs.chunks_exact(32)) {
        // SAFETY: `s` is 32 bytes, one unaligned 256-bit load.
        *q = unsafe { _mm256_loadu_si256(s.as_ptr().cast()) };
    }
    // SAFETY: the bsums are 16 int16, 32 bytes.
    let bs = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
    (q, bs)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn group_avx2<const N: usize>((w, rows): (&[BlockTq2_0], [&[BlockQ8K]; N])) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for (b, x) in w.iter().enumerate() {
        let c = codes_avx2(x);
        let dw = f16_to_f32(x.d.0);
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b];
            let (q, bs) = acts_avx2(y);
            let mut p = [_mm256_setzero_si256(); 8];
            for ((p, &c), &q) in p.iter_mut().zip(&c).zip(&q) {
                *p = _mm256_maddubs_epi16(c, q);
            }
            let s0 = _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
            let s1 = _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7]));
            let s = _mm256_sub_epi16(_mm256_add_epi16(s0, s1), bs);
            let s = _mm256_madd_epi16(s, _mm256_set1_epi16(1));
            *f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * y.d()), *f);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = hsum256(f);
    }
    sums
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn group_avxvnni<const N: usize>((w, rows): (&[BlockTq2_0], [&[BlockQ8K]; N])) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for (b, x) in w.iter().enumerate() {
        let c = codes_avx2(x);
        let dw = f16_to_f32(x.d.0);
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b];
            let (q, bs) = acts_avx2(y);
            // Two chains halve the latency of eight dependent dot products.
            let mut s0 = _mm256_madd_epi16(bs, _mm256_set1_epi16(-1));
            let mut s1 = _mm256_setzero_si256();
            for k in (0..8).step_by(2) {
                s0 = _mm256_dpbusd_avx_epi32(s0, c[k], q[k]);
                s1 = _mm256_dpbusd_avx_epi32(s1, c[k + 1], q[k + 1]);
            }
            let s = _mm256_add_epi32(s0, s1);
            *f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * y.d()), *f);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = hsum256(f);
    }
    sums
}

/// AVX-512: a 32-byte half h broadcast to both halves of a register and masked with 0x03 below /
/// 0x0C above holds [c0, 4·c1], lined up with the 64 activations `qs[128h..]`; masked with 0x30 /
/// 0xC0 it holds [16·c2, 64·c3] for `qs[128h + 64..]`. Shifting the second kind's sums right by 4
/// leaves every lane in 0..8 at weight 1 and in 8..16 at weight 4, undone once per row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
fn group_avx512<const N: usize>((w, rows): (&[BlockTq2_0], [&[BlockQ8K]; N])) -> [f32; N] {
    let mlo = _mm512_inserti64x4::<1>(_mm512_set1_epi8(0x03), _mm256_set1_epi8(0x0c));
    let mhi = _mm512_inserti64x4::<1>(_mm512_set1_epi8(0x30), _mm256_set1_epi8(0xc0u8 as i8));
    let neg = _mm512_set1_epi16(-1);
    let mut acc = [_mm512_setzero_ps(); N];
    for (b, x) in w.iter().enumerate() {
        let (h0, h1) = x.qs.split_at(32);
        // SAFETY: each half is 32 bytes, one unaligned 256-bit load.
        let (h0, h1) = unsafe {
            (
                _mm512_broadcast_i64x4(_mm256_loadu_si256(h0.as_ptr().cast())),
                _mm512_broadcast_i64x4(_mm256_loadu_si256(h1.as_ptr().cast())),
            )
        };
        let c = [
            _mm512_and_si512(h0, mlo),
            _mm512_and_si512(h0, mhi),
            _mm512_and_si512(h1, mlo),
            _mm512_and_si512(h1, mhi),
        ];
        let dw = f16_to_f32(x.d.0);
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b];
            let mut q = [_mm512_setzero_si512(); 4];
            for (q, s) in q.iter_mut().zip(y.qs.chunks_exact(64)) {
                // SAFETY: `s` is 64 bytes, one unaligned 512-bit load.
                *q = unsafe { _mm512_loadu_si512(s.as_ptr().cast()) };
            }
            // SAFETY: the bsums are 16 int16, 32 bytes; they land in the weight-1 lanes 0..8.
            let bs = unsafe { _mm512_zextsi256_si512(_mm256_loadu_si256(y.bsums.as_ptr().cast())) };
            // One chain: the weight-16/64 products first, shifted down by 4, then the rest.
            let hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[1], q[1]);
            let hi = _mm512_dpbusd_epi32(hi, c[3], q[3]);
            let s = _mm512_dpbusd_epi32(_mm512_srai_epi32::<4>(hi), c[0], q[0]);
            let s = _mm512_dpbusd_epi32(s, c[2], q[2]);
            let s = _mm512_dpwssd_epi32(s, bs, neg);
            *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(dw * y.d()), *f);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        let lo = _mm512_castps512_ps256(f);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(f)));
        *s = hsum256(_mm256_fmadd_ps(hi, _mm256_set1_ps(0.25), lo));
    }
    sums
}

/// Σ(c − 1)·q of one block as eight int32 lanes (AVX2): `maddubs` pairs summed in int16 (see
/// the overflow note), the bsums taken off, widened once.
#[inline]
#[target_feature(enable = "avx2")]
fn block_avx2(x: &BlockTq2_0, q: &[__m256i; 8], bs: __m256i) -> __m256i {
    let c = codes_avx2(x);
    let mut p = [_mm256_setzero_si256(); 8];
    for ((p, &c), &q) in p.iter_mut().zip(&c).zip(q) {
        *p = _mm256_maddubs_epi16(c, q);
    }
    let s0 = _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
    let s1 = _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7]));
    let s = _mm256_sub_epi16(_mm256_add_epi16(s0, s1), bs);
    _mm256_madd_epi16(s, _mm256_set1_epi16(1))
}

/// `R` consecutive rows (row `i` starts `i · stride` blocks after `rp`, `nb` blocks each) against
/// one token, AVX2.
///
/// # Safety
/// Rows 0..R of `nb` blocks at `rp` with that stride must be readable, `a.len() ≥ nb`, and the
/// CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2_1t<const R: usize>(
    rp: *const BlockTq2_0,
    stride: usize,
    nb: usize,
    a: &[BlockQ8K],
) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, y) in a[..nb].iter().enumerate() {
        prefetch_rows::<_, R>(rp, stride, b, PREFETCH);
        let (q, bs) = acts_avx2(y);
        for (i, f) in acc.iter_mut().enumerate() {
            // SAFETY: row i < R, block b < nb: within the rows the caller vouches for.
            let x = unsafe { &*rp.add(i * stride + b) };
            let s = block_avx2(x, &q, bs);
            let d = _mm256_set1_ps(f16_to_f32(x.d.0) * y.d());
            *f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, *f);
        }
    }
    acc.map(|f| hsum256(f))
}

/// The same with AVX-VNNI: two `vpdpbusd` chains per row and block, the bsums folded in once.
///
/// # Safety
/// As [`rows_avx2_1t`], and the CPU must have AVX-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn rows_avxvnni_1t<const R: usize>(
    rp: *const BlockTq2_0,
    stride: usize,
    nb: usize,
    a: &[BlockQ8K],
) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, y) in a[..nb].iter().enumerate() {
        prefetch_rows::<_, R>(rp, stride, b, PREFETCH);
        let (q, bs) = acts_avx2(y);
        let neg_bs = _mm256_madd_epi16(bs, _mm256_set1_epi16(-1));
        for (i, f) in acc.iter_mut().enumerate() {
            // SAFETY: row i < R, block b < nb: within the rows the caller vouches for.
            let x = unsafe { &*rp.add(i * stride + b) };
            let c = codes_avx2(x);
            let mut s0 = neg_bs;
            let mut s1 = _mm256_setzero_si256();
            for k in (0..8).step_by(2) {
                s0 = _mm256_dpbusd_avx_epi32(s0, c[k], q[k]);
                s1 = _mm256_dpbusd_avx_epi32(s1, c[k + 1], q[k + 1]);
            }
            let s = _mm256_add_epi32(s0, s1);
            let d = _mm256_set1_ps(f16_to_f32(x.d.0) * y.d());
            *f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, *f);
        }
    }
    acc.map(|f| hsum256(f))
}

/// The same with AVX-512 VNNI, codes as in [`group_avx512`]. The bsums enter as −16·Σq pairs at
/// the head of the weight-16/64 chain, so the shift by 4 brings them to weight 1 with the rest.
///
/// # Safety
/// As [`rows_avx2_1t`], and the CPU must have AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512_1t<const R: usize>(
    rp: *const BlockTq2_0,
    stride: usize,
    nb: usize,
    a: &[BlockQ8K],
) -> [f32; R] {
    let mlo = _mm512_inserti64x4::<1>(_mm512_set1_epi8(0x03), _mm256_set1_epi8(0x0c));
    let mhi = _mm512_inserti64x4::<1>(_mm512_set1_epi8(0x30), _mm256_set1_epi8(0xc0u8 as i8));
    let m16 = _mm512_set1_epi16(-16);
    let mut acc = [_mm512_setzero_ps(); R];
    for (b, y) in a[..nb].iter().enumerate() {
        prefetch_rows::<_, R>(rp, stride, b, PREFETCH);
        let mut q = [_mm512_setzero_si512(); 4];
        for (q, s) in q.iter_mut().zip(y.qs.chunks_exact(64)) {
            // SAFETY: `s` is 64 bytes, one unaligned 512-bit load.
            *q = unsafe { _mm512_loadu_si512(s.as_ptr().cast()) };
        }
        // SAFETY: the bsums are 16 int16, 32 bytes; they land in the weight-1 lanes 0..8.
        let bs = unsafe { _mm512_zextsi256_si512(_mm256_loadu_si256(y.bsums.as_ptr().cast())) };
        let bias = _mm512_madd_epi16(bs, m16);
        let mut scales = [0.0; 4];
        // SAFETY: block b of rows 0..R, as below.
        unsafe { row_scales::<_, R>(rp, stride, b, |x| x.d.0, y.d(), &mut scales) };
        for (i, f) in acc.iter_mut().enumerate() {
            // SAFETY: row i < R, block b < nb: within the rows the caller vouches for.
            let x = unsafe { &*rp.add(i * stride + b) };
            let (h0, h1) = x.qs.split_at(32);
            // SAFETY: each half is 32 bytes, one unaligned 256-bit load.
            let (h0, h1) = unsafe {
                (
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(h0.as_ptr().cast())),
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(h1.as_ptr().cast())),
                )
            };
            let hi = _mm512_dpbusd_epi32(bias, _mm512_and_si512(h0, mhi), q[1]);
            let hi = _mm512_dpbusd_epi32(hi, _mm512_and_si512(h1, mhi), q[3]);
            let s = _mm512_srai_epi32::<4>(hi);
            let s = _mm512_dpbusd_epi32(s, _mm512_and_si512(h0, mlo), q[0]);
            let s = _mm512_dpbusd_epi32(s, _mm512_and_si512(h1, mlo), q[2]);
            *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(scales[i]), *f);
        }
    }
    acc.map(|f| {
        let lo = _mm512_castps512_ps256(f);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(f)));
        hsum256(_mm256_fmadd_ps(hi, _mm256_set1_ps(0.25), lo))
    })
}

/// Prefill (several tokens) with AVX-512 VNNI: one int32 lane per weight row. A panel of
/// [`TILE_R`] rows is transposed once per call so that vector j of a block holds dword j of
/// every row's codes (four weights per byte, see [`BlockTq2_0`]); `(v >> 2n) & 3` is then, in
/// every lane, the codes of the four consecutive weights `128(j/8) + 32n + 4(j%8) + 0..4`, and
/// one `vpdpbusd` against those four activations of a token, broadcast, does 64 MACs. A tile of
/// [`TILE_T`] tokens keeps its int32 block sums and float row sums in registers, so a code
/// vector serves all its tokens and the per-block work (Σq, scale, convert) is per 64 MACs.
///
/// Each block's integer sum Σ(c − 1)·q is exact, and is scaled and added in the scalar
/// reference's order (`sum += sumi · (d_a · d_w)`, block after block), so every lane equals
/// [`super::dot_tq2_0_q8_k`] bit for bit.
const TILE_R: usize = 16;

/// Tokens per GEMM tile.
const TILE_T: usize = 8;

/// Rows below which a GEMM call goes row by row (the panel pads to [`TILE_R`] lanes).
const GEMM_MIN_ROWS: usize = 8;

/// Panel vectors per block: [`TILE_R`] transposed code dwords, then the rows' scales as f32.
/// (Storing the codes unpacked, four vectors per dword, made the panel outgrow L1 and ran slower.)
const PANEL_STRIDE: usize = 17;

thread_local! {
    /// One thread's panel, reused across calls.
    static PANEL: std::cell::RefCell<Vec<__m512i>> = const { std::cell::RefCell::new(Vec::new()) };
    /// One thread's −Σq per token and block, `[token][block]`, shared by a call's panels.
    static NEG_SUMS: std::cell::RefCell<Vec<i32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// # Safety
/// The CPU must have AVX-512 F/BW/VL/VNNI and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn gemm_avx512(w: &[BlockTq2_0], rows: usize, acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let tokens = acts.len();
    if rows == 0 || tokens == 0 {
        return;
    }
    let per_row = w.len() / rows;
    let nb = acts.iter().fold(per_row, |n, a| n.min(a.len()));
    let rows = rows.min(out.len() / tokens);
    PANEL.with(|panel| {
        NEG_SUMS.with(|sums| {
            let mut panel = panel.borrow_mut();
            let mut sums = sums.borrow_mut();
            sums.clear();
            for a in acts {
                sums.extend(a[..nb].iter().map(|y| {
                    -y.bsums
                        .iter()
                        .map(|s| i32::from(i16::from_le_bytes(*s)))
                        .sum::<i32>()
                }));
            }
            let sums = &sums[..];
            for r0 in (0..rows).step_by(TILE_R) {
                let nr = TILE_R.min(rows - r0);
                build_panel(&w[r0 * per_row..], per_row, nr, nb, &mut panel);
                let out = &mut out[r0 * tokens..(r0 + nr) * tokens];
                let mut t0 = 0;
                while t0 < tokens {
                    let a = (&acts[t0..], &sums[t0 * nb..]);
                    let n = match a.0.len() {
                        1 => tile_out::<1>(&panel, nb, a, nr, t0, out),
                        2 => tile_out::<2>(&panel, nb, a, nr, t0, out),
                        3 => tile_out::<3>(&panel, nb, a, nr, t0, out),
                        4 => tile_out::<4>(&panel, nb, a, nr, t0, out),
                        5 => tile_out::<5>(&panel, nb, a, nr, t0, out),
                        6 => tile_out::<6>(&panel, nb, a, nr, t0, out),
                        7 => tile_out::<7>(&panel, nb, a, nr, t0, out),
                        _ => tile_out::<TILE_T>(&panel, nb, a, nr, t0, out),
                    };
                    t0 += n;
                }
            }
        })
    });
}

/// Transpose blocks `0..nb` of `nr ≤ TILE_R` rows (row i at `w[i · per_row..]`) into `panel`,
/// the missing rows as zero codes and scales.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
fn build_panel(w: &[BlockTq2_0], per_row: usize, nr: usize, nb: usize, panel: &mut Vec<__m512i>) {
    panel.clear();
    panel.reserve(nb * PANEL_STRIDE);
    for b in 0..nb {
        let mut v = [_mm512_setzero_si512(); TILE_R];
        let mut d = [0u16; TILE_R];
        for (i, (v, d)) in v.iter_mut().zip(&mut d).enumerate().take(nr) {
            let x = &w[i * per_row + b];
            // SAFETY: `qs` is 64 bytes, one unaligned 512-bit load.
            *v = unsafe { _mm512_loadu_si512(x.qs.as_ptr().cast()) };
            *d = u16::from_le_bytes(x.d.0);
        }
        panel.extend_from_slice(&transpose16(v));
        // SAFETY: `d` is 16 u16, 32 bytes.
        let dw = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(d.as_ptr().cast()) });
        panel.push(_mm512_castps_si512(dw));
    }
}

/// Run the tile of the first `N` tokens of `acts` (token `t0 + t` of the call; `neg_sums` holds
/// their −Σq, `nb` per token) and write lanes `0..nr` of each into `out[i · tokens + t0 + t]`;
/// returns `N`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
fn tile_out<const N: usize>(
    panel: &[__m512i],
    nb: usize,
    (acts, neg_sums): (&[Vec<BlockQ8K>], &[i32]),
    nr: usize,
    t0: usize,
    out: &mut [f32],
) -> usize {
    let a: [&[BlockQ8K]; N] = std::array::from_fn(|t| &acts[t][..nb]);
    let s: [&[i32]; N] = std::array::from_fn(|t| &neg_sums[t * nb..(t + 1) * nb]);
    let sums = tile_avx512::<N>(panel, nb, a, s);
    let tokens = out.len() / nr;
    for (t, s) in sums.iter().enumerate() {
        let mut lanes = [0.0f32; TILE_R];
        // SAFETY: 16 f32, 64 bytes.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *s) };
        for (i, &v) in lanes.iter().enumerate().take(nr) {
            out[i * tokens + t0 + t] = v;
        }
    }
    N
}

/// The row sums (one lane per panel row) of `N` tokens over blocks `0..nb`; `neg_sums[t][b]` is
/// −Σq of token t's block b.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
fn tile_avx512<const N: usize>(
    panel: &[__m512i],
    nb: usize,
    a: [&[BlockQ8K]; N],
    neg_sums: [&[i32]; N],
) -> [__m512; N] {
    let m3 = _mm512_set1_epi8(3);
    let mc = _mm512_set1_epi8(0x0c);
    let mut facc = [_mm512_setzero_ps(); N];
    for (b, p) in panel.chunks_exact(PANEL_STRIDE).take(nb).enumerate() {
        let ys: [&BlockQ8K; N] = std::array::from_fn(|t| &a[t][b]);
        let mut acc: [__m512i; N] = std::array::from_fn(|t| _mm512_set1_epi32(neg_sums[t][b]));
        // Weights at bits 2n + 1:2n of each byte: n = 0 and 2 masked in place (weight 1, into
        // `acc`), n = 1 and 3 masked in place at weight 4 (into `acc4`), so each dword costs one
        // shift (for n = 2, 3) instead of three.
        let mut acc4 = [_mm512_setzero_si512(); N];
        for (j, &pj) in p[..TILE_R].iter().enumerate() {
            let base = 128 * (j / 8) + 4 * (j % 8);
            let hi = _mm512_srli_epi32::<4>(pj);
            let codes = [
                (_mm512_and_si512(pj, m3), 0),
                (_mm512_and_si512(pj, mc), 1),
                (_mm512_and_si512(hi, m3), 2),
                (_mm512_and_si512(hi, mc), 3),
            ];
            for (c, n) in codes {
                let acc = if n % 2 == 0 { &mut acc } else { &mut acc4 };
                for (acc, y) in acc.iter_mut().zip(&ys) {
                    let k = base + 32 * n;
                    let q = i32::from_le_bytes([
                        y.qs[k] as u8,
                        y.qs[k + 1] as u8,
                        y.qs[k + 2] as u8,
                        y.qs[k + 3] as u8,
                    ]);
                    *acc = _mm512_dpbusd_epi32(*acc, c, _mm512_set1_epi32(q));
                }
            }
        }
        for (a, &a4) in acc.iter_mut().zip(&acc4) {
            // acc4 holds 4·Σ exactly.
            *a = _mm512_add_epi32(*a, _mm512_srai_epi32::<2>(a4));
        }
        let dw = _mm512_castsi512_ps(p[TILE_R]);
        for ((f, acc), y) in facc.iter_mut().zip(&acc).zip(&ys) {
            let s = _mm512_mul_ps(_mm512_set1_ps(y.d()), dw);
            *f = _mm512_add_ps(*f, _mm512_mul_ps(_mm512_cvtepi32_ps(*acc), s));
        }
    }
    facc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::activations::q8_k::Q8K;
    use crate::formats::tq2_0::{dot_tq2_0_q8_k, Tq2_0};
    use crate::formats::BlockFormat;
    use bytemuck::Zeroable;

    /// Row counts that pad the GEMM panel (not multiples of 16) and token counts on both sides
    /// of a tile, bit for bit against the scalar reference.
    #[test]
    fn gemm_pads_rows_and_tokens_exactly() {
        if !crate::cpu::Isa::Avx512Vnni.available() {
            return;
        }
        let cols = 768;
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        for rows in [8, 12, 20, 33] {
            let wf: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
            let mut w = vec![BlockTq2_0::zeroed(); rows * cols / 256];
            Tq2_0::quantize_blocks(&wf, &mut w);
            for tokens in [2, 9, 17] {
                let acts: Vec<Vec<BlockQ8K>> = (0..tokens)
                    .map(|_| {
                        let x: Vec<f32> = (0..cols).map(|_| next() * 3.0).collect();
                        crate::activations::quantize_row::<Q8K>(&x).unwrap()
                    })
                    .collect();
                let mut out = vec![f32::NAN; rows * tokens];
                rows_tq2_0_q8_k_avx512(&w, rows, &acts, &mut out);
                for r in 0..rows {
                    for (t, a) in acts.iter().enumerate() {
                        let want = dot_tq2_0_q8_k(&w[r * cols / 256..(r + 1) * cols / 256], a);
                        assert_eq!(
                            out[r * tokens + t].to_bits(),
                            want.to_bits(),
                            "{rows} {tokens} {r} {t}"
                        );
                    }
                }
            }
        }
    }
}
