//! aarch64 I2_S row kernels: NEON (`smull`/`smlal` into bounded int16 sums, widened every
//! [`I16_BLOCKS`] blocks) and dotprod (`sdot` straight into int32). Codes c ∈ {0, 1, 2} multiply the
//! int8 activations directly, so the integer dot is Σc·q and `finish` subtracts Σq. Each weight
//! block is unpacked once and serves up to four tokens.

use std::arch::aarch64::*;
use std::arch::asm;

use super::finish;
use crate::activations::i8_s::I8sRow;

/// Bytes per 128-weight block.
const BLOCK_BYTES: usize = 32;
/// Activations per block.
const BLOCK_ACTS: usize = 128;
/// Tokens that share one unpacked weight block.
const GROUP: usize = 4;
/// NEON int16 sums: a product is in [-256, 254] and a lane takes 8 per block, so 8 blocks stay
/// within ±16384.
const I16_BLOCKS: usize = 8;
/// Dotprod lanes gain at most 2·4·32·128 = 2^15 per block (codes pre-scaled by up to 16), so 2^14
/// blocks keep every lane below 2^29.
const CHUNK_BLOCKS: usize = 1 << 14;

pub(super) fn dot_i2_s_i8_s_neon(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    // SAFETY: listed under Isa::Neon, and matmul::check_isa only hands it out after Isa::Neon.available() confirmed the features.
    unsafe { rows_neon(row, acts, scale, out) }
}

pub(super) fn dot_i2_s_i8_s_dotprod(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    // SAFETY: listed under Isa::Dotprod, and matmul::check_isa only hands it out after Isa::Dotprod.available() confirmed the features.
    unsafe { rows_dotprod(row, acts, scale, out) }
}

/// Blocks that the row and every token's activations all cover (the driver makes them equal).
fn blocks<const N: usize>(row: &[u8], acts: &[&I8sRow; N]) -> usize {
    acts.iter().fold(row.len() / BLOCK_BYTES, |n, a| {
        n.min(a.qs.len() / BLOCK_ACTS)
    })
}

/// Finish one group's integer dots into `out`.
fn store(out: &mut [f32], acts: &[I8sRow], raw: &[i32], scale: f32) {
    for ((o, a), &r) in out.iter_mut().zip(acts).zip(raw) {
        *o = finish(r, a, scale);
    }
}

/// Split `acts` into groups of up to [`GROUP`] tokens and hand each to `group::<N, S>` (S
/// accumulator sets per token: one token needs two to hide the `sdot` latency).
macro_rules! by_groups_sets {
    ($row:expr, $acts:expr, $scale:expr, $out:expr, $group:ident) => {
        for (a, o) in $acts.chunks(GROUP).zip($out.chunks_mut(GROUP)) {
            // SAFETY: the caller's features are enabled, as every group kernel requires.
            unsafe {
                match a.len() {
                    1 => $group::<1, 2>($row, a).map(|r| store(o, a, &r, $scale)),
                    2 => $group::<2, 1>($row, a).map(|r| store(o, a, &r, $scale)),
                    3 => $group::<3, 1>($row, a).map(|r| store(o, a, &r, $scale)),
                    _ => $group::<4, 1>($row, a).map(|r| store(o, a, &r, $scale)),
                };
            }
        }
    };
}

#[target_feature(enable = "neon")]
unsafe fn rows_neon(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        // SAFETY: this fn's features are enabled, as every group kernel requires.
        unsafe {
            match a.len() {
                1 => group_neon::<1>(row, a).map(|r| store(o, a, &r, scale)),
                2 => group_neon::<2>(row, a).map(|r| store(o, a, &r, scale)),
                3 => group_neon::<3>(row, a).map(|r| store(o, a, &r, scale)),
                _ => group_neon::<4>(row, a).map(|r| store(o, a, &r, scale)),
            };
        }
    }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn rows_dotprod(row: &[u8], acts: &[I8sRow], scale: f32, out: &mut [f32]) {
    by_groups_sets!(row, acts, scale, out, group_dotprod);
}

/// Σc·q for N tokens: shift and mask the four 2-bit fields to codes 0..2, multiply-accumulate
/// into int16 (one accumulator per 16-byte half), widen to int32 with `sadalp`.
#[target_feature(enable = "neon")]
unsafe fn group_neon<const N: usize>(row: &[u8], acts: &[I8sRow]) -> Option<[i32; N]> {
    let acts = <&[I8sRow; N]>::try_from(acts).ok()?;
    let acts = acts.each_ref();
    let nb = blocks(row, &acts);
    let wp = row.as_ptr();
    let ap = acts.map(|a| a.qs.as_ptr());
    let m3 = vdupq_n_u8(3);
    let mut acc = [[vdupq_n_s32(0); 2]; N];
    let mut b = 0;
    while b < nb {
        let end = nb.min(b + I16_BLOCKS);
        let mut acc16 = [[vdupq_n_s16(0); 2]; N];
        while b < end {
            // Codes of the block's two 16-byte halves, field by field.
            let c = [0, 16].map(|h| {
                // SAFETY: b < nb, so the block's 32 bytes lie within row.
                let v = unsafe { vld1q_u8(wp.add(b * BLOCK_BYTES + h)) };
                [
                    vshrq_n_u8::<6>(v),
                    vandq_u8(vshrq_n_u8::<4>(v), m3),
                    vandq_u8(vshrq_n_u8::<2>(v), m3),
                    vandq_u8(v, m3),
                ]
                .map(|c| vreinterpretq_s8_u8(c))
            });
            for (a16, p) in acc16.iter_mut().zip(&ap) {
                for ((s, ch), h) in a16.iter_mut().zip(&c).zip([0, 16]) {
                    for (k, &ck) in ch.iter().enumerate() {
                        // SAFETY: b < nb, so the block's 128 activations lie within every qs.
                        let q = unsafe { vld1q_s8(p.add(b * BLOCK_ACTS + 32 * k + h)) };
                        *s = vmlal_s8(*s, vget_low_s8(ck), vget_low_s8(q));
                        *s = vmlal_high_s8(*s, ck, q);
                    }
                }
            }
            b += 1;
        }
        for (a, s) in acc.iter_mut().flatten().zip(acc16.iter().flatten()) {
            *a = vpadalq_s16(*a, *s);
        }
    }
    Some(acc.map(|[x, y]| vaddvq_s32(vaddq_s32(x, y))))
}

/// `acc + Σ a·b` over groups of four signed bytes (`sdot`; its intrinsic is not stable Rust).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: sdot only reads and writes these registers; dotprod is enabled for this fn.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Σc·q for N tokens with `sdot`: field 0 comes out by one shift, fields 1..3 by one AND each
/// (worth 16c, 4c and c), each summed in its own accumulator and scaled back exactly at the end.
#[target_feature(enable = "neon,dotprod")]
unsafe fn group_dotprod<const N: usize, const S: usize>(
    row: &[u8],
    acts: &[I8sRow],
) -> Option<[i32; N]> {
    let acts = <&[I8sRow; N]>::try_from(acts).ok()?;
    let acts = acts.each_ref();
    let nb = blocks(row, &acts);
    let wp = row.as_ptr();
    let ap = acts.map(|a| a.qs.as_ptr());
    let masks = [0x30u8, 0x0c, 0x03].map(|m| vdupq_n_u8(m));
    let mut total = [0i32; N];
    let mut b = 0;
    while b < nb {
        let end = nb.min(b + CHUNK_BLOCKS);
        let mut acc = [[[vdupq_n_s32(0); 4]; S]; N];
        while b < end {
            for h in 0..2 {
                // SAFETY: b < nb, so the block's 32 bytes lie within row.
                let v = unsafe { vld1q_u8(wp.add(b * BLOCK_BYTES + 16 * h)) };
                let c = [
                    vshrq_n_u8::<6>(v),
                    vandq_u8(v, masks[0]),
                    vandq_u8(v, masks[1]),
                    vandq_u8(v, masks[2]),
                ]
                .map(|c| vreinterpretq_s8_u8(c));
                for t in 0..N {
                    let a = &mut acc[t][h % S];
                    for (k, &ck) in c.iter().enumerate() {
                        // SAFETY: b < nb, so the block's 128 activations lie within every qs.
                        let q = unsafe { vld1q_s8(ap[t].add(b * BLOCK_ACTS + 32 * k + 16 * h)) };
                        a[k] = sdot(a[k], ck, q);
                    }
                }
            }
            b += 1;
        }
        for t in 0..N {
            let mut s = vdupq_n_s32(0);
            for a in &acc[t] {
                // Field sums are multiples of their weight, so the arithmetic shifts are exact.
                s = vaddq_s32(s, vaddq_s32(a[0], a[3]));
                s = vaddq_s32(s, vaddq_s32(vshrq_n_s32::<4>(a[1]), vshrq_n_s32::<2>(a[2])));
            }
            total[t] = total[t].wrapping_add(vaddvq_s32(s));
        }
    }
    Some(total)
}
