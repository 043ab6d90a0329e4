//! The `ternbench` harness: what each subcommand computes, apart from argument parsing.
//!
//! Owns the user-facing views (format tables now; runner, statistics and model runs as they
//! arrive). Depends on every lower crate; none depends on it.

pub mod formats;
