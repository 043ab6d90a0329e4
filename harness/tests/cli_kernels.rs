//! `ternbench kernels --json`: the documented keys, a checked output, and clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn ternbench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ternbench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_records_carry_the_documented_fields() {
    let out = ternbench(&[
        "kernels",
        "--format",
        "tq2_0,i2_s,q4_0",
        "--shape",
        "64x512",
        "--tokens",
        "1,3",
        "--threads",
        "1",
        "--resident",
        "cache",
        "--repetitions",
        "3",
        "--min-time",
        "0",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = v.as_array().unwrap();
    assert_eq!(records.len(), 3 * 2);
    for r in records {
        for key in [
            "format",
            "kernel",
            "m",
            "k",
            "tokens",
            "threads",
            "resident",
            "median_ns",
            "gops",
            "gbps",
            "bandwidth_fraction",
            "ci95_ns",
            "repetitions",
            "check",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        let format = r["format"].as_str().unwrap();
        assert!(r["kernel"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{format}/")));
        assert_eq!((r["m"].as_u64(), r["k"].as_u64()), (Some(64), Some(512)));
        assert_eq!(r["resident"], "cache");
        assert!(r["median_ns"].as_f64().unwrap() > 0.0);
        assert!(r["repetitions"].as_u64().unwrap() >= 3);
        let check = &r["check"];
        assert!(check["max_rel_err"].as_f64().unwrap() <= check["tolerance"].as_f64().unwrap());
        // GOP/s is 2·m·k·tokens over the median time.
        let ops = 2.0 * 64.0 * 512.0 * r["tokens"].as_f64().unwrap();
        let gops = r["gops"].as_f64().unwrap();
        assert!((gops - ops / r["median_ns"].as_f64().unwrap()).abs() <= 1e-9 * gops.max(1.0));
    }
}

#[test]
fn a_forced_scalar_kernel_is_the_one_recorded() {
    let out = ternbench(&[
        "kernels",
        "--format",
        "tq1_0",
        "--shape",
        "32x256",
        "--threads",
        "1",
        "--resident",
        "cache",
        "--kernel",
        "scalar",
        "--repetitions",
        "2",
        "--min-time",
        "0",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["kernel"], "tq1_0/scalar");
}

#[test]
fn bad_arguments_are_named() {
    let out = ternbench(&["kernels", "--shape", "64by512"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("64by512"));
    let out = ternbench(&["kernels", "--kernel", "sse9", "--format", "tq2_0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sse9"));
    let out = ternbench(&[
        "kernels",
        "--format",
        "q3_k",
        "--resident",
        "cache",
        "--min-time",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("q3_k"));
}
