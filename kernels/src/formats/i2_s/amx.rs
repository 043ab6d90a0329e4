//! I2_S × i8_s over many tokens (prefill) on AMX-INT8 tiles; fewer than [`MIN_TOKENS`] tokens
//! go to the AVX-512 VNNI row kernel, which this variant wraps.
//!
//! I2_S has one scale per tensor and i8_s one per token, so a row's whole integer dot Σc·q is one
//! exact int32 sum: the tiles accumulate across all of K and the float work happens once per
//! output, not once per block as in TQ2_0. A 16-row panel's codes c = w + 1 ∈ {0, 1, 2} (the
//! unsigned side of `tdpbusd`) are unpacked once per call into 64-code tile rows; the tokens
//! (the signed side) are packed once per call into the tile's dword-interleaved layout. Each
//! output is then [`super::finish`] of the exact sum, in the same float steps, so it equals the
//! scalar reference bit for bit.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{I2sKernel, INFO, QK_I2_S};
use crate::activations::i8_s::{quantize_i8_s, I8sRow};
use crate::amx::{
    self, dot1, dot4, store_transposed, transpose16, OutPtr, TILE_ROWS, TILE_ROW_BYTES,
};
use crate::cpu::Isa;
use crate::formats::{check_len, FormatInfo};
use crate::matmul::MatMul;
use crate::KernelError;

/// Below this many tokens a product goes to the AVX-512 kernel (a tile holds 16 tokens).
const MIN_TOKENS: usize = 16;

/// Tokens per activation tile, weight rows per panel, vectors per tile.
const TILE: usize = TILE_ROWS;

pub(super) fn wrap(inner: I2sKernel) -> Box<dyn MatMul> {
    Box::new(I2sAmx { inner })
}

struct I2sAmx {
    /// The AVX-512 VNNI kernel: few-token products and the weights themselves.
    inner: I2sKernel,
}

/// One call's tokens in tile form.
struct PackedActs {
    groups: usize,
    /// `[group][chunk]`: one tile each; row r, dword n holds token n's q[64·chunk + 4r ..][..4].
    tiles: Vec<__m512i>,
    /// `[group]`: Σq of each of the 16 tokens, as f32 (as `finish` converts it).
    sums: Vec<__m512>,
    /// `[group]`: γ of each of the 16 tokens (1 for padding, never written out).
    scales: Vec<__m512>,
}

impl MatMul for I2sAmx {
    fn info(&self) -> &'static FormatInfo {
        &INFO
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
        let (rows, cols) = (self.inner.rows, self.inner.cols);
        // Rows must start on a 128-code block for the panel unpack; I2_S tensors always do.
        if tokens < MIN_TOKENS || rows == 0 || cols == 0 || cols % QK_I2_S != 0 {
            return MatMul::matmul(&self.inner, x, tokens, y);
        }
        check_len(INFO.name, "activations", x.len(), tokens * cols)?;
        check_len(INFO.name, "output", y.len(), tokens * rows)?;
        let acts: Vec<I8sRow> = x
            .par_chunks_exact(cols)
            .map(quantize_i8_s)
            .collect::<Result<_, _>>()?;
        // SAFETY: Isa::Amx is only handed out (matmul::check_isa) once Isa::available() confirmed
        // AVX-512 F/BW/VL/VNNI and amx::available().
        let packed = unsafe { pack_acts(&acts, cols) };
        self.run(&packed, tokens, y);
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
        MatMul::dequantize_row(&self.inner, row, out)
    }
}

impl I2sAmx {
    /// Every 16-row panel against every packed token, into `y` (tokens × rows).
    fn run(&self, acts: &PackedActs, tokens: usize, y: &mut [f32]) {
        let (rows, cols) = (self.inner.rows, self.inner.cols);
        let chunks = cols / TILE_ROW_BYTES;
        let tpad = acts.groups * TILE;
        let y_at = OutPtr(y.as_mut_ptr());
        (0..rows.div_ceil(TILE)).into_par_iter().for_each_init(
            // SAFETY: Isa::Amx implies AVX-512 F (see `matmul`).
            || unsafe {
                (
                    vec![_mm512_setzero_si512(); chunks * TILE],
                    vec![0.0f32; TILE * tpad],
                )
            },
            |(panel, out), p| {
                let r0 = p * TILE;
                let nr = TILE.min(rows - r0);
                // SAFETY: as in `matmul` for the CPU; `panel` holds `chunks` tiles, `out` is
                // 16 × tpad, and each task writes only its own rows r0..r0 + nr of y, which
                // `matmul` checked is tokens × rows.
                unsafe {
                    unpack_panel(&self.inner.codes, cols, r0, nr, panel);
                    amx::with_tiles(|| panel_products(panel, chunks, acts, self.inner.scale, out));
                    store_transposed(out, tpad, nr, tokens, y_at, rows, r0);
                }
            },
        );
    }
}

/// Quantized tokens as tiles, 16 tokens per group; tokens past the last up to a whole group are
/// zero.
///
/// # Safety
/// The CPU must have AVX-512 F/BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_acts(acts: &[I8sRow], cols: usize) -> PackedActs {
    let chunks = cols / TILE_ROW_BYTES;
    let groups = acts.len().div_ceil(TILE);
    let mut tiles = vec![_mm512_setzero_si512(); groups * chunks * TILE];
    tiles
        .par_chunks_mut(chunks * TILE)
        .enumerate()
        .for_each(|(g, tiles)| {
            let group = acts.get(g * TILE..).unwrap_or_default();
            for (c, tile) in tiles.chunks_exact_mut(TILE).enumerate() {
                let v: [__m512i; TILE] = std::array::from_fn(|n| match group.get(n) {
                    // SAFETY: 64 of the token's `cols` codes, one unaligned 512-bit load.
                    Some(a) => unsafe {
                        _mm512_loadu_si512(a.qs[c * TILE_ROW_BYTES..][..64].as_ptr().cast())
                    },
                    None => _mm512_setzero_si512(),
                });
                tile.copy_from_slice(&transpose16(v));
            }
        });
    let lanes = |f: &dyn Fn(&I8sRow) -> f32, pad: f32| -> Vec<__m512> {
        acts.chunks(TILE)
            .map(|g| {
                let v: [f32; TILE] = std::array::from_fn(|n| g.get(n).map_or(pad, f));
                // SAFETY: 16 f32, 64 bytes.
                unsafe { _mm512_loadu_ps(v.as_ptr()) }
            })
            .collect()
    };
    PackedActs {
        groups,
        tiles,
        sums: lanes(&|a| a.sum as f32, 0.0),
        scales: lanes(&|a| a.scale, 1.0),
    }
}

/// Unpack rows `r0..r0 + nr` of the codes into `panel`: tile `c` row i holds codes
/// 64c .. 64c + 64 of row r0 + i (zeros past `nr`). One row at a time, so the reads stream.
///
/// # Safety
/// The CPU must have AVX-512 F/BW; `codes` holds whole rows of `cols / 4` bytes through row
/// r0 + nr, `cols` is a multiple of 128, and `panel` holds `cols / 64` tiles.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_panel(codes: &[u8], cols: usize, r0: usize, nr: usize, panel: &mut [__m512i]) {
    let m3 = _mm512_set1_epi8(3);
    // Chunk 2b + h of a 128-code block b: codes j < 32 sit at bits 6 − 4h of byte j, codes
    // 32 ≤ j < 64 at bits 4 − 4h (16-bit shifts: the mask drops what crosses bytes).
    let shifts =
        [6i16, 2].map(|s| _mm512_inserti64x4::<1>(_mm512_set1_epi16(s), _mm256_set1_epi16(s - 2)));
    let row_bytes = cols / 4;
    for i in 0..TILE {
        let row = codes.get((r0 + i) * row_bytes..(r0 + i + 1) * row_bytes);
        match row.filter(|_| i < nr) {
            Some(row) => {
                for (b, src) in row.chunks_exact(32).enumerate() {
                    // SAFETY: 32 code bytes, one unaligned 256-bit load.
                    let v =
                        _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(src.as_ptr().cast()) });
                    for (h, &s) in shifts.iter().enumerate() {
                        panel[(2 * b + h) * TILE + i] =
                            _mm512_and_si512(_mm512_srlv_epi16(v, s), m3);
                    }
                }
            }
            None => (0..cols / TILE_ROW_BYTES)
                .for_each(|c| panel[c * TILE + i] = _mm512_setzero_si512()),
        }
    }
}

/// The panel against every token group, finished into `out[i · tpad + t]`.
///
/// # Safety
/// The CPU must have AVX-512 F and AMX-INT8, this thread's tiles must be configured by
/// [`amx::with_tiles`], `panel` must hold `chunks` tiles and `out` 16 × groups · 16 floats.
#[target_feature(enable = "avx512f")]
unsafe fn panel_products(
    panel: &[__m512i],
    chunks: usize,
    acts: &PackedActs,
    scale: f32,
    out: &mut [f32],
) {
    let tpad = acts.groups * TILE;
    let group = |g: usize| acts.tiles[g * chunks * TILE..].as_ptr();
    let s = _mm512_set1_ps(scale);
    let mut c = [_mm512_setzero_si512(); 4 * TILE];
    let mut g = 0;
    while g < acts.groups {
        let n = if acts.groups - g >= 4 { 4 } else { 1 };
        // SAFETY: `panel` and each group hold `chunks` consecutive tiles, `c` room for four
        // result tiles; the caller configured the tiles as 16 rows × 64 bytes.
        unsafe {
            if n == 4 {
                let b = [0, 1, 2, 3].map(|j| group(g + j));
                dot4(panel.as_ptr(), b, chunks, c.as_mut_ptr());
            } else {
                dot1(panel.as_ptr(), group(g), chunks, c.as_mut_ptr());
            }
        }
        for j in 0..n {
            let (sum, gamma) = (acts.sums[g + j], acts.scales[g + j]);
            for i in 0..TILE {
                // finish(): (raw − Σq) / γ · s, the same three f32 steps for 16 tokens at once.
                let raw = _mm512_cvtepi32_ps(c[j * TILE + i]);
                let f = _mm512_mul_ps(_mm512_div_ps(_mm512_sub_ps(raw, sum), gamma), s);
                let at = i * tpad + (g + j) * TILE;
                // SAFETY: 16 f32 of `out`, row i < 16, tokens below tpad.
                unsafe { _mm512_storeu_ps(out[at..at + TILE].as_mut_ptr(), f) };
            }
        }
        g += n;
    }
}
