//! Model shape presets (`datasets/presets.toml`): the released BitNet models and the bitnet.cpp
//! paper's dummy sizes, for synthetic models and the kernel suite's shapes.

use serde::Deserialize;

use crate::DatasetError;

const FILE: &str = "datasets/presets.toml";
const TOML: &str = include_str!("../presets.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    /// Where the numbers come from.
    pub source: String,
    /// `bitnet-b1.58` (ReLU² FFN, bitnet.cpp) or `bitnet` (SiLU FFN, llama.cpp).
    pub arch: String,
    pub vocab: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub rope_base: f32,
    pub context: usize,
}

impl Preset {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// The matrices of one layer as (name, rows, cols): q, k, v, o, gate, up, down.
    pub fn layer_matrices(&self) -> [(&'static str, usize, usize); 7] {
        let kv = self.kv_heads * self.head_dim();
        [
            ("attn_q", self.hidden, self.hidden),
            ("attn_k", kv, self.hidden),
            ("attn_v", kv, self.hidden),
            ("attn_output", self.hidden, self.hidden),
            ("ffn_gate", self.ffn, self.hidden),
            ("ffn_up", self.ffn, self.hidden),
            ("ffn_down", self.hidden, self.ffn),
        ]
    }

    /// Weights in the linear layers (what a ternary format stores).
    pub fn linear_params(&self) -> u64 {
        let per_layer: usize = self.layer_matrices().iter().map(|(_, r, c)| r * c).sum();
        (per_layer * self.layers) as u64
    }

    /// All parameters, counting the tied embedding once.
    pub fn params(&self) -> u64 {
        let norms = self.layers * (3 * self.hidden + self.ffn) + self.hidden;
        self.linear_params() + (self.vocab * self.hidden + norms) as u64
    }
}

#[derive(Deserialize)]
struct File {
    preset: Vec<Preset>,
}

/// Every preset, in file order.
pub fn all() -> Result<Vec<Preset>, DatasetError> {
    let f: File = toml::from_str(TOML).map_err(|e| DatasetError::Toml {
        file: FILE,
        reason: e.to_string(),
    })?;
    Ok(f.preset)
}

/// A preset by name (case-insensitive).
pub fn find(name: &str) -> Result<Option<Preset>, DatasetError> {
    Ok(all()?
        .into_iter()
        .find(|p| p.name.eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_are_consistent() {
        let all = all().unwrap();
        assert!(all.len() >= 15);
        for p in &all {
            assert_eq!(p.hidden % p.heads, 0, "{}", p.name);
            assert_eq!(p.heads % p.kv_heads, 0, "{}", p.name);
            assert!(p.arch == "bitnet" || p.arch == "bitnet-b1.58", "{}", p.name);
        }
    }

    #[test]
    fn parameter_counts_match_the_model_names() {
        let billions = |n: &str| find(n).unwrap().unwrap().params() as f64 / 1e9;
        // 2B4T: "2B" (2.4B with its 128k-token embedding); its ternary part is ~2.08B.
        let b = find("bitnet-b1.58-2b-4t").unwrap().unwrap();
        assert!((b.linear_params() as f64 / 1e9 - 2.08).abs() < 0.01);
        assert!((billions("bitnet-b1.58-2b-4t") - 2.41).abs() < 0.01);
        assert!((billions("bitnet_b1_58-large") - 0.73).abs() < 0.01);
        assert!((billions("bitnet-dummy-100b") - 100.0).abs() < 5.0);
        assert!((billions("bitnet-dummy-7b") - 7.0).abs() < 0.5);
    }
}
