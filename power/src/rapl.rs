//! RAPL through the perf `power` PMU and through powercap sysfs.
//!
//! Both read the same energy-status MSRs. The perf path is preferred: the kernel accumulates the
//! 32-bit registers into 64 bits, so callers never see a wrap. Powercap hands out the raw counter
//! in µJ and its wrap point in `max_energy_range_uj`; the trace unwraps it.
//!
//! Domains nest (psys ⊇ package ⊇ core, uncore), so only packages (or their dies) and DRAM are
//! in the total; the others are reported beside it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::probe::{Domain, DomainKind, Probe, ProbeError, ProbeInfo, Reading, Scope};
use crate::units::{Joules, Seconds};

const POWERCAP: &str = "sys/class/powercap";
const PERF_PMU: &str = "sys/bus/event_source/devices/power";
const PERF_NAME: &str = "rapl-perf";
const POWERCAP_NAME: &str = "rapl-powercap";
/// The energy-status MSRs update about every millisecond (Intel SDM, amd_energy).
const MSR_UPDATE: Seconds = Seconds(0.001);
/// How long to wait before deciding that all-zero counters are really stuck.
const ZERO_RECHECK: Duration = Duration::from_millis(50);

/// RAPL through perf when the kernel lets us, else powercap. When both fail the error carries
/// both reasons.
pub fn open(root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    let perf = match open_perf(root) {
        Ok(probe) => return Ok(probe),
        Err(e) => e,
    };
    let powercap = match open_powercap(root) {
        Ok(probe) => return Ok(probe),
        Err(e) => e,
    };
    Err(combine(perf, powercap))
}

/// Keeps the most actionable kind of failure (a permission or zero problem over a plain absence)
/// while the message names both paths.
fn combine(perf: ProbeError, powercap: ProbeError) -> ProbeError {
    match powercap {
        ProbeError::PermissionDenied { path, hint, .. } => ProbeError::PermissionDenied {
            probe: "rapl".into(),
            path,
            hint: format!("{hint} (the perf path failed too: {perf})"),
        },
        ProbeError::ReadsZero { path, hint, .. } => ProbeError::ReadsZero {
            probe: "rapl".into(),
            path,
            hint: format!("{hint} (the perf path failed too: {perf})"),
        },
        powercap => match perf {
            ProbeError::PermissionDenied { path, hint, .. } => ProbeError::PermissionDenied {
                probe: "rapl".into(),
                path,
                hint: format!("{hint} (powercap failed too: {powercap})"),
            },
            perf => ProbeError::Unavailable {
                probe: "rapl".into(),
                reason: format!("perf power PMU: {perf}; powercap: {powercap}"),
            },
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn io_error(probe: &str, path: &Path, source: std::io::Error) -> ProbeError {
    ProbeError::Io {
        probe: probe.into(),
        path: path.to_path_buf(),
        source,
    }
}

fn parse_error(probe: &str, path: &Path, field: &str, reason: impl Into<String>) -> ProbeError {
    ProbeError::Parse {
        probe: probe.into(),
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// The CPU vendor from `proc/cpuinfo`, if readable.
fn cpu_vendor(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("proc/cpuinfo")).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "vendor_id").then(|| value.trim().to_owned())
    })
}

fn is_amd(root: &Path) -> bool {
    matches!(
        cpu_vendor(root).as_deref(),
        Some("AuthenticAMD" | "HygonGenuine")
    )
}

/// A caveat when the CPU advertises SGX: sysfs has no reliable flag for RAPL energy filtering,
/// which Intel forces on whenever SGX is enabled.
fn sgx_note(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("proc/cpuinfo")).ok()?;
    let has_sgx = text.lines().any(|line| {
        line.split_once(':').is_some_and(|(key, flags)| {
            key.trim() == "flags" && flags.split_whitespace().any(|f| f == "sgx")
        })
    });
    has_sgx.then(|| {
        "proc/cpuinfo lists sgx: when SGX is enabled Intel's PLATYPUS mitigation turns on RAPL \
         energy filtering, which perturbs readings (Intel: by up to 50 % over short intervals); \
         check the BIOS SGX setting before trusting short windows"
            .to_owned()
    })
}

fn dram_note(domain: &str) -> String {
    format!(
        "{domain}: DRAM is outside the package domain and is added to the total; the total still \
         leaves out the PSU, fans, disks, NICs and discrete GPUs"
    )
}

fn amd_core_note(domain: &str) -> String {
    format!(
        "{domain}: on AMD this zone reads ONE core's counter (on the package's lead CPU), not all \
         cores; it is reported, never summed"
    )
}

fn all_zero(values: &[f64]) -> bool {
    !values.is_empty() && values.iter().all(|v| *v == 0.0)
}

// ---------------------------------------------------------------------------------------------
// powercap

/// `intel-rapl` (MSR) or `intel-rapl-mmio` control type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Control {
    Msr,
    Mmio,
}

#[derive(Debug, Clone)]
struct Zone {
    control: Control,
    /// `intel-rapl:1:a` → [1, 10]; the kernel formats zone ids in hex.
    index: Vec<u32>,
    dir_name: String,
    dir: PathBuf,
    /// The zone's `name` file (`package-0`, `core`, `dram`, `psys`).
    name: String,
    /// `package-0/core` for sub-zones, the bare name for top zones.
    qualified: String,
}

/// Splits `intel-rapl:0:a` into its control type and hex indexes; `None` for anything else
/// (including the bare `intel-rapl` control-type directory).
fn parse_zone_dir(dir_name: &str) -> Option<(Control, Vec<u32>)> {
    let (prefix, rest) = dir_name.split_once(':')?;
    let control = match prefix {
        "intel-rapl" => Control::Msr,
        "intel-rapl-mmio" => Control::Mmio,
        _ => return None,
    };
    let index = rest
        .split(':')
        .map(|part| u32::from_str_radix(part, 16).ok())
        .collect::<Option<Vec<u32>>>()?;
    Some((control, index))
}

fn powercap_permission_hint() -> String {
    "energy_uj is readable by root only since Linux 5.10 (the PLATYPUS fix, CVE-2020-8694): run \
     as root, or `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj \
     /sys/class/powercap/intel-rapl:*:*/energy_uj` (lost at reboot; a udev rule such as \
     `ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"` keeps \
     it), or use --probe rapl-perf with kernel.perf_event_paranoid <= 0 or CAP_PERFMON"
        .to_owned()
}

fn read_powercap_file(path: &Path) -> Result<String, ProbeError> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == ErrorKind::PermissionDenied {
            ProbeError::PermissionDenied {
                probe: POWERCAP_NAME.into(),
                path: path.to_path_buf(),
                hint: powercap_permission_hint(),
            }
        } else {
            io_error(POWERCAP_NAME, path, e)
        }
    })
}

fn read_uj(path: &Path, field: &str) -> Result<u64, ProbeError> {
    let text = read_powercap_file(path)?;
    text.trim().parse::<u64>().map_err(|e| {
        parse_error(
            POWERCAP_NAME,
            path,
            field,
            format!("{:?}: {e}", text.trim()),
        )
    })
}

/// Every RAPL zone under `sys/class/powercap`, MMIO zones replacing MSR zones of the same name.
fn scan_zones(root: &Path, notes: &mut Vec<String>) -> Result<Vec<Zone>, ProbeError> {
    let base = root.join(POWERCAP);
    let entries = match std::fs::read_dir(&base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(ProbeError::Unavailable {
                probe: POWERCAP_NAME.into(),
                reason: format!(
                    "{} does not exist: typical in VMs and cloud instances, which expose no \
                     RAPL, and in containers (Docker masks it: bind-mount /sys/class/powercap \
                     read-only or run --privileged)",
                    base.display()
                ),
            })
        }
        Err(e) => return Err(io_error(POWERCAP_NAME, &base, e)),
    };
    let mut found = Vec::new();
    let mut others = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(POWERCAP_NAME, &base, e))?;
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        match parse_zone_dir(&dir_name) {
            Some((control, index)) => {
                let dir = base.join(&dir_name);
                let name_path = dir.join("name");
                let name = read_powercap_file(&name_path)?.trim().to_owned();
                if name.is_empty() {
                    return Err(parse_error(POWERCAP_NAME, &name_path, "name", "empty"));
                }
                found.push(Zone {
                    control,
                    index,
                    dir_name,
                    dir,
                    qualified: name.clone(),
                    name,
                });
            }
            None => others.push(dir_name),
        }
    }
    if found.is_empty() {
        others.sort();
        return Err(ProbeError::Unavailable {
            probe: POWERCAP_NAME.into(),
            reason: format!(
                "no intel-rapl or intel-rapl-mmio zones in {} (found: {}); the intel_rapl_msr \
                 module is not loaded, the CPU has no RAPL, or this is a VM",
                base.display(),
                if others.is_empty() {
                    "nothing".to_owned()
                } else {
                    others.join(", ")
                }
            ),
        });
    }
    found.sort_by(|a, b| (a.control, &a.index).cmp(&(b.control, &b.index)));
    let parents: Vec<(Control, Vec<u32>, String)> = found
        .iter()
        .map(|z| (z.control, z.index.clone(), z.name.clone()))
        .collect();
    for zone in &mut found {
        if zone.index.len() > 1 {
            let parent_index = &zone.index[..zone.index.len() - 1];
            if let Some((_, _, parent)) = parents
                .iter()
                .find(|(c, i, _)| *c == zone.control && i.as_slice() == parent_index)
            {
                zone.qualified = format!("{parent}/{}", zone.name);
            }
        }
    }
    // codecarbon's rule: the MMIO interface wins over the MSR one for the same domain.
    let mut zones: Vec<Zone> = Vec::new();
    for zone in found {
        match zones.iter_mut().find(|z| z.qualified == zone.qualified) {
            Some(existing) if zone.control == Control::Mmio => {
                notes.push(format!(
                    "{}: read through {} (MMIO), preferred over {} (MSR)",
                    zone.qualified, zone.dir_name, existing.dir_name
                ));
                *existing = zone;
            }
            Some(existing) => notes.push(format!(
                "{}: {} ignored, {} reads the same domain",
                zone.qualified, zone.dir_name, existing.dir_name
            )),
            None => zones.push(zone),
        }
    }
    Ok(zones)
}

/// The package number `N` of `package-N` or `package-N-die-M`, and whether it is a die.
fn package_of(name: &str) -> Option<(&str, bool)> {
    let rest = name.strip_prefix("package-")?;
    match rest.split_once("-die-") {
        Some((n, _)) => Some((n, true)),
        None => Some((rest, false)),
    }
}

/// Scope and `in_total` of each zone, with the notes the reader needs about them.
fn classify(zones: &[Zone], amd: bool, notes: &mut Vec<String>) -> Vec<(Scope, bool)> {
    let whole_packages: Vec<&str> = zones
        .iter()
        .filter(|z| z.index.len() == 1)
        .filter_map(|z| package_of(&z.name))
        .filter(|(_, die)| !die)
        .map(|(n, _)| n)
        .collect();
    let mut out: Vec<(Scope, bool)> = zones
        .iter()
        .map(|zone| {
            if zone.index.len() == 1 {
                if let Some((n, die)) = package_of(&zone.name) {
                    // A die is summed unless its whole package is a zone of its own.
                    let nested = die && whole_packages.contains(&n);
                    return (Scope::Package, !nested);
                }
                if zone.name == "psys" {
                    return (Scope::Platform, false);
                }
            }
            match zone.name.as_str() {
                "dram" => {
                    notes.push(dram_note(&zone.qualified));
                    (Scope::Dram, true)
                }
                "core" => {
                    if amd {
                        notes.push(amd_core_note(&zone.qualified));
                    }
                    (Scope::Cores, false)
                }
                "uncore" => (Scope::Uncore, false),
                "psys" => (Scope::Platform, false),
                other => {
                    notes.push(format!(
                        "{}: unknown RAPL domain {other:?} in {}; reported, not summed",
                        zone.qualified, zone.dir_name
                    ));
                    (Scope::Rail, false)
                }
            }
        })
        .collect();
    if !out.iter().any(|(_, in_total)| *in_total) {
        if let Some(i) = out.iter().position(|(s, _)| *s == Scope::Platform) {
            out[i].1 = true;
            notes.push(format!(
                "{}: no package zone, so psys (the whole SoC platform) is the total",
                zones[i].qualified
            ));
        }
    }
    if zones.iter().any(|z| z.name == "psys") {
        notes.push(
            "psys covers the whole platform and contains the package: reported, never summed"
                .into(),
        );
    }
    out
}

struct Powercap {
    info: ProbeInfo,
    files: Vec<PathBuf>,
}

impl Powercap {
    fn read_all(&self) -> Result<Reading, ProbeError> {
        self.files
            .iter()
            .map(|path| read_uj(path, "energy_uj").map(|uj| Joules::from_micro(uj as f64).0))
            .collect()
    }
}

impl Probe for Powercap {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        self.read_all()
    }
}

/// RAPL through `sys/class/powercap/intel-rapl*`.
pub fn open_powercap(root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    let mut notes = Vec::new();
    let zones = scan_zones(root, &mut notes)?;
    let amd = is_amd(root);
    let classes = classify(&zones, amd, &mut notes);
    let mut domains = Vec::with_capacity(zones.len());
    let mut files = Vec::with_capacity(zones.len());
    for (zone, (scope, in_total)) in zones.iter().zip(classes) {
        let range_path = zone.dir.join("max_energy_range_uj");
        let range = match read_uj(&range_path, "max_energy_range_uj") {
            Ok(uj) if uj > 0 => Some(Joules::from_micro(uj as f64)),
            Ok(_) => {
                notes.push(format!(
                    "{}: {} reads 0, so the wrap point is unknown: a wrap shows as a backwards \
                     counter, not as invented energy",
                    zone.qualified,
                    range_path.display()
                ));
                None
            }
            Err(e) => {
                notes.push(format!(
                    "{}: max_energy_range_uj unreadable ({e}), so the wrap point is unknown: a \
                     wrap shows as a backwards counter, not as invented energy",
                    zone.qualified
                ));
                None
            }
        };
        domains.push(Domain {
            name: zone.qualified.clone(),
            scope,
            kind: DomainKind::Counter { range },
            in_total,
        });
        files.push(zone.dir.join("energy_uj"));
    }
    if amd {
        notes.push("AMD RAPL is modelled by the CPU, not measured at the rails".into());
    }
    notes.extend(sgx_note(root));
    let probe = Powercap {
        info: ProbeInfo {
            name: POWERCAP_NAME.into(),
            source: root.join(POWERCAP).display().to_string(),
            domains,
            measured: true,
            resolution: None,
            power_resolution: None,
            update_period: Some(MSR_UPDATE),
            notes,
        },
        files,
    };
    // One read now so permission problems surface at open, not mid-run.
    let first = probe.read_all()?;
    if all_zero(&first) {
        std::thread::sleep(ZERO_RECHECK);
        if all_zero(&probe.read_all()?) {
            return Err(ProbeError::ReadsZero {
                probe: POWERCAP_NAME.into(),
                path: probe.files[0].clone(),
                hint: format!(
                    "all {} RAPL counters read 0 µJ at open and again {} ms later: the counters \
                     are masked or not running (a VM or container, or unprivileged reads masked \
                     by the kernel); run as root or try --probe rapl-perf",
                    probe.files.len(),
                    ZERO_RECHECK.as_millis()
                ),
            });
        }
    }
    Ok(Box::new(probe))
}

// ---------------------------------------------------------------------------------------------
// perf power PMU

/// One `energy-*` event of the perf `power` PMU, as sysfs describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfEvent {
    /// `energy-pkg`, `energy-cores`, `energy-ram`, `energy-gpu`, `energy-psys`.
    pub name: String,
    /// `perf_event_attr.config` built from `events/<name>` and `format/`.
    pub config: u64,
    /// Joules per count (`events/<name>.scale`, 2⁻³² on current kernels).
    pub scale: f64,
    /// `events/<name>.unit`, always `Joules`.
    pub unit: String,
}

/// The perf `power` PMU as `sys/bus/event_source/devices/power` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfPmu {
    /// `perf_event_attr.type` (`type`).
    pub pmu_type: u32,
    /// One CPU per package (or die) to count on (`cpumask`).
    pub cpus: Vec<usize>,
    /// The energy events present, in the order pkg, ram, cores, gpu, psys.
    pub events: Vec<PerfEvent>,
}

/// The events we use, their domain base name, scope and whether they are in the total.
const PERF_EVENTS: [(&str, &str, Scope, bool); 5] = [
    ("energy-pkg", "package", Scope::Package, true),
    ("energy-ram", "dram", Scope::Dram, true),
    ("energy-cores", "core", Scope::Cores, false),
    ("energy-gpu", "uncore", Scope::Uncore, false),
    ("energy-psys", "psys", Scope::Platform, false),
];

fn read_perf_file(path: &Path) -> Result<String, ProbeError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| io_error(PERF_NAME, path, e))
}

/// A CPU list such as `0,28` or `0-3,8`.
fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (lo.parse().ok()?, hi.parse().ok()?);
                if hi < lo {
                    return None;
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The lowest bit of a `format/<term>` file such as `config:0-7`.
fn format_shift(pmu: &Path, term: &str) -> Result<u32, ProbeError> {
    let path = pmu.join("format").join(term);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // No format file: the power PMU's only term, `event`, sits at bit 0.
        Err(e) if e.kind() == ErrorKind::NotFound && term == "event" => return Ok(0),
        Err(e) => return Err(io_error(PERF_NAME, &path, e)),
    };
    let bits = text
        .trim()
        .strip_prefix("config:")
        .ok_or_else(|| parse_error(PERF_NAME, &path, term, "expected config:LO-HI"))?;
    let lo = bits.split_once('-').map_or(bits, |(lo, _)| lo);
    lo.parse()
        .map_err(|_| parse_error(PERF_NAME, &path, term, format!("bad bit range {bits:?}")))
}

impl PerfPmu {
    /// Parses the PMU under `root`; no syscall.
    pub fn read(root: &Path) -> Result<PerfPmu, ProbeError> {
        let pmu = root.join(PERF_PMU);
        let type_path = pmu.join("type");
        let type_text = match std::fs::read_to_string(&type_path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ProbeError::Unavailable {
                    probe: PERF_NAME.into(),
                    reason: format!(
                        "no perf power PMU ({} missing): the kernel lacks RAPL perf support, \
                         the CPU has no RAPL, or this is a VM",
                        type_path.display()
                    ),
                })
            }
            Err(e) => return Err(io_error(PERF_NAME, &type_path, e)),
        };
        let pmu_type = type_text.trim().parse().map_err(|_| {
            parse_error(
                PERF_NAME,
                &type_path,
                "type",
                format!("{:?} is not a number", type_text.trim()),
            )
        })?;
        let cpumask_path = pmu.join("cpumask");
        let cpumask = read_perf_file(&cpumask_path)?;
        let cpus = parse_cpu_list(&cpumask).ok_or_else(|| {
            parse_error(
                PERF_NAME,
                &cpumask_path,
                "cpumask",
                format!("{cpumask:?} is not a CPU list"),
            )
        })?;
        let mut events = Vec::new();
        for (name, ..) in PERF_EVENTS {
            let path = pmu.join("events").join(name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(PERF_NAME, &path, e)),
            };
            let mut config = 0u64;
            for term in text.trim().split(',').filter(|t| !t.is_empty()) {
                let (key, value) = term.split_once('=').ok_or_else(|| {
                    parse_error(PERF_NAME, &path, name, format!("term {term:?} has no '='"))
                })?;
                let value = parse_number(value).ok_or_else(|| {
                    parse_error(PERF_NAME, &path, key, format!("{value:?} is not a number"))
                })?;
                let shift = format_shift(&pmu, key)?;
                config |= value.checked_shl(shift).unwrap_or(0);
            }
            let scale_path = pmu.join("events").join(format!("{name}.scale"));
            let scale_text = read_perf_file(&scale_path)?;
            let scale: f64 = scale_text
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    parse_error(
                        PERF_NAME,
                        &scale_path,
                        "scale",
                        format!("{scale_text:?} is not a positive number"),
                    )
                })?;
            let unit_path = pmu.join("events").join(format!("{name}.unit"));
            let unit = read_perf_file(&unit_path)?;
            if unit != "Joules" {
                return Err(parse_error(
                    PERF_NAME,
                    &unit_path,
                    "unit",
                    format!("expected Joules, found {unit:?}"),
                ));
            }
            events.push(PerfEvent {
                name: name.into(),
                config,
                scale,
                unit,
            });
        }
        if events.is_empty() {
            return Err(ProbeError::Unavailable {
                probe: PERF_NAME.into(),
                reason: format!(
                    "the perf power PMU at {} lists no energy-* events",
                    pmu.display()
                ),
            });
        }
        Ok(PerfPmu {
            pmu_type,
            cpus,
            events,
        })
    }

    /// The domains a probe over this PMU reports: each event on each CPU of `cpumask`, named
    /// like the powercap zones (`package-0`, `dram-1`), with the CPU and the event behind it.
    pub fn domains(&self) -> Vec<(Domain, usize, &PerfEvent)> {
        let mut out = Vec::new();
        for event in &self.events {
            let Some((_, base, scope, in_total)) =
                PERF_EVENTS.iter().find(|(name, ..)| *name == event.name)
            else {
                continue;
            };
            for (i, &cpu) in self.cpus.iter().enumerate() {
                out.push((
                    Domain {
                        name: format!("{base}-{i}"),
                        scope: *scope,
                        // The kernel accumulates into 64 bits: no wrap to unwrap.
                        kind: DomainKind::Counter { range: None },
                        in_total: *in_total,
                    },
                    cpu,
                    event,
                ));
            }
        }
        out
    }
}

struct PerfCounter {
    counter: perf_event::Counter,
    scale: f64,
}

struct Perf {
    info: ProbeInfo,
    counters: Vec<PerfCounter>,
    event_path: PathBuf,
}

impl Perf {
    fn read_all(&mut self) -> Result<Reading, ProbeError> {
        let path = &self.event_path;
        self.counters
            .iter_mut()
            .map(|c| {
                c.counter
                    .read()
                    .map(|count| count as f64 * c.scale)
                    .map_err(|e| io_error(PERF_NAME, path, e))
            })
            .collect()
    }
}

impl Probe for Perf {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        self.read_all()
    }
}

/// errno values perf_event_open returns when the PMU, event or CPU is not there.
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const EOPNOTSUPP: i32 = 95;

fn perf_open_error(root: &Path, event_path: &Path, cpu: usize, e: std::io::Error) -> ProbeError {
    if e.kind() == ErrorKind::PermissionDenied {
        let paranoid = std::fs::read_to_string(root.join("proc/sys/kernel/perf_event_paranoid"))
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        return ProbeError::PermissionDenied {
            probe: PERF_NAME.into(),
            path: event_path.to_path_buf(),
            hint: format!(
                "perf_event_open refused a system-wide counter on CPU {cpu} ({e}): it needs \
                 kernel.perf_event_paranoid <= 0 (now {paranoid}; `sudo sysctl -w \
                 kernel.perf_event_paranoid=0`) or CAP_PERFMON (or root)"
            ),
        };
    }
    match e.raw_os_error() {
        Some(ENODEV | EOPNOTSUPP | EINVAL) => ProbeError::Unavailable {
            probe: PERF_NAME.into(),
            reason: format!(
                "perf_event_open on {} for CPU {cpu} failed ({e}): the kernel has no such \
                 PMU, event or CPU",
                event_path.display()
            ),
        },
        _ if e.kind() == ErrorKind::NotFound => ProbeError::Unavailable {
            probe: PERF_NAME.into(),
            reason: format!(
                "perf_event_open on {} for CPU {cpu} failed ({e}): the running kernel has no \
                 such PMU type",
                event_path.display()
            ),
        },
        _ => io_error(PERF_NAME, event_path, e),
    }
}

/// RAPL through the perf `power` PMU: `sys/bus/event_source/devices/power` parsed under `root`,
/// counters opened system-wide with perf_event_open on this machine.
pub fn open_perf(root: &Path) -> Result<Box<dyn Probe>, ProbeError> {
    let pmu = PerfPmu::read(root)?;
    let pmu_dir = root.join(PERF_PMU);
    let mut domains = Vec::new();
    let mut counters = Vec::new();
    for (domain, cpu, event) in pmu.domains() {
        let event_path = pmu_dir.join("events").join(&event.name);
        let mut builder = perf_event::Builder::new(perf_event::events::Software::DUMMY);
        builder
            .any_pid()
            .one_cpu(cpu)
            // The power PMU rejects any exclude_* bit.
            .exclude_kernel(false)
            .exclude_hv(false)
            .enabled(true);
        let attrs = builder.attrs_mut();
        attrs.type_ = pmu.pmu_type;
        attrs.config = event.config;
        let counter = builder
            .build()
            .map_err(|e| perf_open_error(root, &event_path, cpu, e))?;
        domains.push(domain);
        counters.push(PerfCounter {
            counter,
            scale: event.scale,
        });
    }
    let mut notes: Vec<String> = domains
        .iter()
        .filter(|d| d.scope == Scope::Dram)
        .map(|d| dram_note(&d.name))
        .collect();
    if is_amd(root) {
        notes.push("AMD RAPL is modelled by the CPU, not measured at the rails".into());
        for d in domains.iter().filter(|d| d.scope == Scope::Cores) {
            notes.push(amd_core_note(&d.name));
        }
    }
    if domains.iter().any(|d| d.scope == Scope::Platform) {
        notes.push(
            "psys covers the whole platform and contains the package: reported, never summed"
                .into(),
        );
    }
    notes.push(format!(
        "domain -N counts on the N-th CPU of cpumask ({}), one per package",
        pmu.cpus
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    notes.extend(sgx_note(root));
    let event_path = pmu_dir.join("events");
    let mut probe = Perf {
        info: ProbeInfo {
            name: PERF_NAME.into(),
            source: pmu_dir.display().to_string(),
            domains,
            measured: true,
            resolution: None,
            power_resolution: None,
            update_period: Some(MSR_UPDATE),
            notes,
        },
        counters,
        event_path,
    };
    // Counters start at zero when opened; still zero after a pause means they are not running.
    if all_zero(&probe.read_all()?) {
        std::thread::sleep(ZERO_RECHECK);
        if all_zero(&probe.read_all()?) {
            return Err(ProbeError::ReadsZero {
                probe: PERF_NAME.into(),
                path: probe.event_path.clone(),
                hint: format!(
                    "all {} perf energy counters still read 0 J {} ms after opening: RAPL is \
                     not running here (a VM with a fake PMU?)",
                    probe.counters.len(),
                    ZERO_RECHECK.as_millis()
                ),
            });
        }
    }
    Ok(Box::new(probe))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn zone_dirs_are_hex() {
        assert_eq!(
            parse_zone_dir("intel-rapl:a"),
            Some((Control::Msr, vec![10]))
        );
        assert_eq!(
            parse_zone_dir("intel-rapl-mmio:0:1f"),
            Some((Control::Mmio, vec![0, 31]))
        );
        assert_eq!(parse_zone_dir("intel-rapl"), None);
        assert_eq!(parse_zone_dir("intel-rapl:x"), None);
        assert_eq!(parse_zone_dir("dtpm:0"), None);
    }

    #[test]
    fn cpu_lists_and_numbers() {
        assert_eq!(parse_cpu_list("0,28\n"), Some(vec![0, 28]));
        assert_eq!(parse_cpu_list("0-2,8"), Some(vec![0, 1, 2, 8]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_number("0x02"), Some(2));
        assert_eq!(parse_number("5"), Some(5));
        assert_eq!(parse_number("0xzz"), None);
    }

    #[test]
    fn packages_and_dies() {
        assert_eq!(package_of("package-0"), Some(("0", false)));
        assert_eq!(package_of("package-1-die-3"), Some(("1", true)));
        assert_eq!(package_of("psys"), None);
    }
}
