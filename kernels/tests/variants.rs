//! Every kernel variant this CPU runs, for every format, against the scalar reference
//! (`WeightFormat::gemv_ref`): GEMV and GEMM, one and two threads, random shapes and values.
//!
//! Integer parts must be exact. On integer-valued inputs whose scales come out as exactly 1
//! (weights on the format's integer grid with the extreme value present in every block,
//! activations in -127..=127 with -127 in every 32 values), every partial sum is an integer below
//! 2^24, so each variant must equal the reference bit for bit, however it orders its float adds.
//! On random floats the stated tolerance is 1e-5 · Σ|w|·max|x| per row.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernels::matmul::available_isas;
use kernels::{Bytes, Origin, WeightFormat, FORMATS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const FLOAT_TOL: f32 = 1e-5;

/// Formats whose blocks carry nested scales that no integer grid makes exactly 1.
fn float_only(name: &str) -> bool {
    matches!(name, "q4_K" | "q6_K")
}

/// Integer-valued weights whose per-block scale is exactly 1 in `format`.
fn integer_weights(name: &str, raw: &[i8]) -> Vec<f32> {
    raw.iter()
        .enumerate()
        .map(|(i, &r)| match name {
            "q4_0" if i % 32 == 0 => -8.0,
            "q4_0" => f32::from(r.clamp(-7, 7)),
            "q8_0" if i % 32 == 0 => 127.0,
            "q8_0" | "f16" | "bf16" | "q4_K" | "q6_K" => f32::from(r.clamp(-8, 8)),
            // Ternary: every 256-block holds a +1, so its absmax scale is 1.
            _ if i % 128 == 0 => 1.0,
            _ => f32::from(r.clamp(-1, 1)),
        })
        .collect()
}

/// Integer activations in -127..=127 with -127 in every 32 values: every activation scale is 1.
fn integer_acts(raw: &[i8]) -> Vec<f32> {
    raw.iter()
        .enumerate()
        .map(|(i, &r)| {
            if i % 32 == 0 {
                -127.0
            } else {
                f32::from(r.max(-127))
            }
        })
        .collect()
}

fn check_variants(
    f: &dyn WeightFormat,
    rows: usize,
    cols: usize,
    w: &[f32],
    x: &[f32],
    exact: bool,
) {
    let name = f.info().name;
    let tokens = x.len() / cols;
    let packed = f.pack(w, rows, cols).unwrap();
    let reference: Vec<Vec<f32>> = x
        .chunks_exact(cols)
        .map(|t| f.gemv_ref(&packed, rows, cols, t).unwrap())
        .collect();
    let w_deq = f.unpack(&packed, rows, cols).unwrap();
    for isa in available_isas(f) {
        let kernel = f
            .kernel(Bytes::copy_from_slice(&packed), rows, cols, isa)
            .unwrap();
        assert_eq!(kernel.variant(), format!("{name}/{isa}"));
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut y = vec![f32::NAN; tokens * rows];
            pool.install(|| kernel.matmul(x, tokens, &mut y)).unwrap();
            for (t, (got, want)) in y.chunks_exact(rows).zip(&reference).enumerate() {
                let xmax = x[t * cols..(t + 1) * cols]
                    .iter()
                    .fold(0.0f32, |m, v| m.max(v.abs()));
                for r in 0..rows {
                    let what = format!(
                        "{name}/{isa} {rows}x{cols} token {t}/{tokens} row {r}, {threads} threads"
                    );
                    if exact && !float_only(name) {
                        assert_eq!(
                            got[r].to_bits(),
                            want[r].to_bits(),
                            "{what}: {} vs {}",
                            got[r],
                            want[r]
                        );
                    } else {
                        let l1: f32 = w_deq[r * cols..(r + 1) * cols]
                            .iter()
                            .map(|v| v.abs())
                            .sum();
                        let tol = FLOAT_TOL * l1 * xmax;
                        assert!(
                            (got[r] - want[r]).abs() <= tol,
                            "{what}: {} vs {} (tol {tol})",
                            got[r],
                            want[r]
                        );
                    }
                }
            }
        }
    }
}

/// The scale of ternary weight `i` (row-major) on random floats: ggml's ternary formats store a
/// scale per 256-block, so theirs changes from block to block and from row to row (seven values,
/// and no shape here has a multiple of seven blocks per row), and a kernel that pairs a block with
/// another row's or block's scale fails; bitnet.cpp's keep one scale per tensor.
fn block_scale(f: &dyn WeightFormat, i: usize) -> f32 {
    if f.info().origin == Origin::Ggml {
        0.37 * (1.0 + (i / 256 % 7) as f32 * 0.25)
    } else {
        0.37
    }
}

/// Shapes every format accepts (TL tilings need rows in 32s and cols in 768s or a preset).
fn shapes() -> impl Strategy<Value = (usize, usize, usize)> {
    (
        prop::sample::select(vec![(32, 768), (64, 1536), (96, 768), (640, 2560)]),
        1usize..=5,
    )
        .prop_map(|((r, c), t)| (r, c, [1, 1, 2, 4, 7][t - 1]))
}

/// Cases per property: fewer under qemu-user, whose emulation makes the scalar reference slow.
const CASES: u32 = if cfg!(target_arch = "aarch64") { 4 } else { 12 };

fn run(exact: bool, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = shapes().prop_flat_map(|(rows, cols, tokens)| {
        (
            Just((rows, cols, tokens)),
            prop::collection::vec(any::<i8>(), rows * cols),
            prop::collection::vec(any::<i8>(), tokens * cols),
            prop::collection::vec(-1.0f32..1.0, rows * cols),
            prop::collection::vec(-3.0f32..3.0, tokens * cols),
        )
    });
    runner
        .run(&strategy, |((rows, cols, tokens), wi, xi, wf, xf)| {
            for f in FORMATS {
                let name = f.info().name;
                let (w, x) = if exact {
                    (integer_weights(name, &wi), integer_acts(&xi))
                } else if f.info().ternary {
                    (
                        integer_weights(name, &wi)
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v * block_scale(*f, i))
                            .collect(),
                        xf.clone(),
                    )
                } else {
                    (wf.clone(), xf.clone())
                };
                assert_eq!(x.len(), tokens * cols);
                check_variants(*f, rows, cols, &w, &x, exact);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn variants_equal_the_reference_exactly_on_integer_inputs() {
    run(true, CASES);
}

#[test]
fn variants_match_the_reference_on_random_floats() {
    run(false, CASES);
}

/// Prefill-sized products: whole tiles of 16 tokens and ragged ones, where whole-product
/// variants (AMX) take over from the row kernels; 37 rows leave a partial tile of weight rows.
#[test]
fn many_token_products_equal_the_reference() {
    let mut rng = proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    );
    let mut raw = |n: usize| -> Vec<i8> { (0..n).map(|_| rng.next_u32() as i8).collect() };
    let tokens_cases: &[usize] = if cfg!(target_arch = "aarch64") {
        &[17]
    } else {
        &[16, 17, 35, 64, 70]
    };
    for &tokens in tokens_cases {
        for f in FORMATS {
            let name = f.info().name;
            let mut shapes = vec![(96, 768)];
            // The AMX kernels' partial 16-row panels.
            if ["tq2_0", "i2_s", "q4_0"].contains(&name) {
                shapes.push((37, 512));
            }
            for (rows, cols) in shapes {
                let w = integer_weights(name, &raw(rows * cols));
                let x = integer_acts(&raw(tokens * cols));
                check_variants(*f, rows, cols, &w, &x, true);
                let xf: Vec<f32> = x.iter().map(|v| v * 0.0173).collect();
                let wf: Vec<f32> = w.iter().map(|v| v * 0.37).collect();
                check_variants(*f, rows, cols, &wf, &xf, false);
            }
        }
    }
}

#[test]
fn long_rows_of_extreme_values_do_not_overflow_narrow_accumulators() {
    // All weights +1 against all activations 127: the worst case for int16 accumulation.
    for f in FORMATS.iter().filter(|f| f.info().ternary) {
        for cols in [768 * 4, 6912 / 256 * 256 * 2] {
            let rows = 32;
            let w = vec![1.0f32; rows * cols];
            for sign in [1.0f32, -1.0] {
                let x = vec![127.0 * sign; cols];
                check_variants(*f, rows, cols, &w, &x, true);
            }
        }
    }
}

#[test]
fn forcing_an_unavailable_or_unknown_variant_is_a_clear_error() {
    let f = kernels::find_format("tq2_0").unwrap();
    let packed = Bytes::from(f.pack(&vec![0.0; 256], 1, 256).unwrap());
    for isa in kernels::Isa::ALL {
        let result = f.kernel(packed.clone(), 1, 256, isa);
        if f.isas().contains(&isa) && isa.available() {
            assert!(result.is_ok(), "{isa}");
        } else {
            let msg = result.err().unwrap().to_string();
            assert!(msg.contains(&format!("tq2_0/{isa}")), "{msg}");
        }
    }
}

/// The formats the fast-kernel work covers, and the levels each must implement per architecture.
const FAST_FORMATS: [&str; 9] = [
    "tq1_0", "tq2_0", "i2_s", "tl1", "tl2", "f16", "q4_0", "q6_K", "q8_0",
];

#[test]
fn every_fast_format_has_its_simd_variants_on_this_architecture() {
    let wanted: &[kernels::Isa] = if cfg!(target_arch = "x86_64") {
        &[kernels::Isa::Avx2, kernels::Isa::Avx512Vnni]
    } else if cfg!(target_arch = "aarch64") {
        &[kernels::Isa::Neon]
    } else {
        &[]
    };
    for name in FAST_FORMATS {
        let f = kernels::find_format(name).unwrap();
        for isa in wanted {
            assert!(f.isas().contains(isa), "{name} lacks its {isa} variant");
        }
        // Print what runs here, so CI logs show which variants each qemu CPU model exercised.
        let runs: Vec<String> = available_isas(f).iter().map(|i| i.to_string()).collect();
        eprintln!("{name}: variants run here: {}", runs.join(", "));
    }
}
