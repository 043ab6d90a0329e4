//! hwmon power and energy sensors.

use std::path::Path;

use crate::probe::{Probe, ProbeError};

pub fn open(_root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Unavailable {
        probe: "hwmon".into(),
        reason: "not built yet".into(),
    })
}
