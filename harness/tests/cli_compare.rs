//! `ternbench compare`: exit codes and outputs on result files, and the interleaved gate catching
//! a planted 20% slowdown while leaving identical binaries unflagged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use reports::{Record, RecordKind, ResultWriter};
use serde_json::Value;

// The two interleaved tests would slow each other down on a 2-core runner: run them one at a time.
static MACHINE: Mutex<()> = Mutex::new(());

const BIN: &str = env!("CARGO_BIN_EXE_ternbench");

fn ternbench(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("TERNBENCH_PLANTED_SLOWDOWN");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ternbench-cli-compare-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn kernel(m: u64, center: f64) -> Record {
    let mut r = Record::new(RecordKind::Kernel, "gemv", "tq2_0");
    r.m = Some(m);
    r.k = Some(2560);
    r.tokens = Some(1);
    r.resident = Some("cache".into());
    r.kernel = Some("tq2_0/avx2".into());
    // A fixed, slightly spread set of samples: 0.99x..1.01x of the center.
    r.samples = (0..30)
        .map(|i| center * (0.99 + 0.02 * f64::from(i % 7) / 6.0))
        .collect();
    r.median = center;
    r.mean = center;
    r
}

fn write(dir: &Path, records: &[Record]) {
    let mut w = ResultWriter::create(dir).unwrap();
    for r in records {
        w.append(r).unwrap();
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn files_exit_0_without_and_1_with_a_regression() {
    let (base, same, slow) = (dir("base"), dir("same"), dir("slow"));
    write(&base, &[kernel(2560, 100_000.0), kernel(640, 30_000.0)]);
    write(&same, &[kernel(2560, 100_500.0), kernel(6912, 250_000.0)]);
    write(&slow, &[kernel(2560, 125_000.0), kernel(640, 30_000.0)]);

    let o = ternbench(
        &["compare", base.to_str().unwrap(), same.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("no change"), "{out}");
    assert!(
        out.contains("baseline only") && out.contains("candidate only"),
        "{out}"
    );

    let csv = slow.join("results.csv");
    let o = ternbench(
        &[
            "compare",
            base.to_str().unwrap(),
            csv.to_str().unwrap(),
            "--markdown",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.contains("| case | baseline median |"), "{md}");
    assert!(
        md.contains("**REGRESSION**") && md.contains("1.250"),
        "{md}"
    );

    let o = ternbench(
        &[
            "compare",
            base.to_str().unwrap(),
            slow.to_str().unwrap(),
            "--json",
            "--threshold",
            "30",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let cases: Value = serde_json::from_slice(&o.stdout).unwrap();
    let verdicts: Vec<&str> = cases
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["no_change", "no_change"], "{cases}");
    for d in [base, same, slow] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn unreadable_or_incompatible_inputs_exit_2() {
    let (a, b) = (dir("a"), dir("b"));
    write(&a, &[kernel(2560, 100.0)]);
    write(&b, &[kernel(640, 100.0)]);
    let o = ternbench(&["compare", a.to_str().unwrap(), b.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no case in common"));
    let missing = a.join("nothing-here.jsonl");
    let o = ternbench(
        &["compare", a.to_str().unwrap(), missing.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let newer = b.join("newer.jsonl");
    let line = std::fs::read_to_string(a.join("results.jsonl"))
        .unwrap()
        .replace("\"schema_version\":", "\"schema_version\":9");
    std::fs::write(&newer, line).unwrap();
    let o = ternbench(
        &["compare", a.to_str().unwrap(), newer.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("newer"),
        "{}",
        text(&o)
    );
    let o = ternbench(
        &[
            "compare",
            "--interleave",
            "--baseline-bin",
            BIN,
            "--candidate-bin",
            BIN,
            "--",
            "run",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

// 50 ABBA rounds of ~0.17 s runs (0.02 s timed) at the default 5% threshold: on this 2-core VM
// at load 1-5 slow spells (2x) hit one side of ~1 round in 5, planted intervals began at 1.08-1.20
// (over 1.05 in 14 of 14 tries; 10% failed 3 of 26) and null ones at 0.64-1.00; ~18 s each.
const INTERLEAVED: &[&str] = &[
    "compare",
    "--interleave",
    "--baseline-bin",
    BIN,
    "--candidate-bin",
    BIN,
    "--rounds",
    "50",
    "--threshold",
    "5",
    "--json",
];
const KERNELS: &[&str] = &[
    "--",
    "kernels",
    "--format",
    "tq2_0",
    "--shape",
    "2048x2048",
    "--threads",
    "1",
    "--resident",
    "cache",
    "--repetitions",
    "20",
    "--min-time",
    "0.02",
];

fn interleaved(extra: &[&str]) -> (Output, Value) {
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let args: Vec<&str> = INTERLEAVED
        .iter()
        .chain(extra)
        .chain(KERNELS)
        .copied()
        .collect();
    let o = ternbench(&args, &[]);
    let cases: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    eprintln!("{}", text(&o));
    (o, cases)
}

#[test]
fn interleaved_gate_catches_a_planted_20_percent_slowdown() {
    let (o, cases) = interleaved(&["--candidate-env", "TERNBENCH_PLANTED_SLOWDOWN=0.2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let case = &cases[0];
    assert_eq!(case["verdict"], "regression", "{case}");
    assert_eq!(case["paired_rounds"], 50, "{case}");
    let ratio = case["ratio"].as_f64().unwrap();
    assert!((1.1..1.4).contains(&ratio), "{case}");
    assert!(case["ci95"][0].as_f64().unwrap() > 1.05, "{case}");
    let notes = case["notes"].to_string();
    assert!(
        notes.contains("candidate: TERNBENCH_PLANTED_SLOWDOWN=0.2"),
        "{case}"
    );
    assert!(!notes.contains("baseline: TERNBENCH_PLANTED"), "{case}");
}

#[test]
fn interleaved_gate_leaves_identical_binaries_unflagged() {
    let (o, cases) = interleaved(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let case = &cases[0];
    assert_ne!(case["verdict"], "regression", "{case}");
    assert_eq!(case["paired_rounds"], 50, "{case}");
    assert!(!case["notes"].to_string().contains("PLANTED"), "{case}");
}
