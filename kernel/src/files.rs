//! Files: the initramfs (the boot loader's initrd, cpio `newc`, plain or gzip, read-only)
//! and files on disks (`virtio0p2:/boot/vmlinuz`, read into frames).

use crate::memory;
use alloc::vec::Vec;
use kernel::formats::cpio::{self, Entry};
use kernel::formats::gzip;
use mm::memmap::Region;
use spin::Once;

static FILES: Once<Vec<Entry<'static>>> = Once::new();
static ESP: Once<Option<Vec<Entry<'static>>>> = Once::new();

/// The files our EFI stub read from the ESP it was started from (its boot entries and the
/// files they name), a cpio archive in reserved memory: the disk `esp0`'s one partition.
/// `None` when not started through the stub, or when it found no entries.
pub fn esp() -> Option<&'static [Entry<'static>]> {
    ESP.call_once(|| {
        let r = crate::SYSTEM.get()?.platform.esp_files?;
        // SAFETY: reserved at boot (memory::BootRanges), never written.
        let archive = unsafe { memory::phys_slice(r) };
        match cpio::parse(archive) {
            Ok(files) => Some(files),
            Err(e) => {
                crate::println!("disks: the EFI stub's ESP files: {e}");
                None
            }
        }
    })
    .as_deref()
}

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

/// A file's bytes: in the initramfs, or read from a disk into frames of its own.
pub enum FileData {
    /// In the initramfs, for good.
    Initramfs(&'static [u8]),
    /// Read (from a disk, or several files joined) into frames; freed when dropped.
    Frames(memory::FrameBuf),
}

impl core::ops::Deref for FileData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileData::Initramfs(d) => d,
            FileData::Frames(b) => b,
        }
    }
}

/// Reads the file `name`: an initramfs path, or `DISKpN:/path` on a disk. A read that takes
/// more than a second says how far it got, once a second.
pub fn read(name: &str) -> Result<FileData, alloc::string::String> {
    use kernel::storage::FileName;
    match FileName::parse(name).map_err(|e| alloc::format!("{e}"))? {
        FileName::Initramfs(p) => find(&p)
            .map(FileData::Initramfs)
            .ok_or_else(|| alloc::format!("{p}: no such file")),
        FileName::Disk { disk, part, path } => {
            let mut fs = crate::disks::mount(&disk, part)?;
            let size = fs
                .file_size(&path)
                .map_err(|e| alloc::format!("{name}: {e}"))?;
            let free = memory::FRAMES.free_frames() * mm::PAGE_SIZE;
            if size >= free {
                return Err(alloc::format!(
                    "{name}: {size} bytes, more than the {free} bytes of free memory"
                ));
            }
            let mut buf = memory::FrameBuf::alloc(size)
                .ok_or_else(|| alloc::format!("{name}: no {size} bytes of contiguous memory"))?;
            let t0 = crate::arch::ticks();
            let mut said = 0;
            fs.read_file(&path, &mut buf, |done| {
                let s = crate::arch::ticks_to_us(crate::arch::ticks() - t0) / 1_000_000;
                if s > said {
                    said = s;
                    crate::println!("read: {name}: {} of {} MiB", done >> 20, size >> 20);
                }
            })
            .map_err(|e| alloc::format!("{name}: {e}"))?;
            Ok(FileData::Frames(buf))
        }
    }
}

/// A directory's entries as `ls` shows them, `(kind, size, path)` with kind `d`, `-` or `?`:
/// in the initramfs, or on a disk (`DISKpN:/path`).
pub fn list(dir: &str) -> Result<Vec<(char, u64, alloc::string::String)>, alloc::string::String> {
    use kernel::storage::FileName;
    match FileName::parse(dir).map_err(|e| alloc::format!("{e}"))? {
        FileName::Initramfs(d) => {
            let d = d.trim_end_matches('/');
            let prefix = alloc::format!("{d}/");
            let found: Vec<_> = entries()
                .iter()
                .filter(|e| {
                    e.path
                        .strip_prefix(&prefix)
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
                })
                .map(|e| {
                    let kind = match (e.is_dir(), e.is_file()) {
                        (true, _) => 'd',
                        (_, true) => '-',
                        _ => '?',
                    };
                    (kind, e.data.len() as u64, e.path.clone())
                })
                .collect();
            let is_dir = entries().iter().any(|e| e.path == d && e.is_dir());
            if found.is_empty() && !d.is_empty() && !is_dir {
                return Err(alloc::format!("{d}: no such directory"));
            }
            Ok(found)
        }
        FileName::Disk { disk, part, path } => {
            let mut fs = crate::disks::mount(&disk, part)?;
            let base = path.trim_end_matches('/');
            let mut v: Vec<_> = fs
                .read_dir(&path)
                .map_err(|e| alloc::format!("{dir}: {e}"))?
                .into_iter()
                .map(|e| {
                    let kind = if e.is_dir { 'd' } else { '-' };
                    (
                        kind,
                        e.size,
                        alloc::format!("{disk}p{part}:{base}/{}", e.name),
                    )
                })
                .collect();
            v.sort_by(|a, b| a.2.cmp(&b.2));
            Ok(v)
        }
    }
}
