//! Cross-hardware reports: merging result sets from several machines and rendering them side
//! by side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use reports::{merge, render_machines, ClaimRow, Record, ResultWriter};

fn write_run(dir: &Path, records: &[Record], hostname: &str, cpu: &str) -> PathBuf {
    let mut w = ResultWriter::create(dir).unwrap();
    for r in records {
        w.append(r).unwrap();
    }
    std::fs::write(
        dir.join("system.json"),
        serde_json::json!({"hostname": hostname, "cpu": cpu, "memory_bytes": 1u64 << 34})
            .to_string(),
    )
    .unwrap();
    dir.join("results.jsonl")
}

/// The fixture's records as another machine's run: a new run id and faster decode.
fn other_machine(speed: f64) -> Vec<Record> {
    common::fixture()
        .into_iter()
        .map(|mut r| {
            r.run_id = "20250201-090000-cd34".to_owned();
            r.device = Some("Apple M2".to_owned());
            if r.kind == reports::RecordKind::Model {
                for s in r.samples.iter_mut() {
                    *s *= speed;
                }
                r.median *= speed;
                r.mean *= speed;
                r.ci95_lo = r.ci95_lo.map(|v| v * speed);
                r.ci95_hi = r.ci95_hi.map(|v| v * speed);
                r.tps = r.tps.map(|v| v * speed);
            }
            r
        })
        .collect()
}

#[test]
fn two_machines_render_side_by_side_with_every_metric() {
    let root = common::fresh_dir("machines-side-by-side");
    let a = write_run(
        &root.join("a"),
        &common::fixture(),
        "epyc-box",
        "AMD EPYC 7B13",
    );
    write_run(&root.join("b"), &other_machine(2.0), "mac", "Apple M2");
    let merged = merge(&[a, root.join("b")]).unwrap();
    assert_eq!(merged.machines.len(), 2);
    assert_eq!(merged.machines[0].name, "epyc-box (AMD EPYC 7B13)");
    assert_eq!(merged.machines[1].name, "mac (Apple M2)");
    let claims = vec![ClaimRow {
        machine: "mac (Apple M2)".into(),
        id: "tq2-66-bytes".into(),
        verdict: "confirmed".into(),
        claimed: "66".into(),
        measured: "66".into(),
        evidence: "block layout".into(),
    }];
    let out = root.join("report");
    let files = render_machines(&merged.machines, &claims, &merged.notes, &out).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    for heading in [
        "Decode tokens/s",
        "Prefill tokens/s",
        "Speedup over f16 and q4_0",
        "Energy per token",
        "Fraction of measured bandwidth",
        "Systems",
        "Claims",
    ] {
        assert!(md.contains(&format!("## {heading}")), "{heading} missing");
    }
    assert!(
        md.contains("| epyc-box (AMD EPYC 7B13) | mac (Apple M2) |"),
        "{md}"
    );
    assert!(md.contains("tq2-66-bytes"));
    // Each machine's decode t/s appears in its own column: the second is twice the first.
    let row = md
        .lines()
        .find(|l| l.starts_with("| tg32 tq2_0"))
        .expect("a tq2_0 decode row");
    let cells: Vec<f64> = row
        .split('|')
        .skip(2)
        .filter_map(|c| c.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(cells.len(), 2, "{row}");
    assert!((cells[1] / cells[0] - 2.0).abs() < 0.01, "{row}");
    assert!(files.charts.len() >= 4, "{:?}", files.charts);
    for c in &files.charts {
        assert!(c.svg.exists() && c.png.exists());
    }
}

#[test]
fn duplicate_runs_and_schema_versions_are_merged_with_a_message() {
    let root = common::fresh_dir("machines-merge-notes");
    let a = write_run(
        &root.join("a"),
        &common::fixture(),
        "epyc-box",
        "AMD EPYC 7B13",
    );
    // The same run copied elsewhere must not be counted twice.
    std::fs::create_dir_all(root.join("copy")).unwrap();
    std::fs::copy(&a, root.join("copy/results.jsonl")).unwrap();
    let mut old = other_machine(1.5);
    for r in &mut old {
        r.schema_version = 1;
    }
    write_run(&root.join("old"), &old, "mac", "Apple M2");
    let merged = merge(&[a, root.join("copy"), root.join("old")]).unwrap();
    let notes = merged.notes.join("\n");
    assert!(notes.contains("appears in both"), "{notes}");
    assert!(notes.contains("different schema versions"), "{notes}");
    assert!(
        notes.contains("schema 1") && notes.contains("schema 2"),
        "{notes}"
    );
    assert_eq!(merged.machines.len(), 2);
    let fixture_len = common::fixture().len();
    assert_eq!(merged.machines[0].records.len(), fixture_len);
}

#[test]
fn a_directory_without_results_is_an_error_naming_it() {
    let root = common::fresh_dir("machines-empty-dir");
    let err = merge(std::slice::from_ref(&root)).unwrap_err().to_string();
    assert!(err.contains("machines-empty-dir"), "{err}");
    assert!(err.contains("results.jsonl"), "{err}");
}
