//! The kernel's logic that needs no CPU: parsers and state machines, unit-tested on the host.
//!
//! The binary (`main.rs`) adds the thin layer that touches registers and devices. Everything
//! here is plain `no_std` + `alloc` Rust:
//!
//! - [`formats`]: what the kernel parses and writes (command line, cpio, gzip, DTB, UEFI
//!   tables, vmcore, SHA-256 padding, the chain hand-over block, partitions, boot entries,
//!   the fail-safe's boot record);
//! - [`platform`]: what the DTB says about the board (console, CPUs, GIC, PSCI, disks, ...);
//! - [`storage`]: disks, volumes and their file systems (FAT, ext2/3/4);
//! - [`entropy`]: the pool and generator behind the next kernel's seeds;
//! - [`lineedit`]: the shell's line editor.
//!
//! The binary's own folders: `arch/` (registers, vectors, the GIC, assembly), `drivers/`
//! (console, watchdog), `kexec/` (the command, the chain self-test, crash kexec), `shell/`
//! (the shell and its `memcheck`); `memory.rs`, `smp.rs`, `irq.rs`, `files.rs`,
//! `efistub.rs` and `fault.rs` at the top.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod entropy;
pub mod formats;
pub mod lineedit;
pub mod platform;
pub mod storage;
pub mod trust;
