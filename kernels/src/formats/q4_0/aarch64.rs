//! aarch64 Q4_0 × Q8_0 row kernels: nibbles to signed c − 8 by one AND or shift and one
//! subtract, then `sdot` (dotprod) or `smull`/`smlal` with a pairwise widen (NEON; a lane holds at
//! most four products of magnitude ≤ 1024 in int16). Block scale products are widened four at a
//! time with `fcvtl` and applied per lane by `fmla`, and each unpacked block serves up to four
//! tokens.

use std::arch::aarch64::*;
use std::arch::asm;

use super::BlockQ4_0;
use crate::activations::q8_0::BlockQ8_0;
use crate::activations::F16Bytes;

/// Tokens that share one unpacked weight block.
const GROUP: usize = 4;
/// Blocks per step: one per lane of a scale vector.
const STEP: usize = 4;

pub(super) fn dot_q4_0_q8_0_neon(w: &[BlockQ4_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { rows_neon(w, acts, out) }
}

pub(super) fn dot_q4_0_q8_0_dotprod(w: &[BlockQ4_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Dotprod, and matmul::check_isa only hands it out after Isa::Dotprod.available() confirmed the features.
    unsafe { rows_dotprod(w, acts, out) }
}

/// Four f16 values (by their bits, lowest first) widened to f32 (`fcvtl`; its intrinsic takes an
/// f16 vector type that is not stable Rust).
#[inline]
#[target_feature(enable = "neon")]
fn f16x4_to_f32(bits: u64) -> float32x4_t {
    let h = vcreate_u16(bits);
    let out: float32x4_t;
    // SAFETY: fcvtl only reads and writes these registers; it is base ARMv8 (no FP16 extension).
    unsafe {
        asm!(
            "fcvtl {o:v}.4s, {h:v}.4h",
            o = out(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// The scales of up to four blocks as f32 (missing ones are zero).
#[inline]
#[target_feature(enable = "neon")]
fn scales4<B>(blocks: &[B], d: impl Fn(&B) -> F16Bytes) -> float32x4_t {
    let bits = blocks
        .iter()
        .take(STEP)
        .enumerate()
        .fold(0u64, |s, (i, b)| {
            s | u64::from(u16::from_le_bytes(d(b).0)) << (16 * i)
        });
    f16x4_to_f32(bits)
}

/// `acc + Σ a·b` over groups of four signed bytes (`sdot`; its intrinsic is not stable Rust).
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

/// A block's codes as signed c − 8: weights 0..15 (low nibbles) and 16..31 (high nibbles).
#[inline]
#[target_feature(enable = "neon")]
fn codes(w: &BlockQ4_0) -> (int8x16_t, int8x16_t) {
    // SAFETY: qs is 16 readable bytes.
    let v = unsafe { vld1q_u8(w.qs.as_ptr()) };
    let eight = vdupq_n_s8(8);
    (
        vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), eight),
        vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)), eight),
    )
}

/// A Q8_0 block's 32 activations as two vectors.
#[inline]
#[target_feature(enable = "neon")]
fn acts32(a: &BlockQ8_0) -> (int8x16_t, int8x16_t) {
    // SAFETY: qs is 32 readable bytes.
    unsafe { (vld1q_s8(a.qs.as_ptr()), vld1q_s8(a.qs.as_ptr().add(16))) }
}

/// Σ(c − 8)·q of one block in int32 lanes, without dotprod: a lane of the int16 products takes
/// four of magnitude ≤ 8·128, then widens pairwise.
#[inline]
#[target_feature(enable = "neon")]
fn dot_neon(c: (int8x16_t, int8x16_t), q: (int8x16_t, int8x16_t)) -> int32x4_t {
    let p = vmull_s8(vget_low_s8(c.0), vget_low_s8(q.0));
    let p = vmlal_high_s8(p, c.0, q.0);
    let p = vmlal_s8(p, vget_low_s8(c.1), vget_low_s8(q.1));
    vpaddlq_s16(vmlal_high_s8(p, c.1, q.1))
}

#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot_dotprod(c: (int8x16_t, int8x16_t), q: (int8x16_t, int8x16_t)) -> int32x4_t {
    sdot(sdot(vdupq_n_s32(0), c.0, q.0), c.1, q.1)
}

/// One variant: `$features` enabled, `$dot` one block's int32 lanes.
macro_rules! q4_0_variant {
    ($rows:ident, $group:ident, $features:literal, $dot:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $rows(w: &[BlockQ4_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
            for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
                // SAFETY: this fn's features are enabled, as the group kernel requires.
                unsafe {
                    match a.len() {
                        1 => $group::<1, 4>(w, a, o),
                        2 => $group::<2, 2>(w, a, o),
                        3 => $group::<3, 1>(w, a, o),
                        _ => $group::<4, 1>(w, a, o),
                    }
                }
            }
        }

        /// `out[t] = w · acts[t]` for exactly N tokens, with C float accumulators per token
        /// (fewer tokens need more to hide the FMA latency).
        #[target_feature(enable = $features)]
        unsafe fn $group<const N: usize, const C: usize>(
            w: &[BlockQ4_0],
            acts: &[Vec<BlockQ8_0>],
            out: &mut [f32],
        ) {
            let Ok(acts) = <&[Vec<BlockQ8_0>; N]>::try_from(acts) else {
                return;
            };
            let nb = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
            let mut acc = [[vdupq_n_f32(0.0); C]; N];
            let mut g = 0;
            while g < nb {
                let len = STEP.min(nb - g);
                let wg = w.get(g..g + len).unwrap_or_default();
                let ag = acts
                    .each_ref()
                    .map(|a| a.get(g..g + len).unwrap_or_default());
                let dw = scales4(wg, |b| b.d);
                let s = ag.map(|a| vmulq_f32(dw, scales4(a, |b| b.d)));
                // Block L of the step, scaled by lane L (a constant, as fmla's lane must be).
                macro_rules! lane {
                    ($l:literal) => {
                        if let Some(wb) = wg.get($l) {
                            let c = codes(wb);
                            for t in 0..N {
                                if let Some(ab) = ag[t].get($l) {
                                    let p = vcvtq_f32_s32($dot(c, acts32(ab)));
                                    acc[t][$l % C] = vfmaq_laneq_f32::<$l>(acc[t][$l % C], p, s[t]);
                                }
                            }
                        }
                    };
                }
                lane!(0);
                lane!(1);
                lane!(2);
                lane!(3);
                g += len;
            }
            for (o, a) in out.iter_mut().zip(acc) {
                *o = vaddvq_f32(a.iter().fold(vdupq_n_f32(0.0), |s, &x| vaddq_f32(s, x)));
            }
        }
    };
}

q4_0_variant!(rows_neon, group_neon, "neon", dot_neon);
q4_0_variant!(rows_dotprod, group_dotprod, "neon,dotprod", dot_dotprod);
