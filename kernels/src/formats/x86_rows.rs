//! x86 pieces of the multi-row kernels (F16, TQ1_0, TQ2_0): the single-token walk over row
//! groups, the per-row weight prefetch, and the row-by-row fallback for several tokens.

use std::arch::x86_64::{
    _mm_cvtph_ps, _mm_cvtsi64_si128, _mm_mul_ps, _mm_prefetch, _mm_set1_ps, _mm_storeu_ps,
    _MM_HINT_T0,
};

use super::{ActBlock, BlockFormat, RowDot};

/// Several tokens against `rows` rows of `w`, row by row through the format's row kernel `dot`
/// (`out[r · tokens + t]`): where a multi-row kernel has nothing better than its row kernel.
pub(crate) fn by_rows<F: BlockFormat>(
    w: &[F::Block],
    rows: usize,
    acts: &[Vec<ActBlock<F>>],
    out: &mut [f32],
    dot: RowDot<F>,
) {
    if rows == 0 || acts.is_empty() {
        return;
    }
    let per_row = w.len() / rows;
    for (r, o) in out.chunks_mut(acts.len()).take(rows).enumerate() {
        dot(&w[r * per_row..(r + 1) * per_row], acts, o);
    }
}

/// Prefetch what each of a group's `R` rows (at `rp`, `stride` blocks apart) reads `ahead` bytes
/// after step `b`; past a row's end that is the same row of the next group. One stream per row:
/// a single stream swept over the whole group reached rows 1..R of a long row too late
/// (2560x6912 TQ2_0 DRAM GEMV ran at 0.73x the speed). Each step asks for as many lines as a
/// block spans, so no line is skipped. A prefetch never faults, so the tensor's end is harmless.
#[inline]
#[target_feature(enable = "sse")]
pub(crate) fn prefetch_rows<B, const R: usize>(
    rp: *const B,
    stride: usize,
    b: usize,
    ahead: usize,
) {
    let block = size_of::<B>();
    let row_bytes = stride * block;
    let off = b * block + ahead;
    let next_group = if off >= row_bytes {
        (R - 1) * row_bytes
    } else {
        0
    };
    for i in 0..R {
        let at = rp
            .cast::<u8>()
            .wrapping_add(i * row_bytes + off + next_group);
        for line in 0..block.div_ceil(64) {
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(64 * line).cast());
        }
    }
}

/// Block `b`'s f16 scale (`d` of the block) of each of `R ≤ 4` rows at `rp`, `stride` blocks
/// apart, times the activation scale `da`, into `out`: one conversion and one product serve all
/// the rows (a block's own scalar conversion, product and broadcast cost three vector uops).
/// `out` is left in memory, so each row's product takes its scale as a broadcast operand, a
/// load; lanes kept in a register cost a shuffle and a broadcast each on port 5.
///
/// # Safety
/// Block `b` of rows 0..R must be readable.
#[inline]
#[target_feature(enable = "sse2,f16c")]
pub(crate) unsafe fn row_scales<B, const R: usize>(
    rp: *const B,
    stride: usize,
    b: usize,
    d: impl Fn(&B) -> [u8; 2],
    da: f32,
    out: &mut [f32; 4],
) {
    const { assert!(R <= 4) };
    let mut h = 0u64;
    for i in 0..R {
        // SAFETY: block b of row i < R, readable by the caller's contract.
        let di = d(unsafe { &*rp.add(i * stride + b) });
        h |= u64::from(u16::from_le_bytes(di)) << (16 * i);
    }
    let v = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128(h as i64)), _mm_set1_ps(da));
    // SAFETY: four f32 into a four-element array.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
    std::hint::black_box(out);
}

/// One token against `rows` rows of `w`: groups of `$r` rows through `$group::<{ $r }>`, the
/// rest one by one through `$group::<1>`. Each `$group::<R>(rp, stride, nb, a)` returns R dots
/// and needs the target features of the unsafe fn this expands in.
macro_rules! gemv_rows {
    ($w:expr, $rows:expr, $a:expr, $out:expr, $r:expr, $group:ident) => {{
        let (w, rows, a, out) = ($w, $rows, $a, $out);
        let n = rows.min(out.len());
        let out = &mut out[..n];
        let per_row = w.len().checked_div(rows).unwrap_or(0);
        let nb = per_row.min(a.len());
        let mut groups = out.chunks_exact_mut($r);
        let mut r = 0;
        for o in &mut groups {
            // SAFETY: rows r..r + $r lie in w (r + $r ≤ out.len() ≤ rows), each row holds
            // per_row ≥ nb blocks, and a holds nb blocks; the features are the caller's.
            o.copy_from_slice(&unsafe {
                $group::<{ $r }>(w.as_ptr().add(r * per_row), per_row, nb, a)
            });
            r += $r;
        }
        for o in groups.into_remainder() {
            // SAFETY: as above, for the single row r < rows.
            *o = unsafe { $group::<1>(w.as_ptr().add(r * per_row), per_row, nb, a) }[0];
            r += 1;
        }
    }};
}

pub(crate) use gemv_rows;
