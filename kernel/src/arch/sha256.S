/*
 * sha256.S: SHA-256 blocks with the Armv8 cryptographic extension (FEAT_SHA256).
 *
 * In assembly rather than with core::arch intrinsics because aarch64-unknown-none is built
 * with strict alignment: the compiler turns every 16-byte load of a message block into
 * sixteen byte loads. Here ld1 reads unaligned blocks directly (Normal memory, MMU on).
 * Only call it when ID_AA64ISAR0_EL1.SHA2 says the instructions exist.
 *
 * Register contract (AAPCS64):
 *   sha256_blocks_ce(x0 = state: *mut [u32; 8], x1 = blocks: *const [u8; 64],
 *                    x2 = number of blocks, x3 = round constants: *const [u32; 64])
 * Clobbered: x1-x3, v0-v7, v16-v31 (caller-saved). v8 and v9 are used as temporaries and
 * their low halves (callee-saved) are restored from the stack. No other memory is written
 * than the state and 16 bytes of stack.
 */
    .section .text.sha256, "ax"
    .arch_extension sha2

/* Four rounds on schedule words \w with constants \k: v0 = abcd, v1 = efgh. */
    .macro rounds4 w, k
    add     v8.4s, \w\().4s, \k\().4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    .endm

/* \w0 = the next four schedule words, from the sixteen in \w0..\w3. */
    .macro schedule w0, w1, w2, w3
    sha256su0 \w0\().4s, \w1\().4s
    sha256su1 \w0\().4s, \w2\().4s, \w3\().4s
    .endm

    .global sha256_blocks_ce
    .type sha256_blocks_ce, %function
sha256_blocks_ce:
    cbz     x2, 2f
    stp     d8, d9, [sp, #-16]!
    ld1     {v16.4s-v19.4s}, [x3], #64
    ld1     {v20.4s-v23.4s}, [x3], #64
    ld1     {v24.4s-v27.4s}, [x3], #64
    ld1     {v28.4s-v31.4s}, [x3]
    ld1     {v0.4s, v1.4s}, [x0]
1:  ld1     {v4.16b-v7.16b}, [x1], #64
    /* Message words are big-endian. */
    rev32   v4.16b, v4.16b
    rev32   v5.16b, v5.16b
    rev32   v6.16b, v6.16b
    rev32   v7.16b, v7.16b
    mov     v2.16b, v0.16b
    mov     v3.16b, v1.16b
    rounds4 v4, v16
    schedule v4, v5, v6, v7
    rounds4 v5, v17
    schedule v5, v6, v7, v4
    rounds4 v6, v18
    schedule v6, v7, v4, v5
    rounds4 v7, v19
    schedule v7, v4, v5, v6
    rounds4 v4, v20
    schedule v4, v5, v6, v7
    rounds4 v5, v21
    schedule v5, v6, v7, v4
    rounds4 v6, v22
    schedule v6, v7, v4, v5
    rounds4 v7, v23
    schedule v7, v4, v5, v6
    rounds4 v4, v24
    schedule v4, v5, v6, v7
    rounds4 v5, v25
    schedule v5, v6, v7, v4
    rounds4 v6, v26
    schedule v6, v7, v4, v5
    rounds4 v7, v27
    schedule v7, v4, v5, v6
    rounds4 v4, v28
    rounds4 v5, v29
    rounds4 v6, v30
    rounds4 v7, v31
    add     v0.4s, v0.4s, v2.4s
    add     v1.4s, v1.4s, v3.4s
    subs    x2, x2, #1
    b.ne    1b
    st1     {v0.4s, v1.4s}, [x0]
    ldp     d8, d9, [sp], #16
2:  ret
    .size sha256_blocks_ce, . - sha256_blocks_ce
