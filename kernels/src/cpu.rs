//! Which instruction sets a kernel variant needs, and whether this CPU has them (run-time
//! detection only: nothing here depends on the flags the crate was compiled with).

use std::fmt;

/// Environment variable that forces a kernel variant, for tests and scripts: a comma-separated
/// list of `isa` (all formats) or `format/isa` entries, e.g. `scalar` or `tq2_0/avx2,i2_s/scalar`.
pub const KERNEL_ENV: &str = "TERNBENCH_KERNEL";

/// An instruction-set level a kernel variant is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// The reference: portable Rust, always available.
    Scalar,
    /// x86-64 AVX2 (+ FMA, F16C).
    Avx2,
    /// x86-64 AVX2 with AVX-VNNI (`vpdpbusd` on 256-bit vectors), for AVX2-only chips that have it.
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL with VNNI (`vpdpbusd` on 512-bit vectors).
    Avx512Vnni,
    /// x86-64 AMX-INT8 tiles for products over many tokens, AVX-512 VNNI for the rest.
    Amx,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 NEON with the dot-product extension (`sdot`/`udot`).
    Dotprod,
    /// aarch64 NEON with the int8 matrix-multiply extension (`smmla`).
    I8mm,
}

impl Isa {
    pub const ALL: [Isa; 8] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512Vnni,
        Isa::Amx,
        Isa::Neon,
        Isa::Dotprod,
        Isa::I8mm,
    ];

    /// The name used in variant names (`tq2_0/avx512vnni`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Amx => "amx",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
            Isa::I8mm => "i8mm",
        }
    }

    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name))
    }

    /// Whether this CPU (and OS) can run code written for this level.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni | Isa::Amx => x86_available(self),
            Isa::Neon | Isa::Dotprod | Isa::I8mm => aarch64_available(self),
        }
    }

    /// The CPU features this level requires, as the detection macros name them.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Isa::Scalar => &[],
            Isa::Avx2 => &["avx2", "fma", "f16c"],
            Isa::AvxVnni => &["avx2", "fma", "f16c", "avxvnni"],
            Isa::Avx512Vnni => &[
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
                "fma",
                "f16c",
            ],
            Isa::Amx => &[
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
                "fma",
                "f16c",
                "amx-tile",
                "amx-int8",
            ],
            Isa::Neon => &["neon"],
            Isa::Dotprod => &["neon", "dotprod"],
            Isa::I8mm => &["neon", "dotprod", "i8mm"],
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn x86_available(isa: Isa) -> bool {
    let base = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    match isa {
        Isa::Avx2 => base,
        Isa::AvxVnni => base && is_x86_feature_detected!("avxvnni"),
        Isa::Avx512Vnni => {
            base && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
        }
        Isa::Amx => x86_available(Isa::Avx512Vnni) && crate::amx::available(),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_available(_: Isa) -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn aarch64_available(isa: Isa) -> bool {
    use std::arch::is_aarch64_feature_detected;
    let neon = is_aarch64_feature_detected!("neon");
    match isa {
        Isa::Neon => neon,
        Isa::Dotprod => neon && is_aarch64_feature_detected!("dotprod"),
        Isa::I8mm => {
            neon && is_aarch64_feature_detected!("dotprod") && is_aarch64_feature_detected!("i8mm")
        }
        _ => false,
    }
}

#[cfg(not(target_arch = "aarch64"))]
fn aarch64_available(_: Isa) -> bool {
    false
}

/// The variant a `KERNEL_ENV`-style spec forces for `format`, if any: the first entry that
/// names the format (`tq2_0/avx2`) wins over a bare ISA (`scalar`).
pub fn forced_isa(spec: &str, format: &str) -> Option<Result<Isa, String>> {
    let entries: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let pick = entries
        .iter()
        .find_map(|e| {
            e.split_once('/')
                .filter(|(f, _)| f.eq_ignore_ascii_case(format))
                .map(|(_, i)| i)
        })
        .or_else(|| entries.iter().copied().find(|e| !e.contains('/')))?;
    Some(Isa::from_name(pick).ok_or_else(|| pick.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_is_always_available() {
        assert!(Isa::Scalar.available());
    }

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
    }

    #[test]
    fn format_specific_entries_beat_bare_ones() {
        let spec = "scalar, tq2_0/avx2";
        assert_eq!(forced_isa(spec, "tq2_0"), Some(Ok(Isa::Avx2)));
        assert_eq!(forced_isa(spec, "i2_s"), Some(Ok(Isa::Scalar)));
        assert_eq!(forced_isa("tq2_0/avx2", "i2_s"), None);
        assert_eq!(forced_isa("tq2_0/sse9", "tq2_0"), Some(Err("sse9".into())));
    }
}
