//! Fixture trees that mimic sysfs and procfs under a temporary root.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

/// Writes `content` to `root/rel`, creating parent directories.
pub fn write(root: &Path, rel: &str, content: &str) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

/// A powercap zone `sys/class/powercap/<dir>` with `name`, `energy_uj` and, when given,
/// `max_energy_range_uj`. Returns the `energy_uj` path.
pub fn zone(root: &Path, dir: &str, name: &str, energy_uj: u64, max_uj: Option<u64>) -> PathBuf {
    let base = format!("sys/class/powercap/{dir}");
    write(root, &format!("{base}/name"), &format!("{name}\n"));
    write(root, &format!("{base}/enabled"), "1\n");
    if let Some(max) = max_uj {
        write(
            root,
            &format!("{base}/max_energy_range_uj"),
            &format!("{max}\n"),
        );
    }
    write(
        root,
        &format!("{base}/energy_uj"),
        &format!("{energy_uj}\n"),
    )
}

/// Rewrites a counter file between reads.
pub fn set(path: &Path, value: u64) {
    std::fs::write(path, format!("{value}\n")).unwrap();
}

/// `proc/cpuinfo` with one CPU of `vendor` listing `flags`.
pub fn cpuinfo(root: &Path, vendor: &str, flags: &str) {
    write(
        root,
        "proc/cpuinfo",
        &format!("processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {flags}\n\n"),
    );
}

/// The realistic `max_energy_range_uj` of a 61 µJ-unit package (2³² × 61.035 µJ).
pub const MAX_UJ: u64 = 262_143_328_850;

pub fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}
