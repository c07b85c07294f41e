//! The initramfs: the boot loader's initrd (cpio `newc`, plain or gzip), as read-only files.

use crate::memory;
use alloc::vec::Vec;
use kernel::formats::cpio::{self, Entry};
use kernel::formats::gzip;
use mm::memmap::Region;
use spin::Once;

static FILES: Once<Vec<Entry<'static>>> = Once::new();

/// Why the initramfs could not be read.
#[derive(Debug)]
pub enum InitramfsError {
    /// gzip failed.
    Gzip(gzip::GzipError),
    /// No memory for the decompressed archive.
    NoMemory {
        /// Bytes needed.
        bytes: u64,
    },
    /// The archive is malformed.
    Cpio(cpio::CpioError),
}

impl core::fmt::Display for InitramfsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitramfsError::Gzip(e) => write!(f, "{e}"),
            InitramfsError::NoMemory { bytes } => write!(
                f,
                "gzip: the trailer announces {bytes} bytes, more than the largest free \
                 contiguous memory (a truncated or corrupt file?)"
            ),
            InitramfsError::Cpio(e) => write!(f, "{e}"),
        }
    }
}

/// Reads the initrd at `r`. On error nothing is kept (and frames are returned).
pub fn load(r: Region) -> Result<usize, InitramfsError> {
    // SAFETY: the initrd is RAM, reserved in the memory map, never written.
    let raw = unsafe { memory::phys_slice(r) };
    let archive: &'static [u8] = if gzip::is_gzip(raw) {
        let buf = memory::FrameBuf::gunzip(raw).map_err(|e| match e {
            memory::GunzipError::Gzip(e) => InitramfsError::Gzip(e),
            memory::GunzipError::TooLarge { announced, .. }
            | memory::GunzipError::NoMemory(announced) => {
                InitramfsError::NoMemory { bytes: announced }
            }
        })?;
        // Checked while the frames are still owned (a bad archive gives them back), then
        // kept for good: the files point into them.
        cpio::parse(&buf).map_err(InitramfsError::Cpio)?;
        buf.leak()
    } else {
        raw
    };
    let entries = cpio::parse(archive).map_err(InitramfsError::Cpio)?;
    let n = entries.len();
    FILES.call_once(|| entries);
    Ok(n)
}

/// Every file, directory and link.
pub fn entries() -> &'static [Entry<'static>] {
    FILES.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// The contents of the regular file at `path`.
pub fn find(path: &str) -> Option<&'static [u8]> {
    let want = if path.starts_with('/') {
        alloc::string::String::from(path)
    } else {
        alloc::format!("/{path}")
    };
    entries()
        .iter()
        .find(|e| e.path == want && e.is_file())
        .map(|e| e.data)
}
