//! Criterion benches: GEMV (1 token) and GEMM (64 tokens) for every format's best variant at
//! BitNet b1.58 2B4T's shapes, cache-resident, on rayon's default pool. Throughput is reported
//! in weight bytes read per second (the quantity the bandwidth bound is about), not operations.
//! `ternbench kernels` gives the same cases with DRAM residency and the measured bandwidth.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::matmul::prepare;
use kernels::FORMATS;

const SHAPES: [(usize, usize); 4] = [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)];

/// Deterministic weights: ternary for ternary formats, small uniform values otherwise.
fn weights(ternary: bool, n: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if ternary {
                ((state % 3) as f32 - 1.0) / 64.0
            } else {
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) / 10.0
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for tokens in [1usize, 64] {
        let mut group = c.benchmark_group(if tokens == 1 { "gemv" } else { "gemm64" });
        group.sample_size(20);
        for f in FORMATS {
            for &(m, k) in &SHAPES {
                let Ok(packed) = f.pack(&weights(f.info().ternary, m * k), m, k) else {
                    continue;
                };
                let weight_bytes = packed.len() as u64;
                let Ok(kernel) = prepare(*f, packed.into(), m, k, None) else {
                    continue;
                };
                let x = weights(false, tokens * k);
                let mut y = vec![0.0f32; tokens * m];
                group.throughput(Throughput::Bytes(weight_bytes));
                group.bench_with_input(
                    BenchmarkId::new(kernel.variant(), format!("{m}x{k}")),
                    &x,
                    |b, x| b.iter(|| kernel.matmul(black_box(x), tokens, &mut y)),
                );
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
