/*
 * fault.S: test builds only (`--features fault-inject`): faults a board can raise and QEMU
 * cannot, made on purpose.
 *
 * serror_at_el2: reached at EL2 through the stub's HVC_SOFT_RESTART (MMU off, by physical
 * address, position independent).
 *   in:  ELR_EL2/SPSR_EL2 still hold the EL1 caller's HVC return state (the stub's soft
 *        restart path does not touch them).
 *   out: HCR_EL2.AMO and .VSE set: a virtual SError is pending for EL1, taken as soon as
 *        the caller, back at EL1, has PSTATE.A clear. Returns to the HVC's caller.
 *        Clobbers x9.
 */
    .section .text.fault, "ax"
    .global serror_at_el2
    .balign 4
serror_at_el2:
    mrs     x9, hcr_el2
    orr     x9, x9, #{HCR_AMO}
    orr     x9, x9, #{HCR_VSE}
    msr     hcr_el2, x9
    isb
    eret
