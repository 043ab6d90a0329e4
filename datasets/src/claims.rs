//! Vendor claims (`datasets/claims/*.toml`): each claim's words, source, the quantity that
//! measures it and the rule that decides it, for `ternbench claims`.

use serde::Deserialize;

use crate::DatasetError;

/// Every claims file, embedded so the binary needs no data directory.
const FILES: &[(&str, &str)] = &[(
    "datasets/claims/bitnet.toml",
    include_str!("../claims/bitnet.toml"),
)];

/// What a claim's number is a number of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// F16 bytes over ternary bytes (per weight, or of a whole preset model).
    StorageRatioVsF16,
    /// 1 - ternary bytes / F16 bytes of a preset model.
    MemoryReductionVsF16,
    /// Bytes of a preset's linear weights and norms.
    NonEmbeddingBytes,
    /// Bytes of a whole preset model, embeddings as stored.
    ModelBytes,
    /// Bytes per 256 weights of a format's block.
    BlockBytes,
    /// Decode tokens/s of ternary over F16 (from records).
    DecodeSpeedupVsF16,
    /// 1 - J/token ternary / J/token F16 (from records with measured energy).
    EnergyReductionVsF16,
    /// Memory bandwidth / bytes per token: the decode roofline.
    RooflineTps,
    /// Measured decode joules per token.
    JPerToken,
}

impl Quantity {
    pub fn name(self) -> &'static str {
        match self {
            Quantity::StorageRatioVsF16 => "storage_ratio_vs_f16",
            Quantity::MemoryReductionVsF16 => "memory_reduction_vs_f16",
            Quantity::NonEmbeddingBytes => "non_embedding_bytes",
            Quantity::ModelBytes => "model_bytes",
            Quantity::BlockBytes => "block_bytes",
            Quantity::DecodeSpeedupVsF16 => "decode_speedup_vs_f16",
            Quantity::EnergyReductionVsF16 => "energy_reduction_vs_f16",
            Quantity::RooflineTps => "roofline_tps",
            Quantity::JPerToken => "j_per_token",
        }
    }
}

/// How a measured value decides a claim. `tolerance` is relative and widens the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    #[serde(alias = "ratio_at_least")]
    AtLeast {
        value: f64,
        #[serde(default)]
        tolerance: f64,
    },
    AtMost {
        value: f64,
        #[serde(default)]
        tolerance: f64,
    },
    Within {
        lo: f64,
        hi: f64,
        #[serde(default)]
        tolerance: f64,
    },
    Equals {
        value: f64,
        #[serde(default)]
        tolerance: f64,
    },
}

impl Rule {
    /// The accepted interval after tolerance: (lower bound, upper bound).
    pub fn bounds(&self) -> (f64, f64) {
        match *self {
            Rule::AtLeast { value, tolerance } => (value * (1.0 - tolerance), f64::INFINITY),
            Rule::AtMost { value, tolerance } => (f64::NEG_INFINITY, value * (1.0 + tolerance)),
            Rule::Within { lo, hi, tolerance } => (lo * (1.0 - tolerance), hi * (1.0 + tolerance)),
            Rule::Equals { value, tolerance } => {
                let d = value.abs() * tolerance;
                (value - d, value + d)
            }
        }
    }

    /// Whether `x` passes the rule.
    pub fn passes(&self, x: f64) -> bool {
        let (lo, hi) = self.bounds();
        x.is_finite() && lo <= x && x <= hi
    }

    /// The rule in words, tolerance included.
    pub fn describe(&self) -> String {
        let tol = |t: f64| {
            if t > 0.0 {
                format!(" (tolerance {:.0}%)", t * 100.0)
            } else {
                String::new()
            }
        };
        match *self {
            Rule::AtLeast { value, tolerance } => format!(">= {value}{}", tol(tolerance)),
            Rule::AtMost { value, tolerance } => format!("<= {value}{}", tol(tolerance)),
            Rule::Within { lo, hi, tolerance } => format!("in [{lo}, {hi}]{}", tol(tolerance)),
            Rule::Equals { value, tolerance } => format!("= {value}{}", tol(tolerance)),
        }
    }
}

/// Whether one passing value confirms a claim, or every value must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    #[default]
    Any,
    All,
}

/// What a claim is about: the model shapes, formats, baseline and hardware it names.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// A model shape preset (datasets/presets.toml).
    #[serde(default)]
    pub preset: Option<String>,
    /// Formats to evaluate; empty: every ternary format in the kernels registry.
    #[serde(default)]
    pub formats: Vec<String>,
    /// The full-precision baseline format (`f16`).
    #[serde(default)]
    pub baseline: Option<String>,
    /// The CPU architecture the claim is about (`x86_64`, `aarch64`).
    #[serde(default)]
    pub arch: Option<String>,
    /// Which hardware entries a roofline claim uses (`cpu`: desktop and laptop, `phone`).
    #[serde(default)]
    pub hardware_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub id: String,
    pub source: String,
    pub url: String,
    /// The source's words when `quote_checked`, else the paraphrase.
    pub quote: String,
    pub quote_checked: bool,
    /// What the claim means as a measurable quantity.
    pub meaning: String,
    /// The claimed value as text.
    pub claimed: String,
    pub quantity: Quantity,
    #[serde(default)]
    pub aggregate: Aggregate,
    pub rule: Rule,
    #[serde(default)]
    pub conditions: Conditions,
}

#[derive(Deserialize)]
struct File {
    claim: Vec<Claim>,
}

/// Every claim, in file order.
pub fn all() -> Result<Vec<Claim>, DatasetError> {
    let mut out: Vec<Claim> = Vec::new();
    for (file, text) in FILES {
        let f: File = toml::from_str(text).map_err(|e| DatasetError::Toml {
            file,
            reason: e.to_string(),
        })?;
        for c in f.claim {
            if out.iter().any(|o| o.id == c.id) {
                return Err(DatasetError::Toml {
                    file,
                    reason: format!("duplicate claim id '{}'", c.id),
                });
            }
            let (lo, hi) = c.rule.bounds();
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(DatasetError::Toml {
                    file,
                    reason: format!("claim '{}': rule bounds {lo}..{hi} are empty", c.id),
                });
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// A claim by id.
pub fn find(id: &str) -> Result<Option<Claim>, DatasetError> {
    Ok(all()?.into_iter().find(|c| c.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_parse_with_known_presets_and_sources() {
        let claims = all().unwrap();
        assert!(claims.len() >= 12);
        for c in &claims {
            assert!(c.url.starts_with("https://"), "{}", c.id);
            assert!(!c.quote.is_empty() && !c.meaning.is_empty(), "{}", c.id);
            if let Some(p) = &c.conditions.preset {
                assert!(crate::presets::find(p).unwrap().is_some(), "{}: {p}", c.id);
            }
        }
        let speed = find("bitnet.cpp-x86-speedup").unwrap().unwrap();
        assert_eq!(speed.quantity, Quantity::DecodeSpeedupVsF16);
        assert_eq!(speed.conditions.arch.as_deref(), Some("x86_64"));
    }

    #[test]
    fn rules_apply_their_tolerance() {
        let r = Rule::AtLeast {
            value: 10.0,
            tolerance: 0.1,
        };
        assert!(r.passes(9.0) && !r.passes(8.99));
        let w = Rule::Within {
            lo: 2.0,
            hi: 4.0,
            tolerance: 0.0,
        };
        assert!(w.passes(3.0) && !w.passes(1.5) && !w.passes(4.5) && !w.passes(f64::NAN));
        let e = Rule::Equals {
            value: 66.0,
            tolerance: 0.0,
        };
        assert!(e.passes(66.0) && !e.passes(54.0));
        let m = Rule::AtMost {
            value: 20.0,
            tolerance: 0.1,
        };
        assert!(m.passes(22.0) && !m.passes(22.1));
    }

    #[test]
    fn ratio_at_least_is_an_alias() {
        let r: Rule = toml::from_str("kind = \"ratio_at_least\"\nvalue = 9.09").unwrap();
        assert_eq!(
            r,
            Rule::AtLeast {
                value: 9.09,
                tolerance: 0.0
            }
        );
    }
}
