//! Flattened device tree (DTB) blobs as boot loaders hand them over.
//!
//! Boot loaders edit a DTB in place by overwriting what they delete with `FDT_NOP` tokens:
//! QEMU does so with a `-dtb`'s `/memory` nodes, U-Boot and Linux's kexec-tools with other
//! properties. The `fdt` crate's node walker does not skip those tokens, so the kernel first
//! makes a compact copy without them: header, memory reservation block, structure block
//! (`FDT_NOP`s dropped) and strings block, in that order, with no padding.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// `magic` of every DTB.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the version-17 header.
pub const HEADER_SIZE: usize = 40;
/// Largest DTB the arm64 boot protocol allows (booting.rst: at most 2 MiB).
pub const MAX_SIZE: usize = 2 << 20;
/// The structure-block version this code writes (and the oldest it reads).
const VERSION: u32 = 17;
/// The oldest version a version-17 blob stays compatible with.
const LAST_COMP_VERSION: u32 = 16;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// The header fields, as the blob has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Size of the whole blob, including free space.
    pub totalsize: u32,
    /// Offset of the structure block.
    pub off_dt_struct: u32,
    /// Offset of the strings block.
    pub off_dt_strings: u32,
    /// Offset of the memory reservation block.
    pub off_mem_rsvmap: u32,
    /// Format version.
    pub version: u32,
    /// Oldest version this blob is compatible with.
    pub last_comp_version: u32,
    /// Physical ID of the boot CPU.
    pub boot_cpuid_phys: u32,
    /// Length of the strings block.
    pub size_dt_strings: u32,
    /// Length of the structure block.
    pub size_dt_struct: u32,
}

/// Why a blob is not a DTB this kernel can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// Shorter than its header, or than `totalsize`.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The first word is not `0xd00dfeed`.
    BadMagic(u32),
    /// `last_comp_version` is newer than 17, or `version` older than 16.
    UnsupportedVersion(u32),
    /// A block (`what`) lies outside `totalsize`.
    BlockOutside {
        /// "structure block", "strings block" or "memory reservation block".
        what: &'static str,
        /// Its offset.
        offset: u32,
        /// Its size.
        size: u32,
        /// The blob's `totalsize`.
        totalsize: u32,
    },
    /// The structure block holds an unknown token at `offset` (from the block's start).
    BadToken {
        /// The token.
        token: u32,
        /// Its offset inside the structure block.
        offset: usize,
    },
    /// The structure block ends before `FDT_END`, or a name or property runs past it.
    StructTruncated {
        /// Offset of the token whose data is cut off.
        offset: usize,
    },
    /// The memory reservation block has no terminating (0, 0) entry.
    RsvmapUnterminated,
    /// A property's name offset does not point at a NUL-terminated UTF-8 string in the
    /// strings block.
    BadNameOffset {
        /// Offset of the property inside the structure block.
        offset: usize,
        /// Its name offset.
        nameoff: u32,
        /// The strings block's size.
        strings: usize,
    },
    /// A node's name is not UTF-8.
    NodeName {
        /// Offset of the node inside the structure block.
        offset: usize,
    },
    /// The root node has a name (it must have none).
    RootNamed,
    /// Nodes do not nest: a property or node outside the root, a property after a child
    /// node (the specification puts a node's properties first), an `FDT_END_NODE` without
    /// its node, or `FDT_END` inside a node.
    BadNesting {
        /// Offset of the token inside the structure block.
        offset: usize,
    },
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { need, have } => {
                write!(f, "DTB: {have} bytes, but its header needs {need}")
            }
            Self::BadMagic(m) => write!(f, "DTB: magic {m:#010x}, expected {FDT_MAGIC:#010x}"),
            Self::UnsupportedVersion(v) => {
                write!(f, "DTB: version {v} is not compatible with version 17")
            }
            Self::BlockOutside {
                what,
                offset,
                size,
                totalsize,
            } => write!(
                f,
                "DTB: {what} at {offset:#x} ({size} bytes) lies outside totalsize {totalsize}"
            ),
            Self::BadToken { token, offset } => write!(
                f,
                "DTB: unknown token {token:#x} at structure offset {offset:#x}"
            ),
            Self::StructTruncated { offset } => write!(
                f,
                "DTB: structure block cut off in the token at offset {offset:#x}"
            ),
            Self::RsvmapUnterminated => {
                write!(f, "DTB: memory reservation block has no (0, 0) terminator")
            }
            Self::BadNameOffset {
                offset,
                nameoff,
                strings,
            } => write!(
                f,
                "DTB: property at structure offset {offset:#x} names string {nameoff:#x}, \
                 not a UTF-8 string in the {strings}-byte strings block"
            ),
            Self::NodeName { offset } => write!(
                f,
                "DTB: the name of the node at structure offset {offset:#x} is not UTF-8"
            ),
            Self::RootNamed => write!(f, "DTB: the root node has a name (it must have none)"),
            Self::BadNesting { offset } => {
                write!(f, "DTB: nodes do not nest at structure offset {offset:#x}")
            }
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads and checks the header: magic, version and that each block lies inside `totalsize`
/// (and inside `blob`).
pub fn header(blob: &[u8]) -> Result<Header, DtbError> {
    if blob.len() < HEADER_SIZE {
        return Err(DtbError::Truncated {
            need: HEADER_SIZE,
            have: blob.len(),
        });
    }
    let magic = be32(blob, 0);
    if magic != FDT_MAGIC {
        return Err(DtbError::BadMagic(magic));
    }
    let w = |i: usize| be32(blob, 4 * i);
    let h = Header {
        totalsize: w(1),
        off_dt_struct: w(2),
        off_dt_strings: w(3),
        off_mem_rsvmap: w(4),
        version: w(5),
        last_comp_version: w(6),
        boot_cpuid_phys: w(7),
        size_dt_strings: w(8),
        size_dt_struct: w(9),
    };
    if h.version < LAST_COMP_VERSION || h.last_comp_version > VERSION {
        return Err(DtbError::UnsupportedVersion(h.version));
    }
    if (h.totalsize as usize) > blob.len() || (h.totalsize as usize) < HEADER_SIZE {
        return Err(DtbError::Truncated {
            need: (h.totalsize as usize).max(HEADER_SIZE),
            have: blob.len(),
        });
    }
    let inside = |what, offset: u32, size: u32| {
        if offset as u64 + size as u64 > h.totalsize as u64 {
            Err(DtbError::BlockOutside {
                what,
                offset,
                size,
                totalsize: h.totalsize,
            })
        } else {
            Ok(())
        }
    };
    inside("structure block", h.off_dt_struct, h.size_dt_struct)?;
    inside("strings block", h.off_dt_strings, h.size_dt_strings)?;
    inside("memory reservation block", h.off_mem_rsvmap, 16)?;
    Ok(h)
}

/// The DTB whose header is at `va`, if the header is one this kernel reads (its magic, a
/// `totalsize` from [`HEADER_SIZE`] to [`MAX_SIZE`], a version and blocks that fit): the
/// check made on a DTB found in memory (from the boot loader, or the firmware's table)
/// before anything else reads it.
///
/// # Safety
/// `va` must be readable for 8 bytes, and then for the `totalsize` they give if that is at
/// most [`MAX_SIZE`], for as long as the returned slice lives.
pub unsafe fn blob_at(va: *const u8) -> Option<&'static [u8]> {
    // SAFETY: caller: the first 8 bytes are readable.
    let head = unsafe { core::slice::from_raw_parts(va, 8) };
    let size = be32(head, 4) as usize;
    if be32(head, 0) != FDT_MAGIC || !(HEADER_SIZE..=MAX_SIZE).contains(&size) {
        return None;
    }
    // SAFETY: caller: `size` (at most MAX_SIZE) bytes are readable.
    let blob = unsafe { core::slice::from_raw_parts(va, size) };
    header(blob).is_ok().then_some(blob)
}

/// Walks the structure block up to `FDT_END`, checking that every token is known and ends
/// inside the block, that every property names a string of `strings`, and that the nodes
/// nest under one root with their properties first, and hands `each` every token with its
/// data. (The `fdt` crate, which
/// reads the result, trusts all of this and panics on a blob that breaks it.)
fn walk(st: &[u8], strings: &[u8], mut each: impl FnMut(u32, &[u8])) -> Result<(), DtbError> {
    let mut at = 0;
    // Open nodes, and whether the root has been closed.
    let mut depth = 0usize;
    let mut root_done = false;
    // The last token other than FDT_NOP: a property may only follow its node or a property.
    let mut prev = FDT_NOP;
    loop {
        if at + 4 > st.len() {
            return Err(DtbError::StructTruncated { offset: at });
        }
        let token = be32(st, at);
        let len = match token {
            FDT_BEGIN_NODE => {
                let name = st[at + 4..]
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or(DtbError::StructTruncated { offset: at })?;
                4 + mm::align_up(name as u64 + 1, 4) as usize
            }
            FDT_PROP => {
                if at + 12 > st.len() {
                    return Err(DtbError::StructTruncated { offset: at });
                }
                12 + mm::align_up(be32(st, at + 4) as u64, 4) as usize
            }
            FDT_END_NODE | FDT_NOP | FDT_END => 4,
            token => return Err(DtbError::BadToken { token, offset: at }),
        };
        if at + len > st.len() {
            return Err(DtbError::StructTruncated { offset: at });
        }
        let nesting = DtbError::BadNesting { offset: at };
        match token {
            FDT_BEGIN_NODE if root_done => return Err(nesting),
            FDT_BEGIN_NODE => {
                let name = &st[at + 4..at + len];
                let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(0)];
                if core::str::from_utf8(name).is_err() {
                    return Err(DtbError::NodeName { offset: at });
                }
                if depth == 0 && !name.is_empty() {
                    return Err(DtbError::RootNamed);
                }
                depth += 1;
            }
            FDT_END_NODE if depth == 0 => return Err(nesting),
            FDT_END_NODE => {
                depth -= 1;
                root_done = depth == 0;
            }
            FDT_PROP if depth == 0 || !matches!(prev, FDT_BEGIN_NODE | FDT_PROP) => {
                return Err(nesting)
            }
            FDT_PROP => {
                let nameoff = be32(st, at + 8);
                let named = strings.get(nameoff as usize..).is_some_and(|rest| {
                    rest.iter()
                        .position(|&c| c == 0)
                        .is_some_and(|nul| core::str::from_utf8(&rest[..nul]).is_ok())
                });
                if !named {
                    return Err(DtbError::BadNameOffset {
                        offset: at,
                        nameoff,
                        strings: strings.len(),
                    });
                }
            }
            FDT_END if depth != 0 || !root_done => return Err(nesting),
            _ => {}
        }
        if token != FDT_NOP {
            prev = token;
        }
        each(token, &st[at..at + len]);
        if token == FDT_END {
            return Ok(());
        }
        at += len;
    }
}

/// Copies `blob` into a new, compact DTB without `FDT_NOP` tokens or free space.
///
/// The result has the same nodes, properties, reservations and boot CPU, and is a valid
/// version-17 blob that the `fdt` crate reads.
pub fn compact(blob: &[u8]) -> Result<Vec<u8>, DtbError> {
    let h = header(blob)?;
    let total = &blob[..h.totalsize as usize];
    // Memory reservation block: 16-byte entries up to and including (0, 0).
    let rsv_start = h.off_mem_rsvmap as usize;
    let mut rsv_end = rsv_start;
    loop {
        if rsv_end + 16 > total.len() {
            return Err(DtbError::RsvmapUnterminated);
        }
        let entry = &total[rsv_end..rsv_end + 16];
        rsv_end += 16;
        if entry.iter().all(|&b| b == 0) {
            break;
        }
    }
    let st = &total[h.off_dt_struct as usize..(h.off_dt_struct + h.size_dt_struct) as usize];
    let strings =
        &total[h.off_dt_strings as usize..(h.off_dt_strings + h.size_dt_strings) as usize];

    let mut out_struct = Vec::with_capacity(st.len());
    walk(st, strings, |tok, t| {
        if tok != FDT_NOP {
            out_struct.extend_from_slice(t)
        }
    })?;
    Ok(assemble(
        h.boot_cpuid_phys,
        &total[rsv_start..rsv_end],
        &out_struct,
        strings,
    ))
}

/// A version-17 blob from its parts: header, reservation block (with its terminator),
/// structure block, strings block, in that order and without gaps (40 is a multiple of 8,
/// as the reservation block's alignment needs).
fn assemble(boot_cpuid_phys: u32, rsv: &[u8], st: &[u8], strings: &[u8]) -> Vec<u8> {
    let off_rsv = HEADER_SIZE;
    let off_struct = off_rsv + rsv.len();
    let off_strings = off_struct + st.len();
    let totalsize = off_strings + strings.len();
    let mut out = Vec::with_capacity(totalsize);
    for word in [
        FDT_MAGIC,
        totalsize as u32,
        off_struct as u32,
        off_strings as u32,
        off_rsv as u32,
        VERSION,
        LAST_COMP_VERSION,
        boot_cpuid_phys,
        strings.len() as u32,
        st.len() as u32,
    ] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(rsv);
    out.extend_from_slice(st);
    out.extend_from_slice(strings);
    out
}

/// A change to a property of `/chosen`: `Some(value)` sets it, `None` removes it.
pub type ChosenEdit<'a> = (&'a str, Option<&'a [u8]>);

/// A change to a property of the node at a path (`/cpus/cpu@1`): `Some(value)` sets it,
/// `None` removes it.
#[derive(Clone, Copy, Debug)]
pub struct Edit<'a> {
    /// Full path of the node, from the root.
    pub node: &'a str,
    /// Property name.
    pub prop: &'a str,
    /// New value, or `None` to remove it.
    pub value: Option<&'a [u8]>,
}

/// What a kernel (or the EFI stub) tells the next one in `/chosen`: each property set to
/// its big-endian value, or removed; properties not named are kept. One list for every
/// hand-over, so that the property names and encodings live in one place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chosen {
    props: Vec<(&'static str, Option<Vec<u8>>)>,
}

impl Chosen {
    /// `bootargs`, when `Some` (a NUL is added); the DTB's own stay otherwise.
    pub fn bootargs(mut self, args: Option<&[u8]>) -> Self {
        if let Some(a) = args {
            let mut v = a.to_vec();
            v.push(0);
            self.props.push(("bootargs", Some(v)));
        }
        self
    }

    /// `<name>-start` and `<name>-end` (64-bit) for `[start, end)`, or both removed.
    pub fn range(mut self, start: &'static str, end: &'static str, r: Option<(u64, u64)>) -> Self {
        let (s, e) = r
            .map(|(s, e)| (s.to_be_bytes().to_vec(), e.to_be_bytes().to_vec()))
            .unzip();
        self.props.push((start, s));
        self.props.push((end, e));
        self
    }

    /// The initrd: `linux,initrd-start` and `-end`, or neither.
    pub fn initrd(self, r: Option<(u64, u64)>) -> Self {
        self.range("linux,initrd-start", "linux,initrd-end", r)
    }

    /// A 64-bit property.
    pub fn u64(mut self, name: &'static str, v: u64) -> Self {
        self.props.push((name, Some(v.to_be_bytes().to_vec())));
        self
    }

    /// A 32-bit property.
    pub fn u32(mut self, name: &'static str, v: u32) -> Self {
        self.props.push((name, Some(v.to_be_bytes().to_vec())));
        self
    }

    /// A property with these bytes, or removed.
    pub fn bytes(mut self, name: &'static str, v: Option<Vec<u8>>) -> Self {
        self.props.push((name, v));
        self
    }

    /// The edits, for [`edit`] (with edits to other nodes) or [`edit_chosen`].
    pub fn edits(&self) -> Vec<Edit<'_>> {
        self.props
            .iter()
            .map(|(prop, value)| Edit {
                node: "/chosen",
                prop,
                value: value.as_deref(),
            })
            .collect()
    }

    /// `blob` with these changes.
    pub fn apply(&self, blob: &[u8]) -> Result<Vec<u8>, DtbError> {
        edit(blob, &self.edits(), &[])
    }
}

/// Copies `blob` with `/chosen`'s properties changed as `edits` say (and `/chosen` created
/// if it is missing). See [`edit`].
pub fn edit_chosen(blob: &[u8], edits: &[ChosenEdit<'_>]) -> Result<Vec<u8>, DtbError> {
    let edits: Vec<Edit<'_>> = edits
        .iter()
        .map(|&(prop, value)| Edit {
            node: "/chosen",
            prop,
            value,
        })
        .collect();
    edit(blob, &edits, &[])
}

/// Whether the node at `path` is one a reader finds for `wanted`: libfdt (Linux) and the
/// `fdt` crate (this kernel) let a path component without a unit address (`chosen`) name a
/// node with one (`chosen@0`), and take the first such node.
fn node_is(path: &str, wanted: &str) -> bool {
    let mut have = path.split('/');
    let mut want = wanted.split('/');
    loop {
        match (have.next(), want.next()) {
            (None, None) => return true,
            (Some(h), Some(w))
                if h == w || (!w.contains('@') && h.split('@').next() == Some(w)) => {}
            _ => return false,
        }
    }
}

/// Copies `blob` with properties changed as `edits` say and `reserve` appended to the
/// memory reservation block (as `/memreserve/` entries: address, size), dropping `FDT_NOP`s
/// on the way. Edits to `/chosen` create it if it is missing; edits to other missing nodes
/// are ignored. Everything else is kept as it is, reservations and boot CPU included.
///
/// An edit applies to every node a reader could find under its path ([`node_is`]): edits to
/// `/chosen` go into a `/chosen@0` too, rather than into a second node the next kernel's
/// look-up never reaches.
pub fn edit(blob: &[u8], edits: &[Edit<'_>], reserve: &[(u64, u64)]) -> Result<Vec<u8>, DtbError> {
    let compact = compact(blob)?;
    let h = header(&compact)?;
    let st = &compact[h.off_dt_struct as usize..][..h.size_dt_struct as usize];
    let old_strings = &compact[h.off_dt_strings as usize..][..h.size_dt_strings as usize];
    let mut strings = old_strings.to_vec();
    // Every edit's name offset first (this may grow the strings block).
    let offs: Vec<u32> = edits
        .iter()
        .map(|e| string_offset(&mut strings, e.prop))
        .collect();
    let chosen_edited = edits.iter().any(|e| e.node == "/chosen");
    let mut out_struct = Vec::with_capacity(st.len() + 256);
    // The path of the node being copied, and whether /chosen exists.
    let mut path = String::new();
    let mut depth_lens: Vec<usize> = Vec::new();
    let mut chosen_seen = false;
    // New properties go after a node's existing ones and before its first subnode, as the
    // format requires; `pending` says the current node's have not been written yet.
    let new_props = |out: &mut Vec<u8>, path: &str| {
        for (e, &off) in edits.iter().zip(&offs) {
            if let (Some(v), true) = (e.value, node_is(path, e.node)) {
                push_prop(out, off, v);
            }
        }
    };
    let mut pending = false;
    walk(st, old_strings, |tok, t| match tok {
        FDT_BEGIN_NODE => {
            if pending {
                new_props(&mut out_struct, &path);
                pending = false;
            }
            let name_end = t[4..].iter().position(|&c| c == 0).unwrap_or(0);
            let name = core::str::from_utf8(&t[4..4 + name_end]).unwrap_or("");
            depth_lens.push(path.len());
            if depth_lens.len() > 1 {
                if !path.ends_with('/') {
                    path.push('/');
                }
                path.push_str(name);
            } else {
                path.push('/');
            }
            chosen_seen |= node_is(&path, "/chosen");
            out_struct.extend_from_slice(t);
            pending = true;
        }
        FDT_PROP => {
            let nameoff = be32(t, 8) as usize;
            let name_end = strings[nameoff..].iter().position(|&c| c == 0).unwrap_or(0);
            let name = &strings[nameoff..nameoff + name_end];
            let edited = edits
                .iter()
                .any(|e| node_is(&path, e.node) && e.prop.as_bytes() == name);
            if !edited {
                out_struct.extend_from_slice(t);
            }
        }
        FDT_END_NODE => {
            if pending {
                new_props(&mut out_struct, &path);
                pending = false;
            }
            let closing_root = depth_lens.len() == 1;
            if closing_root && chosen_edited && !chosen_seen {
                // No /chosen: add one as the root's last subnode.
                out_struct.extend_from_slice(&FDT_BEGIN_NODE.to_be_bytes());
                out_struct.extend_from_slice(b"chosen\0\0");
                new_props(&mut out_struct, "/chosen");
                out_struct.extend_from_slice(&FDT_END_NODE.to_be_bytes());
            }
            if let Some(len) = depth_lens.pop() {
                path.truncate(len);
            }
            out_struct.extend_from_slice(t);
        }
        FDT_NOP => {}
        _ => out_struct.extend_from_slice(t),
    })?;
    // Reassemble: header, reservations (old ones, new ones, terminator), structure, strings.
    let old_rsv = &compact[h.off_mem_rsvmap as usize..h.off_dt_struct as usize - 16];
    let mut rsv = old_rsv.to_vec();
    for &(addr, size) in reserve {
        rsv.extend_from_slice(&addr.to_be_bytes());
        rsv.extend_from_slice(&size.to_be_bytes());
    }
    rsv.extend_from_slice(&[0; 16]);
    Ok(assemble(h.boot_cpuid_phys, &rsv, &out_struct, &strings))
}

/// The offset of `name` in the strings block `strings`, appended if it is not there.
fn string_offset(strings: &mut Vec<u8>, name: &str) -> u32 {
    let mut at = 0;
    while at < strings.len() {
        let end = at + strings[at..].iter().position(|&c| c == 0).unwrap_or(0);
        if &strings[at..end] == name.as_bytes() {
            return at as u32;
        }
        at = end + 1;
    }
    let off = strings.len() as u32;
    strings.extend_from_slice(name.as_bytes());
    strings.push(0);
    off
}

/// Appends an `FDT_PROP` token: the property whose name is at `nameoff`, with `value`.
fn push_prop(out: &mut Vec<u8>, nameoff: u32, value: &[u8]) {
    out.extend_from_slice(&FDT_PROP.to_be_bytes());
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(&nameoff.to_be_bytes());
    out.extend_from_slice(value);
    out.resize(mm::align_up(out.len() as u64, 4) as usize, 0);
}

#[cfg(test)]
mod chosen_tests {
    use super::*;

    #[test]
    fn chosen_sets_removes_and_keeps() {
        let base = edit_chosen(
            &crate::platform::tests::fixture("virt-1g.dtb"),
            &[
                ("bootargs", Some(b"old\0")),
                ("linux,initrd-start", Some(&[0; 8])),
            ],
        )
        .unwrap();
        let out = Chosen::default()
            .bootargs(None)
            .initrd(None)
            .range(
                "kexec,handover-start",
                "kexec,handover-end",
                Some((0x1000, 0x3000)),
            )
            .u32("linux,uefi-secure-boot", 1)
            .apply(&base)
            .unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        let prop = |n: &str| chosen.property(n).map(|p| p.value.to_vec());
        assert_eq!(prop("bootargs").unwrap(), b"old\0", "kept when not given");
        assert_eq!(prop("linux,initrd-start"), None, "removed");
        assert_eq!(prop("kexec,handover-end").unwrap(), 0x3000u64.to_be_bytes());
        assert_eq!(prop("linux,uefi-secure-boot").unwrap(), 1u32.to_be_bytes());
        let out = Chosen::default()
            .bootargs(Some(b"new"))
            .apply(&out)
            .unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        assert_eq!(fdt.chosen().bootargs(), Some("new"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::tests::fixture;
    use crate::platform::Platform;
    use fdt::Fdt;
    use mm::memmap::{MemoryMap, Region};

    fn nops(blob: &[u8]) -> usize {
        let h = header(blob).unwrap();
        let st = &blob[h.off_dt_struct as usize..][..h.size_dt_struct as usize];
        let strings = &blob[h.off_dt_strings as usize..][..h.size_dt_strings as usize];
        let mut n = 0;
        walk(st, strings, |tok, _| n += usize::from(tok == FDT_NOP)).unwrap();
        n
    }

    /// A blob from structure tokens (big-endian words and name bytes) and a strings block.
    fn blob_of(st: &[u32], strings: &[u8]) -> Vec<u8> {
        let st: Vec<u8> = st.iter().flat_map(|w| w.to_be_bytes()).collect();
        assemble(0, &[0; 16], &st, strings)
    }

    /// What the `fdt` crate trusts and panics on, found by fuzzing (fuzz/regressions/):
    /// each is an error here, before the crate sees the blob.
    #[test]
    fn structure_rules_the_fdt_crate_relies_on() {
        const B: u32 = FDT_BEGIN_NODE;
        const E: u32 = FDT_END_NODE;
        const P: u32 = FDT_PROP;
        let ok = blob_of(&[B, 0, P, 0, 0, E, FDT_END], b"a\0");
        assert!(compact(&ok).is_ok());
        assert_eq!(
            compact(&blob_of(&[B, 0, P, 0, 7, E, FDT_END], b"a\0")).unwrap_err(),
            DtbError::BadNameOffset {
                offset: 8,
                nameoff: 7,
                strings: 2
            }
        );
        assert!(matches!(
            compact(&blob_of(&[B, 0, P, 0, 0, E, FDT_END], b"\xff\0")).unwrap_err(),
            DtbError::BadNameOffset { .. }
        ));
        // A property after a child node; a property outside the root; END inside a node;
        // a second root; END_NODE without a node.
        for st in [
            &[B, 0, B, 0x6100_0000, E, P, 0, 0, E, FDT_END][..],
            &[P, 0, 0, B, 0, E, FDT_END],
            &[B, 0, FDT_END],
            &[B, 0, E, B, 0, E, FDT_END],
            &[E, FDT_END],
        ] {
            assert!(
                matches!(
                    compact(&blob_of(st, b"a\0")).unwrap_err(),
                    DtbError::BadNesting { .. }
                ),
                "{st:x?}"
            );
        }
        assert_eq!(
            compact(&blob_of(&[B, 0x6100_0000, E, FDT_END], b"")).unwrap_err(),
            DtbError::RootNamed
        );
        assert!(matches!(
            compact(&blob_of(&[B, 0, B, 0xff00_0000, E, E, FDT_END], b"")).unwrap_err(),
            DtbError::NodeName { offset: 8 }
        ));
    }

    #[test]
    fn qemu_runtime_dtb_with_nops_reads_like_the_original() {
        // QEMU's DTB as a -kernel sees it after `-dtb` with two memory nodes: QEMU turned
        // both into FDT_NOPs and appended its own /memory node.
        let blob = fixture("virt-runtime.dtb");
        assert!(nops(&blob) > 0, "the fixture should contain FDT_NOPs");
        let c = compact(&blob).unwrap();
        assert_eq!(nops(&c), 0);
        assert!(c.len() < blob.len());
        let fdt = Fdt::new(&c).unwrap();
        let p = Platform::from_fdt(&fdt).unwrap();
        assert_eq!(p.console.uart().unwrap().regs.start, 0x900_0000);
        assert_eq!(p.bootargs, "console=ttyAMA0 fixture");
        assert!(p.psci.is_some());
        let map = MemoryMap::from_fdt(&fdt).unwrap();
        assert_eq!(map.banks.len(), 1);
        assert_eq!(map.banks[0].start, 0x4000_0000);
        assert_eq!(map.banks[0].end, 0xc000_0000);
    }

    #[test]
    fn compacting_a_compact_blob_changes_only_the_padding() {
        for name in ["virt-1g.dtb", "bcm2711-rpi-4-b.dtb", "juno-r2.dtb"] {
            let blob = fixture(name);
            let once = compact(&blob).unwrap();
            let twice = compact(&once).unwrap();
            assert_eq!(once, twice, "{name}");
            let a = Platform::from_fdt(&Fdt::new(&blob).unwrap()).unwrap();
            let b = Platform::from_fdt(&Fdt::new(&once).unwrap()).unwrap();
            assert_eq!(a, b, "{name}");
            // (The Pi 4's /memory is empty until its firmware fills it in: an error, twice.)
            let ma = MemoryMap::from_fdt(&Fdt::new(&blob).unwrap());
            let mb = MemoryMap::from_fdt(&Fdt::new(&once).unwrap());
            assert_eq!(ma, mb, "{name}");
        }
    }

    #[test]
    fn memreserve_entries_survive() {
        // The Pi 4 DTB carries a /memreserve/ for the firmware's spin tables.
        let blob = fixture("bcm2711-rpi-4-b.dtb");
        let c = compact(&blob).unwrap();
        let ra: Vec<_> = Fdt::new(&blob).unwrap().memory_reservations().collect();
        let rb: Vec<_> = Fdt::new(&c).unwrap().memory_reservations().collect();
        assert_eq!(ra.len(), rb.len());
        for (a, b) in ra.iter().zip(&rb) {
            assert_eq!(a.address(), b.address());
            assert_eq!(a.size(), b.size());
        }
    }

    /// Found by libFuzzer: a DTB whose `/chosen` has a unit address (`chosen@40000000`). The
    /// edit added a second, plain `/chosen` after it, which readers never reach (they take
    /// the first node the path names), so the next kernel lost its command line and initrd.
    #[test]
    fn chosen_with_a_unit_address_is_edited_in_place() {
        let mut blob = fixture("virt-runtime.dtb");
        let at = blob
            .windows(16)
            .position(|w| w == b"memory@40000000\0")
            .unwrap();
        blob[at..at + 6].copy_from_slice(b"chosen");
        let out = edit_chosen(&blob, &[("bootargs", Some(b"x\0"))]).unwrap();
        let fdt = Fdt::new(&out).unwrap();
        assert_eq!(fdt.chosen().bootargs(), Some("x"));
        let chosen_nodes = fdt
            .find_node("/")
            .unwrap()
            .children()
            .filter(|n| n.name.split('@').next() == Some("chosen"))
            .count();
        let before = Fdt::new(&compact(&blob).unwrap())
            .unwrap()
            .find_node("/")
            .unwrap()
            .children()
            .filter(|n| n.name.split('@').next() == Some("chosen"))
            .count();
        assert_eq!(chosen_nodes, before, "no /chosen added");
        assert!(node_is("/chosen@0", "/chosen") && node_is("/cpus/cpu@1", "/cpus/cpu@1"));
        assert!(!node_is("/chosen@0", "/chosen@1") && !node_is("/chosenx", "/chosen"));
        assert!(!node_is("/", "/chosen") && !node_is("/chosen/x", "/chosen"));
    }

    #[test]
    fn chosen_edits_set_replace_and_remove() {
        let blob = fixture("virt-runtime.dtb");
        let start = 0x4800_0000u64.to_be_bytes();
        let end = 0x4810_0000u64.to_be_bytes();
        let out = edit_chosen(
            &blob,
            &[
                ("bootargs", Some(b"console=ttyAMA0 kexec.chain=3\0")),
                ("linux,initrd-start", Some(&start)),
                ("linux,initrd-end", Some(&end)),
                ("kexec,handover-start", None),
            ],
        )
        .unwrap();
        let fdt = Fdt::new(&out).unwrap();
        let p = Platform::from_fdt(&fdt).unwrap();
        assert_eq!(p.bootargs, "console=ttyAMA0 kexec.chain=3");
        assert_eq!(p.initrd, Some(Region::new(0x4800_0000, 0x10_0000)));
        assert_eq!(
            p.console.uart().unwrap().regs.start,
            0x900_0000,
            "the rest is kept"
        );
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(
            chosen.properties().filter(|p| p.name == "bootargs").count(),
            1
        );
        // Removing, and editing a DTB without /chosen.
        let out2 = edit_chosen(
            &out,
            &[("linux,initrd-start", None), ("linux,initrd-end", None)],
        )
        .unwrap();
        assert_eq!(
            Platform::from_fdt(&Fdt::new(&out2).unwrap())
                .unwrap()
                .initrd,
            None
        );
        let juno = fixture("juno-r2.dtb");
        let j = edit_chosen(&juno, &[("bootargs", Some(b"x\0"))]).unwrap();
        assert_eq!(
            Platform::from_fdt(&Fdt::new(&j).unwrap()).unwrap().bootargs,
            "x"
        );
        assert_eq!(
            MemoryMap::from_fdt(&Fdt::new(&j).unwrap()),
            MemoryMap::from_fdt(&Fdt::new(&juno).unwrap())
        );
    }

    #[test]
    fn new_properties_come_before_subnodes() {
        let blob = fixture("virt-1g.dtb");
        let out = edit(
            &blob,
            &[
                Edit {
                    node: "/",
                    prop: "model",
                    value: Some(b"custom\0"),
                },
                Edit {
                    node: "/",
                    prop: "x-new",
                    value: Some(&[1, 2, 3, 4]),
                },
            ],
            &[],
        )
        .unwrap();
        let fdt = Fdt::new(&out).unwrap();
        let root = fdt.find_node("/").unwrap();
        assert_eq!(root.property("model").unwrap().as_str(), Some("custom"));
        assert_eq!(root.property("x-new").unwrap().value, [1, 2, 3, 4]);
        // Every node is still found, and the platform reads as before.
        assert_eq!(
            Platform::from_fdt(&fdt).unwrap().console,
            Platform::from_fdt(&Fdt::new(&blob).unwrap())
                .unwrap()
                .console
        );
        // In the token stream, no property follows the root's first subnode.
        let h = header(&out).unwrap();
        let st = &out[h.off_dt_struct as usize..][..h.size_dt_struct as usize];
        let strings = &out[h.off_dt_strings as usize..][..h.size_dt_strings as usize];
        let mut depth = 0;
        let mut seen_child = false;
        walk(st, strings, |tok, _| match tok {
            FDT_BEGIN_NODE => {
                depth += 1;
                seen_child |= depth == 2;
            }
            FDT_END_NODE => depth -= 1,
            FDT_PROP => assert!(!(depth == 1 && seen_child), "root property after a subnode"),
            _ => {}
        })
        .unwrap();
    }

    #[test]
    fn cpu_properties_and_memreserve() {
        let blob = fixture("bcm2711-rpi-4-b.dtb");
        let v = 0x3b3f_f880u64.to_be_bytes();
        let out = edit(
            &blob,
            &[Edit {
                node: "/cpus/cpu@1",
                prop: "cpu-release-addr",
                value: Some(&v),
            }],
            &[(0x3b3f_f000, 0x1000)],
        )
        .unwrap();
        let p = Platform::from_fdt(&Fdt::new(&out).unwrap()).unwrap();
        assert_eq!(
            p.release_addrs(),
            [Some(0xd8), Some(0x3b3f_f880), Some(0xe8), Some(0xf0)]
        );
        let rsv: Vec<_> = Fdt::new(&out).unwrap().memory_reservations().collect();
        assert_eq!(rsv.len(), 2, "the firmware's page 0 and the new one");
        assert_eq!(rsv[1].address() as u64, 0x3b3f_f000);
        assert_eq!(rsv[1].size(), 0x1000);
    }

    #[test]
    fn bad_blobs_are_named() {
        let blob = fixture("virt-1g.dtb");
        assert_eq!(
            compact(&blob[..20]),
            Err(DtbError::Truncated { need: 40, have: 20 })
        );
        let mut bad = blob.clone();
        bad[0] = 0;
        assert!(matches!(compact(&bad), Err(DtbError::BadMagic(_))));
        let mut cut = blob.clone();
        let h = header(&blob).unwrap();
        // Shrink the structure block so that FDT_END falls outside it.
        cut[36..40].copy_from_slice(&(h.size_dt_struct - 8).to_be_bytes());
        assert!(matches!(
            compact(&cut),
            Err(DtbError::StructTruncated { .. })
        ));
        let mut tok = blob.clone();
        let first = h.off_dt_struct as usize;
        tok[first..first + 4].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            compact(&tok),
            Err(DtbError::BadToken {
                token: 7,
                offset: 0
            })
        );
        assert!(compact(&tok).unwrap_err().to_string().contains("token 0x7"));
    }
}
