//! This kernel as a crash (capture) kernel: started by a panicking Linux's `kexec -p` (or its
//! own, [`super::crash`]), with `/chosen/linux,elfcorehdr` naming the ELF core header and
//! `linux,usable-memory-range` its own RAM (the memory map reserves everything else,
//! `mm::memmap`). At boot it reads the dead kernel's notes and printk ring buffer
//! (`kernel::formats::vmcore`) and prints its last log lines, the panic message and each
//! CPU's registers; `dmesg` and `vmcore` show them again. Nothing of the crashed kernel's
//! memory is written.

use crate::{memory, println};
use alloc::string::String;
use alloc::vec::Vec;
use kernel::formats::vmcore::{self, CoreHeader, PrStatus, VmcoreInfo};
use mm::memmap::Region;
use spin::Once;

/// What was read at boot.
struct Capture {
    header: Region,
    core: CoreHeader,
    cpus: Vec<PrStatus>,
    info: Option<VmcoreInfo>,
    /// The dead kernel's log, a line each.
    log: Result<Vec<String>, String>,
}

static CAPTURE: Once<Capture> = Once::new();

/// How many of the dead kernel's last log lines the boot report shows.
const TAIL: usize = 20;

/// Reads `buf.len()` bytes at `pa` if they lie in a RAM bank (all of which the linear map
/// covers, the crashed kernel's memory included).
fn read_ram(pa: u64, buf: &mut [u8]) -> bool {
    let Some(map) = memory::memory_map() else {
        return false;
    };
    let Some(end) = pa.checked_add(buf.len() as u64) else {
        return false;
    };
    let r = Region { start: pa, end };
    let mapped = map.banks.iter().any(|b| b.contains(&r))
        && !map
            .reserved
            .iter()
            .any(|x| x.kind == mm::memmap::ReservedKind::NoMap && x.region.overlaps(&r));
    if !mapped {
        return false;
    }
    // SAFETY: RAM in the linear map (checked above) that nothing writes: the crashed
    // kernel's memory and its notes are reserved, never allocated.
    buf.copy_from_slice(unsafe { memory::phys_slice(r) });
    true
}

/// At boot: if this kernel is a crash kernel, reads and reports what the crashed kernel
/// left. Prints `crash:` lines; never fails the boot.
pub fn report_at_boot() {
    let Some(hdr) = memory::memory_map().and_then(|m| m.elfcorehdr) else {
        return;
    };
    let mut bytes = alloc::vec![0u8; hdr.size().min(1 << 20) as usize];
    if !read_ram(hdr.start, &mut bytes) {
        return println!("crash: cannot read the ELF core header at {hdr}: not in RAM");
    }
    let core = match vmcore::parse_core_header(&bytes) {
        Ok(c) => c,
        Err(e) => return println!("crash: {e} (at {hdr}); no dump to show"),
    };
    let (cpus, info) = read_notes(&core);
    let log = match &info {
        Some(i) if i.release().is_some_and(|r| r.starts_with("hobby-")) => hobby_log(i),
        Some(i) => vmcore::printk_log(i, &mut read_ram)
            .map(|recs| recs.iter().map(|r| alloc::format!("{r}")).collect())
            .map_err(|e| alloc::format!("{e}")),
        None => Err("no VMCOREINFO note".into()),
    };
    let c = CAPTURE.call_once(|| Capture {
        header: hdr,
        core,
        cpus,
        info,
        log,
    });
    report_dump(c);
    match &c.log {
        Ok(log) => report_log(log),
        Err(e) => println!("crash: cannot read the dead kernel's log: {e}"),
    }
}

/// Each CPU's registers and the VMCOREINFO, from the notes the header names. A note
/// segment that cannot be read is named and passed over.
fn read_notes(core: &CoreHeader) -> (Vec<PrStatus>, Option<VmcoreInfo>) {
    let mut cpus = Vec::new();
    let mut info = None;
    for n in &core.notes {
        let mut seg = alloc::vec![0u8; n.size() as usize];
        if !read_ram(n.start, &mut seg) {
            println!("crash: cannot read the notes at {n}");
            continue;
        }
        match vmcore::notes(&seg) {
            Ok(notes) => {
                for note in notes {
                    match (note.name, note.ty) {
                        (b"CORE", vmcore::NT_PRSTATUS) => cpus.extend(PrStatus::parse(note.desc)),
                        (b"VMCOREINFO", _) => info = Some(VmcoreInfo::parse(note.desc)),
                        _ => {}
                    }
                }
            }
            Err(e) => println!("crash: notes at {n}: {e}"),
        }
    }
    (cpus, info)
}

/// The `crash: capture kernel for ...` line, ranges the header gets wrong, each CPU's
/// registers.
fn report_dump(c: &Capture) {
    let release = c.info.as_ref().and_then(VmcoreInfo::release).unwrap_or("?");
    let who = match release.strip_prefix("hobby-") {
        Some(v) => alloc::format!("this kernel {v}"),
        None => alloc::format!("Linux {release}"),
    };
    println!(
        "crash: capture kernel for {who}: ELF core header at {}, {} memory ranges ({} MiB), {} CPUs' registers",
        c.header,
        c.core.loads.len(),
        c.core.loads.iter().fold(0u64, |a, l| a.saturating_add(l.size)) >> 20,
        c.cpus.len()
    );
    // kexec-tools 2.0.26 with Linux 6.1 writes the kernel text's range without its start
    // (no _text in /proc/kallsyms): say so; the log is read through VMCOREINFO anyway.
    let ram = memory::memory_map().map_or(0, |m| m.total_bytes());
    for l in c.core.loads.iter().filter(|l| l.size > ram) {
        println!(
            "crash: the header's range at {:#x} ({} bytes) is larger than RAM: ignored",
            l.paddr, l.size
        );
    }
    for (i, r) in c.cpus.iter().enumerate() {
        println!(
            "crash: cpu{i} pid={} pc={:#x} lr={:#x} sp={:#x}",
            r.pid, r.pc, r.x[30], r.sp
        );
    }
}

/// The dead kernel's last log lines, and its panic message on a line of its own.
fn report_log(log: &[String]) {
    println!(
        "crash: the dead kernel's log: {} records, the last {}:",
        log.len(),
        TAIL.min(log.len())
    );
    for r in &log[log.len().saturating_sub(TAIL)..] {
        println!("crash| {r}");
    }
    let panic = |l: &String| {
        l.contains("Kernel panic - not syncing")
            || l.starts_with("PANIC: ")
            || l.starts_with("EXCEPTION: ")
    };
    if let Some(at) = log.iter().rposition(panic) {
        let p = &log[at];
        // Linux's lines start with their time stamp: the message follows it. This kernel's
        // "PANIC: panicked at FILE:LINE:" has its message on the next line.
        let next = log
            .get(at + 1)
            .filter(|_| p.starts_with("PANIC: ") && p.ends_with(':'));
        let p = &next.map_or(p.clone(), |n| alloc::format!("{p} {n}"));
        let msg = p
            .split_once("] ")
            .filter(|_| p.starts_with('['))
            .map_or(p.as_str(), |(_, t)| t);
        println!("crash: panic: {msg}");
    }
}

/// This kernel's own log ring, as a crashed generation of it named it in VMCOREINFO
/// (`HOBBY_LOG=<pa> <size> <head>`), as lines.
fn hobby_log(info: &VmcoreInfo) -> Result<Vec<String>, String> {
    let v = info
        .get("HOBBY_LOG")
        .ok_or("VMCOREINFO of this kernel without HOBBY_LOG")?;
    let mut w = v.split_whitespace();
    let mut num = |what: &str| -> Result<u64, String> {
        let s = w
            .next()
            .ok_or_else(|| alloc::format!("HOBBY_LOG: no {what}"))?;
        let r = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        };
        r.map_err(|_| alloc::format!("HOBBY_LOG: bad {what} '{s}'"))
    };
    let (pa, size, head) = (num("address")?, num("size")?, num("head")?);
    if size == 0 || size > 16 << 20 {
        return Err(alloc::format!("HOBBY_LOG: implausible size {size}"));
    }
    let mut ring = alloc::vec![0u8; size as usize];
    if !read_ram(pa, &mut ring) {
        return Err(alloc::format!("cannot read the log ring at {pa:#x}"));
    }
    // Oldest first: from head (once the ring has wrapped) round to head.
    let start = if head > size {
        (head % size) as usize
    } else {
        0
    };
    let used = head.min(size) as usize;
    let bytes: Vec<u8> = ring
        .iter()
        .cycle()
        .skip(start)
        .take(used)
        .copied()
        .collect();
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').into())
        .collect();
    if head > size && !lines.is_empty() {
        lines.remove(0); // cut by the wrap
    }
    Ok(lines)
}

/// `dmesg`: the crashed kernel's whole log.
pub fn dmesg() -> Result<(), String> {
    let c = CAPTURE
        .get()
        .ok_or("not a crash kernel: no dead kernel's log")?;
    let log = c.log.as_ref().map_err(Clone::clone)?;
    for r in log {
        println!("{r}");
    }
    Ok(())
}

/// `vmcore`: the crashed kernel's memory ranges and CPUs.
pub fn vmcore() -> Result<(), String> {
    let c = CAPTURE
        .get()
        .ok_or("not a crash kernel: no ELF core header")?;
    for l in &c.core.loads {
        println!(
            "vmcore: load {} vaddr={:#x}",
            Region::new(l.paddr, l.size),
            l.vaddr
        );
    }
    for n in &c.core.notes {
        println!("vmcore: notes {n}");
    }
    for (i, r) in c.cpus.iter().enumerate() {
        println!(
            "vmcore: cpu{i} pid={} pc={:#x} lr={:#x} sp={:#x} pstate={:#x}",
            r.pid, r.pc, r.x[30], r.sp, r.pstate
        );
    }
    Ok(())
}
