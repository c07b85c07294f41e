//! Watchdogs for `boot`'s fail-safe: armed before the jump into an entry, so that a kernel
//! that never comes up resets the board.
//!
//! - The Raspberry Pi's PM watchdog (`brcm,bcm2835-pm`, the DTB's): a 20-bit counter of
//!   65536 ticks a second, so at most 15 s. QEMU's `raspi4b` models the registers but no
//!   countdown: setting the reset bit resets at once.
//! - Intel's 6300ESB on PCI (QEMU `virt` with `-device i6300esb`): found on the first bus
//!   of the DTB's ECAM host bridge, its BAR placed in the bridge's 32-bit window. Two stages
//!   of up to 2^20 ticks of 2^15 PCI clocks (30 ns) each: about 1 ms a tick, the reset at the
//!   end of the second stage. It also remembers across the reset that it fired.

use super::board::pm;
use crate::arch::mmio::Regs;
use crate::{memory, SYSTEM};
use alloc::format;
use alloc::string::String;
use kernel::formats::bootrecord::WatchdogKind;
use mm::memmap::Region;

/// The 6300ESB: PCI IDs, configuration registers, BAR registers and fields (its datasheet;
/// Linux's `i6300esb`).
mod esb {
    pub const VENDOR: u16 = 0x8086;
    pub const DEVICE: u16 = 0x25ab;
    /// PCI configuration header: IDs, command, BAR 0.
    pub const PCI_VENDOR: usize = 0x00;
    pub const PCI_DEVICE: usize = 0x02;
    pub const PCI_COMMAND: usize = 0x04;
    pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;
    pub const PCI_BAR0: usize = 0x10;
    pub const PCI_BAR_MEM_MASK: u32 = !0xf;
    /// Configuration: reboot when stage 2 ends unless `CONFIG_NO_REBOOT`; 1 kHz unless
    /// `CONFIG_FREQ_1MHZ`; the stage-1 interrupt type (`3`: none).
    pub const CONFIG: usize = 0x60;
    pub const CONFIG_NO_INTERRUPT: u16 = 0x03;
    /// Lock register: enable (and, never used here, lock until reset).
    pub const LOCK: usize = 0x68;
    pub const LOCK_ENABLE: u8 = 1 << 1;
    /// BAR registers: the two stages' preloads, the reload register.
    pub const TIMER1: usize = 0x00;
    pub const TIMER2: usize = 0x04;
    pub const RELOAD: usize = 0x0c;
    pub const RELOAD_PING: u16 = 1 << 8;
    /// Set after a reset the watchdog caused; written 1 to clear.
    pub const RELOAD_FIRED: u16 = 1 << 9;
    /// Written to `RELOAD` before each write to a timer or `RELOAD`.
    pub const UNLOCK: [u16; 2] = [0x80, 0x86];
    /// A stage's preload field, and nanoseconds per tick at 1 kHz (2^15 clocks of 30 ns).
    pub const PRELOAD_MAX: u32 = 0x000f_ffff;
    pub const NS_PER_TICK: u64 = (1 << 15) * 30;
    /// Bytes of one function's configuration space, and of the BAR mapped.
    pub const CONFIG_SIZE: u64 = 4096;
    pub const BAR_SIZE: u64 = 4096;
}

/// A watchdog this kernel can arm and stop.
pub enum Watchdog {
    /// The Pi's PM watchdog.
    Pm {
        /// Its registers.
        regs: Regs,
        /// Their physical address.
        pa: u64,
    },
    /// A 6300ESB.
    I6300esb {
        /// Its function's configuration space.
        config: Regs,
        /// Its BAR 0.
        bar: Regs,
        /// Their physical addresses.
        config_pa: u64,
        /// See `config_pa`.
        bar_pa: u64,
    },
}

fn map(pa: u64, len: u64) -> Result<Regs, String> {
    let va = memory::map_device(Region::new(pa, len))
        .map_err(|e| format!("watchdog: mapping {pa:#x}: {e}"))?;
    // SAFETY: `va` maps `len` bytes of one device's registers as Device memory, for good.
    Ok(unsafe { Regs::new(va as usize, len as usize) })
}

impl Watchdog {
    /// The board's watchdog: the DTB's PM watchdog, else a 6300ESB on the first PCI bus.
    /// `Ok(None)`: none.
    pub fn find() -> Result<Option<Watchdog>, String> {
        let sys = SYSTEM.get().expect("booted");
        if let Some(r) = sys.platform.pm_watchdog {
            return Ok(Some(Watchdog::Pm {
                regs: map(r.start, pm::SIZE as u64)?,
                pa: r.start,
            }));
        }
        let fdt = fdt::Fdt::new(sys.fdt).map_err(|e| format!("watchdog: the DTB: {e:?}"))?;
        let Some(host) = kernel::platform::find_pci_host(&fdt).map_err(|e| format!("{e}"))? else {
            return Ok(None);
        };
        let ecam = map(host.ecam.start, host.ecam.size())?;
        // Device d, function 0 of the first bus.
        let Some(dev) = (0..32usize).find(|d| {
            let f = d << 15;
            ecam.read16(f + esb::PCI_VENDOR) == esb::VENDOR
                && ecam.read16(f + esb::PCI_DEVICE) == esb::DEVICE
        }) else {
            return Ok(None);
        };
        let config_pa = host.ecam.start + (dev as u64) * 8 * esb::CONFIG_SIZE;
        let config = map(config_pa, esb::CONFIG_SIZE)?;
        let (pci, cpu, size) = host.mem32.ok_or_else(|| {
            format!(
                "watchdog: {} has no 32-bit memory window for the 6300ESB",
                host.path
            )
        })?;
        let bar_pa = place_bar(&config, pci, cpu, size)?;
        Ok(Some(Watchdog::I6300esb {
            config,
            bar: map(bar_pa, esb::BAR_SIZE)?,
            config_pa,
            bar_pa,
        }))
    }

    /// The watchdog a boot record names, to stop it (checked first: a 6300ESB must still
    /// answer with its IDs).
    pub fn from_record(kind: WatchdogKind) -> Result<Watchdog, String> {
        match kind {
            WatchdogKind::Bcm2835Pm { regs } => Ok(Watchdog::Pm {
                regs: map(regs, pm::SIZE as u64)?,
                pa: regs,
            }),
            WatchdogKind::I6300esb { config, bar } => {
                let c = map(config, esb::CONFIG_SIZE)?;
                if c.read16(esb::PCI_VENDOR) != esb::VENDOR
                    || c.read16(esb::PCI_DEVICE) != esb::DEVICE
                {
                    return Err(format!("watchdog: no 6300ESB at {config:#x} any more"));
                }
                Ok(Watchdog::I6300esb {
                    config: c,
                    bar: map(bar, esb::BAR_SIZE)?,
                    config_pa: config,
                    bar_pa: bar,
                })
            }
        }
    }

    /// For the boot record.
    pub fn kind(&self) -> WatchdogKind {
        match self {
            Watchdog::Pm { pa, .. } => WatchdogKind::Bcm2835Pm { regs: *pa },
            Watchdog::I6300esb {
                config_pa, bar_pa, ..
            } => WatchdogKind::I6300esb {
                config: *config_pa,
                bar: *bar_pa,
            },
        }
    }

    /// Its name, for the console.
    pub fn name(&self) -> &'static str {
        match self {
            Watchdog::Pm { .. } => "bcm2835-pm",
            Watchdog::I6300esb { .. } => "i6300esb",
        }
    }

    /// The longest timeout it takes, in seconds.
    pub fn max_seconds(&self) -> u32 {
        match self {
            Watchdog::Pm { .. } => pm::WDOG_TIME_SET / pm::WDOG_TICKS_PER_S,
            Watchdog::I6300esb { .. } => {
                (2 * esb::PRELOAD_MAX as u64 * esb::NS_PER_TICK / 1_000_000_000) as u32
            }
        }
    }

    /// Starts it: the board resets `seconds` from now unless it is stopped.
    pub fn arm(&self, seconds: u32) {
        let seconds = seconds.clamp(1, self.max_seconds());
        match self {
            Watchdog::Pm { regs, .. } => {
                let ticks = (seconds * pm::WDOG_TICKS_PER_S).min(pm::WDOG_TIME_SET);
                regs.write32(pm::WDOG, pm::PASSWORD | ticks);
                let rstc = regs.read32(pm::RSTC);
                regs.write32(
                    pm::RSTC,
                    pm::PASSWORD | (rstc & pm::RSTC_WRCFG_CLR) | pm::RSTC_WRCFG_FULL_RESET,
                );
            }
            Watchdog::I6300esb { config, bar, .. } => {
                // Each stage half the time.
                let stage_ns = seconds as u64 * 1_000_000_000 / 2;
                let preload = stage_ns
                    .div_ceil(esb::NS_PER_TICK)
                    .min(esb::PRELOAD_MAX as u64) as u32;
                config.write16(esb::CONFIG, esb::CONFIG_NO_INTERRUPT);
                for timer in [esb::TIMER1, esb::TIMER2] {
                    unlock(bar);
                    bar.write32(timer, preload);
                }
                unlock(bar);
                bar.write16(esb::RELOAD, esb::RELOAD_PING);
                config.write8(esb::LOCK, esb::LOCK_ENABLE);
            }
        }
    }

    /// Stops it.
    pub fn stop(&self) {
        match self {
            Watchdog::Pm { regs, .. } => regs.write32(pm::RSTC, pm::PASSWORD | pm::RSTC_RESET),
            Watchdog::I6300esb { config, .. } => config.write8(esb::LOCK, 0),
        }
    }

    /// Whether it caused the last reset, where it can tell (and forgets it): the 6300ESB
    /// can; the Pi's PM block cannot tell the watchdog firing from Linux's own reboot,
    /// which goes through the same watchdog.
    pub fn take_fired(&self) -> Option<bool> {
        match self {
            Watchdog::Pm { .. } => None,
            Watchdog::I6300esb { bar, .. } => {
                let fired = bar.read16(esb::RELOAD) & esb::RELOAD_FIRED != 0;
                unlock(bar);
                bar.write16(esb::RELOAD, esb::RELOAD_FIRED);
                Some(fired)
            }
        }
    }
}

/// The 6300ESB's unlock sequence, before each write to a timer or the reload register.
fn unlock(bar: &Regs) {
    for v in esb::UNLOCK {
        bar.write16(esb::RELOAD, v);
    }
}

/// Sizes BAR 0 of the function at `config`, places it at the start of the host's 32-bit
/// window (PCI address `pci`, CPU address `cpu`, `size` bytes), turns on memory decoding and
/// returns the BAR's CPU address. Keeps an address firmware already gave it.
fn place_bar(config: &Regs, pci: u64, cpu: u64, size: u64) -> Result<u64, String> {
    let old = config.read32(esb::PCI_BAR0) & esb::PCI_BAR_MEM_MASK;
    let at = if old != 0 && (pci..pci + size).contains(&(old as u64)) {
        old as u64
    } else {
        config.write32(esb::PCI_BAR0, u32::MAX);
        let need = (!(config.read32(esb::PCI_BAR0) & esb::PCI_BAR_MEM_MASK)).wrapping_add(1) as u64;
        if need == 0 || need > size || pci + need > u32::MAX as u64 + 1 {
            return Err(format!(
                "watchdog: a BAR of {need:#x} bytes does not fit the window"
            ));
        }
        config.write32(esb::PCI_BAR0, pci as u32);
        pci
    };
    let cmd = config.read16(esb::PCI_COMMAND);
    config.write16(esb::PCI_COMMAND, cmd | esb::PCI_COMMAND_MEMORY);
    Ok(cpu + (at - pci))
}
