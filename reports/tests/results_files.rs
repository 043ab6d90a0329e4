//! results.jsonl / results.csv: round trips, interrupted runs, schema versions.
// Tests unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use reports::{
    field_names, read_records, read_records_recovering, Record, ReportError, ResultWriter,
    SCHEMA_VERSION,
};

fn write_all(dir: &std::path::Path, records: &[Record]) -> ResultWriter {
    let mut w = ResultWriter::create(dir).unwrap();
    for r in records {
        w.append(r).unwrap();
    }
    w
}

#[test]
fn jsonl_and_csv_round_trip_with_the_same_fields() {
    let dir = common::fresh_dir("round_trip");
    let mut records = common::fixture();
    // Cells that need CSV quoting must survive too.
    records[1].check = Some("max rel err 3e-7, \"bit-exact\" on ints".to_owned());
    let w = write_all(&dir, &records);
    let (jsonl, csv) = w.paths();

    for path in [jsonl, csv] {
        let back = read_records(path).unwrap();
        assert_eq!(back.len(), records.len());
        for (got, want) in back.iter().zip(&records) {
            assert_eq!(got, want, "{}", path.display());
        }
    }

    // Same fields, same order: the CSV header and the keys of every JSON line.
    let text = std::fs::read_to_string(csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(header, field_names().collect::<Vec<_>>());
    for line in std::fs::read_to_string(jsonl).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut expected = header.clone();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }
    // Lists are ';'-joined in CSV.
    assert!(text.contains("only 5 repetitions;cpu frequency changed during the run"));
    assert!(text.contains("54;56") || text.contains("54.0;56.0"));
}

#[test]
fn create_refuses_to_overwrite_results() {
    let dir = common::fresh_dir("no_overwrite");
    drop(ResultWriter::create(&dir).unwrap());
    let err = ResultWriter::create(&dir).unwrap_err();
    assert!(matches!(err, ReportError::Exists(_)), "{err}");
}

#[test]
fn truncated_last_line_is_reported_or_skipped() {
    let dir = common::fresh_dir("truncated");
    let records = common::fixture();
    let w = write_all(&dir, &records[..3]);
    let (jsonl, csv) = (w.paths().0.to_owned(), w.paths().1.to_owned());
    drop(w);
    // Simulate a crash half-way through writing a fourth record.
    for path in [&jsonl, &csv] {
        let full = std::fs::read_to_string(path).unwrap();
        let last = full.lines().last().unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(&last.as_bytes()[..last.len() / 2]).unwrap();
    }

    for (path, line) in [(&jsonl, 4), (&csv, 5)] {
        let err = read_records(path).unwrap_err();
        assert!(
            matches!(err, ReportError::Truncated { line: l, .. } if l == line),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("{}:{line}", path.display())), "{msg}");

        let got = read_records_recovering(path).unwrap();
        assert_eq!(got.records, records[..3]);
        let warning = got.warning.unwrap();
        assert!(warning.contains(&format!(":{line}:")), "{warning}");
    }
}

#[test]
fn broken_line_in_the_middle_names_file_and_line() {
    let dir = common::fresh_dir("broken_middle");
    let path = dir.join("results.jsonl");
    let good = serde_json::to_string(&common::fixture()[0]).unwrap();
    std::fs::write(&path, format!("{good}\n{{\"schema_version\": 1,\n{good}\n")).unwrap();
    let err = read_records(&path).unwrap_err();
    assert!(matches!(err, ReportError::Parse { line: 2, .. }), "{err}");
    assert!(read_records_recovering(&path).is_err());
}

#[test]
fn newer_schema_is_refused_and_unknown_fields_ignored() {
    let dir = common::fresh_dir("schema");
    let mut v = serde_json::to_value(&common::fixture()[0]).unwrap();
    v["from_the_future"] = serde_json::json!({"nested": true});
    let path = dir.join("results.jsonl");
    std::fs::write(&path, format!("{v}\n")).unwrap();
    assert_eq!(read_records(&path).unwrap(), common::fixture()[..1]);

    v["schema_version"] = serde_json::json!(SCHEMA_VERSION + 1);
    std::fs::write(&path, format!("{v}\n")).unwrap();
    let err = read_records(&path).unwrap_err();
    assert!(
        matches!(err, ReportError::SchemaTooNew { line: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
    // Plain serde refuses it as well.
    let direct = serde_json::from_value::<Record>(v).unwrap_err().to_string();
    assert!(direct.contains("newer than this build"), "{direct}");
}

#[test]
fn non_finite_values_are_refused_not_written_as_null() {
    let dir = common::fresh_dir("nan");
    let mut w = ResultWriter::create(&dir).unwrap();
    let mut r = common::fixture().remove(0);
    r.samples.push(f64::NAN);
    assert!(matches!(w.append(&r), Err(ReportError::Encode { .. })));
    assert_eq!(read_records(w.paths().0).unwrap(), Vec::<Record>::new());
}
