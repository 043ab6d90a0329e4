//! ODPM (on-device power monitor) rail energy as the PowerStats HAL prints it.
//!
//! HAL 2.0 (AIDL), from `dumpsys android.hardware.power.stats.IPowerStats/default`:
//!
//! ```text
//! ============= PowerStats HAL 2.0 energy meter ==============
//!                          Channel    Cumulative Energy
//!                [S2S_VDD_G3D]:GPU       123456.78 mWs
//! ========== End of PowerStats HAL 2.0 energy meter ==========
//! ```
//!
//! With the `delta` argument an `Elapsed time: N ms` line comes first and each row ends with
//! `(delta)`. HAL 1.0 (HIDL), from `lshal debug android.hardware.power.stats@1.0::IPowerStats/default`,
//! prints a `PowerStats HAL 1.0 rail energy data` section whose rows are `Subsys Rail N mWs`.
//! Energies are cumulative since boot in mWs (= mJ), printed through a 32-bit float.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::probe::ProbeError;
use crate::units::Joules;

/// The HAL 2.0 dump command, as run by `adb shell` or on the device.
pub const HAL2_COMMAND: &[&str] = &[
    "dumpsys",
    "android.hardware.power.stats.IPowerStats/default",
];
/// The HAL 1.0 dump command.
pub const HAL1_COMMAND: &[&str] = &[
    "lshal",
    "debug",
    "android.hardware.power.stats@1.0::IPowerStats/default",
];

const HAL2_HEADER: &str = "PowerStats HAL 2.0 energy meter";
const HAL1_HEADER: &str = "PowerStats HAL 1.0 rail energy data";
const PROBE: &str = "android-odpm";

/// Which PowerStats HAL printed the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hal {
    V1,
    V2,
}

impl Hal {
    pub fn command(self) -> &'static [&'static str] {
        match self {
            Hal::V1 => HAL1_COMMAND,
            Hal::V2 => HAL2_COMMAND,
        }
    }
}

/// One rail's cumulative energy since boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Rail {
    /// `[RAIL]:Subsystem` as HAL 2.0 spells it (HAL 1.0 rows are written the same way).
    pub name: String,
    pub energy: Joules,
}

/// The energy meter section of one dump.
#[derive(Debug, Clone, PartialEq)]
pub struct Dump {
    pub hal: Hal,
    /// `Elapsed time` of a `delta` dump.
    pub elapsed_ms: Option<u64>,
    pub rails: Vec<Rail>,
}

fn error(hal: Option<Hal>, field: &str, reason: String) -> ProbeError {
    let command = hal.unwrap_or(Hal::V2).command().join(" ");
    ProbeError::Parse {
        probe: PROBE.into(),
        path: PathBuf::from(command),
        field: field.into(),
        reason,
    }
}

/// Parses the rail energy section of a PowerStats dump; anything else in the text (state
/// residencies, energy consumers) is skipped. Text with no such section, an empty section or a
/// row that does not read as `name N mWs` is an error.
pub fn parse(text: &str) -> Result<Dump, ProbeError> {
    let mut lines = text.lines();
    let hal = loop {
        let Some(line) = lines.next() else {
            return Err(error(
                None,
                "header",
                format!(
                    "no `{HAL2_HEADER}` or `{HAL1_HEADER}` section (the device has no ODPM \
                     rails, or this is not a PowerStats dump): {:?}",
                    excerpt(text)
                ),
            ));
        };
        let line = line.trim();
        if line.starts_with('=') && line.contains(HAL2_HEADER) {
            break Hal::V2;
        }
        if line.starts_with('=') && line.contains(HAL1_HEADER) {
            break Hal::V1;
        }
    };
    let mut elapsed_ms = None;
    let mut rails = Vec::new();
    let mut seen = BTreeSet::new();
    for line in lines {
        let line = line.trim();
        // The footer (`========== End of ...`) or the next section ends this one.
        if line.starts_with('=') {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Elapsed time:") {
            let ms = rest.trim().trim_end_matches("ms").trim();
            elapsed_ms = Some(
                ms.parse::<u64>()
                    .map_err(|e| error(Some(hal), "Elapsed time", format!("{line:?}: {e}")))?,
            );
            continue;
        }
        let Some((row, _delta)) = line.split_once(" mWs") else {
            if line.contains("Channel") || line.contains("Subsys") || line.contains("Cumulative") {
                continue;
            }
            return Err(error(
                Some(hal),
                "row",
                format!("{line:?} is neither a column header nor `name N mWs`"),
            ));
        };
        let mut tokens: Vec<&str> = row.split_whitespace().collect();
        let value = tokens.pop().unwrap_or("");
        let mws: f64 = value
            .parse()
            .map_err(|e| error(Some(hal), "energy", format!("{line:?}: {value:?}: {e}")))?;
        if !mws.is_finite() || mws < 0.0 {
            return Err(error(
                Some(hal),
                "energy",
                format!("{line:?}: {mws} mWs is not a cumulative energy"),
            ));
        }
        let name = match (hal, tokens.as_slice()) {
            (Hal::V2, [name]) => (*name).to_string(),
            (Hal::V1, [subsys, rail]) => format!("[{rail}]:{subsys}"),
            _ => {
                return Err(error(
                    Some(hal),
                    "channel",
                    format!("{line:?}: cannot tell the rail name"),
                ))
            }
        };
        if !seen.insert(name.clone()) {
            return Err(error(
                Some(hal),
                "channel",
                format!("rail {name} appears twice"),
            ));
        }
        rails.push(Rail {
            name,
            energy: Joules(mws * 1e-3),
        });
    }
    if rails.is_empty() {
        return Err(error(
            Some(hal),
            "rows",
            "the energy section lists no rails".into(),
        ));
    }
    Ok(Dump {
        hal,
        elapsed_ms,
        rails,
    })
}

/// The start of a text, for error messages.
fn excerpt(text: &str) -> String {
    text.trim().chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hal2_delta_rows_and_elapsed_time() {
        let text = "\n============= PowerStats HAL 2.0 energy meter ==============\n\
                    Elapsed time: 1503 ms\n\
                    \x20             Channel    Cumulative Energy (      Delta   )\n\
                    \x20   [S2S_VDD_G3D]:GPU        1500.50 mWs (         12.25)\n\
                    \x20   [VSYS_PWR_DISPLAY]:Display   2000.00 mWs (          0.00)\n\
                    ========== End of PowerStats HAL 2.0 energy meter ==========\n";
        let dump = parse(text).unwrap();
        assert_eq!(dump.hal, Hal::V2);
        assert_eq!(dump.elapsed_ms, Some(1503));
        assert_eq!(dump.rails.len(), 2);
        assert_eq!(dump.rails[0].name, "[S2S_VDD_G3D]:GPU");
        assert!((dump.rails[0].energy.0 - 1.5005).abs() < 1e-12);
        assert_eq!(dump.rails[1].energy, Joules(2.0));
    }

    #[test]
    fn consumer_rows_before_the_meter_are_not_rails() {
        let text = "============= PowerStats HAL 2.0 energy consumers ==============\n\
                    GPU          :         900.00 mWs\n\
                    ========== End of PowerStats HAL 2.0 energy consumers ==========\n\
                    ============= PowerStats HAL 2.0 energy meter ==============\n\
                    [S4M_VDD_CPUCL0]:CPU(LITTLE)   10.00 mWs\n";
        let dump = parse(text).unwrap();
        assert_eq!(dump.rails.len(), 1);
        assert_eq!(dump.rails[0].name, "[S4M_VDD_CPUCL0]:CPU(LITTLE)");
        assert_eq!(dump.rails[0].energy, Joules(0.01));
    }

    #[test]
    fn rejects_empty_sections_bad_numbers_and_duplicates() {
        let head = "============= PowerStats HAL 2.0 energy meter ==============\n";
        assert!(parse(head).is_err());
        assert!(parse(&format!("{head}[A]:X  12,5 mWs\n")).is_err());
        assert!(parse(&format!("{head}[A]:X  -1.00 mWs\n")).is_err());
        assert!(parse(&format!("{head}[A]:X  1.00 mWs\n[A]:X  2.00 mWs\n")).is_err());
        assert!(parse(&format!("{head}something else entirely\n")).is_err());
        assert!(
            parse("Can't find service: android.hardware.power.stats.IPowerStats/default").is_err()
        );
        assert!(parse("").is_err());
    }
}
