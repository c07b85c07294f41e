//! The values the boot code writes into system registers, bit by bit.
//!
//! Every register the entry path touches is written *whole*: after a kexec it holds the
//! previous kernel's value, not its reset value (see the brief, §5.7). Each constant is built
//! from named fields so that a reader can check it against the Arm ARM without decoding hex.

/// `HCR_EL2`: EL1 is AArch64 (`RW`); no traps, no stage 2, `E2H` = 0 (nVHE), `TGE` = 0.
pub mod hcr_el2 {
    /// Execution state for EL1 is AArch64.
    pub const RW: u64 = 1 << 31;
    /// SErrors route to EL2 (and virtual SErrors reach EL1).
    pub const AMO: u64 = 1 << 5;
    /// A virtual SError is pending for EL1 (with `AMO`).
    pub const VSE: u64 = 1 << 8;
    /// The value written on entry at EL2.
    pub const INIT: u64 = RW;
}

/// `SCTLR_EL2` with the MMU and caches off: only the RES1 bits of the non-VHE layout.
pub mod sctlr_el2 {
    /// Bits 29:28, 23:22, 18, 16, 11, 5:4 are RES1 when `HCR_EL2.E2H` = 0.
    pub const RES1: u64 =
        (0b11 << 28) | (0b11 << 22) | (1 << 18) | (1 << 16) | (1 << 11) | (0b11 << 4);
    /// The value written on entry at EL2: MMU, caches and alignment checks off, little-endian.
    pub const INIT: u64 = RES1;
}

/// `SCTLR_EL1`.
pub mod sctlr_el1 {
    /// MMU enable for EL1&0 stage 1.
    pub const M: u64 = 1 << 0;
    /// Alignment check enable.
    pub const A: u64 = 1 << 1;
    /// Data and unified caches enable.
    pub const C: u64 = 1 << 2;
    /// Stack alignment check at EL1.
    pub const SA: u64 = 1 << 3;
    /// Stack alignment check at EL0.
    pub const SA0: u64 = 1 << 4;
    /// Exception exit is context synchronizing (RES1 before FEAT_ExS).
    pub const EOS: u64 = 1 << 11;
    /// Instruction cache enable.
    pub const I: u64 = 1 << 12;
    /// Trap EL0 access to SCXTNUM_EL0 disabled (RES1 before FEAT_CSV2_2).
    pub const TSCXT: u64 = 1 << 20;
    /// Exception entry is context synchronizing (RES1 before FEAT_ExS).
    pub const EIS: u64 = 1 << 22;
    /// PSTATE.PAN is left unchanged on exception entry (RES1 before FEAT_PAN).
    pub const SPAN: u64 = 1 << 23;
    /// No trap of LD/ST multiple to Device memory (RES1 before FEAT_LSMAOC).
    pub const NTLSMD: u64 = 1 << 28;
    /// Ordering of LD/ST multiple (RES1 before FEAT_LSMAOC).
    pub const LSMAOE: u64 = 1 << 29;
    /// The bits that are RES1 on ARMv8.0 and that later features define with this same meaning.
    pub const RES1: u64 = EOS | TSCXT | EIS | SPAN | NTLSMD | LSMAOE;
    /// MMU and caches off, little-endian: written on every entry before anything else.
    pub const MMU_OFF: u64 = RES1;
    /// MMU, caches and stack alignment checks on.
    pub const MMU_ON: u64 = RES1 | M | C | SA | SA0 | I;
}

/// `CNTHCTL_EL2` (`E2H` = 0 layout): EL1 may read the physical counter and use the physical
/// timer; every FEAT_ECV control (`ECV`, `EL1TVT`, `EL1TVCT`, ...) is 0.
pub mod cnthctl_el2 {
    /// EL1/EL0 accesses to the physical counter are not trapped.
    pub const EL1PCTEN: u64 = 1 << 0;
    /// EL1/EL0 accesses to the physical timer are not trapped.
    pub const EL1PCEN: u64 = 1 << 1;
    /// The value written on entry at EL2.
    pub const INIT: u64 = EL1PCTEN | EL1PCEN;
}

/// `CPTR_EL2` (`E2H` = 0 layout): FP/SIMD not trapped; SVE and SME trapped (not used).
pub mod cptr_el2 {
    /// RES1 bits: 13, 9, 7:0.
    pub const RES1: u64 = (1 << 13) | (1 << 9) | 0xff;
    /// Trap SVE (RES1 without FEAT_SVE).
    pub const TZ: u64 = 1 << 8;
    /// Trap SME (RES1 without FEAT_SME).
    pub const TSM: u64 = 1 << 12;
    /// The value written on entry at EL2: `TFP` (bit 10) = 0, `TTA`, `TAM`, `TCPAC` = 0.
    pub const INIT: u64 = RES1 | TZ | TSM;
}

/// `VTCR_EL2`: stage 2 is off (`HCR_EL2.VM` = 0); only the RES1 bit is set.
pub mod vtcr_el2 {
    /// Bit 31 is RES1.
    pub const INIT: u64 = 1 << 31;
}

/// `ICC_SRE_EL2`, written only when the GICv3 system-register interface exists.
pub mod icc_sre_el2 {
    /// System register interface enable at EL2.
    pub const SRE: u64 = 1 << 0;
    /// EL1 may use ICC_SRE_EL1.
    pub const ENABLE: u64 = 1 << 3;
    /// The value written on entry at EL2.
    pub const INIT: u64 = SRE | ENABLE;
}

/// `SPSR_EL2` for the drop to EL1.
pub mod spsr_el2 {
    /// Mode EL1h: EL1 using SP_EL1.
    pub const M_EL1H: u64 = 0b0101;
    /// D, A, I, F masked.
    pub const DAIF: u64 = 0b1111 << 6;
    /// Enter EL1h with every interrupt masked.
    pub const EL1H_MASKED: u64 = M_EL1H | DAIF;
}

/// `CPACR_EL1`: FP/SIMD is not trapped at EL1 (Rust code uses NEON registers).
pub mod cpacr_el1 {
    /// `FPEN` = 0b11: no trapping of FP/SIMD at EL1 and EL0.
    pub const FPEN: u64 = 0b11 << 20;
    /// The value written on entry.
    pub const INIT: u64 = FPEN;
}

/// `MAIR_EL1`: memory attribute indices used by every page table of this kernel.
pub mod mair_el1 {
    use mm::paging::MemAttr;
    /// Device-nGnRnE.
    pub const DEVICE_NGNRNE: u64 = 0x00;
    /// Normal, inner and outer write-back, read/write-allocate, non-transient.
    pub const NORMAL_WB: u64 = 0xff;
    /// Normal, inner and outer non-cacheable.
    pub const NORMAL_NC: u64 = 0x44;
    /// The register value: attribute *i* in byte *i*, indexed by [`MemAttr`].
    pub const INIT: u64 = (DEVICE_NGNRNE << (8 * MemAttr::Device as u64))
        | (NORMAL_WB << (8 * MemAttr::Normal as u64))
        | (NORMAL_NC << (8 * MemAttr::NormalNonCacheable as u64));
}

/// `TCR_EL1`: 4 KiB granule, 48-bit VAs in both halves, cacheable inner-shareable walks.
/// `IPS` is filled in at run time from `ID_AA64MMFR0_EL1.PARange`.
pub mod tcr_el1 {
    /// Size offset of the TTBR0 region: 64 − 48 = 16.
    pub const T0SZ: u64 = 16;
    /// Size offset of the TTBR1 region.
    pub const T1SZ: u64 = 16 << 16;
    /// TTBR0 walks: inner write-back write-allocate.
    pub const IRGN0_WBWA: u64 = 0b01 << 8;
    /// TTBR0 walks: outer write-back write-allocate.
    pub const ORGN0_WBWA: u64 = 0b01 << 10;
    /// TTBR0 walks: inner shareable.
    pub const SH0_INNER: u64 = 0b11 << 12;
    /// TTBR0 granule 4 KiB.
    pub const TG0_4K: u64 = 0b00 << 14;
    /// TTBR1 walks: inner write-back write-allocate.
    pub const IRGN1_WBWA: u64 = 0b01 << 24;
    /// TTBR1 walks: outer write-back write-allocate.
    pub const ORGN1_WBWA: u64 = 0b01 << 26;
    /// TTBR1 walks: inner shareable.
    pub const SH1_INNER: u64 = 0b11 << 28;
    /// TTBR1 granule 4 KiB.
    pub const TG1_4K: u64 = 0b10 << 30;
    /// Shift of the intermediate physical address size field.
    pub const IPS_SHIFT: u64 = 32;
    /// Largest `IPS` encoding this kernel uses: 48 bits.
    pub const IPS_MAX: u64 = 0b101;
    /// Disable walks through TTBR0 (set once boot no longer needs the identity map).
    pub const EPD0: u64 = 1 << 7;
    /// Everything but `IPS`.
    pub const INIT: u64 = T0SZ
        | T1SZ
        | IRGN0_WBWA
        | ORGN0_WBWA
        | SH0_INNER
        | TG0_4K
        | IRGN1_WBWA
        | ORGN1_WBWA
        | SH1_INNER
        | TG1_4K;
}

/// The Linux arm64 Image header's fields (`Documentation/arch/arm64/booting.rst`).
pub mod image {
    /// `magic` at offset 0x38: "ARM\x64".
    pub const MAGIC: u32 = 0x644d_5241;
    /// `flags` bit 0: 0 = little-endian kernel.
    pub const FLAG_LE: u64 = 0;
    /// `flags` bits 2:1 = 1: 4 KiB pages.
    pub const FLAG_PAGE_4K: u64 = 1 << 1;
    /// `flags` bit 3: the image may be placed anywhere in physical memory.
    pub const FLAG_PLACE_ANYWHERE: u64 = 1 << 3;
    /// The flags of this kernel's Image.
    pub const FLAGS: u64 = FLAG_LE | FLAG_PAGE_4K | FLAG_PLACE_ANYWHERE;
}

/// The EL2 stub's hypercall numbers, with Linux's values (`arch/arm64/include/asm/virt.h`).
pub mod hvc {
    /// x1 = new `VBAR_EL2`.
    pub const SET_VECTORS: u64 = 0;
    /// Branch at EL2 to x1 with x0..x2 = the caller's x2..x4 (and x3 = 0).
    pub const SOFT_RESTART: u64 = 1;
    /// No-op in the stub (KVM uses it).
    pub const RESET_VECTORS: u64 = 2;
    /// Returned in x0 for any other call.
    pub const STUB_ERR: u64 = 0xbad_ca11;
}

/// Exception classes the EL2 stub checks.
pub mod esr {
    /// `ESR_ELx.EC` shift.
    pub const EC_SHIFT: u64 = 26;
    /// HVC from AArch64.
    pub const EC_HVC64: u64 = 0x16;
}

/// `MPIDR_EL1` affinity fields Aff3 (39:32) and Aff2..Aff0 (23:0): what a DTB's CPU `reg` holds.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// ID-register fields the EL2 set-up reads (each 4 bits unless said).
pub mod id {
    /// `ID_AA64DFR0_EL1.PMUVer`: 0 none, 0xf IMPLEMENTATION DEFINED.
    pub const DFR0_PMUVER_SHIFT: u64 = 8;
    /// `PMUVer` = IMPLEMENTATION DEFINED: not the architected PMU.
    pub const PMUVER_IMPDEF: u64 = 0xf;
    /// `PMCR_EL0.N` (5 bits): the event counters implemented.
    pub const PMCR_N_SHIFT: u64 = 11;
    /// Width of `PMCR_EL0.N`.
    pub const PMCR_N_WIDTH: u64 = 5;
    /// `ID_AA64PFR0_EL1.GIC`: the GICv3 system-register interface.
    pub const PFR0_GIC_SHIFT: u64 = 24;
    /// `ID_AA64MMFR0_EL1.FGT`: fine-grained traps.
    pub const MMFR0_FGT_SHIFT: u64 = 56;
    /// `ID_AA64MMFR0_EL1.PARange`: the physical address size.
    pub const MMFR0_PARANGE_SHIFT: u64 = 0;
    /// `ID_AA64MMFR1_EL1.HCX`: `HCRX_EL2`.
    pub const MMFR1_HCX_SHIFT: u64 = 40;
    /// Width of the 4-bit ID fields.
    pub const FIELD_WIDTH: u64 = 4;
}

/// Translation-table indices (4 KiB granule, 48-bit VAs): bits 47:39 index level 0, 38:30
/// level 1, 29:21 level 2, 20:12 level 3; 9 bits each.
pub mod tt {
    /// The lowest bit of the level-0 index.
    pub const L0_SHIFT: u64 = 39;
    /// Level 1.
    pub const L1_SHIFT: u64 = 30;
    /// Level 2 (also log2 of a 2 MiB block).
    pub const L2_SHIFT: u64 = 21;
    /// Level 3 (also log2 of a 4 KiB page).
    pub const L3_SHIFT: u64 = 12;
    /// Bits per index (512 entries a table).
    pub const INDEX_BITS: u64 = 9;
}

/// `CTR_EL0`: cache type.
pub mod ctr_el0 {
    /// `DminLine` (bits 19:16): log2 of the smallest D-cache line, in 4-byte words.
    pub const DMINLINE_SHIFT: u64 = 16;
    /// Width of `DminLine`.
    pub const DMINLINE_MASK: u64 = 0xf;
}

/// PE/COFF header fields (Microsoft PE format specification) for the Image's EFI side.
pub mod pe {
    /// `IMAGE_FILE_MACHINE_ARM64`.
    pub const MACHINE_ARM64: u16 = 0xaa64;
    /// `IMAGE_FILE_EXECUTABLE_IMAGE | IMAGE_FILE_LINE_NUMS_STRIPPED | IMAGE_FILE_DEBUG_STRIPPED`.
    pub const CHARACTERISTICS: u16 = 0x0002 | 0x0004 | 0x0200;
    /// Optional header magic of PE32+.
    pub const OPT_MAGIC_PE32PLUS: u16 = 0x20b;
    /// Sections are loaded at 4 KiB-aligned RVAs; the file is in 512-byte units.
    pub const SECTION_ALIGN: u32 = 0x1000;
    /// See [`SECTION_ALIGN`].
    pub const FILE_ALIGN: u32 = 0x200;
    /// `IMAGE_SUBSYSTEM_EFI_APPLICATION`.
    pub const SUBSYSTEM_EFI_APP: u16 = 10;
    /// `IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_WRITE`.
    pub const SECTION_FLAGS: u32 = 0x0000_0020 | 0x2000_0000 | 0x4000_0000 | 0x8000_0000;
}
