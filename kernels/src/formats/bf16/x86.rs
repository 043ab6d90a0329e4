//! x86-64 BF16 row kernels: a bfloat16 is the top half of an f32, so one 32-bit lane holding two
//! of them yields both by a shift (even element) and a mask (odd element); weights and activations
//! split alike, so even pairs with even and odd with odd, and both FMA into f32 accumulators.
//! Each widened weight vector serves up to four tokens.

use std::arch::x86_64::*;

use crate::activations::Bf16Bytes;

/// Tokens that share one widened weight vector.
const GROUP: usize = 4;

pub(super) fn dot_bf16_bf16_avx2(w: &[Bf16Bytes], acts: &[Vec<Bf16Bytes>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(w, acts, out) }
}

pub(super) fn dot_bf16_bf16_avx512(w: &[Bf16Bytes], acts: &[Vec<Bf16Bytes>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(w, acts, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(w: &[Bf16Bytes], acts: &[Vec<Bf16Bytes>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // 16 ymm registers: 2·N·U accumulators plus the weights must fit.
        // SAFETY: this fn's features are enabled, as group_avx2 requires.
        unsafe {
            match a.len() {
                1 => group_avx2::<1, 4>(w, a, o),
                2 => group_avx2::<2, 2>(w, a, o),
                3 => group_avx2::<3, 1>(w, a, o),
                _ => group_avx2::<4, 1>(w, a, o),
            }
        }
    }
}

/// Sixteen bfloat16 at `p` as f32: (even elements, odd elements).
///
/// # Safety
/// `p..p + 32` must be readable.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load16(p: *const u8) -> (__m256, __m256) {
    // SAFETY: the caller guarantees 32 readable bytes; the load is unaligned.
    let x = unsafe { _mm256_loadu_si256(p.cast()) };
    let odd = _mm256_and_si256(x, _mm256_set1_epi32(0xffff_0000_u32 as i32));
    (
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x)),
        _mm256_castsi256_ps(odd),
    )
}

/// `out[t] = w · acts[t]` for exactly N tokens, U loads of 16 per token per step.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_avx2<const N: usize, const U: usize>(
    w: &[Bf16Bytes],
    acts: &[Vec<Bf16Bytes>],
    out: &mut [f32],
) {
    const L: usize = 16;
    let Ok(acts) = <&[Vec<Bf16Bytes>; N]>::try_from(acts) else {
        return;
    };
    let n = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let wp = w.as_ptr().cast::<u8>();
    let ap: [*const u8; N] = acts.each_ref().map(|a| a.as_ptr().cast::<u8>());
    let mut acc = [[[_mm256_set1_ps(-0.0); 2]; N]; U];
    let mut i = 0;
    // Loads read values i..i + U·L (2 bytes each), all below n, within every slice.
    while i + U * L <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            let j = 2 * (i + u * L);
            // SAFETY: bytes j..j + 32 lie within w (see the loop bound).
            let (we, wo) = unsafe { load16(wp.add(j)) };
            for (s, &p) in acc.iter_mut().zip(&ap) {
                // SAFETY: bytes j..j + 32 lie within this token's activations.
                let (ae, ao) = unsafe { load16(p.add(j)) };
                s[0] = _mm256_fmadd_ps(we, ae, s[0]);
                s[1] = _mm256_fmadd_ps(wo, ao, s[1]);
            }
        }
        i += U * L;
    }
    while i + L <= n {
        // SAFETY: bytes 2i..2i + 32 lie within w.
        let (we, wo) = unsafe { load16(wp.add(2 * i)) };
        for (s, &p) in acc[0].iter_mut().zip(&ap) {
            // SAFETY: bytes 2i..2i + 32 lie within this token's activations.
            let (ae, ao) = unsafe { load16(p.add(2 * i)) };
            s[0] = _mm256_fmadd_ps(we, ae, s[0]);
            s[1] = _mm256_fmadd_ps(wo, ao, s[1]);
        }
        i += L;
    }
    for (t, (o, a)) in out.iter_mut().zip(acts).enumerate() {
        let v = acc
            .iter()
            .flat_map(|acc| acc[t])
            .fold(_mm256_set1_ps(-0.0), |s, v| _mm256_add_ps(s, v));
        *o = hsum_avx(v) + tail(&w[i..n], &a[i..n]);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512(w: &[Bf16Bytes], acts: &[Vec<Bf16Bytes>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // SAFETY: this fn's features are enabled, as group_avx512 requires.
        unsafe {
            match a.len() {
                1 => group_avx512::<1, 4>(w, a, o),
                2 => group_avx512::<2, 2>(w, a, o),
                3 => group_avx512::<3, 2>(w, a, o),
                _ => group_avx512::<4, 2>(w, a, o),
            }
        }
    }
}

/// Thirty-two bfloat16 at `p` as f32: (even elements, odd elements).
///
/// # Safety
/// `p..p + 64` must be readable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn load32(p: *const u8) -> (__m512, __m512) {
    // SAFETY: the caller guarantees 64 readable bytes; the load is unaligned.
    let x = unsafe { _mm512_loadu_si512(p.cast()) };
    let odd = _mm512_and_si512(x, _mm512_set1_epi32(0xffff_0000_u32 as i32));
    (
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x)),
        _mm512_castsi512_ps(odd),
    )
}

/// `out[t] = w · acts[t]` for exactly N tokens, U loads of 32 per token per step.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn group_avx512<const N: usize, const U: usize>(
    w: &[Bf16Bytes],
    acts: &[Vec<Bf16Bytes>],
    out: &mut [f32],
) {
    const L: usize = 32;
    let Ok(acts) = <&[Vec<Bf16Bytes>; N]>::try_from(acts) else {
        return;
    };
    let n = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let wp = w.as_ptr().cast::<u8>();
    let ap: [*const u8; N] = acts.each_ref().map(|a| a.as_ptr().cast::<u8>());
    let mut acc = [[[_mm512_set1_ps(-0.0); 2]; N]; U];
    let mut i = 0;
    // Loads read values i..i + U·L (2 bytes each), all below n, within every slice.
    while i + U * L <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            let j = 2 * (i + u * L);
            // SAFETY: bytes j..j + 64 lie within w (see the loop bound).
            let (we, wo) = unsafe { load32(wp.add(j)) };
            for (s, &p) in acc.iter_mut().zip(&ap) {
                // SAFETY: bytes j..j + 64 lie within this token's activations.
                let (ae, ao) = unsafe { load32(p.add(j)) };
                s[0] = _mm512_fmadd_ps(we, ae, s[0]);
                s[1] = _mm512_fmadd_ps(wo, ao, s[1]);
            }
        }
        i += U * L;
    }
    while i + L <= n {
        // SAFETY: bytes 2i..2i + 64 lie within w.
        let (we, wo) = unsafe { load32(wp.add(2 * i)) };
        for (s, &p) in acc[0].iter_mut().zip(&ap) {
            // SAFETY: bytes 2i..2i + 64 lie within this token's activations.
            let (ae, ao) = unsafe { load32(p.add(2 * i)) };
            s[0] = _mm512_fmadd_ps(we, ae, s[0]);
            s[1] = _mm512_fmadd_ps(wo, ao, s[1]);
        }
        i += L;
    }
    for (t, (o, a)) in out.iter_mut().zip(acts).enumerate() {
        let v = acc
            .iter()
            .flat_map(|acc| acc[t])
            .fold(_mm512_set1_ps(-0.0), |s, v| _mm512_add_ps(s, v));
        *o = _mm512_reduce_add_ps(v) + tail(&w[i..n], &a[i..n]);
    }
}

/// Sum of the eight lanes.
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_avx(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// The last `cols % 16` (or `% 32`) products, in f32 (each product of two bfloat16 is exact);
/// sums start at -0.0, like the reference, so a row of -0.0 products stays -0.0.
fn tail(w: &[Bf16Bytes], a: &[Bf16Bytes]) -> f32 {
    w.iter()
        .zip(a)
        .fold(-0.0, |s, (x, y)| s + x.to_f32() * y.to_f32())
}
