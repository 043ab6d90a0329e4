//! Cross-hardware comparison: result sets from several machines merged explicitly (schema
//! versions and duplicate runs are reported, never silently resolved) and rendered side by side,
//! one table and one chart per metric, machines as series.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::charts::{self, Bar, Body, Chart, Grouped, Series};
use super::doc::{self, Block, Table};
use super::{fmt_speedup, fmt_with_ci, model_results, natural_cmp, short_count, BASELINES};
use crate::error::ReportError;
use crate::schema::{Record, RecordKind, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};
use crate::writer::{read_records_recovering, results_file};
use crate::ReportFiles;

/// One machine's results.
#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    /// Its `system.json`, if one was found next to its results.
    pub system: Option<Value>,
    pub records: Vec<Record>,
}

/// One claim verdict as a report row (computed by the harness; the report only prints it).
#[derive(Debug, Clone)]
pub struct ClaimRow {
    pub machine: String,
    pub id: String,
    pub verdict: String,
    pub claimed: String,
    pub measured: String,
    pub evidence: String,
}

/// Result sets merged into machines, and every decision the merge took.
#[derive(Debug, Clone)]
pub struct Merged {
    pub machines: Vec<Machine>,
    pub notes: Vec<String>,
}

fn machine_name(system: Option<&Value>, records: &[Record]) -> String {
    let field = |k: &str| system.and_then(|s| s.get(k)).and_then(Value::as_str);
    let cpu = field("cpu")
        .map(str::to_owned)
        .or_else(|| records.iter().find_map(|r| r.device.clone()))
        .unwrap_or_else(|| "unknown machine".to_owned());
    match field("hostname") {
        Some(host) if !host.is_empty() => format!("{host} ({cpu})"),
        _ => cpu,
    }
}

/// Reads every path and groups the records by machine. Files of different schema versions are
/// merged with a note saying which fields the older ones lack; a run (same `run_id`) found in a
/// second file is dropped from it with a note, so no case is counted twice.
pub fn merge(paths: &[PathBuf]) -> Result<Merged, ReportError> {
    let mut notes = Vec::new();
    let mut machines: Vec<Machine> = Vec::new();
    let mut seen_runs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut versions: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for path in paths {
        let file = results_file(path)?;
        let recovered = read_records_recovering(&file)?;
        if let Some(w) = recovered.warning {
            notes.push(w);
        }
        let system_path = file.parent().map(|d| d.join("system.json"));
        let system: Option<Value> = match system_path.filter(|p| p.exists()) {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| ReportError::io(&p, e))?;
                match serde_json::from_str(&text) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        notes.push(format!(
                            "{}: not valid JSON ({e}); machine named from its records",
                            p.display()
                        ));
                        None
                    }
                }
            }
            None => None,
        };
        let mut kept = Vec::new();
        let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
        for r in recovered.records {
            match seen_runs.get(&r.run_id) {
                Some(first) if first != &file => *dropped.entry(r.run_id.clone()).or_default() += 1,
                _ => {
                    seen_runs.insert(r.run_id.clone(), file.clone());
                    versions
                        .entry(r.schema_version)
                        .or_default()
                        .push(file.display().to_string());
                    kept.push(r);
                }
            }
        }
        for (run, n) in dropped {
            let first = seen_runs
                .get(&run)
                .map_or(String::new(), |p| p.display().to_string());
            notes.push(format!(
                "run {run} appears in both {first} and {}: kept the first, ignored {n} duplicate records",
                file.display()
            ));
        }
        if kept.is_empty() {
            notes.push(format!("{}: no records left to report", file.display()));
            continue;
        }
        let name = machine_name(system.as_ref(), &kept);
        match machines.iter_mut().find(|m| m.name == name) {
            Some(m) => {
                notes.push(format!("{} merged into machine {name}", file.display()));
                m.records.extend(kept);
                if m.system.is_none() {
                    m.system = system;
                }
            }
            None => machines.push(Machine {
                name,
                system,
                records: kept,
            }),
        }
    }
    if versions.len() > 1 {
        let list: Vec<String> = versions
            .iter()
            .map(|(v, files)| {
                let files: BTreeSet<&String> = files.iter().collect();
                format!(
                    "schema {v}: {}",
                    files.into_iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        notes.push(format!(
            "merged results of different schema versions ({}); this build writes {SCHEMA_VERSION} \
             and reads back to {OLDEST_SCHEMA_VERSION}. Fields added since an older version \
             (schema 2: energy provenance, J/token intervals, instructions) are empty for its records",
            list.join("; ")
        ));
    }
    Ok(Merged { machines, notes })
}

/// The machine palette: one stable colour per machine, in input order.
fn machine_series(machines: &[Machine]) -> Vec<Series> {
    machines
        .iter()
        .enumerate()
        .map(|(i, m)| Series {
            label: m.name.clone(),
            color: charts::PALETTE[i % charts::PALETTE.len()],
        })
        .collect()
}

/// One comparable case across machines: test, model size, format, threads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    test: String,
    params: Option<u64>,
    format: String,
    threads: u32,
    extra: String,
}

impl Row {
    fn label(&self) -> String {
        let mut s = format!("{} {}", self.test, self.format);
        if let Some(p) = self.params {
            s.push_str(&format!(" {}", short_count(p)));
        }
        s.push_str(&format!(" {}t", self.threads));
        if !self.extra.is_empty() {
            s.push_str(&format!(" {}", self.extra));
        }
        s
    }
}

/// A metric: for each machine, its value per row.
struct Metric {
    title: &'static str,
    stem: &'static str,
    unit: &'static str,
    explain: &'static str,
    cells: Vec<BTreeMap<Row, (Bar, String)>>,
}

fn model_row(r: &Record, extra: &str) -> Row {
    Row {
        test: r.test.clone(),
        params: r.params,
        format: r.format.clone(),
        threads: r.threads,
        extra: extra.to_owned(),
    }
}

fn metrics(machines: &[Machine]) -> Vec<Metric> {
    let mut decode = Vec::new();
    let mut prefill = Vec::new();
    let mut speedup = Vec::new();
    let mut energy = Vec::new();
    let mut fraction = Vec::new();
    for m in machines {
        let mut d: BTreeMap<Row, (Bar, String)> = BTreeMap::new();
        let (mut p, mut s, mut e, mut f) = (d.clone(), d.clone(), d.clone(), d.clone());
        for mr in model_results(&m.records) {
            let r = mr.rec;
            if let Some(t) = mr.tps {
                let cell = (t, fmt_with_ci(t));
                if r.test.starts_with("tg") {
                    d.insert(model_row(r, ""), cell);
                } else if r.test.starts_with("pp") && !r.test.contains('+') {
                    p.insert(model_row(r, ""), cell);
                }
            }
            for (b, base) in BASELINES.iter().enumerate() {
                if let Some(bar) = mr.speedup[b] {
                    s.insert(
                        model_row(r, &format!("vs {base}")),
                        (bar, fmt_speedup(Some(bar))),
                    );
                }
            }
            if let Some(j) = r.energy_j_per_token {
                let ci = r
                    .energy_j_per_token_ci95_lo
                    .zip(r.energy_j_per_token_ci95_hi);
                let bar = Bar { value: j, ci };
                let mut text = fmt_with_ci(bar);
                if r.energy_measured != Some(true) {
                    text.push_str(" ESTIMATE");
                }
                e.insert(model_row(r, ""), (bar, text));
            }
            if let (Some(frac), true) = (r.bandwidth_fraction, r.test.starts_with("tg")) {
                let bar = Bar {
                    value: frac,
                    ci: None,
                };
                f.insert(model_row(r, ""), (bar, format!("{:.0}%", frac * 100.0)));
            }
        }
        for r in m.records.iter().filter(|r| r.kind == RecordKind::Kernel) {
            if let (Some(frac), Some(res)) = (r.bandwidth_fraction, r.resident.as_deref()) {
                if res != "dram" || r.tokens != Some(1) {
                    continue;
                }
                let row = Row {
                    test: format!("gemv {}x{}", r.m.unwrap_or(0), r.k.unwrap_or(0)),
                    params: None,
                    format: r.format.clone(),
                    threads: r.threads,
                    extra: "dram".to_owned(),
                };
                f.insert(
                    row,
                    (
                        Bar {
                            value: frac,
                            ci: None,
                        },
                        format!("{:.0}%", frac * 100.0),
                    ),
                );
            }
        }
        decode.push(d);
        prefill.push(p);
        speedup.push(s);
        energy.push(e);
        fraction.push(f);
    }
    vec![
        Metric {
            title: "Decode tokens/s",
            stem: "machines-decode",
            unit: "tokens/s (median, 95% CI)",
            explain: "Generation speed per machine: median over repetitions with its bootstrap 95% interval.",
            cells: decode,
        },
        Metric {
            title: "Prefill tokens/s",
            stem: "machines-prefill",
            unit: "tokens/s (median, 95% CI)",
            explain: "Prompt processing speed per machine.",
            cells: prefill,
        },
        Metric {
            title: "Speedup over f16 and q4_0",
            stem: "machines-speedup",
            unit: "ratio of medians (95% CI)",
            explain: "Each machine's ternary t/s over its own baseline measured in the same run; above 1 is faster.",
            cells: speedup,
        },
        Metric {
            title: "Energy per token",
            stem: "machines-energy",
            unit: "J/token (95% CI)",
            explain: "Joules per token from each machine's own probe (net of idle where subtracted); estimates are marked ESTIMATE.",
            cells: energy,
        },
        Metric {
            title: "Fraction of measured bandwidth",
            stem: "machines-bandwidth",
            unit: "fraction of the machine's own measured DRAM bandwidth",
            explain: "Weight bytes streamed per second over the read bandwidth each machine measured in the same run.",
            cells: fraction,
        },
    ]
}

/// Writes the cross-hardware report (`report.md`, `report.html`, charts) into `out_dir`.
pub fn render_machines(
    machines: &[Machine],
    claims: &[ClaimRow],
    notes: &[String],
    out_dir: &Path,
) -> Result<ReportFiles, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|e| ReportError::io(out_dir, e))?;
    let names: Vec<String> = machines.iter().map(|m| m.name.clone()).collect();
    let mut blocks = vec![Block::Heading(
        1,
        "ternbench cross-hardware report".to_owned(),
    )];
    blocks.push(Block::Paragraph(format!(
        "{} machines: {}. Every ratio is taken within one machine's own run; machines are only \
         put side by side.",
        machines.len(),
        names.join("; ")
    )));
    if !notes.is_empty() {
        blocks.push(Block::Heading(2, "How the results were merged".to_owned()));
        blocks.push(Block::List(notes.to_vec()));
    }
    blocks.push(Block::Heading(2, "Systems".to_owned()));
    blocks.push(Block::Table(systems_table(machines)));
    let series = machine_series(machines);
    for metric in metrics(machines) {
        blocks.push(Block::Heading(2, metric.title.to_owned()));
        let rows: BTreeSet<Row> = metric
            .cells
            .iter()
            .flat_map(|c| c.keys().cloned())
            .collect();
        if rows.is_empty() {
            blocks.push(Block::Paragraph(format!(
                "No machine has {}.",
                metric.title.to_lowercase()
            )));
            continue;
        }
        let mut rows: Vec<Row> = rows.into_iter().collect();
        rows.sort_by(|a, b| natural_cmp(&a.test, &b.test).then_with(|| a.cmp(b)));
        blocks.push(Block::Paragraph(metric.explain.to_owned()));
        blocks.push(Block::Chart(Chart {
            stem: metric.stem.to_owned(),
            title: format!("{} by machine", metric.title),
            x_desc: "case".to_owned(),
            y_desc: metric.unit.to_owned(),
            body: Body::Grouped(Grouped {
                groups: rows.iter().map(Row::label).collect(),
                series: series.clone(),
                values: metric
                    .cells
                    .iter()
                    .map(|c| rows.iter().map(|r| c.get(r).map(|(b, _)| *b)).collect())
                    .collect(),
                lines: Vec::new(),
                bars: true,
            }),
        }));
        let mut headers = vec!["case".to_owned()];
        headers.extend(names.iter().cloned());
        blocks.push(Block::Table(Table {
            headers,
            rows: rows
                .iter()
                .map(|r| {
                    let mut row = vec![r.label()];
                    row.extend(
                        metric
                            .cells
                            .iter()
                            .map(|c| c.get(r).map_or("—".to_owned(), |(_, t)| t.clone())),
                    );
                    row
                })
                .collect(),
        }));
    }
    blocks.push(Block::Heading(2, "Claims".to_owned()));
    if claims.is_empty() {
        blocks.push(Block::Paragraph(
            "No claim verdicts were given to this report.".to_owned(),
        ));
    } else {
        blocks.push(Block::Table(Table {
            headers: [
                "machine", "claim", "verdict", "claimed", "measured", "evidence",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows: claims
                .iter()
                .map(|c| {
                    vec![
                        c.machine.clone(),
                        c.id.clone(),
                        c.verdict.clone(),
                        c.claimed.clone(),
                        c.measured.clone(),
                        c.evidence.clone(),
                    ]
                })
                .collect(),
        }));
    }
    doc::write(&blocks, out_dir)
}

fn systems_table(machines: &[Machine]) -> Table {
    let mut keys: Vec<String> = Vec::new();
    let mut values: Vec<BTreeMap<String, String>> = Vec::new();
    for m in machines {
        let mut rows = Vec::new();
        if let Some(s) = &m.system {
            super::flatten("", s, &mut rows);
        }
        let mut map = BTreeMap::new();
        for row in rows {
            if let [k, v] = row.as_slice() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
                map.insert(k.clone(), v.clone());
            }
        }
        let records = m.records.len().to_string();
        map.insert("records".to_owned(), records);
        values.push(map);
    }
    keys.push("records".to_owned());
    let mut headers = vec!["".to_owned()];
    headers.extend(machines.iter().map(|m| m.name.clone()));
    Table {
        headers,
        rows: keys
            .iter()
            .map(|k| {
                let mut row = vec![k.clone()];
                row.extend(
                    values
                        .iter()
                        .map(|v| v.get(k).cloned().unwrap_or_else(|| "—".to_owned())),
                );
                row
            })
            .collect(),
    }
}
