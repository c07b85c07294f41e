//! `boot`'s watchdog fail-safe (`boot.watchdog=SECONDS`): before the jump into an entry,
//! the board's watchdog is armed and a boot record written to the page that survives a
//! reset ([`kernel::formats::bootrecord`]); the kernel that comes up stops the watchdog.
//!
//! At the next start the record tells what happened: this kernel, started by that very
//! `boot` (its `/chosen/hobby,boot-attempt` is the record's), came up: it stops the
//! watchdog and clears the record. Otherwise the board was reset while the attempt was in
//! flight: unless the watchdog says it did not fire (the 6300ESB can tell), the entry did
//! not come up, and the menu falls back to the next entry not yet tried.

use crate::drivers::watchdog::Watchdog;
use crate::kexec::BOOT_ATTEMPT;
use crate::{arch, memory, println, SYSTEM};
use alloc::format;
use alloc::string::String;
use kernel::formats::bootrecord::{self, Record};
use mm::addr::PhysAddr;

/// The attempt that failed before this start, if one did (for the menu).
static FAILED: spin::Once<Record> = spin::Once::new();

/// The boot record's bytes in the linear map.
fn record_bytes(page: PhysAddr) -> &'static mut [u8; bootrecord::SIZE] {
    let va = mm::layout::phys_to_virt(page).get() as *mut [u8; bootrecord::SIZE];
    // SAFETY: the page is RAM reserved at boot for the record alone (memory::init), mapped
    // in the linear map; only this module touches it, from the boot CPU.
    unsafe { &mut *va }
}

/// Writes `bytes` as the record and cleans it to the point of coherency: a reset loses the
/// caches, and the record must be in RAM when the next start reads it.
fn store(page: PhysAddr, bytes: &[u8; bootrecord::SIZE]) {
    let dst = record_bytes(page);
    dst.copy_from_slice(bytes);
    arch::clean_inval_dcache(mm::layout::phys_to_virt(page), bootrecord::SIZE as u64);
}

/// Clears the record (no attempt in flight).
fn clear(page: PhysAddr) {
    store(page, &[0; bootrecord::SIZE]);
}

/// At start-up: reads the record, if there is one, and says what became of its attempt.
pub fn at_start() {
    let Some(page) = memory::boot_record_page() else {
        return;
    };
    let Some(rec) = Record::decode(record_bytes(page)) else {
        return;
    };
    clear(page);
    let wd = Watchdog::from_record(rec.watchdog);
    if let Err(e) = &wd {
        println!("boot: {e}");
    }
    if this_attempt() == Some(rec.attempt) {
        if let Ok(w) = &wd {
            w.stop();
        }
        return println!(
            "boot: came up as '{}' (attempt {:#x}); the {} watchdog stopped",
            rec.id,
            rec.attempt,
            wd.as_ref().map_or("unknown", |w| w.name())
        );
    }
    let fired = wd.as_ref().ok().and_then(Watchdog::take_fired);
    if let Ok(w) = &wd {
        w.stop();
    }
    if fired == Some(false) {
        return println!(
            "boot: '{}' was started before this start, and the watchdog did not fire: it came up",
            rec.id
        );
    }
    println!(
        "boot: '{}' did not come up: the {} watchdog reset the board",
        rec.id,
        wd.as_ref().map_or("unknown", |w| w.name())
    );
    FAILED.call_once(|| rec);
}

/// The attempt this kernel is, if a `boot` with the watchdog started it.
fn this_attempt() -> Option<u64> {
    let sys = SYSTEM.get()?;
    let fdt = fdt::Fdt::new(sys.fdt).ok()?;
    let p = fdt.find_node("/chosen")?.property(BOOT_ATTEMPT)?;
    Some(u64::from_be_bytes(p.value.try_into().ok()?))
}

/// The attempt that failed before this start.
pub fn failed() -> Option<&'static Record> {
    FAILED.get()
}

/// A boot attempt about to be made: the watchdog found, the record ready.
pub struct Attempt {
    wd: Watchdog,
    page: PhysAddr,
    record: Record,
    seconds: u32,
}

impl Attempt {
    /// Prepares booting entry `index` (`id`) with the watchdog set to `seconds`; `tried`
    /// are the entries already tried in this series.
    pub fn prepare(index: usize, id: &str, tried: u64, seconds: u32) -> Result<Attempt, String> {
        let wd = Watchdog::find()?.ok_or_else(|| {
            String::from(
                "boot.watchdog: this board has no watchdog this kernel drives (the DTB names \
                 no bcm2835-pm, and no i6300esb is on PCI)",
            )
        })?;
        let page = memory::boot_record_page().ok_or_else(|| {
            String::from(
                "boot.watchdog: the boot record's page (the last of the first RAM bank) is \
                 not free in this boot",
            )
        })?;
        if seconds > wd.max_seconds() {
            return Err(format!(
                "boot.watchdog={seconds}: the {} watchdog goes up to {} s",
                wd.name(),
                wd.max_seconds()
            ));
        }
        let index32 = u32::try_from(index)
            .ok()
            .filter(|&i| (i as usize) < bootrecord::MAX_ENTRIES);
        let index32 = index32.ok_or_else(|| {
            format!(
                "boot.watchdog: entry {index}: the record keeps {} entries",
                bootrecord::MAX_ENTRIES
            )
        })?;
        Ok(Attempt {
            record: Record {
                attempt: arch::ticks(),
                entry: index32,
                id: id.into(),
                tried: tried | 1 << index,
                watchdog: wd.kind(),
            },
            wd,
            page,
            seconds: seconds.max(1),
        })
    }

    /// The number the next kernel is told (`/chosen/hobby,boot-attempt`).
    pub fn number(&self) -> u64 {
        self.record.attempt
    }

    /// Writes the record and arms the watchdog: from here the board resets unless the
    /// entry's kernel comes up and stops it.
    pub fn arm(&self) {
        store(self.page, &self.record.encode());
        // Said first: QEMU's raspi4b resets as the watchdog is armed.
        println!(
            "boot: the {} watchdog armed for {} s (attempt {:#x})",
            self.wd.name(),
            self.seconds,
            self.record.attempt
        );
        self.wd.arm(self.seconds);
    }

    /// The jump did not happen: stops the watchdog and clears the record.
    pub fn disarm(&self) {
        self.wd.stop();
        clear(self.page);
    }
}
