//! Exception handling: IRQs go to `crate::irq`; every other exception is one this kernel does
//! not expect, reported with its class by name, ESR, FAR, ELR, SPSR and the general
//! registers, and the CPU halts.

use crate::drivers::console::emergency_print;
use core::fmt::Write;

/// The registers `vectors.S` saves, in its layout.
#[repr(C)]
pub struct TrapFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// The interrupted stack pointer (0 if lost: an exception on the exception stack).
    pub sp: u64,
    /// `ELR_EL1`.
    pub elr: u64,
    /// `SPSR_EL1`.
    pub spsr: u64,
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// q0..q31, each as two 64-bit halves (low first).
    pub q: [[u64; 2]; 32],
    /// `FPSR`.
    pub fpsr: u64,
    /// `FPCR`.
    pub fpcr: u64,
}

// vectors.S builds the frame with these offsets.
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 816);
const _: () = assert!(core::mem::offset_of!(TrapFrame, q) == 288);
const _: () = assert!(core::mem::offset_of!(TrapFrame, fpsr) == 800);

const SLOTS: [&str; 16] = [
    "synchronous, EL1 on SP_EL0",
    "IRQ, EL1 on SP_EL0",
    "FIQ, EL1 on SP_EL0",
    "SError, EL1 on SP_EL0",
    "synchronous, EL1 on SP_EL1 (inside a handler, or exception stack overflow)",
    "IRQ, EL1 on SP_EL1",
    "FIQ, EL1 on SP_EL1",
    "SError, EL1 on SP_EL1",
    "synchronous, from EL0 (AArch64)",
    "IRQ, from EL0 (AArch64)",
    "FIQ, from EL0 (AArch64)",
    "SError, from EL0 (AArch64)",
    "synchronous, from EL0 (AArch32)",
    "IRQ, from EL0 (AArch32)",
    "FIQ, from EL0 (AArch32)",
    "SError, from EL0 (AArch32)",
];

use aarch64_cpu::registers::{CurrentEL, Readable, ESR_EL1, SCTLR_EL1};
use ESR_EL1::EC::Value as Class;

/// The name of an exception class (`ESR_EL1.EC`, Arm ARM D24.2.41).
pub fn exception_class_name(class: Option<Class>) -> &'static str {
    match class {
        Some(Class::Unknown) => "Unknown reason",
        Some(Class::TrappedWFIorWFE) => "Trapped WFI/WFE",
        Some(Class::TrappedFP) => "Trapped SVE/SIMD/FP access",
        Some(Class::BranchTarget) => "Branch Target Identification",
        Some(Class::IllegalExecutionState) => "Illegal Execution state",
        Some(Class::SVC64) => "SVC from AArch64",
        Some(Class::HVC64) => "HVC from AArch64",
        Some(Class::SMC64) => "SMC from AArch64",
        Some(Class::TrappedMsrMrs) => "Trapped MSR/MRS/system instruction",
        Some(Class::TrappedSve) => "Trapped SVE access",
        Some(Class::PointerAuth) => "Pointer authentication failure",
        Some(Class::InstrAbortLowerEL) => "Instruction Abort (lower EL)",
        Some(Class::InstrAbortCurrentEL) => "Instruction Abort (current EL)",
        Some(Class::PCAlignmentFault) => "PC alignment fault",
        Some(Class::DataAbortLowerEL) => "Data Abort (lower EL)",
        Some(Class::DataAbortCurrentEL) => "Data Abort (current EL)",
        Some(Class::SPAlignmentFault) => "SP alignment fault",
        Some(Class::TrappedFP64) => "Trapped floating-point exception",
        Some(Class::SError) => "SError",
        Some(Class::BreakpointLowerEL | Class::BreakpointCurrentEL) => "Breakpoint",
        Some(Class::SoftwareStepLowerEL | Class::SoftwareStepCurrentEL) => "Software step",
        Some(Class::WatchpointLowerEL | Class::WatchpointCurrentEL) => "Watchpoint",
        Some(Class::Brk64) => "BRK instruction",
        _ => "Reserved or unhandled class",
    }
}

/// Abort syndrome fields (`ESR_ELx.ISS` for instruction and data aborts).
mod abort {
    /// `DFSC`/`IFSC`: the fault status code.
    pub const FSC_MASK: u64 = 0x3f;
    /// The translation level, in the low two bits of the status code.
    pub const LEVEL_MASK: u64 = 0b11;
    /// `WnR` (data aborts): the access was a write.
    pub const WNR: u64 = 1 << 6;
}

/// For aborts: the fault status code's meaning (`DFSC`/`IFSC`).
pub fn fault_status_name(fsc: u64) -> &'static str {
    match fsc {
        0b000000..=0b000011 => "address size fault",
        0b000100..=0b000111 => "translation fault",
        0b001000..=0b001011 => "access flag fault",
        0b001100..=0b001111 => "permission fault",
        0b010000 => "synchronous external abort",
        0b100001 => "alignment fault",
        0b110000 => "TLB conflict abort",
        _ => "other fault",
    }
}

/// `on`/`off` for a control bit.
fn on(set: bool) -> &'static str {
    if set {
        "on"
    } else {
        "off"
    }
}

/// Called by `vectors.S` for every exception.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut TrapFrame, slot: u64) {
    if slot == IRQ_EL1_SP0 {
        return crate::irq::handle();
    }
    let mut out = emergency_print();
    let ec = ESR_EL1::EC.read(frame.esr);
    let class = ESR_EL1::EC.read_as_enum::<Class>(frame.esr);
    let _ = writeln!(
        out,
        "\r\nEXCEPTION: {} (EC {ec:#04x}), {}",
        exception_class_name(class),
        SLOTS[slot as usize & 15]
    );
    if let Some(
        kind @ (Class::InstrAbortLowerEL
        | Class::InstrAbortCurrentEL
        | Class::DataAbortLowerEL
        | Class::DataAbortCurrentEL),
    ) = class
    {
        let fsc = frame.esr & abort::FSC_MASK;
        let data = matches!(kind, Class::DataAbortLowerEL | Class::DataAbortCurrentEL);
        let wnr = if data && frame.esr & abort::WNR != 0 {
            "write"
        } else {
            "read"
        };
        let _ = writeln!(
            out,
            "  {} at level {} on a {wnr} of {:#018x}",
            fault_status_name(fsc),
            fsc & abort::LEVEL_MASK,
            frame.far
        );
    }
    let _ = writeln!(
        out,
        "  ESR {:#010x}  FAR {:#018x}  ELR {:#018x}  SPSR {:#010x}  SP {:#018x}",
        frame.esr, frame.far, frame.elr, frame.spsr, frame.sp
    );
    let _ = writeln!(
        out,
        "  EL{}  SCTLR_EL1 {:#010x}: MMU {}, D-cache {}, I-cache {}",
        CurrentEL.read(CurrentEL::EL),
        SCTLR_EL1.get(),
        on(SCTLR_EL1.is_set(SCTLR_EL1::M)),
        on(SCTLR_EL1.is_set(SCTLR_EL1::C)),
        on(SCTLR_EL1.is_set(SCTLR_EL1::I)),
    );
    for i in (0..31).step_by(3) {
        let _ = write!(out, " ");
        for r in i..(i + 3).min(31) {
            let _ = write!(out, " x{r:<2} {:#018x}", frame.x[r]);
        }
        let _ = writeln!(out);
    }
    // With a crash kernel loaded (kexec -p), it takes over from here.
    crate::kexec::crash::enter_crash_kernel(&frame.x, frame.sp, frame.elr, frame.spsr);
    let _ = writeln!(out, "halted");
    crate::arch::fatal_stop(EXIT_EXCEPTION);
}

/// The vector slot of an IRQ taken from the kernel (EL1, on SP_EL0): the only exception
/// that returns. An IRQ on SP_EL1 would mean a handler unmasked IRQs, which none does.
const IRQ_EL1_SP0: u64 = 1;

/// Exit status (under `semihosting`) after an unexpected exception.
pub const EXIT_EXCEPTION: u32 = 2;
