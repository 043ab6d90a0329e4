//! x86-64 Q6_K × Q8_K row kernels. Each block's 6-bit codes are rebuilt once as unsigned bytes
//! q = l + 32 (0..64) and reused for up to four tokens: `maddubs` (u8 × i8, pair sums ≤ 2·63·127,
//! so no i16 saturation) then a multiply-add by the sub-block scales into i32, and the +32 offset
//! removed per block as 32·Σ scale·bsum from Q8_K's 16-value sums (ggml's AVX2 scheme).

use std::arch::x86_64::*;

use super::BlockQ6K;
use crate::activations::q8_k::BlockQ8K;

/// Tokens that share one rebuilt weight block.
const GROUP: usize = 4;

pub(super) fn dot_q6_k_q8_k_avx2(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(w, acts, out) }
}

pub(super) fn dot_q6_k_q8_k_avx512(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(w, acts, out) }
}

/// The block scale `d` as f32, by F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn block_d(x: &BlockQ6K) -> f32 {
    let h = i32::from(u16::from_le_bytes(x.d.0));
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)))
}

/// 16 bytes at `p`.
///
/// # Safety
/// `p..p + 16` must be readable.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load128(p: *const u8) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// 32 bytes at `p`.
///
/// # Safety
/// `p..p + 32` must be readable.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load256(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // SAFETY: this fn's features are enabled, as group_avx2 requires.
        unsafe {
            match a.len() {
                1 => group_avx2::<1>(w, a, o),
                2 => group_avx2::<2>(w, a, o),
                3 => group_avx2::<3>(w, a, o),
                _ => group_avx2::<4>(w, a, o),
            }
        }
    }
}

/// `out[t] = w · acts[t]` for exactly N tokens.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_avx2<const N: usize>(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let Ok(acts) = <&[Vec<BlockQ8K>; N]>::try_from(acts) else {
        return;
    };
    let nb = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x30);
    // 32 weights k of a half span sub-blocks 2k (low lane) and 2k + 1 (high lane): pick those i16 scales.
    let idx: [__m256i; 4] = std::array::from_fn(|k| {
        let pick = |s: usize| _mm_set1_epi16((((2 * s + 1) << 8) | (2 * s)) as i16);
        _mm256_set_m128i(pick(2 * k + 1), pick(2 * k))
    });
    let mut acc = [_mm256_setzero_ps(); N];
    for (b, x) in w[..nb].iter().enumerate() {
        let ys: [&BlockQ8K; N] = std::array::from_fn(|t| &acts[t][b]);
        // SAFETY: scales holds 16 bytes.
        let sc16 = _mm256_cvtepi8_epi16(unsafe { load128(x.scales.as_ptr().cast()) });
        // -32·scale fits i16 (|scale| ≤ 128): one madd with the bsums removes the code offset.
        let neg32 = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16::<5>(sc16));
        let mut sumi: [__m256i; N] = std::array::from_fn(|t| {
            // SAFETY: bsums holds 16 i16, 32 bytes.
            let bsums = unsafe { load256(ys[t].bsums.as_ptr().cast()) };
            _mm256_madd_epi16(bsums, neg32)
        });
        // Scales 0..8 (first half) and 8..16 (second half), each copied to both lanes.
        let halves = [
            _mm256_permute2x128_si256::<0x00>(sc16, sc16),
            _mm256_permute2x128_si256::<0x11>(sc16, sc16),
        ];
        for (h, (ql, qh)) in x.ql.chunks_exact(64).zip(x.qh.chunks_exact(32)).enumerate() {
            // SAFETY: ql holds 64 bytes and qh 32.
            let (l0, l1, hb) = unsafe {
                (
                    load256(ql.as_ptr()),
                    load256(ql.as_ptr().add(32)),
                    load256(qh.as_ptr()),
                )
            };
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(l0, m4),
                    _mm256_and_si256(_mm256_slli_epi16::<4>(hb), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(l1, m4),
                    _mm256_and_si256(_mm256_slli_epi16::<2>(hb), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
                    _mm256_and_si256(hb, m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(hb), m2),
                ),
            ];
            for (k, (&qk, &ik)) in q.iter().zip(&idx).enumerate() {
                let sc = _mm256_shuffle_epi8(halves[h], ik);
                let off = 32 * (4 * h + k);
                for (s, y) in sumi.iter_mut().zip(&ys) {
                    // SAFETY: off + 32 ≤ 256 = qs.len().
                    let a = unsafe { load256(y.qs.as_ptr().add(off).cast()) };
                    *s = _mm256_add_epi32(*s, _mm256_madd_epi16(_mm256_maddubs_epi16(qk, a), sc));
                }
            }
        }
        let d = block_d(x);
        for ((a, s), y) in acc.iter_mut().zip(sumi).zip(&ys) {
            *a = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d()), _mm256_cvtepi32_ps(s), *a);
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum_avx(a);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
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

/// How far ahead the AVX-512 kernel prefetches weights (rows are back to back in memory).
const PREFETCH: usize = 4096;

/// `out[t] = w · acts[t]` for exactly N tokens, 64 weights per vector: the 64 ql bytes of a half
/// hold weights 0..64 of it in their low nibbles and 64..128 in their high ones.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn group_avx512<const N: usize>(w: &[BlockQ6K], acts: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let Ok(acts) = <&[Vec<BlockQ8K>; N]>::try_from(acts) else {
        return;
    };
    let nb = acts.iter().fold(w.len(), |n, a| n.min(a.len()));
    let m4 = _mm512_set1_epi8(0x0f);
    let m2 = _mm512_set1_epi8(0x30);
    // Vector c covers sub-blocks 4c..4c + 4, each 8 i16 lanes of maddubs output.
    let idx: [__m512i; 4] = std::array::from_fn(|c| {
        let base = _mm512_set1_epi16(4 * c as i16);
        let lane = _mm512_srli_epi16::<3>(_mm512_set_epi16(
            31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10,
            9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
        ));
        _mm512_add_epi16(base, lane)
    });
    let mut acc = [_mm512_setzero_ps(); N];
    for (b, x) in w[..nb].iter().enumerate() {
        // A block is 210 bytes: ask for the four lines PREFETCH bytes ahead (cannot fault).
        let ahead = (x as *const BlockQ6K).cast::<u8>().wrapping_add(PREFETCH);
        for line in 0..4 {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line).cast());
        }
        let ys: [&BlockQ8K; N] = std::array::from_fn(|t| &acts[t][b]);
        // SAFETY: scales holds 16 bytes.
        let sc16 = _mm256_cvtepi8_epi16(unsafe { load128(x.scales.as_ptr().cast()) });
        let neg32 = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16::<5>(sc16));
        let scz = _mm512_zextsi256_si512(sc16);
        let sc: [__m512i; 4] = std::array::from_fn(|c| _mm512_permutexvar_epi16(idx[c], scz));
        let mut sumi: [__m512i; N] = std::array::from_fn(|t| {
            // SAFETY: bsums holds 16 i16, 32 bytes.
            let bsums = unsafe { load256(ys[t].bsums.as_ptr().cast()) };
            _mm512_zextsi256_si512(_mm256_madd_epi16(bsums, neg32))
        });
        for (h, (ql, qh)) in x.ql.chunks_exact(64).zip(x.qh.chunks_exact(32)).enumerate() {
            // SAFETY: ql holds 64 bytes and qh 32.
            let (lo, hb) =
                unsafe { (_mm512_loadu_si512(ql.as_ptr().cast()), load256(qh.as_ptr())) };
            // High bits for weights 0..32 and 32..64 in the two halves: qh, and qh >> 2.
            let hh =
                _mm512_inserti64x4::<1>(_mm512_zextsi256_si512(hb), _mm256_srli_epi16::<2>(hb));
            let q = [
                _mm512_or_si512(
                    _mm512_and_si512(lo, m4),
                    _mm512_and_si512(_mm512_slli_epi16::<4>(hh), m2),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(lo), m4),
                    _mm512_and_si512(hh, m2),
                ),
            ];
            for (j, &qj) in q.iter().enumerate() {
                let c = 2 * h + j;
                for (s, y) in sumi.iter_mut().zip(&ys) {
                    // SAFETY: 64c + 64 ≤ 256 = qs.len().
                    let a = unsafe { _mm512_loadu_si512(y.qs.as_ptr().add(64 * c).cast()) };
                    *s = _mm512_dpwssd_epi32(*s, _mm512_maddubs_epi16(qj, a), sc[c]);
                }
            }
        }
        let d = block_d(x);
        for ((a, s), y) in acc.iter_mut().zip(sumi).zip(&ys) {
            *a = _mm512_fmadd_ps(_mm512_set1_ps(d * y.d()), _mm512_cvtepi32_ps(s), *a);
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = _mm512_reduce_add_ps(a);
    }
}

/// Sum of the eight lanes.
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_avx(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}
