//! The result schema and everything that turns records into files a person reads.
//!
//! `reports` owns [`Record`] (one flat row per measured case, [`SCHEMA_VERSION`]), the
//! [`ResultWriter`] that appends each finished record to `results.jsonl` and `results.csv`
//! (flushed per record, so an interrupted run leaves valid files), the readers
//! ([`read_records`], [`read_records_recovering`]) and [`render`], which writes `report.md`, a
//! self-contained `report.html` and the charts (SVG and PNG, drawn with plotters and a bundled
//! DejaVu Sans, so no system font library is needed). It computes nothing it was not given
//! apart from ratios of medians (speedups) and their bootstrap intervals; the harness measures,
//! `power` supplies energy.

pub mod compare;
mod error;
mod report;
mod schema;
mod stats;
mod writer;

pub use error::ReportError;
pub use report::{
    merge, render, render_machines, ChartFile, ClaimRow, Machine, Merged, ReportFiles,
};
pub use schema::{field_names, Record, RecordKind, Unit, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};
pub use stats::ratio_ci95;
pub use writer::{read_records, read_records_recovering, results_file, Recovered, ResultWriter};
