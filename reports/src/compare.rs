//! `ternbench compare`: two result sets, case by case, with a regression verdict per case.
//!
//! Cases are matched by their identity ([`CaseKey`]: kind, test, model, format, m, k, tokens,
//! threads, resident, backend), never by the kernel variant, which is shown and flagged when it
//! differs. Per case the ratio of medians is oriented so that above 1 always means "candidate
//! slower" (candidate/baseline for nanoseconds, baseline/candidate for tokens per second), with a
//! bootstrap 95% interval from the raw samples. Several records of one case on one side (the runs
//! of an interleaved comparison) are pooled, and their interval comes from a two-stage bootstrap
//! that resamples runs before samples, so run-to-run variance widens it as it should.
//!
//! A case is a regression only when the whole interval lies above `1 + threshold`, an improvement
//! only when it lies below `1 - threshold`; anything else is "no change", or "inconclusive" when a
//! side has fewer than [`MIN_SAMPLES`] samples. Instructions per call, where recorded, are compared
//! beside time and mentioned, never used for the verdict on their own.
//!
//! Interleaved rounds ([`compare_rounds`]) are compared paired: each round's two runs ran back to
//! back, so the case's ratio is the median over rounds of each round's ratio of medians, and its
//! interval comes from resampling rounds. A machine that slows down for a while (a neighbour, a
//! frequency drop) then slows both runs of a round and cancels, where pooling would let it land
//! on whichever side happened to draw more slow runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::ReportError;
use crate::schema::{Record, RecordKind, Unit, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};
use crate::stats::{median, ratio_ci95};
use crate::writer::read_records_recovering;

/// Fewest samples per side for a verdict; below it a bootstrap interval means little.
pub const MIN_SAMPLES: usize = 5;

/// Oldest schema version whose identity fields, `unit` and `samples` mean what they mean now;
/// raise it with [`SCHEMA_VERSION`] when one of those changes meaning, so old files are refused.
pub const COMPARABLE_SINCE: u32 = OLDEST_SCHEMA_VERSION;

/// The regression threshold used when none is given: 5%.
pub const DEFAULT_THRESHOLD: f64 = 0.05;

/// Fewest paired rounds for the paired (interleaved) ratio; with fewer, sides are pooled unpaired.
pub const MIN_ROUNDS: usize = 3;

/// Bootstrap resamples of the two-stage interval, as many as the single-stage one uses.
const RESAMPLES: usize = 2000;

/// Why two result sets cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A results file could not be read or parsed (including a newer schema version).
    #[error(transparent)]
    Read(#[from] ReportError),
    /// A side holds no records at all.
    #[error("the {0} results hold no records")]
    Empty(&'static str),
    /// A record's schema version is outside the comparable ones.
    #[error("the {side} results hold schema_version {found}, whose fields do not mean what this build's do (comparable: {oldest}..={newest})")]
    Schema {
        /// `baseline` or `candidate`.
        side: &'static str,
        /// The version found.
        found: u32,
        /// [`COMPARABLE_SINCE`].
        oldest: u32,
        /// [`SCHEMA_VERSION`].
        newest: u32,
    },
    /// The same case is measured in different units on the two sides.
    #[error("{case}: the baseline is in {baseline} and the candidate in {candidate}")]
    UnitMismatch {
        /// The case.
        case: String,
        /// Baseline unit.
        baseline: &'static str,
        /// Candidate unit.
        candidate: &'static str,
    },
    /// No case appears on both sides.
    #[error("the two result sets have no case in common ({baseline} baseline cases, {candidate} candidate cases); were they made by the same suite and options?")]
    NothingInCommon {
        /// Distinct baseline cases.
        baseline: usize,
        /// Distinct candidate cases.
        candidate: usize,
    },
    /// The threshold is not a fraction in [0, 1).
    #[error("threshold {0} is not a fraction in [0, 1)")]
    Threshold(f64),
}

/// What identifies a case across runs; the kernel variant is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CaseKey {
    /// `kernel` or `model`.
    pub kind: String,
    /// `gemv`, `gemm64`, `pp64`, `tg32`.
    pub test: String,
    /// Model file or preset (model tests).
    pub model: Option<String>,
    /// Weight format.
    pub format: String,
    /// Kernel rows.
    pub m: Option<u64>,
    /// Kernel reduction length.
    pub k: Option<u64>,
    /// Kernel activation columns.
    pub tokens: Option<u64>,
    /// Worker threads.
    pub threads: u32,
    /// `cache` or `dram`.
    pub resident: Option<String>,
    /// Backend.
    pub backend: String,
}

impl CaseKey {
    /// The identity of `record`.
    pub fn of(record: &Record) -> CaseKey {
        CaseKey {
            kind: match record.kind {
                RecordKind::Kernel => "kernel",
                RecordKind::Model => "model",
            }
            .to_owned(),
            test: record.test.clone(),
            model: record.model.clone(),
            format: record.format.clone(),
            m: record.m,
            k: record.k,
            tokens: record.tokens,
            threads: record.threads,
            resident: record.resident.clone(),
            backend: record.backend.clone(),
        }
    }

    /// A short human label: `tq2_0 gemv 2048x2048 t1 cache` or `2b4t tq2_0 tg32 t2`.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if let Some(model) = &self.model {
            let _ = write!(s, "{model} ");
        }
        let _ = write!(s, "{} {}", self.format, self.test);
        if let (Some(m), Some(k)) = (self.m, self.k) {
            let _ = write!(s, " {m}x{k}");
        }
        let _ = write!(s, " t{}", self.threads);
        if let Some(r) = &self.resident {
            let _ = write!(s, " {r}");
        }
        if self.backend != "cpu" {
            let _ = write!(s, " {}", self.backend);
        }
        s
    }
}

/// The outcome for one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval lies above `1 + threshold`: the candidate is slower.
    Regression,
    /// The whole interval lies below `1 - threshold`: the candidate is faster.
    Improvement,
    /// The interval reaches into `[1 - threshold, 1 + threshold]`.
    NoChange,
    /// Too few samples on a side for an interval.
    Inconclusive,
    /// Measured in the baseline only.
    BaselineOnly,
    /// Measured in the candidate only.
    CandidateOnly,
}

impl Verdict {
    /// The verdict as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "REGRESSION",
            Verdict::Improvement => "improvement",
            Verdict::NoChange => "no change",
            Verdict::Inconclusive => "inconclusive",
            Verdict::BaselineOnly => "baseline only",
            Verdict::CandidateOnly => "candidate only",
        }
    }
}

/// One case of a comparison; the `--json` output is an array of these.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseComparison {
    /// Human label of the case.
    pub case: String,
    /// The identity the sides were matched by.
    pub key: CaseKey,
    /// `ns` or `t/s`.
    pub unit: &'static str,
    /// Median of the pooled baseline samples.
    pub baseline_median: Option<f64>,
    /// Median of the pooled candidate samples.
    pub candidate_median: Option<f64>,
    /// Baseline samples pooled.
    pub baseline_samples: usize,
    /// Candidate samples pooled.
    pub candidate_samples: usize,
    /// Baseline records (runs) pooled.
    pub baseline_runs: usize,
    /// Candidate records (runs) pooled.
    pub candidate_runs: usize,
    /// Ratio of medians; above 1 means the candidate is slower, whatever the unit.
    pub ratio: Option<f64>,
    /// Bootstrap 95% interval of `ratio`.
    pub ci95: Option<[f64; 2]>,
    /// Interleaved rounds behind a paired ratio; 0 when the sides were pooled unpaired.
    pub paired_rounds: usize,
    /// What the interval says against the threshold.
    pub verdict: Verdict,
    /// Kernel variant(s) of the baseline, `,`-joined.
    pub baseline_kernel: Option<String>,
    /// Kernel variant(s) of the candidate, `,`-joined.
    pub candidate_kernel: Option<String>,
    /// The sides ran different kernel variants.
    pub kernel_differs: bool,
    /// Median instructions per call (or token) of the baseline, where recorded.
    pub baseline_instructions: Option<f64>,
    /// Median instructions per call (or token) of the candidate, where recorded.
    pub candidate_instructions: Option<f64>,
    /// Candidate over baseline instructions: a low-noise companion, not part of the verdict.
    pub instructions_ratio: Option<f64>,
    /// Remarks: a kernel change, an instruction-count change, why a case is inconclusive.
    pub notes: Vec<String>,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Relative threshold, a fraction (0.05 = 5%).
    pub threshold: f64,
    /// Every case of either side, in key order.
    pub cases: Vec<CaseComparison>,
    /// Warnings met while reading (a skipped incomplete line); the caller fills them in.
    pub warnings: Vec<String>,
}

/// Reads a results file, or `results.jsonl` (else `results.csv`) in a directory. An incomplete
/// last line (an interrupted run) is skipped and reported in the returned warning.
pub fn load_results(path: &Path) -> Result<(Vec<Record>, Option<String>), CompareError> {
    let recovered = read_records_recovering(&crate::writer::results_file(path)?)?;
    Ok((recovered.records, recovered.warning))
}

type Cases<'a> = BTreeMap<CaseKey, Vec<&'a Record>>;

// The records of one side, grouped by case.
fn group<'a>(records: &'a [Record], side: &'static str) -> Result<Cases<'a>, CompareError> {
    if records.is_empty() {
        return Err(CompareError::Empty(side));
    }
    let mut cases = Cases::new();
    for r in records {
        if r.schema_version < COMPARABLE_SINCE || r.schema_version > SCHEMA_VERSION {
            return Err(CompareError::Schema {
                side,
                found: r.schema_version,
                oldest: COMPARABLE_SINCE,
                newest: SCHEMA_VERSION,
            });
        }
        cases.entry(CaseKey::of(r)).or_default().push(r);
    }
    Ok(cases)
}

/// Compares `candidate` against `baseline`. `threshold` is a fraction (0.05 for 5%).
pub fn compare(
    baseline: &[Record],
    candidate: &[Record],
    threshold: f64,
) -> Result<Comparison, CompareError> {
    compare_paired(baseline, candidate, threshold, &BTreeMap::new())
}

/// Compares interleaved rounds, each `(baseline records, candidate records)` of one round, paired
/// by round (see the module documentation). `threshold` is a fraction.
pub fn compare_rounds(
    rounds: &[(Vec<Record>, Vec<Record>)],
    threshold: f64,
) -> Result<Comparison, CompareError> {
    let mut paired: BTreeMap<CaseKey, Vec<f64>> = BTreeMap::new();
    for (base, cand) in rounds {
        let (Ok(b), Ok(c)) = (group(base, "baseline"), group(cand, "candidate")) else {
            continue; // an empty round pairs nothing; compare_paired reports empty sides
        };
        for (key, b) in &b {
            let Some(c) = c.get(key) else { continue };
            let Ok(unit) = case_unit(key, b, c) else {
                continue; // compare_paired reports the mismatch
            };
            let pooled = |rs: &[&Record]| -> Vec<f64> { sample_groups(rs).concat() };
            let (bm, cm) = (median(&pooled(b)), median(&pooled(c)));
            let ratio = match (unit, bm, cm) {
                (Unit::Nanoseconds, Some(b), Some(c)) if b > 0.0 => Some(c / b),
                (Unit::TokensPerSecond, Some(b), Some(c)) if c > 0.0 => Some(b / c),
                _ => None,
            };
            if let Some(r) = ratio {
                paired.entry(key.clone()).or_default().push(r);
            }
        }
    }
    let all = |second: bool| -> Vec<Record> {
        rounds
            .iter()
            .flat_map(|(b, c)| if second { c } else { b })
            .cloned()
            .collect()
    };
    compare_paired(&all(false), &all(true), threshold, &paired)
}

fn compare_paired(
    baseline: &[Record],
    candidate: &[Record],
    threshold: f64,
    paired: &BTreeMap<CaseKey, Vec<f64>>,
) -> Result<Comparison, CompareError> {
    if !(0.0..1.0).contains(&threshold) {
        return Err(CompareError::Threshold(threshold));
    }
    let base = group(baseline, "baseline")?;
    let cand = group(candidate, "candidate")?;
    if !base.keys().any(|k| cand.contains_key(k)) {
        return Err(CompareError::NothingInCommon {
            baseline: base.len(),
            candidate: cand.len(),
        });
    }
    let mut keys: Vec<&CaseKey> = base.keys().chain(cand.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut cases = Vec::with_capacity(keys.len());
    for key in keys {
        let b = base.get(key).map(Vec::as_slice).unwrap_or_default();
        let c = cand.get(key).map(Vec::as_slice).unwrap_or_default();
        let rounds = paired
            .get(key)
            .map(Vec::as_slice)
            .filter(|r| r.len() >= MIN_ROUNDS);
        cases.push(compare_case(key, b, c, threshold, rounds)?);
    }
    Ok(Comparison {
        threshold,
        cases,
        warnings: Vec::new(),
    })
}

fn kernels_of(records: &[&Record]) -> Option<String> {
    let mut names: Vec<&str> = records.iter().filter_map(|r| r.kernel.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    (!names.is_empty()).then(|| names.join(","))
}

fn instructions_of(records: &[&Record]) -> Option<f64> {
    let values: Vec<f64> = records.iter().filter_map(|r| r.instructions).collect();
    median(&values)
}

// Per record, its samples; a record without raw samples (a summary-only file) offers its median
// as a single sample, so it still shows but can never reach MIN_SAMPLES alone.
fn sample_groups(records: &[&Record]) -> Vec<Vec<f64>> {
    records
        .iter()
        .map(|r| {
            let s: Vec<f64> = r
                .samples
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if s.is_empty() && r.median.is_finite() && r.median > 0.0 {
                vec![r.median]
            } else {
                s
            }
        })
        .filter(|s| !s.is_empty())
        .collect()
}

// The one unit of a case across both sides, or the mismatch as an error.
fn case_unit(key: &CaseKey, base: &[&Record], cand: &[&Record]) -> Result<Unit, CompareError> {
    let mut all = base.iter().chain(cand);
    let Some(first) = all.next() else {
        return Ok(Unit::Nanoseconds);
    };
    match all.find(|r| r.unit != first.unit) {
        Some(other) => Err(CompareError::UnitMismatch {
            case: key.label(),
            baseline: first.unit.as_str(),
            candidate: other.unit.as_str(),
        }),
        None => Ok(first.unit),
    }
}

fn compare_case(
    key: &CaseKey,
    base: &[&Record],
    cand: &[&Record],
    threshold: f64,
    rounds: Option<&[f64]>,
) -> Result<CaseComparison, CompareError> {
    let unit = case_unit(key, base, cand)?;
    let bg = sample_groups(base);
    let cg = sample_groups(cand);
    let pooled = |g: &[Vec<f64>]| -> Vec<f64> { g.iter().flatten().copied().collect() };
    let (bp, cp) = (pooled(&bg), pooled(&cg));
    let (bm, cm) = (median(&bp), median(&cp));
    let (bk, ck) = (kernels_of(base), kernels_of(cand));
    let kernel_differs = !base.is_empty() && !cand.is_empty() && bk != ck;
    let (bi, ci) = (instructions_of(base), instructions_of(cand));
    let instructions_ratio = match (bi, ci) {
        (Some(b), Some(c)) if b > 0.0 => Some(c / b),
        _ => None,
    };
    let mut notes = Vec::new();
    if kernel_differs {
        notes.push(format!(
            "kernel differs: {} -> {}",
            bk.as_deref().unwrap_or("?"),
            ck.as_deref().unwrap_or("?")
        ));
    }
    // A planted slowdown (a gate's test hook) must never pass unnoticed, whatever the verdict.
    for (side, records) in [("baseline", base), ("candidate", cand)] {
        let mut planted: Vec<&str> = records
            .iter()
            .flat_map(|r| r.warnings.iter())
            .filter(|w| w.contains("PLANTED_SLOWDOWN"))
            .map(String::as_str)
            .collect();
        planted.sort_unstable();
        planted.dedup();
        notes.extend(planted.iter().map(|w| format!("{side}: {w}")));
    }
    // Time is slower when ns grow and when t/s shrink: orient the ratio so > 1 is slower.
    let (num, den) = match unit {
        Unit::Nanoseconds => (&cg, &bg),
        Unit::TokensPerSecond => (&bg, &cg),
    };
    let ratio = match (rounds, median(&pooled(num)), median(&pooled(den))) {
        (Some(r), _, _) => median(r),
        (None, Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    };
    let interval = || match rounds {
        Some(r) => median_ci95(r),
        None => grouped_ratio_ci95(num, den),
    };
    let mut ci95 = None;
    let verdict = if base.is_empty() {
        Verdict::CandidateOnly
    } else if cand.is_empty() {
        Verdict::BaselineOnly
    } else if bp.len() < MIN_SAMPLES || cp.len() < MIN_SAMPLES {
        notes.push(format!(
            "inconclusive: {} baseline and {} candidate samples, at least {MIN_SAMPLES} each are needed",
            bp.len(),
            cp.len()
        ));
        Verdict::Inconclusive
    } else if let Some((lo, hi)) = interval() {
        ci95 = Some([lo, hi]);
        if lo > 1.0 + threshold {
            Verdict::Regression
        } else if hi < 1.0 - threshold {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        }
    } else {
        notes.push("inconclusive: no bootstrap interval (non-positive medians)".to_owned());
        Verdict::Inconclusive
    };
    if let Some(ir) = instructions_ratio {
        if (ir - 1.0).abs() > threshold {
            let conflict = match verdict {
                Verdict::NoChange => "; time shows no change beyond the threshold",
                _ => "",
            };
            notes.push(format!(
                "instructions per call {:+.1}%{conflict} (not used for the verdict)",
                (ir - 1.0) * 100.0
            ));
        }
    }
    Ok(CaseComparison {
        case: key.label(),
        key: key.clone(),
        unit: unit.as_str(),
        baseline_median: bm,
        candidate_median: cm,
        baseline_samples: bp.len(),
        candidate_samples: cp.len(),
        baseline_runs: base.len(),
        candidate_runs: cand.len(),
        ratio,
        ci95,
        paired_rounds: rounds.map_or(0, <[f64]>::len),
        verdict,
        baseline_kernel: bk,
        candidate_kernel: ck,
        kernel_differs,
        baseline_instructions: bi,
        candidate_instructions: ci,
        instructions_ratio,
        notes,
    })
}

/// 95% interval of `median(pooled num) / median(pooled den)`. One run a side is the plain
/// bootstrap of the report's ratio interval; with several runs a side, each resample first draws
/// runs with replacement and then samples within each drawn run (a two-stage, cluster
/// bootstrap), so the spread between processes (layout, frequency, neighbours) is part of it.
pub fn grouped_ratio_ci95(num: &[Vec<f64>], den: &[Vec<f64>]) -> Option<(f64, f64)> {
    if let ([a], [b]) = (num, den) {
        return ratio_ci95(a, b);
    }
    let total = |g: &[Vec<f64>]| g.iter().map(Vec::len).sum::<usize>();
    if num.is_empty() || den.is_empty() || total(num) < 2 || total(den) < 2 {
        return None;
    }
    let mut rng = SplitMix(0x243F_6A88_85A3_08D3);
    let mut buf_n = Vec::with_capacity(total(num));
    let mut buf_d = Vec::with_capacity(total(den));
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        rng.two_stage(num, &mut buf_n);
        rng.two_stage(den, &mut buf_d);
        if let (Some(n), Some(d)) = (median(&buf_n), median(&buf_d)) {
            if d > 0.0 {
                ratios.push(n / d);
            }
        }
    }
    if ratios.len() < RESAMPLES / 2 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

/// Percentile bootstrap 95% interval of the median of `values` (per-round ratios).
fn median_ci95(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let mut rng = SplitMix(0x1319_8A2E_0370_7344);
    let mut buf = Vec::with_capacity(values.len());
    let mut medians = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        buf.clear();
        buf.extend((0..values.len()).map(|_| values[rng.below(values.len())]));
        medians.extend(median(&buf));
    }
    medians.sort_by(f64::total_cmp);
    let at = |q: f64| medians[((medians.len() - 1) as f64 * q).round() as usize];
    (!medians.is_empty()).then(|| (at(0.025), at(0.975)))
}

// SplitMix64: deterministic, so the same files always give the same verdict.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }

    // Draws runs with replacement, then each drawn run's samples with replacement, into `out`.
    fn two_stage(&mut self, groups: &[Vec<f64>], out: &mut Vec<f64>) {
        out.clear();
        for _ in 0..groups.len() {
            let g = &groups[self.below(groups.len())];
            for _ in 0..g.len() {
                out.push(g[self.below(g.len())]);
            }
        }
    }
}

impl Comparison {
    /// Whether any case is a regression.
    pub fn has_regression(&self) -> bool {
        self.cases.iter().any(|c| c.verdict == Verdict::Regression)
    }

    /// 0 without a regression, 1 with one (2 is left for errors).
    pub fn exit_code(&self) -> i32 {
        i32::from(self.has_regression())
    }

    fn count(&self, v: Verdict) -> usize {
        self.cases.iter().filter(|c| c.verdict == v).count()
    }

    /// One line: how many cases of each verdict.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!(
            "{} regression(s), {} improvement(s), {} no change, {} inconclusive",
            self.count(Verdict::Regression),
            self.count(Verdict::Improvement),
            self.count(Verdict::NoChange),
            self.count(Verdict::Inconclusive)
        )];
        for v in [Verdict::BaselineOnly, Verdict::CandidateOnly] {
            let n = self.count(v);
            if n > 0 {
                parts.push(format!("{n} {}", v.as_str()));
            }
        }
        let rounds = self
            .cases
            .iter()
            .map(|c| c.paired_rounds)
            .max()
            .unwrap_or(0);
        let method = if rounds > 0 {
            format!("median of per-round ratios over {rounds} interleaved rounds, ")
        } else {
            String::new()
        };
        format!(
            "{} (threshold {:.1}%, {method}95% bootstrap intervals; ratio > 1 means the candidate is slower)",
            parts.join(", "),
            self.threshold * 100.0
        )
    }

    /// A plain text table, one line per case, then notes and the summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<40} {:>12} {:>12} {:>24} {:>8} {:<14} kernel",
            "case", "baseline", "candidate", "ratio [95% CI]", "instr", "verdict"
        );
        for c in &self.cases {
            let _ = writeln!(
                s,
                "{:<40} {:>12} {:>12} {:>24} {:>8} {:<14} {}",
                c.case,
                fmt_value(c.baseline_median, c.unit),
                fmt_value(c.candidate_median, c.unit),
                fmt_ratio(c),
                fmt_instructions(c),
                c.verdict.as_str(),
                fmt_kernel(c)
            );
        }
        for c in &self.cases {
            for n in &c.notes {
                let _ = writeln!(s, "note: {}: {n}", c.case);
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(s, "{}", self.summary());
        s
    }

    /// A Markdown table for a pull-request comment.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let headline = if self.has_regression() {
            ":x: **Performance regression**"
        } else {
            ":white_check_mark: **No performance regression**"
        };
        let _ = writeln!(s, "### ternbench compare: {headline}\n");
        let _ = writeln!(
            s,
            "| case | baseline median | candidate median | ratio [95% CI] | instructions | verdict | kernel |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---|---|");
        for c in &self.cases {
            let verdict = match c.verdict {
                Verdict::Regression => "**REGRESSION**".to_owned(),
                v => v.as_str().to_owned(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                md_escape(&c.case),
                fmt_value(c.baseline_median, c.unit),
                fmt_value(c.candidate_median, c.unit),
                fmt_ratio(c),
                fmt_instructions(c),
                verdict,
                md_escape(&fmt_kernel(c))
            );
        }
        let notes: Vec<String> = self
            .cases
            .iter()
            .flat_map(|c| {
                c.notes
                    .iter()
                    .map(move |n| format!("- {}: {}", md_escape(&c.case), md_escape(n)))
            })
            .chain(
                self.warnings
                    .iter()
                    .map(|w| format!("- warning: {}", md_escape(w))),
            )
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(s, "\n{}", notes.join("\n"));
        }
        let _ = writeln!(s, "\n{}", self.summary());
        s
    }
}

fn fmt_value(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if unit == "ns" && v >= 1e6 => format!("{:.3} ms", v / 1e6),
        Some(v) if unit == "ns" && v >= 1e3 => format!("{:.2} us", v / 1e3),
        Some(v) => format!("{v:.2} {unit}"),
    }
}

fn fmt_ratio(c: &CaseComparison) -> String {
    match (c.ratio, c.ci95) {
        (Some(r), Some([lo, hi])) => format!("{r:.3} [{lo:.3}, {hi:.3}]"),
        (Some(r), None) => format!("{r:.3} [-]"),
        _ => "-".to_owned(),
    }
}

fn fmt_instructions(c: &CaseComparison) -> String {
    c.instructions_ratio
        .map_or("-".to_owned(), |r| format!("{r:.3}x"))
}

fn fmt_kernel(c: &CaseComparison) -> String {
    match (&c.baseline_kernel, &c.candidate_kernel) {
        (Some(b), Some(k)) if c.kernel_differs => format!("{b} -> {k} (differs)"),
        (Some(b), _) => b.clone(),
        (None, Some(k)) => k.clone(),
        (None, None) => "-".to_owned(),
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Deterministic noisy samples around `center` with relative spread `cv` (uniform noise).
    fn noisy(center: f64, cv: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix(seed);
        (0..n)
            .map(|_| {
                let u = rng.below(1_000_001) as f64 / 1_000_000.0 * 2.0 - 1.0;
                center * (1.0 + cv * 3f64.sqrt() * u)
            })
            .collect()
    }

    fn kernel(m: u64, samples: Vec<f64>) -> Record {
        let mut r = Record::new(RecordKind::Kernel, "gemv", "tq2_0");
        r.m = Some(m);
        r.k = Some(2048);
        r.tokens = Some(1);
        r.resident = Some("cache".to_owned());
        r.kernel = Some("tq2_0/avx2".to_owned());
        r.median = median(&samples).unwrap_or(0.0);
        r.samples = samples;
        r
    }

    fn model(samples: Vec<f64>) -> Record {
        let mut r = Record::new(RecordKind::Model, "tg32", "tq2_0");
        r.model = Some("bitnet-b1.58-2b-4t".to_owned());
        r.median = median(&samples).unwrap_or(0.0);
        r.samples = samples;
        r
    }

    fn only(c: &Comparison) -> &CaseComparison {
        assert_eq!(c.cases.len(), 1, "{c:?}");
        &c.cases[0]
    }

    #[test]
    fn planted_20_percent_slowdown_is_a_regression() {
        let base = [kernel(2048, noisy(100_000.0, 0.05, 50, 1))];
        let cand = [kernel(2048, noisy(120_000.0, 0.05, 50, 2))];
        let c = compare(&base, &cand, DEFAULT_THRESHOLD).unwrap();
        let case = only(&c);
        assert_eq!(case.verdict, Verdict::Regression);
        let [lo, hi] = case.ci95.unwrap();
        let ratio = case.ratio.unwrap();
        assert!(lo > 1.05 && lo <= ratio && ratio <= hi, "{lo} {ratio} {hi}");
        assert!((ratio - 1.2).abs() < 0.05, "{ratio}");
        assert_eq!(c.exit_code(), 1);
        assert!(c.to_markdown().contains("**REGRESSION**"));
    }

    #[test]
    fn identical_distributions_are_not_flagged() {
        for seed in 0..20 {
            let base = [kernel(2048, noisy(100_000.0, 0.10, 30, seed))];
            let cand = [kernel(2048, noisy(100_000.0, 0.10, 30, seed + 1000))];
            let c = compare(&base, &cand, DEFAULT_THRESHOLD).unwrap();
            assert_eq!(only(&c).verdict, Verdict::NoChange, "seed {seed}: {c:?}");
            assert_eq!(c.exit_code(), 0);
        }
    }

    #[test]
    fn three_percent_change_is_below_a_five_percent_threshold() {
        // Many low-noise samples: the interval excludes 1 but not 1.05.
        let base = [kernel(2048, noisy(100_000.0, 0.01, 200, 3))];
        let cand = [kernel(2048, noisy(103_000.0, 0.01, 200, 4))];
        let c = compare(&base, &cand, 0.05).unwrap();
        let case = only(&c);
        let [lo, hi] = case.ci95.unwrap();
        assert!(lo > 1.0 && hi < 1.05, "{lo} {hi}");
        assert_eq!(case.verdict, Verdict::NoChange);
        // The same data against a 1% threshold is a regression: the threshold is what decided.
        let strict = compare(&base, &cand, 0.01).unwrap();
        assert_eq!(only(&strict).verdict, Verdict::Regression);
    }

    #[test]
    fn improvement_needs_the_whole_interval_below() {
        let base = [kernel(2048, noisy(100_000.0, 0.03, 40, 5))];
        let cand = [kernel(2048, noisy(70_000.0, 0.03, 40, 6))];
        let c = compare(&base, &cand, 0.05).unwrap();
        assert_eq!(only(&c).verdict, Verdict::Improvement);
        assert_eq!(c.exit_code(), 0);
    }

    #[test]
    fn tokens_per_second_direction() {
        // Fewer tokens per second is slower: the ratio is baseline / candidate.
        let slower = compare(
            &[model(noisy(50.0, 0.03, 20, 7))],
            &[model(noisy(40.0, 0.03, 20, 8))],
            0.05,
        )
        .unwrap();
        let case = only(&slower);
        assert_eq!(case.unit, "t/s");
        assert!((case.ratio.unwrap() - 1.25).abs() < 0.05, "{case:?}");
        assert_eq!(case.verdict, Verdict::Regression);
        let faster = compare(
            &[model(noisy(40.0, 0.03, 20, 9))],
            &[model(noisy(50.0, 0.03, 20, 10))],
            0.05,
        )
        .unwrap();
        assert_eq!(only(&faster).verdict, Verdict::Improvement);
    }

    #[test]
    fn one_sided_cases_are_listed() {
        let base = [
            kernel(2048, noisy(100.0, 0.02, 20, 11)),
            kernel(640, noisy(30.0, 0.02, 20, 12)),
        ];
        let cand = [
            kernel(2048, noisy(100.0, 0.02, 20, 13)),
            kernel(6912, noisy(300.0, 0.02, 20, 14)),
        ];
        let c = compare(&base, &cand, 0.05).unwrap();
        let verdicts: Vec<(Option<u64>, Verdict)> =
            c.cases.iter().map(|x| (x.key.m, x.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                (Some(640), Verdict::BaselineOnly),
                (Some(2048), Verdict::NoChange),
                (Some(6912), Verdict::CandidateOnly),
            ]
        );
        let text = c.to_text();
        assert!(
            text.contains("baseline only") && text.contains("candidate only"),
            "{text}"
        );
        assert_eq!(c.exit_code(), 0);
    }

    #[test]
    fn too_few_samples_are_inconclusive() {
        let base = [kernel(2048, vec![100.0, 101.0, 99.0])];
        let cand = [kernel(2048, vec![150.0, 151.0, 149.0])];
        let case = compare(&base, &cand, 0.05).unwrap().cases.remove(0);
        assert_eq!(case.verdict, Verdict::Inconclusive);
        assert!(
            case.notes.iter().any(|n| n.contains("at least 5")),
            "{case:?}"
        );
    }

    #[test]
    fn kernel_variant_is_not_identity_but_is_flagged() {
        let base = [kernel(2048, noisy(100.0, 0.02, 20, 15))];
        let mut cand = [kernel(2048, noisy(100.0, 0.02, 20, 16))];
        cand[0].kernel = Some("tq2_0/scalar".to_owned());
        let case = compare(&base, &cand, 0.05).unwrap().cases.remove(0);
        assert!(case.kernel_differs);
        assert!(case.notes[0].contains("tq2_0/avx2 -> tq2_0/scalar"));
    }

    #[test]
    fn instruction_counts_are_compared_but_do_not_decide() {
        let mut base = [kernel(2048, noisy(100.0, 0.02, 30, 17))];
        let mut cand = [kernel(2048, noisy(100.0, 0.02, 30, 18))];
        base[0].instructions = Some(1.0e6);
        cand[0].instructions = Some(1.3e6);
        let case = compare(&base, &cand, 0.05).unwrap().cases.remove(0);
        assert_eq!(case.instructions_ratio, Some(1.3));
        assert_eq!(case.verdict, Verdict::NoChange);
        assert!(case.notes.iter().any(|n| n.contains("+30.0%")), "{case:?}");
    }

    #[test]
    fn several_runs_pool_with_run_to_run_spread_in_the_interval() {
        // Runs whose levels differ by +-8%: resampling the pool as iid would claim a tight interval.
        let runs = |center: f64, seed: u64| -> Vec<Record> {
            (0..6)
                .map(|i| {
                    let level = center * (1.0 + if i % 2 == 0 { 0.08 } else { -0.08 });
                    kernel(2048, noisy(level, 0.01, 50, seed + i))
                })
                .collect()
        };
        let (base, cand) = (runs(100.0, 100), runs(100.0, 200));
        let c = compare(&base, &cand, 0.05).unwrap();
        let case = only(&c);
        assert_eq!((case.baseline_runs, case.baseline_samples), (6, 300));
        assert_eq!(case.verdict, Verdict::NoChange);
        let [lo, hi] = case.ci95.unwrap();
        let pool =
            |rs: &[Record]| -> Vec<f64> { rs.iter().flat_map(|r| r.samples.clone()).collect() };
        let iid = ratio_ci95(&pool(&cand), &pool(&base)).unwrap();
        assert!(hi - lo > iid.1 - iid.0, "{lo} {hi} vs {iid:?}");
    }

    #[test]
    fn interleaved_rounds_are_paired_so_shared_slowdowns_cancel() {
        // 20 rounds; in 8 the machine is twice as slow for both runs, in 3 for one run only.
        let rounds = |slowdown: f64| -> Vec<(Vec<Record>, Vec<Record>)> {
            (0..20u64)
                .map(|i| {
                    let (b_load, c_load) = match i {
                        0..=7 => (2.0, 2.0),
                        8 | 9 => (1.0, 2.0),
                        10 => (2.0, 1.0),
                        _ => (1.0, 1.0),
                    };
                    let b = kernel(2048, noisy(100.0 * b_load, 0.02, 40, i));
                    let c = kernel(2048, noisy(100.0 * c_load * slowdown, 0.02, 40, i + 50));
                    (vec![b], vec![c])
                })
                .collect()
        };
        let slow = compare_rounds(&rounds(1.2), 0.10).unwrap();
        let case = only(&slow);
        assert_eq!(
            (case.paired_rounds, case.verdict),
            (20, Verdict::Regression)
        );
        assert!((case.ratio.unwrap() - 1.2).abs() < 0.02, "{case:?}");
        let same = compare_rounds(&rounds(1.0), 0.10).unwrap();
        let case = only(&same);
        assert_eq!(case.verdict, Verdict::NoChange, "{case:?}");
        assert!((case.ratio.unwrap() - 1.0).abs() < 0.02, "{case:?}");
        // Pooled unpaired, the one-sided slow runs pull the null ratio far from 1.
        let (b, c): (Vec<Vec<Record>>, Vec<Vec<Record>>) = rounds(1.0).into_iter().unzip();
        let pooled = compare(&b.concat(), &c.concat(), 0.10).unwrap();
        assert!(only(&pooled).ratio.unwrap() > 1.3, "{pooled:?}");
        assert!(same.summary().contains("20 interleaved rounds"));
    }

    #[test]
    fn incompatible_inputs_are_errors() {
        let a = [kernel(2048, noisy(100.0, 0.02, 20, 19))];
        let b = [kernel(640, noisy(100.0, 0.02, 20, 20))];
        assert!(matches!(
            compare(&a, &b, 0.05),
            Err(CompareError::NothingInCommon {
                baseline: 1,
                candidate: 1
            })
        ));
        assert!(matches!(
            compare(&[], &a, 0.05),
            Err(CompareError::Empty("baseline"))
        ));
        let mut old = a.clone();
        old[0].schema_version = 0;
        assert!(matches!(
            compare(&a, &old, 0.05),
            Err(CompareError::Schema {
                side: "candidate",
                ..
            })
        ));
        let mut tps = a.clone();
        tps[0].unit = Unit::TokensPerSecond;
        assert!(matches!(
            compare(&a, &tps, 0.05),
            Err(CompareError::UnitMismatch { .. })
        ));
        assert!(matches!(
            compare(&a, &a, 1.5),
            Err(CompareError::Threshold(_))
        ));
    }

    #[test]
    fn files_and_directories_load_and_newer_schemas_are_refused() {
        let dir = std::env::temp_dir().join(format!("ternbench-compare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = crate::ResultWriter::create(&dir).unwrap();
        w.append(&kernel(2048, noisy(100.0, 0.02, 20, 21))).unwrap();
        drop(w);
        let (from_dir, warning) = load_results(&dir).unwrap();
        let (from_csv, _) = load_results(&dir.join("results.csv")).unwrap();
        assert_eq!((from_dir.len(), from_csv.len(), warning), (1, 1, None));
        assert_eq!(from_dir[0].samples, from_csv[0].samples);
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            load_results(&empty),
            Err(CompareError::Read(ReportError::NoResults(_)))
        ));
        let newer = dir.join("newer.jsonl");
        let line = std::fs::read_to_string(dir.join("results.jsonl"))
            .unwrap()
            .replace(
                &format!("\"schema_version\":{SCHEMA_VERSION}"),
                "\"schema_version\":99",
            );
        std::fs::write(&newer, line).unwrap();
        assert!(matches!(
            load_results(&newer),
            Err(CompareError::Read(ReportError::SchemaTooNew {
                found: 99,
                ..
            }))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
