//! The spin-table pen (`pen.S`): its page layout, and the code as linked.

/// Slots (CPUs) a pen holds: as many as the boot code can release from a spin table.
pub const SLOTS: usize = boot::SPIN_SLOTS;
/// Offset of the MPIDR table in the pen page.
pub const MPIDRS: usize = 0x800;
/// Offset of the mailboxes (each CPU's `cpu-release-addr`).
pub const MAILBOXES: usize = MPIDRS + 8 * SLOTS;
/// Offset of the "arrived" flags.
pub const ARRIVED: usize = MAILBOXES + 8 * SLOTS;
/// Offset of [`MAGIC`], which marks a page holding a pen.
pub const MAGIC_OFFSET: usize = ARRIVED + 8 * SLOTS;
/// `"KXPEN001"`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"KXPEN001");

const _: () = assert!(MAGIC_OFFSET + 8 <= 4096);

/// `ic iallu`, which the pen runs before it enters the next kernel.
pub const IC_IALLU: u32 = 0xd508_751f;
/// `nop`.
pub const NOP: u32 = 0xd503_201f;

/// The pen's code, to be copied to the start of its page.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn code() -> &'static [u8] {
    unsafe extern "C" {
        static kexec_pen: u8;
        static kexec_pen_end: u8;
    }
    let (start, end) = (&raw const kexec_pen, &raw const kexec_pen_end);
    let len = end as usize - start as usize;
    assert!(len <= MPIDRS, "the pen's code overlaps its tables");
    // SAFETY: the two symbols delimit the pen's code in the kernel's read-only data.
    unsafe { core::slice::from_raw_parts(start, len) }
}
