//! kexec: loading a new kernel image and handing the machine over to it.
//!
//! - [`image`]: the arm64 Image header, checked before anything is allocated.
//! - [`kimage`]: the entry list in Linux's format and the safe-page rules behind it.
//! - [`place`]: where segments may go in the next kernel's memory.
//!
//! Everything here is host-testable; the relocation page itself (`relocate.S`) and the jump
//! live in the kernel binary, which links it.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod image;
pub mod kimage;
pub mod place;
