//! The `ternbench` harness: what each subcommand computes, apart from argument parsing.
//!
//! Owns the user-facing views (the format table, the kernel benchmark), the memory-bandwidth
//! probe and the statistics of repeated timings. Depends on every lower crate; none depends on it.

pub mod bandwidth;
pub mod claims;
pub mod convert;
pub mod energy;
pub mod formats;
pub mod gguf;
pub mod interleave;
pub mod kernel_bench;
pub mod model;
pub mod model_run;
pub mod sampling;
pub mod stats;
pub mod suite;
pub mod sysinfo;
pub mod tokenizer;
