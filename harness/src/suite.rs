//! `ternbench run`: the main job. Detects the system, measures memory bandwidth, runs the kernel
//! suite and the model suite, appends every finished case to `results.jsonl` / `results.csv` at
//! once (a crash or Ctrl-C loses nothing finished), and renders the report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use reports::{Record, RecordKind, ResultWriter};

use crate::bandwidth::{self, Resident};
use crate::energy::{EnergyOptions, EnergyReport, Session, Window};
use crate::kernel_bench::{self, KernelRecord};
use crate::model_run::{self, RunOptions};
use crate::stats::Summary;
use crate::sysinfo::SystemInfo;

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// About two minutes on a 2-core machine: CI's smoke run.
    Quick,
    /// About ten minutes: the 2B4T shapes and a 2B4T-shaped model.
    Default,
    /// Model sizes and thread counts swept.
    Full,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Quick => "quick",
            Suite::Default => "default",
            Suite::Full => "full",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub suite: Suite,
    /// Run the model suite on this file instead of synthetic models.
    pub model: Option<PathBuf>,
    pub out: PathBuf,
    pub cache_dir: PathBuf,
    /// 0: every logical CPU.
    pub threads: usize,
    pub kernel: Option<String>,
    /// Draw progress bars (off when stderr is not a terminal or for `--json`).
    pub progress: bool,
    /// The energy probe for the model tests.
    pub energy: EnergyOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Report(#[from] reports::ReportError),
    #[error(transparent)]
    Bench(#[from] kernel_bench::BenchError),
    #[error(transparent)]
    Run(#[from] model_run::RunError),
    #[error("energy probe: {0}")]
    Probe(#[from] power::ProbeError),
    #[error(transparent)]
    Convert(#[from] crate::convert::ConvertError),
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown preset '{0}'")]
    Preset(String),
}

/// What a suite runs.
struct Plan {
    kernel: kernel_bench::Options,
    presets: Vec<&'static str>,
    formats: Vec<&'static str>,
    prompt: usize,
    generate: usize,
    rounds: usize,
    threads: Vec<usize>,
}

/// The ternary LUT format this CPU suits: TL2 on x86 (AVX2), TL1 on ARM (NEON), as bitnet.cpp.
fn lut_format() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "tl1"
    } else {
        "tl2"
    }
}

fn plan(suite: Suite, all_threads: usize) -> Plan {
    let mut kernel = kernel_bench::Options {
        formats: ["tq2_0", "tq1_0", "i2_s", lut_format(), "f16", "q4_0"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        threads: vec![all_threads],
        ..kernel_bench::Options::default()
    };
    match suite {
        Suite::Quick => {
            kernel.tokens = vec![1];
            kernel.residents = vec![Resident::Cache];
            kernel.repetitions = 5;
            kernel.min_seconds = 0.02;
            Plan {
                kernel,
                // TL tilings exist for the released models' shapes only, not for this dummy.
                presets: vec!["bitnet-dummy-125m"],
                formats: vec!["tq2_0", "i2_s", "f16", "q4_0"],
                // Windows of tens of milliseconds, so a 1 ms RAPL counter can give J/token.
                prompt: 32,
                generate: 8,
                rounds: 2,
                threads: vec![all_threads],
            }
        }
        Suite::Default | Suite::Full => {
            kernel.tokens = vec![1, 64];
            kernel.residents = vec![Resident::Cache, Resident::Dram];
            kernel.repetitions = 10;
            kernel.min_seconds = 0.1;
            let full = suite == Suite::Full;
            Plan {
                kernel,
                presets: if full {
                    vec![
                        "bitnet-dummy-125m",
                        "bitnet_b1_58-large",
                        "bitnet-b1.58-2b-4t",
                        "bitnet_b1_58-3b",
                    ]
                } else {
                    vec!["bitnet-b1.58-2b-4t"]
                },
                formats: vec!["tq2_0", "tq1_0", "i2_s", lut_format(), "f16", "q4_0"],
                prompt: 64,
                generate: 32,
                rounds: 3,
                threads: if full {
                    let mut t: Vec<usize> = std::iter::successors(Some(1), |t| Some(t * 2))
                        .take_while(|&t| t < all_threads)
                        .collect();
                    t.push(all_threads);
                    t
                } else {
                    vec![all_threads]
                },
            }
        }
    }
}

/// Now as an RFC 3339 UTC timestamp (civil-from-days, so no date crate is needed).
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The default output directory: `ternbench-results/<timestamp>`.
pub fn default_out() -> PathBuf {
    PathBuf::from("ternbench-results").join(timestamp().replace(':', ""))
}

/// Run-wide fields every record carries.
struct Stamp {
    run_id: String,
    suite: &'static str,
    device: String,
    git_commit: String,
    warnings: Vec<String>,
}

impl Stamp {
    fn record(&self, kind: RecordKind, test: &str, format: &str) -> Record {
        let mut r = Record::new(kind, test, format);
        r.run_id = self.run_id.clone();
        r.timestamp = timestamp();
        r.suite = self.suite.to_string();
        r.device = Some(self.device.clone());
        r.git_commit = Some(self.git_commit.clone());
        r.warnings = self.warnings.clone();
        r
    }
}

fn variance_warnings(s: &Summary, what: &str) -> Vec<String> {
    let mut w = Vec::new();
    if s.cv() > 0.10 {
        w.push(format!("{what}: high variance (cv {:.0}%)", s.cv() * 100.0));
    }
    if s.n < 3 {
        w.push(format!("{what}: only {} repetitions", s.n));
    }
    w
}

fn kernel_record(stamp: &Stamp, k: &KernelRecord) -> Record {
    let mut r = stamp.record(RecordKind::Kernel, "", &k.format);
    kernel_bench::fill_record(k, &mut r);
    r
}

/// A synthesized model of a named preset in the cache.
fn cached_model(cache: &Path, preset: &str, format: &str) -> Result<PathBuf, SuiteError> {
    let p = datasets::presets::find(preset)?.ok_or_else(|| SuiteError::Preset(preset.into()))?;
    Ok(crate::convert::synth_cached(cache, preset, p, format)?)
}

/// One model's samples over the rounds.
struct ModelCase {
    label: String,
    format: String,
    path: PathBuf,
    threads: usize,
    params: Option<u64>,
    pp: Vec<f64>,
    tg: Vec<f64>,
    windows: Vec<Window>,
    last: Option<model_run::RunRecord>,
}

fn model_records(
    stamp: &Stamp,
    c: &ModelCase,
    prompt: usize,
    generate: usize,
    dram: f64,
    energy: &EnergyReport,
) -> Vec<Record> {
    let Some(last) = &c.last else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (test, samples) in [
        (format!("pp{prompt}"), &c.pp),
        (format!("tg{generate}"), &c.tg),
    ] {
        let Some(s) = Summary::of(samples) else {
            continue;
        };
        let mut r = stamp.record(RecordKind::Model, &test, &c.format);
        r.model = Some(c.label.clone());
        r.size = Some(last.file_bytes);
        r.params = c.params;
        r.threads = c.threads as u32;
        r.kernel = Some(last.kernel.clone());
        r.bits_per_weight = kernels::find_format(&c.format)
            .ok()
            .map(|f| f.info().bits_per_weight);
        r.n_prompt = Some(if test.starts_with("pp") {
            prompt as u64
        } else {
            0
        });
        r.n_gen = Some(if test.starts_with("tg") {
            generate as u64
        } else {
            0
        });
        r.samples = samples.clone();
        r.median = s.median;
        r.mean = s.mean;
        r.stddev = s.stddev;
        r.ci95_lo = Some(s.ci95[0]);
        r.ci95_hi = Some(s.ci95[1]);
        r.tps = Some(s.median);
        // Decode streams every weight once per token: from DRAM unless the model fits the LLC.
        let streamed = last.bytes_per_token as usize > bandwidth::llc_bytes();
        r.resident = Some(if streamed { "dram" } else { "cache" }.to_string());
        if test.starts_with("tg") && dram > 0.0 {
            let gbps = last.bytes_per_token as f64 * s.median / 1e9;
            r.gbps = Some(gbps);
            r.bandwidth_gbps = Some(dram);
            r.bandwidth_fraction = Some(gbps / dram);
        }
        let checks: Vec<String> = last
            .checks
            .iter()
            .map(|k| format!("{} {:.1e}", k.variant, k.max_rel_err))
            .collect();
        r.check = Some(format!(
            "kernels vs scalar reference at load (max rel err: {}); every timed token's logits finite",
            checks.join(", ")
        ));
        r.warnings.extend(variance_warnings(&s, &test));
        let phase = if test.starts_with("pp") {
            &energy.prefill
        } else {
            &energy.decode
        };
        fill_energy(&mut r, energy, phase.as_ref());
        out.push(r);
    }
    out
}

/// Copies a phase's energy into a record's energy fields.
pub(crate) fn fill_energy(
    r: &mut Record,
    e: &EnergyReport,
    phase: Option<&crate::energy::PhaseEnergy>,
) {
    let (Some(probe), Some(p)) = (&e.probe, phase) else {
        return;
    };
    r.energy_probe = Some(probe.clone());
    r.energy_measured = e.measured;
    r.energy_domains = e.domains.clone();
    r.idle_power_w = e.idle_power_w;
    r.idle_subtracted = Some(e.idle_subtracted);
    r.energy_gross_j = Some(p.gross_j);
    r.energy_net_j = p.net_j;
    r.avg_power_w = Some(p.avg_power_w);
    r.energy_coverage = Some(p.coverage);
    r.energy_j_per_token = p.j_per_token;
    r.energy_j_per_token_ci95_lo = p.j_per_token_ci95.map(|c| c[0]);
    r.energy_j_per_token_ci95_hi = p.j_per_token_ci95.map(|c| c[1]);
    if e.measured == Some(false) {
        r.warnings
            .push("energy is an ESTIMATE (utilisation x TDP), not a measurement".into());
    }
    r.warnings
        .extend(e.notes.iter().map(|n| format!("energy: {n}")));
}

/// Everything `ternbench run` produced.
pub struct Outcome {
    pub out: PathBuf,
    pub records: Vec<Record>,
    pub report: Option<reports::ReportFiles>,
    pub system: SystemInfo,
    /// What measured energy, or why nothing did.
    pub energy: String,
}

fn bar(progress: bool, len: u64) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})",
    ) {
        b.set_style(style);
    }
    b
}

/// Run a suite, writing results as they come.
pub fn run(opts: &SuiteOptions) -> Result<Outcome, SuiteError> {
    let system = SystemInfo::detect();
    let all_threads = if opts.threads == 0 {
        system.logical_cpus
    } else {
        opts.threads
    };
    let mut plan = plan(opts.suite, all_threads);
    plan.kernel.kernel = opts.kernel.clone();
    let mut writer = ResultWriter::create(&opts.out)?;
    let system_path = opts.out.join("system.json");
    let system_json = serde_json::to_value(&system).unwrap_or_default();
    std::fs::write(
        &system_path,
        serde_json::to_string_pretty(&system_json).unwrap_or_default(),
    )
    .map_err(|source| SuiteError::Io {
        path: system_path.clone(),
        source,
    })?;
    let stamp = Stamp {
        run_id: format!("{}-{}", timestamp(), std::process::id()),
        suite: opts.suite.name(),
        device: system.cpu.clone(),
        git_commit: format!(
            "{}{}",
            system.git_commit,
            if system.git_dirty { "-dirty" } else { "" }
        ),
        warnings: system.warnings(),
    };
    let energy = Arc::new(Session::start(&opts.energy)?);
    plan.kernel.energy = Some(Arc::clone(&energy));
    let mut stamp = stamp;
    if energy.meter().is_none() {
        stamp.warnings.push(energy.describe());
    }
    let mut records = Vec::new();

    // Kernel suite: one progress tick per record.
    let k = &plan.kernel;
    let cases =
        (k.formats.len() * k.shapes.len() * k.tokens.len() * k.residents.len() * k.threads.len())
            as u64;
    let pb = bar(opts.progress, cases);
    pb.set_message("kernel suite");
    let mut write_err = None;
    kernel_bench::run(&plan.kernel, |kr| {
        let r = kernel_record(&stamp, kr);
        pb.set_message(format!("{} {}x{} x{}", kr.kernel, kr.m, kr.k, kr.tokens));
        pb.inc(1);
        if let Err(e) = writer.append(&r) {
            write_err.get_or_insert(e);
        }
        records.push(r);
    })?;
    pb.finish_and_clear();
    if let Some(e) = write_err {
        return Err(e.into());
    }

    // Model suite: rounds interleave the formats (A B C A B C ...), each from a fresh load.
    for &threads in &plan.threads {
        let dram = bandwidth::measure(Resident::Dram, threads, 5).gbps;
        for preset in &plan.presets {
            let mut cases: Vec<ModelCase> = Vec::new();
            match &opts.model {
                Some(path) => cases.push(ModelCase {
                    label: path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into(),
                    ),
                    format: String::new(),
                    path: path.clone(),
                    threads,
                    params: None,
                    pp: Vec::new(),
                    tg: Vec::new(),
                    windows: Vec::new(),
                    last: None,
                }),
                None => {
                    let p = datasets::presets::find(preset)?
                        .ok_or_else(|| SuiteError::Preset(preset.to_string()))?;
                    for format in &plan.formats {
                        if opts.progress {
                            eprintln!(
                                "preparing {preset} {format} in {}",
                                opts.cache_dir.display()
                            );
                        }
                        cases.push(ModelCase {
                            label: preset.to_string(),
                            format: format.to_string(),
                            path: cached_model(&opts.cache_dir, preset, format)?,
                            threads,
                            params: Some(p.params()),
                            pp: Vec::new(),
                            tg: Vec::new(),
                            windows: Vec::new(),
                            last: None,
                        });
                    }
                }
            }
            let pb = bar(opts.progress, (cases.len() * plan.rounds) as u64);
            for _ in 0..plan.rounds {
                for c in &mut cases {
                    pb.set_message(format!("{} {} {} threads", c.label, c.format, threads));
                    let rec = model_run::run(
                        &c.path,
                        &RunOptions {
                            prompt: plan.prompt,
                            generate: plan.generate,
                            repetitions: 1,
                            threads,
                            kernel: opts.kernel.clone(),
                            bandwidth: false,
                            energy: Some(Arc::clone(&energy)),
                            ..RunOptions::default()
                        },
                    )?;
                    c.windows.extend_from_slice(&rec.windows);
                    c.pp.push(rec.pp_tps);
                    c.tg.push(rec.tg_tps);
                    if c.format.is_empty() {
                        c.format = rec.format.clone();
                    }
                    c.last = Some(rec);
                    pb.inc(1);
                }
            }
            pb.finish_and_clear();
            for c in &cases {
                let report = energy.report(&c.windows);
                for r in model_records(&stamp, c, plan.prompt, plan.generate, dram, &report) {
                    writer.append(&r)?;
                    records.push(r);
                }
            }
            if opts.model.is_some() {
                break;
            }
        }
    }
    let report = Some(reports::render(&records, Some(&system_json), &opts.out)?);
    Ok(Outcome {
        out: opts.out.clone(),
        records,
        report,
        system,
        energy: energy.describe(),
    })
}

/// The end-of-run table: model tests per format with speedups over F16 and Q4_0.
pub fn summary(records: &[Record]) -> String {
    let models: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Model)
        .collect();
    let mut s = String::new();
    if models.is_empty() {
        return s;
    }
    s += &format!(
        "{:<22} {:<8} {:<20} {:>3} {:>10} {:>18} {:>8} {:>8} {:>7} {:>10}\n",
        "model", "test", "kernel", "thr", "t/s", "95% CI", "vs f16", "vs q4_0", "of BW", "J/token"
    );
    for r in &models {
        let base = |f: &str| {
            models
                .iter()
                .find(|b| {
                    b.format == f
                        && b.test == r.test
                        && b.model == r.model
                        && b.threads == r.threads
                })
                .map(|b| r.median / b.median)
        };
        let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}x"));
        // An estimate is never shown bare: it carries its label into the table.
        let joules = match (r.energy_j_per_token, r.energy_measured) {
            (Some(j), Some(true)) => format!("{j:.3e}"),
            (Some(j), _) => format!("~{j:.2e} EST"),
            (None, _) => "-".into(),
        };
        s += &format!(
            "{:<22} {:<8} {:<20} {:>3} {:>10.2} {:>18} {:>8} {:>8} {:>7} {:>10}\n",
            r.model.clone().unwrap_or_default(),
            r.test,
            r.kernel.clone().unwrap_or_default(),
            r.threads,
            r.median,
            format!(
                "[{:.2}, {:.2}]",
                r.ci95_lo.unwrap_or(f64::NAN),
                r.ci95_hi.unwrap_or(f64::NAN)
            ),
            ratio(base("f16")),
            ratio(base("q4_0")),
            r.bandwidth_fraction
                .map_or("-".into(), |f| format!("{:.0}%", f * 100.0)),
            joules,
        );
    }
    s
}
