//! EFI signature lists (UEFI 2.10, 32.4.1 "Signature Database"): the format of the `db` and
//! `dbx` variables, and the one this kernel hands its trust set on in.
//!
//! An `EFI_SIGNATURE_LIST` is a type GUID, the list's size, a header size, the size of each
//! entry, a header, then entries of an owner GUID and the data: a DER certificate
//! ([`X509`]), an image's Authenticode SHA-256 ([`SHA256`]), or a certificate's TBS SHA-256
//! and a revocation time ([`X509_SHA256`], in `dbx`).

use alloc::vec::Vec;
use core::fmt;
use uefi_raw::{guid, Guid};

/// `EFI_CERT_X509_GUID`: a DER certificate.
pub const X509: Guid = guid!("a5c059a1-94e4-4aa7-87b5-ab155c2bf072");
/// `EFI_CERT_SHA256_GUID`: an image's SHA-256 (Authenticode digest).
pub const SHA256: Guid = guid!("c1c41626-504c-4092-aca9-41f936934328");
/// `EFI_CERT_X509_SHA256_GUID`: a certificate's TBS SHA-256 and a revocation time.
pub const X509_SHA256: Guid = guid!("3bd2a492-96c0-4079-b420-fcf98ef103ed");
/// The owner GUID this kernel writes in the lists it hands on (UEFI's own lists keep theirs;
/// nothing reads it).
pub const OWNER: Guid = guid!("68626f62-6b78-7063-7472-757374736574");

/// The list header: type, list size, header size, entry size.
const LIST_HEADER: usize = 28;
/// An entry's owner GUID, before its data.
const OWNER_SIZE: usize = 16;

/// One entry of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The list's type GUID.
    pub kind: Guid,
    /// The entry's data (without the owner).
    pub data: &'a [u8],
}

/// A list whose sizes do not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EslError {
    /// The list's offset in the buffer.
    pub offset: usize,
}

impl fmt::Display for EslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the EFI_SIGNATURE_LIST at offset {:#x} has sizes that do not fit (list, header or entry size)",
            self.offset
        )
    }
}

fn size_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as usize
}

/// The entries of the lists in `bytes`, in order; a list whose sizes do not fit is an error.
pub fn entries(bytes: &[u8]) -> Result<Vec<Entry<'_>>, EslError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let bad = EslError { offset: at };
        let list = bytes
            .get(at..)
            .filter(|l| l.len() >= LIST_HEADER)
            .ok_or(bad)?;
        let (size, header, entry) = (size_at(list, 16), size_at(list, 20), size_at(list, 24));
        let body = LIST_HEADER.checked_add(header).ok_or(bad)?;
        if size > list.len() || body > size || entry <= OWNER_SIZE {
            return Err(bad);
        }
        let kind = Guid::from_bytes(list[..16].try_into().expect("16 bytes"));
        let chunks = list[body..size].chunks_exact(entry);
        if !chunks.remainder().is_empty() {
            return Err(bad);
        }
        out.extend(chunks.map(|e| Entry {
            kind,
            data: &e[OWNER_SIZE..],
        }));
        at += size;
    }
    Ok(out)
}

/// Appends one list of `kind` holding `items` (all of one size) to `out`.
pub fn push_list(out: &mut Vec<u8>, kind: Guid, items: &[&[u8]]) {
    let Some(first) = items.first() else { return };
    let entry = OWNER_SIZE + first.len();
    debug_assert!(items.iter().all(|i| i.len() == first.len()));
    let size = LIST_HEADER + entry * items.len();
    out.extend_from_slice(&kind.to_bytes());
    for n in [size, 0, entry] {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for item in items {
        out.extend_from_slice(&OWNER.to_bytes());
        out.extend_from_slice(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lists_read_back() {
        let mut b = Vec::new();
        push_list(&mut b, X509, &[b"certificate one"]);
        push_list(&mut b, SHA256, &[&[1; 32], &[2; 32]]);
        push_list(&mut b, SHA256, &[]);
        let e = entries(&b).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            Entry {
                kind: X509,
                data: b"certificate one"
            }
        );
        assert_eq!(
            e[2],
            Entry {
                kind: SHA256,
                data: &[2; 32]
            }
        );
        assert_eq!(entries(&[]).unwrap(), []);
    }

    #[test]
    fn type_guids_are_stored_as_uefi_stores_them() {
        // EFI_CERT_X509_GUID as it stands at the start of an EFI_SIGNATURE_LIST in a `db`
        // variable: the first three fields little-endian.
        let mut b = Vec::new();
        push_list(&mut b, X509, &[b"c"]);
        assert_eq!(
            b[..16],
            [
                0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b,
                0xf0, 0x72
            ]
        );
    }

    #[test]
    fn lists_whose_sizes_do_not_fit_are_errors() {
        let mut b = Vec::new();
        push_list(&mut b, SHA256, &[&[1; 32], &[2; 32]]);
        let good = b.clone();
        // A list size past the end; an entry size that does not divide the body; an entry
        // no larger than its owner; a header size past the list; a short tail.
        for (at, v) in [(16, 1000u32), (24, 40), (24, 16), (20, 0xffff_fff0)] {
            let mut bad = good.clone();
            bad[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert_eq!(
                entries(&bad),
                Err(EslError { offset: 0 }),
                "field {at} = {v}"
            );
        }
        let mut tail = good.clone();
        tail.extend_from_slice(&[0; 10]);
        assert_eq!(entries(&tail), Err(EslError { offset: good.len() }));
    }
}
