//! Quiescing the GIC before kexec: the next kernel must find no interrupt enabled, pending
//! or active, and the distributor and CPU interface off (GICv2 and GICv3).

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};

/// Distributor registers (offsets from GICD base), GICv2 and GICv3 alike.
mod gicd {
    pub const CTLR: usize = 0x000;
    pub const TYPER: usize = 0x004;
    /// `TYPER.ITLinesNumber`: (lines / 32) - 1.
    pub const TYPER_IT_LINES_MASK: u32 = 0x1f;
    pub const ICENABLER: usize = 0x180;
    pub const ICPENDR: usize = 0x280;
    pub const ICACTIVER: usize = 0x380;
    /// GICv3 `CTLR.RWP`: a write to CTLR is still in progress.
    pub const CTLR_RWP: u32 = 1 << 31;
}

/// GICv2 CPU interface: `GICC_CTLR`.
const GICC_CTLR: usize = 0x000;
/// `ICC_SRE_EL1.SRE`: the GICv3 system-register interface is enabled.
const ICC_SRE_SRE: u64 = 1 << 0;

/// A mapped GIC.
#[derive(Clone, Copy, Debug)]
pub struct MappedGic {
    /// 2 or 3.
    pub version: u8,
    /// VA of the distributor.
    pub dist: usize,
    /// VA of the GICv2 CPU interface, or 0.
    pub cpu: usize,
}

impl MappedGic {
    /// Disables, clears and deactivates every interrupt, then turns the distributor and
    /// this CPU's interface off.
    ///
    /// # Safety
    /// The VAs must map this GIC's registers as device memory; interrupts must be masked.
    pub unsafe fn quiesce(&self) {
        let d = self.dist;
        // SAFETY: caller: `d` maps the distributor; the offsets are architectural.
        unsafe {
            write_volatile((d + gicd::CTLR) as *mut u32, 0);
            if self.version == 3 {
                while read_volatile((d + gicd::CTLR) as *const u32) & gicd::CTLR_RWP != 0 {}
            }
            let lines = (read_volatile((d + gicd::TYPER) as *const u32) & gicd::TYPER_IT_LINES_MASK)
                as usize
                + 1;
            for i in 0..lines {
                for reg in [gicd::ICENABLER, gicd::ICPENDR, gicd::ICACTIVER] {
                    write_volatile((d + reg + 4 * i) as *mut u32, u32::MAX);
                }
            }
            if self.cpu != 0 {
                write_volatile((self.cpu + GICC_CTLR) as *mut u32, 0);
            }
        }
        if self.version == 3 {
            let sre: u64;
            // SAFETY: ICC_SRE_EL1 exists on every GICv3 CPU interface (the DTB said GICv3).
            unsafe { asm!("mrs {}, icc_sre_el1", out(reg) sre, options(nomem, nostack)) };
            if sre & ICC_SRE_SRE != 0 {
                // SAFETY: with SRE set, the group-1 enable is accessible; clearing it stops
                // this CPU from taking group-1 interrupts.
                unsafe { asm!("msr icc_igrpen1_el1, xzr", "isb", options(nomem, nostack)) };
            }
        }
    }
}
