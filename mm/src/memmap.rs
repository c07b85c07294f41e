//! The physical memory map: RAM banks and what is reserved inside them.
//!
//! Read from the DTB ([`MemoryMap::from_fdt`]): every `device_type = "memory"` node with any
//! number of `reg` entries, the `/memreserve/` block, and `/reserved-memory` children (honouring
//! `no-map`). The kernel then adds what it occupies itself (image, DTB, initrd) with
//! [`MemoryMap::reserve`]. From that come the frames to hand out ([`MemoryMap::free_regions`])
//! and the ranges to put in the linear map ([`MemoryMap::linear_regions`]).

use crate::{align_down, align_up, PAGE_SIZE};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use fdt::Fdt;

pub use crate::region::Region;

/// Why a range is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedKind {
    /// A `/memreserve/` entry of the DTB.
    MemReserve,
    /// A `/reserved-memory` child: not allocated, but mapped.
    ReservedMemory,
    /// A `/reserved-memory` child with `no-map`: neither allocated nor mapped.
    NoMap,
    /// The DTB itself.
    Dtb,
    /// The initrd handed over by the boot loader.
    Initrd,
    /// The kernel image, BSS and early tables included.
    Kernel,
    /// Data the previous kernel handed over through kexec (`/chosen/kexec,handover`).
    Handover,
    /// The boot record of the watchdog fail-safe: the last page of the first RAM bank.
    BootRecord,
    /// The files the EFI stub read from the ESP (`/chosen/hobby,esp-files-start`).
    EspFiles,
    /// A GICv3 redistributor's LPI tables that a previous kernel left in use (`EnableLPIs`
    /// could not be cleared): the GIC may write them at any time.
    GicLpiTables,
    /// A UEFI memory-map region that is not RAM for the kernel (runtime services, ACPI,
    /// reserved, MMIO, ...): its type is the name.
    Uefi,
    /// The UEFI memory map itself (`/chosen linux,uefi-mmap-start`).
    UefiMemoryMap,
    /// A UEFI configuration table that lies in RAM (boot-services or loader memory): a later
    /// kernel that calls the runtime services reads it.
    UefiConfigTable,
    /// As a crash (capture) kernel: RAM outside `/chosen/linux,usable-memory-range`, the
    /// crashed kernel's memory. Mapped (to be read), never allocated, never written.
    CrashedKernel,
    /// As a crash kernel: the ELF core header (`/chosen/linux,elfcorehdr`).
    ElfCoreHdr,
}

impl ReservedKind {
    /// A short name for listings.
    pub const fn name(self) -> &'static str {
        match self {
            ReservedKind::MemReserve => "memreserve",
            ReservedKind::ReservedMemory => "reserved-memory",
            ReservedKind::NoMap => "reserved-memory no-map",
            ReservedKind::Dtb => "dtb",
            ReservedKind::Initrd => "initrd",
            ReservedKind::Kernel => "kernel",
            ReservedKind::Handover => "kexec handover",
            ReservedKind::BootRecord => "boot record",
            ReservedKind::EspFiles => "esp files",
            ReservedKind::GicLpiTables => "gic lpi tables",
            ReservedKind::Uefi => "uefi",
            ReservedKind::UefiMemoryMap => "uefi memory map",
            ReservedKind::UefiConfigTable => "uefi config table",
            ReservedKind::CrashedKernel => "crashed kernel",
            ReservedKind::ElfCoreHdr => "elfcorehdr",
        }
    }
}

/// One reserved range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The range.
    pub region: Region,
    /// Why.
    pub kind: ReservedKind,
    /// The DTB node it came from, if any.
    pub name: String,
}

/// Why the DTB's memory description could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemMapError {
    /// No `device_type = "memory"` node with a non-empty `reg`.
    NoMemory,
    /// A `reg` property whose length is not a whole number of (address, size) pairs, or whose
    /// cell counts are not 1 or 2.
    BadReg {
        /// The node's name.
        node: String,
        /// The node's parent's `#address-cells`.
        address_cells: usize,
        /// The node's parent's `#size-cells`.
        size_cells: usize,
        /// Length of the `reg` property in bytes.
        len: usize,
    },
}

impl fmt::Display for MemMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemMapError::NoMemory => {
                write!(
                    f,
                    "the DTB has no /memory node with a non-empty reg property"
                )
            }
            MemMapError::BadReg {
                node,
                address_cells,
                size_cells,
                len,
            } => write!(
                f,
                "DTB node {node}: reg is {len} bytes, not a list of (address, size) pairs of \
                 {address_cells}+{size_cells} cells"
            ),
        }
    }
}

/// Reads a big-endian number of `cells` 32-bit cells.
fn read_cells(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64)
}

/// Decodes a `reg` property given its parent's cell counts.
pub fn decode_reg(
    node: &str,
    reg: &[u8],
    address_cells: usize,
    size_cells: usize,
) -> Result<Vec<Region>, MemMapError> {
    let bad = || MemMapError::BadReg {
        node: node.to_string(),
        address_cells,
        size_cells,
        len: reg.len(),
    };
    let stride = 4 * (address_cells + size_cells);
    if !(1..=2).contains(&address_cells)
        || size_cells > 2
        || stride == 0
        || !reg.len().is_multiple_of(stride)
    {
        return Err(bad());
    }
    Ok(reg
        .chunks_exact(stride)
        .map(|c| {
            let (a, s) = c.split_at(4 * address_cells);
            Region::new(read_cells(a), read_cells(s))
        })
        .collect())
}

/// The `#address-cells` and `#size-cells` of a node (the cells its children use), with the
/// devicetree defaults of 2 and 1.
pub fn cell_counts(node: &fdt::node::FdtNode<'_, '_>) -> (usize, usize) {
    let get = |name, default| {
        node.property(name)
            .and_then(|p| p.as_usize())
            .unwrap_or(default)
    };
    (get("#address-cells", 2), get("#size-cells", 1))
}

/// Where the RAM banks came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MapSource {
    /// The DTB's `/memory` nodes.
    #[default]
    Dtb,
    /// A UEFI memory map (`/chosen linux,uefi-mmap-*`) of this many descriptors; the DTB's
    /// `/memory` nodes are not trusted over it.
    Uefi {
        /// Descriptors in the map.
        descriptors: usize,
    },
}

/// The physical memory map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryMap {
    /// RAM banks, sorted, non-empty.
    pub banks: Vec<Region>,
    /// Reserved ranges, in the order they were found.
    pub reserved: Vec<Reserved>,
    /// Where `banks` came from.
    pub source: MapSource,
    /// As a crash kernel (`/chosen/linux,elfcorehdr`): the ELF core header describing the
    /// crashed kernel's memory. Everything outside `/chosen/linux,usable-memory-range` is
    /// then reserved as [`ReservedKind::CrashedKernel`].
    pub elfcorehdr: Option<Region>,
}

impl MemoryMap {
    /// RAM from a UEFI memory map (its usable descriptors; every other descriptor reserved
    /// by type, the map at `map` too), reservations from the DTB.
    pub fn from_uefi(
        fdt: &Fdt<'_>,
        descriptors: &[crate::uefi::Descriptor],
        map: Region,
    ) -> Result<Self, MemMapError> {
        let mut m = MemoryMap {
            banks: crate::uefi::banks(descriptors),
            source: MapSource::Uefi {
                descriptors: descriptors.len(),
            },
            ..Default::default()
        };
        for d in descriptors.iter().filter(|d| !d.is_usable()) {
            m.reserve(d.region, ReservedKind::Uefi, crate::uefi::type_name(d.ty));
        }
        m.reserve(
            map,
            ReservedKind::UefiMemoryMap,
            "/chosen linux,uefi-mmap-start",
        );
        m.add_dtb_reservations(fdt)?;
        m.add_crash_ranges(fdt)?;
        Ok(m)
    }

    /// As a crash kernel, `/chosen/linux,usable-memory-range` (the crash kernel's own RAM)
    /// and `/chosen/linux,elfcorehdr` (encoded with the root's cell counts): everything
    /// outside the usable ranges is the crashed kernel's, reserved and never written.
    fn add_crash_ranges(&mut self, fdt: &Fdt<'_>) -> Result<(), MemMapError> {
        let (Some(root), Some(chosen)) = (fdt.find_node("/"), fdt.find_node("/chosen")) else {
            return Ok(());
        };
        let (ac, sc) = cell_counts(&root);
        if let Some(p) = chosen.property("linux,elfcorehdr") {
            let hdr = decode_reg("/chosen linux,elfcorehdr", p.value, ac, sc)?;
            self.elfcorehdr = hdr.first().copied().filter(|r| r.size() > 0);
        }
        if let Some(p) = chosen.property("linux,usable-memory-range") {
            let usable = decode_reg("/chosen linux,usable-memory-range", p.value, ac, sc)?;
            for r in subtract(&self.banks, &usable) {
                self.reserve(
                    r,
                    ReservedKind::CrashedKernel,
                    "outside linux,usable-memory-range",
                );
            }
        }
        if let Some(r) = self.elfcorehdr {
            self.reserve(r, ReservedKind::ElfCoreHdr, "/chosen linux,elfcorehdr");
        }
        Ok(())
    }

    /// Reads RAM banks and reservations from a DTB.
    pub fn from_fdt(fdt: &Fdt<'_>) -> Result<Self, MemMapError> {
        let root = fdt.find_node("/").ok_or(MemMapError::NoMemory)?;
        let (ac, sc) = cell_counts(&root);
        let mut map = MemoryMap::default();
        for node in root.children() {
            let is_memory = node
                .property("device_type")
                .and_then(|p| p.as_str())
                .is_some_and(|s| s == "memory");
            if !is_memory {
                continue;
            }
            if let Some(reg) = node.property("reg") {
                for r in decode_reg(node.name, reg.value, ac, sc)? {
                    if r.size() > 0 {
                        map.banks.push(r);
                    }
                }
            }
        }
        if map.banks.is_empty() {
            return Err(MemMapError::NoMemory);
        }
        map.banks.sort();
        map.add_dtb_reservations(fdt)?;
        map.add_crash_ranges(fdt)?;
        Ok(map)
    }

    /// The DTB's `/memreserve/` entries and `/reserved-memory` children.
    fn add_dtb_reservations(&mut self, fdt: &Fdt<'_>) -> Result<(), MemMapError> {
        let map = self;
        for r in fdt.memory_reservations() {
            let region = Region::new(r.address() as u64, r.size() as u64);
            map.reserve(region, ReservedKind::MemReserve, "/memreserve/");
        }

        if let Some(rm) = fdt.find_node("/reserved-memory") {
            let (ac, sc) = cell_counts(&rm);
            for child in rm.children() {
                let disabled = child
                    .property("status")
                    .and_then(|p| p.as_str())
                    .is_some_and(|s| s != "okay" && s != "ok");
                if disabled {
                    continue;
                }
                // Dynamically placed regions (size + alloc-ranges, no reg) are left to
                // whichever kernel wants them: this one does not.
                let Some(reg) = child.property("reg") else {
                    continue;
                };
                let kind = if child.property("no-map").is_some() {
                    ReservedKind::NoMap
                } else {
                    ReservedKind::ReservedMemory
                };
                for r in decode_reg(child.name, reg.value, ac, sc)? {
                    map.reserve(r, kind, child.name);
                }
            }
        }
        Ok(())
    }

    /// Adds a reserved range.
    pub fn reserve(&mut self, region: Region, kind: ReservedKind, name: &str) {
        if region.size() > 0 {
            self.reserved.push(Reserved {
                region,
                kind,
                name: name.to_string(),
            });
        }
    }

    /// Total RAM in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.banks.iter().map(Region::size).sum()
    }

    /// RAM that is neither reserved nor partly reserved, in whole pages: the frames to hand
    /// to the allocator.
    pub fn free_regions(&self) -> Vec<Region> {
        let holes: Vec<Region> = self
            .reserved
            .iter()
            .map(|r| Region {
                start: align_down(r.region.start, PAGE_SIZE),
                end: align_up(r.region.end, PAGE_SIZE),
            })
            .collect();
        subtract(&self.banks, &holes)
            .into_iter()
            .map(|r| Region {
                start: align_up(r.start, PAGE_SIZE),
                end: align_down(r.end, PAGE_SIZE),
            })
            .filter(|r| r.start < r.end)
            .collect()
    }

    /// RAM to map in the linear map: every bank, in whole pages, less the pages that touch a
    /// `no-map` reservation.
    pub fn linear_regions(&self) -> Vec<Region> {
        let holes: Vec<Region> = self
            .reserved
            .iter()
            .filter(|r| r.kind == ReservedKind::NoMap)
            .map(|r| Region {
                start: align_down(r.region.start, PAGE_SIZE),
                end: align_up(r.region.end, PAGE_SIZE),
            })
            .collect();
        let banks: Vec<Region> = self
            .banks
            .iter()
            .map(|r| Region {
                start: align_up(r.start, PAGE_SIZE),
                end: align_down(r.end, PAGE_SIZE),
            })
            .filter(|r| r.start < r.end)
            .collect();
        subtract(&banks, &holes)
    }

    /// Where the watchdog fail-safe's boot record lives (the kernel's
    /// `formats::bootrecord`): the last page of the first RAM bank, found the same way after
    /// a reset. `None` when something else is there (the image, the DTB, the initrd,
    /// firmware memory), or in a crash kernel. A `/memreserve/` or `/reserved-memory` of
    /// exactly that page (what a previous kernel added for it) is the record's own.
    pub fn boot_record_page(&self) -> Option<Region> {
        if self.elfcorehdr.is_some() {
            return None;
        }
        let bank = self.banks.first()?;
        let end = align_down(bank.end, PAGE_SIZE);
        let page = Region::new(end.checked_sub(PAGE_SIZE)?, PAGE_SIZE);
        let ours = |r: &Reserved| {
            matches!(
                r.kind,
                ReservedKind::MemReserve | ReservedKind::ReservedMemory
            ) && r.region == page
        };
        let clash = self
            .reserved
            .iter()
            .any(|r| r.region.start < page.end && page.start < r.region.end && !ours(r));
        (page.start >= bank.start && !clash).then_some(page)
    }

    /// Whether `r` lies inside one RAM bank.
    pub fn is_ram(&self, r: &Region) -> bool {
        self.banks.iter().any(|b| b.contains(r))
    }
}

/// `base` minus every range of `holes`, sorted.
pub fn subtract(base: &[Region], holes: &[Region]) -> Vec<Region> {
    let mut out: Vec<Region> = base.to_vec();
    for h in holes {
        let mut next = Vec::with_capacity(out.len() + 1);
        for r in out {
            if !r.overlaps(h) {
                next.push(r);
                continue;
            }
            if r.start < h.start {
                next.push(Region {
                    start: r.start,
                    end: h.start,
                });
            }
            if h.end < r.end {
                next.push(Region {
                    start: h.end,
                    end: r.end,
                });
            }
        }
        out = next;
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_record_page() {
        let mut map = MemoryMap {
            banks: alloc::vec![
                Region::new(0x4000_0000, 0x4000_0000),
                Region::new(0x1_0000_0000, 0x1000_0000)
            ],
            ..Default::default()
        };
        let page = Region::new(0x7fff_f000, PAGE_SIZE);
        assert_eq!(map.boot_record_page(), Some(page));
        // A previous kernel's /memreserve/ of that page is the record's own.
        map.reserve(page, ReservedKind::MemReserve, "");
        assert_eq!(map.boot_record_page(), Some(page));
        // Anything else there (here an initrd ending on the bank's last byte) is not.
        map.reserve(
            Region::new(0x7f00_0000, 0x100_0000),
            ReservedKind::Initrd,
            "",
        );
        assert_eq!(map.boot_record_page(), None);
        // Nor in a crash kernel, nor in a bank smaller than a page.
        let mut crash = MemoryMap {
            banks: alloc::vec![Region::new(0x4000_0000, 0x4000_0000)],
            ..Default::default()
        };
        crash.elfcorehdr = Some(Region::new(0x5000_0000, PAGE_SIZE));
        assert_eq!(crash.boot_record_page(), None);
        let tiny = MemoryMap {
            banks: alloc::vec![Region::new(0x4000_0800, 0x800)],
            ..Default::default()
        };
        assert_eq!(tiny.boot_record_page(), None);
    }

    #[test]
    fn subtract_splits_and_trims() {
        let base = [Region::new(0x1000, 0x9000)];
        let holes = [
            Region::new(0x0, 0x2000),
            Region::new(0x4000, 0x1000),
            Region::new(0x9000, 0x4000),
        ];
        assert_eq!(
            subtract(&base, &holes),
            [
                Region {
                    start: 0x2000,
                    end: 0x4000
                },
                Region {
                    start: 0x5000,
                    end: 0x9000
                }
            ]
        );
    }

    #[test]
    fn free_regions_round_reservations_out_to_pages() {
        let mut m = MemoryMap {
            banks: alloc::vec![Region::new(0x4000_0000, 0x10_0000)],
            ..Default::default()
        };
        m.reserve(Region::new(0x4000_0800, 0x100), ReservedKind::Dtb, "dtb");
        m.reserve(Region::new(0x4008_0000, 0x1000), ReservedKind::NoMap, "fw");
        let free = m.free_regions();
        assert_eq!(
            free[0],
            Region {
                start: 0x4000_1000,
                end: 0x4008_0000
            }
        );
        assert_eq!(
            free[1],
            Region {
                start: 0x4008_1000,
                end: 0x4010_0000
            }
        );
        let lin = m.linear_regions();
        assert_eq!(lin.len(), 2, "only no-map punches holes in the linear map");
    }

    #[test]
    fn decode_reg_checks_shape() {
        let reg = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0];
        assert_eq!(
            decode_reg("m", &reg, 2, 2).unwrap(),
            [Region::new(0x4000_0000, 0x4000_0000)]
        );
        assert!(matches!(
            decode_reg("m", &reg[..12], 2, 2),
            Err(MemMapError::BadReg { .. })
        ));
        assert!(matches!(
            decode_reg("m", &reg, 3, 1),
            Err(MemMapError::BadReg { .. })
        ));
    }
}
