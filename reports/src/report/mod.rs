//! `report.md`, a self-contained `report.html` and the chart files, from a slice of records.
//!
//! Both documents are rendered from one list of [`Block`]s, so the Markdown and the HTML
//! always carry the same tables and numbers.

mod charts;
mod doc;
mod machines;
mod raster;

pub use machines::{merge, render_machines, ClaimRow, Machine, Merged};

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ReportError;
use crate::schema::{Record, RecordKind, Unit};
use crate::stats;
use charts::{Bar, Body, Chart, Grouped, HLine, Point, Scatter, Series};
use doc::{Block, Table};

/// The baselines every ternary model result is compared with.
const BASELINES: [&str; 2] = ["f16", "q4_0"];

/// Display order of formats: ternary first, then the baselines.
const FORMAT_ORDER: [&str; 10] = [
    "tq1_0", "tq2_0", "i2_s", "tl1", "tl2", "q4_0", "q4_k", "q8_0", "bf16", "f16",
];

/// One chart as written next to the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    /// The chart's title (also its caption and the SVG's title text).
    pub title: String,
    /// The SVG file (also inlined in `report.html`).
    pub svg: PathBuf,
    /// The PNG file (referenced from `report.md`).
    pub png: PathBuf,
}

/// What [`render`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`, with its CSS and SVG charts inlined.
    pub html: PathBuf,
    /// The charts, in the order they appear in the report.
    pub charts: Vec<ChartFile>,
}

/// Writes `report.md`, `report.html` and one SVG and PNG per chart into `out_dir` (created if
/// needed; files of an earlier render are overwritten).
///
/// Charts: model decode and prefill t/s per format with 95% intervals; speedup of each format
/// over f16 and q4_0 (ratios of medians within one run, with bootstrap intervals when raw
/// samples are present); achieved weight GB/s against the bandwidth measured in the same run;
/// energy per token against t/s (only when records carry energy; nothing is estimated here);
/// kernel GOP/s by shape and format. `system`, if given, is printed as a key/value table.
pub fn render(
    records: &[Record],
    system: Option<&Value>,
    out_dir: &Path,
) -> Result<ReportFiles, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|e| ReportError::io(out_dir, e))?;
    let model: Vec<ModelResult> = model_results(records);
    let mut blocks = vec![Block::Heading(1, "ternbench report".to_owned())];
    blocks.push(Block::Paragraph(summary(records)));
    if let Some(system) = system {
        blocks.push(Block::Heading(2, "System".to_owned()));
        blocks.push(Block::Table(system_table(system)));
    }

    blocks.push(Block::Heading(2, "Model throughput".to_owned()));
    if model.is_empty() {
        blocks.push(Block::Paragraph(
            "No model tests in these results.".to_owned(),
        ));
    } else {
        for chart in throughput_charts(&model) {
            blocks.push(Block::Chart(chart));
        }
        blocks.push(Block::Table(model_table(&model)));
        blocks.push(Block::Heading(2, "Speedup over f16 and q4_0".to_owned()));
        blocks.push(Block::Paragraph(
            "Ratio of median tokens/s of a format to the median of the baseline measured in the \
             same run, test, thread count and model size; above 1 is faster. Intervals are \
             percentile bootstrap 95% intervals over the raw samples of both (2000 resamples)."
                .to_owned(),
        ));
        match speedup_chart(&model) {
            Some(chart) => blocks.push(Block::Chart(chart)),
            None => blocks.push(Block::Paragraph(
                "No baseline (f16 or q4_0) was measured alongside the other formats, so there \
                 is no speedup to show."
                    .to_owned(),
            )),
        }
    }

    blocks.push(Block::Heading(2, "Weight bandwidth".to_owned()));
    let roofline = roofline_charts(records);
    if roofline.is_empty() {
        blocks.push(Block::Paragraph(
            "No record carries an achieved GB/s.".to_owned(),
        ));
    } else {
        blocks.push(Block::Paragraph(
            "Achieved weight bandwidth of each case against the read bandwidth the harness \
             measured in the same run (the line): token generation and GEMV are bound by it."
                .to_owned(),
        ));
        blocks.extend(roofline.into_iter().map(Block::Chart));
    }

    blocks.push(Block::Heading(2, "Energy".to_owned()));
    let energy: Vec<&Record> = records.iter().filter(|r| r.has_energy()).collect();
    if energy.is_empty() {
        blocks.push(Block::Paragraph(
            "No energy measured in these results.".to_owned(),
        ));
    } else {
        if let Some(chart) = energy_chart(&model) {
            blocks.push(Block::Chart(chart));
        }
        blocks.push(Block::Table(energy_table(&energy)));
    }

    let kernels: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Kernel)
        .collect();
    if !kernels.is_empty() {
        blocks.push(Block::Heading(2, "Kernels".to_owned()));
        blocks.extend(kernel_charts(&kernels).into_iter().map(Block::Chart));
        blocks.push(Block::Table(kernel_table(&kernels)));
    }

    let warnings = warning_list(records);
    blocks.push(Block::Heading(2, "Warnings".to_owned()));
    if warnings.is_empty() {
        blocks.push(Block::Paragraph("None recorded.".to_owned()));
    } else {
        blocks.push(Block::List(warnings));
    }

    doc::write(&blocks, out_dir)
}

/// A model record with its throughput and speedups.
struct ModelResult<'a> {
    rec: &'a Record,
    tps: Option<Bar>,
    /// Speedup over `BASELINES[i]`.
    speedup: [Option<Bar>; 2],
}

/// Records that one speedup may pair: same run, test, threads, model size, backend, device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CaseKey {
    run_id: String,
    test: String,
    threads: u32,
    params: Option<u64>,
    backend: String,
    device: Option<String>,
}

impl CaseKey {
    fn of(r: &Record) -> CaseKey {
        CaseKey {
            run_id: r.run_id.clone(),
            test: r.test.clone(),
            threads: r.threads,
            params: r.params,
            backend: r.backend.clone(),
            device: r.device.clone(),
        }
    }
}

// Model t/s: the median and its interval, or `tps` alone when the samples are in another unit.
fn throughput(r: &Record) -> Option<Bar> {
    match r.unit {
        Unit::TokensPerSecond if r.median > 0.0 => Some(Bar {
            value: r.median,
            ci: r.ci95_lo.zip(r.ci95_hi),
        }),
        _ => r.tps.map(|value| Bar { value, ci: None }),
    }
}

fn model_results(records: &[Record]) -> Vec<ModelResult<'_>> {
    let models: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Model)
        .collect();
    let mut out: Vec<ModelResult> = models
        .iter()
        .map(|&rec| {
            let tps = throughput(rec);
            let key = CaseKey::of(rec);
            let speedup = BASELINES.map(|base| {
                if rec.format == base {
                    return None;
                }
                let baseline = models
                    .iter()
                    .find(|b| b.format == base && CaseKey::of(b) == key)?;
                let (t, b) = (tps?, throughput(baseline)?);
                if b.value <= 0.0 {
                    return None;
                }
                let same_unit =
                    rec.unit == Unit::TokensPerSecond && baseline.unit == Unit::TokensPerSecond;
                let ci = if same_unit {
                    stats::ratio_ci95(&rec.samples, &baseline.samples)
                } else {
                    None
                };
                Some(Bar {
                    value: t.value / b.value,
                    ci,
                })
            });
            ModelResult { rec, tps, speedup }
        })
        .collect();
    out.sort_by(|a, b| {
        natural_cmp(&a.rec.test, &b.rec.test)
            .then_with(|| CaseKey::of(a.rec).cmp(&CaseKey::of(b.rec)))
            .then_with(|| format_cmp(&a.rec.format, &b.rec.format))
    });
    out
}

fn format_rank(format: &str) -> usize {
    FORMAT_ORDER
        .iter()
        .position(|f| *f == format)
        .unwrap_or(FORMAT_ORDER.len())
}

fn format_cmp(a: &str, b: &str) -> Ordering {
    format_rank(a).cmp(&format_rank(b)).then_with(|| a.cmp(b))
}

/// `pp64` before `pp512`: letters compare as text, digit runs as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x, y) {
            ((true, p), (true, q)) => p.len().cmp(&q.len()).then_with(|| p.cmp(q)),
            ((_, p), (_, q)) => p.cmp(q),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

/// Chart series: the format, plus backend and kernel only where those vary.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeriesKey {
    format: String,
    backend: String,
    kernel: Option<String>,
}

fn series_of(recs: &[&Record], with_kernel: bool) -> Vec<SeriesKey> {
    let key = |r: &Record| SeriesKey {
        format: r.format.clone(),
        backend: r.backend.clone(),
        kernel: if with_kernel { r.kernel.clone() } else { None },
    };
    let mut keys: Vec<SeriesKey> = Vec::new();
    for r in recs {
        let k = key(r);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort_by(|a, b| {
        format_cmp(&a.format, &b.format)
            .then_with(|| a.backend.cmp(&b.backend))
            .then_with(|| a.kernel.cmp(&b.kernel))
    });
    keys
}

fn series_styles(keys: &[SeriesKey]) -> Vec<Series> {
    let backends: BTreeSet<&str> = keys.iter().map(|k| k.backend.as_str()).collect();
    let formats: BTreeSet<&str> = keys.iter().map(|k| k.format.as_str()).collect();
    let one_per_format = formats.len() == keys.len();
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let mut label = match (&k.kernel, one_per_format) {
                (Some(kernel), false) => kernel.clone(),
                _ => k.format.clone(),
            };
            if backends.len() > 1 {
                label = format!("{label} ({})", k.backend);
            }
            let color = if one_per_format {
                charts::format_color(&k.format)
            } else {
                None
            };
            Series {
                label,
                color: color.unwrap_or(charts::PALETTE[i % charts::PALETTE.len()]),
            }
        })
        .collect()
}

fn series_matches(k: &SeriesKey, r: &Record) -> bool {
    k.format == r.format && k.backend == r.backend && (k.kernel.is_none() || k.kernel == r.kernel)
}

/// Category labels from keys, adding the thread count, model size or run only where they vary.
fn group_labels(keys: &[CaseKey]) -> Vec<String> {
    let varies =
        |f: &dyn Fn(&CaseKey) -> String| keys.iter().map(f).collect::<BTreeSet<String>>().len() > 1;
    let threads = varies(&|k| k.threads.to_string());
    let params = varies(&|k| format!("{:?}", k.params));
    let runs = varies(&|k| k.run_id.clone());
    keys.iter()
        .map(|k| {
            let mut label = k.test.clone();
            if threads {
                label.push_str(&format!(" {}t", k.threads));
            }
            if params {
                label.push_str(&format!(
                    " {}",
                    k.params.map_or("?".to_owned(), short_count)
                ));
            }
            if runs {
                label.push_str(&format!(
                    " {}",
                    k.run_id.chars().take(8).collect::<String>()
                ));
            }
            label
        })
        .collect()
}

fn short_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else {
        format!("{n}")
    }
}

// Groups by `CaseKey` without the backend (backends are series), in test order.
fn group_keys<'a>(recs: impl Iterator<Item = &'a Record>) -> Vec<CaseKey> {
    let mut keys: Vec<CaseKey> = Vec::new();
    for r in recs {
        let k = CaseKey {
            backend: String::new(),
            device: None,
            ..CaseKey::of(r)
        };
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort_by(|a, b| natural_cmp(&a.test, &b.test).then_with(|| a.cmp(b)));
    keys
}

fn in_group(k: &CaseKey, r: &Record) -> bool {
    k.run_id == r.run_id && k.test == r.test && k.threads == r.threads && k.params == r.params
}

fn throughput_charts(model: &[ModelResult]) -> Vec<Chart> {
    // Decode, prefill, then anything else (`pp64+tg32` is a blended rate).
    let class = |t: &str| match t {
        _ if t.starts_with("tg") => 0,
        _ if t.starts_with("pp") && !t.contains('+') => 1,
        _ => 2,
    };
    let classes = [
        ("decode_tps", "Decode (token generation) throughput"),
        ("prefill_tps", "Prefill (prompt processing) throughput"),
        ("blended_tps", "Prompt + generation (blended) throughput"),
    ];
    let mut out = Vec::new();
    for (i, (stem, title)) in classes.into_iter().enumerate() {
        let rows: Vec<&ModelResult> = model
            .iter()
            .filter(|m| class(&m.rec.test) == i && m.tps.is_some())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let recs: Vec<&Record> = rows.iter().map(|m| m.rec).collect();
        let keys = series_of(&recs, kernels_vary(&recs));
        let groups = group_keys(recs.iter().copied());
        let values = keys
            .iter()
            .map(|s| {
                groups
                    .iter()
                    .map(|g| {
                        rows.iter()
                            .find(|m| in_group(g, m.rec) && series_matches(s, m.rec))
                            .and_then(|m| m.tps)
                    })
                    .collect()
            })
            .collect();
        out.push(Chart {
            stem: stem.to_owned(),
            title: title.to_owned(),
            x_desc: "test".to_owned(),
            y_desc: "tokens/s (median, 95% CI)".to_owned(),
            body: Body::Grouped(Grouped {
                groups: group_labels(&groups),
                series: series_styles(&keys),
                values,
                lines: Vec::new(),
                bars: true,
            }),
        });
    }
    out
}

// Show kernels in series labels only when one format ran with more than one kernel.
fn kernels_vary(recs: &[&Record]) -> bool {
    let mut seen: BTreeMap<(&str, &str), BTreeSet<Option<&str>>> = BTreeMap::new();
    for r in recs {
        seen.entry((r.format.as_str(), r.backend.as_str()))
            .or_default()
            .insert(r.kernel.as_deref());
    }
    seen.values().any(|k| k.len() > 1)
}

fn speedup_chart(model: &[ModelResult]) -> Option<Chart> {
    let rows: Vec<&ModelResult> = model
        .iter()
        .filter(|m| m.speedup.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let recs: Vec<&Record> = rows.iter().map(|m| m.rec).collect();
    let keys = series_of(&recs, kernels_vary(&recs));
    let case_keys = group_keys(recs.iter().copied());
    let case_labels = group_labels(&case_keys);
    let mut groups = Vec::new();
    let mut cells: Vec<(usize, usize)> = Vec::new(); // (case, baseline) per group
    for (c, label) in case_labels.iter().enumerate() {
        for (b, base) in BASELINES.iter().enumerate() {
            if rows
                .iter()
                .any(|m| in_group(&case_keys[c], m.rec) && m.speedup[b].is_some())
            {
                groups.push(format!("{label} vs {base}"));
                cells.push((c, b));
            }
        }
    }
    let values = keys
        .iter()
        .map(|s| {
            cells
                .iter()
                .map(|&(c, b)| {
                    rows.iter()
                        .find(|m| in_group(&case_keys[c], m.rec) && series_matches(s, m.rec))
                        .and_then(|m| m.speedup[b])
                })
                .collect()
        })
        .collect();
    Some(Chart {
        stem: "speedup".to_owned(),
        title: "Speedup over the f16 and q4_0 baselines".to_owned(),
        x_desc: "test and baseline".to_owned(),
        y_desc: "speedup (ratio of medians, 95% CI)".to_owned(),
        body: Body::Grouped(Grouped {
            groups,
            series: series_styles(&keys),
            values,
            lines: vec![HLine {
                y: 1.0,
                label: "1.0 = as fast as the baseline".to_owned(),
                color: charts::LINE_GREY,
            }],
            bars: true,
        }),
    })
}

/// Category of a kernel or model case: `2560x6912 gemv` or the model test name.
fn case_label(r: &Record) -> String {
    match (r.kind, r.m, r.k) {
        (RecordKind::Kernel, Some(m), Some(k)) => format!("{m}x{k} {}", r.test),
        _ => r.test.clone(),
    }
}

fn resident_of(r: &Record) -> String {
    r.resident
        .clone()
        .unwrap_or_else(|| "not recorded".to_owned())
}

fn roofline_charts(records: &[Record]) -> Vec<Chart> {
    let with_gbps: Vec<&Record> = records.iter().filter(|r| r.gbps.is_some()).collect();
    let residents: BTreeSet<String> = with_gbps.iter().map(|r| resident_of(r)).collect();
    let mut out = Vec::new();
    for resident in residents {
        let recs: Vec<&Record> = with_gbps
            .iter()
            .copied()
            .filter(|r| resident_of(r) == resident)
            .collect();
        let keys = series_of(&recs, kernels_vary(&recs));
        let mut groups: Vec<(bool, String)> = Vec::new();
        for r in &recs {
            let g = (r.kind == RecordKind::Model, case_label(r));
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| natural_cmp(&a.1, &b.1)));
        let values = keys
            .iter()
            .map(|s| {
                groups
                    .iter()
                    .map(|(_, g)| {
                        let hits: Vec<f64> = recs
                            .iter()
                            .filter(|r| case_label(r) == *g && series_matches(s, r))
                            .filter_map(|r| r.gbps)
                            .collect();
                        stats::median(&hits).map(|value| Bar { value, ci: None })
                    })
                    .collect()
            })
            .collect();
        let measured: Vec<f64> = recs.iter().filter_map(|r| r.bandwidth_gbps).collect();
        let lines = stats::median(&measured)
            .map(|bw| HLine {
                y: bw,
                label: format!(
                    "measured {} read bandwidth {} GB/s",
                    if resident == "cache" {
                        "cache"
                    } else {
                        "memory"
                    },
                    fmt_num(bw)
                ),
                color: charts::LINE_RED,
            })
            .into_iter()
            .collect();
        let stem = format!("bandwidth_{}", slug(&resident));
        out.push(Chart {
            stem,
            title: format!("Achieved weight bandwidth (weights resident: {resident})"),
            x_desc: "shape and test".to_owned(),
            y_desc: "weight GB/s (median)".to_owned(),
            body: Body::Grouped(Grouped {
                groups: groups.into_iter().map(|(_, g)| g).collect(),
                series: series_styles(&keys),
                values,
                lines,
                bars: false,
            }),
        });
    }
    out
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn energy_chart(model: &[ModelResult]) -> Option<Chart> {
    let rows: Vec<(&ModelResult, f64, f64)> = model
        .iter()
        .filter_map(|m| Some((m, m.tps?.value, m.rec.energy_j_per_token?)))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let recs: Vec<&Record> = rows.iter().map(|(m, ..)| m.rec).collect();
    let keys = series_of(&recs, kernels_vary(&recs));
    let mut tests: Vec<String> = recs.iter().map(|r| r.test.clone()).collect();
    tests.sort_by(|a, b| natural_cmp(a, b));
    tests.dedup();
    let points = rows
        .iter()
        .map(|(m, x, y)| Point {
            x: *x,
            y: *y,
            series: keys
                .iter()
                .position(|k| series_matches(k, m.rec))
                .unwrap_or(0),
            shape: tests.iter().position(|t| *t == m.rec.test).unwrap_or(0),
            filled: m.rec.energy_measured == Some(true),
        })
        .collect();
    Some(Chart {
        stem: "energy".to_owned(),
        title: "Energy per token against speed".to_owned(),
        x_desc: "tokens/s (median)".to_owned(),
        y_desc: "energy per token (J)".to_owned(),
        body: Body::Scatter(Scatter {
            series: series_styles(&keys),
            shapes: tests,
            fill_labels: ("measured".to_owned(), "estimated".to_owned()),
            points,
        }),
    })
}

fn kernel_charts(kernels: &[&Record]) -> Vec<Chart> {
    let residents: BTreeSet<String> = kernels.iter().map(|r| resident_of(r)).collect();
    let mut out = Vec::new();
    for resident in residents {
        let recs: Vec<&Record> = kernels
            .iter()
            .copied()
            .filter(|r| resident_of(r) == resident && r.gops.is_some())
            .collect();
        if recs.is_empty() {
            continue;
        }
        let keys = series_of(&recs, kernels_vary(&recs));
        let mut groups: Vec<String> = Vec::new();
        for r in &recs {
            let g = case_label(r);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        groups.sort_by(|a, b| natural_cmp(a, b));
        let values = keys
            .iter()
            .map(|s| {
                groups
                    .iter()
                    .map(|g| {
                        let r = recs
                            .iter()
                            .find(|r| case_label(r) == *g && series_matches(s, r))?;
                        let gops = r.gops?;
                        Some(Bar {
                            value: gops,
                            ci: gops_ci(r, gops),
                        })
                    })
                    .collect()
            })
            .collect();
        out.push(Chart {
            stem: format!("kernel_gops_{}", slug(&resident)),
            title: format!("Kernel throughput by shape (weights resident: {resident})"),
            x_desc: "shape (rows x columns) and test".to_owned(),
            y_desc: "GOP/s (median, 95% CI)".to_owned(),
            body: Body::Grouped(Grouped {
                groups,
                series: series_styles(&keys),
                values,
                lines: Vec::new(),
                bars: true,
            }),
        });
    }
    out
}

// GOP/s is work / time, so the time interval maps onto it inverted (high time, low GOP/s).
fn gops_ci(r: &Record, gops: f64) -> Option<(f64, f64)> {
    let (lo, hi) = r.ci95_lo.zip(r.ci95_hi)?;
    (r.unit == Unit::Nanoseconds && lo > 0.0 && hi > 0.0 && r.median > 0.0)
        .then(|| (gops * r.median / hi, gops * r.median / lo))
}

/// About four significant digits, without exponents for the values a benchmark produces.
pub(crate) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        return v.to_string();
    }
    if a == 0.0 {
        return "0".to_owned();
    }
    if a >= 1000.0 {
        return format!("{v:.0}");
    }
    if a < 1e-4 {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 8) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn fmt_with_ci(b: Bar) -> String {
    match b.ci {
        Some((lo, hi)) => format!("{} [{}, {}]", fmt_num(b.value), fmt_num(lo), fmt_num(hi)),
        None => fmt_num(b.value),
    }
}

/// Speedups always carry two decimals, so they can be compared at a glance.
fn fmt_speedup(b: Option<Bar>) -> String {
    match b {
        Some(Bar {
            value,
            ci: Some((lo, hi)),
        }) => format!("{value:.2}× [{lo:.2}, {hi:.2}]"),
        Some(Bar { value, ci: None }) => format!("{value:.2}×"),
        None => "—".to_owned(),
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

fn summary(records: &[Record]) -> String {
    let kernels = records
        .iter()
        .filter(|r| r.kind == RecordKind::Kernel)
        .count();
    let runs: BTreeSet<&str> = records.iter().map(|r| r.run_id.as_str()).collect();
    let commits: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.git_commit.as_deref())
        .collect();
    let first = records.iter().map(|r| r.timestamp.as_str()).min();
    let last = records.iter().map(|r| r.timestamp.as_str()).max();
    let mut s = format!(
        "{} records ({} model tests, {kernels} kernel tests) from {} run{}",
        records.len(),
        records.len() - kernels,
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
    );
    if let (Some(first), Some(last)) = (first, last) {
        if first == last {
            s.push_str(&format!(", {first}"));
        } else {
            s.push_str(&format!(", {first} to {last}"));
        }
    }
    if !commits.is_empty() {
        let list: Vec<&str> = commits.into_iter().collect();
        s.push_str(&format!("; harness commit {}", list.join(", ")));
    }
    s.push('.');
    s
}

fn system_table(system: &Value) -> Table {
    let mut rows = Vec::new();
    flatten("", system, &mut rows);
    Table {
        headers: vec!["key".to_owned(), "value".to_owned()],
        rows,
    }
}

// Nested objects become dotted keys; arrays of scalars become comma-separated values.
fn flatten(prefix: &str, v: &Value, rows: &mut Vec<Vec<String>>) {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    };
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, rows);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let joined: Vec<String> = items.iter().map(scalar).collect();
            rows.push(vec![prefix.to_owned(), joined.join(", ")]);
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, rows);
            }
        }
        other => rows.push(vec![
            if prefix.is_empty() {
                "value".to_owned()
            } else {
                prefix.to_owned()
            },
            scalar(other),
        ]),
    }
}

fn model_table(model: &[ModelResult]) -> Table {
    let headers = [
        "test",
        "model",
        "format",
        "backend",
        "kernel",
        "threads",
        "t/s [95% CI]",
        "vs f16 [95% CI]",
        "vs q4_0 [95% CI]",
        "GB/s",
        "bandwidth fraction",
    ];
    let rows = model
        .iter()
        .map(|m| {
            let r = m.rec;
            vec![
                r.test.clone(),
                r.model.clone().unwrap_or_else(|| "—".to_owned()),
                r.format.clone(),
                r.backend.clone(),
                r.kernel.clone().unwrap_or_else(|| "—".to_owned()),
                r.threads.to_string(),
                opt(m.tps, fmt_with_ci),
                fmt_speedup(m.speedup[0]),
                fmt_speedup(m.speedup[1]),
                opt(r.gbps, fmt_num),
                opt(r.bandwidth_fraction, fmt_fraction),
            ]
        })
        .collect();
    Table {
        headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        rows,
    }
}

fn fmt_fraction(f: f64) -> String {
    format!("{:.0}%", f * 100.0)
}

fn kernel_table(kernels: &[&Record]) -> Table {
    let headers = [
        "format",
        "kernel",
        "test",
        "shape (m x k)",
        "tokens",
        "resident",
        "threads",
        "median ns [95% CI]",
        "GOP/s",
        "GB/s",
        "measured bandwidth GB/s",
        "bandwidth fraction",
        "check",
    ];
    let mut sorted: Vec<&Record> = kernels.to_vec();
    sorted.sort_by(|a, b| {
        resident_of(a)
            .cmp(&resident_of(b))
            .then_with(|| natural_cmp(&case_label(a), &case_label(b)))
            .then_with(|| format_cmp(&a.format, &b.format))
    });
    let rows = sorted
        .iter()
        .map(|r| {
            let time = Bar {
                value: r.median,
                ci: r.ci95_lo.zip(r.ci95_hi),
            };
            vec![
                r.format.clone(),
                r.kernel.clone().unwrap_or_else(|| "—".to_owned()),
                r.test.clone(),
                match (r.m, r.k) {
                    (Some(m), Some(k)) => format!("{m}x{k}"),
                    _ => "—".to_owned(),
                },
                opt(r.tokens, |t| t.to_string()),
                resident_of(r),
                r.threads.to_string(),
                if r.unit == Unit::Nanoseconds {
                    fmt_with_ci(time)
                } else {
                    format!("{} {}", fmt_with_ci(time), r.unit.as_str())
                },
                opt(r.gops, fmt_num),
                opt(r.gbps, fmt_num),
                opt(r.bandwidth_gbps, fmt_num),
                opt(r.bandwidth_fraction, fmt_fraction),
                r.check.clone().unwrap_or_else(|| "—".to_owned()),
            ]
        })
        .collect();
    Table {
        headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        rows,
    }
}

fn energy_table(energy: &[&Record]) -> Table {
    let headers = [
        "test",
        "format",
        "backend",
        "t/s",
        "J/token",
        "average W",
        "probe",
        "measured or estimated",
        "idle subtracted",
    ];
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let rows = energy
        .iter()
        .map(|r| {
            vec![
                case_label(r),
                r.format.clone(),
                r.backend.clone(),
                opt(throughput(r).filter(|_| r.kind == RecordKind::Model), |b| {
                    fmt_num(b.value)
                }),
                opt(r.energy_j_per_token, fmt_num),
                opt(r.avg_power_w, fmt_num),
                r.energy_probe
                    .clone()
                    .unwrap_or_else(|| "not recorded".to_owned()),
                match r.energy_measured {
                    Some(true) => "measured".to_owned(),
                    Some(false) => "estimated".to_owned(),
                    None => "not recorded".to_owned(),
                },
                opt(r.idle_subtracted, yes_no),
            ]
        })
        .collect();
    Table {
        headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        rows,
    }
}

fn warning_list(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records {
        let what = match &r.kernel {
            Some(kernel) => format!("{} {} ({kernel})", r.format, case_label(r)),
            None => format!("{} {}", r.format, case_label(r)),
        };
        for w in &r.warnings {
            let line = format!("{what}: {w}");
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_of_tests() {
        let mut t = vec!["pp512", "tg32", "pp64", "tg128"];
        t.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(t, ["pp64", "pp512", "tg32", "tg128"]);
    }

    #[test]
    fn number_formatting() {
        assert_eq!(fmt_num(1234.6), "1235");
        assert_eq!(fmt_num(12.345), "12.35");
        assert_eq!(fmt_num(0.012345), "0.01235");
        assert_eq!(fmt_num(20.0), "20");
        assert_eq!(fmt_num(0.0), "0");
    }
}
