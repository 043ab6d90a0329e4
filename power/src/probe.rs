//! The `Probe` trait: a source of energy counters or power readings that describes itself.

use std::path::PathBuf;

use serde::Serialize;

use crate::units::{Joules, Seconds, Watts};

/// What part of the machine a domain covers. Levels nest (platform ⊇ package ⊇ cores), so only
/// domains marked `in_total` are summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// A CPU package (RAPL `package-N`, AMD package).
    Package,
    /// The cores of a package (RAPL `core`, PP0).
    Cores,
    /// The uncore or integrated GPU (RAPL `uncore`, PP1).
    Uncore,
    /// DRAM attached to a package (RAPL `dram`).
    Dram,
    /// The platform as the SoC sees it (RAPL `psys`).
    Platform,
    /// One power rail (hwmon, INA3221, Android ODPM).
    Rail,
    /// A whole device through its battery or its supply.
    Device,
    /// Wall (AC) power of the whole system, from an external meter.
    Wall,
}

/// How a domain reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DomainKind {
    /// A cumulative energy counter in joules. `range` is where it wraps to zero (RAPL
    /// `max_energy_range_uj`); `None` when it never wraps or the range is unknown.
    Counter { range: Option<Joules> },
    /// Instantaneous power in watts.
    Power,
}

/// One thing a probe reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Domain {
    /// Name as the source spells it (`package-0`, `dram`, `VDD_IN`, `battery`).
    pub name: String,
    pub scope: Scope,
    pub kind: DomainKind,
    /// Whether the domain counts towards the probe's total (nested levels are reported but not
    /// summed twice).
    pub in_total: bool,
}

/// What a probe is; recorded beside every figure it produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeInfo {
    /// Short identifier written into results (`rapl-perf`, `hwmon:ina3221`, `ptd://host:8888`).
    pub name: String,
    /// Where it reads (a sysfs path, a device serial, a socket address, a file).
    pub source: String,
    pub domains: Vec<Domain>,
    /// `true` for a meter or counter; `false` for a model-based estimate.
    pub measured: bool,
    /// Smallest step of a counter, if known.
    pub resolution: Option<Joules>,
    /// Smallest step of a power reading, if known.
    pub power_resolution: Option<Watts>,
    /// How often the source itself updates, if known.
    pub update_period: Option<Seconds>,
    /// Caveats the reader should see (SGX energy filtering, USB power connected, modelled RAPL).
    pub notes: Vec<String>,
}

impl ProbeInfo {
    /// `name (domains in the total)`, for tables and result records.
    pub fn label(&self) -> String {
        let total: Vec<&str> = self
            .domains
            .iter()
            .filter(|d| d.in_total)
            .map(|d| d.name.as_str())
            .collect();
        format!("{}:{}", self.name, total.join("+"))
    }

    /// The longest poll period at which no counter can wrap twice between reads at `max_power`.
    pub fn max_poll_period(&self, max_power: Watts) -> Option<Seconds> {
        self.domains
            .iter()
            .filter_map(|d| match d.kind {
                DomainKind::Counter { range: Some(r) } => Some(Seconds(r.0 / (2.0 * max_power.0))),
                _ => None,
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }
}

/// One value per domain, in the order of [`ProbeInfo::domains`]: joules for counters (raw, not
/// yet unwrapped), watts for power domains.
pub type Reading = Vec<f64>;

/// A live source of energy or power readings.
pub trait Probe: Send {
    fn info(&self) -> &ProbeInfo;
    /// Reads every domain once.
    fn read(&mut self) -> Result<Reading, ProbeError>;
}

/// Why a probe can't be opened or read. Never a silent zero.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{probe}: not available here: {reason}")]
    Unavailable { probe: String, reason: String },
    #[error("{probe}: permission denied reading {path}: {hint}")]
    PermissionDenied {
        probe: String,
        path: PathBuf,
        hint: String,
    },
    #[error("{probe}: {path} reads zero while the machine runs: {hint}")]
    ReadsZero {
        probe: String,
        path: PathBuf,
        hint: String,
    },
    #[error("{probe}: reading {path}: {source}")]
    Io {
        probe: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{probe}: {path}: field {field}: {reason}")]
    Parse {
        probe: String,
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{probe}: meter disconnected: {reason}")]
    Disconnected { probe: String, reason: String },
    #[error("{probe}: protocol error: {reason}")]
    Protocol { probe: String, reason: String },
    #[error("bad probe spec {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
}
