//! Boots the kernel in QEMU and checks what it prints.
//!
//! The Image comes from `$KERNEL_IMAGE` (set by `scripts/test.sh`) or from the last line of
//! `scripts/build.sh`. Every test builds its own initramfs with the kernel's own cpio writer,
//! usually with an `/init.rc` that ends in `poweroff`, so QEMU exits by itself with status 0.
//!
//! One test binary (`cargo test -p kernel --test qemu`), one module per area; the harness
//! (`harness.rs`) and every module's helpers are visible to all through `crate::*`.

mod basics;
mod boards;
mod cache_model;
mod crash;
mod disks;
mod harness;
mod image_code;
mod interrupts;
mod kexec;
mod linux;
mod memory;
mod rpi4_firmware;
mod uefi;
mod unanswering_cpu;
mod verified;

#[allow(unused_imports)]
pub(crate) use basics::*;
#[allow(unused_imports)]
pub(crate) use boards::*;
#[allow(unused_imports)]
pub(crate) use cache_model::*;
#[allow(unused_imports)]
pub(crate) use crash::*;
#[allow(unused_imports)]
pub(crate) use disks::*;
#[allow(unused_imports)]
pub(crate) use harness::*;
#[allow(unused_imports)]
pub(crate) use image_code::*;
#[allow(unused_imports)]
pub(crate) use interrupts::*;
#[allow(unused_imports)]
pub(crate) use kexec::*;
#[allow(unused_imports)]
pub(crate) use linux::*;
#[allow(unused_imports)]
pub(crate) use memory::*;
#[allow(unused_imports)]
pub(crate) use rpi4_firmware::*;
#[allow(unused_imports)]
pub(crate) use uefi::*;
#[allow(unused_imports)]
pub(crate) use unanswering_cpu::*;
#[allow(unused_imports)]
pub(crate) use verified::*;
