//! A dead Linux's memory, as a capture kernel reads it: the ELF core header that kexec-tools
//! writes for `kexec -p` (named in the capture kernel's DTB by `/chosen/linux,elfcorehdr`),
//! the notes its `PT_NOTE` headers point at (one `NT_PRSTATUS` per CPU with the registers at
//! the panic, and `VMCOREINFO`), and, with VMCOREINFO's symbols, sizes and offsets, the printk
//! ring buffer (Linux 5.10 and later: `kernel/printk/printk_ringbuffer.h`).
//!
//! Everything here reads through a [`ReadPhys`] callback and trusts nothing it reads: every
//! count and length is bounded before it is used, and what cannot be read is an error that
//! says what was being read.

use crate::formats::efi::ReadPhys;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use mm::memmap::Region;

/// `EM_AARCH64`.
const EM_AARCH64: u16 = 183;
/// `ET_CORE`.
const ET_CORE: u16 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `NT_PRSTATUS`.
pub const NT_PRSTATUS: u32 = 1;
/// The type of the VMCOREINFO note (Linux writes it with type 0, name `VMCOREINFO`).
pub const NT_VMCOREINFO: u32 = 0;
/// At most this many program headers (kexec-tools writes one per CPU and per RAM range).
const MAX_PHDRS: usize = 4096;
/// At most this much note data is read from one `PT_NOTE`.
pub const MAX_NOTE: u64 = 1 << 20;

/// Why the core header cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// Shorter than what it declares.
    Truncated(&'static str),
    /// Not a little-endian 64-bit ELF core file for AArch64.
    NotCore(&'static str),
    /// More program headers than [`MAX_PHDRS`].
    TooManyHeaders(usize),
    /// A note runs past its segment.
    BadNote {
        /// Offset of the note inside its segment.
        at: usize,
    },
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "ELF core header: {what} cut off"),
            Self::NotCore(why) => write!(f, "ELF core header: not an AArch64 core file ({why})"),
            Self::TooManyHeaders(n) => {
                write!(
                    f,
                    "ELF core header: {n} program headers (at most {MAX_PHDRS})"
                )
            }
            Self::BadNote { at } => write!(f, "ELF note at offset {at:#x} runs past its segment"),
        }
    }
}

/// One `PT_LOAD`: a range of the dead kernel's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Physical address.
    pub paddr: u64,
    /// Kernel virtual address (0 when the range has none).
    pub vaddr: u64,
    /// Bytes.
    pub size: u64,
}

/// What the core header says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreHeader {
    /// The memory ranges.
    pub loads: Vec<Load>,
    /// Where the notes are (physical ranges, each at most [`MAX_NOTE`] read).
    pub notes: Vec<Region>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Parses an ELF64 core header (the whole of `linux,elfcorehdr`).
pub fn parse_core_header(b: &[u8]) -> Result<CoreHeader, CoreError> {
    if b.len() < 64 {
        return Err(CoreError::Truncated("ELF header"));
    }
    if b[..4] != *b"\x7fELF" {
        return Err(CoreError::NotCore("no ELF magic"));
    }
    if b[4] != 2 || b[5] != 1 {
        return Err(CoreError::NotCore("not 64-bit little-endian"));
    }
    if u16_at(b, 16) != ET_CORE {
        return Err(CoreError::NotCore("e_type is not ET_CORE"));
    }
    if u16_at(b, 18) != EM_AARCH64 {
        return Err(CoreError::NotCore("e_machine is not AArch64"));
    }
    let (phoff, phentsize, phnum) = (
        u64_at(b, 32),
        u16_at(b, 54) as usize,
        u16_at(b, 56) as usize,
    );
    if phnum > MAX_PHDRS {
        return Err(CoreError::TooManyHeaders(phnum));
    }
    if phentsize < 56 {
        return Err(CoreError::NotCore("program headers shorter than 56 bytes"));
    }
    let table = usize::try_from(phoff)
        .ok()
        .and_then(|o| b.get(o..)?.get(..phnum * phentsize))
        .ok_or(CoreError::Truncated("program header table"))?;
    let mut h = CoreHeader::default();
    for ph in table.chunks_exact(phentsize) {
        let (ty, vaddr, paddr, filesz) = (
            u32_at(ph, 0),
            u64_at(ph, 16),
            u64_at(ph, 24),
            u64_at(ph, 32),
        );
        match ty {
            PT_LOAD if filesz > 0 => h.loads.push(Load {
                paddr,
                vaddr,
                size: filesz,
            }),
            PT_NOTE if filesz > 0 => h.notes.push(Region::new(paddr, filesz.min(MAX_NOTE))),
            _ => {}
        }
    }
    Ok(h)
}

/// Writes an ELF64 AArch64 core header whose program headers name `notes` (`PT_NOTE`) and
/// `loads` (`PT_LOAD`), in the shape kexec-tools writes for a crash kernel: the header that
/// [`parse_core_header`] reads.
pub fn write_core_header(notes: &[Region], loads: &[Load]) -> Vec<u8> {
    let phnum = notes.len() + loads.len();
    let mut b = alloc::vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // ELFDATA2LSB
    b[6] = 1; // EV_CURRENT
    b[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
    b[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    b[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let headers = notes
        .iter()
        .map(|n| (PT_NOTE, 0, n.start, n.size()))
        .chain(loads.iter().map(|l| (PT_LOAD, l.vaddr, l.paddr, l.size)));
    for (ty, vaddr, paddr, size) in headers {
        let mut ph = [0u8; 56];
        ph[0..4].copy_from_slice(&ty.to_le_bytes());
        // p_offset: in a crash kernel's header the physical address again (Linux's
        // /proc/vmcore reads the old memory at p_offset).
        ph[8..16].copy_from_slice(&paddr.to_le_bytes());
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&paddr.to_le_bytes());
        ph[32..40].copy_from_slice(&size.to_le_bytes()); // p_filesz
        ph[40..48].copy_from_slice(&size.to_le_bytes()); // p_memsz
        b.extend_from_slice(&ph);
    }
    b
}

/// One ELF note as [`notes`] reads it: the name NUL-terminated, name and data padded to 4.
pub fn write_note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    b.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(name);
    b.push(0);
    b.resize(b.len().next_multiple_of(4), 0);
    b.extend_from_slice(desc);
    b.resize(b.len().next_multiple_of(4), 0);
    b
}

/// One ELF note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// Its name without the trailing NUL (`CORE`, `VMCOREINFO`, ...).
    pub name: &'a [u8],
    /// Its type.
    pub ty: u32,
    /// Its data.
    pub desc: &'a [u8],
}

/// The notes in a `PT_NOTE` segment's bytes. A note with zero sizes ends the list (Linux's
/// per-CPU note buffers are zero-padded).
pub fn notes(b: &[u8]) -> Result<Vec<Note<'_>>, CoreError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 12 <= b.len() {
        let (namesz, descsz, ty) = (
            u32_at(b, at) as usize,
            u32_at(b, at + 4) as usize,
            u32_at(b, at + 8),
        );
        if namesz == 0 && descsz == 0 {
            break;
        }
        let name_at = at + 12;
        let desc_at = name_at
            .checked_add(namesz.next_multiple_of(4))
            .ok_or(CoreError::BadNote { at })?;
        let end = desc_at
            .checked_add(descsz.next_multiple_of(4))
            .ok_or(CoreError::BadNote { at })?;
        if desc_at + descsz > b.len() {
            return Err(CoreError::BadNote { at });
        }
        let name = &b[name_at..name_at + namesz];
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        out.push(Note {
            name,
            ty,
            desc: &b[desc_at..desc_at + descsz],
        });
        at = end;
    }
    Ok(out)
}

/// The registers of one CPU at the panic, from its `NT_PRSTATUS` (`struct elf_prstatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrStatus {
    /// The task's PID (`pr_pid`).
    pub pid: u32,
    /// x0..x30.
    pub x: [u64; 31],
    /// SP.
    pub sp: u64,
    /// PC.
    pub pc: u64,
    /// PSTATE.
    pub pstate: u64,
}

/// `struct elf_prstatus` on arm64: `pr_pid` at 32, `pr_reg` (34 registers) at 112.
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REGS: usize = 112;

impl PrStatus {
    /// Reads an `NT_PRSTATUS` note's data.
    pub fn parse(desc: &[u8]) -> Option<PrStatus> {
        let regs = desc.get(PRSTATUS_REGS..PRSTATUS_REGS + 34 * 8)?;
        let r = |i: usize| u64_at(regs, 8 * i);
        Some(PrStatus {
            pid: u32_at(desc, PRSTATUS_PID),
            x: core::array::from_fn(r),
            sp: r(31),
            pc: r(32),
            pstate: r(33),
        })
    }
}

/// VMCOREINFO: `KEY=VALUE` lines (`SYMBOL(prb)=ffff...`, `OFFSET(printk_info.seq)=0`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    text: String,
}

impl VmcoreInfo {
    /// From the note's data (trailing NULs ignored; anything not UTF-8 is dropped).
    pub fn parse(desc: &[u8]) -> Self {
        let end = desc.iter().position(|&c| c == 0).unwrap_or(desc.len());
        VmcoreInfo {
            text: String::from_utf8_lossy(&desc[..end]).into_owned(),
        }
    }

    /// The value of `key`, as written.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }

    fn num(&self, key: &str, hex: bool) -> Option<u64> {
        let v = self.get(key)?.trim();
        let (digits, radix) = match v.strip_prefix("0x") {
            Some(h) => (h, 16),
            None if hex => (v, 16),
            None => (v, 10),
        };
        // NUMBER()s may be negative (written in decimal): keep their two's complement.
        if let Some(neg) = digits.strip_prefix('-') {
            return u64::from_str_radix(neg, radix)
                .ok()
                .map(|n| n.wrapping_neg());
        }
        u64::from_str_radix(digits, radix).ok()
    }

    /// `SYMBOL(name)` (hex).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.num(&alloc::format!("SYMBOL({name})"), true)
    }
    /// `SIZE(name)` (decimal).
    pub fn size(&self, name: &str) -> Option<u64> {
        self.num(&alloc::format!("SIZE({name})"), false)
    }
    /// `OFFSET(name)` (decimal).
    pub fn offset(&self, name: &str) -> Option<u64> {
        self.num(&alloc::format!("OFFSET({name})"), false)
    }
    /// `NUMBER(name)` (decimal, or hex with `0x`).
    pub fn number(&self, name: &str) -> Option<u64> {
        self.num(&alloc::format!("NUMBER({name})"), false)
    }
    /// `OSRELEASE`.
    pub fn release(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }
}

/// Why the log cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    /// VMCOREINFO lacks an entry the walk needs (a Linux older than 5.10, or a layout this
    /// kernel does not know).
    Missing(String),
    /// A kernel address that is in neither the linear map nor the kernel image.
    Untranslatable(u64),
    /// Memory that could not be read (outside RAM, or outside the dead kernel's ranges).
    Unreadable {
        /// What was being read.
        what: &'static str,
        /// Its kernel virtual address.
        va: u64,
    },
    /// A ring-buffer size past what any Linux configures.
    Implausible {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(k) => write!(
                f,
                "VMCOREINFO has no {k}: not a printk ring buffer this kernel can read (Linux 5.10 or later)"
            ),
            Self::Untranslatable(va) => write!(f, "cannot translate kernel address {va:#x}"),
            Self::Unreadable { what, va } => write!(f, "cannot read {what} at {va:#x}"),
            Self::Implausible { what, value } => write!(f, "implausible {what}: {value}"),
        }
    }
}

/// arm64 kernel virtual to physical, from VMCOREINFO (`arch/arm64/kernel/crash_core.c`):
/// the linear map from `PAGE_OFFSET` = -(1 << VA_BITS) up to `PAGE_END` = -(1 << (VA_BITS -
/// 1)) is `PHYS_OFFSET` onwards; the kernel image above it is `va - kimage_voffset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translate {
    /// `NUMBER(VA_BITS)`.
    pub va_bits: u32,
    /// `NUMBER(kimage_voffset)`.
    pub kimage_voffset: u64,
    /// `NUMBER(PHYS_OFFSET)`.
    pub phys_offset: u64,
}

impl Translate {
    /// From VMCOREINFO.
    pub fn from_info(info: &VmcoreInfo) -> Result<Self, LogError> {
        let need = |k: &str| {
            info.number(k)
                .ok_or_else(|| LogError::Missing(alloc::format!("NUMBER({k})")))
        };
        let va_bits = need("VA_BITS")?;
        if !(36..=52).contains(&va_bits) {
            return Err(LogError::Implausible {
                what: "VA_BITS",
                value: va_bits,
            });
        }
        Ok(Translate {
            va_bits: va_bits as u32,
            kimage_voffset: need("kimage_voffset")?,
            phys_offset: need("PHYS_OFFSET")?,
        })
    }

    /// The physical address of `va`.
    pub fn pa(&self, va: u64) -> Option<u64> {
        let page_offset = (1u64 << self.va_bits).wrapping_neg();
        let page_end = (1u64 << (self.va_bits - 1)).wrapping_neg();
        if va >= page_end {
            Some(va.wrapping_sub(self.kimage_voffset))
        } else if va >= page_offset {
            Some(va - page_offset + self.phys_offset)
        } else {
            None
        }
    }
}

/// One record of the dead kernel's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Nanoseconds since that kernel's boot.
    pub ts_nsec: u64,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
}

impl fmt::Display for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:5}.{:06}] {}",
            self.ts_nsec / 1_000_000_000,
            self.ts_nsec % 1_000_000_000 / 1000,
            self.text
        )
    }
}

/// Most descriptors any Linux's ring has (`count_bits`; `log_buf_len` up to 2^31 bytes gives
/// 2^26 descriptors at most).
const MAX_COUNT_BITS: u64 = 26;
/// Largest text data ring (2^31 bytes: `log_buf_len`'s limit).
const MAX_DATA_BITS: u64 = 31;
/// Top two bits of a descriptor's state: its state; the rest its ID.
const DESC_FLAGS_SHIFT: u32 = 62;
const DESC_ID_MASK: u64 = (1 << DESC_FLAGS_SHIFT) - 1;
const DESC_COMMITTED: u64 = 1;
const DESC_FINALIZED: u64 = 2;

/// Kernel virtual memory of the dead kernel, through [`Translate`].
struct Reader<'r, 'a> {
    t: Translate,
    read: &'r mut ReadPhys<'a>,
}

impl Reader<'_, '_> {
    fn bytes(&mut self, what: &'static str, va: u64, buf: &mut [u8]) -> Result<(), LogError> {
        let pa = self.t.pa(va).ok_or(LogError::Untranslatable(va))?;
        if (self.read)(pa, buf) {
            Ok(())
        } else {
            Err(LogError::Unreadable { what, va })
        }
    }

    fn word(&mut self, what: &'static str, va: u64) -> Result<u64, LogError> {
        let mut b = [0u8; 8];
        self.bytes(what, va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Reads the dead kernel's printk ring buffer, oldest record first. Records being written
/// at the panic (reserved), or already reused, are skipped, as `vmcore-dmesg` skips them.
pub fn printk_log(info: &VmcoreInfo, mut read: ReadPhys<'_>) -> Result<Vec<LogRecord>, LogError> {
    let mut mem = Reader {
        t: Translate::from_info(info)?,
        read: &mut read,
    };
    let ring = Ring::locate(info, &mut mem)?;
    let mut out = Vec::new();
    let mut id = ring.tail & DESC_ID_MASK;
    for _ in 0..ring.count {
        if let Some(r) = ring.record(&mut mem, id)? {
            out.push(r);
        }
        if id == ring.head & DESC_ID_MASK {
            break;
        }
        id = (id + 1) & DESC_ID_MASK;
    }
    out.sort_by_key(|r| r.seq);
    Ok(out)
}

/// Where the dead kernel's printk ring is, and its layout, from VMCOREINFO.
struct Ring {
    /// The descriptor array, the info array, the text data ring (VAs).
    descs: u64,
    infos: u64,
    data: u64,
    /// Descriptors (a power of two) and the text ring's size in bytes (too).
    count: u64,
    data_size: u64,
    /// The oldest and newest descriptor IDs.
    tail: u64,
    head: u64,
    /// `sizeof(struct prb_desc)`, `sizeof(struct printk_info)`.
    desc_size: u64,
    info_size: u64,
    /// Offsets: a descriptor's state word and text block position, a position's begin and
    /// next, an info's sequence number, time stamp and text length.
    state_var: u64,
    text_blk_lpos: u64,
    begin: u64,
    next: u64,
    seq: u64,
    ts_nsec: u64,
    text_len: u64,
}

impl Ring {
    /// Reads `prb` and the two rings' headers; checks their sizes are plausible.
    fn locate(info: &VmcoreInfo, mem: &mut Reader<'_, '_>) -> Result<Self, LogError> {
        let missing = |k: String| LogError::Missing(k);
        let sym = |n: &str| {
            info.symbol(n)
                .ok_or_else(|| missing(alloc::format!("SYMBOL({n})")))
        };
        let off = |n: &str| {
            info.offset(n)
                .ok_or_else(|| missing(alloc::format!("OFFSET({n})")))
        };
        let size = |n: &str| {
            info.size(n)
                .ok_or_else(|| missing(alloc::format!("SIZE({n})")))
        };
        let counter = off("atomic_long_t.counter")?;
        // `prb` is a pointer to the ring in use (the static one, or one log_buf_len= allocated).
        let rb = mem.word("prb", sym("prb")?)?;
        let desc_ring = rb + off("printk_ringbuffer.desc_ring")?;
        let data_ring = rb + off("printk_ringbuffer.text_data_ring")?;
        let count_bits = mem.word(
            "desc_ring.count_bits",
            desc_ring + off("prb_desc_ring.count_bits")?,
        )? & 0xffff_ffff;
        if count_bits > MAX_COUNT_BITS {
            return Err(LogError::Implausible {
                what: "descriptor count_bits",
                value: count_bits,
            });
        }
        let size_bits = mem.word(
            "text_data_ring.size_bits",
            data_ring + off("prb_data_ring.size_bits")?,
        )? & 0xffff_ffff;
        if !(4..=MAX_DATA_BITS).contains(&size_bits) {
            return Err(LogError::Implausible {
                what: "text data ring size_bits",
                value: size_bits,
            });
        }
        Ok(Ring {
            descs: mem.word("desc_ring.descs", desc_ring + off("prb_desc_ring.descs")?)?,
            infos: mem.word("desc_ring.infos", desc_ring + off("prb_desc_ring.infos")?)?,
            data: mem.word(
                "text_data_ring.data",
                data_ring + off("prb_data_ring.data")?,
            )?,
            count: 1 << count_bits,
            data_size: 1 << size_bits,
            tail: mem.word(
                "desc_ring.tail_id",
                desc_ring + off("prb_desc_ring.tail_id")? + counter,
            )?,
            head: mem.word(
                "desc_ring.head_id",
                desc_ring + off("prb_desc_ring.head_id")? + counter,
            )?,
            desc_size: size("prb_desc")?,
            info_size: size("printk_info")?,
            state_var: off("prb_desc.state_var")? + counter,
            text_blk_lpos: off("prb_desc.text_blk_lpos")?,
            begin: off("prb_data_blk_lpos.begin")?,
            next: off("prb_data_blk_lpos.next")?,
            seq: off("printk_info.seq")?,
            ts_nsec: off("printk_info.ts_nsec")?,
            text_len: off("printk_info.text_len")?,
        })
    }

    /// The record descriptor `id` holds, if it is committed or finalized and still `id`'s.
    fn record(&self, mem: &mut Reader<'_, '_>, id: u64) -> Result<Option<LogRecord>, LogError> {
        let index = id & (self.count - 1);
        let desc = self.descs + index * self.desc_size;
        let sv = mem.word("a descriptor's state", desc + self.state_var)?;
        let state = sv >> DESC_FLAGS_SHIFT;
        if sv & DESC_ID_MASK != id || !(state == DESC_COMMITTED || state == DESC_FINALIZED) {
            return Ok(None);
        }
        let info = self.infos + index * self.info_size;
        let seq = mem.word("printk_info.seq", info + self.seq)?;
        let ts_nsec = mem.word("printk_info.ts_nsec", info + self.ts_nsec)?;
        let text_len = mem.word("printk_info.text_len", info + self.text_len)? & 0xffff;
        let lpos = desc + self.text_blk_lpos;
        let begin = mem.word("text_blk_lpos.begin", lpos + self.begin)?;
        let next = mem.word("text_blk_lpos.next", lpos + self.next)?;
        let text = self.text(mem, begin, next, text_len)?;
        Ok(Some(LogRecord { seq, ts_nsec, text }))
    }

    /// The text of the data block at logical positions `begin..next`, at most `text_len`
    /// bytes.
    fn text(
        &self,
        mem: &mut Reader<'_, '_>,
        begin: u64,
        next: u64,
        text_len: u64,
    ) -> Result<String, LogError> {
        if begin & 1 != 0 || next & 1 != 0 {
            // Data-less records: a failed reservation, or an empty line.
            return Ok(String::new());
        }
        let size_bits = self.data_size.trailing_zeros();
        let wraps = |lpos: u64| lpos >> size_bits;
        let (at, len) = if wraps(begin) == wraps(next) {
            (begin & (self.data_size - 1), next.wrapping_sub(begin))
        } else if wraps(begin.wrapping_add(self.data_size)) == wraps(next) {
            // The block wrapped: it was written at the start of the ring.
            (0, next & (self.data_size - 1))
        } else {
            (0, 0)
        };
        // Each block starts with its descriptor's ID (an unsigned long).
        let len = len.saturating_sub(8).min(text_len).min(self.data_size);
        let mut buf = alloc::vec![0u8; len as usize];
        if len > 0 {
            mem.bytes("record text", self.data + at + 8, &mut buf)?;
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn core_header_loads_and_notes() {
        let load = Load {
            paddr: 0x4000_0000,
            vaddr: 0xffff_0000_0000_0000,
            size: 1 << 30,
        };
        let b = write_core_header(&[Region::new(0x4100_0000, 0x400)], &[load]);
        let h = parse_core_header(&b).unwrap();
        assert_eq!(h.notes, [Region::new(0x4100_0000, 0x400)]);
        assert_eq!(
            h.loads,
            [Load {
                paddr: 0x4000_0000,
                vaddr: 0xffff_0000_0000_0000,
                size: 1 << 30
            }]
        );
        assert_eq!(
            parse_core_header(&b[..100]),
            Err(CoreError::Truncated("program header table"))
        );
        let mut x86 = b.clone();
        x86[18] = 62;
        assert!(matches!(
            parse_core_header(&x86),
            Err(CoreError::NotCore(_))
        ));
        assert!(matches!(
            parse_core_header(b"\x7fELF"),
            Err(CoreError::Truncated(_))
        ));
    }

    #[test]
    fn notes_and_registers() {
        let mut pr = vec![0u8; PRSTATUS_REGS + 34 * 8];
        pr[PRSTATUS_PID..PRSTATUS_PID + 4].copy_from_slice(&77u32.to_le_bytes());
        for i in 0..34 {
            pr[PRSTATUS_REGS + 8 * i..][..8].copy_from_slice(&(0x1000 + i as u64).to_le_bytes());
        }
        let mut seg = write_note(b"CORE", NT_PRSTATUS, &pr);
        seg.extend(write_note(
            b"VMCOREINFO",
            NT_VMCOREINFO,
            b"OSRELEASE=6.12.0\nPAGESIZE=4096\n",
        ));
        seg.extend([0u8; 24]);
        let n = notes(&seg).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].name, b"CORE");
        let p = PrStatus::parse(n[0].desc).unwrap();
        assert_eq!(
            (p.pid, p.x[30], p.sp, p.pc),
            (77, 0x1000 + 30, 0x1000 + 31, 0x1000 + 32)
        );
        assert_eq!(VmcoreInfo::parse(n[1].desc).release(), Some("6.12.0"));
        assert_eq!(notes(&seg[..30]), Err(CoreError::BadNote { at: 0 }));
    }

    /// A dead kernel's memory: a ring buffer of 4 descriptors and 64 data bytes with three
    /// records, the last one wrapped, one slot reserved (being written), laid out as the
    /// VMCOREINFO below says.
    #[test]
    fn printk_ring_buffer_walk() {
        const PHYS: u64 = 0x4000_0000;
        const LINEAR: u64 = 0xffff_0000_0000_0000; // VA_BITS = 48
        let va = |off: u64| LINEAR + off;
        let mut mem = vec![0u8; 0x4000];
        fn put64(mem: &mut [u8], off: u64, v: u64) {
            mem[off as usize..][..8].copy_from_slice(&v.to_le_bytes());
        }
        let mut put = |off: u64, v: u64| put64(&mut mem, off, v);
        // prb (the pointer) at 0x100 -> the ring at 0x200.
        put(0x100, va(0x200));
        // desc_ring at ring+0: count_bits, descs, infos, head_id, tail_id.
        put(0x200, 2);
        put(0x208, va(0x1000));
        put(0x210, va(0x2000));
        put(0x218, 6); // head_id
        put(0x220, 3); // tail_id
                       // text_data_ring at ring+0x40: size_bits, data.
        put(0x240, 6);
        put(0x248, va(0x3000));
        // Descriptors (32 bytes: state_var, begin, next) and infos (32 bytes: seq, ts, len).
        let rec = [
            (
                3u64,
                DESC_FINALIZED,
                24u64,
                40u64,
                0u64,
                1_500_000u64,
                b"abcdefgh".as_slice(),
            ),
            (
                4,
                DESC_FINALIZED,
                40,
                60,
                1,
                2_000_000_000,
                b"hello, world".as_slice(),
            ),
            (5, 0, 60, 64 + 16, 2, 0, b"".as_slice()), // reserved: skipped
            // Wrapped: begins near the end of one lap, written at the start of the next.
            (
                6,
                DESC_COMMITTED,
                64 + 56,
                128 + 16,
                3,
                3_000_001_000,
                b"wrapped!".as_slice(),
            ),
        ];
        let mut mem2 = mem.clone();
        for &(id, state, begin, next, seq, ts, text) in &rec {
            let i = id & 3;
            put64(&mut mem2, 0x1000 + 32 * i, id | (state << DESC_FLAGS_SHIFT));
            put64(&mut mem2, 0x1000 + 32 * i + 8, begin);
            put64(&mut mem2, 0x1000 + 32 * i + 16, next);
            put64(&mut mem2, 0x2000 + 32 * i, seq);
            put64(&mut mem2, 0x2000 + 32 * i + 8, ts);
            put64(&mut mem2, 0x2000 + 32 * i + 16, text.len() as u64);
            let at = if begin >> 6 == next >> 6 {
                begin & 63
            } else {
                0
            };
            put64(&mut mem2, 0x3000 + at, id);
            mem2[(0x3000 + at + 8) as usize..][..text.len()].copy_from_slice(text);
        }
        let info = VmcoreInfo::parse(
            alloc::format!(
                "OSRELEASE=6.12.0\nSYMBOL(prb)={:x}\nSIZE(prb_desc)=32\nSIZE(printk_info)=32\n\
                 OFFSET(printk_ringbuffer.desc_ring)=0\nOFFSET(printk_ringbuffer.text_data_ring)=64\n\
                 OFFSET(prb_desc_ring.count_bits)=0\nOFFSET(prb_desc_ring.descs)=8\n\
                 OFFSET(prb_desc_ring.infos)=16\nOFFSET(prb_desc_ring.head_id)=24\n\
                 OFFSET(prb_desc_ring.tail_id)=32\nOFFSET(prb_desc.state_var)=0\n\
                 OFFSET(prb_desc.text_blk_lpos)=8\nOFFSET(prb_data_blk_lpos.begin)=0\n\
                 OFFSET(prb_data_blk_lpos.next)=8\nOFFSET(printk_info.seq)=0\n\
                 OFFSET(printk_info.ts_nsec)=8\nOFFSET(printk_info.text_len)=16\n\
                 OFFSET(prb_data_ring.size_bits)=0\nOFFSET(prb_data_ring.data)=8\n\
                 OFFSET(atomic_long_t.counter)=0\nNUMBER(VA_BITS)=48\n\
                 NUMBER(kimage_voffset)=0xffff7fffc0000000\nNUMBER(PHYS_OFFSET)=0x{PHYS:x}\n",
                va(0x100)
            )
            .as_bytes(),
        );
        let mut read = |pa: u64, buf: &mut [u8]| {
            let Some(off) = pa.checked_sub(PHYS) else {
                return false;
            };
            match mem2.get(off as usize..).and_then(|m| m.get(..buf.len())) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        };
        let log = printk_log(&info, &mut read).unwrap();
        let lines: Vec<String> = log.iter().map(|r| alloc::format!("{r}")).collect();
        assert_eq!(
            lines,
            [
                "[    0.001500] abcdefgh",
                "[    2.000000] hello, world",
                "[    3.000001] wrapped!"
            ]
        );
        // Without the ring's symbol: a named gap; a pointer outside memory: unreadable.
        let old = VmcoreInfo::parse(b"OSRELEASE=4.19\nNUMBER(VA_BITS)=48\nNUMBER(kimage_voffset)=0\nNUMBER(PHYS_OFFSET)=0\nOFFSET(atomic_long_t.counter)=0\n");
        assert_eq!(
            printk_log(&old, &mut read),
            Err(LogError::Missing("SYMBOL(prb)".into()))
        );
        let t = Translate::from_info(&info).unwrap();
        assert_eq!(t.pa(va(0x10)), Some(PHYS + 0x10));
        assert_eq!(
            t.pa(0xffff_8000_1000_0000),
            Some(0xffff_8000_1000_0000u64.wrapping_sub(0xffff_7fff_c000_0000))
        );
        assert_eq!(t.pa(0x1234), None);
    }
}
