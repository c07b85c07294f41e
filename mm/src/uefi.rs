//! The UEFI memory map, as an EFI stub (ours, or Linux's) leaves it for the kernel: the
//! descriptors `GetMemoryMap()` returned, named in `/chosen` by `linux,uefi-mmap-start`,
//! `-size`, `-desc-size` and `-desc-ver` (Linux `drivers/firmware/efi/libstub/fdt.c`).
//!
//! Once it exists it is the memory map, as it is for Linux (`arch/arm64/kernel/efi.c`,
//! `is_usable_memory`): RAM is what is conventional, boot-services or loader memory and
//! write-back cacheable; everything else (runtime services code and data, ACPI tables and
//! NVS, reserved, MMIO, PAL code, persistent memory) belongs to the firmware or the OS and
//! is never allocated, written or given to a next kernel.

use crate::region::Region;
use crate::PAGE_SIZE;
use alloc::vec::Vec;
use core::fmt;
use uefi_raw::table::boot::{MemoryAttribute, MemoryDescriptor, MemoryType};

/// `EFI_MEMORY_DESCRIPTOR_VERSION`, the only one the specification defines.
pub const DESCRIPTOR_VERSION: u32 = 1;
/// The size of the version-1 descriptor: firmware may use larger strides, never smaller.
pub const DESCRIPTOR_SIZE: usize = core::mem::size_of::<MemoryDescriptor>();
/// More descriptors than any firmware writes (EDK2 in QEMU: about 100): a bound on work.
pub const MAX_DESCRIPTORS: usize = 16384;
/// Physical addresses this kernel can map (48 bits).
const PA_LIMIT: u64 = 1 << 48;

/// One region of the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// `Type`.
    pub ty: MemoryType,
    /// Its range (`PhysicalStart`, `NumberOfPages` 4 KiB pages).
    pub region: Region,
    /// `VirtualStart`, as `SetVirtualAddressMap` set it (0 if it was never called).
    pub virt: u64,
    /// `Attribute`.
    pub attr: MemoryAttribute,
}

impl Descriptor {
    /// Whether the kernel may use it as RAM (after `ExitBootServices`).
    pub fn is_usable(&self) -> bool {
        let usable_type = matches!(
            self.ty,
            MemoryType::CONVENTIONAL
                | MemoryType::BOOT_SERVICES_CODE
                | MemoryType::BOOT_SERVICES_DATA
                | MemoryType::LOADER_CODE
                | MemoryType::LOADER_DATA
        );
        usable_type && self.attr.contains(MemoryAttribute::WRITE_BACK)
    }
}

/// A short name for a memory type, for `mem`.
pub fn type_name(ty: MemoryType) -> &'static str {
    match ty {
        MemoryType::RESERVED => "reserved",
        MemoryType::LOADER_CODE => "loader-code",
        MemoryType::LOADER_DATA => "loader-data",
        MemoryType::BOOT_SERVICES_CODE => "boot-services-code",
        MemoryType::BOOT_SERVICES_DATA => "boot-services-data",
        MemoryType::RUNTIME_SERVICES_CODE => "runtime-services-code",
        MemoryType::RUNTIME_SERVICES_DATA => "runtime-services-data",
        MemoryType::CONVENTIONAL => "conventional",
        MemoryType::UNUSABLE => "unusable",
        MemoryType::ACPI_RECLAIM => "acpi-reclaim",
        MemoryType::ACPI_NON_VOLATILE => "acpi-nvs",
        MemoryType::MMIO => "mmio",
        MemoryType::MMIO_PORT_SPACE => "mmio-port-space",
        MemoryType::PAL_CODE => "pal-code",
        MemoryType::PERSISTENT_MEMORY => "persistent",
        MemoryType::UNACCEPTED => "unaccepted",
        _ => "oem-or-os-defined",
    }
}

/// Why a UEFI memory map cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UefiMapError {
    /// `linux,uefi-mmap-desc-ver` is not 1.
    Version(u32),
    /// `linux,uefi-mmap-desc-size` is smaller than a descriptor.
    DescriptorTooSmall {
        /// The stride given.
        desc_size: u32,
    },
    /// `linux,uefi-mmap-size` is not a whole number of descriptors.
    NotWhole {
        /// The map's size.
        size: usize,
        /// The stride.
        desc_size: u32,
    },
    /// No descriptor at all, or more than [`MAX_DESCRIPTORS`].
    Count(usize),
    /// A descriptor whose start is not 4 KiB aligned, that is empty, or that reaches
    /// beyond the physical address space.
    BadRange {
        /// Its index.
        index: usize,
        /// `PhysicalStart`.
        start: u64,
        /// `NumberOfPages`.
        pages: u64,
    },
    /// Two descriptors cover the same memory.
    Overlap {
        /// One.
        a: Region,
        /// The other.
        b: Region,
    },
    /// No usable RAM in it.
    NoRam,
}

impl fmt::Display for UefiMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Version(v) => write!(
                f,
                "UEFI memory map: /chosen linux,uefi-mmap-desc-ver is {v}, only version {DESCRIPTOR_VERSION} exists"
            ),
            Self::DescriptorTooSmall { desc_size } => write!(
                f,
                "UEFI memory map: /chosen linux,uefi-mmap-desc-size is {desc_size}, smaller than a {DESCRIPTOR_SIZE}-byte descriptor"
            ),
            Self::NotWhole { size, desc_size } => write!(
                f,
                "UEFI memory map: linux,uefi-mmap-size {size} is not a multiple of linux,uefi-mmap-desc-size {desc_size}"
            ),
            Self::Count(n) => write!(
                f,
                "UEFI memory map: {n} descriptors (1 to {MAX_DESCRIPTORS} expected)"
            ),
            Self::BadRange { index, start, pages } => write!(
                f,
                "UEFI memory map: descriptor {index} (start {start:#x}, {pages} pages) is unaligned, empty or beyond 48-bit physical addresses"
            ),
            Self::Overlap { a, b } => {
                write!(f, "UEFI memory map: descriptors {a} and {b} overlap")
            }
            Self::NoRam => write!(f, "UEFI memory map: no usable (conventional, boot-services or loader, write-back) memory"),
        }
    }
}

/// Reads the descriptors of a map of `map.len()` bytes with stride `desc_size`.
pub fn parse(map: &[u8], desc_size: u32, desc_ver: u32) -> Result<Vec<Descriptor>, UefiMapError> {
    if desc_ver != DESCRIPTOR_VERSION {
        return Err(UefiMapError::Version(desc_ver));
    }
    let stride = desc_size as usize;
    if stride < DESCRIPTOR_SIZE {
        return Err(UefiMapError::DescriptorTooSmall { desc_size });
    }
    if !map.len().is_multiple_of(stride) {
        return Err(UefiMapError::NotWhole {
            size: map.len(),
            desc_size,
        });
    }
    let count = map.len() / stride;
    if count == 0 || count > MAX_DESCRIPTORS {
        return Err(UefiMapError::Count(count));
    }
    let u32_at = |d: &[u8], o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    let u64_at = |d: &[u8], o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    let mut out = Vec::with_capacity(count);
    for (index, d) in map.chunks_exact(stride).enumerate() {
        // The version-1 layout: Type u32, (pad), PhysicalStart, VirtualStart, NumberOfPages,
        // Attribute, all u64.
        let (ty, start, virt, pages, attr) = (
            u32_at(d, 0),
            u64_at(d, 8),
            u64_at(d, 16),
            u64_at(d, 24),
            u64_at(d, 32),
        );
        let bytes = pages.checked_mul(PAGE_SIZE);
        let end = bytes.and_then(|b| start.checked_add(b));
        let Some(end) =
            end.filter(|&e| pages > 0 && start.is_multiple_of(PAGE_SIZE) && e <= PA_LIMIT)
        else {
            return Err(UefiMapError::BadRange {
                index,
                start,
                pages,
            });
        };
        out.push(Descriptor {
            ty: MemoryType(ty),
            region: Region { start, end },
            virt,
            attr: MemoryAttribute::from_bits_retain(attr),
        });
    }
    let mut sorted: Vec<Region> = out.iter().map(|d| d.region).collect();
    sorted.sort();
    for w in sorted.windows(2) {
        if w[0].end > w[1].start {
            return Err(UefiMapError::Overlap { a: w[0], b: w[1] });
        }
    }
    if !out.iter().any(Descriptor::is_usable) {
        return Err(UefiMapError::NoRam);
    }
    Ok(out)
}

/// The RAM banks a map describes: its usable descriptors, adjacent ones merged.
pub fn banks(descriptors: &[Descriptor]) -> Vec<Region> {
    let mut usable: Vec<Region> = descriptors
        .iter()
        .filter(|d| d.is_usable())
        .map(|d| d.region)
        .collect();
    usable.sort();
    let mut banks: Vec<Region> = Vec::new();
    for r in usable {
        match banks.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => banks.push(r),
        }
    }
    banks
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A map as firmware writes it: (type, start, pages, attribute) with stride `stride`.
    pub(crate) fn map(stride: usize, ds: &[(u32, u64, u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(ty, start, pages, attr) in ds {
            let mut d = alloc::vec![0u8; stride];
            d[0..4].copy_from_slice(&ty.to_le_bytes());
            d[8..16].copy_from_slice(&start.to_le_bytes());
            d[24..32].copy_from_slice(&pages.to_le_bytes());
            d[32..40].copy_from_slice(&attr.to_le_bytes());
            out.extend_from_slice(&d);
        }
        out
    }
    const WB: u64 = MemoryAttribute::WRITE_BACK.bits();
    const RT: u64 = MemoryAttribute::RUNTIME.bits() | WB;

    /// Shaped like EDK2's in QEMU virt with 1 GiB: RAM interleaved with the firmware's own.
    pub(crate) fn edk2_like() -> Vec<u8> {
        map(
            48,
            &[
                (7, 0x4000_0000, 0x3000, WB), // conventional
                (2, 0x4300_0000, 0x100, WB),  // loader data
                (4, 0x4310_0000, 0x7800, WB), // boot services data
                (6, 0x7c44_0000, 0x2f0, RT),  // runtime services data
                (5, 0x7c73_0000, 0x100, RT),  // runtime services code
                (7, 0x7c83_0000, 0x33a0, WB), // conventional
                (9, 0x7fbd_0000, 0x30, WB),   // ACPI reclaim (the map sat here once)
                (6, 0x7fc0_0000, 0x3e0, RT),  // runtime services data (system table)
                (3, 0x7ffe_0000, 0x20, WB),   // boot services code
                (11, 0x0400_0000, 0x4000, 1), // MMIO (flash), uncached
            ],
        )
    }

    #[test]
    fn edk2_shaped_map() {
        let d = parse(&edk2_like(), 48, 1).unwrap();
        assert_eq!(d.len(), 10);
        assert_eq!(type_name(d[3].ty), "runtime-services-data");
        assert!(!d[3].is_usable() && !d[6].is_usable() && !d[9].is_usable());
        // Conventional, loader and boot-services memory merge where they touch.
        assert_eq!(
            banks(&d),
            [
                Region::new(0x4000_0000, 0x0a90_0000),
                Region::new(0x7c83_0000, 0x33a0 * 4096),
                Region::new(0x7ffe_0000, 0x20 * 4096),
            ]
        );
    }

    #[test]
    fn bad_maps_are_named() {
        let good = edk2_like();
        assert_eq!(parse(&good, 48, 2), Err(UefiMapError::Version(2)));
        assert_eq!(
            parse(&good, 32, 1),
            Err(UefiMapError::DescriptorTooSmall { desc_size: 32 })
        );
        assert_eq!(
            parse(&good[..good.len() - 8], 48, 1),
            Err(UefiMapError::NotWhole {
                size: good.len() - 8,
                desc_size: 48
            })
        );
        assert_eq!(parse(&[], 48, 1), Err(UefiMapError::Count(0)));
        let unaligned = map(48, &[(7, 0x4000_0800, 1, WB)]);
        assert!(matches!(
            parse(&unaligned, 48, 1),
            Err(UefiMapError::BadRange { index: 0, .. })
        ));
        let empty = map(48, &[(7, 0x4000_0000, 0, WB)]);
        assert!(matches!(
            parse(&empty, 48, 1),
            Err(UefiMapError::BadRange { .. })
        ));
        let huge = map(48, &[(7, 0x4000_0000, u64::MAX / 2, WB)]);
        assert!(matches!(
            parse(&huge, 48, 1),
            Err(UefiMapError::BadRange { .. })
        ));
        let overlap = map(
            48,
            &[(7, 0x4000_0000, 0x10, WB), (6, 0x4000_8000, 0x10, RT)],
        );
        assert!(matches!(
            parse(&overlap, 48, 1),
            Err(UefiMapError::Overlap { .. })
        ));
        // Usable types without write-back are not RAM.
        let uncached = map(48, &[(7, 0x4000_0000, 0x10, 1)]);
        assert_eq!(parse(&uncached, 48, 1), Err(UefiMapError::NoRam));
    }

    #[test]
    fn a_larger_stride_is_read_by_its_stride() {
        let d = parse(
            &map(64, &[(7, 0x8000_0000, 4, WB), (6, 0x8000_4000, 1, RT)]),
            64,
            1,
        )
        .unwrap();
        assert_eq!(banks(&d), [Region::new(0x8000_0000, 0x4000)]);
        assert_eq!(d[1].region, Region::new(0x8000_4000, 0x1000));
    }
}
