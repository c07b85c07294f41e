//! FAT12, FAT16 and FAT32, read-only, with long file names: the Raspberry Pi's boot partition
//! and EFI system partitions.
//!
//! The whole FAT is read once at mount (a few hundred KiB at most for a boot partition,
//! capped at [`MAX_FAT_BYTES`]); a file's clusters are then merged into runs and each run is
//! read straight into the caller's buffer in one request. Every cluster number is checked
//! against the volume, and a chain longer than the volume's cluster count (a loop) stops
//! with an error, so a corrupt volume gives a named error, never a hang or a read outside
//! the partition.

use super::{IoError, ReadAt};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// The largest FAT read into memory (on the kernel's 8 MiB heap): a 32 GiB FAT32 volume with
/// 32 KiB clusters has a 4 MiB FAT; a Pi's boot partition some hundreds of KiB.
pub const MAX_FAT_BYTES: u64 = 4 << 20;
/// A long read tells its progress after each piece of this many bytes.
const PROGRESS_STEP: usize = 4 << 20;
/// Attribute bits of a directory entry.
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_VOLUME_ID: u8 = 0x08;
/// All four low attribute bits set: a long-name entry.
const ATTR_LONG_NAME: u8 = 0x0f;
/// A deleted entry's first byte.
const DELETED: u8 = 0xe5;
/// `ord` bit marking the last (first stored) long-name entry.
const LAST_LONG_ENTRY: u8 = 0x40;
/// NT flags in byte 12 of a short entry: base and extension stored lower-case.
const NT_LOWER_BASE: u8 = 0x08;
const NT_LOWER_EXT: u8 = 0x10;

/// Which FAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 12-bit entries (fewer than 4085 clusters).
    Fat12,
    /// 16-bit entries (fewer than 65525 clusters).
    Fat16,
    /// 28-bit entries.
    Fat32,
}

/// Why a FAT volume or file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FatError {
    /// The volume could not be read.
    Io(IoError),
    /// The boot sector is not a FAT one, or says something impossible.
    BadBootSector(&'static str),
    /// The FAT is larger than [`MAX_FAT_BYTES`].
    FatTooLarge(u64),
    /// A cluster number outside the volume.
    BadCluster(u32),
    /// A cluster chain longer than the volume has clusters: a loop.
    Loop,
    /// A chain that ends before the file's size says.
    ShortChain {
        /// Bytes the directory entry says.
        size: u64,
        /// Bytes the chain holds.
        chain: u64,
    },
    /// No such file or directory.
    NotFound(String),
    /// A directory where a file was wanted, or the other way round.
    NotAFile(String),
    /// A file where a directory was wanted.
    NotADirectory(String),
    /// A buffer for a file that is not the file's size (two entries of one name, say).
    BufferSize {
        /// The file's size.
        size: u64,
        /// The buffer's.
        buffer: u64,
    },
}

impl From<IoError> for FatError {
    fn from(e: IoError) -> Self {
        FatError::Io(e)
    }
}

impl fmt::Display for FatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FatError::Io(e) => write!(f, "{e}"),
            FatError::BadBootSector(why) => write!(f, "FAT boot sector: {why}"),
            FatError::FatTooLarge(n) => write!(f, "FAT of {n} bytes is larger than 4 MiB"),
            FatError::BadCluster(c) => write!(f, "FAT: cluster {c} is outside the volume"),
            FatError::Loop => write!(f, "FAT: a cluster chain loops"),
            FatError::ShortChain { size, chain } => write!(
                f,
                "FAT: a file of {size} bytes has clusters for only {chain} bytes"
            ),
            FatError::NotFound(p) => write!(f, "{p}: no such file or directory"),
            FatError::NotAFile(p) => write!(f, "{p}: is a directory"),
            FatError::NotADirectory(p) => write!(f, "{p}: not a directory"),
            FatError::BufferSize { size, buffer } => {
                write!(f, "FAT: a file of {size} bytes read into {buffer} bytes")
            }
        }
    }
}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The long name if there is one, else the short name (as Windows shows it).
    pub name: String,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// A directory.
    pub is_dir: bool,
    /// First cluster (0: none; the root directory on FAT12/16).
    cluster: u32,
}

/// A mounted FAT volume.
pub struct Fat<V> {
    vol: V,
    kind: Kind,
    /// Bytes per cluster.
    cluster_bytes: u64,
    /// Byte offset of cluster 2.
    data_at: u64,
    /// Clusters on the volume (numbered 2..clusters + 2).
    clusters: u32,
    /// FAT12/16: the fixed root directory (byte offset, bytes). FAT32: its first cluster.
    root: Root,
    /// The first FAT, as read at mount.
    table: Vec<u8>,
}

enum Root {
    Fixed { at: u64, bytes: u64 },
    Cluster(u32),
}

fn le16(b: &[u8], at: usize) -> u32 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u32
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Whether `boot` (a volume's first 512 bytes) looks like a FAT boot sector.
pub fn probe(boot: &[u8]) -> bool {
    boot.len() >= 512
        && boot[510..512] == [0x55, 0xaa]
        && matches!(le16(boot, 11), 512 | 1024 | 2048 | 4096)
        && boot[13].is_power_of_two()
        && le16(boot, 14) > 0
        && boot[16] > 0
}

impl<V: ReadAt> Fat<V> {
    /// Mounts the FAT volume `vol`: checks its boot sector and reads its first FAT.
    pub fn mount(mut vol: V) -> Result<Self, FatError> {
        let mut b = [0u8; 512];
        vol.read_at(0, &mut b)?;
        if !probe(&b) {
            return Err(FatError::BadBootSector("no FAT BIOS parameter block"));
        }
        let bps = le16(&b, 11) as u64;
        let spc = b[13] as u64;
        let reserved = le16(&b, 14) as u64;
        let fats = b[16] as u64;
        let root_entries = le16(&b, 17) as u64;
        let total = match le16(&b, 19) {
            0 => le32(&b, 32) as u64,
            n => n as u64,
        };
        let fat_sectors = match le16(&b, 22) {
            0 => le32(&b, 36) as u64,
            n => n as u64,
        };
        if fat_sectors == 0 || total == 0 {
            return Err(FatError::BadBootSector("FAT size or sector count is 0"));
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let data_sector = reserved + fats * fat_sectors + root_sectors;
        if data_sector >= total || total * bps > vol.size() {
            return Err(FatError::BadBootSector(
                "its sectors do not fit the partition",
            ));
        }
        let clusters = (total - data_sector) / spc;
        let kind = match clusters {
            0..4085 => Kind::Fat12,
            4085..65525 => Kind::Fat16,
            _ => Kind::Fat32,
        };
        let entry_bits: u64 = match kind {
            Kind::Fat12 => 12,
            Kind::Fat16 => 16,
            Kind::Fat32 => 32,
        };
        let fat_bytes = fat_sectors * bps;
        if fat_bytes > MAX_FAT_BYTES {
            return Err(FatError::FatTooLarge(fat_bytes));
        }
        if fat_bytes * 8 < (clusters + 2) * entry_bits {
            return Err(FatError::BadBootSector(
                "the FAT is too small for the clusters",
            ));
        }
        let root = match kind {
            Kind::Fat32 => Root::Cluster(le32(&b, 44) & 0x0fff_ffff),
            _ => Root::Fixed {
                at: (reserved + fats * fat_sectors) * bps,
                bytes: root_entries * 32,
            },
        };
        let mut table = vec![0u8; fat_bytes as usize];
        vol.read_at(reserved * bps, &mut table)?;
        Ok(Fat {
            vol,
            kind,
            cluster_bytes: spc * bps,
            data_at: data_sector * bps,
            clusters: clusters as u32,
            root,
            table,
        })
    }

    /// Which FAT it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The FAT entry for `cluster`: the next cluster, or `None` at the chain's end.
    fn next(&self, cluster: u32) -> Result<Option<u32>, FatError> {
        let c = cluster as usize;
        let (v, end) = match self.kind {
            Kind::Fat12 => {
                let at = c + c / 2;
                let w = le16(&self.table, at);
                (
                    if c.is_multiple_of(2) {
                        w & 0xfff
                    } else {
                        w >> 4
                    },
                    0xff8,
                )
            }
            Kind::Fat16 => (le16(&self.table, 2 * c), 0xfff8),
            Kind::Fat32 => (le32(&self.table, 4 * c) & 0x0fff_ffff, 0x0fff_fff8),
        };
        if v >= end {
            return Ok(None);
        }
        self.check(v)?;
        Ok(Some(v))
    }

    fn check(&self, cluster: u32) -> Result<(), FatError> {
        if cluster < 2 || cluster - 2 >= self.clusters {
            return Err(FatError::BadCluster(cluster));
        }
        Ok(())
    }

    /// The chain from `first`, at most `limit` clusters, as runs of consecutive clusters
    /// (first, count).
    fn runs(&self, first: u32, limit: u64) -> Result<Vec<(u32, u32)>, FatError> {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut seen = vec![0u8; (self.clusters as usize + 2).div_ceil(8)];
        let mut cur = Some(first);
        let mut n = 0u64;
        while let Some(c) = cur {
            if n == limit {
                break;
            }
            self.check(c)?;
            let (byte, bit) = (c as usize / 8, 1 << (c % 8));
            if seen[byte] & bit != 0 {
                return Err(FatError::Loop);
            }
            seen[byte] |= bit;
            n += 1;
            match runs.last_mut() {
                Some((start, len)) if *start + *len == c => *len += 1,
                _ => runs.push((c, 1)),
            }
            cur = self.next(c)?;
        }
        Ok(runs)
    }

    fn cluster_at(&self, c: u32) -> u64 {
        self.data_at + (c as u64 - 2) * self.cluster_bytes
    }

    /// The raw entries of a directory.
    fn dir_bytes(&mut self, cluster: u32) -> Result<Vec<u8>, FatError> {
        if cluster == 0 {
            if let Root::Fixed { at, bytes } = self.root {
                let mut b = vec![0u8; bytes as usize];
                self.vol.read_at(at, &mut b)?;
                return Ok(b);
            }
        }
        let first = match (cluster, &self.root) {
            (0, Root::Cluster(r)) => *r,
            (c, _) => c,
        };
        let runs = self.runs(first, u64::MAX)?;
        let mut b = Vec::new();
        for (c, n) in runs {
            let at = b.len();
            b.resize(at + n as usize * self.cluster_bytes as usize, 0);
            self.vol.read_at(self.cluster_at(c), &mut b[at..])?;
        }
        Ok(b)
    }

    /// The entries of the directory at `cluster` (0: the root).
    fn entries(&mut self, cluster: u32) -> Result<Vec<DirEntry>, FatError> {
        let raw = self.dir_bytes(cluster)?;
        let mut out = Vec::new();
        let mut long: Vec<u16> = Vec::new();
        let mut long_sum: Option<u8> = None;
        for e in raw.chunks_exact(32) {
            match e[0] {
                0 => break,
                DELETED => {
                    long.clear();
                    continue;
                }
                _ => {}
            }
            let attr = e[11];
            if attr & 0x3f == ATTR_LONG_NAME {
                if e[0] & LAST_LONG_ENTRY != 0 {
                    long.clear();
                    long_sum = Some(e[13]);
                }
                // Entries come last part first: prepend this one's 13 characters.
                let mut part: Vec<u16> = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
                    .iter()
                    .map(|&i| u16::from_le_bytes([e[i], e[i + 1]]))
                    .collect();
                part.append(&mut long);
                long = part;
                continue;
            }
            if attr & ATTR_VOLUME_ID != 0 {
                long.clear();
                continue;
            }
            let short = short_name(e);
            let checksum = e[..11]
                .iter()
                .fold(0u8, |s, &c| s.rotate_right(1).wrapping_add(c));
            let name = if !long.is_empty() && long_sum == Some(checksum) {
                let end = long.iter().position(|&u| u == 0 || u == 0xffff);
                String::from_utf16_lossy(&long[..end.unwrap_or(long.len())])
            } else {
                short
            };
            long.clear();
            if name == "." || name == ".." {
                continue;
            }
            let is_dir = attr & ATTR_DIRECTORY != 0;
            out.push(DirEntry {
                name,
                size: if is_dir { 0 } else { le32(e, 28) as u64 },
                is_dir,
                cluster: (le16(e, 20) << 16) | le16(e, 26),
            });
        }
        Ok(out)
    }

    /// The entry at `path` (`/` separated, case-insensitive); `None` for the root.
    fn lookup(&mut self, path: &str) -> Result<Option<DirEntry>, FatError> {
        let mut dir = 0u32;
        let mut found = None;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if let Some(DirEntry { is_dir: false, .. }) = found {
                return Err(FatError::NotADirectory(path.to_string()));
            }
            let e = self
                .entries(dir)?
                .into_iter()
                .find(|e| e.name.eq_ignore_ascii_case(part))
                .ok_or_else(|| FatError::NotFound(path.to_string()))?;
            dir = e.cluster;
            found = Some(e);
        }
        Ok(found)
    }

    /// The entries of the directory at `path`.
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, FatError> {
        match self.lookup(path)? {
            None => self.entries(0),
            Some(e) if e.is_dir => self.entries(e.cluster),
            Some(_) => Err(FatError::NotADirectory(path.to_string())),
        }
    }

    /// The size of the file at `path`.
    pub fn file_size(&mut self, path: &str) -> Result<u64, FatError> {
        match self.lookup(path)? {
            Some(e) if !e.is_dir => Ok(e.size),
            _ => Err(FatError::NotAFile(path.to_string())),
        }
    }

    /// Reads the file at `path` into `out` (exactly [`Fat::file_size`] bytes long), a run of
    /// clusters at a time; `progress` is told the bytes read so far after each run.
    pub fn read_file(
        &mut self,
        path: &str,
        out: &mut [u8],
        mut progress: impl FnMut(u64),
    ) -> Result<(), FatError> {
        let e = match self.lookup(path)? {
            Some(e) if !e.is_dir => e,
            _ => return Err(FatError::NotAFile(path.to_string())),
        };
        if out.len() as u64 != e.size {
            return Err(FatError::BufferSize {
                size: e.size,
                buffer: out.len() as u64,
            });
        }
        if e.size == 0 {
            return Ok(());
        }
        let need = e.size.div_ceil(self.cluster_bytes);
        let runs = self.runs(e.cluster, need)?;
        let have: u64 = runs.iter().map(|r| r.1 as u64).sum::<u64>() * self.cluster_bytes;
        if have < e.size {
            return Err(FatError::ShortChain {
                size: e.size,
                chain: have,
            });
        }
        let mut done = 0usize;
        for (c, n) in runs {
            let len = (n as usize * self.cluster_bytes as usize).min(out.len() - done);
            // In pieces, so that a long read can say how far it got.
            let mut at = self.cluster_at(c);
            for piece in out[done..done + len].chunks_mut(PROGRESS_STEP) {
                self.vol.read_at(at, piece)?;
                at += piece.len() as u64;
                progress(done as u64 + piece.len() as u64);
                done += piece.len();
            }
        }
        Ok(())
    }
}

/// A short entry's name as Windows shows it: `NAME.EXT`, lower-cased where the NT flags say.
fn short_name(e: &[u8]) -> String {
    let part = |b: &[u8], lower: bool| -> String {
        let s: String = b
            .iter()
            .map(|&c| if c == 0x05 { 0xe5 } else { c })
            .map(|c| c as char)
            .collect::<String>()
            .trim_end()
            .to_string();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let base = part(&e[..8], e[12] & NT_LOWER_BASE != 0);
    let ext = part(&e[8..11], e[12] & NT_LOWER_EXT != 0);
    if ext.is_empty() {
        base
    } else {
        alloc::format!("{base}.{ext}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MemDisk, Volume};
    use super::*;
    use std::process::Command;

    /// A FAT volume made by the real tools: `mkfs.fat -F BITS` and `mcopy` (dosfstools and
    /// mtools, which scripts/setup.sh installs).
    fn mkfs(bits: u32, sectors: u64, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(alloc::format!("fat-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("vol.img");
        let _ = std::fs::remove_file(&img);
        let st = Command::new("mkfs.fat")
            .args(["-C", "-F", &bits.to_string(), "-n", "TESTVOL"])
            .arg(&img)
            .arg((sectors / 2).to_string())
            .output()
            .expect("mkfs.fat (dosfstools): run scripts/setup.sh");
        assert!(st.status.success(), "{st:?}");
        for (name, data) in files {
            let host = dir.join("f");
            std::fs::write(&host, data).unwrap();
            if let Some((parent, _)) = name.rsplit_once('/') {
                if !parent.is_empty() {
                    let _ = Command::new("mmd")
                        .args(["-D", "s", "-i"])
                        .arg(&img)
                        .arg(alloc::format!("::{parent}"))
                        .output();
                }
            }
            let st = Command::new("mcopy")
                .args(["-i"])
                .arg(&img)
                .arg(&host)
                .arg(alloc::format!("::{name}"))
                .output()
                .expect("mcopy (mtools): run scripts/setup.sh");
            assert!(st.status.success(), "mcopy {name}: {st:?}");
        }
        let bytes = std::fs::read(&img).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    }

    fn mount(img: Vec<u8>) -> Fat<Volume<MemDisk>> {
        let blocks = (img.len() / 512) as u64;
        Fat::mount(Volume::new(MemDisk(img), 0, blocks)).unwrap()
    }

    fn read(fat: &mut Fat<Volume<MemDisk>>, path: &str) -> Result<Vec<u8>, FatError> {
        let n = fat.file_size(path)?;
        let mut b = vec![0u8; n as usize];
        fat.read_file(path, &mut b, |_| {})?;
        Ok(b)
    }

    #[test]
    fn fat12_fat16_fat32_with_long_names() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for (bits, sectors, kind) in [
            (12, 4096, Kind::Fat12),
            (16, 65536, Kind::Fat16),
            (32, 140_000, Kind::Fat32),
        ] {
            let files = [
                ("/config.txt", b"kernel=vmlinuz\n".to_vec()),
                ("/bcm2711-rpi-4-b.dtb", big.clone()),
                ("/overlays/disable-bt.dtbo", vec![1, 2, 3]),
                ("/EMPTY", Vec::new()),
            ];
            let mut fat = mount(mkfs(bits, sectors, &files));
            assert_eq!(fat.kind(), kind);
            for (name, data) in &files {
                assert!(read(&mut fat, name).unwrap() == *data, "FAT{bits} {name}");
            }
            assert!(read(&mut fat, "/CONFIG.TXT").unwrap() == files[0].1);
            let mut names: Vec<String> = fat
                .read_dir("/")
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            names.sort();
            assert_eq!(
                names,
                ["EMPTY", "bcm2711-rpi-4-b.dtb", "config.txt", "overlays"]
            );
            assert_eq!(
                read(&mut fat, "/nope").err(),
                Some(FatError::NotFound("/nope".into()))
            );
            assert_eq!(
                read(&mut fat, "/overlays").err(),
                Some(FatError::NotAFile("/overlays".into()))
            );
            assert_eq!(
                fat.read_dir("/config.txt/x"),
                Err(FatError::NotADirectory("/config.txt/x".into()))
            );
        }
    }

    #[test]
    fn corrupt_volumes_are_named() {
        let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let img = mkfs(16, 65536, &[("/a.bin", data)]);
        let mut fat = mount(img.clone());
        let c = fat.read_dir("/").unwrap()[0].cluster as usize;
        let table_at = le16(&img, 14) as usize * 512;
        // The file's chain made to loop: its second cluster points back to its first.
        let mut looped = img.clone();
        looped[table_at + 2 * (c + 1)..][..2].copy_from_slice(&(c as u16).to_le_bytes());
        let mut f = mount(looped);
        assert_eq!(read(&mut f, "/a.bin").err(), Some(FatError::Loop));
        // A chain pointing past the volume.
        let mut wild = img.clone();
        wild[table_at + 2 * c..][..2].copy_from_slice(&0xfff0u16.to_le_bytes());
        let mut f = mount(wild);
        assert_eq!(
            read(&mut f, "/a.bin").err(),
            Some(FatError::BadCluster(0xfff0))
        );
        // A chain that ends early.
        let mut short = img.clone();
        short[table_at + 2 * c..][..2].copy_from_slice(&0xffffu16.to_le_bytes());
        let mut f = mount(short);
        assert!(matches!(
            read(&mut f, "/a.bin").err(),
            Some(FatError::ShortChain { .. })
        ));
        // A boot sector claiming more sectors than the partition holds.
        let mut big = img.clone();
        big[19..21].copy_from_slice(&0u16.to_le_bytes());
        big[32..36].copy_from_slice(&10_000_000u32.to_le_bytes());
        let blocks = (big.len() / 512) as u64;
        assert_eq!(
            Fat::mount(Volume::new(MemDisk(big), 0, blocks)).err(),
            Some(FatError::BadBootSector(
                "its sectors do not fit the partition"
            ))
        );
        let blocks = (img.len() / 512) as u64;
        let mut not_fat = img;
        not_fat[510] = 0;
        assert!(Fat::mount(Volume::new(MemDisk(not_fat), 0, blocks)).is_err());
    }
}
