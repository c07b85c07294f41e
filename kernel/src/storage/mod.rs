//! Disks as the kernel reads them, with no CPU needed: a [`BlockDevice`] (512-byte blocks;
//! virtio-blk or an SD card in the kernel, a byte vector in tests), a partition of one as a
//! byte-addressed [`Volume`], the file systems on volumes (FAT, ext2/3/4), and the names a
//! user types for files on them (`virtio0p2:/boot/vmlinuz`).

pub mod ext;
pub mod fat;
pub mod fs;

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec;
use core::fmt;

/// Bytes per block.
pub const BLOCK: usize = 512;

/// A disk, read a block at a time or many at once.
pub trait BlockDevice {
    /// Its length in 512-byte blocks.
    fn blocks(&self) -> u64;
    /// Reads `buf.len() / 512` blocks (`buf.len()` a multiple of 512) from block `lba` on.
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), IoError>;
}

/// Why a read failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The device said no.
    Device(String),
    /// A read past the end of the volume (a file system pointing outside its partition).
    Past {
        /// The first byte asked for.
        at: u64,
        /// Bytes asked for.
        len: u64,
        /// The volume's size.
        size: u64,
    },
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Device(e) => write!(f, "read error: {e}"),
            IoError::Past { at, len, size } => write!(
                f,
                "a read of {len} bytes at {at:#x} runs past the partition's {size} bytes"
            ),
        }
    }
}

/// Byte-addressed reads, as file systems make them.
pub trait ReadAt {
    /// Bytes in all.
    fn size(&self) -> u64;
    /// Fills `buf` from byte `at`.
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<(), IoError>;
}

/// A run of blocks of a device (a partition, or the whole disk) read by the byte: whole
/// blocks go straight into the caller's buffer, and only a partial block at either end is
/// read through a block-sized bounce buffer. Reads past its end are refused.
pub struct Volume<D> {
    dev: D,
    start: u64,
    blocks: u64,
}

impl<D: BlockDevice> Volume<D> {
    /// Blocks `start..start + blocks` of `dev`.
    pub fn new(dev: D, start: u64, blocks: u64) -> Self {
        Volume { dev, start, blocks }
    }
}

impl<D: BlockDevice> ReadAt for Volume<D> {
    fn size(&self) -> u64 {
        self.blocks * BLOCK as u64
    }

    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let len = buf.len() as u64;
        if at.checked_add(len).is_none_or(|end| end > self.size()) {
            return Err(IoError::Past {
                at,
                len,
                size: self.size(),
            });
        }
        let block = BLOCK as u64;
        let (mut at, mut buf) = (at, buf);
        let mut bounce = [0u8; BLOCK];
        // A partial first block.
        if at % block != 0 || buf.len() < BLOCK {
            let off = (at % block) as usize;
            let n = (BLOCK - off).min(buf.len());
            self.dev.read_blocks(self.start + at / block, &mut bounce)?;
            buf[..n].copy_from_slice(&bounce[off..off + n]);
            at += n as u64;
            buf = &mut buf[n..];
        }
        // Whole blocks, in one request.
        let whole = buf.len() / BLOCK * BLOCK;
        if whole > 0 {
            self.dev
                .read_blocks(self.start + at / block, &mut buf[..whole])?;
            at += whole as u64;
            buf = &mut buf[whole..];
        }
        // A partial last block.
        if !buf.is_empty() {
            self.dev.read_blocks(self.start + at / block, &mut bounce)?;
            let n = buf.len();
            buf.copy_from_slice(&bounce[..n]);
        }
        Ok(())
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read_at(at, buf)
    }
}

/// A file's name as typed: `DISKpN:/path` (`virtio0p2:/boot/vmlinuz`, `mmc0p1:/config.txt`),
/// or a path in the initramfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileName {
    /// In the initramfs.
    Initramfs(String),
    /// On a disk's partition.
    Disk {
        /// The disk's name (`virtio0`, `mmc0`).
        disk: String,
        /// The partition's number, from 1.
        part: usize,
        /// The path from the partition's root, starting with `/`.
        path: String,
    },
}

/// Why a file name cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadName(pub String);

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: a disk file is named DISKpN:/PATH (for example virtio0p2:/boot/vmlinuz)",
            self.0
        )
    }
}

impl FileName {
    /// Reads a typed name.
    pub fn parse(s: &str) -> Result<FileName, BadName> {
        let Some((dev, path)) = s.split_once(':') else {
            return Ok(FileName::Initramfs(s.to_string()));
        };
        let bad = || BadName(s.to_string());
        let (disk, part) = dev.rsplit_once('p').ok_or_else(bad)?;
        let part: usize = part.parse().map_err(|_| bad())?;
        let named = disk.len() > 1
            && disk.ends_with(|c: char| c.is_ascii_digit())
            && disk.chars().all(|c| c.is_ascii_alphanumeric());
        if !named || part == 0 {
            return Err(bad());
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            alloc::format!("/{path}")
        };
        Ok(FileName::Disk {
            disk: disk.to_string(),
            part,
            path,
        })
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileName::Initramfs(p) => f.write_str(p),
            FileName::Disk { disk, part, path } => write!(f, "{disk}p{part}:{path}"),
        }
    }
}

/// A disk in memory, for tests (of this crate and of the fuzz targets).
pub struct MemDisk(pub alloc::vec::Vec<u8>);

impl BlockDevice for MemDisk {
    fn blocks(&self) -> u64 {
        (self.0.len() / BLOCK) as u64
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let at = usize::try_from(lba)
            .ok()
            .and_then(|l| l.checked_mul(BLOCK))
            .ok_or_else(|| IoError::Device("block number too large".into()))?;
        let src = at
            .checked_add(buf.len())
            .and_then(|end| self.0.get(at..end))
            .ok_or_else(|| IoError::Device(alloc::format!("block {lba} is past the disk")))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The first `n` bytes of a volume (for probing a file system).
pub fn head(v: &mut dyn ReadAt, n: usize) -> Result<alloc::vec::Vec<u8>, IoError> {
    let mut b = vec![0u8; n.min(v.size() as usize)];
    v.read_at(0, &mut b)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_read_unaligned_and_refuse_past_their_end() {
        let disk: alloc::vec::Vec<u8> = (0..8 * BLOCK).map(|i| (i / 7) as u8).collect();
        let mut v = Volume::new(MemDisk(disk.clone()), 2, 4);
        assert_eq!(v.size(), 4 * BLOCK as u64);
        for (at, len) in [
            (0, 1),
            (3, 600),
            (511, 2),
            (512, 1024),
            (100, 1948),
            (0, 2048),
        ] {
            let mut b = vec![0u8; len];
            v.read_at(at as u64, &mut b).unwrap();
            assert_eq!(b, disk[2 * BLOCK + at..][..len], "{at}+{len}");
        }
        let mut b = [0u8; 2];
        assert_eq!(
            v.read_at(2047, &mut b),
            Err(IoError::Past {
                at: 2047,
                len: 2,
                size: 2048
            })
        );
        assert!(v.read_at(u64::MAX, &mut b).is_err());
    }

    #[test]
    fn file_names() {
        assert_eq!(
            FileName::parse("virtio0p2:/boot/vmlinuz").unwrap(),
            FileName::Disk {
                disk: "virtio0".into(),
                part: 2,
                path: "/boot/vmlinuz".into()
            }
        );
        assert_eq!(
            FileName::parse("mmc0p1:config.txt").unwrap().to_string(),
            "mmc0p1:/config.txt"
        );
        assert_eq!(
            FileName::parse("/Image").unwrap(),
            FileName::Initramfs("/Image".into())
        );
        for bad in [
            "virtio0:/x",
            "p1:/x",
            "virtio0p0:/x",
            "vir tio0p1:/x",
            "virtiop1:/x",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad}");
        }
    }
}
