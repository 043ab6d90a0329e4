//! Bad input gets a typed error that names the format and what was wrong, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernels::formats::check_finite;
use kernels::{KernelError, FORMATS};

fn ternary(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7 % 3) as f32 - 1.0) * 0.25).collect()
}

/// Rows, cols that every format accepts (see properties.rs).
const ROWS: usize = 32;
const COLS: usize = 768;

#[test]
fn every_format_refuses_a_ragged_row() {
    for f in FORMATS {
        let block = f.info().block_size;
        if block == 1 {
            continue; // F16/BF16 take any row length.
        }
        let cols = COLS + 1;
        let err = f.pack(&ternary(ROWS * cols), ROWS, cols).unwrap_err();
        assert!(
            matches!(err, KernelError::RowLength { len, .. } | KernelError::Shape { cols: len, .. } if len == cols),
            "{}: {err}",
            f.info().name
        );
        assert!(err.to_string().contains(f.info().name), "{err}");
    }
}

#[test]
fn every_format_refuses_non_finite_weights_and_activations() {
    for f in FORMATS {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut w = ternary(ROWS * COLS);
            w[5] = bad;
            let err = f.pack(&w, ROWS, COLS).unwrap_err();
            assert!(
                matches!(err, KernelError::NonFinite { index: 5, .. }),
                "{}: {err}",
                f.info().name
            );
            let packed = f.pack(&ternary(ROWS * COLS), ROWS, COLS).unwrap();
            let mut x = vec![0.5f32; COLS];
            x[9] = bad;
            let err = f.gemv_ref(&packed, ROWS, COLS, &x).unwrap_err();
            assert!(
                matches!(err, KernelError::NonFinite { index: 9, .. }),
                "{}: {err}",
                f.info().name
            );
        }
    }
}

#[test]
fn every_format_refuses_buffers_of_the_wrong_size() {
    for f in FORMATS {
        let name = f.info().name;
        let w = ternary(ROWS * COLS);
        assert!(
            matches!(
                f.pack(&w[1..], ROWS, COLS),
                Err(KernelError::BufferSize { .. })
            ),
            "{name}: short weights"
        );
        let packed = f.pack(&w, ROWS, COLS).unwrap();
        for cut in [1, packed.len() / 2] {
            let short = &packed[..packed.len() - cut];
            assert!(
                matches!(
                    f.unpack(short, ROWS, COLS),
                    Err(KernelError::BufferSize { .. })
                ),
                "{name}: unpack of a truncated tensor"
            );
            assert!(
                matches!(
                    f.gemv_ref(short, ROWS, COLS, &vec![1.0; COLS]),
                    Err(KernelError::BufferSize { .. })
                ),
                "{name}: gemv on a truncated tensor"
            );
        }
        let mut long = packed.clone();
        long.push(0);
        assert!(
            f.unpack(&long, ROWS, COLS).is_err(),
            "{name}: unpack of an overlong tensor"
        );
        assert!(
            matches!(
                f.gemv_ref(&packed, ROWS, COLS, &vec![1.0; COLS - 1]),
                Err(KernelError::BufferSize { .. } | KernelError::RowLength { .. })
            ),
            "{name}: short activations"
        );
    }
}

#[test]
fn tensor_level_ternary_formats_refuse_non_ternary_weights() {
    // TQ1_0/TQ2_0 round like ggml does; bitnet.cpp's formats would silently keep only the sign.
    for f in FORMATS
        .iter()
        .filter(|f| f.info().ternary && f.info().name != "tq1_0" && f.info().name != "tq2_0")
    {
        let mut w = ternary(ROWS * COLS);
        w[3] = 0.1;
        let err = f.pack(&w, ROWS, COLS).unwrap_err();
        assert!(
            matches!(err, KernelError::NotTernary { index: 3, .. }),
            "{}: {err}",
            f.info().name
        );
    }
}

#[test]
fn tq_formats_round_non_ternary_weights_as_ggml_does() {
    // ggml: c = lroundf(x / max|x|) + 1 per 256-block; 0.1 of 0.25 rounds to 0, 0.2 to +1.
    for name in ["tq1_0", "tq2_0"] {
        let f = kernels::find_format(name).unwrap();
        let mut w = ternary(256);
        w[3] = 0.1;
        w[4] = 0.2;
        w[5] = -0.125; // exactly half: rounds away from zero
        let back = f.unpack(&f.pack(&w, 1, 256).unwrap(), 1, 256).unwrap();
        assert_eq!((back[3], back[4], back[5]), (0.0, 0.25, -0.25), "{name}");
    }
}

/// The finiteness check (vectorized where the CPU allows) finds the first NaN or infinity at
/// every position of the vector steps and of a ragged tail, and passes the extreme finite values.
#[test]
fn the_finiteness_check_names_the_first_offender_anywhere() {
    let edge = [f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, -0.0, 0.0];
    for len in [1, 15, 16, 17, 47, 256, 263] {
        let good: Vec<f32> = (0..len).map(|i| edge[i % edge.len()]).collect();
        assert!(
            check_finite("f32", "activations", &good).is_ok(),
            "len {len}"
        );
        for at in 0..len {
            for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut v = good.clone();
                v[at] = bad;
                // A second offender later must not hide the first.
                if at + 3 < len {
                    v[at + 3] = f32::NAN;
                }
                let err = check_finite("f32", "activations", &v).unwrap_err();
                assert!(
                    matches!(err, KernelError::NonFinite { index, .. } if index == at),
                    "len {len}, {bad} at {at}: {err}"
                );
            }
        }
    }
}
