//! Weight formats and their scalar reference kernels.
//!
//! This crate owns the byte layouts: the ternary formats TQ1_0 and TQ2_0 (byte-identical to ggml),
//! I2_S, TL1 and TL2 (byte-identical to bitnet.cpp), and the baselines F16, BF16, Q8_0, Q4_0, Q4_K
//! and Q6_K; the activation quantizers they pair with (Q8_K, Q8_0, per-token int8); and for each a
//! plain scalar reference dot product and GEMV, written for clarity. The references are the oracle
//! every fast kernel (SIMD, GPU, DSP) is tested against. It knows nothing of models or harnesses.

pub mod activations;
#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod cpu;
mod error;
pub mod formats;
pub mod matmul;
pub mod pool;
pub mod registry;

/// Packed weight bytes: owned, or shared in place with a memory-mapped file.
pub use bytes::Bytes;
pub use cpu::Isa;
pub use error::KernelError;
pub use formats::{BlockFormat, FormatInfo, Origin, WeightFormat};
pub use matmul::{prepare, MatMul};
pub use registry::{find_format, FORMATS};
