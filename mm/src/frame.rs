//! The physical frame allocator: a buddy allocator over every free 4 KiB frame, with counters
//! so that leaks show up (`mem`, and kexec's `free=` check).

use crate::PAGE_SIZE;
use buddy_system_allocator::FrameAllocator;
use spin::Mutex;

/// Largest block order: 2^31 frames (8 TiB) is far beyond any machine this kernel runs on.
const ORDER: usize = 32;

/// A locked buddy allocator of 4 KiB frames, addressed by physical address.
pub struct Frames {
    inner: Mutex<Inner>,
}

struct Inner {
    buddy: FrameAllocator<ORDER>,
    total: u64,
    free: u64,
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl Frames {
    /// An empty allocator.
    pub const fn new() -> Self {
        Frames {
            inner: Mutex::new(Inner {
                buddy: FrameAllocator::new(),
                total: 0,
                free: 0,
            }),
        }
    }

    /// Hands the frames of `[start, end)` (page-aligned physical addresses) to the allocator.
    pub fn add_range(&self, start: u64, end: u64) {
        debug_assert!(
            start.is_multiple_of(PAGE_SIZE) && end.is_multiple_of(PAGE_SIZE) && start <= end
        );
        if start == end {
            return;
        }
        let mut g = self.inner.lock();
        g.buddy
            .add_frame((start / PAGE_SIZE) as usize, (end / PAGE_SIZE) as usize);
        let n = (end - start) / PAGE_SIZE;
        g.total += n;
        g.free += n;
    }

    /// Allocates `count` contiguous frames aligned to the next power of two at or above
    /// `count`, and returns the physical address of the first. The buddy allocator rounds
    /// `count` up to that power of two, and the counters say so.
    pub fn alloc(&self, count: u64) -> Option<u64> {
        let mut g = self.inner.lock();
        let frame = g.buddy.alloc(count as usize)?;
        g.free -= count.next_power_of_two();
        Some(frame as u64 * PAGE_SIZE)
    }

    /// Returns `count` frames starting at `pa`, as obtained from [`Frames::alloc`].
    pub fn free(&self, pa: u64, count: u64) {
        let mut g = self.inner.lock();
        g.buddy.dealloc((pa / PAGE_SIZE) as usize, count as usize);
        g.free += count.next_power_of_two();
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.inner.lock().free
    }

    /// Frames ever handed to the allocator.
    pub fn total_frames(&self) -> u64 {
        self.inner.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_alloc_and_free() {
        let f = Frames::new();
        f.add_range(0x4000_0000, 0x4010_0000);
        assert_eq!(f.total_frames(), 256);
        let a = f.alloc(3).unwrap();
        assert_eq!(a % (4 * PAGE_SIZE), 0, "buddy blocks are naturally aligned");
        assert!((0x4000_0000..0x4010_0000).contains(&a));
        assert_eq!(f.free_frames(), 252, "3 frames cost a block of 4");
        f.free(a, 3);
        assert_eq!(f.free_frames(), 256);
        assert!(f.alloc(512).is_none());
    }
}
