//! The original bytes of DER elements, read with the `der` crate's reader.
//!
//! A signature covers bytes as they were signed: a certificate's `tbsCertificate` and a
//! SignerInfo's signed attributes must be hashed as they appear in the file, not as a decoder
//! would encode them again (`der` sorts a SET OF when it decodes one). The typed structures
//! come from `x509-cert` and `cms`; this only finds where an element starts and ends.

use der::asn1::AnyRef;
use der::{Decode, Reader, SliceReader};

/// The tag of a SET (OF), constructed.
pub const SET: u8 = 0x31;
/// The tag of an OCTET STRING.
pub const OCTET_STRING: u8 = 0x04;
/// The tag of a context-specific, constructed `[0]`.
pub const CONTEXT_0: u8 = 0xa0;

/// One DER element.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    /// Its identifier octet.
    pub tag: u8,
    /// Its contents.
    pub value: &'a [u8],
    /// Identifier, length and contents.
    pub raw: &'a [u8],
}

/// The element at the start of `bytes`, and what follows it.
pub fn read(bytes: &[u8]) -> Result<(Tlv<'_>, &[u8]), der::Error> {
    let mut reader = SliceReader::new(bytes)?;
    let any = AnyRef::decode(&mut reader)?;
    let used = usize::try_from(reader.position())?;
    let (raw, rest) = bytes.split_at(used);
    Ok((
        Tlv {
            tag: raw[0],
            value: any.value(),
            raw,
        },
        rest,
    ))
}

/// The elements one after another in `bytes` (a constructed element's contents); after an
/// error, nothing more.
pub fn elements(mut bytes: &[u8]) -> impl Iterator<Item = Result<Tlv<'_>, der::Error>> {
    core::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        Some(read(bytes).map(|(tlv, rest)| {
            bytes = rest;
            tlv
        }))
        .inspect(|r| {
            if r.is_err() {
                bytes = &[];
            }
        })
    })
}

/// The `n`-th element (from 0) in `bytes`.
pub fn nth(bytes: &[u8], n: usize) -> Result<Tlv<'_>, der::Error> {
    elements(bytes).nth(n).unwrap_or_else(|| {
        Err(der::ErrorKind::Incomplete {
            expected_len: der::Length::ONE,
            actual_len: der::Length::ZERO,
        }
        .into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_elements_with_their_bytes() {
        // SEQUENCE { INTEGER 5, SET { OCTET STRING "ab" } }
        let der = [
            0x30, 0x09, 0x02, 0x01, 0x05, 0x31, 0x04, 0x04, 0x02, b'a', b'b',
        ];
        let (seq, rest) = read(&der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(seq.tag, 0x30);
        let set = nth(seq.value, 1).unwrap();
        assert_eq!(set.tag, SET);
        assert_eq!(set.raw, &der[5..]);
        let os = nth(set.value, 0).unwrap();
        assert_eq!((os.tag, os.value), (OCTET_STRING, &b"ab"[..]));
        assert!(nth(seq.value, 2).is_err());
    }

    #[test]
    fn refuses_what_is_not_der() {
        // A length past the end, an indefinite length (BER), a non-minimal length.
        for bad in [
            &[0x30, 0x05, 0x02][..],
            &[0x30, 0x80, 0, 0],
            &[0x04, 0x81, 0x01, 0],
        ] {
            assert!(read(bad).is_err(), "{bad:x?}");
        }
        let mut it = elements(&[0x04, 0x01, 7, 0x04, 0x09]);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
