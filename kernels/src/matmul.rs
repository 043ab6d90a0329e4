//! Matrix products over packed weights: y = x·Wᵀ for one token (GEMV, decode) or many (GEMM,
//! prefill), with the kernel variant chosen at run time and named in every result.
//!
//! A format implements [`Kernel`] once per variant family; the driver here quantizes each token's
//! activations once per call (not once per row), splits the rows across rayon's current thread
//! pool (run inside `ThreadPool::install` to choose the thread count), and hands every row group
//! all tokens at once so that a kernel can unpack a weight block once and reuse it across tokens.

use bytes::Bytes;
use rayon::prelude::*;

use crate::cpu::{forced_isa, Isa, KERNEL_ENV};
use crate::formats::{check_len, FormatInfo, WeightFormat};
use crate::KernelError;

/// One format's packed weights, prepared for one kernel variant.
pub trait Kernel: Send + Sync {
    /// One token's activations, quantized the way this variant consumes them.
    type Act: Send + Sync;

    fn info(&self) -> &'static FormatInfo;
    fn isa(&self) -> Isa;
    fn rows(&self) -> usize;
    fn cols(&self) -> usize;

    /// Rows the kernel computes as one unit (a TL tile); `rows()` is a multiple of it.
    fn group_rows(&self) -> usize {
        1
    }

    /// Quantize one token (`x.len() == cols()`, finite values checked by the caller's format).
    fn quantize(&self, x: &[f32]) -> Result<Self::Act, KernelError>;

    /// Rows `group·group_rows() ..` for every token: `out[r · acts.len() + t]`.
    fn compute(&self, group: usize, acts: &[Self::Act], out: &mut [f32]);

    /// Dequantize one row into `out` (`out.len() == cols()`): an embedding lookup.
    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
        let _ = (row, out);
        Err(KernelError::Unsupported {
            format: self.info().name,
            what: "row lookup (embedding tables)",
        })
    }
}

/// A prepared weight matrix, whatever its format and variant.
pub trait MatMul: Send + Sync {
    fn info(&self) -> &'static FormatInfo;
    fn isa(&self) -> Isa;
    fn rows(&self) -> usize;
    fn cols(&self) -> usize;

    /// The variant's name as results record it: `tq2_0/avx512vnni`.
    fn variant(&self) -> String {
        format!("{}/{}", self.info().name, self.isa().name())
    }

    /// y = x·Wᵀ: `x` is tokens × cols, `y` tokens × rows, both row-major.
    fn matmul(&self, x: &[f32], tokens: usize, y: &mut [f32]) -> Result<(), KernelError>;

    /// Dequantize row `row` into `out` (`out.len() == cols()`): an embedding lookup.
    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), KernelError>;
}

/// Tokens per block of the [token][row] transpose at the end of a many-token product.
const TRANSPOSE_TOKENS: usize = 16;

impl<K: Kernel> MatMul for K {
    fn info(&self) -> &'static FormatInfo {
        Kernel::info(self)
    }
    fn isa(&self) -> Isa {
        Kernel::isa(self)
    }
    fn rows(&self) -> usize {
        Kernel::rows(self)
    }
    fn cols(&self) -> usize {
        Kernel::cols(self)
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
        let name = Kernel::info(self).name;
        check_len(name, "row", out.len(), Kernel::cols(self))?;
        if row >= Kernel::rows(self) {
            return Err(KernelError::Shape {
                format: name,
                rows: Kernel::rows(self),
                cols: Kernel::cols(self),
                reason: format!("no row {row}"),
            });
        }
        Kernel::dequantize_row(self, row, out)
    }

    fn matmul(&self, x: &[f32], tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
        let (rows, cols, name) = (
            Kernel::rows(self),
            Kernel::cols(self),
            Kernel::info(self).name,
        );
        check_len(name, "activations", x.len(), tokens * cols)?;
        check_len(name, "output", y.len(), tokens * rows)?;
        if tokens == 0 || rows == 0 {
            return Ok(());
        }
        let acts: Vec<K::Act> = if cols == 0 {
            (0..tokens)
                .map(|_| self.quantize(&[]))
                .collect::<Result<_, _>>()?
        } else if tokens == 1 {
            // Without rayon's collect machinery, a tenth of a 2560-value token's quantization.
            vec![self.quantize(x)?]
        } else {
            x.par_chunks(cols)
                .map(|t| self.quantize(t))
                .collect::<Result<_, _>>()?
        };
        let group = self.group_rows();
        let groups = rows / group;
        // Eight tasks per thread or more: a thread that ends early steals at most one small
        // task's worth of imbalance (27 TL1 tiles of 6912x2560 went 15:12 in tasks of 3).
        let per_task = (groups / (rayon::current_num_threads() * 8)).max(1);
        let run = |out: &mut [f32]| {
            out.par_chunks_mut(group * tokens * per_task)
                .enumerate()
                .for_each(|(task, chunk)| {
                    for (j, o) in chunk.chunks_mut(group * tokens).enumerate() {
                        self.compute(task * per_task + j, &acts, o);
                    }
                })
        };
        if tokens == 1 {
            run(y);
        } else {
            // Kernels write row-major [row][token]; results are [token][row].
            let mut by_row = vec![0.0f32; rows * tokens];
            run(&mut by_row);
            // In blocks of tokens, in parallel: each output row is written in order, 16 streams
            // at a time (a plain scatter, one token row apart per store, took a fifth of a
            // 64-token product, on one thread).
            y.par_chunks_mut(rows * TRANSPOSE_TOKENS)
                .enumerate()
                .for_each(|(c, ys)| {
                    let t0 = c * TRANSPOSE_TOKENS;
                    for (r, row) in by_row.chunks_exact(tokens).enumerate() {
                        for (yt, &v) in ys.chunks_exact_mut(rows).zip(&row[t0..]) {
                            yt[r] = v;
                        }
                    }
                });
        }
        Ok(())
    }
}

/// Prepare `packed` (the format's on-disk bytes) for the best variant this CPU runs, or the one
/// `force` names, or, failing both, the one the `TERNBENCH_KERNEL` environment variable names.
pub fn prepare(
    format: &dyn WeightFormat,
    packed: Bytes,
    rows: usize,
    cols: usize,
    force: Option<Isa>,
) -> Result<Box<dyn MatMul>, KernelError> {
    let name = format.info().name;
    let isa = match force {
        Some(isa) => isa,
        None => match std::env::var(KERNEL_ENV)
            .ok()
            .and_then(|spec| forced_isa(&spec, name))
        {
            Some(Ok(isa)) => isa,
            Some(Err(bad)) => {
                return Err(KernelError::Variant {
                    format: name,
                    variant: bad,
                    reason: format!("{KERNEL_ENV} names no known instruction set"),
                })
            }
            None => best_isa(format),
        },
    };
    format.kernel(packed, rows, cols, isa)
}

/// The fastest variant of `format` that this CPU can run (formats list variants slowest first).
pub fn best_isa(format: &dyn WeightFormat) -> Isa {
    format
        .isas()
        .iter()
        .copied()
        .rfind(|isa| isa.available())
        .unwrap_or(Isa::Scalar)
}

/// Every variant of `format` that this CPU can run.
pub fn available_isas(format: &dyn WeightFormat) -> Vec<Isa> {
    format
        .isas()
        .iter()
        .copied()
        .filter(|isa| isa.available())
        .collect()
}

/// Refuse a variant the format lacks or the CPU cannot run.
pub fn check_isa(format: &dyn WeightFormat, isa: Isa) -> Result<(), KernelError> {
    let name = format.info().name;
    let err = |reason: String| KernelError::Variant {
        format: name,
        variant: format!("{name}/{isa}"),
        reason,
    };
    if !format.isas().contains(&isa) {
        let have: Vec<&str> = format.isas().iter().map(|i| i.name()).collect();
        return Err(err(format!(
            "not implemented (variants: {})",
            have.join(", ")
        )));
    }
    if !isa.available() {
        return Err(err(format!("this CPU lacks {}", isa.features().join("+"))));
    }
    Ok(())
}
