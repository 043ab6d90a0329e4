//! x86-64 Q8_0 × Q8_0 row kernels: ggml's sign trick (|w| unsigned against q carrying w's sign)
//! feeds `maddubs` (AVX2; a pair sum is at most 2·128·127, no saturation) or `vpdpbusd` (VNNI).
//! The f16 scale products of eight blocks are widened at once with F16C, two float accumulators
//! hide the FMA latency of one token, and each weight block serves up to four tokens.

use std::arch::x86_64::*;

use crate::activations::q8_0::BlockQ8_0;
use crate::activations::F16Bytes;

/// Tokens that share one unpacked weight block.
pub(crate) const GROUP: usize = 4;
/// Blocks whose scale products are widened together.
pub(crate) const SCALES: usize = 8;
/// Blocks whose scale products are computed before their dot products (a multiple of SCALES).
pub(crate) const RUN: usize = 64;

pub(super) fn dot_q8_0_q8_0_avx2(w: &[BlockQ8_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(w, acts, out) }
}

pub(super) fn dot_q8_0_q8_0_avxvnni(w: &[BlockQ8_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    // SAFETY: listed under Isa::AvxVnni, and matmul::check_isa only hands it out after Isa::AvxVnni.available() confirmed the features.
    unsafe { rows_avxvnni(w, acts, out) }
}

pub(super) fn dot_q8_0_q8_0_avx512(w: &[BlockQ8_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
    if let ([a], [o]) = (acts, &mut *out) {
        // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
        *o = unsafe { gemv_avx512(w, a) };
        return;
    }
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(w, acts, out) }
}

/// How far ahead of the block being read the weights are prefetched: DRAM-resident rows stream
/// markedly faster with explicit prefetches than with the hardware's alone (measured on I2_S).
const PREFETCH: usize = 4096;

/// Prefetch the weight bytes `PREFETCH` past `block` (rows are laid out back to back, so this is
/// a later row). A prefetch is only a hint: it never faults and reads nothing into the program,
/// so an address past the tensor's end is harmless.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn prefetch<B>(block: &B) {
    _mm_prefetch::<_MM_HINT_T0>(
        std::ptr::from_ref(block)
            .cast::<i8>()
            .wrapping_add(PREFETCH),
    );
}

/// 16 bytes as a vector.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load_16(b: &[u8; 16]) -> __m128i {
    // SAFETY: the reference covers 16 readable bytes; loadu needs no alignment.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// 32 bytes as a vector.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load_32(b: &[i8; 32]) -> __m256i {
    // SAFETY: the reference covers 32 readable bytes; loadu needs no alignment.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn store_f32x8(dst: &mut [f32], v: __m256) {
    if dst.len() >= 8 {
        // SAFETY: dst has at least 8 writable floats; storeu needs no alignment.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
    }
}

/// Eight f16 scales of consecutive blocks (fewer at a row's end; the rest are zero), as f32.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn scales_f32<B>(blocks: &[B], d: impl Fn(&B) -> F16Bytes) -> __m256 {
    let h = |i: usize| blocks.get(i).map_or(0, |b| i16::from_le_bytes(d(b).0));
    _mm256_cvtph_ps(_mm_setr_epi16(
        h(0),
        h(1),
        h(2),
        h(3),
        h(4),
        h(5),
        h(6),
        h(7),
    ))
}

/// The f16 scales at bytes `stride·i` (i < 8) of `bytes`, as f32: the 16-byte load at
/// `(stride − 2)·i` holds scale i in word i, so seven word blends assemble them (cheaper on
/// port 5 than eight `vpinsrw`).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn blend_scales(bytes: &[u8], stride: usize) -> Option<__m256> {
    let step = stride - 2;
    let l = |i: usize| -> Option<__m128i> {
        let b: &[u8; 16] = bytes.get(step * i..step * i + 16)?.try_into().ok()?;
        Some(load_16(b))
    };
    let x = _mm_blend_epi16::<0b0000_0010>(l(0)?, l(1)?);
    let x = _mm_blend_epi16::<0b0000_0100>(x, l(2)?);
    let x = _mm_blend_epi16::<0b0000_1000>(x, l(3)?);
    let x = _mm_blend_epi16::<0b0001_0000>(x, l(4)?);
    let x = _mm_blend_epi16::<0b0010_0000>(x, l(5)?);
    let x = _mm_blend_epi16::<0b0100_0000>(x, l(6)?);
    let x = _mm_blend_epi16::<0b1000_0000>(x, l(7)?);
    Some(_mm256_cvtph_ps(x))
}

/// The scale products of eight whole blocks with AVX2 word blends. Q8_0 and Q4_0 blocks both
/// begin with their f16 scale, so a block's size is the stride between scales.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn scales8<B: bytemuck::Pod>(w: &[B], a: &[BlockQ8_0]) -> Option<__m256> {
    let dw = blend_scales(bytemuck::cast_slice(w.get(..SCALES)?), size_of::<B>())?;
    let da = blend_scales(
        bytemuck::cast_slice(a.get(..SCALES)?),
        size_of::<BlockQ8_0>(),
    )?;
    Some(_mm256_mul_ps(dw, da))
}

/// The scale products of up to eight blocks (a row's last few), one scale at a time.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn scales8_any<B>(w: &[B], a: &[BlockQ8_0], d: impl Fn(&B) -> F16Bytes) -> __m256 {
    _mm256_mul_ps(scales_f32(w, d), scales_f32(a, |b| b.d))
}

/// One variant: `$features` enabled, `$dot(w, q)` the int32 lanes of Σw·q for one block.
macro_rules! q8_0_variant {
    ($rows:ident, $group:ident, $features:literal, $dot:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $rows(w: &[BlockQ8_0], acts: &[Vec<BlockQ8_0>], out: &mut [f32]) {
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
            w: &[BlockQ8_0],
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
                        let wv = load_32(&wb.qs);
                        for t in 0..N {
                            // SAFETY: as above.
                            let (ab, s) = unsafe { (&*ap[t].add(i), &*sp[t].add(i)) };
                            let p = _mm256_cvtepi32_ps($dot(wv, load_32(&ab.qs)));
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
                *o = hsum_avx(a.iter().fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x)));
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

/// Σw·q in int32 lanes with `maddubs`: |w| against q carrying w's sign (q is never −128).
#[inline]
#[target_feature(enable = "avx2")]
fn dot_maddubs(w: __m256i, q: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// Σw·q with VNNI: (w + 128) is the unsigned side, and 128·Σq comes off again; this keeps two
/// `vpsignb` off the ports that the multiplies and float work share.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn dot_avxvnni(w: __m256i, q: __m256i) -> __m256i {
    let (z, m) = (_mm256_setzero_si256(), _mm256_set1_epi8(-128));
    let p = _mm256_dpbusd_avx_epi32(z, _mm256_xor_si256(w, m), q);
    _mm256_sub_epi32(p, _mm256_dpbusd_avx_epi32(z, m, q))
}

/// As [`dot_avxvnni`], with the EVEX encoding.
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
fn dot_avx512vnni(w: __m256i, q: __m256i) -> __m256i {
    let (z, m) = (_mm256_setzero_si256(), _mm256_set1_epi8(-128));
    let p = _mm256_dpbusd_epi32(z, _mm256_xor_si256(w, m), q);
    _mm256_sub_epi32(p, _mm256_dpbusd_epi32(z, m, q))
}

/// Decode with 512-bit vectors: two blocks per vector (their scale products in the two halves,
/// permuted out of the group's eight), so each vector op does the work of two 256-bit ones.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn gemv_avx512(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let nb = w.len().min(a.len());
    let (z, m) = (_mm512_setzero_si512(), _mm512_set1_epi8(-128));
    let pair = |b: &[BlockQ8_0], i: usize| -> __m512i {
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
            for b in wg.iter().skip(2 * p).take(2) {
                prefetch(b);
            }
            let (wv, qv) = (pair(wg, 2 * p), pair(ag, 2 * p));
            let d = _mm512_sub_epi32(
                _mm512_dpbusd_epi32(z, _mm512_xor_si512(wv, m), qv),
                _mm512_dpbusd_epi32(z, m, qv),
            );
            let sp = _mm512_permutexvar_ps(*ix, s);
            acc[p % 2] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sp, acc[p % 2]);
        }
        g += SCALES;
    }
    // The last few blocks one at a time, 256 bits wide.
    let mut tail = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a).take(nb).skip(g) {
        let s = scales8_any(std::slice::from_ref(x), std::slice::from_ref(y), |b| b.d);
        let d = _mm256_cvtepi32_ps(dot_avx512vnni(load_32(&x.qs), load_32(&y.qs)));
        tail = _mm256_fmadd_ps(d, _mm256_permutevar8x32_ps(s, _mm256_setzero_si256()), tail);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) + hsum_avx(tail)
}

q8_0_variant!(rows_avx2, group_avx2, "avx2,fma,f16c", dot_maddubs);
q8_0_variant!(
    rows_avxvnni,
    group_avxvnni,
    "avx2,fma,f16c,avxvnni",
    dot_avxvnni
);
q8_0_variant!(
    rows_avx512,
    group_avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    dot_avx512vnni
);
