//! TL1 on aarch64 (bitnet.cpp's own TL1 target): `tbl` lookups of the weight nibbles into the
//! pair tables' byte planes, zipped back to int16 and summed per BK tile (BK ≤ 256 bounds the
//! sum, see [`super::MAX_TILE_K`]), then widened into the int32 row sums. Every token of the call
//! runs against one bm x BK weight block while it sits in L1. (`sdot` has no use here: it would
//! add the lookups of four different rows.)

use std::arch::aarch64::*;

use super::kernel::{Tl1Act, CHUNK_BYTES, LUT_BYTES_PER_COL};
use super::Tiling;

/// 16 bytes at `b[at..]`.
#[inline]
#[target_feature(enable = "neon")]
fn load(b: &[u8], at: usize) -> uint8x16_t {
    let s = &b[at..at + 16];
    // SAFETY: `s` holds exactly 16 readable bytes; the load has no alignment requirement.
    unsafe { vld1q_u8(s.as_ptr()) }
}

/// Adds 8 int16 sums to 8 int32 row sums.
#[inline]
#[target_feature(enable = "neon")]
fn widen_add(sums: int16x8_t, rows: &mut [i32]) {
    let r = &mut rows[..8];
    // SAFETY: `r` holds exactly 8 i32; loads and stores have no alignment requirement.
    unsafe {
        let lo = vaddw_s16(vld1q_s32(r.as_ptr()), vget_low_s16(sums));
        let hi = vaddw_high_s16(vld1q_s32(r.as_ptr().add(4)), sums);
        vst1q_s32(r.as_mut_ptr(), lo);
        vst1q_s32(r.as_mut_ptr().add(4), hi);
    }
}

/// Entries of 16 rows' indices `idx` in the table planes (lo, hi), added to rows 0..8 and 8..16.
#[inline]
#[target_feature(enable = "neon")]
fn lookup_add(lo: uint8x16_t, hi: uint8x16_t, idx: uint8x16_t, c: &mut [int16x8_t]) {
    let (a, b) = (vqtbl1q_u8(lo, idx), vqtbl1q_u8(hi, idx));
    c[0] = vaddq_s16(c[0], vreinterpretq_s16_u8(vzip1q_u8(a, b)));
    c[1] = vaddq_s16(c[1], vreinterpretq_s16_u8(vzip2q_u8(a, b)));
}

/// One 16-byte weight vector (16 rows, a pair in each nibble) with its two pairs' planes at
/// `tab[hn_lo], tab[hn_hi], tab[ln_lo], tab[ln_hi]`.
#[inline]
#[target_feature(enable = "neon")]
fn vec16(v: uint8x16_t, tab: &[u8], at: [usize; 4], c: &mut [int16x8_t]) {
    let hn = vshrq_n_u8::<4>(v);
    let ln = vandq_u8(v, vdupq_n_u8(0x0f));
    lookup_add(load(tab, at[0]), load(tab, at[1]), hn, c);
    lookup_add(load(tab, at[2]), load(tab, at[3]), ln, c);
}

/// bm = 32: vectors are (rows 0..16, pairs 0/1), (rows 0..16, pairs 2/3), then rows 16..32.
#[inline]
#[target_feature(enable = "neon")]
fn block32_neon(w: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mut c = [vdupq_n_s16(0); 4];
    for (wc, tc) in w.chunks_exact(CHUNK_BYTES).zip(lut.chunks_exact(128)) {
        for (half, at) in [(0, 0), (2, 32)] {
            vec16(load(wc, at), tc, [0, 32, 64, 96], &mut c[half..half + 2]);
            vec16(
                load(wc, at + 16),
                tc,
                [16, 48, 80, 112],
                &mut c[half..half + 2],
            );
        }
    }
    for (i, ci) in c.iter().enumerate() {
        widen_add(*ci, &mut rows[8 * i..]);
    }
}

/// bm = 64: four vectors of 16 rows, all for pairs 0 (high nibble) and 1.
#[inline]
#[target_feature(enable = "neon")]
fn block64_neon(w: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mut c = [vdupq_n_s16(0); 8];
    for (wc, tc) in w.chunks_exact(CHUNK_BYTES).zip(lut.chunks_exact(64)) {
        for (q, cq) in c.chunks_exact_mut(2).enumerate() {
            vec16(load(wc, 16 * q), tc, [0, 16, 32, 48], cq);
        }
    }
    for (i, ci) in c.iter().enumerate() {
        widen_add(*ci, &mut rows[8 * i..]);
    }
}

/// Walks a row tile: k tile by k tile, bm-row block by block, every token per block.
#[target_feature(enable = "neon")]
unsafe fn tile_tl1_neon(w: &[u8], t: &Tiling, acts: &[Tl1Act], acc: &mut [i32]) {
    let (bm, blocks) = (t.simd_m, t.tile_m / t.simd_m);
    let block_bytes = t.tile_k / t.by() * CHUNK_BYTES;
    let lut_bytes = t.tile_k * LUT_BYTES_PER_COL;
    for (i, wb) in w.chunks_exact(block_bytes).enumerate() {
        let (k_tile, blk) = (i / blocks, i % blocks);
        for (tok, a) in acts.iter().enumerate() {
            let lut = &a.lut.as_slice()[k_tile * lut_bytes..][..lut_bytes];
            let rows = &mut acc[tok * t.tile_m + blk * bm..][..bm];
            if bm == 32 {
                block32_neon(wb, lut, rows);
            } else {
                block64_neon(wb, lut, rows);
            }
        }
    }
}

pub(super) fn tile_neon(w: &[u8], t: &Tiling, _cols: usize, acts: &[Tl1Act], acc: &mut [i32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { tile_tl1_neon(w, t, acts, acc) }
}
