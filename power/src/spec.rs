//! `--probe SPEC`: which probe to open, and the list of what this machine offers.

use std::path::{Path, PathBuf};

use crate::meter::Source;
use crate::probe::{ProbeError, ProbeInfo};
use crate::units::Watts;
use crate::{android, csvlog, estimate, hwmon, ptd, rapl};

/// A parsed `--probe` value.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSpec {
    /// The first usable of RAPL (perf, then powercap), hwmon, the local battery.
    Auto,
    /// No energy measurement.
    None,
    /// RAPL through the perf `power` PMU, else powercap sysfs.
    Rapl,
    RaplPerf,
    RaplPowercap,
    /// hwmon power and energy sensors.
    Hwmon,
    /// An Android phone: its own `power_supply` sysfs when ternbench runs on it, else `adb`
    /// (`serial` picks the device).
    Android {
        serial: Option<String>,
    },
    /// A SPEC PTDaemon meter server.
    Ptd {
        host: String,
        port: u16,
    },
    /// A timestamped CSV log from an independent meter; `start_unix` places a log whose times
    /// are relative.
    Csv {
        path: PathBuf,
        start_unix: Option<f64>,
    },
    /// Utilisation × a TDP the user gives: an estimate, labelled so everywhere.
    Estimate {
        tdp: Watts,
    },
}

impl std::str::FromStr for ProbeSpec {
    type Err = ProbeError;

    fn from_str(spec: &str) -> Result<ProbeSpec, ProbeError> {
        let bad = |reason: &str| ProbeError::Spec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        Ok(match spec {
            "auto" => ProbeSpec::Auto,
            "none" => ProbeSpec::None,
            "rapl" => ProbeSpec::Rapl,
            "rapl-perf" => ProbeSpec::RaplPerf,
            "rapl-powercap" => ProbeSpec::RaplPowercap,
            "hwmon" => ProbeSpec::Hwmon,
            "android" => ProbeSpec::Android { serial: None },
            _ => {
                if let Some(serial) = spec.strip_prefix("android:") {
                    if serial.is_empty() {
                        return Err(bad("empty device serial"));
                    }
                    ProbeSpec::Android {
                        serial: Some(serial.to_owned()),
                    }
                } else if let Some(addr) = spec.strip_prefix("ptd://") {
                    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "8888"));
                    let port = port
                        .parse()
                        .map_err(|_| bad("port is not a number 0-65535"))?;
                    if host.is_empty() {
                        return Err(bad("empty host"));
                    }
                    ProbeSpec::Ptd {
                        host: host.to_owned(),
                        port,
                    }
                } else if let Some(rest) = spec.strip_prefix("csv:") {
                    let (path, start_unix) =
                        match rest.rsplit_once('@') {
                            Some((path, start)) => (
                                path,
                                Some(start.parse::<f64>().map_err(|_| {
                                    bad("start after @ is not a Unix time in seconds")
                                })?),
                            ),
                            None => (rest, None),
                        };
                    if path.is_empty() {
                        return Err(bad("empty file name"));
                    }
                    ProbeSpec::Csv {
                        path: PathBuf::from(path),
                        start_unix,
                    }
                } else if let Some(tdp) = spec.strip_prefix("estimate:") {
                    let tdp: f64 = tdp
                        .trim_end_matches(['W', 'w'])
                        .parse()
                        .map_err(|_| bad("expected estimate:TDP_WATTS, e.g. estimate:65"))?;
                    if !(tdp > 0.0 && tdp.is_finite()) {
                        return Err(bad("TDP must be a positive number of watts"));
                    }
                    ProbeSpec::Estimate { tdp: Watts(tdp) }
                } else {
                    return Err(bad(
                        "expected auto, none, rapl, rapl-perf, rapl-powercap, hwmon, android[:SERIAL], \
                         ptd://HOST:PORT, csv:FILE[@START_UNIX] or estimate:TDP_WATTS",
                    ));
                }
            }
        })
    }
}

/// Opens the probe a spec names, reading sysfs under `root` (`/` on a real machine). `None`
/// yields `Ok(None)`; `Auto` tries each local probe in turn and reports every reason it found
/// none.
pub fn open(spec: &ProbeSpec, root: &Path) -> Result<Option<Source>, ProbeError> {
    Ok(Some(match spec {
        ProbeSpec::None => return Ok(None),
        ProbeSpec::Auto => {
            let mut reasons = Vec::new();
            for candidate in [ProbeSpec::Rapl, ProbeSpec::Hwmon] {
                match open(&candidate, root) {
                    Ok(source) => return Ok(source),
                    Err(e) => reasons.push(e.to_string()),
                }
            }
            match android::open_sysfs(root) {
                Ok(probe) => Source::Live(probe),
                Err(e) => {
                    reasons.push(e.to_string());
                    return Err(ProbeError::Unavailable {
                        probe: "auto".into(),
                        reason: format!("no energy probe on this machine ({})", reasons.join("; ")),
                    });
                }
            }
        }
        ProbeSpec::Rapl => Source::Live(rapl::open(root)?),
        ProbeSpec::RaplPerf => Source::Live(rapl::open_perf(root)?),
        ProbeSpec::RaplPowercap => Source::Live(rapl::open_powercap(root)?),
        ProbeSpec::Hwmon => Source::Live(hwmon::open(root)?),
        ProbeSpec::Android { serial } => Source::Live(android::open(root, serial.as_deref())?),
        ProbeSpec::Ptd { host, port } => Source::Live(ptd::open(host, *port)?),
        ProbeSpec::Csv { path, start_unix } => {
            Source::Log(Box::new(csvlog::CsvLog::open(path, *start_unix)?))
        }
        ProbeSpec::Estimate { tdp } => Source::Live(estimate::open(root, *tdp)?),
    }))
}

/// One line of `ternbench power probes`.
#[derive(Debug)]
pub struct Candidate {
    pub spec: &'static str,
    pub status: Result<ProbeInfo, ProbeError>,
}

/// Every local probe kind, opened to see whether it works here, with the reason when not.
pub fn discover(root: &Path) -> Vec<Candidate> {
    let info = |r: Result<Box<dyn crate::probe::Probe>, ProbeError>| r.map(|p| p.info().clone());
    vec![
        Candidate {
            spec: "rapl-perf",
            status: info(rapl::open_perf(root)),
        },
        Candidate {
            spec: "rapl-powercap",
            status: info(rapl::open_powercap(root)),
        },
        Candidate {
            spec: "hwmon",
            status: info(hwmon::open(root)),
        },
        Candidate {
            spec: "android",
            status: info(android::open_sysfs(root)),
        },
        Candidate {
            spec: "android:SERIAL (adb)",
            status: info(android::open_adb(None)),
        },
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_spec_form() {
        assert_eq!("auto".parse::<ProbeSpec>().unwrap(), ProbeSpec::Auto);
        assert_eq!(
            "android:R58M123".parse::<ProbeSpec>().unwrap(),
            ProbeSpec::Android {
                serial: Some("R58M123".into())
            }
        );
        assert_eq!(
            "ptd://10.0.0.2:8889".parse::<ProbeSpec>().unwrap(),
            ProbeSpec::Ptd {
                host: "10.0.0.2".into(),
                port: 8889
            }
        );
        assert_eq!(
            "ptd://meter".parse::<ProbeSpec>().unwrap(),
            ProbeSpec::Ptd {
                host: "meter".into(),
                port: 8888
            }
        );
        assert_eq!(
            "csv:log.csv@1700000000.5".parse::<ProbeSpec>().unwrap(),
            ProbeSpec::Csv {
                path: "log.csv".into(),
                start_unix: Some(1_700_000_000.5)
            }
        );
        assert_eq!(
            "estimate:65W".parse::<ProbeSpec>().unwrap(),
            ProbeSpec::Estimate { tdp: Watts(65.0) }
        );
        for bad in [
            "",
            "rapl2",
            "ptd://host:99999",
            "csv:",
            "estimate:-3",
            "android:",
        ] {
            let err = bad.parse::<ProbeSpec>().unwrap_err();
            assert!(matches!(err, ProbeError::Spec { .. }), "{bad}: {err}");
        }
    }
}
