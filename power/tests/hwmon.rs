//! hwmon power and energy sensors on fixture trees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sysfs.rs"]
mod sysfs;

use power::{hwmon, DomainKind, ProbeError, Scope, Seconds};
use sysfs::write;

#[test]
fn ina226_power_input_reads_watts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "sys/class/hwmon/hwmon0/name", "ina226\n");
    write(root, "sys/class/hwmon/hwmon0/in0_input", "2\n");
    write(root, "sys/class/hwmon/hwmon0/in1_input", "12000\n");
    write(root, "sys/class/hwmon/hwmon0/curr1_input", "427\n");
    write(root, "sys/class/hwmon/hwmon0/power1_input", "5125000\n");
    write(root, "sys/class/hwmon/hwmon0/update_interval", "35\n");
    let mut probe = hwmon::open(root).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.name, "hwmon:ina226");
    assert!(info.measured);
    assert_eq!(info.update_period, Some(Seconds(0.035)));
    assert_eq!(info.domains.len(), 1);
    let d = &info.domains[0];
    assert_eq!(
        (d.name.as_str(), d.scope, d.kind, d.in_total),
        ("ina226:power1", Scope::Rail, DomainKind::Power, true)
    );
    assert_eq!(probe.read().unwrap(), vec![5.125]);
    write(root, "sys/class/hwmon/hwmon0/power1_input", "250000\n");
    assert_eq!(probe.read().unwrap(), vec![0.25]);
}

#[test]
fn energy_input_is_a_counter_and_power_limits_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "sys/class/hwmon/hwmon3/name", "i915\n");
    write(root, "sys/class/hwmon/hwmon3/energy1_input", "123456789\n");
    write(root, "sys/class/hwmon/hwmon3/power1_max", "35000000\n");
    write(root, "sys/class/hwmon/hwmon3/power1_crit", "80000000\n");
    let mut probe = hwmon::open(root).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.domains.len(), 1);
    assert_eq!(info.domains[0].name, "i915:energy1");
    assert_eq!(info.domains[0].kind, DomainKind::Counter { range: None });
    assert!(info.domains[0].in_total);
    assert_eq!(probe.read().unwrap(), vec![123.456789]);
}

#[test]
fn a_chip_with_energy_and_power_counts_energy_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "sys/class/hwmon/hwmon1/name", "amdgpu\n");
    write(root, "sys/class/hwmon/hwmon1/energy1_input", "1000000\n");
    write(root, "sys/class/hwmon/hwmon1/power1_average", "40000000\n");
    write(root, "sys/class/hwmon/hwmon1/power1_label", "PPT\n");
    let mut probe = hwmon::open(root).unwrap();
    let info = probe.info().clone();
    let got: Vec<(&str, bool)> = info
        .domains
        .iter()
        .map(|d| (d.name.as_str(), d.in_total))
        .collect();
    assert_eq!(got, vec![("amdgpu:energy1", true), ("PPT", false)]);
    assert_eq!(probe.read().unwrap(), vec![1.0, 40.0]);
}

fn ina3221(root: &std::path::Path, labels: [&str; 3]) {
    let base = "sys/class/hwmon/hwmon2";
    write(root, &format!("{base}/name"), "ina3221\n");
    for (n, (label, (mv, ma))) in labels
        .iter()
        .zip([(5000, 1500), (5000, 600), (5000, 300)])
        .enumerate()
    {
        let n = n + 1;
        write(root, &format!("{base}/in{n}_label"), &format!("{label}\n"));
        write(root, &format!("{base}/in{n}_input"), &format!("{mv}\n"));
        write(root, &format!("{base}/curr{n}_input"), &format!("{ma}\n"));
        write(root, &format!("{base}/in{n}_enable"), "1\n");
        // Shunt voltages in µV: not a bus voltage, never multiplied.
        write(root, &format!("{base}/in{}_input", n + 3), "7500\n");
    }
    write(root, &format!("{base}/update_interval"), "8\n");
}

#[test]
fn ina3221_channels_are_volts_times_amps_and_only_vdd_in_is_total() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ina3221(root, ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]);
    let mut probe = hwmon::open(root).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.name, "hwmon:ina3221");
    let got: Vec<(&str, Scope, bool)> = info
        .domains
        .iter()
        .map(|d| (d.name.as_str(), d.scope, d.in_total))
        .collect();
    assert_eq!(
        got,
        vec![
            ("VDD_IN", Scope::Device, true),
            ("VDD_CPU_GPU_CV", Scope::Rail, false),
            ("VDD_SOC", Scope::Rail, false),
        ]
    );
    assert!(info.domains.iter().all(|d| d.kind == DomainKind::Power));
    // 5000 mV × 1500 mA = 7.5 W, × 600 mA = 3 W, × 300 mA = 1.5 W.
    assert_eq!(probe.read().unwrap(), vec![7.5, 3.0, 1.5]);
    write(root, "sys/class/hwmon/hwmon2/in1_input", "4800\n");
    write(root, "sys/class/hwmon/hwmon2/curr1_input", "2500\n");
    assert_eq!(probe.read().unwrap(), vec![12.0, 3.0, 1.5]);
    assert!(info
        .notes
        .iter()
        .any(|n| n.contains("VDD_IN") && n.contains("curr1_input")));
}

#[test]
fn ina3221_without_an_input_label_sums_its_rails_and_skips_disabled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ina3221(root, ["CPU", "GPU", "DDR"]);
    write(root, "sys/class/hwmon/hwmon2/in3_enable", "0\n");
    let mut probe = hwmon::open(root).unwrap();
    let names: Vec<(&str, bool)> = probe
        .info()
        .domains
        .iter()
        .map(|d| (d.name.as_str(), d.in_total))
        .collect();
    assert_eq!(names, vec![("CPU", true), ("GPU", true)]);
    assert_eq!(probe.read().unwrap(), vec![7.5, 3.0]);
}

#[test]
fn two_chips_of_the_same_kind_get_distinct_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (n, uw) in [(0, "1000000"), (1, "2000000")] {
        write(root, &format!("sys/class/hwmon/hwmon{n}/name"), "ina226\n");
        write(
            root,
            &format!("sys/class/hwmon/hwmon{n}/power1_input"),
            &format!("{uw}\n"),
        );
    }
    let mut probe = hwmon::open(root).unwrap();
    let names: Vec<&str> = probe
        .info()
        .domains
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, vec!["hwmon0:ina226:power1", "hwmon1:ina226:power1"]);
    assert_eq!(probe.read().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn only_temperature_and_fan_sensors_is_unavailable_and_says_what_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "sys/class/hwmon/hwmon0/name", "coretemp\n");
    write(root, "sys/class/hwmon/hwmon0/temp1_input", "45000\n");
    write(root, "sys/class/hwmon/hwmon0/temp2_input", "47000\n");
    write(root, "sys/class/hwmon/hwmon1/name", "nct6775\n");
    write(root, "sys/class/hwmon/hwmon1/fan1_input", "1200\n");
    write(root, "sys/class/hwmon/hwmon1/in0_input", "1100\n");
    let err = hwmon::open(root).err().expect("temps only opened");
    let msg = err.to_string();
    assert!(matches!(err, ProbeError::Unavailable { .. }), "{msg}");
    assert!(msg.contains("hwmon0 (coretemp: temp)"), "{msg}");
    assert!(msg.contains("hwmon1 (nct6775: fan, in)"), "{msg}");

    let empty = tempfile::tempdir().unwrap();
    let msg = hwmon::open(empty.path()).err().unwrap().to_string();
    assert!(msg.contains("sys/class/hwmon"), "{msg}");
}

#[test]
fn a_garbled_reading_is_a_parse_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "sys/class/hwmon/hwmon0/name", "ina226\n");
    write(root, "sys/class/hwmon/hwmon0/power1_input", "n/a\n");
    match hwmon::open(root) {
        Err(ProbeError::Parse { path, field, .. }) => {
            assert!(path.ends_with("hwmon0/power1_input"));
            assert_eq!(field, "power1_input");
        }
        other => panic!("expected Parse, got {:?}", other.map(|_| ())),
    }
}
