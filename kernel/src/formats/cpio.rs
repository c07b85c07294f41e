//! The initramfs: a cpio archive in the `newc` format (`070701`, or `070702` with checksums),
//! as Linux reads it. Files are slices of the archive; nothing is copied.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Bytes of a `newc` header.
pub const HEADER_LEN: usize = 110;
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// `mode` file-type bits.
const S_IFMT: u32 = 0o170000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;

/// One archive member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Absolute path, normalised to start with `/` (`./etc/x` and `etc/x` become `/etc/x`).
    pub path: String,
    /// File mode, type bits included.
    pub mode: u32,
    /// File contents (for a symlink, its target).
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
}

/// What is wrong with an archive. Offsets are bytes from the start of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The archive ends inside a header, a name or file data.
    Truncated {
        /// Where the incomplete part starts.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// No `070701`/`070702` magic where a header should start.
    BadMagic {
        /// Where the header should start.
        offset: usize,
    },
    /// A header field that is not 8 hex digits.
    BadField {
        /// Where the header starts.
        offset: usize,
        /// The field's name.
        field: &'static str,
    },
    /// A name that is empty, not NUL-terminated or not UTF-8.
    BadName {
        /// Where the header starts.
        offset: usize,
    },
    /// The archive ends without a `TRAILER!!!` entry.
    NoTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::Truncated { offset, what } => {
                write!(f, "cpio: archive truncated in the {what} at byte {offset}")
            }
            CpioError::BadMagic { offset } => {
                write!(f, "cpio: no newc header (070701) at byte {offset}")
            }
            CpioError::BadField { offset, field } => {
                write!(
                    f,
                    "cpio: header at byte {offset}: field {field} is not hexadecimal"
                )
            }
            CpioError::BadName { offset } => {
                write!(f, "cpio: header at byte {offset}: bad file name")
            }
            CpioError::NoTrailer => write!(f, "cpio: archive ends without TRAILER!!!"),
        }
    }
}

const fn align4(x: usize) -> usize {
    (x + 3) & !3
}

fn hex_field(hdr: &[u8], idx: usize, offset: usize, field: &'static str) -> Result<u32, CpioError> {
    let s = &hdr[6 + 8 * idx..6 + 8 * (idx + 1)];
    core::str::from_utf8(s)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or(CpioError::BadField { offset, field })
}

fn normalise(name: &str) -> String {
    let trimmed = name.trim_start_matches("./").trim_start_matches('/');
    let mut p = String::with_capacity(trimmed.len() + 1);
    p.push('/');
    p.push_str(trimmed.trim_end_matches('/'));
    p
}

/// Parses a whole archive. Zero padding after the trailer (and between concatenated
/// archives) is accepted, as Linux does.
pub fn parse(data: &[u8]) -> Result<Vec<Entry<'_>>, CpioError> {
    let mut entries = Vec::new();
    let mut off = 0;
    let mut saw_trailer = false;
    loop {
        // Skip the zero padding that may follow a trailer.
        while saw_trailer && off < data.len() && data[off] == 0 {
            off += 1;
        }
        if off >= data.len() {
            return if saw_trailer {
                Ok(entries)
            } else {
                Err(CpioError::NoTrailer)
            };
        }
        let hdr = data
            .get(off..off + HEADER_LEN)
            .ok_or(CpioError::Truncated {
                offset: off,
                what: "header",
            })?;
        if &hdr[..6] != b"070701" && &hdr[..6] != b"070702" {
            return Err(CpioError::BadMagic { offset: off });
        }
        let mode = hex_field(hdr, 1, off, "mode")?;
        let filesize = hex_field(hdr, 6, off, "filesize")? as usize;
        let namesize = hex_field(hdr, 11, off, "namesize")? as usize;
        let name_start = off + HEADER_LEN;
        let name_bytes =
            data.get(name_start..name_start + namesize)
                .ok_or(CpioError::Truncated {
                    offset: name_start,
                    what: "file name",
                })?;
        let name = match name_bytes.split_last() {
            Some((0, n)) if !n.is_empty() => {
                core::str::from_utf8(n).map_err(|_| CpioError::BadName { offset: off })?
            }
            _ => return Err(CpioError::BadName { offset: off }),
        };
        let data_start = align4(name_start + namesize);
        let file = data
            .get(data_start..data_start + filesize)
            .ok_or(CpioError::Truncated {
                offset: data_start,
                what: "file data",
            })?;
        off = align4(data_start + filesize);
        if name == TRAILER {
            saw_trailer = true;
            continue;
        }
        saw_trailer = false;
        if name == "." {
            continue;
        }
        entries.push(Entry {
            path: normalise(name),
            mode,
            data: file,
        });
    }
}

/// A `newc` header for a file `size` bytes long whose name (without its NUL) is `name_len`
/// bytes; the name, its NUL and padding to 4 bytes follow it, then the data, padded to 4.
/// Written digit by digit (no `core::fmt`): the EFI stub, which runs before the kernel's
/// relocation, writes archives with it too.
pub fn header(ino: u32, mode: u32, size: u32, name_len: u32) -> [u8; HEADER_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = [b'0'; HEADER_LEN];
    h[..6].copy_from_slice(b"070701");
    // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
    // rdevminor, namesize, check.
    let fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, name_len + 1, 0];
    for (i, v) in fields.iter().enumerate() {
        for d in 0..8 {
            h[6 + 8 * i + d] = HEX[(v >> (28 - 4 * d) & 0xf) as usize];
        }
    }
    h
}

/// Bytes an entry takes: the header and name padded to 4, the data padded to 4.
pub const fn entry_len(name_len: usize, size: usize) -> usize {
    align4(HEADER_LEN + name_len + 1) + align4(size)
}

/// Builds a `newc` archive (for tests and for handing files on).
pub fn build(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &str, mode: u32, data: &[u8], ino: usize| {
        out.extend_from_slice(&header(
            ino as u32,
            mode,
            data.len() as u32,
            name.len() as u32,
        ));
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(align4(out.len()), 0);
        out.extend_from_slice(data);
        out.resize(align4(out.len()), 0);
    };
    for (i, (name, mode, data)) in files.iter().enumerate() {
        push(name, *mode, data, i + 1);
    }
    push(TRAILER, 0, &[], 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build(&[
            (".", S_IFDIR | 0o755, b""),
            ("etc", S_IFDIR | 0o755, b""),
            ("./etc/hello.txt", S_IFREG | 0o644, b"hello, world\n"),
            ("init.rc", S_IFREG | 0o644, b"mem\npoweroff\n"),
        ])
    }

    #[test]
    fn parses_files_and_dirs() {
        let a = sample();
        let e = parse(&a).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].path, "/etc");
        assert!(e[0].is_dir());
        assert_eq!(e[1].path, "/etc/hello.txt");
        assert_eq!(e[1].data, b"hello, world\n");
        assert!(e[1].is_file());
        assert_eq!(e[2].path, "/init.rc");
    }

    #[test]
    fn concatenated_archives_with_padding() {
        let mut a = sample();
        a.extend_from_slice(&[0; 512]);
        a.extend_from_slice(&build(&[("x", S_IFREG | 0o644, b"y")]));
        let e = parse(&a).unwrap();
        assert_eq!(e.last().unwrap().path, "/x");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let a = sample();
        let end_of_last_file = a.len() - 124; // the trailer is 110 + 11 bytes, padded to 124
        for cut in 1..end_of_last_file {
            let r = parse(&a[..cut]);
            assert!(
                matches!(
                    r,
                    Err(CpioError::Truncated { .. }) | Err(CpioError::NoTrailer)
                ),
                "cut at {cut}: {r:?}"
            );
        }
    }

    #[test]
    fn corruption_is_named() {
        let mut a = sample();
        a[0] = b'X';
        assert_eq!(parse(&a), Err(CpioError::BadMagic { offset: 0 }));
        let mut a = sample();
        a[6 + 8 * 6] = b'z'; // filesize of the first entry
        assert_eq!(
            parse(&a),
            Err(CpioError::BadField {
                offset: 0,
                field: "filesize"
            })
        );
        let mut a = sample();
        a[6 + 8 * 6..6 + 8 * 7].copy_from_slice(b"7fffffff");
        assert!(matches!(
            parse(&a),
            Err(CpioError::Truncated {
                what: "file data",
                ..
            })
        ));
        assert_eq!(parse(b"garbage that is not an archive at all........................................................................................"), Err(CpioError::BadMagic { offset: 0 }));
    }
}
