//! TQ1_0 and TQ2_0 SIMD variants on inputs the quantizers never write, so the shared variant test
//! never sees them: every finite f16 block scale (zero, subnormal, the extremes; the x86 kernels
//! convert normal halves on the integer ports and the rest with F16C) and every qs byte (TQ2_0
//! code 3 stands for weight +2 in the reference, and must in the kernels too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernels::activations::{quantize_row, BlockActivation, F16Bytes};
use kernels::formats::tq1_0::{BlockTq1_0, Tq1_0};
use kernels::formats::tq2_0::{BlockTq2_0, Tq2_0};
use kernels::formats::ActBlock;
use kernels::BlockFormat;

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 6.0 - 3.0
    }
}

/// Three tokens of `F`'s activations over `blocks` blocks.
fn acts<F: BlockFormat>(rng: &mut Rng, blocks: usize) -> Vec<Vec<ActBlock<F>>> {
    (0..3)
        .map(|_| {
            let x: Vec<f32> = (0..blocks * 256).map(|_| rng.float()).collect();
            quantize_row::<F::Act>(&x).unwrap()
        })
        .collect()
}

/// Every available variant of `F` on `w` against the reference, within 1e-5 of Σ|w|·|x| (the
/// dequantized weights and activations `af`).
fn check<F: BlockFormat>(w: &[F::Block], acts: &[Vec<ActBlock<F>>], af: &[Vec<f32>], what: &str) {
    let mut wf = vec![0.0; w.len() * 256];
    F::dequantize_blocks(w, &mut wf);
    let want: Vec<(f32, f32)> = acts
        .iter()
        .zip(af)
        .map(|(a, af)| {
            let l1: f32 = wf.iter().zip(af).map(|(x, y)| (x * y).abs()).sum();
            (F::dot_blocks(w, a), 1e-5 * l1 + f32::MIN_POSITIVE)
        })
        .collect();
    for &(isa, dot) in F::simd_variants() {
        if !isa.available() {
            continue;
        }
        let mut out = vec![f32::NAN; acts.len()];
        dot(w, acts, &mut out);
        for (t, (got, &(want, tol))) in out.iter().zip(&want).enumerate() {
            assert!(
                (got - want).abs() <= tol,
                "{} {isa} {what} token {t}: {got} vs {want} (tol {tol})",
                F::INFO.name
            );
        }
    }
}

/// The activations dequantized.
fn dequant<F: BlockFormat>(acts: &[Vec<ActBlock<F>>]) -> Vec<Vec<f32>> {
    acts.iter()
        .map(|a| {
            let mut x = vec![0.0; a.len() * 256];
            F::Act::dequantize_blocks(a, &mut x);
            x
        })
        .collect()
}

fn finite_halves() -> impl Iterator<Item = [u8; 2]> {
    (0..=u16::MAX)
        .filter(|&h| h & 0x7c00 != 0x7c00)
        .map(u16::to_le_bytes)
}

#[test]
fn tq2_0_variants_take_every_finite_scale_and_every_byte() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let a = acts::<Tq2_0>(&mut rng, 2);
    let af = dequant::<Tq2_0>(&a);
    let mut w = [BlockTq2_0 {
        qs: [0; 64],
        d: F16Bytes([0; 2]),
    }; 2];
    for b in &mut w {
        b.qs.iter_mut().for_each(|q| *q = rng.byte());
    }
    for h in finite_halves() {
        w.iter_mut().for_each(|b| b.d = F16Bytes(h));
        check::<Tq2_0>(
            &w,
            &a,
            &af,
            &format!("d bits {:#06x}", u16::from_le_bytes(h)),
        );
    }
}

#[test]
fn tq1_0_variants_take_every_finite_scale_and_every_byte() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let a = acts::<Tq1_0>(&mut rng, 2);
    let af = dequant::<Tq1_0>(&a);
    let mut w = [BlockTq1_0 {
        qs: [0; 48],
        qh: [0; 4],
        d: F16Bytes([0; 2]),
    }; 2];
    for b in &mut w {
        b.qs.iter_mut().for_each(|q| *q = rng.byte());
        b.qh.iter_mut().for_each(|q| *q = rng.byte());
    }
    for h in finite_halves() {
        w.iter_mut().for_each(|b| b.d = F16Bytes(h));
        check::<Tq1_0>(
            &w,
            &a,
            &af,
            &format!("d bits {:#06x}", u16::from_le_bytes(h)),
        );
    }
}
