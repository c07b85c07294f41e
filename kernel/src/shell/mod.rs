//! The serial shell: line editing, the commands, and the boot script (`/init.rc`).

pub mod boot;
pub mod failsafe;
mod memcheck;

use crate::drivers::console;
use crate::{arch, files, memory, print, println, SYSTEM};
use alloc::string::String;
use kernel::formats::cmdline::split_words;
use kernel::lineedit::{Event, LineEditor};

const PROMPT: &str = "kernel# ";

struct Command {
    name: &'static str,
    usage: &'static str,
    help: &'static str,
    run: fn(&[String]) -> Result<(), String>,
}

const COMMANDS: &[Command] = &[
    Command { name: "help", usage: "help", help: "list the commands", run: cmd_help },
    Command { name: "mem", usage: "mem", help: "RAM banks, reserved ranges, free frames, page-table use", run: cmd_mem },
    Command { name: "ls", usage: "ls [DIR | DISKpN:/DIR]", help: "list a directory of the initramfs or of a disk's partition", run: cmd_ls },
    Command { name: "cat", usage: "cat FILE...", help: "print files (initramfs paths, or DISKpN:/PATH on a disk)", run: cmd_cat },
    Command { name: "disks", usage: "disks", help: "the disks, their partitions and file systems", run: cmd_disks },
    Command { name: "boot", usage: "boot [N|ID]", help: "list the boot entries on the disks (extlinux.conf, BLS, config.txt); boot one with kexec", run: boot::command },
    Command { name: "echo", usage: "echo [WORD...]", help: "print the words", run: cmd_echo },
    Command { name: "fault", usage: "fault [ADDR]", help: "read from an unmapped address (default 0xffff_dead_0000_0000) to test the exception report", run: cmd_fault },
    Command { name: "cpus", usage: "cpus", help: "list the CPUs: MPIDR, EL of entry, state, how started, ticks", run: |_| { crate::smp::list(); Ok(()) } },
    Command { name: "irqs", usage: "irqs", help: "interrupts per CPU: ticks, timer lateness, UART, IPIs, spurious", run: |_| { crate::irq::list(); Ok(()) } },
    Command { name: "ipi", usage: "ipi", help: "ping every other CPU with an SGI and print the round trip", run: |_| crate::irq::ping() },
    Command { name: "kexec", usage: "kexec -l|-p IMAGE|--self [--initrd=FILE [--initrd-sha256=HEX]] [--append=\"CMDLINE\"] [--dtb=FILE [--dtb-sha256=HEX]] [--mmu-off] [--copy-all] [--base=ADDR] | -e | -u", help: "load, execute or unload a new kernel; alone: show what is loaded", run: crate::kexec::command },
    Command { name: "sha256", usage: "sha256 [--portable] FILE...", help: "SHA-256 of files (initramfs or disk), with the rate (the CPU's SHA-2 instructions when it has them)", run: cmd_sha256 },
    Command { name: "trust", usage: "trust [verify FILE...]", help: "verified kexec: the policy and trusted certificates; with verify, check files as kexec -l would, timed against a plain SHA-256", run: crate::kexec::verify::command },
    Command { name: "dmesg", usage: "dmesg", help: "as a crash kernel: the crashed Linux's whole log", run: |_| crate::kexec::capture::dmesg() },
    Command { name: "vmcore", usage: "vmcore", help: "as a crash kernel: the crashed kernel's memory ranges, notes and CPUs' registers", run: |_| crate::kexec::capture::vmcore() },
    Command { name: "memcheck", usage: "memcheck", help: "check memcpy, memmove, memset and memcmp against byte-at-a-time references", run: |_| crate::shell::memcheck::command() },
    Command { name: "sleep", usage: "sleep MS", help: "idle (in wfi, woken by the tick) for MS milliseconds", run: cmd_sleep },
    #[cfg(feature = "fault-inject")]
    Command { name: "failalloc", usage: "failalloc N | failalloc kexec ARGS...", help: "test builds: make the Nth frame allocation (or claim) from now fail, once; or load `kexec -l ARGS` failing allocation 1, 2, ... until a load reaches none", run: cmd_failalloc },
    #[cfg(feature = "fault-inject")]
    Command { name: "serror", usage: "serror", help: "test builds, entered at EL2: make a virtual SError pending (HCR_EL2.VSE), as an asynchronous external abort on a board would", run: cmd_serror },
    #[cfg(feature = "fault-inject")]
    Command { name: "wedge", usage: "wedge N", help: "test builds: CPU N (as `cpus` numbers them) masks its interrupts and spins, never answering again", run: cmd_wedge },
    Command { name: "panic", usage: "panic [MESSAGE]", help: "panic (to test a crash kernel loaded with kexec -p)", run: |w| panic!("{}", if w.len() > 1 { w[1..].join(" ") } else { "the panic command".into() }) },
    Command { name: "poweroff", usage: "poweroff", help: "PSCI SYSTEM_OFF", run: cmd_poweroff },
    Command { name: "reboot", usage: "reboot", help: "PSCI SYSTEM_RESET", run: cmd_reboot },
];

/// Runs one command line.
pub fn run_line(line: &str) {
    let words = match split_words(line) {
        Ok(w) => w,
        Err(e) => return println!("{e}"),
    };
    let Some(name) = words.first() else { return };
    if name.starts_with('#') {
        return;
    }
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => {
            if let Err(e) = (c.run)(&words) {
                println!("{}: {e}", c.name);
            }
        }
        None => println!("{name}: unknown command (try 'help')"),
    }
}

/// Runs each line of the boot script, echoing it first.
pub fn run_script(path: &str, text: &str) {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        println!("{path}: {line}");
        run_line(line);
    }
}

/// The interactive loop.
pub fn interactive() -> ! {
    let mut ed = LineEditor::new(PROMPT);
    ed.prompt(&mut console::Uart);
    loop {
        // Idles in wfi until the receive interrupt (or the tick, without one) brings a byte.
        let b = crate::irq::wait_for(console::next_byte);
        match ed.feed(b, &mut console::Uart) {
            Event::Line(l) => {
                run_line(&l);
                ed.prompt(&mut console::Uart);
            }
            Event::Cancel => ed.prompt(&mut console::Uart),
            Event::None => {}
        }
    }
}

fn cmd_help(_: &[String]) -> Result<(), String> {
    for c in COMMANDS {
        println!("  {:<16} {}", c.usage, c.help);
    }
    Ok(())
}

fn cmd_sleep(w: &[String]) -> Result<(), String> {
    let ms: u64 = match w.get(1).map(|v| v.parse()) {
        Some(Ok(ms)) => ms,
        _ => return Err("usage: sleep MS (milliseconds, a whole number)".into()),
    };
    let end = arch::timer::now() + ms * arch::counter_hz() / 1000;
    if crate::irq::gic().is_none() {
        // No tick to wake a wfi: spin.
        while arch::timer::now() < end {
            core::hint::spin_loop();
        }
        return Ok(());
    }
    crate::irq::wait_until(Some(end), || (arch::timer::now() >= end).then_some(()));
    Ok(())
}

fn cmd_echo(w: &[String]) -> Result<(), String> {
    println!("{}", w[1..].join(" "));
    Ok(())
}

fn cmd_mem(_: &[String]) -> Result<(), String> {
    let map = memory::memory_map().ok_or("no memory map")?;
    match map.source {
        mm::memmap::MapSource::Dtb => println!("memory map: the DTB's /memory nodes"),
        mm::memmap::MapSource::Uefi { descriptors } => println!(
            "memory map: UEFI, {descriptors} descriptors (/chosen linux,uefi-mmap-*; the DTB's /memory nodes are not used)"
        ),
    }
    for b in &map.banks {
        println!("bank      {b}  {:>6} MiB", b.size() >> 20);
    }
    for r in &map.reserved {
        println!(
            "reserved  {}  {:>10} KiB  {}{}{}",
            r.region,
            r.region.size().div_ceil(1024),
            r.kind.name(),
            if r.name.is_empty() { "" } else { " " },
            r.name
        );
    }
    let f = &memory::FRAMES;
    println!(
        "frames    free={} total={} ({} MiB free)",
        f.free_frames(),
        f.total_frames(),
        f.free_frames() >> 8
    );
    let u = memory::table_use();
    for (name, s) in [
        ("linear", u.linear),
        ("image", u.image),
        ("devices", u.devices),
    ] {
        println!(
            "pagetable {name:<8} tables={} blocks_1g={} blocks_2m={} pages_4k={}",
            s.tables, s.blocks_1g, s.blocks_2m, s.pages_4k
        );
    }
    Ok(())
}

fn cmd_ls(w: &[String]) -> Result<(), String> {
    let dir = w.get(1).map(String::as_str).unwrap_or("");
    for (kind, size, path) in files::list(dir)? {
        println!("{kind} {size:>10}  {path}");
    }
    Ok(())
}

fn cmd_cat(w: &[String]) -> Result<(), String> {
    if w.len() < 2 {
        return Err("usage: cat FILE...".into());
    }
    for p in &w[1..] {
        let f = files::read(p)?;
        match core::str::from_utf8(&f) {
            Ok(s) => print!("{s}"),
            Err(_) => return Err(alloc::format!("{p}: binary file ({} bytes)", f.len())),
        }
    }
    Ok(())
}

fn cmd_disks(_: &[String]) -> Result<(), String> {
    crate::disks::show();
    Ok(())
}

fn cmd_sha256(w: &[String]) -> Result<(), String> {
    let portable = w.iter().any(|a| a == "--portable");
    let paths: alloc::vec::Vec<&String> = w[1..].iter().filter(|a| *a != "--portable").collect();
    if paths.is_empty() {
        return Err("usage: sha256 [--portable] FILE...".into());
    }
    let (compress, engine) = if portable {
        arch::sha2::portable()
    } else {
        arch::sha2::compress()
    };
    for p in paths {
        let f = files::read(p)?;
        let t0 = arch::ticks();
        let d = kernel::formats::sha256::Sha256::digest(compress, &f);
        let us = arch::ticks_to_us(arch::ticks() - t0).max(1);
        println!(
            "{}  {p} ({} bytes, {us} us, {} MiB/s, {engine})",
            kernel::formats::sha256::hex(&d),
            f.len(),
            f.len() as u64 * 1_000_000 / us / (1 << 20)
        );
    }
    Ok(())
}

#[cfg(feature = "fault-inject")]
fn cmd_failalloc(w: &[String]) -> Result<(), String> {
    if w.get(1).map(String::as_str) == Some("kexec") {
        return crate::kexec::failure_sweep(&w[2..]);
    }
    let n = w
        .get(1)
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("usage: failalloc N | failalloc kexec ARGS...")?;
    crate::memory::FRAMES.fail_nth(n);
    println!(
        "failalloc: frame allocation {n} from now fails ({} failed so far)",
        crate::memory::FRAMES.failed_on_purpose()
    );
    Ok(())
}

#[cfg(feature = "fault-inject")]
fn cmd_wedge(w: &[String]) -> Result<(), String> {
    let n = w
        .get(1)
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or("usage: wedge N")?;
    let mpidr = crate::smp::wedge(n)?;
    println!("wedge: cpu{n} (mpidr {mpidr:#x}) spins with interrupts masked");
    Ok(())
}

#[cfg(feature = "fault-inject")]
fn cmd_serror(_: &[String]) -> Result<(), String> {
    let sys = crate::SYSTEM.get().ok_or("no system")?;
    crate::arch::inject_virtual_serror(sys.entry_el, sys.image_pa)?;
    // Only if SErrors were masked: the exception report halts otherwise.
    println!("serror: pending, not taken");
    Ok(())
}

fn cmd_fault(w: &[String]) -> Result<(), String> {
    let addr = match w.get(1) {
        Some(a) => kernel::formats::cmdline::parse_size(a).map_err(|e| alloc::format!("{e}"))?,
        None => 0xffff_dead_0000_0000,
    };
    println!("reading {addr:#x}");
    // SAFETY: deliberately unsafe: this read is meant to fault, and the exception report
    // never returns here.
    let v = unsafe { (addr as *const u64).read_volatile() };
    println!("read {v:#x} from {addr:#x}: no fault");
    Ok(())
}

/// Powers off (`halt`) or resets through PSCI `SYSTEM_OFF` / `SYSTEM_RESET`, or on a
/// Raspberry Pi without PSCI through the PM watchdog.
fn power(name: &str, halt: bool) -> Result<(), String> {
    let platform = &SYSTEM.get().ok_or("not booted")?.platform;
    if let Some(conduit) = platform.psci {
        println!("{name}");
        let failed = if halt {
            arch::psci::system_off(conduit)
        } else {
            arch::psci::system_reset(conduit)
        };
        return Err(match failed {
            Ok(()) => alloc::format!("PSCI {name} call returned"),
            Err(e) => alloc::format!("PSCI {name} call returned {}: {e}", i64::from(e)),
        });
    }
    if let Some(regs) = platform.pm_watchdog {
        println!("{name}");
        return crate::drivers::board::bcm2835_watchdog_reset(regs, halt).map_err(String::from);
    }
    Err("no PSCI and no PM watchdog in the DTB".into())
}

fn cmd_poweroff(_: &[String]) -> Result<(), String> {
    power("poweroff", true)
}

fn cmd_reboot(_: &[String]) -> Result<(), String> {
    power("reboot", false)
}
