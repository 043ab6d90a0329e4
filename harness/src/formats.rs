//! `ternbench formats`: the registry as a table or as JSON.

use kernels::FormatInfo;
use serde::Serialize;

/// One row of `ternbench formats --json`; exactly these keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatRow {
    pub name: &'static str,
    pub block_size: usize,
    pub block_bytes: usize,
    pub bits_per_weight: f64,
    pub activation: &'static str,
    pub origin: &'static str,
}

impl From<&FormatInfo> for FormatRow {
    fn from(i: &FormatInfo) -> Self {
        FormatRow {
            name: i.name,
            block_size: i.block_size,
            block_bytes: i.block_bytes,
            bits_per_weight: i.bits_per_weight,
            activation: i.activation,
            origin: i.origin.as_str(),
        }
    }
}

pub fn rows() -> Vec<FormatRow> {
    kernels::FORMATS
        .iter()
        .map(|f| FormatRow::from(f.info()))
        .collect()
}

/// The human table; tensor-level formats note their 32-byte per-tensor tail.
pub fn table() -> String {
    let mut out = format!(
        "{:<8} {:>6} {:>6} {:>8}  {:<10} {:<11} {}\n",
        "name", "block", "bytes", "bits/w", "activation", "origin", "kind"
    );
    for f in kernels::FORMATS {
        let i = f.info();
        let kind = match (i.ternary, i.origin) {
            (true, kernels::Origin::BitnetCpp) => "ternary, + 32-byte tensor tail (f32 scale)",
            (true, _) => "ternary",
            (false, _) => "baseline",
        };
        out += &format!(
            "{:<8} {:>6} {:>6} {:>8.4}  {:<10} {:<11} {}\n",
            i.name,
            i.block_size,
            i.block_bytes,
            i.bits_per_weight,
            i.activation,
            i.origin.as_str(),
            kind
        );
    }
    out
}
