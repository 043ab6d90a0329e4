//! `ternbench run --suite quick`: the main job end to end, its files and its report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use reports::{read_records, RecordKind};

#[test]
fn the_quick_suite_writes_results_and_a_report() {
    let root = std::env::temp_dir().join(format!("ternbench-cli-run-{}", std::process::id()));
    let (out, cache) = (root.join("out"), root.join("cache"));
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_ternbench"))
            .args(["run", "--suite", "quick", "--json", "--out"])
            .arg(&out)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let records = read_records(&out.join("results.jsonl")).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), records.len());
    assert_eq!(
        read_records(&out.join("results.csv")).unwrap().len(),
        records.len()
    );

    let kernels: Vec<_> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Kernel)
        .collect();
    let models: Vec<_> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Model)
        .collect();
    // Six formats at the four 2B4T shapes, GEMV, cache-resident.
    assert_eq!(kernels.len(), 24);
    for f in ["tq2_0", "tq1_0", "i2_s", "f16", "q4_0"] {
        assert_eq!(kernels.iter().filter(|r| r.format == f).count(), 4, "{f}");
    }
    for r in &kernels {
        assert!(r.samples.len() >= 5 && r.median > 0.0, "{r:?}");
        assert!(r.kernel.as_deref().unwrap().starts_with(&r.format));
        assert!(r.check.as_deref().unwrap().contains("scalar reference"));
    }
    // Prefill and decode of a synthetic model for each of four formats, two rounds each.
    assert_eq!(models.len(), 8);
    for f in ["tq2_0", "i2_s", "f16", "q4_0"] {
        let tests: Vec<&str> = models
            .iter()
            .filter(|r| r.format == f)
            .map(|r| r.test.as_str())
            .collect();
        assert_eq!(tests, ["pp16", "tg8"], "{f}");
    }
    for r in &models {
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.tps, Some(r.median));
        assert_eq!(r.model.as_deref(), Some("bitnet-dummy-125m"));
        assert!(r.params.unwrap() > 100_000_000);
        assert!(r.ci95_lo.unwrap() <= r.median && r.median <= r.ci95_hi.unwrap());
    }
    let decode = models
        .iter()
        .find(|r| r.test == "tg8" && r.format == "tq2_0")
        .unwrap();
    assert!(decode.bandwidth_fraction.unwrap() > 0.0 && decode.gbps.unwrap() > 0.0);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("tq2_0") && report.contains("vs f16"));
    assert!(out.join("report.html").exists() && out.join("system.json").exists());

    // A second run into the same directory must not overwrite the first.
    let second = run();
    assert!(!second.status.success());
    assert_eq!(
        read_records(&out.join("results.jsonl")).unwrap().len(),
        records.len()
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn sysinfo_json_names_the_machine_and_the_build() {
    let out = Command::new(env!("CARGO_BIN_EXE_ternbench"))
        .args(["sysinfo", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "cpu",
        "arch",
        "isa",
        "logical_cpus",
        "caches",
        "memory_bytes",
        "os",
        "rustc",
        "git_commit",
        "build_profile",
    ] {
        assert!(!v[key].is_null(), "{key}");
    }
    assert!(v["isa"].as_array().unwrap().iter().any(|i| i == "scalar"));
    assert!(v["memory_bytes"].as_u64().unwrap() > 0);
}
