//! Q4_0 × Q8_0 over many tokens (prefill) on AMX-INT8 tiles, as llama.cpp's CPU backend runs
//! this baseline on AMX machines; fewer than [`MIN_TOKENS`] tokens go to the AVX-512 VNNI
//! kernels, which this variant wraps.
//!
//! Every 32-weight block has its own scale on both sides, so one `tdpbssd` (signed × signed)
//! covers exactly one block: K = 32 ([`amx::K32`]: a 16 × 32 weight tile against an 8 × 64 token
//! tile). The weight tile holds the values n − 8 ∈ -8..8, unpacked per block; the token tiles
//! hold the Q8_0 quants, packed once per call into the tile's dword-interleaved layout (row r,
//! dword n: token n's activations 4r..4r + 4). Four token tiles share each weight tile.
//!
//! Each block's integer sum is exact, and is scaled and added in the scalar reference's order
//! (`sum += sumi · d_w · d_a`, block after block), so every output equals
//! [`super::dot_q4_0_q8_0`] bit for bit.

use std::arch::x86_64::*;
use std::cell::Cell;

use bytemuck::Zeroable;
use rayon::prelude::*;

use super::{BlockQ4_0, Q4_0, QK4_0};
use crate::activations::q8_0::{BlockQ8_0, Q8_0};
use crate::activations::BlockActivation;
use crate::amx::{
    self, dot1_signed, dot4_signed, store_transposed, transpose16, OutPtr, TILE_ROWS,
};
use crate::cpu::Isa;
use crate::formats::{check_finite, check_len, BlockFormat, BlockKernel, FormatInfo};
use crate::matmul::MatMul;
use crate::KernelError;

/// Below this many tokens a product goes to the AVX-512 kernels (a tile holds 16 tokens).
const MIN_TOKENS: usize = 16;

/// Tokens per activation tile, weight rows per weight tile.
const TILE: usize = TILE_ROWS;

/// Rows of a token tile: 32 activations of 16 tokens, four bytes per token per row.
const ACT_ROWS: usize = QK4_0 / 4;

/// 16-row panels per task: they share each block's activation tiles while those sit in L1.
const PANELS: usize = 4;

pub(super) fn wrap(inner: BlockKernel<Q4_0>) -> Box<dyn MatMul> {
    Box::new(Q4_0Amx { inner })
}

struct Q4_0Amx {
    /// The AVX-512 VNNI kernel: few-token products and the weights themselves.
    inner: BlockKernel<Q4_0>,
}

/// One call's activations in tile form, for `groups` tiles of 16 tokens.
#[derive(Default)]
struct PackedActs {
    groups: usize,
    /// `[group][block]`: one 8-row token tile (8 vectors) each.
    tiles: Vec<__m512i>,
    /// `[group][block]`: d of each of the 16 tokens.
    scales: Vec<__m512>,
}

impl PackedActs {
    const fn new() -> Self {
        PackedActs {
            groups: 0,
            tiles: Vec::new(),
            scales: Vec::new(),
        }
    }
}

impl Q4_0Amx {
    /// The product of every weight row with the packed tokens, into `y` (tokens × rows).
    fn run(&self, acts: &PackedActs, tokens: usize, y: &mut [f32]) {
        let (rows, nb) = (self.inner.rows, self.inner.cols / QK4_0);
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
                unsafe { amx::with_config(&amx::K32, || panels(w, nb, nr, acts, sums)) };
                // SAFETY: as above for the CPU; each task writes only its own rows r0..r0 + nr of
                // y, which `matmul` checked is tokens × rows.
                unsafe { store_transposed(sums, tpad, nr, tokens, y_at, rows, r0) };
            },
        );
    }
}

impl MatMul for Q4_0Amx {
    fn info(&self) -> &'static FormatInfo {
        &Q4_0::INFO
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
        let (rows, cols, name) = (self.inner.rows, self.inner.cols, Q4_0::INFO.name);
        if tokens < MIN_TOKENS || rows == 0 || cols == 0 {
            return MatMul::matmul(&self.inner, x, tokens, y);
        }
        check_len(name, "activations", x.len(), tokens * cols)?;
        check_len(name, "output", y.len(), tokens * rows)?;
        let nb = cols / QK4_0;
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
    /// A pool thread's Q8_0 blocks for one group of 16 tokens.
    static QUANT: Cell<Vec<BlockQ8_0>> = const { Cell::new(Vec::new()) };
}

/// Quantize every token as Q8_0 (as the reference does) and lay the blocks out as tiles into
/// `acts`; the tokens past `tokens` up to a whole tile are zero.
fn pack_acts(
    x: &[f32],
    tokens: usize,
    nb: usize,
    acts: &mut PackedActs,
) -> Result<(), KernelError> {
    let cols = nb * QK4_0;
    let groups = tokens.div_ceil(TILE);
    // SAFETY: Isa::Amx implies AVX-512 F (see `matmul`).
    let (zero, zero_ps) = unsafe { (_mm512_setzero_si512(), _mm512_setzero_ps()) };
    acts.groups = groups;
    acts.tiles.resize(groups * nb * ACT_ROWS, zero);
    acts.scales.resize(groups * nb, zero_ps);
    acts.tiles
        .par_chunks_mut(nb * ACT_ROWS)
        .zip(acts.scales.par_chunks_mut(nb))
        .enumerate()
        .try_for_each(|(g, (tiles, scales))| {
            let mut q = QUANT.take();
            q.resize(TILE * nb, BlockQ8_0::zeroed());
            for (n, q) in q.chunks_exact_mut(nb).enumerate() {
                match x.chunks_exact(cols).nth(g * TILE + n) {
                    Some(x) => {
                        check_finite(Q8_0::NAME, "activations", x)?;
                        Q8_0::quantize_blocks(x, q);
                    }
                    None => q.fill(BlockQ8_0::zeroed()),
                }
            }
            // SAFETY: Isa::Amx implies AVX-512 F/BW/VL (see `matmul`).
            unsafe { pack_group(&q, nb, tiles, scales) };
            QUANT.set(q);
            Ok(())
        })
}

/// One group of 16 tokens (`q` is their blocks, token-major): row r of block b's tile holds, in
/// dword n, token n's activations 4r .. 4r + 4. Two blocks at a time make one 16 × 16 dword
/// transpose: rows 0..8 of the result are block b's tile, rows 8..16 block b + 1's.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pack_group(q: &[BlockQ8_0], nb: usize, tiles: &mut [__m512i], scales: &mut [__m512]) {
    for b in (0..nb).step_by(2) {
        let pair = if b + 1 < nb { 2 } else { 1 };
        let v: [__m512i; TILE] = std::array::from_fn(|n| {
            let lo = &q[n * nb + b].qs;
            // SAFETY: 32 bytes of a block's quants, one unaligned 256-bit load each.
            unsafe {
                let lo = _mm256_loadu_si256(lo.as_ptr().cast());
                let hi = match pair {
                    2 => _mm256_loadu_si256(q[n * nb + b + 1].qs.as_ptr().cast()),
                    _ => _mm256_setzero_si256(),
                };
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
            }
        });
        let t = transpose16(v);
        tiles[b * ACT_ROWS..(b + pair) * ACT_ROWS].copy_from_slice(&t[..pair * ACT_ROWS]);
        for (j, s) in scales[b..b + pair].iter_mut().enumerate() {
            let d: [f32; TILE] = std::array::from_fn(|n| q[n * nb + b + j].d.to_f32());
            // SAFETY: 16 f32, 64 bytes.
            *s = unsafe { _mm512_loadu_ps(d.as_ptr()) };
        }
    }
}

/// A weight tile whose products wait in a result buffer for [`finish`].
struct Pending {
    b: usize,
    r0: usize,
    rows: usize,
    dw: [f32; TILE],
}

/// Rows `0..nr` of `w` (row i at `w[i · nb..]`, nr ≤ [`PANELS`] · 16) against every token of
/// `acts`, into `out[i · tpad + t]`. Loop order: 64 tokens, then a block, then each 16-row
/// panel, so that the block's token tiles stay in L1 while the panels use them. Each weight
/// tile's products are scaled one tile later, from the other of two result buffers, so that the
/// vector work overlaps the next tile's `tdpbssd` and never waits on a fresh tile store.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and AMX-INT8, and this thread's tiles must be configured
/// as [`amx::K32`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn panels(w: &[BlockQ4_0], nb: usize, nr: usize, acts: &PackedActs, out: &mut [f32]) {
    let tpad = acts.groups * TILE;
    let (m15, eight) = (_mm256_set1_epi8(15), _mm256_set1_epi8(8));
    // Bytes 0..16 of a tile row: the low nibbles (weights 0..16); bytes 16..32: the high ones.
    let shift = _mm256_inserti128_si256::<1>(_mm256_setzero_si256(), _mm_set1_epi16(4));
    // One weight tile: row i's 32 codes at the start of vector i (tile rows are 64 bytes apart).
    let mut a = [_mm512_setzero_si512(); TILE];
    let mut bufs = [[_mm512_setzero_si512(); 4 * TILE]; 2];
    // Which of `bufs` the next weight tile's products go to.
    let mut next = 0;
    let tiles = |g: usize, b: usize| acts.tiles[(g * nb + b) * ACT_ROWS..].as_ptr();
    for g0 in (0..acts.groups).step_by(4) {
        let n = (acts.groups - g0).min(4);
        let mut pending: Option<Pending> = None;
        for b in 0..nb {
            for r0 in (0..nr).step_by(TILE) {
                let rows = TILE.min(nr - r0);
                let mut dh = [0u16; TILE];
                for (i, a) in a.iter_mut().enumerate().take(rows) {
                    let x = &w[(r0 + i) * nb + b];
                    dh[i] = u16::from_le_bytes(x.d.0);
                    // SAFETY: the block's 16 nibble bytes, one unaligned 128-bit load.
                    let q = _mm256_broadcastsi128_si256(unsafe {
                        _mm_loadu_si128(x.qs.as_ptr().cast())
                    });
                    let n = _mm256_and_si256(_mm256_srlv_epi16(q, shift), m15);
                    *a = _mm512_castsi256_si512(_mm256_sub_epi8(n, eight));
                }
                for a in &mut a[rows..] {
                    *a = _mm512_setzero_si512();
                }
                let mut dw = [0.0f32; TILE];
                // SAFETY: 16 u16 in, 16 f32 out (f16 → f32 is exact).
                unsafe {
                    let v = _mm512_cvtph_ps(_mm256_loadu_si256(dh.as_ptr().cast()));
                    _mm512_storeu_ps(dw.as_mut_ptr(), v);
                }
                let [b0, b1] = &mut bufs;
                let (c, c_prev) = if next == 0 { (b0, b1) } else { (b1, b0) };
                next ^= 1;
                // SAFETY: `a` is one weight tile (16 rows, 64 bytes apart), `tiles(g0 + j, b)`
                // token tiles (j < n ≤ groups − g0), `c` room for four result tiles; the caller
                // configured the tiles as amx::K32.
                unsafe {
                    if n == 4 {
                        let t = [0, 1, 2, 3].map(|j| tiles(g0 + j, b));
                        dot4_signed(a.as_ptr(), t, 1, c.as_mut_ptr());
                    } else {
                        for j in 0..n {
                            let cj = c[j * TILE..].as_mut_ptr();
                            dot1_signed(a.as_ptr(), tiles(g0 + j, b), 1, cj);
                        }
                    }
                }
                if let Some(p) = pending.replace(Pending { b, r0, rows, dw }) {
                    finish(c_prev, &p, g0, n, nb, acts, tpad, out);
                }
            }
        }
        if let Some(p) = pending {
            finish(&bufs[next ^ 1], &p, g0, n, nb, acts, tpad, out);
        }
    }
}

/// Scale one weight tile's products `c` (result tile j: token group g0 + j) and add them to
/// `out`: the reference's (sumi · d_w) · d_a, then the add.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn finish(
    c: &[__m512i],
    p: &Pending,
    g0: usize,
    n: usize,
    nb: usize,
    acts: &PackedActs,
    tpad: usize,
    out: &mut [f32],
) {
    for j in 0..n {
        let da = acts.scales[(g0 + j) * nb + p.b];
        for (i, &dw) in p.dw.iter().enumerate().take(p.rows) {
            let at = (p.r0 + i) * tpad + (g0 + j) * TILE;
            let o = &mut out[at..at + TILE];
            let f = _mm512_mul_ps(
                _mm512_mul_ps(_mm512_cvtepi32_ps(c[j * TILE + i]), _mm512_set1_ps(dw)),
                da,
            );
            // SAFETY: `o` is 16 f32, 64 bytes.
            unsafe {
                let v = _mm512_add_ps(_mm512_loadu_ps(o.as_ptr()), f);
                _mm512_storeu_ps(o.as_mut_ptr(), v);
            }
        }
    }
}
