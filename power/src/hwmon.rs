//! hwmon power and energy sensors: `energyN_input` (µJ, cumulative), `powerN_input` or
//! `powerN_average` (µW), and INA3221 channels, which have no power file, as bus voltage (mV) ×
//! current (mA).
//!
//! Total rule: a channel labelled as the board input (`VDD_IN`, `*_IN`, `*total*`) is the only
//! one in the total (Jetson's rails are inside it); otherwise every channel is its own rail and
//! in the total, except power channels of a chip that also counts energy (the same rails twice).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::probe::{Domain, DomainKind, Probe, ProbeError, ProbeInfo, Reading, Scope};
use crate::units::Seconds;

const HWMON: &str = "sys/class/hwmon";
const PROBE: &str = "hwmon";

#[derive(Debug, Clone)]
enum Channel {
    /// `energyN_input`, µJ.
    Energy(PathBuf),
    /// `powerN_input` or `powerN_average`, µW.
    Power(PathBuf),
    /// INA3221 `inN_input` (mV) and `currN_input` (mA).
    VoltAmp { volt: PathBuf, curr: PathBuf },
}

struct Found {
    hwmon: String,
    chip: String,
    /// `energy1`, `power2`, `in3`.
    attr: String,
    label: Option<String>,
    channel: Channel,
}

fn read_attr(path: &Path) -> Result<String, ProbeError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| {
            if e.kind() == ErrorKind::PermissionDenied {
                ProbeError::PermissionDenied {
                    probe: PROBE.into(),
                    path: path.to_path_buf(),
                    hint: "this hwmon attribute is not readable by this user (some drivers \
                           restrict energy files to root since CVE-2020-12912): run as root or \
                           `sudo chmod a+r` it"
                        .into(),
                }
            } else {
                ProbeError::Io {
                    probe: PROBE.into(),
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })
}

fn read_number(path: &Path) -> Result<f64, ProbeError> {
    let text = read_attr(path)?;
    let field = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    text.parse::<i64>()
        .map(|v| v as f64)
        .map_err(|e| ProbeError::Parse {
            probe: PROBE.into(),
            path: path.to_path_buf(),
            field,
            reason: format!("{text:?}: {e}"),
        })
}

/// The channel number of `<prefix>N<suffix>`, e.g. `power2_average` → 2.
fn channel_number(file: &str, prefix: &str, suffix: &str) -> Option<u32> {
    file.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

/// A label naming the board's input supply, which contains the other rails.
fn is_input_label(label: &str) -> bool {
    let upper = label.to_ascii_uppercase();
    upper == "VDD_IN" || upper.ends_with("_IN") || upper.contains("TOTAL")
}

fn optional_label(dir: &Path, attr: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(format!("{attr}_label")))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The power and energy channels of one `hwmonN` directory, and a summary of what else it has.
fn scan_device(dir: &Path, hwmon: &str) -> Result<(Vec<Found>, String), ProbeError> {
    let chip = std::fs::read_to_string(dir.join("name"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unnamed".into());
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| ProbeError::Io {
            probe: PROBE.into(),
            path: dir.to_path_buf(),
            source: e,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut found = Vec::new();
    let mut numbers: Vec<u32> = files
        .iter()
        .filter_map(|f| channel_number(f, "energy", "_input"))
        .collect();
    numbers.sort_unstable();
    for n in numbers {
        let attr = format!("energy{n}");
        found.push(Found {
            hwmon: hwmon.into(),
            chip: chip.clone(),
            label: optional_label(dir, &attr),
            channel: Channel::Energy(dir.join(format!("{attr}_input"))),
            attr,
        });
    }
    let mut numbers: Vec<u32> = files
        .iter()
        .filter_map(|f| {
            channel_number(f, "power", "_input").or_else(|| channel_number(f, "power", "_average"))
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    for n in numbers {
        let attr = format!("power{n}");
        // An instantaneous reading beats a driver-averaged one when both exist.
        let input = format!("{attr}_input");
        let file = if files.contains(&input) {
            input
        } else {
            format!("{attr}_average")
        };
        found.push(Found {
            hwmon: hwmon.into(),
            chip: chip.clone(),
            label: optional_label(dir, &attr),
            channel: Channel::Power(dir.join(file)),
            attr,
        });
    }
    if chip.starts_with("ina3221") {
        let mut numbers: Vec<u32> = files
            .iter()
            .filter_map(|f| channel_number(f, "curr", "_input"))
            .collect();
        numbers.sort_unstable();
        for n in numbers {
            let volt = format!("in{n}_input");
            if !files.contains(&volt) {
                continue;
            }
            // A channel switched off reads stale values.
            if std::fs::read_to_string(dir.join(format!("in{n}_enable")))
                .is_ok_and(|s| s.trim() == "0")
            {
                continue;
            }
            let attr = format!("in{n}");
            found.push(Found {
                hwmon: hwmon.into(),
                chip: chip.clone(),
                label: optional_label(dir, &attr),
                channel: Channel::VoltAmp {
                    volt: dir.join(volt),
                    curr: dir.join(format!("curr{n}_input")),
                },
                attr,
            });
        }
    }
    let mut kinds: Vec<&str> = files
        .iter()
        .filter(|f| f.ends_with("_input") || f.ends_with("_average"))
        .filter_map(|f| {
            let end = f.find(|c: char| c.is_ascii_digit())?;
            Some(&f[..end])
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let summary = format!(
        "{hwmon} ({chip}: {})",
        if kinds.is_empty() {
            "no sensors".to_owned()
        } else {
            kinds.join(", ")
        }
    );
    Ok((found, summary))
}

fn update_interval(dir: &Path) -> Option<Seconds> {
    let ms: f64 = std::fs::read_to_string(dir.join("update_interval"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (ms > 0.0).then_some(Seconds(ms / 1e3))
}

struct Hwmon {
    info: ProbeInfo,
    channels: Vec<Channel>,
}

impl Probe for Hwmon {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        self.channels
            .iter()
            .map(|channel| {
                Ok(match channel {
                    Channel::Energy(path) => read_number(path)? / 1e6,
                    Channel::Power(path) => read_number(path)? / 1e6,
                    // mV × mA = µW.
                    Channel::VoltAmp { volt, curr } => {
                        read_number(volt)? * read_number(curr)? / 1e6
                    }
                })
            })
            .collect()
    }
}

/// Every hwmon device under `root/sys/class/hwmon` with power or energy channels.
pub fn open(root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    let base = root.join(HWMON);
    let entries = match std::fs::read_dir(&base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(ProbeError::Unavailable {
                probe: PROBE.into(),
                reason: format!("{} does not exist (no hwmon drivers)", base.display()),
            })
        }
        Err(e) => {
            return Err(ProbeError::Io {
                probe: PROBE.into(),
                path: base,
                source: e,
            })
        }
    };
    let mut dirs: Vec<(u64, String)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|name| Some((name.strip_prefix("hwmon")?.parse().ok()?, name)))
        .collect();
    dirs.sort();
    let mut found = Vec::new();
    let mut looked = Vec::new();
    let mut period: Option<Seconds> = None;
    for (_, name) in &dirs {
        let dir = base.join(name);
        let (channels, summary) = scan_device(&dir, name)?;
        if !channels.is_empty() {
            if let Some(p) = update_interval(&dir) {
                period = Some(Seconds(period.map_or(p.0, |q| q.0.max(p.0))));
            }
        }
        found.extend(channels);
        looked.push(summary);
    }
    if found.is_empty() {
        return Err(ProbeError::Unavailable {
            probe: PROBE.into(),
            reason: format!(
                "no power or energy sensors (energyN_input, powerN_input, powerN_average, \
                 ina3221 inN_input × currN_input) under {}; looked at: {}",
                base.display(),
                if looked.is_empty() {
                    "no hwmonN devices".to_owned()
                } else {
                    looked.join(", ")
                }
            ),
        });
    }

    let has_input = found
        .iter()
        .any(|f| f.label.as_deref().is_some_and(is_input_label));
    let energy_chips: Vec<String> = found
        .iter()
        .filter(|f| matches!(f.channel, Channel::Energy(_)))
        .map(|f| f.hwmon.clone())
        .collect();
    let mut names: Vec<String> = found
        .iter()
        .map(|f| {
            f.label
                .clone()
                .unwrap_or_else(|| format!("{}:{}", f.chip, f.attr))
        })
        .collect();
    // Two chips of the same kind give the same names: tell them apart by their hwmon device.
    let duplicated: Vec<bool> = names
        .iter()
        .map(|n| names.iter().filter(|m| *m == n).count() > 1)
        .collect();
    for ((name, dup), f) in names.iter_mut().zip(&duplicated).zip(&found) {
        if *dup {
            *name = format!("{}:{name}", f.hwmon);
        }
    }
    let mut notes = Vec::new();
    let domains: Vec<Domain> = found
        .iter()
        .zip(names)
        .map(|(f, name)| {
            let input = f.label.as_deref().is_some_and(is_input_label);
            let in_total = if has_input {
                input
            } else {
                !(matches!(f.channel, Channel::Power(_)) && energy_chips.contains(&f.hwmon))
            };
            if let Channel::VoltAmp { .. } = f.channel {
                let n = f.attr.strip_prefix("in").unwrap_or(&f.attr);
                notes.push(format!(
                    "{name}: power = in{n}_input (mV) × curr{n}_input (mA), computed on read \
                     (INA3221 has no power file)"
                ));
            }
            Domain {
                name,
                scope: if input { Scope::Device } else { Scope::Rail },
                kind: match f.channel {
                    Channel::Energy(_) => DomainKind::Counter { range: None },
                    _ => DomainKind::Power,
                },
                in_total,
            }
        })
        .collect();
    notes.push(if has_input {
        "total = the board-input channel only; the other rails are inside it".into()
    } else {
        "total = every channel as a separate rail (power channels of a chip that also counts \
         energy are left out); check the rails are not nested on this board"
            .into()
    });
    notes.push("on-board sensors omit what lies outside their rails (carrier board, PSU)".into());
    let mut chips: Vec<&str> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    for f in &found {
        if !chips.contains(&f.chip.as_str()) {
            chips.push(&f.chip);
        }
        let dir = base.join(&f.hwmon).display().to_string();
        if !sources.contains(&dir) {
            sources.push(dir);
        }
    }
    let mut probe = Hwmon {
        info: ProbeInfo {
            name: format!("{PROBE}:{}", chips.join("+")),
            source: sources.join(", "),
            domains,
            measured: true,
            resolution: None,
            power_resolution: None,
            update_period: period,
            notes,
        },
        channels: found.into_iter().map(|f| f.channel).collect(),
    };
    // One read now so an unreadable attribute fails at open, not mid-run.
    probe.read()?;
    Ok(Box::new(probe))
}
