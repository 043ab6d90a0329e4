//! The list of formats: one line per format. `ternbench formats` prints it, and every
//! cross-format test iterates it.

use crate::formats::{
    bf16::Bf16, f16::F16, f32::F32, i2_s::I2S, q4_0::Q4_0, q4_k::Q4K, q6_k::Q6K, q8_0::Q8_0,
    tq1_0::Tq1_0, tq2_0::Tq2_0, Rows, WeightFormat,
};
use crate::formats::{tl1::Tl1, tl2::Tl2};
use crate::KernelError;

/// Every format, ternary first, then the baselines.
pub static FORMATS: &[&dyn WeightFormat] = &[
    &Rows::<Tq1_0>::new(),
    &Rows::<Tq2_0>::new(),
    &I2S,
    &Tl1 { tiling: None },
    &Tl2 { tiling: None },
    &Rows::<F32>::new(),
    &Rows::<F16>::new(),
    &Rows::<Bf16>::new(),
    &Rows::<Q8_0>::new(),
    &Rows::<Q4_0>::new(),
    &Rows::<Q4K>::new(),
    &Rows::<Q6K>::new(),
];

/// Look a format up by its upstream name, case-insensitively (`tq2_0`, `Q4_K`).
pub fn find_format(name: &str) -> Result<&'static dyn WeightFormat, KernelError> {
    FORMATS
        .iter()
        .copied()
        .find(|f| f.info().name.eq_ignore_ascii_case(name))
        .ok_or_else(|| KernelError::UnknownFormat(name.to_string()))
}
