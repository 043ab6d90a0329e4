//! Model files: `ternbench quantize` (convert a GGUF model's linear weights to another format)
//! and `ternbench model synth` (write a model of a preset's shapes with random ternary weights).
//!
//! Both stream: tensors are read from the input's memory map and written through
//! [`GgufWriter`] one row chunk at a time ([`CHUNK_WEIGHTS`]), so memory stays bounded by a chunk,
//! never the model. Exceptions, bounded by the largest tensor: TL1/TL2 (tiled layouts, packed
//! whole) on either side, and I2_S output of `quantize` (its per-tensor scale needs a first pass
//! over the tensor, which reads the map twice but holds only a chunk).
//!
//! **TL1/TL2 scale tensors.** bitnet.cpp's converter writes each TL1/TL2 weight's scale as a
//! separate one-element F32 tensor `<name>_scale` right after the weight, which GGUF's 32-byte
//! alignment places exactly where the runtime reads it (data + offset of the weight's 32-byte
//! tail; research/formats.md §6). Our writer cannot overlap tensors, so we write both: the scale
//! in the weight's own tail (what the kernels and the fork's runtime read) and the `<name>_scale`
//! tensor after it (so the tensor directory matches the fork's files). `quantize` drops such
//! scale tensors from its input and makes new ones when the target is TL1/TL2.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use datasets::presets::Preset;
use kernels::formats::{i2_s, tl1, tl2};
use kernels::{find_format, KernelError, WeightFormat};
use rayon::prelude::*;

use crate::gguf::{Gguf, GgufError, GgufWriter, NewTensor, TensorInfo, TensorType, Value};
use crate::stats::SplitMix64;

/// Weights converted per chunk (16 MiB of f32): the unit of streaming.
pub const CHUNK_WEIGHTS: usize = 1 << 22;
/// ggml's GGML_QNT_VERSION, which llama.cpp's quantizer records.
pub const QUANTIZATION_VERSION: u32 = 2;
/// RMSNorm epsilon written into synthetic models (BitNet b1.58 2B4T's).
pub const RMS_EPS: f32 = 1e-5;
/// Suffix of bitnet.cpp's separate TL1/TL2 scale tensors.
pub const SCALE_SUFFIX: &str = "_scale";

/// The types `quantize` and `synth` write: (name, tensor type, llama.cpp / bitnet.cpp file type).
/// File types: llama.cpp `llama_ftype` (F16 1, Q4_0 2, Q8_0 7, Q4_K_S 14, Q6_K 18, BF16 32,
/// TQ1_0 36, TQ2_0 37) and the bitnet.cpp fork's (TL1 38, TL2 39, I2_S 40), formats.md §6.
pub const TYPES: &[(&str, TensorType, u32)] = &[
    ("f32", TensorType::F32, 0),
    ("f16", TensorType::F16, 1),
    ("bf16", TensorType::Bf16, 32),
    ("q8_0", TensorType::Q8_0, 7),
    ("q4_0", TensorType::Q4_0, 2),
    ("q4_K", TensorType::Q4K, 14),
    ("q6_K", TensorType::Q6K, 18),
    ("tq1_0", TensorType::Tq1_0, 36),
    ("tq2_0", TensorType::Tq2_0, 37),
    ("i2_s", TensorType::I2S, 40),
    ("tl1", TensorType::Tl1, 38),
    ("tl2", TensorType::Tl2, 39),
];

const TYPE_NAMES: &str = "f32, f16, bf16, q8_0, q4_0, q4_K, q6_K, tq1_0, tq2_0, i2_s, tl1, tl2";

/// What went wrong; every variant names the file (and the tensor, where one is involved).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{}: unknown tensor type '{name}' (one of {TYPE_NAMES})", file.display())]
    UnknownType { file: PathBuf, name: String },
    #[error("{}: tensor '{tensor}': {source}", file.display())]
    Kernel {
        file: PathBuf,
        tensor: String,
        source: KernelError,
    },
    #[error("{}: tensor '{tensor}': {reason}", file.display())]
    Tensor {
        file: PathBuf,
        tensor: String,
        reason: String,
    },
    #[error("{}: {reason}", file.display())]
    Invalid { file: PathBuf, reason: String },
    #[error("{}: {source}", file.display())]
    Io { file: PathBuf, source: io::Error },
}

/// Why one tensor failed, before the file and tensor names are attached.
enum Why {
    Kernel(KernelError),
    Reason(String),
    Write(io::Error),
}

impl From<KernelError> for Why {
    fn from(e: KernelError) -> Self {
        Why::Kernel(e)
    }
}

impl From<io::Error> for Why {
    fn from(e: io::Error) -> Self {
        Why::Write(e)
    }
}

/// Attach names: content errors belong to `input` (the source, or the preset), writes to `output`.
fn named(why: Why, input: &Path, output: &Path, tensor: &str) -> ConvertError {
    match why {
        Why::Kernel(source) => ConvertError::Kernel {
            file: input.to_path_buf(),
            tensor: tensor.to_string(),
            source,
        },
        Why::Reason(reason) => ConvertError::Tensor {
            file: input.to_path_buf(),
            tensor: tensor.to_string(),
            reason,
        },
        Why::Write(source) => ConvertError::Io {
            file: output.to_path_buf(),
            source,
        },
    }
}

/// The tensor type of a format name (`tq2_0`, `Q4_K`, case-insensitive), if we write it.
pub fn tensor_type(name: &str) -> Option<TensorType> {
    TYPES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, t, _)| t)
}

/// llama.cpp's / bitnet.cpp's `general.file_type` for a model whose linear weights are `ty`.
pub fn file_type(ty: TensorType) -> Option<u32> {
    TYPES.iter().find(|(_, t, _)| *t == ty).map(|&(_, _, f)| f)
}

fn parse_type(name: &str, file: &Path) -> Result<TensorType, ConvertError> {
    tensor_type(name).ok_or_else(|| ConvertError::UnknownType {
        file: file.to_path_buf(),
        name: name.to_string(),
    })
}

/// Whether a tensor is a linear weight that `quantize` converts: a 2-D `blk.*` weight that is not
/// a norm, or the untied `output.weight`.
pub fn is_linear_weight(name: &str, dims: &[u64]) -> bool {
    dims.len() == 2
        && (name == "output.weight"
            || (name.starts_with("blk.") && name.ends_with(".weight") && !name.contains("norm")))
}

/// (rows, cols) of a tensor: ggml's ne1·ne2·ne3 rows of ne0 columns.
pub fn shape(dims: &[u64]) -> Result<(usize, usize), String> {
    let cols = usize::try_from(*dims.first().unwrap_or(&1)).map_err(|_| "ne0 too large")?;
    let rows = dims.iter().skip(1).try_fold(1usize, |acc, &d| {
        usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    });
    Ok((rows.ok_or("row count overflows")?, cols))
}

/// The kernels-crate format that packs `ty` (None for F32, which is written directly).
fn format_of(ty: TensorType) -> Result<Option<&'static dyn WeightFormat>, Why> {
    match ty {
        TensorType::F32 => Ok(None),
        _ => {
            let name = ty
                .format_name()
                .ok_or_else(|| Why::Reason(format!("type {ty} has no format to convert with")))?;
            Ok(Some(find_format(name)?))
        }
    }
}

/// TL1/TL2 files carry no tiling, so only shapes with a bitnet.cpp-style preset are written.
fn check_tl_preset(ty: TensorType, rows: usize, cols: usize) -> Result<(), Why> {
    let known = match ty {
        TensorType::Tl1 => tl1::PRESETS
            .iter()
            .any(|p| p.rows == rows && p.cols == cols),
        TensorType::Tl2 => tl2::PRESETS
            .iter()
            .any(|p| p.rows == rows && p.cols == cols),
        _ => true,
    };
    if known {
        return Ok(());
    }
    let name = ty.format_name().unwrap_or("tl");
    Err(Why::Reason(format!(
        "{name} has no tiling preset for {rows}x{cols} (rows x cols); the file does not record \
         a tiling, so only preset shapes are written (kernels/src/formats/{name} PRESETS); \
         use i2_s or tq2_0 and repack at load time"
    )))
}

/// TL2's type id 39 reads as TL2 only in files whose architecture starts with `bitnet`.
fn check_fork_readable(ty: TensorType, arch: &str, file: &Path) -> Result<(), ConvertError> {
    if ty == TensorType::Tl2 && !arch.starts_with("bitnet") {
        return Err(ConvertError::Invalid {
            file: file.to_path_buf(),
            reason: format!(
                "tl2 (type id 39) is read as TL2 only in bitnet* architectures (elsewhere 39 is \
                 MXFP4); this file's architecture is '{arch}'"
            ),
        });
    }
    Ok(())
}

/// Rows of a stored tensor, dequantized to f32 on demand.
enum Source<'a> {
    F32(&'a [u8]),
    Blocked {
        format: &'static dyn WeightFormat,
        data: &'a [u8],
        row_bytes: usize,
    },
    I2s {
        data: &'a [u8],
        scale: f32,
    },
    Whole(Vec<f32>),
}

impl<'a> Source<'a> {
    fn open(data: &'a [u8], ty: TensorType, rows: usize, cols: usize) -> Result<Self, Why> {
        match ty {
            TensorType::F32 => Ok(Source::F32(data)),
            TensorType::I2S => Ok(Source::I2s {
                data,
                scale: i2_s::scale(data, rows, cols)?,
            }),
            TensorType::Tl1 | TensorType::Tl2 => match format_of(ty)? {
                Some(f) => Ok(Source::Whole(f.unpack(data, rows, cols)?)),
                None => Err(Why::Reason(format!("cannot read {ty}"))),
            },
            _ => match format_of(ty)? {
                Some(format) => Ok(Source::Blocked {
                    format,
                    data,
                    row_bytes: format.tensor_bytes(1, cols)?,
                }),
                None => Err(Why::Reason(format!("cannot read {ty}"))),
            },
        }
    }

    /// Rows r0..r0+n as f32, row-major.
    fn rows(&self, r0: usize, n: usize, cols: usize) -> Result<Vec<f32>, Why> {
        let short = || Why::Reason(format!("rows {r0}..{} lie outside the data", r0 + n));
        match self {
            Source::F32(data) => {
                let bytes = data
                    .get(r0 * cols * 4..(r0 + n) * cols * 4)
                    .ok_or_else(short)?;
                Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
            Source::Blocked {
                format,
                data,
                row_bytes,
            } => {
                let bytes = data
                    .get(r0 * row_bytes..(r0 + n) * row_bytes)
                    .ok_or_else(short)?;
                Ok(format.unpack(bytes, n, cols)?)
            }
            Source::I2s { data, scale } => {
                let row_bytes = cols / 4;
                let bytes = data
                    .get(r0 * row_bytes..(r0 + n) * row_bytes)
                    .ok_or_else(short)?;
                let mut out = Vec::with_capacity(n * cols);
                for (r, row) in bytes.chunks_exact(row_bytes.max(1)).enumerate() {
                    for i in 0..cols {
                        let c = i2_s::code(row, i);
                        if c > 2 {
                            return Err(Why::Kernel(KernelError::BadCode {
                                format: "i2_s",
                                what: "code",
                                offset: (r0 + r) * row_bytes + i / 128 * 32 + i % 32,
                                code: c,
                            }));
                        }
                        out.push((f32::from(c) - 1.0) * scale);
                    }
                }
                Ok(out)
            }
            Source::Whole(all) => Ok(all
                .get(r0 * cols..(r0 + n) * cols)
                .ok_or_else(short)?
                .to_vec()),
        }
    }
}

/// Rows per streaming chunk for rows of `cols` weights (at least one).
fn chunk_rows(cols: usize) -> usize {
    (CHUNK_WEIGHTS / cols.max(1)).max(1)
}

/// Pack row-major f32 rows as `ty`; row-blocked formats in parallel pieces, bytes in row order.
fn pack_rows(ty: TensorType, values: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>, Why> {
    let Some(format) = format_of(ty)? else {
        return Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    };
    // Tensor-level layouts (one scale, tiles across rows) pack in one piece.
    if rows == 0 || cols == 0 || matches!(ty, TensorType::I2S | TensorType::Tl1 | TensorType::Tl2) {
        return Ok(format.pack(values, rows, cols)?);
    }
    // Pieces of whole rows, a few per thread, so that every core packs.
    let piece = rows.div_ceil(4 * rayon::current_num_threads()).max(1);
    let parts: Vec<Result<Vec<u8>, KernelError>> = values
        .par_chunks(piece * cols)
        .map(|p| format.pack(p, p.len() / cols, cols))
        .collect();
    let mut out = Vec::with_capacity(format.tensor_bytes(rows, cols).unwrap_or(0));
    for p in parts {
        out.extend_from_slice(&p?);
    }
    Ok(out)
}

/// The I2_S tail: the f32 scale, then zeros (bitnet.cpp leaves them uninitialised).
fn i2s_tail(scale: f32) -> [u8; i2_s::TAIL_BYTES] {
    let mut tail = [0u8; i2_s::TAIL_BYTES];
    tail[..4].copy_from_slice(&scale.to_le_bytes());
    tail
}

/// The scale in the 32-byte tail of a packed I2_S / TL1 / TL2 tensor.
fn tail_scale(packed: &[u8]) -> f32 {
    let at = packed.len().saturating_sub(32);
    match packed.get(at..at + 4) {
        Some(b) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0.0,
    }
}

/// Convert one stored tensor to `to`, streaming; returns the tensor scale for TL1/TL2 output.
fn convert_tensor<W: Write>(
    src: &Source<'_>,
    rows: usize,
    cols: usize,
    to: TensorType,
    out: &mut GgufWriter<W>,
) -> Result<Option<f32>, Why> {
    match to {
        TensorType::Tl1 | TensorType::Tl2 => {
            check_tl_preset(to, rows, cols)?;
            let values = src.rows(0, rows, cols)?;
            let packed = pack_rows(to, &values, rows, cols)?;
            out.write_data(&packed)?;
            Ok(Some(tail_scale(&packed)))
        }
        TensorType::I2S => {
            i2_s::I2S.tensor_bytes(rows, cols)?;
            let step = chunk_rows(cols);
            // Pass 1: the tensor scale s = max|w|, each chunk checked to be {0, ±s_chunk}.
            let mut scale = 0.0f32;
            let mut chunk_scales = Vec::new();
            for r0 in (0..rows).step_by(step) {
                let n = step.min(rows - r0);
                let s = i2_s::ternary_scale("i2_s", &src.rows(r0, n, cols)?)?;
                chunk_scales.push((r0, s));
                scale = scale.max(s);
            }
            // Chunks must agree on s, as one tensor-wide check would demand.
            for &(r0, s) in &chunk_scales {
                if s != 0.0 && (s - scale).abs() > scale * i2_s::TERNARY_REL_TOL {
                    return Err(Why::Reason(format!(
                        "not ternary: rows from {r0} have scale {s}, the tensor's is {scale}; \
                         ternarize first (absmean, BitNet b1.58 §2)"
                    )));
                }
            }
            // Pass 2: codes by bitnet.cpp's sign test; rows start on 128-weight blocks.
            for r0 in (0..rows).step_by(step) {
                let n = step.min(rows - r0);
                let codes: Vec<u8> = src
                    .rows(r0, n, cols)?
                    .iter()
                    .map(|&w| i2_s::ternary_code(w))
                    .collect();
                let mut packed = vec![0u8; n * cols / 4];
                i2_s::pack_codes(&codes, &mut packed);
                out.write_data(&packed)?;
            }
            out.write_data(&i2s_tail(scale))?;
            Ok(None)
        }
        _ => {
            let step = chunk_rows(cols);
            for r0 in (0..rows).step_by(step) {
                let n = step.min(rows - r0);
                let values = src.rows(r0, n, cols)?;
                out.write_data(&pack_rows(to, &values, n, cols)?)?;
            }
            Ok(None)
        }
    }
}

/// Options of [`quantize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizeOptions {
    /// Target of the linear weights, a [`TYPES`] name (`tq2_0`, `i2_s`, `q4_0`, ...).
    pub target: String,
    /// Type of `token_embd.weight`; None keeps its stored type.
    pub embedding: Option<String>,
}

/// What a conversion or synthesis wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub path: PathBuf,
    pub tensors: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// What to do with one output tensor.
enum Step {
    Copy(usize),
    Convert(usize, TensorType),
    /// The `<name>_scale` tensor of the TL1/TL2 weight written just before.
    Scale,
}

/// Convert `input`'s linear weights (see [`is_linear_weight`]) to `opts.target` and write
/// `output`. Norms (1-D tensors) become F32, `token_embd.weight` keeps its type unless
/// `opts.embedding` says otherwise, anything else is copied; metadata is copied with
/// `general.file_type` and `general.quantization_version` set. A failed run removes `output`.
pub fn quantize(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
) -> Result<Written, ConvertError> {
    let start = Instant::now();
    let target = parse_type(&opts.target, input)?;
    let embedding = opts
        .embedding
        .as_deref()
        .map(|e| parse_type(e, input))
        .transpose()?;
    check_not_same(input, output)?;
    let src = Gguf::open(input)?;
    check_fork_readable(target, src.architecture().unwrap_or(""), output)?;
    if let Some(e) = embedding {
        check_fork_readable(e, src.architecture().unwrap_or(""), output)?;
    }
    let result = create(output).and_then(|file| {
        let tensors = quantize_to(&src, file, output, target, embedding)?;
        Ok(tensors)
    });
    finish_file(output, result, start)
}

/// Refuse to overwrite the input: it is memory-mapped while the output is written.
fn check_not_same(input: &Path, output: &Path) -> Result<(), ConvertError> {
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        if a == b {
            return Err(ConvertError::Invalid {
                file: output.to_path_buf(),
                reason: "the output is the input file".into(),
            });
        }
    }
    Ok(())
}

fn create(path: &Path) -> Result<BufWriter<File>, ConvertError> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 22, f))
        .map_err(|source| ConvertError::Io {
            file: path.to_path_buf(),
            source,
        })
}

/// Sum up a finished file, or remove a partial one.
fn finish_file(
    path: &Path,
    result: Result<usize, ConvertError>,
    start: Instant,
) -> Result<Written, ConvertError> {
    match result {
        Ok(tensors) => {
            let bytes = std::fs::metadata(path)
                .map_err(|source| ConvertError::Io {
                    file: path.to_path_buf(),
                    source,
                })?
                .len();
            Ok(Written {
                path: path.to_path_buf(),
                tensors,
                bytes,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            // Best effort: a half-written model must not be mistaken for a good one.
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

/// Metadata with `key` set to `value`, in place if present, else appended.
fn set_key(metadata: &mut Vec<(String, Value)>, key: &str, value: Value) {
    match metadata.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => metadata.push((key.to_string(), value)),
    }
}

/// The streaming body of [`quantize`]: write the converted `src` into `out`; returns the tensor
/// count. `out_path` only names the output in errors.
pub fn quantize_to<W: Write>(
    src: &Gguf,
    out: W,
    out_path: &Path,
    target: TensorType,
    embedding: Option<TensorType>,
) -> Result<usize, ConvertError> {
    let ftype = file_type(target).ok_or_else(|| ConvertError::UnknownType {
        file: src.path.clone(),
        name: format!("{target}"),
    })?;
    let mut metadata = src.metadata.clone();
    set_key(&mut metadata, "general.file_type", Value::U32(ftype));
    set_key(
        &mut metadata,
        "general.quantization_version",
        Value::U32(QUANTIZATION_VERSION),
    );
    let mut dir = Vec::with_capacity(src.tensors.len());
    let mut steps = Vec::with_capacity(src.tensors.len());
    for (i, t) in src.tensors.iter().enumerate() {
        // An input's TL scale tensors are rebuilt (or dropped) with their weights.
        if let Some(base) = t.name.strip_suffix(SCALE_SUFFIX) {
            let weight = src.tensor(base);
            if t.elements() == 1
                && t.ty == TensorType::F32
                && weight.is_some_and(|w| matches!(w.ty, TensorType::Tl1 | TensorType::Tl2))
            {
                continue;
            }
        }
        let to = if t.name == "token_embd.weight" {
            embedding.unwrap_or(t.ty)
        } else if is_linear_weight(&t.name, &t.dims) {
            target
        } else if t.dims.len() == 1 && matches!(t.ty, TensorType::F16 | TensorType::Bf16) {
            TensorType::F32
        } else {
            t.ty
        };
        dir.push(NewTensor {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: to,
        });
        steps.push(if to == t.ty {
            Step::Copy(i)
        } else {
            Step::Convert(i, to)
        });
        if matches!(to, TensorType::Tl1 | TensorType::Tl2) {
            dir.push(NewTensor {
                name: format!("{}{SCALE_SUFFIX}", t.name),
                dims: vec![1],
                ty: TensorType::F32,
            });
            steps.push(Step::Scale);
        }
    }
    let input = src.path.as_path();
    let mut w = GgufWriter::new(out, &metadata, &dir).map_err(|e| ConvertError::Invalid {
        file: out_path.to_path_buf(),
        reason: format!("cannot lay out the output: {e}"),
    })?;
    let mut last_scale = 0.0f32;
    for (step, new) in steps.iter().zip(&dir) {
        let fail = |why| named(why, input, out_path, &new.name);
        match *step {
            Step::Copy(i) => {
                let t = &src.tensors[i];
                if matches!(t.ty, TensorType::Tl1 | TensorType::Tl2) {
                    last_scale = tail_scale(src.data(t));
                }
                w.write_data(src.data(t)).map_err(|e| fail(e.into()))?;
                // Each input tensor is read once: drop its pages so a big model's input
                // never sits resident beside its output.
                src.release(t);
            }
            Step::Convert(i, to) => {
                let t = &src.tensors[i];
                let (rows, cols) = shape(&t.dims).map_err(|r| fail(Why::Reason(r)))?;
                let source = Source::open(src.data(t), t.ty, rows, cols).map_err(fail)?;
                if let Some(s) = convert_tensor(&source, rows, cols, to, &mut w).map_err(fail)? {
                    last_scale = s;
                }
                src.release(t);
            }
            Step::Scale => {
                w.write_data(&last_scale.to_le_bytes())
                    .map_err(|e| fail(e.into()))?;
            }
        }
    }
    w.finish().map_err(|source| ConvertError::Io {
        file: out_path.to_path_buf(),
        source,
    })?;
    Ok(dir.len())
}

/// A tensor's values as row-major f32, whatever its stored type (F32, or any format with an
/// unpack: F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K, TQ1_0, TQ2_0, I2_S, TL1, TL2).
pub fn dequantize(g: &Gguf, t: &TensorInfo) -> Result<Vec<f32>, ConvertError> {
    let fail = |why| named(why, &g.path, &g.path, &t.name);
    let (rows, cols) = shape(&t.dims).map_err(|r| fail(Why::Reason(r)))?;
    let source = Source::open(g.data(t), t.ty, rows, cols).map_err(fail)?;
    source.rows(0, rows, cols).map_err(fail)
}

/// A synthesized model kept in `cache` as `<label>-<format>-seed0.gguf`: written once, under a
/// temporary name renamed into place, so an interrupted write never looks like a cached model.
pub fn synth_cached(
    cache: &Path,
    label: &str,
    preset: Preset,
    format: &str,
) -> Result<PathBuf, ConvertError> {
    let path = cache.join(format!("{label}-{format}-seed0.gguf"));
    if path.exists() {
        return Ok(path);
    }
    let io = |file: &Path| {
        let file = file.to_path_buf();
        move |source| ConvertError::Io { file, source }
    };
    std::fs::create_dir_all(cache).map_err(io(cache))?;
    let partial = path.with_extension("gguf.partial");
    synth(
        &SynthOptions {
            preset,
            format: format.to_string(),
            seed: 0,
            embedding: None,
        },
        &partial,
    )?;
    std::fs::rename(&partial, &path).map_err(io(&partial))?;
    Ok(path)
}

/// Options of [`synth`].
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    pub preset: Preset,
    /// Format of the linear weights, a [`TYPES`] name.
    pub format: String,
    pub seed: u64,
    /// Type of `token_embd.weight`; None: [`default_embedding`].
    pub embedding: Option<String>,
}

/// The embedding type upstream's files use: F16 in bitnet.cpp's `bitnet-b1.58` (2B4T), Q6_K
/// where llama.cpp's quantizer made the file (`bitnet`).
pub fn default_embedding(arch: &str) -> TensorType {
    if arch == "bitnet-b1.58" {
        TensorType::F16
    } else {
        TensorType::Q6K
    }
}

/// The per-tensor scale of a synthetic linear weight with `cols` inputs: ternary weights with
/// p(±1) = 2/3 and unit-RMS inputs give outputs of RMS s·√(2·cols/3), so s = √(1.5/cols) keeps
/// every projection at unit scale (the sub-norms renormalise before o and down, and the
/// residual grows only as √layers). Rounded to f16, so every format stores it exactly.
pub fn weight_scale(cols: usize) -> f32 {
    half::f16::from_f32((1.5 / cols.max(1) as f64).sqrt() as f32).to_f32()
}

/// Half-width of the uniform synthetic embedding: √(3/hidden) gives logits of unit spread
/// through the tied lm_head on a unit-RMS final hidden state.
pub fn embedding_range(hidden: usize) -> f32 {
    (3.0 / hidden.max(1) as f64).sqrt() as f32
}

/// The metadata of a synthetic model (llama.cpp key names under the preset's architecture).
pub fn synth_metadata(preset: &Preset, weights: TensorType) -> Vec<(String, Value)> {
    let arch = preset.arch.as_str();
    let key = |k: &str| format!("{arch}.{k}");
    let u32v = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (
            "general.name".into(),
            Value::String(format!("{} (ternbench synthetic)", preset.name)),
        ),
        (
            "general.file_type".into(),
            Value::U32(file_type(weights).unwrap_or(0)),
        ),
        (
            "general.quantization_version".into(),
            Value::U32(QUANTIZATION_VERSION),
        ),
        (key("vocab_size"), u32v(preset.vocab)),
        (key("context_length"), u32v(preset.context)),
        (key("embedding_length"), u32v(preset.hidden)),
        (key("block_count"), u32v(preset.layers)),
        (key("feed_forward_length"), u32v(preset.ffn)),
        (key("attention.head_count"), u32v(preset.heads)),
        (key("attention.head_count_kv"), u32v(preset.kv_heads)),
        (key("rope.dimension_count"), u32v(preset.head_dim())),
        (key("rope.freq_base"), Value::F32(preset.rope_base)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(RMS_EPS)),
        // llama.cpp requires the key; "no_vocab" (older) and "none" both mean a vocabulary of
        // {arch}.vocab_size ids and no tokenizer. Older builds accept only "no_vocab".
        (
            "tokenizer.ggml.model".into(),
            Value::String("no_vocab".into()),
        ),
    ]
}

/// What fills a synthetic tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fill {
    Ones,
    /// Uniform in [-a, a).
    Uniform(f32),
    /// {-s, 0, +s}, about a third each.
    Ternary(f32),
    /// The scale of the TL weight written just before.
    Scale(f32),
}

/// The tensor directory of a synthetic model, in llama.cpp's order (embedding, output norm,
/// then each layer's tensors), with what fills each tensor.
fn synth_plan(
    preset: &Preset,
    weights: TensorType,
    embedding: TensorType,
) -> Vec<(NewTensor, Fill)> {
    let t = |name: String, dims: Vec<u64>, ty| NewTensor { name, dims, ty };
    let (h, f) = (preset.hidden as u64, preset.ffn as u64);
    let mut plan = vec![
        (
            t(
                "token_embd.weight".into(),
                vec![h, preset.vocab as u64],
                embedding,
            ),
            Fill::Uniform(embedding_range(preset.hidden)),
        ),
        (
            t("output_norm.weight".into(), vec![h], TensorType::F32),
            Fill::Ones,
        ),
    ];
    let tl = matches!(weights, TensorType::Tl1 | TensorType::Tl2);
    let matrices = preset.layer_matrices();
    for l in 0..preset.layers {
        let norm = |name: &str, n: u64| {
            (
                t(format!("blk.{l}.{name}.weight"), vec![n], TensorType::F32),
                Fill::Ones,
            )
        };
        let linear = |plan: &mut Vec<(NewTensor, Fill)>, range: std::ops::Range<usize>| {
            for &(m, rows, cols) in matrices.get(range).unwrap_or(&[]) {
                let s = weight_scale(cols);
                let weight = format!("blk.{l}.{m}.weight");
                plan.push((
                    t(weight.clone(), vec![cols as u64, rows as u64], weights),
                    Fill::Ternary(s),
                ));
                if tl {
                    plan.push((
                        t(format!("{weight}{SCALE_SUFFIX}"), vec![1], TensorType::F32),
                        Fill::Scale(s),
                    ));
                }
            }
        };
        // layer_matrices() order: q, k, v, o, then gate, up, down.
        plan.push(norm("attn_norm", h));
        linear(&mut plan, 0..4);
        plan.push(norm("attn_sub_norm", h));
        plan.push(norm("ffn_norm", h));
        linear(&mut plan, 4..7);
        plan.push(norm("ffn_sub_norm", f));
    }
    plan
}

/// The tensor directory of a synthetic model.
pub fn synth_tensors(
    preset: &Preset,
    weights: TensorType,
    embedding: TensorType,
) -> Vec<NewTensor> {
    synth_plan(preset, weights, embedding)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// FNV-1a of a tensor name: per-tensor streams that do not depend on tensor order.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The generator of row `r` of a tensor: rows are independent streams, so rows can be made in
/// parallel and chunking never changes the values.
fn row_rng(seed: u64, tensor: u64, r: usize) -> SplitMix64 {
    let mut mix = SplitMix64(seed ^ tensor);
    let base = mix.next_u64();
    SplitMix64(base ^ (r as u64).wrapping_mul(0xd6e8_feb8_6659_fd93))
}

/// Ternary codes c = w + 1 ∈ {0, 1, 2} of one row: four per draw, from 16-bit lanes scaled by 3.
fn ternary_codes(rng: &mut SplitMix64, out: &mut [u8]) {
    for quad in out.chunks_mut(4) {
        let x = rng.next_u64();
        for (k, c) in quad.iter_mut().enumerate() {
            let lane = (x >> (16 * k)) & 0xffff;
            *c = ((lane * 3) >> 16) as u8;
        }
    }
}

/// The f32 values of one row.
fn fill_row(fill: Fill, rng: &mut SplitMix64, out: &mut [f32]) {
    match fill {
        Fill::Ones => out.fill(1.0),
        Fill::Scale(s) => out.fill(s),
        Fill::Uniform(a) => out.iter_mut().for_each(|v| *v = rng.unit() * a),
        Fill::Ternary(s) => {
            let mut codes = vec![0u8; out.len()];
            ternary_codes(rng, &mut codes);
            for (v, c) in out.iter_mut().zip(codes) {
                *v = (f32::from(c) - 1.0) * s;
            }
        }
    }
}

/// Make rows r0..r0+n of a synthetic tensor as f32, rows in parallel.
fn synth_values(fill: Fill, seed: u64, tensor: u64, r0: usize, n: usize, cols: usize) -> Vec<f32> {
    let mut values = vec![0.0f32; n * cols];
    if cols > 0 {
        values
            .par_chunks_mut(cols)
            .enumerate()
            .for_each(|(i, row)| fill_row(fill, &mut row_rng(seed, tensor, r0 + i), row));
    }
    values
}

/// Write one synthetic tensor, streaming row chunks.
fn synth_tensor<W: Write>(
    t: &NewTensor,
    fill: Fill,
    seed: u64,
    out: &mut GgufWriter<W>,
) -> Result<(), Why> {
    let (rows, cols) = shape(&t.dims).map_err(Why::Reason)?;
    let tensor = name_hash(&t.name);
    match (t.ty, fill) {
        (TensorType::Tl1 | TensorType::Tl2, _) => {
            check_tl_preset(t.ty, rows, cols)?;
            let values = synth_values(fill, seed, tensor, 0, rows, cols);
            out.write_data(&pack_rows(t.ty, &values, rows, cols)?)?;
        }
        (TensorType::I2S, Fill::Ternary(s)) => {
            // Codes straight from the generator; I2_S rows are whole 128-weight blocks.
            i2_s::I2S.tensor_bytes(rows, cols)?;
            let row_bytes = cols / 4;
            let step = chunk_rows(cols);
            for r0 in (0..rows).step_by(step) {
                let n = step.min(rows - r0);
                let mut packed = vec![0u8; n * row_bytes];
                packed
                    .par_chunks_mut(row_bytes.max(1))
                    .enumerate()
                    .for_each(|(i, dst)| {
                        let mut codes = vec![0u8; cols];
                        ternary_codes(&mut row_rng(seed, tensor, r0 + i), &mut codes);
                        i2_s::pack_codes(&codes, dst);
                    });
                out.write_data(&packed)?;
            }
            out.write_data(&i2s_tail(s))?;
        }
        _ => {
            let step = chunk_rows(cols);
            for r0 in (0..rows).step_by(step) {
                let n = step.min(rows - r0);
                let values = synth_values(fill, seed, tensor, r0, n, cols);
                out.write_data(&pack_rows(t.ty, &values, n, cols)?)?;
            }
        }
    }
    Ok(())
}

/// Write a synthetic model of `opts.preset` to `output` (see [`synth_to`]). A failed run removes
/// `output`.
pub fn synth(opts: &SynthOptions, output: &Path) -> Result<Written, ConvertError> {
    let start = Instant::now();
    let result = create(output).and_then(|file| synth_to(opts, file, output));
    finish_file(output, result, start)
}

/// Write a synthetic model into `out`; returns the tensor count. Deterministic for a seed: the
/// same options give the same bytes. Linear weights are {-s, 0, +s} with s = [`weight_scale`]
/// (the same values in every format, so f16 / q4_0 baselines hold the ternary model), norms
/// are 1, the embedding is uniform in ±[`embedding_range`]. `path` only names the output in errors.
pub fn synth_to<W: Write>(opts: &SynthOptions, out: W, path: &Path) -> Result<usize, ConvertError> {
    let p = &opts.preset;
    let weights = parse_type(&opts.format, path)?;
    let embedding = match &opts.embedding {
        Some(e) => parse_type(e, path)?,
        None => default_embedding(&p.arch),
    };
    let bad = |reason: String| ConvertError::Invalid {
        file: path.to_path_buf(),
        reason: format!("preset '{}': {reason}", p.name),
    };
    if p.heads == 0
        || p.kv_heads == 0
        || !p.hidden.is_multiple_of(p.heads)
        || !p.heads.is_multiple_of(p.kv_heads)
    {
        return Err(bad(format!(
            "{} heads, {} KV heads and hidden {} do not divide",
            p.heads, p.kv_heads, p.hidden
        )));
    }
    check_fork_readable(weights, &p.arch, path)?;
    check_fork_readable(embedding, &p.arch, path)?;
    let plan = synth_plan(p, weights, embedding);
    let dir: Vec<NewTensor> = plan.iter().map(|(t, _)| t.clone()).collect();
    let metadata = synth_metadata(p, weights);
    let mut w = GgufWriter::new(out, &metadata, &dir).map_err(|e| bad(e.to_string()))?;
    for (t, fill) in &plan {
        synth_tensor(t, *fill, opts.seed, &mut w).map_err(|why| match why {
            // Content errors are the preset's (its shapes), not a file's.
            Why::Write(source) => ConvertError::Io {
                file: path.to_path_buf(),
                source,
            },
            other => named(other, path, path, &t.name),
        })?;
    }
    w.finish().map_err(|source| ConvertError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    Ok(dir.len())
}
