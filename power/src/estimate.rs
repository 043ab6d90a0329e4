//! An estimate from CPU utilisation and a TDP the user gives; never passed off as a measurement.

use std::path::Path;

use crate::probe::{Probe, ProbeError};
use crate::units::Watts;

pub fn open(_root: &Path, _tdp: Watts) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Unavailable {
        probe: "estimate".into(),
        reason: "not built yet".into(),
    })
}
