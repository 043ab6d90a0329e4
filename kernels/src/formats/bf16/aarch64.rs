//! aarch64 BF16 row kernel: a bfloat16 is the top half of an f32, so one 32-bit lane holding two
//! of them yields both by a shift (even element) and a mask (odd element); weights and activations
//! split alike, so even pairs with even and odd with odd. Each widened weight vector serves up to
//! four tokens.

use std::arch::aarch64::*;

use crate::activations::Bf16Bytes;

/// Tokens that share one widened weight vector.
const GROUP: usize = 4;

pub(super) fn dot_bf16_bf16_neon(w: &[Bf16Bytes], acts: &[Vec<Bf16Bytes>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { rows_neon(w, acts, out) }
}

#[target_feature(enable = "neon")]
unsafe fn rows_neon(w: &[Bf16Bytes], acts: &[Vec<Bf16Bytes>], out: &mut [f32]) {
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

/// Eight bfloat16 at `p` as f32: (even elements, odd elements).
///
/// # Safety
/// `p..p + 16` must be readable.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load8(p: *const u8) -> (float32x4_t, float32x4_t) {
    // SAFETY: the caller guarantees 16 readable bytes; vld1q_u8 needs no alignment.
    let x = vreinterpretq_u32_u8(unsafe { vld1q_u8(p) });
    (
        vreinterpretq_f32_u32(vshlq_n_u32::<16>(x)),
        vreinterpretq_f32_u32(vandq_u32(x, vdupq_n_u32(0xffff_0000))),
    )
}

/// `out[t] = w · acts[t]` for exactly N tokens, U groups of 8 per token per step.
#[target_feature(enable = "neon")]
unsafe fn group_neon<const N: usize, const U: usize>(
    w: &[Bf16Bytes],
    acts: &[Vec<Bf16Bytes>],
    out: &mut [f32],
) {
    const L: usize = 8;
    let Ok(acts) = <&[Vec<Bf16Bytes>; N]>::try_from(acts) else {
        return;
    };
    let n = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let wp = w.as_ptr().cast::<u8>();
    let ap: [*const u8; N] = acts.each_ref().map(|a| a.as_ptr().cast::<u8>());
    let mut acc = [[[vdupq_n_f32(-0.0); 2]; N]; U];
    let mut i = 0;
    // Loads read values i..i + U·L (2 bytes each), all below n, within every slice.
    while i + U * L <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            let j = 2 * (i + u * L);
            // SAFETY: bytes j..j + 16 lie within w (see the loop bound).
            let (we, wo) = unsafe { load8(wp.add(j)) };
            for (s, &p) in acc.iter_mut().zip(&ap) {
                // SAFETY: bytes j..j + 16 lie within this token's activations.
                let (ae, ao) = unsafe { load8(p.add(j)) };
                s[0] = vfmaq_f32(s[0], we, ae);
                s[1] = vfmaq_f32(s[1], wo, ao);
            }
        }
        i += U * L;
    }
    while i + L <= n {
        // SAFETY: bytes 2i..2i + 16 lie within w.
        let (we, wo) = unsafe { load8(wp.add(2 * i)) };
        for (s, &p) in acc[0].iter_mut().zip(&ap) {
            // SAFETY: bytes 2i..2i + 16 lie within this token's activations.
            let (ae, ao) = unsafe { load8(p.add(2 * i)) };
            s[0] = vfmaq_f32(s[0], we, ae);
            s[1] = vfmaq_f32(s[1], wo, ao);
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
