//! GICv3 facts that need no CPU: where a redistributor's LPI tables are, from the
//! `GICR_PROPBASER` and `GICR_PENDBASER` values a previous kernel left (GIC architecture
//! specification, IHI 0069H, 12.11.26 and 12.11.24).

use mm::memmap::Region;

/// `PROPBASER.Physical_Address`: bits 51:12 (the table is 4 KiB aligned).
const PROPBASER_PA_MASK: u64 = ((1 << 52) - 1) & !((1 << 12) - 1);
/// `PROPBASER.IDbits`: bits 4:0, the number of interrupt ID bits minus one.
const PROPBASER_IDBITS_MASK: u64 = 0x1f;
/// `PENDBASER.Physical_Address`: bits 51:16 (the table is 64 KiB aligned).
const PENDBASER_PA_MASK: u64 = ((1 << 52) - 1) & !((1 << 16) - 1);
/// LPIs are INTIDs from 8192; the property table has a byte for each.
const FIRST_LPI: u64 = 8192;
/// The pending table's alignment, and the smallest one Linux allocates.
const PEND_ALIGN: u64 = 64 << 10;

/// The LPI configuration (property) table and the pending table that a redistributor with
/// `EnableLPIs` set reads and writes. `None` when the values describe no table (IDbits too
/// small for any LPI, or a zero address).
pub fn lpi_tables(propbaser: u64, pendbaser: u64) -> Option<(Region, Region)> {
    let id_bits = (propbaser & PROPBASER_IDBITS_MASK) + 1;
    let ids = 1u64 << id_bits;
    if ids <= FIRST_LPI {
        return None;
    }
    let prop_pa = propbaser & PROPBASER_PA_MASK;
    let pend_pa = pendbaser & PENDBASER_PA_MASK;
    if prop_pa == 0 || pend_pa == 0 {
        return None;
    }
    // One property byte per LPI; one pending bit per INTID (the first 1 KiB covers the
    // non-LPI INTIDs), rounded up as Linux allocates it.
    let prop = Region::new(prop_pa, mm::align_up(ids - FIRST_LPI, 4096));
    let pend = Region::new(pend_pa, mm::align_up(ids / 8, PEND_ALIGN));
    Some((prop, pend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_16_id_bits() {
        // What Linux 6.1 programs on QEMU virt: 16 ID bits (PROPBASER.IDbits = 15), inner
        // shareable, cacheable attributes in the low bits.
        let (prop, pend) = lpi_tables(0x4_8123_0000 | 0x780 | 15, 0x4_8124_0000 | 0x780).unwrap();
        assert_eq!(prop, Region::new(0x4_8123_0000, 65536 - 8192));
        assert_eq!(pend, Region::new(0x4_8124_0000, 64 << 10));
    }

    #[test]
    fn large_and_degenerate_tables() {
        // 20 ID bits: a 1 MiB - 8 KiB property table and a 128 KiB pending table.
        let (prop, pend) = lpi_tables(0x8000_0000 | 19, 0x9000_0000).unwrap();
        assert_eq!(prop.size(), (1 << 20) - 8192);
        assert_eq!(pend.size(), 128 << 10);
        // 13 ID bits cover no LPI; a zero address is no table.
        assert_eq!(lpi_tables(0x8000_0000 | 12, 0x9000_0000), None);
        assert_eq!(lpi_tables(15, 0x9000_0000), None);
        assert_eq!(lpi_tables(0x8000_0000 | 15, 0xffff), None);
        // Address bits above 51 and below the alignment are not part of the address.
        let (prop, pend) = lpi_tables(0xfff0_0000_8000_0fff, 0xfff0_0000_9000_ffff).unwrap();
        assert_eq!((prop.start, pend.start), (0x8000_0000, 0x9000_0000));
    }
}
