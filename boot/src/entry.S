/*
 * entry.S: the arm64 Image header and the boot CPU's path from the boot loader to Rust.
 *
 * Register contract at `primary_entry` (Linux Documentation/arch/arm64/booting.rst):
 *   in:  x0 = physical address of the DTB, x1..x3 = 0
 *        MMU off, D-cache off, DAIF masked, at EL2 or EL1, non-secure
 *        the image at any 4 KiB-aligned physical address (the boot protocol asks for 2 MiB:
 *        firmware that loads at 0x80000 breaks it), cleaned to the PoC
 *   out: `kernel_main(x0 = DTB PA, x1 = entry EL, x2 = CNTPCT at entry, x3 = image PA)`
 *        at EL1, at the linked virtual address, MMU and caches on, BSS zeroed,
 *        SP = SP_EL0 = boot stack, SP_EL1 = exception stack, VBAR_EL1 = kernel vectors,
 *        .data as loaded saved at __data_pristine.
 *        kernel_main never returns.
 *
 * Registers live across this file (never clobbered by the helpers below):
 *   x19 = DTB PA          x20 = CNTPCT at entry     x21 = entry EL (1 or 2)
 *   x22 = PA of _text     x23 = PA of the early tables
 *
 * No Rust runs until the MMU is on. The early tables (in the image, after BSS) are:
 *   page 0: all-zero table (TTBR0/TTBR1 break-before-make)
 *   pages 1-3: identity map L0/L1/L2: one 2 MiB block around .idmap.text, read-only exec
 *   pages 4-6: kernel map L0/L1/L2: the DTB as up to two 2 MiB read-only blocks at
 *              EARLY_FDT_VADDR, and
 *   pages 7-:  kernel map L3 tables: the image as 4 KiB RWX pages at KIMAGE_VADDR.
 * The kernel replaces the TTBR1 tables with its own W^X tables as soon as it can.
 */

    /* TTBR0 := \ttbr0, TTBR1 := \ttbr1 (registers), then drop every stale EL1 translation. */
    .macro install_ttbrs, ttbr0, ttbr1
    msr     ttbr0_el1, \ttbr0
    msr     ttbr1_el1, \ttbr1
    isb
    tlbi_local_el1
    .endm

    /* Write table entry: [\table + \index * 8] = \value. */
    .macro set_entry, table, index, value
    str     \value, [\table, \index, lsl #3]
    .endm

    .section .head.text, "ax"
    .global _head
_head:
    /*
     * code0 is an instruction that does nothing harmful and whose first two bytes are "MZ":
     * the Image is also a PE/COFF file (an EFI application), as Linux's is.
     */
    ccmp    x18, #0, #0xd, pl       // code0: 0xfa405a4d, "MZ@\xfa"
    b       primary_entry           // code1: branch to the entry
    .quad   0                       // text_offset
    .quad   __image_size            // image_size: everything up to _end, BSS and tables too
    .quad   {IMAGE_FLAGS}           // flags: LE, 4K pages, anywhere
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .long   {IMAGE_MAGIC}           // magic "ARM\x64"
    .long   pe_header - _head       // res5: offset of the PE header (at 0x3c, as in MS-DOS)

/*
 * The PE/COFF header (Microsoft PE format; Linux arch/arm64/kernel/efi-header.S has the same
 * shape): one section that covers the file from 0x1000 on, at RVA = file offset, so the
 * loaded image is the Image byte for byte, and SizeOfImage covers BSS, stacks and tables.
 * No base relocations: the EFI stub is position independent (kernel/src/efistub.rs), and
 * firmware may load the image at any 4 KiB-aligned address.
 */
    .balign 8
pe_header:
    .ascii  "PE\0\0"
    .short  {PE_MACHINE_ARM64}      // Machine
    .short  1                       // NumberOfSections
    .long   0                       // TimeDateStamp
    .long   0                       // PointerToSymbolTable
    .long   0                       // NumberOfSymbols
    .short  section_table - optional_header // SizeOfOptionalHeader
    .short  {PE_CHARACTERISTICS}    // Characteristics
optional_header:
    .short  {PE_OPT_MAGIC_PE32PLUS} // Magic: PE32+
    .byte   0, 0                    // linker version
    .long   __pe_raw_size           // SizeOfCode
    .long   0                       // SizeOfInitializedData
    .long   0                       // SizeOfUninitializedData
    .long   __pe_entry              // AddressOfEntryPoint (RVA of efi_pe_entry)
    .long   __pe_text_rva           // BaseOfCode
    .global pe_image_base
pe_image_base:                      // (firmware writes the load address here: efistub.rs)
    .quad   0                       // ImageBase
    .long   {PE_SECTION_ALIGN}      // SectionAlignment
    .long   {PE_FILE_ALIGN}         // FileAlignment
    .short  0, 0                    // OS version
    .short  0, 0                    // image version
    .short  0, 0                    // subsystem version
    .long   0                       // Win32VersionValue
    .long   __pe_image_size         // SizeOfImage
    .long   __pe_text_rva           // SizeOfHeaders: everything before the section
    .long   0                       // CheckSum
    .short  {PE_SUBSYSTEM_EFI_APP}  // Subsystem
    .short  0                       // DllCharacteristics
    .quad   0, 0, 0, 0              // stack and heap reserve and commit
    .long   0                       // LoaderFlags
    .long   (section_table - data_directories) / 8 // NumberOfRvaAndSizes
data_directories:
    .quad   0, 0, 0, 0, 0, 0        // export, import, resource, exception, security, basereloc
section_table:
    .ascii  ".text\0\0\0"           // Name
    .long   __pe_virtual_size       // VirtualSize
    .long   __pe_text_rva           // VirtualAddress
    .long   __pe_raw_size           // SizeOfRawData
    .long   __pe_text_rva           // PointerToRawData
    .long   0, 0                    // relocations, line numbers
    .short  0, 0                    // their counts
    .long   {PE_SECTION_FLAGS}      // Characteristics

/*
 * The boot code lives in .text, not after the headers: a PE loader need not copy more of
 * the header page than the headers themselves (U-Boot copies only those), and the loaded
 * image must still be the Image byte for byte.
 */
    .section .text.boot, "ax"

primary_entry:
    mov     x19, x0
    adr     x24, el1_setup          // where el2_setup drops to EL1
    isb
    mrs     x20, cntpct_el0
    adrp    x22, _head
    mrs     x21, CurrentEL
    lsr     x21, x21, #2
    cmp     x21, #2
    b.eq    el2_setup
    cmp     x21, #1
    b.eq    el1_setup
    /* Entered at EL3 (or worse): not a boot this kernel supports. */
1:  wfe
    b       1b

/*
 * EL2: write every EL2 control register in full, install the stub vectors, drop to EL1.
 */
el2_setup:
    /* HCR_EL2 first: it may arrive with E2H set from a VHE kernel before us. */
    mov_q   x0, {HCR_EL2_INIT}
    msr     hcr_el2, x0
    isb
    mov_q   x0, {SCTLR_EL2_INIT}
    msr     sctlr_el2, x0
    isb
    /* EL1's MMU off before the ERET: a CPU parked by a previous kernel (or that kernel
     * itself, through a stub) may arrive with the old EL1 translation regime still on. */
    mov_q   x0, {SCTLR_EL1_MMU_OFF}
    msr     sctlr_el1, x0
    mov     x0, #{CNTHCTL_EL2_INIT}
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    msr     cnthp_ctl_el2, xzr      // EL2 physical timer off
    mov_q   x0, {CPTR_EL2_INIT}
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    msr     vttbr_el2, xzr
    mov_q   x0, {VTCR_EL2_INIT}
    msr     vtcr_el2, x0
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    msr     tpidr_el2, xzr

    /* MDCR_EL2: no debug traps; HPMN = PMCR_EL0.N so EL1 sees every PMU counter. */
    mov     x0, xzr
    mrs     x1, id_aa64dfr0_el1
    ubfx    x1, x1, #{ID_PMUVER}, #{ID_WIDTH}
    cbz     x1, 2f
    cmp     x1, #{ID_PMUVER_IMPDEF}  // IMPLEMENTATION DEFINED PMU: leave HPMN = 0
    b.eq    2f
    mrs     x0, pmcr_el0
    ubfx    x0, x0, #{ID_PMCR_N}, #{ID_PMCR_N_WIDTH}
2:  msr     mdcr_el2, x0

    /* GICv3 system registers, if present: let EL1 use them; no virtual interrupts. */
    mrs     x1, id_aa64pfr0_el1
    ubfx    x1, x1, #{ID_GIC}, #{ID_WIDTH}
    cbz     x1, 3f
    mov     x0, #{ICC_SRE_EL2_INIT}
    msr     S3_4_C12_C9_5, x0       // ICC_SRE_EL2
    isb
    msr     S3_4_C12_C11_0, xzr     // ICH_HCR_EL2
3:
    /* FEAT_FGT: no fine-grained traps. */
    mrs     x1, id_aa64mmfr0_el1
    ubfx    x1, x1, #{ID_FGT}, #{ID_WIDTH}
    cbz     x1, 4f
    msr     S3_4_C1_C1_4, xzr       // HFGRTR_EL2
    msr     S3_4_C1_C1_5, xzr       // HFGWTR_EL2
    msr     S3_4_C1_C1_6, xzr       // HFGITR_EL2
    msr     S3_4_C3_C1_4, xzr       // HDFGRTR_EL2
    msr     S3_4_C3_C1_5, xzr       // HDFGWTR_EL2
4:
    /* FEAT_HCX: no extended controls. */
    mrs     x1, id_aa64mmfr1_el1
    ubfx    x1, x1, #{ID_HCX}, #{ID_WIDTH}
    cbz     x1, 5f
    msr     S3_4_C1_C2_2, xzr       // HCRX_EL2
5:
    adrp    x0, el2_stub_vectors
    add     x0, x0, :lo12:el2_stub_vectors
    msr     vbar_el2, x0
    mov     x0, #{SPSR_EL2_EL1H}
    msr     spsr_el2, x0
    msr     elr_el2, x24            // el1_setup, or secondary_el1 for a secondary CPU
    eret

/*
 * EL1, MMU off: known system state, early tables, MMU on.
 */
    .macro el1_regs_init
    msr     daifset, #0xf
    /* Until the kernel's vectors are in place, any exception parks at a known slot of
     * park_vectors (identity-mapped, so also once the MMU is on), instead of jumping
     * through whatever VBAR_EL1 the previous owner of this CPU left. */
    adr     x0, park_vectors
    msr     vbar_el1, x0
    isb
    mov_q   x0, {SCTLR_EL1_MMU_OFF}
    msr     sctlr_el1, x0
    isb
    mov_q   x0, {CPACR_EL1_INIT}
    msr     cpacr_el1, x0
    msr     mdscr_el1, xzr
    msr     cntkctl_el1, xzr
    msr     cntv_ctl_el0, xzr       // virtual and physical timers stopped
    msr     cntp_ctl_el0, xzr
    isb
    .endm

    /* MAIR and TCR (IPS from the CPU's PARange, at most 48 bits). Clobbers x0-x2. */
    .macro mair_tcr_init
    mov_q   x0, {MAIR_EL1_INIT}
    msr     mair_el1, x0
    mrs     x1, id_aa64mmfr0_el1
    ubfx    x1, x1, #{ID_PARANGE}, #{ID_WIDTH}
    cmp     x1, #{TCR_IPS_MAX}
    mov     x2, #{TCR_IPS_MAX}
    csel    x1, x1, x2, ls
    mov_q   x0, {TCR_EL1_INIT}
    bfi     x0, x1, #{TCR_IPS_SHIFT}, #3
    msr     tcr_el1, x0
    .endm

el1_setup:
    el1_regs_init

    /*
     * Invalidate the early tables to the PoC before writing them with the MMU off: a dirty
     * line that whoever used this memory before left in a cache, evicted later, would
     * overwrite what is written here (Linux's head.S does the same).
     */
    adrp    x23, __early_tables
    mov     x0, x23
    adrp    x1, __early_tables_end
    .global early_tables_inval      // (the cache model's negative control finds it here)
early_tables_inval:
    bl      dcache_inval_poc

    /* Zero the early tables (non-cacheable writes: the MMU is off). */
    mov     x0, x23
    adrp    x1, __early_tables_end
6:  stp     xzr, xzr, [x0], #16
    cmp     x0, x1
    b.lo    6b

    /* Identity map: one 2 MiB block around .idmap.text. */
    adrp    x3, __idmap_text_start
    add     x4, x23, #1 * 4096      // L0
    add     x5, x23, #2 * 4096      // L1
    add     x6, x23, #3 * 4096      // L2
    orr     x7, x5, #{DESC_TABLE}
    ubfx    x8, x3, #{TT_L0}, #{TT_INDEX_BITS}
    set_entry x4, x8, x7
    orr     x7, x6, #{DESC_TABLE}
    ubfx    x8, x3, #{TT_L1}, #{TT_INDEX_BITS}
    set_entry x5, x8, x7
    and     x7, x3, #~({BLOCK_2M} - 1)
    mov_q   x9, {IDMAP_BLOCK_ATTRS}
    orr     x7, x7, x9
    ubfx    x8, x3, #{TT_L2}, #{TT_INDEX_BITS}
    set_entry x6, x8, x7

    /*
     * Kernel map: the image as 4 KiB pages at its link address (2 MiB aligned), so that any
     * 4 KiB-aligned load address works: one L3 table (page 7 on) per 2 MiB of image.
     */
    ldr     x3, =_head              // link-time VA
    add     x4, x23, #4 * 4096      // L0
    add     x5, x23, #5 * 4096      // L1
    add     x6, x23, #6 * 4096      // L2
    orr     x7, x5, #{DESC_TABLE}
    ubfx    x8, x3, #{TT_L0}, #{TT_INDEX_BITS}
    set_entry x4, x8, x7
    orr     x7, x6, #{DESC_TABLE}
    ubfx    x8, x3, #{TT_L1}, #{TT_INDEX_BITS}
    set_entry x5, x8, x7
    ubfx    x8, x3, #{TT_L2}, #{TT_INDEX_BITS}         // first L2 index
    add     x9, x23, #7 * 4096      // first L3 table
    ldr     x10, =__image_size
    add     x10, x10, #{PAGE_SIZE} - 1
    lsr     x10, x10, #{TT_L3}      // pages of image
    add     x11, x10, #(1 << {TT_INDEX_BITS}) - 1
    lsr     x11, x11, #{TT_INDEX_BITS} // L3 tables
    mov     x12, x9
7:  orr     x7, x12, #{DESC_TABLE}
    set_entry x6, x8, x7
    add     x12, x12, #{PAGE_SIZE}
    add     x8, x8, #1
    subs    x11, x11, #1
    b.ne    7b
    mov_q   x7, {KERNEL_PAGE_ATTRS}
    orr     x7, x7, x22
    mov     x8, xzr
15: set_entry x9, x8, x7            // the L3 tables are contiguous: one array of pages
    add     x7, x7, #{PAGE_SIZE}
    add     x8, x8, #1
    cmp     x8, x10
    b.lo    15b

    /* The DTB: blocks covering [x19, x19 + totalsize), totalsize capped at 2 MiB. */
    cbz     x19, 9f
    tst     x19, #7
    b.ne    9f
    ldr     w10, [x19, #4]          // fdt_header.totalsize, big-endian
    rev     w10, w10
    mov     x11, #{BLOCK_2M}
    cmp     x10, x11
    csel    x10, x10, x11, lo
    add     x10, x19, x10
    sub     x10, x10, #1
    lsr     x10, x10, #{TT_L2}      // last 2 MiB block number
    lsr     x11, x19, #{TT_L2}      // first 2 MiB block number
    ldr     x3, =__early_fdt_vaddr
    ubfx    x8, x3, #{TT_L2}, #{TT_INDEX_BITS}
    mov_q   x9, {FDT_BLOCK_ATTRS}
8:  orr     x7, x9, x11, lsl #{TT_L2}
    set_entry x6, x8, x7
    add     x8, x8, #1
    add     x11, x11, #1
    cmp     x11, x10
    b.ls    8b
9:
    /* Drop any stale cache lines over the tables we just wrote with the MMU off. */
    mov     x0, x23
    adrp    x1, __early_tables_end
    bl      dcache_inval_poc

    /* MAIR, TCR, TTBRs. */
    mair_tcr_init
    add     x0, x23, #1 * 4096
    add     x1, x23, #4 * 4096
    install_ttbrs x0, x1

    mov_q   x0, {SCTLR_EL1_MMU_ON}
    ldr     x1, =primary_switched
    b       enable_mmu

/*
 * A secondary CPU, started by PSCI CPU_ON (or a spin-table release) at its physical address.
 *   in:  x0 = physical address of its boot block (struct SecondaryBoot in kernel/src/smp.rs):
 *          +0  TTBR1 (the kernel's tables)   +8  SP_EL0 top   +16  SP_EL1 top (exceptions)
 *          +24 CPU index
 *        cleaned to the PoC by the boot CPU. MMU off, at EL2 or EL1.
 *   out: secondary_main(x0 = the block's linear-map VA, x1 = entry EL) at EL1, MMU on,
 *        on its own stacks, TTBR0 walks off. Never returns.
 * Uses the boot CPU's early identity map (still in the image) to turn the MMU on.
 */
    .global secondary_entry
secondary_entry:
    mov     x19, x0
    mrs     x21, CurrentEL
    lsr     x21, x21, #2
    adr     x24, secondary_el1
    cmp     x21, #2
    b.eq    el2_setup
    cmp     x21, #1
    b.eq    secondary_el1
1:  wfe
    b       1b

/*
 * A secondary CPU released from a spin table (x0..x3 = 0): finds its boot block in
 * spin_boot_blocks by MPIDR, then goes on as secondary_entry. MMU off: PC-relative only.
 */
    .global secondary_spin_entry
secondary_spin_entry:
    mpidr_affinity x1, x3, {MPIDR_AFFINITY_MASK}
    adrp    x2, spin_boot_blocks
    add     x2, x2, :lo12:spin_boot_blocks
    find_slot x2, x1, {SPIN_SLOTS}, 16, x3, x4, 4f  // x2 := its (MPIDR, boot block PA)
    ldr     x0, [x2, #8]
    cbz     x0, 4f
    b       secondary_entry
4:  wfe                             // not ours to start: stay out of the way
    b       4b

secondary_el1:
    el1_regs_init
    mair_tcr_init
    adrp    x23, __early_tables
    add     x0, x23, #1 * 4096      // the early identity map
    ldr     x1, [x19, #{BOOT_TTBR1}] // the kernel's own tables
    install_ttbrs x0, x1
    mov_q   x0, {SCTLR_EL1_MMU_ON}
    ldr     x1, =secondary_switched
    b       enable_mmu

/* Invalidate [x0, x1) to the PoC by D-cache line. Clobbers x0, x2, x3. */
dcache_inval_poc:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #{CTR_DMINLINE}, #{ID_WIDTH} // DminLine: log2(words per line)
    mov     x2, #4
    lsl     x2, x2, x3              // line size in bytes
    sub     x3, x2, #1
    bic     x0, x0, x3
10: dc      ivac, x0
    add     x0, x0, x2
    cmp     x0, x1
    b.lo    10b
    dsb     sy
    ret
    .ltorg

/*
 * Runs from the identity map: turn the MMU on and jump to the virtual address in x1.
 * x0 = SCTLR_EL1 value.
 */
    .section .idmap.text, "ax"
/*
 * The parking vectors: all 16 slots branch to themselves, so an exception before the
 * kernel's vectors are installed stops at VBAR_EL1 + 0x80 * slot (`info registers` in QEMU's
 * monitor, or a debugger, shows which). First in .idmap.text, which is 2 KiB aligned and
 * identity-mapped once the MMU is on.
 */
    .balign 2048
park_vectors:
    .rept   16
    .balign 0x80
    b       .
    .endr
    .org    park_vectors + 16 * 0x80

enable_mmu:
    msr     sctlr_el1, x0
    isb
    ic      iallu                   // drop instructions fetched with the MMU off
    dsb     nsh
    isb
    br      x1

/*
 * Switch TTBR1_EL1 to x0 with break-before-make, running from the identity map (the
 * caller branches here by physical address). Returns to x30 (a virtual address that the
 * new tables must map as the old ones did). Clobbers x1.
 */
    .global idmap_replace_ttbr1
idmap_replace_ttbr1:
    adrp    x1, __early_tables      // page 0: the all-zero table
    ttbr1_bbm x1, x0
    ret

/*
 * At the linked virtual address: stacks, vectors, BSS, then Rust.
 */
    .text
primary_switched:
    ldr     x0, =vectors_el1
    msr     vbar_el1, x0
    ldr     x0, =__exception_stack_top
    msr     tpidr_el1, x0           // the exception vectors reset SP_EL1 from here
    mov     sp, x0                  // SP_EL1: exception stack
    ldr     x0, =__boot_stack_top
    msr     spsel, #0               // run on SP_EL0 from here on
    mov     sp, x0
    ldr     x0, =__bss_start
    ldr     x1, =__bss_end
11: stp     xzr, xzr, [x0], #16
    cmp     x0, x1
    b.lo    11b
    /* Save .data as loaded (kexec rebuilds the pristine Image from it). */
    ldr     x0, =_sdata
    ldr     x1, =_edata
    ldr     x2, =__data_pristine
13: cmp     x0, x1
    b.hs    14f
    ldrb    w3, [x0], #1
    strb    w3, [x2], #1
    b       13b
14:
    mov     x0, x19
    mov     x1, x21
    mov     x2, x20
    mov     x3, x22
    mov     x29, xzr                // end of the frame-record chain
    mov     x30, xzr
    bl      kernel_main
12: wfe
    b       12b

    .section .bss.spin_boot_blocks, "aw", %nobits
    .balign 64
    .global spin_boot_blocks
spin_boot_blocks:
    .space  {SPIN_SLOTS} * 16
    .text

secondary_switched:
    ldr     x0, =vectors_el1
    msr     vbar_el1, x0
    mov_q   x1, {LINEAR_BASE}
    add     x19, x19, x1            // the boot block through the linear map
    ldr     x0, [x19, #{BOOT_SP1}]
    msr     tpidr_el1, x0           // the exception vectors reset SP_EL1 from here
    mov     sp, x0                  // SP_EL1
    ldr     x0, [x19, #{BOOT_SP0}]
    msr     spsel, #0
    mov     sp, x0                  // SP_EL0
    /* TTBR0 is no longer needed: turn its walks off as on the boot CPU. */
    mrs     x0, tcr_el1
    orr     x0, x0, #{TCR_EPD0}
    msr     tcr_el1, x0
    isb
    tlbi_local_el1
    mov     x0, x19
    mov     x1, x21
    mov     x29, xzr
    mov     x30, xzr
    bl      secondary_main
13: wfe
    b       13b
    .ltorg
