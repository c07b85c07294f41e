//! Device register reads and writes.
//!
//! Reads are load-acquires (`LDAR`), as Linux's `readl` is on a CPU with Cortex-A57 erratum
//! 832075 (a device load among exclusive accesses can deadlock the core: the Juno r0 and r1
//! A57s, r0p0-r1p2). Linux patches the acquire in only on those CPUs; here every device read
//! is one, since an acquire costs nothing a console or GIC register read would notice.

use core::arch::asm;

/// Reads the 32-bit device register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte aligned device register mapped as Device memory, whose read has
/// no side effect the caller does not intend.
pub unsafe fn read32(addr: usize) -> u32 {
    let v: u32;
    // SAFETY: the caller's promise; a load-acquire is an ordinary aligned load.
    unsafe {
        asm!("ldar {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags))
    };
    v
}

/// Reads the 64-bit device register at `addr`.
///
/// # Safety
/// As [`read32`], 8-byte aligned.
pub unsafe fn read64(addr: usize) -> u64 {
    let v: u64;
    // SAFETY: as in `read32`.
    unsafe {
        asm!("ldar {v}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags))
    };
    v
}

/// Writes the 32-bit device register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte aligned device register mapped as Device memory, which `v` may
/// be written to.
pub unsafe fn write32(addr: usize, v: u32) {
    // SAFETY: the caller's promise.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}
