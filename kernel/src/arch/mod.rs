//! The thin layer that touches the CPU: counters, barriers, cache and TLB maintenance, PSCI
//! calls, the switch to the kernel's own tables. Everything else is plain Rust.

pub mod exceptions;
pub mod gic;

use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use core::arch::asm;
use kernel::platform::PsciConduit;

core::arch::global_asm!(include_str!("vectors.S"));

/// The architected counter (`CNTPCT_EL0`).
pub fn ticks() -> u64 {
    // SAFETY: an ISB orders the counter read after earlier instructions; no memory access.
    unsafe { asm!("isb", options(nomem, nostack, preserves_flags)) };
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
    // SAFETY: barriers only.
    unsafe { asm!("dsb ishst", "isb", options(nostack, preserves_flags)) };
}

/// Masks interrupts and waits forever.
pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting has no memory effects.
        unsafe { asm!("msr daifset, #0xf", "wfi", options(nomem, nostack)) };
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

/// PSCI function identifiers (Arm DEN 0022), SMC32 calling convention.
pub mod psci {
    /// `SYSTEM_OFF`.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// `SYSTEM_RESET`.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// `CPU_ON`, SMC64: (target MPIDR, entry PA, context ID).
    pub const CPU_ON: u32 = 0xc400_0003;
    /// `CPU_OFF`: the calling CPU leaves; does not return on success.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// `AFFINITY_INFO`, SMC64: (target MPIDR, lowest affinity level) → 0 on, 1 off, 2 pending.
    pub const AFFINITY_INFO: u32 = 0xc400_0004;
    /// `AFFINITY_INFO` result: the CPU is off.
    pub const AFFINITY_OFF: i64 = 1;
}

/// This CPU's affinity fields of `MPIDR_EL1` (Aff3..Aff0), as the DTB's `reg` of a CPU.
pub fn mpidr() -> u64 {
    let m: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack)) };
    m & boot::regs::MPIDR_AFFINITY_MASK
}

/// Wakes CPUs waiting in `wfe`.
pub fn sev() {
    // SAFETY: an event has no memory effects (the dsb orders earlier stores before it).
    unsafe { asm!("dsb ish", "sev", options(nostack)) };
}

/// Waits for an event (or an interrupt, or a spurious wake-up).
pub fn wfe() {
    // SAFETY: waiting has no memory effects.
    unsafe { asm!("wfe", options(nomem, nostack)) };
}

/// Issues a PSCI call through `conduit` and returns x0.
pub fn psci_call(conduit: PsciConduit, function: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = function as u64;
    // SAFETY: an SMCCC call: the firmware may clobber x0-x17 (declared), it does not touch
    // this kernel's memory.
    unsafe {
        match conduit {
            PsciConduit::Hvc => asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _,
                inout("x2") a2 => _, inout("x3") a3 => _, out("x4") _, out("x5") _,
                out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _,
                out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _, options(nostack)),
            PsciConduit::Smc => asm!("smc #0", inout("x0") x0, inout("x1") a1 => _,
                inout("x2") a2 => _, inout("x3") a3 => _, out("x4") _, out("x5") _,
                out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _,
                out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _, options(nostack)),
        }
    }
    x0 as i64
}

/// Switches `TTBR1_EL1` to `root` (break-before-make through the all-zero table), running
/// the switch from the identity map, and turns off TTBR0 walks.
///
/// # Safety
/// `root` must map everything the kernel is using (image, stacks, console) at the same
/// virtual addresses as the current tables, and the boot identity map must still be in
/// TTBR0.
pub unsafe fn switch_kernel_tables(root: u64, image_pa: u64) {
    use boot::symbols::{_text, idmap_replace_ttbr1};
    let f = idmap_replace_ttbr1 as *const () as u64;
    let text = core::ptr::addr_of!(_text) as u64;
    let f_pa = f - text + image_pa;
    // The routine lives in .idmap.text, identity-mapped at its PA by the boot tables.
    // SAFETY: it clobbers only x0, x1, x30 (declared) and returns to a VA that the new tables
    // map as the old ones did (caller's contract).
    unsafe {
        asm!("blr {f}", f = in(reg) f_pa, inout("x0") root => _, out("x1") _, out("x30") _,
             options(nostack));
    }
    // TTBR0 is no longer needed: a null or user address now faults.
    let epd0 = boot::regs::tcr_el1::EPD0;
    // SAFETY: only disables TTBR0 walks; nothing mapped through TTBR0 is in use any more.
    unsafe {
        asm!("mrs {t}, tcr_el1", "orr {t}, {t}, {e}", "msr tcr_el1, {t}", "isb",
             "tlbi vmalle1", "dsb nsh", "isb", t = out(reg) _, e = in(reg) epd0,
             options(nostack));
    }
}

/// Smallest D-cache line size in bytes (`CTR_EL0.DminLine`).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    use boot::regs::ctr_el0::{DMINLINE_MASK, DMINLINE_SHIFT};
    4 << ((ctr >> DMINLINE_SHIFT) & DMINLINE_MASK)
}

/// Cleans and invalidates `[va, va + len)` to the point of coherency.
pub fn clean_inval_dcache(va: u64, len: u64) {
    let line = dcache_line();
    let mut a = va & !(line - 1);
    while a < va + len {
        // SAFETY: cache maintenance by VA on mapped memory does not change its contents.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// Invalidates the whole instruction cache to the point of unification.
pub fn invalidate_icache() {
    // SAFETY: invalidating the I-cache only costs refetches.
    unsafe { asm!("ic iallu", "dsb nsh", "isb", options(nostack)) };
}

/// Stops the EL1 physical and virtual timers.
pub fn timers_off() {
    // SAFETY: disabling the timers (CNTx_CTL_EL0.ENABLE = 0) only stops their interrupts.
    unsafe {
        asm!(
            "msr cntp_ctl_el0, xzr",
            "msr cntv_ctl_el0, xzr",
            "isb",
            options(nomem, nostack)
        )
    };
}

/// Masks every exception (DAIF).
pub fn mask_all() {
    // SAFETY: masking interrupts has no memory effects.
    unsafe { asm!("msr daifset, #0xf", options(nomem, nostack)) };
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
pub unsafe fn kexec_jump(reloc_pa: u64, args_va: u64, idmap_root: u64) -> ! {
    let epd0 = boot::regs::tcr_el1::EPD0;
    // SAFETY: caller's contract. TTBR0 held nothing (EPD0 was set), so turning its walks on
    // with the new root only adds the identity page.
    unsafe {
        asm!(
            "msr ttbr0_el1, {root}",
            "isb",
            "mrs x9, tcr_el1",
            "bic x9, x9, {epd0}",
            "msr tcr_el1, x9",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "br {reloc}",
            root = in(reg) idmap_root,
            epd0 = in(reg) epd0,
            // x9 is scratch: this never returns, so nothing depends on it.
            in("x9") 0u64,
            reloc = in(reg) reloc_pa,
            in("x0") args_va,
            options(noreturn, nostack),
        )
    }
}

/// `ID_AA64ISAR0_EL1.RNDR` (bits 63:60): non-zero when `RNDR`/`RNDRRS` exist (FEAT_RNG).
const ID_AA64ISAR0_RNDR_SHIFT: u64 = 60;

/// A 64-bit random number from `RNDR`, or `None` if the CPU has no FEAT_RNG or the
/// instruction reports failure.
pub fn rndr() -> Option<u64> {
    let isar0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack)) };
    if (isar0 >> ID_AA64ISAR0_RNDR_SHIFT) & 0xf == 0 {
        return None;
    }
    let (value, failed): (u64, u64);
    // SAFETY: RNDR exists (checked above); it only reads the random source. NZCV.Z = 1 means
    // no number was available.
    unsafe {
        asm!("mrs {v}, s3_3_c2_c4_0", "cset {f}, eq", v = out(reg) value, f = out(reg) failed,
             options(nomem, nostack))
    };
    (failed == 0).then_some(value)
}
