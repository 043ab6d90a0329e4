//! The CPU backend: weights read in place (from the file map) by the fastest kernel variant this
//! CPU runs (or a forced one), buffers in host memory, every op run inside one rayon pool of the
//! configured size.

use std::sync::Arc;

use half::f16;
use half::slice::HalfFloatSliceExt;
use kernels::cpu::forced_isa;
use kernels::matmul::{prepare, MatMul};
use kernels::registry::find_format;
use rayon::prelude::*;

use crate::{Backend, BackendError, Buffer, Glu, Heads, KvCache, KvType, Rope, Weight, WeightData};

const NAME: &str = "cpu";

/// How to build a [`CpuBackend`].
#[derive(Debug, Clone, Default)]
pub struct CpuConfig {
    /// Worker threads; 0 means one per logical CPU.
    pub threads: usize,
    /// A kernel spec as `TERNBENCH_KERNEL` takes it (`avx2`, `tq2_0/scalar,q6_K/avx2`).
    pub kernel: Option<String>,
    /// Pin worker i to logical CPU i where the OS allows, so the scheduler cannot migrate or
    /// stack workers mid-measurement.
    pub pin: bool,
}

enum Store {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl Store {
    fn new(ty: KvType, len: usize) -> Store {
        match ty {
            KvType::F16 => Store::F16(vec![f16::ZERO; len]),
            KvType::F32 => Store::F32(vec![0.0; len]),
        }
    }

    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Store::F16(s) => s[at..at + src.len()].convert_from_f32_slice(src),
            Store::F32(s) => s[at..at + src.len()].copy_from_slice(src),
        }
    }

    fn read(&self, at: usize, dst: &mut [f32]) {
        match self {
            Store::F16(s) => s[at..at + dst.len()].convert_to_f32_slice(dst),
            Store::F32(s) => dst.copy_from_slice(&s[at..at + dst.len()]),
        }
    }
}

struct Cache {
    layers: usize,
    context: usize,
    kv_dim: usize,
    ty: KvType,
    k: Store,
    v: Store,
}

/// The CPU implementation of [`Backend`].
pub struct CpuBackend {
    pool: Arc<rayon::ThreadPool>,
    kernel: Option<String>,
    weights: Vec<Box<dyn MatMul>>,
    weight_bytes: usize,
    buffers: Vec<Vec<f32>>,
    caches: Vec<Cache>,
    /// Scratch for attention: one layer's keys and values as f32, kept between calls.
    kv_rows: (Vec<f32>, Vec<f32>),
}

impl CpuBackend {
    pub fn new(config: CpuConfig) -> Result<CpuBackend, BackendError> {
        let cores = if config.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .start_handler(move |i| {
                if let Some(&core) = cores.get(i % cores.len().max(1)) {
                    // Best effort: a refused pin leaves the worker unpinned, which still computes right.
                    core_affinity::set_for_current(core);
                }
            })
            .build()
            .map_err(|e| BackendError::Unavailable {
                backend: NAME,
                reason: format!("cannot start {} threads: {e}", config.threads),
            })?;
        Ok(CpuBackend {
            pool: Arc::new(pool),
            kernel: config.kernel,
            weights: Vec::new(),
            weight_bytes: 0,
            buffers: Vec::new(),
            caches: Vec::new(),
            kv_rows: (Vec::new(), Vec::new()),
        })
    }

    /// The pool every op runs in. A caller that issues many ops (a forward pass) should issue
    /// them from inside it (`pool.install`): an op started from outside hands its work to a
    /// worker and sleeps until it is done, two cross-thread wake-ups that cost 6-15 µs each op
    /// on a 2-vCPU VM, against under 2 µs from inside.
    pub fn pool(&self) -> Arc<rayon::ThreadPool> {
        self.pool.clone()
    }

    fn weight(&self, op: &'static str, w: Weight) -> Result<&dyn MatMul, BackendError> {
        self.weights
            .get(w.0 as usize)
            .map(|b| b.as_ref())
            .ok_or(BackendError::Handle {
                op,
                kind: "weight",
                id: w.0,
            })
    }

    fn buffer(&self, op: &'static str, b: Buffer) -> Result<&Vec<f32>, BackendError> {
        self.buffers.get(b.0 as usize).ok_or(BackendError::Handle {
            op,
            kind: "buffer",
            id: b.0,
        })
    }

    /// Take a buffer out to write it while others are read; [`Self::put`] returns it.
    fn take(&mut self, op: &'static str, b: Buffer) -> Result<Vec<f32>, BackendError> {
        self.buffers
            .get_mut(b.0 as usize)
            .map(std::mem::take)
            .ok_or(BackendError::Handle {
                op,
                kind: "buffer",
                id: b.0,
            })
    }

    fn put(&mut self, b: Buffer, v: Vec<f32>) {
        if let Some(slot) = self.buffers.get_mut(b.0 as usize) {
            *slot = v;
        }
    }
}

fn need(op: &'static str, what: &str, have: usize, want: usize) -> Result<(), BackendError> {
    if have < want {
        return Err(BackendError::Shape {
            op,
            reason: format!("{what} holds {have} values, the op needs {want}"),
        });
    }
    Ok(())
}

fn distinct(op: &'static str, a: Buffer, b: Buffer) -> Result<(), BackendError> {
    if a == b {
        return Err(BackendError::Shape {
            op,
            reason: format!("input and output are the same buffer {}", a.0),
        });
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// RMSNorm's factor for one row as ggml computes it: the sum of squares in f64, the scale in f32.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// NEOX rotation of one head: pairs (i, i + dims/2), angle pos·base^(−2i/dims), the angle
/// advanced by repeated multiplication in f32 as ggml does.
fn rope_head(x: &mut [f32], rope: Rope, pos: usize) {
    let half = rope.dims / 2;
    let theta_scale = rope.freq_base.powf(-2.0 / rope.dims as f32);
    let mut theta = pos as f32;
    for i in 0..half {
        let (sin, cos) = theta.sin_cos();
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * cos - b * sin;
        x[i + half] = a * sin + b * cos;
        theta *= theta_scale;
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: vectorizes, and rounds like ggml's SIMD dot more than a serial sum does.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// One query head against positions `0..n` of its KV head, whose keys and values (already read
/// out of the cache as f32, `head_dim` per position) are `k` and `v`; written to `out`.
fn attend(ty: KvType, k: &[f32], v: &[f32], q: &[f32], n: usize, out: &mut [f32]) {
    let hd = q.len();
    let mut q16 = q.to_vec();
    if ty == KvType::F16 {
        // ggml converts the query to the cache's type before the K·Q product.
        for v in &mut q16 {
            *v = f16::from_f32(*v).to_f32();
        }
    }
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores: Vec<f32> = k
        .chunks_exact(hd)
        .take(n)
        .map(|row| dot(&q16, row) * scale)
        .collect();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for s in &mut scores {
        *s = (*s - max).exp();
        sum += f64::from(*s);
    }
    let inv = (1.0 / sum) as f32;
    for s in &mut scores {
        *s *= inv;
        if ty == KvType::F16 {
            // ...and the probabilities before the product with V.
            *s = f16::from_f32(*s).to_f32();
        }
    }
    out.fill(0.0);
    for (&p, row) in scores.iter().zip(v.chunks_exact(hd)) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += p * v;
        }
    }
}

/// Positions `0..n` of every KV head of `layer`, read out of the cache once per call (the
/// query heads of a group and every token of a prompt share them): `[kv_head][position][dim]`.
fn read_heads(c: &Cache, store: &Store, layer: usize, hd: usize, n: usize, dst: &mut Vec<f32>) {
    let kv_heads = c.kv_dim / hd;
    dst.resize(kv_heads * n * hd, 0.0);
    let base = layer * c.context * c.kv_dim;
    dst.par_chunks_mut(n * hd)
        .enumerate()
        .for_each(|(g, head)| {
            for (j, row) in head.chunks_exact_mut(hd).enumerate() {
                store.read(base + j * c.kv_dim + g * hd, row);
            }
        });
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn device(&self) -> String {
        cpu_model()
    }

    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn upload_weight(&mut self, w: WeightData<'_>) -> Result<Weight, BackendError> {
        let wrap = |source| BackendError::Weight {
            name: w.name.to_string(),
            source,
        };
        let format = find_format(w.format).map_err(wrap)?;
        let force = match self.kernel.as_deref().and_then(|s| forced_isa(s, w.format)) {
            Some(Ok(isa)) => Some(isa),
            Some(Err(bad)) => {
                return Err(BackendError::Unsupported {
                    backend: NAME,
                    what: format!("kernel variant '{bad}' (no such instruction set)"),
                })
            }
            None => None,
        };
        let expected = format.tensor_bytes(w.rows, w.cols).map_err(wrap)?;
        if w.bytes.len() < expected {
            return Err(wrap(kernels::KernelError::BufferSize {
                format: format.info().name,
                what: "packed bytes",
                got: w.bytes.len(),
                expected,
            }));
        }
        let packed = w.bytes.slice(..expected);
        let kernel = prepare(format, packed, w.rows, w.cols, force).map_err(wrap)?;
        self.weight_bytes += expected;
        self.weights.push(kernel);
        Ok(Weight(self.weights.len() as u32 - 1))
    }

    fn variant(&self, w: Weight) -> Result<String, BackendError> {
        Ok(self.weight("variant", w)?.variant())
    }

    fn upload(&mut self, data: &[f32]) -> Result<Buffer, BackendError> {
        self.buffers.push(data.to_vec());
        Ok(Buffer(self.buffers.len() as u32 - 1))
    }

    fn alloc(&mut self, len: usize) -> Result<Buffer, BackendError> {
        self.buffers.push(vec![0.0; len]);
        Ok(Buffer(self.buffers.len() as u32 - 1))
    }

    fn kv_cache(
        &mut self,
        layers: usize,
        context: usize,
        kv_dim: usize,
        ty: KvType,
    ) -> Result<KvCache, BackendError> {
        let len = layers
            .checked_mul(context)
            .and_then(|n| n.checked_mul(kv_dim))
            .ok_or_else(|| BackendError::Shape {
                op: "kv_cache",
                reason: format!("{layers} layers × {context} positions × {kv_dim} overflows"),
            })?;
        self.caches.push(Cache {
            layers,
            context,
            kv_dim,
            ty,
            k: Store::new(ty, len),
            v: Store::new(ty, len),
        });
        Ok(KvCache(self.caches.len() as u32 - 1))
    }

    fn embed(&mut self, table: Weight, tokens: &[u32], out: Buffer) -> Result<(), BackendError> {
        let mut o = self.take("embed", out)?;
        let result = (|| {
            let w = self.weight("embed", table)?;
            let cols = w.cols();
            need("embed", "output", o.len(), tokens.len() * cols)?;
            for (&t, row) in tokens.iter().zip(o.chunks_exact_mut(cols.max(1))) {
                if t as usize >= w.rows() {
                    return Err(BackendError::Shape {
                        op: "embed",
                        reason: format!("token {t} is outside the {}-row table", w.rows()),
                    });
                }
                w.dequantize_row(t as usize, row)?;
            }
            Ok(())
        })();
        self.put(out, o);
        result
    }

    fn matmul(
        &mut self,
        w: Weight,
        x: Buffer,
        tokens: usize,
        out: Buffer,
    ) -> Result<(), BackendError> {
        distinct("matmul", x, out)?;
        let mut o = self.take("matmul", out)?;
        let result = (|| {
            let m = self.weight("matmul", w)?;
            let xs = self.buffer("matmul", x)?;
            let (rows, cols) = (m.rows(), m.cols());
            need("matmul", "input", xs.len(), tokens * cols)?;
            need("matmul", "output", o.len(), tokens * rows)?;
            self.pool
                .install(|| m.matmul(&xs[..tokens * cols], tokens, &mut o[..tokens * rows]))?;
            Ok(())
        })();
        self.put(out, o);
        result
    }

    fn rms_norm(
        &mut self,
        x: Buffer,
        weight: Buffer,
        eps: f32,
        tokens: usize,
        out: Buffer,
    ) -> Result<(), BackendError> {
        distinct("rms_norm", weight, out)?;
        let mut o = self.take("rms_norm", out)?;
        let result = (|| {
            let w = self.buffer("rms_norm", weight)?;
            let n = w.len();
            need("rms_norm", "output", o.len(), tokens * n)?;
            if n == 0 {
                return Ok(());
            }
            let rows = o[..tokens * n].chunks_exact_mut(n);
            if x == out {
                // In place: `o` is the input, so scale each row where it lies.
                for row in rows {
                    let s = rms_scale(row, eps);
                    for (v, &g) in row.iter_mut().zip(w) {
                        *v = (*v * s) * g;
                    }
                }
            } else {
                let xs = self.buffer("rms_norm", x)?;
                need("rms_norm", "input", xs.len(), tokens * n)?;
                for (src, dst) in xs.chunks_exact(n).zip(rows) {
                    let s = rms_scale(src, eps);
                    for ((d, &v), &g) in dst.iter_mut().zip(src).zip(w) {
                        *d = (v * s) * g;
                    }
                }
            }
            Ok(())
        })();
        self.put(out, o);
        result
    }

    fn rope(
        &mut self,
        x: Buffer,
        tokens: usize,
        heads: usize,
        head_dim: usize,
        rope: Rope,
        pos0: usize,
    ) -> Result<(), BackendError> {
        if rope.dims > head_dim || !rope.dims.is_multiple_of(2) {
            return Err(BackendError::Shape {
                op: "rope",
                reason: format!("{} rotated dims in a head of {head_dim}", rope.dims),
            });
        }
        let mut o = self.take("rope", x)?;
        let r = need("rope", "input", o.len(), tokens * heads * head_dim);
        if r.is_ok() && head_dim > 0 && heads > 0 {
            for (t, tok) in o[..tokens * heads * head_dim]
                .chunks_exact_mut(heads * head_dim)
                .enumerate()
            {
                for head in tok.chunks_exact_mut(head_dim) {
                    rope_head(head, rope, pos0 + t);
                }
            }
        }
        self.put(x, o);
        r
    }

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
    ) -> Result<(), BackendError> {
        let op = "attention";
        distinct(op, q, out)?;
        let Heads {
            heads: nh,
            kv_heads,
            head_dim: hd,
        } = heads;
        if kv_heads == 0 || !nh.is_multiple_of(kv_heads) || hd == 0 {
            return Err(BackendError::Shape {
                op,
                reason: format!("{nh} heads do not share {kv_heads} KV heads of {hd}"),
            });
        }
        let mut o = self.take(op, out)?;
        let result = (|| {
            let c = self
                .caches
                .get_mut(cache.0 as usize)
                .ok_or(BackendError::Handle {
                    op,
                    kind: "kv cache",
                    id: cache.0,
                })?;
            let kv_dim = kv_heads * hd;
            if c.kv_dim != kv_dim || layer >= c.layers || pos0 + tokens > c.context {
                return Err(BackendError::Shape {
                    op,
                    reason: format!(
                        "layer {layer}, positions {pos0}..{} do not fit a cache of {} layers × {} positions × {}",
                        pos0 + tokens,
                        c.layers,
                        c.context,
                        c.kv_dim
                    ),
                });
            }
            let (ks, vs) = (
                self.buffers.get(k.0 as usize),
                self.buffers.get(v.0 as usize),
            );
            let (Some(ks), Some(vs)) = (ks, vs) else {
                return Err(BackendError::Handle {
                    op,
                    kind: "buffer",
                    id: k.0.max(v.0),
                });
            };
            need(op, "keys", ks.len(), tokens * kv_dim)?;
            need(op, "values", vs.len(), tokens * kv_dim)?;
            let base = layer * c.context * kv_dim;
            for t in 0..tokens {
                let at = base + (pos0 + t) * kv_dim;
                c.k.write(at, &ks[t * kv_dim..(t + 1) * kv_dim]);
                c.v.write(at, &vs[t * kv_dim..(t + 1) * kv_dim]);
            }
            let qs = self.buffers.get(q.0 as usize).ok_or(BackendError::Handle {
                op,
                kind: "buffer",
                id: q.0,
            })?;
            let width = nh * hd;
            need(op, "queries", qs.len(), tokens * width)?;
            need(op, "output", o.len(), tokens * width)?;
            let c = &*c;
            let group = nh / kv_heads;
            let n = pos0 + tokens;
            let (kf, vf) = (&mut self.kv_rows.0, &mut self.kv_rows.1);
            self.pool.install(|| {
                read_heads(c, &c.k, layer, hd, n, kf);
                read_heads(c, &c.v, layer, hd, n, vf);
                o[..tokens * width]
                    .par_chunks_mut(hd)
                    .enumerate()
                    .for_each(|(i, dst)| {
                        let (t, h) = (i / nh, i % nh);
                        let src = &qs[t * width + h * hd..t * width + (h + 1) * hd];
                        let head = (h / group) * n * hd..(h / group + 1) * n * hd;
                        attend(c.ty, &kf[head.clone()], &vf[head], src, pos0 + t + 1, dst);
                    })
            });
            Ok(())
        })();
        self.put(out, o);
        result
    }

    fn glu(&mut self, gate: Buffer, up: Buffer, act: Glu, len: usize) -> Result<(), BackendError> {
        distinct("glu", gate, up)?;
        let mut g = self.take("glu", gate)?;
        let result = (|| {
            let u = self.buffer("glu", up)?;
            need("glu", "gate", g.len(), len)?;
            need("glu", "up", u.len(), len)?;
            for (g, &u) in g[..len].iter_mut().zip(&u[..len]) {
                *g = match act {
                    Glu::Silu => *g / (1.0 + (-*g).exp()) * u,
                    Glu::ReluSquared => {
                        let r = g.max(0.0);
                        r * r * u
                    }
                };
            }
            Ok(())
        })();
        self.put(gate, g);
        result
    }

    fn add(&mut self, acc: Buffer, x: Buffer, len: usize) -> Result<(), BackendError> {
        distinct("add", acc, x)?;
        let mut a = self.take("add", acc)?;
        let result = (|| {
            let xs = self.buffer("add", x)?;
            need("add", "accumulator", a.len(), len)?;
            need("add", "input", xs.len(), len)?;
            for (a, &x) in a[..len].iter_mut().zip(&xs[..len]) {
                *a += x;
            }
            Ok(())
        })();
        self.put(acc, a);
        result
    }

    fn copy(
        &mut self,
        src: Buffer,
        at: usize,
        dst: Buffer,
        len: usize,
    ) -> Result<(), BackendError> {
        distinct("copy", src, dst)?;
        let mut d = self.take("copy", dst)?;
        let result = (|| {
            let s = self.buffer("copy", src)?;
            need("copy", "source", s.len(), at + len)?;
            need("copy", "destination", d.len(), len)?;
            d[..len].copy_from_slice(&s[at..at + len]);
            Ok(())
        })();
        self.put(dst, d);
        result
    }

    fn scale(&mut self, x: Buffer, factor: f32, len: usize) -> Result<(), BackendError> {
        let mut a = self.take("scale", x)?;
        let r = need("scale", "input", a.len(), len);
        if r.is_ok() {
            a[..len].iter_mut().for_each(|v| *v *= factor);
        }
        self.put(x, a);
        r
    }

    fn download(&mut self, x: Buffer, out: &mut [f32]) -> Result<(), BackendError> {
        let xs = self.buffer("download", x)?;
        need("download", "buffer", xs.len(), out.len())?;
        out.copy_from_slice(&xs[..out.len()]);
        Ok(())
    }

    fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }
}
