//! Android battery (fuel gauge) through power_supply sysfs or `adb shell`, and ODPM rails.
//!
//! Locally the probe reads `ROOT/sys/class/power_supply/*` (a phone running the harness itself,
//! or a Linux laptop's BAT0). From a host it reads the same attributes with one `adb shell cat`
//! per read, plus the PowerStats HAL rail dump when the device has ODPM rails. The battery is one
//! `battery` power domain (|V × I| while discharging); rails are cumulative counters, reported
//! but kept out of the total when the battery is read, since they sit downstream of it.

mod adb;
mod gauge;
pub mod odpm;

use std::path::{Path, PathBuf};

pub use adb::{AdbOutput, AdbRunner, CommandRunner};
pub use gauge::{MILLIAMP_BELOW, MILLIVOLT_BELOW};

use crate::probe::{Domain, DomainKind, Probe, ProbeError, ProbeInfo, Reading, Scope};
use crate::units::Seconds;
use gauge::{Gauge, Supplies, ATTRS};

const SYSFS_NAME: &str = "power_supply";
/// Environment variable naming the adb program (default: `adb` on PATH).
pub const ADB_ENV: &str = "TERNBENCH_ADB";

/// `serial` given: that device over adb. None: the local battery if `root` has one, else the
/// default adb device.
pub fn open(root: &Path, serial: Option<&str>) -> Result<Box<dyn Probe>, ProbeError> {
    if serial.is_some() || has_battery(root) {
        return match serial {
            Some(serial) => open_adb(Some(serial)),
            None => open_sysfs(root),
        };
    }
    open_adb(None).map_err(|e| match e {
        ProbeError::Unavailable { probe, reason } => ProbeError::Unavailable {
            probe,
            reason: format!(
                "{reason} (and no battery under {})",
                supply_dir(root).display()
            ),
        },
        other => other,
    })
}

fn supply_dir(root: &Path) -> PathBuf {
    root.join("sys/class/power_supply")
}

fn has_battery(root: &Path) -> bool {
    read_supplies(&supply_dir(root)).is_ok_and(|s| !gauge::batteries(&s).is_empty())
}

/// Reads the attributes the probe uses from every supply under `dir`; absent or unreadable
/// attributes are left out, except a permission error, which is reported.
fn read_supplies(dir: &Path) -> Result<Supplies, ProbeError> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ProbeError::Unavailable {
            probe: SYSFS_NAME.into(),
            reason: format!("no {} (no power_supply class here)", dir.display()),
        },
        _ => ProbeError::Io {
            probe: SYSFS_NAME.into(),
            path: dir.to_path_buf(),
            source: e,
        },
    })?;
    let mut supplies = Supplies::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut attrs = std::collections::BTreeMap::new();
        for attr in ATTRS {
            let path = dir.join(&name).join(attr);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    attrs.insert(attr.to_string(), text.trim().to_string());
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(ProbeError::PermissionDenied {
                        probe: SYSFS_NAME.into(),
                        path,
                        hint: "on Android, SELinux keeps apps out of power_supply: read it from a \
                               host with --probe android:SERIAL (adb)"
                            .into(),
                    })
                }
                // Drivers omit attributes or fail them with EINVAL/ENODATA; absent is the answer.
                Err(_) => {}
            }
        }
        supplies.insert(name, attrs);
    }
    Ok(supplies)
}

/// The local battery (or batteries) under `root/sys/class/power_supply`.
pub fn open_sysfs(root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    let dir = supply_dir(root);
    let supplies = read_supplies(&dir)?;
    let base = dir.display().to_string();
    let cal = gauge::calibrate(&supplies, SYSFS_NAME, &base)?;
    let files = cal
        .gauges
        .iter()
        .map(|g| {
            g.attrs()
                .iter()
                .map(|a| dir.join(&g.supply).join(a))
                .collect()
        })
        .collect();
    let source: Vec<String> = cal
        .gauges
        .iter()
        .map(|g| dir.join(&g.supply).display().to_string())
        .collect();
    let info = ProbeInfo {
        name: SYSFS_NAME.into(),
        source: source.join(", "),
        domains: vec![Domain {
            name: "battery".into(),
            scope: Scope::Device,
            kind: DomainKind::Power,
            in_total: true,
        }],
        measured: true,
        resolution: None,
        power_resolution: cal.power_resolution,
        update_period: Some(Seconds(1.0)),
        notes: cal.notes,
    };
    Ok(Box::new(SysfsProbe {
        info,
        base,
        gauges: cal.gauges,
        files,
    }))
}

struct SysfsProbe {
    info: ProbeInfo,
    base: String,
    gauges: Vec<Gauge>,
    /// Per gauge, the files of [`Gauge::attrs`].
    files: Vec<Vec<PathBuf>>,
}

impl Probe for SysfsProbe {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        let mut watts = 0.0;
        for (gauge, files) in self.gauges.iter().zip(&self.files) {
            let mut values = Vec::with_capacity(files.len());
            for path in files {
                values.push(
                    std::fs::read_to_string(path).map_err(|source| ProbeError::Io {
                        probe: SYSFS_NAME.into(),
                        path: path.clone(),
                        source,
                    })?,
                );
            }
            let values: Vec<&str> = values.iter().map(|v| v.trim()).collect();
            watts += gauge.watts(&values, SYSFS_NAME, &self.base)?;
        }
        Ok(vec![watts])
    }
}

/// A device over adb: `serial`, or the only one connected. The adb program is `$TERNBENCH_ADB`
/// if set, else `adb` on PATH.
pub fn open_adb(serial: Option<&str>) -> Result<Box<dyn Probe>, ProbeError> {
    let program = std::env::var_os(ADB_ENV).map_or_else(|| PathBuf::from("adb"), PathBuf::from);
    open_adb_at(&program, serial)
}

/// A device over adb, running the adb program at `adb`.
pub fn open_adb_at(adb: &Path, serial: Option<&str>) -> Result<Box<dyn Probe>, ProbeError> {
    adb::open_with(Box::new(CommandRunner::new(adb)), serial)
}

/// A device over adb through any runner (tests replay recorded outputs with one).
pub fn open_adb_with(
    runner: Box<dyn AdbRunner>,
    serial: Option<&str>,
) -> Result<Box<dyn Probe>, ProbeError> {
    adb::open_with(runner, serial)
}
