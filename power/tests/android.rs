//! The Android probe without hardware: fixture power_supply trees, recorded PowerStats dumps,
//! and a fake `adb` script that replays recorded outputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use power::android::{self, odpm};
use power::{DomainKind, Probe, ProbeError, Scope, Seconds, Trace};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/android_fixtures");

fn fixture(name: &str) -> String {
    fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

/// Writes one supply's attributes under `root/sys/class/power_supply/NAME/` as the kernel
/// prints them (value and newline).
fn supply(root: &Path, name: &str, attrs: &[(&str, &str)]) {
    let dir = root.join("sys/class/power_supply").join(name);
    fs::create_dir_all(&dir).unwrap();
    for (attr, value) in attrs {
        fs::write(dir.join(attr), format!("{value}\n")).unwrap();
    }
}

fn set(root: &Path, name: &str, attr: &str, value: &str) {
    supply(root, name, &[(attr, value)]);
}

fn has_note(probe: &dyn Probe, needle: &str) -> bool {
    probe.info().notes.iter().any(|n| n.contains(needle))
}

fn watts(probe: &mut dyn Probe) -> f64 {
    let reading = probe.read().unwrap();
    assert_eq!(reading.len(), 1);
    reading[0]
}

const USB_PHRASE: &str = "USB power connected: battery current does not measure the workload; \
                          unplug, use wireless adb, or a battery-bypass meter";

#[test]
fn pixel_microamps_discharging_gives_exact_watts() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    supply(
        r,
        "battery",
        &[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("current_now", "-412000"),
            ("voltage_now", "3850000"),
            ("present", "1"),
        ],
    );
    supply(r, "usb", &[("type", "USB"), ("online", "0")]);
    supply(r, "wireless", &[("type", "Wireless"), ("online", "0")]);
    let mut probe = android::open_sysfs(r).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.name, "power_supply");
    assert_eq!(info.domains.len(), 1);
    assert_eq!(info.domains[0].name, "battery");
    assert_eq!(info.domains[0].scope, Scope::Device);
    assert_eq!(info.domains[0].kind, DomainKind::Power);
    assert!(info.domains[0].in_total);
    assert!(info.measured);
    assert!(info.update_period.is_some());
    assert!(has_note(probe.as_ref(), "read as µA"));
    assert!(has_note(
        probe.as_ref(),
        "negative while discharging, as the kernel ABI"
    ));
    assert!(!has_note(probe.as_ref(), "USB power connected"));
    // 0.412 A × 3.85 V
    assert!((watts(probe.as_mut()) - 1.5862).abs() < 1e-12);
    // Reads are live: a new value in the file is the next reading.
    set(r, "battery", "current_now", "-1000000");
    assert!((watts(probe.as_mut()) - 3.85).abs() < 1e-12);
    // open() with no serial takes the local battery.
    let mut local = android::open(r, None).unwrap();
    assert_eq!(local.info().name, "power_supply");
    assert!((watts(local.as_mut()) - 3.85).abs() < 1e-12);
}

#[test]
fn samsung_milliamps_are_detected_and_noted() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    supply(
        r,
        "battery",
        &[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("current_now", "-523"),
            ("voltage_now", "3912000"),
        ],
    );
    supply(r, "usb", &[("type", "USB"), ("online", "0")]);
    supply(r, "ac", &[("type", "Mains"), ("online", "0")]);
    let mut probe = android::open_sysfs(r).unwrap();
    assert!(
        has_note(probe.as_ref(), "current_now read as mA"),
        "{:?}",
        probe.info().notes
    );
    // 0.523 A × 3.912 V
    assert!((watts(probe.as_mut()) - 2.045976).abs() < 1e-12);
    let resolution = probe.info().power_resolution.unwrap().0;
    assert!((resolution - 0.003912).abs() < 1e-12);
}

#[test]
fn flipped_sign_phone_is_positive_while_discharging() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    supply(
        r,
        "battery",
        &[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("current_now", "380000"),
            ("voltage_now", "4000000"),
        ],
    );
    let mut probe = android::open_sysfs(r).unwrap();
    assert!(has_note(
        probe.as_ref(),
        "flipped, positive while discharging"
    ));
    assert!((watts(probe.as_mut()) - 1.52).abs() < 1e-12);
    // With no Charging/Discharging status the convention found at open gives the direction.
    set(r, "battery", "status", "Not charging");
    set(r, "battery", "current_now", "100000");
    assert!((watts(probe.as_mut()) - 0.4).abs() < 1e-12);
    set(r, "battery", "current_now", "-100000");
    assert!((watts(probe.as_mut()) + 0.4).abs() < 1e-12);
}

#[test]
fn charging_phone_on_usb_warns_and_keeps_reading() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    supply(
        r,
        "battery",
        &[
            ("type", "Battery"),
            ("status", "Charging"),
            ("current_now", "1500000"),
            ("voltage_now", "4200000"),
        ],
    );
    supply(r, "usb", &[("type", "USB"), ("online", "1")]);
    let mut probe = android::open_sysfs(r).unwrap();
    assert!(
        has_note(probe.as_ref(), USB_PHRASE),
        "{:?}",
        probe.info().notes
    );
    assert!(has_note(probe.as_ref(), "usb online"));
    // Energy flows into the battery: negative discharge power, 1.5 A × 4.2 V.
    assert!((watts(probe.as_mut()) + 6.3).abs() < 1e-12);
}

#[test]
fn zero_current_is_reads_zero_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    supply(
        r,
        "battery",
        &[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("current_now", "0"),
            ("voltage_now", "3900000"),
        ],
    );
    let err = android::open_sysfs(r).err().unwrap();
    match &err {
        ProbeError::ReadsZero { path, hint, .. } => {
            assert!(path.ends_with("battery/current_now"), "{err}");
            assert!(hint.contains("no current while the device runs"), "{err}");
        }
        other => panic!("expected ReadsZero, got {other}"),
    }
    // On a charger at full charge the battery is idle: the hint says to unplug.
    set(r, "battery", "status", "Full");
    supply(r, "ac", &[("type", "Mains"), ("online", "1")]);
    let err = android::open_sysfs(r).err().unwrap();
    assert!(matches!(err, ProbeError::ReadsZero { .. }), "{err}");
    assert!(
        err.to_string().contains("because ac powers the device"),
        "{err}"
    );
}

#[test]
fn laptop_bat0_uses_power_now() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    supply(
        r,
        "BAT0",
        &[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("present", "1"),
            ("power_now", "12340000"),
            ("voltage_now", "11800000"),
            ("energy_now", "41230000"),
        ],
    );
    supply(r, "AC", &[("type", "Mains"), ("online", "0")]);
    supply(
        r,
        "hidpp_battery_0",
        &[
            ("type", "Battery"),
            ("scope", "Device"),
            ("status", "Discharging"),
        ],
    );
    let mut probe = android::open_sysfs(r).unwrap();
    assert!(
        probe.info().source.ends_with("BAT0"),
        "{}",
        probe.info().source
    );
    assert!(has_note(probe.as_ref(), "power_now"));
    assert!((watts(probe.as_mut()) - 12.34).abs() < 1e-12);
}

#[test]
fn no_battery_is_unavailable_naming_the_directory() {
    let root = tempfile::tempdir().unwrap();
    supply(root.path(), "AC", &[("type", "Mains"), ("online", "1")]);
    let err = android::open_sysfs(root.path()).err().unwrap();
    assert!(matches!(err, ProbeError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("sys/class/power_supply"), "{err}");
    assert!(err.to_string().contains("AC (Mains)"), "{err}");
}

#[test]
fn odpm_hal2_dump_gives_rail_names_and_joules() {
    let dump = odpm::parse(&fixture("odpm_hal2.txt")).unwrap();
    assert_eq!(dump.hal, odpm::Hal::V2);
    let expected = [
        ("[S4M_VDD_CPUCL0]:CPU(LITTLE)", 1234.56781),
        ("[S5M_VDD_CPUCL1]:CPU(MID)", 845.2105),
        ("[S3M_VDD_CPUCL2]:CPU(BIG)", 2210.03425),
        ("[S2S_VDD_G3D]:GPU", 512.34575),
        ("[S7M_VDD_TPU]:TPU", 98.76543),
        ("[VSYS_PWR_DISPLAY]:Display", 3456.789),
    ];
    assert_eq!(dump.rails.len(), expected.len());
    for (rail, (name, joules)) in dump.rails.iter().zip(expected) {
        assert_eq!(rail.name, name);
        assert!(
            (rail.energy.0 - joules).abs() < 1e-9,
            "{name}: {}",
            rail.energy.0
        );
    }
}

#[test]
fn odpm_hal1_dump_gives_rail_names_and_joules() {
    let dump = odpm::parse(&fixture("odpm_hal1.txt")).unwrap();
    assert_eq!(dump.hal, odpm::Hal::V1);
    let names: Vec<&str> = dump.rails.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "[VDD_CPU_LITTLE]:CPU",
            "[VDD_CPU_BIG]:CPU",
            "[VDD_GPU]:GPU",
            "[VDD_DDR]:Memory",
            "[VDD_DISP]:Display",
            "[VDD_MODEM]:Modem"
        ]
    );
    assert!((dump.rails[1].energy.0 - 250.00025).abs() < 1e-9);
}

#[test]
fn odpm_garbage_is_an_error_not_a_panic() {
    let hal2 = fixture("odpm_hal2.txt");
    let meter_at = hal2
        .find("============= PowerStats HAL 2.0 energy meter")
        .unwrap();
    let garbage = [
        String::new(),
        "\u{0}\u{1}\u{fffd}binary\u{7f}".to_string(),
        "Can't find service: android.hardware.power.stats.IPowerStats/default".to_string(),
        // Only the state residencies and consumers: no meter section.
        hal2[..meter_at].to_string(),
        // The meter header, then nothing.
        hal2[..meter_at + 62].to_string(),
        // A row cut in the middle of its number.
        hal2.replace("512345.75 mWs", "51x345.75 mWs"),
        hal2.replace("[S2S_VDD_G3D]:GPU", "[S2S VDD G3D]: GPU"),
    ];
    for text in garbage {
        let err = odpm::parse(&text).err().unwrap();
        assert!(matches!(err, ProbeError::Parse { .. }), "{err}");
    }
}

/// A fake adb in its own folder with the files it replays.
struct FakeAdb {
    dir: tempfile::TempDir,
}

impl FakeAdb {
    fn new(serial: &str) -> FakeAdb {
        let dir = tempfile::tempdir().unwrap();
        let adb = dir.path().join("adb");
        fs::copy(Path::new(FIXTURES).join("fake_adb.sh"), &adb).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&adb, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(dir.path().join("serial.txt"), format!("{serial}\n")).unwrap();
        fs::write(
            dir.path().join("supplies.txt"),
            fixture("supplies_pixel.txt"),
        )
        .unwrap();
        FakeAdb { dir }
    }

    fn program(&self) -> PathBuf {
        self.dir.path().join("adb")
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.dir.path().join(name), text).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

#[test]
fn fake_adb_readings_integrate_to_the_known_energy() {
    let adb = FakeAdb::new("R58M123");
    // 4.0 V and 0.5, 1.0, 1.5, 1.0 A: 2, 4, 6, 4 W.
    adb.write(
        "readings.txt",
        "-500000,4000000,Discharging\n-1000000,4000000,Discharging\n\
         -1500000,4000000,Discharging\n-1000000,4000000,Discharging\n",
    );
    let mut probe = android::open_adb_at(&adb.program(), None).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.name, "android-adb");
    assert!(info.source.starts_with("adb:R58M123"), "{}", info.source);
    assert!(has_note(
        probe.as_ref(),
        "no ODPM rails (most retail phones lack them)"
    ));
    assert!(has_note(probe.as_ref(), "adb shell"));
    let mut trace = Trace::new(info.domains.clone());
    for t in 0..4 {
        trace.push(Seconds(t as f64), &probe.read().unwrap());
    }
    // Trapezoid: (2+4)/2 + (4+6)/2 + (6+4)/2 = 13 J.
    let whole = trace.energy(Seconds(0.0), Seconds(3.0));
    assert!((whole.energy_j.0 - 13.0).abs() < 1e-9, "{whole:?}");
    // Edges interpolated: 3→4 W over 0.5 s, 4→6 W over 1 s, 6→5 W over 0.5 s = 9.5 J.
    let inner = trace.energy(Seconds(0.5), Seconds(2.5));
    assert!((inner.energy_j.0 - 9.5).abs() < 1e-9, "{inner:?}");
    // The battery chosen is `battery` (healthd's), not the raw `maxfg` gauge; one cat per read.
    let calls = adb.calls();
    let cats: Vec<&String> = calls.iter().filter(|c| c.starts_with("cat ")).collect();
    assert_eq!(cats.len(), 4);
    assert_eq!(
        cats[0],
        "cat /sys/class/power_supply/battery/current_now \
         /sys/class/power_supply/battery/voltage_now /sys/class/power_supply/battery/status"
    );
    // Past the recorded readings the device is gone: a disconnect naming the serial.
    let err = probe.read().err().unwrap();
    assert!(matches!(err, ProbeError::Disconnected { .. }), "{err}");
    assert!(err.to_string().contains("R58M123"), "{err}");
}

fn odpm_dump(gpu_mws: f64, display_mws: f64) -> String {
    format!(
        "\n============= PowerStats HAL 2.0 energy meter ==============\n\
         \x20                          Channel    Cumulative Energy\n\
         \x20                [S2S_VDD_G3D]:GPU   {gpu_mws:14.2} mWs\n\
         \x20       [VSYS_PWR_DISPLAY]:Display   {display_mws:14.2} mWs\n\
         ========== End of PowerStats HAL 2.0 energy meter ==========\n"
    )
}

#[test]
fn fake_adb_with_odpm_rails_reports_them_outside_the_total() {
    let adb = FakeAdb::new("26011FDH2000ZX");
    adb.write("odpm.txt", &odpm_dump(1000.0, 5000.0));
    adb.write("odpm.1.txt", &odpm_dump(1000.0, 5000.0));
    adb.write("odpm.2.txt", &odpm_dump(1500.0, 5400.0));
    adb.write("odpm.3.txt", &odpm_dump(2250.0, 5800.0));
    adb.write(
        "readings.txt",
        "-500000,4000000,Discharging\n-500000,4000000,Discharging\n-500000,4000000,Discharging\n",
    );
    let mut probe = android::open_adb_at(&adb.program(), Some("26011FDH2000ZX")).unwrap();
    let info = probe.info().clone();
    let names: Vec<&str> = info.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["battery", "[S2S_VDD_G3D]:GPU", "[VSYS_PWR_DISPLAY]:Display"]
    );
    assert!(info.domains[0].in_total);
    for rail in &info.domains[1..] {
        assert_eq!(rail.scope, Scope::Rail);
        assert_eq!(rail.kind, DomainKind::Counter { range: None });
        assert!(!rail.in_total);
    }
    assert!(has_note(probe.as_ref(), "downstream of the battery"));
    let mut trace = Trace::new(info.domains.clone());
    for t in 0..3 {
        let reading = probe.read().unwrap();
        assert_eq!(reading.len(), 3);
        trace.push(Seconds(t as f64), &reading);
    }
    let w = trace.energy(Seconds(0.0), Seconds(2.0));
    // Battery 2 W for 2 s is the total; the rails are reported beside it.
    assert!((w.energy_j.0 - 4.0).abs() < 1e-9, "{w:?}");
    assert!((w.domains[1].energy_j.0 - 1.25).abs() < 1e-9, "{w:?}");
    assert!((w.domains[2].energy_j.0 - 0.8).abs() < 1e-9, "{w:?}");
    // One shell call per read carries both the battery and the rail dump.
    let calls = adb.calls();
    let reads: Vec<&String> = calls.iter().filter(|c| c.starts_with("cat ")).collect();
    assert_eq!(reads.len(), 3);
    assert!(reads[0].ends_with("; dumpsys android.hardware.power.stats.IPowerStats/default"));
}

#[test]
fn fake_adb_device_errors_say_what_to_do() {
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("adb_error_no_devices.txt", None, "adb finds no device"),
        (
            "adb_error_more_than_one.txt",
            None,
            "--probe android:SERIAL",
        ),
        (
            "adb_error_unauthorized.txt",
            Some("R58M123"),
            "Allow USB debugging",
        ),
    ];
    for (file, serial, expect) in cases {
        let adb = FakeAdb::new("R58M123");
        adb.write("error.txt", &fixture(file));
        let err = android::open_adb_at(&adb.program(), serial).err().unwrap();
        let message = err.to_string();
        assert!(message.contains(expect), "{file}: {message}");
        if let Some(serial) = serial {
            assert!(message.contains(serial), "{file}: {message}");
        }
        if file.contains("unauthorized") {
            assert!(
                matches!(err, ProbeError::PermissionDenied { .. }),
                "{message}"
            );
        } else {
            assert!(matches!(err, ProbeError::Unavailable { .. }), "{message}");
        }
    }
    // A serial that is not connected.
    let adb = FakeAdb::new("R58M123");
    let err = android::open_adb_at(&adb.program(), Some("NOPE42"))
        .err()
        .unwrap();
    assert!(matches!(err, ProbeError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("device NOPE42 not found"), "{err}");
    // No adb program at all.
    let err = android::open_adb_at(&adb.dir.path().join("no-such-adb"), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("adb not found"), "{err}");
}

#[test]
fn open_without_local_battery_falls_back_to_adb_named_by_env() {
    // The only test in this binary that sets TERNBENCH_ADB; the others name the program.
    let adb = FakeAdb::new("emulator-5554");
    adb.write("readings.txt", "-250000,4000000,Discharging\n");
    let root = tempfile::tempdir().unwrap();
    supply(root.path(), "AC", &[("type", "Mains"), ("online", "1")]);
    std::env::set_var(android::ADB_ENV, adb.program());
    let opened = android::open(root.path(), None);
    std::env::remove_var(android::ADB_ENV);
    let mut probe = opened.unwrap();
    assert!(probe.info().source.starts_with("adb:emulator-5554"));
    assert!((watts(probe.as_mut()) - 1.0).abs() < 1e-12);
}
