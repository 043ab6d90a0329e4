//! `ternbench model run`: prefill and decode timing of a whole model, checked and put against
//! the DRAM bandwidth measured in the same run.
//!
//! Every timed token's logits are checked finite, and the model's kernels were checked against
//! the scalar reference when it loaded, so no speed is reported for broken output.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use backends::{CpuBackend, CpuConfig, KvType};
use serde::Serialize;

use crate::bandwidth::{self, Resident};
use crate::energy::{EnergyReport, Phase, Session, Window};
use crate::gguf::Gguf;
use crate::model::{LoadOptions, Logits, Model, ModelError, WeightCheck};
use crate::sampling::{Sampler, SamplerConfig, SamplingError};
use crate::stats::{SplitMix64, Summary};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Prompt tokens (prefill); ignored when `prompt_tokens` is given.
    pub prompt: usize,
    /// Tokens to generate (decode).
    pub generate: usize,
    /// Prefill + decode repetitions, each from an empty cache.
    pub repetitions: usize,
    /// 0: one per logical CPU.
    pub threads: usize,
    pub kv_type: KvType,
    /// A kernel spec as `--kernel` takes it.
    pub kernel: Option<String>,
    /// Seed of the synthetic prompt's token ids.
    pub seed: u64,
    /// A prompt to tokenize with the model's own tokenizer instead of synthetic ids.
    pub prompt_text: Option<String>,
    /// How generated tokens are chosen (greedy by default).
    pub sampler: SamplerConfig,
    /// Measure DRAM bandwidth for the roofline (skip in tests to save time).
    pub bandwidth: bool,
    /// The energy probe marking each timed window; `None`: energy not measured.
    pub energy: Option<Arc<Session>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            prompt: 64,
            generate: 32,
            repetitions: 3,
            threads: 0,
            kv_type: KvType::F16,
            kernel: None,
            seed: 1,
            prompt_text: None,
            sampler: SamplerConfig::greedy(),
            bandwidth: true,
            energy: None,
        }
    }
}

/// One model run, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The file's name.
    pub model: String,
    pub arch: String,
    /// The format of the layer matrices (`tq2_0`).
    pub format: String,
    /// The kernel variant of the layer matrices (`tq2_0/avx512vnni`).
    pub kernel: String,
    /// Every variant the model ran, the lm_head's included.
    pub kernels: Vec<String>,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    pub kv_type: String,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub repetitions: usize,
    /// Prompt tokens per second (median over repetitions) and its bootstrap 95% interval.
    pub pp_tps: f64,
    pub pp_tps_ci95: [f64; 2],
    /// Generated tokens per second (median) and its 95% interval.
    pub tg_tps: f64,
    pub tg_tps_ci95: [f64; 2],
    /// Time to first token: the prefill plus the first sampled token, median.
    pub ttft_ms: f64,
    /// The process's peak resident set (VmHWM), measured before the bandwidth probe.
    pub peak_rss_bytes: Option<u64>,
    pub file_bytes: u64,
    /// KV cache bytes the run's positions fill.
    pub kv_cache_bytes: u64,
    /// Weight bytes one decode step streams (layer matrices and the lm_head).
    pub bytes_per_token: u64,
    /// DRAM read bandwidth measured in this run at the same thread count (None if skipped).
    pub dram_gbps: Option<f64>,
    /// How the probe read it (`avx512+prefetch4096`), its repetitions and buffer size.
    pub dram_probe: Option<String>,
    /// bytes_per_token · tg_tps / dram bandwidth: the fraction of the roofline that decode reached.
    pub bandwidth_fraction: Option<f64>,
    /// Load-time checks of each kernel variant against the scalar reference.
    pub checks: Vec<WeightCheck>,
    /// Generated ids of the last repetition.
    pub generated: Vec<u32>,
    /// The prompt and generated text, when the model has a tokenizer and a prompt was given.
    pub text: Option<String>,
    /// Energy of the timed windows, or why it was not measured.
    pub energy: EnergyReport,
    /// The timed windows on the meter's clock, for callers that pool runs.
    #[serde(skip)]
    pub windows: Vec<Window>,
}

/// Greedy choice: the first of the largest logits.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The process's peak resident set size (Linux `VmHWM`), if the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{}: {source}", file.display())]
    Tokenizer {
        file: std::path::PathBuf,
        #[source]
        source: TokenizerError,
    },
    #[error("sampling: {0}")]
    Sampling(#[from] SamplingError),
    #[error("the prompt is empty after tokenization")]
    EmptyPrompt,
}

/// Load `path` on the CPU backend.
pub fn load(
    path: &Path,
    opts: &RunOptions,
    context: usize,
    batch: usize,
) -> Result<Model, ModelError> {
    Ok(load_from(&Gguf::open(path)?, opts, context, batch)?.0)
}

fn load_from(
    g: &Gguf,
    opts: &RunOptions,
    context: usize,
    batch: usize,
) -> Result<(Model, Arc<rayon::ThreadPool>), ModelError> {
    let backend = CpuBackend::new(CpuConfig {
        threads: opts.threads,
        kernel: opts.kernel.clone(),
        pin: true,
    })?;
    let pool = backend.pool();
    let model = Model::load(
        g,
        Box::new(backend),
        &LoadOptions {
            context,
            kv_type: opts.kv_type,
            batch,
            verify: true,
        },
    )?;
    Ok((model, pool))
}

/// Run prefill and decode `repetitions` times and summarize.
pub fn run(path: &Path, opts: &RunOptions) -> Result<RunRecord, RunError> {
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let g = Gguf::open(path).map_err(ModelError::from)?;
    let tokenizer = match &opts.prompt_text {
        Some(_) => Some(
            Tokenizer::from_gguf(&g).map_err(|source| RunError::Tokenizer {
                file: path.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let prompt: Vec<u32> = match (&tokenizer, &opts.prompt_text) {
        (Some(tok), Some(text)) => tok.encode(text, tok.wants_bos()),
        _ => {
            let vocab = crate::model::Config::from_gguf(&g)?.vocab.max(1);
            let mut rng = SplitMix64(opts.seed);
            (0..opts.prompt.max(1))
                .map(|_| rng.below(vocab) as u32)
                .collect()
        }
    };
    if prompt.is_empty() {
        return Err(RunError::EmptyPrompt);
    }
    let context = prompt.len() + opts.generate;
    let (mut model, pool) = load_from(&g, opts, context, prompt.len().min(512))?;
    drop(g);
    let (mut pp, mut tg, mut ttft) = (Vec::new(), Vec::new(), Vec::new());
    let mut generated = Vec::new();
    let session = opts
        .energy
        .clone()
        .unwrap_or_else(|| Arc::new(Session::not_measured("no probe given to this run")));
    let mut windows = Vec::new();
    // Everything timed runs on a pool worker, so each op's parallel work starts where it is
    // issued instead of waking the pool from outside (see `CpuBackend::pool`), and the other
    // workers poll between ops instead of sleeping (see `kernels::pool`).
    kernels::pool::install_polling(&pool, || -> Result<(), RunError> {
        // Warm-up: one untimed token touches every weight page and spins the pool up.
        model.forward(&prompt[..1], Logits::Last)?;
        let mut window = |phase, from: Option<power::Mark>, tokens: usize| {
            if let (Some(from), Some(to)) = (from, session.mark()) {
                windows.push(Window {
                    phase,
                    from,
                    to,
                    tokens: tokens as u64,
                });
            }
        };
        for _ in 0..opts.repetitions.max(1) {
            // Each repetition samples the same sequence: same seed, same logits.
            let mut sampler = Sampler::new(opts.sampler)?;
            model.reset();
            generated.clear();
            let mark = session.mark();
            let start = Instant::now();
            let logits = model.forward(&prompt, Logits::Last)?;
            let prefill = start.elapsed().as_secs_f64();
            window(Phase::Prefill, mark, prompt.len());
            let mut next = sampler.sample(&logits)?;
            ttft.push(start.elapsed().as_secs_f64() * 1e3);
            pp.push(prompt.len() as f64 / prefill);
            let mark = session.mark();
            let start = Instant::now();
            for _ in 0..opts.generate {
                generated.push(next);
                let logits = model.forward(&[next], Logits::Last)?;
                next = sampler.sample(&logits)?;
            }
            if opts.generate > 0 {
                tg.push(opts.generate as f64 / start.elapsed().as_secs_f64());
                window(Phase::Decode, mark, opts.generate);
            }
        }
        Ok(())
    })?;
    // Timing runs a fixed number of tokens, as llama-bench does; the text stops at end-of-generation.
    let text = tokenizer.as_ref().map(|tok| {
        let end = generated
            .iter()
            .position(|&t| tok.is_eog(t))
            .unwrap_or(generated.len());
        format!("{}{}", tok.decode(&prompt), tok.decode(&generated[..end]))
    });
    let peak_rss_bytes = peak_rss_bytes();
    let c = &model.config;
    let kv_cache_bytes = (2 * c.layers * context * c.kv_dim() * opts.kv_type.bytes()) as u64;
    let bytes_per_token = model.bytes_per_token() as u64;
    let threads = model.backend().threads();
    let summary = |v: &[f64]| Summary::of(v).map_or((0.0, [0.0; 2]), |s| (s.median, s.ci95));
    let (pp_tps, pp_tps_ci95) = summary(&pp);
    let (tg_tps, tg_tps_ci95) = summary(&tg);
    let kernel = model.linear_variant()?;
    let probe = opts
        .bandwidth
        .then(|| bandwidth::measure(Resident::Dram, threads, 5))
        .filter(|b| b.gbps > 0.0);
    let dram_gbps = probe.as_ref().map(|b| b.gbps);
    let dram_probe = probe.as_ref().map(|b| {
        format!(
            "{} loads, {} threads, {} MiB buffer, median of {} repetitions",
            b.reader,
            b.threads,
            b.buffer_bytes >> 20,
            b.repetitions
        )
    });
    Ok(RunRecord {
        model: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        ),
        arch: c.arch_name.clone(),
        format: kernel.split('/').next().unwrap_or_default().to_string(),
        kernels: model.variants()?,
        kernel,
        backend: model.backend().name().to_string(),
        device: model.backend().device(),
        threads,
        kv_type: opts.kv_type.name().to_string(),
        prompt_tokens: prompt.len(),
        gen_tokens: opts.generate,
        repetitions: opts.repetitions.max(1),
        pp_tps,
        pp_tps_ci95,
        tg_tps,
        tg_tps_ci95,
        ttft_ms: Summary::of(&ttft).map_or(0.0, |s| s.median),
        peak_rss_bytes,
        file_bytes,
        kv_cache_bytes,
        bytes_per_token,
        dram_gbps,
        dram_probe,
        bandwidth_fraction: dram_gbps.map(|g| bytes_per_token as f64 * tg_tps / (g * 1e9)),
        checks: model.checks.clone(),
        generated,
        text,
        energy: session.report(&windows),
        windows,
    })
}

impl RunRecord {
    /// The human-readable summary `ternbench model run` prints.
    pub fn table(&self) -> String {
        let mut s = format!(
            "model {} ({}), kernel {}, {} threads on {} ({})\n",
            self.model, self.arch, self.kernel, self.threads, self.backend, self.device
        );
        s += &format!(
            "prefill  {:>4} tokens: {:>9.2} tokens/s  (median of {}, 95% CI {:.2}..{:.2})\n",
            self.prompt_tokens,
            self.pp_tps,
            self.repetitions,
            self.pp_tps_ci95[0],
            self.pp_tps_ci95[1]
        );
        s += &format!(
            "decode   {:>4} tokens: {:>9.2} tokens/s  (median of {}, 95% CI {:.2}..{:.2})\n",
            self.gen_tokens,
            self.tg_tps,
            self.repetitions,
            self.tg_tps_ci95[0],
            self.tg_tps_ci95[1]
        );
        s += &format!("time to first token: {:.1} ms\n", self.ttft_ms);
        s += &format!(
            "weights read per token: {:.1} MB; ",
            self.bytes_per_token as f64 / 1e6
        );
        match (self.dram_gbps, self.bandwidth_fraction) {
            (Some(g), Some(f)) => {
                s += &format!(
                    "DRAM read bandwidth {g:.1} GB/s ({}); decode at {:.0}% of that roofline\n",
                    self.dram_probe.as_deref().unwrap_or("probe"),
                    f * 100.0
                )
            }
            _ => s += "DRAM bandwidth not measured\n",
        }
        s += &format!(
            "peak RSS {}; file {:.1} MB; KV cache ({}) {:.1} MB\n",
            self.peak_rss_bytes
                .map_or("unknown".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            self.file_bytes as f64 / 1e6,
            self.kv_type,
            self.kv_cache_bytes as f64 / 1e6
        );
        s += &self.energy.table();
        if let Some(t) = &self.text {
            s += &format!("text: {t}\n");
        }
        for c in &self.checks {
            s += &format!(
                "checked {} ({}x{}) on {} against the scalar reference: max rel err {:.1e}\n",
                c.tensor, c.rows, c.cols, c.variant, c.max_rel_err
            );
        }
        s
    }
}
