//! The battery fuel gauge as the power_supply class reports it. Vendor unit and sign quirks are
//! decided once, at open, from the first values, and written into the probe's notes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::probe::ProbeError;
use crate::units::Watts;

/// `|current_now|` below this is read as mA (Samsung and others), at or above it as µA (the
/// kernel ABI). As µA a value below it would mean under 10 mA, about 40 mW at 3.85 V, which no
/// running phone or laptop draws; as mA a value above it would mean over 10 A, which no phone
/// battery delivers.
pub const MILLIAMP_BELOW: f64 = 10_000.0;
/// `voltage_now` below this is read as mV: as µV it would be under 0.1 V, which is no battery.
pub const MILLIVOLT_BELOW: f64 = 100_000.0;

/// power_supply attributes the probe looks at, per supply.
pub(crate) const ATTRS: &[&str] = &[
    "type",
    "scope",
    "present",
    "online",
    "status",
    "current_now",
    "voltage_now",
    "power_now",
];

/// Attributes of each supply (trimmed text), by supply name.
pub(crate) type Supplies = BTreeMap<String, BTreeMap<String, String>>;

/// The battery `status` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Charging,
    Discharging,
    Full,
    NotCharging,
    Unknown,
}

impl Status {
    pub(crate) fn parse(text: Option<&str>) -> Status {
        match text.map(str::trim) {
            Some("Charging") => Status::Charging,
            Some("Discharging") => Status::Discharging,
            Some("Full") => Status::Full,
            Some("Not charging") => Status::NotCharging,
            _ => Status::Unknown,
        }
    }
}

/// What the gauge's power comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Basis {
    /// `current_now` × `voltage_now`, each scaled to A and V.
    CurrentVoltage {
        amps_per_unit: f64,
        volts_per_unit: f64,
    },
    /// `power_now` in µW (ACPI batteries that report in energy units).
    Power,
}

/// Which sign of `current_now` means discharging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sign {
    /// Negative while discharging, as the kernel ABI says.
    Abi,
    /// Positive while discharging.
    Flipped,
    /// Not seen at open (no current, or neither charging nor discharging); the ABI is assumed.
    Assumed,
}

/// One battery and how to turn its attributes into watts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gauge {
    pub supply: String,
    pub basis: Basis,
    pub sign: Sign,
}

impl Gauge {
    /// The attributes read at every poll, in the order [`Gauge::watts`] takes their values.
    pub(crate) fn attrs(&self) -> &'static [&'static str] {
        match self.basis {
            Basis::CurrentVoltage { .. } => &["current_now", "voltage_now", "status"],
            Basis::Power => &["power_now", "status"],
        }
    }

    /// Discharge power from the values of [`Gauge::attrs`]: positive while the battery feeds
    /// the device, negative while energy flows into it. `status` decides the direction while
    /// Charging or Discharging; otherwise the sign convention found at open does.
    pub(crate) fn watts(
        &self,
        values: &[&str],
        probe: &str,
        base: &str,
    ) -> Result<f64, ProbeError> {
        let attrs = self.attrs();
        if values.len() != attrs.len() {
            return Err(ProbeError::Parse {
                probe: probe.into(),
                path: PathBuf::from(format!("{base}/{}", self.supply)),
                field: attrs.join(","),
                reason: format!("expected {} values, got {}", attrs.len(), values.len()),
            });
        }
        let number = |i: usize| {
            number(
                values[i],
                probe,
                &format!("{base}/{}/{}", self.supply, attrs[i]),
            )
        };
        let status = Status::parse(values.last().copied());
        let (magnitude, raw_current) = match self.basis {
            Basis::CurrentVoltage {
                amps_per_unit,
                volts_per_unit,
            } => {
                let current = number(0)?;
                let voltage = number(1)?;
                (
                    (current * amps_per_unit * voltage * volts_per_unit).abs(),
                    current,
                )
            }
            Basis::Power => (number(0)?.abs() * 1e-6, 0.0),
        };
        let direction = match (status, self.basis, self.sign) {
            (Status::Discharging, _, _) => 1.0,
            (Status::Charging, _, _) => -1.0,
            // power_now carries no sign: outside Charging it is the battery feeding the device.
            (_, Basis::Power, _) => 1.0,
            (_, _, Sign::Flipped) => raw_current.signum(),
            (_, _, Sign::Abi | Sign::Assumed) => -raw_current.signum(),
        };
        Ok(direction * magnitude)
    }
}

/// What open decided.
#[derive(Debug)]
pub(crate) struct Calibration {
    pub gauges: Vec<Gauge>,
    pub notes: Vec<String>,
    pub power_resolution: Option<Watts>,
}

pub(crate) fn number(text: &str, probe: &str, path: &str) -> Result<f64, ProbeError> {
    let parse_error = |reason: String| ProbeError::Parse {
        probe: probe.into(),
        path: PathBuf::from(path),
        field: path.rsplit('/').next().unwrap_or(path).into(),
        reason,
    };
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|e| parse_error(format!("{:?} is not a number: {e}", text.trim())))?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(parse_error(format!("{value} is not a finite number")))
    }
}

fn is_system_battery(attrs: &BTreeMap<String, String>) -> bool {
    attrs.get("type").is_some_and(|t| t == "Battery")
        // `scope` Device marks a peripheral's battery (a mouse, a stylus), not the system's.
        && attrs.get("scope").is_none_or(|s| s != "Device")
        && attrs.get("present").is_none_or(|p| p != "0")
}

/// The system batteries among `supplies`: the one named `battery` (Android healthd's) if any,
/// else every present Battery of system scope (laptops with BAT0 and BAT1 draw on both).
pub(crate) fn batteries(supplies: &Supplies) -> Vec<&str> {
    if supplies.get("battery").is_some_and(is_system_battery) {
        return vec!["battery"];
    }
    supplies
        .iter()
        .filter(|(_, attrs)| is_system_battery(attrs))
        .map(|(name, _)| name.as_str())
        .collect()
}

/// Supplies other than batteries that report `online` non-zero (USB, AC, wireless chargers).
fn external_online(supplies: &Supplies) -> Vec<&str> {
    supplies
        .iter()
        .filter(|(_, a)| a.get("type").is_some_and(|t| t != "Battery"))
        .filter(|(_, a)| a.get("online").is_some_and(|o| o.trim() != "0"))
        .map(|(name, _)| name.as_str())
        .collect()
}

/// Decides units and sign conventions from the values in `supplies`; `base` names the
/// power_supply directory in messages (a sysfs path, or `adb:SERIAL:/sys/class/power_supply`).
pub(crate) fn calibrate(
    supplies: &Supplies,
    probe: &str,
    base: &str,
) -> Result<Calibration, ProbeError> {
    let names = batteries(supplies);
    if names.is_empty() {
        let all: Vec<String> = supplies
            .iter()
            .map(|(n, a)| format!("{n} ({})", a.get("type").map_or("no type", String::as_str)))
            .collect();
        return Err(ProbeError::Unavailable {
            probe: probe.into(),
            reason: format!(
                "no power_supply of type Battery under {base} (supplies: {})",
                if all.is_empty() {
                    "none".into()
                } else {
                    all.join(", ")
                }
            ),
        });
    }
    let external = external_online(supplies);
    let mut notes = Vec::new();
    let mut gauges = Vec::new();
    let mut zeros = Vec::new();
    let mut resolution: f64 = 0.0;
    let mut powered_status = Vec::new();
    for name in names {
        let attrs = &supplies[name];
        let path = |attr: &str| format!("{base}/{name}/{attr}");
        let status = Status::parse(attrs.get("status").map(String::as_str));
        if matches!(status, Status::Charging | Status::Full) {
            powered_status.push(format!(
                "{name} status {}",
                attrs.get("status").map_or("", String::as_str)
            ));
        }
        match (
            attrs.get("current_now"),
            attrs.get("voltage_now"),
            attrs.get("power_now"),
        ) {
            (Some(current), Some(voltage), _) => {
                let current = number(current, probe, &path("current_now"))?;
                let voltage = number(voltage, probe, &path("voltage_now"))?;
                if voltage <= 0.0 {
                    return Err(ProbeError::ReadsZero {
                        probe: probe.into(),
                        path: PathBuf::from(path("voltage_now")),
                        hint: format!(
                            "battery voltage reads {voltage}: the gauge is not reporting"
                        ),
                    });
                }
                let volts_per_unit = if voltage < MILLIVOLT_BELOW {
                    notes.push(format!(
                        "{name}: voltage_now read as mV ({voltage} < {MILLIVOLT_BELOW}: as µV it would be under 0.1 V)"
                    ));
                    1e-3
                } else {
                    1e-6
                };
                let (amps_per_unit, sign) = if current == 0.0 {
                    zeros.push((path("current_now"), status));
                    (1e-6, Sign::Assumed)
                } else {
                    let amps = if current.abs() < MILLIAMP_BELOW {
                        notes.push(format!(
                            "{name}: current_now read as mA, not the ABI's µA (|{current}| < {MILLIAMP_BELOW}: \
                             as µA it would be {:.1} mA, {:.1} mW, below any running device; Samsung-style gauge)",
                            current.abs() * 1e-3,
                            (current * 1e-6 * voltage * volts_per_unit).abs() * 1e3
                        ));
                        1e-3
                    } else {
                        notes.push(format!(
                            "{name}: current_now read as µA per the kernel ABI (|{current}| ≥ {MILLIAMP_BELOW})"
                        ));
                        1e-6
                    };
                    let sign = match status {
                        Status::Discharging if current < 0.0 => Sign::Abi,
                        Status::Discharging => Sign::Flipped,
                        Status::Charging if current > 0.0 => Sign::Abi,
                        Status::Charging => Sign::Flipped,
                        _ => Sign::Assumed,
                    };
                    (amps, sign)
                };
                notes.push(match sign {
                    Sign::Abi => format!(
                        "{name}: sign convention found at open: negative while discharging, as the kernel ABI \
                         (current_now {current}, status {status:?})"
                    ),
                    Sign::Flipped => format!(
                        "{name}: sign convention found at open: flipped, positive while discharging \
                         (current_now {current}, status {status:?})"
                    ),
                    Sign::Assumed => format!(
                        "{name}: sign convention not visible at open (current_now {current}, status {status:?}); \
                         the kernel ABI (negative while discharging) is assumed when status is neither \
                         Charging nor Discharging"
                    ),
                });
                resolution = resolution.max(amps_per_unit * voltage * volts_per_unit);
                gauges.push(Gauge {
                    supply: name.to_string(),
                    basis: Basis::CurrentVoltage {
                        amps_per_unit,
                        volts_per_unit,
                    },
                    sign,
                });
            }
            (_, _, Some(power)) => {
                let power = number(power, probe, &path("power_now"))?;
                if power == 0.0 {
                    zeros.push((path("power_now"), status));
                }
                notes.push(format!(
                    "{name}: power from power_now (µW, no sign: status gives the direction)"
                ));
                resolution = resolution.max(1e-6);
                gauges.push(Gauge {
                    supply: name.to_string(),
                    basis: Basis::Power,
                    sign: Sign::Assumed,
                });
            }
            _ => {
                return Err(ProbeError::Unavailable {
                    probe: probe.into(),
                    reason: format!(
                        "{base}/{name} has neither current_now and voltage_now nor power_now"
                    ),
                })
            }
        }
    }
    if zeros.len() == gauges.len() {
        let (path, status) = zeros.swap_remove(0);
        let hint = if !external.is_empty()
            || matches!(
                status,
                Status::Full | Status::NotCharging | Status::Charging
            ) {
            format!(
                "the battery is idle (status {status:?}) because {} powers the device: unplug the \
                 charger (use wireless adb) to measure from the battery",
                if external.is_empty() {
                    "a charger".to_string()
                } else {
                    external.join(", ")
                }
            )
        } else {
            "the fuel gauge reports no current while the device runs (some older Samsung kernels \
             never fill current_now): this battery cannot measure the workload; use an external meter"
                .to_string()
        };
        return Err(ProbeError::ReadsZero {
            probe: probe.into(),
            path: PathBuf::from(path),
            hint,
        });
    }
    for (path, _) in zeros {
        notes.push(format!(
            "{path} reads 0 at open (an idle second battery?); its unit is assumed µA"
        ));
    }
    notes.push(
        "battery power = |V × I| (or power_now) while status is Discharging, negative (energy into the \
         battery) while Charging; other states take the sign convention above"
            .into(),
    );
    if !external.is_empty() || !powered_status.is_empty() {
        let mut why: Vec<String> = external.iter().map(|s| format!("{s} online")).collect();
        why.extend(powered_status);
        notes.push(format!(
            "USB power connected: battery current does not measure the workload; unplug, use wireless \
             adb, or a battery-bypass meter ({})",
            why.join(", ")
        ));
    }
    notes.push(
        "the fuel gauge updates only every ~1–10 s on many devices: windows shorter than ~50 updates \
         are coarse; each read returns the gauge's latest value"
            .into(),
    );
    Ok(Calibration {
        gauges,
        notes,
        power_resolution: Some(Watts(resolution)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn supplies(list: &[(&str, &[(&str, &str)])]) -> Supplies {
        list.iter()
            .map(|(name, attrs)| {
                (
                    name.to_string(),
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn unit_threshold_splits_milliamps_from_microamps() {
        for (raw, amps) in [
            ("-9999", 1e-3),
            ("-10000", 1e-6),
            ("523", 1e-3),
            ("2500000", 1e-6),
        ] {
            let s = supplies(&[(
                "battery",
                &[
                    ("type", "Battery"),
                    ("status", "Discharging"),
                    ("current_now", raw),
                    ("voltage_now", "4000000"),
                ],
            )]);
            let cal = calibrate(&s, "t", "/sys").unwrap();
            match cal.gauges[0].basis {
                Basis::CurrentVoltage { amps_per_unit, .. } => {
                    assert_eq!(amps_per_unit, amps, "{raw}")
                }
                Basis::Power => panic!("wrong basis"),
            }
        }
    }

    #[test]
    fn millivolts_are_recognised() {
        let s = supplies(&[(
            "battery",
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("current_now", "-500000"),
                ("voltage_now", "3800"),
            ],
        )]);
        let cal = calibrate(&s, "t", "/sys").unwrap();
        let w = cal.gauges[0]
            .watts(&["-500000", "3800", "Discharging"], "t", "/sys")
            .unwrap();
        assert!((w - 1.9).abs() < 1e-12);
    }

    #[test]
    fn status_decides_direction_and_convention_covers_the_rest() {
        let abi = Gauge {
            supply: "battery".into(),
            basis: Basis::CurrentVoltage {
                amps_per_unit: 1e-6,
                volts_per_unit: 1e-6,
            },
            sign: Sign::Abi,
        };
        let flipped = Gauge {
            sign: Sign::Flipped,
            ..abi.clone()
        };
        let w = |g: &Gauge, i: &str, s: &str| g.watts(&[i, "4000000", s], "t", "/sys").unwrap();
        assert_eq!(w(&abi, "-250000", "Discharging"), 1.0);
        assert_eq!(w(&flipped, "250000", "Discharging"), 1.0);
        assert_eq!(w(&abi, "250000", "Charging"), -1.0);
        assert_eq!(w(&abi, "-250000", "Not charging"), 1.0);
        assert_eq!(w(&flipped, "-250000", "Full"), -1.0);
    }

    #[test]
    fn peripheral_and_absent_batteries_are_ignored() {
        let s = supplies(&[
            (
                "hid-mouse-battery",
                &[("type", "Battery"), ("scope", "Device"), ("power_now", "1")],
            ),
            ("BAT1", &[("type", "Battery"), ("present", "0")]),
            ("AC", &[("type", "Mains"), ("online", "1")]),
        ]);
        let err = calibrate(&s, "t", "/sys").unwrap_err();
        assert!(matches!(err, ProbeError::Unavailable { .. }), "{err}");
    }

    #[test]
    fn garbage_values_are_parse_errors() {
        let s = supplies(&[(
            "battery",
            &[
                ("type", "Battery"),
                ("current_now", "lots"),
                ("voltage_now", "4000000"),
            ],
        )]);
        let err = calibrate(&s, "t", "/sys").unwrap_err();
        assert!(
            err.to_string().contains("/sys/battery/current_now"),
            "{err}"
        );
    }
}
