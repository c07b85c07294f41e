//! The relocation page (`relocate.S`) as the loader sees it: its argument block, its size and
//! the offset of its vector table. The assembly's register contract is at the top of the file.

use core::mem::offset_of;
use zerocopy::{Immutable, IntoBytes};

/// Where the vector table sits inside the relocation page. `.org` in the assembly and an
/// `ASSERT` in `boot/kernel.ld` fail the build if the code grows into it or the page
/// overflows 4 KiB.
pub const VECTORS_OFFSET: u64 = 0x800;

/// The argument block the relocation page reads (all of it) before copying anything: written
/// into its control page as it is laid out here (`as_bytes`), and read by the assembly at
/// the offsets checked below.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, IntoBytes, Immutable)]
pub struct Args {
    /// First kimage entry.
    pub head: u64,
    /// Physical entry point of the next image.
    pub entry: u64,
    /// Physical address of the next DTB.
    pub dtb: u64,
    /// Root of the linear-map copy (for TTBR1).
    pub ttbr1: u64,
    /// An all-zero table, for break-before-make on TTBR1.
    pub zero: u64,
    /// Linear-map VA minus PA.
    pub offset: u64,
    /// Non-zero: enter the next image at EL2 through `HVC_SOFT_RESTART`.
    pub el2: u64,
    /// Non-zero: copy with the MMU off.
    pub mmu_off: u64,
    /// Physical address of two `u64` that receive the counter at the start and end of the
    /// copy, or 0.
    pub stamp: u64,
}

const _: () = {
    assert!(offset_of!(Args, head) == 0x00);
    assert!(offset_of!(Args, entry) == 0x08);
    assert!(offset_of!(Args, dtb) == 0x10);
    assert!(offset_of!(Args, ttbr1) == 0x18);
    assert!(offset_of!(Args, zero) == 0x20);
    assert!(offset_of!(Args, offset) == 0x28);
    assert!(offset_of!(Args, el2) == 0x30);
    assert!(offset_of!(Args, mmu_off) == 0x38);
    assert!(offset_of!(Args, stamp) == 0x40);
};

/// The relocation page as linked into the kernel image.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn code() -> &'static [u8] {
    unsafe extern "C" {
        static kexec_relocate: u8;
        static kexec_relocate_end: u8;
    }
    // SAFETY: both symbols delimit `.kexec_relocate.text` in the (read-only, executable)
    // kernel text, which is mapped for the kernel's lifetime.
    unsafe {
        let start = &raw const kexec_relocate;
        let end = &raw const kexec_relocate_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}
