//! Transitional page tables for kexec, built at load time from control pages.
//!
//! - [`copy_range`]: hibernate's copier. It copies the part of a live tree that maps a VA range
//!   (the linear map) into new tables: blocks stay blocks, so a block-mapped linear map of any
//!   size costs a handful of pages; read-only entries become writable (the relocation writes
//!   through the copy); a level-3 entry that is present but invalid is made valid again.
//! - [`idmap_page`]: a tree that maps one page at VA = PA and nothing else, built level by
//!   level in its own tables, for TTBR0 while the relocation page turns the MMU off.
//!
//! Both take their tables from a [`TableAlloc`] (the kernel's: control pages that overlap no
//! kexec destination), so the relocation copy can never overwrite them.

use crate::paging::ENTRIES;
use crate::paging::{desc, entry_size, Attrs, MapError, MapStats, PageTable, TableAlloc};
use crate::PAGE_SIZE;

/// What a copy produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    /// The new tree.
    pub table: PageTable,
    /// Tables allocated, root included.
    pub pages: usize,
    /// Entries copied, by size.
    pub stats: MapStats,
}

/// Copies the entries of `src` (whose tables `src_alloc` reaches) that map any part of
/// `[start, end)` into a new tree allocated from `dst_alloc`, clearing read-only bits.
///
/// Entries are copied whole, so a block that straddles `end` is copied as the block it is.
pub fn copy_range(
    src: &PageTable,
    src_alloc: &impl TableAlloc,
    dst_alloc: &mut impl TableAlloc,
    start: u64,
    end: u64,
) -> Result<Copy, MapError> {
    let root = dst_alloc
        .alloc_table()
        .ok_or(MapError::OutOfTables { va: start })?;
    let mut out = Copy {
        table: PageTable::from_root(root),
        pages: 1,
        stats: MapStats::default(),
    };
    copy_level(
        src_alloc,
        dst_alloc,
        src.root(),
        root,
        0,
        0,
        start,
        end,
        &mut out,
    )?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn copy_level(
    src_alloc: &impl TableAlloc,
    dst_alloc: &mut impl TableAlloc,
    src_table: u64,
    dst_table: u64,
    level: usize,
    table_va: u64,
    start: u64,
    end: u64,
    out: &mut Copy,
) -> Result<(), MapError> {
    let size = entry_size(level);
    for i in 0..ENTRIES {
        // The VA this entry maps; the top 16 bits follow the range (TTBR1 addresses).
        let va = table_va | ((i as u64) * size) | (start & !((1u64 << 48) - 1));
        let va_end = va.wrapping_add(size - 1);
        if va_end < start || va > end - 1 {
            continue;
        }
        // SAFETY: `table_ptr` is valid for every table of the source tree, and i < ENTRIES.
        let entry = unsafe { (*src_alloc.table_ptr(src_table).as_ptr())[i] };
        if entry == 0 {
            continue;
        }
        let is_table = entry & desc::VALID != 0 && entry & desc::TABLE_OR_PAGE != 0 && level < 3;
        let new = if is_table {
            let next = dst_alloc
                .alloc_table()
                .ok_or(MapError::OutOfTables { va })?;
            out.pages += 1;
            copy_level(
                src_alloc,
                dst_alloc,
                entry & desc::ADDR_MASK,
                next,
                level + 1,
                va & ((1u64 << 48) - 1),
                start,
                end,
                out,
            )?;
            next | desc::TABLE_OR_PAGE | desc::VALID
        } else if entry & desc::VALID == 0 && level < 3 {
            // An invalid non-zero entry above level 3 means nothing to the MMU; skip it.
            continue;
        } else {
            match level {
                1 => out.stats.blocks_1g += 1,
                2 => out.stats.blocks_2m += 1,
                _ => out.stats.pages_4k += 1,
            }
            (entry & !desc::AP_RO) | desc::VALID
        };
        // SAFETY: `next`/`dst_table` came from `dst_alloc`, which reaches its own tables.
        unsafe { (*dst_alloc.table_ptr(dst_table).as_ptr())[i] = new };
    }
    Ok(())
}

/// Builds a tree that maps the single page at `pa` to VA = `pa`, read-only and executable,
/// with all four levels in tables from `alloc`. Returns the tree and its page count.
pub fn idmap_page(alloc: &mut impl TableAlloc, pa: u64) -> Result<(PageTable, usize), MapError> {
    if !pa.is_multiple_of(PAGE_SIZE) {
        return Err(MapError::Unaligned {
            va: pa,
            pa,
            len: PAGE_SIZE,
        });
    }
    if pa > desc::ADDR_MASK {
        return Err(MapError::PhysOutOfRange { pa });
    }
    let mut pt = PageTable::new(alloc)?;
    let stats = pt.map(alloc, pa, pa, PAGE_SIZE, Attrs::TEXT)?;
    Ok((pt, 1 + stats.tables))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{KIMAGE_VADDR, LINEAR_BASE, LINEAR_SIZE};
    use crate::paging::sim::SimTables;
    use crate::paging::{index, Perm};

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// A kernel-like tree: linear map of `banks` plus a 4 KiB-mapped image at KIMAGE_VADDR.
    fn kernel_tree(t: &mut SimTables, banks: &[(u64, u64)]) -> PageTable {
        let mut pt = PageTable::new(t).unwrap();
        for &(pa, len) in banks {
            pt.map(t, LINEAR_BASE + pa, pa, len, Attrs::DATA).unwrap();
        }
        pt.map(t, KIMAGE_VADDR, 0x4020_0000, 64 * 1024, Attrs::TEXT)
            .unwrap();
        pt.map(
            t,
            KIMAGE_VADDR + 0x10000,
            0x4021_0000,
            0x3000,
            Attrs::RODATA,
        )
        .unwrap();
        pt
    }

    /// Checks that `dst` translates every `step` of `[pa, pa + len)` in the linear map as
    /// `src` does, and writably.
    #[allow(clippy::too_many_arguments)]
    fn assert_same(
        src: &PageTable,
        st: &SimTables,
        dst: &PageTable,
        dt: &SimTables,
        pa: u64,
        len: u64,
        step: u64,
    ) {
        let mut a = pa;
        while a < pa + len {
            let va = LINEAR_BASE + a;
            let s = src.translate(st, va).unwrap();
            let d = dst.translate(dt, va).unwrap();
            assert_eq!((s.pa, s.entry_size), (d.pa, d.entry_size), "{va:#x}");
            assert_eq!(d.attrs.perm, Perm::ReadWrite);
            a += step;
        }
    }

    /// Rewrites the level-3 entry for `va` with `f`.
    fn edit_page_entry(pt: &PageTable, t: &SimTables, va: u64, f: impl Fn(u64) -> u64) {
        let mut table = pt.root();
        for level in 0..3 {
            // SAFETY: the simulated tables are valid for every table of `pt`.
            table = unsafe { (*t.table_ptr(table).as_ptr())[index(va, level)] } & desc::ADDR_MASK;
        }
        // SAFETY: as above.
        unsafe {
            let e = &mut (*t.table_ptr(table).as_ptr())[index(va, 3)];
            *e = f(*e);
        }
    }

    #[test]
    fn juno_8g_copies_into_two_pages() {
        let mut t = SimTables::new(0x1000_0000_0000);
        let banks = [(0x8000_0000, 2 * GIB), (0x8_8000_0000, 6 * GIB)];
        let pt = kernel_tree(&mut t, &banks);
        // The copy's tables come from the same simulated memory, through a second handle.
        let mut dst = SimTables::new(0x2000_0000_0000);
        let c = copy_range(&pt, &t, &mut dst, LINEAR_BASE, LINEAR_BASE + LINEAR_SIZE).unwrap();
        assert_eq!(c.pages, 2, "root and one level-1 table");
        assert_eq!(c.stats.blocks_1g, 8);
        for &(pa, len) in &banks {
            let mut a = pa;
            while a < pa + len {
                let va = LINEAR_BASE + a;
                assert_eq!(pt.translate(&t, va), c.table.translate(&dst, va));
                a += 256 * MIB;
            }
        }
        // The image is not part of the copy.
        assert_eq!(c.table.translate(&dst, KIMAGE_VADDR), None);
    }

    #[test]
    fn unaligned_bank_copies_every_translation() {
        // 2 MiB + 20 KiB edges on both sides: 4 KiB pages, 2 MiB blocks, one 1 GiB block.
        let mut t = SimTables::new(0x1000_0000_0000);
        let (pa, len) = (0x3fdf_b000, GIB + 4 * MIB + 0x9000);
        let pt = kernel_tree(&mut t, &[(pa, len)]);
        // One linear page read-only and one invalid-but-present, as a debug allocator would
        // leave them: the copy must map both, writable.
        let ro_va = LINEAR_BASE + pa;
        let gone_va = LINEAR_BASE + pa + PAGE_SIZE;
        edit_page_entry(&pt, &t, ro_va, |e| e | desc::AP_RO);
        edit_page_entry(&pt, &t, gone_va, |e| e & !desc::VALID);
        assert_eq!(pt.translate(&t, gone_va), None);
        let mut dst = SimTables::new(0x2000_0000_0000);
        let c = copy_range(&pt, &t, &mut dst, LINEAR_BASE, LINEAR_BASE + LINEAR_SIZE).unwrap();
        assert_eq!(
            c.pages,
            pt.table_count(&t) - 3,
            "all but the image's level-1, -2 and -3 tables"
        );
        assert!(c.stats.blocks_1g == 1 && c.stats.blocks_2m > 0 && c.stats.pages_4k > 0);
        // Compare with what the original meant: restore it, then check every page.
        edit_page_entry(&pt, &t, gone_va, |e| e | desc::VALID);
        edit_page_entry(&pt, &t, ro_va, |e| e & !desc::AP_RO);
        assert_same(&pt, &t, &c.table, &dst, pa, len, PAGE_SIZE);
        assert_eq!(c.table.translate(&dst, LINEAR_BASE + pa + len), None);
        assert_eq!(c.table.translate(&dst, LINEAR_BASE + pa - PAGE_SIZE), None);
    }

    #[test]
    fn idmap_is_one_page_in_four_tables() {
        let mut t = SimTables::new(0x1000_0000_0000);
        let pa = 0x8_8765_4000;
        let (pt, pages) = idmap_page(&mut t, pa).unwrap();
        assert_eq!(pages, 4);
        let tr = pt.translate(&t, pa + 0x123).unwrap();
        assert_eq!(tr.pa, pa + 0x123);
        assert_eq!(tr.attrs, Attrs::TEXT);
        assert_eq!(pt.translate(&t, pa + PAGE_SIZE), None);
        assert_eq!(pt.translate(&t, pa - PAGE_SIZE), None);
        assert!(idmap_page(&mut t, pa + 8).is_err());
    }
}
