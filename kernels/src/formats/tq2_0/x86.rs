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
use crate::activations::q8_k::BlockQ8K;

/// Tokens that share one unpacked weight block (their accumulators stay in registers).
const GROUP: usize = 4;

/// Weight rows that share one activation block in the single-token kernels.
const ROWS: usize = 4;

/// How far ahead of the weights being read they are prefetched. Rows are back to back, so this
/// reaches into later rows: the matrices stream about 1.3x faster (6912x2560, L3- or
/// DRAM-resident) than with the hardware prefetchers alone; 2 to 16 KiB all do about as well.
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
        by_rows(w, rows, acts, out, dot_tq2_0_q8_k_avx2);
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
        by_rows(w, rows, acts, out, dot_tq2_0_q8_k_avxvnni);
    }
}

pub(super) fn rows_tq2_0_q8_k_avx512(
    w: &[BlockTq2_0],
    rows: usize,
    acts: &[Vec<BlockQ8K>],
    out: &mut [f32],
) {
    if let [a] = acts {
        // SAFETY: as for dot_tq2_0_q8_k_avx512, whose variant (Isa::Avx512Vnni) this entry shares.
        unsafe { gemv_avx512(w, rows, a, out) }
    } else {
        by_rows(w, rows, acts, out, dot_tq2_0_q8_k_avx512);
    }
}

/// Several tokens (prefill): row by row through the token-grouping kernel.
fn by_rows(
    w: &[BlockTq2_0],
    rows: usize,
    acts: &[Vec<BlockQ8K>],
    out: &mut [f32],
    dot: fn(&[BlockTq2_0], &[Vec<BlockQ8K>], &mut [f32]),
) {
    if rows == 0 || acts.is_empty() {
        return;
    }
    let per_row = w.len() / rows;
    for (r, o) in out.chunks_mut(acts.len()).take(rows).enumerate() {
        dot(&w[r * per_row..(r + 1) * per_row], acts, o);
    }
}

/// One token against `rows` rows of `w`: groups of [`ROWS`] rows through `$group::<ROWS>`, the
/// rest one by one through `$group::<1>`. Each `$group::<R>(rp, stride, nb, a)` returns R dots.
macro_rules! gemv_rows {
    ($w:expr, $rows:expr, $a:expr, $out:expr, $group:ident) => {{
        let (w, rows, a, out): (&[BlockTq2_0], usize, &[BlockQ8K], &mut [f32]) =
            ($w, $rows, $a, $out);
        let n = rows.min(out.len());
        let out = &mut out[..n];
        let per_row = if rows == 0 { 0 } else { w.len() / rows };
        let nb = per_row.min(a.len());
        let mut groups = out.chunks_exact_mut(ROWS);
        let mut r = 0;
        for o in &mut groups {
            // SAFETY: rows r..r + ROWS lie in w (r + ROWS ≤ out.len() ≤ rows), each row holds
            // per_row ≥ nb blocks, and a holds nb blocks; the features are the caller's.
            o.copy_from_slice(&unsafe {
                $group::<ROWS>(w.as_ptr().add(r * per_row), per_row, nb, a)
            });
            r += ROWS;
        }
        for o in groups.into_remainder() {
            // SAFETY: as above, for the single row r < rows.
            *o = unsafe { $group::<1>(w.as_ptr().add(r * per_row), per_row, nb, a) }[0];
            r += 1;
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemv_avx2(w: &[BlockTq2_0], rows: usize, a: &[BlockQ8K], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, rows_avx2_1t);
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemv_avxvnni(w: &[BlockTq2_0], rows: usize, a: &[BlockQ8K], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, rows_avxvnni_1t);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn gemv_avx512(w: &[BlockTq2_0], rows: usize, a: &[BlockQ8K], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, rows_avx512_1t);
}

/// Prefetch the weight lines that a group of `R` rows at `rp` reads about [`PREFETCH`] bytes
/// after step `b` (the group consumes about R blocks per step). A prefetch is only a hint: it
/// never faults, so addresses past the tensor's end are harmless.
#[inline]
#[target_feature(enable = "sse")]
fn prefetch_step<const R: usize>(rp: *const BlockTq2_0, b: usize) {
    let at = rp
        .cast::<u8>()
        .wrapping_add(b * R * size_of::<BlockTq2_0>() + PREFETCH);
    for l in 0..(R * size_of::<BlockTq2_0>()).div_ceil(64) {
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(64 * l).cast());
    }
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
        prefetch_step::<R>(rp, b);
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
        prefetch_step::<R>(rp, b);
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
        prefetch_step::<R>(rp, b);
        let mut q = [_mm512_setzero_si512(); 4];
        for (q, s) in q.iter_mut().zip(y.qs.chunks_exact(64)) {
            // SAFETY: `s` is 64 bytes, one unaligned 512-bit load.
            *q = unsafe { _mm512_loadu_si512(s.as_ptr().cast()) };
        }
        // SAFETY: the bsums are 16 int16, 32 bytes; they land in the weight-1 lanes 0..8.
        let bs = unsafe { _mm512_zextsi256_si512(_mm256_loadu_si256(y.bsums.as_ptr().cast())) };
        let bias = _mm512_madd_epi16(bs, m16);
        let da = y.d();
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
            let d = _mm512_set1_ps(f16_to_f32(x.d.0) * da);
            *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, *f);
        }
    }
    acc.map(|f| {
        let lo = _mm512_castps512_ps256(f);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(f)));
        hsum256(_mm256_fmadd_ps(hi, _mm256_set1_ps(0.25), lo))
    })
}
