//! This kernel as a crash (capture) kernel: started by a panicking Linux's `kexec -p`, with
//! `/chosen/linux,elfcorehdr` naming the ELF core header and `linux,usable-memory-range` its
//! own RAM (the memory map reserves everything else, `mm::memmap`). At boot it reads the
//! dead kernel's notes and printk ring buffer (`kernel::formats::vmcore`) and prints its last log
//! lines, the panic message and each CPU's registers; `dmesg` and `vmcore` show them again.
//! Nothing of the crashed kernel's memory is written.
//!
//! And the other way: with `crashkernel=SIZE` a region is reserved at boot; `kexec -p`
//! loads a crash kernel into it (written in place), and a panic or an unexpected exception
//! stops the other CPUs, writes an ELF core header (this CPU's registers, and a VMCOREINFO
//! note naming the console's log ring) into the region's last page and enters it.

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

/// The region `crashkernel=` reserved, and the runs of it this kernel holds (all of it but
/// what a loaded crash kernel claimed).
static REGION: Once<Region> = Once::new();
static HELD: spin::Mutex<Vec<Region>> = spin::Mutex::new(Vec::new());

/// `crashkernel=SIZE`: reserves SIZE (rounded up to 2 MiB) of contiguous RAM for a crash
/// kernel. Prints one `crash:` line.
pub fn reserve_at_boot() {
    let Some(sys) = crate::SYSTEM.get() else {
        return;
    };
    let size = match sys.cmdline.get_size("crashkernel") {
        None => return,
        Some(Ok(s)) => mm::align_up(s, 2 << 20),
        Some(Err(e)) => return println!("crash: crashkernel=: {e}"),
    };
    match memory::alloc_contiguous(size) {
        Some((pa, _)) => {
            let r = Region::new(pa, size);
            REGION.call_once(|| r);
            HELD.lock().push(r);
            println!(
                "crash: reserved {r} ({} MiB) for a crash kernel (kexec -p)",
                size >> 20
            );
        }
        None => println!(
            "crash: crashkernel={} MiB: no contiguous free memory that large",
            size >> 20
        ),
    }
}

/// The region `crashkernel=` reserved, if any.
pub fn region() -> Option<Region> {
    REGION.get().copied()
}

/// The crash kernel's RAM: the region without its last page.
pub fn usable_part(r: Region) -> Region {
    Region {
        start: r.start,
        end: r.end - mm::PAGE_SIZE,
    }
}

/// The page of the region that receives the ELF core header at a panic.
pub fn header_page(r: Region) -> Region {
    Region::new(r.end - mm::PAGE_SIZE, mm::PAGE_SIZE)
}

/// Gives what this kernel holds of the region back to the allocator, for a load, except
/// the header page: no control page of the load may take it (it is written at the panic).
pub fn release_region() {
    let Some(region) = region() else { return };
    let hdr = header_page(region);
    let mut held = HELD.lock();
    for r in held.drain(..).collect::<Vec<_>>() {
        for part in mm::memmap::subtract(&[r], &[hdr]) {
            memory::FRAMES.free_run(part.start, part.size() / mm::PAGE_SIZE);
        }
        if r.contains(&hdr) {
            held.push(hdr);
        }
    }
}

/// Takes back every free page of the region (after a load claimed what it needs).
pub fn retake_region() {
    let Some(r) = region() else { return };
    let mut held = HELD.lock();
    let mut at = r.start;
    while at < r.end {
        let n = memory::FRAMES.claim(at, (r.end - at) / mm::PAGE_SIZE);
        if n > 0 {
            held.push(Region::new(at, n * mm::PAGE_SIZE));
        }
        at += n.max(1) * mm::PAGE_SIZE;
    }
}

/// `struct elf_prstatus` for arm64: 392 bytes, `pr_pid` at 32, `pr_reg` at 112.
fn prstatus(pid: u32, x: &[u64; 31], sp: u64, pc: u64, pstate: u64) -> [u8; 392] {
    let mut b = [0u8; 392];
    b[32..36].copy_from_slice(&pid.to_le_bytes());
    let regs = x.iter().copied().chain([sp, pc, pstate]);
    for (i, r) in regs.enumerate() {
        b[112 + 8 * i..120 + 8 * i].copy_from_slice(&r.to_le_bytes());
    }
    b
}

/// At a panic or an unexpected exception: if a crash kernel is loaded, hands it the machine
/// with an ELF core header naming this CPU's registers and the console's log ring. Returns
/// only if there is none (or it cannot be taken).
pub fn enter_crash_kernel(x: &[u64; 31], sp: u64, pc: u64, pstate: u64) {
    // Only lock-free printing from here: the panic may have come with the console's lock held.
    use core::fmt::Write;
    let mut out = crate::drivers::console::emergency_print();
    let (Some(r), Some(l)) = (region(), crate::kexec::take_crash()) else {
        return;
    };
    // PSCI CPUs turn off; spin-table CPUs stop in a loop of this kernel; one that does not
    // answer is named and left where it was (the crash kernel does not need it).
    if let Ok(s) = crate::smp::stop_secondaries(None, true) {
        if s.stuck > 0 {
            let _ = writeln!(
                out,
                "crash: going on without {} CPU(s) that did not stop",
                s.stuck
            );
        }
    }
    let Some(map) = memory::memory_map() else {
        return;
    };
    let sys = crate::SYSTEM.get();
    let hdr = header_page(r);
    // The log ring lies in the kernel image (its .bss).
    let (ring, head) = crate::drivers::console::LOG.location();
    let ring_pa = mm::layout::kimage_pa(ring as u64, sys.map_or(0, |s| s.image_pa));
    let info = alloc::format!(
        "OSRELEASE=hobby-{}\nHOBBY_LOG={ring_pa:#x} {} {head}\n",
        env!("CARGO_PKG_VERSION"),
        crate::drivers::console::LOG_SIZE
    );
    let mut notes = vmcore::write_note(
        b"CORE",
        vmcore::NT_PRSTATUS,
        &prstatus(0, x, sp, pc, pstate),
    );
    notes.extend(vmcore::write_note(
        b"VMCOREINFO",
        vmcore::NT_VMCOREINFO,
        info.as_bytes(),
    ));
    const NOTES_AT: u64 = 1024;
    let loads: Vec<vmcore::Load> = mm::memmap::subtract(&map.banks, &[r])
        .iter()
        .map(|b| vmcore::Load {
            paddr: b.start,
            vaddr: mm::layout::phys_to_virt(b.start),
            size: b.size(),
        })
        .collect();
    let header = vmcore::write_core_header(
        &[Region::new(hdr.start + NOTES_AT, notes.len() as u64)],
        &loads,
    );
    if header.len() as u64 > NOTES_AT || NOTES_AT + notes.len() as u64 > mm::PAGE_SIZE {
        let _ = writeln!(out, "crash: the ELF core header does not fit its page");
        return;
    }
    // SAFETY: the header page is the crash region's last page, which this kernel holds and
    // no loaded segment uses (usable_part excludes it).
    let page = unsafe { memory::page_mut(hdr.start) };
    page.fill(0);
    page[..header.len()].copy_from_slice(&header);
    page[NOTES_AT as usize..][..notes.len()].copy_from_slice(&notes);
    crate::arch::clean_inval_dcache(mm::layout::phys_to_virt(hdr.start), mm::PAGE_SIZE);
    let _ = writeln!(
        out,
        "crash: entering the crash kernel, ELF core header at {hdr}"
    );
    crate::kexec::enter(l, 0)
}

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
    match &c.log {
        Ok(log) => {
            println!(
                "crash: the dead kernel's log: {} records, the last {}:",
                log.len(),
                TAIL.min(log.len())
            );
            for r in &log[log.len().saturating_sub(TAIL)..] {
                println!("crash| {r}");
            }
            let panic = |l: &&String| {
                l.contains("Kernel panic - not syncing")
                    || l.starts_with("PANIC: ")
                    || l.starts_with("EXCEPTION: ")
            };
            if let Some(at) = log.iter().rposition(|l| panic(&l)) {
                let p = &log[at];
                // Linux's lines start with their time stamp: the message follows it. This
                // kernel's "PANIC: panicked at FILE:LINE:" has its message on the next line.
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
        Err(e) => println!("crash: cannot read the dead kernel's log: {e}"),
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
