//! TL1 (bitnet.cpp type 38): ternary weights as 4-bit indices of weight pairs, 2 bits per weight,
//! laid out in the tiles of bitnet.cpp's generated NEON lookup-table kernel.
//!
//! **Index.** Columns are taken in pairs (w₀, w₁) = (w[2p], w[2p+1]) and stored as
//! idx = 3·w₀ + w₁ + 4 ∈ 0..=8 (= 3·c₀ + c₁ with codes c = w + 1). Two indices per byte: the
//! first pair of each 2-pair group in the high nibble.
//!
//! **Lookup table.** Per activation pair (a₀, a₁) the kernel builds e[idx] = (idx div 3 − 1)·a₀ +
//! (idx mod 3 − 1)·a₁ (nine int16 entries, split into low/high byte planes for `vqtbl1q_s8`), so
//! Σ over pairs of e[idx] is Σ w·q exactly. Activations: [`crate::activations::i8_lut`].
//! Output: y = (f32)acc / γ · s.
//!
//! **Layout** (upstream `process_tl1`, for tiling BM, BK, bm and by = 256/bm): the bytes run
//! [rows/BM][cols/BK][BM/bm][BK/by][bm/16][by/4][16 rows][byte], i.e. one BM-row thread tile at a
//! time, inside it one BK-column tile at a time, 16 consecutive rows per 16-byte vector. The
//! rows·cols/4 data bytes are followed by a 32-byte tail holding the f32 scale s (little-endian)
//! at offset rows·cols/4, rest zero; tensor bytes = rows·cols/4 + 32. The layout depends on the
//! tiling, which the file does not record: a reader must know the tiling the writer used.
//!
//! **Tiling constraints** ([`Tiling::validate`]): bm ∈ {32, 64} (codegen_tl1 asserts it);
//! BM % bm = 0; BK % by = 0; rows % BM = 0; cols % BK = 0; cols % 16 = 0 (the table builder
//! steps 16 columns at a time); and, ours, BK ≤ 256 so that the kernel's int16 per-tile
//! accumulator (BK/2 entries of at most 254) can never wrap and the integer sum is exact.
//!
//! **Presets** ([`PRESETS`]): upstream's (`setup_env.py` / `kernel_config_tl1.ini`) for
//! bitnet_b1_58-large (1536×4096, 1536×1536, 4096×1536), bitnet_b1_58-3B (3200×8640, 3200×3200,
//! 8640×3200) and Llama3-8B-1.58-100B-tokens (14336×4096, 4096×14336, 1024×4096, 4096×4096);
//! and ours for BitNet b1.58 2B4T (2560×2560, 640×2560, 6912×2560, 2560×6912), which upstream
//! lacks (its setup reuses the 3B shape list for 2B4T, so its converter refuses 2B4T tensors).
//! Shapes are rows × cols (ggml ne1 × ne0). [`Tiling::for_shape`] takes a preset when the shape
//! has one and otherwise derives a valid tiling.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod kernel;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

pub(crate) use kernel::{entries, AlignedBytes};

use bytes::Bytes;

use self::kernel::{build_act, tile_scalar, ActFn, TileFn, Tl1Kernel};
use super::i2_s::{self, ternary_code, ternary_scale};
use super::tq2_0::Tq2_0;
use super::{as_blocks, check_len, FormatInfo, Origin, WeightFormat};
use crate::activations::i8_lut::{finish, quantize_i8_lut, LutActRow};
use crate::activations::q8_k::QK_K;
use crate::cpu::Isa;
use crate::matmul::{check_isa, MatMul};
use crate::KernelError;

pub const INFO: FormatInfo = FormatInfo {
    name: "tl1",
    block_size: 4,
    block_bytes: 1,
    bits_per_weight: FormatInfo::bits(4, 1),
    activation: "i8_lut",
    origin: Origin::BitnetCpp,
    ternary: true,
};

/// Bytes of the per-tensor tail that holds the scale.
pub const TAIL_BYTES: usize = 32;
/// Largest BK whose int16 tile sum cannot wrap: BK/2 entries of magnitude ≤ 254.
pub const MAX_TILE_K: usize = 256;

/// The codegen parameters that fix TL1's byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// BM: rows per thread tile.
    pub tile_m: usize,
    /// BK: columns per inner tile (one int16 accumulation).
    pub tile_k: usize,
    /// bm: rows per SIMD block (32 or 64).
    pub simd_m: usize,
}

/// Whose choice a preset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetOrigin {
    /// bitnet.cpp's `setup_env.py` / pretuned `kernel_config` files.
    Upstream,
    /// Chosen here for shapes upstream has no kernel for.
    Ours,
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
    (tile_m, tile_k, simd_m): (usize, usize, usize),
    origin: PresetOrigin,
) -> Preset {
    Preset {
        model,
        rows,
        cols,
        tiling: Tiling::new(tile_m, tile_k, simd_m),
        origin,
    }
}

use PresetOrigin::{Ours, Upstream};

/// Known shapes and their tilings; see the module doc for which are upstream's.
pub const PRESETS: &[Preset] = &[
    preset("bitnet_b1_58-large", 1536, 4096, (256, 128, 32), Upstream),
    preset("bitnet_b1_58-large", 1536, 1536, (128, 64, 64), Upstream),
    preset("bitnet_b1_58-large", 4096, 1536, (256, 128, 32), Upstream),
    preset("bitnet_b1_58-3B", 3200, 8640, (160, 64, 32), Upstream),
    preset("bitnet_b1_58-3B", 3200, 3200, (320, 128, 64), Upstream),
    preset("bitnet_b1_58-3B", 8640, 3200, (320, 64, 32), Upstream),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        14336,
        4096,
        (256, 128, 32),
        Upstream,
    ),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        4096,
        14336,
        (128, 64, 64),
        Upstream,
    ),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        1024,
        4096,
        (256, 128, 32),
        Upstream,
    ),
    preset(
        "Llama3-8B-1.58-100B-tokens",
        4096,
        4096,
        (128, 64, 64),
        Upstream,
    ),
    // 2B4T: attn_q/attn_output, attn_k/attn_v, ffn_gate/ffn_up, ffn_down; modelled on the 3B set.
    preset("BitNet-b1.58-2B-4T", 2560, 2560, (320, 128, 64), Ours),
    preset("BitNet-b1.58-2B-4T", 640, 2560, (128, 128, 64), Ours),
    preset("BitNet-b1.58-2B-4T", 6912, 2560, (256, 128, 32), Ours),
    preset("BitNet-b1.58-2B-4T", 2560, 6912, (160, 64, 32), Ours),
];

pub(crate) fn shape_err(
    format: &'static str,
    rows: usize,
    cols: usize,
    reason: String,
) -> KernelError {
    KernelError::Shape {
        format,
        rows,
        cols,
        reason,
    }
}

/// rows·cols, refusing empty and absurdly large tensors before any size arithmetic.
pub(crate) fn check_dims(
    format: &'static str,
    rows: usize,
    cols: usize,
) -> Result<usize, KernelError> {
    if rows == 0 || cols == 0 {
        return Err(shape_err(
            format,
            rows,
            cols,
            "rows and cols must be non-zero".into(),
        ));
    }
    match rows.checked_mul(cols) {
        // Bounded so that every byte offset and C-style i64 size formula stays in range.
        Some(n) if n <= (i64::MAX as usize) / 16 => Ok(n),
        _ => Err(shape_err(
            format,
            rows,
            cols,
            "rows·cols is too large".into(),
        )),
    }
}

impl Tiling {
    pub const fn new(tile_m: usize, tile_k: usize, simd_m: usize) -> Self {
        Tiling {
            tile_m,
            tile_k,
            simd_m,
        }
    }

    /// by = 256 / bm: columns per SIMD step (8 for bm = 32, 4 for bm = 64).
    pub fn by(&self) -> usize {
        256 / self.simd_m.max(1)
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
        if simd_m != 32 && simd_m != 64 {
            return fail(format!("bm = {simd_m} must be 32 or 64"));
        }
        if tile_m == 0 || tile_m % simd_m != 0 {
            return fail(format!(
                "BM = {tile_m} must be a positive multiple of bm = {simd_m}"
            ));
        }
        let by = self.by();
        if tile_k == 0 || tile_k % by != 0 {
            return fail(format!(
                "BK = {tile_k} must be a positive multiple of by = 256/bm = {by}"
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
        if !cols.is_multiple_of(tile_k) {
            return fail(format!("cols must be a multiple of BK = {tile_k}"));
        }
        if !cols.is_multiple_of(16) {
            return fail("cols must be a multiple of 16 (the table builder's step)".into());
        }
        Ok(())
    }

    /// The preset for this shape if there is one, else a derived valid tiling.
    pub fn for_shape(rows: usize, cols: usize) -> Result<Tiling, KernelError> {
        if let Some(p) = PRESETS.iter().find(|p| p.rows == rows && p.cols == cols) {
            return Ok(p.tiling);
        }
        check_dims(INFO.name, rows, cols)?;
        // bm = 32 first (upstream's usual choice); BK as in the presets, then smaller.
        for simd_m in [32, 64] {
            for tile_k in [128, 64, 256, 192, 32, 16, 8, 4] {
                for tile_m in (1..=256 / simd_m).rev().map(|n| n * simd_m) {
                    let t = Tiling::new(tile_m, tile_k, simd_m);
                    if t.validate(rows, cols).is_ok() {
                        return Ok(t);
                    }
                }
            }
        }
        Err(shape_err(
            INFO.name,
            rows,
            cols,
            "no tiling fits: rows must be a multiple of 32 and cols a multiple of 16".into(),
        ))
    }

    /// Byte offset of the pair p (columns 2p, 2p+1) of row r, and whether it is the high nibble.
    fn pair_slot(&self, cols: usize, r: usize, p: usize) -> (usize, bool) {
        let by = self.by();
        let (m_tile, in_tile) = (r / self.tile_m, r % self.tile_m);
        let (simd_blk, in_simd) = (in_tile / self.simd_m, in_tile % self.simd_m);
        let (row16_blk, row16) = (in_simd / 16, in_simd % 16);
        let col = 2 * p;
        let (k_tile, in_k) = (col / self.tile_k, col % self.tile_k);
        let (by_blk, pair_in_by) = (in_k / by, (in_k % by) / 2);
        let (byte_grp, second) = (pair_in_by / 2, pair_in_by % 2);
        let mut at = m_tile;
        at = at * (cols / self.tile_k) + k_tile;
        at = at * (self.tile_m / self.simd_m) + simd_blk;
        at = at * (self.tile_k / by) + by_blk;
        at = at * (self.simd_m / 16) + row16_blk;
        at = at * (by / 4) + byte_grp;
        at = at * 16 + row16;
        (at, second == 0)
    }
}

/// Nibble `high` or low of a byte.
pub(crate) fn nibble(byte: u8, high: bool) -> u8 {
    if high {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

pub(crate) fn put_nibble(byte: &mut u8, high: bool, v: u8) {
    *byte |= if high { v << 4 } else { v & 0x0f };
}

/// The pair index 3·c₀ + c₁ of two codes (c = w + 1); equals upstream's 3·w₀ + w₁ + 4.
pub(crate) fn pair_index(c0: u8, c1: u8) -> u8 {
    3 * c0 + c1
}

/// The nine-entry table of one activation pair: e[idx] = (idx div 3 − 1)·a₀ + (idx mod 3 − 1)·a₁.
pub fn pair_table(a0: i8, a1: i8) -> [i16; 9] {
    let mut e = [0i16; 9];
    for (idx, v) in e.iter_mut().enumerate() {
        let (w0, w1) = (idx as i16 / 3 - 1, idx as i16 % 3 - 1);
        *v = w0 * i16::from(a0) + w1 * i16::from(a1);
    }
    e
}

/// Codes c = w + 1 and scale of ternary f32 weights (bitnet.cpp's s = max|w| and sign test).
pub(crate) fn codes_from_weights(
    format: &'static str,
    weights: &[f32],
) -> Result<(Vec<u8>, f32), KernelError> {
    let s = ternary_scale(format, weights)?;
    Ok((weights.iter().map(|&w| ternary_code(w)).collect(), s))
}

/// Codes and scale of an I2_S tensor, refusing code 3 (never written by bitnet.cpp).
pub(crate) fn codes_from_i2_s(
    format: &'static str,
    packed: &[u8],
    rows: usize,
    cols: usize,
) -> Result<(Vec<u8>, f32), KernelError> {
    let s = i2_s::scale(packed, rows, cols)?;
    let mut codes = Vec::with_capacity(rows * cols);
    for i in 0..rows * cols {
        let c = i2_s::code(packed, i);
        if c > 2 {
            let (block, j) = (i / i2_s::QK_I2_S, i % i2_s::QK_I2_S);
            return Err(KernelError::BadCode {
                format,
                what: "i2_s code",
                offset: block * 32 + j % 32,
                code: c,
            });
        }
        codes.push(c);
    }
    Ok((codes, s))
}

/// Codes and the single scale of a TQ2_0 tensor; every block with a non-zero weight must carry
/// the same |d| (a negative d flips the codes, as dequantizing then repacking would).
pub(crate) fn codes_from_tq2_0(
    format: &'static str,
    packed: &[u8],
    rows: usize,
    cols: usize,
) -> Result<(Vec<u8>, f32), KernelError> {
    let per_row = super::blocks_in_row("tq2_0", cols, QK_K)?;
    let blocks = as_blocks::<Tq2_0>(packed, rows * per_row)?;
    let mut codes = Vec::with_capacity(rows * cols);
    let mut scale: Option<f32> = None;
    for (b, blk) in blocks.iter().enumerate() {
        let d = blk.d.to_f32();
        if !d.is_finite() {
            return Err(KernelError::NonFinite {
                format,
                what: "tq2_0 block scales",
                index: b,
                value: d,
            });
        }
        let mut block_codes = [1u8; QK_K];
        for (i, c) in block_codes.iter_mut().enumerate() {
            let w = blk.weight(i);
            if w > 1 {
                return Err(KernelError::BadCode {
                    format,
                    what: "tq2_0 code",
                    offset: b * 66 + 32 * (i / 128) + i % 32,
                    code: 3,
                });
            }
            // A zero or negative d changes what the code means; fold it into the code.
            let w = if d == 0.0 {
                0
            } else if d < 0.0 {
                -w
            } else {
                w
            };
            *c = (w + 1) as u8;
        }
        if block_codes.iter().any(|&c| c != 1) {
            match scale {
                None => scale = Some(d.abs()),
                Some(s) if s == d.abs() => {}
                Some(s) => {
                    return Err(KernelError::ScaleMismatch {
                        format,
                        block: b,
                        scale: d.abs(),
                        expected: s,
                    })
                }
            }
        }
        codes.extend_from_slice(&block_codes);
    }
    Ok((codes, scale.unwrap_or(0.0)))
}

/// Little-endian f32 at `at`, with the buffer length already checked.
pub(crate) fn read_f32(packed: &[u8], at: usize) -> f32 {
    let mut b = [0u8; 4];
    if let Some(src) = packed.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    f32::from_le_bytes(b)
}

/// The TL1 format; `tiling: None` picks [`Tiling::for_shape`] for each tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tl1 {
    pub tiling: Option<Tiling>,
}

impl Tl1 {
    /// The tiling used for a rows x cols tensor, validated.
    pub fn tiling_for(&self, rows: usize, cols: usize) -> Result<Tiling, KernelError> {
        let t = match self.tiling {
            Some(t) => t,
            None => Tiling::for_shape(rows, cols)?,
        };
        t.validate(rows, cols)?;
        Ok(t)
    }

    /// Lay out codes (c = w + 1, row-major) and the scale as TL1 bytes.
    fn encode(
        &self,
        codes: &[u8],
        scale: f32,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<u8>, KernelError> {
        let t = self.tiling_for(rows, cols)?;
        check_len(INFO.name, "codes", codes.len(), rows * cols)?;
        let data = rows * cols / 4;
        let mut out = vec![0u8; data + TAIL_BYTES];
        for (r, row) in codes.chunks_exact(cols).enumerate() {
            for (p, pair) in row.chunks_exact(2).enumerate() {
                let (at, high) = t.pair_slot(cols, r, p);
                put_nibble(&mut out[at], high, pair_index(pair[0], pair[1]));
            }
        }
        out[data..data + 4].copy_from_slice(&scale.to_le_bytes());
        Ok(out)
    }

    /// Pair indices, row-major (rows x cols/2), refusing indices above 8; and the scale.
    fn decode(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<(Vec<u8>, f32), KernelError> {
        let t = self.tiling_for(rows, cols)?;
        let data = rows * cols / 4;
        check_len(INFO.name, "packed bytes", packed.len(), data + TAIL_BYTES)?;
        let mut idx = Vec::with_capacity(rows * cols / 2);
        for r in 0..rows {
            for p in 0..cols / 2 {
                let (at, high) = t.pair_slot(cols, r, p);
                let v = nibble(packed[at], high);
                if v > 8 {
                    return Err(KernelError::BadCode {
                        format: INFO.name,
                        what: "pair index",
                        offset: at,
                        code: v,
                    });
                }
                idx.push(v);
            }
        }
        Ok((idx, read_f32(packed, data)))
    }

    /// The kernel's integer sum per row for one quantized token: Σ over pairs of e[idx], where
    /// each pair's table is built once from the token, as the kernel's `lut_ctor` does.
    pub fn lut_sums(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
        act: &LutActRow,
    ) -> Result<Vec<i32>, KernelError> {
        let (idx, _) = self.decode(packed, rows, cols)?;
        check_len(INFO.name, "activations", act.qs.len(), cols)?;
        let tables: Vec<[i16; 9]> = act
            .qs
            .chunks_exact(2)
            .map(|a| pair_table(a[0], a[1]))
            .collect();
        Ok(idx
            .chunks_exact(cols / 2)
            .map(|row| {
                row.iter()
                    .zip(&tables)
                    .map(|(&i, e)| i32::from(e[usize::from(i)]))
                    .sum()
            })
            .collect())
    }
}

/// Repack an I2_S tensor (bitnet.cpp's file format) as TL1; `None` picks the tiling by shape.
pub fn from_i2_s(
    packed: &[u8],
    rows: usize,
    cols: usize,
    tiling: Option<Tiling>,
) -> Result<Vec<u8>, KernelError> {
    let f = Tl1 { tiling };
    f.tiling_for(rows, cols)?;
    let (codes, s) = codes_from_i2_s(INFO.name, packed, rows, cols)?;
    f.encode(&codes, s, rows, cols)
}

/// Repack a TQ2_0 tensor as TL1; all non-zero blocks must share one scale.
pub fn from_tq2_0(
    packed: &[u8],
    rows: usize,
    cols: usize,
    tiling: Option<Tiling>,
) -> Result<Vec<u8>, KernelError> {
    let f = Tl1 { tiling };
    f.tiling_for(rows, cols)?;
    let (codes, s) = codes_from_tq2_0(INFO.name, packed, rows, cols)?;
    f.encode(&codes, s, rows, cols)
}

impl WeightFormat for Tl1 {
    fn info(&self) -> &'static FormatInfo {
        &INFO
    }

    fn tensor_bytes(&self, rows: usize, cols: usize) -> Result<usize, KernelError> {
        self.tiling_for(rows, cols)?;
        Ok(rows * cols / 4 + TAIL_BYTES)
    }

    fn pack(&self, weights: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>, KernelError> {
        self.tiling_for(rows, cols)?;
        check_len(INFO.name, "weights", weights.len(), rows * cols)?;
        let (codes, s) = codes_from_weights(INFO.name, weights)?;
        self.encode(&codes, s, rows, cols)
    }

    fn unpack(&self, packed: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, KernelError> {
        let (idx, s) = self.decode(packed, rows, cols)?;
        Ok(idx
            .iter()
            .flat_map(|&i| [i / 3, i % 3])
            .map(|c| (f32::from(c) - 1.0) * s)
            .collect())
    }

    fn gemv_ref(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
    ) -> Result<Vec<f32>, KernelError> {
        let s = self.decode(packed, rows, cols)?.1;
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
        let fns = SIMD_VARIANTS
            .iter()
            .find(|&&(i, _)| i == isa)
            .map_or((tile_scalar as TileFn, build_act as ActFn), |&(_, f)| f);
        Ok(Box::new(Tl1Kernel::new(
            self, packed, rows, cols, isa, fns,
        )?))
    }
}

/// Fast tile kernels and their activation/table builders, slowest first.
const SIMD_VARIANTS: &[(Isa, (TileFn, ActFn))] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, (x86::tile_avx2, x86::build_act_avx2)),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, (x86::tile_avx512, x86::build_act_avx2)),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, (aarch64::tile_neon, build_act)),
];
