//! `ternbench run --suite quick`: the main job end to end, its files and its report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reports::{read_records, RecordKind};

/// A powercap package counter under `root` that rises about 5 W until `stop` is set.
fn moving_counter(root: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let zone = root.join("sys/class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    std::fs::write(zone.join("energy_uj"), "1\n").unwrap();
    std::thread::spawn(move || {
        let mut uj = 1u64;
        while !stop.load(Ordering::Relaxed) {
            uj += 5_000;
            // Write and rename, so the probe never reads a half-written file.
            std::fs::write(zone.join("energy_uj.tmp"), format!("{uj}\n")).unwrap();
            std::fs::rename(zone.join("energy_uj.tmp"), zone.join("energy_uj")).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

#[test]
fn the_quick_suite_writes_results_and_a_report() {
    let root = std::env::temp_dir().join(format!("ternbench-cli-run-{}", std::process::id()));
    let (out, cache, sysfs) = (root.join("out"), root.join("cache"), root.join("sysfs"));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = moving_counter(&sysfs, Arc::clone(&stop));
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_ternbench"))
            .args(["run", "--suite", "quick", "--json", "--out"])
            .arg(&out)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--probe", "rapl-powercap", "--idle", "0", "--sysfs-root"])
            .arg(&sysfs)
            .output()
            .unwrap()
    };
    let first = run();
    stop.store(true, Ordering::Relaxed);
    counter.join().unwrap();
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
    // Every record carries the energy of the fixture counter, kernels from their own pass.
    for r in &records {
        assert_eq!(r.energy_measured, Some(true), "{r:?}");
        assert_eq!(r.energy_domains, ["package-0"]);
        assert_eq!(r.idle_subtracted, Some(false));
        assert!(r.energy_gross_j.unwrap() > 0.0, "{r:?}");
        let j = r.energy_j_per_token.unwrap_or_else(|| panic!("{r:?}"));
        assert!(r.energy_j_per_token_ci95_lo.unwrap() <= j, "{r:?}");
        assert!(r
            .energy_probe
            .as_deref()
            .unwrap()
            .starts_with("rapl-powercap"));
    }
    for r in &kernels {
        assert!(r.warnings.iter().any(|w| w.contains("separate")), "{r:?}");
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
        assert_eq!(tests, ["pp32", "tg8"], "{f}");
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
