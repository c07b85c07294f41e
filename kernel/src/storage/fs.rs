//! A volume's file system, whichever it is: FAT ([`super::fat`], ours) or ext2/3/4 (Google's
//! `ext4-view`, read-only, which checks what it reads and returns `Corrupt` rather than
//! panicking; see docs/disks.md for why each was chosen).

use super::ext::{Ext, ExtError};
use super::fat::{self, Fat, FatError};
use super::{IoError, ReadAt};
use crate::formats::cpio::Entry as ArchiveEntry;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

/// Where the ext2/3/4 superblock's magic is (superblock at 1024, `s_magic` at +56).
const EXT_MAGIC_AT: u64 = 1024 + 56;
/// `s_magic`.
const EXT_MAGIC: u16 = 0xef53;
/// The superblock's offset in the volume.
const SUPERBLOCK_AT: u64 = 1024;
/// The most block groups read (their descriptors go on the kernel's heap): 65536 groups of
/// 128 MiB (4 KiB blocks) is an 8 TiB file system.
const MAX_GROUPS: u64 = 65536;

impl core::error::Error for IoError {}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// A directory.
    pub is_dir: bool,
}

/// Why a file system or a file on it cannot be read.
#[derive(Debug)]
pub enum FsError {
    /// Neither FAT nor ext2/3/4.
    Unknown,
    /// The volume could not be read.
    Io(IoError),
    /// From the FAT reader.
    Fat(FatError),
    /// From `ext4-view`.
    Ext4(ext4_view::Ext4Error),
    /// A superblock whose geometry this kernel refuses before `ext4-view` reads it.
    Ext4Geometry(String),
    /// From the direct reader of ext2/3/4 file data.
    Ext(ExtError),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Unknown => write!(f, "no FAT or ext2/3/4 file system"),
            FsError::Io(e) => write!(f, "{e}"),
            FsError::Fat(e) => write!(f, "{e}"),
            FsError::Ext4(e) => write!(f, "ext4: {e}"),
            FsError::Ext4Geometry(e) => write!(f, "ext4 superblock: {e}"),
            FsError::Ext(e) => write!(f, "ext4: {e}"),
        }
    }
}

impl From<FatError> for FsError {
    fn from(e: FatError) -> Self {
        FsError::Fat(e)
    }
}

impl From<ext4_view::Ext4Error> for FsError {
    fn from(e: ext4_view::Ext4Error) -> Self {
        FsError::Ext4(e)
    }
}

/// `ext4-view` reads through this (the volume is shared with the direct file reader).
struct Ext4Volume<V>(Rc<RefCell<V>>);

impl<V: ReadAt> ext4_view::Ext4Read for Ext4Volume<V> {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn core::error::Error + Send + Sync + 'static>> {
        self.0
            .borrow_mut()
            .read_at(start_byte, dst)
            .map_err(|e| Box::new(e) as _)
    }
}

/// Checks what Linux checks before it trusts an ext2/3/4 superblock's sizes (a block size
/// of 1 to 64 KiB, at most 8 blocks of bits per group, a file system no larger than its
/// partition), and bounds the block groups: `ext4-view` allocates a descriptor per group
/// as the superblock counts them, so a corrupt count would exhaust the heap.
fn check_ext_geometry(vol: &mut impl ReadAt) -> Result<(), FsError> {
    let mut sb = [0u8; 1024];
    vol.read_at(SUPERBLOCK_AT, &mut sb).map_err(FsError::Io)?;
    let u32_at = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().expect("4 bytes"));
    let bad = |why: String| Err(FsError::Ext4Geometry(why));
    let log = u32_at(24);
    if log > 6 {
        return bad(alloc::format!("block size 1 KiB << {log} is over 64 KiB"));
    }
    let block = 1024u64 << log;
    // `s_blocks_count_hi` counts only with INCOMPAT_64BIT (Linux), but `ext4-view` adds it
    // in whatever the flags say: bound what it will use (a file system without the flag has
    // zero there).
    let blocks = u32_at(4) as u64 | (u32_at(0x150) as u64) << 32;
    let per_group = u32_at(32) as u64;
    if per_group == 0 || per_group > 8 * block {
        return bad(alloc::format!(
            "{per_group} blocks per group (1 to {} for {block}-byte blocks)",
            8 * block
        ));
    }
    if blocks.saturating_mul(block) > vol.size() {
        return bad(alloc::format!(
            "{blocks} blocks of {block} bytes do not fit the partition's {} bytes",
            vol.size()
        ));
    }
    let first = u32_at(20) as u64;
    let groups = blocks.saturating_sub(first).div_ceil(per_group);
    if groups > MAX_GROUPS {
        return bad(alloc::format!(
            "{groups} block groups (at most {MAX_GROUPS})"
        ));
    }
    Ok(())
}

/// A mounted file system.
pub enum Fs<V> {
    /// Files already in memory (a cpio archive: the ESP's files as the EFI stub read them),
    /// looked up as FAT does, without regard to ASCII case.
    Archive(&'static [ArchiveEntry<'static>]),
    /// FAT12/16/32.
    Fat(Fat<V>),
    /// ext2/3/4: `ext4-view`, and the volume for [`Ext`], which reads file data.
    Ext4(ext4_view::Ext4, Rc<RefCell<V>>),
}

impl<V: ReadAt + 'static> Fs<V> {
    /// Mounts `vol`, finding out which file system it holds.
    pub fn mount(mut vol: V) -> Result<Self, FsError> {
        let mut boot = [0u8; 512];
        if vol.size() >= 512 {
            vol.read_at(0, &mut boot).map_err(FsError::Io)?;
            if fat::probe(&boot) {
                return Ok(Fs::Fat(Fat::mount(vol)?));
            }
        }
        let mut magic = [0u8; 2];
        if vol.size() >= EXT_MAGIC_AT + 2 {
            vol.read_at(EXT_MAGIC_AT, &mut magic).map_err(FsError::Io)?;
            if u16::from_le_bytes(magic) == EXT_MAGIC {
                check_ext_geometry(&mut vol)?;
                let vol = Rc::new(RefCell::new(vol));
                let view = ext4_view::Ext4::load(Box::new(Ext4Volume(vol.clone())))?;
                return Ok(Fs::Ext4(view, vol));
            }
        }
        Err(FsError::Unknown)
    }

    /// What it is, for the console.
    pub fn kind(&self) -> &'static str {
        match self {
            Fs::Archive(_) => "files in memory",
            Fs::Fat(f) => match f.kind() {
                fat::Kind::Fat12 => "fat12",
                fat::Kind::Fat16 => "fat16",
                fat::Kind::Fat32 => "fat32",
            },
            Fs::Ext4(..) => "ext4",
        }
    }

    /// The entries of the directory at `path`.
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<Entry>, FsError> {
        match self {
            Fs::Archive(files) => archive_dir(files, path),
            Fs::Fat(f) => Ok(f
                .read_dir(path)?
                .into_iter()
                .map(|e| Entry {
                    name: e.name,
                    size: e.size,
                    is_dir: e.is_dir,
                })
                .collect()),
            Fs::Ext4(fs, _) => {
                let mut out = Vec::new();
                for e in fs.read_dir(path)? {
                    let e = e?;
                    let name = e.file_name().display().to_string();
                    if name == "." || name == ".." {
                        continue;
                    }
                    let m = e.metadata()?;
                    out.push(Entry {
                        name,
                        size: if m.is_dir() { 0 } else { m.len() },
                        is_dir: m.is_dir(),
                    });
                }
                Ok(out)
            }
        }
    }

    /// The size of the file at `path` (symbolic links followed).
    pub fn file_size(&mut self, path: &str) -> Result<u64, FsError> {
        match self {
            Fs::Archive(files) => Ok(archive_file(files, path)?.len() as u64),
            Fs::Fat(f) => Ok(f.file_size(path)?),
            Fs::Ext4(fs, _) => {
                let m = fs.metadata(path)?;
                if m.is_dir() {
                    return Err(FsError::Fat(FatError::NotAFile(path.to_string())));
                }
                Ok(m.len())
            }
        }
    }

    /// Reads the file at `path` into `out` ([`Fs::file_size`] bytes); `progress` is told
    /// the bytes read so far as the read goes on.
    pub fn read_file(
        &mut self,
        path: &str,
        out: &mut [u8],
        mut progress: impl FnMut(u64),
    ) -> Result<(), FsError> {
        match self {
            Fs::Archive(files) => {
                let data = archive_file(files, path)?;
                if data.len() != out.len() {
                    return Err(FsError::Fat(FatError::NotAFile(path.to_string())));
                }
                out.copy_from_slice(data);
                progress(data.len() as u64);
                Ok(())
            }
            Fs::Fat(f) => Ok(f.read_file(path, out, progress)?),
            Fs::Ext4(fs, vol) => {
                // Straight into `out`, run by run; through `ext4-view` what that cannot read.
                let canonical = fs.canonicalize(path)?;
                if let Ok(canonical) = canonical.to_str() {
                    let mut vol = vol.borrow_mut();
                    match Ext::new(&mut *vol)
                        .and_then(|mut e| e.read_file(canonical, out, &mut progress))
                    {
                        Err(ExtError::Unsupported(_)) => {}
                        done => return done.map_err(FsError::Ext),
                    }
                }
                read_through_view(fs, path, out, progress)
            }
        }
    }
}

/// Whether archive path `have` is `want` (absolute, `/`-separated), ASCII case aside.
fn same_path(have: &str, want: &str) -> bool {
    have.trim_end_matches('/')
        .eq_ignore_ascii_case(want.trim_end_matches('/'))
}

/// The regular file at `path` in an archive.
fn archive_file(
    files: &'static [ArchiveEntry<'static>],
    path: &str,
) -> Result<&'static [u8], FsError> {
    files
        .iter()
        .find(|e| e.is_file() && same_path(&e.path, path))
        .map(|e| e.data)
        .ok_or_else(|| FsError::Fat(FatError::NotFound(path.to_string())))
}

/// The directory at `path` in an archive: its files, and the directories that paths below
/// it imply (an archive need not list its directories).
fn archive_dir(files: &'static [ArchiveEntry<'static>], path: &str) -> Result<Vec<Entry>, FsError> {
    let base = path.trim_end_matches('/');
    let mut out: Vec<Entry> = Vec::new();
    for e in files {
        let Some(rest) = e
            .path
            .get(..base.len())
            .filter(|p| p.eq_ignore_ascii_case(base))
            .and_then(|_| e.path[base.len()..].strip_prefix('/'))
        else {
            continue;
        };
        let (name, is_dir) = match rest.split_once('/') {
            Some((dir, _)) => (dir, true),
            None => (rest, e.is_dir()),
        };
        if name.is_empty() || out.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
            continue;
        }
        out.push(Entry {
            name: name.to_string(),
            size: if is_dir { 0 } else { e.data.len() as u64 },
            is_dir,
        });
    }
    if out.is_empty() && !base.is_empty() {
        return Err(FsError::Fat(FatError::NotFound(path.to_string())));
    }
    Ok(out)
}

/// Reads the file at `path` through `ext4-view`, a block at a time.
fn read_through_view(
    fs: &ext4_view::Ext4,
    path: &str,
    out: &mut [u8],
    mut progress: impl FnMut(u64),
) -> Result<(), FsError> {
    let mut file = fs.open(path)?;
    let mut done = 0;
    while done < out.len() {
        let n = file.read_bytes(&mut out[done..])?;
        if n == 0 {
            return Err(FsError::Io(IoError::Device(alloc::format!(
                "{path}: the file ended after {done} of {} bytes",
                out.len()
            ))));
        }
        done += n;
        if done % (1 << 20) < n {
            progress(done as u64);
        }
    }
    progress(done as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{MemDisk, Volume};
    use super::*;
    use std::process::Command;

    /// An ext4 volume made by `mkfs.ext4 -d` (e2fsprogs) from a directory.
    fn mkfs_ext4(files: &[(&str, Vec<u8>)], extra: &[&str]) -> Vec<u8> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(alloc::format!("ext4-test-{}-{n}", std::process::id()));
        let root = dir.join("root");
        let _ = std::fs::remove_dir_all(&dir);
        let mut total = 0;
        for (name, data) in files {
            use std::io::{Seek, Write};
            let p = root.join(name.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            // Blocks of zeros are left as holes.
            let mut f = std::fs::File::create(&p).unwrap();
            for chunk in data.chunks(4096) {
                if chunk.iter().all(|&b| b == 0) {
                    f.seek(std::io::SeekFrom::Current(chunk.len() as i64))
                        .unwrap();
                } else {
                    f.write_all(chunk).unwrap();
                }
            }
            f.set_len(data.len() as u64).unwrap();
            total += data.len() as u64;
        }
        std::os::unix::fs::symlink("vmlinuz-6.12", root.join("boot/vmlinuz")).unwrap();
        let img = dir.join("vol.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len((8 << 20).max(total * 3 / 2 + (4 << 20)))
            .unwrap();
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&root)
            .args(extra)
            .arg(&img)
            .output()
            .expect("mkfs.ext4 (e2fsprogs)");
        assert!(out.status.success(), "{out:?}");
        let bytes = std::fs::read(&img).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    }

    fn mount(img: Vec<u8>) -> Result<Fs<Volume<MemDisk>>, FsError> {
        let blocks = (img.len() / 512) as u64;
        Fs::mount(Volume::new(MemDisk(img), 0, blocks))
    }

    #[test]
    fn archives_are_looked_up_as_fat_does() {
        use crate::formats::cpio;
        let blob = cpio::build(&[
            (
                "loader/entries/a.conf",
                cpio::S_IFREG | 0o644,
                b"linux /vmlinuz\n",
            ),
            ("loader/loader.conf", cpio::S_IFREG | 0o644, b"default a\n"),
            ("VMLINUZ", cpio::S_IFREG | 0o644, b"kernel bytes"),
        ]);
        let blob: &'static [u8] = Box::leak(blob.into_boxed_slice());
        let files: &'static [ArchiveEntry<'static>] =
            Box::leak(cpio::parse(blob).unwrap().into_boxed_slice());
        let mut fs: Fs<Volume<MemDisk>> = Fs::Archive(files);
        assert_eq!(fs.file_size("/vmlinuz").unwrap(), 12);
        let mut b = [0u8; 12];
        fs.read_file("/VmLinuz", &mut b, |_| {}).unwrap();
        assert_eq!(&b, b"kernel bytes");
        let mut root: Vec<(String, bool)> = fs
            .read_dir("/")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        root.sort();
        assert_eq!(root, [("VMLINUZ".into(), false), ("loader".into(), true)]);
        let entries = fs.read_dir("/loader/entries").unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "a.conf");
        assert!(fs.read_dir("/nope").is_err());
        assert!(fs.file_size("/loader").is_err());
    }

    #[test]
    fn ext4_and_ext2_made_by_mkfs() {
        let kernel: Vec<u8> = (0..1_500_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
        let files = [
            ("/boot/vmlinuz-6.12", kernel.clone()),
            (
                "/boot/extlinux/extlinux.conf",
                b"label l0\n linux /boot/vmlinuz\n".to_vec(),
            ),
        ];
        for extra in [
            &[][..],
            &["-O", "^has_journal,^extent,^64bit", "-t", "ext2"][..],
        ] {
            let mut fs = mount(mkfs_ext4(&files, extra)).unwrap();
            assert_eq!(fs.kind(), "ext4");
            let n = fs.file_size("/boot/vmlinuz").unwrap();
            assert_eq!(n, kernel.len() as u64, "through the symbolic link");
            let mut b = alloc::vec![0u8; n as usize];
            let mut seen = 0;
            fs.read_file("/boot/vmlinuz", &mut b, |d| seen = d).unwrap();
            assert!(b == kernel, "the file's bytes");
            assert_eq!(seen, n);
            let mut names: Vec<String> = fs
                .read_dir("/boot")
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            names.sort();
            assert_eq!(names, ["extlinux", "vmlinuz", "vmlinuz-6.12"]);
            assert!(fs.file_size("/nope").is_err());
            assert!(fs.file_size("/boot").is_err());
        }
    }

    /// A file's bytes through the direct reader, which must not leave it to `ext4-view`.
    fn read_direct(img: Vec<u8>, path: &str, len: usize) -> Vec<u8> {
        let blocks = (img.len() / 512) as u64;
        let mut vol = Volume::new(MemDisk(img), 0, blocks);
        let mut out = alloc::vec![0xa5u8; len];
        let mut told = Vec::new();
        Ext::new(&mut vol)
            .unwrap()
            .read_file(path, &mut out, |d| told.push(d))
            .unwrap();
        assert_eq!(told.last().copied().unwrap_or(0), len as u64, "progress");
        assert!(told.windows(2).all(|w| w[0] < w[1]));
        out
    }

    #[test]
    fn file_data_read_run_by_run() {
        // Holes (zero blocks) in the middle and at the end, a size not a multiple of a block.
        let mut data: Vec<u8> = (0..3_000_000u32).map(|i| (i ^ (i >> 11)) as u8).collect();
        data[400_000..900_000].fill(0);
        data[2_990_000..].fill(0);
        // 1 KiB blocks without flex_bg split a 40 MB file at every 8 MiB group: more extents
        // than the inode holds, so a tree of depth 1; ext2 with 1 KiB blocks needs double
        // indirect blocks past 268 KiB.
        let big: Vec<u8> = (0..40_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let cases: [(&[&str], &Vec<u8>); 4] = [
            (&["-b", "4096"], &data),
            (&["-b", "1024", "-O", "^flex_bg"], &big),
            (
                &[
                    "-b",
                    "1024",
                    "-O",
                    "^has_journal,^extent,^64bit",
                    "-t",
                    "ext2",
                ],
                &data,
            ),
            (&["-O", "^has_journal,^extent,^64bit", "-t", "ext2"], &data),
        ];
        for (extra, want) in cases {
            let img = mkfs_ext4(&[("/boot/vmlinuz-6.12", want.clone())], extra);
            let got = read_direct(img.clone(), "/boot/vmlinuz-6.12", want.len());
            assert!(&got == want, "{extra:?}: the file's bytes");
            // And through `Fs`, following the symbolic link.
            let mut fs = mount(img).unwrap();
            let mut b = alloc::vec![0u8; want.len()];
            fs.read_file("/boot/vmlinuz", &mut b, |_| {}).unwrap();
            assert!(&b == want, "{extra:?}: through Fs");
        }
    }

    /// Where `path`'s inode is in `img` (from e2fsprogs' `debugfs`).
    fn inode_at(img: &[u8], path: &str) -> usize {
        let file = std::env::temp_dir().join(alloc::format!("imap-{}", std::process::id()));
        std::fs::write(&file, img).unwrap();
        let out = Command::new("debugfs")
            .args(["-R", &alloc::format!("imap {path}")])
            .arg(&file)
            .output()
            .expect("debugfs (e2fsprogs)");
        std::fs::remove_file(&file).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |key: &str| {
            let rest = &text[text.find(key).expect("imap's answer") + key.len()..];
            rest.split(|c: char| c == ',' || c.is_whitespace())
                .next()
                .unwrap()
                .to_string()
        };
        let block: usize = field("located at block ").parse().unwrap();
        let offset = usize::from_str_radix(field("offset 0x").as_str(), 16).unwrap();
        let log = u32::from_le_bytes(img[1024 + 24..1024 + 28].try_into().unwrap());
        block * (1024 << log) + offset
    }

    #[test]
    fn corrupt_extents_are_named_and_nothing_outside_the_buffer_is_written() {
        let data = alloc::vec![0x5au8; 100_000];
        let img = mkfs_ext4(&[("/boot/f", data.clone())], &[]);
        let node = inode_at(&img, "/boot/f") + 0x28;
        type Edit = fn(&mut [u8]);
        let cases: [(&str, Edit); 4] = [
            ("magic", |n| n[0] = 0),
            ("entries", |n| n[2] = 9),
            ("depth", |n| n[6] = 6),
            ("past", |n| {
                n[12 + 8..12 + 12].copy_from_slice(&u32::MAX.to_le_bytes())
            }),
        ];
        for (what, edit) in cases {
            let mut bad = img.clone();
            edit(&mut bad[node..node + 60]);
            let blocks = (bad.len() / 512) as u64;
            let mut vol = Volume::new(MemDisk(bad), 0, blocks);
            let mut out = alloc::vec![0u8; data.len() + 1];
            let (file, after) = out.split_at_mut(data.len());
            let e = Ext::new(&mut vol)
                .unwrap()
                .read_file("/boot/f", file, |_| {});
            assert!(matches!(e, Err(ExtError::Corrupt(_))), "{what}: {e:?}");
            assert_eq!(after, [0], "{what}");
        }
        // A path ext4-view would not have given: named too.
        let blocks = (img.len() / 512) as u64;
        let mut vol = Volume::new(MemDisk(img), 0, blocks);
        let e = Ext::new(&mut vol)
            .unwrap()
            .read_file("/boot/g", &mut [0; 1], |_| {});
        assert!(e.unwrap_err().to_string().contains("no entry g"));
    }

    #[test]
    fn corrupt_and_unknown_volumes_are_named() {
        let img = mkfs_ext4(&[("/boot/x", alloc::vec![7u8; 10])], &[]);
        // The superblock's inode count zeroed (its checksum then fails too).
        let mut bad = img.clone();
        bad[1024..1028].fill(0);
        let e = mount(bad).err().expect("refused");
        assert!(matches!(e, FsError::Ext4(_)), "{e}");
        assert!(matches!(
            mount(alloc::vec![0u8; 8192]),
            Err(FsError::Unknown)
        ));
        // A volume cut short: the file system points past the partition's end.
        let short = img[..img.len() / 4].to_vec();
        match mount(short) {
            Err(e) => assert!(!e.to_string().is_empty()),
            Ok(mut fs) => {
                let mut b = [0u8; 10];
                assert!(fs.read_file("/boot/x", &mut b, |_| {}).is_err() || b == [7; 10]);
            }
        }
    }
}
