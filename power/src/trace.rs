//! A timeline of readings and the energy of a window cut from it.
//!
//! Counters are unwrapped as they arrive: a drop below the last value adds the counter's range
//! once (the poll period keeps a second wrap impossible); a drop on a counter with no known range
//! is flagged and contributes nothing for that interval, never a negative or silent value.
//! Window edges are interpolated linearly, counters by cumulative energy and power by trapezoid.

use serde::Serialize;

use crate::probe::{Domain, DomainKind, Scope};
use crate::units::{Joules, Seconds, Watts};

/// Readings at one time: unwrapped cumulative joules for counters, watts for power domains.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub t: Seconds,
    pub values: Vec<f64>,
}

/// Something a reader of the energy figure must know about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum AnomalyKind {
    /// A counter wrapped and its range was added (expected on long runs; not an error).
    Wrapped,
    /// A counter with no known range went backwards; the interval counts as zero.
    Backwards { from: f64, to: f64 },
    /// A read failed; the gap shows in coverage.
    ReadError { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub t: Seconds,
    pub domain: Option<String>,
    #[serde(flatten)]
    pub kind: AnomalyKind,
}

/// A probe's readings over time, on the meter's clock.
#[derive(Debug, Clone)]
pub struct Trace {
    domains: Vec<Domain>,
    points: Vec<Point>,
    last_raw: Vec<f64>,
    offset: Vec<f64>,
    anomalies: Vec<Anomaly>,
}

/// Energy of one domain over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEnergy {
    pub name: String,
    pub scope: Scope,
    pub in_total: bool,
    pub energy_j: Joules,
}

/// The energy of a window `[from, to]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowEnergy {
    pub duration_s: Seconds,
    pub domains: Vec<DomainEnergy>,
    /// Sum of the domains marked `in_total`.
    pub energy_j: Joules,
    /// Fraction of the window between the first and last reading that bracket it (1.0: whole).
    pub coverage: f64,
    /// Longest stretch of the window with no reading.
    pub largest_gap_s: Seconds,
    /// Readings inside the window.
    pub samples: usize,
    /// Anomalies inside the window.
    pub anomalies: Vec<Anomaly>,
}

impl WindowEnergy {
    pub fn avg_power(&self) -> Watts {
        if self.duration_s.0 > 0.0 {
            self.energy_j / self.duration_s
        } else {
            Watts(0.0)
        }
    }

    /// Energy net of an idle power measured in the same run.
    pub fn net_of(&self, idle: Watts) -> Joules {
        self.energy_j - idle * self.duration_s
    }
}

impl Trace {
    pub fn new(domains: Vec<Domain>) -> Trace {
        let n = domains.len();
        Trace {
            domains,
            points: Vec::new(),
            last_raw: vec![f64::NAN; n],
            offset: vec![0.0; n],
            anomalies: Vec::new(),
        }
    }

    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    pub fn anomalies(&self) -> &[Anomaly] {
        &self.anomalies
    }

    /// Appends a raw reading taken at `t`; readings must come in time order (an earlier one is
    /// recorded as a read error and ignored). A reading of the wrong width is a read error too.
    pub fn push(&mut self, t: Seconds, raw: &[f64]) {
        if let Some(last) = self.points.last() {
            if t.0 < last.t.0 {
                self.push_error(
                    t,
                    format!("reading at {:.6} s arrived after {:.6} s", t.0, last.t.0),
                );
                return;
            }
        }
        if raw.len() != self.domains.len() {
            let message = format!(
                "reading has {} values for {} domains",
                raw.len(),
                self.domains.len()
            );
            self.push_error(t, message);
            return;
        }
        let mut values = Vec::with_capacity(raw.len());
        for (d, &value) in raw.iter().enumerate() {
            if !value.is_finite() {
                self.push_error(t, format!("{}: non-finite reading", self.domains[d].name));
                return;
            }
        }
        for (d, &value) in raw.iter().enumerate() {
            match self.domains[d].kind {
                DomainKind::Power => values.push(value),
                DomainKind::Counter { range } => {
                    let last = self.last_raw[d];
                    if value < last {
                        let domain = Some(self.domains[d].name.clone());
                        match range {
                            Some(range) if range.0 > 0.0 => {
                                self.offset[d] += range.0;
                                self.anomalies.push(Anomaly {
                                    t,
                                    domain,
                                    kind: AnomalyKind::Wrapped,
                                });
                            }
                            _ => {
                                self.offset[d] += last - value;
                                self.anomalies.push(Anomaly {
                                    t,
                                    domain,
                                    kind: AnomalyKind::Backwards {
                                        from: last,
                                        to: value,
                                    },
                                });
                            }
                        }
                    }
                    self.last_raw[d] = value;
                    values.push(value + self.offset[d]);
                }
            }
        }
        self.points.push(Point { t, values });
    }

    pub fn push_error(&mut self, t: Seconds, message: String) {
        self.anomalies.push(Anomaly {
            t,
            domain: None,
            kind: AnomalyKind::ReadError { message },
        });
    }

    /// The energy between `from` and `to`. Parts of the window outside the readings are not
    /// extrapolated: they lower `coverage` instead.
    pub fn energy(&self, from: Seconds, to: Seconds) -> WindowEnergy {
        let duration = Seconds((to.0 - from.0).max(0.0));
        let (lo, hi) = match (self.points.first(), self.points.last()) {
            (Some(first), Some(last)) => (first.t.0.max(from.0), last.t.0.min(to.0)),
            _ => (0.0, 0.0),
        };
        let covered = (hi - lo).max(0.0);
        let domains: Vec<DomainEnergy> = self
            .domains
            .iter()
            .enumerate()
            .map(|(d, domain)| {
                let energy = if covered > 0.0 {
                    match domain.kind {
                        DomainKind::Counter { .. } => self.at(d, hi) - self.at(d, lo),
                        DomainKind::Power => self.power_integral(d, lo, hi),
                    }
                } else {
                    0.0
                };
                DomainEnergy {
                    name: domain.name.clone(),
                    scope: domain.scope,
                    in_total: domain.in_total,
                    energy_j: Joules(energy),
                }
            })
            .collect();
        let energy_j = Joules(
            domains
                .iter()
                .filter(|d| d.in_total)
                .map(|d| d.energy_j.0)
                .sum::<f64>(),
        );
        WindowEnergy {
            duration_s: duration,
            energy_j,
            domains,
            coverage: if duration.0 > 0.0 {
                covered / duration.0
            } else {
                0.0
            },
            largest_gap_s: Seconds(self.largest_gap(from.0, to.0)),
            samples: self
                .points
                .iter()
                .filter(|p| p.t.0 >= from.0 && p.t.0 <= to.0)
                .count(),
            anomalies: self
                .anomalies
                .iter()
                .filter(|a| a.t.0 >= from.0 && a.t.0 <= to.0)
                .cloned()
                .collect(),
        }
    }

    /// Domain `d` interpolated at `t`, which lies within the readings.
    fn at(&self, d: usize, t: f64) -> f64 {
        let i = self.points.partition_point(|p| p.t.0 <= t);
        if i == 0 {
            return self.points[0].values[d];
        }
        let a = &self.points[i - 1];
        match self.points.get(i) {
            Some(b) if b.t.0 > a.t.0 => {
                let w = (t - a.t.0) / (b.t.0 - a.t.0);
                a.values[d] + w * (b.values[d] - a.values[d])
            }
            _ => a.values[d],
        }
    }

    /// Trapezoid integral of power domain `d` over `[lo, hi]`, within the readings.
    fn power_integral(&self, d: usize, lo: f64, hi: f64) -> f64 {
        let mut total = 0.0;
        let mut t = lo;
        let mut p = self.at(d, lo);
        for point in self.points.iter().filter(|q| q.t.0 > lo && q.t.0 < hi) {
            total += 0.5 * (p + point.values[d]) * (point.t.0 - t);
            t = point.t.0;
            p = point.values[d];
        }
        total + 0.5 * (p + self.at(d, hi)) * (hi - t)
    }

    fn largest_gap(&self, from: f64, to: f64) -> f64 {
        let mut gap: f64 = 0.0;
        let mut prev = from;
        for t in self.points.iter().map(|p| p.t.0) {
            if t <= from {
                continue;
            }
            if t >= to {
                break;
            }
            gap = gap.max(t - prev);
            prev = t;
        }
        gap.max(to - prev)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn counter(name: &str, range: Option<f64>) -> Domain {
        Domain {
            name: name.into(),
            scope: Scope::Package,
            kind: DomainKind::Counter {
                range: range.map(Joules),
            },
            in_total: true,
        }
    }

    fn power(name: &str) -> Domain {
        Domain {
            name: name.into(),
            scope: Scope::Wall,
            kind: DomainKind::Power,
            in_total: true,
        }
    }

    #[test]
    fn counter_window_interpolates_edges() {
        let mut trace = Trace::new(vec![counter("pkg", None)]);
        for i in 0..=10 {
            trace.push(Seconds(i as f64), &[10.0 * i as f64]); // 10 W
        }
        let w = trace.energy(Seconds(2.5), Seconds(7.25));
        assert!((w.energy_j.0 - 47.5).abs() < 1e-9, "{w:?}");
        assert_eq!(w.coverage, 1.0);
        assert!((w.avg_power().0 - 10.0).abs() < 1e-9);
        assert_eq!(w.samples, 5);
        assert!((w.largest_gap_s.0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn wrap_adds_range_once_and_is_recorded() {
        let mut trace = Trace::new(vec![counter("pkg", Some(100.0))]);
        trace.push(Seconds(0.0), &[80.0]);
        trace.push(Seconds(1.0), &[95.0]);
        trace.push(Seconds(2.0), &[10.0]); // wrapped: +15 J
        trace.push(Seconds(3.0), &[25.0]);
        let w = trace.energy(Seconds(0.0), Seconds(3.0));
        assert!((w.energy_j.0 - 45.0).abs() < 1e-9);
        assert_eq!(w.anomalies.len(), 1);
        assert_eq!(w.anomalies[0].kind, AnomalyKind::Wrapped);
    }

    #[test]
    fn backwards_without_range_is_flagged_and_counts_zero() {
        let mut trace = Trace::new(vec![counter("energy1", None)]);
        trace.push(Seconds(0.0), &[50.0]);
        trace.push(Seconds(1.0), &[60.0]);
        trace.push(Seconds(2.0), &[5.0]);
        trace.push(Seconds(3.0), &[15.0]);
        let w = trace.energy(Seconds(0.0), Seconds(3.0));
        assert!((w.energy_j.0 - 20.0).abs() < 1e-9, "{w:?}");
        assert!(matches!(w.anomalies[0].kind, AnomalyKind::Backwards { .. }));
    }

    #[test]
    fn trapezoid_of_a_ramp_is_exact() {
        let mut trace = Trace::new(vec![power("wall")]);
        for i in 0..=4 {
            trace.push(Seconds(i as f64), &[2.0 * i as f64]); // P = 2t
        }
        // ∫ 2t dt from 0.5 to 3.5 = 3.5² − 0.5² = 12
        let w = trace.energy(Seconds(0.5), Seconds(3.5));
        assert!((w.energy_j.0 - 12.0).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn uncovered_window_lowers_coverage_and_shows_the_gap() {
        let mut trace = Trace::new(vec![power("wall")]);
        trace.push(Seconds(0.0), &[5.0]);
        trace.push(Seconds(2.0), &[5.0]);
        let w = trace.energy(Seconds(1.0), Seconds(5.0));
        assert!((w.coverage - 0.25).abs() < 1e-9);
        assert!((w.energy_j.0 - 5.0).abs() < 1e-9);
        assert!((w.largest_gap_s.0 - 3.0).abs() < 1e-9);
    }

    #[test]
    fn nested_domains_are_not_summed() {
        let mut cores = counter("core", None);
        cores.in_total = false;
        let mut trace = Trace::new(vec![counter("package-0", None), cores]);
        trace.push(Seconds(0.0), &[0.0, 0.0]);
        trace.push(Seconds(1.0), &[20.0, 12.0]);
        let w = trace.energy(Seconds(0.0), Seconds(1.0));
        assert_eq!(w.energy_j, Joules(20.0));
        assert_eq!(w.domains[1].energy_j, Joules(12.0));
    }

    #[test]
    fn net_subtracts_idle_over_the_window() {
        let mut trace = Trace::new(vec![counter("pkg", None)]);
        trace.push(Seconds(0.0), &[0.0]);
        trace.push(Seconds(4.0), &[100.0]);
        let w = trace.energy(Seconds(0.0), Seconds(4.0));
        assert_eq!(w.net_of(Watts(5.0)), Joules(80.0));
    }
}
