//! Activation quantizers: what a weight format's dot product consumes on its other side.
//!
//! Block activations (ggml's `vec_dot_type`): [`q8_k`] for the TQ and K-quant formats, [`q8_0`]
//! for Q4_0/Q8_0, and plain [`F16Act`]/[`Bf16Act`] conversion for F16/BF16. Per-token int8 absmax
//! ([`i8_s`]) is bitnet.cpp's I8_S, used by I2_S; [`i8_lut`] is the TL1/TL2 kernels' variant of it
//! (no 1e-5 floor, no clamp, no row sum), the input of their lookup tables.

pub mod i8_lut;
pub mod i8_s;
pub mod q8_0;
pub mod q8_k;

use bytemuck::{Pod, Zeroable};
use half::{bf16, f16};

use crate::formats::{blocks_in_row, check_finite};
use crate::KernelError;

/// A block activation type: quantizes an f32 row into fixed-size blocks.
pub trait BlockActivation: Send + Sync + 'static {
    /// Upstream's name (`q8_K`, `q8_0`, `f16`, `bf16`).
    const NAME: &'static str;
    /// Values per block.
    const BLOCK: usize;
    type Block: Pod + Send + Sync;

    /// Quantize `dst.len()` blocks from `src` (`src.len() == dst.len() * BLOCK`).
    fn quantize_blocks(src: &[f32], dst: &mut [Self::Block]);

    /// The values the quantized blocks stand for (`dst.len() == src.len() * BLOCK`).
    fn dequantize_blocks(src: &[Self::Block], dst: &mut [f32]);

    /// The bytes upstream's quantizer writes for these blocks (what golden files hold): a type
    /// that carries values derived for a kernel beside upstream's block leaves them out.
    fn upstream_bytes(blocks: &[Self::Block]) -> Vec<u8> {
        bytemuck::cast_slice(blocks).to_vec()
    }
}

/// Quantize one activation row, checking its length and that every value is finite.
pub fn quantize_row<A: BlockActivation>(x: &[f32]) -> Result<Vec<A::Block>, KernelError> {
    let n = blocks_in_row(A::NAME, x.len(), A::BLOCK)?;
    check_finite(A::NAME, "activations", x)?;
    let mut dst = vec![A::Block::zeroed(); n];
    A::quantize_blocks(x, &mut dst);
    Ok(dst)
}

/// An IEEE half stored as its two little-endian bytes (alignment 1, so any byte slice casts).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct F16Bytes(pub [u8; 2]);

impl F16Bytes {
    pub fn from_f32(x: f32) -> Self {
        F16Bytes(f16::from_f32(x).to_le_bytes())
    }
    pub fn to_f32(self) -> f32 {
        f16::from_le_bytes(self.0).to_f32()
    }
}

/// A bfloat16 stored as its two little-endian bytes.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct Bf16Bytes(pub [u8; 2]);

impl Bf16Bytes {
    /// Round to nearest even, NaN kept quiet: ggml's `ggml_compute_fp32_to_bf16`.
    pub fn from_f32(x: f32) -> Self {
        Bf16Bytes(bf16::from_f32(x).to_le_bytes())
    }
    pub fn to_f32(self) -> f32 {
        bf16::from_le_bytes(self.0).to_f32()
    }
}

/// An f32 stored as its four little-endian bytes (alignment 1, so any byte slice casts).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct F32Bytes(pub [u8; 4]);

impl F32Bytes {
    pub fn to_f32(self) -> f32 {
        f32::from_le_bytes(self.0)
    }
}

/// F32 weights take the activations as they are.
pub struct F32Act;

impl BlockActivation for F32Act {
    const NAME: &'static str = "f32";
    const BLOCK: usize = 1;
    type Block = F32Bytes;

    fn quantize_blocks(src: &[f32], dst: &mut [F32Bytes]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = F32Bytes(s.to_le_bytes());
        }
    }

    fn dequantize_blocks(src: &[F32Bytes], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
}

/// F16 weights take F16 activations (ggml converts the f32 row with round-to-nearest-even).
pub struct F16Act;

impl BlockActivation for F16Act {
    const NAME: &'static str = "f16";
    const BLOCK: usize = 1;
    type Block = F16Bytes;

    fn quantize_blocks(src: &[f32], dst: &mut [F16Bytes]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = F16Bytes::from_f32(s);
        }
    }

    fn dequantize_blocks(src: &[F16Bytes], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
}

/// BF16 weights take BF16 activations.
pub struct Bf16Act;

impl BlockActivation for Bf16Act {
    const NAME: &'static str = "bf16";
    const BLOCK: usize = 1;
    type Block = Bf16Bytes;

    fn quantize_blocks(src: &[f32], dst: &mut [Bf16Bytes]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = Bf16Bytes::from_f32(s);
        }
    }

    fn dequantize_blocks(src: &[Bf16Bytes], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
}

/// ggml's `nearest_int`: round half to even by adding 1.5·2^23 in f32, exact for |x| ≤ 2^22
/// (every caller passes values of magnitude ≤ 128). Cheaper than `round_ties_even`, which on
/// baseline x86-64 (no SSE4.1 `roundps`) is a libm call per element.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    debug_assert!(
        x.abs() <= 4_194_303.0,
        "nearest_int({x}) outside the exact range"
    );
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

#[cfg(test)]
mod tests {
    use super::nearest_int;

    #[test]
    fn nearest_int_rounds_half_to_even_like_round_ties_even() {
        for i in -300_000..300_000 {
            let x = i as f32 / 1024.0;
            assert_eq!(nearest_int(x), x.round_ties_even() as i32, "{x}");
        }
        assert_eq!(
            (nearest_int(0.5), nearest_int(1.5), nearest_int(-2.5)),
            (0, 2, -2)
        );
    }
}
