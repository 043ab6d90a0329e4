//! TL1 and TL2 (bitnet.cpp's lookup-table layouts): upstream's packer bytes (datasets/golden/
//! bitnet-tl.json, microsoft/BitNet 16da220), hand-derived worked examples, round trips over
//! several tilings, the reference GEMV against a plain Σ w·q, load-time conversion, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use datasets::golden_tl::bitnet_tl;
use kernels::activations::i8_lut::{quantize_i8_lut, LutActRow};
use kernels::activations::i8_s::quantize_i8_s;
use kernels::formats::i2_s::I2S;
use kernels::formats::tl1::{self, Tl1};
use kernels::formats::tl2::{self, Tl2};
use kernels::formats::tq2_0::Tq2_0;
use kernels::formats::{Rows, WeightFormat};
use kernels::{find_format, KernelError};

/// xorshift64*: deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn trits(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| (self.next() % 3) as i8 - 1).collect()
    }
    /// Activations in [-4, 4), with one outlier so rounding and scale are exercised.
    fn acts(&mut self, n: usize) -> Vec<f32> {
        let mut x: Vec<f32> = (0..n)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0)
            .collect();
        let at = (self.next() % n as u64) as usize;
        x[at] = -9.5;
        x
    }
}

fn weights(t: &[i8], s: f32) -> Vec<f32> {
    t.iter().map(|&t| f32::from(t) * s).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The plain computation gemv_ref must equal: Σ w·q in i64 with the TL quantizer, then /γ·s.
fn plain_gemv(t: &[i8], rows: usize, cols: usize, s: f32, x: &[f32]) -> (Vec<i64>, Vec<f32>) {
    let act = quantize_i8_lut(x).unwrap();
    let ints: Vec<i64> = t
        .chunks_exact(cols)
        .map(|row| {
            row.iter()
                .zip(&act.qs)
                .map(|(&w, &q)| i64::from(w) * i64::from(q))
                .sum()
        })
        .collect();
    assert_eq!(ints.len(), rows);
    let ys = ints.iter().map(|&a| a as f32 / act.scale * s).collect();
    (ints, ys)
}

fn assert_close(ours: &[f32], plain: &[f32], what: &str) {
    for (r, (&a, &b)) in ours.iter().zip(plain).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs(),
            "{what} row {r}: gemv_ref {a} vs plain {b}"
        );
    }
}

fn tl1_tilings() -> Vec<(usize, usize, tl1::Tiling)> {
    vec![
        (32, 64, tl1::Tiling::new(32, 64, 32)),
        (64, 256, tl1::Tiling::new(32, 128, 32)),
        (128, 256, tl1::Tiling::new(64, 256, 64)),
        (96, 96, tl1::Tiling::new(96, 32, 32)),
        (192, 48, tl1::Tiling::new(64, 16, 64)),
        (64, 144, tl1::Tiling::new(64, 48, 32)),
    ]
}

fn tl2_tilings() -> Vec<(usize, usize, tl2::Tiling)> {
    vec![
        (32, 96, tl2::Tiling::new(32, 96, 32)),
        (64, 352, tl2::Tiling::new(32, 96, 32)),
        (32, 272, tl2::Tiling::new(32, 240, 32)),
        (96, 128, tl2::Tiling::new(96, 48, 32)),
        (32, 72, tl2::Tiling::new(32, 24, 32)),
        (128, 416, tl2::Tiling::new(64, 192, 32)),
    ]
}

#[test]
fn format_info_and_registry() {
    let f = find_format("tl1").unwrap().info();
    assert_eq!((f.name, f.block_size, f.block_bytes), ("tl1", 4, 1));
    assert_eq!(
        (f.bits_per_weight, f.activation, f.ternary),
        (2.0, "i8_lut", true)
    );
    let f = find_format("TL2").unwrap().info();
    assert_eq!((f.name, f.block_size, f.block_bytes), ("tl2", 24, 5));
    assert!((f.bits_per_weight - 5.0 / 3.0).abs() < 1e-12);
    assert_eq!((f.activation, f.ternary), ("i8_lut", true));
    assert_eq!(f.origin, kernels::Origin::BitnetCpp);
}

#[test]
fn lookup_tables_are_the_ones_formats_md_lists() {
    let (a0, a1, a2) = (5i16, -3i16, 7i16);
    // §4: e0..e8 = −a0−a1, −a0, −a0+a1, −a1, 0, a1, a0−a1, a0, a0+a1.
    let want = [-a0 - a1, -a0, -a0 + a1, -a1, 0, a1, a0 - a1, a0, a0 + a1];
    assert_eq!(tl1::pair_table(5, -3), want);
    // §5: e13 = a0+a1+a2, e12 = a0+a1, ..., e1 = a2, e0 = 0.
    let want = [
        0,
        a2,
        a1 - a2,
        a1,
        a1 + a2,
        a0 - a1 - a2,
        a0 - a1,
        a0 - a1 + a2,
        a0 - a2,
        a0,
        a0 + a2,
        a0 + a1 - a2,
        a0 + a1,
        a0 + a1 + a2,
    ];
    assert_eq!(tl2::triple_table([5, -3, 7]), want);
    // Extremes fit the int16 entries without wrapping.
    assert_eq!(tl2::triple_table([-127; 3])[13], -381);
    assert_eq!(tl1::pair_table(127, -127)[6], 254);
}

/// The row t_i = (i mod 3) − 1 of formats.md's worked examples, s = 0.5, repeated in every row.
fn example(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| ((i % cols % 3) as f32 - 1.0) * 0.5)
        .collect()
}

#[test]
fn tl1_worked_example() {
    // Pairs (−1,0), (+1,−1), (0,+1) repeat: indices 3w0 + w1 + 4 = 1, 6, 5.
    let f = Tl1 {
        tiling: Some(tl1::Tiling::new(32, 64, 32)),
    };
    let packed = f.pack(&example(32, 64), 32, 64).unwrap();
    assert_eq!(packed.len(), 32 * 64 / 4 + 32);
    // by = 8: each 64-byte step holds columns 8j..8j+8 as [rows 0-15: pairs 0,1][rows 0-15:
    // pairs 2,3][rows 16-31: pairs 0,1][rows 16-31: pairs 2,3]; first pair in the high nibble.
    let steps = [(0x16, 0x51), (0x65, 0x16), (0x51, 0x65)];
    for (j, &(a, b)) in steps.iter().enumerate() {
        let step = &packed[64 * j..64 * (j + 1)];
        let want: Vec<u8> = [a, b, a, b]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, 16))
            .collect();
        assert_eq!(hex(step), hex(&want), "step {j}");
    }
    assert_eq!(hex(&packed[512..516]), "0000003f");
    assert!(packed[516..].iter().all(|&b| b == 0));
}

#[test]
fn tl2_worked_example() {
    // Every triple is (−1, 0, +1): v = −9 + 1 = −8, so index 8 with the sign bit set. The 32
    // columns after K3 = 96 form the pair part, whose pairs repeat 1, 6, 5 as in TL1.
    let f = Tl2 {
        tiling: Some(tl2::Tiling::new(32, 96, 32)),
    };
    let packed = f.pack(&example(32, 128), 32, 128).unwrap();
    // P = ((128 − 256)·32/3)·5/8 + 64·32 = 1195 in C arithmetic, rounded up to 1216.
    assert_eq!(packed.len(), 1216 + 32);
    assert!(packed[..512].iter().all(|&b| b == 0x88));
    assert!(packed[512..640].iter().all(|&b| b == 0xff));
    let quads = [0x16, 0x51, 0x65, 0x16, 0x51, 0x65, 0x16, 0x51];
    for (j, &v) in quads.iter().enumerate() {
        let at = 640 + 32 * j;
        assert!(packed[at..at + 32].iter().all(|&b| b == v), "pair quad {j}");
    }
    assert!(packed[896..1216].iter().all(|&b| b == 0));
    assert_eq!(hex(&packed[1216..1220]), "0000003f");
}

#[test]
fn packing_matches_upstream_bytes() {
    let cases = bitnet_tl().unwrap();
    assert_eq!(cases.len(), 7);
    for c in &cases {
        let what = format!(
            "{} {}x{} (BM {}, BK {}, bm {})",
            c.format, c.rows, c.cols, c.tile_m, c.tile_k, c.simd_m
        );
        let t: Vec<i8> = c.codes.iter().map(|&c| c as i8 - 1).collect();
        let w = weights(&t, c.scale);
        let (format, at_scale): (Box<dyn WeightFormat>, usize) = match c.format.as_str() {
            "tl1" => (
                Box::new(Tl1 {
                    tiling: Some(tl1::Tiling::new(c.tile_m, c.tile_k, c.simd_m)),
                }),
                c.rows * c.cols / 4,
            ),
            "tl2" => (
                Box::new(Tl2 {
                    tiling: Some(tl2::Tiling::new(c.tile_m, c.tile_k, c.simd_m)),
                }),
                tl2::scale_offset(c.rows, c.cols),
            ),
            other => panic!("unknown format {other}"),
        };
        let ours = format.pack(&w, c.rows, c.cols).unwrap();
        assert_eq!(ours.len(), at_scale + 32, "{what}: size");
        assert!(
            c.packed.len() <= at_scale,
            "{what}: upstream array longer than P"
        );
        if let Some(at) = ours.iter().zip(&c.packed).position(|(a, b)| a != b) {
            panic!(
                "{what}: first differing byte {at}: ours {:02x}, upstream {:02x}",
                ours[at], c.packed[at]
            );
        }
        assert!(
            ours[c.packed.len()..at_scale].iter().all(|&b| b == 0),
            "{what}: padding"
        );
        assert_eq!(
            ours[at_scale..at_scale + 4],
            c.scale.to_le_bytes(),
            "{what}: scale"
        );

        // Upstream's bytes, completed with the tail, decode to the weights.
        let mut theirs = c.packed.clone();
        theirs.resize(at_scale, 0);
        theirs.extend_from_slice(&c.scale.to_le_bytes());
        theirs.resize(at_scale + 32, 0);
        assert_eq!(
            format.unpack(&theirs, c.rows, c.cols).unwrap(),
            w,
            "{what}: unpack"
        );
        let x = Rng(c.rows as u64 * 7919 + c.cols as u64).acts(c.cols);
        let y = format.gemv_ref(&theirs, c.rows, c.cols, &x).unwrap();
        assert_close(&y, &plain_gemv(&t, c.rows, c.cols, c.scale, &x).1, &what);
    }
}

#[test]
fn tl1_round_trip_and_gemv_over_tilings() {
    let mut rng = Rng(0x7431);
    for (rows, cols, tiling) in tl1_tilings() {
        let what = format!("tl1 {rows}x{cols} {tiling:?}");
        let f = Tl1 {
            tiling: Some(tiling),
        };
        let t = rng.trits(rows * cols);
        let s = 0.3125;
        let w = weights(&t, s);
        let packed = f.pack(&w, rows, cols).unwrap();
        assert_eq!(packed.len(), f.tensor_bytes(rows, cols).unwrap(), "{what}");
        assert_eq!(f.unpack(&packed, rows, cols).unwrap(), w, "{what}");
        for _ in 0..3 {
            let x = rng.acts(cols);
            let (ints, plain) = plain_gemv(&t, rows, cols, s, &x);
            let act = quantize_i8_lut(&x).unwrap();
            let sums = f.lut_sums(&packed, rows, cols, &act).unwrap();
            assert_eq!(
                sums.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
                ints,
                "{what}"
            );
            assert_close(&f.gemv_ref(&packed, rows, cols, &x).unwrap(), &plain, &what);
        }
    }
}

#[test]
fn tl2_round_trip_and_gemv_over_tilings() {
    let mut rng = Rng(0x7432);
    for (rows, cols, tiling) in tl2_tilings() {
        let what = format!("tl2 {rows}x{cols} {tiling:?}");
        let f = Tl2 {
            tiling: Some(tiling),
        };
        let t = rng.trits(rows * cols);
        let s = 1.75;
        let w = weights(&t, s);
        let packed = f.pack(&w, rows, cols).unwrap();
        assert_eq!(packed.len(), f.tensor_bytes(rows, cols).unwrap(), "{what}");
        assert_eq!(f.unpack(&packed, rows, cols).unwrap(), w, "{what}");
        for _ in 0..3 {
            let x = rng.acts(cols);
            let (ints, plain) = plain_gemv(&t, rows, cols, s, &x);
            let act = quantize_i8_lut(&x).unwrap();
            let sums = f.lut_sums(&packed, rows, cols, &act).unwrap();
            assert_eq!(
                sums.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
                ints,
                "{what}"
            );
            assert_close(&f.gemv_ref(&packed, rows, cols, &x).unwrap(), &plain, &what);
        }
    }
}

#[test]
fn default_tiling_handles_the_shapes_the_shared_tests_use() {
    // properties.rs / bad_input.rs use rows in {32, 64, 96} and cols in {768, 1536}.
    let mut rng = Rng(99);
    for rows in [32, 64, 96] {
        for cols in [768, 1536] {
            let t = rng.trits(rows * cols);
            let w = weights(&t, 0.25);
            let x = rng.acts(cols);
            let plain = plain_gemv(&t, rows, cols, 0.25, &x).1;
            for f in [
                &Tl1 { tiling: None } as &dyn WeightFormat,
                &Tl2 { tiling: None },
            ] {
                let packed = f.pack(&w, rows, cols).unwrap();
                assert_eq!(f.unpack(&packed, rows, cols).unwrap(), w);
                assert_close(
                    &f.gemv_ref(&packed, rows, cols, &x).unwrap(),
                    &plain,
                    f.info().name,
                );
            }
        }
    }
}

#[test]
fn presets_are_valid_and_chosen_by_shape() {
    for p in tl1::PRESETS {
        p.tiling.validate(p.rows, p.cols).unwrap();
        assert_eq!(tl1::Tiling::for_shape(p.rows, p.cols).unwrap(), p.tiling);
    }
    for p in tl2::PRESETS {
        p.tiling.validate(p.rows, p.cols).unwrap();
        assert_eq!(tl2::Tiling::for_shape(p.rows, p.cols).unwrap(), p.tiling);
    }
    // Every 2B4T shape has a preset of ours in both formats.
    for (rows, cols) in [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)] {
        let ours = |m: &str, o: tl1::PresetOrigin| {
            m == "BitNet-b1.58-2B-4T" && o == tl1::PresetOrigin::Ours
        };
        assert!(tl1::PRESETS
            .iter()
            .any(|p| (p.rows, p.cols) == (rows, cols) && ours(p.model, p.origin)));
        assert!(tl2::PRESETS
            .iter()
            .any(|p| (p.rows, p.cols) == (rows, cols) && ours(p.model, p.origin)));
    }
    // Upstream's 3B presets, as setup_env.py passes them to codegen.
    assert_eq!(
        tl1::Tiling::for_shape(3200, 3200).unwrap(),
        tl1::Tiling::new(320, 128, 64)
    );
    assert_eq!(
        tl2::Tiling::for_shape(8640, 3200).unwrap(),
        tl2::Tiling::new(320, 96, 32)
    );
    // Derived tilings are valid.
    for (rows, cols) in [(32, 16), (96, 400), (288, 4096), (64, 4064)] {
        let t = tl1::Tiling::for_shape(rows, cols).unwrap();
        t.validate(rows, cols).unwrap();
    }
    for (rows, cols) in [(32, 24), (96, 400), (288, 4096), (64, 4064)] {
        let t = tl2::Tiling::for_shape(rows, cols).unwrap();
        t.validate(rows, cols).unwrap();
    }
}

#[test]
fn tl2_size_follows_ggml_nbytes() {
    // ((K − 256)·M/3)·5/8 + (256·M/2)·4/8 in C integer arithmetic, rounded up to 32, + 32.
    let f = Tl2 { tiling: None };
    for ((rows, cols), bytes) in [
        ((3200, 3200), 2_167_520),
        ((2560, 2560), 1_392_672),
        ((640, 2560), 348_192),
        ((6912, 2560), 3_760_160),
        ((2560, 6912), 3_713_760),
        ((32, 128), 1248),
    ] {
        assert_eq!(f.tensor_bytes(rows, cols).unwrap(), bytes, "{rows}x{cols}");
    }
    assert_eq!(
        Tl1 { tiling: None }.tensor_bytes(2560, 6912).unwrap(),
        2560 * 6912 / 4 + 32
    );
}

#[test]
fn conversions_from_i2_s_and_tq2_0_equal_direct_packing() {
    let mut rng = Rng(0x1250);
    let (rows, cols) = (64, 768);
    let mut t = rng.trits(rows * cols);
    // One all-zero TQ2_0 block (d = 0) must not disturb the common scale.
    t[256..512].fill(0);
    let s = 0.375; // exact in f16
    let w = weights(&t, s);
    let i2s = I2S.pack(&w, rows, cols).unwrap();
    let tq2 = Rows::<Tq2_0>::new().pack(&w, rows, cols).unwrap();
    for tiling in [
        None,
        Some(tl1::Tiling::new(32, 64, 32)),
        Some(tl1::Tiling::new(64, 128, 64)),
    ] {
        let direct = Tl1 { tiling }.pack(&w, rows, cols).unwrap();
        assert_eq!(tl1::from_i2_s(&i2s, rows, cols, tiling).unwrap(), direct);
        assert_eq!(tl1::from_tq2_0(&tq2, rows, cols, tiling).unwrap(), direct);
    }
    for tiling in [
        None,
        Some(tl2::Tiling::new(32, 96, 32)),
        Some(tl2::Tiling::new(64, 168, 32)),
    ] {
        let direct = Tl2 { tiling }.pack(&w, rows, cols).unwrap();
        assert_eq!(tl2::from_i2_s(&i2s, rows, cols, tiling).unwrap(), direct);
        assert_eq!(tl2::from_tq2_0(&tq2, rows, cols, tiling).unwrap(), direct);
    }

    // A block stored with d = −s and flipped codes means the same weights.
    let mut flipped = tq2.clone();
    let blk = &mut flipped[66 * 2..66 * 3];
    for b in &mut blk[..64] {
        let mut out = 0u8;
        for n in 0..4 {
            out |= (2 - ((*b >> (2 * n)) & 3)) << (2 * n);
        }
        *b = out;
    }
    blk[64..66].copy_from_slice(&half::f16::from_f32(-s).to_le_bytes());
    assert_eq!(
        tl1::from_tq2_0(&flipped, rows, cols, None).unwrap(),
        Tl1 { tiling: None }.pack(&w, rows, cols).unwrap()
    );

    // Two non-zero blocks with different scales cannot share a TL tensor's one scale.
    let mut w2 = w.clone();
    for v in &mut w2[512..768] {
        *v *= 2.0;
    }
    let tq2 = Rows::<Tq2_0>::new().pack(&w2, rows, cols).unwrap();
    let err = tl2::from_tq2_0(&tq2, rows, cols, None).unwrap_err();
    assert!(
        matches!(err, KernelError::ScaleMismatch { format: "tl2", block: 2, scale, expected } if scale == 0.75 && expected == 0.375),
        "{err}"
    );

    // Codes the source format never writes are refused.
    let mut bad = i2s.clone();
    bad[5] = 0xff;
    assert!(matches!(
        tl1::from_i2_s(&bad, rows, cols, None),
        Err(KernelError::BadCode {
            offset: 5,
            code: 3,
            ..
        })
    ));
    let mut bad = Rows::<Tq2_0>::new().pack(&w, rows, cols).unwrap();
    bad[7] |= 0x03;
    assert!(matches!(
        tl2::from_tq2_0(&bad, rows, cols, None),
        Err(KernelError::BadCode {
            offset: 7,
            code: 3,
            ..
        })
    ));
}

#[test]
fn bad_tilings_name_the_constraint() {
    let shape_err = |r: Result<(), KernelError>, needle: &str| {
        let err = r.unwrap_err();
        assert!(matches!(err, KernelError::Shape { .. }), "{err}");
        assert!(
            err.to_string().contains(needle),
            "'{err}' should mention '{needle}'"
        );
    };
    use tl1::Tiling as T1;
    shape_err(
        T1::new(96, 64, 48).validate(96, 64),
        "bm = 48 must be 32 or 64",
    );
    shape_err(T1::new(96, 64, 64).validate(192, 64), "multiple of bm");
    shape_err(
        T1::new(64, 38, 64).validate(64, 76),
        "multiple of by = 256/bm = 4",
    );
    shape_err(T1::new(32, 512, 32).validate(32, 512), "int16");
    shape_err(
        T1::new(64, 64, 32).validate(96, 64),
        "rows must be a multiple of BM",
    );
    shape_err(
        T1::new(32, 64, 32).validate(32, 96),
        "cols must be a multiple of BK",
    );
    shape_err(T1::new(32, 8, 32).validate(32, 24), "multiple of 16");
    shape_err(T1::new(32, 64, 32).validate(0, 64), "non-zero");
    use tl2::Tiling as T2;
    shape_err(T2::new(64, 96, 64).validate(64, 96), "bm = 64 must be 32");
    shape_err(T2::new(48, 96, 32).validate(96, 96), "multiple of bm = 32");
    shape_err(T2::new(32, 100, 32).validate(32, 100), "multiple of 24");
    shape_err(T2::new(32, 264, 32).validate(32, 264), "int16");
    shape_err(
        T2::new(64, 96, 32).validate(32, 96),
        "rows must be a multiple of BM",
    );
    shape_err(T2::new(32, 192, 32).validate(32, 96), "at least BK");
    shape_err(T2::new(32, 96, 32).validate(32, 112), "pair part");

    // Through the trait, with and without an explicit tiling.
    let w = vec![0.0; 33 * 768];
    for f in [
        &Tl1 { tiling: None } as &dyn WeightFormat,
        &Tl2 { tiling: None },
    ] {
        let err = f.pack(&w, 33, 768).unwrap_err();
        assert!(matches!(err, KernelError::Shape { rows: 33, .. }), "{err}");
        assert!(err.to_string().contains("multiple of 32"), "{err}");
    }
    let f = Tl2 {
        tiling: Some(T2::new(32, 96, 32)),
    };
    assert!(matches!(
        f.tensor_bytes(32, 112),
        Err(KernelError::Shape { cols: 112, .. })
    ));
    assert!(matches!(
        tl1::from_i2_s(&[0; 64], 33, 128, None),
        Err(KernelError::Shape { .. })
    ));
}

#[test]
fn non_ternary_weights_and_corrupt_indices_are_refused() {
    let mut rng = Rng(5);
    let (rows, cols) = (32, 192);
    let t = rng.trits(rows * cols);
    let mut w = weights(&t, 0.5);
    w[0] = 0.5;
    w[17] = 0.3;
    for f in [
        &Tl1 { tiling: None } as &dyn WeightFormat,
        &Tl2 { tiling: None },
    ] {
        let err = f.pack(&w, rows, cols).unwrap_err();
        assert!(
            matches!(err, KernelError::NotTernary { index: 17, .. }),
            "{err}"
        );
    }
    let w = weights(&t, 0.5);
    let x = rng.acts(cols);

    let f = Tl1 { tiling: None };
    let mut packed = f.pack(&w, rows, cols).unwrap();
    packed[40] = 0x9f;
    let err = f.unpack(&packed, rows, cols).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::BadCode {
                format: "tl1",
                offset: 40,
                code: 9,
                ..
            }
        ),
        "{err}"
    );
    assert!(f.gemv_ref(&packed, rows, cols, &x).is_err());

    let f = Tl2 { tiling: None };
    let mut packed = f.pack(&w, rows, cols).unwrap();
    packed[3] = 0x0e;
    let err = f.unpack(&packed, rows, cols).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::BadCode {
                format: "tl2",
                offset: 3,
                code: 14,
                ..
            }
        ),
        "{err}"
    );
    assert!(f.gemv_ref(&packed, rows, cols, &x).is_err());
}

#[test]
fn tl_activation_quantizer_is_the_kernels_not_i8_s() {
    // Ties go to even: with max|x| = 127, γ = 1.
    let act = quantize_i8_lut(&[127.0, 2.5, 3.5, -0.5, -2.5]).unwrap();
    assert_eq!(
        act,
        LutActRow {
            qs: vec![127, 2, 4, 0, -2],
            scale: 1.0
        }
    );
    // No 1e-5 floor: tiny activations still use the full int8 range (I8_S would not).
    let x = [2f32.powi(-20), -(2f32.powi(-21))];
    let act = quantize_i8_lut(&x).unwrap();
    assert_eq!(act.qs, vec![127, -64]); // −63.5 exactly: ties to even
    assert_eq!(act.scale, 127.0 * 2f32.powi(20));
    assert_eq!(quantize_i8_s(&x).unwrap().qs, vec![12, -6]);
    // γ is the f32 quotient 127/max.
    let x = [0.3f32, -0.7, 0.11];
    assert_eq!(quantize_i8_lut(&x).unwrap().scale, 127.0f32 / 0.7f32);
    // An all-zero token gives γ = inf and outputs of exactly zero, as upstream's acc/γ does.
    let w = weights(&Rng(3).trits(32 * 96), 1.0);
    let f = Tl2 { tiling: None };
    let packed = f.pack(&w, 32, 96).unwrap();
    let y = f.gemv_ref(&packed, 32, 96, &[0.0; 96]).unwrap();
    assert!(y.iter().all(|&v| v == 0.0));
    assert!(quantize_i8_lut(&[0.0; 8]).unwrap().scale.is_infinite());
}
