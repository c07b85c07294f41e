//! [`Region`], a physical address range: what the memory map, the UEFI memory map and
//! everything above them pass around (a module of its own, so that `memmap` and `uefi`
//! do not depend on each other both ways).

use core::fmt;

/// A physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Region {
    /// `[start, start + size)`, saturating at the top of the address space.
    pub const fn new(start: u64, size: u64) -> Self {
        Region {
            start,
            end: start.saturating_add(size),
        }
    }
    /// Size in bytes.
    pub const fn size(&self) -> u64 {
        self.end - self.start
    }
    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, o: &Region) -> bool {
        self.start < o.end && o.start < self.end
    }
    /// Whether `o` lies entirely inside `self`.
    pub const fn contains(&self, o: &Region) -> bool {
        self.start <= o.start && o.end <= self.end
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#012x}-{:#012x}", self.start, self.end)
    }
}
