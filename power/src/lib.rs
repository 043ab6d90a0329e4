//! Energy probes and the engine that turns their readings into joules per window: RAPL, hwmon,
//! Android battery and power rails, SPEC PTDaemon meters and imported meter logs. Every figure
//! carries its probe, its domains, whether it was measured or estimated, its coverage and the
//! anomalies met on the way (wraps, backwards counters, read errors, disconnects).

pub mod android;
pub mod csvlog;
pub mod estimate;
pub mod hwmon;
pub mod meter;
pub mod probe;
pub mod ptd;
pub mod rapl;
pub mod spec;
pub mod trace;
pub mod units;

pub use meter::{Idle, LogSource, Mark, Measurement, Meter, Source};
pub use probe::{Domain, DomainKind, Probe, ProbeError, ProbeInfo, Reading, Scope};
pub use spec::{discover, open, Candidate, ProbeSpec};
pub use trace::{Anomaly, AnomalyKind, DomainEnergy, Trace, WindowEnergy};
pub use units::{Joules, Seconds, Watts};
