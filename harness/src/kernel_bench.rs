//! `ternbench kernels`: time every format's GEMV/GEMM at the model's shapes and relate each
//! figure to the memory bandwidth the harness measures in the same run.
//!
//! Every case first checks its kernel's output against the scalar reference (two tokens, all
//! rows), so no speed is ever reported for wrong results.

use std::hint::black_box;
use std::time::Instant;

use kernels::matmul::prepare;
use kernels::{find_format, Isa, MatMul, WeightFormat};
use serde::Serialize;

use crate::bandwidth::{self, Bandwidth, Resident};
use crate::stats::{SplitMix64, Summary};

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
}

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
    for &threads in &opts.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| BenchError::Pool(threads, e.to_string()))?;
        for &resident in &opts.residents {
            bandwidths.push(bandwidth::measure(resident, threads, 10));
        }
        // Formats are timed interleaved (A B C A B C ...) per shape, so drift hits all alike.
        for &(m, k) in &opts.shapes {
            let mut prepared = Vec::new();
            for name in &opts.formats {
                let f = find_format(name)?;
                let isa = forced(opts.kernel.as_deref(), f.info().name);
                let w = synthetic_weights(f, m, k, 0x5eed ^ (m * 31 + k) as u64);
                let packed = f.pack(&w, m, k)?;
                let kernel = prepare(f, &packed, m, k, isa)?;
                prepared.push((f, isa, packed, kernel));
            }
            for &tokens in &opts.tokens {
                let mut checks = Vec::new();
                for (f, _, packed, kernel) in &prepared {
                    checks
                        .push(pool.install(|| check_output(*f, kernel.as_ref(), packed, tokens))?);
                }
                for &resident in &opts.residents {
                    let bw = bandwidths
                        .iter()
                        .rev()
                        .find(|b| b.resident == resident && b.threads == threads)
                        .map_or(0.0, |b| b.gbps);
                    let mut cases = Vec::new();
                    for (f, isa, packed, _) in &prepared {
                        let copies = match resident {
                            Resident::Cache => 1,
                            Resident::Dram => (4 * bandwidth::llc_bytes())
                                .div_ceil(packed.len().max(1))
                                .max(2),
                        };
                        let mut kernels: Vec<Box<dyn MatMul>> = Vec::with_capacity(copies);
                        for _ in 0..copies {
                            kernels.push(prepare(*f, packed, m, k, *isa)?);
                        }
                        cases.push(kernels);
                    }
                    let all_samples = pool.install(|| time_interleaved(&cases, tokens, opts));
                    for (((f, _, packed, kernel), check), (samples, kernels)) in prepared
                        .iter()
                        .zip(&checks)
                        .zip(all_samples.into_iter().zip(&cases))
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
                        };
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

/// Timed products of several cases, one sample of each in turn (A B C A B C ...), each case
/// cycling through its copies, until every case has `repetitions` samples and the cases together
/// have run `min_seconds` each (at most 10 000 samples a case). A case that fails gets none.
fn time_interleaved(
    cases: &[Vec<Box<dyn MatMul>>],
    tokens: usize,
    opts: &Options,
) -> Vec<Vec<f64>> {
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
            let ns = t.elapsed().as_nanos() as f64;
            black_box(&*y);
            if ok {
                samples[i].push(ns);
            } else {
                alive[i] = false;
                samples[i].clear();
            }
        }
        round += 1;
    }
    samples
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
        "{:<18} {:>11} {:>6} {:>3} {:>5} {:>11} {:>18} {:>8} {:>8} {:>6}",
        "kernel", "m x k", "tokens", "thr", "where", "median", "95% CI", "GOP/s", "GB/s", "of BW"
    )
}

pub fn table_line(r: &KernelRecord) -> String {
    format!(
        "{:<18} {:>11} {:>6} {:>3} {:>5} {:>9.1}us {:>18} {:>8.1} {:>8.2} {:>5.0}%",
        r.kernel,
        format!("{}x{}", r.m, r.k),
        r.tokens,
        r.threads,
        r.resident.name(),
        r.median_ns / 1e3,
        format!("[{:.1}, {:.1}]us", r.ci95_ns[0] / 1e3, r.ci95_ns[1] / 1e3),
        r.gops,
        r.gbps,
        r.bandwidth_fraction * 100.0
    )
}
