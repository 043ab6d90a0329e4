//! TL1 on x86-64: `pshufb` lookups of the weight nibbles into the pair tables' byte planes,
//! interleaved back to int16 and summed per BK tile (BK ≤ 256 bounds the sum, see
//! [`super::MAX_TILE_K`]), then widened into the int32 row sums. Every token of the call runs
//! against one bm x BK weight block while it sits in L1.

use std::arch::x86_64::*;

use super::kernel::{lut_slots, AlignedBytes, Tl1Act, CHUNK_BYTES, LUT_BYTES_PER_COL, W0, W1};
use super::{Tiling, INFO};
use crate::activations::i8_lut::{quantize_i8_lut, LutActRow};
use crate::formats::check_len;
use crate::KernelError;

/// [`quantize_i8_lut`], vectorized with the same f32 operations (max|x|, γ = 127/max, x·γ rounded
/// to nearest-even by `cvtps2dq` under the default MXCSR), so its bytes are identical.
#[target_feature(enable = "avx2")]
pub(crate) fn quantize_avx2(x: &[f32]) -> Result<LutActRow, KernelError> {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let (mut vmax, mut finite) = (
        _mm256_setzero_ps(),
        _mm256_castsi256_ps(_mm256_set1_epi32(-1)),
    );
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        // SAFETY: `c` holds exactly 8 f32; the load is unaligned.
        let v = _mm256_and_ps(unsafe { _mm256_loadu_ps(c.as_ptr()) }, abs_mask);
        vmax = _mm256_max_ps(vmax, v);
        finite = _mm256_and_ps(finite, _mm256_cmp_ps::<_CMP_LT_OQ>(v, inf));
    }
    if _mm256_movemask_ps(finite) != 0xff || tail.iter().any(|v| !v.is_finite()) {
        // The reference names the offending value.
        return quantize_i8_lut(x);
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds exactly 8 f32; the store is unaligned.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
    let max = lanes
        .iter()
        .chain(tail)
        .fold(0.0f32, |m, &v| m.max(v.abs()));
    let scale = 127.0f32 / max;
    if !scale.is_finite() {
        return quantize_i8_lut(x);
    }
    let mut qs = vec![0i8; x.len()];
    let g = _mm256_set1_ps(scale);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (c, q) in x.chunks_exact(32).zip(qs.chunks_exact_mut(32)) {
        let r = |i: usize| {
            // SAFETY: `c` holds exactly 32 f32 and i ≤ 24; the load is unaligned.
            _mm256_cvtps_epi32(_mm256_mul_ps(
                unsafe { _mm256_loadu_ps(c.as_ptr().add(i)) },
                g,
            ))
        };
        let (ab, cd) = (
            _mm256_packs_epi32(r(0), r(8)),
            _mm256_packs_epi32(r(16), r(24)),
        );
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
        // SAFETY: `q` holds exactly 32 bytes; the store is unaligned.
        unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), bytes) };
    }
    let done = x.len() / 32 * 32;
    for (q, &v) in qs[done..].iter_mut().zip(&x[done..]) {
        *q = (v * scale).round_ties_even() as i8;
    }
    Ok(LutActRow { qs, scale })
}

/// Bytes 0, 2, .., 14 then 1, 3, .., 15 of each lane: an int16 vector's low then high bytes.
const SPLIT_PLANES: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        m[i] = ((i % 16) % 8 * 2 + (i % 16) / 8) as u8;
        i += 1;
    }
    m
};

/// 16 int16 entries as `[low bytes 0..16 | high bytes 0..16]`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn planes(e: __m256i) -> __m256i {
    let split = _mm256_shuffle_epi8(e, load(&SPLIT_PLANES, 0));
    _mm256_permute4x64_epi64::<0b11_01_10_00>(split)
}

/// Interleave two coefficient rows as bytes: c0[0], c1[0], c0[1], ...
pub(crate) const fn interleave(c0: [i16; 16], c1: [i16; 16]) -> [u8; 32] {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        m[2 * i] = c0[i] as i8 as u8;
        m[2 * i + 1] = c1[i] as i8 as u8;
        i += 1;
    }
    m
}

const W01: [u8; 32] = interleave(W0, W1);

/// The 16 int16 entries Σⱼ cⱼ[i]·aⱼ of a (coefficient pair, activation pair): `psignb` applies
/// each coefficient's sign to its activation byte, `pmaddubsw` by ones adds the two.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn pair_entries(coeffs: __m256i, a0: i8, a1: i8) -> __m256i {
    let a = _mm256_set1_epi16(i16::from_le_bytes([a0 as u8, a1 as u8]));
    _mm256_maddubs_epi16(_mm256_set1_epi8(1), _mm256_sign_epi8(a, coeffs))
}

/// 16 bytes to `b[at..]`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn store16(b: &mut [u8], at: usize, v: __m128i) {
    let s = &mut b[at..at + 16];
    // SAFETY: `s` holds exactly 16 writable bytes; the store is unaligned.
    unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn build_act_tl1_avx2(t: &Tiling, cols: usize, x: &[f32]) -> Result<Tl1Act, KernelError> {
    check_len(INFO.name, "activations", x.len(), cols)?;
    let act = quantize_avx2(x)?;
    let mut lut = AlignedBytes::zeroed(cols * LUT_BYTES_PER_COL);
    let out = lut.as_mut_slice();
    let coeffs = load(&W01, 0);
    for (p, a) in act.qs.chunks_exact(2).enumerate() {
        let e = planes(pair_entries(coeffs, a[0], a[1]));
        let (lo, hi) = lut_slots(t, p);
        store16(out, lo, _mm256_castsi256_si128(e));
        store16(out, hi, _mm256_extracti128_si256(e, 1));
    }
    Ok(Tl1Act { act, lut })
}

/// The x86 variants' `quantize`: activations and tables as [`super::kernel::build_act`] makes them.
pub(super) fn build_act_avx2(t: &Tiling, cols: usize, x: &[f32]) -> Result<Tl1Act, KernelError> {
    // SAFETY: listed under Isa::Avx2 and Isa::Avx512Vnni, and matmul::check_isa only hands either out after available() confirmed AVX2 (part of both).
    unsafe { build_act_tl1_avx2(t, cols, x) }
}

/// 32 bytes at `b[at..]`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load(b: &[u8], at: usize) -> __m256i {
    let s = &b[at..at + 32];
    // SAFETY: `s` holds exactly 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Blocks ahead whose weights are prefetched: DRAM latency spans several blocks' work.
const PREFETCH_BLOCKS: usize = 4;
/// Bytes between prefetched lines: every line, as fewer lose most of the gain.
const PREFETCH_STRIDE: usize = 64;

/// Asks for the cache lines of `b[at..at + len]` (as far as `b` reaches).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn prefetch_ahead(b: &[u8], at: usize, len: usize) {
    if let Some(s) = b.get(at..(at + len).min(b.len())) {
        for line in s.chunks(PREFETCH_STRIDE) {
            _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
        }
    }
}

/// 16 bytes at `b[at..]`, copied into both 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load_dup(b: &[u8], at: usize) -> __m256i {
    let s = &b[at..at + 16];
    // SAFETY: `s` holds exactly 16 readable bytes; the load is unaligned.
    _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(s.as_ptr().cast()) })
}

/// Adds 8 int16 sums to 8 int32 row sums.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn widen_add(sums: __m128i, rows: &mut [i32]) {
    let r = &mut rows[..8];
    // SAFETY: `r` holds exactly 8 i32 (32 bytes); loads and stores are unaligned.
    unsafe {
        let old = _mm256_loadu_si256(r.as_ptr().cast());
        let new = _mm256_add_epi32(old, _mm256_cvtepi16_epi32(sums));
        _mm256_storeu_si256(r.as_mut_ptr().cast(), new);
    }
}

/// The int16 entries of the high-nibble (`hn`) or low-nibble (`ln`) lookups: (rows of bytes
/// 0..8, rows of bytes 8..16) of each 128-bit lane.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn lookup(lo: __m256i, hi: __m256i, idx: __m256i) -> (__m256i, __m256i) {
    let (a, b) = (_mm256_shuffle_epi8(lo, idx), _mm256_shuffle_epi8(hi, idx));
    (_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b))
}

/// bm = 32: a 256-bit weight load is rows 0..16 (or 16..32) for pairs 0/1 (low lane) and 2/3
/// (high lane), so each row's sum is split across the two lanes until the tile ends.
#[inline]
#[target_feature(enable = "avx2")]
fn block32_avx2(w: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mask = _mm256_set1_epi8(0x0f);
    let mut c = [_mm256_setzero_si256(); 4];
    for (wc, tc) in w.chunks_exact(CHUNK_BYTES).zip(lut.chunks_exact(128)) {
        let (tl_h, th_h, tl_l, th_l) = (load(tc, 0), load(tc, 32), load(tc, 64), load(tc, 96));
        for (half, at) in [(0, 0), (2, 32)] {
            let v = load(wc, at);
            let (hn, ln) = (
                _mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
                _mm256_and_si256(v, mask),
            );
            let (x0, x1) = lookup(tl_h, th_h, hn);
            let (y0, y1) = lookup(tl_l, th_l, ln);
            c[half] = _mm256_add_epi16(c[half], _mm256_add_epi16(x0, y0));
            c[half + 1] = _mm256_add_epi16(c[half + 1], _mm256_add_epi16(x1, y1));
        }
    }
    for (i, ci) in c.iter().enumerate() {
        let both = _mm_add_epi16(
            _mm256_castsi256_si128(*ci),
            _mm256_extracti128_si256(*ci, 1),
        );
        widen_add(both, &mut rows[8 * i..]);
    }
}

/// bm = 64: a 256-bit weight load is 32 rows (16 per lane) for pairs 0 (high nibble) and 1.
#[inline]
#[target_feature(enable = "avx2")]
fn block64_avx2(w: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mask = _mm256_set1_epi8(0x0f);
    let mut c = [_mm256_setzero_si256(); 4];
    for (wc, tc) in w.chunks_exact(CHUNK_BYTES).zip(lut.chunks_exact(64)) {
        let (tl_h, th_h) = (load_dup(tc, 0), load_dup(tc, 16));
        let (tl_l, th_l) = (load_dup(tc, 32), load_dup(tc, 48));
        for (half, at) in [(0, 0), (2, 32)] {
            let v = load(wc, at);
            let (hn, ln) = (
                _mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
                _mm256_and_si256(v, mask),
            );
            let (x0, x1) = lookup(tl_h, th_h, hn);
            let (y0, y1) = lookup(tl_l, th_l, ln);
            c[half] = _mm256_add_epi16(c[half], _mm256_add_epi16(x0, y0));
            c[half + 1] = _mm256_add_epi16(c[half + 1], _mm256_add_epi16(x1, y1));
        }
    }
    // c[0] lanes hold rows 0..8 and 16..24, c[1] rows 8..16 and 24..32, c[2], c[3] 32 more.
    for (i, ci) in c.iter().enumerate() {
        let base = 32 * (i / 2) + 8 * (i % 2);
        widen_add(_mm256_castsi256_si128(*ci), &mut rows[base..]);
        widen_add(_mm256_extracti128_si256(*ci, 1), &mut rows[base + 16..]);
    }
}

/// Walks a row tile: k tile by k tile, bm-row block by block, every token per block.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_tl1_avx2(w: &[u8], t: &Tiling, acts: &[Tl1Act], acc: &mut [i32]) {
    let (bm, blocks) = (t.simd_m, t.tile_m / t.simd_m);
    let block_bytes = t.tile_k / t.by() * CHUNK_BYTES;
    let lut_bytes = t.tile_k * LUT_BYTES_PER_COL;
    for (i, wb) in w.chunks_exact(block_bytes).enumerate() {
        prefetch_ahead(w, (i + PREFETCH_BLOCKS) * block_bytes, block_bytes);
        let (k_tile, blk) = (i / blocks, i % blocks);
        for (tok, a) in acts.iter().enumerate() {
            let lut = &a.lut.as_slice()[k_tile * lut_bytes..][..lut_bytes];
            let rows = &mut acc[tok * t.tile_m + blk * bm..][..bm];
            if bm == 32 {
                block32_avx2(wb, lut, rows);
            } else {
                block64_avx2(wb, lut, rows);
            }
        }
    }
}

pub(super) fn tile_avx2(w: &[u8], t: &Tiling, _cols: usize, acts: &[Tl1Act], acc: &mut [i32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { tile_tl1_avx2(w, t, acts, acc) }
}

/// 64 bytes at `b[at..]`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn load512(b: &[u8], at: usize) -> __m512i {
    let s = &b[at..at + 64];
    // SAFETY: `s` holds exactly 64 readable bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
}

/// 32 bytes at `b[at..]`, copied into both 256-bit halves.
#[inline]
#[target_feature(enable = "avx512f")]
fn load512_dup256(b: &[u8], at: usize) -> __m512i {
    let s = &b[at..at + 32];
    // SAFETY: `s` holds exactly 32 readable bytes; the load is unaligned.
    _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(s.as_ptr().cast()) })
}

/// 16 bytes at `b[at..]`, copied into all four 128-bit lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn load512_dup128(b: &[u8], at: usize) -> __m512i {
    let s = &b[at..at + 16];
    // SAFETY: `s` holds exactly 16 readable bytes; the load is unaligned.
    _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(s.as_ptr().cast()) })
}

/// Adds 16 int16 sums to 16 int32 row sums.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn widen_add16(sums: __m256i, rows: &mut [i32]) {
    let r = &mut rows[..16];
    // SAFETY: `r` holds exactly 16 i32 (64 bytes); loads and stores are unaligned.
    unsafe {
        let old = _mm512_loadu_si512(r.as_ptr().cast());
        let new = _mm512_add_epi32(old, _mm512_cvtepi16_epi32(sums));
        _mm512_storeu_si512(r.as_mut_ptr().cast(), new);
    }
}

/// [`lookup`] on four 128-bit lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn lookup512(lo: __m512i, hi: __m512i, idx: __m512i) -> (__m512i, __m512i) {
    let (a, b) = (_mm512_shuffle_epi8(lo, idx), _mm512_shuffle_epi8(hi, idx));
    (_mm512_unpacklo_epi8(a, b), _mm512_unpackhi_epi8(a, b))
}

/// bm = 32: one 512-bit load is the whole 64-byte step (rows 0..16 and 16..32, each for pairs
/// 0/1 and 2/3); the pair-2/3 lanes add onto the pair-0/1 lanes when the tile ends.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn block32_avx512(w: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mask = _mm512_set1_epi8(0x0f);
    let (mut c0, mut c1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for (wc, tc) in w.chunks_exact(CHUNK_BYTES).zip(lut.chunks_exact(128)) {
        let v = load512(wc, 0);
        let (hn, ln) = (
            _mm512_and_si512(_mm512_srli_epi16(v, 4), mask),
            _mm512_and_si512(v, mask),
        );
        let (x0, x1) = lookup512(load512_dup256(tc, 0), load512_dup256(tc, 32), hn);
        let (y0, y1) = lookup512(load512_dup256(tc, 64), load512_dup256(tc, 96), ln);
        c0 = _mm512_add_epi16(c0, _mm512_add_epi16(x0, y0));
        c1 = _mm512_add_epi16(c1, _mm512_add_epi16(x1, y1));
    }
    // c0 holds rows 0..8 and 16..24, c1 rows 8..16 and 24..32, each twice (two pair groups).
    for (base, ci) in [(0, c0), (8, c1)] {
        for (half, h) in [_mm512_castsi512_si256(ci), _mm512_extracti64x4_epi64(ci, 1)]
            .into_iter()
            .enumerate()
        {
            let both = _mm_add_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            widen_add(both, &mut rows[base + 16 * half..]);
        }
    }
}

/// bm = 64: one 512-bit load is 64 rows (16 per lane) for pairs 0 (high nibble) and 1.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn block64_avx512(w: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mask = _mm512_set1_epi8(0x0f);
    let (mut c0, mut c1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for (wc, tc) in w.chunks_exact(CHUNK_BYTES).zip(lut.chunks_exact(64)) {
        let v = load512(wc, 0);
        let (hn, ln) = (
            _mm512_and_si512(_mm512_srli_epi16(v, 4), mask),
            _mm512_and_si512(v, mask),
        );
        let (x0, x1) = lookup512(load512_dup128(tc, 0), load512_dup128(tc, 16), hn);
        let (y0, y1) = lookup512(load512_dup128(tc, 32), load512_dup128(tc, 48), ln);
        c0 = _mm512_add_epi16(c0, _mm512_add_epi16(x0, y0));
        c1 = _mm512_add_epi16(c1, _mm512_add_epi16(x1, y1));
    }
    // c0 lanes hold rows 0..8, 16..24, 32..40, 48..56; c1 the 8 rows after each: interleave.
    let first = _mm512_permutex2var_epi64(c0, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), c1);
    let second = _mm512_permutex2var_epi64(c0, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), c1);
    for (base, p) in [(0, first), (32, second)] {
        widen_add16(_mm512_castsi512_si256(p), &mut rows[base..]);
        widen_add16(_mm512_extracti64x4_epi64(p, 1), &mut rows[base + 16..]);
    }
}

/// [`tile_tl1_avx2`] with 512-bit blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn tile_tl1_avx512(w: &[u8], t: &Tiling, acts: &[Tl1Act], acc: &mut [i32]) {
    let (bm, blocks) = (t.simd_m, t.tile_m / t.simd_m);
    let block_bytes = t.tile_k / t.by() * CHUNK_BYTES;
    let lut_bytes = t.tile_k * LUT_BYTES_PER_COL;
    for (i, wb) in w.chunks_exact(block_bytes).enumerate() {
        prefetch_ahead(w, (i + PREFETCH_BLOCKS) * block_bytes, block_bytes);
        let (k_tile, blk) = (i / blocks, i % blocks);
        for (tok, a) in acts.iter().enumerate() {
            let lut = &a.lut.as_slice()[k_tile * lut_bytes..][..lut_bytes];
            let rows = &mut acc[tok * t.tile_m + blk * bm..][..bm];
            if bm == 32 {
                block32_avx512(wb, lut, rows);
            } else {
                block64_avx512(wb, lut, rows);
            }
        }
    }
}

pub(super) fn tile_avx512(w: &[u8], t: &Tiling, _cols: usize, acts: &[Tl1Act], acc: &mut [i32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { tile_tl1_avx512(w, t, acts, acc) }
}
