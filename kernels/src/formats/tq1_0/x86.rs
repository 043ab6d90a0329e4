//! x86-64 TQ1_0 × Q8_K row kernels. A block is decoded once into codes c = w + 1 ∈ {0, 1, 2},
//! laid out in activation order, and serves up to four tokens as the unsigned side of
//! `maddubs`/`vpdpbusd`; the Q8_K bsums take Σq back off.
//!
//! Decoding needs p = byte·3^n mod 256 and then its top trit ⌊3p/256⌋, from 16-bit multiplies:
//! for the even byte of a lane, mullo by 3^n·256 leaves p·256 and mulhi by 3 of that is the trit;
//! for the odd byte, mullo by 3^n with the even byte masked off leaves p·256 too, mulhi by 768
//! gives 3p, and its high byte is the trit already in place.
//!
//! Overflow: an AVX2 int16 lane sums eight `maddubs` pairs (|·| ≤ 512) and one bsum (|·| ≤ 2048)
//! per block, at most 6144; the VNNI kernels stay in int32 and restart every block.
//!
//! Decode (one token) on AVX-512 takes [`rows_tq1_0_q8_k_avx512`]: four rows side by side in
//! the digit form of [`BlockQ8KTq1`], which needs no trits.

use std::arch::x86_64::*;

use super::{BlockQ8KTq1, BlockTq1_0, Tq1_0, ONE_AT, ONE_BYTE, TRIT_BYTES};
use crate::activations::q8_k::BlockQ8K;
use crate::formats::x86_rows::{by_rows, gemv_rows, prefetch_rows, row_scales};

/// Tokens that share one decoded weight block (their accumulators stay in registers).
const GROUP: usize = 4;

/// Weight rows that the single-token AVX-512 kernel runs side by side: one row's chain of
/// dependent products per block is longer than a short row's work, so rows overlap them.
const ROWS: usize = 4;

pub(super) fn rows_tq1_0_q8_k_avx512(
    w: &[BlockTq1_0],
    rows: usize,
    acts: &[Vec<BlockQ8KTq1>],
    out: &mut [f32],
) {
    match acts {
        // SAFETY: as for dot_tq1_0_q8_k_avx512, whose variant (Isa::Avx512Vnni) this entry shares.
        [a] => unsafe { gemv_avx512(w, rows, a, out) },
        _ => by_rows::<Tq1_0>(w, rows, acts, out, dot_tq1_0_q8_k_avx512),
    }
}

/// One token against `rows` rows of `w`, [`ROWS`] at a time and the rest one by one.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn gemv_avx512(w: &[BlockTq1_0], rows: usize, a: &[BlockQ8KTq1], out: &mut [f32]) {
    gemv_rows!(w, rows, a, out, ROWS, rows_avx512_1t);
}

/// `R` rows (at `rp`, `stride` blocks apart, `nb` blocks each) against one token, in the digit
/// form of [`BlockQ8KTq1`]: a block's 52 trit bytes, each the high byte of a 16-bit lane (even
/// and odd bytes apart), times 3^(n+1) with `mulhi` give y_n of every byte at once, and
/// `vpdpwssd` takes them against the token's digit rows, which also carry -Σq against the lane
/// where [`ONE_BYTE`] replaces the scale's first byte: ten multiplies and ten dot products a
/// block, against sixteen multiplies, eight logic ops and four dot products for the trits of
/// [`group_avx512`]. With several tokens the trits win, as they serve every token.
///
/// # Safety
/// The `R` rows of `nb` blocks must lie in one allocation, `a` must hold `nb` blocks, and the
/// CPU must have AVX-512 F/BW/VL/VNNI, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512_1t<const R: usize>(
    rp: *const BlockTq1_0,
    stride: usize,
    nb: usize,
    a: &[BlockQ8KTq1],
) -> [f32; R] {
    let pow = [3, 9, 27, 81, 243].map(|p| _mm512_set1_epi16(p));
    let one = _mm512_maskz_set1_epi8(1 << ONE_AT, ONE_BYTE as i8);
    let high = _mm512_set1_epi16(-256);
    let mut acc = [_mm512_setzero_ps(); R];
    for (b, y) in a[..nb].iter().enumerate() {
        prefetch_rows::<_, R>(rp, stride, b, PREFETCH);
        let mut scales = [0.0; 4];
        // SAFETY: block b of rows 0..R, as below.
        unsafe { row_scales::<_, R>(rp, stride, b, |x| x.d.0, y.q8.d(), &mut scales) };
        for (i, f) in acc.iter_mut().enumerate() {
            // SAFETY: row i < R, block b < nb: within the rows the caller vouches for.
            let x = unsafe { &*rp.add(i * stride + b) };
            // SAFETY: the mask reads bytes 0..52 of the 54-byte block.
            let src = unsafe {
                _mm512_mask_loadu_epi8(one, TRIT_MASK, std::ptr::from_ref(x).cast::<i8>())
            };
            let even = _mm512_slli_epi16::<8>(src);
            let odd = _mm512_and_si512(src, high);
            let mut s0 = _mm512_setzero_si512();
            let mut s1 = _mm512_setzero_si512();
            for (d, &p) in y.digits.iter().zip(&pow) {
                s0 = dpwssd(s0, _mm512_mulhi_epu16(even, p), &d[0]);
                s1 = dpwssd(s1, _mm512_mulhi_epu16(odd, p), &d[1]);
            }
            let s = _mm512_add_epi32(s0, s1);
            *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(scales[i]), *f);
        }
    }
    acc.map(|f| _mm512_reduce_add_ps(f))
}

pub(super) fn dot_tq1_0_q8_k_avx2(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx2, and matmul::check_isa only hands it out after Isa::Avx2.available() confirmed the features.
    unsafe { rows_avx2(w, acts, out) }
}

pub(super) fn dot_tq1_0_q8_k_avxvnni(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    // SAFETY: listed under Isa::AvxVnni, and matmul::check_isa only hands it out after Isa::AvxVnni.available() confirmed the features.
    unsafe { rows_avxvnni(w, acts, out) }
}

pub(super) fn dot_tq1_0_q8_k_avx512(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    // SAFETY: listed under Isa::Avx512Vnni, and matmul::check_isa only hands it out after Isa::Avx512Vnni.available() confirmed the features.
    unsafe { rows_avx512(w, acts, out) }
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_avx2);
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn rows_avxvnni(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_avxvnni);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows_avx512(w: &[BlockTq1_0], acts: &[Vec<BlockQ8KTq1>], out: &mut [f32]) {
    by_groups!(w, acts, out, group_avx512);
}

/// How far ahead of the block being decoded the weights are prefetched. Rows lie back to back,
/// so this reaches into the next row near a row's end.
const PREFETCH: usize = 4096;

/// Prefetch the weight line [`PREFETCH`] bytes past `x`; blocks are 54 bytes, so one line per
/// block touches every line. A prefetch never faults, so the end of the tensor is harmless.
#[inline]
#[target_feature(enable = "sse")]
fn prefetch_ahead(x: &BlockTq1_0) {
    let at = std::ptr::from_ref(x).cast::<u8>().wrapping_add(PREFETCH);
    _mm_prefetch::<_MM_HINT_T0>(at.cast());
}

/// 16-bit multipliers (one per byte pair) for the qh group: byte 4n + j of a dword-broadcast qh
/// holds trit n of qh[j].
const QH_POW: [u16; 8] = [1, 1, 3, 3, 9, 9, 27, 27];

/// 16-bit multipliers for a 16-byte group whose bytes all take the same power.
const fn uniform(m: u16) -> [u16; 8] {
    [m; 8]
}

/// The trits of 32 source bytes; `pow` holds each lane's power of three times 256, for the even
/// byte, and plain, for the odd one.
#[inline]
#[target_feature(enable = "avx2")]
fn trits_avx2(src: __m256i, pow: (__m256i, __m256i)) -> __m256i {
    let even = _mm256_mullo_epi16(src, pow.0);
    let odd = _mm256_mullo_epi16(_mm256_and_si256(src, _mm256_set1_epi16(-256)), pow.1);
    let te = _mm256_mulhi_epu16(even, _mm256_set1_epi16(3));
    let to = _mm256_mulhi_epu16(odd, _mm256_set1_epi16(768));
    _mm256_or_si256(te, _mm256_and_si256(to, _mm256_set1_epi16(-256)))
}

/// 16-bit multipliers for two 16-byte groups, for [`trits_avx2`].
#[inline]
#[target_feature(enable = "avx2")]
fn pow_avx2(lo: [u16; 8], hi: [u16; 8]) -> (__m256i, __m256i) {
    let mut m = [0u16; 16];
    m[..8].copy_from_slice(&lo);
    m[8..].copy_from_slice(&hi);
    // SAFETY: `m` is 32 bytes, one unaligned 256-bit load.
    let m = unsafe { _mm256_loadu_si256(m.as_ptr().cast()) };
    (_mm256_slli_epi16::<8>(m), m)
}

/// The eight 32-byte code vectors of a block, vector k lined up with activations `qs[32k..]`:
/// k < 5 are trit k of qs[0..32]; then trits (0, 1), (2, 3) and 4 of qs[32..48] in 16-byte
/// halves, the last paired with the sixteen qh codes.
#[inline]
#[target_feature(enable = "avx2")]
fn codes_avx2(x: &BlockTq1_0, pow: &[(__m256i, __m256i); 8]) -> [__m256i; 8] {
    let (a, b) = x.qs.split_at(32);
    // SAFETY: `a` is 32 bytes and `b` 16, one unaligned load each.
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(a.as_ptr().cast()),
            _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast())),
        )
    };
    let h = _mm_set1_epi32(i32::from_le_bytes(x.qh));
    let bh = _mm256_inserti128_si256::<1>(b, h);
    let src = [a, a, a, a, a, b, b, bh];
    let mut c = [_mm256_setzero_si256(); 8];
    for ((c, &s), &p) in c.iter_mut().zip(&src).zip(pow) {
        *c = trits_avx2(s, p);
    }
    c
}

/// Multipliers for [`codes_avx2`].
#[inline]
#[target_feature(enable = "avx2")]
fn pows_avx2() -> [(__m256i, __m256i); 8] {
    let u = uniform;
    [
        pow_avx2(u(1), u(1)),
        pow_avx2(u(3), u(3)),
        pow_avx2(u(9), u(9)),
        pow_avx2(u(27), u(27)),
        pow_avx2(u(81), u(81)),
        pow_avx2(u(1), u(3)),
        pow_avx2(u(9), u(27)),
        pow_avx2(u(81), QH_POW),
    ]
}

/// A block scale as f32. Normal halves convert on the integer ports (F16C would spend two vector
/// uops per block in a loop that is short of them); zero, subnormal, infinite and NaN take F16C.
#[inline]
#[target_feature(enable = "f16c")]
fn f16_to_f32(d: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(d);
    let bits = u32::from(h);
    let exp = bits & 0x7c00;
    if exp != 0 && exp != 0x7c00 {
        f32::from_bits((((bits & 0x7fff) << 13) + 0x3800_0000) | ((bits & 0x8000) << 16))
    } else {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(h as i16)))
    }
}

/// Sum of the eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum256(v: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
}

/// The 32-byte activation slices of one Q8_K block, and its bsums as int16.
#[inline]
#[target_feature(enable = "avx2")]
fn acts_avx2(y: &BlockQ8K) -> ([__m256i; 8], __m256i) {
    let mut q = [_mm256_setzero_si256(); 8];
    for (q, s) in q.iter_mut().zip(y.qs.chunks_exact(32)) {
        // SAFETY: `s` is 32 bytes, one unaligned 256-bit load.
        *q = unsafe { _mm256_loadu_si256(s.as_ptr().cast()) };
    }
    // SAFETY: the bsums are 16 int16, 32 bytes.
    let bs = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
    (q, bs)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn group_avx2<const N: usize>((w, rows): (&[BlockTq1_0], [&[BlockQ8KTq1]; N])) -> [f32; N] {
    let pow = pows_avx2();
    let mut acc = [_mm256_setzero_ps(); N];
    for (b, x) in w.iter().enumerate() {
        prefetch_ahead(x);
        let c = codes_avx2(x, &pow);
        let dw = f16_to_f32(x.d.0);
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b].q8;
            let (q, bs) = acts_avx2(y);
            let mut p = [_mm256_setzero_si256(); 8];
            for ((p, &c), &q) in p.iter_mut().zip(&c).zip(&q) {
                *p = _mm256_maddubs_epi16(c, q);
            }
            let s0 = _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
            let s1 = _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7]));
            let s = _mm256_sub_epi16(_mm256_add_epi16(s0, s1), bs);
            let s = _mm256_madd_epi16(s, _mm256_set1_epi16(1));
            *f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * y.d()), *f);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = hsum256(f);
    }
    sums
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn group_avxvnni<const N: usize>((w, rows): (&[BlockTq1_0], [&[BlockQ8KTq1]; N])) -> [f32; N] {
    let pow = pows_avx2();
    let mut acc = [_mm256_setzero_ps(); N];
    for (b, x) in w.iter().enumerate() {
        prefetch_ahead(x);
        let c = codes_avx2(x, &pow);
        let dw = f16_to_f32(x.d.0);
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b].q8;
            let (q, bs) = acts_avx2(y);
            // Two chains halve the latency of eight dependent dot products.
            let mut s0 = _mm256_madd_epi16(bs, _mm256_set1_epi16(-1));
            let mut s1 = _mm256_setzero_si256();
            for k in (0..8).step_by(2) {
                s0 = _mm256_dpbusd_avx_epi32(s0, c[k], q[k]);
                s1 = _mm256_dpbusd_avx_epi32(s1, c[k + 1], q[k + 1]);
            }
            let s = _mm256_add_epi32(s0, s1);
            *f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * y.d()), *f);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = hsum256(f);
    }
    sums
}

/// The window's bytes that the AVX-512 kernel loads from a block: qs and qh.
const TRIT_MASK: u64 = (1 << TRIT_BYTES) - 1;

/// [`super::digit_acts`] with AVX-512: window n gathers the activations of trit n with three
/// masked loads (qs[32n..], qs[160 + 16n..], qs[240 + 4n..] at window bytes 0, 32 and 48), and
/// its even and odd bytes widen to the two int16 halves of a digit row.
///
/// # Safety
/// The CPU must have AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn digit_acts_avx512(q: &BlockQ8K, d: &mut [[[i16; 32]; 2]; 5]) {
    let qs = q.qs.as_ptr();
    let window = |n: usize| -> (__m512i, __m512i) {
        if n == 5 {
            return (_mm512_setzero_si512(), _mm512_setzero_si512());
        }
        let qh: u64 = if n < 4 { 0xf << 48 } else { 0 };
        // SAFETY: each load reads only its masked bytes: qs[32n..32n + 32], qs[160 + 16n..+16]
        // and qs[240 + 4n..+4], all inside the 256 bytes of qs (the base pointers, qs + 128 + 16n
        // and qs + 192 + 4n, lie inside it too).
        let w = unsafe {
            let w = _mm512_maskz_loadu_epi8(0xffff_ffff, qs.add(32 * n));
            let w = _mm512_mask_loadu_epi8(w, 0xffff << 32, qs.add(128 + 16 * n));
            _mm512_mask_loadu_epi8(w, qh, qs.add(192 + 4 * n))
        };
        (
            _mm512_srai_epi16::<8>(_mm512_slli_epi16::<8>(w)),
            _mm512_srai_epi16::<8>(w),
        )
    };
    let three = _mm512_set1_epi16(3);
    let mut cur = window(0);
    for (n, dn) in d.iter_mut().enumerate() {
        let up = window(n + 1);
        let even = _mm512_sub_epi16(cur.0, _mm512_mullo_epi16(up.0, three));
        let odd = _mm512_sub_epi16(cur.1, _mm512_mullo_epi16(up.1, three));
        // SAFETY: each half of a digit row is 32 i16, one unaligned 512-bit store.
        unsafe {
            _mm512_storeu_si512(dn[0].as_mut_ptr().cast(), even);
            _mm512_storeu_si512(dn[1].as_mut_ptr().cast(), odd);
        }
        cur = up;
    }
    let sum: i32 = (0..q.bsums.len()).map(|i| i32::from(q.bsum(i))).sum();
    // |Σq| ≤ 256·127 < 2^15.
    d[0][ONE_AT % 2][ONE_AT / 2] = -(sum as i16);
}

/// acc + Σ pairs a·b of 16-bit lanes, b read from `b` (32 i16). `vpdpwssd` in assembly: LLVM
/// splits the intrinsic into `vpmaddwd` + `vpaddd` for CPUs it does not tune as fast at it,
/// which doubles the uops of the kernel's inner loop.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn dpwssd(acc: __m512i, a: __m512i, b: &[i16; 32]) -> __m512i {
    let mut acc = acc;
    // SAFETY: reads the 64 bytes of `b`; the enclosing target features include AVX-512 VNNI.
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {a}, zmmword ptr [{b}]",
            acc = inout(zmm_reg) acc,
            a = in(zmm_reg) a,
            b = in(reg) b.as_ptr(),
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    acc
}

/// The trits of 64 source bytes, as [`trits_avx2`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn trits_avx512(src: __m512i, pow: (__m512i, __m512i)) -> __m512i {
    let even = _mm512_mullo_epi16(src, pow.0);
    let odd = _mm512_mullo_epi16(_mm512_and_si512(src, _mm512_set1_epi16(-256)), pow.1);
    let te = _mm512_mulhi_epu16(even, _mm512_set1_epi16(3));
    let to = _mm512_mulhi_epu16(odd, _mm512_set1_epi16(768));
    // te | (to & 0xff00)
    _mm512_ternarylogic_epi32::<0xf8>(te, to, _mm512_set1_epi16(-256))
}

/// 16-bit multipliers for four 16-byte groups, for [`trits_avx512`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn pow_avx512(g: [[u16; 8]; 4]) -> (__m512i, __m512i) {
    let mut m = [0u16; 32];
    for (m, g) in m.chunks_exact_mut(8).zip(&g) {
        m.copy_from_slice(g);
    }
    // SAFETY: `m` is 64 bytes, one unaligned 512-bit load.
    let m = unsafe { _mm512_loadu_si512(m.as_ptr().cast()) };
    (_mm512_slli_epi16::<8>(m), m)
}

/// AVX-512: four 64-byte code vectors, vector k lined up with activations `qs[64k..]`: trits
/// (0, 1) and (2, 3) of qs[0..32] broadcast to both halves; trit 4 of qs[0..32] beside trits 0
/// and 1 of qs[32..48]; trits 2, 3 and 4 of qs[32..48] beside the sixteen qh codes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
fn group_avx512<const N: usize>((w, rows): (&[BlockTq1_0], [&[BlockQ8KTq1]; N])) -> [f32; N] {
    let u = uniform;
    let pow = [
        pow_avx512([u(1), u(1), u(3), u(3)]),
        pow_avx512([u(9), u(9), u(27), u(27)]),
        pow_avx512([u(81), u(81), u(1), u(3)]),
        pow_avx512([u(9), u(27), u(81), QH_POW]),
    ];
    let neg = _mm512_set1_epi16(-1);
    let mut acc = [_mm512_setzero_ps(); N];
    for (b, x) in w.iter().enumerate() {
        prefetch_ahead(x);
        let (a, bq) = x.qs.split_at(32);
        // SAFETY: `a` is 32 bytes and `bq` 16, one unaligned load each.
        let (a, bq) = unsafe {
            (
                _mm512_broadcast_i64x4(_mm256_loadu_si256(a.as_ptr().cast())),
                _mm512_broadcast_i32x4(_mm_loadu_si128(bq.as_ptr().cast())),
            )
        };
        let s2 = _mm512_mask_blend_epi64(0xf0, a, bq);
        let s3 = _mm512_mask_set1_epi32(bq, 0xf000, i32::from_le_bytes(x.qh));
        let src = [a, a, s2, s3];
        let mut c = [_mm512_setzero_si512(); 4];
        for ((c, &s), &p) in c.iter_mut().zip(&src).zip(&pow) {
            *c = trits_avx512(s, p);
        }
        let dw = f16_to_f32(x.d.0);
        for (f, r) in acc.iter_mut().zip(&rows) {
            let y = &r[b].q8;
            let mut q = [_mm512_setzero_si512(); 4];
            for (q, s) in q.iter_mut().zip(y.qs.chunks_exact(64)) {
                // SAFETY: `s` is 64 bytes, one unaligned 512-bit load.
                *q = unsafe { _mm512_loadu_si512(s.as_ptr().cast()) };
            }
            // SAFETY: the bsums are 16 int16, 32 bytes.
            let bs = unsafe { _mm512_zextsi256_si512(_mm256_loadu_si256(y.bsums.as_ptr().cast())) };
            let s0 = _mm512_dpbusd_epi32(_mm512_madd_epi16(bs, neg), c[0], q[0]);
            let s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[1], q[1]);
            let s0 = _mm512_dpbusd_epi32(s0, c[2], q[2]);
            let s1 = _mm512_dpbusd_epi32(s1, c[3], q[3]);
            let s = _mm512_add_epi32(s0, s1);
            *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(dw * y.d()), *f);
        }
    }
    let mut sums = [0.0; N];
    for (s, &f) in sums.iter_mut().zip(&acc) {
        *s = _mm512_reduce_add_ps(f);
    }
    sums
}
