/*
 * The kexec relocation page: copies the next image into place and enters it.
 *
 * Copied at load time into a control page (one that overlaps no destination), whose
 * physical address is also its virtual address in a one-page identity map in TTBR0.
 *
 * Entry:  EL1, MMU and caches on, DAIF masked, TTBR0 = the one-page identity map,
 *         TTBR1 = the kernel's own tables (linear map + image), PC = this page's PA.
 *   x0    linear-map VA of the argument block (a control page; see kexec::reloc::Args):
 *         +0x00 head     first kimage entry       +0x08 entry    PA of the next image
 *         +0x10 dtb      PA of the next DTB       +0x18 ttbr1    PA of the linear-map copy
 *         +0x20 zero     PA of an all-zero table  +0x28 offset   linear VA - PA
 *         +0x30 el2      !0: enter at EL2 through HVC_SOFT_RESTART (VBAR_EL2 already at a
 *                        copy of the stub vectors)
 *         +0x38 mmu_off  !0: copy with the MMU off, as Linux did before 5.16
 *         +0x40 stamp    PA of two u64 that receive CNTPCT at the start and at the end of
 *                        the copy (0: none); must lie in a destination page or control page
 * Exit:   the next image at its entry, MMU off, x0 = DTB, x1 = x2 = x3 = 0; at EL2 if el2.
 *         Never returns.
 *
 * Registers: x19-x27 the arguments; x28 start stamp; x10 D-cache line size; x11 line mask;
 *            x13 destination cursor (PA); x14 list pointer (VA); x15 VA - PA while copying;
 *            x16 current entry; x1-x8 copy data; x9, x12, x17 scratch. No stack is used.
 *
 * The page ends with a complete 16-slot vector table at offset 0x800 (VBAR_EL1 points there
 * from the first instructions): every slot branches to itself, so an exception during the
 * relocation parks at reloc_vectors + 0x80 * slot and the PC alone says which one.
 */
    .section .kexec_relocate.text, "ax"
    .balign 4096
    .global kexec_relocate
kexec_relocate:
    adr     x9, kexec_reloc_vectors
    msr     vbar_el1, x9
    isb

    /* Read every argument before anything is copied: the block may be overwritten. */
    ldp     x19, x20, [x0, #0x00]           /* head, entry */
    ldp     x21, x22, [x0, #0x10]           /* dtb, ttbr1 */
    ldp     x23, x24, [x0, #0x20]           /* zero, offset */
    ldp     x25, x26, [x0, #0x30]           /* el2, mmu_off */
    ldr     x27, [x0, #0x40]                /* stamp */
    isb
    mrs     x28, cntpct_el0

    /* D-cache line size: 4 << CTR_EL0.DminLine bytes. */
    mrs     x9, ctr_el0
    ubfx    x9, x9, #{CTR_DMINLINE_SHIFT}, #4
    mov     x10, #4
    lsl     x10, x10, x9
    sub     x11, x10, #1

    cbnz    x26, .Lmmu_off

    /* Break-before-make: TTBR1 to the zero table, flush, then to the linear-map copy. */
    ttbr1_bbm x23, x22
    mov     x15, x24
    b       .Lwalk

.Lmmu_off:
    /* Running from the identity map, so the PC stays valid with the MMU off. */
    mov_q x9, {SCTLR_EL1_MMU_OFF}
    msr     sctlr_el1, x9
    isb
    mov     x15, #0

.Lwalk:
    mov     x16, x19
    mov     x14, #0
    mov     x13, #0
.Lnext_entry:
    and     x12, x16, #{PAGE_MASK}
    tbnz    x16, #{IND_DONE_BIT}, .Ldone
    tbz     x16, #{IND_SOURCE_BIT}, .Lnot_source

    add     x12, x12, x15                   /* source VA */
    add     x17, x13, x15                   /* destination VA */
    cbz     x26, .Lcopy
    /* MMU off: write back and drop any stale line of the destination before the
     * uncached stores, so that no later eviction overwrites them. */
    mov     x9, x17
1:  dc      civac, x9
    add     x9, x9, x10
    tst     x9, #{PAGE_OFFSET_MASK}
    b.ne    1b
    dsb     sy
.Lcopy:
    mov     x9, #{PAGE_SIZE}
2:  ldp     x1, x2, [x12], #16
    ldp     x3, x4, [x12], #16
    ldp     x5, x6, [x12], #16
    ldp     x7, x8, [x12], #16
    stp     x1, x2, [x17], #16
    stp     x3, x4, [x17], #16
    stp     x5, x6, [x17], #16
    stp     x7, x8, [x17], #16
    subs    x9, x9, #64
    b.ne    2b
    cbnz    x26, .Lcopied
    /* MMU on: clean and invalidate the destination page to the PoC. */
    sub     x9, x17, #{PAGE_SIZE}
3:  dc      civac, x9
    add     x9, x9, x10
    cmp     x9, x17
    b.lo    3b
    dsb     sy
.Lcopied:
    add     x13, x13, #{PAGE_SIZE}
    b       .Lload_next

.Lnot_source:
    tbz     x16, #{IND_INDIRECTION_BIT}, 4f
    add     x14, x12, x15                   /* the list continues here */
4:  tbz     x16, #{IND_DESTINATION_BIT}, .Lload_next
    mov     x13, x12
.Lload_next:
    ldr     x16, [x14], #8
    b       .Lnext_entry

.Ldone:
    dsb     sy
    isb
    mrs     x9, cntpct_el0
    cbz     x27, 5f
    add     x12, x27, x15
    stp     x28, x9, [x12]
    dc      civac, x12
    dsb     sy
5:  ic      iallu
    dsb     nsh
    isb

    /* MMU and caches off (a no-op write if they already are). */
    isb
    mov_q x9, {SCTLR_EL1_MMU_OFF}
    msr     sctlr_el1, x9
    isb

    cbz     x25, .Lbranch
    mov     x0, #{HVC_SOFT_RESTART}
    mov     x1, x20
    mov     x2, x21
    mov     x3, xzr
    mov     x4, xzr
    hvc     #0
    b       .                               /* the stub does not return */
.Lbranch:
    mov     x0, x21
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x20

    .org    {VECTORS_OFFSET}
    .global kexec_reloc_vectors
kexec_reloc_vectors:
    .rept   16
    .balign 0x80
    b       .
    .endr
    .org    {VECTORS_OFFSET} + 16 * 0x80
    .global kexec_relocate_end
kexec_relocate_end:
