//! F32 (ggml type 0): plain single precision, for the rare model that stores a linear weight
//! unquantized. Activations: F32. Scalar only: no BitNet file we know of runs hot on it.

use super::{BlockFormat, FormatInfo, Origin};
use crate::activations::{BlockActivation, F32Act, F32Bytes};

pub struct F32;

impl BlockFormat for F32 {
    const INFO: FormatInfo = FormatInfo {
        name: "f32",
        block_size: 1,
        block_bytes: 4,
        bits_per_weight: 32.0,
        activation: "f32",
        origin: Origin::Ggml,
        ternary: false,
    };
    type Block = F32Bytes;
    type Act = F32Act;

    fn quantize_blocks(src: &[f32], dst: &mut [F32Bytes]) {
        F32Act::quantize_blocks(src, dst);
    }

    fn dequantize_blocks(src: &[F32Bytes], dst: &mut [f32]) {
        F32Act::dequantize_blocks(src, dst);
    }

    /// Products in f32, summed in f64 (ggml's generic `ggml_vec_dot_f32` sums in `ggml_float`).
    fn dot_blocks(w: &[F32Bytes], a: &[F32Bytes]) -> f32 {
        w.iter()
            .zip(a)
            .map(|(x, y)| f64::from(x.to_f32() * y.to_f32()))
            .sum::<f64>() as f32
    }
}
