/*
 * hyp_stub.S: the EL2 stub vector table, with Linux's hypercall ABI (asm/virt.h).
 *
 * Installed in VBAR_EL2 (by physical address; the EL2 MMU stays off) when the kernel is
 * entered at EL2. It is position independent and self-contained in its 2 KiB so that kexec
 * can copy it into a control page.
 *
 * Contract, for HVC #0 from EL1 (slot "lower EL, AArch64, synchronous" at +0x400):
 *   x0 = HVC_SET_VECTORS:   VBAR_EL2 := x1.                              Returns x0 = 0.
 *   x0 = HVC_SOFT_RESTART:  branch at EL2, MMU off, DAIF masked, to x1 with
 *                           x0 := x2, x1 := x3, x2 := x4, x3 := 0.       Does not return.
 *   x0 = HVC_RESET_VECTORS: nothing to reset.                            Returns x0 = 0.
 *   anything else:                                                       Returns x0 = HVC_STUB_ERR.
 * Every register but x0 is preserved on return (TPIDR_EL2 is the scratch).
 *
 * Every other slot, and a synchronous exception that is not an HVC, parks on a branch to
 * itself: the PC alone (VBAR_EL2 + slot offset) tells which exception it was.
 */

    .section .text.hyp_stub, "ax"
    .balign 2048
    .global el2_stub_vectors
el2_stub_vectors:
    /* Current EL with SP_EL0 */
    .org el2_stub_vectors + 0x000
    b       .                       // synchronous
    .org el2_stub_vectors + 0x080
    b       .                       // IRQ
    .org el2_stub_vectors + 0x100
    b       .                       // FIQ
    .org el2_stub_vectors + 0x180
    b       .                       // SError

    /* Current EL with SP_ELx: EL2 runs no code of its own, so any of these is a bug. */
    .org el2_stub_vectors + 0x200
    b       .                       // synchronous
    .org el2_stub_vectors + 0x280
    b       .                       // IRQ
    .org el2_stub_vectors + 0x300
    b       .                       // FIQ
    .org el2_stub_vectors + 0x380
    b       .                       // SError

    /* Lower EL using AArch64 */
    .org el2_stub_vectors + 0x400
    msr     tpidr_el2, x9
    mrs     x9, esr_el2
    ubfx    x9, x9, #{ESR_EC_SHIFT}, #6
    cmp     x9, #{ESR_EC_HVC64}
    mrs     x9, tpidr_el2
    b.ne    .                       // not an HVC: park here (+0x414)
    cbnz    x0, 1f
    msr     vbar_el2, x1            // HVC_SET_VECTORS (x0 is already 0)
    eret
1:  cmp     x0, #{HVC_SOFT_RESTART}
    b.ne    2f
    mov     x9, x1
    mov     x0, x2
    mov     x1, x3
    mov     x2, x4
    mov     x3, xzr
    br      x9
2:  cmp     x0, #{HVC_RESET_VECTORS}
    b.ne    3f
    mov     x0, xzr
    eret
3:  movz    x0, #({HVC_STUB_ERR} & 0xffff)
    movk    x0, #({HVC_STUB_ERR} >> 16), lsl #16
    eret
    .org el2_stub_vectors + 0x480
    b       .                       // IRQ
    .org el2_stub_vectors + 0x500
    b       .                       // FIQ
    .org el2_stub_vectors + 0x580
    b       .                       // SError

    /* Lower EL using AArch32: never used. */
    .org el2_stub_vectors + 0x600
    b       .
    .org el2_stub_vectors + 0x680
    b       .
    .org el2_stub_vectors + 0x700
    b       .
    .org el2_stub_vectors + 0x780
    b       .
    .org el2_stub_vectors + 0x800
    .global el2_stub_vectors_end
el2_stub_vectors_end:
