//! Golden vectors written by upstream ggml (llama.cpp commit c392e509), see `golden/README.md`.

use serde::Deserialize;

use crate::DatasetError;

const GGML_QUANTS_FILE: &str = "datasets/golden/ggml-quants.json";
const GGML_QUANTS_JSON: &str = include_str!("../golden/ggml-quants.json");

/// One (format, k, seed) case: ggml's quantizer output and vec_dot results for `rows` rows.
#[derive(Debug, Clone)]
pub struct GgmlCase {
    /// ggml's type name (`tq2_0`, `q4_K`, ...).
    pub format: String,
    /// Row length.
    pub k: usize,
    pub rows: usize,
    /// ggml's `vec_dot_type` name for the format (`q8_K`, `q8_0`, `f16`, `bf16`).
    pub act_type: String,
    /// Row-major f32 weights, rows x k.
    pub weights: Vec<f32>,
    /// What `ggml_quantize_chunk` wrote for all rows.
    pub packed: Vec<u8>,
    /// The f32 activation row (k).
    pub act: Vec<f32>,
    /// What the activation type's `from_float` wrote.
    pub act_quant: Vec<u8>,
    /// ggml's vec_dot per row.
    pub dot: Vec<f32>,
}

#[derive(Deserialize)]
struct RawFile {
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
struct RawCase {
    format: String,
    k: usize,
    rows: usize,
    act_type: String,
    weights: Vec<f32>,
    packed_hex: String,
    act: Vec<f32>,
    act_quant_hex: String,
    dot: Vec<f32>,
}

/// Every case of `ggml-quants.json`.
pub fn ggml_quants() -> Result<Vec<GgmlCase>, DatasetError> {
    let raw: RawFile =
        serde_json::from_str(GGML_QUANTS_JSON).map_err(|source| DatasetError::Json {
            file: GGML_QUANTS_FILE,
            source,
        })?;
    raw.cases
        .into_iter()
        .enumerate()
        .map(|(case, c)| {
            let bad = |field, reason: String| DatasetError::Field {
                file: GGML_QUANTS_FILE,
                case,
                field,
                reason,
            };
            let packed =
                hex::decode(&c.packed_hex).map_err(|e| bad("packed_hex", e.to_string()))?;
            let act_quant =
                hex::decode(&c.act_quant_hex).map_err(|e| bad("act_quant_hex", e.to_string()))?;
            if c.weights.len() != c.rows * c.k {
                return Err(bad(
                    "weights",
                    format!("{} values for {}x{}", c.weights.len(), c.rows, c.k),
                ));
            }
            if c.act.len() != c.k || c.dot.len() != c.rows {
                return Err(bad(
                    "act",
                    "act or dot length disagrees with k and rows".into(),
                ));
            }
            Ok(GgmlCase {
                format: c.format,
                k: c.k,
                rows: c.rows,
                act_type: c.act_type,
                weights: c.weights,
                packed,
                act: c.act,
                act_quant,
                dot: c.dot,
            })
        })
        .collect()
}

const TINY_TENSORS_FILE: &str = "datasets/golden/tiny-tensors.json";
const TINY_TENSORS_JSON: &str = include_str!("../golden/tiny-tensors.json");

/// A weight tensor of the shared tiny `bitnet` model: its F16 source and upstream's quantized bytes.
#[derive(Debug, Clone)]
pub struct TinyTensor {
    pub name: String,
    /// Output rows (ggml ne1).
    pub rows: usize,
    /// Row length (ggml ne0).
    pub cols: usize,
    /// Row-major weights, widened from the F16 source.
    pub weights: Vec<f32>,
    /// Upstream's bytes by format name (`tq2_0` and `i2_s` for weights, `q6_K` for the embedding).
    pub quantized: Vec<(String, Vec<u8>)>,
}

#[derive(Deserialize)]
struct RawTiny {
    tensors: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(rename = "embedding_q6_K")]
    embedding: serde_json::Map<String, serde_json::Value>,
}

/// Tensors cut from tiny-f16/tiny-tq2/tiny-i2s.gguf by `golden/extract_tiny.py`.
pub fn tiny_tensors() -> Result<Vec<TinyTensor>, DatasetError> {
    let raw: RawTiny =
        serde_json::from_str(TINY_TENSORS_JSON).map_err(|source| DatasetError::Json {
            file: TINY_TENSORS_FILE,
            source,
        })?;
    let mut all = raw.tensors;
    all.push(raw.embedding);
    all.iter()
        .enumerate()
        .map(|(case, m)| {
            let bad = |field, reason: &str| DatasetError::Field {
                file: TINY_TENSORS_FILE,
                case,
                field,
                reason: reason.to_string(),
            };
            let num = |field: &'static str| {
                m.get(field)
                    .and_then(|v| v.as_u64())
                    .map(|v| v as usize)
                    .ok_or_else(|| bad(field, "missing or not a number"))
            };
            let (rows, cols) = (num("rows")?, num("cols")?);
            let mut weights = Vec::new();
            let mut quantized = Vec::new();
            for (key, value) in m {
                let Some(format) = key.strip_suffix("_hex") else {
                    continue;
                };
                let bytes = value
                    .as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .ok_or_else(|| bad("*_hex", "not a hex string"))?;
                if format == "f16" {
                    weights = bytes
                        .chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect();
                } else {
                    quantized.push((format.to_string(), bytes));
                }
            }
            if weights.len() != rows * cols {
                return Err(bad("f16_hex", "length disagrees with rows x cols"));
            }
            let name = m
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            Ok(TinyTensor {
                name,
                rows,
                cols,
                weights,
                quantized,
            })
        })
        .collect()
}
