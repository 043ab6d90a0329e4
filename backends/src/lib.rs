//! Compute backends behind one [`Backend`] trait: CPU now, Vulkan (through `ash`) and Qualcomm
//! Hexagon (through `libloading`) next.
//!
//! The model is written once against this trait. Everything lives on the device behind handles:
//! weights are uploaded once in their on-disk format ([`Backend::upload_weight`]), activations are
//! device buffers ([`Backend::alloc`]), the KV cache is device memory, and the ops run on handles.
//! Only [`Backend::download`] brings numbers back, so a GPU backend can queue a whole forward pass
//! and wait once. Ops check shapes when they are issued and fail with a [`BackendError`]; a backend
//! that lacks a format or op says so by name instead of computing something else.

pub mod cpu;

pub use cpu::{CpuBackend, CpuConfig};

use kernels::{Bytes, KernelError};

/// A weight matrix on the device, `rows × cols` in one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weight(pub u32);

/// An f32 buffer on the device: activations, norm weights, logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Buffer(pub u32);

/// A KV cache on the device: every layer's keys and values for up to `context` positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KvCache(pub u32);

/// How the KV cache stores keys and values (llama.cpp's default is f16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvType {
    #[default]
    F16,
    F32,
}

impl KvType {
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }

    pub fn from_name(name: &str) -> Option<KvType> {
        match name.to_ascii_lowercase().as_str() {
            "f16" => Some(KvType::F16),
            "f32" => Some(KvType::F32),
            _ => None,
        }
    }
}

/// The gated activation of a feed-forward block: `act(gate) · up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Glu {
    /// llama.cpp's `bitnet` architecture: SiLU(gate) · up.
    Silu,
    /// bitnet.cpp's `bitnet-b1.58` (2B4T): ReLU(gate)² · up.
    ReluSquared,
}

/// A weight as it arrives from a file: packed bytes in one of the kernels' formats.
#[derive(Debug, Clone)]
pub struct WeightData<'a> {
    /// For error messages: the tensor's name in the file.
    pub name: &'a str,
    /// A format name from the kernels registry (`tq2_0`, `i2_s`, `q6_K`, `f16`, ...).
    pub format: &'a str,
    pub rows: usize,
    pub cols: usize,
    /// Shared, so that a backend computing from host memory can keep reading them in place (a
    /// memory-mapped file stays mapped while any weight holds it); a device backend copies them.
    pub bytes: Bytes,
}

/// Attention geometry: grouped-query when `kv_heads < heads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// NEOX-style rotary embedding over the first `dims` values of each head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    pub dims: usize,
    pub freq_base: f32,
}

/// The operations a model runs, on device-resident handles.
///
/// Shapes are row-major with one row per token: an activation buffer for `tokens` tokens of width
/// `n` uses its first `tokens · n` values. Positions count from the start of the sequence.
pub trait Backend: Send {
    /// The backend's name as results record it (`cpu`, `vulkan`, `hexagon`).
    fn name(&self) -> &'static str;

    /// The device in words (CPU model, GPU name) for result provenance.
    fn device(&self) -> String;

    /// Threads (CPU) or compute units the backend uses, as results record it.
    fn threads(&self) -> usize;

    /// Upload a weight matrix once; the returned handle stays valid for the backend's life. The
    /// CPU backend keeps `w.bytes` and reads them in place; other backends copy them.
    fn upload_weight(&mut self, w: WeightData<'_>) -> Result<Weight, BackendError>;

    /// The kernel variant a weight runs with (`tq2_0/avx512vnni`).
    fn variant(&self, w: Weight) -> Result<String, BackendError>;

    /// An f32 buffer holding `data` (norm weights and other constants).
    fn upload(&mut self, data: &[f32]) -> Result<Buffer, BackendError>;

    /// A zeroed f32 buffer of `len` values.
    fn alloc(&mut self, len: usize) -> Result<Buffer, BackendError>;

    /// A KV cache for `layers` layers of `context` positions, each `kv_dim` keys and values.
    fn kv_cache(
        &mut self,
        layers: usize,
        context: usize,
        kv_dim: usize,
        ty: KvType,
    ) -> Result<KvCache, BackendError>;

    /// `out[t] = table[tokens[t]]`: rows of an embedding table, dequantized.
    fn embed(&mut self, table: Weight, tokens: &[u32], out: Buffer) -> Result<(), BackendError>;

    /// `out = x · Wᵀ` for `tokens` rows of `x` (width `cols`), giving `tokens` rows of width `rows`.
    fn matmul(
        &mut self,
        w: Weight,
        x: Buffer,
        tokens: usize,
        out: Buffer,
    ) -> Result<(), BackendError>;

    /// `out[t] = x[t] / rms(x[t]) · weight` over rows of width `weight.len()`; `out` may be `x`.
    fn rms_norm(
        &mut self,
        x: Buffer,
        weight: Buffer,
        eps: f32,
        tokens: usize,
        out: Buffer,
    ) -> Result<(), BackendError>;

    /// Rotate `x` (tokens × heads × head_dim) in place for positions `pos0..pos0 + tokens`.
    fn rope(
        &mut self,
        x: Buffer,
        tokens: usize,
        heads: usize,
        head_dim: usize,
        rope: Rope,
        pos0: usize,
    ) -> Result<(), BackendError>;

    /// Store `k`, `v` (tokens × kv_heads·head_dim) at positions `pos0..` of `layer`, then attend
    /// causally from `q` (tokens × heads·head_dim) over positions `0..pos0 + tokens` into `out`,
    /// with scores scaled by 1/√head_dim.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        cache: KvCache,
        layer: usize,
        q: Buffer,
        k: Buffer,
        v: Buffer,
        heads: Heads,
        pos0: usize,
        tokens: usize,
        out: Buffer,
    ) -> Result<(), BackendError>;

    /// `gate = act(gate) · up` element-wise over the first `len` values.
    fn glu(&mut self, gate: Buffer, up: Buffer, act: Glu, len: usize) -> Result<(), BackendError>;

    /// `acc += x` over the first `len` values.
    fn add(&mut self, acc: Buffer, x: Buffer, len: usize) -> Result<(), BackendError>;

    /// `dst[..len] = src[at..at + len]`: one token's row out of a batch.
    fn copy(&mut self, src: Buffer, at: usize, dst: Buffer, len: usize)
        -> Result<(), BackendError>;

    /// `x *= factor` over the first `len` values (llama.cpp's optional per-tensor `.scale`).
    fn scale(&mut self, x: Buffer, factor: f32, len: usize) -> Result<(), BackendError>;

    /// Copy the first `out.len()` values of `x` to the host, after all queued work.
    fn download(&mut self, x: Buffer, out: &mut [f32]) -> Result<(), BackendError>;

    /// Device bytes held by weights (what a forward pass streams per token).
    fn weight_bytes(&self) -> usize;
}

/// Everything a backend can refuse.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend {backend} is not available on this machine: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("backend {backend} does not support {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("{op}: {reason}")]
    Shape { op: &'static str, reason: String },
    #[error("{op}: no such {kind} handle {id}")]
    Handle {
        op: &'static str,
        kind: &'static str,
        id: u32,
    },
    #[error("weight '{name}': {source}")]
    Weight {
        name: String,
        #[source]
        source: KernelError,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("{op}: non-finite value {value} at index {index}")]
    NonFinite {
        op: &'static str,
        index: usize,
        value: f32,
    },
}
