//! CSV meter logs: each layout against a hand-computed integral, alignment on the meter's
//! clock, and every malformed case naming the file, line and column.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use power::csvlog::CsvLog;
use power::{DomainKind, LogSource, Meter, ProbeError, Scope, Seconds, Source};

const START: f64 = 1_790_000_000.0;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/csv_fixtures")
        .join(name)
}

fn close(actual: f64, expected: f64, rel: f64) {
    assert!(
        (actual - expected).abs() <= rel * expected.abs().max(1e-12),
        "{actual} != {expected}"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// 2.5 W (625 mA at 4 V) for 10 s sampled every 0.2 ms, as PyMonsoon writes it.
fn monsoon_constant(dir: &tempfile::TempDir) -> PathBuf {
    let mut text = String::from("Time(ms), Main(mA), Main Voltage(V)\n");
    for i in 0..=50_000 {
        writeln!(text, "{:.1},625,4", f64::from(i) * 0.2).unwrap();
    }
    write(dir, "monsoon.csv", &text)
}

#[test]
fn monsoon_constant_power_integrates_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = monsoon_constant(&dir);
    let mut log = CsvLog::open(&path, Some(START)).unwrap();
    let info = log.info().clone();
    assert_eq!(info.name, "csv:monsoon.csv");
    assert_eq!(info.source, path.display().to_string());
    assert!(info.measured);
    assert_eq!(info.domains.len(), 1);
    assert_eq!(info.domains[0].name, "main");
    assert_eq!(info.domains[0].scope, Scope::Device);
    assert!(
        info.notes.iter().any(|n| n.contains("Monsoon")),
        "{:?}",
        info.notes
    );
    assert!(
        info.notes.iter().any(|n| n.contains("50001 rows")),
        "{:?}",
        info.notes
    );
    close(info.update_period.unwrap().0, 2e-4, 1e-9);

    let trace = log.trace(START).unwrap();
    let w = trace.energy(Seconds(0.0), Seconds(10.0));
    close(w.energy_j.0, 25.0, 1e-9);
    close(w.coverage, 1.0, 1e-12);
    assert!(w.anomalies.is_empty());

    // The log started 5 s after the meter's origin: its times shift by 5 s.
    let trace = log.trace(START - 5.0).unwrap();
    close(
        trace.energy(Seconds(5.0), Seconds(15.0)).energy_j.0,
        25.0,
        1e-9,
    );
    // A window partly outside the log: only the covered 10 of 17 s count.
    let w = trace.energy(Seconds(3.0), Seconds(20.0));
    close(w.energy_j.0, 25.0, 1e-9);
    close(w.coverage, 10.0 / 17.0, 1e-9);
    close(w.largest_gap_s.0, 5.0, 1e-6);
}

#[test]
fn monsoon_usb_channel_counts_only_when_powered() {
    let mut log = CsvLog::open(&fixture("monsoon_usb.csv"), Some(START)).unwrap();
    let names: Vec<&str> = log.info().domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["main", "usb"]);
    let w = log.trace(START).unwrap().energy(Seconds(0.0), Seconds(2.0));
    // main: 0.5 A × 4 V for 2 s; usb: 0 W until 0.5 s, ramps to 0.5 W at 1 s, then 0.5 W.
    close(w.domains[0].energy_j.0, 4.0, 1e-12);
    close(w.domains[1].energy_j.0, 0.125 + 0.5, 1e-12);
    close(w.energy_j.0, 4.625, 1e-12);
}

#[test]
fn monsoon_without_start_says_how_to_give_it() {
    let err = CsvLog::open(&fixture("monsoon_usb.csv"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("monsoon_usb.csv"), "{err}");
    assert!(err.contains("@START_UNIX"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn unix_time_ramp_is_an_exact_trapezoid() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("Time,Power_W\n");
    for i in 0..=20 {
        let t = 0.5 * f64::from(i);
        writeln!(text, "{:.1},{}", START + t, 3.0 * t).unwrap(); // P = 3t
    }
    let path = write(&dir, "ramp.csv", &text);
    // Absolute times need no start.
    let mut log = CsvLog::open(&path, None).unwrap();
    assert_eq!(log.info().domains[0].name, "power");
    assert_eq!(log.info().domains[0].scope, Scope::Wall);
    let trace = log.trace(START).unwrap();
    // ∫ 3t dt over [1.25, 8.75] = 1.5 (8.75² − 1.25²) = 112.5
    let w = trace.energy(Seconds(1.25), Seconds(8.75));
    close(w.energy_j.0, 112.5, 1e-9);
    assert_eq!(w.coverage, 1.0);
    // Partly after the log's end at 10 s: ∫ over [8, 10] = 54, 2 of 6 s covered, 4 s gap.
    let w = trace.energy(Seconds(8.0), Seconds(14.0));
    close(w.energy_j.0, 54.0, 1e-9);
    close(w.coverage, 2.0 / 6.0, 1e-9);
    close(w.largest_gap_s.0, 4.0, 1e-9);
}

#[test]
fn iso_timestamps_and_milliwatts() {
    let origin = 1_795_341_600.0; // 2026-11-22T10:00:00Z
    let mut log = CsvLog::open(&fixture("iso_mw.csv"), None).unwrap();
    let trace = log.trace(origin).unwrap();
    assert_eq!(trace.points().len(), 5);
    // 1 W for 0.25 s, ramp to 3 W over 0.25 s, then 3 W for 1 s (the last row in +01:00).
    let w = trace.energy(Seconds(0.0), Seconds(1.5));
    close(w.energy_j.0, 0.25 + 0.5 + 3.0, 1e-12);
    close(trace.points()[4].t.0, 1.5, 1e-12);
}

#[test]
fn current_times_voltage_with_relative_times() {
    let path = fixture("current_voltage.csv");
    let mut log = CsvLog::open(&path, Some(START)).unwrap();
    let domain = &log.info().domains[0];
    assert_eq!(
        (domain.name.as_str(), domain.scope),
        ("power", Scope::Device)
    );
    // 2.5 W for 1 s, then a ramp to 5 W over 1 s.
    let w = log.trace(START).unwrap().energy(Seconds(0.0), Seconds(2.0));
    close(w.energy_j.0, 2.5 + 3.75, 1e-12);

    let err = CsvLog::open(&path, None).err().unwrap().to_string();
    assert!(err.contains("current_voltage.csv"), "{err}");
    assert!(err.contains("@START_UNIX"), "{err}");
}

#[test]
fn cumulative_energy_column_is_a_counter() {
    let mut log = CsvLog::open(&fixture("energy_j.csv"), None).unwrap();
    assert_eq!(
        log.info().domains[0].kind,
        DomainKind::Counter { range: None }
    );
    let trace = log.trace(START).unwrap();
    close(
        trace.energy(Seconds(0.0), Seconds(2.0)).energy_j.0,
        9.0,
        1e-12,
    );
    // Interpolated edges: 101.5 J at 0.5 s, 106 J at 1.5 s.
    close(
        trace.energy(Seconds(0.5), Seconds(1.5)).energy_j.0,
        4.5,
        1e-12,
    );
}

fn parse_error(name: &str, start: Option<f64>) -> String {
    match CsvLog::open(&fixture(name), start) {
        Err(e @ ProbeError::Parse { .. }) => e.to_string(),
        Err(other) => panic!("{name}: expected a parse error, got {other}"),
        Ok(_) => panic!("{name}: opened a malformed log"),
    }
}

#[test]
fn malformed_logs_name_file_line_and_field() {
    let err = parse_error("bad_number.csv", None);
    assert!(err.contains("bad_number.csv"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("power_w"), "{err}");
    assert!(err.contains("\"abc\""), "{err}");

    let err = parse_error("backwards.csv", None);
    assert!(err.contains("backwards.csv"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("backwards"), "{err}");

    let err = parse_error("short_row.csv", None);
    assert!(err.contains("short_row.csv"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    let err = parse_error("iso_no_zone.csv", None);
    assert!(err.contains("iso_no_zone.csv"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("time zone"), "{err}");

    let err = parse_error("nan_power.csv", None);
    assert!(err.contains("nan_power.csv"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("power_uw"), "{err}");

    let err = parse_error("unknown_header.csv", None);
    assert!(err.contains("unknown_header.csv"), "{err}");
    assert!(err.contains("when,how_much"), "{err}");
    assert!(err.contains("accepted layouts"), "{err}");
    assert!(err.contains("Monsoon"), "{err}");

    let err = parse_error("monsoon_no_voltage.csv", Some(START));
    assert!(err.contains("Main Voltage(V)"), "{err}");
}

#[test]
fn missing_file_is_unavailable_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.csv");
    match CsvLog::open(&path, None) {
        Err(e @ ProbeError::Unavailable { .. }) => {
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("opened a missing file"),
    }
}

#[test]
fn trace_rereads_rows_appended_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "growing.csv",
        "time,power\n1790000000,2\n1790000001,2\n",
    );
    let mut log = CsvLog::open(&path, None).unwrap();
    close(
        log.trace(START)
            .unwrap()
            .energy(Seconds(0.0), Seconds(3.0))
            .energy_j
            .0,
        2.0,
        1e-12,
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"1790000002,2\n1790000003,2\n").unwrap();
    let w = log.trace(START).unwrap().energy(Seconds(0.0), Seconds(3.0));
    close(w.energy_j.0, 6.0, 1e-12);
    assert_eq!(w.coverage, 1.0);
}

#[test]
fn meter_windows_cut_from_a_log_on_its_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "wall.csv", "unix,watts\n");
    let log = CsvLog::open(&path, None).unwrap();
    let meter = Meter::start(Source::Log(Box::new(log)), Duration::from_millis(10)).unwrap();
    let from = meter.mark();
    std::thread::sleep(Duration::from_millis(30));
    let to = meter.mark();
    // The external meter logs 4 W every 0.1 s from 1 s before the origin to 10 s after.
    let mut text = String::new();
    for i in -10..=100 {
        writeln!(text, "{:.6},4", meter.origin_unix() + 0.1 * f64::from(i)).unwrap();
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let w = meter.energy(from, to).unwrap();
    close(w.energy_j.0, 4.0 * (to.t.0 - from.t.0), 1e-6);
    close(w.coverage, 1.0, 1e-12);
}
