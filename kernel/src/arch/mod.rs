//! The thin layer that touches the CPU: counters, barriers, cache and TLB maintenance, PSCI
//! calls, the switch to the kernel's own tables. Everything else is plain Rust.
//!
//! System registers are read and written through `aarch64-cpu`, barriers and hints through
//! its `asm` module, PSCI through `smccc`. What neither crate has stays a one-line `asm!`
//! with the register named here: `CTR_EL0` (not in `aarch64-cpu` 10 or 11), `ICC_SRE_EL1`
//! and `ICC_IGRPEN1_EL1` (only their EL2 counterparts are), TLB invalidation, `dc`/`ic` cache
//! maintenance, the EL2 stub's own HVC calls (Linux's stub ABI, not SMCCC), semihosting, and
//! the branches into the identity map.

pub mod exceptions;
pub mod gic;
pub mod mmio;
pub mod sha2;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ReadWriteable, Readable, Writeable, CNTFRQ_EL0, CNTPCT_EL0, CNTP_CTL_EL0, CNTV_CTL_EL0, DAIF,
    MPIDR_EL1, TCR_EL1, TPIDR_EL0, TTBR0_EL1,
};
use core::arch::asm;
use mm::addr::{PhysAddr, VirtAddr};

core::arch::global_asm!(include_str!("vectors.S"));
core::arch::global_asm!(include_str!("mem.S"));
#[cfg(feature = "fault-inject")]
core::arch::global_asm!(
    include_str!("fault.S"),
    HCR_AMO = const boot::regs::hcr_el2::AMO,
    HCR_VSE = const boot::regs::hcr_el2::VSE,
);
core::arch::global_asm!(include_str!("sha256.S"), options(raw));
core::arch::global_asm!(
    include_str!("efi_entry.S"),
    CURRENT_EL_EL2 = const 2 << 2,
    // M, C and I sit at the same bits in SCTLR_EL1 and SCTLR_EL2.
    SCTLR_M_C_I = const boot::regs::sctlr_el1::M | boot::regs::sctlr_el1::C | boot::regs::sctlr_el1::I,
);

/// The architected counter (`CNTPCT_EL0`).
pub fn ticks() -> u64 {
    // Orders the counter read after earlier instructions.
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

/// The counter's frequency in Hz (`CNTFRQ_EL0`, programmed by firmware).
pub fn counter_hz() -> u64 {
    CNTFRQ_EL0.get()
}

/// Converts counter ticks to microseconds.
pub fn ticks_to_us(ticks: u64) -> u64 {
    let hz = counter_hz().max(1);
    (ticks as u128 * 1_000_000 / hz as u128) as u64
}

/// Makes earlier page-table writes visible to the table walker and synchronises.
pub fn publish_tables() {
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
}

/// Masks interrupts and waits forever.
pub fn halt() -> ! {
    mask_all();
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// Set by the `semihosting` boot parameter: the machine is an emulator with Arm semihosting
/// enabled (QEMU `-semihosting-config enable=on`), so a fatal error can end it with a status.
pub static SEMIHOSTING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Semihosting `SYS_EXIT` and its AArch64 reason `ADP_Stopped_ApplicationExit`.
mod semihosting {
    pub const SYS_EXIT: u64 = 0x18;
    pub const APPLICATION_EXIT: u64 = 0x20026;
}

/// After a fatal error: ends the emulator with exit status `code` if the `semihosting`
/// parameter says it can, else halts.
pub fn fatal_stop(code: u32) -> ! {
    if SEMIHOSTING.load(core::sync::atomic::Ordering::Relaxed) {
        let block = [semihosting::APPLICATION_EXIT, code as u64];
        // SAFETY: a semihosting call (HLT #0xF000, enabled in the emulator as the parameter
        // promised) reads the two-word block and ends the machine.
        unsafe {
            asm!("hlt #0xf000", in("x0") semihosting::SYS_EXIT, in("x1") block.as_ptr(),
                 options(nostack))
        };
    }
    halt()
}

/// PSCI calls (Arm DEN 0022) through `smccc`, over the conduit the DTB's `/psci` names.
pub mod psci {
    use kernel::platform::PsciConduit;
    use smccc::psci::{self as call, LowestAffinityLevel};
    pub use smccc::psci::{AffinityState, Error};
    use smccc::{Hvc, Smc};

    /// Calls `smccc::psci::$f` with `Hvc` or `Smc` as `$conduit` says.
    macro_rules! through {
        ($conduit:expr, $f:ident($($arg:expr),*)) => {
            match $conduit {
                PsciConduit::Hvc => call::$f::<Hvc>($($arg),*),
                PsciConduit::Smc => call::$f::<Smc>($($arg),*),
            }
        };
    }

    /// `CPU_ON` (SMC64): starts `mpidr` at physical `entry` with x0 = `context`.
    pub fn cpu_on(conduit: PsciConduit, mpidr: u64, entry: u64, context: u64) -> Result<(), Error> {
        through!(conduit, cpu_on(mpidr, entry, context))
    }

    /// `CPU_OFF`: the calling CPU leaves; returns only on failure.
    pub fn cpu_off(conduit: PsciConduit) -> Result<(), Error> {
        through!(conduit, cpu_off())
    }

    /// `AFFINITY_INFO` (SMC64) for the one CPU `mpidr`.
    pub fn affinity_info(conduit: PsciConduit, mpidr: u64) -> Result<AffinityState, Error> {
        through!(conduit, affinity_info(mpidr, LowestAffinityLevel::All))
    }

    /// `SYSTEM_OFF`; returns only on failure.
    pub fn system_off(conduit: PsciConduit) -> Result<(), Error> {
        through!(conduit, system_off())
    }

    /// `SYSTEM_RESET`; returns only on failure.
    pub fn system_reset(conduit: PsciConduit) -> Result<(), Error> {
        through!(conduit, system_reset())
    }
}

/// This CPU's affinity fields of `MPIDR_EL1` (Aff3..Aff0), as the DTB's `reg` of a CPU.
/// The general registers, SP and PC as they are here (for a crash dump of a panic, which
/// has no trap frame): x29 and x30 are this function's caller's frame and return address.
#[inline(always)]
pub fn registers_here() -> ([u64; 31], u64, u64) {
    let mut x = [0u64; 31];
    let (fp, lr, sp, pc): (u64, u64, u64, u64);
    // SAFETY: reads registers only.
    unsafe {
        core::arch::asm!(
            "mov {fp}, x29", "mov {lr}, x30", "mov {sp}, sp", "adr {pc}, .",
            fp = out(reg) fp, lr = out(reg) lr, sp = out(reg) sp, pc = out(reg) pc,
            options(nomem, nostack, preserves_flags)
        )
    };
    x[29] = fp;
    x[30] = lr;
    (x, sp, pc)
}

pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & boot::regs::MPIDR_AFFINITY_MASK
}

/// Wakes CPUs waiting in `wfe`, after earlier stores are visible to them.
pub fn sev() {
    barrier::dsb(barrier::ISH);
    aarch64_cpu::asm::sev();
}

/// Switches `TTBR1_EL1` to `root` (break-before-make through the all-zero table), running
/// the switch from the identity map, and turns off TTBR0 walks.
///
/// # Safety
/// `root` must map everything the kernel is using (image, stacks, console) at the same
/// virtual addresses as the current tables, and the boot identity map must still be in
/// TTBR0.
pub unsafe fn switch_kernel_tables(root: u64, image_pa: u64) {
    let f_pa = boot::symbols::pa_of(boot::symbols::idmap_replace_ttbr1 as *const (), image_pa);
    // The routine lives in .idmap.text, identity-mapped at its PA by the boot tables.
    // SAFETY: it clobbers only x0, x1, x30 (declared) and returns to a VA that the new tables
    // map as the old ones did (caller's contract).
    unsafe {
        asm!("blr {f}", f = in(reg) f_pa, inout("x0") root => _, out("x1") _, out("x30") _,
             options(nostack));
    }
    // TTBR0 is no longer needed: a null or user address now faults.
    TCR_EL1.modify(TCR_EL1::EPD0::DisableTTBR0Walks);
    barrier::isb(barrier::SY);
    flush_local_tlb();
}

/// Invalidates this CPU's EL1 TLB entries and waits for it to take effect.
fn flush_local_tlb() {
    // SAFETY: dropping cached translations only costs walks; the tables are unchanged.
    unsafe { asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::NSH);
    barrier::isb(barrier::SY);
}

/// Smallest D-cache line size in bytes (`CTR_EL0.DminLine`; `aarch64-cpu` has no `CTR_EL0`).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    use boot::regs::ctr_el0::{DMINLINE_MASK, DMINLINE_SHIFT};
    4 << ((ctr >> DMINLINE_SHIFT) & DMINLINE_MASK)
}

/// Cleans and invalidates `[va, va + len)` to the point of coherency.
pub fn clean_inval_dcache(va: VirtAddr, len: u64) {
    let (va, line) = (va.get(), dcache_line());
    let mut a = va & !(line - 1);
    while a < va + len {
        // SAFETY: cache maintenance by VA on mapped memory does not change its contents.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    barrier::dsb(barrier::SY);
}

/// Invalidates this CPU's whole instruction cache to the point of unification: for code
/// that only this CPU will run.
pub fn invalidate_icache() {
    // SAFETY: invalidating the I-cache only costs refetches.
    unsafe { asm!("ic iallu", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::NSH);
    barrier::isb(barrier::SY);
}

/// Invalidates every CPU's instruction cache (the inner shareable domain) to the point of
/// unification: for code that other CPUs will run (`ic iallu` reaches only this one).
pub fn invalidate_icache_all_cpus() {
    // SAFETY: invalidating the I-caches only costs refetches.
    unsafe { asm!("ic ialluis", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

/// Stops the EL1 physical and virtual timers (`ENABLE` = 0: no more timer interrupts).
pub fn timers_off() {
    CNTP_CTL_EL0.set(0);
    CNTV_CTL_EL0.set(0);
    barrier::isb(barrier::SY);
}

/// Test builds: makes a virtual SError pending for this CPU through the EL2 stub
/// (`HVC_SOFT_RESTART` into `serror_at_el2`, `fault.S`): with SErrors unmasked it is taken
/// as soon as the stub returns. A kernel entered at EL1 has no stub to ask.
#[cfg(feature = "fault-inject")]
pub fn inject_virtual_serror(entry_el: u64, image_pa: u64) -> Result<(), &'static str> {
    unsafe extern "C" {
        static serror_at_el2: u8;
    }
    if entry_el != 2 {
        return Err("needs a kernel entered at EL2 (it asks the EL2 stub)");
    }
    let pa = boot::symbols::pa_of(&raw const serror_at_el2, image_pa);
    // SAFETY: the stub branches to `pa` at EL2 with the MMU off, where `serror_at_el2` sets
    // HCR_EL2.{AMO,VSE} and returns to this HVC; x0-x4 and x9 are the stub's to clobber.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") boot::regs::hvc::SOFT_RESTART => _,
            inout("x1") pa => _,
            out("x2") _,
            out("x3") _,
            out("x4") _,
            out("x9") _,
            options(nostack)
        )
    };
    Ok(())
}

/// Masks every exception: debug, SError, IRQ and FIQ (`DAIF`).
pub fn mask_all() {
    DAIF.write(DAIF::D::Masked + DAIF::A::Masked + DAIF::I::Masked + DAIF::F::Masked);
}

/// Takes SErrors (`DAIF.A` clear): once the vectors and the console are up, an asynchronous
/// external abort (a write the bus rejected, an ECC error) is reported like any other
/// exception instead of staying pending, as Linux does from early in `setup_arch`.
pub fn unmask_serror() {
    DAIF.modify(DAIF::A::Unmasked);
}

/// Takes IRQs (`DAIF.I` clear); debug stays masked.
pub fn unmask_irq() {
    DAIF.modify(DAIF::I::Unmasked);
}

/// Masks IRQs and returns whether they were masked before (for [`restore_irq`]).
pub fn mask_irq() -> bool {
    let was = DAIF.is_set(DAIF::I);
    DAIF.modify(DAIF::I::Masked);
    was
}

/// Undoes [`mask_irq`].
pub fn restore_irq(was_masked: bool) {
    if !was_masked {
        DAIF.modify(DAIF::I::Unmasked);
    }
}

/// This CPU's index among the DTB's CPUs (`TPIDR_EL0`, which EL0 would own; this kernel
/// has no EL0).
pub fn cpu_index() -> usize {
    TPIDR_EL0.get() as usize
}

/// Records this CPU's index for [`cpu_index`].
pub fn set_cpu_index(index: usize) {
    TPIDR_EL0.set(index as u64);
}

/// The EL1 virtual timer (`CNTV_*`), the tick's source: it counts the virtual counter, which
/// EL1 can always read, whatever EL2 allows of the physical timer.
pub mod timer {
    use aarch64_cpu::registers::{Readable, Writeable, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0};

    /// The virtual counter.
    pub fn now() -> u64 {
        CNTVCT_EL0.get()
    }

    /// Whether the deadline has passed (the interrupt is asserted, or about to be).
    pub fn due() -> bool {
        CNTVCT_EL0.get() >= CNTV_CVAL_EL0.get()
    }

    /// The next timer interrupt at virtual-counter value `deadline`.
    pub fn set_deadline(deadline: u64) {
        CNTV_CVAL_EL0.set(deadline);
    }

    /// Fires every `period` counter ticks from now.
    pub fn start(period: u64) {
        CNTV_CVAL_EL0.set(CNTVCT_EL0.get() + period);
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    }

    /// From the tick's handler: sets the next deadline one period after the last (or a
    /// period from now if that has passed already) and returns how late this tick's handler
    /// ran after its deadline, in counter ticks.
    pub fn rearm(period: u64) -> u64 {
        let now = CNTVCT_EL0.get();
        let deadline = CNTV_CVAL_EL0.get();
        let next = deadline + period;
        CNTV_CVAL_EL0.set(if next > now { next } else { now + period });
        now.saturating_sub(deadline)
    }
}

/// Points `VBAR_EL2` at `vectors` through the EL2 stub (`HVC_SET_VECTORS`); returns x0.
pub fn hyp_set_vectors(vectors: u64) -> u64 {
    let mut x0 = boot::regs::hvc::SET_VECTORS;
    // SAFETY: the stub preserves every register but x0 and touches no kernel memory.
    unsafe { asm!("hvc #0", inout("x0") x0, in("x1") vectors, options(nostack)) };
    x0
}

/// Leaves this CPU for `target` at EL2 with the MMU off, through the EL2 stub's
/// `HVC_SOFT_RESTART` (x0..x3 = 0 at the target). Returns only if the stub refuses.
pub fn hyp_soft_restart(target: u64) {
    // SAFETY: the stub branches to `target` at EL2 and never returns; if it does return
    // (an error in x0), only x0 changed.
    unsafe {
        asm!("hvc #0", inout("x0") boot::regs::hvc::SOFT_RESTART => _, in("x1") target,
             in("x2") 0u64, in("x3") 0u64, in("x4") 0u64, options(nostack))
    };
}

/// Enters the kexec relocation page: installs `idmap_root` in TTBR0 (walks re-enabled) and
/// branches to `reloc_pa` (its identity address) with x0 = `args_va`.
///
/// # Safety
/// Everything the relocation page needs must be in place: its code at `reloc_pa`, mapped
/// executable by `idmap_root`; a complete argument block at `args_va` in the linear map;
/// interrupts masked. Never returns.
pub unsafe fn kexec_jump(reloc_pa: PhysAddr, args_va: VirtAddr, idmap_root: PhysAddr) -> ! {
    // TTBR0 held nothing (EPD0 was set), so turning its walks on with the new root only adds
    // the identity page; everything in use stays in TTBR1.
    TTBR0_EL1.set(idmap_root.get());
    barrier::isb(barrier::SY);
    TCR_EL1.modify(TCR_EL1::EPD0::EnableTTBR0Walks);
    barrier::isb(barrier::SY);
    flush_local_tlb();
    // SAFETY: caller's contract: the relocation page is at `reloc_pa`, identity-mapped.
    unsafe {
        asm!("br {reloc}", reloc = in(reg) reloc_pa.get(), in("x0") args_va.get(), options(noreturn, nostack))
    }
}

/// What an early window maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyWindow {
    /// Memory to read: the UEFI memory map (read-only, never executed).
    UefiMemoryMap,
    /// Memory to read: the UEFI configuration tables, one after another.
    UefiTables,
    /// The console UART's registers (Device-nGnRnE).
    Console,
}

/// Maps `[pa, pa + len)` (at most 2 MiB) through early window `window`, in the boot code's
/// tables, and returns the VA of `pa`: for what the kernel must reach before its own tables
/// exist. A window pointed elsewhere before is re-pointed with break-before-make. Gone when
/// `switch_kernel_tables` replaces those tables.
///
/// # Safety
/// The boot code's tables must still be the ones in use (before `memory::init` switches),
/// and `[pa, pa + len)` must be memory that reads have no side effect on, or for
/// [`EarlyWindow::Console`] a device's registers.
pub unsafe fn early_window(window: EarlyWindow, pa: u64, len: u64) -> Option<u64> {
    use mm::layout::{EARLY_WINDOWS, EARLY_WINDOWS_VADDR};
    use mm::paging::{desc, Attrs};
    const BLOCK: u64 = 2 << 20;
    /// The kernel map's L2 table: page 6 of the early tables (`boot/src/entry.S`).
    const KERNEL_L2_PAGE: u64 = 6;
    let (slot, attrs) = match window {
        EarlyWindow::UefiMemoryMap => (0, boot::FDT_BLOCK_ATTRS),
        EarlyWindow::UefiTables => (1, boot::FDT_BLOCK_ATTRS),
        EarlyWindow::Console => (2, Attrs::DEVICE.bits() | desc::VALID),
    };
    const _: () = assert!(EARLY_WINDOWS == 3);
    if len == 0 || len > BLOCK {
        return None;
    }
    let first = pa / BLOCK;
    let last = (pa.checked_add(len)? - 1) / BLOCK;
    let va = EARLY_WINDOWS_VADDR + slot as u64 * 2 * BLOCK;
    let l2 = (&raw const boot::symbols::__early_tables) as u64 + KERNEL_L2_PAGE * 4096;
    // Slot `i` (0 or 1) of this window in the boot code's L2 table. Reading and writing it is
    // sound: the caller promises the boot tables are live; these two slots are ones only
    // this window uses; the table is in the image, mapped writable.
    let entry = |i: usize| (l2 as *mut u64).wrapping_add(((va >> 21) & 511) as usize + i);
    let new = |i: u64| ((first + i) * BLOCK) | attrs;
    let blocks = (last - first + 1) as usize;
    // Break: a valid entry that changes is made invalid, and its translation dropped, before
    // the new one is written (Arm ARM D8.16.1).
    // SAFETY: one of this window's slots (see `entry`).
    let old = |i: usize| unsafe { entry(i).read_volatile() };
    let changes =
        (0..2).any(|i| old(i) & desc::VALID != 0 && (i >= blocks || old(i) != new(i as u64)));
    if changes {
        for i in 0..2 {
            // SAFETY: one of this window's slots (see `entry`).
            unsafe { entry(i).write_volatile(0) };
        }
        tlbi_local_all();
    }
    // Make.
    for i in 0..blocks {
        // SAFETY: one of this window's slots (see `entry`).
        unsafe { entry(i).write_volatile(new(i as u64)) };
    }
    // The entries were invalid: make them visible to the walker.
    publish_tables();
    Some(va + (pa % BLOCK))
}

/// Drops every EL1 translation of this CPU (after its tables changed), and waits for it.
fn tlbi_local_all() {
    barrier::dsb(barrier::ISHST);
    // SAFETY: invalidating TLB entries only costs walks.
    unsafe {
        asm!(
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// A 64-bit random number from `RNDR`, or `None` if the CPU has no FEAT_RNG
/// (`ID_AA64ISAR0_EL1.RNDR`) or the instruction reports failure.
pub fn rndr() -> Option<u64> {
    aarch64_cpu::asm::random::ArmRng::new()?.rndr()
}
