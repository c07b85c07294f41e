//! Boot: from the boot loader's jump to `kernel_main`, in assembly.
//!
//! - `entry.S`: the 64-byte arm64 Image header; EL2 set-up (every EL2 control register
//!   written in full) and the drop to EL1; the early page tables (identity map of
//!   `.idmap.text`, the image at its link address, the DTB); MMU on; stacks, BSS, Rust.
//! - `hyp_stub.S`: the EL2 stub vectors (`HVC_SET_VECTORS`, `HVC_SOFT_RESTART` with Linux's
//!   numbers and register conventions; every other slot parks).
//! - `kernel.ld`: the image layout the two rely on.
//!
//! The values written to system registers are Rust constants with named bits ([`regs`]),
//! passed to the assembly as `const` operands. The Rust side of the contract is
//! `kernel_main(dtb_pa, entry_el, entry_ticks, image_pa)`, defined by the kernel binary.
#![no_std]

pub mod regs;

use mm::paging::{desc, Attrs, MemAttr};

/// Attributes of the early 4 KiB pages that map the whole image (text, data and BSS
/// together, so read-write-execute) until the kernel installs its own W^X tables. Pages, not
/// 2 MiB blocks: the image may be loaded at any 4 KiB-aligned address.
pub const KERNEL_PAGE_ATTRS: u64 = desc::AF
    | desc::SH_INNER
    | ((MemAttr::Normal as u64) << desc::ATTR_INDX_SHIFT)
    | desc::UXN
    | desc::TABLE_OR_PAGE
    | desc::VALID;

/// Attributes of the early DTB blocks: read-only, never executed.
pub const FDT_BLOCK_ATTRS: u64 = Attrs::RODATA.bits() | desc::VALID;
/// Attributes of the identity-mapped block around `.idmap.text`: read-only, executable.
pub const IDMAP_BLOCK_ATTRS: u64 = Attrs::TEXT.bits() | desc::VALID;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(
    concat!(include_str!("macros.S"), include_str!("entry.S")),
    IMAGE_FLAGS = const regs::image::FLAGS,
    IMAGE_MAGIC = const regs::image::MAGIC,
    HCR_EL2_INIT = const regs::hcr_el2::INIT,
    SCTLR_EL2_INIT = const regs::sctlr_el2::INIT,
    CNTHCTL_EL2_INIT = const regs::cnthctl_el2::INIT,
    CPTR_EL2_INIT = const regs::cptr_el2::INIT,
    VTCR_EL2_INIT = const regs::vtcr_el2::INIT,
    ICC_SRE_EL2_INIT = const regs::icc_sre_el2::INIT,
    SPSR_EL2_EL1H = const regs::spsr_el2::EL1H_MASKED,
    SCTLR_EL1_MMU_OFF = const regs::sctlr_el1::MMU_OFF,
    SCTLR_EL1_MMU_ON = const regs::sctlr_el1::MMU_ON,
    CPACR_EL1_INIT = const regs::cpacr_el1::INIT,
    MAIR_EL1_INIT = const regs::mair_el1::INIT,
    TCR_EL1_INIT = const regs::tcr_el1::INIT,
    TCR_IPS_SHIFT = const regs::tcr_el1::IPS_SHIFT,
    TCR_IPS_MAX = const regs::tcr_el1::IPS_MAX,
    DESC_TABLE = const desc::TABLE_OR_PAGE | desc::VALID,
    BLOCK_2M = const mm::paging::L2_BLOCK,
    KERNEL_PAGE_ATTRS = const KERNEL_PAGE_ATTRS,
    PAGE_SIZE = const mm::PAGE_SIZE,
    ID_PMUVER = const regs::id::DFR0_PMUVER_SHIFT,
    ID_PMUVER_IMPDEF = const regs::id::PMUVER_IMPDEF,
    ID_PMCR_N = const regs::id::PMCR_N_SHIFT,
    ID_PMCR_N_WIDTH = const regs::id::PMCR_N_WIDTH,
    ID_GIC = const regs::id::PFR0_GIC_SHIFT,
    ID_FGT = const regs::id::MMFR0_FGT_SHIFT,
    ID_PARANGE = const regs::id::MMFR0_PARANGE_SHIFT,
    ID_HCX = const regs::id::MMFR1_HCX_SHIFT,
    ID_WIDTH = const regs::id::FIELD_WIDTH,
    TT_L0 = const regs::tt::L0_SHIFT,
    TT_L1 = const regs::tt::L1_SHIFT,
    TT_L2 = const regs::tt::L2_SHIFT,
    TT_L3 = const regs::tt::L3_SHIFT,
    TT_INDEX_BITS = const regs::tt::INDEX_BITS,
    CTR_DMINLINE = const regs::ctr_el0::DMINLINE_SHIFT,
    FDT_BLOCK_ATTRS = const FDT_BLOCK_ATTRS,
    IDMAP_BLOCK_ATTRS = const IDMAP_BLOCK_ATTRS,
    LINEAR_BASE = const mm::layout::LINEAR_BASE,
    TCR_EPD0 = const regs::tcr_el1::EPD0,
    MPIDR_AFFINITY_MASK = const regs::MPIDR_AFFINITY_MASK,
    SPIN_SLOTS = const SPIN_SLOTS,
    BOOT_TTBR1 = const secondary_boot::TTBR1,
    BOOT_SP0 = const secondary_boot::SP0,
    BOOT_SP1 = const secondary_boot::SP1,
    PE_MACHINE_ARM64 = const regs::pe::MACHINE_ARM64,
    PE_CHARACTERISTICS = const regs::pe::CHARACTERISTICS,
    PE_OPT_MAGIC_PE32PLUS = const regs::pe::OPT_MAGIC_PE32PLUS,
    PE_SECTION_ALIGN = const regs::pe::SECTION_ALIGN,
    PE_FILE_ALIGN = const regs::pe::FILE_ALIGN,
    PE_SUBSYSTEM_EFI_APP = const regs::pe::SUBSYSTEM_EFI_APP,
    PE_SECTION_FLAGS = const regs::pe::SECTION_FLAGS,
);

/// The boot block a secondary CPU is handed (x0 at `secondary_entry`): the offsets
/// `entry.S` reads. The kernel's `SecondaryBoot` checks its layout against them.
pub mod secondary_boot {
    /// `TTBR1_EL1`: the kernel's tables.
    pub const TTBR1: usize = 0;
    /// The top of its `SP_EL0` stack.
    pub const SP0: usize = 8;
    /// The top of its `SP_EL1` (exception) stack.
    pub const SP1: usize = 16;
}

/// Entries in `spin_boot_blocks`: CPUs that can be released from a spin table.
pub const SPIN_SLOTS: usize = 16;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(
    include_str!("hyp_stub.S"),
    ESR_EC_SHIFT = const regs::esr::EC_SHIFT,
    ESR_EC_HVC64 = const regs::esr::EC_HVC64,
    HVC_SOFT_RESTART = const regs::hvc::SOFT_RESTART,
    HVC_RESET_VECTORS = const regs::hvc::RESET_VECTORS,
    HVC_STUB_ERR = const regs::hvc::STUB_ERR,
);

/// Symbols the linker script and the assembly define.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod symbols {
    unsafe extern "C" {
        /// Start of the image (the header).
        pub static _text: u8;
        /// End of kernel text.
        pub static _etext: u8;
        /// End of read-only data.
        pub static _erodata: u8;
        /// Start of `.data`.
        pub static _sdata: u8;
        /// End of the Image file's contents.
        pub static _edata: u8;
        /// `.data` as it was loaded, saved by the boot code before any Rust ran.
        pub static __data_pristine: u8;
        /// Start of BSS.
        pub static __bss_start: u8;
        /// Guard page under the boot stack.
        pub static __boot_stack_guard: u8;
        /// Bottom of the boot stack.
        pub static __boot_stack_bottom: u8;
        /// Top of the boot stack.
        pub static __boot_stack_top: u8;
        /// Guard page under the exception stack.
        pub static __exception_stack_guard: u8;
        /// Bottom of the exception stack.
        pub static __exception_stack_bottom: u8;
        /// Top of the exception stack.
        pub static __exception_stack_top: u8;
        /// The early tables (page 0 is the all-zero table).
        pub static __early_tables: u8;
        /// End of the early tables.
        pub static __early_tables_end: u8;
        /// End of the image, everything included.
        pub static _end: u8;
        /// The PE/COFF optional header's `ImageBase` field (0 in the file; a PE loader may
        /// write the load address there).
        pub static pe_image_base: u64;
        /// The EL2 stub vectors (2 KiB, position independent).
        pub static el2_stub_vectors: u8;
        /// Start of `.idmap.text`.
        pub static __idmap_text_start: u8;
        /// Where a secondary CPU starts (physical address; see entry.S for its contract).
        pub static secondary_entry: u8;
        /// Where a spin-table CPU is released to (physical address).
        pub static secondary_spin_entry: u8;
        /// `SPIN_SLOTS` pairs of (MPIDR, boot block PA) for `secondary_spin_entry`.
        pub static mut spin_boot_blocks: [[u64; 2]; super::SPIN_SLOTS];
    }
    /// The image's size in memory (the header's `image_size`: BSS, heap, stacks and early
    /// tables included).
    pub fn image_size() -> u64 {
        (&raw const _end) as u64 - (&raw const _text) as u64
    }
    /// The Image file's length (`_edata - _text`): what a copy needs; the rest is BSS.
    pub fn file_size() -> u64 {
        (&raw const _edata) as u64 - (&raw const _text) as u64
    }
    /// The physical address of `sym` (anything in the image) when the image was loaded at
    /// `image_pa`.
    pub fn pa_of<T>(sym: *const T, image_pa: u64) -> u64 {
        mm::layout::kimage_pa(mm::addr::VirtAddr(sym as u64), mm::addr::PhysAddr(image_pa)).get()
    }
    unsafe extern "C" {
        /// Switches `TTBR1_EL1` to `ttbr1` with break-before-make. Must be called at its
        /// identity-mapped (physical) address.
        pub fn idmap_replace_ttbr1(ttbr1: u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_attrs_are_sane() {
        // The image blocks are RWX only until the kernel's own tables replace them;
        // the DTB is never writable or executable.
        assert_eq!(FDT_BLOCK_ATTRS & desc::AP_RO, desc::AP_RO);
        assert_ne!(FDT_BLOCK_ATTRS & desc::PXN, 0);
        assert_eq!(IDMAP_BLOCK_ATTRS & desc::PXN, 0);
        assert_eq!(KERNEL_PAGE_ATTRS & 0b11, 0b11, "a level-3 page descriptor");
        assert_eq!(regs::image::FLAGS, 0b1010);
        assert_eq!(&regs::image::MAGIC.to_le_bytes(), b"ARM\x64");
    }
}
