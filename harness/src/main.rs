//! `ternbench`: measure ternary LLM inference against FP16 and INT4 baselines.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use backends::KvType;
use clap::{Parser, Subcommand, ValueEnum};
use harness::bandwidth::Resident;
use harness::convert::{self, QuantizeOptions, SynthOptions, Written};
use harness::kernel_bench::{self, Options};
use harness::model::Logits;
use harness::model_run::{self, RunOptions};
use harness::sampling::SamplerConfig;
use harness::suite::{self, Suite, SuiteOptions};
use harness::sysinfo::SystemInfo;
use std::io::IsTerminal;

#[derive(Parser)]
#[command(
    name = "ternbench",
    version,
    about = "Ternary (BitNet b1.58) inference benchmark harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Where {
    Cache,
    Dram,
    Both,
}

/// Energy measurement options shared by `run`, `model run` and `power measure`.
#[derive(clap::Args, Clone)]
struct EnergyArgs {
    /// Energy probe: auto, none, rapl, rapl-perf, rapl-powercap, hwmon, android[:SERIAL],
    /// ptd://HOST:PORT, csv:FILE[@START_UNIX], estimate:TDP_WATTS (an estimate, labelled so).
    #[arg(long, default_value = "auto")]
    probe: String,
    /// Root directory that sysfs and procfs are read under (fixture trees, chroots).
    #[arg(long, default_value = "/")]
    sysfs_root: PathBuf,
    /// Seconds of idle power measured before the timed windows (0: skip; no net energy then).
    #[arg(long, default_value_t = 2.0)]
    idle: f64,
    /// Poll period of live probes, milliseconds.
    #[arg(long, default_value_t = 100)]
    power_period_ms: u64,
}

impl EnergyArgs {
    fn options(&self) -> Result<harness::energy::EnergyOptions> {
        if !(self.idle >= 0.0 && self.idle.is_finite()) {
            bail!("--idle must be a number of seconds >= 0");
        }
        Ok(harness::energy::EnergyOptions {
            probe: self.probe.parse()?,
            sysfs_root: self.sysfs_root.clone(),
            idle: std::time::Duration::from_secs_f64(self.idle),
            period: std::time::Duration::from_millis(self.power_period_ms.max(1)),
        })
    }
}

#[derive(Subcommand)]
enum PowerCommand {
    /// List the energy probes available here and, for each that is not, why.
    Probes {
        /// Root directory that sysfs is read under.
        #[arg(long, default_value = "/")]
        sysfs_root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run a command and measure its energy: ternbench power measure [OPTIONS] -- CMD ARGS...
    Measure {
        #[command(flatten)]
        energy: EnergyArgs,
        /// Print one JSON object (the command's stdout goes to stderr).
        #[arg(long)]
        json: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SuiteArg {
    Quick,
    Default,
    Full,
}

#[derive(Subcommand)]
enum Command {
    /// List every weight format: block layout, bits per weight, activation type, origin.
    Formats {
        /// Print a JSON array of {name, block_size, block_bytes, bits_per_weight, activation, origin}.
        #[arg(long)]
        json: bool,
    },
    /// Time GEMV/GEMM kernels at BitNet b1.58 2B4T's shapes against the measured memory bandwidth.
    Kernels {
        /// Formats to run (comma-separated); default: the ternary formats, f16 and q4_0.
        #[arg(long, value_delimiter = ',')]
        format: Vec<String>,
        /// Matrix shapes as MxK (rows x cols, comma-separated); default: the four 2B4T shapes.
        #[arg(long, value_delimiter = ',')]
        shape: Vec<String>,
        /// Tokens per product (1 = GEMV, more = GEMM), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        tokens: Vec<usize>,
        /// Thread counts, comma-separated; default: all logical CPUs.
        #[arg(long, value_delimiter = ',')]
        threads: Vec<usize>,
        /// Force a kernel variant: an instruction set (`scalar`, `avx2`, ...) or `format/isa`.
        #[arg(long)]
        kernel: Option<String>,
        /// Where the weights live while timed.
        #[arg(long, value_enum, default_value = "both")]
        resident: Where,
        /// Minimum timed repetitions per case.
        #[arg(long, default_value_t = 20)]
        repetitions: usize,
        /// Keep timing each case until this many seconds have passed.
        #[arg(long, default_value_t = 0.3)]
        min_time: f64,
        /// Print a JSON array of records instead of the table.
        #[arg(long)]
        json: bool,
        /// Also write results.jsonl/results.csv (and system.json) to this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two result sets (or two binaries run interleaved) case by case; exit 1 on a
    /// regression beyond the threshold, 2 on an error.
    Compare(harness::interleave::CompareArgs),
    /// Convert a GGUF model's linear weights to another format, streaming tensor by tensor.
    Quantize {
        /// The GGUF model to read.
        input: PathBuf,
        /// The GGUF model to write.
        output: PathBuf,
        /// Format of the linear weights: tq1_0, tq2_0, i2_s, tl1, tl2, q4_0, q8_0, f16, ...
        #[arg(long = "type")]
        ty: String,
        /// Format of token_embd.weight (default: keep the stored one), e.g. q6_K or f16.
        #[arg(long)]
        embedding_type: Option<String>,
    },
    /// The main job: system info, bandwidth, the kernel suite and the model suite, ternary
    /// formats against F16 and Q4_0; writes results.jsonl/.csv and report.md/.html.
    Run {
        /// quick (about 2 minutes on 2 cores), default (about 10), full (sizes and threads swept).
        #[arg(long, value_enum, default_value = "default")]
        suite: SuiteArg,
        /// Run the model suite on this GGUF instead of synthetic 2B4T-shaped models.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Output directory (default: ternbench-results/<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Threads; default: all logical CPUs.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Force a kernel variant: an instruction set or `format/isa`.
        #[arg(long)]
        kernel: Option<String>,
        /// Where synthesized models are kept (default: $TERNBENCH_CACHE or ~/.cache/ternbench).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Print the records as a JSON array on stdout (no progress bars).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        energy: EnergyArgs,
    },
    /// Energy probes: list them, or measure a command.
    Power {
        #[command(subcommand)]
        command: PowerCommand,
    },
    /// Render report.md and report.html from results of one machine, or a cross-hardware
    /// comparison when the results come from several machines (each with its system.json).
    Report {
        /// Results files (.jsonl or .csv) or result directories.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// A system.json to describe the machine (default: next to the first results file).
        #[arg(long)]
        system: Option<PathBuf>,
    },
    /// Vendor claims (datasets/claims): confirmed, refuted or untestable here, with evidence.
    Claims {
        /// Results files (.jsonl or .csv) or result directories; none: measure here.
        results: Vec<PathBuf>,
        /// Measure nothing: only the verdicts that data and the given results decide.
        #[arg(long)]
        no_measure: bool,
        /// Threads for the measurements; default: all logical CPUs.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Where synthesized models are kept (default: $TERNBENCH_CACHE or ~/.cache/ternbench).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Print a JSON array of {id, verdict, claimed, measured, evidence, needs, values, ...}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        energy: EnergyArgs,
    },
    /// Describe this machine as results record it: CPU, instruction sets, caches, memory, OS.
    Sysinfo {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Model files: synthesize one from a shape preset.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Write a GGUF model of a preset's shapes with random ternary weights (deterministic per seed).
    Synth {
        /// Shape preset (datasets/presets.toml), e.g. bitnet-b1.58-2b-4t.
        #[arg(long)]
        preset: String,
        /// Format of the linear weights: tq1_0, tq2_0, i2_s, tl1, tl2, f16, q4_0, q8_0, ...
        #[arg(long)]
        format: String,
        /// Seed of the weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Format of token_embd.weight (default: f16 for bitnet-b1.58, q6_K for bitnet).
        #[arg(long)]
        embedding_type: Option<String>,
        /// The GGUF model to write.
        output: PathBuf,
    },
    /// Time prefill and decode of a whole model (a file, or a preset synthesized into the cache).
    Run {
        #[command(flatten)]
        source: ModelSource,
        /// Prompt tokens (prefill).
        #[arg(short = 'p', long = "prompt-tokens", default_value_t = 64)]
        prompt_tokens: usize,
        /// Tokens to generate (decode).
        #[arg(short = 'n', long = "gen-tokens", default_value_t = 32)]
        gen_tokens: usize,
        /// Worker threads; default: all logical CPUs.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// KV cache type.
        #[arg(long, default_value = "f16")]
        kv_type: String,
        /// Force a kernel variant: an instruction set (`scalar`, `avx2`, ...) or `format/isa`.
        #[arg(long)]
        kernel: Option<String>,
        /// Prefill + decode repetitions.
        #[arg(long, default_value_t = 3)]
        repetitions: usize,
        /// A prompt to tokenize with the model's tokenizer (default: -p synthetic token ids).
        #[arg(long)]
        prompt: Option<String>,
        /// Sampling temperature; 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temp: f32,
        /// Keep the k most likely tokens (0: all).
        #[arg(long, default_value_t = 40)]
        top_k: usize,
        /// Keep the most likely tokens up to this probability.
        #[arg(long, default_value_t = 0.95)]
        top_p: f32,
        /// Seed of the sampler and of synthetic prompts.
        #[arg(long, default_value_t = 1)]
        sample_seed: u64,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        energy: EnergyArgs,
    },
    /// Print the logits of every position for a list of token ids.
    Logits {
        #[arg(long)]
        model: PathBuf,
        /// Token ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        tokens: Vec<u32>,
        /// KV cache type.
        #[arg(long, default_value = "f16")]
        kv_type: String,
        /// Force a kernel variant.
        #[arg(long)]
        kernel: Option<String>,
        /// Print {"tokens": [...], "logits": [[...], ...]}.
        #[arg(long)]
        json: bool,
    },
}

/// A model file, or a preset and format to synthesize one (cached by name and seed).
#[derive(clap::Args)]
struct ModelSource {
    /// A GGUF model file.
    #[arg(long, conflicts_with_all = ["preset", "format"])]
    model: Option<PathBuf>,
    /// Shape preset to synthesize (with --format).
    #[arg(long, requires = "format")]
    preset: Option<String>,
    /// Format of the synthesized model's linear weights.
    #[arg(long, requires = "preset")]
    format: Option<String>,
    /// Seed of the synthesized weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where synthesized models are kept (default: $TERNBENCH_CACHE or ~/.cache/ternbench).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

fn cache_dir(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("TERNBENCH_CACHE").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ternbench")))
        .unwrap_or_else(|| std::env::temp_dir().join("ternbench"))
}

/// The model file to run: the given one, or the preset synthesized once into the cache.
fn model_path(src: ModelSource) -> Result<PathBuf> {
    if let Some(m) = src.model {
        return Ok(m);
    }
    let (Some(preset_name), Some(format)) = (src.preset, src.format) else {
        bail!("give --model FILE, or --preset P with --format F");
    };
    let Some(preset) = datasets::presets::find(&preset_name)? else {
        bail!("unknown preset '{preset_name}'");
    };
    let dir = cache_dir(src.cache_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{preset_name}-{format}-seed{}.gguf", src.seed));
    if !path.exists() {
        eprintln!("synthesizing {} ...", path.display());
        let opts = SynthOptions {
            preset,
            format,
            seed: src.seed,
            embedding: None,
        };
        // Write under a temporary name so an interrupted run leaves no half file in the cache.
        let partial = path.with_extension("gguf.partial");
        report(&convert::synth(&opts, &partial)?);
        std::fs::rename(&partial, &path)
            .with_context(|| format!("moving {} into place", partial.display()))?;
    }
    Ok(path)
}

fn kv_type(name: &str) -> Result<KvType> {
    KvType::from_name(name).with_context(|| format!("--kv-type {name}: expected f16 or f32"))
}

fn report(w: &Written) {
    println!(
        "wrote {}: {} tensors, {:.1} MiB in {:.1} s",
        w.path.display(),
        w.tensors,
        w.bytes as f64 / (1u64 << 20) as f64,
        w.seconds
    );
}

fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let (m, k) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--shape {s}: expected MxK, e.g. 6912x2560"))?;
    let m = m
        .trim()
        .parse()
        .with_context(|| format!("--shape {s}: bad M"))?;
    let k = k
        .trim()
        .parse()
        .with_context(|| format!("--shape {s}: bad K"))?;
    Ok((m, k))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Formats { json } => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&harness::formats::rows())?
                );
            } else {
                print!("{}", harness::formats::table());
            }
        }
        Command::Compare(args) => std::process::exit(harness::interleave::main(&args)),
        Command::Kernels {
            format,
            shape,
            tokens,
            threads,
            kernel,
            resident,
            repetitions,
            min_time,
            json,
            out,
        } => {
            let mut opts = Options::default();
            if !format.is_empty() {
                opts.formats = format;
            }
            if !shape.is_empty() {
                opts.shapes = shape
                    .iter()
                    .map(|s| parse_shape(s))
                    .collect::<Result<_>>()?;
            }
            if !threads.is_empty() {
                opts.threads = threads;
            }
            if tokens.contains(&0) || opts.threads.contains(&0) {
                bail!("--tokens and --threads must be at least 1");
            }
            opts.tokens = tokens;
            opts.residents = match resident {
                Where::Cache => vec![Resident::Cache],
                Where::Dram => vec![Resident::Dram],
                Where::Both => vec![Resident::Cache, Resident::Dram],
            };
            if let Some(spec) = &kernel {
                kernel_bench::validate_kernel_spec(spec, &opts.formats)
                    .map_err(anyhow::Error::msg)?;
            }
            opts.kernel = kernel;
            opts.out = out;
            opts.repetitions = repetitions.max(1);
            opts.min_seconds = min_time.max(0.0);
            if !json {
                println!("{}", kernel_bench::table_header());
            }
            let (bandwidths, records) = kernel_bench::run(&opts, |r| {
                if !json {
                    println!("{}", kernel_bench::table_line(r));
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                println!(
                    "of BW: against BW GB/s, the higher of the probe below and the faster reader's median over probe reads taken between that case's timed calls"
                );
                for b in &bandwidths {
                    println!(
                        "measured {} read bandwidth: {:.2} GB/s (95% CI {:.2}..{:.2}), {} threads, {} MiB buffer, {} loads, {} repetitions",
                        b.resident.name(),
                        b.gbps,
                        b.gbps_ci95[0],
                        b.gbps_ci95[1],
                        b.threads,
                        b.buffer_bytes >> 20,
                        b.reader,
                        b.repetitions
                    );
                }
            }
        }
        Command::Run {
            suite,
            model,
            out,
            threads,
            kernel,
            cache_dir: cache,
            json,
            energy,
        } => {
            let opts = SuiteOptions {
                suite: match suite {
                    SuiteArg::Quick => Suite::Quick,
                    SuiteArg::Default => Suite::Default,
                    SuiteArg::Full => Suite::Full,
                },
                model,
                out: out.unwrap_or_else(suite::default_out),
                cache_dir: cache_dir(cache),
                threads,
                kernel,
                progress: !json && std::io::stderr().is_terminal(),
                energy: energy.options()?,
            };
            if let Some(spec) = &opts.kernel {
                let all: Vec<String> = kernels::FORMATS
                    .iter()
                    .map(|f| f.info().name.to_string())
                    .collect();
                kernel_bench::validate_kernel_spec(spec, &all).map_err(anyhow::Error::msg)?;
            }
            eprintln!(
                "ternbench run --suite {}: writing {}",
                opts.suite.name(),
                opts.out.display()
            );
            let outcome = suite::run(&opts).with_context(|| {
                format!(
                    "finished records are kept in {}",
                    opts.out.join("results.jsonl").display()
                )
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome.records)?);
            } else {
                print!("{}", outcome.system.table());
                print!("{}", suite::summary(&outcome.records));
                for w in outcome.system.warnings() {
                    println!("warning: {w}");
                }
                println!("{}", outcome.energy);
            }
            eprintln!("results: {}", outcome.out.join("results.jsonl").display());
            if let Some(r) = &outcome.report {
                eprintln!("report: {} and {}", r.markdown.display(), r.html.display());
            }
        }
        Command::Power { command } => match command {
            PowerCommand::Probes { sysfs_root, json } => {
                let (text, value) = harness::energy::probes_table(&sysfs_root);
                if json {
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    print!("{text}");
                }
            }
            PowerCommand::Measure {
                energy,
                json,
                command,
            } => {
                let stdout = if json {
                    std::process::Stdio::from(std::io::stderr())
                } else {
                    std::process::Stdio::inherit()
                };
                let m = harness::energy::measure_command(&energy.options()?, &command, stdout)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&m)?);
                } else {
                    let r = &m.measurement;
                    println!(
                        "{} by {} ({}): {:.3} J over {:.3} s, {:.3} W average",
                        if r.measured {
                            "measured"
                        } else {
                            "ESTIMATED (not measured)"
                        },
                        r.probe,
                        r.source,
                        r.energy_j,
                        r.duration_s,
                        r.avg_power_w
                    );
                    match (r.idle_power_w, r.net_energy_j) {
                        (Some(idle), Some(net)) => {
                            println!("idle {idle:.3} W measured before the command; net {net:.3} J")
                        }
                        _ => println!("idle not measured (--idle 0): gross energy only"),
                    }
                    println!(
                        "coverage {:.0}%, largest gap {:.3} s, {} readings, poll {:.0} ms",
                        r.coverage * 100.0,
                        r.largest_gap_s,
                        r.samples,
                        r.poll_period_s * 1e3
                    );
                    for a in &r.anomalies {
                        println!("anomaly at {:.3} s: {:?}", a.t.0, a.kind);
                    }
                    for n in &r.notes {
                        println!("note: {n}");
                    }
                }
                if m.exit_code != Some(0) {
                    bail!("the measured command failed (exit code {:?}); the figures above cover it anyway", m.exit_code);
                }
            }
        },
        Command::Report {
            results,
            out,
            system,
        } => {
            let merged = reports::merge(&results)?;
            for n in &merged.notes {
                eprintln!("note: {n}");
            }
            let files = if merged.machines.len() > 1 {
                let mut claims = Vec::new();
                for m in &merged.machines {
                    for v in harness::claims::verdicts_for_records(&m.records, &m.name)? {
                        claims.push(reports::ClaimRow {
                            machine: m.name.clone(),
                            id: v.id,
                            verdict: v.verdict.name().to_owned(),
                            claimed: v.claimed,
                            measured: v.measured,
                            evidence: v.needs.map_or(v.evidence.clone(), |n| {
                                format!("{} Needs: {n}", v.evidence)
                            }),
                        });
                    }
                }
                reports::render_machines(&merged.machines, &claims, &merged.notes, &out)?
            } else {
                let machine = merged.machines.into_iter().next();
                let system_json: Option<serde_json::Value> = match &system {
                    Some(p) => Some(
                        serde_json::from_str(
                            &std::fs::read_to_string(p)
                                .with_context(|| format!("reading {}", p.display()))?,
                        )
                        .with_context(|| format!("parsing {}", p.display()))?,
                    ),
                    None => machine.as_ref().and_then(|m| m.system.clone()),
                };
                let records = machine.map(|m| m.records).unwrap_or_default();
                reports::render(&records, system_json.as_ref(), &out)?
            };
            println!("{}\n{}", files.markdown.display(), files.html.display());
        }
        Command::Claims {
            results,
            no_measure,
            threads,
            cache_dir: cache,
            json,
            energy,
        } => {
            let verdicts = harness::claims::run(&harness::claims::Options {
                energy: energy.options()?,
                results,
                measure: !no_measure,
                threads,
                cache_dir: cache_dir(cache),
                progress: !json,
                layer_sample_max_bytes: 2_000_000_000,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&verdicts)?);
            } else {
                print!("{}", harness::claims::table(&verdicts));
            }
        }
        Command::Sysinfo { json } => {
            let info = SystemInfo::detect();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", info.table());
                for w in info.warnings() {
                    println!("warning: {w}");
                }
            }
        }
        Command::Quantize {
            input,
            output,
            ty,
            embedding_type,
        } => {
            let opts = QuantizeOptions {
                target: ty,
                embedding: embedding_type,
            };
            report(&convert::quantize(&input, &output, &opts)?);
        }
        Command::Model {
            command:
                ModelCommand::Synth {
                    preset,
                    format,
                    seed,
                    embedding_type,
                    output,
                },
        } => {
            let names = || -> Result<String> {
                let all = datasets::presets::all()?;
                Ok(all
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
            };
            let Some(preset) = datasets::presets::find(&preset)? else {
                bail!("unknown preset '{preset}' (one of: {})", names()?);
            };
            let opts = SynthOptions {
                preset,
                format,
                seed,
                embedding: embedding_type,
            };
            report(&convert::synth(&opts, &output)?);
        }
        Command::Model {
            command:
                ModelCommand::Run {
                    source,
                    prompt_tokens,
                    gen_tokens,
                    threads,
                    kv_type: kv,
                    kernel,
                    repetitions,
                    prompt,
                    temp,
                    top_k,
                    top_p,
                    sample_seed,
                    json,
                    energy,
                },
        } => {
            let path = model_path(source)?;
            let energy_opts = energy.options()?;
            let opts = RunOptions {
                prompt: prompt_tokens,
                generate: gen_tokens,
                repetitions,
                threads,
                kv_type: kv_type(&kv)?,
                kernel,
                seed: sample_seed,
                prompt_text: prompt,
                sampler: SamplerConfig {
                    temperature: temp,
                    top_k,
                    top_p,
                    seed: sample_seed,
                },
                energy: Some(std::sync::Arc::new(harness::energy::Session::start(
                    &energy_opts,
                )?)),
                ..RunOptions::default()
            };
            let record = model_run::run(&path, &opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                print!("{}", record.table());
            }
        }
        Command::Model {
            command:
                ModelCommand::Logits {
                    model,
                    tokens,
                    kv_type: kv,
                    kernel,
                    json,
                },
        } => {
            let opts = RunOptions {
                kv_type: kv_type(&kv)?,
                kernel,
                ..RunOptions::default()
            };
            let mut m = model_run::load(&model, &opts, tokens.len(), tokens.len().min(512))?;
            let flat = m.forward(&tokens, Logits::All)?;
            let rows: Vec<&[f32]> = flat.chunks(m.config.vocab.max(1)).collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({"tokens": tokens, "logits": rows}))?
                );
            } else {
                for (t, row) in tokens.iter().zip(&rows) {
                    let best = model_run::argmax(row);
                    println!("token {t:>7}: argmax {best} ({:.4})", row[best as usize]);
                }
            }
        }
    }
    Ok(())
}
