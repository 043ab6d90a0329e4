//! `ternbench`: measure ternary LLM inference against FP16 and INT4 baselines.

use anyhow::Result;
use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
enum Command {
    /// List every weight format: block layout, bits per weight, activation type, origin.
    Formats {
        /// Print a JSON array of {name, block_size, block_bytes, bits_per_weight, activation, origin}.
        #[arg(long)]
        json: bool,
    },
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
    }
    Ok(())
}
