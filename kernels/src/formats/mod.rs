//! Weight formats: the shared traits, and one module per format.
//!
//! ggml formats are row-blocked ([`BlockFormat`]): each row is an independent run of fixed-size
//! blocks carrying their own scales. bitnet.cpp formats (I2_S, TL1, TL2) are tensor-level: one
//! scale per tensor and, for TL1/TL2, a tiled layout. [`WeightFormat`] is the tensor-level face
//! that both kinds present, and what the registry lists.

pub mod bf16;
pub mod f16;
pub mod f32;
pub mod i2_s;
pub mod q4_0;
pub mod q4_k;
pub mod q6_k;
pub mod q8_0;
pub mod tl1;
pub mod tl2;
pub mod tq1_0;
pub mod tq2_0;
#[cfg(target_arch = "x86_64")]
mod x86_rows;

use std::marker::PhantomData;

use bytemuck::Pod;
use bytes::Bytes;

use crate::activations::BlockActivation;
use crate::cpu::Isa;
use crate::matmul::{check_isa, Kernel, MatMul};
use crate::KernelError;

/// Where a format's byte layout is defined; our bytes must equal theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Ggml,
    BitnetCpp,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Ggml => "ggml",
            Origin::BitnetCpp => "bitnet.cpp",
        }
    }
}

/// Static facts about a format, as `ternbench formats` prints them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FormatInfo {
    /// Upstream's lower-case name (`tq2_0`, `i2_s`, `q4_K`).
    pub name: &'static str,
    /// Weights per block.
    pub block_size: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// Storage cost per weight, not counting per-tensor tails (I2_S, TL1 and TL2 add 32 bytes).
    pub bits_per_weight: f64,
    /// The activation type the format's dot product consumes (`q8_K`, `i8_s`, ...).
    pub activation: &'static str,
    pub origin: Origin,
    /// Whether the format holds only {-1, 0, +1} times a scale.
    pub ternary: bool,
}

impl FormatInfo {
    pub const fn bits(block_size: usize, block_bytes: usize) -> f64 {
        (block_bytes * 8) as f64 / block_size as f64
    }
}

/// The tensor-level face of every format: a rows x cols matrix (ggml ne1 x ne0), row-major.
pub trait WeightFormat: Send + Sync {
    fn info(&self) -> &'static FormatInfo;

    /// Bytes that a packed rows x cols tensor takes, tails included.
    fn tensor_bytes(&self, rows: usize, cols: usize) -> Result<usize, KernelError>;

    /// Quantize row-major f32 weights into the format's on-disk bytes.
    fn pack(&self, weights: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>, KernelError>;

    /// Dequantize packed bytes back to row-major f32.
    fn unpack(&self, packed: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, KernelError>;

    /// y = W·x with x quantized as the paired activation type, by the scalar reference dot.
    fn gemv_ref(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
    ) -> Result<Vec<f32>, KernelError>;

    /// The kernel variants this format implements, slowest first; scalar is always first.
    fn isas(&self) -> Vec<Isa> {
        vec![Isa::Scalar]
    }

    /// Prepare packed weights for one kernel variant (see [`crate::matmul::prepare`]). Kernels
    /// read `packed` in place where its layout allows, so a memory-mapped file is not copied.
    fn kernel(
        &self,
        packed: Bytes,
        rows: usize,
        cols: usize,
        isa: Isa,
    ) -> Result<Box<dyn MatMul>, KernelError>;
}

/// The activation block a block format's dot product consumes.
pub type ActBlock<F> = <<F as BlockFormat>::Act as BlockActivation>::Block;

/// A row kernel of a block format: one weight row against every token, `out[t]` per token.
pub type RowDot<F> = fn(&[<F as BlockFormat>::Block], &[Vec<ActBlock<F>>], &mut [f32]);

/// A multi-row kernel: `rows` consecutive weight rows (their blocks back to back in the slice)
/// against every token, `out[r · tokens + t]`. Lets a kernel share activation loads between rows
/// and prefetch across them.
pub type RowsDot<F> = fn(&[<F as BlockFormat>::Block], usize, &[Vec<ActBlock<F>>], &mut [f32]);

/// Rows per [`RowsDot`] call: the largest of these that divides the row count. Calls span
/// several 16-row GEMM panels, so per-call work on the activations is shared among them.
const ROWS_PER_CALL: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// A ggml-style row-blocked format: each row is `cols / BLOCK` independent blocks.
pub trait BlockFormat: Send + Sync + 'static {
    const INFO: FormatInfo;
    /// One block, `#[repr(C)]` of byte arrays only, so any byte slice casts to blocks.
    type Block: Pod + Send + Sync;
    type Act: BlockActivation;

    /// Quantize `dst.len()` blocks from `src` (`src.len() == dst.len() * block_size`).
    fn quantize_blocks(src: &[f32], dst: &mut [Self::Block]);

    /// Dequantize `src.len()` blocks into `dst` (`dst.len() == src.len() * block_size`).
    fn dequantize_blocks(src: &[Self::Block], dst: &mut [f32]);

    /// The scalar reference dot product of one weight row with one quantized activation row.
    fn dot_blocks(w: &[Self::Block], a: &[<Self::Act as BlockActivation>::Block]) -> f32;

    /// Fast row kernels, slowest first; the scalar reference needs no entry.
    fn simd_variants() -> &'static [(Isa, RowDot<Self>)]
    where
        Self: Sized,
    {
        &[]
    }

    /// Multi-row kernels, used instead of the [`Self::simd_variants`] entry of the same variant.
    fn multi_row_variants() -> &'static [(Isa, RowsDot<Self>)]
    where
        Self: Sized,
    {
        &[]
    }

    /// Variants that take over the whole product (AMX tiles want every token's activations
    /// packed once per call), each with the variant whose row kernels it wraps and falls back on.
    fn whole_variants() -> &'static [(Isa, Isa, WholeMatMul<Self>)]
    where
        Self: Sized,
    {
        &[]
    }
}

/// Builds a whole-product variant around the format's row kernels for its fallback variant.
pub type WholeMatMul<F> = fn(BlockKernel<F>) -> Box<dyn MatMul>;

/// The scalar variant of every block format: the reference dot, token by token.
fn scalar_row<F: BlockFormat>(w: &[F::Block], acts: &[Vec<ActBlock<F>>], out: &mut [f32]) {
    for (o, a) in out.iter_mut().zip(acts) {
        *o = F::dot_blocks(w, a);
    }
}

/// A block format's weights prepared for one row kernel.
pub struct BlockKernel<F: BlockFormat> {
    /// Exactly `rows · cols / block_size` blocks, read in place.
    packed: Bytes,
    rows: usize,
    cols: usize,
    isa: Isa,
    dot: RowDot<F>,
    /// A multi-row kernel and the rows it takes per call (`rows` is a multiple).
    multi: Option<(RowsDot<F>, usize)>,
}

impl<F: BlockFormat> BlockKernel<F> {
    /// The weights as blocks. Blocks are byte arrays (alignment 1) and `block_kernel` checked
    /// that `packed` is a whole number of them, so the cast cannot fail.
    pub(crate) fn blocks(&self) -> &[F::Block] {
        bytemuck::try_cast_slice(&self.packed).unwrap_or_default()
    }
}

impl<F: BlockFormat> Kernel for BlockKernel<F> {
    type Act = Vec<ActBlock<F>>;

    fn info(&self) -> &'static FormatInfo {
        &F::INFO
    }
    fn isa(&self) -> Isa {
        self.isa
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn group_rows(&self) -> usize {
        self.multi.map_or(1, |(_, n)| n)
    }

    fn quantize(&self, x: &[f32]) -> Result<Self::Act, KernelError> {
        quantize_act_row::<F>(x)
    }

    fn compute(&self, row: usize, acts: &[Self::Act], out: &mut [f32]) {
        let per_row = self.cols / F::INFO.block_size;
        if let Some((dot, n)) = self.multi {
            // `row` counts groups of `n` rows here.
            if let Some(w) = self
                .blocks()
                .get(row * n * per_row..(row + 1) * n * per_row)
            {
                dot(w, n, acts, out);
            }
        } else if let Some(w) = self.blocks().get(row * per_row..(row + 1) * per_row) {
            (self.dot)(w, acts, out);
        }
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
        let per_row = self.cols / F::INFO.block_size;
        if let Some(w) = self.blocks().get(row * per_row..(row + 1) * per_row) {
            F::dequantize_blocks(w, out);
        }
        Ok(())
    }
}

/// Check that a row of `len` values splits into whole blocks of `block`; returns the block count.
pub fn blocks_in_row(format: &'static str, len: usize, block: usize) -> Result<usize, KernelError> {
    if !len.is_multiple_of(block) {
        return Err(KernelError::RowLength { format, len, block });
    }
    Ok(len / block)
}

/// Reject NaN and infinities, naming the first offender.
pub fn check_finite(
    format: &'static str,
    what: &'static str,
    v: &[f32],
) -> Result<(), KernelError> {
    if all_finite(v) {
        return Ok(());
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(KernelError::NonFinite {
            format,
            what,
            index,
            value: v[index],
        }),
        None => Ok(()),
    }
}

/// Whether no value is NaN or infinite; the search for the offender is left to failures.
fn all_finite(v: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was just detected.
        return unsafe { all_finite_avx512(v) };
    }
    // Branch-free over chunks, so it vectorizes (at the build's baseline width).
    v.chunks(256)
        .all(|c| c.iter().fold(true, |ok, x| ok & x.is_finite()))
}

/// [`all_finite`] sixteen values a step: a value is not finite when its exponent bits are all
/// set. Activations are checked once per product, and the baseline build's SSE loop took a third
/// of quantizing a 2560-value token.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn all_finite_avx512(v: &[f32]) -> bool {
    use std::arch::x86_64::*;
    let exp = _mm512_set1_epi32(0x7f80_0000);
    let mut bad = 0u16;
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` is 16 f32, one unaligned 512-bit load.
        let x = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(x, exp), exp);
    }
    bad == 0 && chunks.remainder().iter().all(|x| x.is_finite())
}

pub(crate) fn check_len(
    format: &'static str,
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if got != expected {
        return Err(KernelError::BufferSize {
            format,
            what,
            got,
            expected,
        });
    }
    Ok(())
}

/// View bytes as blocks of `F`, checking the count.
pub fn as_blocks<F: BlockFormat>(bytes: &[u8], blocks: usize) -> Result<&[F::Block], KernelError> {
    check_len(
        F::INFO.name,
        "packed bytes",
        bytes.len(),
        blocks * F::INFO.block_bytes,
    )?;
    bytemuck::try_cast_slice(bytes).map_err(|_| KernelError::BufferSize {
        format: F::INFO.name,
        what: "packed bytes",
        got: bytes.len(),
        expected: blocks * F::INFO.block_bytes,
    })
}

/// Quantize one row of `F`, checking lengths and values.
pub fn quantize_row<F: BlockFormat>(src: &[f32]) -> Result<Vec<F::Block>, KernelError> {
    let n = blocks_in_row(F::INFO.name, src.len(), F::INFO.block_size)?;
    check_finite(F::INFO.name, "weights", src)?;
    let mut dst = vec![F::Block::zeroed(); n];
    F::quantize_blocks(src, &mut dst);
    Ok(dst)
}

/// Quantize one activation row as `F`'s paired activation type, checking lengths and values.
pub fn quantize_act_row<F: BlockFormat>(
    x: &[f32],
) -> Result<Vec<<F::Act as BlockActivation>::Block>, KernelError> {
    crate::activations::quantize_row::<F::Act>(x)
}

/// The registry entry for a [`BlockFormat`]: adapts it to [`WeightFormat`].
pub struct Rows<F>(PhantomData<F>);

impl<F> Rows<F> {
    pub const fn new() -> Self {
        Rows(PhantomData)
    }
}

impl<F> Default for Rows<F> {
    fn default() -> Self {
        Self::new()
    }
}

use bytemuck::Zeroable;

impl<F: BlockFormat> WeightFormat for Rows<F> {
    fn info(&self) -> &'static FormatInfo {
        &F::INFO
    }

    fn tensor_bytes(&self, rows: usize, cols: usize) -> Result<usize, KernelError> {
        let blocks = blocks_in_row(F::INFO.name, cols, F::INFO.block_size)?;
        Ok(rows * blocks * F::INFO.block_bytes)
    }

    fn pack(&self, weights: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>, KernelError> {
        let per_row = blocks_in_row(F::INFO.name, cols, F::INFO.block_size)?;
        check_len(F::INFO.name, "weights", weights.len(), rows * cols)?;
        check_finite(F::INFO.name, "weights", weights)?;
        let mut blocks = vec![F::Block::zeroed(); rows * per_row];
        if cols > 0 {
            for (src, dst) in weights
                .chunks_exact(cols)
                .zip(blocks.chunks_exact_mut(per_row))
            {
                F::quantize_blocks(src, dst);
            }
        }
        Ok(bytemuck::cast_slice(&blocks).to_vec())
    }

    fn unpack(&self, packed: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, KernelError> {
        let per_row = blocks_in_row(F::INFO.name, cols, F::INFO.block_size)?;
        let blocks = as_blocks::<F>(packed, rows * per_row)?;
        let mut out = vec![0.0; rows * cols];
        if cols > 0 {
            for (src, dst) in blocks.chunks_exact(per_row).zip(out.chunks_exact_mut(cols)) {
                F::dequantize_blocks(src, dst);
            }
        }
        Ok(out)
    }

    fn gemv_ref(
        &self,
        packed: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
    ) -> Result<Vec<f32>, KernelError> {
        let per_row = blocks_in_row(F::INFO.name, cols, F::INFO.block_size)?;
        let blocks = as_blocks::<F>(packed, rows * per_row)?;
        check_len(F::INFO.name, "activations", x.len(), cols)?;
        let act = quantize_act_row::<F>(x)?;
        if cols == 0 {
            return Ok(vec![0.0; rows]);
        }
        Ok(blocks
            .chunks_exact(per_row)
            .map(|row| F::dot_blocks(row, &act))
            .collect())
    }

    fn isas(&self) -> Vec<Isa> {
        std::iter::once(Isa::Scalar)
            .chain(F::simd_variants().iter().map(|&(isa, _)| isa))
            .chain(F::whole_variants().iter().map(|&(isa, ..)| isa))
            .collect()
    }

    fn kernel(
        &self,
        packed: Bytes,
        rows: usize,
        cols: usize,
        isa: Isa,
    ) -> Result<Box<dyn MatMul>, KernelError> {
        check_isa(self, isa)?;
        match F::whole_variants().iter().find(|&&(i, ..)| i == isa) {
            Some(&(_, fallback, wrap)) => Ok(wrap(block_kernel(packed, rows, cols, fallback)?)),
            None => Ok(Box::new(block_kernel::<F>(packed, rows, cols, isa)?)),
        }
    }
}

/// `packed` as `F`'s blocks, prepared for the row kernels of `isa`.
fn block_kernel<F: BlockFormat>(
    packed: Bytes,
    rows: usize,
    cols: usize,
    isa: Isa,
) -> Result<BlockKernel<F>, KernelError> {
    let per_row = blocks_in_row(F::INFO.name, cols, F::INFO.block_size)?;
    // Exactly rows · per_row blocks, which `BlockKernel::blocks` relies on.
    as_blocks::<F>(&packed, rows * per_row)?;
    let dot = F::simd_variants()
        .iter()
        .find(|&&(i, _)| i == isa)
        .map_or(scalar_row::<F> as RowDot<F>, |&(_, f)| f);
    let multi = F::multi_row_variants()
        .iter()
        .find(|&&(i, _)| i == isa)
        .and_then(|&(_, f)| {
            let n = ROWS_PER_CALL
                .into_iter()
                .find(|n| rows.is_multiple_of(*n))?;
            Some((f, n))
        });
    Ok(BlockKernel::<F> {
        packed,
        rows,
        cols,
        isa,
        dot,
        multi,
    })
}
