//! Android battery (fuel gauge) through power_supply sysfs or `adb shell`, and ODPM rails.

use std::path::Path;

use crate::probe::{Probe, ProbeError};

pub fn open(root: &Path, serial: Option<&str>) -> Result<Box<dyn Probe>, ProbeError> {
    match serial {
        Some(serial) => open_adb(Some(serial)),
        None => open_sysfs(root).or_else(|_| open_adb(None)),
    }
}

pub fn open_sysfs(_root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Unavailable {
        probe: "android".into(),
        reason: "not built yet".into(),
    })
}

pub fn open_adb(_serial: Option<&str>) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Unavailable {
        probe: "android-adb".into(),
        reason: "not built yet".into(),
    })
}
