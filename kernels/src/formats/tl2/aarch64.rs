//! TL2 on aarch64: `tbl` lookups of the index nibbles into the entries' byte planes, zipped back
//! to int16, the sign bit applied per int16 lane, summed per BK tile (BK ≤ 240 bounds the sum,
//! see [`super::MAX_TILE_K`]) and widened into the int32 row sums. Every token of the call runs
//! against one 32-row x BK weight block while it sits in L1.

use std::arch::aarch64::*;

use super::kernel::{LutLayout, Tile, Tl2Act, SIGN_BLOCK, VEC_BYTES};
use super::{Tiling, PAIR_TILE_K, SIMD_M};

/// Bytes of one 32-row block of the pair part (PAIR_TILE_K columns).
const PAIR_BLOCK_BYTES: usize = PAIR_TILE_K / 4 * VEC_BYTES;

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

/// Entries of one half index vector's nibbles `idx` in the planes (lo, hi): the half's first 8
/// rows and its last 8 (rows 0..8 and 16..24 for bytes 0..16, rows 8..16 and 24..32 after).
#[inline]
#[target_feature(enable = "neon")]
fn lookup(lo: uint8x16_t, hi: uint8x16_t, idx: uint8x16_t) -> (int16x8_t, int16x8_t) {
    let (a, b) = (vqtbl1q_u8(lo, idx), vqtbl1q_u8(hi, idx));
    (
        vreinterpretq_s16_u8(vzip1q_u8(a, b)),
        vreinterpretq_s16_u8(vzip2q_u8(a, b)),
    )
}

/// e, negated where the lane's sign bit `bit` of `s` is set (multiplied by ±1).
#[inline]
#[target_feature(enable = "neon")]
fn signed(e: int16x8_t, s: uint16x8_t, bit: u16) -> int16x8_t {
    let neg = vreinterpretq_s16_u16(vtstq_u16(s, vdupq_n_u16(bit)));
    vmulq_s16(e, vorrq_s16(neg, vdupq_n_s16(1)))
}

/// Accumulators: rows 0..8, 8..16, 16..24, 24..32.
type Acc = [int16x8_t; 4];

/// One index vector (two entries x 32 rows); `signs`, if any, with the bit of the high-nibble
/// entry for rows 0..16 (the others follow: rows 16..32 is bit/2, the low nibble bit/4, bit/8).
#[inline]
#[target_feature(enable = "neon")]
fn vec32(iw: &[u8], tab: &[u8], signs: Option<(uint16x8_t, uint16x8_t, u16)>, c: &mut Acc) {
    let mask = vdupq_n_u8(0x0f);
    for (half, rows_a, rows_b) in [(0, 0, 2), (16, 1, 3)] {
        let v = load(iw, half);
        let (hn, ln) = (vshrq_n_u8::<4>(v), vandq_u8(v, mask));
        let (x_a, x_b) = lookup(load(tab, 0), load(tab, 16), hn);
        let (y_a, y_b) = lookup(load(tab, 32), load(tab, 48), ln);
        let (x_a, x_b, y_a, y_b) = match signs {
            // Words 0..8 are rows 0..8 (and 16..24), words 8..16 rows 8..16 (and 24..32).
            Some((s_lo, s_hi, bit)) => {
                let s = if half == 0 { s_lo } else { s_hi };
                (
                    signed(x_a, s, bit),
                    signed(x_b, s, bit >> 1),
                    signed(y_a, s, bit >> 2),
                    signed(y_b, s, bit >> 3),
                )
            }
            None => (x_a, x_b, y_a, y_b),
        };
        c[rows_a] = vaddq_s16(c[rows_a], vaddq_s16(x_a, y_a));
        c[rows_b] = vaddq_s16(c[rows_b], vaddq_s16(x_b, y_b));
    }
}

#[inline]
#[target_feature(enable = "neon")]
fn widen_all(c: &Acc, rows: &mut [i32]) {
    for (i, ci) in c.iter().enumerate() {
        widen_add(*ci, &mut rows[8 * i..]);
    }
}

/// One 32-row block of one BK tile of triples for one token.
#[inline]
#[target_feature(enable = "neon")]
fn triples_neon(idx: &[u8], signs: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mut c: Acc = [vdupq_n_s16(0); 4];
    let per_sign = SIGN_BLOCK / 2 * VEC_BYTES;
    let blocks = idx
        .chunks_exact(per_sign)
        .zip(signs.chunks_exact(VEC_BYTES));
    for ((iw, sw), lt) in blocks.zip(lut.chunks_exact(SIGN_BLOCK * 32)) {
        let s_lo = vreinterpretq_u16_u8(load(sw, 0));
        let s_hi = vreinterpretq_u16_u8(load(sw, 16));
        // Sign bit 15 − i of word j: triple i/2 of the block, row j + 16·(i mod 2).
        for (jj, (v, tab)) in iw
            .chunks_exact(VEC_BYTES)
            .zip(lt.chunks_exact(64))
            .enumerate()
        {
            vec32(v, tab, Some((s_lo, s_hi, 0x8000 >> (4 * jj))), &mut c);
        }
    }
    widen_all(&c, rows);
}

/// One 32-row block of one 32-column tile of the pair part for one token.
#[inline]
#[target_feature(enable = "neon")]
fn pairs_neon(idx: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mut c: Acc = [vdupq_n_s16(0); 4];
    for (v, tab) in idx.chunks_exact(VEC_BYTES).zip(lut.chunks_exact(64)) {
        vec32(v, tab, None, &mut c);
    }
    widen_all(&c, rows);
}

/// Walks a row tile: k tile by k tile, 32-row block by block, every token per block; then the
/// pair part the same way.
#[target_feature(enable = "neon")]
unsafe fn tile_tl2_neon(tile: &Tile<'_>, t: &Tiling, acts: &[Tl2Act], acc: &mut [i32]) {
    let blocks = t.tile_m / SIMD_M;
    let (per_block, sign_bytes) = (t.tile_k / 6 * VEC_BYTES, t.tile_k / 24 * VEC_BYTES);
    let lut_tile = t.tile_k / 3 * LutLayout::Native.entry_bytes();
    let signs = tile.signs.chunks_exact(sign_bytes);
    for (i, (wb, sb)) in tile.idx.chunks_exact(per_block).zip(signs).enumerate() {
        let (k_tile, blk) = (i / blocks, i % blocks);
        for (tok, a) in acts.iter().enumerate() {
            let lut = &a.lut.as_slice()[k_tile * lut_tile..][..lut_tile];
            triples_neon(
                wb,
                sb,
                lut,
                &mut acc[tok * t.tile_m + blk * SIMD_M..][..SIMD_M],
            );
        }
    }
    let pair_lut = tile.idx.len() / t.tile_m * 2 * LutLayout::Native.entry_bytes();
    let lut_tile = PAIR_TILE_K / 2 * LutLayout::Native.entry_bytes();
    for (i, wb) in tile.pairs.chunks_exact(PAIR_BLOCK_BYTES).enumerate() {
        let (k_tile, blk) = (i / blocks, i % blocks);
        for (tok, a) in acts.iter().enumerate() {
            let lut = &a.lut.as_slice()[pair_lut + k_tile * lut_tile..][..lut_tile];
            pairs_neon(wb, lut, &mut acc[tok * t.tile_m + blk * SIMD_M..][..SIMD_M]);
        }
    }
}

pub(super) fn tile_neon(tile: &Tile<'_>, t: &Tiling, acts: &[Tl2Act], acc: &mut [i32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { tile_tl2_neon(tile, t, acts, acc) }
}
