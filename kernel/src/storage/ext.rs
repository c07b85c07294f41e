//! The fast path for a file's bytes on ext2/3/4: finds the file's inode by its canonical
//! path, maps its blocks (the extent tree, or ext2/3's indirect blocks) into runs of
//! contiguous blocks, and reads each run with one request straight into the caller's buffer.
//!
//! `ext4-view` mounts, checks, resolves and lists; this module only reads data, because
//! `ext4-view` reads a file a block at a time through its block cache (a lookup and a copy
//! per block), several times slower than one request per run (docs/measurements.md).
//! What this reader does not handle (a journal that needs recovery, `meta_bg`, inline data,
//! encryption, case-folding) is [`ExtError::Unsupported`], and the caller falls back to
//! `ext4-view`. Everything read from the disk is bounded before use: a corrupt tree or
//! directory is a named error, and nothing is written outside the caller's buffer.

use super::{IoError, ReadAt};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// The superblock's offset in the volume, and its length.
const SUPERBLOCK_AT: u64 = 1024;
const SUPERBLOCK_LEN: usize = 1024;
/// The root directory's inode.
const ROOT_INODE: u32 = 2;
/// `s_feature_incompat` bits this reader handles: `FILETYPE`, `EXTENTS`, `64BIT`,
/// `FLEX_BG`, `MMP`, `EA_INODE`, `CSUM_SEED`, `LARGEDIR` (none changes where a file's
/// blocks or a directory's entries are). Any other bit sends the read to `ext4-view`.
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_HANDLED: u32 = 0x2 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000;
/// `i_flags`: the inode's blocks are an extent tree; its data is inline; it is encrypted.
const INODE_EXTENTS: u32 = 0x8_0000;
const INODE_INLINE_DATA: u32 = 0x1000_0000;
const INODE_ENCRYPT: u32 = 0x800;
/// `i_mode`'s file type: a directory, a regular file.
const MODE_TYPE: u16 = 0xf000;
const MODE_DIR: u16 = 0x4000;
const MODE_FILE: u16 = 0x8000;
/// An extent tree node's header magic, and the deepest tree Linux builds.
const EXTENT_MAGIC: u16 = 0xf30a;
const MAX_EXTENT_DEPTH: u16 = 5;
/// An extent longer than this is "uninitialized" (reads as zeros), its length less this.
const EXTENT_INIT_MAX: u16 = 32768;
/// ext2/3's block map: 12 direct blocks, then single, double and triple indirect.
const DIRECT_BLOCKS: usize = 12;
/// The largest directory read (a directory of this size holds some 100 000 names).
const MAX_DIR: u64 = 16 << 20;
/// The most bytes one read request asks for (so that progress is told often enough).
const MAX_RUN: u64 = 4 << 20;

/// Why the fast path cannot read a file.
#[derive(Debug, PartialEq, Eq)]
pub enum ExtError {
    /// Something this reader leaves to `ext4-view` (which feature or flag).
    Unsupported(&'static str),
    /// The volume could not be read.
    Io(IoError),
    /// The file system contradicts itself: what and where.
    Corrupt(String),
}

impl fmt::Display for ExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtError::Unsupported(what) => write!(f, "not read directly: {what}"),
            ExtError::Io(e) => write!(f, "{e}"),
            ExtError::Corrupt(what) => write!(f, "corrupt: {what}"),
        }
    }
}

impl From<IoError> for ExtError {
    fn from(e: IoError) -> Self {
        ExtError::Io(e)
    }
}

fn corrupt<T>(what: String) -> Result<T, ExtError> {
    Err(ExtError::Corrupt(what))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// What the reader needs from the superblock.
struct Geometry {
    block: u64,
    blocks: u64,
    inodes: u32,
    inodes_per_group: u32,
    inode_size: u64,
    desc_size: u64,
    /// The block the group descriptors start at.
    descriptors: u64,
    filetype: bool,
}

/// An inode as this reader uses it.
struct Inode {
    mode: u16,
    size: u64,
    flags: u32,
    /// `i_block`: the extent tree's root, or the block map.
    blocks: [u8; 60],
}

/// A run of the file: `len` blocks from logical block `logical` are at `physical` on the
/// volume. Blocks in no run (holes, unwritten extents) read as zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    logical: u64,
    physical: u64,
    len: u64,
}

/// An ext2/3/4 volume read by this reader.
pub struct Ext<'v, V: ReadAt + ?Sized> {
    vol: &'v mut V,
    geo: Geometry,
}

impl<'v, V: ReadAt + ?Sized> Ext<'v, V> {
    /// Reads the superblock of `vol`.
    pub fn new(vol: &'v mut V) -> Result<Self, ExtError> {
        let mut sb = [0u8; SUPERBLOCK_LEN];
        vol.read_at(SUPERBLOCK_AT, &mut sb)?;
        let incompat = le32(&sb, 0x60);
        if le32(&sb, 0x4c) == 0 {
            return Err(ExtError::Unsupported("revision 0 file system"));
        }
        if incompat & !INCOMPAT_HANDLED != 0 {
            return Err(ExtError::Unsupported(
                "an incompatible feature (a journal to recover, meta_bg, case-folding...)",
            ));
        }
        let log = le32(&sb, 24);
        if log > 6 {
            return corrupt(alloc::format!("block size 1 KiB << {log}"));
        }
        let block = 1024u64 << log;
        let wide = incompat & INCOMPAT_64BIT != 0;
        let blocks = le32(&sb, 4) as u64
            | if wide {
                (le32(&sb, 0x150) as u64) << 32
            } else {
                0
            };
        let desc_size = if wide { le16(&sb, 0xfe) as u64 } else { 32 };
        let inode_size = le16(&sb, 0x58) as u64;
        let inodes_per_group = le32(&sb, 40);
        if !(32..=1024).contains(&desc_size) || !desc_size.is_power_of_two() {
            return corrupt(alloc::format!("group descriptor size {desc_size}"));
        }
        if !(128..=block).contains(&inode_size) || !inode_size.is_power_of_two() {
            return corrupt(alloc::format!("inode size {inode_size}"));
        }
        if inodes_per_group == 0 {
            return corrupt("0 inodes per group".into());
        }
        Ok(Ext {
            geo: Geometry {
                block,
                blocks,
                inodes: le32(&sb, 0),
                inodes_per_group,
                inode_size,
                desc_size,
                descriptors: le32(&sb, 20) as u64 + 1,
                filetype: incompat & INCOMPAT_FILETYPE != 0,
            },
            vol,
        })
    }

    /// Reads the regular file at `path` (canonical: absolute, no `.`, `..` or symbolic
    /// link in it) into `out`, which must be exactly the file's size; `progress` is told the
    /// bytes read so far after each request.
    pub fn read_file(
        &mut self,
        path: &str,
        out: &mut [u8],
        mut progress: impl FnMut(u64),
    ) -> Result<(), ExtError> {
        let inode = self.lookup(path)?;
        if inode.mode & MODE_TYPE != MODE_FILE {
            return corrupt(alloc::format!("{path}: not a regular file"));
        }
        if inode.size != out.len() as u64 {
            return corrupt(alloc::format!(
                "{path}: {} bytes, where {} were expected",
                inode.size,
                out.len()
            ));
        }
        // Told the bytes read from the disk as it goes, and the whole size (holes too) at
        // the end.
        let mut done = 0u64;
        self.read_runs(&inode, out, |n| {
            done += n;
            progress(done)
        })?;
        if done != inode.size {
            progress(inode.size);
        }
        Ok(())
    }

    /// The inode at `path`, from the root down.
    fn lookup(&mut self, path: &str) -> Result<Inode, ExtError> {
        let mut inode = self.inode(ROOT_INODE)?;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            if inode.mode & MODE_TYPE != MODE_DIR {
                return corrupt(alloc::format!(
                    "{path}: a file where a directory was expected"
                ));
            }
            let number = self.find_in_dir(&inode, name.as_bytes())?.ok_or_else(|| {
                ExtError::Corrupt(alloc::format!(
                    "{path}: no entry {name} (yet ext4-view found it)"
                ))
            })?;
            inode = self.inode(number)?;
        }
        Ok(inode)
    }

    /// The inode numbered `n`.
    fn inode(&mut self, n: u32) -> Result<Inode, ExtError> {
        let g = &self.geo;
        if n == 0 || n > g.inodes {
            return corrupt(alloc::format!(
                "inode {n} (the file system has {})",
                g.inodes
            ));
        }
        let (group, index) = ((n - 1) / g.inodes_per_group, (n - 1) % g.inodes_per_group);
        let mut desc = [0u8; 64];
        let desc_at = g.descriptors * g.block + group as u64 * g.desc_size;
        let desc_len = g.desc_size.min(64) as usize;
        self.vol.read_at(desc_at, &mut desc[..desc_len])?;
        let table_hi = if desc_len >= 64 {
            le32(&desc, 0x28) as u64
        } else {
            0
        };
        let table = le32(&desc, 8) as u64 | table_hi << 32;
        if table == 0 || table >= g.blocks {
            return corrupt(alloc::format!(
                "group {group}'s inode table at block {table}"
            ));
        }
        let mut raw = [0u8; 128];
        self.vol
            .read_at(table * g.block + index as u64 * g.inode_size, &mut raw)?;
        let flags = le32(&raw, 0x20);
        if flags & INODE_INLINE_DATA != 0 {
            return Err(ExtError::Unsupported("inline data"));
        }
        if flags & INODE_ENCRYPT != 0 {
            return Err(ExtError::Unsupported("an encrypted file"));
        }
        Ok(Inode {
            mode: le16(&raw, 0),
            size: le32(&raw, 4) as u64 | (le32(&raw, 0x6c) as u64) << 32,
            flags,
            blocks: raw[0x28..0x28 + 60].try_into().expect("60 bytes"),
        })
    }

    /// The inode number of `name` in the directory `dir` (a linear scan, which also reads
    /// hashed directories: their index blocks look like empty entries).
    fn find_in_dir(&mut self, dir: &Inode, name: &[u8]) -> Result<Option<u32>, ExtError> {
        if dir.size > MAX_DIR {
            return corrupt(alloc::format!("a directory of {} bytes", dir.size));
        }
        let mut data = vec![0u8; dir.size as usize];
        self.read_runs(dir, &mut data, |_| {})?;
        let block = self.geo.block as usize;
        for chunk in data.chunks(block) {
            let mut at = 0;
            while at + 8 <= chunk.len() {
                let rec_len = le16(chunk, at + 4) as usize;
                let name_len = if self.geo.filetype {
                    chunk[at + 6] as usize
                } else {
                    le16(chunk, at + 6) as usize
                };
                if rec_len < 8
                    || !rec_len.is_multiple_of(4)
                    || at + rec_len > chunk.len()
                    || 8 + name_len > rec_len
                {
                    return corrupt(alloc::format!(
                        "a directory entry of {rec_len} bytes for a {name_len}-byte name"
                    ));
                }
                let number = le32(chunk, at);
                if number != 0 && &chunk[at + 8..at + 8 + name_len] == name {
                    return Ok(Some(number));
                }
                at += rec_len;
            }
        }
        Ok(None)
    }

    /// Reads the blocks of `inode` into `out` (its first `out.len()` bytes), run by run.
    fn read_runs(
        &mut self,
        inode: &Inode,
        out: &mut [u8],
        mut progress: impl FnMut(u64),
    ) -> Result<(), ExtError> {
        let bs = self.geo.block;
        let file_blocks = (out.len() as u64).div_ceil(bs);
        let runs = if inode.flags & INODE_EXTENTS != 0 {
            self.extent_runs(&inode.blocks, file_blocks)?
        } else {
            self.mapped_runs(&inode.blocks, file_blocks)?
        };
        // Bytes not covered by a run are holes.
        out.fill(0);
        for run in runs {
            let physical = run.physical;
            if physical
                .checked_add(run.len)
                .is_none_or(|end| end > self.geo.blocks)
            {
                return corrupt(alloc::format!(
                    "blocks {physical}+{} past the file system's {}",
                    run.len,
                    self.geo.blocks
                ));
            }
            let start = run.logical * bs;
            let end = ((run.logical + run.len) * bs).min(out.len() as u64);
            let mut at = start;
            while at < end {
                let n = (end - at).min(MAX_RUN);
                let dst = &mut out[at as usize..(at + n) as usize];
                self.vol.read_at(physical * bs + (at - start), dst)?;
                progress(n);
                at += n;
            }
        }
        Ok(())
    }

    /// The runs of an extent tree rooted in `i_block`, within the file's first `limit`
    /// blocks.
    fn extent_runs(&mut self, root: &[u8; 60], limit: u64) -> Result<Vec<Run>, ExtError> {
        let mut runs = Vec::new();
        // Nodes visited: a tree of more nodes than the file has blocks (plus the root)
        // points at itself somewhere.
        let mut budget = limit + 1;
        self.extent_node(root, None, limit, &mut runs, &mut budget)?;
        Ok(runs)
    }

    fn extent_node(
        &mut self,
        node: &[u8],
        depth_above: Option<u16>,
        limit: u64,
        runs: &mut Vec<Run>,
        budget: &mut u64,
    ) -> Result<(), ExtError> {
        *budget = budget.checked_sub(1).ok_or_else(|| {
            ExtError::Corrupt("an extent tree with more nodes than blocks".into())
        })?;
        let (magic, entries, max, depth) =
            (le16(node, 0), le16(node, 2), le16(node, 4), le16(node, 6));
        let fits = (node.len() - 12) / 12;
        if magic != EXTENT_MAGIC
            || entries > max
            || max as usize > fits
            || depth > MAX_EXTENT_DEPTH
            || depth_above.is_some_and(|above| depth + 1 != above)
        {
            return corrupt(alloc::format!(
                "an extent node (magic {magic:#x}, {entries} of {max} entries, depth {depth})"
            ));
        }
        for e in node[12..].chunks_exact(12).take(entries as usize) {
            let logical = le32(e, 0) as u64;
            if logical >= limit {
                continue;
            }
            if depth == 0 {
                let len = le16(e, 4);
                if len > EXTENT_INIT_MAX {
                    continue; // unwritten: zeros
                }
                runs.push(Run {
                    logical,
                    physical: le32(e, 8) as u64 | (le16(e, 6) as u64) << 32,
                    len: (len as u64).min(limit - logical),
                });
            } else {
                let child = le32(e, 4) as u64 | (le16(e, 8) as u64) << 32;
                if child == 0 || child >= self.geo.blocks {
                    return corrupt(alloc::format!("an extent index pointing at block {child}"));
                }
                let mut block = vec![0u8; self.geo.block as usize];
                self.vol.read_at(child * self.geo.block, &mut block)?;
                self.extent_node(&block, Some(depth), limit, runs, budget)?;
            }
        }
        Ok(())
    }

    /// The runs of ext2/3's block map: 12 direct blocks, then indirect blocks of block
    /// numbers, one, two and three levels deep.
    fn mapped_runs(&mut self, map: &[u8; 60], limit: u64) -> Result<Vec<Run>, ExtError> {
        let mut runs = Runs {
            runs: Vec::new(),
            next: 0,
            limit,
        };
        for i in 0..DIRECT_BLOCKS {
            runs.push(le32(map, 4 * i));
        }
        for (level, i) in [
            (1, DIRECT_BLOCKS),
            (2, DIRECT_BLOCKS + 1),
            (3, DIRECT_BLOCKS + 2),
        ] {
            self.indirect(le32(map, 4 * i), level, &mut runs)?;
        }
        Ok(runs.runs)
    }

    /// Walks the indirect block `at`, `level` levels above the file's blocks (0: a hole).
    fn indirect(&mut self, at: u32, level: u32, runs: &mut Runs) -> Result<(), ExtError> {
        let per_block = self.geo.block / 4;
        if runs.next >= runs.limit {
            return Ok(());
        }
        if at == 0 {
            runs.next = runs.next.saturating_add(per_block.pow(level));
            return Ok(());
        }
        if at as u64 >= self.geo.blocks {
            return corrupt(alloc::format!("an indirect block at block {at}"));
        }
        let mut block = vec![0u8; self.geo.block as usize];
        self.vol.read_at(at as u64 * self.geo.block, &mut block)?;
        for entry in block.chunks_exact(4) {
            let entry = le32(entry, 0);
            if level == 1 {
                runs.push(entry);
            } else {
                self.indirect(entry, level - 1, runs)?;
            }
        }
        Ok(())
    }
}

/// Runs built block by block from a block map: adjacent blocks join into one run.
struct Runs {
    runs: Vec<Run>,
    /// The logical block the next block number is for.
    next: u64,
    /// Blocks in the file.
    limit: u64,
}

impl Runs {
    /// The next logical block is at `physical` (0: a hole).
    fn push(&mut self, physical: u32) {
        let logical = self.next;
        self.next += 1;
        if physical == 0 || logical >= self.limit {
            return;
        }
        let physical = physical as u64;
        match self.runs.last_mut() {
            Some(r) if r.logical + r.len == logical && r.physical + r.len == physical => r.len += 1,
            _ => self.runs.push(Run {
                logical,
                physical,
                len: 1,
            }),
        }
    }
}
