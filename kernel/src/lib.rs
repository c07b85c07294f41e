//! The kernel's logic that needs no CPU: parsers and state machines, unit-tested on the host.
//!
//! The binary (`main.rs`) adds the thin layer that touches registers and devices. Everything
//! here is plain `no_std` + `alloc` Rust.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod chain;
pub mod cmdline;
pub mod cpio;
pub mod dtb;
pub mod efi;
pub mod gicv3;
pub mod gzip;
pub mod lineedit;
pub mod platform;
pub mod sha256;
pub mod vmcore;
