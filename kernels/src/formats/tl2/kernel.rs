//! TL2 matrix kernels: per token, the i8_lut activations and their triple and pair tables (built
//! once in `quantize`); per row tile (BM rows), table lookups BK tile by BK tile with the sign
//! bits applied, summed exactly as [`Tl2::lut_sums`] does and finished with [`finish`].
//!
//! **Table layout.** Each entry (a triple's 14 int16 values or a pair's 9, padded to 16 with
//! zeros) is a low-byte plane and a high-byte plane of 16 bytes. `Native` stores entry n as
//! `[lo n][hi n]` at 32·n, triples first, then the pair part's pairs; `Wide` (the 512-bit kernel)
//! stores each run of four entries n..n+4 as `[lo n, lo n, lo n+2, lo n+2][hi n, ...][lo n+1,
//! lo n+1, lo n+3, lo n+3][hi n+1, ...]` (256 bytes), matching a 512-bit load of two index
//! vectors, whose lanes 0-1 hold entries n/n+1 and lanes 2-3 entries n+2/n+3.

use bytes::Bytes;

use super::{
    pair_table, scale_offset, triple_table, Tiling, Tl2, INFO, PAIR_TILE_K, SIMD_M, TAIL_BYTES,
};
use crate::activations::i8_lut::{finish, quantize_i8_lut, LutActRow};
use crate::cpu::Isa;
use crate::formats::tl1::{entries, AlignedBytes};
use crate::formats::{check_len, FormatInfo};
use crate::matmul::Kernel;
use crate::KernelError;

/// Bytes of index vector: 32 rows x two entries.
pub(crate) const VEC_BYTES: usize = 32;
/// Triples per sign block (one 32-byte vector of 16 sign words).
pub(crate) const SIGN_BLOCK: usize = 8;

/// Where each entry's byte planes live in a token's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LutLayout {
    Native,
    /// Only the 512-bit x86 kernel reads it.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Wide,
}

impl LutLayout {
    /// Bytes per entry.
    pub(crate) fn entry_bytes(self) -> usize {
        match self {
            LutLayout::Native => 32,
            LutLayout::Wide => 64,
        }
    }

    /// Offsets of the (first copies of the) low and high planes of entry n.
    pub(crate) fn slots(self, n: usize) -> (usize, usize) {
        match self {
            LutLayout::Native => (32 * n, 32 * n + 16),
            LutLayout::Wide => {
                let (g, j) = (n / 4, n % 4);
                let lo = g * 256 + (j % 2) * 128 + (j / 2) * 32;
                (lo, lo + 64)
            }
        }
    }

    fn copies(self) -> usize {
        match self {
            LutLayout::Native => 1,
            LutLayout::Wide => 2,
        }
    }
}

/// One token for the TL2 kernels: its quantized activations and their lookup tables.
pub struct Tl2Act {
    pub(crate) act: LutActRow,
    /// K3/3 triple entries, then K2/2 pair entries.
    pub(crate) lut: AlignedBytes,
}

/// Weight digit j (−1, 0, 1) of triple entry idx, padded with zeros to 16 entries.
const fn triple_coeffs(j: usize) -> [i16; 16] {
    let mut c = [0i16; 16];
    let mut idx = 0;
    while idx < 14 {
        let u = idx + 13;
        let digit = match j {
            0 => u / 9,
            1 => (u / 3) % 3,
            _ => u % 3,
        };
        c[idx] = digit as i16 - 1;
        idx += 1;
    }
    c
}

pub(crate) const T0: [i16; 16] = triple_coeffs(0);
pub(crate) const T1: [i16; 16] = triple_coeffs(1);
pub(crate) const T2: [i16; 16] = triple_coeffs(2);
/// Pair coefficients: e = P0·a₀ + P1·a₁ (entries 9.. are zero).
pub(crate) const P0: [i16; 16] = [-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
pub(crate) const P1: [i16; 16] = [-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0];

/// Write entry n's planes (every copy the layout keeps).
fn put_entry(out: &mut [u8], layout: LutLayout, n: usize, e: &[i16; 16]) {
    let (lo, hi) = layout.slots(n);
    let (lo_plane, hi_plane) = (e.map(|v| v as u8), e.map(|v| (v >> 8) as u8));
    for copy in 0..layout.copies() {
        out[lo + 16 * copy..][..16].copy_from_slice(&lo_plane);
        out[hi + 16 * copy..][..16].copy_from_slice(&hi_plane);
    }
}

/// Quantize one token and build its tables in `layout`.
pub(crate) fn build_act(
    layout: LutLayout,
    k3: usize,
    cols: usize,
    x: &[f32],
) -> Result<Tl2Act, KernelError> {
    check_len(INFO.name, "activations", x.len(), cols)?;
    let act = quantize_i8_lut(x)?;
    let (n3, n2) = (k3 / 3, (cols - k3) / 2);
    let mut lut = AlignedBytes::zeroed((n3 + n2) * layout.entry_bytes());
    let out = lut.as_mut_slice();
    let (qa, qb) = act.qs.split_at(k3);
    for (n, a) in qa.chunks_exact(3).enumerate() {
        let a = [i16::from(a[0]), i16::from(a[1]), i16::from(a[2])];
        let mut e = [0i16; 16];
        for (i, v) in e.iter_mut().enumerate() {
            *v = T0[i] * a[0] + T1[i] * a[1] + T2[i] * a[2];
        }
        debug_assert_eq!(e[..14], triple_table([a[0] as i8, a[1] as i8, a[2] as i8]));
        put_entry(out, layout, n, &e);
    }
    for (n, a) in qb.chunks_exact(2).enumerate() {
        let (a0, a1) = (i16::from(a[0]), i16::from(a[1]));
        let mut e = [0i16; 16];
        for (i, v) in e.iter_mut().enumerate() {
            *v = P0[i] * a0 + P1[i] * a1;
        }
        debug_assert_eq!(e[..9], pair_table(a[0], a[1]));
        put_entry(out, layout, n3 + n, &e);
    }
    Ok(Tl2Act { act, lut })
}

/// A variant's `quantize`: one token's activations and tables (K3, cols, x).
pub(crate) type ActFn =
    fn(layout: LutLayout, k3: usize, cols: usize, x: &[f32]) -> Result<Tl2Act, KernelError>;

/// One row tile's bytes: triple indices, sign words and pair indices.
pub(crate) struct Tile<'a> {
    pub(crate) idx: &'a [u8],
    pub(crate) signs: &'a [u8],
    pub(crate) pairs: &'a [u8],
}

/// One row tile: `acc[t·BM + r]` gets the integer sums of row r for token t (zeroed on entry).
pub(crate) type TileFn = fn(tile: &Tile<'_>, tiling: &Tiling, acts: &[Tl2Act], acc: &mut [i32]);

/// Row (0..32) of byte `pos` of an index vector: the 8-row groups are stored 0, 2, 1, 3.
fn vec_row(pos: usize) -> usize {
    [0, 2, 1, 3][pos / 8] * 8 + pos % 8
}

/// The reference variant: reads each token's tables back as int16 entries, then walks the tile
/// in layout order, looks every index up and applies its sign bit.
pub(crate) fn tile_scalar(tile: &Tile<'_>, t: &Tiling, acts: &[Tl2Act], acc: &mut [i32]) {
    let blocks = t.tile_m / SIMD_M;
    let n3 = tile.idx.len() / t.tile_m * 2;
    let n2 = tile.pairs.len() / t.tile_m * 2;
    let tables: Vec<Vec<[i16; 16]>> = acts
        .iter()
        .map(|a| {
            let lut = a.lut.as_slice();
            (0..n3 + n2)
                .map(|n| entries(lut, LutLayout::Native.slots(n)))
                .collect()
        })
        .collect();
    let per_block = t.tile_k / 6 * VEC_BYTES;
    let signs_per_block = t.tile_k / 24 * VEC_BYTES;
    let signs = tile.signs.chunks_exact(signs_per_block);
    for (i, (wb, sb)) in tile.idx.chunks_exact(per_block).zip(signs).enumerate() {
        let (k_tile, blk) = (i / blocks, i % blocks);
        let first = k_tile * t.tile_k / 3;
        for (v, vec) in wb.chunks_exact(VEC_BYTES).enumerate() {
            let words = &sb[(v / 4) * VEC_BYTES..][..VEC_BYTES];
            for (pos, &b) in vec.iter().enumerate() {
                let rr = vec_row(pos);
                let word = u16::from_le_bytes([words[2 * (rr % 16)], words[2 * (rr % 16) + 1]]);
                // Bit 15 − i of word j: triple i/2 of the sign block, row j + 16·(i mod 2).
                for (tc, idx) in [(2 * v, b >> 4), (2 * v + 1, b & 0x0f)] {
                    let negative = i32::from((word >> (15 - (2 * (tc % 8) + rr / 16))) & 1);
                    for (tok, tab) in tables.iter().enumerate() {
                        let e = i32::from(tab[first + tc][usize::from(idx)]);
                        // (e XOR −1) + 1 = −e: a branch here would mispredict on random signs.
                        acc[tok * t.tile_m + blk * SIMD_M + rr] += (e ^ -negative) + negative;
                    }
                }
            }
        }
    }
    let per_block = PAIR_TILE_K / 4 * VEC_BYTES;
    for (i, wb) in tile.pairs.chunks_exact(per_block).enumerate() {
        let (k_tile, blk) = (i / blocks, i % blocks);
        let first = n3 + k_tile * PAIR_TILE_K / 2;
        for (v, vec) in wb.chunks_exact(VEC_BYTES).enumerate() {
            for (pos, &b) in vec.iter().enumerate() {
                let rr = vec_row(pos);
                for (tok, tab) in tables.iter().enumerate() {
                    let (e0, e1) = (&tab[first + 2 * v], &tab[first + 2 * v + 1]);
                    let e =
                        i32::from(e0[usize::from(b >> 4)]) + i32::from(e1[usize::from(b & 0x0f)]);
                    acc[tok * t.tile_m + blk * SIMD_M + rr] += e;
                }
            }
        }
    }
}

/// Row tile `group` of a part whose tiles are `bytes` long.
fn tile_part(part: &[u8], group: usize, bytes: usize) -> Option<&[u8]> {
    part.get(group * bytes..(group + 1) * bytes)
}

/// TL2 weights prepared for one variant.
pub(crate) struct Tl2Kernel {
    /// The three parts of the packed tensor, read in place.
    idx: Bytes,
    signs: Bytes,
    pairs: Bytes,
    tiling: Tiling,
    rows: usize,
    cols: usize,
    scale: f32,
    isa: Isa,
    layout: LutLayout,
    tile: TileFn,
    build: ActFn,
}

impl Tl2Kernel {
    /// Check the bytes (triple indices ≤ 13, pair indices ≤ 8, as `decode` demands) and keep
    /// the three data parts.
    pub(crate) fn new(
        f: &Tl2,
        packed: Bytes,
        rows: usize,
        cols: usize,
        isa: Isa,
        (layout, tile, build): (LutLayout, TileFn, ActFn),
    ) -> Result<Self, KernelError> {
        let tiling = f.tiling_for(rows, cols)?;
        let at_scale = scale_offset(rows, cols);
        check_len(
            INFO.name,
            "packed bytes",
            packed.len(),
            at_scale + TAIL_BYTES,
        )?;
        let k3 = tiling.triple_cols(cols);
        let (n_idx, n_signs, n_pairs) = (rows * k3 / 6, rows * k3 / 24, rows * (cols - k3) / 4);
        let idx = &packed[..n_idx];
        let pairs = &packed[n_idx + n_signs..n_idx + n_signs + n_pairs];
        let bad = |what, offset, b: u8, max| KernelError::BadCode {
            format: INFO.name,
            what,
            offset,
            code: if b >> 4 > max { b >> 4 } else { b & 0x0f },
        };
        if let Some((at, &b)) = idx
            .iter()
            .enumerate()
            .find(|(_, &b)| b >> 4 > 13 || b & 0x0f > 13)
        {
            return Err(bad("triple index", at, b, 13));
        }
        if let Some((at, &b)) = pairs
            .iter()
            .enumerate()
            .find(|(_, &b)| b >> 4 > 8 || b & 0x0f > 8)
        {
            return Err(bad("pair index", n_idx + n_signs + at, b, 8));
        }
        Ok(Tl2Kernel {
            idx: packed.slice(..n_idx),
            signs: packed.slice(n_idx..n_idx + n_signs),
            pairs: packed.slice(n_idx + n_signs..n_idx + n_signs + n_pairs),
            tiling,
            rows,
            cols,
            scale: super::read_f32(&packed, at_scale),
            isa,
            layout,
            tile,
            build,
        })
    }
}

impl Kernel for Tl2Kernel {
    type Act = Tl2Act;

    fn info(&self) -> &'static FormatInfo {
        &INFO
    }
    fn isa(&self) -> Isa {
        self.isa
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn group_rows(&self) -> usize {
        self.tiling.tile_m
    }

    fn quantize(&self, x: &[f32]) -> Result<Tl2Act, KernelError> {
        (self.build)(
            self.layout,
            self.tiling.triple_cols(self.cols),
            self.cols,
            x,
        )
    }

    fn compute(&self, group: usize, acts: &[Tl2Act], out: &mut [f32]) {
        let bm = self.tiling.tile_m;
        let k3 = self.tiling.triple_cols(self.cols);
        let (Some(idx), Some(signs), Some(pairs)) = (
            tile_part(&self.idx, group, bm * k3 / 6),
            tile_part(&self.signs, group, bm * k3 / 24),
            tile_part(&self.pairs, group, bm * (self.cols - k3) / 4),
        ) else {
            return;
        };
        let mut acc = vec![0i32; acts.len() * bm];
        (self.tile)(&Tile { idx, signs, pairs }, &self.tiling, acts, &mut acc);
        for (r, o) in out.chunks_exact_mut(acts.len()).enumerate() {
            for (t, (o, a)) in o.iter_mut().zip(acts).enumerate() {
                *o = finish(acc[t * bm + r], &a.act, self.scale);
            }
        }
    }
}
