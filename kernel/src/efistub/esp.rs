//! The stub's files from the volume it was started from (the ESP), through the firmware's
//! `EFI_SIMPLE_FILE_SYSTEM_PROTOCOL`: the `initrd=` file, and the boot entries
//! (`/loader/loader.conf`, `/loader/entries/*.conf`, `/extlinux/extlinux.conf`,
//! `/boot/extlinux/extlinux.conf`) with every file they name, read into one cpio archive
//! that the kernel mounts as the disk `esp0`. So an entry on the ESP boots without a block
//! driver for the board's disk.
//!
//! The entries are not parsed here (the kernel does that, `formats::bootentry`): lines are
//! only scanned for the keys that name files (`linux`, `kernel`, `initrd`, `fdt`,
//! `devicetree`), and each file found is kept. Like the rest of the stub this runs before the
//! kernel's relocation: no `core::fmt`, no trait objects, no panics.

use super::{allocate, Failure, PAGE};
use alloc::vec::Vec;
use core::ffi::c_void;
use core::mem::offset_of;
use core::ptr::null_mut;
use kernel::formats::{bootentry, cpio};
use uefi_raw::protocol::file_system::{
    FileAttribute, FileInfo, FileMode, FileProtocolV1, SimpleFileSystemProtocol,
};
use uefi_raw::protocol::loaded_image::LoadedImageProtocol;
use uefi_raw::table::boot::BootServices;
use uefi_raw::Status;

/// Byte offsets of `EFI_FILE_INFO`'s `FileSize`, `Attribute` and UCS-2 name, from uefi-raw's
/// layout. The info is read into a buffer of `u64`s, so they must be 8-aligned.
const INFO_FILE_SIZE: usize = offset_of!(FileInfo, file_size);
const INFO_ATTRIBUTE: usize = offset_of!(FileInfo, attribute);
const INFO_NAME: usize = offset_of!(FileInfo, file_name);
const _: () = assert!(
    INFO_FILE_SIZE.is_multiple_of(8)
        && INFO_ATTRIBUTE.is_multiple_of(8)
        && INFO_NAME.is_multiple_of(8)
);
/// The longest path the stub opens, in UCS-2 units.
const MAX_PATH: usize = 256;
/// Configuration files larger than this are not read (as the kernel's `boot`).
const MAX_CONFIG: u64 = 1 << 20;
/// An open file or directory of the boot volume, closed when dropped.
pub struct File(*mut FileProtocolV1);

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: a file this module opened, closed once.
        let _ = unsafe { ((*self.0).close)(self.0) };
    }
}

/// The root directory of the volume the image was loaded from.
pub fn root(bs: &BootServices, li: &LoadedImageProtocol) -> Result<File, Failure> {
    let mut fs: *mut c_void = null_mut();
    // SAFETY: the loaded image's device handle.
    let s =
        unsafe { (bs.handle_protocol)(li.device_handle, &SimpleFileSystemProtocol::GUID, &mut fs) };
    if s != Status::SUCCESS || fs.is_null() {
        return Err((s, "the volume this image came from has no file system"));
    }
    let fs = fs as *mut SimpleFileSystemProtocol;
    let mut root: *mut FileProtocolV1 = null_mut();
    // SAFETY: the firmware's file-system protocol instance.
    let s = unsafe { ((*fs).open_volume)(fs, &mut root) };
    if s != Status::SUCCESS || root.is_null() {
        return Err((s, "the boot volume cannot be opened"));
    }
    Ok(File(root))
}

impl File {
    /// Opens `path` (`/`-separated, from the root) for reading; `None` if it is not there.
    pub fn open(&self, path: &[u8]) -> Option<File> {
        let mut name = [0u16; MAX_PATH];
        if path.len() >= name.len() {
            return None;
        }
        for (n, &b) in name.iter_mut().zip(path) {
            *n = if b == b'/' { b'\\' as u16 } else { b as u16 };
        }
        let mut file: *mut FileProtocolV1 = null_mut();
        // SAFETY: an open directory; a NUL-terminated name.
        let s = unsafe {
            ((*self.0).open)(
                self.0,
                &mut file,
                name.as_ptr(),
                FileMode::READ,
                FileAttribute::empty(),
            )
        };
        // Not `then_some(File(..))`: that would make (and drop, closing it) a `File` of a
        // null pointer when the open failed.
        if s == Status::SUCCESS && !file.is_null() {
            Some(File(file))
        } else {
            None
        }
    }

    /// Its `EFI_FILE_INFO`: (size, is a directory).
    pub fn info(&self) -> Option<(u64, bool)> {
        let mut info = [0u64; 64];
        let mut info_size = core::mem::size_of_val(&info);
        // SAFETY: an open file; a 512-byte buffer for its EFI_FILE_INFO.
        let s = unsafe {
            ((*self.0).get_info)(
                self.0,
                &FileInfo::ID,
                &mut info_size,
                info.as_mut_ptr() as *mut c_void,
            )
        };
        (s == Status::SUCCESS).then_some((
            info[INFO_FILE_SIZE / 8],
            info[INFO_ATTRIBUTE / 8] & FileAttribute::DIRECTORY.bits() != 0,
        ))
    }

    /// Reads the whole file (`size` bytes) to `dst`.
    pub fn read_to(&self, dst: u64, size: u64) -> Result<(), Failure> {
        let mut done = 0u64;
        while done < size {
            let mut chunk = (size - done) as usize;
            // SAFETY: the rest of a buffer of `size` bytes at `dst`, the caller's.
            let s = unsafe { ((*self.0).read)(self.0, &mut chunk, (dst + done) as *mut c_void) };
            if s != Status::SUCCESS || chunk == 0 {
                return Err((s, "reading a file of the boot volume failed"));
            }
            done += chunk as u64;
        }
        Ok(())
    }

    /// The names of the regular files in this directory ending in `suffix` (ASCII case
    /// aside), as bytes.
    fn files_ending(&self, suffix: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut info = [0u64; 64];
            let mut size = core::mem::size_of_val(&info);
            // SAFETY: an open directory: each read gives the next entry's EFI_FILE_INFO.
            let s =
                unsafe { ((*self.0).read)(self.0, &mut size, info.as_mut_ptr() as *mut c_void) };
            if s != Status::SUCCESS || size <= INFO_NAME {
                return out;
            }
            if info[INFO_ATTRIBUTE / 8] & FileAttribute::DIRECTORY.bits() != 0 {
                continue;
            }
            let units = (size.min(512) - INFO_NAME) / 2;
            let mut name = Vec::new();
            for i in 0..units {
                let at = INFO_NAME / 2 + i;
                let word = info[at / 4] >> (16 * (at % 4)) & 0xffff;
                if word == 0 {
                    break;
                }
                name.push(if word < 0x80 { word as u8 } else { b'?' });
            }
            if name.len() > suffix.len()
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            {
                out.push(name);
            }
        }
    }
}

/// A file to put in the archive: its path (from the root, without the leading `/`) and
/// size.
struct Found {
    path: Vec<u8>,
    size: u64,
}

/// The boot entries on the volume and the files they name, as one cpio archive:
/// `(address, length)`, or `None` if the volume has no entries.
pub fn read_entries(bs: &BootServices, root: &File) -> Result<Option<(u64, u64)>, Failure> {
    // (path, under /boot: extlinux's `${prefix}` for relative paths). One push each: an
    // array of them would be a constant table of addresses, wrong before the relocation.
    let mut configs: Vec<(Vec<u8>, bool)> = Vec::new();
    configs.push((b"extlinux/extlinux.conf".to_vec(), false));
    configs.push((b"boot/extlinux/extlinux.conf".to_vec(), true));
    configs.push((b"loader/loader.conf".to_vec(), false));
    if let Some(dir) = root.open(b"loader/entries") {
        for name in dir.files_ending(b".conf") {
            let mut path = b"loader/entries/".to_vec();
            path.extend_from_slice(&name);
            configs.push((path, false));
        }
    }
    let mut found: Vec<Found> = Vec::new();
    let mut named: Vec<Vec<u8>> = Vec::new();
    for (path, prefix) in &configs {
        let Some(size) = size_of(root, path).filter(|&s| s <= MAX_CONFIG) else {
            continue;
        };
        let mut text = alloc::vec![0u8; size as usize];
        if let Some(f) = root.open(path) {
            f.read_to(text.as_mut_ptr() as u64, size)?;
        }
        bootentry::files_named(&text, *prefix, &mut named);
        found.push(Found {
            path: path.clone(),
            size,
        });
    }
    if found.is_empty() {
        return Ok(None);
    }
    for path in named {
        if found.iter().any(|f| f.path.eq_ignore_ascii_case(&path)) {
            continue;
        }
        match size_of(root, &path) {
            Some(size) if size > u32::MAX as u64 => {
                return Err((Status::BAD_BUFFER_SIZE, "a boot-entry file is over 4 GiB"))
            }
            Some(size) => found.push(Found { path, size }),
            None => {}
        }
    }
    let total = found
        .iter()
        .map(|f| cpio::entry_len(f.path.len(), f.size as usize))
        .sum::<usize>()
        + cpio::entry_len(cpio::TRAILER.len(), 0);
    let base = allocate(bs, total.div_ceil(PAGE as usize))?;
    let mut at = base;
    for (i, f) in found.iter().enumerate() {
        let Some(file) = root.open(&f.path) else {
            return Err((Status::NOT_FOUND, "a boot-entry file went away while read"));
        };
        let data = at + entry_start(f.path.len()) as u64;
        // SAFETY: `at` starts this entry's `cpio::entry_len` bytes in the buffer of `total`
        // bytes allocated above (the entries' lengths add up to `total`).
        unsafe { write_header(at, i as u32 + 1, cpio::S_IFREG | 0o644, &f.path, f.size) };
        file.read_to(data, f.size)?;
        let pad = align4(f.size as usize) - f.size as usize;
        // SAFETY: the data's padding, inside this entry.
        unsafe { core::ptr::write_bytes((data + f.size) as *mut u8, 0, pad) };
        at += cpio::entry_len(f.path.len(), f.size as usize) as u64;
    }
    // SAFETY: the trailer's entry, the buffer's last.
    unsafe { write_header(at, 0, 0, cpio::TRAILER.as_bytes(), 0) };
    Ok(Some((base, total as u64)))
}

/// The size of the regular file at `path`, if there is one.
fn size_of(root: &File, path: &[u8]) -> Option<u64> {
    root.open(path)?
        .info()
        .filter(|&(_, dir)| !dir)
        .map(|(size, _)| size)
}

const fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// Where an entry's data starts, from its header.
fn entry_start(name_len: usize) -> usize {
    align4(cpio::HEADER_LEN + name_len + 1)
}

/// Writes an entry's header, name, NUL and padding at `at`.
///
/// # Safety
/// `at` must start `entry_start(name.len())` writable bytes of the archive buffer.
unsafe fn write_header(at: u64, ino: u32, mode: u32, name: &[u8], size: u64) {
    let h = cpio::header(ino, mode, size as u32, name.len() as u32);
    let start = entry_start(name.len());
    let n = at + h.len() as u64;
    // SAFETY: the caller's promise: header, name, NUL and padding fit in `start` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(h.as_ptr(), at as *mut u8, h.len());
        core::ptr::copy_nonoverlapping(name.as_ptr(), n as *mut u8, name.len());
        core::ptr::write_bytes(
            (n + name.len() as u64) as *mut u8,
            0,
            start - h.len() - name.len(),
        );
    }
}
