//! x86-64 F16 row kernels: widen weights and activations to f32 (F16C / AVX-512F) and FMA into
//! f32 vector accumulators, ggml's `ggml_vec_dot_f16` scheme. Each widened weight vector serves up
//! to four tokens before the next is loaded.

use std::arch::x86_64::*;

use super::F16;
use crate::activations::F16Bytes;
use crate::formats::x86_rows::{by_rows, gemv_rows, prefetch_rows};

/// Tokens that share one widened weight vector.
const GROUP: usize = 4;

/// Rows side by side in the single-token AVX-512 kernel: each widened activation vector serves
/// them all, so a step converts one weight vector per row and the activations once.
const ROWS: usize = 4;

pub(super) fn rows_f16_f16_avx512(
    w: &[F16Bytes],
    rows: usize,
    acts: &[Vec<F16Bytes>],
    out: &mut [f32],
) {
    match acts {
        // SAFETY: as for dot_f16_f16_avx512, whose variant (Isa::Avx512Vnni) this entry shares.
        [a] => unsafe { gemv_avx512(w, rows, a, out) },
        _ => by_rows::<F16>(w, rows, acts, out, dot_f16_f16_avx512),
    }
}

/// One token against `rows` rows of `w`, [`ROWS`] at a time and the rest one by one.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn gemv_avx512(w: &[F16Bytes], rows: usize, a: &[F16Bytes], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, ROWS, rows_avx512_1t);
}

/// `R` rows (at `rp`, `stride` halves apart, `n` halves each) against one token, each row summed
/// exactly as [`group_avx512`] sums it for one token (same vectors, order and tail).
///
/// # Safety
/// The `R` rows of `n` halves must lie in one allocation, `a` must hold `n` halves, and the CPU
/// must have AVX-512 F and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512_1t<const R: usize>(
    rp: *const F16Bytes,
    stride: usize,
    n: usize,
    a: &[F16Bytes],
) -> [f32; R] {
    const L: usize = 16;
    const U: usize = 4;
    let ap = a.as_ptr().cast::<u8>();
    let row = |r: usize| rp.wrapping_add(r * stride).cast::<u8>();
    let mut acc = [[_mm512_set1_ps(-0.0); U]; R];
    let mut i = 0;
    while i + U * L <= n {
        // Two lines (64 halves) per row per step.
        prefetch_rows::<_, R>(rp, stride, i, PREFETCH);
        prefetch_rows::<_, R>(rp, stride, i + 32, PREFETCH);
        for u in 0..U {
            let j = 2 * (i + u * L);
            // SAFETY: bytes j..j + 32 lie within a's n halves (see the loop bound).
            let av = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(ap.add(j).cast()) });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r < R holds n halves, bytes j..j + 32 among them.
                let wv = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(row(r).add(j).cast()) });
                acc[u] = _mm512_fmadd_ps(wv, av, acc[u]);
            }
        }
        i += U * L;
    }
    while i + L <= n {
        // SAFETY: bytes 2i..2i + 32 lie within a and within every row.
        let av = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(ap.add(2 * i).cast()) });
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let wv = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(row(r).add(2 * i).cast()) });
            acc[0] = _mm512_fmadd_ps(wv, av, acc[0]);
        }
        i += L;
    }
    let mut sums = [0.0; R];
    for (r, (s, acc)) in sums.iter_mut().zip(&acc).enumerate() {
        // SAFETY: row r holds n halves; i ≤ n.
        let w = unsafe { std::slice::from_raw_parts(rp.add(r * stride + i), n - i) };
        let v = acc
            .iter()
            .fold(_mm512_set1_ps(-0.0), |s, &v| _mm512_add_ps(s, v));
        *s = _mm512_reduce_add_ps(v) + tail(w, &a[i..n]);
    }
    sums
}

pub(super) fn dot_f16_f16_avx2(w: &[F16Bytes], acts: &[Vec<F16Bytes>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(w, acts, out) }
}

pub(super) fn dot_f16_f16_avx512(w: &[F16Bytes], acts: &[Vec<F16Bytes>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(w, acts, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(w: &[F16Bytes], acts: &[Vec<F16Bytes>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // 16 ymm registers: N·U accumulators plus U weights must fit.
        // SAFETY: this fn's features are enabled, as group_avx2 requires.
        unsafe {
            match a.len() {
                1 => group_avx2::<1, 4>(w, a, o),
                2 => group_avx2::<2, 4>(w, a, o),
                3 => group_avx2::<3, 2>(w, a, o),
                _ => group_avx2::<4, 2>(w, a, o),
            }
        }
    }
}

/// `out[t] = w · acts[t]` for exactly N tokens, U vectors of 8 per token per step.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_avx2<const N: usize, const U: usize>(
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
    let mut acc = [[_mm256_set1_ps(-0.0); N]; U];
    let mut i = 0;
    // Loads read halves i..i + U·L (2 bytes each), all below n, within every slice.
    while i + U * L <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            let j = 2 * (i + u * L);
            // SAFETY: bytes j..j + 16 lie within w (see the loop bound).
            let wv = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(wp.add(j).cast()) });
            for (s, &p) in acc.iter_mut().zip(&ap) {
                // SAFETY: bytes j..j + 16 lie within this token's activations.
                let av = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.add(j).cast()) });
                *s = _mm256_fmadd_ps(wv, av, *s);
            }
        }
        i += U * L;
    }
    while i + L <= n {
        // SAFETY: bytes 2i..2i + 16 lie within w.
        let wv = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(wp.add(2 * i).cast()) });
        for (s, &p) in acc[0].iter_mut().zip(&ap) {
            // SAFETY: bytes 2i..2i + 16 lie within this token's activations.
            let av = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.add(2 * i).cast()) });
            *s = _mm256_fmadd_ps(wv, av, *s);
        }
        i += L;
    }
    for (t, (o, a)) in out.iter_mut().zip(acts).enumerate() {
        let v = acc
            .iter()
            .fold(_mm256_set1_ps(-0.0), |s, acc| _mm256_add_ps(s, acc[t]));
        *o = hsum_avx(v) + tail(&w[i..n], &a[i..n]);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512(w: &[F16Bytes], acts: &[Vec<F16Bytes>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // SAFETY: this fn's features are enabled, as group_avx512 requires.
        unsafe {
            match a.len() {
                1 => group_avx512::<1>(w, a, o),
                2 => group_avx512::<2>(w, a, o),
                3 => group_avx512::<3>(w, a, o),
                _ => group_avx512::<4>(w, a, o),
            }
        }
    }
}

/// How far ahead the AVX-512 kernel prefetches weights.
const PREFETCH: usize = 4096;

/// `out[t] = w · acts[t]` for exactly N tokens, four vectors of 16 per token per step.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn group_avx512<const N: usize>(w: &[F16Bytes], acts: &[Vec<F16Bytes>], out: &mut [f32]) {
    const L: usize = 16;
    const U: usize = 4;
    let Ok(acts) = <&[Vec<F16Bytes>; N]>::try_from(acts) else {
        return;
    };
    let n = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let wp = w.as_ptr().cast::<u8>();
    let ap: [*const u8; N] = acts.each_ref().map(|a| a.as_ptr().cast::<u8>());
    let mut acc = [[_mm512_set1_ps(-0.0); N]; U];
    let mut i = 0;
    // Loads read halves i..i + U·L (2 bytes each), all below n, within every slice.
    while i + U * L <= n {
        // Two lines (128 bytes) per step; ask for them PREFETCH bytes early, as the TQ kernels do.
        // A prefetch past the row's end is harmless: it cannot fault.
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(2 * i + PREFETCH).cast());
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(2 * i + PREFETCH + 64).cast());
        for (u, acc) in acc.iter_mut().enumerate() {
            let j = 2 * (i + u * L);
            // SAFETY: bytes j..j + 32 lie within w (see the loop bound).
            let wv = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(wp.add(j).cast()) });
            for (s, &p) in acc.iter_mut().zip(&ap) {
                // SAFETY: bytes j..j + 32 lie within this token's activations.
                let av = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.add(j).cast()) });
                *s = _mm512_fmadd_ps(wv, av, *s);
            }
        }
        i += U * L;
    }
    while i + L <= n {
        // SAFETY: bytes 2i..2i + 32 lie within w.
        let wv = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(wp.add(2 * i).cast()) });
        for (s, &p) in acc[0].iter_mut().zip(&ap) {
            // SAFETY: bytes 2i..2i + 32 lie within this token's activations.
            let av = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.add(2 * i).cast()) });
            *s = _mm512_fmadd_ps(wv, av, *s);
        }
        i += L;
    }
    for (t, (o, a)) in out.iter_mut().zip(acts).enumerate() {
        let v = acc
            .iter()
            .fold(_mm512_set1_ps(-0.0), |s, acc| _mm512_add_ps(s, acc[t]));
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

/// The last `cols % 8` (or `% 16`) products, in f32 (each product of two halves is exact);
/// sums start at -0.0, like the reference, so a row of -0.0 products stays -0.0.
fn tail(w: &[F16Bytes], a: &[F16Bytes]) -> f32 {
    w.iter()
        .zip(a)
        .fold(-0.0, |s, (x, y)| s + x.to_f32() * y.to_f32())
}
