//! Q8_K (ggml): 256 int8 values per block with an f32 scale and sixteen 16-value sums.
//!
//! The pairing activation of TQ1_0, TQ2_0, Q4_K and Q6_K. Scale finds the element of largest
//! magnitude keeping its sign (mx) and maps it to -127: d is negative when mx > 0. The bsums let
//! offset-coded formats (TQ stores w+1) subtract Σq per 16 values without another pass.

use bytemuck::{Pod, Zeroable};

use super::{nearest_int, BlockActivation};

pub const QK_K: usize = 256;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// f32 scale, little-endian.
    pub d: [u8; 4],
    pub qs: [i8; QK_K],
    /// Sums of each 16 consecutive `qs`, i16 little-endian.
    pub bsums: [[u8; 2]; QK_K / 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

impl BlockQ8K {
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    pub fn bsum(&self, i: usize) -> i16 {
        i16::from_le_bytes(self.bsums[i])
    }
}

pub struct Q8K;

impl BlockActivation for Q8K {
    const NAME: &'static str = "q8_K";
    const BLOCK: usize = QK_K;
    type Block = BlockQ8K;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ8K]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            quantize_block(x, y);
        }
    }

    fn dequantize_blocks(src: &[BlockQ8K], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            for (out, &q) in y.iter_mut().zip(&x.qs) {
                *out = f32::from(q) * x.d();
            }
        }
    }
}

fn quantize_block(x: &[f32], y: &mut BlockQ8K) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        *y = BlockQ8K::zeroed();
        return;
    }
    let iscale = -127.0 / max;
    for (q, &v) in y.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, chunk) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
        let sum: i32 = chunk.iter().map(|&q| i32::from(q)).sum();
        *s = (sum as i16).to_le_bytes();
    }
    y.d = (1.0 / iscale).to_le_bytes();
}
