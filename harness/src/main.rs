//! `ternbench`: measure ternary LLM inference against FP16 and INT4 baselines.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use harness::bandwidth::Resident;
use harness::kernel_bench::{self, Options};

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
    },
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
    }
    Ok(())
}
