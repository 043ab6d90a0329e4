//! `ternbench power probes`, `power measure` and the energy fields of `model run`, on fixture
//! sysfs trees (CI has no RAPL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

fn ternbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ternbench"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn golden(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/golden")
        .join(name)
        .display()
        .to_string()
}

/// A one-package Intel powercap tree; returns the package's `energy_uj` path.
fn powercap(root: &Path, energy_uj: u64) -> PathBuf {
    let zone = root.join("sys/class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    std::fs::write(zone.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    zone.join("energy_uj")
}

#[test]
fn probes_lists_each_kind_with_the_reason_it_is_missing() {
    let root = tempfile::tempdir().unwrap();
    let v = json(&ternbench(&[
        "power",
        "probes",
        "--sysfs-root",
        root.path().to_str().unwrap(),
        "--json",
    ]));
    let list = v.as_array().unwrap();
    assert!(list.len() >= 4, "{v}");
    for p in list {
        assert_eq!(p["available"], false, "{p}");
        assert!(!p["reason"].as_str().unwrap().is_empty(), "{p}");
    }
    powercap(root.path(), 1_000_000);
    let v = json(&ternbench(&[
        "power",
        "probes",
        "--sysfs-root",
        root.path().to_str().unwrap(),
        "--json",
    ]));
    let powercap = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["spec"] == "rapl-powercap")
        .unwrap();
    assert_eq!(powercap["available"], true, "{powercap}");
}

#[test]
fn measure_reports_the_counter_delta_of_the_command() {
    let root = tempfile::tempdir().unwrap();
    let energy = powercap(root.path(), 1_000_000);
    // The command itself moves the counter by exactly 2.5 J; the probe reads at both marks.
    let script = format!("echo 3500000 > {}", energy.display());
    let v = json(&ternbench(&[
        "power",
        "measure",
        "--probe",
        "rapl-powercap",
        "--sysfs-root",
        root.path().to_str().unwrap(),
        "--idle",
        "0",
        "--json",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    assert_eq!(v["measured"], true);
    assert!((v["energy_j"].as_f64().unwrap() - 2.5).abs() < 1e-9, "{v}");
    assert!(v["probe"].as_str().unwrap().contains("package-0"), "{v}");
    assert!(v["duration_s"].as_f64().unwrap() > 0.0);
    assert!(v["avg_power_w"].as_f64().unwrap() > 0.0);
    assert!(v["idle_power_w"].is_null(), "{v}");
    assert_eq!(v["exit_code"], 0);
}

#[test]
fn measure_subtracts_idle_measured_in_the_same_run() {
    let root = tempfile::tempdir().unwrap();
    let energy = powercap(root.path(), 1_000_000);
    let script = format!("echo 2000000 > {}", energy.display());
    let v = json(&ternbench(&[
        "power",
        "measure",
        "--probe",
        "rapl-powercap",
        "--sysfs-root",
        root.path().to_str().unwrap(),
        "--idle",
        "0.2",
        "--json",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    // The counter stood still while idle: idle power 0 W, net equals gross.
    assert_eq!(v["idle_power_w"].as_f64().unwrap(), 0.0, "{v}");
    assert!(
        (v["net_energy_j"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{v}"
    );
}

#[test]
fn measure_without_a_probe_is_a_clear_error_not_zero_joules() {
    let root = tempfile::tempdir().unwrap();
    let out = ternbench(&[
        "power",
        "measure",
        "--sysfs-root",
        root.path().to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("energy not measured"), "{err}");
    assert!(err.contains("rapl"), "{err}");
    let out = ternbench(&["power", "measure", "--probe", "rapl9", "--", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad probe spec"));
}

fn model_run(extra: &[&str]) -> Value {
    model_run_sized("32", "32", extra)
}

/// `model run` on the tiny 2B4T-layout model with `prompt` and `generate` tokens.
fn model_run_sized(prompt: &str, generate: &str, extra: &[&str]) -> Value {
    let model = golden("tiny-b158.gguf");
    let mut args = vec![
        "model",
        "run",
        "--model",
        &model,
        "-p",
        prompt,
        "-n",
        generate,
        "--threads",
        "1",
        "--repetitions",
        "3",
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&ternbench(&args))
}

#[test]
fn model_run_without_a_probe_says_energy_was_not_measured() {
    let v = model_run(&["--probe", "none"]);
    assert!(v["energy"]["probe"].is_null(), "{}", v["energy"]);
    assert!(v["energy"]["measured"].is_null());
    let notes = v["energy"]["notes"].to_string();
    assert!(notes.contains("not measured"), "{notes}");
}

#[test]
fn model_run_withholds_j_per_token_when_the_counter_did_not_move() {
    let root = tempfile::tempdir().unwrap();
    powercap(root.path(), 5_000_000);
    let v = model_run(&[
        "--probe",
        "rapl-powercap",
        "--sysfs-root",
        root.path().to_str().unwrap(),
        "--idle",
        "0",
    ]);
    let e = &v["energy"];
    assert_eq!(e["measured"], true, "{e}");
    assert_eq!(e["decode"]["gross_j"].as_f64().unwrap(), 0.0, "{e}");
    assert!(e["decode"]["j_per_token"].is_null(), "{e}");
    assert!(e["notes"].to_string().contains("withheld"), "{e}");
}

#[test]
fn model_run_carries_energy_per_token_from_a_moving_counter() {
    let root = tempfile::tempdir().unwrap();
    let energy = powercap(root.path(), 0);
    std::fs::write(&energy, "1\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // About 10 W: 10 mJ every millisecond, RAPL's own update period.
            let mut uj = 1u64;
            while !stop.load(Ordering::Relaxed) {
                uj += 10_000;
                // Write and rename, so the probe never reads a half-written file.
                let tmp = energy.with_extension("tmp");
                std::fs::write(&tmp, format!("{uj}\n")).unwrap();
                std::fs::rename(&tmp, &energy).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Windows of tens of milliseconds: ten or more probe updates each (J/token is withheld below
    // that), with room for the writer thread to be scheduled late on a loaded machine.
    let v = model_run_sized(
        "512",
        "128",
        &[
            "--probe",
            "rapl-powercap",
            "--sysfs-root",
            root.path().to_str().unwrap(),
            "--idle",
            "0",
        ],
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let e = &v["energy"];
    assert_eq!(e["idle_subtracted"], false, "{e}");
    for phase in ["prefill", "decode"] {
        let p = &e[phase];
        assert_eq!(p["windows"], 3, "{p}");
        let gross = p["gross_j"].as_f64().unwrap();
        let duration = p["duration_s"].as_f64().unwrap();
        assert!(gross > 0.0, "{p}");
        assert!((p["avg_power_w"].as_f64().unwrap() - gross / duration).abs() < 1e-6);
        let ci = p["j_per_token_ci95"].as_array().unwrap();
        let j = p["j_per_token"].as_f64().unwrap_or_else(|| panic!("{e}"));
        assert!(
            ci[0].as_f64().unwrap() <= j && j <= ci[1].as_f64().unwrap(),
            "{p}"
        );
        let per_window = if phase == "prefill" { 512 } else { 128 };
        assert_eq!(p["tokens"], 3 * per_window);
    }
}
