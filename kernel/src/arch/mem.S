/*
 * mem.S: memcpy, memmove, memset and memcmp for the kernel, at the machine's rate.
 *
 * compiler_builtins' versions (weak symbols, which these replace) are built for
 * aarch64-unknown-none's strict alignment, so they move a byte at a time when the pointers
 * are not aligned alike. These follow the shape of Arm's optimized-routines (its Advanced
 * SIMD memcpy): 64 bytes per loop iteration as two ldp/stp of q registers, heads and tails
 * done with overlapping 16-byte x-register accesses instead of byte loops. They rely on
 * unaligned accesses to Normal memory, so they are for the kernel with its MMU on (and the
 * EFI stub, in the firmware's identity map; UEFI leaves FP/SIMD enabled): everything Rust
 * runs in. No stack is used. The SIMD registers they use are caller-saved, and exception
 * entry saves all of them (vectors.S), so an interrupt in the middle of a copy is harmless.
 *
 * Register contract (AAPCS64):
 *   memcpy(x0 = dst, x1 = src, x2 = n) -> x0 = dst     (regions must not overlap)
 *   memmove(x0 = dst, x1 = src, x2 = n) -> x0 = dst    (regions may overlap)
 *   memset(x0 = dst, w1 = byte, x2 = n) -> x0 = dst
 *   memcmp(x0 = a, x1 = b, x2 = n) -> w0 < 0, 0, > 0  (as the first differing bytes, unsigned)
 * Clobbered: x1-x17 and v0-v3 as AAPCS64 allows; x0 as the result.
 */
    .section .text.mem, "ax"

/*
 * Copies n < 16 bytes from x1 to x3 with two overlapping accesses of the largest size that
 * fits (both loads before both stores, so it is also correct for overlapping regions).
 */
    .macro copy_small
    cmp     x2, #8
    b.lo    1f
    ldr     x6, [x1]
    ldr     x7, [x4, #-8]
    str     x6, [x3]
    str     x7, [x5, #-8]
    ret
1:  cmp     x2, #4
    b.lo    2f
    ldr     w6, [x1]
    ldr     w7, [x4, #-4]
    str     w6, [x3]
    str     w7, [x5, #-4]
    ret
2:  cbz     x2, 3f
    /* 1..3 bytes: first, middle, last (the same byte when n = 1). */
    lsr     x8, x2, #1
    ldrb    w6, [x1]
    ldrb    w7, [x1, x8]
    ldrb    w9, [x4, #-1]
    strb    w6, [x3]
    strb    w7, [x3, x8]
    strb    w9, [x5, #-1]
3:  ret
    .endm

    .global memcpy
    .type memcpy, %function
memcpy:
    .global memmove
    .type memmove, %function
memmove:
    mov     x3, x0                  // x3 = dst cursor, x0 kept for the result
    add     x4, x1, x2              // x4 = src end
    add     x5, x0, x2              // x5 = dst end
    cmp     x2, #16
    b.hs    .Lcopy_large
    copy_small

.Lcopy_large:
    /* Backwards when dst lies inside (src, src + n): a forward copy would overwrite source
     * bytes before reading them. */
    sub     x9, x0, x1
    cmp     x9, x2
    b.lo    .Lcopy_backward
    /* Forward. The last 16 bytes are read first and stored last (they may overlap the
     * loop's final stores, and with overlapping regions the loop may overwrite them). */
    ldp     x12, x13, [x4, #-16]
    subs    x2, x2, #64
    b.lo    .Lfwd_tail
.Lfwd_loop:
    ldp     q0, q1, [x1], #32
    ldp     q2, q3, [x1], #32
    stp     q0, q1, [x3], #32
    stp     q2, q3, [x3], #32
    subs    x2, x2, #64
    b.hs    .Lfwd_loop
.Lfwd_tail:
    /* 0..63 bytes left (x2 + 64); copy 16 at a time while more than 16 remain. */
    adds    x2, x2, #64
1:  cmp     x2, #16
    b.ls    2f
    ldp     x6, x7, [x1], #16
    stp     x6, x7, [x3], #16
    sub     x2, x2, #16
    b       1b
2:  stp     x12, x13, [x5, #-16]
    ret

.Lcopy_backward:
    /* From the end down; the first 16 bytes are read first and stored last. */
    ldp     x12, x13, [x1]
    subs    x2, x2, #64
    b.lo    .Lbwd_tail
.Lbwd_loop:
    ldp     q0, q1, [x4, #-32]
    ldp     q2, q3, [x4, #-64]!
    stp     q0, q1, [x5, #-32]
    stp     q2, q3, [x5, #-64]!
    subs    x2, x2, #64
    b.hs    .Lbwd_loop
.Lbwd_tail:
    adds    x2, x2, #64
1:  cmp     x2, #16
    b.ls    2f
    ldp     x6, x7, [x4, #-16]!
    stp     x6, x7, [x5, #-16]!
    sub     x2, x2, #16
    b       1b
2:  stp     x12, x13, [x0]
    ret
    .size memcpy, . - memcpy
    .size memmove, . - memmove

    .global memset
    .type memset, %function
memset:
    mov     x3, x0
    add     x5, x0, x2              // dst end
    and     x6, x1, #0xff
    mov     x7, #0x0101010101010101
    mul     x6, x6, x7              // the byte in every lane
    cmp     x2, #16
    b.hs    2f
    cmp     x2, #8
    b.lo    1f
    str     x6, [x3]
    str     x6, [x5, #-8]
    ret
1:  cmp     x2, #4
    b.lo    3f
    str     w6, [x3]
    str     w6, [x5, #-4]
    ret
3:  cbz     x2, 4f
    lsr     x8, x2, #1
    strb    w6, [x3]
    strb    w6, [x3, x8]
    strb    w6, [x5, #-1]
4:  ret
2:  /* 16 or more: 64 per iteration, then 16 at a time, then the last 16 overlapping. */
    subs    x2, x2, #64
    b.lo    6f
    dup     v0.2d, x6
5:  stp     q0, q0, [x3], #32
    stp     q0, q0, [x3], #32
    subs    x2, x2, #64
    b.hs    5b
6:  adds    x2, x2, #64
7:  cmp     x2, #16
    b.ls    8f
    stp     x6, x6, [x3], #16
    sub     x2, x2, #16
    b       7b
8:  stp     x6, x6, [x5, #-16]
    ret
    .size memset, . - memset

    .global memcmp
    .type memcmp, %function
memcmp:
    /* 8 bytes at a time; at the first differing word, its first differing byte decides. */
1:  cmp     x2, #8
    b.lo    3f
    ldr     x6, [x0], #8
    ldr     x7, [x1], #8
    sub     x2, x2, #8
    cmp     x6, x7
    b.eq    1b
    /* Little-endian: the first differing byte is the lowest differing one. */
    rev     x6, x6
    rev     x7, x7
    cmp     x6, x7
    cset    w0, hi
    csinv   w0, w0, wzr, hs         // hi: 1, lo: -1
    ret
3:  cbz     x2, 5f
4:  ldrb    w6, [x0], #1
    ldrb    w7, [x1], #1
    subs    w3, w6, w7
    b.ne    6f
    subs    x2, x2, #1
    b.ne    4b
5:  mov     w0, #0
    ret
6:  mov     w0, w3
    ret
    .size memcmp, . - memcmp
