//! A running meter: a sampler thread polling a live probe, or an imported log read after the
//! fact, and the markers that cut measured windows out of its trace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::probe::{Probe, ProbeError, ProbeInfo};
use crate::trace::{Anomaly, Trace, WindowEnergy};
use crate::units::{Joules, Seconds, Watts};

/// A source whose readings come as a log written by an independent meter, read after the run.
pub trait LogSource: Send {
    fn info(&self) -> &ProbeInfo;
    /// The log's readings with times moved onto the meter's clock: seconds after the Unix time
    /// `origin_unix`.
    fn trace(&mut self, origin_unix: f64) -> Result<Trace, ProbeError>;
}

/// What a probe spec opens.
pub enum Source {
    Live(Box<dyn Probe>),
    Log(Box<dyn LogSource>),
}

impl Source {
    pub fn info(&self) -> &ProbeInfo {
        match self {
            Source::Live(probe) => probe.info(),
            Source::Log(log) => log.info(),
        }
    }
}

/// A point on the meter's clock; windows run from one mark to another.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mark {
    /// Seconds since the meter started.
    pub t: Seconds,
}

struct Live {
    probe: Mutex<Box<dyn Probe>>,
    trace: Mutex<Trace>,
    stop: AtomicBool,
}

enum Inner {
    Live {
        shared: Arc<Live>,
        thread: Option<JoinHandle<()>>,
    },
    Log {
        log: Mutex<Box<dyn LogSource>>,
        trace: Mutex<Option<Trace>>,
    },
}

/// A started meter.
pub struct Meter {
    info: ProbeInfo,
    origin: Instant,
    origin_unix: f64,
    period: Duration,
    inner: Inner,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a reader panicked; the trace itself stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Meter {
    /// Starts sampling: a live probe is read once now (so a probe that cannot be read fails
    /// here, not mid-run) and then every `period` on its own thread. The period is shortened if
    /// a counter could otherwise wrap twice between reads at 1 kW.
    pub fn start(source: Source, period: Duration) -> Result<Meter, ProbeError> {
        let info = source.info().clone();
        let period = match info.max_poll_period(Watts(1000.0)) {
            Some(max) if max.0 < period.as_secs_f64() => Duration::from_secs_f64(max.0.max(1e-3)),
            _ => period,
        };
        let origin = Instant::now();
        let origin_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let inner = match source {
            Source::Live(mut probe) => {
                let mut trace = Trace::new(info.domains.clone());
                let first = probe.read()?;
                trace.push(Seconds(origin.elapsed().as_secs_f64()), &first);
                let shared = Arc::new(Live {
                    probe: Mutex::new(probe),
                    trace: Mutex::new(trace),
                    stop: AtomicBool::new(false),
                });
                let worker = Arc::clone(&shared);
                let thread = std::thread::Builder::new()
                    .name("power-sampler".into())
                    .spawn(move || sample_loop(&worker, origin, period))
                    .map_err(|e| ProbeError::Unavailable {
                        probe: info.name.clone(),
                        reason: format!("cannot start the sampler thread: {e}"),
                    })?;
                Inner::Live {
                    shared,
                    thread: Some(thread),
                }
            }
            Source::Log(log) => Inner::Log {
                log: Mutex::new(log),
                trace: Mutex::new(None),
            },
        };
        Ok(Meter {
            info,
            origin,
            origin_unix,
            period,
            inner,
        })
    }

    pub fn info(&self) -> &ProbeInfo {
        &self.info
    }

    /// The poll period in use.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Unix time of the meter's clock zero, for aligning external logs.
    pub fn origin_unix(&self) -> f64 {
        self.origin_unix
    }

    /// Marks now; a live probe is read at the mark so window edges need no long interpolation.
    pub fn mark(&self) -> Mark {
        let t = match &self.inner {
            // The mark takes its reading's own time, so the window edge is a reading.
            Inner::Live { shared, .. } => read_into(shared, self.origin),
            Inner::Log { .. } => Seconds(self.origin.elapsed().as_secs_f64()),
        };
        Mark { t }
    }

    /// The energy between two marks. A log source is read anew on each call, since an external
    /// meter may still be appending to it; use [`Meter::energies`] for many windows.
    pub fn energy(&self, from: Mark, to: Mark) -> Result<WindowEnergy, ProbeError> {
        Ok(self.energies(&[(from, to)])?.remove(0))
    }

    /// The energy of each window, reading a log source once for all of them.
    pub fn energies(&self, windows: &[(Mark, Mark)]) -> Result<Vec<WindowEnergy>, ProbeError> {
        let cut = |trace: &Trace| {
            windows
                .iter()
                .map(|(a, b)| trace.energy(a.t, b.t))
                .collect()
        };
        match &self.inner {
            Inner::Live { shared, .. } => Ok(cut(&lock(&shared.trace))),
            Inner::Log { log, trace } => {
                let fresh = lock(log).trace(self.origin_unix)?;
                let out = cut(&fresh);
                *lock(trace) = Some(fresh);
                Ok(out)
            }
        }
    }

    /// Every anomaly so far (wraps, backwards counters, read errors).
    pub fn anomalies(&self) -> Vec<Anomaly> {
        match &self.inner {
            Inner::Live { shared, .. } => lock(&shared.trace).anomalies().to_vec(),
            Inner::Log { trace, .. } => lock(trace)
                .as_ref()
                .map(|t| t.anomalies().to_vec())
                .unwrap_or_default(),
        }
    }

    /// Average power over `duration` of doing nothing, measured now.
    pub fn idle(&self, duration: Duration) -> Result<Idle, ProbeError> {
        let from = self.mark();
        std::thread::sleep(duration);
        let to = self.mark();
        let window = self.energy(from, to)?;
        Ok(Idle {
            power: window.avg_power(),
            window,
            from,
            to,
        })
    }

    /// Stops the sampler thread.
    pub fn stop(&mut self) {
        if let Inner::Live { shared, thread } = &mut self.inner {
            shared.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = thread.take() {
                // A panicked sampler leaves the trace it had; nothing more to recover.
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Idle power measured in the run.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub power: Watts,
    pub window: WindowEnergy,
    pub from: Mark,
    pub to: Mark,
}

fn read_into(shared: &Live, origin: Instant) -> Seconds {
    // The probe stays locked until the reading is pushed, so readings arrive in time order.
    let mut probe = lock(&shared.probe);
    let reading = probe.read();
    let t = Seconds(origin.elapsed().as_secs_f64());
    let mut trace = lock(&shared.trace);
    match reading {
        Ok(values) => trace.push(t, &values),
        Err(e) => {
            // One anomaly per outage, not one per poll.
            let repeated = trace.anomalies().last().is_some_and(|a| {
                a.t.0 >= trace.points().last().map_or(0.0, |p| p.t.0)
                    && matches!(&a.kind, crate::trace::AnomalyKind::ReadError { message } if *message == e.to_string())
            });
            if !repeated {
                trace.push_error(t, e.to_string());
            }
        }
    }
    drop(trace);
    drop(probe);
    t
}

fn sample_loop(shared: &Live, origin: Instant, period: Duration) {
    let mut next = Instant::now() + period;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            // Sleep in short steps so stopping never waits a whole period.
            std::thread::sleep((next - now).min(Duration::from_millis(20)));
            continue;
        }
        let _ = read_into(shared, origin);
        next += period;
        if next < Instant::now() {
            next = Instant::now() + period;
        }
    }
}

/// One measured command or window, as `ternbench power measure --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub probe: String,
    pub source: String,
    /// `false` when the figure is an estimate.
    pub measured: bool,
    pub domains: Vec<String>,
    pub duration_s: f64,
    /// Gross energy of the window.
    pub energy_j: f64,
    pub avg_power_w: f64,
    /// Idle power measured in the same run, if it was.
    pub idle_power_w: Option<f64>,
    /// `energy_j` minus idle power times the duration.
    pub net_energy_j: Option<f64>,
    pub coverage: f64,
    pub largest_gap_s: f64,
    pub samples: usize,
    pub poll_period_s: f64,
    pub anomalies: Vec<Anomaly>,
    pub notes: Vec<String>,
    pub window: WindowEnergy,
}

impl Measurement {
    pub fn new(meter: &Meter, window: WindowEnergy, idle: Option<&Idle>) -> Measurement {
        let info = meter.info();
        Measurement {
            probe: info.label(),
            source: info.source.clone(),
            measured: info.measured,
            domains: info
                .domains
                .iter()
                .filter(|d| d.in_total)
                .map(|d| d.name.clone())
                .collect(),
            duration_s: window.duration_s.0,
            energy_j: window.energy_j.0,
            avg_power_w: window.avg_power().0,
            idle_power_w: idle.map(|i| i.power.0),
            net_energy_j: idle.map(|i| window.net_of(i.power).0),
            coverage: window.coverage,
            largest_gap_s: window.largest_gap_s.0,
            samples: window.samples,
            poll_period_s: meter.period().as_secs_f64(),
            anomalies: window.anomalies.clone(),
            notes: info.notes.clone(),
            window,
        }
    }

    /// Net energy when idle was measured, else gross.
    pub fn best_energy(&self) -> Joules {
        Joules(self.net_energy_j.unwrap_or(self.energy_j))
    }
}
