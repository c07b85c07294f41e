/*
 * efi_entry.S: where UEFI firmware starts the Image (the PE/COFF AddressOfEntryPoint), and
 * how the EFI stub (kernel/src/efistub.rs) leaves for the boot path.
 *
 * efi_pe_entry
 *   in:  x0 = this image's EFI_HANDLE, x1 = the EFI_SYSTEM_TABLE, lr = back to the firmware;
 *        the firmware's EL (1 or 2), MMU on with an identity map, caches on, its stack.
 *   does: tail-calls efistub_main(x0, x1, x2 = the run-time address of _head), whose
 *        EFI_STATUS goes back to the firmware if it returns (it does only on failure).
 *
 * efi_enter_kernel
 *   in:  x0 = physical address of a 2 MiB-aligned Image (its entry is at offset 0),
 *        x1 = physical address of the DTB; everything both read cleaned to the PoC;
 *        identity-mapped, boot services exited.
 *   does: masks DAIF; turns the MMU and the caches off at the current EL (the next fetch
 *        is the same address, identity-mapped); invalidates the I-cache; branches to x0 with
 *        x0 = DTB, x1 = x2 = x3 = 0 (Documentation/arch/arm64/booting.rst). Never returns.
 *   Registers: x9, x10 scratch, x19/x20 the arguments.
 */
    .section .text.efi_entry, "ax"
    .global efi_pe_entry
efi_pe_entry:
    adrp    x2, _head
    b       efistub_main

    .global efi_enter_kernel
efi_enter_kernel:
    msr     daifset, #0xf
    mov     x19, x0
    mov     x20, x1
    mov     x10, #{SCTLR_M_C_I}
    mrs     x9, CurrentEL
    cmp     x9, #{CURRENT_EL_EL2}
    b.ne    1f
    mrs     x9, sctlr_el2
    bic     x9, x9, x10
    msr     sctlr_el2, x9
    b       2f
1:  mrs     x9, sctlr_el1
    bic     x9, x9, x10
    msr     sctlr_el1, x9
2:  isb
    ic      iallu
    dsb     nsh
    isb
    mov     x0, x20
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x19
