//! Memory management for the kernel, written so that everything but the register writes runs
//! on the host too (`cargo test -p mm`).
//!
//! - [`addr`]: [`addr::PhysAddr`] and [`addr::VirtAddr`], kept apart by the compiler.
//! - [`layout`]: the virtual address layout (linear map, kernel image, device window).
//! - [`region`]: [`region::Region`], a physical address range.
//! - [`memmap`]: the physical memory map, read from the DTB (`/memory`, `/memreserve/`,
//!   `/reserved-memory`) plus what the kernel itself occupies.
//! - [`paging`]: 4 KiB-granule, 4-level stage-1 page tables, built with the largest blocks that
//!   fit, over any [`paging::TableAlloc`] — real frames in the kernel, simulated memory in tests.
//! - [`frame`]: the physical frame allocator (a buddy allocator) with usage counters.
//! - [`transition`]: kexec's transitional tables: the linear-map copier and the one-page
//!   identity map.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod addr;
pub mod frame;
pub mod layout;
pub mod memmap;
pub mod paging;
pub mod region;
pub mod transition;
pub mod uefi;

/// Size of a page and of a translation table.
pub const PAGE_SIZE: u64 = 4096;

/// Rounds `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Rounds `x` up to a multiple of `align` (a power of two). Saturates at the top of the
/// address space instead of wrapping.
pub const fn align_up(x: u64, align: u64) -> u64 {
    match x.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => !(align - 1),
    }
}
