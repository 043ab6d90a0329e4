//! TQ2_0 × Q8_K over many tokens (prefill) on AMX-INT8 tiles; fewer than [`MIN_TOKENS`] tokens
//! go to the AVX-512 VNNI kernels, which this variant wraps.
//!
//! One `tdpbusd` multiplies a 16 × 64 tile of unsigned bytes by a 64 × 16 tile of signed bytes
//! into 16 × 16 int32: 16 384 MACs, against 64 for a 512-bit `vpdpbusd`. The weight codes
//! c = w + 1 ∈ {0, 1, 2} are the unsigned side: tile row i holds 64 consecutive codes of weight
//! row i, unpacked from the 2-bit layout per block as it is needed. The activations are the
//! signed side, packed once per call into the tile's dword-interleaved layout (row r, dword n:
//! token n's activations 4r..4r + 4). Four token tiles share each weight tile.
//!
//! Each block's integer sum Σ(c − 1)·q is exact (Σc·q from the tiles, Σq from the Q8_K bsums),
//! and is scaled and added in the scalar reference's order (`sum += sumi · (d_a · d_w)`, block
//! after block), so every output equals [`super::dot_tq2_0_q8_k`] bit for bit.

use std::arch::x86_64::*;
use std::cell::Cell;

use bytemuck::Zeroable;
use rayon::prelude::*;

use super::{BlockTq2_0, Tq2_0};
use crate::activations::q8_k::{BlockQ8K, Q8K, QK_K};
use crate::activations::BlockActivation;
use crate::amx::{
    self, dot1, dot4, store_transposed, transpose16, OutPtr, TILE_ROWS, TILE_ROW_BYTES,
};
use crate::cpu::Isa;
use crate::formats::{check_finite, check_len, BlockFormat, BlockKernel, FormatInfo};
use crate::matmul::MatMul;
use crate::KernelError;

/// Below this many tokens a product goes to the AVX-512 kernels (a tile holds 16 tokens).
const MIN_TOKENS: usize = 16;

/// Tokens per activation tile, weight rows per weight tile, and vectors per tile (one per row).
const TILE: usize = TILE_ROWS;

/// 64-code chunks per 256-weight block: one weight tile each.
const CHUNKS: usize = QK_K / TILE_ROW_BYTES;

/// 16-row panels per task: they share each block's activation tiles while those sit in L1.
const PANELS: usize = 4;

pub(super) fn wrap(inner: BlockKernel<Tq2_0>) -> Box<dyn MatMul> {
    Box::new(Tq2_0Amx { inner })
}

struct Tq2_0Amx {
    /// The AVX-512 VNNI kernel: few-token products and the weights themselves.
    inner: BlockKernel<Tq2_0>,
}

/// One call's activations in tile form, for `groups` tiles of 16 tokens.
#[derive(Default)]
struct PackedActs {
    groups: usize,
    /// `[group][block][chunk]`: one 16-row tile (16 vectors) each.
    tiles: Vec<__m512i>,
    /// `[group][block]`: Σq of each of the 16 tokens.
    sums: Vec<__m512i>,
    /// `[group][block]`: d of each of the 16 tokens.
    scales: Vec<__m512>,
}

impl PackedActs {
    const fn new() -> Self {
        PackedActs {
            groups: 0,
            tiles: Vec::new(),
            sums: Vec::new(),
            scales: Vec::new(),
        }
    }
}

impl Tq2_0Amx {
    /// The product of every weight row with the packed tokens, into `y` (tokens × rows).
    fn run(&self, acts: &PackedActs, tokens: usize, y: &mut [f32]) {
        let (rows, nb) = (self.inner.rows, self.inner.cols / QK_K);
        let tpad = acts.groups * TILE;
        let y_at = OutPtr(y.as_mut_ptr());
        let span = PANELS * TILE;
        (0..rows.div_ceil(span)).into_par_iter().for_each_init(
            || vec![0.0f32; span * tpad],
            |sums, p| {
                let r0 = p * span;
                let nr = span.min(rows - r0);
                let w = &self.inner.blocks()[r0 * nb..(r0 + nr) * nb];
                sums.fill(0.0);
                // SAFETY: Isa::Amx is only handed out (matmul::check_isa) once Isa::available()
                // confirmed AVX-512 VNNI and amx::available(); w holds nr rows of nb blocks and
                // `sums` is span × tpad.
                unsafe { amx::with_tiles(|| panels(w, nb, nr, acts, sums)) };
                // SAFETY: as above for the CPU; each task writes only its own rows r0..r0 + nr of
                // y, which `matmul` checked is tokens × rows.
                unsafe { store_transposed(sums, tpad, nr, tokens, y_at, rows, r0) };
            },
        );
    }
}

impl MatMul for Tq2_0Amx {
    fn info(&self) -> &'static FormatInfo {
        &Tq2_0::INFO
    }
    fn isa(&self) -> Isa {
        Isa::Amx
    }
    fn rows(&self) -> usize {
        self.inner.rows
    }
    fn cols(&self) -> usize {
        self.inner.cols
    }

    fn matmul(&self, x: &[f32], tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
        let (rows, cols, name) = (self.inner.rows, self.inner.cols, Tq2_0::INFO.name);
        if tokens < MIN_TOKENS || rows == 0 || cols == 0 {
            return MatMul::matmul(&self.inner, x, tokens, y);
        }
        check_len(name, "activations", x.len(), tokens * cols)?;
        check_len(name, "output", y.len(), tokens * rows)?;
        let nb = cols / QK_K;
        let mut acts = ACTS.take();
        let result = pack_acts(x, tokens, nb, &mut acts).map(|()| self.run(&acts, tokens, y));
        ACTS.set(acts);
        result
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
        MatMul::dequantize_row(&self.inner, row, out)
    }
}

thread_local! {
    /// The caller's packed activations, kept between calls (a fresh multi-megabyte buffer per
    /// call costs its page faults every time). Taken, not borrowed: a nested call gets its own.
    static ACTS: Cell<PackedActs> = const { Cell::new(PackedActs::new()) };
    /// A pool thread's Q8_K blocks for one group of 16 tokens.
    static QUANT: Cell<Vec<BlockQ8K>> = const { Cell::new(Vec::new()) };
}

/// Quantize every token as Q8_K (as the reference does) and lay the blocks out as tiles into
/// `acts`; the tokens past `tokens` up to a whole tile are zero.
fn pack_acts(
    x: &[f32],
    tokens: usize,
    nb: usize,
    acts: &mut PackedActs,
) -> Result<(), KernelError> {
    let cols = nb * QK_K;
    let groups = tokens.div_ceil(TILE);
    // SAFETY: Isa::Amx implies AVX-512 F (see `matmul`).
    let (zero, zero_ps) = unsafe { (_mm512_setzero_si512(), _mm512_setzero_ps()) };
    acts.groups = groups;
    acts.tiles.resize(groups * nb * CHUNKS * TILE, zero);
    acts.sums.resize(groups * nb, zero);
    acts.scales.resize(groups * nb, zero_ps);
    let per_group = nb * CHUNKS * TILE;
    acts.tiles
        .par_chunks_mut(per_group)
        .zip(acts.sums.par_chunks_mut(nb))
        .zip(acts.scales.par_chunks_mut(nb))
        .enumerate()
        .try_for_each(|(g, ((tiles, sums), scales))| {
            let mut q = QUANT.take();
            q.resize(TILE * nb, BlockQ8K::zeroed());
            for (n, q) in q.chunks_exact_mut(nb).enumerate() {
                match x.chunks_exact(cols).nth(g * TILE + n) {
                    Some(x) => {
                        check_finite(Q8K::NAME, "activations", x)?;
                        Q8K::quantize_blocks(x, q);
                    }
                    None => q.fill(BlockQ8K::zeroed()),
                }
            }
            // SAFETY: Isa::Amx implies AVX-512 F/BW/VL (see `matmul`).
            unsafe { pack_group(&q, nb, tiles, sums, scales) };
            QUANT.set(q);
            Ok(())
        })
}

/// One group of 16 tokens (`q` is their blocks, token-major): tile row r of chunk c of block b
/// holds, in dword n, token n's activations 64c + 4r .. + 4: a 16 × 16 dword transpose.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pack_group(
    q: &[BlockQ8K],
    nb: usize,
    tiles: &mut [__m512i],
    sums: &mut [__m512i],
    scales: &mut [__m512],
) {
    for b in 0..nb {
        let blocks: [&BlockQ8K; TILE] = std::array::from_fn(|n| &q[n * nb + b]);
        for c in 0..CHUNKS {
            let v: [__m512i; TILE] = std::array::from_fn(|n| {
                // SAFETY: 64 of the block's 256 bytes, one unaligned 512-bit load.
                unsafe { _mm512_loadu_si512(blocks[n].qs[64 * c..].as_ptr().cast()) }
            });
            let at = (b * CHUNKS + c) * TILE;
            tiles[at..at + TILE].copy_from_slice(&transpose16(v));
        }
        let s: [i32; TILE] =
            std::array::from_fn(|n| (0..QK_K / 16).map(|i| i32::from(blocks[n].bsum(i))).sum());
        let d: [f32; TILE] = std::array::from_fn(|n| blocks[n].d());
        // SAFETY: 16 i32 and 16 f32, 64 bytes each.
        unsafe {
            sums[b] = _mm512_loadu_si512(s.as_ptr().cast());
            scales[b] = _mm512_loadu_ps(d.as_ptr());
        }
    }
}

/// Rows `0..nr` of `w` (row i at `w[i · nb..]`, nr ≤ [`PANELS`] · 16) against every token of
/// `acts`, into `out[i · tpad + t]`. Loop order: 64 tokens, then a block, then each 16-row
/// panel, so that the block's activation tiles (16 KiB) stay in L1 while the panels use them.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and AMX-INT8, and this thread's tiles must be configured
/// by [`amx::with_tiles`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn panels(w: &[BlockTq2_0], nb: usize, nr: usize, acts: &PackedActs, out: &mut [f32]) {
    let groups = acts.groups;
    let tpad = groups * TILE;
    let m3 = _mm512_set1_epi8(3);
    // Tile row i of chunk 2h + p: half h of row i's codes shifted by 4p (bytes 0..32) and by
    // 4p + 2 (bytes 32..64), masked to two bits (16-bit shifts: the mask drops what crosses bytes).
    let shifts = [0u16, 4].map(|s| {
        _mm512_inserti64x4::<1>(_mm512_set1_epi16(s as i16), _mm256_set1_epi16(s as i16 + 2))
    });
    let mut a = [_mm512_setzero_si512(); CHUNKS * TILE];
    let mut c = [_mm512_setzero_si512(); 4 * TILE];
    let tiles = |g: usize, b: usize| acts.tiles[(g * nb + b) * CHUNKS * TILE..].as_ptr();
    for g0 in (0..groups).step_by(4) {
        let g1 = groups.min(g0 + 4);
        for b in 0..nb {
            for r0 in (0..nr).step_by(TILE) {
                let rows = TILE.min(nr - r0);
                let mut dh = [0u16; TILE];
                for i in 0..TILE {
                    if i >= rows {
                        a[i..]
                            .iter_mut()
                            .step_by(TILE)
                            .for_each(|v| *v = _mm512_setzero_si512());
                        continue;
                    }
                    let x = &w[(r0 + i) * nb + b];
                    if let Some(next) = w.get((r0 + i) * nb + b + 1) {
                        // The next block of this row, needed four panels from now: a DRAM miss
                        // taken here stalls every panel, as 64 row streams defeat the prefetcher.
                        let p: *const u8 = (next as *const BlockTq2_0).cast();
                        _mm_prefetch::<_MM_HINT_T0>(p.cast());
                        _mm_prefetch::<_MM_HINT_T0>(
                            p.wrapping_add(size_of::<BlockTq2_0>() - 1).cast(),
                        );
                    }
                    dh[i] = u16::from_le_bytes(x.d.0);
                    for h in 0..2 {
                        // SAFETY: 32 of the block's 64 code bytes, one unaligned 256-bit load.
                        let half = _mm512_broadcast_i64x4(unsafe {
                            _mm256_loadu_si256(x.qs[32 * h..].as_ptr().cast())
                        });
                        for (p, &s) in shifts.iter().enumerate() {
                            a[(2 * h + p) * TILE + i] =
                                _mm512_and_si512(_mm512_srlv_epi16(half, s), m3);
                        }
                    }
                }
                let mut dw = [0.0f32; TILE];
                // SAFETY: 16 u16 in, 16 f32 out (f16 → f32 is exact).
                unsafe {
                    let v = _mm512_cvtph_ps(_mm256_loadu_si256(dh.as_ptr().cast()));
                    _mm512_storeu_ps(dw.as_mut_ptr(), v);
                }
                let mut g = g0;
                while g < g1 {
                    let n = if g1 - g >= 4 { 4 } else { 1 };
                    // SAFETY: `a` is four 1 KiB weight tiles, `tiles(g + j, b)` four activation
                    // tiles (j < n ≤ groups − g), `c` room for four result tiles; the caller
                    // configured the tiles as 16 rows × 64 bytes.
                    unsafe {
                        if n == 4 {
                            let t = [0, 1, 2, 3].map(|j| tiles(g + j, b));
                            dot4(a.as_ptr(), t, CHUNKS, c.as_mut_ptr());
                        } else {
                            dot1(a.as_ptr(), tiles(g, b), CHUNKS, c.as_mut_ptr());
                        }
                    }
                    for j in 0..n {
                        let sq = acts.sums[(g + j) * nb + b];
                        let da = acts.scales[(g + j) * nb + b];
                        for (i, &dw) in dw.iter().enumerate().take(rows) {
                            let sumi = _mm512_sub_epi32(c[j * TILE + i], sq);
                            let scale = _mm512_mul_ps(da, _mm512_set1_ps(dw));
                            let at = (r0 + i) * tpad + (g + j) * TILE;
                            let o = &mut out[at..at + TILE];
                            // SAFETY: `o` is 16 f32, 64 bytes.
                            unsafe {
                                let f = _mm512_loadu_ps(o.as_ptr());
                                let f = _mm512_add_ps(
                                    f,
                                    _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), scale),
                                );
                                _mm512_storeu_ps(o.as_mut_ptr(), f);
                            }
                        }
                    }
                    g += n;
                }
            }
        }
    }
}
