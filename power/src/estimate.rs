//! An estimate from CPU utilisation and a TDP the user gives; never passed off as a measurement.
//!
//! watts = TDP × busy / total jiffies of the first `cpu` line of `proc/stat` since the previous
//! read (busy = user + nice + system + irq + softirq + steal; total adds idle + iowait).

use std::path::{Path, PathBuf};

use crate::probe::{Domain, DomainKind, Probe, ProbeError, ProbeInfo, Reading, Scope};
use crate::units::{Seconds, Watts};

const PROBE: &str = "estimate";

/// Busy and total jiffies of all CPUs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Jiffies {
    busy: u64,
    total: u64,
}

fn read_jiffies(path: &Path) -> Result<Jiffies, ProbeError> {
    let text = std::fs::read_to_string(path).map_err(|e| ProbeError::Io {
        probe: PROBE.into(),
        path: path.to_path_buf(),
        source: e,
    })?;
    let parse_error = |reason: String| ProbeError::Parse {
        probe: PROBE.into(),
        path: path.to_path_buf(),
        field: "cpu".into(),
        reason,
    };
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))
        .ok_or_else(|| parse_error("no aggregate `cpu` line".into()))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| parse_error(format!("{line:?}: {e}")))?;
    // user nice system idle iowait irq softirq steal (guest is already inside user).
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    if fields.len() < 4 {
        return Err(parse_error(format!("{line:?}: fewer than 4 counters")));
    }
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Ok(Jiffies {
        busy,
        total: busy + field(3) + field(4),
    })
}

struct Estimate {
    info: ProbeInfo,
    stat: PathBuf,
    tdp: Watts,
    last: Jiffies,
    watts: f64,
}

impl Probe for Estimate {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        let now = read_jiffies(&self.stat)?;
        let total = now.total.saturating_sub(self.last.total);
        // No tick since the last read: keep the last figure and the older baseline.
        if total > 0 {
            let busy = now.busy.saturating_sub(self.last.busy).min(total);
            self.watts = self.tdp.0 * busy as f64 / total as f64;
            self.last = now;
        }
        Ok(vec![self.watts])
    }
}

/// A power estimate = `tdp` × CPU utilisation from `root/proc/stat`, marked `measured: false`.
pub fn open(root: &Path, tdp: Watts) -> Result<Box<dyn Probe>, ProbeError> {
    if !(tdp.0 > 0.0 && tdp.0.is_finite()) {
        return Err(ProbeError::Spec {
            spec: format!("estimate:{}", tdp.0),
            reason: "TDP must be a positive number of watts".into(),
        });
    }
    let stat = root.join("proc/stat");
    let baseline = read_jiffies(&stat)?;
    Ok(Box::new(Estimate {
        info: ProbeInfo {
            name: format!("{PROBE}:tdp={}W", tdp.0),
            source: stat.display().to_string(),
            domains: vec![Domain {
                name: "cpu (estimated)".into(),
                scope: Scope::Package,
                kind: DomainKind::Power,
                in_total: true,
            }],
            measured: false,
            resolution: None,
            power_resolution: None,
            // proc/stat counts in USER_HZ ticks, 100 per second on Linux.
            update_period: Some(Seconds(0.01)),
            notes: vec![
                "estimate: TDP × utilisation, not a measurement".into(),
                "utilisation of all CPUs from proc/stat; idle power, frequency, memory and \
                 uncore are not modelled"
                    .into(),
            ],
        },
        stat,
        tdp,
        last: baseline,
        watts: 0.0,
    }))
}
