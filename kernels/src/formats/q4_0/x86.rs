//! x86-64 Q4_0 × Q8_0 row kernels. A block's 16 bytes are broadcast to both lanes of a 256-bit
//! vector, so codes come out without a lane shuffle: AVX2 shifts the high lane down by 4 and masks
//! (c ∈ 0..15); the VNNI variants only mask, leaving the high lane's codes worth 16c, and scale
//! those lanes back once per row. Σ(c − 8)·q is taken as Σc·q − Σ8·q, both of which `maddubs`
//! (AVX2) or `vpdpbusd` (VNNI) compute on the unsigned codes without saturating. The f16 scale
//! products of eight blocks are widened at once with F16C. Each unpacked block serves up to four
//! tokens.

use std::arch::x86_64::*;

use super::BlockQ4_0;
use crate::activations::q8_0::BlockQ8_0;
// The Q8_0 activation side's helpers: scale products, loads, prefetch, tiling constants.
use crate::formats::q8_0::x86::{
    load_16, load_32, prefetch, scales8, scales8_any, store_f32x8, GROUP, RUN, SCALES,
};

pub(super) fn dot_q4_0_q8_0_avx2(w: &[BlockQ4_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(w, acts, out) }
}

pub(super) fn dot_q4_0_q8_0_avxvnni(w: &[BlockQ4_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    // SAFETY: listed under Isa::AvxVnni, and matmul::check_isa only hands it out after Isa::AvxVnni.available() confirmed the features.
    unsafe { rows_avxvnni(w, acts, out) }
}

pub(super) fn dot_q4_0_q8_0_avx512(w: &[BlockQ4_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    if let ([a], [o]) = (acts, &mut *out) {
        // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
        *o = unsafe { gemv_avx512(w, a) };
        return;
    }
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(w, acts, out) }
}

/// One variant: `$features` enabled, `$codes` the unpacking, `$unscale` its lane weights, and
/// `$dot(c, q)` the int32 lanes of Σ(c − 8)·q for one block.
macro_rules! q4_0_variant {
    ($rows:ident, $group:ident, $features:literal, $codes:ident, $unscale:ident, $dot:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $rows(w: &[BlockQ4_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
            for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
                // SAFETY: this fn's features are enabled, as the group kernel requires.
                unsafe {
                    match a.len() {
                        1 => $group::<1, 2>(w, a, o),
                        2 => $group::<2, 1>(w, a, o),
                        3 => $group::<3, 1>(w, a, o),
                        _ => $group::<4, 1>(w, a, o),
                    }
                }
            }
        }

        /// `out[t] = w · acts[t]` for exactly N tokens, with C float accumulators per token
        /// (one token needs two to hide the FMA latency).
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
            let mut acc = [[_mm256_setzero_ps(); C]; N];
            // Scale products of a run of blocks, kept in memory so each block broadcasts its own.
            let mut scales = [[0.0f32; RUN]; N];
            let mut r = 0;
            while r < nb {
                let len = RUN.min(nb - r);
                let wr = w.get(r..r + len).unwrap_or_default();
                let ar = acts.each_ref().map(|a| a.get(r..r + len).unwrap_or_default());
                if wr.len() != len || ar.iter().any(|a| a.len() != len) {
                    break;
                }
                for (g, wg) in wr.chunks(SCALES).enumerate() {
                    for t in 0..N {
                        let ag = ar[t].get(g * SCALES..).unwrap_or_default();
                        let s = scales8(wg, ag).unwrap_or_else(|| scales8_any(wg, ag, |b| b.d));
                        if let Some(dst) = scales[t].get_mut(g * SCALES..(g + 1) * SCALES) {
                            store_f32x8(dst, s);
                        }
                    }
                }
                let wp = wr.as_ptr();
                let ap = ar.map(|a| a.as_ptr());
                let sp = scales.each_ref().map(|s| s.as_ptr());
                // Block i of the run into accumulator k (a constant after unrolling, so the
                // accumulators stay in registers).
                macro_rules! step {
                    ($i:expr, $k:expr) => {{
                        let (i, k) = ($i, $k);
                        // SAFETY: i < len: block i of wr and of every ar[t], and scale i of
                        // every scales[t] (RUN ≥ len), exist.
                        let wb = unsafe { &*wp.add(i) };
                        prefetch(wb);
                        let c = $codes(_mm256_broadcastsi128_si256(load_16(&wb.qs)));
                        for t in 0..N {
                            // SAFETY: as above.
                            let (ab, s) = unsafe { (&*ap[t].add(i), &*sp[t].add(i)) };
                            let p = _mm256_cvtepi32_ps($dot(c, load_32(&ab.qs)));
                            acc[t][k] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(s), acc[t][k]);
                        }
                    }};
                }
                let mut i = 0;
                while i + C <= len {
                    for k in 0..C {
                        step!(i + k, k);
                    }
                    i += C;
                }
                while i < len {
                    step!(i, 0);
                    i += 1;
                }
                r += len;
            }
            for (o, a) in out.iter_mut().zip(acc) {
                let v = a.iter().fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
                *o = hsum_avx(_mm256_mul_ps(v, $unscale()));
            }
        }
    };
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_avx(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Shifted codes: low nibbles in the low lane, high nibbles (shifted down by 4) in the high one.
#[inline]
#[target_feature(enable = "avx2")]
fn codes_shift(v: __m256i) -> __m256i {
    let shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    _mm256_and_si256(_mm256_srlv_epi32(v, shift), _mm256_set1_epi8(0x0f))
}

/// The lane weights that undo [`codes_shift`]'s scaling: none.
#[inline]
#[target_feature(enable = "avx2")]
fn unscale_shift() -> __m256 {
    _mm256_set1_ps(1.0)
}

/// Masked codes: the high lane keeps each high nibble in place, worth 16c, which saves the shift
/// on the busiest ports.
#[inline]
#[target_feature(enable = "avx2")]
fn codes_mask(v: __m256i) -> __m256i {
    _mm256_and_si256(v, halves(0x0f, 0xf0))
}

/// The lane weights that undo [`codes_mask`]'s scaling: the high lanes' sums are 16 times too
/// large (exact: a power of two).
#[inline]
#[target_feature(enable = "avx2")]
fn unscale_mask() -> __m256 {
    _mm256_setr_ps(1.0, 1.0, 1.0, 1.0, 0.0625, 0.0625, 0.0625, 0.0625)
}

/// `lo` in every byte of the low lane, `hi` in every byte of the high one.
#[inline]
#[target_feature(enable = "avx2")]
fn halves(lo: u8, hi: u8) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi8(hi as i8), _mm_set1_epi8(lo as i8))
}

/// Σ(c − 8)·q in int32 lanes with `maddubs`: each int16 pair sum is within ±2·15·128, no saturation.
#[inline]
#[target_feature(enable = "avx2")]
fn dot_maddubs(c: __m256i, q: __m256i) -> __m256i {
    let p = _mm256_sub_epi16(
        _mm256_maddubs_epi16(c, q),
        _mm256_maddubs_epi16(_mm256_set1_epi8(8), q),
    );
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn dot_avxvnni(c: __m256i, q: __m256i) -> __m256i {
    let z = _mm256_setzero_si256();
    _mm256_sub_epi32(
        _mm256_dpbusd_avx_epi32(z, c, q),
        _mm256_dpbusd_avx_epi32(z, halves(8, 128), q),
    )
}

#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
fn dot_avx512vnni(c: __m256i, q: __m256i) -> __m256i {
    let z = _mm256_setzero_si256();
    _mm256_sub_epi32(
        _mm256_dpbusd_epi32(z, c, q),
        _mm256_dpbusd_epi32(z, halves(8, 128), q),
    )
}

/// Decode with 512-bit vectors: two blocks per vector, each block's 16 bytes in two 128-bit
/// lanes masked as in [`codes_mask`] (their activations are then simply the two blocks' 32 bytes
/// side by side), the pair's scale products permuted out of the group's eight.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn gemv_avx512(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let nb = w.len().min(a.len());
    let z = _mm512_setzero_si512();
    let wide = |v: __m256i| _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v), v);
    let (mask, off) = (wide(halves(0x0f, 0xf0)), wide(halves(8, 128)));
    let unscale = _mm512_castsi512_ps(wide(_mm256_castps_si256(unscale_mask())));
    let codes = |b: &[BlockQ4_0], i: usize| -> __m512i {
        match (b.get(i), b.get(i + 1)) {
            (Some(x), Some(y)) => _mm512_inserti64x4::<1>(
                _mm512_broadcast_i32x4(load_16(&x.qs)),
                _mm256_broadcastsi128_si256(load_16(&y.qs)),
            ),
            _ => z,
        }
    };
    let acts = |b: &[BlockQ8_0], i: usize| -> __m512i {
        match (b.get(i), b.get(i + 1)) {
            (Some(x), Some(y)) => {
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load_32(&x.qs)), load_32(&y.qs))
            }
            _ => z,
        }
    };
    let idx = [0, 1, 2, 3]
        .map(|p| _mm512_inserti64x4::<1>(_mm512_set1_epi32(2 * p), _mm256_set1_epi32(2 * p + 1)));
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut g = 0;
    while g + SCALES <= nb {
        let wg = w.get(g..g + SCALES).unwrap_or_default();
        let ag = a.get(g..g + SCALES).unwrap_or_default();
        let s =
            _mm512_castps256_ps512(scales8(wg, ag).unwrap_or_else(|| scales8_any(wg, ag, |b| b.d)));
        for (p, ix) in idx.iter().enumerate() {
            if let Some(b) = wg.get(2 * p) {
                prefetch(b);
            }
            let (c, q) = (_mm512_and_si512(codes(wg, 2 * p), mask), acts(ag, 2 * p));
            let d = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, c, q), _mm512_dpbusd_epi32(z, off, q));
            let sp = _mm512_permutexvar_ps(*ix, s);
            acc[p % 2] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sp, acc[p % 2]);
        }
        g += SCALES;
    }
    // The last few blocks one at a time, 256 bits wide.
    let mut tail = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a).take(nb).skip(g) {
        let s = scales8_any(std::slice::from_ref(x), std::slice::from_ref(y), |b| b.d);
        let c = codes_mask(_mm256_broadcastsi128_si256(load_16(&x.qs)));
        let d = _mm256_cvtepi32_ps(dot_avx512vnni(c, load_32(&y.qs)));
        tail = _mm256_fmadd_ps(d, _mm256_permutevar8x32_ps(s, _mm256_setzero_si256()), tail);
    }
    let v = _mm512_mul_ps(_mm512_add_ps(acc[0], acc[1]), unscale);
    _mm512_reduce_add_ps(v) + hsum_avx(_mm256_mul_ps(tail, unscale_mask()))
}

q4_0_variant!(
    rows_avx2,
    group_avx2,
    "avx2,fma,f16c",
    codes_shift,
    unscale_shift,
    dot_maddubs
);
q4_0_variant!(
    rows_avxvnni,
    group_avxvnni,
    "avx2,fma,f16c,avxvnni",
    codes_mask,
    unscale_mask,
    dot_avxvnni
);
q4_0_variant!(
    rows_avx512,
    group_avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    codes_mask,
    unscale_mask,
    dot_avx512vnni
);
