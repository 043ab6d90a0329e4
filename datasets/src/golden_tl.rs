//! Golden TL1/TL2 packings written by bitnet.cpp's own converter functions (microsoft/BitNet
//! 16da220, `transform_to_tl1` / `transform_to_tl2`), see `golden/README.upstream.md`.

use serde::Deserialize;

use crate::DatasetError;

const BITNET_TL_FILE: &str = "datasets/golden/bitnet-tl.json";
const BITNET_TL_JSON: &str = include_str!("../golden/bitnet-tl.json");

/// One small ternary matrix and the bytes upstream's packer made of it for one tiling.
#[derive(Debug, Clone)]
pub struct TlCase {
    /// `tl1` or `tl2`.
    pub format: String,
    pub rows: usize,
    pub cols: usize,
    /// BM, BK, bm of the kernel_config the packer read.
    pub tile_m: usize,
    pub tile_k: usize,
    pub simd_m: usize,
    /// The weights are (code − 1) · scale; `transform_to_*` returned this scale.
    pub scale: f32,
    /// Row-major codes c = w + 1 ∈ {0, 1, 2}.
    pub codes: Vec<u8>,
    /// The packer's array: rows·cols/4 bytes for TL1; for TL2 the data padded to ggml's P
    /// (unrounded), after which GGUF alignment and the separate scale tensor follow.
    pub packed: Vec<u8>,
}

#[derive(Deserialize)]
struct RawFile {
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
struct RawCase {
    format: String,
    rows: usize,
    cols: usize,
    tile_m: usize,
    tile_k: usize,
    simd_m: usize,
    scale: f32,
    codes: String,
    packed_hex: String,
}

/// Every case of `bitnet-tl.json`.
pub fn bitnet_tl() -> Result<Vec<TlCase>, DatasetError> {
    let raw: RawFile =
        serde_json::from_str(BITNET_TL_JSON).map_err(|source| DatasetError::Json {
            file: BITNET_TL_FILE,
            source,
        })?;
    raw.cases
        .into_iter()
        .enumerate()
        .map(|(case, c)| {
            let bad = |field, reason: String| DatasetError::Field {
                file: BITNET_TL_FILE,
                case,
                field,
                reason,
            };
            let packed =
                hex::decode(&c.packed_hex).map_err(|e| bad("packed_hex", e.to_string()))?;
            let codes = c
                .codes
                .bytes()
                .map(|b| match b {
                    b'0'..=b'2' => Ok(b - b'0'),
                    _ => Err(bad(
                        "codes",
                        format!("unexpected character {:?}", b as char),
                    )),
                })
                .collect::<Result<Vec<u8>, _>>()?;
            if codes.len() != c.rows * c.cols {
                return Err(bad(
                    "codes",
                    format!("{} codes for {}x{}", codes.len(), c.rows, c.cols),
                ));
            }
            Ok(TlCase {
                format: c.format,
                rows: c.rows,
                cols: c.cols,
                tile_m: c.tile_m,
                tile_k: c.tile_k,
                simd_m: c.simd_m,
                scale: c.scale,
                codes,
                packed,
            })
        })
        .collect()
}
