//! Import of a timestamped CSV log written by an independent meter.

use std::path::Path;

use crate::meter::LogSource;
use crate::probe::{ProbeError, ProbeInfo};
use crate::trace::Trace;

pub struct CsvLog {
    info: ProbeInfo,
}

impl CsvLog {
    pub fn open(path: &Path, _start_unix: Option<f64>) -> Result<CsvLog, ProbeError> {
        Err(ProbeError::Unavailable {
            probe: format!("csv:{}", path.display()),
            reason: "not built yet".into(),
        })
    }
}

impl LogSource for CsvLog {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }
    fn trace(&mut self, _origin_unix: f64) -> Result<Trace, ProbeError> {
        Ok(Trace::new(self.info.domains.clone()))
    }
}
