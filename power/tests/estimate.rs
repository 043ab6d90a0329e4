//! The TDP × utilisation estimate on a fixture `proc/stat`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sysfs.rs"]
mod sysfs;

use power::{estimate, DomainKind, ProbeError, Scope, Watts};
use sysfs::write;

/// `proc/stat` with the aggregate line given and a per-CPU line that must be ignored.
fn stat(root: &std::path::Path, cpu: &str) {
    write(
        root,
        "proc/stat",
        &format!("cpu  {cpu}\ncpu0 1 1 1 1 1 1 1 1 0 0\nintr 12345\nctxt 999\n"),
    );
}

#[test]
fn watts_are_tdp_times_utilisation_between_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // busy = 100+20+50+5+5+0 = 180, total = 180+800+30 = 1010
    stat(root, "100 20 50 800 30 5 5 0 0 0");
    let mut probe = estimate::open(root, Watts(65.0)).unwrap();
    let info = probe.info().clone();
    assert!(!info.measured);
    assert_eq!(info.name, "estimate:tdp=65W");
    assert_eq!(info.domains.len(), 1);
    let d = &info.domains[0];
    assert_eq!(
        (d.name.as_str(), d.scope, d.kind, d.in_total),
        ("cpu (estimated)", Scope::Package, DomainKind::Power, true)
    );
    assert!(info
        .notes
        .iter()
        .any(|n| n == "estimate: TDP × utilisation, not a measurement"));
    // No tick since the baseline read at open.
    assert_eq!(probe.read().unwrap(), vec![0.0]);
    // busy +300 (user 200, system 50, irq 20, softirq 10, steal 20), total +400: 75 % of 65 W.
    stat(root, "300 20 100 890 40 25 15 20 0 0");
    assert_eq!(probe.read().unwrap(), vec![48.75]);
    // No new tick: the last figure stands.
    assert_eq!(probe.read().unwrap(), vec![48.75]);
    // busy +0, total +100 (idle): 0 W.
    stat(root, "300 20 100 990 40 25 15 20 0 0");
    assert_eq!(probe.read().unwrap(), vec![0.0]);
    // Fully busy: the TDP.
    stat(root, "400 20 100 990 40 25 15 20 0 0");
    assert_eq!(probe.read().unwrap(), vec![65.0]);
}

#[test]
fn a_fractional_tdp_is_named_as_given() {
    let dir = tempfile::tempdir().unwrap();
    stat(dir.path(), "1 0 0 1 0 0 0 0");
    let probe = estimate::open(dir.path(), Watts(12.5)).unwrap();
    assert_eq!(probe.info().name, "estimate:tdp=12.5W");
}

#[test]
fn missing_or_garbled_proc_stat_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = estimate::open(dir.path(), Watts(65.0)).err().unwrap();
    assert!(matches!(err, ProbeError::Io { .. }), "{err}");
    assert!(err.to_string().contains("proc/stat"));

    write(dir.path(), "proc/stat", "cpu  1 2 x 4\n");
    let err = estimate::open(dir.path(), Watts(65.0)).err().unwrap();
    assert!(matches!(err, ProbeError::Parse { .. }), "{err}");

    stat(dir.path(), "1 0 0 1 0 0 0 0");
    let err = estimate::open(dir.path(), Watts(0.0)).err().unwrap();
    assert!(matches!(err, ProbeError::Spec { .. }), "{err}");
}

#[test]
fn this_machine_proc_stat_gives_a_bounded_estimate() {
    let mut probe = estimate::open(std::path::Path::new("/"), Watts(65.0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let w = probe.read().unwrap()[0];
    assert!((0.0..=65.0).contains(&w), "{w}");
}
