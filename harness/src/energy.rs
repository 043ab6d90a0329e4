//! Energy of timed windows: opens the `--probe`, measures idle power once in the same run, and
//! turns each phase's windows (prefill, decode) into gross and net joules and J/token with a
//! confidence interval. With no probe the run goes on and every output says energy was not
//! measured; an estimate is made only when asked for (`--probe estimate:TDP`) and says so.

use std::path::PathBuf;
use std::time::Duration;

use power::{Idle, Mark, Meter, ProbeError, ProbeSpec, WindowEnergy};
use serde::Serialize;

use crate::stats::Summary;

/// Below this coverage of a timed window, J/token is withheld: it would undercount.
pub const MIN_COVERAGE: f64 = 0.9;

/// A window must span this many updates of its probe, or J/token is withheld: a reading at a mark
/// can be one update stale, so a shorter window's energy could be off by more than a tenth.
pub const MIN_UPDATES_PER_WINDOW: f64 = 10.0;

/// How to measure energy.
#[derive(Debug, Clone)]
pub struct EnergyOptions {
    pub probe: ProbeSpec,
    /// Root that sysfs and procfs are read under (`/`; a fixture tree in tests).
    pub sysfs_root: PathBuf,
    /// Idle measurement before the first window; zero skips it (no net energy then).
    pub idle: Duration,
    /// Poll period of live probes.
    pub period: Duration,
}

impl Default for EnergyOptions {
    fn default() -> Self {
        EnergyOptions {
            probe: ProbeSpec::Auto,
            sysfs_root: PathBuf::from("/"),
            idle: Duration::from_secs(2),
            period: Duration::from_millis(100),
        }
    }
}

/// An open probe (or the reason there is none) and the idle power measured with it.
pub struct Session {
    meter: Option<Meter>,
    idle: Option<Idle>,
    not_measured: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("probe", &self.meter.as_ref().map(|m| m.info().label()))
            .field("not_measured", &self.not_measured)
            .finish()
    }
}

/// Which part of a model run a window timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prefill,
    Decode,
}

/// One timed window: its marks on the meter's clock and the tokens it processed.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub phase: Phase,
    pub from: Mark,
    pub to: Mark,
    pub tokens: u64,
}

/// The energy of one phase over all its windows.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseEnergy {
    pub windows: usize,
    pub tokens: u64,
    pub duration_s: f64,
    pub gross_j: f64,
    /// Gross minus idle power × duration, when idle was measured.
    pub net_j: Option<f64>,
    pub avg_power_w: f64,
    /// Median over windows of (net, else gross) joules per token; withheld when a window's
    /// coverage is below [`MIN_COVERAGE`], a window spans fewer than [`MIN_UPDATES_PER_WINDOW`]
    /// updates of the probe, or net energy is not above idle.
    pub j_per_token: Option<f64>,
    pub j_per_token_ci95: Option<[f64; 2]>,
    /// Worst coverage of any window.
    pub coverage: f64,
    pub largest_gap_s: f64,
    pub anomalies: usize,
}

/// Energy of a model run, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct EnergyReport {
    /// `rapl-powercap:package-0+dram`; `None` when energy was not measured.
    pub probe: Option<String>,
    /// `true` for a meter or counter, `false` for an estimate; `None` when not measured.
    pub measured: Option<bool>,
    pub domains: Vec<String>,
    pub idle_power_w: Option<f64>,
    pub idle_subtracted: bool,
    pub prefill: Option<PhaseEnergy>,
    pub decode: Option<PhaseEnergy>,
    /// Why energy was not measured, probe caveats, anomalies.
    pub notes: Vec<String>,
}

impl Session {
    /// Opens the probe and measures idle power. A failing `auto` probe means "not measured";
    /// a probe the user named that fails is an error, so a requested measurement never silently
    /// disappears.
    pub fn start(opts: &EnergyOptions) -> Result<Session, ProbeError> {
        let source = match power::open(&opts.probe, &opts.sysfs_root) {
            Ok(Some(source)) => source,
            Ok(None) => return Ok(Session::not_measured("no probe requested (--probe none)")),
            Err(e) if opts.probe == ProbeSpec::Auto => {
                return Ok(Session::not_measured(&e.to_string()));
            }
            Err(e) => return Err(e),
        };
        let meter = Meter::start(source, opts.period)?;
        let idle = if opts.idle.is_zero() {
            None
        } else {
            Some(meter.idle(opts.idle)?)
        };
        Ok(Session {
            meter: Some(meter),
            idle,
            not_measured: None,
        })
    }

    pub fn not_measured(reason: &str) -> Session {
        Session {
            meter: None,
            idle: None,
            not_measured: Some(reason.to_owned()),
        }
    }

    pub fn meter(&self) -> Option<&Meter> {
        self.meter.as_ref()
    }

    pub fn idle(&self) -> Option<&Idle> {
        self.idle.as_ref()
    }

    /// The shortest window whose J/token is reported: [`MIN_UPDATES_PER_WINDOW`] updates of the
    /// probe (zero when its update period is unknown or there is no probe).
    pub fn min_window(&self) -> Duration {
        self.meter
            .as_ref()
            .and_then(|m| m.info().update_period)
            .map_or(Duration::ZERO, |t| {
                Duration::from_secs_f64(t.0.max(0.0) * MIN_UPDATES_PER_WINDOW)
            })
    }

    /// Marks now on the meter's clock (reading a live probe), if there is a meter.
    pub fn mark(&self) -> Option<Mark> {
        self.meter.as_ref().map(Meter::mark)
    }

    /// One line for tables: what measured energy, or why nothing did.
    pub fn describe(&self) -> String {
        match (&self.meter, &self.not_measured) {
            (Some(m), _) => {
                let info = m.info();
                let kind = if info.measured {
                    "measured"
                } else {
                    "ESTIMATED, not measured"
                };
                let idle = self
                    .idle
                    .as_ref()
                    .map_or("idle not measured".to_owned(), |i| {
                        format!("idle {:.2} W measured in this run", i.power.0)
                    });
                format!(
                    "energy {kind} by {} ({}); {idle}",
                    info.label(),
                    info.source
                )
            }
            (None, Some(reason)) => format!("energy not measured: {reason}"),
            (None, None) => "energy not measured".to_owned(),
        }
    }

    /// Energy per phase over `windows`.
    pub fn report(&self, windows: &[Window]) -> EnergyReport {
        let Some(meter) = &self.meter else {
            return EnergyReport {
                probe: None,
                measured: None,
                domains: Vec::new(),
                idle_power_w: None,
                idle_subtracted: false,
                prefill: None,
                decode: None,
                notes: vec![self.describe()],
            };
        };
        let info = meter.info();
        let mut notes = info.notes.clone();
        if !info.measured {
            notes.insert(0, "ESTIMATE: not a measurement".to_owned());
        }
        let marks: Vec<(Mark, Mark)> = windows.iter().map(|w| (w.from, w.to)).collect();
        let energies = match meter.energies(&marks) {
            Ok(e) => e,
            Err(e) => {
                notes.push(format!("energy not measured: {e}"));
                Vec::new()
            }
        };
        let idle = self.idle.as_ref().map(|i| i.power);
        let mut phase = |p: Phase| {
            let cut: Vec<(&Window, &WindowEnergy)> = windows
                .iter()
                .zip(&energies)
                .filter(|(w, _)| w.phase == p)
                .collect();
            phase_energy(&cut, idle, info.update_period, &mut notes)
        };
        let prefill = phase(Phase::Prefill);
        let decode = phase(Phase::Decode);
        for a in meter.anomalies() {
            notes.push(format!("probe anomaly at {:.3} s: {:?}", a.t.0, a.kind));
        }
        notes.dedup();
        EnergyReport {
            probe: Some(info.label()),
            measured: Some(info.measured),
            domains: info
                .domains
                .iter()
                .filter(|d| d.in_total)
                .map(|d| d.name.clone())
                .collect(),
            idle_power_w: idle.map(|w| w.0),
            idle_subtracted: idle.is_some(),
            prefill,
            decode,
            notes,
        }
    }
}

fn phase_energy(
    cut: &[(&Window, &WindowEnergy)],
    idle: Option<power::Watts>,
    update_period: Option<power::Seconds>,
    notes: &mut Vec<String>,
) -> Option<PhaseEnergy> {
    if cut.is_empty() {
        return None;
    }
    let tokens: u64 = cut.iter().map(|(w, _)| w.tokens).sum();
    let duration: f64 = cut.iter().map(|(_, e)| e.duration_s.0).sum();
    let gross: f64 = cut.iter().map(|(_, e)| e.energy_j.0).sum();
    let net = idle.map(|p| cut.iter().map(|(_, e)| e.net_of(p).0).sum::<f64>());
    let coverage = cut.iter().map(|(_, e)| e.coverage).fold(1.0, f64::min);
    let per_token: Vec<f64> = cut
        .iter()
        .filter(|(w, _)| w.tokens > 0)
        .map(|(w, e)| idle.map_or(e.energy_j, |p| e.net_of(p)).0 / w.tokens as f64)
        .collect();
    let phase = cut[0].0.phase;
    let mut usable = true;
    if coverage < MIN_COVERAGE {
        notes.push(format!(
            "{phase:?}: probe readings cover only {:.0}% of a timed window; J/token withheld",
            coverage * 100.0
        ));
        usable = false;
    }
    let shortest = cut
        .iter()
        .map(|(_, e)| e.duration_s.0)
        .fold(f64::INFINITY, f64::min);
    if let Some(t) = update_period.filter(|t| shortest < MIN_UPDATES_PER_WINDOW * t.0) {
        notes.push(format!(
            "{phase:?}: a window lasted {:.1} ms, fewer than {MIN_UPDATES_PER_WINDOW} updates of \
             the probe (one every {:.1} ms), so its energy could be off by more than a tenth; \
             J/token withheld (time more tokens)",
            shortest * 1e3,
            t.0 * 1e3
        ));
        usable = false;
    }
    if per_token.iter().any(|&j| j <= 0.0) {
        notes.push(format!(
            "{phase:?}: energy not above idle power in a window; J/token withheld"
        ));
        usable = false;
    }
    let summary = usable.then(|| Summary::of(&per_token)).flatten();
    Some(PhaseEnergy {
        windows: cut.len(),
        tokens,
        duration_s: duration,
        gross_j: gross,
        net_j: net,
        avg_power_w: if duration > 0.0 {
            gross / duration
        } else {
            0.0
        },
        j_per_token: summary.as_ref().map(|s| s.median),
        j_per_token_ci95: summary.as_ref().map(|s| s.ci95),
        coverage,
        largest_gap_s: cut
            .iter()
            .map(|(_, e)| e.largest_gap_s.0)
            .fold(0.0, f64::max),
        anomalies: cut.iter().map(|(_, e)| e.anomalies.len()).sum(),
    })
}

impl EnergyReport {
    /// Lines for `ternbench model run`'s table.
    pub fn table(&self) -> String {
        let Some(probe) = &self.probe else {
            return self.notes.join("\n") + "\n";
        };
        let mut s = format!(
            "energy by {probe} ({}); idle {}\n",
            if self.measured == Some(true) {
                "measured"
            } else {
                "ESTIMATE, not a measurement"
            },
            self.idle_power_w
                .map_or("not measured".to_owned(), |w| format!(
                    "{w:.2} W, subtracted"
                ))
        );
        for (name, p) in [("prefill", &self.prefill), ("decode", &self.decode)] {
            let Some(p) = p else { continue };
            s += &format!(
                "{name:<8} {:>9.3} J gross{} over {:.2} s ({:.2} W avg); ",
                p.gross_j,
                p.net_j.map_or(String::new(), |n| format!(", {n:.3} J net")),
                p.duration_s,
                p.avg_power_w
            );
            s += &match (p.j_per_token, p.j_per_token_ci95) {
                (Some(j), Some([lo, hi])) => {
                    format!("{j:.4} J/token (95% CI {lo:.4}..{hi:.4})\n")
                }
                _ => "J/token withheld\n".to_owned(),
            };
        }
        for n in &self.notes {
            s += &format!("energy note: {n}\n");
        }
        s
    }
}

/// What `ternbench power measure` ran and measured.
#[derive(Debug, Serialize)]
pub struct CommandMeasurement {
    #[serde(flatten)]
    pub measurement: power::Measurement,
    pub command: Vec<String>,
    /// The command's exit code (`None` if a signal ended it).
    pub exit_code: Option<i32>,
}

/// Why `ternbench power measure` could not measure.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("{0}")]
    NoProbe(String),
    #[error("cannot run {command:?}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no command given: ternbench power measure [OPTIONS] -- CMD ARGS...")]
    NoCommand,
}

/// Measures idle power, then runs `command` (its stdout sent to `stdout`) between two marks.
pub fn measure_command(
    opts: &EnergyOptions,
    command: &[String],
    stdout: std::process::Stdio,
) -> Result<CommandMeasurement, MeasureError> {
    let (program, args) = command.split_first().ok_or(MeasureError::NoCommand)?;
    let session = Session::start(opts)?;
    let Some(meter) = session.meter() else {
        return Err(MeasureError::NoProbe(session.describe()));
    };
    let from = meter.mark();
    let status = std::process::Command::new(program)
        .args(args)
        .stdout(stdout)
        .status()
        .map_err(|source| MeasureError::Spawn {
            command: command.join(" "),
            source,
        })?;
    let to = meter.mark();
    let window = meter.energy(from, to)?;
    Ok(CommandMeasurement {
        measurement: power::Measurement::new(meter, window, session.idle()),
        command: command.to_vec(),
        exit_code: status.code(),
    })
}

/// `ternbench power probes`: every local probe kind, and why each unusable one is.
pub fn probes_table(root: &std::path::Path) -> (String, serde_json::Value) {
    let mut text = String::new();
    let mut json = Vec::new();
    for c in power::discover(root) {
        match &c.status {
            Ok(info) => {
                text += &format!(
                    "{:<22} available: {} ({}), {}, domains {}\n",
                    c.spec,
                    info.label(),
                    info.source,
                    if info.measured {
                        "measured"
                    } else {
                        "ESTIMATE"
                    },
                    info.domains
                        .iter()
                        .map(|d| format!(
                            "{}{}",
                            d.name,
                            if d.in_total { "" } else { " (not summed)" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for n in &info.notes {
                    text += &format!("{:<22}   note: {n}\n", "");
                }
                json.push(serde_json::json!({"spec": c.spec, "available": true, "probe": info}));
            }
            Err(e) => {
                text += &format!("{:<22} unavailable: {e}\n", c.spec);
                json.push(serde_json::json!({"spec": c.spec, "available": false, "reason": e.to_string()}));
            }
        }
    }
    text += "also: ptd://HOST:PORT (SPEC PTDaemon meter), csv:FILE[@START_UNIX] (meter log), \
             estimate:TDP_WATTS (an estimate, labelled so)\n";
    (text, serde_json::Value::Array(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use power::{Joules, Seconds};

    /// A decode window of `ms` milliseconds that used 10 W over `tokens` tokens.
    fn window(ms: f64, tokens: u64) -> (Window, WindowEnergy) {
        let s = ms / 1e3;
        let w = Window {
            phase: Phase::Decode,
            from: Mark { t: Seconds(1.0) },
            to: Mark {
                t: Seconds(1.0 + s),
            },
            tokens,
        };
        let e = WindowEnergy {
            duration_s: Seconds(s),
            domains: Vec::new(),
            energy_j: Joules(10.0 * s),
            coverage: 1.0,
            largest_gap_s: Seconds(0.0),
            samples: 2,
            anomalies: Vec::new(),
        };
        (w, e)
    }

    fn phase(ms: &[f64], update: Option<f64>) -> (PhaseEnergy, Vec<String>) {
        let windows: Vec<_> = ms.iter().map(|&ms| window(ms, 8)).collect();
        let cut: Vec<_> = windows.iter().map(|(w, e)| (w, e)).collect();
        let mut notes = Vec::new();
        let p = phase_energy(&cut, None, update.map(Seconds), &mut notes).unwrap();
        (p, notes)
    }

    #[test]
    fn a_window_shorter_than_ten_probe_updates_withholds_j_per_token() {
        let (p, notes) = phase(&[40.0, 9.5, 40.0], Some(1e-3));
        assert_eq!(p.j_per_token, None);
        assert_eq!(p.j_per_token_ci95, None);
        assert!((p.gross_j - 0.895).abs() < 1e-12, "{p:?}");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("9.5 ms") && notes[0].contains("withheld"),
            "{notes:?}"
        );
    }

    #[test]
    fn windows_of_ten_updates_or_more_give_j_per_token() {
        for update in [Some(1e-3), None] {
            let (p, notes) = phase(&[10.0, 20.0, 40.0], update);
            assert!(notes.is_empty(), "{notes:?}");
            // 10 W over 20 ms is 0.2 J, over 8 tokens: the median window's 25 mJ/token.
            let j = p.j_per_token.unwrap();
            assert!((j - 0.025).abs() < 1e-12, "{p:?}");
        }
        // A slow probe (one update a second, as Android's battery) needs ten-second windows.
        let (p, _) = phase(&[5_000.0, 5_000.0], Some(1.0));
        assert_eq!(p.j_per_token, None);
    }
}
