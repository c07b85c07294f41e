//! Faults on purpose, for the cache model's negative controls: test builds only
//! (`scripts/build.sh --fault-inject`), where `fault.skip=WHAT` on the command line leaves
//! out one piece of cache maintenance that plain QEMU cannot miss but a board would:
//!
//! - `pen-iallu`: the pen's own `ic iallu` before it enters the next kernel;
//! - `pen-ialluis`: the pen page invalidated in the boot CPU's I-cache only (`ic iallu`),
//!   although the other CPUs run it;
//! - `mailbox-clean`: a spin-table mailbox written without the clean to the PoC that the
//!   released CPU, reading with its caches off, needs.
//!
//! The EFI stub, which runs before this command line is parsed, reads its own words
//! (`efistub::stub_fault`): `fault.efi=dirty-bss` (dirty lines over the image's BSS, heap and
//! tables, as a loader zero-filling them with its caches on leaves) and
//! `fault.skip=efi-clean-bss` (the hand-over cleaned over the file's bytes only).
//!
//! In other builds nothing is ever skipped.

/// Whether the command line asks this build to leave out `what`.
pub fn skips(what: &str) -> bool {
    #[cfg(feature = "fault-inject")]
    {
        crate::SYSTEM
            .get()
            .and_then(|s| s.cmdline.get("fault.skip"))
            == Some(what)
    }
    #[cfg(not(feature = "fault-inject"))]
    {
        let _ = what;
        false
    }
}
