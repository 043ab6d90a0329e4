//! TL1 and TL2 kernel variants over explicit tilings (both bm for TL1, BK at its int16 limit, TL2
//! with and without a pair part): every variant this CPU runs must equal the reference
//! (`gemv_ref`, i.e. `lut_sums`) bit for bit, since both sum the same integers exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernels::formats::tl1::{self, Tl1};
use kernels::formats::tl2::{self, Tl2};
use kernels::matmul::available_isas;
use kernels::{Bytes, WeightFormat};

/// xorshift64*: deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn weights(&mut self, n: usize) -> Vec<f32> {
        let mut w: Vec<f32> = (0..n)
            .map(|_| ((self.next() % 3) as f32 - 1.0) * 0.5)
            .collect();
        w[0] = 0.5;
        w
    }
    fn acts(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 6.0 - 3.0)
            .collect()
    }
}

fn check(f: &dyn WeightFormat, rows: usize, cols: usize, w: &[f32], x: &[f32], what: &str) {
    let tokens = x.len() / cols;
    let packed = f.pack(w, rows, cols).unwrap();
    let want: Vec<f32> = x
        .chunks_exact(cols)
        .flat_map(|t| f.gemv_ref(&packed, rows, cols, t).unwrap())
        .collect();
    for isa in available_isas(f) {
        let k = f
            .kernel(Bytes::copy_from_slice(&packed), rows, cols, isa)
            .unwrap();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut y = vec![f32::NAN; tokens * rows];
            pool.install(|| k.matmul(x, tokens, &mut y)).unwrap();
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{} {what} {rows}x{cols} token {} row {}: {a} vs {b}",
                    k.variant(),
                    i / rows,
                    i % rows
                );
            }
        }
    }
}

fn tl1_cases() -> Vec<(usize, usize, tl1::Tiling)> {
    vec![
        (32, 64, tl1::Tiling::new(32, 64, 32)),
        (64, 256, tl1::Tiling::new(32, 128, 32)),
        (128, 512, tl1::Tiling::new(64, 256, 64)),
        (96, 96, tl1::Tiling::new(96, 32, 32)),
        (192, 48, tl1::Tiling::new(64, 16, 64)),
        (64, 144, tl1::Tiling::new(64, 48, 32)),
        (128, 768, tl1::Tiling::new(128, 256, 32)),
        (320, 512, tl1::Tiling::new(320, 128, 64)),
    ]
}

fn tl2_cases() -> Vec<(usize, usize, tl2::Tiling)> {
    vec![
        (32, 96, tl2::Tiling::new(32, 96, 32)),
        (64, 352, tl2::Tiling::new(32, 96, 32)),
        (32, 272, tl2::Tiling::new(32, 240, 32)),
        (32, 720, tl2::Tiling::new(32, 240, 32)),
        (96, 128, tl2::Tiling::new(96, 48, 32)),
        (32, 72, tl2::Tiling::new(32, 24, 32)),
        (128, 416, tl2::Tiling::new(64, 192, 32)),
        (64, 480, tl2::Tiling::new(64, 96, 32)),
    ]
}

fn each_case(mut run: impl FnMut(&dyn WeightFormat, usize, usize, &str)) {
    for (rows, cols, t) in tl1_cases() {
        run(&Tl1 { tiling: Some(t) }, rows, cols, &format!("{t:?}"));
    }
    for (rows, cols, t) in tl2_cases() {
        run(&Tl2 { tiling: Some(t) }, rows, cols, &format!("{t:?}"));
    }
}

#[test]
fn variants_equal_the_reference_on_every_tiling() {
    let mut rng = Rng(0x7e57_7117);
    each_case(|f, rows, cols, what| {
        for tokens in [1, 2, 3, 5] {
            let w = rng.weights(rows * cols);
            let x = rng.acts(tokens * cols);
            check(f, rows, cols, &w, &x, what);
        }
    });
}

#[test]
fn extreme_values_fill_the_int16_tile_sums_exactly() {
    each_case(|f, rows, cols, what| {
        for (wv, xv) in [(1.0f32, 127.0f32), (-1.0, 127.0), (1.0, -127.0)] {
            let w = vec![wv; rows * cols];
            // Alternate the pair/triple sign of the activations too: -(a0 + a1 + a2) extremes.
            for x in [
                vec![xv; cols],
                (0..cols)
                    .map(|i| if i % 7 == 3 { -xv } else { xv })
                    .collect(),
            ] {
                check(f, rows, cols, &w, &x, what);
            }
        }
    });
}

#[test]
fn corrupt_indices_are_refused_by_every_variant() {
    let f = Tl1 { tiling: None };
    let (rows, cols) = (32, 768);
    let mut packed = f.pack(&vec![0.5; rows * cols], rows, cols).unwrap();
    packed[5] = 0x9f;
    for isa in available_isas(&f) {
        assert!(
            f.kernel(Bytes::copy_from_slice(&packed), rows, cols, isa)
                .is_err(),
            "tl1/{isa}"
        );
    }
    let f = Tl2 { tiling: None };
    let mut packed = f.pack(&vec![0.5; rows * cols], rows, cols).unwrap();
    packed[7] = 0xe0;
    for isa in available_isas(&f) {
        assert!(
            f.kernel(Bytes::copy_from_slice(&packed), rows, cols, isa)
                .is_err(),
            "tl2/{isa}"
        );
    }
}

#[test]
fn zero_tokens_and_non_finite_activations_behave_as_the_reference() {
    for f in [
        &Tl1 { tiling: None } as &dyn WeightFormat,
        &Tl2 { tiling: None },
    ] {
        let (rows, cols) = (32, 768);
        let w = Rng(3).weights(rows * cols);
        let packed = f.pack(&w, rows, cols).unwrap();
        // An all-zero token (γ = +inf) between two ordinary ones: its outputs are exactly zero.
        let mut x = Rng(4).acts(3 * cols);
        x[cols..2 * cols].fill(0.0);
        check(f, rows, cols, &w, &x, "zero token");
        for isa in available_isas(f) {
            let k = f
                .kernel(Bytes::copy_from_slice(&packed), rows, cols, isa)
                .unwrap();
            let mut y = vec![0.0; rows];
            let mut bad = vec![1.0f32; cols];
            bad[cols - 3] = f32::NAN;
            let err = k.matmul(&bad, 1, &mut y).unwrap_err().to_string();
            assert!(err.contains("not finite"), "{}: {err}", k.variant());
        }
    }
}
