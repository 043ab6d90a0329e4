//! The BitNet b1.58 forward pass, written once against [`backends::Backend`].
//!
//! Two graphs share it: llama.cpp's `bitnet` (SiLU-gated FFN) and bitnet.cpp's `bitnet-b1.58`
//! (2B4T: ReLU²-gated FFN, grouped-query attention). Both: RMSNorm → Q/K/V → NEOX RoPE →
//! attention over the KV cache → attn_sub_norm → output projection → residual; RMSNorm → gate/up
//! → GLU → ffn_sub_norm → down → residual; final RMSNorm → lm_head (tied to the embedding
//! unless `output.weight` exists).

use std::path::PathBuf;

use backends::{
    Backend, BackendError, Buffer, Glu, Heads, KvCache, KvType, Rope, Weight, WeightData,
};

use crate::gguf::{Gguf, TensorInfo, TensorType, Value};

/// The graph a file's `general.architecture` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// llama.cpp's `bitnet`.
    Bitnet,
    /// bitnet.cpp's `bitnet-b1.58` (earlier files say `bitnet-25`).
    BitnetB158,
}

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "bitnet" => Some(Arch::Bitnet),
            "bitnet-b1.58" | "bitnet-25" => Some(Arch::BitnetB158),
            _ => None,
        }
    }

    pub fn glu(self) -> Glu {
        match self {
            Arch::Bitnet => Glu::Silu,
            Arch::BitnetB158 => Glu::ReluSquared,
        }
    }
}

/// Hyper-parameters read from the file's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub arch_name: String,
    pub vocab: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope_dims: usize,
    pub rope_base: f32,
    pub eps: f32,
    pub context: usize,
}

impl Config {
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// What went wrong loading or running a model, naming the file and tensor.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("{}: architecture '{arch}' is not supported (bitnet, bitnet-b1.58 are)", file.display())]
    Arch { file: PathBuf, arch: String },
    #[error("{}: metadata '{key}': {reason}", file.display())]
    Key {
        file: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{}: tensor '{tensor}' is missing", file.display())]
    Missing { file: PathBuf, tensor: String },
    #[error("{}: tensor '{tensor}': {reason}", file.display())]
    Tensor {
        file: PathBuf,
        tensor: String,
        reason: String,
    },
    #[error("{}: tensor '{tensor}': {source}", file.display())]
    Upload {
        file: PathBuf,
        tensor: String,
        #[source]
        source: Box<BackendError>,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{at}: {source}")]
    Op {
        at: String,
        #[source]
        source: Box<BackendError>,
    },
    #[error("token {token} is outside the vocabulary of {vocab}")]
    Token { token: u32, vocab: usize },
    #[error("{}: tensor '{tensor}': kernel {variant} disagrees with the scalar reference (max relative error {err:.3e} > {tol:.0e}); refusing to run it", file.display())]
    Check {
        file: PathBuf,
        tensor: String,
        variant: String,
        err: f64,
        tol: f64,
    },
    #[error("non-finite logit {value} at position {pos}; no speed is reported for broken output")]
    NonFinite { pos: usize, value: f32 },
    #[error("position {need} is past the KV cache's {have} positions")]
    Context { need: usize, have: usize },
}

/// How to set a model up on a backend.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// KV cache positions; 0 means the file's context length (at most 4096).
    pub context: usize,
    pub kv_type: KvType,
    /// Tokens per forward batch (a longer prompt runs in several).
    pub batch: usize,
    /// Check one matrix of each format on the backend against the scalar reference at load.
    pub verify: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            context: 0,
            kv_type: KvType::F16,
            batch: 64,
            verify: true,
        }
    }
}

/// One uploaded matrix run on the backend and compared with the scalar reference GEMV.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WeightCheck {
    pub tensor: String,
    pub variant: String,
    pub rows: usize,
    pub cols: usize,
    /// max |y − y_ref| / max |y_ref| over every row.
    pub max_rel_err: f64,
    pub tolerance: f64,
}

/// Relative to the largest reference output: integer parts are exact, so only float rounding
/// (f16 products, scale order) remains; a wrong kernel is off by order one.
pub const CHECK_TOLERANCE: f64 = 1e-4;

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    Last,
    All,
}

/// A projection with llama.cpp's optional 1-element `.scale` multiplier.
#[derive(Debug, Clone, Copy)]
struct Linear {
    w: Weight,
    scale: Option<f32>,
}

struct Layer {
    attn_norm: Buffer,
    q: Linear,
    k: Linear,
    v: Linear,
    attn_sub_norm: Buffer,
    o: Linear,
    ffn_norm: Buffer,
    gate: Linear,
    up: Linear,
    ffn_sub_norm: Buffer,
    down: Linear,
}

/// Device buffers for one batch of activations.
struct Scratch {
    x: Buffer,
    h: Buffer,
    q: Buffer,
    k: Buffer,
    v: Buffer,
    att: Buffer,
    proj: Buffer,
    gate: Buffer,
    up: Buffer,
    last: Buffer,
    logits: Buffer,
}

/// A model resident on a backend, with its KV cache and current position.
pub struct Model {
    pub config: Config,
    pub file: PathBuf,
    backend: Box<dyn Backend>,
    embed: Weight,
    embed_bytes: usize,
    output: Weight,
    output_norm: Buffer,
    layers: Vec<Layer>,
    scratch: Scratch,
    cache: KvCache,
    context: usize,
    batch: usize,
    /// The load-time checks of each kernel variant against the scalar reference.
    pub checks: Vec<WeightCheck>,
    /// Tokens already in the KV cache.
    pub pos: usize,
}

fn meta_usize(g: &Gguf, key: &str) -> Result<Option<usize>, ModelError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| ModelError::Key {
                file: g.path.clone(),
                key: key.into(),
                reason: format!("expected a non-negative integer, found {v:?}"),
            }),
    }
}

fn meta_f32(g: &Gguf, key: &str) -> Result<Option<f32>, ModelError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_f32().map(Some).ok_or_else(|| ModelError::Key {
            file: g.path.clone(),
            key: key.into(),
            reason: format!("expected a number, found {v:?}"),
        }),
    }
}

fn required(g: &Gguf, key: String) -> Result<usize, ModelError> {
    match meta_usize(g, &key)? {
        Some(v) if v > 0 => Ok(v),
        Some(_) => Err(ModelError::Key {
            file: g.path.clone(),
            key,
            reason: "must be positive".into(),
        }),
        None => Err(ModelError::Key {
            file: g.path.clone(),
            key,
            reason: "missing".into(),
        }),
    }
}

impl Config {
    /// Read the hyper-parameters of a `bitnet` or `bitnet-b1.58` file.
    pub fn from_gguf(g: &Gguf) -> Result<Config, ModelError> {
        let arch_name = g.architecture().unwrap_or("(none)").to_string();
        let arch = Arch::from_name(&arch_name).ok_or_else(|| ModelError::Arch {
            file: g.path.clone(),
            arch: arch_name.clone(),
        })?;
        let k = |s: &str| format!("{arch_name}.{s}");
        let hidden = required(g, k("embedding_length"))?;
        let heads = required(g, k("attention.head_count"))?;
        let kv_heads = meta_usize(g, &k("attention.head_count_kv"))?.unwrap_or(heads);
        let head_dim = meta_usize(g, &k("attention.key_length"))?.unwrap_or(hidden / heads);
        let bad = |key: String, reason: String| ModelError::Key {
            file: g.path.clone(),
            key,
            reason,
        };
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(bad(
                k("attention.head_count_kv"),
                format!("{kv_heads} does not divide {heads} heads"),
            ));
        }
        if head_dim == 0 {
            return Err(bad(
                k("attention.head_count"),
                "heads exceed the width".into(),
            ));
        }
        let rope_dims = meta_usize(g, &k("rope.dimension_count"))?.unwrap_or(head_dim);
        if rope_dims > head_dim || !rope_dims.is_multiple_of(2) {
            return Err(bad(
                k("rope.dimension_count"),
                format!("{rope_dims} in a head of {head_dim}"),
            ));
        }
        let vocab = match meta_usize(g, &k("vocab_size"))? {
            Some(v) => v,
            None => g
                .tensor("token_embd.weight")
                .and_then(|t| t.dims.get(1).copied())
                .map_or(0, |v| v as usize),
        };
        Ok(Config {
            arch,
            vocab,
            hidden,
            ffn: required(g, k("feed_forward_length"))?,
            layers: required(g, k("block_count"))?,
            heads,
            kv_heads,
            head_dim,
            rope_dims,
            rope_base: meta_f32(g, &k("rope.freq_base"))?.unwrap_or(10000.0),
            eps: meta_f32(g, &k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5),
            context: meta_usize(g, &k("context_length"))?.unwrap_or(4096),
            arch_name,
        })
    }
}

/// Loads tensors from one file onto one backend, naming the tensor in every error.
struct Loader<'a> {
    g: &'a Gguf,
    backend: &'a mut dyn Backend,
    verify: bool,
    checks: Vec<WeightCheck>,
}

impl<'a> Loader<'a> {
    fn info(&self, name: &str) -> Result<&'a TensorInfo, ModelError> {
        self.g.tensor(name).ok_or_else(|| ModelError::Missing {
            file: self.g.path.clone(),
            tensor: name.into(),
        })
    }

    fn bad(&self, name: &str, reason: String) -> ModelError {
        ModelError::Tensor {
            file: self.g.path.clone(),
            tensor: name.into(),
            reason,
        }
    }

    /// A vector's values as f32 (norm weights are F32 in practice, F16 in some files).
    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let t = self.info(name)?;
        if t.elements() != len as u64 {
            return Err(self.bad(
                name,
                format!(
                    "has {} elements (dims {:?}), expected {len}",
                    t.elements(),
                    t.dims
                ),
            ));
        }
        let data = self.g.data(t);
        match t.ty {
            TensorType::F32 => Ok(data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            TensorType::F16 => Ok(data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()),
            ty => Err(self.bad(name, format!("type {ty:?}: a vector must be F32 or F16"))),
        }
    }

    fn norm(&mut self, name: &str, len: usize) -> Result<Buffer, ModelError> {
        let v = self.vector(name, len)?;
        Ok(self.backend.upload(&v)?)
    }

    /// A matrix with GGUF dims `[cols, rows]` (ggml: ne0 is the row length).
    fn matrix(&mut self, name: &str, cols: usize, rows: usize) -> Result<Weight, ModelError> {
        let t = self.info(name)?;
        if t.dims != [cols as u64, rows as u64] {
            return Err(self.bad(
                name,
                format!("dims {:?}, expected [{cols}, {rows}]", t.dims),
            ));
        }
        let format = t
            .ty
            .format_name()
            .ok_or_else(|| self.bad(name, format!("type {:?} has no matrix kernel here", t.ty)))?;
        let w = self
            .backend
            .upload_weight(WeightData {
                name,
                format,
                rows,
                cols,
                bytes: self.g.shared(t),
            })
            .map_err(|source| ModelError::Upload {
                file: self.g.path.clone(),
                tensor: name.into(),
                source: Box::new(source),
            })?;
        let variant = self.backend.variant(w)?;
        if self.verify && !self.checks.iter().any(|c| c.variant == variant) {
            self.check(name, w, format, rows, cols, variant)?;
        }
        Ok(w)
    }

    /// Run `w` on the backend for one pseudo-random token and compare with the scalar GEMV.
    fn check(
        &mut self,
        name: &str,
        w: Weight,
        format: &str,
        rows: usize,
        cols: usize,
        variant: String,
    ) -> Result<(), ModelError> {
        let t = self.info(name)?;
        let f = kernels::registry::find_format(format).map_err(BackendError::from)?;
        let mut rng = crate::stats::SplitMix64(0x7e57_c0de);
        let x: Vec<f32> = (0..cols).map(|_| rng.unit() * 2.0 - 1.0).collect();
        let reference = f
            .gemv_ref(self.g.data(t), rows, cols, &x)
            .map_err(BackendError::from)?;
        let xb = self.backend.upload(&x)?;
        let yb = self.backend.alloc(rows)?;
        self.backend.matmul(w, xb, 1, yb)?;
        let mut y = vec![0.0; rows];
        self.backend.download(yb, &mut y)?;
        let scale = reference
            .iter()
            .fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
        let err = y
            .iter()
            .zip(&reference)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
            .fold(
                0.0f64,
                |m, e| if e.is_nan() { f64::INFINITY } else { m.max(e) },
            )
            / scale.max(f64::MIN_POSITIVE);
        if err.is_nan() || err > CHECK_TOLERANCE {
            return Err(ModelError::Check {
                file: self.g.path.clone(),
                tensor: name.into(),
                variant,
                err,
                tol: CHECK_TOLERANCE,
            });
        }
        self.checks.push(WeightCheck {
            tensor: name.into(),
            variant,
            rows,
            cols,
            max_rel_err: err,
            tolerance: CHECK_TOLERANCE,
        });
        Ok(())
    }

    /// `blk.N.attn_q` → the weight and its optional `.scale`.
    fn linear(&mut self, base: &str, cols: usize, rows: usize) -> Result<Linear, ModelError> {
        let w = self.matrix(&format!("{base}.weight"), cols, rows)?;
        let scale_name = format!("{base}.scale");
        let scale = match self.g.tensor(&scale_name) {
            None => None,
            Some(_) => {
                let v = self.vector(&scale_name, 1)?;
                Some(v[0])
            }
        };
        Ok(Linear { w, scale })
    }
}

impl Model {
    /// Upload a model's weights to `backend` and allocate its buffers and KV cache.
    pub fn load(
        g: &Gguf,
        mut backend: Box<dyn Backend>,
        opts: &LoadOptions,
    ) -> Result<Model, ModelError> {
        let c = Config::from_gguf(g)?;
        let context = match opts.context {
            0 => c.context.min(4096),
            n => n,
        };
        let batch = opts.batch.max(1);
        let mut l = Loader {
            g,
            backend: backend.as_mut(),
            verify: opts.verify,
            checks: Vec::new(),
        };
        let vocab = if c.vocab > 0 {
            c.vocab
        } else {
            return Err(l.bad("token_embd.weight", "no vocabulary size".into()));
        };
        let before = l.backend.weight_bytes();
        let embed = l.matrix("token_embd.weight", c.hidden, vocab)?;
        let embed_bytes = l.backend.weight_bytes() - before;
        let output = match g.tensor("output.weight") {
            Some(_) => l.matrix("output.weight", c.hidden, vocab)?,
            None => embed,
        };
        let output_norm = l.norm("output_norm.weight", c.hidden)?;
        let mut layers = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let b = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: l.norm(&b("attn_norm.weight"), c.hidden)?,
                q: l.linear(&b("attn_q"), c.hidden, c.q_dim())?,
                k: l.linear(&b("attn_k"), c.hidden, c.kv_dim())?,
                v: l.linear(&b("attn_v"), c.hidden, c.kv_dim())?,
                attn_sub_norm: l.norm(&b("attn_sub_norm.weight"), c.q_dim())?,
                o: l.linear(&b("attn_output"), c.q_dim(), c.hidden)?,
                ffn_norm: l.norm(&b("ffn_norm.weight"), c.hidden)?,
                gate: l.linear(&b("ffn_gate"), c.hidden, c.ffn)?,
                up: l.linear(&b("ffn_up"), c.hidden, c.ffn)?,
                ffn_sub_norm: l.norm(&b("ffn_sub_norm.weight"), c.ffn)?,
                down: l.linear(&b("ffn_down"), c.ffn, c.hidden)?,
            });
        }
        let checks = l.checks;
        let be = backend.as_mut();
        let scratch = Scratch {
            x: be.alloc(batch * c.hidden)?,
            h: be.alloc(batch * c.hidden.max(c.q_dim()))?,
            q: be.alloc(batch * c.q_dim())?,
            k: be.alloc(batch * c.kv_dim())?,
            v: be.alloc(batch * c.kv_dim())?,
            att: be.alloc(batch * c.q_dim())?,
            proj: be.alloc(batch * c.hidden)?,
            gate: be.alloc(batch * c.ffn)?,
            up: be.alloc(batch * c.ffn)?,
            last: be.alloc(c.hidden)?,
            logits: be.alloc(batch * vocab)?,
        };
        let cache = be.kv_cache(c.layers, context, c.kv_dim(), opts.kv_type)?;
        Ok(Model {
            config: Config { vocab, ..c },
            file: g.path.clone(),
            backend,
            embed,
            output,
            output_norm,
            layers,
            scratch,
            cache,
            context,
            batch,
            checks,
            embed_bytes,
            pos: 0,
        })
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// KV cache positions.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The variant of the layers' matrices (`tq2_0/avx512vnni`): what a result is filed under.
    pub fn linear_variant(&self) -> Result<String, ModelError> {
        match self.layers.first() {
            Some(l) => Ok(self.backend.variant(l.q.w)?),
            None => Ok(self.backend.variant(self.output)?),
        }
    }

    /// Weight bytes one decode step streams: every layer matrix and the lm_head.
    pub fn bytes_per_token(&self) -> usize {
        let total = self.backend.weight_bytes();
        if self.output == self.embed {
            total
        } else {
            // An untied embedding is only looked up, one row per token.
            total.saturating_sub(self.embed_bytes)
        }
    }

    /// The kernel variants the model's matrices run with, each once (`tq2_0/avx512vnni`).
    pub fn variants(&self) -> Result<Vec<String>, ModelError> {
        let mut all = vec![self.backend.variant(self.output)?];
        for l in &self.layers {
            for lin in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] {
                all.push(self.backend.variant(lin.w)?);
            }
        }
        let mut seen = Vec::new();
        for v in all.into_iter().rev() {
            if !seen.contains(&v) {
                seen.push(v);
            }
        }
        Ok(seen)
    }

    /// Forget the sequence: the next forward starts at position 0.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Run `tokens` at the current position and advance it; returns the logits of the last
    /// token (`vocab` values) or of every token (`tokens.len() · vocab`).
    pub fn forward(&mut self, tokens: &[u32], which: Logits) -> Result<Vec<f32>, ModelError> {
        let vocab = self.config.vocab;
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::Token { token, vocab });
        }
        if self.pos + tokens.len() > self.context {
            return Err(ModelError::Context {
                need: self.pos + tokens.len(),
                have: self.context,
            });
        }
        let mut out = Vec::new();
        let chunks = tokens.len().div_ceil(self.batch);
        for (i, chunk) in tokens.chunks(self.batch).enumerate() {
            let n = chunk.len();
            self.batch_forward(chunk)?;
            let (s, eps, h) = (&self.scratch, self.config.eps, self.config.hidden);
            let be = self.backend.as_mut();
            let at = |source| ModelError::Op {
                at: "output".into(),
                source: Box::new(source),
            };
            match which {
                Logits::All => {
                    be.rms_norm(s.x, self.output_norm, eps, n, s.x)
                        .map_err(at)?;
                    be.matmul(self.output, s.x, n, s.logits).map_err(at)?;
                    let at = out.len();
                    out.resize(at + n * vocab, 0.0);
                    be.download(s.logits, &mut out[at..])?;
                }
                Logits::Last if i + 1 == chunks => {
                    be.copy(s.x, (n - 1) * h, s.last, h)?;
                    be.rms_norm(s.last, self.output_norm, eps, 1, s.last)
                        .map_err(at)?;
                    be.matmul(self.output, s.last, 1, s.logits).map_err(at)?;
                    out.resize(vocab, 0.0);
                    be.download(s.logits, &mut out)?;
                }
                Logits::Last => {}
            }
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite {
                pos: self.pos - tokens.len() + i / vocab,
                value: out[i],
            });
        }
        Ok(out)
    }

    fn project(
        &mut self,
        lin: Linear,
        x: Buffer,
        n: usize,
        out: Buffer,
        width: usize,
    ) -> Result<(), BackendError> {
        self.backend.matmul(lin.w, x, n, out)?;
        if let Some(s) = lin.scale {
            self.backend.scale(out, s, n * width)?;
        }
        Ok(())
    }

    /// One batch through every layer, leaving the final hidden states in `scratch.x`.
    fn batch_forward(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        let n = tokens.len();
        let c = self.config.clone();
        let s = &self.scratch;
        let (x, h, q, k, v, att, proj, gate, up) =
            (s.x, s.h, s.q, s.k, s.v, s.att, s.proj, s.gate, s.up);
        let pos0 = self.pos;
        let rope = Rope {
            dims: c.rope_dims,
            freq_base: c.rope_base,
        };
        let heads = Heads {
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
        };
        self.backend.embed(self.embed, tokens, x)?;
        for i in 0..self.layers.len() {
            let (an, lq, lk, lv, asn, lo, fnn, lg, lu, fsn, ld) = {
                let l = &self.layers[i];
                (
                    l.attn_norm,
                    l.q,
                    l.k,
                    l.v,
                    l.attn_sub_norm,
                    l.o,
                    l.ffn_norm,
                    l.gate,
                    l.up,
                    l.ffn_sub_norm,
                    l.down,
                )
            };
            let at = |op: &str| {
                let at = format!("blk.{i}.{op}");
                move |source| ModelError::Op {
                    at,
                    source: Box::new(source),
                }
            };
            self.backend
                .rms_norm(x, an, c.eps, n, h)
                .map_err(at("attn_norm"))?;
            self.project(lq, h, n, q, c.q_dim()).map_err(at("attn_q"))?;
            self.project(lk, h, n, k, c.kv_dim())
                .map_err(at("attn_k"))?;
            self.project(lv, h, n, v, c.kv_dim())
                .map_err(at("attn_v"))?;
            self.backend
                .rope(q, n, c.heads, c.head_dim, rope, pos0)
                .map_err(at("rope"))?;
            self.backend
                .rope(k, n, c.kv_heads, c.head_dim, rope, pos0)
                .map_err(at("rope"))?;
            self.backend
                .attention(self.cache, i, q, k, v, heads, pos0, n, att)
                .map_err(at("attention"))?;
            self.backend
                .rms_norm(att, asn, c.eps, n, att)
                .map_err(at("attn_sub_norm"))?;
            self.project(lo, att, n, proj, c.hidden)
                .map_err(at("attn_output"))?;
            self.backend
                .add(x, proj, n * c.hidden)
                .map_err(at("attn_residual"))?;
            self.backend
                .rms_norm(x, fnn, c.eps, n, h)
                .map_err(at("ffn_norm"))?;
            self.project(lg, h, n, gate, c.ffn)
                .map_err(at("ffn_gate"))?;
            self.project(lu, h, n, up, c.ffn).map_err(at("ffn_up"))?;
            self.backend
                .glu(gate, up, c.arch.glu(), n * c.ffn)
                .map_err(at("ffn_glu"))?;
            self.backend
                .rms_norm(gate, fsn, c.eps, n, gate)
                .map_err(at("ffn_sub_norm"))?;
            self.project(ld, gate, n, proj, c.hidden)
                .map_err(at("ffn_down"))?;
            self.backend
                .add(x, proj, n * c.hidden)
                .map_err(at("ffn_residual"))?;
        }
        self.pos += n;
        Ok(())
    }
}

/// The metadata value of `key` as a string, for reports.
pub fn meta_string(g: &Gguf, key: &str) -> Option<String> {
    match g.get(key)? {
        Value::String(s) => Some(s.clone()),
        v => v.as_u64().map(|n| n.to_string()),
    }
}
