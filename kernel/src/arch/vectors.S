/*
 * vectors.S: the kernel's EL1 exception vector table.
 *
 * The kernel runs on SP_EL0, so its own faults arrive in the "current EL with SP0" slots and
 * are handled on SP_EL1 (the exception stack). A fault while already on SP_EL1 (inside the
 * handler, or an exception-stack overflow into its guard page) arrives in the "current EL
 * with SPx" slots: those reset SP to the top of the exception stack first, since nothing on
 * it will be returned to.
 *
 * Every slot builds a TrapFrame (exceptions.rs) and calls
 *   handle_exception(x0 = &mut TrapFrame, x1 = slot number 0..15)
 * and restores the frame and ERETs if it returns.
 *
 * TrapFrame layout (bytes): x0..x30 at 0..248, sp at 248, elr 256, spsr 264, esr 272,
 * far 280, q0..q31 at 288..800, fpsr 800, fpcr 808; 816 in all. The SIMD registers are
 * saved because the kernel's Rust code (handlers included) is built with NEON and uses
 * them freely, and so do the memory and SHA-256 routines an interrupt may land in.
 */
    .equ FRAME_SIZE, 816
    .equ FRAME_Q0, 288
    .equ FRAME_FPSR, 800

    .macro slot_sp0, n
    .org vectors_el1 + \n * 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mrs     x0, sp_el0
    mov     x1, #\n
    b       save_rest
    .endm

    .macro slot_spx, n
    .org vectors_el1 + \n * 0x80
    msr     tpidrro_el0, x0         // scratch: the frame below records x0 from here
    mrs     x0, tpidr_el1           // this CPU's exception stack top
    sub     x0, x0, #FRAME_SIZE
    mov     sp, x0
    mrs     x0, tpidrro_el0
    stp     x0, x1, [sp, #0]
    mov     x0, xzr                 // the interrupted SP is lost
    mov     x1, #\n
    b       save_rest
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global vectors_el1
vectors_el1:
    slot_sp0 0
    slot_sp0 1
    slot_sp0 2
    slot_sp0 3
    slot_spx 4
    slot_spx 5
    slot_spx 6
    slot_spx 7
    slot_sp0 8
    slot_sp0 9
    slot_sp0 10
    slot_sp0 11
    slot_sp0 12
    slot_sp0 13
    slot_sp0 14
    slot_sp0 15
    .org vectors_el1 + 0x800
    .ltorg

/* x0 = interrupted SP, x1 = slot; x0/x1 of the interrupted context are in the frame. */
save_rest:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el1
    stp     x30, x0, [sp, #240]
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #256]
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #272]
    add     x2, sp, #FRAME_Q0
    stp     q0, q1, [x2, #0]
    stp     q2, q3, [x2, #32]
    stp     q4, q5, [x2, #64]
    stp     q6, q7, [x2, #96]
    stp     q8, q9, [x2, #128]
    stp     q10, q11, [x2, #160]
    stp     q12, q13, [x2, #192]
    stp     q14, q15, [x2, #224]
    stp     q16, q17, [x2, #256]
    stp     q18, q19, [x2, #288]
    stp     q20, q21, [x2, #320]
    stp     q22, q23, [x2, #352]
    stp     q24, q25, [x2, #384]
    stp     q26, q27, [x2, #416]
    stp     q28, q29, [x2, #448]
    stp     q30, q31, [x2, #480]
    mrs     x2, fpsr
    mrs     x3, fpcr
    str     x2, [sp, #FRAME_FPSR]
    str     x3, [sp, #FRAME_FPSR + 8]
    mov     x0, sp
    bl      handle_exception
    ldr     x2, [sp, #FRAME_FPSR]
    ldr     x3, [sp, #FRAME_FPSR + 8]
    msr     fpsr, x2
    msr     fpcr, x3
    add     x2, sp, #FRAME_Q0
    ldp     q0, q1, [x2, #0]
    ldp     q2, q3, [x2, #32]
    ldp     q4, q5, [x2, #64]
    ldp     q6, q7, [x2, #96]
    ldp     q8, q9, [x2, #128]
    ldp     q10, q11, [x2, #160]
    ldp     q12, q13, [x2, #192]
    ldp     q14, q15, [x2, #224]
    ldp     q16, q17, [x2, #256]
    ldp     q18, q19, [x2, #288]
    ldp     q20, q21, [x2, #320]
    ldp     q22, q23, [x2, #352]
    ldp     q24, q25, [x2, #384]
    ldp     q26, q27, [x2, #416]
    ldp     q28, q29, [x2, #448]
    ldp     q30, q31, [x2, #480]
    ldp     x2, x3, [sp, #256]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #FRAME_SIZE
    eret
