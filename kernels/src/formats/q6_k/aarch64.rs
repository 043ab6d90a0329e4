//! aarch64 Q6_K × Q8_K row kernels. Each block's 6-bit codes are rebuilt once per half as signed
//! bytes l = q − 32 (one 16-byte vector per 16-weight sub-block, `sli` joining the nibble and the
//! two high bits) and reused for up to four tokens: `sdot` (dotprod) or `smull`/`smlal` (plain
//! NEON, pair sums ≤ 2·32·127 in i16), then a multiply-accumulate by the sub-block scale in i32.

use std::arch::aarch64::*;
use std::arch::asm;

use super::BlockQ6K;
use crate::activations::q8_k::BlockQ8K;

/// Tokens that share one rebuilt weight block.
const GROUP: usize = 4;

pub(super) fn dot_q6_k_q8_k_neon(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { rows_neon(w, acts, out) }
}

pub(super) fn dot_q6_k_q8_k_dotprod(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Dotprod, and matmul::check_isa only hands it out after Isa::Dotprod.available() confirmed the features.
    unsafe { rows_dotprod(w, acts, out) }
}

/// `acc + Σ` of each lane's four byte products (`sdot`; its intrinsic is not stable Rust yet).
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: sdot reads three vector registers and writes one, touching no memory or flags; this fn enables dotprod.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// The eight sub-blocks of one 128-weight half as signed codes, in weight order.
#[target_feature(enable = "neon")]
#[inline]
fn half_codes(ql: &[u8; 64], qh: &[u8; 32]) -> [int8x16_t; 8] {
    // SAFETY: ql holds 64 bytes, qh 32; vld1q_u8 needs no alignment.
    let (l, h) = unsafe {
        let (lp, hp) = (ql.as_ptr(), qh.as_ptr());
        (
            [
                vld1q_u8(lp),
                vld1q_u8(lp.add(16)),
                vld1q_u8(lp.add(32)),
                vld1q_u8(lp.add(48)),
            ],
            [vld1q_u8(hp), vld1q_u8(hp.add(16))],
        )
    };
    let m3 = vdupq_n_u8(3);
    let off = vdupq_n_s8(32);
    // sli keeps the low nibble of `lo` and puts `hi` above it.
    let code = |lo: uint8x16_t, hi: uint8x16_t| {
        vsubq_s8(vreinterpretq_s8_u8(vsliq_n_u8::<4>(lo, hi)), off)
    };
    [
        code(l[0], vandq_u8(h[0], m3)),
        code(l[1], vandq_u8(h[1], m3)),
        code(l[2], vandq_u8(vshrq_n_u8::<2>(h[0]), m3)),
        code(l[3], vandq_u8(vshrq_n_u8::<2>(h[1]), m3)),
        code(vshrq_n_u8::<4>(l[0]), vandq_u8(vshrq_n_u8::<4>(h[0]), m3)),
        code(vshrq_n_u8::<4>(l[1]), vandq_u8(vshrq_n_u8::<4>(h[1]), m3)),
        code(vshrq_n_u8::<4>(l[2]), vshrq_n_u8::<6>(h[0])),
        code(vshrq_n_u8::<4>(l[3]), vshrq_n_u8::<6>(h[1])),
    ]
}

/// The two halves of a block: (64 ql bytes, 32 qh bytes) each.
fn halves(x: &BlockQ6K) -> impl Iterator<Item = (&[u8; 64], &[u8; 32])> {
    x.ql.chunks_exact(64)
        .zip(x.qh.chunks_exact(32))
        .filter_map(|(l, h)| Some((l.try_into().ok()?, h.try_into().ok()?)))
}

#[target_feature(enable = "neon")]
unsafe fn rows_neon(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // SAFETY: this fn's features are enabled, as group_neon requires.
        unsafe {
            match a.len() {
                1 => group_neon::<1>(w, a, o),
                2 => group_neon::<2>(w, a, o),
                3 => group_neon::<3>(w, a, o),
                _ => group_neon::<4>(w, a, o),
            }
        }
    }
}

/// `out[t] = w · acts[t]` for exactly N tokens, by widening multiplies.
#[target_feature(enable = "neon")]
unsafe fn group_neon<const N: usize>(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let Ok(acts) = <&[Vec<BlockQ8K>; N]>::try_from(acts) else {
        return;
    };
    let nb = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let mut acc = [vdupq_n_f32(0.0); N];
    for (b, x) in w[..nb].iter().enumerate() {
        let ys: [&BlockQ8K; N] = std::array::from_fn(|t| &acts[t][b]);
        // SAFETY: scales holds 16 bytes.
        let s8 = unsafe { vld1q_s8(x.scales.as_ptr()) };
        let s16 = [vmovl_s8(vget_low_s8(s8)), vmovl_high_s8(s8)];
        let mut sumi = [[vdupq_n_s32(0); 2]; N];
        for (h, (ql, qh)) in halves(x).enumerate() {
            let q = half_codes(ql, qh);
            let s = s16[h];
            for (acc, y) in sumi.iter_mut().zip(&ys) {
                // SAFETY: 128h + 128 ≤ 256 = qs.len().
                let a: [int8x16_t; 8] = std::array::from_fn(|i| unsafe {
                    vld1q_s8(y.qs.as_ptr().add(128 * h + 16 * i))
                });
                let p: [int16x8_t; 8] = std::array::from_fn(|i| {
                    vmlal_high_s8(vmull_s8(vget_low_s8(q[i]), vget_low_s8(a[i])), q[i], a[i])
                });
                macro_rules! scaled {
                    ($($i:literal)*) => {$(
                        acc[0] = vmlal_laneq_s16::<$i>(acc[0], vget_low_s16(p[$i]), s);
                        acc[1] = vmlal_high_laneq_s16::<$i>(acc[1], p[$i], s);
                    )*};
                }
                scaled!(0 1 2 3 4 5 6 7);
            }
        }
        let d = x.d.to_f32();
        for ((a, s), y) in acc.iter_mut().zip(sumi).zip(&ys) {
            *a = vfmaq_n_f32(*a, vcvtq_f32_s32(vaddq_s32(s[0], s[1])), d * y.d());
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = vaddvq_f32(a);
    }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn rows_dotprod(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // SAFETY: this fn's features are enabled, as group_dotprod requires.
        unsafe {
            match a.len() {
                1 => group_dotprod::<1>(w, a, o),
                2 => group_dotprod::<2>(w, a, o),
                3 => group_dotprod::<3>(w, a, o),
                _ => group_dotprod::<4>(w, a, o),
            }
        }
    }
}

/// `out[t] = w · acts[t]` for exactly N tokens, by `sdot`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn group_dotprod<const N: usize>(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let Ok(acts) = <&[Vec<BlockQ8K>; N]>::try_from(acts) else {
        return;
    };
    let nb = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let zero = vdupq_n_s32(0);
    let mut acc = [vdupq_n_f32(0.0); N];
    for (b, x) in w[..nb].iter().enumerate() {
        let ys: [&BlockQ8K; N] = std::array::from_fn(|t| &acts[t][b]);
        // SAFETY: scales holds 16 bytes.
        let s8 = unsafe { vld1q_s8(x.scales.as_ptr()) };
        let (lo, hi) = (vmovl_s8(vget_low_s8(s8)), vmovl_high_s8(s8));
        let s32 = [
            vmovl_s16(vget_low_s16(lo)),
            vmovl_high_s16(lo),
            vmovl_s16(vget_low_s16(hi)),
            vmovl_high_s16(hi),
        ];
        let mut sumi = [[zero; 2]; N];
        for (h, (ql, qh)) in halves(x).enumerate() {
            let q = half_codes(ql, qh);
            let s = [s32[2 * h], s32[2 * h + 1]];
            for (acc, y) in sumi.iter_mut().zip(&ys) {
                // SAFETY: 128h + 128 ≤ 256 = qs.len().
                let a: [int8x16_t; 8] = std::array::from_fn(|i| unsafe {
                    vld1q_s8(y.qs.as_ptr().add(128 * h + 16 * i))
                });
                macro_rules! scaled {
                    ($($i:literal $v:literal $lane:literal)*) => {$(
                        acc[$i % 2] = vmlaq_laneq_s32::<$lane>(
                            acc[$i % 2],
                            sdot(zero, q[$i], a[$i]),
                            s[$v],
                        );
                    )*};
                }
                scaled!(0 0 0 1 0 1 2 0 2 3 0 3 4 1 0 5 1 1 6 1 2 7 1 3);
            }
        }
        let d = x.d.to_f32();
        for ((a, s), y) in acc.iter_mut().zip(sumi).zip(&ys) {
            *a = vfmaq_n_f32(*a, vcvtq_f32_s32(vaddq_s32(s[0], s[1])), d * y.d());
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = vaddvq_f32(a);
    }
}
