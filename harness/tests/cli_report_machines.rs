//! `ternbench report` over two machines' results: the cross-hardware report with each
//! machine's claim verdicts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use reports::{Record, RecordKind, ResultWriter};

fn decode(format: &str, tps: f64, run: &str, cpu: &str) -> Record {
    let mut r = Record::new(RecordKind::Model, "tg32", format);
    r.run_id = run.to_owned();
    r.device = Some(cpu.to_owned());
    r.params = Some(125_000_000);
    r.threads = 2;
    r.kernel = Some(format!("{format}/avx2"));
    r.samples = vec![tps * 0.99, tps, tps * 1.01, tps * 1.005, tps * 0.995];
    r.median = tps;
    r.mean = tps;
    r.tps = Some(tps);
    r
}

fn machine(dir: &Path, host: &str, cpu: &str, ternary_tps: f64) {
    let mut w = ResultWriter::create(dir).unwrap();
    let run = format!("run-{host}");
    w.append(&decode("tq2_0", ternary_tps, &run, cpu)).unwrap();
    w.append(&decode("f16", 10.0, &run, cpu)).unwrap();
    std::fs::write(
        dir.join("system.json"),
        serde_json::json!({"hostname": host, "cpu": cpu, "arch": "x86_64"}).to_string(),
    )
    .unwrap();
}

#[test]
fn two_machines_get_a_side_by_side_report_with_their_claim_verdicts() {
    let root = tempfile::tempdir().unwrap();
    machine(&root.path().join("a"), "box-a", "Xeon A", 40.0);
    machine(&root.path().join("b"), "box-b", "Xeon B", 15.0);
    let out = root.path().join("report");
    let status = Command::new(env!("CARGO_BIN_EXE_ternbench"))
        .args(["report"])
        .arg(root.path().join("a"))
        .arg(root.path().join("b"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("# ternbench cross-hardware report"), "{md}");
    assert!(md.contains("| box-a (Xeon A) | box-b (Xeon B) |"), "{md}");
    // 4x over f16 on one machine confirms the x86 speedup claim there; 1.5x refutes it on the other.
    let verdict = |host: &str| {
        md.lines()
            .find(|l| l.contains(host) && l.contains("bitnet.cpp-x86-speedup"))
            .unwrap_or_else(|| panic!("no x86 speedup verdict for {host}"))
            .to_owned()
    };
    assert!(
        verdict("box-a").contains("confirmed"),
        "{}",
        verdict("box-a")
    );
    assert!(verdict("box-b").contains("refuted"), "{}", verdict("box-b"));
    assert!(md.contains("4.00×"), "speedup table: {md}");
}
