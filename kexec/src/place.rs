//! Where the next kernel's segments may go.
//!
//! Destinations may be anywhere in RAM that the firmware has not kept for itself: the running
//! kernel's own image, DTB, initrd and every allocated frame may be overwritten (the entry
//! list's safe-page rules make that work), but `/memreserve/`, `/reserved-memory` (with or
//! without `no-map`) and holes between banks may not.

use alloc::vec::Vec;
use mm::memmap::{subtract, MemoryMap, Region, ReservedKind};

/// RAM the next kernel may be given: banks minus the firmware's reservations (and, in a
/// crash kernel, minus the crashed kernel's memory: a kexec from there stays in the crash
/// region).
pub fn usable(map: &MemoryMap) -> Vec<Region> {
    let firmware: Vec<Region> = map
        .reserved
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                ReservedKind::MemReserve
                    | ReservedKind::ReservedMemory
                    | ReservedKind::NoMap
                    | ReservedKind::GicLpiTables
                    | ReservedKind::Uefi
                    | ReservedKind::UefiMemoryMap
                    | ReservedKind::UefiConfigTable
                    | ReservedKind::CrashedKernel
                    | ReservedKind::ElfCoreHdr
            )
        })
        .map(|r| r.region)
        .collect();
    subtract(&map.banks, &firmware)
}

/// The firmware reservation or hole that `r` touches, if any: `Ok` when `r` lies inside
/// `usable`, `Err` with the first byte that does not.
pub fn check(usable: &[Region], r: &Region) -> Result<(), u64> {
    let mut at = r.start;
    while at < r.end {
        match usable.iter().find(|u| u.start <= at && at < u.end) {
            Some(u) => at = u.end,
            None => return Err(at),
        }
    }
    Ok(())
}

/// Every `align`-aligned address `a` such that `[a + offset, a + offset + size)` lies in
/// `usable` and overlaps none of `taken`, lowest first.
pub fn slots(
    usable: &[Region],
    taken: &[Region],
    size: u64,
    align: u64,
    offset: u64,
) -> impl Iterator<Item = u64> {
    let free = subtract(usable, taken);
    free.into_iter().flat_map(move |r| {
        let first = mm::align_up(r.start.saturating_sub(offset), align);
        let first = if first + offset < r.start {
            first + align
        } else {
            first
        };
        let last = r
            .end
            .checked_sub(size + offset)
            .map(|l| mm::align_down(l, align));
        let n = match last {
            Some(l) if l >= first => (l - first) / align + 1,
            _ => 0,
        };
        (0..n).map(move |i| first + i * align)
    })
}

/// The highest `align`-aligned place for `size` bytes in `usable` avoiding `taken`.
pub fn highest(usable: &[Region], taken: &[Region], size: u64, align: u64) -> Option<u64> {
    let free = subtract(usable, taken);
    free.iter()
        .rev()
        .filter_map(|r| {
            let a = mm::align_down(r.end.checked_sub(size)?, align);
            (a >= r.start).then_some(a)
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const MIB: u64 = 1 << 20;

    fn map() -> MemoryMap {
        let mut m = MemoryMap {
            banks: vec![
                Region::new(0x4000_0000, 512 * MIB),
                Region::new(0x8000_0000, 768 * MIB),
            ],
            reserved: vec![],
            ..Default::default()
        };
        m.reserve(Region::new(0x4000_0000, MIB), ReservedKind::NoMap, "fw");
        m.reserve(Region::new(0x4020_0000, 3 * MIB), ReservedKind::Kernel, "");
        m.reserve(Region::new(0x8000_0000, 4096), ReservedKind::MemReserve, "");
        m
    }

    #[test]
    fn firmware_reservations_and_holes_are_not_usable() {
        let u = usable(&map());
        assert_eq!(u[0], Region::new(0x4010_0000, 511 * MIB));
        assert_eq!(u[1].start, 0x8000_1000);
        // The running kernel's own pages are usable.
        assert!(check(&u, &Region::new(0x4020_0000, 4 * MIB)).is_ok());
        assert_eq!(check(&u, &Region::new(0x4000_0000, 4096)), Err(0x4000_0000));
        assert_eq!(
            check(&u, &Region::new(0x5ff0_0000, 2 * MIB)),
            Err(0x6000_0000),
            "the hole between the banks"
        );
    }

    #[test]
    fn slots_are_aligned_and_fit() {
        let u = usable(&map());
        let taken = [Region::new(0x4400_0000, 8 * MIB)];
        let s: Vec<u64> = slots(&u, &taken, 3 * MIB, 2 * MIB, 0).collect();
        assert_eq!(
            s[0], 0x4020_0000,
            "first 2 MiB boundary past the no-map MiB"
        );
        assert!(s.iter().all(|a| a % (2 * MIB) == 0));
        for a in &s {
            let r = Region::new(*a, 3 * MIB);
            assert!(check(&u, &r).is_ok() && !r.overlaps(&taken[0]), "{a:#x}");
        }
        assert!(!s.contains(&0x5fe0_0000), "would cross into the hole");
        assert!(s.contains(&0x8020_0000));
        assert_eq!(
            highest(&u, &taken, 3 * MIB, 2 * MIB),
            Some(0xb000_0000 - 4 * MIB)
        );
        assert_eq!(highest(&u, &taken, 4096 * MIB, 2 * MIB), None);
    }
}
