//! Device registers: [`Regs`], a device's register block, made once from the mapping the
//! caller vouches for and then read and written through safe, bounds-checked methods (the
//! GIC, the two UARTs, the Pi's watchdog).
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
unsafe fn read32(addr: usize) -> u32 {
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
unsafe fn read64(addr: usize) -> u64 {
    let v: u64;
    // SAFETY: as in `read32`.
    unsafe {
        asm!("ldar {v}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags))
    };
    v
}

/// Reads the 16-bit device register at `addr`.
///
/// # Safety
/// As [`read32`], 2-byte aligned.
unsafe fn read16(addr: usize) -> u16 {
    let v: u32;
    // SAFETY: as in `read32`.
    unsafe {
        asm!("ldarh {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags))
    };
    v as u16
}

/// Writes the 16-bit device register at `addr`.
///
/// # Safety
/// As [`write32`], 2-byte aligned.
unsafe fn write16(addr: usize, v: u16) {
    // SAFETY: the caller's promise.
    unsafe { core::ptr::write_volatile(addr as *mut u16, v) }
}

/// Writes the 8-bit device register at `addr`.
///
/// # Safety
/// As [`write32`].
unsafe fn write8(addr: usize, v: u8) {
    // SAFETY: the caller's promise.
    unsafe { core::ptr::write_volatile(addr as *mut u8, v) }
}

/// Writes the 32-bit device register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte aligned device register mapped as Device memory, which `v` may
/// be written to.
unsafe fn write32(addr: usize, v: u32) {
    // SAFETY: the caller's promise.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// A device's register block: `len` bytes of Device memory at the VA `base`. Made once,
/// with the promise that it maps one device's registers ([`Regs::new`]); read and written
/// through safe methods that keep every access inside the block and aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    base: usize,
    len: usize,
}

impl Regs {
    /// No registers (a block a device does not have): any access is a bug, and panics.
    pub const NONE: Regs = Regs { base: 0, len: 0 };

    /// The block `[base, base + len)`.
    ///
    /// # Safety
    /// `[base, base + len)` must map one device's registers as Device memory for as long as
    /// the value (or a copy) is used, and accessing them must affect nothing but that
    /// device.
    pub const unsafe fn new(base: usize, len: usize) -> Self {
        Regs { base, len }
    }

    /// The `len` bytes at `offset` inside this block (a GICv3 redistributor's frames in
    /// its region).
    pub fn sub(&self, offset: usize, len: usize) -> Regs {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "registers {offset:#x}+{len:#x} outside a block of {:#x} bytes",
            self.len
        );
        Regs {
            base: self.base + offset,
            len,
        }
    }

    /// The block's size in bytes.
    pub fn size(&self) -> usize {
        self.len
    }

    fn at(&self, offset: usize, size: usize) -> usize {
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.len,
            "register {offset:#x} ({size} bytes) outside a block of {:#x} bytes",
            self.len
        );
        self.base + offset
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: inside the block (checked), which maps device registers (`new`).
        unsafe { read32(self.at(offset, 4)) }
    }

    /// Reads the 64-bit register at `offset`.
    pub fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read32`.
        unsafe { read64(self.at(offset, 8)) }
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write32(&self, offset: usize, v: u32) {
        // SAFETY: as in `read32`.
        unsafe { write32(self.at(offset, 4), v) }
    }

    /// Reads the 16-bit register at `offset` (a PCI configuration register, whose access
    /// size the device sees).
    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as in `read32`.
        unsafe { read16(self.at(offset, 2)) }
    }

    /// Writes the 16-bit register at `offset`.
    pub fn write16(&self, offset: usize, v: u16) {
        // SAFETY: as in `read32`.
        unsafe { write16(self.at(offset, 2), v) }
    }

    /// Writes the 8-bit register at `offset`.
    pub fn write8(&self, offset: usize, v: u8) {
        // SAFETY: as in `read32`.
        unsafe { write8(self.at(offset, 1), v) }
    }
}
