//! `ternbench claims` end to end: computed verdicts, and verdicts from results files written here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use reports::{Record, RecordKind};
use serde_json::Value;

fn claims(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_ternbench"))
        .arg("claims")
        .args(args)
        .args(["--no-measure", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

fn verdict<'a>(all: &'a [Value], id: &str) -> &'a Value {
    all.iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no verdict for {id}"))
}

fn decode(format: &str, samples: &[f64]) -> Record {
    let mut r = Record::new(RecordKind::Model, "tg32", format);
    r.model = Some("bitnet-dummy-125m".into());
    r.params = Some(123_456_789);
    r.threads = 2;
    r.kernel = Some(format!("{format}/avx2"));
    r.samples = samples.to_vec();
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    r.median = s[s.len() / 2];
    r.mean = r.median;
    r
}

fn write_results(dir: &Path, records: &[Record]) {
    let lines: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    std::fs::write(dir.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn computed_claims_need_no_results() {
    let all = claims(&[]);
    for v in &all {
        for key in ["id", "verdict", "claimed", "measured", "evidence"] {
            assert!(v[key].is_string(), "{key} missing in {v}");
        }
    }
    let tq2 = verdict(&all, "tq2_0-66-bytes-per-256");
    assert_eq!(tq2["verdict"], "confirmed");
    assert!(tq2["measured"].as_str().unwrap().contains("66 B/256"));
    // TQ1_0's 1.6875 bits give 9.48x, inside "about 10x" (>= 9.09).
    let bpw = verdict(&all, "b158-storage-10x-bpw");
    assert_eq!(bpw["verdict"], "confirmed");
    assert!(bpw["measured"].as_str().unwrap().contains("tq1_0"));
    // Flagship phones' ~77 GB/s cannot stream a 100B ternary model 5 times a second.
    assert_eq!(verdict(&all, "100b-5-7-tps-phone")["verdict"], "refuted");
    // No results and no measurement: speed and energy claims say what would test them.
    for id in [
        "bitnet.cpp-x86-speedup",
        "bitnet.cpp-arm-speedup",
        "bitnet.cpp-x86-energy",
        "2b4t-0.028-j-per-token",
    ] {
        let v = verdict(&all, id);
        assert_eq!(v["verdict"], "untestable", "{id}");
        assert!(!v["needs"].as_str().unwrap().is_empty(), "{id}");
    }
    let energy = verdict(&all, "bitnet.cpp-x86-energy");
    assert!(energy["needs"]
        .as_str()
        .unwrap()
        .contains("ternbench power probes"));
}

#[test]
fn a_3x_decode_speedup_confirms_and_1_5x_refutes() {
    let dir = tempfile::tempdir().unwrap();
    let f16 = decode("f16", &[10.0, 10.1, 9.9, 10.0, 10.05]);
    write_results(
        dir.path(),
        &[
            f16.clone(),
            decode("tq2_0", &[30.0, 30.2, 29.8, 30.1, 29.9]),
        ],
    );
    let all = claims(&[dir.path().to_str().unwrap()]);
    let v = verdict(&all, "bitnet.cpp-x86-speedup");
    assert_eq!(v["verdict"], "confirmed");
    assert!(v["measured"].as_str().unwrap().contains("3.00x"), "{v}");
    let ci = &v["values"][0]["ci95"];
    assert!(ci[0].as_f64().unwrap() > 2.8 && ci[1].as_f64().unwrap() < 3.2);
    assert!(v["evidence"].as_str().unwrap().contains("bootstrap"));
    // ARM needs ARM records; these are avx2.
    assert_eq!(
        verdict(&all, "bitnet.cpp-arm-speedup")["verdict"],
        "untestable"
    );

    let slow = dir.path().join("slow.jsonl");
    let lines = [f16, decode("tq2_0", &[15.0, 15.1, 14.9, 15.0, 15.05])]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&slow, lines + "\n").unwrap();
    let all = claims(&[slow.to_str().unwrap()]);
    let v = verdict(&all, "bitnet.cpp-x86-speedup");
    assert_eq!(v["verdict"], "refuted");
    assert!(v["measured"].as_str().unwrap().contains("1.50x"), "{v}");
}

#[test]
fn estimated_energy_is_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut f16 = decode("f16", &[10.0, 10.0, 10.0]);
    let mut t = decode("tq2_0", &[30.0, 30.0, 30.0]);
    for (r, j) in [(&mut f16, 1.0), (&mut t, 0.2)] {
        r.energy_j_per_token = Some(j);
        r.energy_measured = Some(false);
        r.energy_probe = Some("estimate:65W".into());
    }
    write_results(dir.path(), &[f16, t]);
    let all = claims(&[dir.path().to_str().unwrap()]);
    let v = verdict(&all, "bitnet.cpp-x86-energy");
    assert_eq!(v["verdict"], "untestable");
    assert!(v["evidence"].as_str().unwrap().contains("ESTIMATE"), "{v}");
    assert_eq!(
        verdict(&all, "2b4t-0.028-j-per-token")["verdict"],
        "untestable"
    );
}

#[test]
fn measured_energy_decides_the_reduction_claim() {
    let dir = tempfile::tempdir().unwrap();
    let mut f16 = decode("f16", &[10.0, 10.0, 10.0]);
    let mut t = decode("tq2_0", &[30.0, 30.0, 30.0]);
    for (r, j) in [(&mut f16, 1.0), (&mut t, 0.5)] {
        r.energy_j_per_token = Some(j);
        r.energy_measured = Some(true);
        r.idle_subtracted = Some(true);
        r.energy_probe = Some("rapl:package-0".into());
    }
    write_results(dir.path(), &[f16, t]);
    let all = claims(&[dir.path().to_str().unwrap()]);
    // 50% less energy is below the claimed 71.9..82.2%.
    let v = verdict(&all, "bitnet.cpp-x86-energy");
    assert_eq!(v["verdict"], "refuted");
    assert!(v["measured"].as_str().unwrap().contains("50.0%"), "{v}");
}
