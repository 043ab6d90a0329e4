//! RAPL through the perf `power` PMU and through powercap sysfs.

use std::path::Path;

use crate::probe::{Probe, ProbeError};

pub fn open(root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    open_perf(root).or_else(|_| open_powercap(root))
}

pub fn open_perf(_root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Unavailable {
        probe: "rapl-perf".into(),
        reason: "not built yet".into(),
    })
}

pub fn open_powercap(_root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Unavailable {
        probe: "rapl-powercap".into(),
        reason: "not built yet".into(),
    })
}
