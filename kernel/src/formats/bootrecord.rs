//! The boot record of the watchdog fail-safe (`boot.watchdog=`): one page of RAM that
//! survives a reset (the last page of the first RAM bank), written just before `boot`
//! kexecs an entry with the watchdog armed, and read at the next start.
//!
//! After a reset, a valid record names the entry that was being tried: if it never came up
//! (the watchdog fired), the menu falls back to the next entry not yet tried. The entry
//! that does come up ends the attempt: this kernel does it itself (it finds its attempt
//! number in `/chosen/hobby,boot-attempt`), another system clears the record's first word.
//! A page of garbage (a cold start, memory the firmware reused) fails the magic or the
//! CRC32 and means "no attempt".

use alloc::string::String;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The record's magic, its first 8 bytes.
pub const MAGIC: [u8; 8] = *b"HBOOTREC";
/// The most entries the record keeps track of (bits of [`Record::tried`]).
pub const MAX_ENTRIES: usize = 64;
/// Bytes of an entry's ID kept, to check that the menu still lists the same entry.
const ID_LEN: usize = 64;

/// Which watchdog was armed, so that the kernel that comes up can stop it without looking
/// for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogKind {
    /// Intel 6300ESB on PCI (QEMU `virt`): `regs` is its function's PCI configuration
    /// space, `bar` its memory BAR.
    I6300esb {
        /// Configuration space (ECAM).
        config: u64,
        /// BAR 0.
        bar: u64,
    },
    /// The BCM2835/BCM2711 PM watchdog (Raspberry Pi): its registers.
    Bcm2835Pm {
        /// The `pm` block.
        regs: u64,
    },
}

/// A boot attempt in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// A number that identifies this attempt (the counter when it was armed), also put in
    /// the entry's `/chosen/hobby,boot-attempt`.
    pub attempt: u64,
    /// The entry's index in the menu.
    pub entry: u32,
    /// Its ID (cut to 64 bytes).
    pub id: String,
    /// Entries tried in this series, the current one included (bit `i`: entry `i`).
    pub tried: u64,
    /// The watchdog armed.
    pub watchdog: WatchdogKind,
}

/// The record as it lies in RAM (little-endian), CRC32 over every field before `crc`.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Raw {
    magic: [u8; 8],
    attempt: u64,
    tried: u64,
    watchdog_kind: u32,
    entry: u32,
    watchdog_a: u64,
    watchdog_b: u64,
    id_len: u32,
    id: [u8; ID_LEN],
    crc: u32,
}

/// `Raw::watchdog_kind`.
const KIND_I6300ESB: u32 = 1;
const KIND_BCM2835_PM: u32 = 2;

/// Bytes a record takes.
pub const SIZE: usize = core::mem::size_of::<Raw>();

impl Record {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; SIZE] {
        let (kind, a, b) = match self.watchdog {
            WatchdogKind::I6300esb { config, bar } => (KIND_I6300ESB, config, bar),
            WatchdogKind::Bcm2835Pm { regs } => (KIND_BCM2835_PM, regs, 0),
        };
        let mut id = [0u8; ID_LEN];
        let n = floor_char_boundary(&self.id, ID_LEN);
        id[..n].copy_from_slice(&self.id.as_bytes()[..n]);
        let mut raw = Raw {
            magic: MAGIC,
            attempt: self.attempt.to_le(),
            tried: self.tried.to_le(),
            watchdog_kind: kind.to_le(),
            entry: self.entry.to_le(),
            watchdog_a: a.to_le(),
            watchdog_b: b.to_le(),
            id_len: (n as u32).to_le(),
            id,
            crc: 0,
        };
        raw.crc = crc32fast::hash(&raw.as_bytes()[..SIZE - 4]).to_le();
        let mut out = [0u8; SIZE];
        out.copy_from_slice(raw.as_bytes());
        out
    }

    /// The record in `bytes`, if there is a valid one (`None`: no attempt in flight).
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let raw = Raw::read_from_prefix(bytes).ok()?.0;
        if raw.magic != MAGIC
            || crc32fast::hash(&raw.as_bytes()[..SIZE - 4]) != u32::from_le(raw.crc)
        {
            return None;
        }
        let (a, b) = (u64::from_le(raw.watchdog_a), u64::from_le(raw.watchdog_b));
        let watchdog = match u32::from_le(raw.watchdog_kind) {
            KIND_I6300ESB => WatchdogKind::I6300esb { config: a, bar: b },
            KIND_BCM2835_PM => WatchdogKind::Bcm2835Pm { regs: a },
            _ => return None,
        };
        let id = raw.id.get(..u32::from_le(raw.id_len) as usize)?;
        Some(Record {
            attempt: u64::from_le(raw.attempt),
            entry: u32::from_le(raw.entry),
            id: String::from(core::str::from_utf8(id).ok()?),
            tried: u64::from_le(raw.tried),
            watchdog,
        })
    }

    /// Whether `id` is the entry this record names (as far as the record keeps IDs).
    pub fn names(&self, id: &str) -> bool {
        id.as_bytes()[..floor_char_boundary(id, ID_LEN)] == *self.id.as_bytes()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    (0..=max.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// The entry to fall back to after entry `failed` did not come up: the first after it (in
/// menu order, wrapping) that this series has not tried, if any is left.
pub fn fallback(entries: usize, failed: usize, tried: u64) -> Option<usize> {
    let n = entries.min(MAX_ENTRIES);
    (1..n)
        .map(|k| (failed + k) % n)
        .find(|&i| tried & (1 << i) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            attempt: 0x1234_5678_9abc,
            entry: 2,
            id: "l0 Debian GNU/Linux é".into(),
            tried: 0b101,
            watchdog: WatchdogKind::I6300esb {
                config: 0x40_1000_8000,
                bar: 0x1000_0000,
            },
        }
    }

    #[test]
    fn round_trip_and_garbage() {
        let r = record();
        let mut page = alloc::vec![0xa5u8; 4096];
        page[..SIZE].copy_from_slice(&r.encode());
        assert_eq!(Record::decode(&page), Some(r.clone()));
        assert!(r.names("l0 Debian GNU/Linux é"));
        assert!(!r.names("l1"));
        // Any byte changed, a cleared first word, a short page, an unknown kind: no record.
        for at in [0, 8, 20, 60, SIZE - 1] {
            let mut bad = page.clone();
            bad[at] ^= 1;
            assert_eq!(Record::decode(&bad), None, "byte {at}");
        }
        let mut cleared = page.clone();
        cleared[..4].fill(0);
        assert_eq!(Record::decode(&cleared), None);
        assert_eq!(Record::decode(&page[..SIZE - 1]), None);
        assert_eq!(Record::decode(&[0u8; 4096]), None);
        // A long ID is cut on a character boundary, and still names its entry.
        let long = Record {
            id: "é".repeat(40),
            ..record()
        };
        let back = Record::decode(&long.encode()).unwrap();
        assert_eq!(back.id.len(), 64);
        assert!(back.names(&"é".repeat(40)));
        let pm = Record {
            watchdog: WatchdogKind::Bcm2835Pm { regs: 0xfe10_0000 },
            ..record()
        };
        assert_eq!(Record::decode(&pm.encode()), Some(pm));
    }

    #[test]
    fn fallback_order() {
        // Entry 0 failed, nothing else tried: entry 1.
        assert_eq!(fallback(3, 0, 0b001), Some(1));
        // Entry 1 failed after 0 did: entry 2, then wrap to none.
        assert_eq!(fallback(3, 1, 0b011), Some(2));
        assert_eq!(fallback(3, 2, 0b111), None);
        // The default was 2: 2 failed, then 0, then 1.
        assert_eq!(fallback(3, 2, 0b100), Some(0));
        assert_eq!(fallback(1, 0, 0b1), None);
        assert_eq!(fallback(0, 0, 0), None);
    }
}
