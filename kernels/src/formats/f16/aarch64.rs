//! aarch64 F16 row kernel: widen weights and activations to f32 (`fcvtl`) and FMA into f32
//! vector accumulators. Each widened weight vector serves up to four tokens.

use std::arch::aarch64::*;
use std::arch::asm;

use crate::activations::F16Bytes;

/// Tokens that share one widened weight vector.
const GROUP: usize = 4;

pub(super) fn dot_f16_f16_neon(w: &[F16Bytes], acts: &[Vec<F16Bytes>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { rows_neon(w, acts, out) }
}

#[target_feature(enable = "neon")]
unsafe fn rows_neon(w: &[F16Bytes], acts: &[Vec<F16Bytes>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // SAFETY: this fn's features are enabled, as group_neon requires.
        unsafe {
            match a.len() {
                1 => group_neon::<1, 4>(w, a, o),
                2 => group_neon::<2, 2>(w, a, o),
                3 => group_neon::<3, 2>(w, a, o),
                _ => group_neon::<4, 2>(w, a, o),
            }
        }
    }
}

/// Eight halves at `p` widened to two f32 vectors, by `fcvtl`/`fcvtl2` (base ARMv8; Rust's
/// intrinsics for them need 1.94).
///
/// # Safety
/// `p..p + 16` must be readable.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load8(p: *const u8) -> (float32x4_t, float32x4_t) {
    // SAFETY: the caller guarantees 16 readable bytes; vld1q_u8 needs no alignment.
    let h = unsafe { vld1q_u8(p) };
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: the conversions read one vector register and write others, touching no memory or
    // flags; `lo` is a plain out, so it never shares `h`'s register while fcvtl2 still reads it.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo,
            hi = lateout(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (lo, hi)
}

/// `out[t] = w · acts[t]` for exactly N tokens, U groups of 8 halves per token per step.
#[target_feature(enable = "neon")]
unsafe fn group_neon<const N: usize, const U: usize>(
    w: &[F16Bytes],
    acts: &[Vec<F16Bytes>],
    out: &mut [f32],
) {
    const L: usize = 8;
    let Ok(acts) = <&[Vec<F16Bytes>; N]>::try_from(acts) else {
        return;
    };
    let n = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let wp = w.as_ptr().cast::<u8>();
    let ap: [*const u8; N] = acts.each_ref().map(|a| a.as_ptr().cast::<u8>());
    let mut acc = [[[vdupq_n_f32(-0.0); 2]; N]; U];
    let mut i = 0;
    // Loads read halves i..i + U·L (2 bytes each), all below n, within every slice.
    while i + U * L <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            let j = 2 * (i + u * L);
            // SAFETY: bytes j..j + 16 lie within w (see the loop bound).
            let (w0, w1) = unsafe { load8(wp.add(j)) };
            for (s, &p) in acc.iter_mut().zip(&ap) {
                // SAFETY: bytes j..j + 16 lie within this token's activations.
                let (a0, a1) = unsafe { load8(p.add(j)) };
                s[0] = vfmaq_f32(s[0], w0, a0);
                s[1] = vfmaq_f32(s[1], w1, a1);
            }
        }
        i += U * L;
    }
    while i + L <= n {
        // SAFETY: bytes 2i..2i + 16 lie within w.
        let (w0, w1) = unsafe { load8(wp.add(2 * i)) };
        for (s, &p) in acc[0].iter_mut().zip(&ap) {
            // SAFETY: bytes 2i..2i + 16 lie within this token's activations.
            let (a0, a1) = unsafe { load8(p.add(2 * i)) };
            s[0] = vfmaq_f32(s[0], w0, a0);
            s[1] = vfmaq_f32(s[1], w1, a1);
        }
        i += L;
    }
    for (t, (o, a)) in out.iter_mut().zip(acts).enumerate() {
        let v = acc
            .iter()
            .flat_map(|acc| acc[t])
            .fold(vdupq_n_f32(-0.0), |s, v| vaddq_f32(s, v));
        // Sums start at -0.0, like the reference, so a row of -0.0 products stays -0.0.
        let tail = w[i..n]
            .iter()
            .zip(&a[i..n])
            .fold(-0.0, |s, (x, y)| s + x.to_f32() * y.to_f32());
        *o = vaddvq_f32(v) + tail;
    }
}
