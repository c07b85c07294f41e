//! The kernel's virtual address layout (48-bit VAs, 4 KiB granule).
//!
//! ```text
//! 0x0000_0000_0000_0000 ┐ TTBR0: only the boot identity map (and kexec's one-page idmap);
//!                       ┘ walks disabled (TCR.EPD0) once the kernel runs.
//! 0xffff_0000_0000_0000 ┐ linear map: VA = PA + LINEAR_BASE, all RAM but `no-map` ranges
//! 0xffff_7fff_ffff_ffff ┘ (128 TiB of PA space)
//! 0xffff_8000_0000_0000 ┐ kernel image, as linked (W^X, guard pages under the stacks)
//!   + 512 MiB           │ early DTB window (boot only)
//! 0xffff_8000_4000_0000 ┘ device window: MMIO mapped on demand, Device-nGnRnE
//! 0xffff_8000_8000_0000   stack window: secondary CPUs' stacks, each above an unmapped guard
//! ```

use crate::addr::{PhysAddr, VirtAddr};

/// Base of the linear map: `VA = PA + LINEAR_BASE`.
pub const LINEAR_BASE: u64 = 0xffff_0000_0000_0000;
/// Size of the linear map's VA range; RAM above this PA cannot be mapped.
pub const LINEAR_SIZE: u64 = 1 << 47;
/// Where the kernel image is linked (must match `boot/kernel.ld`).
pub const KIMAGE_VADDR: u64 = 0xffff_8000_0000_0000;
/// Largest kernel image the early tables can map (one level-2 table of 2 MiB blocks,
/// below the early DTB window).
pub const KIMAGE_MAX_SIZE: u64 = 512 << 20;
/// Where the boot code maps the DTB before the kernel's own tables exist.
pub const EARLY_FDT_VADDR: u64 = KIMAGE_VADDR + KIMAGE_MAX_SIZE;
/// Windows of two 2 MiB blocks each, after the DTB's, where the kernel maps what it must read
/// before its own tables exist (the UEFI memory map, the EFI system table).
pub const EARLY_WINDOWS_VADDR: u64 = EARLY_FDT_VADDR + (4 << 20);
/// How many early windows there are (they share the boot code's last-level table).
pub const EARLY_WINDOWS: usize = 3;
/// Start of the window where device registers are mapped.
pub const DEVICE_BASE: u64 = KIMAGE_VADDR + (1 << 30);
/// Size of the device window.
pub const DEVICE_SIZE: u64 = 1 << 30;
/// Start of the window where secondary CPUs' stacks are mapped, each above a guard page.
pub const STACKS_BASE: u64 = DEVICE_BASE + DEVICE_SIZE;
/// Size of the stack window.
pub const STACKS_SIZE: u64 = 1 << 30;

/// The physical address of `va`, an address in the kernel image as linked, when the image
/// was loaded at `image_pa`: the one place that turns image addresses into physical ones.
pub const fn kimage_pa(va: VirtAddr, image_pa: PhysAddr) -> PhysAddr {
    PhysAddr(va.0 - KIMAGE_VADDR + image_pa.0)
}

/// The linear-map address of a physical address.
pub const fn phys_to_virt(pa: PhysAddr) -> VirtAddr {
    VirtAddr(pa.0 + LINEAR_BASE)
}

/// The physical address behind a linear-map address.
pub const fn virt_to_phys(va: VirtAddr) -> PhysAddr {
    PhysAddr(va.0 - LINEAR_BASE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_image_addresses_follow_the_load_address() {
        // Loaded at 0x80000 (any 4 KiB-aligned address): the header is there, and an address
        // 1 MiB into the image is 1 MiB above it.
        let at = |pa| PhysAddr(pa);
        assert_eq!(
            kimage_pa(VirtAddr(KIMAGE_VADDR), at(0x8_0000)),
            at(0x8_0000)
        );
        assert_eq!(
            kimage_pa(VirtAddr(KIMAGE_VADDR + (1 << 20)), at(0x4020_0000)),
            at(0x4030_0000)
        );
        let pa = at(0x4020_0000);
        assert_eq!(virt_to_phys(phys_to_virt(pa)), pa);
        assert_eq!(pa.to_virt(), VirtAddr(0xffff_0000_4020_0000));
    }
}
