//! Q8_0 (ggml type 8): 32 int8 values with an f16 scale, 8.5 bits per value.
//!
//! Two quantizers exist upstream and they differ in the last bit: the reference used to write
//! weights (`quantize_row_q8_0_ref`: id = 1/d, round half away from zero) and the x86 SIMD one
//! that quantizes activations at run time (id = 127/amax, round half to even). [`quantize_weights`]
//! is the first, the [`Q8_0`] activation type the second: each matches what ggml writes there.

use bytemuck::{Pod, Zeroable};

use super::{nearest_int, BlockActivation, F16Bytes};

pub const QK8_0: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: F16Bytes,
    pub qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// ggml's weight quantizer (`quantize_row_q8_0_ref`).
pub fn quantize_weights(src: &[f32], dst: &mut [BlockQ8_0]) {
    for (x, y) in src.chunks_exact(QK8_0).zip(dst) {
        let d = amax(x) / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        y.d = F16Bytes::from_f32(d);
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
    }
}

/// The activation side of Q4_0 and Q8_0, as ggml's x86 `quantize_row_q8_0` writes it.
pub struct Q8_0;

impl BlockActivation for Q8_0 {
    const NAME: &'static str = "q8_0";
    const BLOCK: usize = QK8_0;
    type Block = BlockQ8_0;

    fn quantize_blocks(src: &[f32], dst: &mut [BlockQ8_0]) {
        for (x, y) in src.chunks_exact(QK8_0).zip(dst) {
            let amax = amax(x);
            y.d = F16Bytes::from_f32(amax / 127.0);
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = nearest_int(v * id) as i8;
            }
        }
    }

    fn dequantize_blocks(src: &[BlockQ8_0], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK8_0)) {
            for (out, &q) in y.iter_mut().zip(&x.qs) {
                *out = f32::from(q) * x.d.to_f32();
            }
        }
    }
}
