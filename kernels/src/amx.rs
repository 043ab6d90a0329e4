//! Intel AMX (Advanced Matrix Extensions) plumbing: whether this CPU and OS can run tile code,
//! and the one tile shape our kernels use. The tile instructions themselves are written as
//! inline assembly in the format modules: Rust's AMX intrinsics and target features are unstable.
//!
//! Linux hands out the 8 KiB tile register state only to a process that asks for it
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, kernel 5.16+); without that permission
//! the first tile instruction raises SIGILL, so [`available`] asks once and answers false on refusal.

use std::arch::asm;
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

/// A palette-1 tile configuration (the 64-byte `ldtilecfg` operand) with tiles 0..8 all
/// [`TILE_ROWS`] × [`TILE_ROW_BYTES`].
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    const fn full() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            // Bytes 16.. hold each tile's row width (u16 LE), bytes 48.. its row count.
            c[16 + 2 * t] = TILE_ROW_BYTES as u8;
            c[48 + t] = TILE_ROWS as u8;
            t += 1;
        }
        TileConfig(c)
    }
}

static FULL: TileConfig = TileConfig::full();

/// Configure this thread's eight tiles as 16 × 64 bytes each, run `f`, and release the tile
/// state again (so the kernel need not save 8 KiB per context switch while we are not using it).
///
/// # Safety
/// [`available`] must have returned true.
pub unsafe fn with_tiles<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: the caller vouches for AMX; FULL is a valid palette-1 configuration, 64-byte aligned.
    unsafe { asm!("ldtilecfg [{}]", in(reg) FULL.0.as_ptr(), options(nostack, readonly)) };
    let r = f();
    // SAFETY: as above; tilerelease only resets the tile state this thread configured.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
    r
}
