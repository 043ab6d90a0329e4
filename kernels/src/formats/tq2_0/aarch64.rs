//! aarch64 TQ2_0 × Q8_K row kernels: NEON (`smlal` into int16 sums, widened per block) and
//! dotprod (`sdot` into int32). Codes c = w + 1 ∈ {0, 1, 2} multiply the int8 activations
//! directly, so the integer dot is Σc·q and the Q8_K bsums take Σq back off. Each weight block is
//! unpacked once and serves up to four tokens.
//!
//! Overflow: a NEON int16 lane takes 16 products (|·| ≤ 256) and one bsum (|·| ≤ 2048) per block,
//! at most 6144; the dotprod lanes stay in int32 and restart every block.

use std::arch::aarch64::*;
use std::arch::asm;

use super::BlockTq2_0;
use crate::activations::q8_k::BlockQ8K;

/// Tokens that share one unpacked weight block (their accumulators stay in registers).
const GROUP: usize = 4;

pub(super) fn dot_tq2_0_q8_k_neon(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { rows_neon(w, acts, out) }
}

pub(super) fn dot_tq2_0_q8_k_dotprod(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Dotprod, and matmul::check_isa only hands it out after Isa::Dotprod.available() confirmed the features.
    unsafe { rows_dotprod(w, acts, out) }
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

#[target_feature(enable = "neon")]
unsafe fn rows_neon(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_neon);
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn rows_dotprod(w: &[BlockTq2_0], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_dotprod);
}

/// The sixteen code vectors of a block, vector k lined up with activations `qs[16k..]`: half h,
/// field n, bytes 16p.. of the half land at k = 8h + 2n + p.
#[inline]
#[target_feature(enable = "neon")]
fn codes(x: &BlockTq2_0) -> [int8x16_t; 16] {
    let m3 = vdupq_n_u8(3);
    let mut c = [vdupq_n_s8(0); 16];
    for (h, c) in x.qs.chunks_exact(32).zip(c.chunks_exact_mut(8)) {
        for (p, s) in h.chunks_exact(16).enumerate() {
            // SAFETY: `s` is 16 bytes, one 128-bit load.
            let v = unsafe { vld1q_u8(s.as_ptr()) };
            c[p] = vreinterpretq_s8_u8(vandq_u8(v, m3));
            c[2 + p] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<2>(v), m3));
            c[4 + p] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<4>(v), m3));
            c[6 + p] = vreinterpretq_s8_u8(vshrq_n_u8::<6>(v));
        }
    }
    c
}

/// The sixteen 16-byte activation slices of a Q8_K block.
#[inline]
#[target_feature(enable = "neon")]
fn acts(y: &BlockQ8K) -> [int8x16_t; 16] {
    let mut q = [vdupq_n_s8(0); 16];
    for (q, s) in q.iter_mut().zip(y.qs.chunks_exact(16)) {
        // SAFETY: `s` is 16 bytes, one 128-bit load.
        *q = unsafe { vld1q_s8(s.as_ptr()) };
    }
    q
}

/// The block's bsums as two int16 vectors.
#[inline]
#[target_feature(enable = "neon")]
fn bsums(y: &BlockQ8K) -> (int16x8_t, int16x8_t) {
    let (lo, hi) = y.bsums.split_at(8);
    // SAFETY: each half is 8 int16 (16 bytes), one 128-bit load.
    unsafe {
        (
            vreinterpretq_s16_u8(vld1q_u8(lo.as_ptr().cast())),
            vreinterpretq_s16_u8(vld1q_u8(hi.as_ptr().cast())),
        )
    }
}

#[target_feature(enable = "neon")]
fn group_neon<const N: usize>((w, rows): (&[BlockTq2_0], [&[BlockQ8K]; N])) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for (b, x) in w.iter().enumerate() {
        let c = codes(x);
        let dw = x.d.to_f32();
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b];
            let q = acts(y);
            let (b0, b1) = bsums(y);
            let mut s0 = vnegq_s16(b0);
            let mut s1 = vnegq_s16(b1);
            for (&c, &q) in c.iter().zip(&q) {
                s0 = vmlal_s8(s0, vget_low_s8(c), vget_low_s8(q));
                s1 = vmlal_high_s8(s1, c, q);
            }
            let s = vpadalq_s16(vpaddlq_s16(s0), s1);
            *f = vfmaq_n_f32(*f, vcvtq_f32_s32(s), y.d() * dw);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = vaddvq_f32(f);
    }
    sums
}

/// `sdot` (the intrinsic is not stable yet).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: sdot only reads and writes these registers; dotprod is enabled for this fn.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

#[target_feature(enable = "neon,dotprod")]
fn group_dotprod<const N: usize>((w, rows): (&[BlockTq2_0], [&[BlockQ8K]; N])) -> [f32; N] {
    let mut acc = [vdupq_n_f32(0.0); N];
    for (b, x) in w.iter().enumerate() {
        let c = codes(x);
        let dw = x.d.to_f32();
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b];
            let q = acts(y);
            let (b0, b1) = bsums(y);
            // Four chains hide the sdot latency.
            let mut s = [
                vnegq_s32(vpaddlq_s16(b0)),
                vnegq_s32(vpaddlq_s16(b1)),
                vdupq_n_s32(0),
                vdupq_n_s32(0),
            ];
            for (k, (&c, &q)) in c.iter().zip(&q).enumerate() {
                s[k % 4] = sdot(s[k % 4], c, q);
            }
            let s = vaddq_s32(vaddq_s32(s[0], s[1]), vaddq_s32(s[2], s[3]));
            *f = vfmaq_n_f32(*f, vcvtq_f32_s32(s), y.d() * dw);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = vaddvq_f32(f);
    }
    sums
}
