/*
 * The spin-table pen: where kexec parks CPUs that have no PSCI CPU_OFF (a Raspberry Pi 4
 * without TF-A), in a page that the next kernel's DTB reserves (/memreserve/), so that the
 * next kernel can release them as the spin-table protocol says.
 *
 * Copied into that page at load time; entered at its physical address, MMU off, at EL2
 * (through HVC_SOFT_RESTART) or EL1, interrupts masked, any registers.
 * Page layout (kexec::pen):
 *   +0x000  this code
 *   +MPIDRS    16 x u64: the MPIDR of the CPU each slot belongs to
 *   +MAILBOXES 16 x u64: each CPU's cpu-release-addr; 0 until the next kernel writes its entry
 *   +ARRIVED   16 x u64: set to 1 by a CPU when it is in the pen
 * Exit: to the mailbox's address with x0 = x1 = x2 = x3 = 0 (the spin-table protocol), this
 *       CPU's I-cache invalidated: booting.rst wants no stale entries for the next image at
 *       entry, and this CPU never reset since it ran the old one (the I-cache survives the
 *       pen; the boot CPU's `ic iallu` after the relocation reaches only the boot CPU).
 * Registers: x1 MPIDR, x2 page base, x3 slot, x4 pointer, x5 value.
 * The boot CPU writes this page with its caches on and cleans it to the PoC and invalidates
 * every CPU's I-cache (`ic ialluis`) before any CPU enters it; the pen writes ARRIVED with
 * its caches off (the boot CPU invalidates before reading) and reads its mailbox with them
 * off (the next kernel cleans after writing).
 */
    .section .rodata.kexec_pen, "a"
    .balign 8
    .global kexec_pen
kexec_pen:
    mpidr_affinity x1, x3, {MPIDR_AFFINITY_MASK}
    adr     x2, kexec_pen
    add     x4, x2, #{MPIDRS}
    find_slot x4, x1, {SLOTS}, 8, x3, x5, 3f
    b       2f
3:  wfe                                 /* not one of ours: stay parked */
    b       3b
2:  add     x4, x2, #{ARRIVED}
    mov     x5, #1
    str     x5, [x4, x3, lsl #3]
    dsb     sy
    add     x4, x2, #{MAILBOXES}
    add     x4, x4, x3, lsl #3
4:  wfe
    ldr     x5, [x4]
    cbz     x5, 4b
    ic      iallu
    dsb     nsh
    isb
    mov     x0, xzr
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x5
    .global kexec_pen_end
kexec_pen_end:
