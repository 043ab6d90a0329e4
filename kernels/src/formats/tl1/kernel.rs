//! TL1 matrix kernels: per token, the i8_lut activations and their pair tables (built once in
//! `quantize`); per row tile (BM rows, the layout's outermost unit), table lookups BK tile by BK
//! tile, summed exactly as [`Tl1::lut_sums`] does and finished with [`finish`].
//!
//! **Table layout** (16 bytes per column, the same for every variant): each pair's nine int16
//! entries, padded to 16 with zeros, are split into a low-byte plane and a high-byte plane of 16
//! bytes each. Per SIMD step of by columns (by/2 pairs P0, P1, ... of one 64-byte weight chunk):
//! bm = 64 stores `[lo P0][hi P0][lo P1][hi P1]`; bm = 32 stores
//! `[lo P0][lo P2][hi P0][hi P2][lo P1][lo P3][hi P1][hi P3]`, so that one 32-byte load yields the
//! tables of both 16-byte weight vectors of a 256-bit register (rows 0..16 for pairs 0/1 and 2/3).

use bytemuck::{Pod, Zeroable};
use bytes::Bytes;

use super::{pair_table, Tiling, Tl1, INFO, TAIL_BYTES};
use crate::activations::i8_lut::{finish, quantize_i8_lut, LutActRow};
use crate::cpu::Isa;
use crate::formats::{check_len, FormatInfo};
use crate::matmul::Kernel;
use crate::KernelError;

/// Bytes of table per activation column.
pub(crate) const LUT_BYTES_PER_COL: usize = 16;
/// Bytes of one SIMD step of weights (bm rows x by columns, by = 256/bm).
pub(crate) const CHUNK_BYTES: usize = 64;

/// A 64-byte aligned line, so that lookup tables never straddle cache lines.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Bytes in 64-byte aligned storage.
pub(crate) struct AlignedBytes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBytes {
    pub(crate) fn zeroed(len: usize) -> Self {
        AlignedBytes {
            lines: vec![Line([0; 64]); len.div_ceil(64)],
            len,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        let all: &[u8] = bytemuck::cast_slice(&self.lines);
        &all[..self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        let all: &mut [u8] = bytemuck::cast_slice_mut(&mut self.lines);
        &mut all[..self.len]
    }
}

/// One token for the TL1 kernels: its quantized activations and their lookup tables.
pub struct Tl1Act {
    pub(crate) act: LutActRow,
    pub(crate) lut: AlignedBytes,
}

/// Offsets of the low and high byte planes of pair p's table (see the module doc).
pub(crate) fn lut_slots(tiling: &Tiling, p: usize) -> (usize, usize) {
    if tiling.simd_m == 64 {
        let lo = (p / 2) * 64 + (p % 2) * 32;
        (lo, lo + 16)
    } else {
        let (step, j) = (p / 4, p % 4);
        let lo = step * 128 + (j % 2) * 64 + (j / 2) * 16;
        (lo, lo + 32)
    }
}

/// Column coefficients of the nine pair entries, padded to 16: e = W0·a₀ + W1·a₁.
pub(crate) const W0: [i16; 16] = [-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
pub(crate) const W1: [i16; 16] = [-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0];

/// Quantize one token and build its tables in the layout `tiling` reads.
pub(crate) fn build_act(tiling: &Tiling, cols: usize, x: &[f32]) -> Result<Tl1Act, KernelError> {
    check_len(INFO.name, "activations", x.len(), cols)?;
    let act = quantize_i8_lut(x)?;
    let mut lut = AlignedBytes::zeroed(cols * LUT_BYTES_PER_COL);
    let out = lut.as_mut_slice();
    for (p, a) in act.qs.chunks_exact(2).enumerate() {
        let (a0, a1) = (i16::from(a[0]), i16::from(a[1]));
        // Same entries as `pair_table`, written so that the 16 lanes vectorize.
        let mut e = [0i16; 16];
        for ((v, w0), w1) in e.iter_mut().zip(W0).zip(W1) {
            *v = w0 * a0 + w1 * a1;
        }
        debug_assert_eq!(e[..9], pair_table(a[0], a[1]));
        let (lo, hi) = lut_slots(tiling, p);
        out[lo..lo + 16].copy_from_slice(&e.map(|v| v as u8));
        out[hi..hi + 16].copy_from_slice(&e.map(|v| (v >> 8) as u8));
    }
    Ok(Tl1Act { act, lut })
}

/// The 16 int16 entries whose byte planes sit at (lo, hi).
pub(crate) fn entries(lut: &[u8], (lo, hi): (usize, usize)) -> [i16; 16] {
    let mut e = [0i16; 16];
    for (i, v) in e.iter_mut().enumerate() {
        *v = i16::from_le_bytes([lut[lo + i], lut[hi + i]]);
    }
    e
}

/// A variant's `quantize`: one token's activations and tables.
pub(crate) type ActFn = fn(tiling: &Tiling, cols: usize, x: &[f32]) -> Result<Tl1Act, KernelError>;

/// One row tile: `w` its bytes, `acc[t·BM + r]` the integer sums of row r for token t (zeroed).
pub(crate) type TileFn =
    fn(w: &[u8], tiling: &Tiling, cols: usize, acts: &[Tl1Act], acc: &mut [i32]);

/// The reference variant: reads each token's tables back as int16 entries, then walks the tile
/// in layout order and looks every index up.
pub(crate) fn tile_scalar(w: &[u8], t: &Tiling, cols: usize, acts: &[Tl1Act], acc: &mut [i32]) {
    let (bm, by) = (t.simd_m, t.by());
    let chunks = t.tile_k / by;
    let blocks = t.tile_m / bm;
    let tables: Vec<Vec<[i16; 16]>> = acts
        .iter()
        .map(|a| {
            (0..cols / 2)
                .map(|p| entries(a.lut.as_slice(), lut_slots(t, p)))
                .collect()
        })
        .collect();
    for (i, chunk) in w.chunks_exact(CHUNK_BYTES).enumerate() {
        let (step, blk) = (i % chunks, (i / chunks) % blocks);
        let k_tile = i / (chunks * blocks);
        let first_pair = (k_tile * t.tile_k + step * by) / 2;
        for (v, vec16) in chunk.chunks_exact(16).enumerate() {
            let (row16, group) = (v / (by / 4), v % (by / 4));
            // The byte's high nibble indexes pair p0, its low nibble pair p0 + 1.
            let p0 = first_pair + 2 * group;
            for (tok, tab) in tables.iter().enumerate() {
                let (e0, e1) = (&tab[p0], &tab[p0 + 1]);
                let rows = &mut acc[tok * t.tile_m + blk * bm + row16 * 16..][..16];
                for (sum, &b) in rows.iter_mut().zip(vec16) {
                    *sum +=
                        i32::from(e0[usize::from(b >> 4)]) + i32::from(e1[usize::from(b & 0x0f)]);
                }
            }
        }
    }
}

/// TL1 weights prepared for one variant.
pub(crate) struct Tl1Kernel {
    /// The packed indices, read in place.
    pub(crate) data: Bytes,
    pub(crate) tiling: Tiling,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) scale: f32,
    pub(crate) isa: Isa,
    pub(crate) tile: TileFn,
    pub(crate) build: ActFn,
}

impl Tl1Kernel {
    /// Check the bytes (every index ≤ 8, as `decode` demands) and keep the data part.
    pub(crate) fn new(
        f: &Tl1,
        packed: Bytes,
        rows: usize,
        cols: usize,
        isa: Isa,
        (tile, build): (TileFn, ActFn),
    ) -> Result<Self, KernelError> {
        let tiling = f.tiling_for(rows, cols)?;
        let data = rows * cols / 4;
        check_len(INFO.name, "packed bytes", packed.len(), data + TAIL_BYTES)?;
        if let Some((at, &b)) = packed[..data]
            .iter()
            .enumerate()
            .find(|(_, &b)| b >> 4 > 8 || b & 0x0f > 8)
        {
            return Err(KernelError::BadCode {
                format: INFO.name,
                what: "pair index",
                offset: at,
                code: if b >> 4 > 8 { b >> 4 } else { b & 0x0f },
            });
        }
        Ok(Tl1Kernel {
            data: packed.slice(..data),
            tiling,
            rows,
            cols,
            scale: super::read_f32(&packed, data),
            isa,
            tile,
            build,
        })
    }
}

impl Kernel for Tl1Kernel {
    type Act = Tl1Act;

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

    fn quantize(&self, x: &[f32]) -> Result<Tl1Act, KernelError> {
        (self.build)(&self.tiling, self.cols, x)
    }

    fn compute(&self, group: usize, acts: &[Tl1Act], out: &mut [f32]) {
        let bm = self.tiling.tile_m;
        let bytes = bm * self.cols / 4;
        let Some(w) = self.data.get(group * bytes..(group + 1) * bytes) else {
            return;
        };
        let mut acc = vec![0i32; acts.len() * bm];
        (self.tile)(w, &self.tiling, self.cols, acts, &mut acc);
        for (r, o) in out.chunks_exact_mut(acts.len()).enumerate() {
            for (t, (o, a)) in o.iter_mut().zip(acts).enumerate() {
                *o = finish(acc[t * bm + r], &a.act, self.scale);
            }
        }
    }
}
