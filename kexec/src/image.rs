//! The arm64 Image header (`Documentation/arch/arm64/booting.rst`), as the loader checks it.
//!
//! ```text
//! 0x00 code0, code1     0x08 text_offset (LE)   0x10 image_size (LE)   0x18 flags (LE)
//! 0x20..0x38 reserved   0x38 magic "ARM\x64"     0x3c res5
//! ```

use core::fmt;

/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// `magic` at offset 0x38.
pub const MAGIC: [u8; 4] = *b"ARM\x64";
const MAGIC_OFFSET: usize = 0x38;
/// The MS-DOS header's magic, which an EFI-capable Image has as the low half of `code0`.
const PE_DOS_MAGIC: [u8; 2] = *b"MZ";
/// Where the MS-DOS header keeps the PE header's file offset.
const PE_OFFSET_AT: usize = 0x3c;
/// The PE header's signature.
const PE_SIGNATURE: &[u8] = b"PE\0\0";

/// `flags` fields.
pub mod flags {
    /// Bit 0: kernel endianness, 1 = big-endian.
    pub const BE: u64 = 1 << 0;
    /// Bits 1–2: page size, 0 = unspecified, 1 = 4K, 2 = 16K, 3 = 64K.
    pub const PAGE_SIZE_SHIFT: u64 = 1;
    /// Mask of the page-size field (after shifting).
    pub const PAGE_SIZE_MASK: u64 = 0b11;
    /// Bit 3: 1 = the image may be placed anywhere in memory (2 MiB aligned).
    pub const PHYS_PLACEMENT_ANY: u64 = 1 << 3;
}

/// What the header says about an Image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the image from a 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes from the load address the kernel needs free (BSS, page tables included).
    pub image_size: u64,
    /// The `flags` word.
    pub flags: u64,
}

/// Why a file is not an Image this kernel can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the 64-byte header.
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// No `ARM\x64` at offset 0x38.
    BadMagic {
        /// What is there instead.
        found: [u8; 4],
    },
    /// `flags` bit 0: a big-endian kernel.
    BigEndian,
    /// `flags` bits 1–2 ask for a page size other than 4 KiB.
    PageSize {
        /// The page size the header asks for, in KiB.
        kib: u32,
    },
    /// `image_size` is 0 (a pre-3.17 kernel, whose needs are unknown).
    ZeroImageSize,
    /// `image_size` is smaller than the file itself.
    ImageSizeBelowFile {
        /// The header's `image_size`.
        image_size: u64,
        /// The file's length.
        file_len: usize,
    },
    /// `text_offset` is not below 2 MiB or not 4 KiB aligned.
    BadTextOffset(u64),
    /// The Image is also an EFI application (`MZ`), but the PE header offset at 0x3c points
    /// past the end of the file.
    PeOutside {
        /// The offset at 0x3c.
        offset: u32,
        /// The file's length.
        file_len: usize,
    },
    /// There is no `PE\0\0` signature where the offset at 0x3c points.
    PeSignature {
        /// The offset at 0x3c.
        offset: u32,
        /// The four bytes found there.
        found: [u8; 4],
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => write!(
                f,
                "not an arm64 Image: {len} bytes, shorter than the {HEADER_SIZE}-byte header"
            ),
            Self::BadMagic { found } => write!(
                f,
                "not an arm64 Image: magic at 0x38 is {found:02x?}, expected \"ARM\\x64\""
            ),
            Self::BigEndian => write!(f, "Image header flags: big-endian kernel (bit 0)"),
            Self::PageSize { kib } => write!(
                f,
                "Image header flags: {kib}K pages (bits 1-2); this kernel hands over 4K only"
            ),
            Self::ZeroImageSize => write!(
                f,
                "Image header: image_size is 0 (pre-3.17 kernel), cannot tell how much memory it needs"
            ),
            Self::ImageSizeBelowFile {
                image_size,
                file_len,
            } => write!(
                f,
                "Image header: image_size {image_size} is smaller than the file ({file_len} bytes); truncated or corrupt header"
            ),
            Self::PeOutside { offset, file_len } => write!(
                f,
                "Image's PE/COFF header: the offset at 0x3c ({offset:#x}) points outside the {file_len}-byte file"
            ),
            Self::PeSignature { offset, found } => write!(
                f,
                "Image's PE/COFF header: {found:02x?} at {offset:#x} (named at 0x3c), expected \"PE\\0\\0\""
            ),
            Self::BadTextOffset(t) => write!(
                f,
                "Image header: text_offset {t:#x} is not a 4 KiB-aligned offset below 2 MiB"
            ),
        }
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Reads and checks the header of `file`.
pub fn parse(file: &[u8]) -> Result<ImageHeader, ImageError> {
    if file.len() < HEADER_SIZE {
        return Err(ImageError::TooShort { len: file.len() });
    }
    let mut found = [0u8; 4];
    found.copy_from_slice(&file[MAGIC_OFFSET..MAGIC_OFFSET + 4]);
    if found != MAGIC {
        return Err(ImageError::BadMagic { found });
    }
    let h = ImageHeader {
        text_offset: le64(file, 0x08),
        image_size: le64(file, 0x10),
        flags: le64(file, 0x18),
    };
    if h.flags & flags::BE != 0 {
        return Err(ImageError::BigEndian);
    }
    match (h.flags >> flags::PAGE_SIZE_SHIFT) & flags::PAGE_SIZE_MASK {
        0 | 1 => {}
        2 => return Err(ImageError::PageSize { kib: 16 }),
        _ => return Err(ImageError::PageSize { kib: 64 }),
    }
    if h.image_size == 0 {
        return Err(ImageError::ZeroImageSize);
    }
    if h.image_size < file.len() as u64 {
        return Err(ImageError::ImageSizeBelowFile {
            image_size: h.image_size,
            file_len: file.len(),
        });
    }
    if h.text_offset >= 2 << 20 || !h.text_offset.is_multiple_of(4096) {
        return Err(ImageError::BadTextOffset(h.text_offset));
    }
    // An EFI-capable Image (Linux with its EFI stub, this kernel) starts with "MZ" and
    // names its PE header at 0x3c: if it claims one, it must be there.
    if file[..2] == PE_DOS_MAGIC {
        let offset = u32::from_le_bytes(file[PE_OFFSET_AT..PE_OFFSET_AT + 4].try_into().unwrap());
        let sig = (offset as usize)
            .checked_add(4)
            .and_then(|end| file.get(offset as usize..end))
            .ok_or(ImageError::PeOutside {
                offset,
                file_len: file.len(),
            })?;
        if sig != PE_SIGNATURE {
            return Err(ImageError::PeSignature {
                offset,
                found: sig.try_into().unwrap(),
            });
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn a_pe_header_must_be_where_mz_says() {
        let mut f = header(0, 1 << 20, 0b1010, 4096);
        f[0..2].copy_from_slice(b"MZ");
        f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        f[0x40..0x44].copy_from_slice(b"PE\0\0");
        assert!(parse(&f).is_ok());
        f[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert_eq!(
            parse(&f).unwrap_err(),
            ImageError::PeOutside {
                offset: 0xffff_fff0,
                file_len: 4096
            }
        );
        f[0x3c..0x40].copy_from_slice(&4094u32.to_le_bytes());
        assert!(matches!(
            parse(&f).unwrap_err(),
            ImageError::PeOutside { offset: 4094, .. }
        ));
        f[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        assert_eq!(
            parse(&f).unwrap_err(),
            ImageError::PeSignature {
                offset: 0x80,
                found: [0; 4]
            }
        );
    }

    fn header(text_offset: u64, image_size: u64, flags: u64, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[8..16].copy_from_slice(&text_offset.to_le_bytes());
        f[16..24].copy_from_slice(&image_size.to_le_bytes());
        f[24..32].copy_from_slice(&flags.to_le_bytes());
        f[0x38..0x3c].copy_from_slice(&MAGIC);
        f
    }

    #[test]
    fn good_headers() {
        let f = header(0, 0x26_0000, 0xa, 4096);
        assert_eq!(
            parse(&f),
            Ok(ImageHeader {
                text_offset: 0,
                image_size: 0x26_0000,
                flags: 0xa
            })
        );
        // Page size "unspecified" is 4K by convention.
        assert!(parse(&header(0, 8192, 0, 4096)).is_ok());
    }

    #[test]
    fn bad_headers_are_named() {
        assert_eq!(parse(&[0; 10]), Err(ImageError::TooShort { len: 10 }));
        let mut f = header(0, 8192, 0xa, 4096);
        f[0x38] = b'X';
        assert!(matches!(parse(&f), Err(ImageError::BadMagic { .. })));
        assert_eq!(
            parse(&header(0, 8192, 0xb, 4096)),
            Err(ImageError::BigEndian)
        );
        assert_eq!(
            parse(&header(0, 8192, 0x4 | 0x8, 4096)),
            Err(ImageError::PageSize { kib: 16 })
        );
        assert_eq!(
            parse(&header(0, 8192, 0x6 | 0x8, 4096)),
            Err(ImageError::PageSize { kib: 64 })
        );
        assert_eq!(
            parse(&header(0, 0, 0xa, 4096)),
            Err(ImageError::ZeroImageSize)
        );
        assert_eq!(
            parse(&header(0, 100, 0xa, 4096)),
            Err(ImageError::ImageSizeBelowFile {
                image_size: 100,
                file_len: 4096
            })
        );
        assert_eq!(
            parse(&header(0x20_0000, 1 << 22, 0xa, 4096)),
            Err(ImageError::BadTextOffset(0x20_0000))
        );
        let msg = alloc::format!("{}", parse(&header(0, 8192, 0x6, 4096)).unwrap_err());
        assert!(msg.contains("64K pages"), "{msg}");
    }
}
