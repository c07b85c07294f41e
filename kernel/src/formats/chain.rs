//! The kexec-chain self-test's hand-over block (`kexec.chain=N`), as plain data.
//!
//! Each generation hands the next one a single kexec segment, named in the next DTB by
//! `/chosen/kexec,handover-start`/`-end`: one 4 KiB header page, the payload, then the
//! history: one [`HopRecord`] per earlier generation, so that the last one can show that
//! no hop was lost or reordered.
//! The relocation page writes the counter at the start and end of its copy into
//! [`Header::reloc_start`] and [`Header::reloc_end`] (at [`STAMP_OFFSET`]) after copying.

use alloc::vec::Vec;
use core::fmt;
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `magic` of a hand-over block.
pub const MAGIC: u64 = u64::from_le_bytes(*b"KXCHAIN1");
/// Size of the header page that precedes the payload.
pub const HEADER_PAGE: usize = 4096;
/// Offset of `reloc_start` (and then `reloc_end`) inside the header page: where the
/// relocation page stores its stamps.
pub const STAMP_OFFSET: usize = offset_of!(Wire, header) + offset_of!(Header, reloc_start);

// The block is read and written as the machine's own words; arm64 kernels (this one and the
// host tests) are little-endian, which is what the format says.
const _: () = assert!(cfg!(target_endian = "little"));
const _: () = assert!(offset_of!(Header, reloc_end) == offset_of!(Header, reloc_start) + 8);
const _: () = assert!(size_of::<Wire>() <= HEADER_PAGE);

/// The header page as stored: the magic, then the header.
#[repr(C)]
#[derive(Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct Wire {
    magic: u64,
    header: Header,
}

/// What one generation tells the next. All fields little-endian `u64`, in this order, after
/// the magic.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
pub struct Header {
    /// The hop the receiving kernel is (1-based).
    pub hop: u64,
    /// Hops in the chain.
    pub total: u64,
    /// The EL the first generation was entered at.
    pub first_el: u64,
    /// `free=` of the second generation (0 until it is known).
    pub free_ref: u64,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// [`hash`] of the payload.
    pub payload_hash: u64,
    /// Transitional page-table pages the sender built.
    pub ttpages: u64,
    /// Bytes the relocation copied.
    pub copied: u64,
    /// 1 if the sender relocated with the MMU off.
    pub mmu_off: u64,
    /// Counter when the sender ran `kexec -e`.
    pub exec_ticks: u64,
    /// Counter when the relocation started copying (written by the relocation page).
    pub reloc_start: u64,
    /// Counter when it finished (written by the relocation page).
    pub reloc_end: u64,
    /// µs the sender took to turn its other CPUs off (written at `kexec -e`).
    pub smp_down_us: u64,
    /// CPUs online in the sender (0: not known): the receiver must bring up as many.
    pub cpus: u64,
    /// [`HopRecord`]s after the payload: one per generation before the receiver.
    pub history_len: u64,
    /// [`hash`] of the history's bytes.
    pub history_hash: u64,
}

/// One generation's entry in the history.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
pub struct HopRecord {
    /// Its hop number (0 for the first kernel).
    pub hop: u64,
    /// The counter when it was ready (the counter runs on across kexec).
    pub ready_ticks: u64,
    /// Its free frames, as its `chain:` line printed them.
    pub free: u64,
}

impl HopRecord {
    /// Bytes per record.
    pub const SIZE: usize = size_of::<HopRecord>();
}

/// Why the history is not what the receiver of hop `hop` must find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// It runs past the block.
    Outside {
        /// Records declared.
        records: u64,
        /// Block size.
        block: usize,
    },
    /// It does not hash to `history_hash`.
    Hash,
    /// Not one record per earlier hop.
    Count {
        /// Records found.
        found: u64,
        /// Records expected (the receiver's hop number).
        expected: u64,
    },
    /// Record `at` names another hop: one was lost or reordered.
    Order {
        /// Position.
        at: usize,
        /// Its hop number.
        found: u64,
    },
    /// Record `at` was ready no later than the one before it.
    TimeBackwards {
        /// Position.
        at: usize,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Outside { records, block } => write!(
                f,
                "history of {records} hops does not fit a {block}-byte hand-over block"
            ),
            Self::Hash => write!(f, "history hash mismatch"),
            Self::Count { found, expected } => {
                write!(f, "history has {found} hops, expected {expected}")
            }
            Self::Order { at, found } => {
                write!(
                    f,
                    "history entry {at} is hop {found}: a hop lost or reordered"
                )
            }
            Self::TimeBackwards { at } => {
                write!(
                    f,
                    "history entry {at} was ready no later than the one before it"
                )
            }
        }
    }
}

/// Why a hand-over block cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than its header page.
    Short(usize),
    /// No `KXCHAIN1` magic.
    BadMagic,
    /// The payload runs past the block.
    PayloadOutside {
        /// Declared payload length.
        len: u64,
        /// Block size.
        block: usize,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Short(n) => write!(f, "hand-over block of {n} bytes, shorter than its header"),
            Self::BadMagic => write!(f, "hand-over block without the KXCHAIN1 magic"),
            Self::PayloadOutside { len, block } => {
                write!(
                    f,
                    "payload of {len} bytes does not fit a {block}-byte hand-over block"
                )
            }
        }
    }
}

impl Header {
    /// Writes the header (magic first) into the start of `page`.
    pub fn write(&self, page: &mut [u8]) {
        let wire = Wire {
            magic: MAGIC,
            header: *self,
        };
        page[..size_of::<Wire>()].copy_from_slice(wire.as_bytes());
    }

    /// Reads a hand-over block: its header and its payload.
    pub fn read(block: &[u8]) -> Result<(Header, &[u8]), HeaderError> {
        let h = Self::read_header(block)?;
        let payload = block[HEADER_PAGE..].get(..h.payload_len as usize).ok_or(
            HeaderError::PayloadOutside {
                len: h.payload_len,
                block: block.len(),
            },
        )?;
        Ok((h, payload))
    }

    /// Reads the header page alone (the payload is not checked).
    pub fn read_header(block: &[u8]) -> Result<Header, HeaderError> {
        if block.len() < HEADER_PAGE {
            return Err(HeaderError::Short(block.len()));
        }
        let (wire, _) =
            Wire::read_from_prefix(block).map_err(|_| HeaderError::Short(block.len()))?;
        if wire.magic != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        Ok(wire.header)
    }
}

impl Header {
    /// Bytes of the whole block: header page, payload, and room for the history of every
    /// hop of the chain (`total`), so that the block, and the memory each next kernel
    /// reserves for it, is the same size at every hop (a history growing by 24 bytes a hop
    /// took one more page at hop 171, and the free-frames check called it a leak).
    pub fn block_len(&self) -> u64 {
        let records = self.total.max(self.history_len);
        HEADER_PAGE as u64 + self.payload_len + records * HopRecord::SIZE as u64
    }

    /// The history of a block whose header is `self`, checked as the receiver of hop
    /// `self.hop` must find it: one record per earlier hop, in order, ready times rising.
    pub fn history(&self, block: &[u8]) -> Result<Vec<HopRecord>, HistoryError> {
        let outside = HistoryError::Outside {
            records: self.history_len,
            block: block.len(),
        };
        let start = (HEADER_PAGE as u64).saturating_add(self.payload_len);
        let len = self
            .history_len
            .checked_mul(HopRecord::SIZE as u64)
            .ok_or(outside)?;
        let bytes = usize::try_from(start)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(s, l)| block.get(s..s.checked_add(l)?))
            .ok_or(outside)?;
        if hash(bytes) != self.history_hash {
            return Err(HistoryError::Hash);
        }
        if self.history_len != self.hop {
            return Err(HistoryError::Count {
                found: self.history_len,
                expected: self.hop,
            });
        }
        let records: Vec<HopRecord> = bytes
            .chunks_exact(HopRecord::SIZE)
            .map(|b| HopRecord::read_from_bytes(b).expect("a whole record"))
            .collect();
        for (at, r) in records.iter().enumerate() {
            if r.hop != at as u64 {
                return Err(HistoryError::Order { at, found: r.hop });
            }
            if at > 0 && r.ready_ticks <= records[at - 1].ready_ticks {
                return Err(HistoryError::TimeBackwards { at });
            }
        }
        Ok(records)
    }
}

/// Writes `records` after the payload of `block` and sets `history_len` and `history_hash`
/// in `h` (write the header afterwards). `block` must be [`Header::block_len`] long for them.
pub fn put_history(h: &mut Header, block: &mut [u8], records: &[HopRecord]) {
    let start = HEADER_PAGE + h.payload_len as usize;
    let bytes = &mut block[start..start + records.len() * HopRecord::SIZE];
    bytes.copy_from_slice(records.as_bytes());
    h.history_len = records.len() as u64;
    h.history_hash = hash(bytes);
}

/// Fills `buf` with a pseudo-random pattern that depends on `seed` and on each word's
/// position, so a page that lands in the wrong place or is missing changes the hash.
pub fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// A fast 64-bit hash of `data` (not cryptographic: it is for catching lost, misplaced or
/// stale pages, at memory speed under emulation; the kernel image itself gets SHA-256).
pub fn hash(data: &[u8]) -> u64 {
    const K: u64 = 0xff51_afd7_ed55_8ccd;
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ data.len() as u64;
    let mut words = data.chunks_exact(8);
    for c in &mut words {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(K).rotate_left(29);
    }
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn header_round_trip_and_stamp_offset() {
        let h = Header {
            hop: 3,
            total: 20,
            first_el: 2,
            payload_len: 100,
            reloc_start: 0x1111,
            reloc_end: 0x2222,
            cpus: 4,
            ..Default::default()
        };
        let mut block = vec![0u8; HEADER_PAGE + 100];
        h.write(&mut block);
        let (r, p) = Header::read(&block).unwrap();
        assert_eq!(r, h);
        assert_eq!(p.len(), 100);
        // Where the relocation page stores its stamps.
        assert_eq!(
            &block[STAMP_OFFSET..STAMP_OFFSET + 8],
            &0x1111u64.to_le_bytes()
        );
        assert_eq!(
            &block[STAMP_OFFSET + 8..STAMP_OFFSET + 16],
            &0x2222u64.to_le_bytes()
        );
        // The layout as the format fixes it (the fields in order after the magic).
        assert_eq!(STAMP_OFFSET, 8 + 8 * 10);
        assert_eq!(&block[..8], b"KXCHAIN1");
        assert_eq!(&block[8 + 8 * 13..8 + 8 * 14], &4u64.to_le_bytes());
        assert_eq!(Header::read(&block[..100]), Err(HeaderError::Short(100)));
        assert!(matches!(
            Header::read(&block[..HEADER_PAGE + 50]),
            Err(HeaderError::PayloadOutside { .. })
        ));
    }

    #[test]
    fn history_is_checked_for_loss_and_order() {
        let recs: Vec<HopRecord> = (0..3)
            .map(|i| HopRecord {
                hop: i,
                ready_ticks: 100 + 10 * i,
                free: 5000,
            })
            .collect();
        let mut h = Header {
            hop: 3,
            payload_len: 40,
            ..Default::default()
        };
        let len = (HEADER_PAGE as u64 + 40 + 3 * HopRecord::SIZE as u64) as usize;
        let mut block = vec![0u8; len];
        put_history(&mut h, &mut block, &recs);
        assert_eq!(h.block_len() as usize, len);
        h.write(&mut block);
        let (r, _) = Header::read(&block).unwrap();
        assert_eq!(r.history(&block).unwrap(), recs);
        // A lost hop, a swapped pair, time going back, a flipped bit, a short block.
        let with = |recs: &[HopRecord], hop: u64| {
            let mut h = Header {
                hop,
                payload_len: 40,
                ..Default::default()
            };
            let mut b = vec![0u8; len];
            put_history(&mut h, &mut b, recs);
            h.write(&mut b);
            h.history(&b)
        };
        assert_eq!(
            with(&[recs[0], recs[2]], 2),
            Err(HistoryError::Order { at: 1, found: 2 })
        );
        assert_eq!(
            with(&recs[..2], 3),
            Err(HistoryError::Count {
                found: 2,
                expected: 3
            })
        );
        let back = [
            recs[0],
            HopRecord {
                ready_ticks: 50,
                ..recs[1]
            },
        ];
        assert_eq!(with(&back, 2), Err(HistoryError::TimeBackwards { at: 1 }));
        let mut bad = block.clone();
        bad[len - 1] ^= 1;
        assert_eq!(r.history(&bad), Err(HistoryError::Hash));
        assert!(matches!(
            r.history(&block[..len - 1]),
            Err(HistoryError::Outside { .. })
        ));
        let huge = Header {
            history_len: u64::MAX,
            ..r
        };
        assert!(matches!(
            huge.history(&block),
            Err(HistoryError::Outside { .. })
        ));
    }

    #[test]
    fn hash_sees_a_moved_page() {
        let mut a = vec![0u8; 8 * 4096];
        fill(&mut a, 5);
        let h = hash(&a);
        let mut b = a.clone();
        b.copy_within(0..4096, 4096); // page 0 written over page 1
        assert_ne!(hash(&b), h);
        let mut c = vec![0u8; a.len()];
        fill(&mut c, 6);
        assert_ne!(hash(&c), h);
        assert_eq!(hash(&a), h);
    }
}
