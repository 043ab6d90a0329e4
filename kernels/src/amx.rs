//! Intel AMX (Advanced Matrix Extensions) plumbing: whether this CPU and OS can run tile code,
//! and the one tile shape our kernels use. The tile instructions themselves are written as
//! inline assembly in the format modules: Rust's AMX intrinsics and target features are unstable.
//!
//! Linux hands out the 8 KiB tile register state only to a process that asks for it
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, kernel 5.16+); without that permission
//! the first tile instruction raises SIGILL, so [`available`] asks once and answers false on refusal.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Rows of every tile we configure (the architectural maximum).
pub const TILE_ROWS: usize = 16;

/// Bytes per tile row (the architectural maximum): 64 int8, or 16 int32.
pub const TILE_ROW_BYTES: usize = 64;

/// Whether AMX-TILE and AMX-INT8 are present and this process may use them.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| cpu_has_amx_int8() && os_grants_tiles())
}

fn cpu_has_amx_int8() -> bool {
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    // CPUID.(7,0):EDX bit 24 is AMX-TILE, bit 25 AMX-INT8.
    leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 25) != 0
}

#[cfg(target_os = "linux")]
fn os_grants_tiles() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes this process's permission set.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn os_grants_tiles() -> bool {
    false
}

/// A palette-1 tile configuration (the 64-byte `ldtilecfg` operand) for tiles 0..8.
#[repr(C, align(64))]
pub struct TileConfig([u8; 64]);

impl TileConfig {
    /// Tiles 0..4 (results) 16 × 64 bytes; tile 4 (the A operand) 16 rows of `a_row_bytes`;
    /// tiles 5..8 (B operands) `a_row_bytes / 4` rows of 64 bytes, so that `tdpbusd` sums
    /// K = `a_row_bytes` bytes per instruction.
    const fn with_k(a_row_bytes: usize) -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            let (row_bytes, rows) = match t {
                4 => (a_row_bytes, TILE_ROWS),
                5..=7 => (TILE_ROW_BYTES, a_row_bytes / 4),
                _ => (TILE_ROW_BYTES, TILE_ROWS),
            };
            // Bytes 16.. hold each tile's row width (u16 LE), bytes 48.. its row count.
            c[16 + 2 * t] = row_bytes as u8;
            c[48 + t] = rows as u8;
            t += 1;
        }
        TileConfig(c)
    }
}

/// Every tile 16 × 64 bytes: K = 64 per `tdpbusd`.
pub static FULL: TileConfig = TileConfig::with_k(TILE_ROW_BYTES);

/// K = 32 per `tdpbusd` (one 32-weight block of Q4_0/Q8_0): A tiles 16 × 32, B tiles 8 × 64.
pub static K32: TileConfig = TileConfig::with_k(32);

/// Configure this thread's eight tiles as [`FULL`], run `f`, and release the tile state again
/// (so the kernel need not save 8 KiB per context switch while we are not using it).
///
/// # Safety
/// [`available`] must have returned true.
pub unsafe fn with_tiles<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: as the caller vouches.
    unsafe { with_config(&FULL, f) }
}

/// [`with_tiles`] with the tile shapes of `config`.
///
/// # Safety
/// [`available`] must have returned true.
pub unsafe fn with_config<R>(config: &TileConfig, f: impl FnOnce() -> R) -> R {
    // SAFETY: the caller vouches for AMX; a TileConfig is a valid palette-1 configuration,
    // 64-byte aligned.
    unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
    let r = f();
    // SAFETY: as above; tilerelease only resets the tile state this thread configured.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
    r
}

/// The output, shared by the panel tasks, each of which writes only its own rows.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);

// SAFETY: the tasks write disjoint elements (see `matmul`), and the call outlives them.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// # Safety
    /// `i` must lie inside the output slice.
    pub(crate) unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller keeps i in bounds.
        unsafe { self.0.add(i) }
    }
}

/// Write `sums` (row i, token t at `sums[i · tpad + t]`, nr rows) into rows `r0..r0 + nr` of
/// `y` (token t, row r at `y[t · rows + r]`) by 16 × 16 transposes, so both sides move whole
/// vectors.
///
/// # Safety
/// The CPU must have AVX-512 F; `y` must hold `tokens · rows` floats with `r0 + nr ≤ rows`, and
/// no one else may touch rows `r0..r0 + nr` of it during the call.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn store_transposed(
    sums: &[f32],
    tpad: usize,
    nr: usize,
    tokens: usize,
    y: OutPtr,
    rows: usize,
    r0: usize,
) {
    for i0 in (0..nr).step_by(TILE_ROWS) {
        let n = TILE_ROWS.min(nr - i0);
        let keep: __mmask16 = if n == TILE_ROWS { !0 } else { (1 << n) - 1 };
        for t0 in (0..tokens).step_by(TILE_ROWS) {
            let v: [__m512i; TILE_ROWS] = std::array::from_fn(|i| {
                let at = (i0 + i.min(n - 1)) * tpad + t0;
                // SAFETY: row i0 + i < nr of sums, 16 floats at a multiple of 16 below tpad.
                unsafe { _mm512_castps_si512(_mm512_loadu_ps(sums[at..at + TILE_ROWS].as_ptr())) }
            });
            for (t, row) in transpose16(v).into_iter().enumerate() {
                if t0 + t < tokens {
                    // SAFETY: token t0 + t < tokens, rows r0 + i0 .. + n inside row r0..r0 + nr.
                    unsafe {
                        let at = y.at((t0 + t) * rows + r0 + i0);
                        _mm512_mask_storeu_ps(at, keep, _mm512_castsi512_ps(row));
                    }
                }
            }
        }
    }
}

/// 16×16 dword transpose: lane i of result j is dword j of `r[i]`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + m], 128-bit lane L: rows 4i..4i+4 at dword 4L + m.
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // A 4×4 transpose of 128-bit lanes for each m.
    let mut o = [_mm512_setzero_si512(); 16];
    for m in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[m], u[4 + m]);
        let v1 = _mm512_shuffle_i32x4::<0xee>(u[m], u[4 + m]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + m], u[12 + m]);
        let v3 = _mm512_shuffle_i32x4::<0xee>(u[8 + m], u[12 + m]);
        o[m] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        o[4 + m] = _mm512_shuffle_i32x4::<0xdd>(v0, v2);
        o[8 + m] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        o[12 + m] = _mm512_shuffle_i32x4::<0xdd>(v1, v3);
    }
    o
}

/// Bytes of one tile (16 rows of 64).
const TILE_BYTES: usize = TILE_ROWS * TILE_ROW_BYTES;

macro_rules! tile_dots {
    ($dot4:ident, $dot1:ident, $op:literal, $signs:literal) => {
        #[doc = concat!("C_j = Σ_chunks A_chunk · B_j,chunk (`", $op, "`: ", $signs, ") for four")]
        /// column tiles B_j: tiles 0–3 accumulate over every chunk, tile 4 holds the weight chunk,
        /// tiles 5–7 take turns with the tokens. Stores C_j at `c + 1 KiB·j`. Every tile row is
        /// 64 bytes apart in memory, whatever the configured widths.
        ///
        /// # Safety
        /// `a` and each `b[j]` point to `chunks ≥ 1` consecutive 1 KiB tiles, `c` to 4 KiB of
        /// writable memory, and the tiles are configured by [`with_config`].
        #[inline]
        pub(crate) unsafe fn $dot4(
            a: *const __m512i,
            b: [*const __m512i; 4],
            chunks: usize,
            c: *mut __m512i,
        ) {
            // SAFETY: as the caller vouches; only tile registers, the named registers and memory.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a} + {s}]",
                    "tileloadd tmm5, [{b0} + {s}]",
                    concat!($op, " tmm0, tmm4, tmm5"),
                    "tileloadd tmm6, [{b1} + {s}]",
                    concat!($op, " tmm1, tmm4, tmm6"),
                    "tileloadd tmm7, [{b2} + {s}]",
                    concat!($op, " tmm2, tmm4, tmm7"),
                    "tileloadd tmm5, [{b3} + {s}]",
                    concat!($op, " tmm3, tmm4, tmm5"),
                    "add {a}, {t}",
                    "add {b0}, {t}",
                    "add {b1}, {t}",
                    "add {b2}, {t}",
                    "add {b3}, {t}",
                    "dec {n}",
                    "jnz 2b",
                    "tilestored [{c} + {s}], tmm0",
                    "add {c}, {t}",
                    "tilestored [{c} + {s}], tmm1",
                    "add {c}, {t}",
                    "tilestored [{c} + {s}], tmm2",
                    "add {c}, {t}",
                    "tilestored [{c} + {s}], tmm3",
                    a = inout(reg) a => _,
                    b0 = inout(reg) b[0] => _,
                    b1 = inout(reg) b[1] => _,
                    b2 = inout(reg) b[2] => _,
                    b3 = inout(reg) b[3] => _,
                    c = inout(reg) c => _,
                    n = inout(reg) chunks => _,
                    s = in(reg) TILE_ROW_BYTES,
                    t = in(reg) TILE_BYTES,
                    options(nostack),
                );
            }
        }

        #[doc = concat!("[`", stringify!($dot4), "`] for one column tile: C = Σ_chunks A_chunk · B_chunk, stored at `c`.")]
        ///
        /// # Safety
        #[doc = concat!("As [`", stringify!($dot4), "`], with one `b` and 1 KiB at `c`.")]
        #[inline]
        pub(crate) unsafe fn $dot1(
            a: *const __m512i,
            b: *const __m512i,
            chunks: usize,
            c: *mut __m512i,
        ) {
            // SAFETY: as the caller vouches; only tile registers, the named registers and memory.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "2:",
                    "tileloadd tmm4, [{a} + {s}]",
                    "tileloadd tmm5, [{b} + {s}]",
                    concat!($op, " tmm0, tmm4, tmm5"),
                    "add {a}, {t}",
                    "add {b}, {t}",
                    "dec {n}",
                    "jnz 2b",
                    "tilestored [{c} + {s}], tmm0",
                    a = inout(reg) a => _,
                    b = inout(reg) b => _,
                    n = inout(reg) chunks => _,
                    c = in(reg) c,
                    s = in(reg) TILE_ROW_BYTES,
                    t = in(reg) TILE_BYTES,
                    options(nostack),
                );
            }
        }
    };
}

tile_dots!(dot4, dot1, "tdpbusd", "unsigned A, signed B");
tile_dots!(dot4_signed, dot1_signed, "tdpbssd", "signed A and B");
