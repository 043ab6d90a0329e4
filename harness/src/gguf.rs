//! GGUF v2/v3: a bounds-checked reader over a memory map (tensor data used in place) and a
//! streaming writer (header first, then tensor bytes in order, so a 100B model never sits in RAM).
//!
//! Every length, count and offset in a file is checked against the file's size before it is used,
//! so a truncated or hostile file gives a [`GgufError`] naming the file and the field, never a
//! panic or an out-of-bounds read.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernels::formats::tl2;

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: usize = 32;
/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMS: usize = 4;
/// Nesting limit for array values (real files use one level).
const MAX_ARRAY_DEPTH: usize = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => self.as_u64().map(|v| v as f32),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// ggml tensor types this reader knows the size of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    I8,
    I16,
    I32,
    I64,
    F64,
    Bf16,
    Tq1_0,
    Tq2_0,
    /// bitnet.cpp fork id 36 (upstream: removed).
    I2S,
    /// bitnet.cpp fork id 38 (upstream: removed).
    Tl1,
    /// bitnet.cpp fork id 39 (upstream: MXFP4; see [`TensorType::from_id`]).
    Tl2,
    /// upstream id 39.
    Mxfp4,
}

impl TensorType {
    /// Map a type id; `fork` says whether ids 36..=39 carry bitnet.cpp's meaning. Ids 36 and 38
    /// mean only I2_S / TL1 (upstream removed them), but 39 is upstream's MXFP4 and the fork's
    /// TL2, so a file's other evidence decides it (see [`Gguf::parse`]).
    pub fn from_id(id: u32, fork: bool) -> Option<TensorType> {
        use TensorType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => Bf16,
            34 => Tq1_0,
            35 => Tq2_0,
            36 => I2S,
            38 => Tl1,
            39 if fork => Tl2,
            39 => Mxfp4,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        use TensorType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            Bf16 => 30,
            Tq1_0 => 34,
            Tq2_0 => 35,
            I2S => 36,
            Tl1 => 38,
            Tl2 | Mxfp4 => 39,
        }
    }

    /// The kernels-crate format name, where one exists.
    pub fn format_name(self) -> Option<&'static str> {
        use TensorType::*;
        Some(match self {
            F32 => "f32",
            F16 => "f16",
            Bf16 => "bf16",
            Q4_0 => "q4_0",
            Q8_0 => "q8_0",
            Q4K => "q4_K",
            Q6K => "q6_K",
            Tq1_0 => "tq1_0",
            Tq2_0 => "tq2_0",
            I2S => "i2_s",
            Tl1 => "tl1",
            Tl2 => "tl2",
            _ => return None,
        })
    }

    /// (weights per block, bytes per block) for row-blocked types; None for tensor-level ones.
    fn block(self) -> Option<(usize, usize)> {
        use TensorType::*;
        Some(match self {
            F32 | I32 => (1, 4),
            F16 | Bf16 | I16 => (1, 2),
            I8 => (1, 1),
            I64 | F64 => (1, 8),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Mxfp4 => (32, 17),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
            Q8K => (256, 292),
            Tq1_0 => (256, 54),
            Tq2_0 => (256, 66),
            I2S | Tl1 | Tl2 => return None,
        })
    }

    /// Bytes a tensor of these dims takes, or why it cannot be stored so.
    pub fn tensor_bytes(self, dims: &[u64]) -> Result<usize, String> {
        let ne0 = usize::try_from(*dims.first().unwrap_or(&1)).map_err(|_| "ne0 too large")?;
        let n = dims.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        });
        let n = n.ok_or("element count overflows")?;
        // Far beyond any real tensor, and small enough that no size formula below overflows.
        if n > 1 << 48 {
            return Err(format!("{n} elements is more than any tensor can hold"));
        }
        match self.block() {
            Some((block, bytes)) => {
                if ne0 % block != 0 {
                    return Err(format!(
                        "ne0 = {ne0} is not a multiple of the block size {block}"
                    ));
                }
                (n / block)
                    .checked_mul(bytes)
                    .ok_or_else(|| "byte count overflows".to_owned())
            }
            None => {
                let rows = n.checked_div(ne0).unwrap_or(0);
                match self {
                    TensorType::Tl2 => Ok(tl2::scale_offset(rows, ne0) + 32),
                    // I2_S and TL1: 2 bits a weight plus the 32-byte scale tail.
                    _ => Ok(n / 4 + 32),
                }
            }
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} (id {})", self.id())
    }
}

/// One tensor's directory entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] = ne0 (row length), dims[1] = ne1 (rows), ...
    pub dims: Vec<u64>,
    pub ty: TensorType,
    /// Offset from the start of the data section.
    pub offset: u64,
    pub bytes: usize,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", file.display())]
pub struct GgufError {
    pub file: PathBuf,
    pub kind: GgufErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum GgufErrorKind {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("not a GGUF file (magic {0:02x?})")]
    BadMagic([u8; 4]),
    #[error("GGUF version {0} is not supported (2 and 3 are; big-endian files are not)")]
    Version(u32),
    #[error("truncated: {what} at byte {offset} needs {need} bytes, {left} are left")]
    Truncated {
        what: String,
        offset: usize,
        need: usize,
        left: usize,
    },
    #[error("{what} at byte {offset}: {reason}")]
    Field {
        what: String,
        offset: usize,
        reason: String,
    },
    #[error("tensor '{name}': {reason}")]
    Tensor { name: String, reason: String },
    #[error("metadata key '{key}': {reason}")]
    Metadata { key: String, reason: String },
}

/// Bytes of a GGUF file: a memory map of a real file, or an owned buffer.
pub enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// The file's bytes as the kernels hold them: one owner for every tensor handed out.
struct Shared(Arc<Bytes>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A parsed GGUF file.
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: usize,
    /// Absolute offset of the data section.
    pub data_offset: usize,
    /// Whether type ids 36..=39 were read with bitnet.cpp's meaning.
    pub bitnet_fork_types: bool,
    bytes: Arc<Bytes>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufErrorKind> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(GgufErrorKind::Truncated {
                what: what(),
                offset: self.pos,
                need: n,
                left,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], GgufErrorKind> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufErrorKind> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufErrorKind> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// A count that must fit in what is left when each item takes at least `min_item` bytes.
    fn count(
        &mut self,
        min_item: usize,
        what: &dyn Fn() -> String,
    ) -> Result<usize, GgufErrorKind> {
        let at = self.pos;
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .filter(|&n| n.checked_mul(min_item).is_some_and(|b| b <= self.left()));
        fits.ok_or_else(|| GgufErrorKind::Field {
            what: what(),
            offset: at,
            reason: format!("count {n} cannot fit in the {} bytes left", self.left()),
        })
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufErrorKind> {
        let n = self.count(1, what)?;
        let at = self.pos;
        let raw = self.take(n, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| GgufErrorKind::Field {
            what: what(),
            offset: at,
            reason: "not UTF-8".into(),
        })
    }

    fn value(
        &mut self,
        ty: u32,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<Value, GgufErrorKind> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(what)?[0]),
            1 => Value::I8(self.array::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            7 => {
                let at = self.pos;
                match self.array::<1>(what)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => {
                        return Err(GgufErrorKind::Field {
                            what: what(),
                            offset: at,
                            reason: format!("bool byte {b}"),
                        })
                    }
                }
            }
            8 => Value::String(self.string(what)?),
            9 => {
                let at = self.pos;
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufErrorKind::Field {
                        what: what(),
                        offset: at,
                        reason: format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                    });
                }
                let item = self.u32(what)?;
                let min = match item {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    _ => 1,
                };
                let n = self.count(min, what)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item, depth + 1, what)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(GgufErrorKind::Field {
                    what: what(),
                    offset: self.pos.saturating_sub(4),
                    reason: format!("unknown value type {other}"),
                })
            }
        })
    }
}

impl Gguf {
    /// Memory-map and parse a file.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf, GgufError> {
        let path = path.as_ref().to_path_buf();
        let err = |kind| GgufError {
            file: path.clone(),
            kind,
        };
        let file = std::fs::File::open(&path).map_err(|e| err(e.into()))?;
        // SAFETY: the map is read-only and private to this process; ternbench never writes model
        // files it reads, and a file truncated underneath us is the same hazard any mmap reader has.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| err(e.into()))?;
        Gguf::parse(path.clone(), Bytes::Mapped(map))
    }

    /// Parse bytes already in memory; `path` only names them in errors.
    pub fn parse(path: PathBuf, bytes: Bytes) -> Result<Gguf, GgufError> {
        let bytes = Arc::new(bytes);
        match parse_header(&bytes) {
            Ok(h) => Ok(Gguf {
                path,
                version: h.version,
                metadata: h.metadata,
                tensors: h.tensors,
                alignment: h.alignment,
                data_offset: h.data_offset,
                bitnet_fork_types: h.fork,
                bytes,
            }),
            Err(kind) => Err(GgufError { file: path, kind }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor's bytes, in place (bounds were checked when the file was parsed).
    pub fn data(&self, t: &TensorInfo) -> &[u8] {
        let start = self.data_offset + t.offset as usize;
        self.bytes.get(start..start + t.bytes).unwrap_or(&[])
    }

    /// A tensor's bytes as a shared handle that keeps the file mapped while anyone holds it, so
    /// a backend can compute from them in place.
    pub fn shared(&self, t: &TensorInfo) -> kernels::Bytes {
        let start = self.data_offset + t.offset as usize;
        match start.checked_add(t.bytes) {
            Some(end) if end <= self.bytes.len() => {
                kernels::Bytes::from_owner(Shared(self.bytes.clone())).slice(start..end)
            }
            _ => kernels::Bytes::new(),
        }
    }

    /// Drop a tensor's pages from this process's resident set once its bytes have been copied
    /// elsewhere (a converted file), so streaming does not hold the model twice. Best effort.
    pub fn release(&self, t: &TensorInfo) {
        if let Bytes::Mapped(m) = &*self.bytes {
            let page = 4096;
            let start = (self.data_offset + t.offset as usize).div_ceil(page) * page;
            let end = (self.data_offset + t.offset as usize + t.bytes) / page * page;
            if end > start {
                // SAFETY: the map is read-only and file-backed, so DONTNEED only drops pages that
                // are read again from the file if touched; no borrowed slice sees changed bytes.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
    }

    /// An error about this file.
    pub fn error(&self, kind: GgufErrorKind) -> GgufError {
        GgufError {
            file: self.path.clone(),
            kind,
        }
    }
}

struct Header {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    alignment: usize,
    data_offset: usize,
    fork: bool,
}

/// Raw tensor directory entry before the type id is interpreted.
struct RawTensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    offset: u64,
    at: usize,
}

fn parse_header(buf: &[u8]) -> Result<Header, GgufErrorKind> {
    let mut c = Cursor { buf, pos: 0 };
    let magic: [u8; 4] = c.array(&|| "magic".into())?;
    if &magic != MAGIC {
        return Err(GgufErrorKind::BadMagic(magic));
    }
    let version = c.u32(&|| "version".into())?;
    if !(2..=3).contains(&version) {
        return Err(GgufErrorKind::Version(version));
    }
    // Every tensor entry takes at least 8 + 4 + 4 + 8 bytes, every key-value pair 8 + 4 + 1.
    let n_tensors = c.count(24, &|| "tensor count".into())?;
    let n_kv = c.count(13, &|| "metadata count".into())?;
    let mut metadata = Vec::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let ty = c.u32(&|| format!("type of metadata '{key}'"))?;
        let value = c.value(ty, 0, &|| format!("metadata '{key}'"))?;
        metadata.push((key, value));
    }
    let mut raw = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let at = c.pos;
        let name = c.string(&|| format!("name of tensor #{i}"))?;
        let n_dims = c.u32(&|| format!("tensor '{name}' n_dims"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufErrorKind::Tensor {
                name,
                reason: format!("{n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
            });
        }
        let mut dims = Vec::with_capacity(n_dims);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("tensor '{name}' ne{d}"))?);
        }
        let type_id = c.u32(&|| format!("tensor '{name}' type"))?;
        let offset = c.u64(&|| format!("tensor '{name}' offset"))?;
        raw.push(RawTensor {
            name,
            dims,
            type_id,
            offset,
            at,
        });
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => v
            .as_u64()
            .and_then(|a| usize::try_from(a).ok())
            .filter(|a| a.is_power_of_two())
            .ok_or_else(|| GgufErrorKind::Metadata {
                key: "general.alignment".into(),
                reason: format!("{v:?} is not a power of two"),
            })?,
    };
    let data_offset = c.pos.div_ceil(alignment) * alignment;
    let arch = metadata
        .iter()
        .find(|(k, _)| k == "general.architecture")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("");
    // bitnet.cpp's ids: 36 and 38 exist only there; 39 is TL2 in a bitnet file, MXFP4 elsewhere.
    let fork = arch.starts_with("bitnet") || raw.iter().any(|t| t.type_id == 36 || t.type_id == 38);
    let data_len = buf.len().saturating_sub(data_offset);
    let mut names = HashSet::new();
    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        let bad = |reason: String| GgufErrorKind::Tensor {
            name: t.name.clone(),
            reason,
        };
        let ty = TensorType::from_id(t.type_id, fork).ok_or_else(|| {
            bad(format!(
                "unsupported type id {} (entry at byte {})",
                t.type_id, t.at
            ))
        })?;
        let bytes = ty
            .tensor_bytes(&t.dims)
            .map_err(|r| bad(format!("{ty}: {r}")))?;
        if t.offset % alignment as u64 != 0 {
            return Err(bad(format!(
                "offset {} is not aligned to {alignment}",
                t.offset
            )));
        }
        let end = usize::try_from(t.offset)
            .ok()
            .and_then(|o| o.checked_add(bytes));
        if end.is_none_or(|e| e > data_len) {
            return Err(bad(format!(
                "data [{}, +{bytes}) lies outside the {data_len}-byte data section",
                t.offset
            )));
        }
        if !names.insert(t.name.clone()) {
            return Err(bad("appears twice".into()));
        }
        tensors.push(TensorInfo {
            name: t.name,
            dims: t.dims,
            ty,
            offset: t.offset,
            bytes,
        });
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        fork,
    })
}

/// A tensor to be written: its directory entry; its bytes follow through [`GgufWriter::write_data`].
#[derive(Debug, Clone)]
pub struct NewTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: TensorType,
}

/// Writes a GGUF v3 file: the header at once, then each tensor's bytes in directory order,
/// in as many pieces as the caller likes, padding between tensors to the alignment.
pub struct GgufWriter<W: Write> {
    out: W,
    sizes: Vec<usize>,
    current: usize,
    written_in_current: usize,
    alignment: usize,
}

impl<W: Write> GgufWriter<W> {
    pub fn new(
        mut out: W,
        metadata: &[(String, Value)],
        tensors: &[NewTensor],
    ) -> io::Result<Self> {
        let alignment = metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .map_or(DEFAULT_ALIGNMENT, |a| a as usize);
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if !alignment.is_power_of_two() {
            return Err(invalid(format!(
                "general.alignment {alignment} is not a power of two"
            )));
        }
        if let Some((k, _)) = metadata.iter().find(|(_, v)| !homogeneous(v)) {
            return Err(invalid(format!(
                "metadata '{k}': GGUF arrays hold one type"
            )));
        }
        let mut header = Vec::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (k, v) in metadata {
            put_string(&mut header, k);
            header.extend_from_slice(&v.type_id().to_le_bytes());
            put_value(&mut header, v);
        }
        let mut sizes = Vec::with_capacity(tensors.len());
        let mut offset = 0usize;
        for t in tensors {
            let bytes = t.ty.tensor_bytes(&t.dims).map_err(|r| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {r}", t.name))
            })?;
            put_string(&mut header, &t.name);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ty.id().to_le_bytes());
            header.extend_from_slice(&(offset as u64).to_le_bytes());
            sizes.push(bytes);
            offset = (offset + bytes).div_ceil(alignment) * alignment;
        }
        header.resize(header.len().div_ceil(alignment) * alignment, 0);
        out.write_all(&header)?;
        Ok(GgufWriter {
            out,
            sizes,
            current: 0,
            written_in_current: 0,
            alignment,
        })
    }

    /// Append tensor bytes; a piece may span the end of one tensor and the start of the next.
    pub fn write_data(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let Some(&size) = self.sizes.get(self.current) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "more tensor bytes than the directory declares",
                ));
            };
            let n = (size - self.written_in_current).min(data.len());
            self.out.write_all(&data[..n])?;
            self.written_in_current += n;
            data = &data[n..];
            if self.written_in_current == size {
                let pad = size.div_ceil(self.alignment) * self.alignment - size;
                self.out.write_all(&vec![0u8; pad])?;
                self.current += 1;
                self.written_in_current = 0;
            }
        }
        Ok(())
    }

    /// Check that every declared byte was written, flush, and hand back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        // Zero-byte tensors complete without data.
        while self.sizes.get(self.current) == Some(&0) {
            self.current += 1;
        }
        if self.current != self.sizes.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "tensor #{} of {} is incomplete",
                    self.current,
                    self.sizes.len()
                ),
            ));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn homogeneous(v: &Value) -> bool {
    match v {
        Value::Array(items) => {
            items.windows(2).all(|w| w[0].type_id() == w[1].type_id())
                && items.iter().all(homogeneous)
        }
        _ => true,
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_string(out, s),
        Value::Array(items) => {
            let item_type = items.first().map_or(4, Value::type_id);
            out.extend_from_slice(&item_type.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i);
            }
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}
