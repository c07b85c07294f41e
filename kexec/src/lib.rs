//! kexec: loading a new kernel image and handing the machine over to it.
//!
//! - [`image`]: the arm64 Image header, checked before anything is allocated.
//! - [`kimage`]: the entry list in Linux's format and the safe-page rules behind it.
//! - [`place`]: where segments may go in the next kernel's memory.
//! - [`pen`]: where CPUs without PSCI `CPU_OFF` wait for the next kernel (spin tables).
//! - [`reloc`]: the relocation page (`relocate.S`: code and a full vector table in 4 KiB) and
//!   its argument block.
//!
//! Everything but the assembly is host-testable; the kernel binary links the relocation page
//! and makes the jump.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod image;
pub mod kimage;
pub mod pen;
pub mod place;
pub mod reloc;

// The relocation page and the pen, in one block so that they share boot's assembler macros.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(
    concat!(
        include_str!("../../boot/src/macros.S"),
        include_str!("relocate.S"),
        include_str!("pen.S")
    ),
    CTR_DMINLINE_SHIFT = const boot::regs::ctr_el0::DMINLINE_SHIFT,
    PAGE_SIZE = const mm::PAGE_SIZE,
    PAGE_MASK = const !(mm::PAGE_SIZE - 1),
    PAGE_OFFSET_MASK = const mm::PAGE_SIZE - 1,
    IND_DESTINATION_BIT = const kimage::IND_DESTINATION.trailing_zeros(),
    IND_INDIRECTION_BIT = const kimage::IND_INDIRECTION.trailing_zeros(),
    IND_DONE_BIT = const kimage::IND_DONE.trailing_zeros(),
    IND_SOURCE_BIT = const kimage::IND_SOURCE.trailing_zeros(),
    SCTLR_EL1_MMU_OFF = const boot::regs::sctlr_el1::MMU_OFF,
    HVC_SOFT_RESTART = const boot::regs::hvc::SOFT_RESTART,
    VECTORS_OFFSET = const reloc::VECTORS_OFFSET,
    MPIDR_AFFINITY_MASK = const boot::regs::MPIDR_AFFINITY_MASK,
    MPIDRS = const pen::MPIDRS,
    MAILBOXES = const pen::MAILBOXES,
    ARRIVED = const pen::ARRIVED,
    SLOTS = const pen::SLOTS,
);
