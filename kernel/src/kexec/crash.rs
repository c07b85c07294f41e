//! Crash kexec, the panicking side: with `crashkernel=SIZE` a region is reserved at boot;
//! `kexec -p` loads a crash kernel into it (written in place), and a panic or an unexpected
//! exception stops the other CPUs, writes an ELF core header (this CPU's registers, and a
//! VMCOREINFO note naming the console's log ring) into the region's last page and enters it.
//! (The other side, this kernel as the crash kernel, is [`super::capture`].)

use crate::{memory, println};
use alloc::vec::Vec;
use kernel::formats::vmcore;
use mm::addr::{PhysAddr, VirtAddr};
use mm::memmap::Region;
use spin::Once;

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
    match memory::FrameBuf::alloc(size) {
        Some(buf) => {
            // Held until a crash kernel is loaded into it (see `release_region`).
            let r = Region::new(buf.pa().get(), size);
            buf.leak();
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
    let ring_pa = mm::layout::kimage_pa(
        VirtAddr(ring as u64),
        PhysAddr(sys.map_or(0, |s| s.image_pa)),
    );
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
            vaddr: PhysAddr(b.start).to_virt().get(),
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
    let page = unsafe { memory::page_mut(PhysAddr(hdr.start)) };
    page.fill(0);
    page[..header.len()].copy_from_slice(&header);
    page[NOTES_AT as usize..][..notes.len()].copy_from_slice(&notes);
    crate::arch::clean_inval_dcache(PhysAddr(hdr.start).to_virt(), mm::PAGE_SIZE);
    let _ = writeln!(
        out,
        "crash: entering the crash kernel, ELF core header at {hdr}"
    );
    crate::kexec::enter(l, 0)
}
