//! `ternbench compare`: the regression gate, on two result sets or on two binaries run
//! alternately.
//!
//! Interleaved mode runs `BASELINE_BIN ARGS... --out DIR` and `CANDIDATE_BIN ARGS... --out DIR`
//! for N rounds in ABBA order (A B, B A, A B, ...), so slow drift of a shared machine (frequency,
//! neighbours, thermal state) lands on both sides alike instead of on whichever ran second. The
//! rounds are then compared with [`compare::compare_rounds`]: per case, each round's ratio of
//! medians (its two runs ran back to back), the median over rounds, and an interval from
//! resampling rounds, so a slow spell that hits both runs of a round cancels.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use reports::compare::{self, CompareError, Comparison};
use reports::Record;

/// Exit status: no regression.
pub const EXIT_OK: i32 = 0;
/// Exit status: at least one case regressed.
pub const EXIT_REGRESSION: i32 = 1;
/// Exit status: the comparison could not be made.
pub const EXIT_ERROR: i32 = 2;

/// Arguments of `ternbench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Baseline results: a results.jsonl or results.csv file, or a directory holding one.
    #[arg(required_unless_present = "interleave")]
    pub baseline: Option<PathBuf>,
    /// Candidate results: a results.jsonl or results.csv file, or a directory holding one.
    #[arg(required_unless_present = "interleave")]
    pub candidate: Option<PathBuf>,
    /// Regression threshold in percent: a case regresses only when its whole 95% interval of
    /// the time ratio lies above 1 + PCT/100.
    #[arg(long, value_name = "PCT", default_value_t = 5.0)]
    pub threshold: f64,
    /// Print a Markdown table for a pull-request comment.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print a JSON array of per-case objects.
    #[arg(long)]
    pub json: bool,
    /// Run --baseline-bin and --candidate-bin alternately (ABBA) on the `-- ARGS...` after
    /// them, a `kernels ...` invocation, and compare them paired by round.
    #[arg(long, requires_all = ["baseline_bin", "candidate_bin"], conflicts_with_all = ["baseline", "candidate"])]
    pub interleave: bool,
    /// The baseline ternbench binary (interleaved mode).
    #[arg(long, value_name = "A", requires = "interleave")]
    pub baseline_bin: Option<PathBuf>,
    /// The candidate ternbench binary (interleaved mode).
    #[arg(long, value_name = "B", requires = "interleave")]
    pub candidate_bin: Option<PathBuf>,
    /// Rounds; each runs both binaries once, ABBA ordered across rounds (50 or more on noisy
    /// shared runners, see docs/regression-gate.md).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub rounds: usize,
    /// KEY=VALUE set for the candidate runs only (and removed from the baseline's environment);
    /// repeatable.
    #[arg(long = "candidate-env", value_name = "KEY=VALUE")]
    pub candidate_env: Vec<String>,
    /// Keep every run's results in this directory (default: a temporary one, removed after).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// The benchmark to run, after `--`: `kernels --format ... --shape ...` (no --out or --json).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// What stops a comparison (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Compare(#[from] CompareError),
    #[error("{0}")]
    Usage(String),
    #[error("could not start {}: {source}", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} {} failed ({status}):\n{stderr}", bin.display(), args.join(" "))]
    RunFailed {
        bin: PathBuf,
        args: Vec<String>,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

/// Runs `ternbench compare`, prints its table and returns the exit status (0, 1 or 2).
pub fn main(args: &CompareArgs) -> i32 {
    match run(args) {
        Ok(comparison) => match render(args, &comparison) {
            Ok(text) => {
                print!("{text}");
                comparison.exit_code()
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_ERROR
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ERROR
        }
    }
}

/// The comparison the arguments ask for, without printing it.
pub fn run(args: &CompareArgs) -> Result<Comparison, GateError> {
    if !(args.threshold.is_finite() && (0.0..100.0).contains(&args.threshold)) {
        return Err(GateError::Usage(format!(
            "--threshold {}: expected a percentage in [0, 100)",
            args.threshold
        )));
    }
    let threshold = args.threshold / 100.0;
    if args.interleave {
        return interleaved(args, threshold);
    }
    let (Some(base), Some(cand)) = (&args.baseline, &args.candidate) else {
        return Err(GateError::Usage(
            "give BASELINE and CANDIDATE results, or --interleave with --baseline-bin and --candidate-bin".into(),
        ));
    };
    let (b, bw) = compare::load_results(base)?;
    let (c, cw) = compare::load_results(cand)?;
    let mut comparison = compare::compare(&b, &c, threshold)?;
    comparison.warnings.extend(bw.into_iter().chain(cw));
    Ok(comparison)
}

/// The comparison as the chosen output format.
pub fn render(args: &CompareArgs, comparison: &Comparison) -> Result<String, GateError> {
    Ok(if args.json {
        format!("{}\n", serde_json::to_string_pretty(&comparison.cases)?)
    } else if args.markdown {
        comparison.to_markdown()
    } else {
        comparison.to_text()
    })
}

// `KEY=VALUE` pairs of --candidate-env.
fn parse_env(pairs: &[String]) -> Result<Vec<(String, String)>, GateError> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(GateError::Usage(format!(
                "--candidate-env {p:?}: expected KEY=VALUE"
            ))),
        })
        .collect()
}

fn check_bench_args(args: &[String]) -> Result<(), GateError> {
    match args.first().map(String::as_str) {
        Some("kernels") => {}
        _ => {
            return Err(GateError::Usage(
                "--interleave needs the benchmark after `--`: -- kernels --format ... --shape ..."
                    .into(),
            ))
        }
    }
    if let Some(bad) = args
        .iter()
        .find(|a| ["--out", "--json"].contains(&a.split('=').next().unwrap_or_default()))
    {
        return Err(GateError::Usage(format!(
            "{bad}: compare adds --out itself; leave --out and --json out of ARGS"
        )));
    }
    Ok(())
}

fn interleaved(args: &CompareArgs, threshold: f64) -> Result<Comparison, GateError> {
    let (Some(a), Some(b)) = (&args.baseline_bin, &args.candidate_bin) else {
        return Err(GateError::Usage(
            "--interleave needs --baseline-bin and --candidate-bin".into(),
        ));
    };
    check_bench_args(&args.args)?;
    if args.rounds < 2 {
        return Err(GateError::Usage(format!(
            "--rounds {}: at least 2 are needed to see run-to-run variance",
            args.rounds
        )));
    }
    let env = parse_env(&args.candidate_env)?;
    let (work, temporary) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "ternbench-compare-{}-{}",
                std::process::id(),
                crate::suite::timestamp().replace(':', "")
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&work).map_err(|source| GateError::Io {
        path: work.clone(),
        source,
    })?;
    let result = run_rounds(args, a, b, &env, &work);
    if temporary {
        // Best effort: a leftover temporary directory is harmless, and the verdict matters more.
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(compare::compare_rounds(&result?, threshold)?)
}

/// One round's (baseline, candidate) records.
type Round = (Vec<Record>, Vec<Record>);

// Every round's (baseline, candidate) records, read back from the runs' --out directories.
fn run_rounds(
    args: &CompareArgs,
    a: &Path,
    b: &Path,
    env: &[(String, String)],
    work: &Path,
) -> Result<Vec<Round>, GateError> {
    let mut rounds = Vec::with_capacity(args.rounds);
    let started = Instant::now();
    for round in 0..args.rounds {
        let mut base = Vec::new();
        let mut cand = Vec::new();
        // ABBA: even rounds run the baseline first, odd rounds the candidate first.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_candidate in order {
            let (side, bin) = if is_candidate {
                ("candidate", b)
            } else {
                ("baseline", a)
            };
            let out = work.join(format!("round{round:03}-{side}"));
            let mut cmd = Command::new(bin);
            cmd.args(&args.args)
                .arg("--out")
                .arg(&out)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            for (k, v) in env {
                if is_candidate {
                    cmd.env(k, v);
                } else {
                    cmd.env_remove(k);
                }
            }
            let t = Instant::now();
            let output = cmd.output().map_err(|source| GateError::Spawn {
                bin: bin.to_owned(),
                source,
            })?;
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if !output.status.success() {
                return Err(GateError::RunFailed {
                    bin: bin.to_owned(),
                    args: args.args.clone(),
                    status: output.status,
                    stderr,
                });
            }
            // The first run of each side shows its notes (counters, planted hook) once.
            if round == 0 && !stderr.trim().is_empty() {
                eprint!("{side}: {stderr}");
            }
            let (records, warning) = compare::load_results(&out)?;
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "round {}/{} {side}: {} records in {:.1} s",
                round + 1,
                args.rounds,
                records.len(),
                t.elapsed().as_secs_f64()
            );
            if is_candidate {
                cand = records;
            } else {
                base = records;
            }
        }
        rounds.push((base, cand));
    }
    eprintln!(
        "{} rounds in {:.1} s",
        args.rounds,
        started.elapsed().as_secs_f64()
    );
    Ok(rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_args_must_be_a_kernels_run_without_out() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_bench_args(&v(&["kernels", "--format", "tq2_0"])).is_ok());
        assert!(check_bench_args(&v(&["run", "--suite", "quick"])).is_err());
        assert!(check_bench_args(&v(&[])).is_err());
        assert!(check_bench_args(&v(&["kernels", "--out", "x"])).is_err());
        assert!(check_bench_args(&v(&["kernels", "--out=x"])).is_err());
        assert!(check_bench_args(&v(&["kernels", "--json"])).is_err());
    }

    #[test]
    fn candidate_env_pairs() {
        let pairs = parse_env(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("C".into(), String::new())
            ]
        );
        assert!(parse_env(&["NOVALUE".into()]).is_err());
        assert!(parse_env(&["=1".into()]).is_err());
    }
}
