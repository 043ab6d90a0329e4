//! A client for the SPEC PTDaemon TCP protocol.

use crate::probe::{Probe, ProbeError};

pub fn open(host: &str, port: u16) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Unavailable {
        probe: format!("ptd://{host}:{port}"),
        reason: "not built yet".into(),
    })
}
