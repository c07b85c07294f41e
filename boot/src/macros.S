/*
 * Assembler macros shared by the kernel's .S files (prepended to each global_asm! block that
 * uses them: boot's entry.S, kexec's relocate.S and pen.S).
 */

    /* \reg := the 64-bit constant \val, in four moves (no literal pool). */
    .macro mov_q, reg, val
    movz    \reg, #(((\val) >> 48) & 0xffff), lsl #48
    movk    \reg, #(((\val) >> 32) & 0xffff), lsl #32
    movk    \reg, #(((\val) >> 16) & 0xffff), lsl #16
    movk    \reg, #((\val) & 0xffff)
    .endm

    /* Drop every EL1 translation this CPU holds, and wait until it is done (after its
     * TTBRs, TCR or tables changed). */
    .macro tlbi_local_el1
    tlbi    vmalle1
    dsb     nsh
    isb
    .endm

    /* TTBR1_EL1 := \new with break-before-make: first \zero (an all-zero table) and a TLB
     * flush, so that no old and new translation of one VA ever coexist. */
    .macro ttbr1_bbm, zero, new
    msr     ttbr1_el1, \zero
    isb
    tlbi_local_el1
    msr     ttbr1_el1, \new
    isb
    .endm

    /* \reg := this CPU's MPIDR affinity (MPIDR_EL1 & \mask, the DTB's CPU `reg`).
     * Clobbers \tmp. */
    .macro mpidr_affinity, reg, tmp, mask
    mrs     \reg, mpidr_el1
    mov_q   \tmp, \mask
    and     \reg, \reg, \tmp
    .endm
