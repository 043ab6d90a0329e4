//! aarch64 TQ1_0 × Q8_K row kernels: NEON (`smlal` into int16 sums, widened per block) and
//! dotprod (`sdot` into int32). A block is decoded once into codes c = w + 1 ∈ {0, 1, 2} in
//! activation order and serves up to four tokens; the Q8_K bsums take Σq back off.
//!
//! Decoding: p = byte·3^n mod 256 is a wrapping `mul`, and its top trit ⌊3p/256⌋ equals
//! ((p + p/2)/2)/64 with truncating halves (`uhadd`, checked for all 256 bytes).
//!
//! Overflow: a NEON int16 lane takes 16 products (|·| ≤ 256) and one bsum (|·| ≤ 2048) per block,
//! at most 6144; the dotprod lanes stay in int32 and restart every block.

use std::arch::aarch64::*;
use std::arch::asm;

use super::BlockQ8KTq1;
use super::BlockTq1_0;
use crate::activations::q8_k::BlockQ8K;

/// Tokens that share one decoded weight block (their accumulators stay in registers).
const GROUP: usize = 4;

/// Powers of three for the qh vector: byte 4n + j of a word-broadcast qh holds trit n of qh[j].
const QH_POW: [u8; 16] = [1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27];

pub(super) fn dot_tq1_0_q8_k_neon(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { rows_neon(w, acts, out) }
}

pub(super) fn dot_tq1_0_q8_k_dotprod(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Dotprod, and matmul::check_isa only hands it out after Isa::Dotprod.available() confirmed the features.
    unsafe { rows_dotprod(w, acts, out) }
}

/// Up to `N` tokens' activation rows and the weight row, all cut to the blocks they share (the
/// driver makes them equal; the reference stops at the shorter one too).
fn group<'a, const N: usize>(
    w: &'a [BlockTq1_0],
    acts: &'a [Vec<BlockQ8KTq1>],
) -> (&'a [BlockTq1_0], [&'a [BlockQ8KTq1]; N]) {
    let rows: [&[BlockQ8KTq1]; N] =
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
unsafe fn rows_neon(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_neon);
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn rows_dotprod(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_dotprod);
}

/// The top trit of each byte: ⌊3p/256⌋.
#[inline]
#[target_feature(enable = "neon")]
fn trit(p: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(vshrq_n_u8::<6>(vhaddq_u8(p, vshrq_n_u8::<1>(p))))
}

/// The sixteen code vectors of a block, vector k lined up with activations `qs[16k..]`: trit n
/// of qs[0..16] and qs[16..32] at k = 2n, 2n + 1; trit n of qs[32..48] at 10 + n; qh at 15.
#[inline]
#[target_feature(enable = "neon")]
fn codes(x: &BlockTq1_0, qh_pow: uint8x16_t) -> [int8x16_t; 16] {
    let mut src = [vdupq_n_u8(0); 3];
    for (v, s) in src.iter_mut().zip(x.qs.chunks_exact(16)) {
        // SAFETY: `s` is 16 bytes, one 128-bit load.
        *v = unsafe { vld1q_u8(s.as_ptr()) };
    }
    let three = vdupq_n_u8(3);
    let mut c = [vdupq_n_s8(0); 16];
    let [mut a, mut b, mut e] = src;
    for n in 0..5 {
        c[2 * n] = trit(a);
        c[2 * n + 1] = trit(b);
        c[10 + n] = trit(e);
        a = vmulq_u8(a, three);
        b = vmulq_u8(b, three);
        e = vmulq_u8(e, three);
    }
    let h = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(x.qh)));
    c[15] = trit(vmulq_u8(h, qh_pow));
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

/// The qh powers of three as a vector.
#[inline]
#[target_feature(enable = "neon")]
fn qh_pow() -> uint8x16_t {
    // SAFETY: `QH_POW` is 16 bytes, one 128-bit load.
    unsafe { vld1q_u8(QH_POW.as_ptr()) }
}

#[target_feature(enable = "neon")]
fn group_neon<const N: usize>((w, rows): (&[BlockTq1_0], [&[BlockQ8KTq1]; N])) -> [f32; N] {
    let qh_pow = qh_pow();
    let mut acc = [vdupq_n_f32(0.0); N];
    for (b, x) in w.iter().enumerate() {
        let c = codes(x, qh_pow);
        let dw = x.d.to_f32();
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b].q8;
            let q = acts(y);
            let (b0, b1) = bsums(y);
            let mut s0 = vnegq_s16(b0);
            let mut s1 = vnegq_s16(b1);
            for (&c, &q) in c.iter().zip(&q) {
                s0 = vmlal_s8(s0, vget_low_s8(c), vget_low_s8(q));
                s1 = vmlal_high_s8(s1, c, q);
            }
            let s = vpadalq_s16(vpaddlq_s16(s0), s1);
            *f = vfmaq_n_f32(*f, vcvtq_f32_s32(s), dw * y.d());
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
fn group_dotprod<const N: usize>((w, rows): (&[BlockTq1_0], [&[BlockQ8KTq1]; N])) -> [f32; N] {
    let qh_pow = qh_pow();
    let mut acc = [vdupq_n_f32(0.0); N];
    for (b, x) in w.iter().enumerate() {
        let c = codes(x, qh_pow);
        let dw = x.d.to_f32();
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b].q8;
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
            *f = vfmaq_n_f32(*f, vcvtq_f32_s32(s), dw * y.d());
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = vaddvq_f32(f);
    }
    sums
}
