//! What the DTB cannot express in a generic way: how a Raspberry Pi without PSCI powers off or
//! resets. Its firmware reads the BCM2835 PM block's `RSTS` "partition" field after a
//! watchdog reset: partition 63 means "halt" (QEMU's `raspi4b` turns it into a power-off).

use crate::arch::mmio::Regs;
use crate::memory;
use mm::memmap::Region;

/// BCM2835 PM watchdog registers (offsets in the `pm` block) and fields (Linux's
/// `bcm2835_wdt`).
pub(crate) mod pm {
    /// Reset control.
    pub const RSTC: usize = 0x1c;
    /// Reset status: the partition to boot after the reset.
    pub const RSTS: usize = 0x20;
    /// Watchdog timer.
    pub const WDOG: usize = 0x24;
    /// The block's size, as far as these registers go.
    pub const SIZE: usize = 0x28;
    /// Every write must carry this in bits 31:24.
    pub const PASSWORD: u32 = 0x5a00_0000;
    /// `RSTC.WRCFG`: what the watchdog does when it fires.
    pub const RSTC_WRCFG_CLR: u32 = !0x30;
    /// `RSTC.WRCFG` = full reset.
    pub const RSTC_WRCFG_FULL_RESET: u32 = 0x20;
    /// `RSTC` for "no reset pending" (the watchdog stopped).
    pub const RSTC_RESET: u32 = 0x102;
    /// `WDOG` timer field, and its ticks per second.
    pub const WDOG_TIME_SET: u32 = 0x000f_ffff;
    pub const WDOG_TICKS_PER_S: u32 = 1 << 16;
    /// Partition 63 spread over `RSTS` bits 0, 2, 4, 6, 8 and 10: the firmware halts.
    pub const RSTS_PARTITION_HALT: u32 = 0x555;
    /// A few ticks: fire almost at once.
    pub const WDOG_TICKS: u32 = 10;
}

/// Resets the machine through the PM watchdog at `regs`, asking the firmware to halt (power
/// off) instead of booting again if `halt`. Returns only if the watchdog does not fire.
pub fn bcm2835_watchdog_reset(regs: Region, halt: bool) -> Result<(), &'static str> {
    let va = memory::map_device(regs).map_err(|_| "cannot map the PM watchdog")? as usize;
    // SAFETY: `va` maps the DTB's PM block, as Device memory, for good.
    let pm_regs = unsafe { Regs::new(va, regs.size() as usize) };
    if halt {
        let rsts = pm_regs.read32(pm::RSTS);
        pm_regs.write32(
            pm::RSTS,
            pm::PASSWORD | (rsts & 0x00ff_ffff) | pm::RSTS_PARTITION_HALT,
        );
    }
    pm_regs.write32(
        pm::WDOG,
        pm::PASSWORD | (pm::WDOG_TICKS & pm::WDOG_TIME_SET),
    );
    let rstc = pm_regs.read32(pm::RSTC);
    pm_regs.write32(
        pm::RSTC,
        pm::PASSWORD | (rstc & pm::RSTC_WRCFG_CLR) | pm::RSTC_WRCFG_FULL_RESET,
    );
    let t0 = crate::arch::ticks();
    while crate::arch::ticks_to_us(crate::arch::ticks() - t0) < 1_000_000 {
        core::hint::spin_loop();
    }
    Err("the PM watchdog did not reset the machine")
}
