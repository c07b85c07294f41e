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
