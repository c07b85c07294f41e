//! The kimage entry list, in Linux's format (`include/linux/kexec.h`), and the pages behind it.
//!
//! Each entry is a page-aligned physical address OR'd with one flag:
//!
//! | flag | meaning |
//! |---|---|
//! | [`IND_DESTINATION`] | the following sources go to consecutive pages from this address |
//! | [`IND_INDIRECTION`] | the list continues in the page at this address |
//! | [`IND_DONE`] | end of the list |
//! | [`IND_SOURCE`] | copy this page to the destination cursor, then advance it by a page |
//!
//! The list starts in [`Kimage::head`] (an `IND_INDIRECTION` of the first list page); each
//! list page keeps its last slot for the `IND_INDIRECTION` to the next.
//!
//! Safe pages, as Linux keeps them, so that the relocation copy can run in list order without
//! overwriting anything it still has to read:
//! - a **source page is its own destination or no destination at all**: a free page that lies
//!   inside some destination is set aside until its own destination's turn comes;
//! - **list pages and control pages** lie in no destination.
//!
//! **Zero copy**: a destination page that is free RAM at load time is claimed
//! ([`PhysPages::claim`]) and the segment is written straight into it; the list has no entry
//! for it (the next `IND_DESTINATION` skips over it). Only destination pages that are in use
//! (by the running kernel, its initrd, DTB, stacks, heap...) get a source page and are copied
//! at `kexec -e`. [`Kimage::load`] with `zero_copy` false copies every page, as Linux does.
//!
//! Everything is allocated by [`Kimage::load`] and [`Kimage::alloc_control`]; executing the
//! list allocates nothing.

use alloc::vec::Vec;
use core::fmt;
use mm::memmap::Region;
use mm::PAGE_SIZE;

/// Sets the destination cursor.
pub const IND_DESTINATION: u64 = 1 << 0;
/// The list continues in the page at this address.
pub const IND_INDIRECTION: u64 = 1 << 1;
/// End of the list.
pub const IND_DONE: u64 = 1 << 2;
/// Copy this page to the cursor and advance it.
pub const IND_SOURCE: u64 = 1 << 3;
/// Entries per list page.
pub const ENTRIES_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;
const ADDR_MASK: u64 = !(PAGE_SIZE - 1);

/// Physical pages as the loader sees them.
pub trait PhysPages {
    /// Allocates one free page.
    fn alloc(&mut self) -> Option<u64>;
    /// Returns a page from [`PhysPages::alloc`].
    fn free(&mut self, pa: u64);
    /// The contents of an allocated page.
    fn page(&mut self, pa: u64) -> &mut [u8];
    /// Takes the free pages from `pa` on, up to `count` of them, stopping at the first that
    /// is not free; returns how many it took.
    fn claim(&mut self, pa: u64, count: u64) -> u64;
    /// Returns `count` pages from `pa` that [`PhysPages::claim`] took.
    fn free_run(&mut self, pa: u64, count: u64);
}

/// A page from `mem` that overlaps none of `avoid` (a control page, a pen page: what the
/// copy at `kexec -e` must not overwrite). Pages rejected on the way go back to `mem`.
pub fn alloc_outside<M: PhysPages>(mem: &mut M, avoid: &[Region]) -> Option<u64> {
    let mut rejected = Vec::new();
    let found = loop {
        let Some(pa) = mem.alloc() else {
            break None;
        };
        if !avoid
            .iter()
            .any(|d| d.overlaps(&Region::new(pa, PAGE_SIZE)))
        {
            break Some(pa);
        }
        rejected.push(pa);
    };
    for pa in rejected {
        mem.free(pa);
    }
    found
}

/// One piece of the next kernel's memory.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// What to put there (zero-filled up to `memsz`).
    pub data: &'a [u8],
    /// Physical destination, page aligned.
    pub dest: u64,
    /// Bytes reserved at the destination, at least `data.len()`; rounded up to pages.
    pub memsz: u64,
}

impl Segment<'_> {
    /// The destination range, whole pages.
    pub fn range(&self) -> Region {
        Region::new(self.dest, mm::align_up(self.memsz, PAGE_SIZE))
    }
}

/// Why a list could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// A destination is not page aligned.
    Unaligned {
        /// Segment index.
        segment: usize,
        /// Its destination.
        dest: u64,
    },
    /// `memsz` is smaller than the data.
    MemszBelowData {
        /// Segment index.
        segment: usize,
    },
    /// Two destinations overlap.
    Overlap {
        /// First segment index.
        a: usize,
        /// Second segment index.
        b: usize,
    },
    /// The page allocator ran dry.
    OutOfMemory {
        /// Pages allocated so far (list, sources and pages set aside).
        pages: usize,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unaligned { segment, dest } => {
                write!(
                    f,
                    "segment {segment}: destination {dest:#x} is not page aligned"
                )
            }
            Self::MemszBelowData { segment } => {
                write!(f, "segment {segment}: memsz is smaller than its data")
            }
            Self::Overlap { a, b } => write!(f, "segments {a} and {b} overlap"),
            Self::OutOfMemory { pages } => write!(
                f,
                "out of memory after {pages} pages for the kexec list and its source pages"
            ),
        }
    }
}

/// A loaded list and every page it owns.
#[derive(Debug, Default)]
pub struct Kimage {
    /// The first entry (`IND_INDIRECTION` | first list page), or `IND_DONE` if empty.
    pub head: u64,
    /// Destination ranges, by segment.
    pub dests: Vec<Region>,
    list_pages: Vec<u64>,
    sources: Vec<u64>,
    control: Vec<u64>,
    /// Destination runs written in place (claimed at load, not in the list).
    in_place: Vec<Region>,
}

/// Pages taken from the allocator but not yet used, kept so that the next request for
/// the same destination can have them.
struct Builder<'m, M: PhysPages> {
    mem: &'m mut M,
    dests: Vec<Region>,
    set_aside: Vec<u64>,
    list_pages: Vec<u64>,
    sources: Vec<u64>,
    in_place: Vec<Region>,
    /// (current list page, next free slot).
    cursor: Option<(u64, usize)>,
    head: u64,
}

impl<M: PhysPages> Builder<'_, M> {
    fn in_dest(&self, pa: u64) -> bool {
        let p = Region::new(pa, PAGE_SIZE);
        self.dests.iter().any(|d| d.overlaps(&p))
    }

    fn taken(&self) -> usize {
        self.set_aside.len() + self.list_pages.len() + self.sources.len()
    }

    /// A page in no destination.
    fn alloc_safe(&mut self) -> Result<u64, LoadError> {
        loop {
            let pa = self.mem.alloc().ok_or(LoadError::OutOfMemory {
                pages: self.taken(),
            })?;
            if !self.in_dest(pa) {
                return Ok(pa);
            }
            self.set_aside.push(pa);
        }
    }

    /// A source page for `dest`: `dest` itself, or a page in no destination.
    fn alloc_source(&mut self, dest: u64) -> Result<u64, LoadError> {
        if let Some(i) = self.set_aside.iter().position(|&p| p == dest) {
            return Ok(self.set_aside.swap_remove(i));
        }
        loop {
            let pa = self.mem.alloc().ok_or(LoadError::OutOfMemory {
                pages: self.taken(),
            })?;
            if pa == dest || !self.in_dest(pa) {
                return Ok(pa);
            }
            self.set_aside.push(pa);
        }
    }

    fn add(&mut self, entry: u64) -> Result<(), LoadError> {
        let (page, slot) = match self.cursor {
            Some((page, slot)) if slot < ENTRIES_PER_PAGE - 1 => (page, slot),
            prev => {
                let new = self.alloc_safe()?;
                self.mem.page(new).fill(0);
                self.list_pages.push(new);
                let link = new | IND_INDIRECTION;
                match prev {
                    None => self.head = link,
                    Some((page, slot)) => self.write(page, slot, link),
                }
                (new, 0)
            }
        };
        self.write(page, slot, entry);
        self.cursor = Some((page, slot + 1));
        Ok(())
    }

    fn write(&mut self, page: u64, slot: usize, entry: u64) {
        self.mem.page(page)[slot * 8..slot * 8 + 8].copy_from_slice(&entry.to_le_bytes());
    }
}

impl Kimage {
    /// Builds the list for `segments`: validates them; with `zero_copy`, claims every free
    /// destination page and writes its data there; allocates a source page for every other
    /// destination page (filled with the segment's data, zero-padded), and returns the pages
    /// it set aside to `mem`. On error everything allocated is returned.
    pub fn load<M: PhysPages>(
        mem: &mut M,
        segments: &[Segment<'_>],
        zero_copy: bool,
    ) -> Result<Kimage, LoadError> {
        let dests: Vec<Region> = segments.iter().map(Segment::range).collect();
        for (i, s) in segments.iter().enumerate() {
            if !s.dest.is_multiple_of(PAGE_SIZE) {
                return Err(LoadError::Unaligned {
                    segment: i,
                    dest: s.dest,
                });
            }
            if (s.data.len() as u64) > s.memsz {
                return Err(LoadError::MemszBelowData { segment: i });
            }
            for (j, d) in dests.iter().enumerate().skip(i + 1) {
                if dests[i].overlaps(d) {
                    return Err(LoadError::Overlap { a: i, b: j });
                }
            }
        }
        // Claimed before anything else is allocated, so that no list or source page can
        // take a free destination page first.
        let mut in_place = Vec::new();
        if zero_copy {
            for d in &dests {
                let mut at = d.start;
                while at < d.end {
                    let n = mem.claim(at, (d.end - at) / PAGE_SIZE);
                    if n > 0 {
                        in_place.push(Region::new(at, n * PAGE_SIZE));
                    }
                    at += n.max(1) * PAGE_SIZE;
                }
            }
        }
        let mut b = Builder {
            mem,
            dests,
            set_aside: Vec::new(),
            list_pages: Vec::new(),
            sources: Vec::new(),
            in_place,
            cursor: None,
            head: IND_DONE,
        };
        let result = Self::fill(&mut b, segments);
        for pa in core::mem::take(&mut b.set_aside) {
            b.mem.free(pa);
        }
        let mut image = Kimage {
            head: b.head,
            dests: b.dests,
            list_pages: b.list_pages,
            sources: b.sources,
            control: Vec::new(),
            in_place: b.in_place,
        };
        match result {
            Ok(()) => Ok(image),
            Err(e) => {
                image.free(b.mem);
                Err(e)
            }
        }
    }

    fn fill<M: PhysPages>(
        b: &mut Builder<'_, M>,
        segments: &[Segment<'_>],
    ) -> Result<(), LoadError> {
        for s in segments {
            let pages = s.range().size() / PAGE_SIZE;
            let mut cursor = None;
            for i in 0..pages {
                let dest = s.dest + i * PAGE_SIZE;
                let in_place = b.in_place.iter().any(|r| r.start <= dest && dest < r.end);
                let page = if in_place {
                    dest
                } else {
                    if cursor != Some(dest) {
                        b.add(dest | IND_DESTINATION)?;
                    }
                    cursor = Some(dest + PAGE_SIZE);
                    let src = b.alloc_source(dest)?;
                    b.sources.push(src);
                    b.add(src | IND_SOURCE)?;
                    src
                };
                let off = (i * PAGE_SIZE) as usize;
                let page = b.mem.page(page);
                let n = s.data.len().saturating_sub(off).min(PAGE_SIZE as usize);
                if n > 0 {
                    page[..n].copy_from_slice(&s.data[off..off + n]);
                }
                page[n..].fill(0);
            }
        }
        b.add(IND_DONE)
    }

    /// Allocates a zeroed control page: one that overlaps no destination. Pages rejected on
    /// the way go back to `mem`.
    pub fn alloc_control<M: PhysPages>(&mut self, mem: &mut M) -> Option<u64> {
        let pa = alloc_outside(mem, &self.dests)?;
        mem.page(pa).fill(0);
        self.control.push(pa);
        Some(pa)
    }

    /// Control pages allocated so far.
    pub fn control_pages(&self) -> &[u64] {
        &self.control
    }

    /// The list pages.
    pub fn list_pages(&self) -> &[u64] {
        &self.list_pages
    }

    /// The source pages, in list order.
    pub fn source_pages(&self) -> &[u64] {
        &self.sources
    }

    /// The destination runs that were written in place.
    pub fn in_place(&self) -> &[Region] {
        &self.in_place
    }

    /// Bytes of `dest` written in place (the rest is copied at `kexec -e`).
    pub fn in_place_bytes(&self, dest: &Region) -> u64 {
        self.in_place
            .iter()
            .map(|r| r.end.min(dest.end).saturating_sub(r.start.max(dest.start)))
            .sum()
    }

    /// Where the next kernel's page `dest` is now: its source page, or `dest` itself when it
    /// was written in place.
    pub fn page_for<M: PhysPages>(&self, mem: &mut M, dest: u64) -> Option<u64> {
        if self
            .in_place
            .iter()
            .any(|r| r.start <= dest && dest < r.end)
        {
            return Some(dest);
        }
        self.source_for(mem, dest)
    }

    /// Returns every page this image owns to `mem`.
    pub fn free<M: PhysPages>(&mut self, mem: &mut M) {
        for pa in self
            .list_pages
            .drain(..)
            .chain(self.sources.drain(..))
            .chain(self.control.drain(..))
        {
            mem.free(pa);
        }
        for r in self.in_place.drain(..) {
            mem.free_run(r.start, r.size() / PAGE_SIZE);
        }
        self.head = IND_DONE;
        self.dests.clear();
    }

    /// The source page that the list copies to `dest`, if any.
    pub fn source_for<M: PhysPages>(&self, mem: &mut M, dest: u64) -> Option<u64> {
        let mut cursor = 0;
        for e in self.entries(mem) {
            if e & IND_DESTINATION != 0 {
                cursor = e & ADDR_MASK;
            } else if e & IND_SOURCE != 0 {
                if cursor == dest {
                    return Some(e & ADDR_MASK);
                }
                cursor += PAGE_SIZE;
            }
        }
        None
    }

    /// Reads the list back: every entry after `head`, in order, up to and including
    /// `IND_DONE`, without the `IND_INDIRECTION` links.
    pub fn entries<M: PhysPages>(&self, mem: &mut M) -> Vec<u64> {
        let mut out = Vec::new();
        let mut entry = self.head;
        let mut ptr: Option<(u64, usize)> = None;
        loop {
            if entry & IND_DONE != 0 {
                out.push(entry);
                return out;
            }
            if entry & IND_INDIRECTION != 0 {
                ptr = Some((entry & ADDR_MASK, 0));
            } else {
                out.push(entry);
            }
            let Some((page, slot)) = ptr else { return out };
            let p = mem.page(page);
            let mut w = [0u8; 8];
            w.copy_from_slice(&p[slot * 8..slot * 8 + 8]);
            entry = u64::from_le_bytes(w);
            ptr = Some((page, slot + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use proptest::prelude::*;

    /// A simulated RAM of `pages` pages at `base`, handing out free pages in a shuffled order.
    struct Sim {
        base: u64,
        mem: Vec<u8>,
        free: Vec<u64>,
        used: BTreeMap<u64, ()>,
    }

    impl Sim {
        fn new(base: u64, pages: usize, seed: u64) -> Sim {
            let mut free: Vec<u64> = (0..pages as u64).map(|i| base + i * PAGE_SIZE).collect();
            // Fisher-Yates with a xorshift: allocation order unrelated to address order.
            let mut x = seed | 1;
            for i in (1..free.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                free.swap(i, (x % (i as u64 + 1)) as usize);
            }
            Sim {
                base,
                mem: vec![0xee; pages * PAGE_SIZE as usize],
                free,
                used: BTreeMap::new(),
            }
        }

        fn bytes(&mut self, pa: u64, len: usize) -> &mut [u8] {
            let off = (pa - self.base) as usize;
            &mut self.mem[off..off + len]
        }

        /// Runs the list as the relocation page does.
        fn relocate(&mut self, head: u64) {
            let mut entry = head;
            let mut ptr = 0u64;
            let mut dest = 0u64;
            loop {
                let addr = entry & ADDR_MASK;
                if entry & IND_DONE != 0 {
                    return;
                }
                if entry & IND_SOURCE != 0 {
                    let page = self.bytes(addr, PAGE_SIZE as usize).to_vec();
                    self.bytes(dest, PAGE_SIZE as usize).copy_from_slice(&page);
                    dest += PAGE_SIZE;
                } else if entry & IND_INDIRECTION != 0 {
                    ptr = addr;
                } else if entry & IND_DESTINATION != 0 {
                    dest = addr;
                }
                let w = self.bytes(ptr, 8);
                entry = u64::from_le_bytes(w.try_into().unwrap());
                ptr += 8;
            }
        }
    }

    impl PhysPages for Sim {
        fn alloc(&mut self) -> Option<u64> {
            let pa = self.free.pop()?;
            self.used.insert(pa, ());
            Some(pa)
        }
        fn free(&mut self, pa: u64) {
            assert!(self.used.remove(&pa).is_some(), "double free of {pa:#x}");
            self.free.push(pa);
        }
        fn page(&mut self, pa: u64) -> &mut [u8] {
            assert!(self.used.contains_key(&pa), "access to a free page {pa:#x}");
            self.bytes(pa, PAGE_SIZE as usize)
        }
        fn claim(&mut self, pa: u64, count: u64) -> u64 {
            let mut n = 0;
            while n < count {
                let p = pa + n * PAGE_SIZE;
                let Some(i) = self.free.iter().position(|&f| f == p) else {
                    break;
                };
                self.free.swap_remove(i);
                self.used.insert(p, ());
                n += 1;
            }
            n
        }
        fn free_run(&mut self, pa: u64, count: u64) {
            for i in 0..count {
                self.free(pa + i * PAGE_SIZE);
            }
        }
    }

    const BASE: u64 = 0x4000_0000;
    const PAGES: usize = 2048;

    /// Segments from (page offset, data length, extra pages, fill byte) tuples, placed in
    /// ascending order without overlaps.
    fn layout(spec: &[(u64, usize, u64)]) -> (Vec<Vec<u8>>, Vec<(u64, u64)>) {
        let mut datas = Vec::new();
        let mut places = Vec::new();
        let mut at = BASE;
        for (k, &(gap, len, extra)) in spec.iter().enumerate() {
            at += gap * PAGE_SIZE;
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(31) ^ k as u8)
                .collect();
            let memsz = len as u64 + extra * PAGE_SIZE;
            places.push((at, memsz));
            at = mm::align_up(at + memsz, PAGE_SIZE);
            datas.push(data);
        }
        (datas, places)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn relocation_of_random_layouts(
            spec in proptest::collection::vec((0u64..40, 0usize..40_000, 0u64..3), 1..6),
            seed in any::<u64>(),
            zero_copy in any::<bool>(),
            busy in 0usize..300,
        ) {
            let (datas, places) = layout(&spec);
            let segs: Vec<Segment<'_>> = datas.iter().zip(&places)
                .map(|(d, &(dest, memsz))| Segment { data: d, dest, memsz })
                .collect();
            prop_assume!(places.last().is_none_or(|&(d, m)| d + m <= BASE + (PAGES as u64 / 2) * PAGE_SIZE));
            let mut sim = Sim::new(BASE, PAGES, seed);
            // Pages the running kernel uses: random ones, some inside destinations.
            let running: Vec<u64> = (0..busy).map(|_| sim.alloc().unwrap()).collect();
            let mut image = Kimage::load(&mut sim, &segs, zero_copy).unwrap();
            let control: Vec<u64> = (0..8).map(|_| image.alloc_control(&mut sim).unwrap()).collect();

            // Invariants: a source page is its own destination or in none; list and control
            // pages are in none.
            let entries = image.entries(&mut sim);
            let mut dest = 0;
            let mut seen = BTreeMap::new();
            for &e in &entries {
                let a = e & ADDR_MASK;
                if e & IND_DESTINATION != 0 { dest = a; }
                if e & IND_SOURCE != 0 {
                    let in_any = image.dests.iter().any(|d| d.overlaps(&Region::new(a, PAGE_SIZE)));
                    prop_assert!(a == dest || !in_any, "source {a:#x} for {dest:#x}");
                    prop_assert!(seen.insert(dest, a).is_none(), "destination {dest:#x} twice");
                    dest += PAGE_SIZE;
                }
            }
            for &p in image.list_pages().iter().chain(&control) {
                prop_assert!(!image.dests.iter().any(|d| d.overlaps(&Region::new(p, PAGE_SIZE))));
            }
            // Round trip: the list names every destination page once, except those written in
            // place; those are exactly the destination pages the running kernel does not use.
            let expect: usize = segs.iter().map(|s| (s.range().size() / PAGE_SIZE) as usize).sum();
            let in_place: usize = image.in_place().iter().map(|r| (r.size() / PAGE_SIZE) as usize).sum();
            prop_assert_eq!(seen.len() + in_place, expect);
            for r in image.in_place() {
                prop_assert!(image.dests.iter().any(|d| d.contains(r)));
                for pa in (r.start..r.end).step_by(PAGE_SIZE as usize) {
                    prop_assert!(!seen.contains_key(&pa), "{pa:#x} both in place and copied");
                    prop_assert!(!running.contains(&pa));
                }
            }
            if zero_copy {
                for &d in seen.keys() {
                    prop_assert!(running.contains(&d), "{d:#x} copied but was free");
                }
            } else {
                prop_assert_eq!(in_place, 0);
            }
            prop_assert_eq!(*entries.last().unwrap(), IND_DONE);

            // Every destination byte comes from its segment after the copy.
            let control_before: Vec<Vec<u8>> = control.iter().map(|&c| sim.page(c).to_vec()).collect();
            sim.relocate(image.head);
            for s in &segs {
                let r = s.range();
                let got = sim.bytes(r.start, r.size() as usize).to_vec();
                prop_assert_eq!(&got[..s.data.len()], s.data);
                prop_assert!(got[s.data.len()..].iter().all(|&b| b == 0));
            }
            for (c, before) in control.iter().zip(control_before) {
                prop_assert_eq!(sim.page(*c).to_vec(), before, "control page {:#x} changed", c);
            }
            image.free(&mut sim);
            for pa in running {
                sim.free(pa);
            }
            prop_assert_eq!(sim.used.len(), 0, "pages leaked");
        }
    }

    #[test]
    fn list_spans_several_pages() {
        // 1500 source pages need three list pages (511 entries each, plus the links).
        let data = vec![0x5a; 1500 * PAGE_SIZE as usize];
        let mut sim = Sim::new(BASE, 4096, 7);
        let segs = [Segment {
            data: &data,
            dest: BASE + 2048 * PAGE_SIZE,
            memsz: data.len() as u64,
        }];
        let mut image = Kimage::load(&mut sim, &segs, false).unwrap();
        assert_eq!(image.list_pages().len(), 3);
        assert_eq!(image.entries(&mut sim).len(), 1 + 1500 + 1);
        let last = BASE + (2048 + 1499) * PAGE_SIZE;
        let src = image.source_for(&mut sim, last).unwrap();
        assert_eq!(image.source_pages()[1499], src);
        assert_eq!(image.source_for(&mut sim, BASE), None);
        sim.relocate(image.head);
        assert!(sim.bytes(BASE + 2048 * PAGE_SIZE, data.len()) == &data[..]);
        image.free(&mut sim);
    }

    #[test]
    fn zero_copy_writes_free_destinations_in_place() {
        let data = vec![0xa5; 10 * PAGE_SIZE as usize + 100];
        let mut sim = Sim::new(BASE, 64, 11);
        let dest = BASE + 8 * PAGE_SIZE;
        // The "running kernel" holds pages 10 and 11 of the destination range.
        let mut running = Vec::new();
        for p in [dest + 2 * PAGE_SIZE, dest + 3 * PAGE_SIZE] {
            assert_eq!(sim.claim(p, 1), 1);
            running.push(p);
        }
        let segs = [Segment {
            data: &data,
            dest,
            memsz: data.len() as u64,
        }];
        let mut image = Kimage::load(&mut sim, &segs, true).unwrap();
        assert_eq!(
            image.source_pages().len(),
            2,
            "only the two busy pages are copied"
        );
        assert_eq!(
            image.in_place(),
            [
                Region::new(dest, 2 * PAGE_SIZE),
                Region::new(dest + 4 * PAGE_SIZE, 7 * PAGE_SIZE)
            ]
        );
        assert_eq!(image.in_place_bytes(&segs[0].range()), 9 * PAGE_SIZE);
        let e = image.entries(&mut sim);
        assert_eq!(e.len(), 4, "one destination, two sources, done: {e:x?}");
        assert_eq!(e[0], (dest + 2 * PAGE_SIZE) | IND_DESTINATION);
        assert_eq!(image.page_for(&mut sim, dest), Some(dest));
        assert_eq!(
            image.page_for(&mut sim, dest + 3 * PAGE_SIZE),
            Some(image.source_pages()[1])
        );
        sim.relocate(image.head);
        assert!(sim.bytes(dest, data.len()) == &data[..]);
        image.free(&mut sim);
        for p in running {
            sim.free(p);
        }
        assert_eq!(sim.used.len(), 0);
    }

    #[test]
    fn bad_segments_and_exhaustion_are_errors() {
        let d = [1u8; 10];
        let mut sim = Sim::new(BASE, 64, 3);
        let seg = |dest, memsz| Segment {
            data: &d,
            dest,
            memsz,
        };
        assert_eq!(
            Kimage::load(&mut sim, &[seg(BASE + 1, 4096)], false).unwrap_err(),
            LoadError::Unaligned {
                segment: 0,
                dest: BASE + 1
            }
        );
        assert_eq!(
            Kimage::load(&mut sim, &[seg(BASE, 5)], false).unwrap_err(),
            LoadError::MemszBelowData { segment: 0 }
        );
        assert_eq!(
            Kimage::load(&mut sim, &[seg(BASE, 8192), seg(BASE + 4096, 10)], false).unwrap_err(),
            LoadError::Overlap { a: 0, b: 1 }
        );
        let big = vec![0u8; 100 * PAGE_SIZE as usize];
        let e = Kimage::load(
            &mut sim,
            &[Segment {
                data: &big,
                dest: BASE,
                memsz: big.len() as u64,
            }],
            false,
        )
        .unwrap_err();
        assert!(matches!(e, LoadError::OutOfMemory { .. }));
        assert_eq!(sim.used.len(), 0, "a failed load gives everything back");
    }
}
