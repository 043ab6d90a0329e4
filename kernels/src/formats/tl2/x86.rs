//! TL2 on x86-64: `pshufb` lookups of the index nibbles into the entries' byte planes,
//! interleaved back to int16, the sign bit applied per int16 lane, summed per BK tile (BK ≤ 240
//! bounds the sum, see [`super::MAX_TILE_K`]) and widened into the int32 row sums. Every token of
//! the call runs against one 32-row x BK weight block while it sits in L1.

use std::arch::x86_64::*;

use super::kernel::{LutLayout, Tile, Tl2Act, P0, P1, SIGN_BLOCK, T0, T1, T2, VEC_BYTES};
use super::{Tiling, INFO, PAIR_TILE_K, SIMD_M};
use crate::formats::check_len;
use crate::formats::tl1::x86::{
    interleave, load, load512, load_dup, lookup, lookup512, pair_entries, planes, prefetch_ahead,
    quantize_avx2, widen_add,
};
use crate::formats::tl1::AlignedBytes;
use crate::KernelError;

const T01: [u8; 32] = interleave(T0, T1);
const P01: [u8; 32] = interleave(P0, P1);
/// The third digit's coefficients as int16 bytes.
const T2_WORDS: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        let b = T2[i].to_le_bytes();
        m[2 * i] = b[0];
        m[2 * i + 1] = b[1];
        i += 1;
    }
    m
};

/// 32 bytes to `b[at..]`.
#[inline]
#[target_feature(enable = "avx2")]
fn store32(b: &mut [u8], at: usize, v: __m256i) {
    let s = &mut b[at..at + 32];
    // SAFETY: `s` holds exactly 32 writable bytes; the store is unaligned.
    unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), v) }
}

/// Entry n's planes `[lo | hi]` into the table, in `layout`.
#[inline]
#[target_feature(enable = "avx2")]
fn put_entry(out: &mut [u8], layout: LutLayout, n: usize, e: __m256i) {
    let (lo, hi) = layout.slots(n);
    match layout {
        // Native keeps [lo n][hi n] adjacent; Wide wants each plane twice.
        LutLayout::Native => store32(out, lo, e),
        LutLayout::Wide => {
            store32(out, lo, _mm256_permute4x64_epi64::<0b01_00_01_00>(e));
            store32(out, hi, _mm256_permute4x64_epi64::<0b11_10_11_10>(e));
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn build_act_tl2_avx2(
    layout: LutLayout,
    k3: usize,
    cols: usize,
    x: &[f32],
) -> Result<Tl2Act, KernelError> {
    check_len(INFO.name, "activations", x.len(), cols)?;
    let act = quantize_avx2(x)?;
    let (n3, n2) = (k3 / 3, (cols - k3) / 2);
    let mut lut = AlignedBytes::zeroed((n3 + n2) * layout.entry_bytes());
    let out = lut.as_mut_slice();
    let (qa, qb) = act.qs.split_at(k3);
    let (t01, t2, p01) = (load(&T01, 0), load(&T2_WORDS, 0), load(&P01, 0));
    for (n, a) in qa.chunks_exact(3).enumerate() {
        let third = _mm256_sign_epi16(_mm256_set1_epi16(i16::from(a[2])), t2);
        let e = _mm256_add_epi16(pair_entries(t01, a[0], a[1]), third);
        put_entry(out, layout, n, planes(e));
    }
    for (n, a) in qb.chunks_exact(2).enumerate() {
        put_entry(out, layout, n3 + n, planes(pair_entries(p01, a[0], a[1])));
    }
    Ok(Tl2Act { act, lut })
}

/// The x86 variants' `quantize`: activations and tables as [`super::kernel::build_act`] makes them.
pub(super) fn build_act_avx2(
    layout: LutLayout,
    k3: usize,
    cols: usize,
    x: &[f32],
) -> Result<Tl2Act, KernelError> {
    // SAFETY: listed under Isa::Avx2 and Isa::Avx512Vnni, and matmul::check_isa only hands either out after available() confirmed AVX2 (part of both).
    unsafe { build_act_tl2_avx2(layout, k3, cols, x) }
}

/// Blocks ahead whose indices and signs are prefetched: DRAM latency spans several blocks' work.
const PREFETCH_BLOCKS: usize = 8;

/// Bytes of one 32-row block of the pair part (PAIR_TILE_K columns).
const PAIR_BLOCK_BYTES: usize = PAIR_TILE_K / 4 * VEC_BYTES;

/// Adds 16 int16 row sums (rows in order) to 16 int32 row sums.
#[inline]
#[target_feature(enable = "avx2")]
fn widen_add_rows16(sums: __m256i, rows: &mut [i32]) {
    widen_add(_mm256_castsi256_si128(sums), rows);
    widen_add(_mm256_extracti128_si256(sums, 1), &mut rows[8..]);
}

/// High and low nibbles of an index vector.
#[inline]
#[target_feature(enable = "avx2")]
fn nibbles(v: __m256i) -> (__m256i, __m256i) {
    let mask = _mm256_set1_epi8(0x0f);
    (
        _mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
        _mm256_and_si256(v, mask),
    )
}

/// One index vector (two triples x 32 rows) with its signs, for N tokens at once (the nibbles and
/// sign masks are shared): bit 15 of `slli(s1, A)` is the sign of the high-nibble triple for rows
/// 0..16, `B` rows 16..32, `C` the low-nibble triple for rows 0..16, and `m3` carries it for the
/// low-nibble triple, rows 16..32. `s1` has bit 0 set so that no shift below 15 leaves zero,
/// which `psignw` would turn into a zero entry.
#[inline]
#[target_feature(enable = "avx2")]
fn signed_vec<const N: usize, const A: i32, const B: i32, const C: i32>(
    v: __m256i,
    luts: &[&[u8]; N],
    at: usize,
    s1: __m256i,
    m3: __m256i,
    c: &mut [[__m256i; 2]; N],
) {
    let (hn, ln) = nibbles(v);
    let m = [
        _mm256_slli_epi16::<A>(s1),
        _mm256_slli_epi16::<B>(s1),
        _mm256_slli_epi16::<C>(s1),
        m3,
    ];
    for j in 0..N {
        let tab = &luts[j][at..at + 64];
        let (x0, x1) = lookup(load_dup(tab, 0), load_dup(tab, 16), hn);
        let (y0, y1) = lookup(load_dup(tab, 32), load_dup(tab, 48), ln);
        let (x0, x1) = (_mm256_sign_epi16(x0, m[0]), _mm256_sign_epi16(x1, m[1]));
        let (y0, y1) = (_mm256_sign_epi16(y0, m[2]), _mm256_sign_epi16(y1, m[3]));
        c[j][0] = _mm256_add_epi16(c[j][0], _mm256_add_epi16(x0, y0));
        c[j][1] = _mm256_add_epi16(c[j][1], _mm256_add_epi16(x1, y1));
    }
}

/// One 32-row block of one BK tile of triples for N tokens: `idx` BK/6 vectors, `signs` BK/24
/// sign vectors, `luts` each BK/3 native entries.
#[inline]
#[target_feature(enable = "avx2")]
fn triples_avx2<const N: usize>(idx: &[u8], signs: &[u8], luts: [&[u8]; N], rows: [&mut [i32]; N]) {
    let one = _mm256_set1_epi16(1);
    let mut c = [[_mm256_setzero_si256(); 2]; N];
    let per_sign = SIGN_BLOCK / 2 * VEC_BYTES;
    let blocks = idx
        .chunks_exact(per_sign)
        .zip(signs.chunks_exact(VEC_BYTES));
    for (b, (iw, sw)) in blocks.enumerate() {
        let at = b * SIGN_BLOCK * 32;
        let s = load(sw, 0);
        let s1 = _mm256_or_si256(s, one);
        // Sign bit 15 − i of word j: triple i/2 of the block, row j + 16·(i mod 2).
        let m3 = _mm256_slli_epi16::<3>(s1);
        signed_vec::<N, 0, 1, 2>(load(iw, 0), &luts, at, s1, m3, &mut c);
        let m7 = _mm256_slli_epi16::<7>(s1);
        signed_vec::<N, 4, 5, 6>(load(iw, 32), &luts, at + 64, s1, m7, &mut c);
        let m11 = _mm256_slli_epi16::<11>(s1);
        signed_vec::<N, 8, 9, 10>(load(iw, 64), &luts, at + 128, s1, m11, &mut c);
        let m15 = _mm256_or_si256(_mm256_slli_epi16::<15>(s), one);
        signed_vec::<N, 12, 13, 14>(load(iw, 96), &luts, at + 192, s1, m15, &mut c);
    }
    for (j, r) in rows.into_iter().enumerate() {
        widen_add_rows16(c[j][0], r);
        widen_add_rows16(c[j][1], &mut r[16..]);
    }
}

/// One 32-row block of one 32-column tile of the pair part for one token.
#[inline]
#[target_feature(enable = "avx2")]
fn pairs_avx2(idx: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mut c = [_mm256_setzero_si256(); 2];
    for (iw, tab) in idx.chunks_exact(VEC_BYTES).zip(lut.chunks_exact(64)) {
        let (hn, ln) = nibbles(load(iw, 0));
        let (x0, x1) = lookup(load_dup(tab, 0), load_dup(tab, 16), hn);
        let (y0, y1) = lookup(load_dup(tab, 32), load_dup(tab, 48), ln);
        c[0] = _mm256_add_epi16(c[0], _mm256_add_epi16(x0, y0));
        c[1] = _mm256_add_epi16(c[1], _mm256_add_epi16(x1, y1));
    }
    widen_add_rows16(c[0], rows);
    widen_add_rows16(c[1], &mut rows[16..]);
}

/// `len` table bytes of a token from `at`.
fn lut_span(a: &Tl2Act, at: usize, len: usize) -> &[u8] {
    &a.lut.as_slice()[at..][..len]
}

/// Walks a row tile: k tile by k tile, 32-row block by block, every token per block; then the
/// pair part the same way.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_tl2_avx2(tile: &Tile<'_>, t: &Tiling, acts: &[Tl2Act], acc: &mut [i32]) {
    let blocks = t.tile_m / SIMD_M;
    let (per_block, sign_bytes) = (t.tile_k / 6 * VEC_BYTES, t.tile_k / 24 * VEC_BYTES);
    let lut_tile = t.tile_k / 3 * LutLayout::Native.entry_bytes();
    let signs = tile.signs.chunks_exact(sign_bytes);
    for (i, (wb, sb)) in tile.idx.chunks_exact(per_block).zip(signs).enumerate() {
        prefetch_ahead(tile.idx, (i + PREFETCH_BLOCKS) * per_block, per_block);
        prefetch_ahead(tile.signs, (i + PREFETCH_BLOCKS) * sign_bytes, sign_bytes);
        let (k_tile, blk) = (i / blocks, i % blocks);
        let at = k_tile * lut_tile;
        // Tokens two at a time share the nibbles and sign masks of each index vector.
        let (pairs, rest) = acts.split_at(acts.len() / 2 * 2);
        let (acc_pairs, acc_rest) = acc.split_at_mut(pairs.len() * t.tile_m);
        for (a, r) in pairs
            .chunks_exact(2)
            .zip(acc_pairs.chunks_exact_mut(2 * t.tile_m))
        {
            let (r0, r1) = r.split_at_mut(t.tile_m);
            let rows = [
                &mut r0[blk * SIMD_M..][..SIMD_M],
                &mut r1[blk * SIMD_M..][..SIMD_M],
            ];
            let luts = [lut_span(&a[0], at, lut_tile), lut_span(&a[1], at, lut_tile)];
            triples_avx2::<2>(wb, sb, luts, rows);
        }
        if let Some(a) = rest.first() {
            triples_avx2::<1>(
                wb,
                sb,
                [lut_span(a, at, lut_tile)],
                [&mut acc_rest[blk * SIMD_M..][..SIMD_M]],
            );
        }
    }
    let pair_lut = tile.idx.len() / t.tile_m * 2 * LutLayout::Native.entry_bytes();
    let lut_tile = PAIR_TILE_K / 2 * LutLayout::Native.entry_bytes();
    for (i, wb) in tile.pairs.chunks_exact(PAIR_BLOCK_BYTES).enumerate() {
        let (k_tile, blk) = (i / blocks, i % blocks);
        for (tok, a) in acts.iter().enumerate() {
            let lut = &a.lut.as_slice()[pair_lut + k_tile * lut_tile..][..lut_tile];
            pairs_avx2(wb, lut, &mut acc[tok * t.tile_m + blk * SIMD_M..][..SIMD_M]);
        }
    }
}

pub(super) fn tile_avx2(tile: &Tile<'_>, t: &Tiling, acts: &[Tl2Act], acc: &mut [i32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { tile_tl2_avx2(tile, t, acts, acc) }
}

/// High and low nibbles of two index vectors.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn nibbles512(v: __m512i) -> (__m512i, __m512i) {
    let mask = _mm512_set1_epi8(0x0f);
    (
        _mm512_and_si512(_mm512_srli_epi16(v, 4), mask),
        _mm512_and_si512(v, mask),
    )
}

/// Adds the two 256-bit halves (the same 16 rows, different entries) to 16 int32 row sums.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn widen_add_halves(c: __m512i, rows: &mut [i32]) {
    let sum = _mm256_add_epi16(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
    let r = &mut rows[..16];
    // SAFETY: `r` holds exactly 16 i32 (64 bytes); loads and stores are unaligned.
    unsafe {
        let old = _mm512_loadu_si512(r.as_ptr().cast());
        let new = _mm512_add_epi32(old, _mm512_cvtepi16_epi32(sum));
        _mm512_storeu_si512(r.as_mut_ptr().cast(), new);
    }
}

/// Two index vectors (entries n..n+4, lanes 0-1 n/n+1 and lanes 2-3 n+2/n+3) against their
/// 256-byte wide table runs at `at`, for N tokens at once (nibbles and sign masks are shared);
/// `bits` select the signs (high nibble rows 0..16, rows 16..32, low nibble rows 0..16, rows
/// 16..32) in `s`, whose upper half is the sign vector shifted by 4.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn signed_pair_of_vecs<const N: usize>(
    v: __m512i,
    luts: &[&[u8]; N],
    at: usize,
    s: __m512i,
    bits: [i16; 4],
    c: &mut [[__m512i; 2]; N],
) {
    let (hn, ln) = nibbles512(v);
    let k = [
        _mm512_test_epi16_mask(s, _mm512_set1_epi16(bits[0])),
        _mm512_test_epi16_mask(s, _mm512_set1_epi16(bits[1])),
        _mm512_test_epi16_mask(s, _mm512_set1_epi16(bits[2])),
        _mm512_test_epi16_mask(s, _mm512_set1_epi16(bits[3])),
    ];
    let zero = _mm512_setzero_si512();
    for j in 0..N {
        let tab = &luts[j][at..at + 256];
        let (x0, x1) = lookup512(load512(tab, 0), load512(tab, 64), hn);
        let (y0, y1) = lookup512(load512(tab, 128), load512(tab, 192), ln);
        // −e where the sign bit is set.
        let x0 = _mm512_mask_sub_epi16(x0, k[0], zero, x0);
        let x1 = _mm512_mask_sub_epi16(x1, k[1], zero, x1);
        let y0 = _mm512_mask_sub_epi16(y0, k[2], zero, y0);
        let y1 = _mm512_mask_sub_epi16(y1, k[3], zero, y1);
        c[j][0] = _mm512_add_epi16(c[j][0], _mm512_add_epi16(x0, y0));
        c[j][1] = _mm512_add_epi16(c[j][1], _mm512_add_epi16(x1, y1));
    }
}

/// [`triples_avx2`] on 512-bit registers; `luts` are BK/3 wide entries each.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn triples_avx512<const N: usize>(
    idx: &[u8],
    signs: &[u8],
    luts: [&[u8]; N],
    rows: [&mut [i32]; N],
) {
    let mut c = [[_mm512_setzero_si512(); 2]; N];
    let per_sign = SIGN_BLOCK / 2 * VEC_BYTES;
    let blocks = idx
        .chunks_exact(per_sign)
        .zip(signs.chunks_exact(VEC_BYTES));
    for (b, (iw, sw)) in blocks.enumerate() {
        let at = b * SIGN_BLOCK * 64;
        let s = load(sw, 0);
        let s = _mm512_inserti64x4(_mm512_castsi256_si512(s), _mm256_slli_epi16::<4>(s), 1);
        // Vectors 0/1 of the block: triples 0-3, sign bits 15..12; vectors 2/3: bits 7..4.
        let bits = [1 << 15, 1 << 14, 1 << 13, 1 << 12];
        signed_pair_of_vecs::<N>(load512(iw, 0), &luts, at, s, bits, &mut c);
        let bits = [1 << 7, 1 << 6, 1 << 5, 1 << 4];
        signed_pair_of_vecs::<N>(load512(iw, 64), &luts, at + 256, s, bits, &mut c);
    }
    for (j, r) in rows.into_iter().enumerate() {
        widen_add_halves(c[j][0], r);
        widen_add_halves(c[j][1], &mut r[16..]);
    }
}

/// [`pairs_avx2`] on 512-bit registers; `lut` is 16 wide entries.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pairs_avx512(idx: &[u8], lut: &[u8], rows: &mut [i32]) {
    let mut c = [_mm512_setzero_si512(); 2];
    for (iw, tab) in idx.chunks_exact(2 * VEC_BYTES).zip(lut.chunks_exact(256)) {
        let (hn, ln) = nibbles512(load512(iw, 0));
        let (x0, x1) = lookup512(load512(tab, 0), load512(tab, 64), hn);
        let (y0, y1) = lookup512(load512(tab, 128), load512(tab, 192), ln);
        c[0] = _mm512_add_epi16(c[0], _mm512_add_epi16(x0, y0));
        c[1] = _mm512_add_epi16(c[1], _mm512_add_epi16(x1, y1));
    }
    widen_add_halves(c[0], rows);
    widen_add_halves(c[1], &mut rows[16..]);
}

/// [`tile_tl2_avx2`] with 512-bit blocks and wide tables.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn tile_tl2_avx512(tile: &Tile<'_>, t: &Tiling, acts: &[Tl2Act], acc: &mut [i32]) {
    let blocks = t.tile_m / SIMD_M;
    let (per_block, sign_bytes) = (t.tile_k / 6 * VEC_BYTES, t.tile_k / 24 * VEC_BYTES);
    let lut_tile = t.tile_k / 3 * LutLayout::Wide.entry_bytes();
    let signs = tile.signs.chunks_exact(sign_bytes);
    for (i, (wb, sb)) in tile.idx.chunks_exact(per_block).zip(signs).enumerate() {
        prefetch_ahead(tile.idx, (i + PREFETCH_BLOCKS) * per_block, per_block);
        prefetch_ahead(tile.signs, (i + PREFETCH_BLOCKS) * sign_bytes, sign_bytes);
        let (k_tile, blk) = (i / blocks, i % blocks);
        let at = k_tile * lut_tile;
        // Tokens two at a time share the nibbles and sign masks of each index vector.
        let (pairs, rest) = acts.split_at(acts.len() / 2 * 2);
        let (acc_pairs, acc_rest) = acc.split_at_mut(pairs.len() * t.tile_m);
        for (a, r) in pairs
            .chunks_exact(2)
            .zip(acc_pairs.chunks_exact_mut(2 * t.tile_m))
        {
            let (r0, r1) = r.split_at_mut(t.tile_m);
            let rows = [
                &mut r0[blk * SIMD_M..][..SIMD_M],
                &mut r1[blk * SIMD_M..][..SIMD_M],
            ];
            let luts = [lut_span(&a[0], at, lut_tile), lut_span(&a[1], at, lut_tile)];
            triples_avx512::<2>(wb, sb, luts, rows);
        }
        if let Some(a) = rest.first() {
            let rows = [&mut acc_rest[blk * SIMD_M..][..SIMD_M]];
            triples_avx512::<1>(wb, sb, [lut_span(a, at, lut_tile)], rows);
        }
    }
    let pair_lut = tile.idx.len() / t.tile_m * 2 * LutLayout::Wide.entry_bytes();
    let lut_tile = PAIR_TILE_K / 2 * LutLayout::Wide.entry_bytes();
    for (i, wb) in tile.pairs.chunks_exact(PAIR_BLOCK_BYTES).enumerate() {
        let (k_tile, blk) = (i / blocks, i % blocks);
        for (tok, a) in acts.iter().enumerate() {
            let lut = &a.lut.as_slice()[pair_lut + k_tile * lut_tile..][..lut_tile];
            pairs_avx512(wb, lut, &mut acc[tok * t.tile_m + blk * SIMD_M..][..SIMD_M]);
        }
    }
}

pub(super) fn tile_avx512(tile: &Tile<'_>, t: &Tiling, acts: &[Tl2Act], acc: &mut [i32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { tile_tl2_avx512(tile, t, acts, acc) }
}
