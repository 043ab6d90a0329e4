//! x86-64 I2_S row kernels. Codes c ∈ {0, 1, 2} are the unsigned side of `maddubs`/`vpdpbusd`
//! against the int8 activations, so the integer dot Σc·q comes out directly and `finish` subtracts
//! Σq. Each weight block is unpacked once and serves up to four tokens.
//!
//! Overflow: AVX2 sums at most [`I16_BLOCKS`] blocks of `maddubs` in int16 (upstream sums 32 and
//! wraps on all-127 input); the VNNI kernels never leave int32, and restart their lanes every
//! [`CHUNK_BLOCKS`] blocks so that no lane can wrap however long the row.

use std::arch::x86_64::*;

use super::finish;
use crate::activations::i8_s::I8sRow;

/// Bytes per 128-weight block.
const BLOCK_BYTES: usize = 32;
/// Activations per block.
const BLOCK_ACTS: usize = 128;
/// Tokens that share one unpacked weight block.
const GROUP: usize = 4;
/// AVX2 int16 sums: a maddubs lane is in [-512, 508], four per block, so 8 blocks stay within ±16384.
const I16_BLOCKS: usize = 8;
/// VNNI lanes gain at most 4·128·128 = 2^16 per block (codes pre-scaled by up to 64), so 2^14
/// blocks keep every lane below 2^30.
const CHUNK_BLOCKS: usize = 1 << 14;

pub(super) fn dot_i2_s_i8_s_avx2(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(row, acts, scale, out) }
}

pub(super) fn dot_i2_s_i8_s_avxvnni(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    // SAFETY: listed under Isa::AvxVnni, and matmul::check_isa only hands it out after Isa::AvxVnni.available() confirmed the features.
    unsafe { rows_avxvnni(row, acts, scale, out) }
}

pub(super) fn dot_i2_s_i8_s_avx512(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(row, acts, scale, out) }
}

/// How far ahead of the block being read the weights are prefetched: DRAM-resident rows stream
/// markedly faster (about 1.3x here) with explicit prefetches than with the hardware's alone.
const PREFETCH: usize = 4096;

/// Prefetch the weight line `PREFETCH` bytes past `at` (rows are laid out back to back, so this
/// is a later row). A prefetch is only a hint: it never faults and reads nothing into the
/// program, so an address past the tensor's end is harmless.
#[inline]
#[target_feature(enable = "avx2")]
fn prefetch(row: *const u8, at: usize) {
    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(at + PREFETCH).cast());
}

/// Blocks that the row and every token's activations all cover (the driver makes them equal).
fn blocks<const N: usize>(row: &[u8], acts: &[&I8sRow; N]) -> usize {
    acts.iter().fold(row.len() / BLOCK_BYTES, |n, a| {
        n.min(a.qs.len() / BLOCK_ACTS)
    })
}

/// Finish one group's integer dots into `out`.
fn store(out: &mut [f32], acts: &[I8sRow], raw: &[i32], scale: f32) {
    for ((o, a), &r) in out.iter_mut().zip(acts).zip(raw) {
        *o = finish(r, a, scale);
    }
}

/// Split `acts` into groups of up to [`GROUP`] tokens and hand each to `group::<N>`.
macro_rules! by_groups {
    ($row:expr, $acts:expr, $scale:expr, $out:expr, $one:expr, $group:ident) => {
        for (a, o) in $acts.chunks(GROUP).zip($out.chunks_mut(GROUP)) {
            // SAFETY: the caller's features are enabled, as every group kernel requires.
            unsafe {
                match a.len() {
                    1 => $one($row, a).map(|r| store(o, a, &[r], $scale)),
                    2 => $group::<2>($row, a).map(|r| store(o, a, &r, $scale)),
                    3 => $group::<3>($row, a).map(|r| store(o, a, &r, $scale)),
                    _ => $group::<4>($row, a).map(|r| store(o, a, &r, $scale)),
                };
            }
        }
    };
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    by_groups!(
        row,
        acts,
        scale,
        out,
        |r, a| group_avx2::<1>(r, a).map(|[x]| x),
        group_avx2
    );
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn rows_avxvnni(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    by_groups!(
        row,
        acts,
        scale,
        out,
        |r, a: &[I8sRow]| a.first().map(|a| gemv_avxvnni(r, a)),
        group_avxvnni
    );
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows_avx512(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    // Decode (one token) skips the grouping machinery: it runs once per row.
    if let ([act], [o]) = (acts, &mut *out) {
        // SAFETY: this fn's features are enabled, as gemv_avx512 requires.
        *o = finish(unsafe { gemv_avx512(row, act) }, act, scale);
        return;
    }
    by_groups!(
        row,
        acts,
        scale,
        out,
        |r, a: &[I8sRow]| a.first().map(|a| gemv_avx512(r, a)),
        group_avx512
    );
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_epi32_avx2(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01)))
}

/// Σc·q for N tokens: shift and mask the four 2-bit fields to codes 0..2, `maddubs` each against
/// its 32 activations, and widen the int16 sums to int32 every [`I16_BLOCKS`] blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_avx2<const N: usize>(row: &[u8], acts: &[I8sRow]) -> Option<[i32; N]> {
    let acts = <&[I8sRow; N]>::try_from(acts).ok()?;
    let acts = acts.each_ref();
    let nb = blocks(row, &acts);
    let wp = row.as_ptr();
    let ap = acts.map(|a| a.qs.as_ptr());
    let m3 = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); N];
    let mut b = 0;
    while b < nb {
        let end = nb.min(b + I16_BLOCKS);
        let mut acc16 = [_mm256_setzero_si256(); N];
        while b < end {
            prefetch(wp, b * BLOCK_BYTES);
            // SAFETY: b < nb, so the block's 32 bytes lie within row.
            let v = unsafe { _mm256_loadu_si256(wp.add(b * BLOCK_BYTES).cast()) };
            let c = [
                _mm256_and_si256(_mm256_srli_epi16(v, 6), m3),
                _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
                _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
                _mm256_and_si256(v, m3),
            ];
            for t in 0..N {
                // SAFETY: b < nb, so the block's 128 activations lie within every token's qs.
                let q = |k: usize| unsafe {
                    _mm256_loadu_si256(ap[t].add(b * BLOCK_ACTS + 32 * k).cast())
                };
                let s01 = _mm256_add_epi16(
                    _mm256_maddubs_epi16(c[0], q(0)),
                    _mm256_maddubs_epi16(c[1], q(1)),
                );
                let s23 = _mm256_add_epi16(
                    _mm256_maddubs_epi16(c[2], q(2)),
                    _mm256_maddubs_epi16(c[3], q(3)),
                );
                acc16[t] = _mm256_add_epi16(acc16[t], _mm256_add_epi16(s01, s23));
            }
            b += 1;
        }
        for t in 0..N {
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(acc16[t], ones));
        }
    }
    Some(acc.map(|v| hsum_epi32_avx2(v)))
}

/// Σc·q for one token with AVX-VNNI: mask (not shift) each 2-bit field, so field k is worth
/// 4^(3−k)·c, `vpdpbusd` it into its own int32 accumulator, and shift the weight out at the end.
/// Two blocks per step in two accumulator sets hide the `vpdpbusd` latency.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemv_avxvnni(row: &[u8], act: &I8sRow) -> i32 {
    const U: usize = 2;
    let nb = blocks(row, &[act]);
    let (wp, ap) = (row.as_ptr(), act.qs.as_ptr());
    let masks = [0xc0u8, 0x30, 0x0c, 0x03].map(|m| _mm256_set1_epi8(m as i8));
    let mut total = 0i32;
    let mut b = 0;
    while b < nb {
        let end = nb.min(b + CHUNK_BLOCKS);
        let mut acc = [[_mm256_setzero_si256(); 4]; U];
        while b < end {
            prefetch(wp, b * BLOCK_BYTES);
            let step = U.min(end - b);
            for (u, acc) in acc.iter_mut().enumerate().take(step) {
                let i = b + u;
                // SAFETY: i < nb, so the block's 32 bytes lie within row.
                let v = unsafe { _mm256_loadu_si256(wp.add(i * BLOCK_BYTES).cast()) };
                for (k, (a, m)) in acc.iter_mut().zip(&masks).enumerate() {
                    // SAFETY: i < nb, so the block's 128 activations lie within qs.
                    let q = unsafe { _mm256_loadu_si256(ap.add(i * BLOCK_ACTS + 32 * k).cast()) };
                    *a = _mm256_dpbusd_avx_epi32(*a, _mm256_and_si256(v, *m), q);
                }
            }
            b += step;
        }
        for [a0, a1, a2, a3] in acc {
            // Each lane is a multiple of its field's weight, so the arithmetic shifts are exact.
            let s = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_srai_epi32(a0, 6), _mm256_srai_epi32(a1, 4)),
                _mm256_add_epi32(_mm256_srai_epi32(a2, 2), a3),
            );
            total = total.wrapping_add(hsum_epi32_avx2(s));
        }
    }
    total
}

/// Σc·q for N ≥ 2 tokens with AVX-VNNI: codes shifted to 0..2 once per block, then per token
/// one fresh four-`vpdpbusd` chain added into a single accumulator (sixteen ymm registers hold
/// four tokens' accumulators, codes and temporaries; fresh chains overlap across blocks).
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn group_avxvnni<const N: usize>(row: &[u8], acts: &[I8sRow]) -> Option<[i32; N]> {
    let acts = <&[I8sRow; N]>::try_from(acts).ok()?;
    let acts = acts.each_ref();
    let nb = blocks(row, &acts);
    let wp = row.as_ptr();
    let ap = acts.map(|a| a.qs.as_ptr());
    let m3 = _mm256_set1_epi8(3);
    let mut total = [0i32; N];
    let mut b = 0;
    while b < nb {
        let end = nb.min(b + CHUNK_BLOCKS);
        let mut acc = [_mm256_setzero_si256(); N];
        while b < end {
            prefetch(wp, b * BLOCK_BYTES);
            // SAFETY: b < nb, so the block's 32 bytes lie within row.
            let v = unsafe { _mm256_loadu_si256(wp.add(b * BLOCK_BYTES).cast()) };
            let c = [
                _mm256_and_si256(_mm256_srli_epi16(v, 6), m3),
                _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
                _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
                _mm256_and_si256(v, m3),
            ];
            for (a, p) in acc.iter_mut().zip(&ap) {
                let mut s = _mm256_setzero_si256();
                for (k, ck) in c.iter().enumerate() {
                    // SAFETY: b < nb, so the block's 128 activations lie within every qs.
                    let q = unsafe { _mm256_loadu_si256(p.add(b * BLOCK_ACTS + 32 * k).cast()) };
                    s = _mm256_dpbusd_avx_epi32(s, *ck, q);
                }
                *a = _mm256_add_epi32(*a, s);
            }
            b += 1;
        }
        for (t, a) in total.iter_mut().zip(acc) {
            *t = t.wrapping_add(hsum_epi32_avx2(a));
        }
    }
    Some(total)
}

/// The 512-bit masks: the low half keeps the field of weights j (×64) and the high half that of
/// j + 32 (×16), so one contiguous 64-byte activation load matches a block broadcast to both
/// halves; the second pair does the same for weights j + 64 (×4) and j + 96 (×1).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn masks_avx512() -> (__m512i, __m512i, __m512i, __m512i) {
    let half = |lo: u8, hi: u8| {
        _mm512_inserti64x4(_mm512_set1_epi8(lo as i8), _mm256_set1_epi8(hi as i8), 1)
    };
    let shift =
        |lo: i32, hi: i32| _mm512_inserti64x4(_mm512_set1_epi32(lo), _mm256_set1_epi32(hi), 1);
    (half(0xc0, 0x30), half(0x0c, 0x03), shift(6, 4), shift(2, 0))
}

/// One chunk's lane sums to Σc·q: undo each field's weight (exact shifts), then add the lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn finish_chunk_avx512(x: __m512i, y: __m512i, sx: __m512i, sy: __m512i) -> i32 {
    _mm512_reduce_add_epi32(_mm512_add_epi32(
        _mm512_srav_epi32(x, sx),
        _mm512_srav_epi32(y, sy),
    ))
}

/// Σc·q for one token, four blocks per step in eight independent accumulators (vpdpbusd has a
/// 4–5 cycle latency): two AND and two `vpdpbusd` per block, no shifts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn gemv_avx512(row: &[u8], act: &I8sRow) -> i32 {
    const U: usize = 4;
    let nb = blocks(row, &[act]);
    let (wp, ap) = (row.as_ptr(), act.qs.as_ptr());
    let (mx, my, sx, sy) = masks_avx512();
    let mut total = 0i32;
    let mut b = 0;
    while b < nb {
        let end = nb.min(b + CHUNK_BLOCKS);
        let mut x = [_mm512_setzero_si512(); U];
        let mut y = [_mm512_setzero_si512(); U];
        while b + U <= end {
            prefetch(wp, b * BLOCK_BYTES);
            prefetch(wp, b * BLOCK_BYTES + 64);
            for u in 0..U {
                let i = b + u;
                // SAFETY: i < nb, so the block's 32 bytes and 128 activations are in bounds.
                let (v, q0, q1) = unsafe {
                    (
                        _mm512_broadcast_i64x4(_mm256_loadu_si256(wp.add(i * BLOCK_BYTES).cast())),
                        _mm512_loadu_si512(ap.add(i * BLOCK_ACTS).cast()),
                        _mm512_loadu_si512(ap.add(i * BLOCK_ACTS + 64).cast()),
                    )
                };
                x[u] = _mm512_dpbusd_epi32(x[u], _mm512_and_si512(v, mx), q0);
                y[u] = _mm512_dpbusd_epi32(y[u], _mm512_and_si512(v, my), q1);
            }
            b += U;
        }
        while b < end {
            // SAFETY: b < nb, so the block's 32 bytes and 128 activations are in bounds.
            let (v, q0, q1) = unsafe {
                (
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(wp.add(b * BLOCK_BYTES).cast())),
                    _mm512_loadu_si512(ap.add(b * BLOCK_ACTS).cast()),
                    _mm512_loadu_si512(ap.add(b * BLOCK_ACTS + 64).cast()),
                )
            };
            x[0] = _mm512_dpbusd_epi32(x[0], _mm512_and_si512(v, mx), q0);
            y[0] = _mm512_dpbusd_epi32(y[0], _mm512_and_si512(v, my), q1);
            b += 1;
        }
        let x = _mm512_add_epi32(_mm512_add_epi32(x[0], x[1]), _mm512_add_epi32(x[2], x[3]));
        let y = _mm512_add_epi32(_mm512_add_epi32(y[0], y[1]), _mm512_add_epi32(y[2], y[3]));
        total = total.wrapping_add(finish_chunk_avx512(x, y, sx, sy));
    }
    total
}

/// Σc·q for N ≥ 2 tokens: each block is broadcast and masked once, then two `vpdpbusd` per
/// token; blocks alternate between two accumulator sets to hide the `vpdpbusd` latency.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn group_avx512<const N: usize>(row: &[u8], acts: &[I8sRow]) -> Option<[i32; N]> {
    const U: usize = 2;
    let acts = <&[I8sRow; N]>::try_from(acts).ok()?;
    let acts = acts.each_ref();
    let nb = blocks(row, &acts);
    let wp = row.as_ptr();
    let ap = acts.map(|a| a.qs.as_ptr());
    let (mx, my, sx, sy) = masks_avx512();
    let mut total = [0i32; N];
    let mut b = 0;
    while b < nb {
        let end = nb.min(b + CHUNK_BLOCKS);
        let mut x = [[_mm512_setzero_si512(); N]; U];
        let mut y = [[_mm512_setzero_si512(); N]; U];
        while b < end {
            prefetch(wp, b * BLOCK_BYTES);
            let step = U.min(end - b);
            for (u, (x, y)) in x.iter_mut().zip(&mut y).enumerate().take(step) {
                let i = b + u;
                // SAFETY: i < nb, so the block's 32 bytes lie within row.
                let v = unsafe {
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(wp.add(i * BLOCK_BYTES).cast()))
                };
                let (cx, cy) = (_mm512_and_si512(v, mx), _mm512_and_si512(v, my));
                for ((x, y), p) in x.iter_mut().zip(y.iter_mut()).zip(&ap) {
                    // SAFETY: i < nb, so the block's 128 activations lie within every qs.
                    let (q0, q1) = unsafe {
                        (
                            _mm512_loadu_si512(p.add(i * BLOCK_ACTS).cast()),
                            _mm512_loadu_si512(p.add(i * BLOCK_ACTS + 64).cast()),
                        )
                    };
                    *x = _mm512_dpbusd_epi32(*x, cx, q0);
                    *y = _mm512_dpbusd_epi32(*y, cy, q1);
                }
            }
            b += step;
        }
        for (t, tot) in total.iter_mut().enumerate() {
            let (xs, ys) = (
                _mm512_add_epi32(x[0][t], x[1][t]),
                _mm512_add_epi32(y[0][t], y[1][t]),
            );
            *tot = tot.wrapping_add(finish_chunk_avx512(xs, ys, sx, sy));
        }
    }
    Some(total)
}
