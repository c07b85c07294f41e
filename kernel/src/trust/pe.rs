//! PE/COFF as Authenticode sees it: where the checksum, the security directory and the
//! sections are, the certificate table's `WIN_CERTIFICATE`s, and the Authenticode digest.
//!
//! The digest is the one Microsoft's "Windows Authenticode Portable Executable Signature
//! Format" defines and UEFI (EDK2's `DxeImageVerificationLib`) and Linux
//! (`crypto/asymmetric_keys/verify_pefile.c`) compute: the headers without the checksum and
//! the security directory entry, each section's raw data in file order, then whatever
//! follows up to the certificate table, which is left out. Offsets are checked before use:
//! a bad header is a [`PeError`] naming the field, never a panic.

use crate::formats::sha256::{Compress, Sha256};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// `IMAGE_NT_OPTIONAL_HDR64_MAGIC`: PE32+.
const PE32_PLUS: u16 = 0x20b;
/// `IMAGE_NT_OPTIONAL_HDR32_MAGIC`: PE32.
const PE32: u16 = 0x10b;
/// Where the PE header's offset is, in the MS-DOS header (`e_lfanew`).
const E_LFANEW: usize = 0x3c;
/// The COFF file header's size, after the 4-byte signature.
const COFF_HEADER: usize = 20;
/// A section header's size.
const SECTION_HEADER: usize = 40;
/// The security directory is data directory 4 (`IMAGE_DIRECTORY_ENTRY_SECURITY`).
const SECURITY_DIRECTORY: usize = 4;
/// `WIN_CERT_REVISION_2_0`.
const WIN_CERT_REVISION_2_0: u16 = 0x0200;
/// `WIN_CERT_TYPE_PKCS_SIGNED_DATA`.
const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;
/// A `WIN_CERTIFICATE` header: length, revision, type.
const WIN_CERT_HEADER: usize = 8;

/// Why a file's PE/COFF headers cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeError {
    /// No `MZ` at 0 or no `PE\0\0` where `e_lfanew` points: not a PE file (an Image built
    /// without the EFI header, or a compressed one).
    NotPe,
    /// A header field lies past the end of the file.
    Truncated(&'static str),
    /// The optional header's magic is neither PE32 nor PE32+.
    OptionalHeaderMagic(u16),
    /// Fewer than five data directories: there is no security directory.
    NoSecurityDirectory,
    /// `SizeOfHeaders` is past the end of the file or does not cover the section table.
    SizeOfHeaders(u64),
    /// A section's raw data is outside the file, inside the headers, or overlaps another.
    Section {
        /// Its index in the section table.
        index: usize,
        /// Its raw data in the file.
        start: u64,
        /// Where its raw data ends.
        end: u64,
    },
    /// The security directory (a file offset and a size) is not at the end of the file,
    /// after the headers, 8-byte aligned.
    CertificateTable {
        /// The directory's offset.
        offset: u64,
        /// The directory's size.
        size: u64,
        /// The file's size.
        file: u64,
    },
    /// Bytes between the headers and the first section, or between two sections: they would
    /// be loaded but no signature covers them (no Image has such gaps).
    Gap {
        /// Where the gap starts.
        start: u64,
        /// Where it ends.
        end: u64,
    },
    /// A `WIN_CERTIFICATE` in the table has a length shorter than its header or past the
    /// table's end.
    WinCertificate {
        /// Its offset in the file.
        offset: u64,
        /// Its `dwLength`.
        length: u64,
    },
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPe => write!(f, "not a PE/COFF file (no MZ and PE headers): nothing can be signed in it"),
            Self::Truncated(what) => write!(f, "the file ends inside the PE {what}"),
            Self::OptionalHeaderMagic(m) => {
                write!(f, "optional header magic {m:#x} is neither PE32 nor PE32+")
            }
            Self::NoSecurityDirectory => {
                write!(f, "fewer than 5 data directories: no security directory")
            }
            Self::SizeOfHeaders(n) => write!(f, "SizeOfHeaders {n:#x} does not fit the file"),
            Self::Section { index, start, end } => write!(
                f,
                "section {index}'s raw data [{start:#x}, {end:#x}) is outside the file, in the headers or over another section"
            ),
            Self::CertificateTable { offset, size, file } => write!(
                f,
                "the security directory ({size:#x} bytes at {offset:#x}) is not the 8-byte aligned end of the file ({file:#x} bytes)"
            ),
            Self::Gap { start, end } => write!(
                f,
                "bytes [{start:#x}, {end:#x}) lie outside every section: no signature covers them"
            ),
            Self::WinCertificate { offset, length } => write!(
                f,
                "the WIN_CERTIFICATE at {offset:#x} has a length of {length:#x}, outside the certificate table"
            ),
        }
    }
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<u16, PeError> {
    b.get(at..at.wrapping_add(2))
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(PeError::Truncated(what))
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<usize, PeError> {
    b.get(at..at.wrapping_add(4))
        .and_then(|s| s.try_into().ok())
        .map(|s| u32::from_le_bytes(s) as usize)
        .ok_or(PeError::Truncated(what))
}

/// What the Authenticode digest and the signature need from a PE file.
#[derive(Debug)]
pub struct Pe<'a> {
    data: &'a [u8],
    /// The optional header's `CheckSum` field.
    checksum: usize,
    /// The security directory entry (offset and size, 8 bytes).
    security_entry: usize,
    /// `SizeOfHeaders`.
    headers: usize,
    /// The sections' raw data, in file order.
    sections: Vec<Range<usize>>,
    /// The certificate table, if the image is signed.
    cert_table: Option<Range<usize>>,
}

impl<'a> Pe<'a> {
    /// Reads the headers of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, PeError> {
        if data.get(..2) != Some(b"MZ") {
            return Err(PeError::NotPe);
        }
        let pe = u32_at(data, E_LFANEW, "MS-DOS header")?;
        if data.get(pe..pe.wrapping_add(4)) != Some(b"PE\0\0") {
            return Err(PeError::NotPe);
        }
        let coff = pe + 4;
        let sections = usize::from(u16_at(data, coff + 2, "COFF header")?);
        let optional_size = usize::from(u16_at(data, coff + 16, "COFF header")?);
        let opt = coff + COFF_HEADER;
        // PE32+ has a 64-bit ImageBase and stack/heap sizes: its directories start 16 later.
        let (count_at, directories) = match u16_at(data, opt, "optional header")? {
            PE32_PLUS => (opt + 108, opt + 112),
            PE32 => (opt + 92, opt + 96),
            m => return Err(PeError::OptionalHeaderMagic(m)),
        };
        let count = u32_at(data, count_at, "optional header")?;
        let security_entry = directories + 8 * SECURITY_DIRECTORY;
        if count <= SECURITY_DIRECTORY || security_entry + 8 > opt + optional_size {
            return Err(PeError::NoSecurityDirectory);
        }
        let headers = u32_at(data, opt + 60, "optional header")?;
        let table = opt + optional_size;
        let table_end = table + SECTION_HEADER * sections;
        if headers > data.len() || headers < table_end {
            return Err(PeError::SizeOfHeaders(headers as u64));
        }
        let cert_table = Self::cert_table(data, security_entry, headers)?;
        let end = cert_table.as_ref().map_or(data.len(), |t| t.start);
        let mut raw = Vec::with_capacity(sections);
        for index in 0..sections {
            let s = table + SECTION_HEADER * index;
            let size = u32_at(data, s + 16, "section table")?;
            let start = u32_at(data, s + 20, "section table")?;
            if size == 0 {
                continue;
            }
            if start < headers || start + size > end {
                return Err(PeError::Section {
                    index,
                    start: start as u64,
                    end: (start + size) as u64,
                });
            }
            raw.push((index, start..start + size));
        }
        raw.sort_unstable_by_key(|(_, r)| r.start);
        if let Some(w) = raw.windows(2).find(|w| w[0].1.end > w[1].1.start) {
            let (index, r) = &w[1];
            return Err(PeError::Section {
                index: *index,
                start: r.start as u64,
                end: r.end as u64,
            });
        }
        // The sections follow the headers and each other without a gap: the Authenticode
        // digest skips gaps, and kexec loads the file whole.
        let mut at = headers;
        for (_, r) in &raw {
            if r.start != at {
                return Err(PeError::Gap {
                    start: at as u64,
                    end: r.start as u64,
                });
            }
            at = r.end;
        }
        Ok(Pe {
            data,
            checksum: opt + 64,
            security_entry,
            headers,
            sections: raw.into_iter().map(|(_, r)| r).collect(),
            cert_table,
        })
    }

    /// The certificate table the security directory names: after the headers, 8-byte
    /// aligned, and last in the file (as UEFI and Linux require: they hash all but it).
    fn cert_table(
        data: &[u8],
        entry: usize,
        headers: usize,
    ) -> Result<Option<Range<usize>>, PeError> {
        let offset = u32_at(data, entry, "security directory")?;
        let size = u32_at(data, entry + 4, "security directory")?;
        if size == 0 {
            return Ok(None);
        }
        if offset < headers || !offset.is_multiple_of(8) || offset + size != data.len() {
            return Err(PeError::CertificateTable {
                offset: offset as u64,
                size: size as u64,
                file: data.len() as u64,
            });
        }
        Ok(Some(offset..offset + size))
    }

    /// Whether the file has a certificate table.
    pub fn is_signed(&self) -> bool {
        self.cert_table.is_some()
    }

    /// The bytes the digest covers: the file up to its certificate table. A verified image
    /// is loaded without the table, so that nothing unsigned lands in the next kernel's
    /// memory (past `_edata`, where a kernel's BSS or heap goes).
    pub fn signed_len(&self) -> usize {
        self.cert_table
            .as_ref()
            .map_or(self.data.len(), |t| t.start)
    }

    /// The Authenticode SHA-256 digest, blocks folded by `compress`.
    pub fn authenticode_sha256(&self, compress: Compress) -> [u8; 32] {
        let d = self.data;
        let mut h = Sha256::new(compress);
        h.update(&d[..self.checksum]);
        h.update(&d[self.checksum + 4..self.security_entry]);
        h.update(&d[self.security_entry + 8..self.headers]);
        for s in &self.sections {
            h.update(&d[s.clone()]);
        }
        // Then the file from the count of bytes hashed so far up to the certificate table,
        // as the specification, EDK2 and Linux count it (an offset, not the last section's
        // end: the two differ only when sections leave gaps).
        let hashed = self.headers + self.sections.iter().map(|s| s.len()).sum::<usize>();
        let end = self.cert_table.as_ref().map_or(d.len(), |t| t.start);
        if hashed < end {
            h.update(&d[hashed..end]);
        }
        h.finish()
    }

    /// The PKCS#7 SignedData of each `WIN_CERTIFICATE` of type `PKCS_SIGNED_DATA`
    /// (others, such as `EFI_CERT_TYPE_PKCS7_GUID` wrappers, are skipped).
    pub fn signatures(&self) -> Result<Vec<&'a [u8]>, PeError> {
        let Some(table) = self.cert_table.clone() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut at = table.start;
        while at < table.end {
            let length = u32_at(self.data, at, "WIN_CERTIFICATE")?;
            if length < WIN_CERT_HEADER || length > table.end - at {
                return Err(PeError::WinCertificate {
                    offset: at as u64,
                    length: length as u64,
                });
            }
            let revision = u16_at(self.data, at + 4, "WIN_CERTIFICATE")?;
            let kind = u16_at(self.data, at + 6, "WIN_CERTIFICATE")?;
            if revision == WIN_CERT_REVISION_2_0 && kind == WIN_CERT_TYPE_PKCS_SIGNED_DATA {
                out.push(&self.data[at + WIN_CERT_HEADER..at + length]);
            }
            at += length.next_multiple_of(8);
        }
        Ok(out)
    }
}
