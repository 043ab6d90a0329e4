//! RAPL on fixture powercap and perf PMU trees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sysfs.rs"]
mod sysfs;

use std::path::Path;

use power::rapl::{self, PerfPmu};
use power::{AnomalyKind, DomainKind, Joules, ProbeError, Scope, Seconds, Trace};
use sysfs::{approx, cpuinfo, set, write, zone, MAX_UJ};

fn domain<'a>(probe: &'a dyn power::Probe, name: &str) -> (usize, &'a power::Domain) {
    probe
        .info()
        .domains
        .iter()
        .enumerate()
        .find(|(_, d)| d.name == name)
        .unwrap_or_else(|| panic!("no domain {name} in {:?}", probe.info().domains))
}

/// A client laptop: package-0 with core and uncore, and psys as its own top zone.
fn intel_client(root: &Path) {
    cpuinfo(root, "GenuineIntel", "fpu vme msr rapl");
    zone(
        root,
        "intel-rapl:0",
        "package-0",
        52_649_883_221,
        Some(MAX_UJ),
    );
    zone(root, "intel-rapl:0:0", "core", 20_000_000_000, Some(MAX_UJ));
    zone(root, "intel-rapl:0:1", "uncore", 1_234_567, Some(MAX_UJ));
    zone(root, "intel-rapl:1", "psys", 90_000_000_123, Some(MAX_UJ));
    // The control-type directory itself is not a zone.
    write(root, "sys/class/powercap/intel-rapl/enabled", "1\n");
}

#[test]
fn intel_client_domains_nest_and_read_in_joules() {
    let dir = tempfile::tempdir().unwrap();
    intel_client(dir.path());
    let mut probe = rapl::open_powercap(dir.path()).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.name, "rapl-powercap");
    assert!(info.measured);
    let got: Vec<(&str, Scope, bool)> = info
        .domains
        .iter()
        .map(|d| (d.name.as_str(), d.scope, d.in_total))
        .collect();
    assert_eq!(
        got,
        vec![
            ("package-0", Scope::Package, true),
            ("package-0/core", Scope::Cores, false),
            ("package-0/uncore", Scope::Uncore, false),
            ("psys", Scope::Platform, false),
        ]
    );
    for d in &info.domains {
        assert_eq!(
            d.kind,
            DomainKind::Counter {
                range: Some(Joules(MAX_UJ as f64 * 1e-6))
            }
        );
    }
    assert_eq!(info.label(), "rapl-powercap:package-0");
    assert!(info.notes.iter().any(|n| n.contains("psys")), "{info:?}");
    assert!(!info.notes.iter().any(|n| n.contains("sgx")), "{info:?}");
    let r = probe.read().unwrap();
    let want = [52_649.883_221, 20_000.0, 1.234_567, 90_000.000_123];
    assert_eq!(r.len(), want.len());
    for (got, want) in r.iter().zip(want) {
        assert!(approx(*got, want), "{got} vs {want}");
    }
}

#[test]
fn mmio_zone_replaces_the_msr_zone_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    intel_client(dir.path());
    zone(
        dir.path(),
        "intel-rapl-mmio:0",
        "package-0",
        777_000_000,
        Some(MAX_UJ),
    );
    let mut probe = rapl::open_powercap(dir.path()).unwrap();
    assert_eq!(probe.info().domains.len(), 4);
    let (i, d) = domain(probe.as_ref(), "package-0");
    assert!(d.in_total);
    assert!(approx(probe.read().unwrap()[i], 777.0));
    assert!(probe
        .info()
        .notes
        .iter()
        .any(|n| n.contains("intel-rapl-mmio:0") && n.contains("MMIO")));
}

#[test]
fn two_socket_server_sums_packages_and_dram_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    cpuinfo(root, "GenuineIntel", "fpu rapl");
    let p0 = zone(
        root,
        "intel-rapl:0",
        "package-0",
        1_000_000_000,
        Some(MAX_UJ),
    );
    let d0 = zone(
        root,
        "intel-rapl:0:0",
        "dram",
        2_000_000_000,
        Some(65_712_999_613),
    );
    let c0 = zone(root, "intel-rapl:0:1", "core", 3_000_000_000, Some(MAX_UJ));
    // Hex zone ids: the second socket sits at index 10.
    let p1 = zone(
        root,
        "intel-rapl:a",
        "package-1",
        4_000_000_000,
        Some(MAX_UJ),
    );
    let d1 = zone(
        root,
        "intel-rapl:a:0",
        "dram",
        5_000_000_000,
        Some(65_712_999_613),
    );
    let mut probe = rapl::open_powercap(root).unwrap();
    let info = probe.info().clone();
    let mut totals: Vec<&str> = info
        .domains
        .iter()
        .filter(|d| d.in_total)
        .map(|d| d.name.as_str())
        .collect();
    totals.sort_unstable();
    assert_eq!(
        totals,
        vec!["package-0", "package-0/dram", "package-1", "package-1/dram"]
    );
    let (_, dram1) = domain(probe.as_ref(), "package-1/dram");
    assert_eq!(dram1.scope, Scope::Dram);
    assert_eq!(
        dram1.kind,
        DomainKind::Counter {
            range: Some(Joules(65_712_999_613.0 * 1e-6))
        }
    );
    let (_, core) = domain(probe.as_ref(), "package-0/core");
    assert!(!core.in_total);
    assert!(info
        .notes
        .iter()
        .any(|n| n.contains("dram") && n.contains("outside the package")));

    let mut trace = Trace::new(info.domains.clone());
    trace.push(Seconds(0.0), &probe.read().unwrap());
    // 10 J on each package, 2 J and 3 J of DRAM, 7 J on the core that must not count.
    set(&p0, 1_010_000_000);
    set(&d0, 2_002_000_000);
    set(&c0, 3_007_000_000);
    set(&p1, 4_010_000_000);
    set(&d1, 5_003_000_000);
    trace.push(Seconds(1.0), &probe.read().unwrap());
    let w = trace.energy(Seconds(0.0), Seconds(1.0));
    assert!(approx(w.energy_j.0, 25.0), "{w:?}");
    let core_energy = w
        .domains
        .iter()
        .find(|d| d.name == "package-0/core")
        .unwrap();
    assert!(approx(core_energy.energy_j.0, 7.0));
}

#[test]
fn amd_core_zone_is_one_core_and_never_summed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    cpuinfo(root, "AuthenticAMD", "fpu rapl");
    zone(root, "intel-rapl:0", "package-0", 8_000_000, Some(MAX_UJ));
    zone(root, "intel-rapl:0:0", "core", 500_000, Some(MAX_UJ));
    let probe = rapl::open_powercap(root).unwrap();
    let (_, pkg) = domain(probe.as_ref(), "package-0");
    assert!(pkg.in_total);
    let (_, core) = domain(probe.as_ref(), "package-0/core");
    assert_eq!(core.scope, Scope::Cores);
    assert!(!core.in_total);
    assert!(
        probe
            .info()
            .notes
            .iter()
            .any(|n| n.contains("package-0/core") && n.contains("ONE core")),
        "{:?}",
        probe.info().notes
    );
}

#[test]
fn dies_of_a_multi_die_package_are_summed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = zone(
        root,
        "intel-rapl:0",
        "package-0-die-0",
        100_000_000,
        Some(MAX_UJ),
    );
    let b = zone(
        root,
        "intel-rapl:1",
        "package-0-die-1",
        200_000_000,
        Some(MAX_UJ),
    );
    let mut probe = rapl::open_powercap(root).unwrap();
    let info = probe.info().clone();
    assert!(info
        .domains
        .iter()
        .all(|d| d.in_total && d.scope == Scope::Package));
    assert_eq!(info.domains.len(), 2);
    let mut trace = Trace::new(info.domains.clone());
    trace.push(Seconds(0.0), &probe.read().unwrap());
    set(&a, 104_000_000);
    set(&b, 205_000_000);
    trace.push(Seconds(2.0), &probe.read().unwrap());
    assert!(approx(
        trace.energy(Seconds(0.0), Seconds(2.0)).energy_j.0,
        9.0
    ));
}

#[test]
fn a_counter_wrap_mid_run_keeps_the_true_energy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pkg = zone(
        root,
        "intel-rapl:0",
        "package-0",
        MAX_UJ - 3_328_850,
        Some(MAX_UJ),
    );
    let mut probe = rapl::open_powercap(root).unwrap();
    let mut trace = Trace::new(probe.info().domains.clone());
    trace.push(Seconds(0.0), &probe.read().unwrap());
    set(&pkg, MAX_UJ - 328_850); // +3 J
    trace.push(Seconds(1.0), &probe.read().unwrap());
    set(&pkg, 1_671_150); // wrapped: +0.32885 J to the top, +1.67115 J after
    trace.push(Seconds(2.0), &probe.read().unwrap());
    set(&pkg, 4_671_150); // +3 J
    trace.push(Seconds(3.0), &probe.read().unwrap());
    let w = trace.energy(Seconds(0.0), Seconds(3.0));
    assert!(approx(w.energy_j.0, 8.0), "{w:?}");
    assert_eq!(
        w.anomalies
            .iter()
            .filter(|a| a.kind == AnomalyKind::Wrapped)
            .count(),
        1
    );
}

#[test]
fn unreadable_energy_uj_says_how_to_fix_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pkg = zone(
        root,
        "intel-rapl:0",
        "package-0",
        52_649_883_221,
        Some(MAX_UJ),
    );
    std::fs::set_permissions(&pkg, std::fs::Permissions::from_mode(0o000)).unwrap();
    let result = rapl::open_powercap(root);
    if std::fs::read_to_string(&pkg).is_ok() {
        // Root reads 0000 files, as it reads the real 0400 energy_uj: the open must then work.
        let mut probe = result.unwrap();
        assert!(approx(probe.read().unwrap()[0], 52_649.883_221));
    } else {
        let err = result.err().expect("a 0000 energy_uj must not open");
        let msg = err.to_string();
        match &err {
            ProbeError::PermissionDenied { path, hint, .. } => {
                assert_eq!(path, &pkg);
                assert!(hint.contains("5.10"), "{msg}");
                assert!(hint.contains("chmod a+r"), "{msg}");
                assert!(hint.contains("perf_event_paranoid"), "{msg}");
            }
            other => panic!("expected PermissionDenied, got {other}"),
        }
    }
}

#[test]
fn missing_max_energy_range_gives_no_range_and_flags_drops() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pkg = zone(root, "intel-rapl:0", "package-0", 5_000_000, None);
    let mut probe = rapl::open_powercap(root).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.domains[0].kind, DomainKind::Counter { range: None });
    assert!(
        info.notes
            .iter()
            .any(|n| n.contains("package-0") && n.contains("max_energy_range_uj")),
        "{:?}",
        info.notes
    );
    // A drop is flagged, never turned into energy: the codecarbon bug.
    let mut trace = Trace::new(info.domains.clone());
    trace.push(Seconds(0.0), &probe.read().unwrap());
    set(&pkg, 1_000_000);
    trace.push(Seconds(1.0), &probe.read().unwrap());
    let w = trace.energy(Seconds(0.0), Seconds(1.0));
    assert_eq!(w.energy_j, Joules(0.0));
    assert!(matches!(w.anomalies[0].kind, AnomalyKind::Backwards { .. }));
}

#[test]
fn all_zero_counters_are_an_error_not_zero_watts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    zone(root, "intel-rapl:0", "package-0", 0, Some(MAX_UJ));
    zone(root, "intel-rapl:0:0", "dram", 0, Some(MAX_UJ));
    match rapl::open_powercap(root) {
        Err(ProbeError::ReadsZero { path, hint, .. }) => {
            assert!(path.ends_with("intel-rapl:0/energy_uj"), "{path:?}");
            assert!(hint.contains("all 2"), "{hint}");
        }
        Err(other) => panic!("expected ReadsZero, got {other}"),
        Ok(_) => panic!("all-zero counters opened"),
    }
    // One live counter is enough.
    zone(root, "intel-rapl:1", "package-1", 10, Some(MAX_UJ));
    assert!(rapl::open_powercap(root).is_ok());
}

#[test]
fn no_powercap_is_unavailable_with_the_vm_and_container_hint() {
    let dir = tempfile::tempdir().unwrap();
    let err = rapl::open_powercap(dir.path()).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, ProbeError::Unavailable { .. }), "{msg}");
    assert!(msg.contains("VMs"), "{msg}");
    assert!(msg.contains("bind-mount /sys/class/powercap"), "{msg}");

    // A powercap directory with no RAPL zones (e.g. only dtpm) says what it found.
    write(dir.path(), "sys/class/powercap/dtpm/enabled", "1\n");
    let msg = rapl::open_powercap(dir.path()).err().unwrap().to_string();
    assert!(msg.contains("found: dtpm"), "{msg}");
}

#[test]
fn sgx_in_cpuinfo_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    cpuinfo(root, "GenuineIntel", "fpu sgx sgx_lc rapl");
    zone(root, "intel-rapl:0", "package-0", 42, Some(MAX_UJ));
    let probe = rapl::open_powercap(root).unwrap();
    assert!(
        probe
            .info()
            .notes
            .iter()
            .any(|n| n.contains("sgx") && n.contains("filtering")),
        "{:?}",
        probe.info().notes
    );
}

#[test]
fn open_falls_back_to_powercap_and_reports_both_failures() {
    let dir = tempfile::tempdir().unwrap();
    let err = rapl::open(dir.path()).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("perf power PMU"), "{msg}");
    assert!(msg.contains("powercap:"), "{msg}");
    assert!(msg.contains("sys/bus/event_source/devices/power"), "{msg}");

    intel_client(dir.path());
    let probe = rapl::open(dir.path()).unwrap();
    assert_eq!(probe.info().name, "rapl-powercap");
}

/// A two-socket Intel server's perf `power` PMU.
fn perf_pmu(root: &Path, pmu_type: &str) {
    let base = "sys/bus/event_source/devices/power";
    write(root, &format!("{base}/type"), &format!("{pmu_type}\n"));
    write(root, &format!("{base}/cpumask"), "0,28\n");
    write(root, &format!("{base}/format/event"), "config:0-7\n");
    for (name, event) in [
        ("energy-cores", "0x01"),
        ("energy-pkg", "0x02"),
        ("energy-ram", "0x03"),
        ("energy-psys", "0x05"),
    ] {
        write(
            root,
            &format!("{base}/events/{name}"),
            &format!("event={event}\n"),
        );
        write(
            root,
            &format!("{base}/events/{name}.scale"),
            "2.3283064365386962890625e-10\n",
        );
        write(root, &format!("{base}/events/{name}.unit"), "Joules\n");
    }
}

#[test]
fn perf_pmu_sysfs_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    perf_pmu(dir.path(), "23");
    let pmu = PerfPmu::read(dir.path()).unwrap();
    assert_eq!(pmu.pmu_type, 23);
    assert_eq!(pmu.cpus, vec![0, 28]);
    let events: Vec<(&str, u64)> = pmu
        .events
        .iter()
        .map(|e| (e.name.as_str(), e.config))
        .collect();
    assert_eq!(
        events,
        vec![
            ("energy-pkg", 2),
            ("energy-ram", 3),
            ("energy-cores", 1),
            ("energy-psys", 5)
        ]
    );
    for e in &pmu.events {
        assert_eq!(e.scale, 2f64.powi(-32));
        assert_eq!(e.unit, "Joules");
    }
    let domains: Vec<(String, usize, Scope, bool)> = pmu
        .domains()
        .into_iter()
        .map(|(d, cpu, _)| {
            assert_eq!(d.kind, DomainKind::Counter { range: None });
            (d.name, cpu, d.scope, d.in_total)
        })
        .collect();
    let want = [
        ("package-0", 0, Scope::Package, true),
        ("package-1", 28, Scope::Package, true),
        ("dram-0", 0, Scope::Dram, true),
        ("dram-1", 28, Scope::Dram, true),
        ("core-0", 0, Scope::Cores, false),
        ("core-1", 28, Scope::Cores, false),
        ("psys-0", 0, Scope::Platform, false),
        ("psys-1", 28, Scope::Platform, false),
    ];
    assert_eq!(
        domains,
        want.iter()
            .map(|(n, c, s, t)| (n.to_string(), *c, *s, *t))
            .collect::<Vec<_>>()
    );
}

#[test]
fn perf_pmu_with_a_wrong_unit_or_no_pmu_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = PerfPmu::read(dir.path()).err().unwrap();
    assert!(matches!(err, ProbeError::Unavailable { .. }), "{err}");

    perf_pmu(dir.path(), "23");
    write(
        dir.path(),
        "sys/bus/event_source/devices/power/events/energy-ram.unit",
        "Watts\n",
    );
    match PerfPmu::read(dir.path()) {
        Err(ProbeError::Parse { path, field, .. }) => {
            assert!(path.ends_with("events/energy-ram.unit"), "{path:?}");
            assert_eq!(field, "unit");
        }
        other => panic!("expected a Parse error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn perf_open_on_a_pmu_the_kernel_lacks_fails_cleanly() {
    // The parsing is from the fixture but the syscall is real: no kernel has PMU type 4242.
    let dir = tempfile::tempdir().unwrap();
    perf_pmu(dir.path(), "4242");
    let err = rapl::open_perf(dir.path()).err().expect("type 4242 opened");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ProbeError::Unavailable { .. } | ProbeError::PermissionDenied { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains("energy-"), "{msg}");
}

#[test]
fn rapl_on_this_machine_errs_with_a_reason_or_reads_real_domains() {
    match rapl::open(Path::new("/")) {
        Err(e) => assert!(!e.to_string().trim().is_empty()),
        Ok(mut probe) => {
            assert!(!probe.info().domains.is_empty());
            assert!(probe.info().domains.iter().any(|d| d.in_total));
            assert_eq!(probe.read().unwrap().len(), probe.info().domains.len());
        }
    }
}
