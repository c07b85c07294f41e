//! Exception handling: every exception this kernel does not expect is reported with its class
//! by name, ESR, FAR, ELR, SPSR and the general registers, and the CPU halts.

use crate::console::emergency_print;
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
}

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

/// The name of an `ESR_ELx.EC` exception class (Arm ARM D24.2.41).
pub fn exception_class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "Unknown reason",
        0x01 => "Trapped WFI/WFE",
        0x07 => "Trapped SVE/SIMD/FP access",
        0x0e => "Illegal Execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "Trapped MSR/MRS/system instruction",
        0x19 => "Trapped SVE access",
        0x20 => "Instruction Abort (lower EL)",
        0x21 => "Instruction Abort (current EL)",
        0x22 => "PC alignment fault",
        0x24 => "Data Abort (lower EL)",
        0x25 => "Data Abort (current EL)",
        0x26 => "SP alignment fault",
        0x2c => "Trapped floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "Breakpoint",
        0x32 | 0x33 => "Software step",
        0x34 | 0x35 => "Watchpoint",
        0x3c => "BRK instruction",
        _ => "Reserved or unhandled class",
    }
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

/// Called by `vectors.S` for every exception.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut TrapFrame, slot: u64) {
    let mut out = emergency_print();
    let ec = (frame.esr >> 26) & 0x3f;
    let _ = writeln!(
        out,
        "\r\nEXCEPTION: {} (EC {ec:#04x}), {}",
        exception_class_name(ec),
        SLOTS[slot as usize & 15]
    );
    if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
        let fsc = frame.esr & 0x3f;
        let level = fsc & 3;
        let wnr = if ec >= 0x24 && frame.esr & (1 << 6) != 0 {
            "write"
        } else {
            "read"
        };
        let _ = writeln!(
            out,
            "  {} at level {level} on a {wnr} of {:#018x}",
            fault_status_name(fsc),
            frame.far
        );
    }
    let _ = writeln!(
        out,
        "  ESR {:#010x}  FAR {:#018x}  ELR {:#018x}  SPSR {:#010x}  SP {:#018x}",
        frame.esr, frame.far, frame.elr, frame.spsr, frame.sp
    );
    for i in (0..31).step_by(3) {
        let _ = write!(out, " ");
        for r in i..(i + 3).min(31) {
            let _ = write!(out, " x{r:<2} {:#018x}", frame.x[r]);
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "halted");
    crate::arch::fatal_stop(EXIT_EXCEPTION);
}

/// Exit status (under `semihosting`) after an unexpected exception.
pub const EXIT_EXCEPTION: u32 = 2;
