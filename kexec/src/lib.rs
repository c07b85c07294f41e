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
