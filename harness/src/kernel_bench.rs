//! `ternbench kernels`: time every format's GEMV/GEMM at the model's shapes and relate each
//! figure to the memory bandwidth the harness measures in the same run.
//!
//! Every case first checks its kernel's output against the scalar reference (two tokens, all
//! rows), so no speed is ever reported for wrong results.
//!
//! Instruction counts: where perf hardware counters are readable, single-thread cases also
//! record user-space instructions retired per call, counted on the one pool thread that runs the
//! calls (a counter opened on that thread, no inheritance), in a separate untimed pass so the
//! counter's system calls never sit inside a timed region. Multi-thread cases leave it empty:
//! counting them would need an inherited, process-wide counter that also counts the pool's idle
//! spinning, which is noise and defeats the point of a low-noise metric. Counters that cannot be
//! opened (no PMU in many VMs, `kernel.perf_event_paranoid` above 2) leave it empty; the reason is
//! printed once and the run goes on.
//!
//! [`PLANTED_SLOWDOWN_ENV`] is a test hook for validating a regression gate: it makes every timed
//! call busy-wait for a given fraction of its own duration, and stamps a warning on every record.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use kernels::matmul::prepare;
use kernels::pool::install_polling;
use kernels::{find_format, Bytes, Isa, MatMul, WeightFormat};
use serde::Serialize;

use crate::bandwidth::{self, Bandwidth, Resident};
use crate::stats::{SplitMix64, Summary};

/// Test hook: `TERNBENCH_PLANTED_SLOWDOWN=0.2` adds 20% busy-wait to every timed call, so a gate
/// can be shown to catch a known slowdown. Never set it for real measurements.
pub const PLANTED_SLOWDOWN_ENV: &str = "TERNBENCH_PLANTED_SLOWDOWN";

/// Untimed calls whose instructions are counted per case; the count barely varies between calls.
const COUNTED_CALLS: usize = 5;

/// BitNet b1.58 2B4T's matrices as rows x cols (M x K): q/o, k/v, gate/up, down.
pub const SHAPES_2B4T: [(usize, usize); 4] =
    [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)];

/// The ternary formats and the FP16 / INT4 baselines.
pub const DEFAULT_FORMATS: [&str; 7] = ["tq1_0", "tq2_0", "i2_s", "tl1", "tl2", "f16", "q4_0"];

/// Relative tolerance of the output check: |y − ref| ≤ CHECK_TOL · Σ|w|·max|x| per row.
pub const CHECK_TOL: f32 = 1e-5;

#[derive(Debug, Clone)]
pub struct Options {
    pub formats: Vec<String>,
    pub shapes: Vec<(usize, usize)>,
    pub tokens: Vec<usize>,
    pub threads: Vec<usize>,
    pub residents: Vec<Resident>,
    /// `isa` or `format/isa`; None picks the best variant per format.
    pub kernel: Option<String>,
    /// Minimum timed repetitions per case (more are taken until `min_seconds` have passed).
    pub repetitions: usize,
    pub min_seconds: f64,
    /// Also write every record to `results.jsonl` / `results.csv` (and `system.json`) here.
    pub out: Option<PathBuf>,
    /// With a meter, each case also runs alone for [`ENERGY_PASS_SECONDS`] between two marks.
    pub energy: Option<std::sync::Arc<crate::energy::Session>>,
}

/// Length of a case's energy pass: 500 updates of a 1 ms RAPL counter, and many calls. A slower
/// probe gets twice its shortest reportable window (`Session::min_window`).
pub const ENERGY_PASS_SECONDS: f64 = 0.5;

impl Default for Options {
    fn default() -> Self {
        Options {
            formats: DEFAULT_FORMATS.iter().map(|s| s.to_string()).collect(),
            shapes: SHAPES_2B4T.to_vec(),
            tokens: vec![1],
            threads: vec![std::thread::available_parallelism().map_or(1, |n| n.get())],
            residents: vec![Resident::Cache, Resident::Dram],
            kernel: None,
            repetitions: 20,
            min_seconds: 0.3,
            out: None,
            energy: None,
        }
    }
}

/// What the output check compared.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub tokens_checked: usize,
    pub rows_checked: usize,
    /// Largest |y − ref| / (Σ|w|·max|x|) over the checked outputs.
    pub max_rel_err: f64,
    pub tolerance: f64,
}

/// One benchmark case; field names are stable (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct KernelRecord {
    pub format: String,
    /// The variant that ran, e.g. `tq2_0/avx512vnni`.
    pub kernel: String,
    pub m: usize,
    pub k: usize,
    pub tokens: usize,
    pub threads: usize,
    pub resident: Resident,
    pub bits_per_weight: f64,
    /// Bytes of packed weights one product reads.
    pub weight_bytes: usize,
    pub median_ns: f64,
    pub mean_ns: f64,
    pub stddev_ns: f64,
    pub ci95_ns: [f64; 2],
    pub repetitions: usize,
    /// 2·m·k·tokens operations per second, in units of 1e9.
    pub gops: f64,
    /// Weight bytes per second, in GB/s (1e9).
    pub gbps: f64,
    /// gbps over the read bandwidth measured for the same residency and thread count.
    pub bandwidth_fraction: f64,
    pub bandwidth_gbps: f64,
    /// How many distinct copies of the weights are cycled (1 for cache-resident cases).
    pub copies: usize,
    pub check: Check,
    /// Every timed sample, in the order taken.
    pub samples_ns: Vec<f64>,
    /// User-space instructions retired per call (single-thread cases, where counters are readable).
    pub instructions: Option<f64>,
    /// Energy of the case's own pass (one "token" per call and activation column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy: Option<crate::energy::EnergyReport>,
    /// Anything a reader of the figures must know (a planted slowdown).
    pub warnings: Vec<String>,
}

/// Errors that stop a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Kernel(#[from] kernels::KernelError),
    #[error("{format} {m}x{k}: output check failed: {detail}")]
    WrongOutput {
        format: String,
        m: usize,
        k: usize,
        detail: String,
    },
    #[error("could not build a {0}-thread pool: {1}")]
    Pool(usize, String),
    #[error("{PLANTED_SLOWDOWN_ENV}={0:?}: expected a fraction such as 0.2 (between 0 and 10)")]
    PlantedSlowdown(String),
    #[error(transparent)]
    Results(#[from] reports::ReportError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The planted slowdown fraction from [`PLANTED_SLOWDOWN_ENV`]; unset, empty or 0 is none.
pub fn planted_slowdown() -> Result<Option<f64>, BenchError> {
    let Ok(raw) = std::env::var(PLANTED_SLOWDOWN_ENV) else {
        return Ok(None);
    };
    if raw.trim().is_empty() {
        return Ok(None);
    }
    match raw.trim().parse::<f64>() {
        Ok(0.0) => Ok(None),
        Ok(f) if f > 0.0 && f <= 10.0 => Ok(Some(f)),
        _ => Err(BenchError::PlantedSlowdown(raw)),
    }
}

fn planted_warning(fraction: f64) -> String {
    format!(
        "{PLANTED_SLOWDOWN_ENV}={fraction}: test hook active, every timed call busy-waited an extra {:.0}% of its time; these are not real measurements",
        fraction * 100.0
    )
}

/// The record's test name: `gemv` for one token, `gemmN` for N.
pub fn test_name(tokens: usize) -> String {
    if tokens == 1 {
        "gemv".to_string()
    } else {
        format!("gemm{tokens}")
    }
}

/// Fills `r` (whose run-wide fields the caller stamped) with a kernel case: the one conversion
/// of a [`KernelRecord`] into a result record.
pub fn fill_record(k: &KernelRecord, r: &mut reports::Record) {
    let test = test_name(k.tokens);
    r.kind = reports::RecordKind::Kernel;
    r.unit = reports::Unit::Nanoseconds;
    r.test.clone_from(&test);
    r.format.clone_from(&k.format);
    r.threads = k.threads as u32;
    r.kernel = Some(k.kernel.clone());
    r.bits_per_weight = Some(k.bits_per_weight);
    r.m = Some(k.m as u64);
    r.k = Some(k.k as u64);
    r.tokens = Some(k.tokens as u64);
    r.resident = Some(k.resident.name().to_string());
    r.samples = k.samples_ns.clone();
    r.median = k.median_ns;
    r.mean = k.mean_ns;
    r.stddev = k.stddev_ns;
    r.ci95_lo = Some(k.ci95_ns[0]);
    r.ci95_hi = Some(k.ci95_ns[1]);
    r.gops = Some(k.gops);
    r.gbps = Some(k.gbps);
    r.size = Some(k.weight_bytes as u64);
    r.bandwidth_gbps = Some(k.bandwidth_gbps);
    r.bandwidth_fraction = Some(k.bandwidth_fraction);
    r.instructions = k.instructions;
    r.check = Some(format!(
        "scalar reference on {} rows x {} tokens: max rel err {:.1e} (tolerance {:.0e})",
        k.check.rows_checked, k.check.tokens_checked, k.check.max_rel_err, k.check.tolerance
    ));
    if let Some(s) = Summary::of(&k.samples_ns) {
        if s.cv() > 0.10 {
            r.warnings
                .push(format!("{test}: high variance (cv {:.0}%)", s.cv() * 100.0));
        }
        if s.n < 3 {
            r.warnings.push(format!("{test}: only {} repetitions", s.n));
        }
    }
    r.warnings.extend(k.warnings.iter().cloned());
    if let Some(e) = &k.energy {
        crate::suite::fill_energy(r, e, e.decode.as_ref());
        let seconds = e.decode.as_ref().map_or(0.0, |p| p.duration_s);
        r.warnings.push(format!(
            "energy from a separate {seconds:.2} s pass of this case alone (J per call and activation column), not from the timed samples"
        ));
    }
}

/// Where `--out` records go, stamped with this run's identity and the machine's warnings.
struct Sink {
    writer: reports::ResultWriter,
    base: reports::Record,
}

impl Sink {
    fn create(dir: &std::path::Path) -> Result<Sink, BenchError> {
        let system = crate::sysinfo::SystemInfo::detect();
        let writer = reports::ResultWriter::create(dir)?;
        let path = dir.join("system.json");
        let json = serde_json::to_string_pretty(&system).unwrap_or_default();
        std::fs::write(&path, json).map_err(|source| BenchError::Io { path, source })?;
        let mut base = reports::Record::new(reports::RecordKind::Kernel, "", "");
        base.run_id = format!("{}-{}", crate::suite::timestamp(), std::process::id());
        base.suite = "kernels".to_string();
        base.device = Some(system.cpu.clone());
        base.git_commit = Some(format!(
            "{}{}",
            system.git_commit,
            if system.git_dirty { "-dirty" } else { "" }
        ));
        base.warnings = system.warnings();
        Ok(Sink { writer, base })
    }

    fn append(&mut self, k: &KernelRecord) -> Result<(), BenchError> {
        let mut r = self.base.clone();
        r.timestamp = crate::suite::timestamp();
        fill_record(k, &mut r);
        Ok(self.writer.append(&r)?)
    }
}

/// Deterministic weights for a format: ternary {−s, 0, +s} for ternary formats, else uniform.
pub fn synthetic_weights(f: &dyn WeightFormat, m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    if f.info().ternary {
        let s = 0.015625;
        (0..m * k)
            .map(|_| (rng.below(3) as f32 - 1.0) * s)
            .collect()
    } else {
        (0..m * k).map(|_| rng.unit() * 0.05).collect()
    }
}

/// Run every case; `on_record` sees each record as soon as it is measured.
pub fn run(
    opts: &Options,
    mut on_record: impl FnMut(&KernelRecord),
) -> Result<(Vec<Bandwidth>, Vec<KernelRecord>), BenchError> {
    let mut bandwidths = Vec::new();
    let mut records = Vec::new();
    let planted = planted_slowdown()?;
    if let Some(f) = planted {
        eprintln!("warning: {}", planted_warning(f));
    }
    let mut sink = opts.out.as_deref().map(Sink::create).transpose()?;
    let mut counters_reported = false;
    for &threads in &opts.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| BenchError::Pool(threads, e.to_string()))?;
        // Each buffer is measured whole once, then sampled between the cases' timed calls.
        let mut probes = Vec::new();
        for &resident in &opts.residents {
            let probe = pool.install(|| bandwidth::ProbeBuffer::new(resident, threads));
            bandwidths.push(install_polling(&pool, || probe.measure(10)));
            probes.push((resident, probe));
        }
        // Formats are timed interleaved (A B C A B C ...) per shape, so drift hits all alike.
        for &(m, k) in &opts.shapes {
            let mut prepared = Vec::new();
            for name in &opts.formats {
                let f = find_format(name)?;
                let isa = forced(opts.kernel.as_deref(), f.info().name);
                let w = synthetic_weights(f, m, k, 0x5eed ^ (m * 31 + k) as u64);
                let packed = f.pack(&w, m, k)?;
                let kernel = prepare(f, Bytes::copy_from_slice(&packed), m, k, isa)?;
                prepared.push((f, isa, packed, kernel));
            }
            for &tokens in &opts.tokens {
                let mut checks = Vec::new();
                for (f, _, packed, kernel) in &prepared {
                    checks
                        .push(pool.install(|| check_output(*f, kernel.as_ref(), packed, tokens))?);
                }
                for &resident in &opts.residents {
                    let upfront = bandwidths
                        .iter()
                        .rev()
                        .find(|b| b.resident == resident && b.threads == threads)
                        .map_or(0.0, |b| b.gbps);
                    let probe = probes
                        .iter_mut()
                        .find(|(r, _)| *r == resident)
                        .map(|(_, p)| p);
                    let mut cases = Vec::new();
                    for (f, isa, packed, _) in &prepared {
                        let copies = match resident {
                            Resident::Cache => 1,
                            // As many bytes as the probe's DRAM buffer: with less, a large
                            // LLC kept part of the copies (i2_s read 114% "of DRAM").
                            Resident::Dram => bandwidth::buffer_bytes(Resident::Dram)
                                .div_ceil(packed.len().max(1))
                                .max(2),
                        };
                        let mut kernels: Vec<Box<dyn MatMul>> = Vec::with_capacity(copies);
                        // Each copy owns its bytes, so the copies cannot share cache lines.
                        for _ in 0..copies {
                            let own = Bytes::copy_from_slice(packed);
                            kernels.push(prepare(*f, own, m, k, *isa)?);
                        }
                        cases.push(kernels);
                    }
                    let (all_samples, probe_gbps) = install_polling(&pool, || {
                        time_interleaved(&cases, tokens, opts, planted, probe)
                    });
                    // The roofline is what the machine was seen to attain: the higher of the
                    // run's probe and the reads between these cases. Either alone read low at
                    // times on a busy host (kernels at 117% and 130% "of bandwidth").
                    let bw = probe_gbps.map_or(upfront, |g| g.max(upfront));
                    let energies: Vec<Option<crate::energy::EnergyReport>> =
                        match opts.energy.as_deref().filter(|s| s.meter().is_some()) {
                            Some(session) => install_polling(&pool, || {
                                cases
                                    .iter()
                                    .map(|c| energy_pass(c, tokens, session))
                                    .collect()
                            }),
                            None => vec![None; cases.len()],
                        };
                    let instructions = if threads == 1 {
                        match pool.install(|| count_instructions(&cases, tokens)) {
                            Ok(counts) => counts,
                            Err(why) => {
                                if !counters_reported {
                                    eprintln!("note: no instruction counts: {why}");
                                    counters_reported = true;
                                }
                                vec![None; cases.len()]
                            }
                        }
                    } else {
                        vec![None; cases.len()]
                    };
                    for (
                        ((((f, _, packed, kernel), check), (samples, kernels)), instructions),
                        energy,
                    ) in prepared
                        .iter()
                        .zip(&checks)
                        .zip(all_samples.into_iter().zip(&cases))
                        .zip(instructions)
                        .zip(energies)
                    {
                        let Some(s) = Summary::of(&samples) else {
                            continue;
                        };
                        let gbps = packed.len() as f64 / s.median;
                        let record = KernelRecord {
                            format: f.info().name.to_string(),
                            kernel: kernel.variant(),
                            m,
                            k,
                            tokens,
                            threads,
                            resident,
                            bits_per_weight: f.info().bits_per_weight,
                            weight_bytes: packed.len(),
                            median_ns: s.median,
                            mean_ns: s.mean,
                            stddev_ns: s.stddev,
                            ci95_ns: s.ci95,
                            repetitions: s.n,
                            gops: 2.0 * (m * k * tokens) as f64 / s.median,
                            gbps,
                            bandwidth_fraction: if bw > 0.0 { gbps / bw } else { 0.0 },
                            bandwidth_gbps: bw,
                            copies: kernels.len(),
                            check: check.clone(),
                            samples_ns: samples,
                            instructions,
                            energy,
                            warnings: planted
                                .map(planted_warning)
                                .into_iter()
                                .chain((bw > 0.0 && gbps > bw).then(|| {
                                    format!(
                                        "read {gbps:.1} GB/s, above the {bw:.1} GB/s the probe \
                                         attained: the fraction of bandwidth is over 1"
                                    )
                                }))
                                .collect(),
                        };
                        if let Some(sink) = &mut sink {
                            sink.append(&record)?;
                        }
                        on_record(&record);
                        records.push(record);
                    }
                }
            }
        }
    }
    Ok((bandwidths, records))
}

fn forced(spec: Option<&str>, format: &str) -> Option<Isa> {
    spec.and_then(|s| kernels::cpu::forced_isa(s, format))
        .and_then(Result::ok)
}

/// Validate a `--kernel` spec before any measurement.
pub fn validate_kernel_spec(spec: &str, formats: &[String]) -> Result<(), String> {
    for f in formats {
        if let Some(Err(bad)) = kernels::cpu::forced_isa(spec, f) {
            let known: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
            return Err(format!(
                "--kernel {spec}: '{bad}' is no instruction set (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// One case run alone for [`ENERGY_PASS_SECONDS`] between two marks of the meter: energy per
/// call, as J per "token" (call × activation columns). Untimed, so it cannot disturb the samples.
fn energy_pass(
    kernels: &[Box<dyn MatMul>],
    tokens: usize,
    session: &crate::energy::Session,
) -> Option<crate::energy::EnergyReport> {
    let first = kernels.first()?;
    let (m, k) = (first.rows(), first.cols());
    let mut rng = SplitMix64(7);
    let x: Vec<f32> = (0..tokens * k).map(|_| rng.unit()).collect();
    let mut y = vec![0.0f32; tokens * m];
    let seconds = ENERGY_PASS_SECONDS.max(2.0 * session.min_window().as_secs_f64());
    let from = session.mark()?;
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        first.matmul(&x, tokens, &mut y).ok()?;
        calls += 1;
    }
    black_box(&y);
    let to = session.mark()?;
    Some(session.report(&[crate::energy::Window {
        phase: crate::energy::Phase::Decode,
        from,
        to,
        tokens: calls * tokens as u64,
    }]))
}

/// Timed products of several cases, one sample of each in turn (A B C A B C ...), each case
/// cycling through its copies, until every case has `repetitions` samples and the cases together
/// have run `min_seconds` each (at most 10 000 samples a case). A case that fails gets none.
/// With a `planted` fraction, each timed call then busy-waits that fraction of its own time.
fn time_interleaved(
    cases: &[Vec<Box<dyn MatMul>>],
    tokens: usize,
    opts: &Options,
    planted: Option<f64>,
    mut probe: Option<&mut bandwidth::ProbeBuffer>,
) -> (Vec<Vec<f64>>, Option<f64>) {
    // Samples of each of the probe's two readers.
    let mut probe_gbps = [Vec::new(), Vec::new()];
    // Time spent in the cases since the last probe sample, and that sample's own duration.
    let (mut since_probe, mut probe_cost) = (0.0f64, 0.0f64);
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut alive: Vec<bool> = vec![true; cases.len()];
    let mut bufs = Vec::new();
    for kernels in cases {
        let (m, k) = kernels.first().map_or((0, 0), |f| (f.rows(), f.cols()));
        let mut rng = SplitMix64(42);
        let x: Vec<f32> = (0..tokens * k).map(|_| rng.unit()).collect();
        bufs.push((x, vec![0.0f32; tokens * m]));
    }
    // Warm-up: one pass over every copy (faults pages, settles frequency and caches).
    for (i, kernels) in cases.iter().enumerate() {
        let (x, y) = &mut bufs[i];
        alive[i] =
            !kernels.is_empty() && kernels.iter().all(|kern| kern.matmul(x, tokens, y).is_ok());
    }
    let started = Instant::now();
    let budget = opts.min_seconds * cases.len() as f64;
    let mut round = 0usize;
    loop {
        let short = samples
            .iter()
            .zip(&alive)
            .any(|(s, &a)| a && s.len() < opts.repetitions);
        if (!short && started.elapsed().as_secs_f64() >= budget) || round >= 10_000 {
            break;
        }
        for (i, kernels) in cases.iter().enumerate() {
            if !alive[i] {
                continue;
            }
            let (x, y) = &mut bufs[i];
            let kern = &kernels[round % kernels.len()];
            let t = Instant::now();
            let ok = kern.matmul(x, tokens, y).is_ok();
            if let Some(fraction) = planted {
                let until = t.elapsed().mul_f64(1.0 + fraction);
                while t.elapsed() < until {
                    std::hint::spin_loop();
                }
            }
            let ns = t.elapsed().as_nanos() as f64;
            since_probe += ns * 1e-9;
            black_box(&*y);
            if ok {
                samples[i].push(ns);
            } else {
                alive[i] = false;
                samples[i].clear();
            }
        }
        round += 1;
        if let Some(p) = probe.as_deref_mut() {
            // Probe at the start and then whenever the cases have run four times as long as
            // one probe read: samples span the whole window for at most a fifth more time.
            if round == 1 || since_probe >= 4.0 * probe_cost {
                let t = Instant::now();
                let i = probe_gbps[0].len() + probe_gbps[1].len();
                probe_gbps[i % 2].push(p.sample(bandwidth::ProbeBuffer::READERS[i % 2]));
                probe_cost = t.elapsed().as_secs_f64();
                since_probe = 0.0;
            }
        }
    }
    if let Some(p) = probe {
        for (g, reader) in probe_gbps.iter_mut().zip(bandwidth::ProbeBuffer::READERS) {
            g.push(p.sample(reader));
        }
    }
    // The faster reader's median, as the up-front probe keeps the faster of the two.
    let gbps = probe_gbps
        .iter()
        .filter_map(|g| Summary::of(g))
        .map(|s| s.median)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    (samples, gbps)
}

/// Instructions per call of every case, counted on the calling thread over [`COUNTED_CALLS`]
/// untimed calls (cycling copies); `Err` says why counters are unavailable. A case whose
/// counter was multiplexed off the PMU the whole time, or whose call failed, gets `None`.
fn count_instructions(
    cases: &[Vec<Box<dyn MatMul>>],
    tokens: usize,
) -> Result<Vec<Option<f64>>, String> {
    use perf_event::events::Hardware;
    let mut counter = perf_event::Builder::new(Hardware::INSTRUCTIONS)
        .build()
        .map_err(|e| {
            let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
                .map_or_else(|_| "unknown".to_string(), |s| s.trim().to_string());
            format!(
                "perf hardware counter unavailable ({e}; kernel.perf_event_paranoid = {paranoid}; \
                 VMs often expose no PMU); the instructions field stays empty"
            )
        })?;
    let mut out = Vec::with_capacity(cases.len());
    for kernels in cases {
        let (m, k) = kernels.first().map_or((0, 0), |f| (f.rows(), f.cols()));
        let x = vec![0.5f32; tokens * k];
        let mut y = vec![0.0f32; tokens * m];
        let mut ok = !kernels.is_empty();
        counter
            .reset()
            .map_err(|e| format!("perf counter reset: {e}"))?;
        counter
            .enable()
            .map_err(|e| format!("perf counter enable: {e}"))?;
        for i in 0..COUNTED_CALLS {
            if let Some(kern) = kernels.get(i % kernels.len().max(1)) {
                ok &= kern.matmul(&x, tokens, &mut y).is_ok();
            }
        }
        counter
            .disable()
            .map_err(|e| format!("perf counter disable: {e}"))?;
        black_box(&y);
        let read = counter
            .read_count_and_time()
            .map_err(|e| format!("perf counter read: {e}"))?;
        // Scale for multiplexing: the counter may have run for part of the enabled time only.
        out.push((ok && read.time_running > 0).then(|| {
            read.count as f64 * read.time_enabled as f64
                / read.time_running as f64
                / COUNTED_CALLS as f64
        }));
    }
    Ok(out)
}

/// Compare the kernel with the scalar reference for the first and last token, every row.
fn check_output(
    f: &dyn WeightFormat,
    kernel: &dyn MatMul,
    packed: &[u8],
    tokens: usize,
) -> Result<Check, BenchError> {
    let (m, k) = (kernel.rows(), kernel.cols());
    let mut rng = SplitMix64(7);
    let x: Vec<f32> = (0..tokens * k).map(|_| rng.unit() * 2.0).collect();
    let mut y = vec![f32::NAN; tokens * m];
    kernel.matmul(&x, tokens, &mut y)?;
    let w = f.unpack(packed, m, k)?;
    let l1: Vec<f32> = w
        .chunks_exact(k)
        .map(|r| r.iter().map(|v| v.abs()).sum())
        .collect();
    let checked: Vec<usize> = if tokens > 1 {
        vec![0, tokens - 1]
    } else {
        vec![0]
    };
    let mut max_rel = 0.0f64;
    for &t in &checked {
        let xt = &x[t * k..(t + 1) * k];
        let reference = f.gemv_ref(packed, m, k, xt)?;
        let xmax = xt.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        for (r, (&got, &want)) in y[t * m..(t + 1) * m].iter().zip(&reference).enumerate() {
            let scale = f64::from(l1[r] * xmax).max(f64::MIN_POSITIVE);
            let rel = f64::from((got - want).abs()) / scale;
            if !got.is_finite() || rel > f64::from(CHECK_TOL) {
                return Err(BenchError::WrongOutput {
                    format: f.info().name.to_string(),
                    m,
                    k,
                    detail: format!(
                        "{} token {t} row {r}: {got} against the reference {want}",
                        kernel.variant()
                    ),
                });
            }
            max_rel = max_rel.max(rel);
        }
    }
    Ok(Check {
        tokens_checked: checked.len(),
        rows_checked: m,
        max_rel_err: max_rel,
        tolerance: f64::from(CHECK_TOL),
    })
}

/// The human table's header and one line per record.
pub fn table_header() -> String {
    format!(
        "{:<18} {:>11} {:>6} {:>3} {:>5} {:>11} {:>18} {:>8} {:>8} {:>6} {:>7}",
        "kernel",
        "m x k",
        "tokens",
        "thr",
        "where",
        "median",
        "95% CI",
        "GOP/s",
        "GB/s",
        "of BW",
        "BW GB/s"
    )
}

pub fn table_line(r: &KernelRecord) -> String {
    format!(
        "{:<18} {:>11} {:>6} {:>3} {:>5} {:>9.1}us {:>18} {:>8.1} {:>8.2} {:>5.0}% {:>7.1}",
        r.kernel,
        format!("{}x{}", r.m, r.k),
        r.tokens,
        r.threads,
        r.resident.name(),
        r.median_ns / 1e3,
        format!("[{:.1}, {:.1}]us", r.ci95_ns[0] / 1e3, r.ci95_ns[1] / 1e3),
        r.gops,
        r.gbps,
        r.bandwidth_fraction * 100.0,
        r.bandwidth_gbps
    )
}
