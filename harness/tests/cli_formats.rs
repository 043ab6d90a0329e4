//! `ternbench formats --json` prints exactly the documented keys and upstream's figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn formats_json() -> Vec<serde_json::Map<String, Value>> {
    let out = Command::new(env!("CARGO_BIN_EXE_ternbench"))
        .args(["formats", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_object().unwrap().clone())
        .collect()
}

#[test]
fn every_row_has_exactly_the_documented_keys() {
    let keys = [
        "activation",
        "bits_per_weight",
        "block_bytes",
        "block_size",
        "name",
        "origin",
    ];
    for row in formats_json() {
        let mut got: Vec<&str> = row.keys().map(String::as_str).collect();
        got.sort_unstable();
        assert_eq!(got, keys);
    }
}

#[test]
fn figures_match_upstream() {
    // (name, weights per block, bytes per block, bits per weight, activation, origin)
    let expected: &[(&str, u64, u64, f64, &str, &str)] = &[
        ("tq1_0", 256, 54, 1.6875, "q8_K", "ggml"),
        ("tq2_0", 256, 66, 2.0625, "q8_K", "ggml"),
        ("i2_s", 128, 32, 2.0, "i8_s", "bitnet.cpp"),
        ("tl1", 4, 1, 2.0, "i8_lut", "bitnet.cpp"),
        ("tl2", 24, 5, 5.0 / 3.0, "i8_lut", "bitnet.cpp"),
        ("f32", 1, 4, 32.0, "f32", "ggml"),
        ("f16", 1, 2, 16.0, "f16", "ggml"),
        ("bf16", 1, 2, 16.0, "bf16", "ggml"),
        ("q8_0", 32, 34, 8.5, "q8_0", "ggml"),
        ("q4_0", 32, 18, 4.5, "q8_0", "ggml"),
        ("q4_K", 256, 144, 4.5, "q8_K", "ggml"),
        ("q6_K", 256, 210, 6.5625, "q8_K", "ggml"),
    ];
    let rows = formats_json();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for &(name, block, bytes, bits, act, origin) in expected {
        let row = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(row["block_size"].as_u64(), Some(block), "{name}");
        assert_eq!(row["block_bytes"].as_u64(), Some(bytes), "{name}");
        assert_eq!(row["bits_per_weight"].as_f64(), Some(bits), "{name}");
        assert_eq!(row["activation"], act, "{name}");
        assert_eq!(row["origin"], origin, "{name}");
    }
}
