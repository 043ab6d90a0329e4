//! `ternbench claims`: a verdict on each vendor claim of `datasets/claims` (confirmed, refuted,
//! or untestable here, saying what would test it), with the evidence.
//!
//! Storage and layout claims are computed from the kernels registry and the shape presets.
//! Speed and energy claims are read from result records (`ternbench run` output) or, with no
//! results given, from a small measurement here: a f16-vs-ternary decode on synthesized models,
//! the DRAM bandwidth probe and a layer-sampled decode of the 100B shape. Roofline claims use
//! published peak bandwidths (`datasets/hardware`) and this machine's measured one.

use std::path::PathBuf;

use datasets::claims::{Aggregate, Claim, Quantity};
use datasets::hardware::Chip;
use datasets::presets::Preset;
use kernels::WeightFormat;
use reports::{Record, RecordKind};
use serde::Serialize;

use crate::bandwidth::{self, Resident};
use crate::convert;
use crate::model_run::{self, RunOptions};
use crate::stats::Summary;

/// A claim's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Confirmed,
    Refuted,
    Untestable,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::Refuted => "refuted",
            Outcome::Untestable => "untestable",
        }
    }
}

/// One measured or computed value behind a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Value {
    /// What it is of: a format, a record pair, a chip.
    pub label: String,
    pub value: f64,
    /// 95% interval where the value comes from repeated samples.
    pub ci95: Option<[f64; 2]>,
    /// Whether this value alone passes the claim's rule.
    pub passes: bool,
}

/// A claim's verdict and the evidence for it, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub id: String,
    pub verdict: Outcome,
    /// The claim's number, as the claim states it.
    pub claimed: String,
    /// The measured or computed values, in words.
    pub measured: String,
    /// How the values were obtained: records, presets, formats, intervals.
    pub evidence: String,
    /// For an untestable claim: the hardware or data that would test it.
    pub needs: Option<String>,
    /// The quantity computed (`decode_speedup_vs_f16`, ...).
    pub quantity: &'static str,
    /// The rule applied, tolerance included.
    pub rule: String,
    pub values: Vec<Value>,
    pub source: String,
    pub url: String,
    pub quote: String,
    /// Whether `quote` is the source's own wording (checked) or a paraphrase.
    pub quote_checked: bool,
}

/// Read bandwidth of the machine the evidence comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineBandwidth {
    pub gbps: f64,
    /// Where the number comes from (the probe here, or a results file's records).
    pub how: String,
}

/// A decode of a few full-width layers of a big preset, scaled to the whole model by bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSample {
    pub preset: String,
    pub format: String,
    pub layers_run: usize,
    pub vocab_run: usize,
    /// Weight bytes one decode step of the sampled model streams.
    pub sample_bytes_per_token: u64,
    pub sample_tps: f64,
    pub sample_tps_ci95: [f64; 2],
    /// Weight bytes one decode step of the whole model streams.
    pub full_bytes_per_token: u64,
    /// sample_tps scaled by the byte ratio: decode time is taken as proportional to bytes.
    pub extrapolated_tps: f64,
    pub threads: usize,
}

/// Everything the verdicts are drawn from.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub records: Vec<Record>,
    /// Where the records came from (files, or "measured here").
    pub record_sources: Vec<String>,
    pub bandwidth: Option<MachineBandwidth>,
    pub layer_sample: Option<LayerSample>,
    pub chips: Vec<Chip>,
    /// What was measured or skipped, for the evidence texts.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    #[error(transparent)]
    Report(#[from] reports::ReportError),
    #[error(transparent)]
    Run(#[from] model_run::RunError),
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error("unknown preset '{0}'")]
    Preset(String),
    #[error("energy probe: {0}")]
    Probe(String),
}

/// What `ternbench claims` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Results files or directories; empty: measure here (unless `measure` is false).
    pub results: Vec<PathBuf>,
    pub measure: bool,
    /// 0: every logical CPU.
    pub threads: usize,
    /// Where synthesized models are kept.
    pub cache_dir: PathBuf,
    /// Print what is being measured on stderr.
    pub progress: bool,
    /// Largest weight bytes of the layer-sampled model; bigger samples are skipped.
    pub layer_sample_max_bytes: u64,
    /// The energy probe of the decode measurement (energy claims need a measured one).
    pub energy: crate::energy::EnergyOptions,
}

/// The formats a claim covers: its list, or every ternary format of the registry.
fn claim_formats(c: &Claim) -> Vec<&'static dyn WeightFormat> {
    if c.conditions.formats.is_empty() {
        kernels::FORMATS
            .iter()
            .copied()
            .filter(|f| f.info().ternary)
            .collect()
    } else {
        c.conditions
            .formats
            .iter()
            .filter_map(|n| kernels::find_format(n).ok())
            .collect()
    }
}

/// Bytes of a packed rows x cols tensor; where the format cannot pack the shape (TL tilings
/// exist for some shapes only), its bits per weight, with the reason.
fn tensor_bytes(f: &dyn WeightFormat, rows: usize, cols: usize) -> (u64, Option<String>) {
    match f.tensor_bytes(rows, cols) {
        Ok(b) => (b as u64, None),
        Err(e) => (
            ((rows * cols) as f64 * f.info().bits_per_weight / 8.0).ceil() as u64,
            Some(e.to_string()),
        ),
    }
}

/// The format a preset's embedding is stored in by upstream's converters.
fn embedding_format(preset: &Preset) -> &'static dyn WeightFormat {
    let ty = convert::default_embedding(&preset.arch);
    convert::TYPES
        .iter()
        .find(|(_, t, _)| *t == ty)
        .and_then(|(n, _, _)| kernels::find_format(n).ok())
        .unwrap_or(kernels::FORMATS[0])
}

/// Bytes of a preset's model in a format: linear weights, norms (f32), embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBytes {
    pub linear: u64,
    pub norms: u64,
    pub embedding: u64,
    /// Why some tensors were sized from bits per weight instead of the packer.
    pub approximate: Option<String>,
}

impl ModelBytes {
    pub fn total(&self) -> u64 {
        self.linear + self.norms + self.embedding
    }
    pub fn non_embedding(&self) -> u64 {
        self.linear + self.norms
    }
}

/// Bytes of `preset` with linear weights in `linear` and the embedding in `embedding`.
pub fn model_bytes(
    preset: &Preset,
    linear: &dyn WeightFormat,
    embedding: &dyn WeightFormat,
) -> ModelBytes {
    let mut approximate = None;
    let mut per_layer = 0;
    for (_, rows, cols) in preset.layer_matrices() {
        let (b, why) = tensor_bytes(linear, rows, cols);
        per_layer += b;
        approximate = approximate.or(why);
    }
    let norms = (preset.layers * (3 * preset.hidden + preset.ffn) + preset.hidden) as u64 * 4;
    let (embedding, why) = tensor_bytes(embedding, preset.vocab, preset.hidden);
    let why = why.map(|w| format!("embedding {w}"));
    ModelBytes {
        linear: per_layer * preset.layers as u64,
        norms,
        embedding,
        approximate: approximate.or(why),
    }
}

/// Weight bytes one decode step streams: every linear weight and the tied lm_head.
fn bytes_per_token(m: &ModelBytes) -> u64 {
    m.linear + m.embedding
}

fn preset_of(c: &Claim) -> Result<Option<Preset>, ClaimsError> {
    match &c.conditions.preset {
        None => Ok(None),
        Some(name) => datasets::presets::find(name)?
            .map(Some)
            .ok_or_else(|| ClaimsError::Preset(name.clone())),
    }
}

/// Percentile-bootstrap 95% interval of median(a) / median(b) (the report's own interval).
pub fn ratio_ci95(a: &[f64], b: &[f64]) -> Option<[f64; 2]> {
    reports::ratio_ci95(a, b).map(|(lo, hi)| [lo, hi])
}

/// The CPU architecture a record ran on: from its kernel variant's instruction set, else from
/// an architecture named in its device string.
pub fn record_arch(r: &Record) -> Option<&'static str> {
    let isa = r
        .kernel
        .as_deref()
        .and_then(|k| k.rsplit('/').next())
        .and_then(kernels::Isa::from_name);
    match isa {
        Some(
            kernels::Isa::Avx2
            | kernels::Isa::AvxVnni
            | kernels::Isa::Avx512Vnni
            | kernels::Isa::Amx,
        ) => return Some("x86_64"),
        Some(kernels::Isa::Neon | kernels::Isa::Dotprod | kernels::Isa::I8mm) => {
            return Some("aarch64")
        }
        _ => {}
    }
    let device = r.device.as_deref().unwrap_or("").to_ascii_lowercase();
    if device.contains("x86_64") || device.contains("x86-64") {
        Some("x86_64")
    } else if device.contains("aarch64") || device.contains("arm64") {
        Some("aarch64")
    } else {
        None
    }
}

fn is_ternary(format: &str) -> bool {
    kernels::find_format(format).is_ok_and(|f| f.info().ternary)
}

fn record_model(r: &Record) -> String {
    match (&r.model, r.params) {
        (Some(m), _) => m.clone(),
        (None, Some(p)) => format!("{:.2}B params", p as f64 / 1e9),
        (None, None) => "unnamed model".into(),
    }
}

/// A ternary decode record and its f16 twin: same test, threads, params (or model name).
struct Pair<'a> {
    ternary: &'a Record,
    baseline: &'a Record,
}

fn same_model(a: &Record, b: &Record) -> bool {
    match (a.params, b.params) {
        (Some(x), Some(y)) => x == y,
        _ => a.model.is_some() && a.model == b.model,
    }
}

fn decode_pairs<'a>(records: &'a [Record], baseline: &str, arch: Option<&str>) -> Vec<Pair<'a>> {
    let decode = |r: &&Record| {
        r.kind == RecordKind::Model
            && r.test.starts_with("tg")
            && arch.is_none_or(|a| record_arch(r) == Some(a))
    };
    let mut pairs = Vec::new();
    for t in records
        .iter()
        .filter(decode)
        .filter(|r| is_ternary(&r.format))
    {
        if let Some(b) = records.iter().filter(decode).find(|b| {
            b.format.eq_ignore_ascii_case(baseline)
                && b.test == t.test
                && b.threads == t.threads
                && same_model(t, b)
        }) {
            pairs.push(Pair {
                ternary: t,
                baseline: b,
            });
        }
    }
    pairs
}

/// Verdict from values: none is untestable; otherwise the claim's aggregate decides.
fn decide(c: &Claim, values: &[Value]) -> Outcome {
    if values.is_empty() {
        return Outcome::Untestable;
    }
    let ok = match c.aggregate {
        Aggregate::Any => values.iter().any(|v| v.passes),
        Aggregate::All => values.iter().all(|v| v.passes),
    };
    if ok {
        Outcome::Confirmed
    } else {
        Outcome::Refuted
    }
}

fn value(c: &Claim, label: String, v: f64, ci95: Option<[f64; 2]>) -> Value {
    Value {
        label,
        value: v,
        ci95,
        passes: c.rule.passes(v),
    }
}

/// A value in the claim quantity's unit.
fn show(q: Quantity, v: f64) -> String {
    match q {
        Quantity::StorageRatioVsF16 | Quantity::DecodeSpeedupVsF16 => format!("{v:.2}x"),
        Quantity::MemoryReductionVsF16 | Quantity::EnergyReductionVsF16 => {
            format!("{:.1}%", v * 100.0)
        }
        Quantity::NonEmbeddingBytes | Quantity::ModelBytes => format!("{:.3} GB", v / 1e9),
        Quantity::BlockBytes => format!("{v:.0} B/256 weights"),
        Quantity::RooflineTps => format!("{v:.2} t/s"),
        Quantity::JPerToken => format!("{v:.4} J/token"),
    }
}

fn measured_text(q: Quantity, values: &[Value]) -> String {
    if values.is_empty() {
        return "nothing measured".into();
    }
    values
        .iter()
        .map(|v| {
            let ci = v.ci95.map_or(String::new(), |[lo, hi]| {
                format!(" (95% CI {}..{})", show(q, lo), show(q, hi))
            });
            format!("{}: {}{ci}", v.label, show(q, v.value))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the pieces of one verdict are before it is assembled.
struct Found {
    values: Vec<Value>,
    evidence: Vec<String>,
    needs: Option<String>,
}

impl Found {
    fn untestable(evidence: String, needs: String) -> Found {
        Found {
            values: Vec::new(),
            evidence: vec![evidence],
            needs: Some(needs),
        }
    }
}

fn sizes(c: &Claim, preset: &Preset, baseline: bool) -> Found {
    let embed = embedding_format(preset);
    let f16 = kernels::find_format("f16").ok();
    let full = f16.map(|f| model_bytes(preset, f, f));
    let mut values = Vec::new();
    let mut evidence = vec![format!(
        "Preset {} ({:.2}B parameters, {:.2}B in linear layers; {} layers, hidden {}, ffn {}, \
         vocab {}); sizes from the kernels registry's packers (tensor_bytes), norms f32, the \
         tied embedding as upstream stores it ({}).",
        preset.name,
        preset.params() as f64 / 1e9,
        preset.linear_params() as f64 / 1e9,
        preset.layers,
        preset.hidden,
        preset.ffn,
        preset.vocab,
        embed.info().name
    )];
    if let (true, Some(full)) = (baseline, &full) {
        evidence.push(format!(
            "The F16 baseline stores every tensor in F16 (norms f32): {:.3} GB.",
            full.total() as f64 / 1e9
        ));
    }
    for f in claim_formats(c) {
        let m = model_bytes(preset, f, embed);
        if let Some(why) = &m.approximate {
            evidence.push(format!(
                "{}: sized from {:.4} bits per weight because the packer refuses a shape ({why}).",
                f.info().name,
                f.info().bits_per_weight
            ));
        }
        let v = match (c.quantity, &full) {
            (Quantity::StorageRatioVsF16, Some(full)) => full.total() as f64 / m.total() as f64,
            (Quantity::MemoryReductionVsF16, Some(full)) => {
                1.0 - m.total() as f64 / full.total() as f64
            }
            (Quantity::NonEmbeddingBytes, _) => m.non_embedding() as f64,
            _ => m.total() as f64,
        };
        let label = format!(
            "{} ({:.3} GB: linear {:.3}, embedding {:.3})",
            f.info().name,
            m.total() as f64 / 1e9,
            m.linear as f64 / 1e9,
            m.embedding as f64 / 1e9
        );
        values.push(value(c, label, v, None));
    }
    Found {
        values,
        evidence,
        needs: None,
    }
}

fn per_weight_ratio(c: &Claim) -> Found {
    let f16_bits = kernels::find_format("f16").map_or(16.0, |f| f.info().bits_per_weight);
    let values = claim_formats(c)
        .into_iter()
        .map(|f| {
            let i = f.info();
            value(
                c,
                format!("{} ({:.4} bits/weight)", i.name, i.bits_per_weight),
                f16_bits / i.bits_per_weight,
                None,
            )
        })
        .collect();
    Found {
        values,
        evidence: vec![format!(
            "{f16_bits} bits per F16 weight over each ternary format's bits per weight, from the \
             kernels registry (block bytes x 8 / block size; I2_S, TL1 and TL2 add a 32-byte \
             per-tensor tail, not counted here)."
        )],
        needs: None,
    }
}

fn block_bytes(c: &Claim) -> Found {
    let mut evidence = Vec::new();
    let values = claim_formats(c)
        .into_iter()
        .map(|f| {
            let i = f.info();
            evidence.push(format!(
                "{}: {} weights per block in {} bytes ({:.4} bits per weight), from the kernels \
                 registry's FormatInfo.",
                i.name, i.block_size, i.block_bytes, i.bits_per_weight
            ));
            value(
                c,
                i.name.to_string(),
                i.block_bytes as f64 * 256.0 / i.block_size as f64,
                None,
            )
        })
        .collect();
    Found {
        values,
        evidence,
        needs: None,
    }
}

fn arch_needs(arch: Option<&str>) -> String {
    match arch {
        Some(a) if a != std::env::consts::ARCH => {
            format!("needs results from an {a} machine (run `ternbench run` there and pass its results)")
        }
        Some(a) => format!("needs decode records from an {a} machine"),
        None => "needs decode records".into(),
    }
}

fn speedup(c: &Claim, ev: &Evidence) -> Found {
    let baseline = c.conditions.baseline.as_deref().unwrap_or("f16");
    let arch = c.conditions.arch.as_deref();
    let pairs = decode_pairs(&ev.records, baseline, arch);
    if pairs.is_empty() {
        return Found::untestable(
            format!(
                "No pair of decode records (kind model, test tgN) of a ternary format and {baseline} \
                 with the same params and threads{} among {} records ({}).",
                arch.map_or(String::new(), |a| format!(" from an {a} CPU")),
                ev.records.len(),
                sources(ev)
            ),
            format!(
                "{}: `ternbench run` records a ternary model and its {baseline} twin",
                arch_needs(arch)
            ),
        );
    }
    let mut values = Vec::new();
    let mut evidence = vec![format!(
        "Ratio of median decode tokens/s, ternary over {baseline}, per record pair from {}; \
         95% intervals by percentile bootstrap of the two records' samples (2000 resamples).",
        sources(ev)
    )];
    for p in pairs {
        let (t, b) = (p.ternary, p.baseline);
        let v = t.median / b.median;
        let ci = ratio_ci95(&t.samples, &b.samples);
        let label = format!(
            "{} {} vs {} ({}, {} threads{})",
            record_model(t),
            t.kernel.as_deref().unwrap_or(&t.format),
            b.format,
            t.test,
            t.threads,
            record_arch(t).map_or(String::new(), |a| format!(", {a}"))
        );
        evidence.push(format!(
            "{label}: {:.2} t/s over {:.2} t/s ({} and {} samples).",
            t.median,
            b.median,
            t.samples.len(),
            b.samples.len()
        ));
        if let Some([lo, hi]) = ci {
            if c.rule.passes(lo) != c.rule.passes(hi) {
                evidence.push(format!(
                    "{label}: the interval {lo:.2}..{hi:.2} crosses a bound of the rule; the \
                     verdict rests on the median ratio."
                ));
            }
        }
        values.push(value(c, label, v, ci));
    }
    Found {
        values,
        evidence,
        needs: None,
    }
}

fn sources(ev: &Evidence) -> String {
    if ev.record_sources.is_empty() {
        "no results".into()
    } else {
        ev.record_sources.join(", ")
    }
}

const PROBE_NEEDS: &str = "needs records with measured energy (energy_measured = true): run \
    `ternbench run` where `ternbench power probes` lists a measuring probe (RAPL on bare-metal \
    x86, a PTDaemon meter, Android fuel gauge)";

/// Why a record's energy cannot decide anything, or None when it is a measurement.
fn energy_unusable(r: &Record) -> Option<String> {
    match (r.energy_measured, r.energy_j_per_token) {
        (Some(true), Some(_)) => None,
        (Some(false), _) => Some(format!(
            "{} {}: energy is an ESTIMATE ({}), not a measurement",
            record_model(r),
            r.format,
            r.energy_probe.as_deref().unwrap_or("estimate")
        )),
        (Some(true), None) => Some(format!(
            "{} {}: no joules per token recorded",
            record_model(r),
            r.format
        )),
        (None, _) => Some(format!(
            "{} {}: energy not measured",
            record_model(r),
            r.format
        )),
    }
}

fn energy_reduction(c: &Claim, ev: &Evidence) -> Found {
    let baseline = c.conditions.baseline.as_deref().unwrap_or("f16");
    let arch = c.conditions.arch.as_deref();
    let pairs = decode_pairs(&ev.records, baseline, arch);
    let mut values = Vec::new();
    let mut unusable = Vec::new();
    let mut evidence = vec![format!(
        "1 - J/token(ternary) / J/token({baseline}) per decode record pair from {}; J/token is \
         net of idle where the record says idle_subtracted.",
        sources(ev)
    )];
    for p in &pairs {
        let (t, b) = (p.ternary, p.baseline);
        if let Some(why) = energy_unusable(t).or_else(|| energy_unusable(b)) {
            unusable.push(why);
            continue;
        }
        let (Some(et), Some(eb)) = (t.energy_j_per_token, b.energy_j_per_token) else {
            continue;
        };
        let ci = match (
            t.energy_j_per_token_ci95_lo,
            t.energy_j_per_token_ci95_hi,
            b.energy_j_per_token_ci95_lo,
            b.energy_j_per_token_ci95_hi,
        ) {
            (Some(tl), Some(th), Some(bl), Some(bh)) if bl > 0.0 && bh > 0.0 => {
                Some([1.0 - th / bl, 1.0 - tl / bh])
            }
            _ => None,
        };
        let label = format!(
            "{} {} vs {} ({}, {} threads, {}{})",
            record_model(t),
            t.format,
            b.format,
            t.test,
            t.threads,
            t.energy_probe.as_deref().unwrap_or("probe"),
            if t.idle_subtracted == Some(true) {
                ", net of idle"
            } else {
                ", gross"
            }
        );
        evidence.push(format!("{label}: {et:.4} J/token vs {eb:.4} J/token."));
        values.push(value(c, label, 1.0 - et / eb, ci));
    }
    if values.is_empty() {
        let what = if pairs.is_empty() {
            format!(
                "No ternary/{baseline} decode record pair{} among {} records ({}).",
                arch.map_or(String::new(), |a| format!(" from an {a} CPU")),
                ev.records.len(),
                sources(ev)
            )
        } else {
            format!(
                "{} decode record pair(s), none with measured energy: {}.",
                pairs.len(),
                unusable.join("; ")
            )
        };
        let needs = match arch {
            Some(a) if a != std::env::consts::ARCH => {
                format!("{}; {PROBE_NEEDS}", arch_needs(arch))
            }
            _ => PROBE_NEEDS.to_string(),
        };
        return Found::untestable(what, needs);
    }
    evidence.extend(unusable.into_iter().map(|u| format!("Skipped: {u}.")));
    Found {
        values,
        evidence,
        needs: None,
    }
}

fn j_per_token(c: &Claim, ev: &Evidence, preset: Option<&Preset>) -> Found {
    let params = preset.map(|p| p.params());
    let name = preset.map(|p| p.name.as_str());
    let of_preset = |r: &&Record| match (params, name) {
        (Some(p), Some(n)) => {
            r.params == Some(p) || r.model.as_deref().is_some_and(|m| m.contains(n))
        }
        _ => true,
    };
    let decode: Vec<&Record> = ev
        .records
        .iter()
        .filter(|r| r.kind == RecordKind::Model && r.test.starts_with("tg"))
        .filter(|r| is_ternary(&r.format))
        .filter(of_preset)
        .collect();
    let mut values = Vec::new();
    let mut unusable = Vec::new();
    for r in &decode {
        match (energy_unusable(r), r.energy_j_per_token) {
            (None, Some(j)) => {
                let ci = r
                    .energy_j_per_token_ci95_lo
                    .zip(r.energy_j_per_token_ci95_hi)
                    .map(|(a, b)| [a, b]);
                let label = format!(
                    "{} {} ({}, {} threads, {})",
                    record_model(r),
                    r.format,
                    r.test,
                    r.threads,
                    r.energy_probe.as_deref().unwrap_or("probe")
                );
                values.push(value(c, label, j, ci));
            }
            (why, _) => unusable.push(why.unwrap_or_default()),
        }
    }
    let shape = name.map_or(String::new(), |n| format!(" with the {n} shapes"));
    if values.is_empty() {
        let what = if decode.is_empty() {
            format!(
                "No ternary decode record{shape} among {} records ({}).",
                ev.records.len(),
                sources(ev)
            )
        } else {
            format!(
                "{} ternary decode record(s){shape}, none with measured energy: {}.",
                decode.len(),
                unusable.join("; ")
            )
        };
        return Found::untestable(
            what,
            format!("{PROBE_NEEDS}, for a model{shape} (`ternbench run --suite default`)"),
        );
    }
    Found {
        values,
        evidence: vec![format!(
            "Median decode joules per token of ternary records{shape} from {}, as the probe \
             measured them (net of idle where idle_subtracted).",
            sources(ev)
        )],
        needs: None,
    }
}

fn roofline(c: &Claim, ev: &Evidence, preset: Option<&Preset>) -> Found {
    let Some(preset) = preset else {
        return Found::untestable(
            "The claim names no model preset.".into(),
            "a preset in the claim's conditions".into(),
        );
    };
    let embed = embedding_format(preset);
    // The densest format that packs every shape of the preset ("real": no bits-per-weight guess).
    let best = claim_formats(c)
        .into_iter()
        .map(|f| (f, model_bytes(preset, f, embed)))
        .filter(|(_, m)| m.approximate.is_none())
        .min_by_key(|(_, m)| bytes_per_token(m));
    let Some((format, m)) = best else {
        return Found::untestable(
            format!("No ternary format packs every matrix of {}.", preset.name),
            "a ternary format whose packer takes these shapes".into(),
        );
    };
    let bpt = bytes_per_token(&m) as f64;
    let class = c.conditions.hardware_class.as_deref().unwrap_or("cpu");
    let mut values = Vec::new();
    let mut evidence = vec![format!(
        "Decode streams every weight byte once per token, so tokens/s <= bandwidth / bytes per \
         token. {} in {} (the densest format that packs every matrix) streams {:.2} GB per \
         token ({:.2} GB of linear weights + {:.2} GB {} tied lm_head); the whole file is {:.2} \
         GB.",
        preset.name,
        format.info().name,
        bpt / 1e9,
        m.linear as f64 / 1e9,
        m.embedding as f64 / 1e9,
        embed.info().name,
        m.total() as f64 / 1e9
    )];
    for chip in ev.chips.iter().filter(|h| h.in_class(class)) {
        let tps = chip.peak_gbps * 1e9 / bpt;
        let label = format!("{} ({} GB/s peak)", chip.name, chip.peak_gbps);
        let fits = chip.memory_gb.map_or(String::new(), |gb| {
            if gb * 1e9 < m.total() as f64 {
                format!(
                    " Its {gb} GB of memory cannot hold the {:.1} GB model.",
                    m.total() as f64 / 1e9
                )
            } else {
                String::new()
            }
        });
        evidence.push(format!(
            "{label}: {tps:.2} t/s at most ({}{}; {}).{fits}",
            if chip.derived { "computed from " } else { "" },
            chip.memory,
            chip.url
        ));
        values.push(value(c, label, tps, None));
    }
    if class == "cpu" {
        if let Some(b) = &ev.bandwidth {
            let tps = b.gbps * 1e9 / bpt;
            let label = format!("this machine ({:.1} GB/s measured)", b.gbps);
            evidence.push(format!("{label}: {tps:.2} t/s at most ({}).", b.how));
            values.push(value(c, label, tps, None));
        }
        if let Some(s) = &ev.layer_sample {
            let label = format!(
                "this machine, layer-sampled decode ({}, {} threads)",
                s.format, s.threads
            );
            evidence.push(format!(
                "Layer-sampled decode here: {} with {} layer(s) at full width and a {}-token \
                 vocabulary in {} ran at {:.2} t/s (95% CI {:.2}..{:.2}) streaming {:.3} GB per \
                 token; scaled by bytes to the whole model's {:.2} GB per token: {:.3} t/s.",
                s.preset,
                s.layers_run,
                s.vocab_run,
                s.format,
                s.sample_tps,
                s.sample_tps_ci95[0],
                s.sample_tps_ci95[1],
                s.sample_bytes_per_token as f64 / 1e9,
                s.full_bytes_per_token as f64 / 1e9,
                s.extrapolated_tps
            ));
            values.push(value(c, label, s.extrapolated_tps, None));
        }
    }
    if values.is_empty() {
        return Found::untestable(
            format!("No hardware of class '{class}' with a known bandwidth."),
            format!("a sourced peak bandwidth of a '{class}' chip in datasets/hardware, or a measurement here"),
        );
    }
    evidence.push(
        "Peak bandwidths are theoretical; a real decode reaches a fraction of them, so a roofline \
         below the claim refutes it and one above only shows it is possible."
            .into(),
    );
    Found {
        values,
        evidence,
        needs: None,
    }
}

/// The verdict on one claim from the evidence.
pub fn evaluate(c: &Claim, ev: &Evidence) -> Result<Verdict, ClaimsError> {
    let preset = preset_of(c)?;
    let found = match (c.quantity, &preset) {
        (Quantity::StorageRatioVsF16, None) => per_weight_ratio(c),
        (
            Quantity::StorageRatioVsF16
            | Quantity::MemoryReductionVsF16
            | Quantity::NonEmbeddingBytes
            | Quantity::ModelBytes,
            Some(p),
        ) => sizes(c, p, c.conditions.baseline.is_some()),
        (
            Quantity::MemoryReductionVsF16 | Quantity::NonEmbeddingBytes | Quantity::ModelBytes,
            None,
        ) => Found::untestable(
            "The claim names no model preset to size.".into(),
            "a preset in the claim's conditions".into(),
        ),
        (Quantity::BlockBytes, _) => block_bytes(c),
        (Quantity::DecodeSpeedupVsF16, _) => speedup(c, ev),
        (Quantity::EnergyReductionVsF16, _) => energy_reduction(c, ev),
        (Quantity::JPerToken, p) => j_per_token(c, ev, p.as_ref()),
        (Quantity::RooflineTps, p) => roofline(c, ev, p.as_ref()),
    };
    let verdict = decide(c, &found.values);
    let mut evidence = found.evidence;
    evidence.push(format!(
        "Rule: {} {}, {} value passing.",
        c.quantity.name(),
        c.rule.describe(),
        match c.aggregate {
            Aggregate::Any => "at least one",
            Aggregate::All => "every",
        }
    ));
    Ok(Verdict {
        id: c.id.clone(),
        verdict,
        claimed: c.claimed.clone(),
        measured: measured_text(c.quantity, &found.values),
        evidence: evidence.join(" "),
        needs: found.needs,
        quantity: c.quantity.name(),
        rule: c.rule.describe(),
        values: found.values,
        source: c.source.clone(),
        url: c.url.clone(),
        quote: c.quote.clone(),
        quote_checked: c.quote_checked,
    })
}

/// Verdicts on every claim of `datasets/claims`.
pub fn evaluate_all(ev: &Evidence) -> Result<Vec<Verdict>, ClaimsError> {
    datasets::claims::all()?
        .iter()
        .map(|c| evaluate(c, ev))
        .collect()
}

/// Records of the given results files, and the DRAM bandwidth they recorded (the largest).
pub fn read_results(paths: &[PathBuf], ev: &mut Evidence) -> Result<(), ClaimsError> {
    for p in paths {
        let file = reports::results_file(p)?;
        let records = reports::read_records(&file)?;
        ev.record_sources
            .push(format!("{} ({} records)", file.display(), records.len()));
        ev.records.extend(records);
    }
    if let Some(b) = recorded_bandwidth(&ev.records) {
        ev.bandwidth = Some(b);
    }
    Ok(())
}

/// The largest DRAM read bandwidth the records were measured against.
fn recorded_bandwidth(records: &[Record]) -> Option<MachineBandwidth> {
    let gbps = records
        .iter()
        .filter(|r| r.resident.as_deref() == Some("dram"))
        .filter_map(|r| r.bandwidth_gbps)
        .filter(|g| g.is_finite() && *g > 0.0)
        .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))))?;
    Some(MachineBandwidth {
        gbps,
        how: "DRAM read bandwidth recorded in the given results".into(),
    })
}

/// Verdicts drawn from one machine's records alone (nothing measured), for reports.
pub fn verdicts_for_records(records: &[Record], source: &str) -> Result<Vec<Verdict>, ClaimsError> {
    let ev = Evidence {
        chips: datasets::hardware::chips()?,
        record_sources: vec![format!("{source} ({} records)", records.len())],
        bandwidth: recorded_bandwidth(records),
        records: records.to_vec(),
        ..Evidence::default()
    };
    evaluate_all(&ev)
}

fn threads_or_all(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The quick speed comparison: a small preset in ternary formats and f16, decode timed in
/// rounds (one sample per round), as model records.
fn measure_decode(opts: &Options, ev: &mut Evidence) -> Result<(), ClaimsError> {
    const PRESET: &str = "bitnet-dummy-125m";
    const GENERATE: usize = 16;
    const ROUNDS: usize = 5;
    let preset =
        datasets::presets::find(PRESET)?.ok_or_else(|| ClaimsError::Preset(PRESET.into()))?;
    let threads = threads_or_all(opts.threads);
    let device = format!("{} ({})", cpu_name(), std::env::consts::ARCH);
    let energy = std::sync::Arc::new(
        crate::energy::Session::start(&opts.energy)
            .map_err(|e| ClaimsError::Probe(e.to_string()))?,
    );
    if energy.meter().is_none() {
        ev.notes.push(energy.describe());
    }
    for format in ["tq2_0", "i2_s", "f16"] {
        if opts.progress {
            eprintln!("claims: decode of {PRESET} in {format}, {ROUNDS} rounds ...");
        }
        let path = convert::synth_cached(&opts.cache_dir, PRESET, preset.clone(), format)?;
        let run_opts = RunOptions {
            prompt: 8,
            generate: GENERATE,
            repetitions: 1,
            threads,
            bandwidth: false,
            energy: Some(std::sync::Arc::clone(&energy)),
            ..RunOptions::default()
        };
        let mut samples = Vec::new();
        let mut windows = Vec::new();
        let mut last = None;
        for _ in 0..ROUNDS {
            let r = model_run::run(&path, &run_opts)?;
            samples.push(r.tg_tps);
            windows.extend_from_slice(&r.windows);
            last = Some(r);
        }
        let (Some(last), Some(s)) = (last, Summary::of(&samples)) else {
            continue;
        };
        let mut r = Record::new(RecordKind::Model, &format!("tg{GENERATE}"), format);
        r.run_id = "ternbench-claims".into();
        r.timestamp = crate::suite::timestamp();
        r.suite = "claims".into();
        r.model = Some(PRESET.into());
        r.params = Some(preset.params());
        r.size = Some(last.file_bytes);
        r.device = Some(device.clone());
        r.threads = last.threads as u32;
        r.kernel = Some(last.kernel.clone());
        r.n_prompt = Some(0);
        r.n_gen = Some(GENERATE as u64);
        r.samples = samples;
        r.median = s.median;
        r.mean = s.mean;
        r.stddev = s.stddev;
        r.ci95_lo = Some(s.ci95[0]);
        r.ci95_hi = Some(s.ci95[1]);
        r.tps = Some(s.median);
        let report = energy.report(&windows);
        crate::suite::fill_energy(&mut r, &report, report.decode.as_ref());
        ev.records.push(r);
    }
    ev.record_sources.push(format!(
        "measured here: {PRESET} decode, {ROUNDS} rounds of {GENERATE} tokens per format, {threads} threads (this harness's kernels, not bitnet.cpp's)"
    ));
    Ok(())
}

fn cpu_name() -> String {
    crate::sysinfo::SystemInfo::detect().cpu
}

/// Decode through one full-width layer of the 100B preset, scaled to the whole model by bytes.
fn measure_layer_sample(opts: &Options, ev: &mut Evidence) -> Result<(), ClaimsError> {
    const PRESET: &str = "bitnet-dummy-100b";
    const VOCAB: usize = 256;
    let full =
        datasets::presets::find(PRESET)?.ok_or_else(|| ClaimsError::Preset(PRESET.into()))?;
    let mut sample = full.clone();
    sample.layers = 1;
    sample.vocab = VOCAB;
    sample.name = format!("{PRESET}-1layer");
    // TQ1_0: the densest packed format the model runner takes at these shapes.
    let format = "tq1_0";
    let Ok(f) = kernels::find_format(format) else {
        return Ok(());
    };
    let embed = embedding_format(&full);
    let sample_bytes = model_bytes(&sample, f, embed);
    if sample_bytes.total() > opts.layer_sample_max_bytes {
        ev.notes.push(format!(
            "layer sample skipped: one layer of {PRESET} is {:.2} GB, over the {:.2} GB budget",
            sample_bytes.total() as f64 / 1e9,
            opts.layer_sample_max_bytes as f64 / 1e9
        ));
        return Ok(());
    }
    if opts.progress {
        eprintln!(
            "claims: layer-sampled decode of {PRESET} (1 layer, {:.2} GB in {format}) ...",
            sample_bytes.total() as f64 / 1e9
        );
    }
    let path = convert::synth_cached(
        &opts.cache_dir,
        &format!("{PRESET}-L1-V{VOCAB}"),
        sample,
        format,
    )?;
    let threads = threads_or_all(opts.threads);
    let r = model_run::run(
        &path,
        &RunOptions {
            prompt: 4,
            generate: 8,
            repetitions: 5,
            threads,
            bandwidth: false,
            ..RunOptions::default()
        },
    )?;
    let full_bytes = bytes_per_token(&model_bytes(&full, f, embed));
    let sample_bpt = r.bytes_per_token.max(1);
    ev.layer_sample = Some(LayerSample {
        preset: PRESET.into(),
        format: r.kernel.clone(),
        layers_run: 1,
        vocab_run: VOCAB,
        sample_bytes_per_token: sample_bpt,
        sample_tps: r.tg_tps,
        sample_tps_ci95: r.tg_tps_ci95,
        full_bytes_per_token: full_bytes,
        extrapolated_tps: r.tg_tps * sample_bpt as f64 / full_bytes as f64,
        threads: r.threads,
    });
    Ok(())
}

/// Gather the evidence (results files, or measurements here) and give every claim a verdict.
pub fn run(opts: &Options) -> Result<Vec<Verdict>, ClaimsError> {
    let mut ev = Evidence {
        chips: datasets::hardware::chips()?,
        ..Evidence::default()
    };
    read_results(&opts.results, &mut ev)?;
    if opts.results.is_empty() && opts.measure {
        let threads = threads_or_all(opts.threads);
        if opts.progress {
            eprintln!("claims: DRAM read bandwidth, {threads} threads ...");
        }
        let b = bandwidth::measure(Resident::Dram, threads, 5);
        if b.gbps > 0.0 {
            ev.bandwidth = Some(MachineBandwidth {
                gbps: b.gbps,
                how: format!(
                    "measured here: {} loads, {} threads, {} MiB buffer, median of {} (95% CI {:.1}..{:.1} GB/s)",
                    b.reader,
                    b.threads,
                    b.buffer_bytes >> 20,
                    b.repetitions,
                    b.gbps_ci95[0],
                    b.gbps_ci95[1]
                ),
            });
        }
        measure_decode(opts, &mut ev)?;
        measure_layer_sample(opts, &mut ev)?;
    }
    let mut verdicts = evaluate_all(&ev)?;
    if !ev.notes.is_empty() {
        for v in &mut verdicts {
            if v.quantity == Quantity::RooflineTps.name() {
                v.evidence = format!("{} Note: {}.", v.evidence, ev.notes.join("; "));
            }
        }
    }
    Ok(verdicts)
}

/// The verdicts as a plain-text table, then each claim's evidence.
pub fn table(verdicts: &[Verdict]) -> String {
    let mut s = format!(
        "{:<28} {:<11} {:<44} {}\n",
        "claim", "verdict", "claimed", "measured"
    );
    for v in verdicts {
        let measured: String = if v.measured.chars().count() > 110 {
            v.measured.chars().take(107).collect::<String>() + "..."
        } else {
            v.measured.clone()
        };
        s += &format!(
            "{:<28} {:<11} {:<44} {}\n",
            v.id,
            v.verdict.name(),
            v.claimed,
            measured
        );
    }
    for v in verdicts {
        s += &format!("\n{} [{}]\n", v.id, v.verdict.name());
        s += &format!(
            "  source: {} <{}>\n  claim{}: \"{}\"\n",
            v.source,
            v.url,
            if v.quote_checked { "" } else { " (paraphrase)" },
            v.quote
        );
        s += &format!("  measured: {}\n  evidence: {}\n", v.measured, v.evidence);
        if let Some(n) = &v.needs {
            s += &format!("  needs: {n}\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str) -> Claim {
        datasets::claims::find(id)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{id}"))
    }

    fn decode_record(format: &str, kernel: &str, samples: &[f64]) -> Record {
        let mut r = Record::new(RecordKind::Model, "tg32", format);
        r.params = Some(1_000_000);
        r.threads = 4;
        r.kernel = Some(kernel.into());
        r.samples = samples.to_vec();
        r.median = Summary::of(samples).map_or(0.0, |s| s.median);
        r
    }

    #[test]
    fn tq2_0_block_is_66_bytes_per_256() {
        let v = evaluate(&claim("tq2_0-66-bytes-per-256"), &Evidence::default()).unwrap();
        assert_eq!(v.verdict, Outcome::Confirmed);
        assert_eq!(v.values[0].value, 66.0);
    }

    #[test]
    fn storage_ratio_uses_each_format_bits() {
        let v = evaluate(&claim("b158-storage-10x-bpw"), &Evidence::default()).unwrap();
        let tq1 = v
            .values
            .iter()
            .find(|x| x.label.starts_with("tq1_0"))
            .unwrap();
        assert!((tq1.value - 16.0 / 1.6875).abs() < 1e-9);
        let tq2 = v
            .values
            .iter()
            .find(|x| x.label.starts_with("tq2_0"))
            .unwrap();
        assert!((tq2.value - 16.0 / 2.0625).abs() < 1e-9 && !tq2.passes);
    }

    #[test]
    fn model_bytes_of_2b4t_match_the_parameter_count() {
        let p = datasets::presets::find("bitnet-b1.58-2b-4t")
            .unwrap()
            .unwrap();
        let i2s = kernels::find_format("i2_s").unwrap();
        let m = model_bytes(&p, i2s, embedding_format(&p));
        // 2 bits per linear weight plus a 32-byte tail per tensor; F16 embedding.
        let linear = p.linear_params() / 4 + 7 * 30 * 32;
        assert_eq!(m.linear, linear);
        assert_eq!(m.embedding, (p.vocab * p.hidden * 2) as u64);
        assert!(m.approximate.is_none());
    }

    #[test]
    fn speedup_within_range_confirms_and_below_refutes() {
        let c = claim("bitnet.cpp-x86-speedup");
        let f16 = decode_record("f16", "f16/avx2", &[10.0, 10.2, 9.8, 10.1]);
        let fast = decode_record("tq2_0", "tq2_0/avx2", &[30.0, 30.5, 29.5, 30.2]);
        let ev = Evidence {
            records: vec![f16.clone(), fast],
            ..Evidence::default()
        };
        let v = evaluate(&c, &ev).unwrap();
        assert_eq!(v.verdict, Outcome::Confirmed);
        let ci = v.values[0].ci95.unwrap();
        assert!(ci[0] > 2.8 && ci[1] < 3.2, "{ci:?}");
        let slow = decode_record("tq2_0", "tq2_0/avx2", &[15.0, 15.1, 14.9, 15.0]);
        let ev = Evidence {
            records: vec![f16, slow],
            ..Evidence::default()
        };
        assert_eq!(evaluate(&c, &ev).unwrap().verdict, Outcome::Refuted);
    }

    #[test]
    fn arm_claims_ignore_x86_records() {
        let ev = Evidence {
            records: vec![
                decode_record("f16", "f16/avx2", &[10.0, 10.0]),
                decode_record("tq2_0", "tq2_0/avx2", &[30.0, 30.0]),
            ],
            ..Evidence::default()
        };
        let v = evaluate(&claim("bitnet.cpp-arm-speedup"), &ev).unwrap();
        assert_eq!(v.verdict, Outcome::Untestable);
        assert!(v.needs.unwrap().contains("aarch64"));
    }

    #[test]
    fn estimated_energy_is_untestable() {
        let mut f16 = decode_record("f16", "f16/avx2", &[10.0, 10.0]);
        let mut t = decode_record("tq2_0", "tq2_0/avx2", &[30.0, 30.0]);
        for r in [&mut f16, &mut t] {
            r.energy_measured = Some(false);
            r.energy_probe = Some("estimate:65W".into());
        }
        f16.energy_j_per_token = Some(1.0);
        t.energy_j_per_token = Some(0.2);
        let ev = Evidence {
            records: vec![f16.clone(), t.clone()],
            ..Evidence::default()
        };
        let v = evaluate(&claim("bitnet.cpp-x86-energy"), &ev).unwrap();
        assert_eq!(v.verdict, Outcome::Untestable);
        assert!(v.evidence.contains("ESTIMATE"), "{}", v.evidence);
        // The same numbers measured decide: 80% less energy is inside 71.9..82.2%.
        for r in [&mut f16, &mut t] {
            r.energy_measured = Some(true);
        }
        let ev = Evidence {
            records: vec![f16, t],
            ..Evidence::default()
        };
        let v = evaluate(&claim("bitnet.cpp-x86-energy"), &ev).unwrap();
        assert_eq!(v.verdict, Outcome::Confirmed);
        assert!((v.values[0].value - 0.8).abs() < 1e-12);
    }

    #[test]
    fn roofline_refutes_phones_and_allows_a_desktop() {
        let ev = Evidence {
            chips: datasets::hardware::chips().unwrap(),
            ..Evidence::default()
        };
        let phone = evaluate(&claim("100b-5-7-tps-phone"), &ev).unwrap();
        assert_eq!(phone.verdict, Outcome::Refuted);
        assert!(phone.values.iter().all(|v| v.value < 5.0));
        let cpu = evaluate(&claim("100b-5-7-tps-single-cpu"), &ev).unwrap();
        assert_eq!(cpu.verdict, Outcome::Confirmed);
    }

    #[test]
    fn ratio_interval_brackets_the_ratio() {
        let ci = ratio_ci95(&[6.0, 6.1, 5.9, 6.0], &[2.0, 2.0, 2.05, 1.95]).unwrap();
        assert!(ci[0] <= 3.0 && 3.0 <= ci[1], "{ci:?}");
        assert!(ratio_ci95(&[1.0], &[1.0, 2.0]).is_none());
    }
}
