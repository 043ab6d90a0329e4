//! TL2 (bitnet.cpp type 39): ternary weights as sign + 4-bit index of weight triples (5 bits per
//! 3 weights), laid out in the tiles of bitnet.cpp's generated AVX2 lookup-table kernel.
//!
//! **Split.** With BK the tile depth, the first K3 = ⌊cols/BK⌋·BK columns are coded in triples;
//! the remaining K2 = cols − K3 columns are coded in pairs exactly as TL1 codes them
//! ([`super::tl1`], index 3·w₀ + w₁ + 4), in 32-column tiles.
//!
//! **Triples.** (w₀, w₁, w₂) = (w[3t], w[3t+1], w[3t+2]) gives v = 9w₀ + 3w₁ + w₂ ∈ −13..=13; the
//! file stores idx = |v| (4 bits) and a sign bit (v < 0). Per activation triple the kernel builds
//! e[idx] = w₀·a₀ + w₁·a₁ + w₂·a₂ for the balanced-ternary digits of idx (14 int16 entries, in
//! low/high byte planes for `_mm256_shuffle_epi8`) and adds ±e[idx] ((e + m) XOR m with the sign
//! as a 16-bit mask m). Activations: [`crate::activations::i8_lut`]. Output:
//! y = (f32)(acc_triples + acc_pairs) / γ · s.
//!
//! **Layout** (upstream `preprocess_weights_tl2`; bm = 32 rows per SIMD block, by = 192/bm = 6):
//! 1. triple indices, rows·K3/6 bytes: [rows/BM][K3/BK][BM/32][BK/6][32-byte vector], two
//!    consecutive triples of one row per byte (first in the high nibble); inside each vector the
//!    four 8-row groups are stored in the order 0, 2, 1, 3 (undoing AVX2's per-lane unpack);
//! 2. sign bits, rows·K3/24 bytes: [rows/BM][K3/BK][BM/32][BK/24][16 little-endian u16 words];
//!    bit 15 − i of word j is the sign of triple i/2 (of the block's 8) for row j + 16·(i mod 2);
//! 3. pair indices, rows·K2/4 bytes: [rows/BM][K2/32][BM/32][8][32-byte vector], two pairs per
//!    byte, 8-row groups again in the order 0, 2, 1, 3;
//! 4. zeros up to P = ((cols − 256)·rows/3)·5/8 + ((256·rows/2)·4)/8 (ggml_nbytes, C integer
//!    arithmetic), rounded up to a multiple of 32; then a 32-byte tail with the f32 scale s at
//!    offset P, rest zero. Tensor bytes = P + 32. (Upstream's converter writes the scale as a
//!    separate 1-element tensor that GGUF's 32-byte alignment places at exactly that offset.)
//!
//! **Tiling constraints** ([`Tiling::validate`]): bm = 32 (codegen_tl2 asserts it); BM % 32 = 0;
//! BK % 24 = 0 (8 triples per sign block); rows % BM = 0; K3 > 0; K2 % 32 = 0 (codegen_tl2's
//! "K % BK % 32"); the data must fit in P (K2 ≤ 256, or np.pad in the converter fails); and,
//! ours, BK ≤ 240 so that the kernel's int16 per-tile sum (BK/3 entries of at most 381) cannot
//! wrap and the integer sum is exact.
//!
//! **Presets** ([`PRESETS`]): upstream's (`setup_env.py`) for bitnet_b1_58-large, bitnet_b1_58-3B
//! and Llama3-8B-1.58-100B-tokens, and ours for BitNet b1.58 2B4T (2560×2560, 640×2560,
//! 6912×2560, 2560×6912), rows × cols. Upstream's pretuned `kernel_config_tl2.ini` for
//! bitnet_b1_58-large says bm = 64 for 4096×1536, which its own codegen rejects and its converter
//! cannot pack (by = 3); we follow `setup_env.py` (bm = 32) there.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod kernel;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytes::Bytes;

use self::kernel::{build_act, tile_scalar, ActFn, LutLayout, TileFn, Tl2Kernel};
use super::tl1::{
    check_dims, codes_from_i2_s, codes_from_tq2_0, codes_from_weights, nibble, pair_index,
    pair_table, put_nibble, read_f32, shape_err, PresetOrigin,
};
use super::{check_len, FormatInfo, Origin, WeightFormat};
use crate::activations::i8_lut::{finish, quantize_i8_lut, LutActRow};
use crate::cpu::Isa;
use crate::matmul::{check_isa, MatMul};
use crate::KernelError;

/// FormatInfo counts one sign block: 8 triples = 24 weights in 4 index bytes + 1 sign byte.
pub const INFO: FormatInfo = FormatInfo {
    name: "tl2",
    block_size: 24,
    block_bytes: 5,
    bits_per_weight: FormatInfo::bits(24, 5),
    activation: "i8_lut",
    origin: Origin::BitnetCpp,
    ternary: true,
};

/// Bytes of the per-tensor tail that holds the scale.
pub const TAIL_BYTES: usize = 32;
/// Rows per SIMD block; the only value codegen_tl2 accepts.
pub const SIMD_M: usize = 32;
/// Columns per tile of the pair part (upstream's BK2).
pub const PAIR_TILE_K: usize = 32;
/// Largest BK whose int16 tile sum cannot wrap: BK/3 entries of magnitude ≤ 381.
pub const MAX_TILE_K: usize = 240;
/// Storage order of the four 8-row groups of a 32-row vector (self-inverse).
const GROUP_ORDER: [usize; 4] = [0, 2, 1, 3];

/// The codegen parameters that fix TL2's byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// BM: rows per thread tile.
    pub tile_m: usize,
    /// BK: columns per triple tile (one int16 accumulation); a multiple of 24.
    pub tile_k: usize,
    /// bm: rows per SIMD block; must be 32.
    pub simd_m: usize,
}

/// A tiling for one weight shape of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub model: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub tiling: Tiling,
    pub origin: PresetOrigin,
}

const fn preset(
    model: &'static str,
    rows: usize,
    cols: usize,
    (tile_m, tile_k): (usize, usize),
    origin: PresetOrigin,
) -> Preset {
    Preset {
        model,
        rows,
        cols,
        tiling: Tiling::new(tile_m, tile_k, SIMD_M),
        origin,
    }
}

use PresetOrigin::{Ours, Upstream};

/// Known shapes and their tilings (bm = 32 throughout); see the module doc.
pub const PRESETS: &[Preset] = &[
    preset("bitnet_b1_58-large", 1536, 4096, (256, 96), Upstream),
    preset("bitnet_b1_58-large", 1536, 1536, (128, 192), Upstream),
    preset("bitnet_b1_58-large", 4096, 1536, (256, 96), Upstream),
    preset("bitnet_b1_58-3B", 3200, 8640, (160, 96), Upstream),
    preset("bitnet_b1_58-3B", 3200, 3200, (320, 96), Upstream),
    preset("bitnet_b1_58-3B", 8640, 3200, (320, 96), Upstream),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        14336,
        4096,
        (256, 96),
        Upstream,
    ),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        4096,
        14336,
        (128, 96),
        Upstream,
    ),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        1024,
        4096,
        (256, 96),
        Upstream,
    ),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        4096,
        4096,
        (128, 96),
        Upstream,
    ),
    // 2B4T: K = 2560 leaves a 64-column pair part with BK = 96; K = 6912 is all triples.
    preset("BitNet-b1.58-2B-4T", 2560, 2560, (320, 96), Ours),
    preset("BitNet-b1.58-2B-4T", 640, 2560, (160, 96), Ours),
    preset("BitNet-b1.58-2B-4T", 6912, 2560, (256, 96), Ours),
    preset("BitNet-b1.58-2B-4T", 2560, 6912, (160, 96), Ours),
];

/// ggml_nbytes' P for a rows x cols TL2 tensor (C int arithmetic), before rounding up to 32.
fn size_formula(rows: usize, cols: usize) -> i64 {
    let (m, k) = (rows as i64, cols as i64);
    // i64 `/` truncates toward zero as C's does; (k − 256) may be negative.
    (k - 256) * m / 3 * 5 / 8 + 256 * m / 2 * 4 / 8
}

/// Byte offset of the scale: P rounded up to a multiple of 32.
pub fn scale_offset(rows: usize, cols: usize) -> usize {
    let p = size_formula(rows, cols).max(0) as usize;
    p.div_ceil(32) * 32
}

/// Position of row-in-block rr (0..32) inside a 32-byte vector.
fn vec_pos(rr: usize) -> usize {
    GROUP_ORDER[rr / 8] * 8 + rr % 8
}

impl Tiling {
    pub const fn new(tile_m: usize, tile_k: usize, simd_m: usize) -> Self {
        Tiling {
            tile_m,
            tile_k,
            simd_m,
        }
    }

    /// by = 192 / bm: columns per 32-byte index vector (6 for bm = 32).
    pub fn by(&self) -> usize {
        192 / self.simd_m.max(1)
    }

    /// K3: the columns coded as triples.
    pub fn triple_cols(&self, cols: usize) -> usize {
        cols / self.tile_k.max(1) * self.tile_k
    }

    /// Check this tiling against a rows x cols tensor, naming the first constraint it breaks.
    pub fn validate(&self, rows: usize, cols: usize) -> Result<(), KernelError> {
        let fail = |reason: String| Err(shape_err(INFO.name, rows, cols, reason));
        let Tiling {
            tile_m,
            tile_k,
            simd_m,
        } = *self;
        check_dims(INFO.name, rows, cols)?;
        if simd_m != SIMD_M {
            return fail(format!("bm = {simd_m} must be 32 (by = 192/bm = 6)"));
        }
        if tile_m == 0 || tile_m % SIMD_M != 0 {
            return fail(format!(
                "BM = {tile_m} must be a positive multiple of bm = 32"
            ));
        }
        if tile_k == 0 || tile_k % 24 != 0 {
            return fail(format!(
                "BK = {tile_k} must be a positive multiple of 24 (8 triples per sign block)"
            ));
        }
        if tile_k > MAX_TILE_K {
            return fail(format!(
                "BK = {tile_k} exceeds {MAX_TILE_K}: the kernel's int16 tile sum could wrap"
            ));
        }
        if !rows.is_multiple_of(tile_m) {
            return fail(format!("rows must be a multiple of BM = {tile_m}"));
        }
        if cols < tile_k {
            return fail(format!("cols must be at least BK = {tile_k} (K3 = 0)"));
        }
        let k2 = cols - self.triple_cols(cols);
        if !k2.is_multiple_of(PAIR_TILE_K) {
            return fail(format!(
                "cols mod BK = {k2} (the pair part K2) must be a multiple of 32"
            ));
        }
        if self.data_bytes(rows, cols) as i64 > size_formula(rows, cols) {
            return fail(format!(
                "the pair part K2 = {k2} is too wide for ggml's TL2 size formula (K2 ≤ 256)"
            ));
        }
        Ok(())
    }

    /// The preset for this shape if there is one, else a derived valid tiling.
    pub fn for_shape(rows: usize, cols: usize) -> Result<Tiling, KernelError> {
        if let Some(p) = PRESETS.iter().find(|p| p.rows == rows && p.cols == cols) {
            return Ok(p.tiling);
        }
        check_dims(INFO.name, rows, cols)?;
        // BK = 96 first (upstream's usual choice), then the other multiples of 24.
        for tile_k in [96, 192, 48, 144, 240, 24, 72, 120, 168, 216] {
            for tile_m in (1..=256 / SIMD_M).rev().map(|n| n * SIMD_M) {
                let t = Tiling::new(tile_m, tile_k, SIMD_M);
                if t.validate(rows, cols).is_ok() {
                    return Ok(t);
                }
            }
        }
        Err(shape_err(
            INFO.name,
            rows,
            cols,
            "no tiling fits: rows must be a multiple of 32, and some BK (a multiple of 24, ≤ 240) \
             must leave cols mod BK a multiple of 32 no larger than 256"
                .into(),
        ))
    }

    /// Index, sign and pair bytes together (before padding).
    fn data_bytes(&self, rows: usize, cols: usize) -> usize {
        let k3 = self.triple_cols(cols);
        rows * k3 / 6 + rows * k3 / 24 + rows * (cols - k3) / 4
    }

    /// (row tile, 32-row block in it, row in the block) of row r.
    fn row_parts(&self, r: usize) -> (usize, usize, usize) {
        let in_tile = r % self.tile_m;
        (r / self.tile_m, in_tile / SIMD_M, in_tile % SIMD_M)
    }

    /// Byte offset of triple t (columns 3t..3t+3, t < K3/3) of row r, and whether it is the high nibble.
    fn triple_slot(&self, cols: usize, r: usize, t: usize) -> (usize, bool) {
        let (m_tile, blk, rr) = self.row_parts(r);
        let col = 3 * t;
        let (k_tile, tc) = (col / self.tile_k, (col % self.tile_k) / 3);
        let mut at = m_tile;
        at = at * (self.triple_cols(cols) / self.tile_k) + k_tile;
        at = at * (self.tile_m / SIMD_M) + blk;
        at = at * (self.tile_k / self.by()) + tc / 2;
        (at * 32 + vec_pos(rr), tc % 2 == 0)
    }

    /// Byte offset and bit (0 = LSB) of the sign of triple t of row r.
    fn sign_slot(&self, rows: usize, cols: usize, r: usize, t: usize) -> (usize, u32) {
        let (m_tile, blk, rr) = self.row_parts(r);
        let k3 = self.triple_cols(cols);
        let col = 3 * t;
        let (k_tile, tc) = (col / self.tile_k, (col % self.tile_k) / 3);
        let mut word = m_tile;
        word = word * (k3 / self.tile_k) + k_tile;
        word = word * (self.tile_m / SIMD_M) + blk;
        word = word * (self.tile_k / 24) + tc / 8;
        word = word * 16 + rr % 16;
        let bit = 15 - (2 * (tc % 8) + rr / 16) as u32;
        (rows * k3 / 6 + 2 * word + (bit / 8) as usize, bit % 8)
    }

    /// Byte offset of pair p (columns K3 + 2p, K3 + 2p + 1) of row r, and whether it is high.
    fn pair_slot(&self, rows: usize, cols: usize, r: usize, p: usize) -> (usize, bool) {
        let (m_tile, blk, rr) = self.row_parts(r);
        let k3 = self.triple_cols(cols);
        let col = 2 * p;
        let (k_tile, pc) = (col / PAIR_TILE_K, (col % PAIR_TILE_K) / 2);
        let mut at = m_tile;
        at = at * ((cols - k3) / PAIR_TILE_K) + k_tile;
        at = at * (self.tile_m / SIMD_M) + blk;
        at = at * (PAIR_TILE_K / 4) + pc / 2;
        let base = rows * k3 / 6 + rows * k3 / 24;
        (base + at * 32 + vec_pos(rr), pc % 2 == 0)
    }
}

/// v = 9w₀ + 3w₁ + w₂ of three codes (c = w + 1).
fn triple_value(c: &[u8]) -> i8 {
    c.iter().fold(0i8, |v, &c| 3 * v + c as i8 - 1)
}

/// The three codes of v ∈ −13..=13 (the base-3 digits of v + 13).
fn triple_codes(v: i8) -> [u8; 3] {
    let u = (v + 13) as u8;
    [u / 9, (u / 3) % 3, u % 3]
}

/// The table of one activation triple: e[idx] = w₀·a₀ + w₁·a₁ + w₂·a₂ for v = idx.
pub fn triple_table(a: [i8; 3]) -> [i16; 14] {
    let mut e = [0i16; 14];
    for (idx, v) in e.iter_mut().enumerate() {
        let c = triple_codes(idx as i8);
        *v = c
            .iter()
            .zip(a)
            .map(|(&c, a)| (i16::from(c) - 1) * i16::from(a))
            .sum();
    }
    e
}

/// A decoded TL2 tensor: signed triple values and pair indices, row-major.
struct Decoded {
    /// rows x K3/3 values v ∈ −13..=13.
    triples: Vec<i8>,
    /// rows x K2/2 pair indices 0..=8.
    pairs: Vec<u8>,
    /// Triples and pairs per row.
    per_row: (usize, usize),
    scale: f32,
}

impl Decoded {
    /// Row r's triples and pairs (r < rows; both vectors hold exactly rows · per_row entries).
    fn row(&self, r: usize) -> (&[i8], &[u8]) {
        let (n3, n2) = self.per_row;
        (
            &self.triples[r * n3..(r + 1) * n3],
            &self.pairs[r * n2..(r + 1) * n2],
        )
    }
}

/// The TL2 format; `tiling: None` picks [`Tiling::for_shape`] for each tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tl2 {
    pub tiling: Option<Tiling>,
}

impl Tl2 {
    /// The tiling used for a rows x cols tensor, validated.
    pub fn tiling_for(&self, rows: usize, cols: usize) -> Result<Tiling, KernelError> {
        let t = match self.tiling {
            Some(t) => t,
            None => Tiling::for_shape(rows, cols)?,
        };
        t.validate(rows, cols)?;
        Ok(t)
    }

    /// Lay out codes (c = w + 1, row-major) and the scale as TL2 bytes.
    fn encode(
        &self,
        codes: &[u8],
        scale: f32,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<u8>, KernelError> {
        let t = self.tiling_for(rows, cols)?;
        check_len(INFO.name, "codes", codes.len(), rows * cols)?;
        let k3 = t.triple_cols(cols);
        let at_scale = scale_offset(rows, cols);
        let mut out = vec![0u8; at_scale + TAIL_BYTES];
        for (r, row) in codes.chunks_exact(cols).enumerate() {
            let (tri, pairs) = row.split_at(k3);
            for (i, c) in tri.chunks_exact(3).enumerate() {
                let v = triple_value(c);
                let (at, high) = t.triple_slot(cols, r, i);
                put_nibble(&mut out[at], high, v.unsigned_abs());
                if v < 0 {
                    let (at, bit) = t.sign_slot(rows, cols, r, i);
                    out[at] |= 1 << bit;
                }
            }
            for (p, c) in pairs.chunks_exact(2).enumerate() {
                let (at, high) = t.pair_slot(rows, cols, r, p);
                put_nibble(&mut out[at], high, pair_index(c[0], c[1]));
            }
        }
        out[at_scale..at_scale + 4].copy_from_slice(&scale.to_le_bytes());
        Ok(out)
    }

    /// Read every triple and pair back, refusing indices the packer never writes.
    fn decode(&self, packed: &[u8], rows: usize, cols: usize) -> Result<Decoded, KernelError> {
        let t = self.tiling_for(rows, cols)?;
        let at_scale = scale_offset(rows, cols);
        check_len(
            INFO.name,
            "packed bytes",
            packed.len(),
            at_scale + TAIL_BYTES,
        )?;
        let k3 = t.triple_cols(cols);
        let bad = |what, offset, code| KernelError::BadCode {
            format: INFO.name,
            what,
            offset,
            code,
        };
        let mut triples = Vec::with_capacity(rows * k3 / 3);
        let mut pairs = Vec::with_capacity(rows * (cols - k3) / 2);
        for r in 0..rows {
            for i in 0..k3 / 3 {
                let (at, high) = t.triple_slot(cols, r, i);
                let idx = nibble(packed[at], high);
                if idx > 13 {
                    return Err(bad("triple index", at, idx));
                }
                let (s_at, bit) = t.sign_slot(rows, cols, r, i);
                let negative = (packed[s_at] >> bit) & 1 == 1;
                // A sign on index 0 means −0: the kernel adds 0, so it decodes as 0.
                let v = idx as i8;
                triples.push(if negative { -v } else { v });
            }
            for p in 0..(cols - k3) / 2 {
                let (at, high) = t.pair_slot(rows, cols, r, p);
                let idx = nibble(packed[at], high);
                if idx > 8 {
                    return Err(bad("pair index", at, idx));
                }
                pairs.push(idx);
            }
        }
        Ok(Decoded {
            triples,
            pairs,
            per_row: (k3 / 3, (cols - k3) / 2),
            scale: read_f32(packed, at_scale),
        })
    }

    /// The kernel's integer sum per row for one quantized token: Σ ±e[idx] over triples (the
    /// sign bit negates) plus Σ e[idx] over the pair part, with tables built once per token as
    /// `three_lut_ctor` / `two_lut_ctor` do.
    pub fn lut_sums(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
        act: &LutActRow,
    ) -> Result<Vec<i32>, KernelError> {
        let d = self.decode(packed, rows, cols)?;
        check_len(INFO.name, "activations", act.qs.len(), cols)?;
        let k3 = self.tiling_for(rows, cols)?.triple_cols(cols);
        let (qa, qb) = act.qs.split_at(k3);
        let t3: Vec<[i16; 14]> = qa
            .chunks_exact(3)
            .map(|a| triple_table([a[0], a[1], a[2]]))
            .collect();
        let t2: Vec<[i16; 9]> = qb.chunks_exact(2).map(|a| pair_table(a[0], a[1])).collect();
        Ok((0..rows)
            .map(|r| {
                let (tri, pairs) = d.row(r);
                let acc3: i32 = tri
                    .iter()
                    .zip(&t3)
                    .map(|(&v, e)| {
                        let looked_up = i32::from(e[usize::from(v.unsigned_abs())]);
                        if v < 0 {
                            -looked_up
                        } else {
                            looked_up
                        }
                    })
                    .sum();
                let acc2: i32 = pairs
                    .iter()
                    .zip(&t2)
                    .map(|(&i, e)| i32::from(e[usize::from(i)]))
                    .sum();
                acc3 + acc2
            })
            .collect())
    }
}

/// Repack an I2_S tensor (bitnet.cpp's file format) as TL2; `None` picks the tiling by shape.
pub fn from_i2_s(
    packed: &[u8],
    rows: usize,
    cols: usize,
    tiling: Option<Tiling>,
) -> Result<Vec<u8>, KernelError> {
    let f = Tl2 { tiling };
    f.tiling_for(rows, cols)?;
    let (codes, s) = codes_from_i2_s(INFO.name, packed, rows, cols)?;
    f.encode(&codes, s, rows, cols)
}

/// Repack a TQ2_0 tensor as TL2; all non-zero blocks must share one scale.
pub fn from_tq2_0(
    packed: &[u8],
    rows: usize,
    cols: usize,
    tiling: Option<Tiling>,
) -> Result<Vec<u8>, KernelError> {
    let f = Tl2 { tiling };
    f.tiling_for(rows, cols)?;
    let (codes, s) = codes_from_tq2_0(INFO.name, packed, rows, cols)?;
    f.encode(&codes, s, rows, cols)
}

impl WeightFormat for Tl2 {
    fn info(&self) -> &'static FormatInfo {
        &INFO
    }

    fn tensor_bytes(&self, rows: usize, cols: usize) -> Result<usize, KernelError> {
        self.tiling_for(rows, cols)?;
        Ok(scale_offset(rows, cols) + TAIL_BYTES)
    }

    fn pack(&self, weights: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>, KernelError> {
        self.tiling_for(rows, cols)?;
        check_len(INFO.name, "weights", weights.len(), rows * cols)?;
        let (codes, s) = codes_from_weights(INFO.name, weights)?;
        self.encode(&codes, s, rows, cols)
    }

    fn unpack(&self, packed: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, KernelError> {
        let d = self.decode(packed, rows, cols)?;
        let w = |c: u8| (f32::from(c) - 1.0) * d.scale;
        let mut out = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let (tri, pairs) = d.row(r);
            out.extend(tri.iter().flat_map(|&v| triple_codes(v)).map(w));
            out.extend(pairs.iter().flat_map(|&i| [i / 3, i % 3]).map(w));
        }
        Ok(out)
    }

    fn gemv_ref(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
    ) -> Result<Vec<f32>, KernelError> {
        let s = self.decode(packed, rows, cols)?.scale;
        check_len(INFO.name, "activations", x.len(), cols)?;
        let act = quantize_i8_lut(x)?;
        Ok(self
            .lut_sums(packed, rows, cols, &act)?
            .into_iter()
            .map(|acc| finish(acc, &act, s))
            .collect())
    }

    fn isas(&self) -> Vec<Isa> {
        std::iter::once(Isa::Scalar)
            .chain(SIMD_VARIANTS.iter().map(|&(isa, _)| isa))
            .collect()
    }

    fn kernel(
        &self,
        packed: Bytes,
        rows: usize,
        cols: usize,
        isa: Isa,
    ) -> Result<Box<dyn MatMul>, KernelError> {
        check_isa(self, isa)?;
        let scalar = (LutLayout::Native, tile_scalar as TileFn, build_act as ActFn);
        let fns = SIMD_VARIANTS
            .iter()
            .find(|&&(i, _)| i == isa)
            .map_or(scalar, |&(_, f)| f);
        Ok(Box::new(Tl2Kernel::new(
            self, packed, rows, cols, isa, fns,
        )?))
    }
}

/// Fast tile kernels with the table layout each reads and its builder, slowest first.
const SIMD_VARIANTS: &[(Isa, (LutLayout, TileFn, ActFn))] = &[
    #[cfg(target_arch = "x86_64")]
    (
        Isa::Avx2,
        (LutLayout::Native, x86::tile_avx2, x86::build_act_avx2),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        Isa::Avx512Vnni,
        (LutLayout::Wide, x86::tile_avx512, x86::build_act_avx2),
    ),
    #[cfg(target_arch = "aarch64")]
    (
        Isa::Neon,
        (LutLayout::Native, aarch64::tile_neon, build_act),
    ),
];
