//! The battery and ODPM rails of a device read from a host through `adb shell`, one shell call
//! per read.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::gauge::{self, Gauge, Supplies, ATTRS};
use super::odpm::{self, Hal};
use crate::probe::{Domain, DomainKind, Probe, ProbeError, ProbeInfo, Reading, Scope};
use crate::units::{Joules, Seconds};

const NAME: &str = "android-adb";
const POWER_SUPPLY: &str = "/sys/class/power_supply";
/// Long enough for `dumpsys` of the PowerStats HAL on a slow phone, short enough that a hung
/// adb does not stall the sampler for minutes.
const TIMEOUT: Duration = Duration::from_secs(15);

/// What one adb invocation printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdbOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `adb` with arguments; injectable so tests can replay recorded outputs.
pub trait AdbRunner: Send {
    fn run(&mut self, args: &[String]) -> std::io::Result<AdbOutput>;
}

/// Runs a real `adb` (or any program standing in for it) as a child process.
pub struct CommandRunner {
    program: PathBuf,
    timeout: Duration,
}

impl CommandRunner {
    pub fn new(program: &Path) -> CommandRunner {
        CommandRunner {
            program: program.to_path_buf(),
            timeout: TIMEOUT,
        }
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error leaves what was read so far; the exit status tells the rest.
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

impl AdbRunner for CommandRunner {
    fn run(&mut self, args: &[String]) -> std::io::Result<AdbOutput> {
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Pipes are drained on threads so a large dumpsys cannot block the child on a full pipe.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                // The drain threads are left behind: a grandchild may still hold the pipes.
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", self.timeout.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let text = |h: std::thread::JoinHandle<Vec<u8>>| {
            String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
        };
        Ok(AdbOutput {
            success: status.success(),
            stdout: text(stdout),
            stderr: text(stderr),
        })
    }
}

/// The probe name used in errors: which device the message is about.
fn who(serial: Option<&str>) -> String {
    match serial {
        Some(serial) => format!("{NAME} (serial {serial})"),
        None => format!("{NAME} (default device)"),
    }
}

/// Turns adb's own error messages into probe errors that say what to do.
fn classify(who: &str, serial: Option<&str>, args: &[String], stderr: &str) -> ProbeError {
    let text = stderr.to_lowercase();
    let device = serial.map_or("the device".to_string(), |s| format!("device {s}"));
    if text.contains("no devices/emulators found") || text.contains("no devices found") {
        ProbeError::Unavailable {
            probe: who.into(),
            reason:
                "adb finds no device: connect the phone with USB debugging on (or `adb connect \
                     HOST:PORT` for wireless adb) and check `adb devices`"
                    .into(),
        }
    } else if text.contains("unauthorized") {
        ProbeError::PermissionDenied {
            probe: who.into(),
            path: PathBuf::from(format!("adb:{}", serial.unwrap_or("default device"))),
            hint: format!(
                "{device} has not authorised this host: unlock it, accept \"Allow USB debugging?\", \
                 then check that `adb devices` lists it as `device`"
            ),
        }
    } else if text.contains("more than one device") {
        ProbeError::Unavailable {
            probe: who.into(),
            reason: "more than one device is connected and no serial was given: pick one with \
                     --probe android:SERIAL (serials from `adb devices`)"
                .into(),
        }
    } else if text.contains("not found") && text.contains("device") {
        ProbeError::Unavailable {
            probe: who.into(),
            reason: format!(
                "{device} not found: check the serial in --probe android:SERIAL against `adb devices`"
            ),
        }
    } else if text.contains("offline") {
        ProbeError::Disconnected {
            probe: who.into(),
            reason: format!("{device} is offline: reconnect it, or `adb kill-server` and retry"),
        }
    } else {
        ProbeError::Protocol {
            probe: who.into(),
            reason: format!("`adb {}` failed: {}", args.join(" "), stderr.trim()),
        }
    }
}

fn run(
    runner: &mut dyn AdbRunner,
    who: &str,
    serial: Option<&str>,
    args: &[String],
) -> Result<AdbOutput, ProbeError> {
    runner
        .run(args)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ProbeError::Unavailable {
                probe: who.into(),
                reason:
                    "adb not found: install Android platform-tools so `adb` is on PATH, or set \
                     TERNBENCH_ADB to its path"
                        .into(),
            },
            _ => ProbeError::Disconnected {
                probe: who.into(),
                reason: format!("`adb {}`: {e}", args.join(" ")),
            },
        })
        .and_then(|out| {
            if !out.success && !out.stderr.trim().is_empty() {
                Err(classify(who, serial, args, &out.stderr))
            } else {
                Ok(out)
            }
        })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Parses `grep -H` output (`/sys/class/power_supply/NAME/ATTR:value`) into supplies.
fn parse_supplies(stdout: &str) -> Supplies {
    let mut supplies = Supplies::new();
    for line in stdout.lines() {
        // Values of these attributes hold no ':'; supply names may (HID batteries), so split last.
        let Some((path, value)) = line.trim().rsplit_once(':') else {
            continue;
        };
        let Some(rest) = path
            .strip_prefix(POWER_SUPPLY)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        if let Some((name, attr)) = rest.rsplit_once('/') {
            supplies
                .entry(name.to_string())
                .or_default()
                .insert(attr.to_string(), value.trim().to_string());
        }
    }
    supplies
}

struct AdbProbe {
    info: ProbeInfo,
    runner: Box<dyn AdbRunner>,
    who: String,
    serial: String,
    base: String,
    args: Vec<String>,
    gauges: Vec<Gauge>,
    rails: Vec<String>,
}

impl Probe for AdbProbe {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        let out = run(
            self.runner.as_mut(),
            &self.who,
            Some(&self.serial),
            &self.args,
        )
        .map_err(|e| match e {
            // After open, a device that stops answering has gone away mid-run.
            ProbeError::Unavailable { probe, reason } => ProbeError::Disconnected { probe, reason },
            other => other,
        })?;
        let mut lines = out.stdout.lines();
        let mut values = Vec::with_capacity(1 + self.rails.len());
        if !self.gauges.is_empty() {
            let mut watts = 0.0;
            for gauge in &self.gauges {
                let attrs = gauge.attrs();
                let got: Vec<&str> = lines.by_ref().take(attrs.len()).map(str::trim).collect();
                if got.len() < attrs.len() {
                    return Err(ProbeError::Parse {
                        probe: self.who.clone(),
                        path: PathBuf::from(format!("{}/{}", self.base, gauge.supply)),
                        field: attrs.join(","),
                        reason: format!(
                            "`cat` printed {} of {} lines ({})",
                            got.len(),
                            attrs.len(),
                            out.stderr.trim()
                        ),
                    });
                }
                watts += gauge.watts(&got, &self.who, &self.base)?;
            }
            values.push(watts);
        }
        if !self.rails.is_empty() {
            let rest: Vec<&str> = lines.collect();
            let dump = odpm::parse(&rest.join("\n"))?;
            for name in &self.rails {
                let rail = dump.rails.iter().find(|r| r.name == *name).ok_or_else(|| {
                    ProbeError::Parse {
                        probe: self.who.clone(),
                        path: PathBuf::from(odpm::HAL2_COMMAND.join(" ")),
                        field: name.clone(),
                        reason: "the rail listed at open is missing from this dump".into(),
                    }
                })?;
                values.push(rail.energy.0);
            }
        }
        Ok(values)
    }
}

/// Finds rails with the HAL 2.0 dump, then the HAL 1.0 one.
fn find_rails(
    runner: &mut dyn AdbRunner,
    who: &str,
    serial: &str,
) -> (Option<(Hal, Vec<String>)>, Option<String>) {
    let mut problem = None;
    for hal in [Hal::V2, Hal::V1] {
        let mut args = strings(&["-s", serial, "shell"]);
        args.extend(strings(hal.command()));
        let Ok(out) = run(runner, who, Some(serial), &args) else {
            continue;
        };
        match odpm::parse(&out.stdout) {
            Ok(dump) => {
                return (
                    Some((hal, dump.rails.into_iter().map(|r| r.name).collect())),
                    None,
                )
            }
            // A header with rows that do not parse is worth telling; no header is the usual case.
            Err(e) if out.stdout.contains("PowerStats HAL") => problem = Some(e.to_string()),
            Err(_) => {}
        }
    }
    (None, problem)
}

/// Opens the device's battery (and ODPM rails if it has them) through `runner`.
pub fn open_with(
    mut runner: Box<dyn AdbRunner>,
    serial: Option<&str>,
) -> Result<Box<dyn Probe>, ProbeError> {
    let asked = who(serial);
    let mut args = Vec::new();
    if let Some(serial) = serial {
        args.extend(strings(&["-s", serial]));
    }
    args.push("get-serialno".into());
    let out = run(runner.as_mut(), &asked, serial, &args)?;
    let resolved = out.stdout.trim().to_string();
    if resolved.is_empty() || resolved == "unknown" {
        return Err(ProbeError::Unavailable {
            probe: asked,
            reason: format!(
                "`adb {}` printed no serial ({}): check `adb devices`",
                args.join(" "),
                out.stderr.trim()
            ),
        });
    }
    // Later calls name the serial, so a second phone plugged in mid-run changes nothing.
    let serial = resolved;
    let who = self::who(Some(&serial));
    let base = format!("adb:{serial}:{POWER_SUPPLY}");
    let mut discover = strings(&["-s", &serial, "shell", "grep", "-sH", "."]);
    discover.extend(ATTRS.iter().map(|a| format!("{POWER_SUPPLY}/*/{a}")));
    // grep exits non-zero when a glob matches nothing; only adb's own errors on stderr count.
    let out = run(runner.as_mut(), &who, Some(&serial), &discover)?;
    let supplies = parse_supplies(&out.stdout);
    let battery = gauge::calibrate(&supplies, &who, &base);
    let (rails, rail_problem) = find_rails(runner.as_mut(), &who, &serial);
    match battery {
        Ok(cal) => {
            let mut notes = cal.notes;
            match (&rails, rail_problem) {
                (Some(_), _) => {}
                (None, Some(problem)) => {
                    notes.push(format!("ODPM rails present but unreadable: {problem}"))
                }
                (None, None) => notes.push("no ODPM rails (most retail phones lack them)".into()),
            }
            let shape = Shape {
                gauges: cal.gauges,
                power_resolution: cal.power_resolution,
                rails,
            };
            finish(runner, who, serial, base, shape, notes)
        }
        // Rails alone still measure the SoC; the notes say why the battery is missing.
        Err(e @ (ProbeError::ReadsZero { .. } | ProbeError::Unavailable { .. }))
            if rails.is_some() =>
        {
            let notes = vec![
                format!("no battery reading ({e}): the rails make the total"),
                "the rails cover only what ODPM meters (SoC, memory, display...), not the whole device"
                    .into(),
            ];
            let shape = Shape {
                gauges: Vec::new(),
                power_resolution: None,
                rails,
            };
            finish(runner, who, serial, base, shape, notes)
        }
        Err(e) => Err(e),
    }
}

/// What the probe reads.
struct Shape {
    gauges: Vec<Gauge>,
    power_resolution: Option<crate::units::Watts>,
    rails: Option<(Hal, Vec<String>)>,
}

fn finish(
    runner: Box<dyn AdbRunner>,
    who: String,
    serial: String,
    base: String,
    shape: Shape,
    mut notes: Vec<String>,
) -> Result<Box<dyn Probe>, ProbeError> {
    let Shape {
        gauges,
        power_resolution,
        rails,
    } = shape;
    let mut args = strings(&["-s", &serial, "shell"]);
    let mut domains = Vec::new();
    let mut source = format!("adb:{serial}");
    if !gauges.is_empty() {
        args.push("cat".into());
        for g in &gauges {
            args.extend(
                g.attrs()
                    .iter()
                    .map(|a| format!("{POWER_SUPPLY}/{}/{a}", g.supply)),
            );
        }
        let supplies: Vec<&str> = gauges.iter().map(|g| g.supply.as_str()).collect();
        source.push_str(&format!(" {POWER_SUPPLY}/{}", supplies.join("+")));
        domains.push(Domain {
            name: "battery".into(),
            scope: Scope::Device,
            kind: DomainKind::Power,
            in_total: true,
        });
    }
    let rail_names = match rails {
        Some((hal, names)) => {
            if !gauges.is_empty() {
                // One shell call per read: the dump follows the battery values.
                args.push(";".into());
            }
            args.extend(strings(hal.command()));
            source.push_str(&format!(" + {}", hal.command().join(" ")));
            let in_total = gauges.is_empty();
            notes.push(format!(
                "ODPM rails from PowerStats HAL {} ({} rails, cumulative mWs){}",
                match hal {
                    Hal::V1 => "1.0",
                    Hal::V2 => "2.0",
                },
                names.len(),
                if in_total {
                    ""
                } else {
                    ": downstream of the battery, so reported but not added to the total"
                }
            ));
            notes.push(
                "the HAL prints rail energy through a 32-bit float: about 7 significant digits \
                 (a rail at 10 kJ moves in ~1 mJ steps)"
                    .into(),
            );
            for name in &names {
                domains.push(Domain {
                    name: name.clone(),
                    scope: Scope::Rail,
                    kind: DomainKind::Counter { range: None },
                    in_total,
                });
            }
            names
        }
        None => Vec::new(),
    };
    notes.push(
        "each read is one `adb shell` round trip (tens of ms, more with the rail dump): poll at \
         about 1–2 Hz, which the gauge's own update period makes enough"
            .into(),
    );
    let info = ProbeInfo {
        name: NAME.into(),
        source,
        domains,
        measured: true,
        resolution: (!rail_names.is_empty()).then_some(Joules(1e-5)),
        power_resolution,
        update_period: Some(Seconds(1.0)),
        notes,
    };
    Ok(Box::new(AdbProbe {
        info,
        runner,
        who,
        serial,
        base,
        args,
        gauges,
        rails: rail_names,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    /// Answers each call with the next recorded output and keeps the arguments it was given.
    struct Script {
        answers: VecDeque<AdbOutput>,
        calls: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl AdbRunner for Script {
        fn run(&mut self, args: &[String]) -> std::io::Result<AdbOutput> {
            self.calls.lock().unwrap().push(args.to_vec());
            self.answers
                .pop_front()
                .ok_or_else(|| std::io::Error::other("script exhausted"))
        }
    }

    fn ok(stdout: &str) -> AdbOutput {
        AdbOutput {
            success: true,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    fn fail(stderr: &str) -> AdbOutput {
        AdbOutput {
            success: false,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    const SUPPLIES: &str = "/sys/class/power_supply/battery/type:Battery\n\
        /sys/class/power_supply/battery/status:Discharging\n\
        /sys/class/power_supply/battery/current_now:-500000\n\
        /sys/class/power_supply/battery/voltage_now:4000000\n\
        /sys/class/power_supply/usb/type:USB\n\
        /sys/class/power_supply/usb/online:0\n";

    #[test]
    fn reads_battery_through_one_cat_per_read_on_the_resolved_serial() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let script = Script {
            answers: VecDeque::from([
                ok("R58M123\n"),
                ok(SUPPLIES),
                ok("Can't find service: android.hardware.power.stats.IPowerStats/default\n"),
                fail(""),
                ok("-750000\n4000000\nDischarging\n"),
            ]),
            calls: Arc::clone(&calls),
        };
        let mut probe = open_with(Box::new(script), None).unwrap();
        assert_eq!(
            probe.info().source,
            "adb:R58M123 /sys/class/power_supply/battery"
        );
        assert!(probe
            .info()
            .notes
            .iter()
            .any(|n| n == "no ODPM rails (most retail phones lack them)"));
        assert_eq!(probe.read().unwrap(), vec![3.0]);
        let calls = calls.lock().unwrap();
        assert_eq!(
            calls[4],
            strings(&[
                "-s",
                "R58M123",
                "shell",
                "cat",
                "/sys/class/power_supply/battery/current_now",
                "/sys/class/power_supply/battery/voltage_now",
                "/sys/class/power_supply/battery/status",
            ])
        );
    }

    #[test]
    fn adb_errors_become_probe_errors_that_say_what_to_do() {
        let cases = [
            ("error: no devices/emulators found", "adb connect"),
            ("error: more than one device/emulator", "android:SERIAL"),
            ("error: device 'XYZ' not found", "not found"),
            ("error: device offline", "offline"),
        ];
        for (stderr, expect) in cases {
            let script = Script {
                answers: VecDeque::from([fail(stderr)]),
                calls: Arc::default(),
            };
            let err = open_with(Box::new(script), Some("XYZ")).err().unwrap();
            assert!(err.to_string().contains(expect), "{stderr}: {err}");
            assert!(err.to_string().contains("XYZ"), "{err}");
        }
        let script = Script {
            answers: VecDeque::from([fail("error: device unauthorized.\nOtherwise check for a confirmation dialog on your device.")]),
            calls: Arc::default(),
        };
        let err = open_with(Box::new(script), Some("XYZ")).err().unwrap();
        assert!(matches!(err, ProbeError::PermissionDenied { .. }), "{err}");
    }

    #[test]
    fn rails_make_the_total_when_the_battery_reads_zero() {
        let idle = SUPPLIES.replace("-500000", "0");
        let dump = "============= PowerStats HAL 2.0 energy meter ==============\n\
                    [S2S_VDD_G3D]:GPU   1500.00 mWs\n";
        let script = Script {
            answers: VecDeque::from([ok("R58M123\n"), ok(&idle), ok(dump), ok(dump)]),
            calls: Arc::default(),
        };
        let mut probe = open_with(Box::new(script), None).unwrap();
        let domains = &probe.info().domains;
        assert_eq!(domains.len(), 1);
        assert_eq!(domains[0].name, "[S2S_VDD_G3D]:GPU");
        assert!(domains[0].in_total);
        assert!(probe.info().notes[0].contains("no battery reading"));
        assert_eq!(probe.read().unwrap(), vec![1.5]);
    }

    #[test]
    fn grep_lines_group_by_supply_even_with_colons_in_names() {
        let s = parse_supplies(
            "/sys/class/power_supply/hid-0018:27C6:0E52.0001-battery/type:Battery\n\
             /sys/class/power_supply/battery/status:Not charging\n",
        );
        assert_eq!(s["hid-0018:27C6:0E52.0001-battery"]["type"], "Battery");
        assert_eq!(s["battery"]["status"], "Not charging");
    }
}
