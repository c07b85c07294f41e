//! Where the next kernel's segments may go.
//!
//! Destinations may be anywhere in RAM that the firmware has not kept for itself: the running
//! kernel's own image, DTB, initrd and every allocated frame may be overwritten (the entry
//! list's safe-page rules make that work), but `/memreserve/`, `/reserved-memory` (with or
//! without `no-map`) and holes between banks may not.

use alloc::vec::Vec;
use core::fmt;
use mm::memmap::{subtract, MemoryMap, Region, ReservedKind};
use mm::PAGE_SIZE;

/// Images are placed at 2 MiB-aligned bases (booting.rst).
pub const IMAGE_ALIGN: u64 = 2 << 20;
/// The initrd must lie in a 1 GiB-aligned window of at most 32 GiB that also holds the
/// image (booting.rst).
const INITRD_WINDOW_ALIGN: u64 = 1 << 30;
/// The size of that window.
const INITRD_WINDOW: u64 = 32 << 30;

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

/// Why a segment has no place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// A segment does not fit anywhere in usable memory.
    NoRoom {
        /// Which segment.
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// All usable memory.
        usable: u64,
    },
    /// A requested destination overlaps memory the firmware reserved, or a hole.
    Reserved {
        /// Which segment.
        what: &'static str,
        /// Its destination.
        dest: Region,
        /// The first byte that is not usable.
        at: u64,
    },
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRoom { what, bytes, usable } => write!(
                f,
                "{what}: {bytes} bytes do not fit in usable memory ({usable} bytes usable, in pieces)"
            ),
            Self::Reserved { what, dest, at } => write!(
                f,
                "{what}: destination {dest} touches {at:#x}, which is reserved by the firmware or not RAM"
            ),
        }
    }
}

/// What a load asks to place, besides the DTB (placed once it is written, with
/// [`Placement::put`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Request {
    /// The Image header's `image_size`.
    pub image_size: u64,
    /// The Image header's `text_offset`.
    pub text_offset: u64,
    /// A 2 MiB-aligned base the user asked for (`--base=`), or none.
    pub base: Option<u64>,
    /// Bytes of the initrd, if there is one.
    pub initrd: Option<u64>,
    /// Bytes of the chain hand-over block, if there is one.
    pub handover: Option<u64>,
}

/// Where the segments go, and everything placed so far.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The image: `text_offset` past a 2 MiB-aligned base, `image_size` bytes.
    pub image: Region,
    /// The initrd, inside the 32 GiB window that holds the image.
    pub initrd: Option<Region>,
    /// The chain hand-over block.
    pub handover: Option<Region>,
    /// Every range placed so far (the DTB and a fresh pen page must avoid them).
    pub taken: Vec<Region>,
    /// Usable memory that is free now: preferred, since segments placed there are written
    /// in place instead of copied at `kexec -e`.
    free: Vec<Region>,
    /// Bytes of usable memory, for error messages.
    usable_bytes: u64,
}

impl Placement {
    /// Places a load in `usable` memory, preferring what is `free` now: the image at the
    /// requested base or the lowest 2 MiB-aligned one that fits (free memory first: then it
    /// is written in place), then the initrd and the chain hand-over block from the top,
    /// free memory first.
    pub fn plan(usable: &[Region], free: &[Region], req: &Request) -> Result<Self, PlaceError> {
        let usable_bytes: u64 = usable.iter().map(Region::size).sum();
        let no_room = |what, bytes| PlaceError::NoRoom {
            what,
            bytes,
            usable: usable_bytes,
        };
        if req.image_size > usable_bytes {
            return Err(no_room("image (image_size)", req.image_size));
        }
        let free = intersect(usable, free);
        let (size, offset) = (req.image_size, req.text_offset);
        let base = match req.base {
            Some(b) => b,
            None => slots(&free, &[], size, IMAGE_ALIGN, offset)
                .next()
                .or_else(|| slots(usable, &[], size, IMAGE_ALIGN, offset).next())
                .ok_or(no_room("image", size))?,
        };
        let image = Region::new(base + offset, mm::align_up(size, PAGE_SIZE));
        check(usable, &image).map_err(|at| PlaceError::Reserved {
            what: "image",
            dest: image,
            at,
        })?;
        let mut placed = Placement {
            image,
            initrd: None,
            handover: None,
            taken: alloc::vec![image],
            free,
            usable_bytes,
        };
        let window = Region::new(
            mm::align_down(image.start, INITRD_WINDOW_ALIGN),
            INITRD_WINDOW,
        );
        let initrd_usable = intersect(usable, &[window]);
        if let Some(len) = req.initrd {
            placed.initrd = Some(placed.put("initrd", len, PAGE_SIZE, &initrd_usable)?);
        }
        if let Some(len) = req.handover {
            placed.handover = Some(placed.put("chain hand-over block", len, PAGE_SIZE, usable)?);
        }
        Ok(placed)
    }

    /// Takes the highest `align`-aligned range of `bytes` (rounded up to pages) in `within`
    /// that overlaps nothing placed yet, free memory first.
    pub fn put(
        &mut self,
        what: &'static str,
        bytes: u64,
        align: u64,
        within: &[Region],
    ) -> Result<Region, PlaceError> {
        let size = mm::align_up(bytes.max(1), PAGE_SIZE);
        let free_within = intersect(within, &self.free);
        let at = highest(&free_within, &self.taken, size, align)
            .or_else(|| highest(within, &self.taken, size, align))
            .ok_or(PlaceError::NoRoom {
                what,
                bytes,
                usable: self.usable_bytes,
            })?;
        let r = Region::new(at, size);
        self.taken.push(r);
        Ok(r)
    }
}

/// The parts of `a` that are also in `b`.
pub fn intersect(a: &[Region], b: &[Region]) -> Vec<Region> {
    subtract(a, &subtract(a, b))
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

    #[test]
    fn a_load_is_placed_free_memory_first() {
        let u = usable(&map());
        // Free: a piece of the first bank and the top of the second.
        let free = [
            Region::new(0x4800_0000, 64 * MIB),
            Region::new(0xa000_0000, 256 * MIB),
        ];
        let req = Request {
            image_size: 5 * MIB,
            text_offset: 0,
            initrd: Some(3 * MIB + 1),
            handover: Some(4096),
            ..Default::default()
        };
        let p = Placement::plan(&u, &free, &req).unwrap();
        assert_eq!(
            p.image,
            Region::new(0x4800_0000, 5 * MIB),
            "lowest free 2 MiB base"
        );
        let initrd = p.initrd.unwrap();
        assert_eq!(initrd.size(), 3 * MIB + 4096, "rounded up to pages");
        assert_eq!(initrd.end, 0xb000_0000, "the top of free memory");
        assert_eq!(p.handover.unwrap().end, initrd.start, "below the initrd");
        // The DTB then goes below both, 2 MiB aligned, in free memory.
        let mut p = p;
        let dtb = p.put("DTB", 70_000, 2 * MIB, &u).unwrap();
        assert_eq!(dtb.start % (2 * MIB), 0);
        assert!(free[1].contains(&dtb) && p.taken.iter().filter(|t| t.overlaps(&dtb)).count() == 1);
    }

    #[test]
    fn the_initrd_stays_within_32_gib_of_the_image() {
        // 64 GiB of RAM: the initrd is not put at the very top, but in the image's window.
        let u = [Region::new(0x4000_0000, 64 << 30)];
        let req = Request {
            image_size: 2 * MIB,
            initrd: Some(MIB),
            ..Default::default()
        };
        let p = Placement::plan(&u, &u, &req).unwrap();
        assert_eq!(p.image.start, 0x4000_0000);
        assert_eq!(p.initrd.unwrap().end, 0x4000_0000 + (32 << 30));
    }

    #[test]
    fn a_bad_request_is_named() {
        let u = usable(&map());
        let big = Request {
            image_size: 4096 * MIB,
            ..Default::default()
        };
        assert!(matches!(
            Placement::plan(&u, &u, &big),
            Err(PlaceError::NoRoom {
                what: "image (image_size)",
                ..
            })
        ));
        let reserved = Request {
            image_size: 2 * MIB,
            base: Some(0x4000_0000),
            ..Default::default()
        };
        let e = Placement::plan(&u, &u, &reserved).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image: destination 0x0040000000-0x0040200000 touches 0x40000000, which is reserved by the firmware or not RAM"
        );
        let no_initrd_room = Request {
            image_size: 2 * MIB,
            initrd: Some(2048 * MIB),
            ..Default::default()
        };
        assert!(matches!(
            Placement::plan(&u, &u, &no_initrd_room),
            Err(PlaceError::NoRoom { what: "initrd", .. })
        ));
    }
}
