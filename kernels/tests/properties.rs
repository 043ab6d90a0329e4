//! Properties every format must keep, over random shapes and values (proptest):
//! ternary pack → unpack is exact; the reference dot equals the f64 dot of the dequantized
//! operands up to f32 rounding; and it stays within the error that activation quantization allows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernels::activations::i8_s::quantize_i8_s;
use kernels::activations::BlockActivation;
use kernels::formats::{self, quantize_act_row, BlockFormat, Rows};
use kernels::{find_format, WeightFormat, FORMATS};
use proptest::prelude::*;

/// A ternary matrix {-s, 0, +s} whose scale is exact in f16, so per-block f16 scales lose nothing.
fn ternary(rows: usize, cols: usize) -> impl Strategy<Value = (f32, Vec<f32>)> {
    (1u32..=256, prop::collection::vec(-1i8..=1, rows * cols)).prop_map(|(k, t)| {
        let s = k as f32 / 64.0;
        (s, t.into_iter().map(|t| f32::from(t) * s).collect())
    })
}

fn activations(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-4.0f32..4.0, n)
}

/// cols as a multiple of the format's block; rows small.
fn shape(block: usize) -> impl Strategy<Value = (usize, usize)> {
    (1usize..=4, 1usize..=4).prop_map(move |(r, b)| (r, b * block.max(256)))
}

fn ternary_formats() -> Vec<&'static dyn WeightFormat> {
    FORMATS
        .iter()
        .copied()
        .filter(|f| f.info().ternary)
        .collect()
}

/// Shapes every ternary layout accepts: rows a multiple of 32, cols a multiple of 768
/// (divisible by the 256-weight TQ blocks, 128-weight I2_S blocks and the TL tile depths).
fn ternary_matrix() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (1usize..=3, 1usize..=2).prop_flat_map(|(r, b)| {
        let (rows, cols) = (32 * r, 768 * b);
        ternary(rows, cols).prop_map(move |(_, w)| (rows, cols, w))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn ternary_pack_unpack_is_exact((rows, cols, w) in ternary_matrix()) {
        for f in ternary_formats() {
            let packed = f.pack(&w, rows, cols).unwrap();
            prop_assert_eq!(packed.len(), f.tensor_bytes(rows, cols).unwrap());
            let back = f.unpack(&packed, rows, cols).unwrap();
            prop_assert!(back == w, "{}: unpack(pack(w)) != w", f.info().name);
        }
    }
}

/// |Σ products| rounding bound for an f32 sum of n terms done blockwise: generous but tight
/// enough to catch a wrong scale, sign or index (those are errors of order Σ|terms| itself).
fn f32_bound(n_blocks: usize, abs_sum: f64) -> f64 {
    (n_blocks as f64 + 8.0) * f64::from(f32::EPSILON) * abs_sum + 1e-12
}

fn check_block_format<F: BlockFormat>(w: &[f32], x: &[f32], rows: usize, cols: usize) {
    let f = Rows::<F>::new();
    let name = F::INFO.name;
    let packed = f.pack(w, rows, cols).unwrap();
    let w_deq = f.unpack(&packed, rows, cols).unwrap();
    let act = quantize_act_row::<F>(x).unwrap();
    let mut x_deq = vec![0.0f32; cols];
    F::Act::dequantize_blocks(&act, &mut x_deq);
    let y = f.gemv_ref(&packed, rows, cols, x).unwrap();
    let n_blocks = cols / F::INFO.block_size;
    for r in 0..rows {
        let wr = &w_deq[r * cols..(r + 1) * cols];
        // (1) Against the dequantized operands: only f32 rounding separates them.
        let exact: f64 = wr
            .iter()
            .zip(&x_deq)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let abs: f64 = wr
            .iter()
            .zip(&x_deq)
            .map(|(&a, &b)| f64::from(a * b).abs())
            .sum();
        let err = (f64::from(y[r]) - exact).abs();
        assert!(
            err <= f32_bound(n_blocks, abs),
            "{name} row {r}: {} vs {exact} (err {err})",
            y[r]
        );
        // (2) Against the unquantized activations: within Σ|w|·|x - deq(q(x))| plus rounding.
        let exact_x: f64 = wr
            .iter()
            .zip(x)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let quant_err: f64 = wr
            .iter()
            .zip(x.iter().zip(&x_deq))
            .map(|(&a, (&b, &c))| f64::from(a).abs() * f64::from(b - c).abs())
            .sum();
        let err_x = (f64::from(y[r]) - exact_x).abs();
        assert!(
            err_x <= quant_err + f32_bound(n_blocks, abs),
            "{name} row {r}: {} vs unquantized {exact_x} (err {err_x}, bound {quant_err})",
            y[r]
        );
        // (3) The analytic per-element bound of the activation type holds.
        let max_step = analytic_step(<F::Act as BlockActivation>::NAME, x);
        for (i, (&b, &c)) in x.iter().zip(&x_deq).enumerate() {
            assert!(
                (b - c).abs() <= max_step[i],
                "{name}: x[{i}] = {b} quantized to {c}"
            );
        }
    }
}

/// Largest |x - deq(q(x))| each activation type allows: half a step (plus the f16 rounding of
/// Q8_0's scale), or the unit roundoff of a 16-bit float.
fn analytic_step(act: &str, x: &[f32]) -> Vec<f32> {
    let relative = |bits: i32| {
        x.iter()
            .map(|v| v.abs() * 2f32.powi(-bits) + 2f32.powi(-25))
            .collect()
    };
    let (block, slack) = match act {
        "f16" => return relative(11),
        "bf16" => return relative(8),
        "q8_K" => (256, 0.0),
        _ => (32, 127.0 / 2048.0),
    };
    x.chunks(block)
        .flat_map(|b| {
            let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            std::iter::repeat_n(amax / 127.0 * (0.5 + slack + 1e-5), b.len())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn block_formats_dot_within_bounds(
        (rows, cols) in shape(256),
        w in prop::collection::vec(-1.0f32..1.0, 4 * 1024),
        x in activations(1024),
        outlier in prop::option::of(0usize..1024),
    ) {
        let w = &w[..rows * cols];
        let mut x = x[..cols].to_vec();
        if let Some(i) = outlier {
            x[i % cols] = 9.5;
        }
        check_block_format::<formats::tq1_0::Tq1_0>(w, &x, rows, cols);
        check_block_format::<formats::tq2_0::Tq2_0>(w, &x, rows, cols);
        check_block_format::<formats::q4_0::Q4_0>(w, &x, rows, cols);
        check_block_format::<formats::q8_0::Q8_0>(w, &x, rows, cols);
        check_block_format::<formats::f16::F16>(w, &x, rows, cols);
        check_block_format::<formats::bf16::Bf16>(w, &x, rows, cols);
        check_block_format::<formats::q4_k::Q4K>(w, &x, rows, cols);
        check_block_format::<formats::q6_k::Q6K>(w, &x, rows, cols);
    }

    #[test]
    fn i2_s_dot_within_bounds(
        (rows, cols) in (1usize..=4, 1usize..=8).prop_map(|(r, b)| (r, b * 128)),
        tw in prop::collection::vec(-1i8..=1, 4 * 1024),
        s in 0.001f32..2.0,
        x in activations(1024),
    ) {
        let w: Vec<f32> = tw[..rows * cols].iter().map(|&t| f32::from(t) * s).collect();
        let x = &x[..cols];
        let f = find_format("i2_s").unwrap();
        let packed = f.pack(&w, rows, cols).unwrap();
        let y = f.gemv_ref(&packed, rows, cols, x).unwrap();
        let act = quantize_i8_s(x).unwrap();
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for r in 0..rows {
            let wr = &w[r * cols..(r + 1) * cols];
            let exact: f64 = wr.iter().zip(&act.qs)
                .map(|(&a, &q)| f64::from(a) * f64::from(q) / f64::from(act.scale)).sum();
            let abs: f64 = wr.iter().zip(&act.qs)
                .map(|(&a, &q)| (f64::from(a) * f64::from(q) / f64::from(act.scale)).abs()).sum();
            prop_assert!((f64::from(y[r]) - exact).abs() <= f32_bound(1, abs) + 1e-6 * exact.abs());
            let exact_x: f64 = wr.iter().zip(x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let l1: f64 = wr.iter().map(|&a| f64::from(a).abs()).sum();
            let bound = l1 * f64::from(amax) / 254.0 * (1.0 + 1e-5) + f32_bound(1, abs) + 1e-6 * exact.abs();
            prop_assert!((f64::from(y[r]) - exact_x).abs() <= bound);
        }
    }
}
