//! Stage-1 translation tables: 4 KiB granule, four levels (0–3), 48-bit virtual addresses.
//!
//! [`PageTable::map`] maps a range with the largest entries that fit: 1 GiB blocks at level 1,
//! 2 MiB blocks at level 2, 4 KiB pages at level 3 only at unaligned edges. Tables come from a
//! [`TableAlloc`], which says both where a new table lives physically and how to reach it: the
//! kernel uses frames through the linear map (or, before the linear map exists, a pool inside
//! the image); the tests use a simulated physical memory. Nothing here touches a register.
//!
//! The builder never changes a live entry: mapping over an existing one is an error
//! ([`MapError::AlreadyMapped`]), so break-before-make never arises inside it.

use crate::PAGE_SIZE;
use core::fmt;
use core::ptr::NonNull;

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Size mapped by one entry at level 1 (a 1 GiB block).
pub const L1_BLOCK: u64 = 1 << 30;
/// Size mapped by one entry at level 2 (a 2 MiB block).
pub const L2_BLOCK: u64 = 1 << 21;

/// Descriptor bits (Arm ARM D8.3, VMSAv8-64 translation table format).
pub mod desc {
    /// The entry is valid.
    pub const VALID: u64 = 1 << 0;
    /// At levels 0–2: the entry points to a table (clear: a block). At level 3: must be set.
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// Shift of `AttrIndx`, the `MAIR_EL1` attribute index.
    pub const ATTR_INDX_SHIFT: u64 = 2;
    /// `AP[2]`: read-only.
    pub const AP_RO: u64 = 1 << 7;
    /// `SH` = 0b11: inner shareable.
    pub const SH_INNER: u64 = 0b11 << 8;
    /// Access flag (no access-flag faults).
    pub const AF: u64 = 1 << 10;
    /// Privileged execute-never.
    pub const PXN: u64 = 1 << 53;
    /// Unprivileged execute-never.
    pub const UXN: u64 = 1 << 54;
    /// Output address bits 47:12.
    pub const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
    /// The bits that say what an entry maps and how, apart from its address and type.
    pub const ATTR_MASK: u64 = !ADDR_MASK & !(VALID | TABLE_OR_PAGE);
}

/// Memory types, by their index in `MAIR_EL1` (the boot code programs the same indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum MemAttr {
    /// Device-nGnRnE, for MMIO.
    Device = 0,
    /// Normal memory, write-back cacheable.
    Normal = 1,
    /// Normal memory, non-cacheable.
    NormalNonCacheable = 2,
}

/// What the kernel may do with a mapping. Nothing is ever mapped writable and executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Read only, never executed.
    ReadOnly,
    /// Read and write, never executed.
    ReadWrite,
    /// Read and execute: kernel text.
    ReadExec,
}

/// Memory type and permissions of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Memory type.
    pub mem: MemAttr,
    /// Permissions.
    pub perm: Perm,
}

impl Attrs {
    /// Kernel text.
    pub const TEXT: Attrs = Attrs {
        mem: MemAttr::Normal,
        perm: Perm::ReadExec,
    };
    /// Read-only data.
    pub const RODATA: Attrs = Attrs {
        mem: MemAttr::Normal,
        perm: Perm::ReadOnly,
    };
    /// Data, BSS, stacks, the linear map.
    pub const DATA: Attrs = Attrs {
        mem: MemAttr::Normal,
        perm: Perm::ReadWrite,
    };
    /// Device registers.
    pub const DEVICE: Attrs = Attrs {
        mem: MemAttr::Device,
        perm: Perm::ReadWrite,
    };

    /// The attribute bits of a block or page descriptor with these attributes (kernel-only:
    /// EL0 never gets access and never executes).
    pub const fn bits(self) -> u64 {
        let base = desc::AF | ((self.mem as u64) << desc::ATTR_INDX_SHIFT) | desc::UXN;
        let base = match self.mem {
            // Device memory is not shareable-attributed (it is always treated as outer
            // shareable); keep SH = 0 for it.
            MemAttr::Device => base,
            _ => base | desc::SH_INNER,
        };
        match self.perm {
            Perm::ReadOnly => base | desc::AP_RO | desc::PXN,
            Perm::ReadWrite => base | desc::PXN,
            Perm::ReadExec => base | desc::AP_RO,
        }
    }

    /// Decodes the attribute bits of a descriptor (the inverse of [`Attrs::bits`]).
    pub fn from_bits(bits: u64) -> Option<Attrs> {
        let mem = match (bits >> desc::ATTR_INDX_SHIFT) & 0b111 {
            0 => MemAttr::Device,
            1 => MemAttr::Normal,
            2 => MemAttr::NormalNonCacheable,
            _ => return None,
        };
        let ro = bits & desc::AP_RO != 0;
        let pxn = bits & desc::PXN != 0;
        let perm = match (ro, pxn) {
            (true, true) => Perm::ReadOnly,
            (false, true) => Perm::ReadWrite,
            (true, false) => Perm::ReadExec,
            (false, false) => return None,
        };
        Some(Attrs { mem, perm })
    }
}

/// Where translation tables come from: the walkers read and write tables only through
/// [`TableAlloc::table_ptr`], and rely on it.
///
/// # Safety
/// For every table address `alloc_table` returned, and every table the trees it is used with
/// name, `table_ptr` must return a pointer to that table's 4 KiB, valid for reads and writes
/// for as long as the allocator lives, and used by nothing else while a walker runs.
pub unsafe trait TableAlloc {
    /// Allocates a zero-filled, 4 KiB-aligned table and returns its physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The table at physical address `pa`, to read and write.
    fn table_ptr(&self, pa: u64) -> NonNull<[u64; ENTRIES]>;
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The table allocator is empty.
    OutOfTables {
        /// The virtual address being mapped when it ran out.
        va: u64,
    },
    /// `va`, `pa` or `len` is not a multiple of 4 KiB.
    Unaligned {
        /// Requested virtual address.
        va: u64,
        /// Requested physical address.
        pa: u64,
        /// Requested length.
        len: u64,
    },
    /// Part of the range is mapped already.
    AlreadyMapped {
        /// The first virtual address found mapped.
        va: u64,
    },
    /// The physical range does not fit in 48 bits.
    PhysOutOfRange {
        /// The offending physical address.
        pa: u64,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::OutOfTables { va } => {
                write!(
                    f,
                    "no memory left for a translation table (mapping VA {va:#x})"
                )
            }
            MapError::Unaligned { va, pa, len } => write!(
                f,
                "mapping VA {va:#x} -> PA {pa:#x} length {len:#x}: not 4 KiB aligned"
            ),
            MapError::AlreadyMapped { va } => write!(f, "VA {va:#x} is already mapped"),
            MapError::PhysOutOfRange { pa } => {
                write!(f, "PA {pa:#x} is beyond the 48-bit physical address range")
            }
        }
    }
}

/// What one or more calls to [`PageTable::map`] produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Translation tables allocated.
    pub tables: usize,
    /// 1 GiB block entries written.
    pub blocks_1g: usize,
    /// 2 MiB block entries written.
    pub blocks_2m: usize,
    /// 4 KiB page entries written.
    pub pages_4k: usize,
}

impl core::ops::AddAssign for MapStats {
    fn add_assign(&mut self, o: MapStats) {
        self.tables += o.tables;
        self.blocks_1g += o.blocks_1g;
        self.blocks_2m += o.blocks_2m;
        self.pages_4k += o.pages_4k;
    }
}

/// The result of looking up a virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address.
    pub pa: u64,
    /// The mapping's attributes.
    pub attrs: Attrs,
    /// Size of the entry that maps it (1 GiB, 2 MiB or 4 KiB).
    pub entry_size: u64,
}

/// Index into the table at `level` for `va` (bits 47:39, 38:30, 29:21, 20:12).
pub const fn index(va: u64, level: usize) -> usize {
    ((va >> (12 + 9 * (3 - level))) & 0x1ff) as usize
}

/// Size of the region one entry maps at `level`.
pub const fn entry_size(level: usize) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// A stage-1 translation table tree, identified by its root (level 0) table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageTable {
    root: u64,
}

impl PageTable {
    /// Allocates an empty root table.
    pub fn new(alloc: &mut impl TableAlloc) -> Result<Self, MapError> {
        let root = alloc.alloc_table().ok_or(MapError::OutOfTables { va: 0 })?;
        Ok(PageTable { root })
    }

    /// A tree whose root table is at physical address `root`.
    pub const fn from_root(root: u64) -> Self {
        PageTable { root }
    }

    /// Physical address of the root table (the value for `TTBRx_EL1`).
    pub const fn root(&self) -> u64 {
        self.root
    }

    /// Maps `[va, va + len)` to `[pa, pa + len)` with `attrs`, using 1 GiB and 2 MiB blocks
    /// wherever `va` and `pa` are both aligned to them and 4 KiB pages elsewhere.
    pub fn map(
        &mut self,
        alloc: &mut impl TableAlloc,
        va: u64,
        pa: u64,
        len: u64,
        attrs: Attrs,
    ) -> Result<MapStats, MapError> {
        if !(va.is_multiple_of(PAGE_SIZE)
            && pa.is_multiple_of(PAGE_SIZE)
            && len.is_multiple_of(PAGE_SIZE))
        {
            return Err(MapError::Unaligned { va, pa, len });
        }
        let end = pa.checked_add(len).ok_or(MapError::PhysOutOfRange { pa })?;
        if end > desc::ADDR_MASK + PAGE_SIZE {
            return Err(MapError::PhysOutOfRange { pa: end - 1 });
        }
        let mut stats = MapStats::default();
        self.map_level(alloc, self.root, 0, va, pa, len, attrs.bits(), &mut stats)?;
        Ok(stats)
    }

    #[allow(clippy::too_many_arguments)]
    fn map_level(
        &self,
        alloc: &mut impl TableAlloc,
        table: u64,
        level: usize,
        mut va: u64,
        mut pa: u64,
        mut len: u64,
        attr_bits: u64,
        stats: &mut MapStats,
    ) -> Result<(), MapError> {
        let size = entry_size(level);
        while len > 0 {
            let idx = index(va, level);
            // The part of the range that falls under this entry.
            let span = (size - (va & (size - 1))).min(len);
            let ptr = alloc.table_ptr(table).as_ptr();
            // SAFETY: `table_ptr` returns a valid pointer for every table this tree owns, and
            // `idx` < ENTRIES.
            let entry = unsafe { (*ptr)[idx] };
            let block_ok = level >= 1 && span == size && pa.is_multiple_of(size);
            if block_ok {
                if entry & desc::VALID != 0 {
                    return Err(MapError::AlreadyMapped { va });
                }
                let kind = if level == 3 { desc::TABLE_OR_PAGE } else { 0 };
                // SAFETY: as above.
                unsafe { (*ptr)[idx] = pa | attr_bits | kind | desc::VALID };
                match level {
                    1 => stats.blocks_1g += 1,
                    2 => stats.blocks_2m += 1,
                    _ => stats.pages_4k += 1,
                }
            } else {
                let next = if entry & desc::VALID == 0 {
                    let new = alloc.alloc_table().ok_or(MapError::OutOfTables { va })?;
                    stats.tables += 1;
                    // SAFETY: as above.
                    unsafe { (*ptr)[idx] = new | desc::TABLE_OR_PAGE | desc::VALID };
                    new
                } else if entry & desc::TABLE_OR_PAGE != 0 && level < 3 {
                    entry & desc::ADDR_MASK
                } else {
                    return Err(MapError::AlreadyMapped { va });
                };
                self.map_level(alloc, next, level + 1, va, pa, span, attr_bits, stats)?;
            }
            va = va.wrapping_add(span);
            pa += span;
            len -= span;
        }
        Ok(())
    }

    /// Looks up `va`, as the MMU would.
    pub fn translate(&self, alloc: &impl TableAlloc, va: u64) -> Option<Translation> {
        let mut table = self.root;
        for level in 0..4 {
            // SAFETY: `table_ptr` is valid for every table of this tree.
            let entry = unsafe { (*alloc.table_ptr(table).as_ptr())[index(va, level)] };
            if entry & desc::VALID == 0 {
                return None;
            }
            let is_table = entry & desc::TABLE_OR_PAGE != 0 && level < 3;
            if is_table {
                table = entry & desc::ADDR_MASK;
                continue;
            }
            let size = entry_size(level);
            let attrs = Attrs::from_bits(entry & desc::ATTR_MASK)?;
            let pa = (entry & desc::ADDR_MASK & !(size - 1)) | (va & (size - 1));
            return Some(Translation {
                pa,
                attrs,
                entry_size: size,
            });
        }
        None
    }

    /// Counts the tables of this tree, root included.
    pub fn table_count(&self, alloc: &impl TableAlloc) -> usize {
        fn count(alloc: &impl TableAlloc, table: u64, level: usize) -> usize {
            let mut n = 1;
            if level == 3 {
                return n;
            }
            for i in 0..ENTRIES {
                // SAFETY: `table_ptr` is valid for every table of this tree.
                let entry = unsafe { (*alloc.table_ptr(table).as_ptr())[i] };
                if entry & desc::VALID != 0 && entry & desc::TABLE_OR_PAGE != 0 {
                    n += count(alloc, entry & desc::ADDR_MASK, level + 1);
                }
            }
            n
        }
        count(alloc, self.root, 0)
    }
}

#[cfg(test)]
pub(crate) mod sim {
    //! A simulated physical memory holding translation tables.
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::cell::UnsafeCell;

    /// Tables live at `base + i * 4 KiB`.
    pub struct SimTables {
        pub base: u64,
        pub tables: Vec<Box<UnsafeCell<[u64; ENTRIES]>>>,
        pub limit: usize,
    }

    impl SimTables {
        pub fn new(base: u64) -> Self {
            SimTables {
                base,
                tables: Vec::new(),
                limit: usize::MAX,
            }
        }
    }

    // SAFETY: every table is a boxed array the simulator owns for its lifetime; `pa` indexes
    // it.
    unsafe impl TableAlloc for SimTables {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.tables.len() >= self.limit {
                return None;
            }
            self.tables.push(Box::new(UnsafeCell::new([0; ENTRIES])));
            Some(self.base + (self.tables.len() as u64 - 1) * PAGE_SIZE)
        }
        fn table_ptr(&self, pa: u64) -> NonNull<[u64; ENTRIES]> {
            let i = ((pa - self.base) / PAGE_SIZE) as usize;
            NonNull::new(self.tables[i].get()).expect("a boxed table")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sim::SimTables;
    use super::*;
    use crate::layout::LINEAR_BASE;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn check_identity_offset(pt: &PageTable, t: &SimTables, pa: u64, len: u64, step: u64) {
        let mut a = pa;
        while a < pa + len {
            let tr = pt.translate(t, a + LINEAR_BASE).expect("mapped");
            assert_eq!(tr.pa, a);
            a += step;
        }
    }

    #[test]
    fn juno_shaped_banks_use_only_gib_blocks() {
        // 2 GiB at 0x8000_0000 and 6 GiB at 0x8_8000_0000: every edge is 1 GiB aligned.
        let mut t = SimTables::new(0x4000_0000);
        let mut pt = PageTable::new(&mut t).unwrap();
        let mut s = MapStats::default();
        for (pa, len) in [(0x8000_0000, 2 * GIB), (0x8_8000_0000, 6 * GIB)] {
            s += pt
                .map(&mut t, LINEAR_BASE + pa, pa, len, Attrs::DATA)
                .unwrap();
        }
        assert_eq!(s.blocks_1g, 8);
        assert_eq!((s.blocks_2m, s.pages_4k), (0, 0));
        // Root plus one level-1 table; no level-2 or level-3 tables.
        assert_eq!(s.tables, 1);
        assert_eq!(pt.table_count(&t), 2);
        check_identity_offset(&pt, &t, 0x8000_0000, 2 * GIB, 64 * MIB);
        check_identity_offset(&pt, &t, 0x8_8000_0000, 6 * GIB, 64 * MIB);
        assert_eq!(
            pt.translate(&t, LINEAR_BASE + 0x1_0000_0000),
            None,
            "the hole stays unmapped"
        );
    }

    #[test]
    fn unaligned_bank_gets_2m_and_4k_at_its_edges() {
        // From 0x4000_3000 to 0x8020_5000: 4 KiB pages up to 0x4020_0000, 2 MiB blocks up to
        // 0x8000_0000... (the 1 GiB at 0x4000_0000 is not fully covered), then 2 MiB + 4 KiB.
        let (pa, end) = (0x4000_3000u64, 0x8020_5000u64);
        let mut t = SimTables::new(0x1000_0000);
        let mut pt = PageTable::new(&mut t).unwrap();
        let s = pt
            .map(&mut t, LINEAR_BASE + pa, pa, end - pa, Attrs::DATA)
            .unwrap();
        // Head: 0x4000_3000..0x4020_0000 in pages; then 2 MiB blocks to 0x8000_0000;
        // then one 2 MiB block 0x8000_0000..0x8020_0000; tail 0x8020_0000..0x8020_5000 pages.
        assert_eq!(s.pages_4k, ((0x4020_0000 - pa) / PAGE_SIZE + 5) as usize);
        assert_eq!(
            s.blocks_2m,
            (0x8000_0000u64 - 0x4020_0000) as usize / (2 << 20) + 1
        );
        assert_eq!(s.blocks_1g, 0);
        check_identity_offset(&pt, &t, pa, end - pa, 3 * PAGE_SIZE);
        assert_eq!(pt.translate(&t, LINEAR_BASE + pa - PAGE_SIZE), None);
        assert_eq!(pt.translate(&t, LINEAR_BASE + end), None);
        let tr = pt.translate(&t, LINEAR_BASE + 0x5000_0000).unwrap();
        assert_eq!(tr.entry_size, 2 << 20);
        let tr = pt.translate(&t, LINEAR_BASE + pa).unwrap();
        assert_eq!(tr.entry_size, PAGE_SIZE);
    }

    #[test]
    fn permissions_are_kept_and_never_wx() {
        let mut t = SimTables::new(0);
        let mut pt = PageTable::new(&mut t).unwrap();
        let va = 0xffff_8000_0000_0000;
        pt.map(&mut t, va, 0x4020_0000, 0x3000, Attrs::TEXT)
            .unwrap();
        pt.map(&mut t, va + 0x3000, 0x4020_3000, 0x1000, Attrs::RODATA)
            .unwrap();
        pt.map(&mut t, va + 0x5000, 0x4020_5000, 0x2000, Attrs::DATA)
            .unwrap();
        pt.map(&mut t, va + (1 << 30), 0x0900_0000, 0x1000, Attrs::DEVICE)
            .unwrap();
        let at = |v| pt.translate(&t, v).map(|x| x.attrs);
        assert_eq!(at(va), Some(Attrs::TEXT));
        assert_eq!(at(va + 0x3000), Some(Attrs::RODATA));
        assert_eq!(
            at(va + 0x4000),
            None,
            "a guard page between two mappings stays unmapped"
        );
        assert_eq!(at(va + 0x6000), Some(Attrs::DATA));
        assert_eq!(at(va + (1 << 30)), Some(Attrs::DEVICE));
        for a in [Attrs::TEXT, Attrs::RODATA, Attrs::DATA, Attrs::DEVICE] {
            let b = a.bits();
            let writable = b & desc::AP_RO == 0;
            let exec = b & desc::PXN == 0;
            assert!(!(writable && exec), "{a:?} is W+X");
            assert_ne!(b & desc::UXN, 0, "EL0 never executes");
        }
    }

    #[test]
    fn overlapping_maps_and_bad_arguments_are_errors() {
        let mut t = SimTables::new(0);
        let mut pt = PageTable::new(&mut t).unwrap();
        pt.map(&mut t, LINEAR_BASE, 0, 4 << 20, Attrs::DATA)
            .unwrap();
        assert_eq!(
            pt.map(&mut t, LINEAR_BASE + 0x1000, 0x1000, 0x1000, Attrs::DATA),
            Err(MapError::AlreadyMapped {
                va: LINEAR_BASE + 0x1000
            })
        );
        assert!(matches!(
            pt.map(&mut t, LINEAR_BASE, 0x800, 0x1000, Attrs::DATA),
            Err(MapError::Unaligned { .. })
        ));
        let mut small = SimTables::new(0);
        small.limit = 2;
        let mut pt = PageTable::new(&mut small).unwrap();
        assert!(matches!(
            pt.map(&mut small, LINEAR_BASE, 0, 0x1000, Attrs::DATA),
            Err(MapError::OutOfTables { .. })
        ));
    }

    #[test]
    fn eight_gib_linear_map_table_pages() {
        // QEMU virt with 8 GiB: RAM at 0x4000_0000.
        let mut t = SimTables::new(0);
        let mut pt = PageTable::new(&mut t).unwrap();
        let s = pt
            .map(
                &mut t,
                LINEAR_BASE + 0x4000_0000,
                0x4000_0000,
                8 * GIB,
                Attrs::DATA,
            )
            .unwrap();
        assert_eq!(s.blocks_1g, 8);
        assert_eq!(pt.table_count(&t), 2);
    }
}
