//! Partition tables: MBR (what a Raspberry Pi's SD card has) and GPT (a UEFI disk's, with
//! its EFI system partition), read from a disk of `blocks` blocks of 512 bytes through a
//! `read(lba, buf)` function. Every offset and count is checked against the disk before it
//! is used; a table that points outside the disk, or whose CRC is wrong, is a named error.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Bytes per logical block (sector) this reader handles.
pub const BLOCK: usize = 512;
/// The MBR's boot signature, at bytes 510..512.
const MBR_SIGNATURE: [u8; 2] = [0x55, 0xaa];
/// Where the MBR's four entries start.
const MBR_ENTRIES: usize = 446;
/// The MBR type of GPT's protective partition.
const MBR_PROTECTIVE: u8 = 0xee;
/// MBR types of extended partitions (logical partitions are not read).
const MBR_EXTENDED: [u8; 3] = [0x05, 0x0f, 0x85];
/// `"EFI PART"`.
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// Smallest GPT header (revision 1.0).
const GPT_HEADER_MIN: usize = 92;
/// Most GPT entries read (the specification's minimum table holds 128).
const GPT_MAX_ENTRIES: u32 = 1024;
/// The EFI system partition's type GUID, as it is stored (mixed endian):
/// C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];

/// What kind of partition an entry says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An MBR entry's type byte (0x0c FAT32 LBA, 0x83 Linux, ...).
    Mbr(u8),
    /// A GPT entry's type GUID (as stored) and name.
    Gpt {
        /// The type GUID, as stored on disk.
        type_guid: [u8; 16],
        /// The partition's name.
        name: String,
    },
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its number, from 1 (as Linux's `mmcblk0p1`, `vda2` count).
    pub number: usize,
    /// Its first block.
    pub start: u64,
    /// Its length in blocks.
    pub blocks: u64,
    /// What the table says it is.
    pub kind: Kind,
}

impl Partition {
    /// Whether it is an EFI system partition (GPT type, or MBR type 0xef).
    pub fn is_esp(&self) -> bool {
        match &self.kind {
            Kind::Mbr(t) => *t == 0xef,
            Kind::Gpt { type_guid, .. } => *type_guid == ESP_TYPE,
        }
    }
}

/// Why a disk's partitions cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartError {
    /// The disk could not be read.
    Read {
        /// The block.
        lba: u64,
    },
    /// Neither an MBR signature nor a GPT.
    NoTable,
    /// An entry that runs past the disk's end.
    Outside {
        /// The table (`MBR` or `GPT`).
        table: &'static str,
        /// Its entry number, from 1.
        number: usize,
        /// Its first block and length.
        start: u64,
        /// Length in blocks.
        blocks: u64,
        /// The disk's length in blocks.
        disk: u64,
    },
    /// Two entries that overlap.
    Overlap {
        /// The table.
        table: &'static str,
        /// The two entries' numbers.
        a: usize,
        /// The second.
        b: usize,
    },
    /// A GPT header that cannot be used.
    GptHeader(&'static str),
    /// A GPT header or entry array whose CRC32 is not the one the header records.
    GptCrc(&'static str),
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::Read { lba } => write!(f, "cannot read block {lba}"),
            PartError::NoTable => write!(f, "no partition table (no MBR signature, no GPT)"),
            PartError::Outside {
                table,
                number,
                start,
                blocks,
                disk,
            } => write!(
                f,
                "{table} partition {number} (blocks {start}+{blocks}) runs past the disk's {disk} blocks"
            ),
            PartError::Overlap { table, a, b } => {
                write!(f, "{table} partitions {a} and {b} overlap")
            }
            PartError::GptHeader(why) => write!(f, "GPT header: {why}"),
            PartError::GptCrc(what) => write!(f, "GPT {what}: CRC32 mismatch"),
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The partitions of a disk of `disk_blocks` blocks: GPT when block 0 is a protective MBR,
/// else the MBR's primary entries (empty ones left out, extended ones not followed).
pub fn read(
    disk_blocks: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> bool,
) -> Result<Vec<Partition>, PartError> {
    let mbr = read_block(&mut read, 0)?;
    if mbr[510..512] != MBR_SIGNATURE {
        return Err(PartError::NoTable);
    }
    let entries: Vec<(usize, u8, u64, u64)> = (0..4)
        .map(|i| {
            let e = &mbr[MBR_ENTRIES + 16 * i..][..16];
            (i + 1, e[4], le32(e, 8) as u64, le32(e, 12) as u64)
        })
        .filter(|&(_, t, _, n)| t != 0 && n != 0)
        .collect();
    if entries.iter().any(|e| e.1 == MBR_PROTECTIVE) {
        return gpt(disk_blocks, read);
    }
    let parts: Vec<Partition> = entries
        .into_iter()
        .filter(|e| !MBR_EXTENDED.contains(&e.1))
        .map(|(number, t, start, blocks)| Partition {
            number,
            start,
            blocks,
            kind: Kind::Mbr(t),
        })
        .collect();
    check("MBR", &parts, disk_blocks)?;
    Ok(parts)
}

/// Block `lba` through `read`.
fn read_block(
    read: &mut impl FnMut(u64, &mut [u8]) -> bool,
    lba: u64,
) -> Result<[u8; BLOCK], PartError> {
    let mut b = [0u8; BLOCK];
    if read(lba, &mut b) {
        Ok(b)
    } else {
        Err(PartError::Read { lba })
    }
}

/// Every partition inside the disk, and none overlapping another.
fn check(table: &'static str, parts: &[Partition], disk: u64) -> Result<(), PartError> {
    for p in parts {
        if p.start.checked_add(p.blocks).is_none_or(|end| end > disk) || p.start == 0 {
            return Err(PartError::Outside {
                table,
                number: p.number,
                start: p.start,
                blocks: p.blocks,
                disk,
            });
        }
    }
    for (i, a) in parts.iter().enumerate() {
        for b in &parts[i + 1..] {
            if a.start < b.start + b.blocks && b.start < a.start + a.blocks {
                return Err(PartError::Overlap {
                    table,
                    a: a.number,
                    b: b.number,
                });
            }
        }
    }
    Ok(())
}

/// What a GPT header says, checked.
struct GptHeader {
    first_usable: u64,
    last_usable: u64,
    /// Where the entry array starts, each entry's size, the array's bytes and blocks, its
    /// CRC32.
    entries_lba: u64,
    entry_size: usize,
    bytes: usize,
    array_blocks: u64,
    array_crc: u32,
}

/// The GPT header `h` (block 1) on a disk of `disk` blocks: its signature, size, CRC and
/// where it says it is; an entry array and usable blocks inside the disk.
fn gpt_header(h: &[u8; BLOCK], disk: u64) -> Result<GptHeader, PartError> {
    if &h[..8] != GPT_SIGNATURE {
        return Err(PartError::GptHeader("no \"EFI PART\" signature at block 1"));
    }
    let size = le32(h, 12) as usize;
    if !(GPT_HEADER_MIN..=BLOCK).contains(&size) {
        return Err(PartError::GptHeader("header size outside 92..512"));
    }
    let mut copy = *h;
    copy[16..20].fill(0);
    if crc32fast::hash(&copy[..size]) != le32(h, 16) {
        return Err(PartError::GptCrc("header"));
    }
    if le64(h, 24) != 1 {
        return Err(PartError::GptHeader("it does not say it is at block 1"));
    }
    let (first_usable, last_usable) = (le64(h, 40), le64(h, 48));
    let entries_lba = le64(h, 72);
    let (count, entry_size) = (le32(h, 80), le32(h, 84) as usize);
    if count > GPT_MAX_ENTRIES {
        return Err(PartError::GptHeader("more than 1024 entries"));
    }
    if entry_size < 128 || !entry_size.is_power_of_two() || entry_size > BLOCK {
        return Err(PartError::GptHeader(
            "entry size not a power of two from 128 to 512",
        ));
    }
    let bytes = count as usize * entry_size;
    let array_blocks = bytes.div_ceil(BLOCK) as u64;
    if entries_lba < 2 || entries_lba.saturating_add(array_blocks) > disk {
        return Err(PartError::GptHeader(
            "the entry array lies outside the disk",
        ));
    }
    if first_usable > last_usable || last_usable >= disk {
        return Err(PartError::GptHeader("usable blocks outside the disk"));
    }
    Ok(GptHeader {
        first_usable,
        last_usable,
        entries_lba,
        entry_size,
        bytes,
        array_blocks,
        array_crc: le32(h, 88),
    })
}

/// The GPT at block 1: header checked (signature, size, CRC, where it says it is, the
/// entry array inside the disk), entry array checked (CRC), used entries in order.
fn gpt(
    disk: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> bool,
) -> Result<Vec<Partition>, PartError> {
    let h = read_block(&mut read, 1)?;
    let GptHeader {
        first_usable,
        last_usable,
        entries_lba,
        entry_size,
        bytes,
        array_blocks,
        array_crc,
    } = gpt_header(&h, disk)?;
    let mut array = vec![0u8; array_blocks as usize * BLOCK];
    for (i, chunk) in array.chunks_mut(BLOCK).enumerate() {
        if !read(entries_lba + i as u64, chunk) {
            return Err(PartError::Read {
                lba: entries_lba + i as u64,
            });
        }
    }
    if crc32fast::hash(&array[..bytes]) != array_crc {
        return Err(PartError::GptCrc("entry array"));
    }
    let mut parts = Vec::new();
    for (i, e) in array[..bytes].chunks(entry_size).enumerate() {
        let type_guid: [u8; 16] = e[..16].try_into().expect("16 bytes");
        if type_guid == [0; 16] {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        let outside = PartError::Outside {
            table: "GPT",
            number: i + 1,
            start: first,
            blocks: last.wrapping_sub(first).wrapping_add(1),
            disk,
        };
        if last < first || first < first_usable || last > last_usable {
            return Err(outside);
        }
        let units: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        parts.push(Partition {
            number: i + 1,
            start: first,
            blocks: last - first + 1,
            kind: Kind::Gpt {
                type_guid,
                name: String::from_utf16_lossy(&units),
            },
        });
    }
    check("GPT", &parts, disk)?;
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk in memory.
    fn reader(disk: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
        move |lba, buf| {
            let at = lba as usize * BLOCK;
            match disk.get(at..at + buf.len()) {
                Some(b) => {
                    buf.copy_from_slice(b);
                    true
                }
                None => false,
            }
        }
    }

    fn mbr(entries: &[(u8, u32, u32)], blocks: usize) -> Vec<u8> {
        let mut d = vec![0u8; blocks * BLOCK];
        for (i, &(t, start, n)) in entries.iter().enumerate() {
            let e = &mut d[MBR_ENTRIES + 16 * i..][..16];
            e[4] = t;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&n.to_le_bytes());
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        d
    }

    #[test]
    fn a_pi_cards_mbr() {
        // A FAT boot partition and an ext4 root, as Raspberry Pi images have them.
        let d = mbr(&[(0x0c, 2048, 4096), (0x83, 6144, 8192)], 16384);
        let p = read(16384, reader(&d)).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].number, p[0].start, p[0].blocks), (1, 2048, 4096));
        assert_eq!(p[1].kind, Kind::Mbr(0x83));
        assert!(!p[0].is_esp());
    }

    #[test]
    fn bad_mbrs_are_named() {
        let d = mbr(&[(0x83, 2048, 100_000)], 16384);
        assert_eq!(
            read(16384, reader(&d)).unwrap_err().to_string(),
            "MBR partition 1 (blocks 2048+100000) runs past the disk's 16384 blocks"
        );
        let d = mbr(&[(0x83, 2048, 4096), (0x83, 4000, 10)], 16384);
        assert_eq!(
            read(16384, reader(&d)).unwrap_err(),
            PartError::Overlap {
                table: "MBR",
                a: 1,
                b: 2
            }
        );
        let d = mbr(&[(0x83, 0xffff_ffff, 0xffff_ffff)], 16384);
        assert!(matches!(
            read(16384, reader(&d)),
            Err(PartError::Outside { .. })
        ));
        let mut d = mbr(&[], 4);
        d[511] = 0;
        assert_eq!(read(4, reader(&d)), Err(PartError::NoTable));
        assert_eq!(read(4, reader(&[])), Err(PartError::Read { lba: 0 }));
    }

    /// A GPT as `sfdisk` writes one: an ESP and a Linux partition.
    fn gpt_disk() -> Vec<u8> {
        let blocks = 8192usize;
        let mut d = mbr(&[(MBR_PROTECTIVE, 1, blocks as u32 - 1)], blocks);
        let mut array = vec![0u8; 128 * 128];
        let linux: [u8; 16] = [
            0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47,
            0x7d, 0xe4,
        ];
        for (i, (t, first, last, name)) in [
            (ESP_TYPE, 2048u64, 4095u64, "EFI"),
            (linux, 4096, 8158, "root"),
        ]
        .iter()
        .enumerate()
        {
            let e = &mut array[128 * i..][..128];
            e[..16].copy_from_slice(t);
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
            for (j, u) in name.encode_utf16().enumerate() {
                e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
            }
        }
        let mut h = [0u8; BLOCK];
        h[..8].copy_from_slice(GPT_SIGNATURE);
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&(blocks as u64 - 1).to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(blocks as u64 - 34).to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32fast::hash(&array).to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        d[BLOCK..2 * BLOCK].copy_from_slice(&h);
        d[2 * BLOCK..2 * BLOCK + array.len()].copy_from_slice(&array);
        d
    }

    #[test]
    fn a_gpt_with_an_esp() {
        let d = gpt_disk();
        let p = read(8192, reader(&d)).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].is_esp());
        assert_eq!((p[1].number, p[1].start, p[1].blocks), (2, 4096, 4063));
        assert!(matches!(&p[1].kind, Kind::Gpt { name, .. } if name == "root"));
    }

    #[test]
    fn bad_gpts_are_named() {
        let mut d = gpt_disk();
        d[2 * BLOCK + 128 + 40] ^= 1; // an entry changed: the array's CRC no longer holds
        assert_eq!(
            read(8192, reader(&d)),
            Err(PartError::GptCrc("entry array"))
        );
        let mut d = gpt_disk();
        d[BLOCK + 80] = 0xff; // entry count changed: the header's CRC no longer holds
        assert_eq!(read(8192, reader(&d)), Err(PartError::GptCrc("header")));
        // A disk shorter than the table says: the last usable block is outside it.
        let d = gpt_disk();
        assert!(matches!(
            read(4096, reader(&d)),
            Err(PartError::GptHeader(_))
        ));
    }
}
