//! I2_S (bitnet.cpp type 36): 2-bit ternary codes with one f32 scale per tensor.
//!
//! Layout (bitnet.cpp `quantize_i2_s`, x86 "MAD" kernel): the tensor, flattened row-major, is cut
//! into 128-weight blocks of 32 bytes; byte j of a block holds weights j, j+32, j+64, j+96 in bits
//! 7:6, 5:4, 3:2, 1:0 (MSB first, stride 32) as the code c = w + 1. After the rows·cols/4 code
//! bytes comes a 32-byte tail whose first 4 bytes are the f32 scale s (little-endian); upstream leaves
//! the other 28 uninitialised, we write zeros.
//! Activations: per-token int8 ([`crate::activations::i8_s`]); y = (Σc·q − Σq) / γ · s.
//!
//! Upstream's quantizer takes s = max|w| and keeps only the sign of each weight, so it silently
//! flattens non-ternary input. We refuse such input instead ([`KernelError::NotTernary`]):
//! a tensor must be {0, ±s} already (ternarize with absmean first, as the BitNet converter does).

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod x86;

use bytes::Bytes;

use super::{check_finite, check_len, FormatInfo, Origin, WeightFormat};
use crate::activations::i8_s::{quantize_i8_s, I8sRow};
use crate::cpu::Isa;
use crate::matmul::{check_isa, Kernel, MatMul};
use crate::KernelError;

pub const QK_I2_S: usize = 128;
/// Bytes of the per-tensor tail that holds the scale.
pub const TAIL_BYTES: usize = 32;

pub const INFO: FormatInfo = FormatInfo {
    name: "i2_s",
    block_size: QK_I2_S,
    block_bytes: 32,
    bits_per_weight: FormatInfo::bits(QK_I2_S, 32),
    activation: "i8_s",
    origin: Origin::BitnetCpp,
    ternary: true,
};

/// Below this magnitude a weight is zero (bitnet.cpp's own threshold, compared in f64).
pub const ZERO_EPS: f64 = 1e-6;
/// A non-zero weight must be within this relative distance of ±s (f16 storage rounds a little).
pub const TERNARY_REL_TOL: f32 = 1e-3;

/// The tensor's scale s = max|w|, after checking that every weight is 0 or ±s.
pub fn ternary_scale(format: &'static str, weights: &[f32]) -> Result<f32, KernelError> {
    check_finite(format, "weights", weights)?;
    let scale = weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    for (index, &w) in weights.iter().enumerate() {
        if f64::from(w.abs()) >= ZERO_EPS && (w.abs() - scale).abs() > scale * TERNARY_REL_TOL {
            return Err(KernelError::NotTernary {
                format,
                index,
                value: w,
                scale,
            });
        }
    }
    Ok(scale)
}

/// The code c = w + 1 of a ternary weight (bitnet.cpp's sign test).
pub fn ternary_code(w: f32) -> u8 {
    if f64::from(w.abs()) < ZERO_EPS {
        1
    } else if w > 0.0 {
        2
    } else {
        0
    }
}

/// Pack a ternary row of codes (c = w + 1) into I2_S blocks.
pub fn pack_codes(codes: &[u8], dst: &mut [u8]) {
    for (block, out) in codes.chunks_exact(QK_I2_S).zip(dst.chunks_exact_mut(32)) {
        for (j, byte) in out.iter_mut().enumerate() {
            *byte = (block[j] << 6) | (block[j + 32] << 4) | (block[j + 64] << 2) | block[j + 96];
        }
    }
}

/// Code (0, 1, 2) of weight i of a packed row.
pub fn code(row: &[u8], i: usize) -> u8 {
    let (block, j) = (i / QK_I2_S, i % QK_I2_S);
    (row[block * 32 + j % 32] >> (6 - 2 * (j / 32))) & 3
}

/// The scale stored in the tail of a packed tensor.
pub fn scale(packed: &[u8], rows: usize, cols: usize) -> Result<f32, KernelError> {
    let tensor = I2S.tensor_bytes(rows, cols)?;
    check_len(INFO.name, "packed bytes", packed.len(), tensor)?;
    let at = rows * cols / 4;
    let mut s = [0u8; 4];
    s.copy_from_slice(&packed[at..at + 4]);
    Ok(f32::from_le_bytes(s))
}

/// The integer dot Σ c·q of one packed row with a quantized activation row.
pub fn dot_i2_s_i8_s(row: &[u8], act: &I8sRow) -> i32 {
    act.qs
        .iter()
        .enumerate()
        .map(|(i, &q)| i32::from(code(row, i)) * i32::from(q))
        .sum()
}

/// Turn the integer dot into the output value, in the fork's order: (raw − Σq) / γ · s.
pub fn finish(raw: i32, act: &I8sRow, scale: f32) -> f32 {
    (raw as f32 - act.sum as f32) / act.scale * scale
}

/// The I2_S tensor format.
pub struct I2S;

impl WeightFormat for I2S {
    fn info(&self) -> &'static FormatInfo {
        &INFO
    }

    fn tensor_bytes(&self, rows: usize, cols: usize) -> Result<usize, KernelError> {
        super::blocks_in_row(INFO.name, cols, QK_I2_S)?;
        Ok(rows * cols / 4 + TAIL_BYTES)
    }

    fn pack(&self, weights: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>, KernelError> {
        let bytes = self.tensor_bytes(rows, cols)?;
        check_len(INFO.name, "weights", weights.len(), rows * cols)?;
        let s = ternary_scale(INFO.name, weights)?;
        let codes: Vec<u8> = weights.iter().map(|&w| ternary_code(w)).collect();
        let mut out = vec![0u8; bytes];
        let data = rows * cols / 4;
        pack_codes(&codes, &mut out[..data]);
        out[data..data + 4].copy_from_slice(&s.to_le_bytes());
        Ok(out)
    }

    fn unpack(&self, packed: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, KernelError> {
        let s = scale(packed, rows, cols)?;
        Ok((0..rows * cols)
            .map(|i| (f32::from(code(packed, i)) - 1.0) * s)
            .collect())
    }

    fn gemv_ref(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
    ) -> Result<Vec<f32>, KernelError> {
        let s = scale(packed, rows, cols)?;
        check_len(INFO.name, "activations", x.len(), cols)?;
        let act = quantize_i8_s(x)?;
        let row_bytes = cols / 4;
        Ok((0..rows)
            .map(|r| {
                let row = &packed[r * row_bytes..(r + 1) * row_bytes];
                finish(dot_i2_s_i8_s(row, &act), &act, s)
            })
            .collect())
    }

    fn isas(&self) -> Vec<Isa> {
        std::iter::once(Isa::Scalar)
            .chain(SIMD_VARIANTS.iter().map(|&(isa, _)| isa))
            .chain(cfg!(target_arch = "x86_64").then_some(Isa::Amx))
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
        // AMX wraps the AVX-512 VNNI row kernel, which takes products of fewer than 16 tokens.
        let row_isa = if isa == Isa::Amx {
            Isa::Avx512Vnni
        } else {
            isa
        };
        let scale = scale(&packed, rows, cols)?;
        let dot = SIMD_VARIANTS
            .iter()
            .find(|&&(i, _)| i == row_isa)
            .map_or(scalar_row as I2sRowDot, |&(_, f)| f);
        let kernel = I2sKernel {
            codes: packed.slice(..rows * cols / 4),
            rows,
            cols,
            scale,
            isa: row_isa,
            dot,
        };
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Amx {
            return Ok(amx::wrap(kernel));
        }
        Ok(Box::new(kernel))
    }
}

/// An I2_S row kernel: one packed row against every token, finished to f32 with the tensor scale.
pub type I2sRowDot = fn(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]);

fn scalar_row(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    for (o, act) in out.iter_mut().zip(acts) {
        *o = finish(dot_i2_s_i8_s(row, act), act, scale);
    }
}

/// Fast row kernels, slowest first.
const SIMD_VARIANTS: &[(Isa, I2sRowDot)] = &[
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx2, x86::dot_i2_s_i8_s_avx2),
    #[cfg(target_arch = "x86_64")]
    (Isa::AvxVnni, x86::dot_i2_s_i8_s_avxvnni),
    #[cfg(target_arch = "x86_64")]
    (Isa::Avx512Vnni, x86::dot_i2_s_i8_s_avx512),
    #[cfg(target_arch = "aarch64")]
    (Isa::Neon, aarch64::dot_i2_s_i8_s_neon),
    #[cfg(target_arch = "aarch64")]
    (Isa::Dotprod, aarch64::dot_i2_s_i8_s_dotprod),
];

/// I2_S weights prepared for one row kernel.
pub struct I2sKernel {
    /// The 2-bit codes, read in place.
    codes: Bytes,
    rows: usize,
    cols: usize,
    scale: f32,
    isa: Isa,
    dot: I2sRowDot,
}

impl Kernel for I2sKernel {
    type Act = I8sRow;

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

    fn quantize(&self, x: &[f32]) -> Result<I8sRow, KernelError> {
        quantize_i8_s(x)
    }

    fn compute(&self, row: usize, acts: &[I8sRow], out: &mut [f32]) {
        let n = self.cols / 4;
        if let Some(codes) = self.codes.get(row * n..(row + 1) * n) {
            (self.dot)(codes, acts, self.scale, out);
        }
    }
}
