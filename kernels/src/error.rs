use thiserror::Error;

/// Everything a format can refuse. Each variant names the format and what was wrong with the input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum KernelError {
    #[error("{format}: row length {len} is not a multiple of the block size {block}")]
    RowLength {
        format: &'static str,
        len: usize,
        block: usize,
    },
    #[error("{format}: {what} has {got} elements, expected {expected}")]
    BufferSize {
        format: &'static str,
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("{format}: {what}[{index}] = {value} is not finite")]
    NonFinite {
        format: &'static str,
        what: &'static str,
        index: usize,
        value: f32,
    },
    #[error(
        "{format}: weight[{index}] = {value} is not ternary (0 or ±{scale}); ternarize first (absmean, BitNet b1.58 §2)"
    )]
    NotTernary {
        format: &'static str,
        index: usize,
        value: f32,
        scale: f32,
    },
    #[error("{format}: shape {rows}x{cols} does not fit: {reason}")]
    Shape {
        format: &'static str,
        rows: usize,
        cols: usize,
        reason: String,
    },
    #[error("{format}: {what} at byte {offset} is {code}, a value the format never writes")]
    BadCode {
        format: &'static str,
        what: &'static str,
        offset: usize,
        code: u8,
    },
    #[error(
        "{format}: source block {block} has scale {scale} but the tensor's scale is {expected}; a {format} tensor holds one scale, so every non-zero block must share it"
    )]
    ScaleMismatch {
        format: &'static str,
        block: usize,
        scale: f32,
        expected: f32,
    },
    #[error("{format}: kernel variant '{variant}' cannot run: {reason}")]
    Variant {
        format: &'static str,
        variant: String,
        reason: String,
    },
    #[error("{format}: {what} is not implemented for this format")]
    Unsupported {
        format: &'static str,
        what: &'static str,
    },
    #[error("unknown format '{0}' (see `ternbench formats`)")]
    UnknownFormat(String),
}
