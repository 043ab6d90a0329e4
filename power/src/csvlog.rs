//! Import of a timestamped CSV log written by an independent meter. The layout is detected from
//! the header (case-insensitive, spaces ignored):
//!
//! - Monsoon (PyMonsoon): `Time(ms), Main(mA), [USB(mA)], [Aux(mA)], Main Voltage(V), [USB
//!   Voltage(V)]`. Times are milliseconds after the log start, so the start must be given
//!   (`csv:FILE@START_UNIX`). Domain `main` = Main(mA)/1000 × Main Voltage(V); when both USB
//!   columns exist, domain `usb` = USB(mA)/1000 × USB Voltage(V) also counts (a USB voltage of 0,
//!   the channel off, adds nothing). Aux has no voltage column and is ignored.
//! - time + power: `power`/`power_w`/`watts`/`w`, `power_mw`, `power_uw`.
//! - time + current + voltage: `current`/`current_a`/`amps`, `current_ma`, `current_ua` times
//!   `voltage`/`voltage_v`/`volts`, `voltage_mv`.
//! - time + cumulative energy: `energy_j`/`energy`/`joules`, `energy_mj`, `energy_uj`.
//!
//! A time column (`time`, `timestamp`, `time_s`, `t`, `unix`, `ts`, ...; `time_ms` in
//! milliseconds) holds Unix seconds (any value above 1e9 s), an ISO-8601 UTC time
//! (`2026-11-22T10:00:00.250Z`, or with a `+HH:MM` offset), or seconds after the log start.
//! Every bad row is an error naming the file, line and column: no row is skipped.

use std::path::{Path, PathBuf};

use crate::meter::LogSource;
use crate::probe::{Domain, DomainKind, ProbeError, ProbeInfo, Scope};
use crate::trace::Trace;
use crate::units::Seconds;

/// Numbers of seconds above this are Unix times (2001-09-09); below, seconds after the start.
const ABSOLUTE_AFTER: f64 = 1e9;

const LAYOUTS: &str = "Monsoon (Time(ms), Main(mA), Main Voltage(V)[, USB(mA), USB Voltage(V)]), \
    time + power (time|timestamp|time_s|t|unix, power|power_w|watts|w|power_mw|power_uw), \
    time + current + voltage (current|current_a|amps|current_ma, voltage|voltage_v|volts|voltage_mv) \
    or time + cumulative energy (energy_j|energy|joules|energy_mj|energy_uj)";

/// A column and the factor that turns its unit into the SI one.
#[derive(Debug, Clone, PartialEq)]
struct Col {
    index: usize,
    name: String,
    scale: f64,
}

/// How one domain's value comes out of a row.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Scaled(Col),
    Product(Col, Col),
}

#[derive(Debug, Clone, PartialEq)]
struct Layout {
    /// `Monsoon`, `time+power`, ...: for notes and errors.
    label: String,
    time: Col,
    /// Monsoon times are always relative to the log start.
    relative_only: bool,
    domains: Vec<Domain>,
    values: Vec<Value>,
}

/// A CSV log of power (or energy) readings from an external meter.
pub struct CsvLog {
    info: ProbeInfo,
    path: PathBuf,
    start_unix: Option<f64>,
    layout: Layout,
}

/// One parsed row: seconds after the origin, and one value per domain.
type Row = (f64, Vec<f64>);

impl CsvLog {
    /// Opens the log and reads it once, to detect its layout and check every row. `start_unix`
    /// is the Unix time of the log's zero, needed when its times are relative.
    pub fn open(path: &Path, start_unix: Option<f64>) -> Result<CsvLog, ProbeError> {
        let name = format!(
            "csv:{}",
            path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into()
            )
        );
        if !path.exists() {
            return Err(ProbeError::Unavailable {
                probe: name,
                reason: format!("{} does not exist (yet)", path.display()),
            });
        }
        if let Some(start) = start_unix {
            if !start.is_finite() {
                return Err(ProbeError::Spec {
                    spec: format!("csv:{}@{start}", path.display()),
                    reason: "start must be a finite Unix time in seconds".into(),
                });
            }
        }
        let mut reader = reader(&name, path)?;
        let layout = detect(&name, path, &mut reader)?;
        let mut log = CsvLog {
            info: ProbeInfo {
                name,
                source: path.display().to_string(),
                domains: layout.domains.clone(),
                measured: true,
                resolution: None,
                power_resolution: None,
                update_period: None,
                notes: Vec::new(),
            },
            path: path.to_owned(),
            start_unix,
            layout,
        };
        // Relative times keep full precision on the start's own clock; absolute ones need none.
        let origin = start_unix.unwrap_or(0.0);
        let rows = log.rows(origin)?;
        log.info
            .notes
            .push(format!("layout: {}", describe(&log.layout)));
        match (rows.first(), rows.last()) {
            (Some(first), Some(last)) if rows.len() > 1 => {
                let span = last.0 - first.0;
                let step = span / (rows.len() - 1) as f64;
                if step > 0.0 {
                    log.info.update_period = Some(Seconds(step));
                }
                log.info.notes.push(format!(
                    "{} rows over {span:.6} s from Unix {:.3} (about {:.1} Hz) at open",
                    rows.len(),
                    first.0 + origin,
                    if span > 0.0 {
                        (rows.len() - 1) as f64 / span
                    } else {
                        0.0
                    }
                ));
            }
            _ => log.info.notes.push(format!("{} rows at open", rows.len())),
        }
        Ok(log)
    }

    /// Reads every row, with times in seconds after `origin_unix`.
    fn rows(&self, origin_unix: f64) -> Result<Vec<Row>, ProbeError> {
        let name = &self.info.name;
        let path = &self.path;
        let mut reader = reader(name, path)?;
        let layout = detect(name, path, &mut reader)?;
        if layout != self.layout {
            return Err(parse_error(
                name,
                path,
                "header",
                format!(
                    "the header changed since the log was opened (was {}, now {})",
                    describe(&self.layout),
                    describe(&layout)
                ),
            ));
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(name, path, e)),
            }
            let line = record.position().map_or(0, |p| p.line());
            let field = |col: &Col| format!("line {line}, column {:?}", col.name);
            let cell = |col: &Col| record.get(col.index).unwrap_or("");
            let t = self
                .time(cell(&layout.time), origin_unix)
                .map_err(|reason| parse_error(name, path, &field(&layout.time), reason))?;
            if let Some(prev) = rows.last() {
                if t < prev.0 {
                    return Err(parse_error(
                        name,
                        path,
                        &field(&layout.time),
                        format!(
                            "time goes backwards ({:.6} s before the previous row's)",
                            prev.0 - t
                        ),
                    ));
                }
            }
            let mut values = Vec::with_capacity(layout.values.len());
            for value in &layout.values {
                let num = |col: &Col| {
                    number(cell(col))
                        .map(|v| v * col.scale)
                        .map_err(|reason| parse_error(name, path, &field(col), reason))
                };
                values.push(match value {
                    Value::Scaled(col) => num(col)?,
                    Value::Product(a, b) => num(a)? * num(b)?,
                });
            }
            rows.push((t, values));
        }
        Ok(rows)
    }

    /// One time cell as seconds after `origin_unix`.
    fn time(&self, cell: &str, origin_unix: f64) -> Result<f64, String> {
        let scale = self.layout.time.scale;
        let relative = |secs: f64| match self.start_unix {
            Some(start) => Ok((start - origin_unix) + secs),
            None => Err(format!(
                "times are relative to the log start ({cell} -> {secs} s); give the start as \
                 csv:{}@START_UNIX",
                self.path.display()
            )),
        };
        match cell.trim().parse::<f64>() {
            Ok(v) if !v.is_finite() => Err(format!("{cell:?} is not a finite time")),
            Ok(v) if self.layout.relative_only => relative(v * scale),
            Ok(v) if v * scale > ABSOLUTE_AFTER => Ok(v * scale - origin_unix),
            Ok(v) => relative(v * scale),
            Err(_) => {
                let (secs, frac) = parse_iso(cell.trim())?;
                Ok((secs as f64 - origin_unix) + frac)
            }
        }
    }
}

impl LogSource for CsvLog {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn trace(&mut self, origin_unix: f64) -> Result<Trace, ProbeError> {
        // Read anew each time: the meter may still be appending.
        let mut trace = Trace::new(self.info.domains.clone());
        for (t, values) in self.rows(origin_unix)? {
            trace.push(Seconds(t), &values);
        }
        Ok(trace)
    }
}

fn reader(name: &str, path: &Path) -> Result<csv::Reader<std::fs::File>, ProbeError> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(|e| csv_error(name, path, e))
}

fn parse_error(name: &str, path: &Path, field: &str, reason: String) -> ProbeError {
    ProbeError::Parse {
        probe: name.to_owned(),
        path: path.to_owned(),
        field: field.to_owned(),
        reason,
    }
}

fn csv_error(name: &str, path: &Path, e: csv::Error) -> ProbeError {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => ProbeError::Io {
            probe: name.to_owned(),
            path: path.to_owned(),
            source,
        },
        kind => {
            let reason = match kind {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => format!("{len} fields where the header has {expected_len}"),
                csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8: {err}"),
                other => format!("{other:?}"),
            };
            let field = line.map_or_else(|| "row".to_owned(), |l| format!("line {l}"));
            parse_error(name, path, &field, reason)
        }
    }
}

fn number(cell: &str) -> Result<f64, String> {
    match cell.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("{cell:?} is not a finite number")),
        Err(_) => Err(format!("{cell:?} is not a number")),
    }
}

/// Lower case, no spaces, `µ` as `u`: `Main Voltage (V)` and `main voltage(v)` match.
fn normalise(header: &str) -> String {
    header
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'µ' || c == 'μ' { 'u' } else { c })
        .collect()
}

fn find(headers: &[String], names: &[(&[&str], f64)]) -> Option<Col> {
    names.iter().find_map(|(aliases, scale)| {
        headers
            .iter()
            .position(|h| aliases.contains(&normalise(h).as_str()))
            .map(|index| Col {
                index,
                name: headers[index].trim().to_owned(),
                scale: *scale,
            })
    })
}

fn power_domain(name: &str, scope: Scope) -> Domain {
    Domain {
        name: name.into(),
        scope,
        kind: DomainKind::Power,
        in_total: true,
    }
}

fn detect(
    name: &str,
    path: &Path,
    reader: &mut csv::Reader<std::fs::File>,
) -> Result<Layout, ProbeError> {
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(name, path, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let unknown = |why: &str| {
        parse_error(
            name,
            path,
            "header",
            format!(
                "{why} in header {:?}; accepted layouts: {LAYOUTS}",
                headers.join(",")
            ),
        )
    };
    let col = |aliases: &[&str]| find(&headers, &[(aliases, 1.0)]);

    if let Some(main_ma) = col(&["main(ma)"]) {
        let time = col(&["time(ms)"]).ok_or_else(|| unknown("Monsoon log without Time(ms)"))?;
        let main_v = col(&["mainvoltage(v)"])
            .ok_or_else(|| unknown("Monsoon log without Main Voltage(V)"))?;
        let ma = |c: Col| Col { scale: 1e-3, ..c };
        let mut domains = vec![power_domain("main", Scope::Device)];
        let mut values = vec![Value::Product(ma(main_ma), main_v)];
        if let (Some(usb_ma), Some(usb_v)) = (col(&["usb(ma)"]), col(&["usbvoltage(v)"])) {
            domains.push(power_domain("usb", Scope::Device));
            values.push(Value::Product(ma(usb_ma), usb_v));
        }
        return Ok(Layout {
            label: "Monsoon".into(),
            time: Col {
                scale: 1e-3,
                ..time
            },
            relative_only: true,
            domains,
            values,
        });
    }

    let time = find(
        &headers,
        &[
            (
                &[
                    "time",
                    "timestamp",
                    "time_s",
                    "time(s)",
                    "timestamp_s",
                    "t",
                    "unix",
                    "unix_s",
                    "unix_time",
                    "epoch",
                    "ts",
                    "seconds",
                ],
                1.0,
            ),
            (
                &["time_ms", "time(ms)", "timestamp_ms", "t_ms", "unix_ms"],
                1e-3,
            ),
        ],
    )
    .ok_or_else(|| unknown("no time column"))?;
    let power = find(
        &headers,
        &[
            (&["power", "power_w", "power(w)", "watts", "w"], 1.0),
            (&["power_mw", "power(mw)", "mw", "milliwatts"], 1e-3),
            (&["power_uw", "power(uw)", "uw", "microwatts"], 1e-6),
        ],
    );
    let current = find(
        &headers,
        &[
            (&["current", "current_a", "current(a)", "amps", "a"], 1.0),
            (&["current_ma", "current(ma)", "ma", "milliamps"], 1e-3),
            (&["current_ua", "current(ua)", "ua", "microamps"], 1e-6),
        ],
    );
    let voltage = find(
        &headers,
        &[
            (&["voltage", "voltage_v", "voltage(v)", "volts", "v"], 1.0),
            (&["voltage_mv", "voltage(mv)", "mv", "millivolts"], 1e-3),
        ],
    );
    let energy = find(
        &headers,
        &[
            (&["energy", "energy_j", "energy(j)", "joules", "j"], 1.0),
            (&["energy_mj", "energy(mj)", "millijoules"], 1e-3),
            (&["energy_uj", "energy(uj)", "microjoules"], 1e-6),
        ],
    );
    let (label, domain, value) = match (power, current, voltage, energy) {
        (Some(power), ..) => (
            format!("time+power ({} W ×{})", power.name, power.scale),
            power_domain("power", Scope::Wall),
            Value::Scaled(power),
        ),
        // DC current × voltage: a supply feeding the device (AC wall power would need a power
        // factor, so this layout is not wall power).
        (None, Some(current), Some(voltage), _) => (
            format!(
                "time+current×voltage ({} ×{} A, {} ×{} V)",
                current.name, current.scale, voltage.name, voltage.scale
            ),
            power_domain("power", Scope::Device),
            Value::Product(current, voltage),
        ),
        (None, _, _, Some(energy)) => (
            format!(
                "time+energy ({} ×{} J, cumulative)",
                energy.name, energy.scale
            ),
            Domain {
                name: "energy".into(),
                scope: Scope::Wall,
                kind: DomainKind::Counter { range: None },
                in_total: true,
            },
            Value::Scaled(energy),
        ),
        (None, Some(_), None, None) => return Err(unknown("a current column but no voltage")),
        (None, None, Some(_), None) => return Err(unknown("a voltage column but no current")),
        (None, None, None, None) => return Err(unknown("no power, current or energy column")),
    };
    Ok(Layout {
        label,
        time,
        relative_only: false,
        domains: vec![domain],
        values: vec![value],
    })
}

fn describe(layout: &Layout) -> String {
    let time = if layout.relative_only {
        format!("{} (ms after the log start)", layout.time.name)
    } else {
        format!("{} ×{} s", layout.time.name, layout.time.scale)
    };
    let domains: Vec<&str> = layout.domains.iter().map(|d| d.name.as_str()).collect();
    format!(
        "{}, time {time}, domains {}",
        layout.label,
        domains.join("+")
    )
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fff](Z|±HH:MM|±HHMM)` as whole Unix seconds and a fraction.
fn parse_iso(s: &str) -> Result<(i64, f64), String> {
    let bad = |why: &str| {
        format!(
            "{s:?} is neither a number of seconds nor an ISO-8601 time like \
             2026-11-22T10:00:00.250Z ({why})"
        )
    };
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Result<i64, String> {
        b.get(from..from + len)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| bad("expected digits"))
    };
    let sep = |at: usize, allowed: &[u8]| {
        if b.get(at).is_some_and(|c| allowed.contains(c)) {
            Ok(())
        } else {
            Err(bad("bad separator"))
        }
    };
    let year = digits(0, 4)?;
    sep(4, b"-")?;
    let month = digits(5, 2)?;
    sep(7, b"-")?;
    let day = digits(8, 2)?;
    sep(10, b"Tt ")?;
    let hour = digits(11, 2)?;
    sep(13, b":")?;
    let minute = digits(14, 2)?;
    sep(16, b":")?;
    let second = digits(17, 2)?;
    let mut at = 19;
    let mut frac = 0.0;
    if b.get(at) == Some(&b'.') || b.get(at) == Some(&b',') {
        let end = b[at + 1..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(b.len(), |p| at + 1 + p);
        if end == at + 1 {
            return Err(bad("no digits after the decimal point"));
        }
        frac = s
            .get(at + 1..end)
            .and_then(|f| format!("0.{f}").parse().ok())
            .ok_or_else(|| bad("bad fraction"))?;
        at = end;
    }
    let offset = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(at + 1, 2)?;
            let om = if b.get(at + 3) == Some(&b':') {
                let m = digits(at + 4, 2)?;
                at += 6;
                m
            } else {
                let m = digits(at + 3, 2)?;
                at += 5;
                m
            };
            if at != b.len() || oh > 23 || om > 59 {
                return Err(bad("bad UTC offset"));
            }
            let off = oh * 3600 + om * 60;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        None => return Err(bad("no time zone: end it with Z or a UTC offset")),
        Some(_) => return Err(bad("trailing characters")),
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid_day = usize::try_from(month - 1)
        .ok()
        .and_then(|m| month_days.get(m))
        .is_some_and(|&n| day >= 1 && day <= n);
    if !valid_day || hour > 23 || minute > 59 || second > 60 {
        return Err(bad("date or time out of range"));
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Ok((secs, frac))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (eras of 400 years, March-based years).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn iso_times_match_known_unix_times() {
        // date -u -d 2026-11-22T10:00:00Z +%s
        assert_eq!(
            parse_iso("2026-11-22T10:00:00Z").unwrap(),
            (1_795_341_600, 0.0)
        );
        assert_eq!(parse_iso("1970-01-01T00:00:00Z").unwrap(), (0, 0.0));
        assert_eq!(
            parse_iso("2000-02-29 12:00:00.5z").unwrap(),
            (951_825_600, 0.5)
        );
        assert_eq!(
            parse_iso("2026-11-22T11:30:00.250+01:30").unwrap(),
            (1_795_341_600, 0.25)
        );
        assert_eq!(
            parse_iso("2026-11-22T08:00:00-0200").unwrap(),
            (1_795_341_600, 0.0)
        );
        assert!(parse_iso("2026-11-22T10:00:00").is_err());
        assert!(parse_iso("2026-02-29T10:00:00Z").is_err());
        assert!(parse_iso("2026-11-22T10:00:00Zx").is_err());
        assert!(parse_iso("yesterday").is_err());
    }
}
