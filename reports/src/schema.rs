//! One flat [`Record`] per measured case, shared field for field by JSON Lines and CSV.
//!
//! Names follow llama-bench where it has one (`test`, `model`, `size`, `params`, `n_prompt`,
//! `n_gen`). Fields that do not apply to a case are `None` (JSON `null`, an empty CSV cell); every
//! field is always written, so each line of either file carries the same columns.

use serde::{Deserialize, Deserializer, Serialize};

/// The version written into every record; bump it when a field changes meaning or is removed.
pub const SCHEMA_VERSION: u32 = 2;

/// Schema versions this build reads: 1 lacks the energy provenance fields and `instructions`
/// (they read as empty).
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// What was measured: a single kernel call or a whole model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A GEMV/GEMM kernel on one weight shape; samples are nanoseconds per call.
    Kernel,
    /// A model test (`pp64`, `tg32`); samples are tokens per second.
    Model,
}

/// The unit of `samples`, `median`, `mean`, `stddev` and the 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// Tokens per second (model tests), per repetition as llama-bench counts it.
    #[serde(rename = "t/s")]
    TokensPerSecond,
    /// Nanoseconds per call (kernel tests).
    #[serde(rename = "ns")]
    Nanoseconds,
}

impl Unit {
    /// The unit as written in the files (`"t/s"`, `"ns"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::TokensPerSecond => "t/s",
            Unit::Nanoseconds => "ns",
        }
    }
}

/// One measured case. Deserialization ignores unknown fields (written by a newer minor
/// revision) and refuses a `schema_version` above [`SCHEMA_VERSION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// [`SCHEMA_VERSION`] of the writer.
    #[serde(deserialize_with = "supported_schema_version")]
    pub schema_version: u32,
    /// Identifies one invocation of the harness; records of one run share it.
    pub run_id: String,
    /// When the case finished, RFC 3339 (`2025-01-31T12:00:00Z`).
    pub timestamp: String,
    /// The suite or dataset file the case came from.
    pub suite: String,
    /// Kernel or model test.
    pub kind: RecordKind,
    /// llama-bench style test name: `pp64`, `tg32`, `pp64+tg32`, or `gemv`, `gemm64` for kernels.
    pub test: String,
    /// Model file or preset name.
    #[serde(default)]
    pub model: Option<String>,
    /// Model size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Model parameter count; also what pairs a ternary model with its f16 and q4_0 baselines.
    #[serde(default)]
    pub params: Option<u64>,
    /// Backend that ran the case (`"cpu"`).
    pub backend: String,
    /// Device description (CPU model string, GPU name).
    #[serde(default)]
    pub device: Option<String>,
    /// Worker threads.
    pub threads: u32,
    /// Weight format (`"tq2_0"`, `"f16"`, `"q4_0"`).
    pub format: String,
    /// Kernel variant that ran, `format/isa` (`"tq2_0/avx512vnni"`).
    #[serde(default)]
    pub kernel: Option<String>,
    /// Bits per weight of the format.
    #[serde(default)]
    pub bits_per_weight: Option<f64>,
    /// Kernel output rows.
    #[serde(default)]
    pub m: Option<u64>,
    /// Kernel reduction length.
    #[serde(default)]
    pub k: Option<u64>,
    /// Kernel activation columns (1 for GEMV).
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Prompt tokens of a model test.
    #[serde(default)]
    pub n_prompt: Option<u64>,
    /// Generated tokens of a model test.
    #[serde(default)]
    pub n_gen: Option<u64>,
    /// Where the weights lived while timed: `"cache"` or `"dram"`.
    #[serde(default)]
    pub resident: Option<String>,
    /// Unit of `samples` and the statistics below.
    pub unit: Unit,
    /// Raw per-repetition values in `unit` (`;`-joined in CSV).
    #[serde(default)]
    pub samples: Vec<f64>,
    /// Median of `samples`.
    pub median: f64,
    /// Mean of `samples`.
    pub mean: f64,
    /// Sample standard deviation of `samples`.
    pub stddev: f64,
    /// Lower end of the 95% interval of the median.
    #[serde(default)]
    pub ci95_lo: Option<f64>,
    /// Upper end of the 95% interval of the median.
    #[serde(default)]
    pub ci95_hi: Option<f64>,
    /// Tokens per second as llama-bench reports it (model tests).
    #[serde(default)]
    pub tps: Option<f64>,
    /// Achieved 10^9 operations per second (kernel tests; one multiply-add counts as two).
    #[serde(default)]
    pub gops: Option<f64>,
    /// Achieved weight bandwidth, 10^9 bytes per second.
    #[serde(default)]
    pub gbps: Option<f64>,
    /// Read bandwidth (DRAM or cache, see `resident`) measured in the same run, GB/s.
    #[serde(default)]
    pub bandwidth_gbps: Option<f64>,
    /// `gbps / bandwidth_gbps`.
    #[serde(default)]
    pub bandwidth_fraction: Option<f64>,
    /// Hardware instructions retired per call (kernels) or per token (models), where perf
    /// counters were readable: a low-noise companion to time.
    #[serde(default)]
    pub instructions: Option<f64>,
    /// Joules per token (net of idle when `idle_subtracted`), median over repetitions.
    #[serde(default)]
    pub energy_j_per_token: Option<f64>,
    /// Lower end of the 95% interval of `energy_j_per_token`.
    #[serde(default)]
    pub energy_j_per_token_ci95_lo: Option<f64>,
    /// Upper end of the 95% interval of `energy_j_per_token`.
    #[serde(default)]
    pub energy_j_per_token_ci95_hi: Option<f64>,
    /// Energy of all timed windows, joules, as the probe read it.
    #[serde(default)]
    pub energy_gross_j: Option<f64>,
    /// `energy_gross_j` minus idle power times the timed duration.
    #[serde(default)]
    pub energy_net_j: Option<f64>,
    /// Idle power measured in the same run, watts.
    #[serde(default)]
    pub idle_power_w: Option<f64>,
    /// The probe's domains summed into the energy (`package-0`, `dram`).
    #[serde(default)]
    pub energy_domains: Vec<String>,
    /// Worst fraction of a timed window that the probe's readings covered.
    #[serde(default)]
    pub energy_coverage: Option<f64>,
    /// Average power over the timed window, watts.
    #[serde(default)]
    pub avg_power_w: Option<f64>,
    /// Which probe gave the energy (`"rapl:package-0"`).
    #[serde(default)]
    pub energy_probe: Option<String>,
    /// `true` when a meter or counter measured the energy, `false` when it was estimated.
    #[serde(default)]
    pub energy_measured: Option<bool>,
    /// Whether the idle baseline was subtracted from the energy.
    #[serde(default)]
    pub idle_subtracted: Option<bool>,
    /// What verified the output (`"scalar reference max rel err 3e-7"`).
    #[serde(default)]
    pub check: Option<String>,
    /// Anything the reader should know (throttling, few repetitions); `;`-joined in CSV.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Commit of the harness that produced the record.
    #[serde(default)]
    pub git_commit: Option<String>,
}

impl Record {
    /// A record of the current schema with the given identity, the unit that `kind` implies
    /// (t/s for model tests, ns for kernels) and every other field empty or zero.
    pub fn new(kind: RecordKind, test: &str, format: &str) -> Record {
        Record {
            schema_version: SCHEMA_VERSION,
            run_id: String::new(),
            timestamp: String::new(),
            suite: String::new(),
            kind,
            test: test.to_owned(),
            model: None,
            size: None,
            params: None,
            backend: "cpu".to_owned(),
            device: None,
            threads: 1,
            format: format.to_owned(),
            kernel: None,
            bits_per_weight: None,
            m: None,
            k: None,
            tokens: None,
            n_prompt: None,
            n_gen: None,
            resident: None,
            unit: match kind {
                RecordKind::Kernel => Unit::Nanoseconds,
                RecordKind::Model => Unit::TokensPerSecond,
            },
            samples: Vec::new(),
            median: 0.0,
            mean: 0.0,
            stddev: 0.0,
            ci95_lo: None,
            ci95_hi: None,
            tps: None,
            gops: None,
            gbps: None,
            bandwidth_gbps: None,
            bandwidth_fraction: None,
            instructions: None,
            energy_j_per_token: None,
            energy_j_per_token_ci95_lo: None,
            energy_j_per_token_ci95_hi: None,
            energy_gross_j: None,
            energy_net_j: None,
            idle_power_w: None,
            energy_domains: Vec::new(),
            energy_coverage: None,
            avg_power_w: None,
            energy_probe: None,
            energy_measured: None,
            idle_subtracted: None,
            check: None,
            warnings: Vec::new(),
            git_commit: None,
        }
    }

    /// Whether any energy field is filled.
    pub fn has_energy(&self) -> bool {
        self.energy_j_per_token.is_some() || self.avg_power_w.is_some()
    }
}

/// Column types, so CSV cells can be turned back into typed JSON values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    /// A required string: an empty cell is the empty string.
    Str,
    /// An optional string: an empty cell is `None`.
    OptStr,
    Int,
    Float,
    Bool,
    FloatList,
    StrList,
}

/// Every field of [`Record`] in declaration order: the CSV header and column types.
/// A test checks it against the serialized struct, so the two cannot drift apart.
pub(crate) const FIELDS: &[(&str, FieldType)] = &[
    ("schema_version", FieldType::Int),
    ("run_id", FieldType::Str),
    ("timestamp", FieldType::Str),
    ("suite", FieldType::Str),
    ("kind", FieldType::Str),
    ("test", FieldType::Str),
    ("model", FieldType::OptStr),
    ("size", FieldType::Int),
    ("params", FieldType::Int),
    ("backend", FieldType::Str),
    ("device", FieldType::OptStr),
    ("threads", FieldType::Int),
    ("format", FieldType::Str),
    ("kernel", FieldType::OptStr),
    ("bits_per_weight", FieldType::Float),
    ("m", FieldType::Int),
    ("k", FieldType::Int),
    ("tokens", FieldType::Int),
    ("n_prompt", FieldType::Int),
    ("n_gen", FieldType::Int),
    ("resident", FieldType::OptStr),
    ("unit", FieldType::Str),
    ("samples", FieldType::FloatList),
    ("median", FieldType::Float),
    ("mean", FieldType::Float),
    ("stddev", FieldType::Float),
    ("ci95_lo", FieldType::Float),
    ("ci95_hi", FieldType::Float),
    ("tps", FieldType::Float),
    ("gops", FieldType::Float),
    ("gbps", FieldType::Float),
    ("bandwidth_gbps", FieldType::Float),
    ("bandwidth_fraction", FieldType::Float),
    ("instructions", FieldType::Float),
    ("energy_j_per_token", FieldType::Float),
    ("energy_j_per_token_ci95_lo", FieldType::Float),
    ("energy_j_per_token_ci95_hi", FieldType::Float),
    ("energy_gross_j", FieldType::Float),
    ("energy_net_j", FieldType::Float),
    ("idle_power_w", FieldType::Float),
    ("energy_domains", FieldType::StrList),
    ("energy_coverage", FieldType::Float),
    ("avg_power_w", FieldType::Float),
    ("energy_probe", FieldType::OptStr),
    ("energy_measured", FieldType::Bool),
    ("idle_subtracted", FieldType::Bool),
    ("check", FieldType::OptStr),
    ("warnings", FieldType::StrList),
    ("git_commit", FieldType::OptStr),
];

/// The CSV header: every field name in order.
pub fn field_names() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|(name, _)| *name)
}

fn supported_schema_version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let version = u32::deserialize(d)?;
    if version > SCHEMA_VERSION {
        return Err(serde::de::Error::custom(format!(
            "schema_version {version} is newer than this build reads ({SCHEMA_VERSION}); \
             update ternbench to read these results"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_table_matches_struct_order() {
        let json = serde_json::to_string(&Record::new(RecordKind::Model, "tg32", "tq2_0")).unwrap();
        let mut at = 0;
        for name in field_names() {
            let key = format!("\"{name}\":");
            let pos = json[at..].find(&key).map(|p| p + at);
            assert!(pos.is_some(), "{name} missing or out of order in {json}");
            at = pos.unwrap() + key.len();
        }
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value.as_object().unwrap().len(), FIELDS.len());
    }
}
