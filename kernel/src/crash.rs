//! This kernel as a crash (capture) kernel: started by a panicking Linux's `kexec -p`, with
//! `/chosen/linux,elfcorehdr` naming the ELF core header and `linux,usable-memory-range` its
//! own RAM (the memory map reserves everything else, `mm::memmap`). At boot it reads the
//! dead kernel's notes and printk ring buffer (`kernel::vmcore`) and prints its last log
//! lines, the panic message and each CPU's registers; `dmesg` and `vmcore` show them again.
//! Nothing of the crashed kernel's memory is written.

use crate::{memory, println};
use alloc::string::String;
use alloc::vec::Vec;
use kernel::vmcore::{self, CoreHeader, LogRecord, PrStatus, VmcoreInfo};
use mm::memmap::Region;
use spin::Once;

/// What was read at boot.
struct Capture {
    header: Region,
    core: CoreHeader,
    cpus: Vec<PrStatus>,
    info: Option<VmcoreInfo>,
    log: Result<Vec<LogRecord>, String>,
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
        Some(i) => vmcore::printk_log(i, &mut read_ram).map_err(|e| alloc::format!("{e}")),
        None => Err("no VMCOREINFO note".into()),
    };
    let c = CAPTURE.call_once(|| Capture {
        header: hdr,
        core,
        cpus,
        info,
        log,
    });
    println!(
        "crash: capture kernel for Linux {}: ELF core header at {}, {} memory ranges ({} MiB), {} CPUs' registers",
        c.info.as_ref().and_then(VmcoreInfo::release).unwrap_or("?"),
        c.header,
        c.core.loads.len(),
        c.core.loads.iter().map(|l| l.size).sum::<u64>() >> 20,
        c.cpus.len()
    );
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
            if let Some(p) = log
                .iter()
                .rev()
                .find(|r| r.text.contains("Kernel panic - not syncing"))
            {
                println!("crash: panic: {}", p.text);
            }
        }
        Err(e) => println!("crash: cannot read the dead kernel's log: {e}"),
    }
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
