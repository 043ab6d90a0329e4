use std::path::PathBuf;

/// Everything that can go wrong writing, reading or rendering results.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be created, written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `ResultWriter::create` refuses to overwrite results of an earlier run.
    #[error("{} already exists; write to a new directory or move the old results away", .0.display())]
    Exists(PathBuf),
    /// A record could not be encoded (a float that JSON cannot hold, such as NaN, in `samples`).
    #[error("cannot encode record {test} {format}: {message}")]
    Encode {
        /// Test name of the record.
        test: String,
        /// Format of the record.
        format: String,
        /// What the encoder said.
        message: String,
    },
    /// A line of a results file is not a valid record.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The results file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The file was written by a newer ternbench.
    #[error("{}:{line}: schema_version {found} is newer than this build reads ({supported}); update ternbench to read these results", path.display())]
    SchemaTooNew {
        /// The results file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The version in the file.
        found: u64,
        /// [`crate::SCHEMA_VERSION`].
        supported: u32,
    },
    /// The last line has no newline and does not parse: the run stopped while writing it.
    #[error("{}:{line}: the last line is incomplete (the run was probably interrupted while writing it); read_records_recovering skips it", path.display())]
    Truncated {
        /// The results file.
        path: PathBuf,
        /// 1-based line number of the incomplete line.
        line: u64,
    },
    /// Only `.jsonl` and `.csv` results can be read.
    #[error("{}: no results.jsonl or results.csv in this directory", .0.display())]
    NoResults(PathBuf),
    #[error("{}: unknown results file type (expected .jsonl or .csv)", .0.display())]
    UnknownExtension(PathBuf),
    /// plotters failed to draw a chart.
    #[error("chart {chart}: {message}")]
    Chart {
        /// File stem of the chart.
        chart: String,
        /// What plotters said.
        message: String,
    },
    /// The bundled font could not be loaded.
    #[error("the bundled font assets/DejaVuSans.ttf could not be loaded")]
    Font,
}

impl ReportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }
}
