//! Our ggml formats against ggml's own output (datasets/golden/ggml-quants.json, llama.cpp c392e509):
//! packed weight bytes and quantized activation bytes byte for byte, dot products within 1e-5.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use datasets::golden::{ggml_quants, GgmlCase};
use kernels::activations::BlockActivation;
use kernels::formats::{quantize_act_row, BlockFormat, Rows};
use kernels::WeightFormat;

/// Relative tolerance for dot products: ggml's SIMD sums floats in another order.
const DOT_REL_TOL: f32 = 1e-5;

fn cases(format: &str) -> Vec<GgmlCase> {
    let all: Vec<GgmlCase> = ggml_quants()
        .unwrap()
        .into_iter()
        .filter(|c| c.format == format)
        .collect();
    assert_eq!(all.len(), 6, "{format}: expected 6 golden cases");
    all
}

fn check<F: BlockFormat>(golden_name: &str) {
    assert_eq!(F::INFO.name, golden_name);
    let format = Rows::<F>::new();
    for (n, c) in cases(golden_name).iter().enumerate() {
        let what = format!("{golden_name} case {n} (k={})", c.k);
        assert_eq!(
            c.act_type,
            <F::Act as BlockActivation>::NAME,
            "{what}: activation type"
        );
        assert_eq!(
            F::INFO.activation,
            c.act_type,
            "{what}: registry activation"
        );

        let packed = format.pack(&c.weights, c.rows, c.k).unwrap();
        assert_eq!(packed.len(), c.packed.len(), "{what}: packed size");
        if let Some(at) = packed.iter().zip(&c.packed).position(|(a, b)| a != b) {
            panic!(
                "{what}: packed bytes differ first at byte {at} (block {}): ours {:02x}, ggml {:02x}",
                at / F::INFO.block_bytes,
                packed[at],
                c.packed[at]
            );
        }

        let act = quantize_act_row::<F>(&c.act).unwrap();
        let act_bytes = &<F::Act as BlockActivation>::upstream_bytes(&act);
        if let Some(at) = act_bytes.iter().zip(&c.act_quant).position(|(a, b)| a != b) {
            panic!(
                "{what}: activation bytes differ first at byte {at}: ours {:02x}, ggml {:02x}",
                act_bytes[at], c.act_quant[at]
            );
        }
        assert_eq!(
            act_bytes.len(),
            c.act_quant.len(),
            "{what}: activation size"
        );

        // Dot on ggml's bytes, so the check isolates the kernel from the quantizer.
        let y = format.gemv_ref(&c.packed, c.rows, c.k, &c.act).unwrap();
        for (r, (&ours, &theirs)) in y.iter().zip(&c.dot).enumerate() {
            let err = (ours - theirs).abs();
            assert!(
                err <= DOT_REL_TOL * theirs.abs().max(1e-3),
                "{what} row {r}: dot {ours} vs ggml {theirs} (|err| {err})"
            );
        }

        // Unpack then repack is the identity on ggml's bytes.
        let w = format.unpack(&c.packed, c.rows, c.k).unwrap();
        // Not q6_K: a sub-block with +m and -m as largest |q| may refit as (-scale, -q): same weights.
        if golden_name != "q6_K" {
            assert_eq!(
                format.pack(&w, c.rows, c.k).unwrap(),
                c.packed,
                "{what}: repack"
            );
        }
    }
}

#[test]
fn tq1_0_matches_ggml() {
    check::<kernels::formats::tq1_0::Tq1_0>("tq1_0");
}

#[test]
fn tq2_0_matches_ggml() {
    check::<kernels::formats::tq2_0::Tq2_0>("tq2_0");
}

#[test]
fn q4_0_matches_ggml() {
    check::<kernels::formats::q4_0::Q4_0>("q4_0");
}

#[test]
fn q8_0_matches_ggml() {
    check::<kernels::formats::q8_0::Q8_0>("q8_0");
}

#[test]
fn f16_matches_ggml() {
    check::<kernels::formats::f16::F16>("f16");
}

#[test]
fn bf16_matches_ggml() {
    check::<kernels::formats::bf16::Bf16>("bf16");
}

#[test]
fn q4_k_matches_ggml() {
    check::<kernels::formats::q4_k::Q4K>("q4_K");
}

#[test]
fn q6_k_matches_ggml() {
    check::<kernels::formats::q6_k::Q6K>("q6_K");
}
