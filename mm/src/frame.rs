//! The physical frame allocator: a buddy allocator over every free 4 KiB frame, with counters
//! so that leaks show up (`mem`, and kexec's `free=` check).
//!
//! It is written here rather than taken from `buddy_system_allocator` (which this kernel used
//! before) because zero-copy kexec needs one operation that crate does not have:
//! [`Frames::claim`], taking *these* frames if they are free, so that a kexec segment can be
//! written straight into its destination. Blocks are kept per order in ordered sets, as that
//! crate keeps them, and allocation takes the lowest block of the smallest order that fits.

use crate::memmap::Region;
use crate::PAGE_SIZE;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use spin::Mutex;

/// Failure injection for tests (cargo feature `fault-inject`, never in release Images): the
/// `n`th [`Frames::alloc`] or [`Frames::claim`] on this allocator from the moment
/// [`Frames::fail_nth`] is called fails (returns `None`, claims nothing), once. The state is
/// the allocator's own, under its lock: a test's allocator is not disturbed by another's.
#[cfg(feature = "fault-inject")]
struct Injection {
    /// Allocations until the one that fails (0: disarmed).
    countdown: u64,
    /// Allocations failed on purpose so far.
    failed: u64,
}

#[cfg(feature = "fault-inject")]
impl Injection {
    const fn new() -> Self {
        Injection {
            countdown: 0,
            failed: 0,
        }
    }

    /// Counts one allocation; `true` if it is the one to fail.
    fn now(&mut self) -> bool {
        match self.countdown {
            0 => false,
            n => {
                self.countdown = n - 1;
                self.failed += u64::from(n == 1);
                n == 1
            }
        }
    }
}

/// Block orders: 2^31 frames (8 TiB) is far beyond any machine this kernel runs on.
const ORDERS: usize = 32;

/// A locked buddy allocator of 4 KiB frames, addressed by physical address.
pub struct Frames {
    inner: Mutex<Inner>,
}

/// Free blocks by order, as frame numbers (block of order `o` = 2^o frames, aligned to it).
struct Buddy {
    free: [BTreeSet<u64>; ORDERS],
}

struct Inner {
    buddy: Buddy,
    total: u64,
    free: u64,
    #[cfg(feature = "fault-inject")]
    inject: Injection,
}

impl Inner {
    /// `true` if this allocation is to fail on purpose (test builds only).
    #[inline(always)]
    fn injected_failure(&mut self) -> bool {
        #[cfg(feature = "fault-inject")]
        return self.inject.now();
        #[cfg(not(feature = "fault-inject"))]
        return false;
    }
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl Buddy {
    const fn new() -> Self {
        Buddy {
            free: [const { BTreeSet::new() }; ORDERS],
        }
    }

    /// Frees the block `frame` of order `order`, merging it with free buddies.
    fn free_block(&mut self, mut frame: u64, mut order: usize) {
        while order + 1 < ORDERS {
            let buddy = frame ^ (1 << order);
            if !self.free[order].remove(&buddy) {
                break;
            }
            frame = frame.min(buddy);
            order += 1;
        }
        self.free[order].insert(frame);
    }

    /// Frees `[start, end)` (frame numbers) as the largest aligned blocks that fit.
    fn free_run(&mut self, mut start: u64, end: u64) {
        while start < end {
            let align = if start == 0 {
                ORDERS - 1
            } else {
                start.trailing_zeros() as usize
            };
            let fit = (63 - (end - start).leading_zeros()) as usize;
            let order = align.min(fit).min(ORDERS - 1);
            self.free_block(start, order);
            start += 1 << order;
        }
    }

    fn alloc(&mut self, order: usize) -> Option<u64> {
        let from = (order..ORDERS).find(|&o| !self.free[o].is_empty())?;
        let block = self.free[from].pop_first().expect("non-empty");
        // Split down, keeping the lower half and freeing the upper one at each step.
        for o in (order..from).rev() {
            self.free[o].insert(block + (1 << o));
        }
        Some(block)
    }

    /// The free block that contains `frame`, as (start, order).
    fn block_containing(&self, frame: u64) -> Option<(u64, usize)> {
        (0..ORDERS).find_map(|o| {
            let start = frame & !((1u64 << o) - 1);
            self.free[o].contains(&start).then_some((start, o))
        })
    }
}

impl Frames {
    /// An empty allocator.
    pub const fn new() -> Self {
        Frames {
            inner: Mutex::new(Inner {
                buddy: Buddy::new(),
                total: 0,
                free: 0,
                #[cfg(feature = "fault-inject")]
                inject: Injection::new(),
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
        g.buddy.free_run(start / PAGE_SIZE, end / PAGE_SIZE);
        let n = (end - start) / PAGE_SIZE;
        g.total += n;
        g.free += n;
    }

    /// Allocates `count` contiguous frames aligned to the next power of two at or above
    /// `count`, and returns the physical address of the first. The block is that power of
    /// two, and the counters say so.
    pub fn alloc(&self, count: u64) -> Option<u64> {
        let order = count.max(1).next_power_of_two().trailing_zeros() as usize;
        let mut g = self.inner.lock();
        if g.injected_failure() {
            return None;
        }
        let frame = g.buddy.alloc(order)?;
        g.free -= 1 << order;
        Some(frame * PAGE_SIZE)
    }

    /// Returns `count` frames starting at `pa`, as obtained from [`Frames::alloc`].
    pub fn free(&self, pa: u64, count: u64) {
        let order = count.max(1).next_power_of_two().trailing_zeros() as usize;
        let mut g = self.inner.lock();
        g.buddy.free_block(pa / PAGE_SIZE, order);
        g.free += 1 << order;
    }

    /// Takes the free frames from `pa` on, up to `count` of them, stopping at the first that is
    /// not free; returns how many it took (0 if the frame at `pa` is not free). Give them back
    /// with [`Frames::free_run`].
    pub fn claim(&self, pa: u64, count: u64) -> u64 {
        let mut g = self.inner.lock();
        if g.injected_failure() {
            return 0;
        }
        let (first, end) = (pa / PAGE_SIZE, pa / PAGE_SIZE + count);
        let mut at = first;
        while at < end {
            let Some((start, order)) = g.buddy.block_containing(at) else {
                break;
            };
            g.buddy.free[order].remove(&start);
            let block_end = start + (1 << order);
            let upto = block_end.min(end);
            // What the block holds outside [at, upto) stays free.
            g.buddy.free_run(start, at);
            g.buddy.free_run(upto, block_end);
            at = upto;
        }
        g.free -= at - first;
        at - first
    }

    /// Returns `count` frames from `pa` taken with [`Frames::claim`] (any run of frames this
    /// allocator handed out whole, in fact).
    pub fn free_run(&self, pa: u64, count: u64) {
        let mut g = self.inner.lock();
        g.buddy.free_run(pa / PAGE_SIZE, pa / PAGE_SIZE + count);
        g.free += count;
    }

    /// Whether every frame of `[pa, pa + count pages)` is free.
    pub fn is_free(&self, pa: u64, count: u64) -> bool {
        let g = self.inner.lock();
        let end = pa / PAGE_SIZE + count;
        let mut at = pa / PAGE_SIZE;
        while at < end {
            match g.buddy.block_containing(at) {
                Some((start, order)) => at = start + (1 << order),
                None => return false,
            }
        }
        true
    }

    /// The free memory as merged ranges, lowest first.
    pub fn free_regions(&self) -> Vec<Region> {
        let g = self.inner.lock();
        let mut blocks: Vec<(u64, u64)> = g
            .buddy
            .free
            .iter()
            .enumerate()
            .flat_map(|(o, set)| set.iter().map(move |&f| (f, f + (1 << o))))
            .collect();
        blocks.sort_unstable();
        let mut out: Vec<Region> = Vec::new();
        for (s, e) in blocks {
            let (s, e) = (s * PAGE_SIZE, e * PAGE_SIZE);
            match out.last_mut() {
                Some(last) if last.end == s => last.end = e,
                _ => out.push(Region { start: s, end: e }),
            }
        }
        out
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.inner.lock().free
    }

    /// Frames ever handed to the allocator.
    pub fn total_frames(&self) -> u64 {
        self.inner.lock().total
    }

    /// Arms failure injection: the `n`th allocation or claim from now fails, once (`n` = 0
    /// disarms).
    #[cfg(feature = "fault-inject")]
    pub fn fail_nth(&self, n: u64) {
        self.inner.lock().inject.countdown = n;
    }

    /// Allocations and claims failed on purpose so far.
    #[cfg(feature = "fault-inject")]
    pub fn failed_on_purpose(&self) -> u64 {
        self.inner.lock().inject.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x4000_0000;
    const P: u64 = PAGE_SIZE;

    #[test]
    fn counts_follow_alloc_and_free() {
        let f = Frames::new();
        f.add_range(BASE, BASE + 0x10_0000);
        assert_eq!(f.total_frames(), 256);
        let a = f.alloc(3).unwrap();
        assert_eq!(a % (4 * P), 0, "buddy blocks are naturally aligned");
        assert!((BASE..BASE + 0x10_0000).contains(&a));
        assert_eq!(f.free_frames(), 252, "3 frames cost a block of 4");
        f.free(a, 3);
        assert_eq!(f.free_frames(), 256);
        assert!(f.alloc(512).is_none());
        assert!(
            f.alloc(256).is_some(),
            "everything merged back into one block"
        );
    }

    #[test]
    fn unaligned_ranges_are_used_whole() {
        let f = Frames::new();
        f.add_range(BASE + 3 * P, BASE + 1000 * P);
        assert_eq!(f.free_frames(), 997);
        let mut got = Vec::new();
        while let Some(a) = f.alloc(1) {
            got.push(a);
        }
        got.sort_unstable();
        assert_eq!(got.len(), 997);
        assert_eq!(got[0], BASE + 3 * P);
        assert_eq!(got[996], BASE + 999 * P);
    }

    #[test]
    fn claim_splits_free_blocks_and_stops_at_a_used_frame() {
        let f = Frames::new();
        f.add_range(BASE, BASE + 1024 * P);
        let used = f.alloc(1).unwrap(); // the lowest frame: BASE
        assert_eq!(used, BASE);
        // From frame 100, 50 frames: all free.
        assert_eq!(f.claim(BASE + 100 * P, 50), 50);
        assert_eq!(f.free_frames(), 1024 - 1 - 50);
        assert!(!f.is_free(BASE + 120 * P, 1));
        assert!(f.is_free(BASE + 150 * P, 874));
        // Claiming over taken frames: none from a taken one, up to it from a free one.
        assert_eq!(f.claim(BASE + 110 * P, 5), 0);
        assert_eq!(f.claim(BASE + 90 * P, 20), 10);
        assert_eq!(f.claim(BASE, 1), 0);
        // Nothing the allocator hands out afterwards is claimed.
        let mut out = Vec::new();
        while let Some(a) = f.alloc(1) {
            assert!(!(BASE + 90 * P..BASE + 150 * P).contains(&a), "{a:#x}");
            out.push(a);
        }
        assert_eq!(out.len(), 1024 - 1 - 60);
        for a in out {
            f.free(a, 1);
        }
        f.free_run(BASE + 90 * P, 60);
        f.free(used, 1);
        assert_eq!(f.free_frames(), 1024);
        assert_eq!(f.free_regions(), [Region::new(BASE, 1024 * P)]);
        assert!(
            f.alloc(1024).is_some(),
            "claimed runs merge back completely"
        );
    }

    #[cfg(feature = "fault-inject")]
    #[test]
    fn the_nth_allocation_fails_once() {
        let f = Frames::new();
        f.add_range(BASE, BASE + 64 * P);
        f.fail_nth(3);
        assert!(f.alloc(1).is_some());
        assert_eq!(f.claim(BASE + 40 * P, 1), 1);
        assert!(f.alloc(1).is_none(), "the third fails");
        assert!(f.alloc(1).is_some(), "once");
        assert_eq!(f.failed_on_purpose(), 1);
    }

    #[test]
    fn free_regions_merge_neighbouring_blocks() {
        let f = Frames::new();
        f.add_range(BASE, BASE + 64 * P);
        f.add_range(BASE + 100 * P, BASE + 101 * P);
        assert_eq!(f.claim(BASE + 10 * P, 5), 5);
        assert_eq!(
            f.free_regions(),
            [
                Region::new(BASE, 10 * P),
                Region::new(BASE + 15 * P, 49 * P),
                Region::new(BASE + 100 * P, P)
            ]
        );
    }
}
