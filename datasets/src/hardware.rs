//! Published peak memory bandwidth of named chips (`datasets/hardware/*.toml`), with sources,
//! for the decode roofline of `ternbench claims`.

use serde::Deserialize;

use crate::DatasetError;

const FILES: &[(&str, &str)] = &[(
    "datasets/hardware/memory_bandwidth.toml",
    include_str!("../hardware/memory_bandwidth.toml"),
)];

/// One chip's published peak memory bandwidth.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chip {
    pub name: String,
    /// `desktop`, `laptop` or `phone`.
    pub class: String,
    /// Theoretical peak, 10^9 bytes per second.
    pub peak_gbps: f64,
    pub memory: String,
    /// Largest memory configuration, GB, where the source gives it.
    #[serde(default)]
    pub memory_gb: Option<f64>,
    /// True when the GB/s is computed from the memory type and speed the source gives.
    pub derived: bool,
    pub source: String,
    pub url: String,
    #[serde(default)]
    pub note: String,
}

impl Chip {
    /// Whether the chip belongs to a claim's hardware class (`cpu` takes desktops and laptops).
    pub fn in_class(&self, class: &str) -> bool {
        match class {
            "cpu" => self.class == "desktop" || self.class == "laptop",
            other => self.class == other,
        }
    }
}

/// A bandwidth measured on a machine and recorded in the data (the live run measures again).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    pub name: String,
    pub cpu: String,
    pub threads: usize,
    pub gbps: f64,
    pub probe: String,
    pub date: String,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    chip: Vec<Chip>,
    #[serde(default)]
    measured: Vec<Measured>,
}

fn files() -> Result<Vec<File>, DatasetError> {
    FILES
        .iter()
        .map(|(file, text)| {
            toml::from_str(text).map_err(|e| DatasetError::Toml {
                file,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Every chip with a sourced bandwidth, in file order.
pub fn chips() -> Result<Vec<Chip>, DatasetError> {
    Ok(files()?.into_iter().flat_map(|f| f.chip).collect())
}

/// Bandwidths measured on machines when the data was written.
pub fn measured() -> Result<Vec<Measured>, DatasetError> {
    Ok(files()?.into_iter().flat_map(|f| f.measured).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chip_has_a_source_and_a_plausible_bandwidth() {
        let chips = chips().unwrap();
        assert!(chips.len() >= 4);
        for c in &chips {
            assert!(c.url.starts_with("https://"), "{}", c.name);
            assert!(c.peak_gbps > 10.0 && c.peak_gbps < 2000.0, "{}", c.name);
            assert!(["desktop", "laptop", "phone"].contains(&c.class.as_str()));
            assert!(!c.derived || !c.note.is_empty(), "{}: say how", c.name);
        }
        assert!(chips.iter().any(|c| c.in_class("phone")));
        assert!(chips.iter().any(|c| c.in_class("cpu")));
        let ultra = chips.iter().find(|c| c.name == "Apple M2 Ultra").unwrap();
        assert_eq!(ultra.peak_gbps, 800.0);
    }

    #[test]
    fn measured_entries_parse() {
        for m in measured().unwrap() {
            assert!(m.threads > 0 && m.gbps > 0.0, "{}", m.name);
        }
    }
}
