//! Data that ternbench ships inside its binaries, so that no run needs a download.
//!
//! Owns the upstream golden vectors (`golden/`), the evidence that our formats are upstream's,
//! and (as the harness grows) model shape presets, vendor claims and hardware specs.

pub mod claims;
pub mod golden;
pub mod golden_tl;
pub mod hardware;
pub mod presets;

/// Failure to read an embedded data set: a bug in the data, named by file and field.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{file}: {source}")]
    Json {
        file: &'static str,
        source: serde_json::Error,
    },
    #[error("{file}: {reason}")]
    Toml { file: &'static str, reason: String },
    #[error("{file}: case {case}: field {field}: {reason}")]
    Field {
        file: &'static str,
        case: usize,
        field: &'static str,
        reason: String,
    },
}
