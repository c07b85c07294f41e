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

    /* A CPU's slot in a table of \count entries of \stride bytes starting at \table, each
     * starting with an MPIDR: \idx := the first i whose MPIDR equals \key, and \table
     * then points at that entry; no such entry: branch to \missing. Clobbers \tmp. */
    .macro find_slot, table, key, count, stride, idx, tmp, missing
    mov     \idx, #0
.Lfind_slot\@:
    ldr     \tmp, [\table]
    cmp     \tmp, \key
    b.eq    .Lfound_slot\@
    add     \table, \table, #\stride
    add     \idx, \idx, #1
    cmp     \idx, #\count
    b.lo    .Lfind_slot\@
    b       \missing
.Lfound_slot\@:
    .endm
