//! The EFI system table a UEFI-booted system hands on (`/chosen linux,uefi-system-table`):
//! where its configuration tables are, so that the ones in RAM survive for a later kernel
//! that calls the runtime services. Reads go through a caller's function (physical memory
//! on the machine, a byte array in tests).

use alloc::vec::Vec;
use core::fmt;
use core::mem::{offset_of, size_of};
use uefi_raw::table::configuration::ConfigurationTable;
use uefi_raw::table::system::SystemTable;
use uefi_raw::Guid;

/// More configuration tables than any firmware installs (EDK2 in QEMU: about 12).
pub const MAX_TABLES: usize = 256;

/// Why the system table could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemTableError {
    /// The memory at this address could not be read.
    Unreadable(u64),
    /// No `IBI SYST` signature at the address `/chosen` gives.
    Signature {
        /// `linux,uefi-system-table`.
        at: u64,
        /// The first eight bytes there.
        found: u64,
    },
    /// More configuration tables than [`MAX_TABLES`].
    TooManyTables(usize),
}

impl fmt::Display for SystemTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unreadable(pa) => write!(f, "EFI system table: cannot read memory at {pa:#x}"),
            Self::Signature { at, found } => write!(
                f,
                "EFI system table at {at:#x} (/chosen linux,uefi-system-table): signature {found:#018x}, not 'IBI SYST'"
            ),
            Self::TooManyTables(n) => write!(
                f,
                "EFI system table: {n} configuration tables (at most {MAX_TABLES} expected)"
            ),
        }
    }
}

/// Reads physical memory at an address into a buffer; `false` if it cannot.
pub type ReadPhys<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> bool;

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Every configuration table the system table at `system_table` lists: (GUID, address).
pub fn config_tables(
    system_table: u64,
    read: ReadPhys<'_>,
) -> Result<Vec<(Guid, u64)>, SystemTableError> {
    let mut st = [0u8; size_of::<SystemTable>()];
    if !read(system_table, &mut st) {
        return Err(SystemTableError::Unreadable(system_table));
    }
    let signature = u64_at(&st, 0);
    if signature != SystemTable::SIGNATURE {
        return Err(SystemTableError::Signature {
            at: system_table,
            found: signature,
        });
    }
    let n = u64_at(
        &st,
        offset_of!(SystemTable, number_of_configuration_table_entries),
    ) as usize;
    let array = u64_at(&st, offset_of!(SystemTable, configuration_table));
    if n > MAX_TABLES {
        return Err(SystemTableError::TooManyTables(n));
    }
    let entry = size_of::<ConfigurationTable>();
    let mut bytes = alloc::vec![0u8; n * entry];
    if n > 0 && !read(array, &mut bytes) {
        return Err(SystemTableError::Unreadable(array));
    }
    Ok(bytes
        .chunks_exact(entry)
        .map(|e| {
            let guid = Guid::from_bytes(e[..16].try_into().unwrap());
            (
                guid,
                u64_at(e, offset_of!(ConfigurationTable, vendor_table)),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A system table at 0x1000 listing `tables` in an array at 0x2000, in fake memory.
    fn memory(signature: u64, tables: &[(Guid, u64)]) -> Vec<u8> {
        let mut m = alloc::vec![0u8; 0x3000];
        m[0x1000..0x1008].copy_from_slice(&signature.to_le_bytes());
        let n = offset_of!(SystemTable, number_of_configuration_table_entries);
        m[0x1000 + n..0x1008 + n].copy_from_slice(&(tables.len() as u64).to_le_bytes());
        let a = offset_of!(SystemTable, configuration_table);
        m[0x1000 + a..0x1008 + a].copy_from_slice(&0x2000u64.to_le_bytes());
        for (i, (g, addr)) in tables.iter().enumerate() {
            let at = 0x2000 + i * size_of::<ConfigurationTable>();
            m[at..at + 16].copy_from_slice(&g.to_bytes());
            m[at + 16..at + 24].copy_from_slice(&addr.to_le_bytes());
        }
        m
    }

    fn reader(m: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
        move |pa, buf| match m.get(pa as usize..pa as usize + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }

    #[test]
    fn lists_every_table() {
        let dtb = uefi_raw::guid!("b1b621d5-f19c-41a5-830b-d9152c69aae0");
        let memreserve = uefi_raw::guid!("888eb0c6-8ede-4ff5-a8f0-9a64ac6c07d6");
        let m = memory(
            SystemTable::SIGNATURE,
            &[(dtb, 0x7e00_0000), (memreserve, 0x7f00_1000)],
        );
        let t = config_tables(0x1000, &mut reader(&m)).unwrap();
        assert_eq!(t, [(dtb, 0x7e00_0000), (memreserve, 0x7f00_1000)]);
        assert_eq!(
            config_tables(0x1000, &mut reader(&memory(SystemTable::SIGNATURE, &[]))).unwrap(),
            []
        );
    }

    #[test]
    fn bad_system_tables_are_named() {
        let m = memory(0x1234, &[]);
        assert_eq!(
            config_tables(0x1000, &mut reader(&m)),
            Err(SystemTableError::Signature {
                at: 0x1000,
                found: 0x1234
            })
        );
        assert_eq!(
            config_tables(0x9000_0000, &mut reader(&m)),
            Err(SystemTableError::Unreadable(0x9000_0000))
        );
        let mut m = memory(SystemTable::SIGNATURE, &[]);
        let n = 0x1000 + offset_of!(SystemTable, number_of_configuration_table_entries);
        m[n..n + 8].copy_from_slice(&100_000u64.to_le_bytes());
        assert_eq!(
            config_tables(0x1000, &mut reader(&m)),
            Err(SystemTableError::TooManyTables(100_000))
        );
        // The array outside memory.
        m[n..n + 8].copy_from_slice(&2u64.to_le_bytes());
        let a = 0x1000 + offset_of!(SystemTable, configuration_table);
        m[a..a + 8].copy_from_slice(&0x8000_0000u64.to_le_bytes());
        assert_eq!(
            config_tables(0x1000, &mut reader(&m)),
            Err(SystemTableError::Unreadable(0x8000_0000))
        );
    }
}
