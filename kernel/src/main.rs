//! The kernel binary: from `kernel_main` (called by `boot`'s entry code with the MMU on) to
//! the shell.
//!
//! Boot order: heap → DTB (through the boot code's early window) → memory map, frames and the
//! kernel's own page tables → console → log → initramfs → `ready` → `/init.rc` → prompt.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel binary runs on aarch64-unknown-none: build it with scripts/build.sh");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod disks;
#[cfg(target_os = "none")]
mod drivers;
#[cfg(target_os = "none")]
mod efistub;
#[cfg(target_os = "none")]
mod fault;
#[cfg(target_os = "none")]
mod files;
#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
mod kexec;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod random;
#[cfg(target_os = "none")]
mod shell;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
pub use bare::*;

#[cfg(target_os = "none")]
mod bare {
    use crate::drivers::console;
    use crate::kexec::{capture, crash, selftest, verify};
    use crate::{arch, files, irq, memory, println, random, shell, smp};
    use fdt::Fdt;
    use kernel::formats::cmdline::Cmdline;
    use kernel::platform::Platform;
    use mm::layout::EARLY_FDT_VADDR;
    use mm::memmap::{MemoryMap, Region};
    use spin::Once;

    /// What the kernel knows about the machine it booted on.
    pub struct System {
        /// From the DTB.
        pub platform: Platform,
        /// The EL the kernel was entered at (1 or 2).
        pub entry_el: u64,
        /// Physical load address.
        pub image_pa: u64,
        /// The DTB's physical range, as the boot loader placed it.
        pub dtb: Region,
        /// The DTB's contents (a compact copy on the heap).
        pub fdt: &'static [u8],
        /// The command line.
        pub cmdline: Cmdline,
    }

    /// Set once, early in `kernel_main`.
    pub static SYSTEM: Once<System> = Once::new();

    /// What `boot/src/entry.S` hands over.
    struct Entry {
        /// The DTB's physical address (x0 from the boot loader).
        dtb_pa: u64,
        /// The EL the kernel was entered at.
        el: u64,
        /// The counter at entry.
        ticks: u64,
        /// Where the image was loaded.
        image_pa: u64,
    }

    /// The boot, stage by stage: the DTB; the console; memory and the kernel's own tables;
    /// the command line and the log; the initramfs; the other CPUs; `ready`, then the chain
    /// self-test, the boot script and the shell.
    #[unsafe(no_mangle)]
    extern "C" fn kernel_main(dtb_pa: u64, entry_el: u64, entry_ticks: u64, image_pa: u64) -> ! {
        let entry = Entry {
            dtb_pa,
            el: entry_el,
            ticks: entry_ticks,
            image_pa,
        };
        memory::init_heap();
        let (original, blob) = read_dtb(entry.dtb_pa);
        let fdt = match Fdt::new(blob) {
            Ok(f) => f,
            Err(_) => arch::halt(),
        };
        let platform = Platform::from_fdt(&fdt);
        let uart = early_console(&fdt, &platform);
        // The vectors are in place (entry.S) and the console can report: SErrors too.
        arch::unmask_serror();
        let dtb = Region::new(entry.dtb_pa, original.len() as u64);
        let initrd = platform
            .as_ref()
            .ok()
            .and_then(|p| initrd_clear_of_image(p, &entry));
        let (platform, mem) = bring_up_memory(&entry, dtb, &fdt, platform, initrd, uart);
        let sys = SYSTEM.call_once(|| System {
            cmdline: command_line_and_log(&entry, &platform),
            platform,
            entry_el: entry.el,
            image_pa: entry.image_pa,
            dtb,
            fdt: blob,
        });
        random::init();
        match initrd {
            Some(r) => match files::load(r) {
                Ok(n) => log::info!("initramfs: {n} entries from {r}"),
                Err(e) => println!("initramfs: {e}; continuing without files"),
            },
            None => log::info!("initramfs: none"),
        }
        verify::init();
        let (cpus, smp_us) = start_cpus(sys);
        let now = arch::ticks();
        let since = now.wrapping_sub(entry.ticks);
        println!(
            "ready el={} cpus={cpus} mem={} ticks={} us={}",
            sys.entry_el,
            mem.total >> 20,
            since,
            arch::ticks_to_us(since)
        );
        capture::report_at_boot();
        crash::reserve_at_boot();
        selftest::chain_step(now, cpus, smp_us);
        shell::failsafe::at_start();
        shell::boot::menu_at_start();
        run_boot_script(sys);
        shell::interactive();
    }

    /// The DTB as the boot loader left it (through the boot code's early window) and a
    /// compact copy on the heap, without the FDT_NOPs boot loaders leave. Without a DTB there
    /// is no console to say so: the kernel halts.
    fn read_dtb(dtb_pa: u64) -> (&'static [u8], &'static [u8]) {
        // The boot code mapped the DTB's 2 MiB block(s) at EARLY_FDT_VADDR.
        let early_va = EARLY_FDT_VADDR + (dtb_pa & ((2 << 20) - 1));
        let blob = (dtb_pa != 0 && dtb_pa.is_multiple_of(8))
            // SAFETY: the boot code mapped [dtb_pa, dtb_pa + min(totalsize, 2 MiB)) there
            // when dtb_pa was non-zero and 8-byte aligned.
            .then(|| unsafe { kernel::formats::dtb::blob_at(early_va as *const u8) })
            .flatten();
        let Some(original) = blob else {
            arch::halt();
        };
        match kernel::formats::dtb::compact(original) {
            Ok(b) => (original, alloc::vec::Vec::leak(b)),
            Err(_) => arch::halt(),
        }
    }

    /// The console, from here on: through an early window until the kernel's own tables map
    /// it. (A DTB the platform cannot be read from may still name its console.) Returns the
    /// UART, for `memory::init` to map for good.
    fn early_console(
        fdt: &Fdt<'_>,
        platform: &Result<Platform, kernel::platform::PlatformError>,
    ) -> Option<kernel::platform::Console> {
        let uart = match platform {
            Ok(p) => p.console.uart().cloned(),
            Err(_) => kernel::platform::find_console(fdt, "", None)
                .ok()
                .and_then(|c| c.uart().cloned()),
        };
        if let Some(u) = &uart {
            // SAFETY: the boot code's tables are live; `u.regs` are the UART's registers.
            if let Some(va) = unsafe {
                arch::early_window(arch::EarlyWindow::Console, u.regs.start, u.regs.size())
            } {
                // SAFETY: `va` maps the UART the DTB names, as Device memory, until
                // `memory::init` maps it for good (and `console::move_to` follows).
                unsafe { console::init(va as usize, u.kind) };
                println!();
            }
        }
        uart
    }

    /// The initrd the DTB names, unless it lies inside the kernel's image_size: the boot
    /// protocol keeps image_size bytes free from the load address, and a boot loader that put
    /// the initrd right after the Image *file* had it overwritten by the BSS, the heap and
    /// the early tables before any of this ran. That is said, and the initrd is not read.
    fn initrd_clear_of_image(p: &Platform, entry: &Entry) -> Option<Region> {
        let image = Region::new(entry.image_pa, boot::symbols::image_size());
        p.initrd.filter(|r| {
            let clear = !r.overlaps(&image);
            if !clear {
                println!(
                    "initramfs: {r} lies inside the kernel's image_size ({image}): the boot loader did not keep image_size bytes free after the Image (its BSS, heap and tables went over it); not read"
                );
            }
            clear
        })
    }

    /// The memory map (the UEFI one when an EFI stub left one, else the DTB's), the frames,
    /// the kernel's own tables and the console mapped for good. A platform or memory map that
    /// cannot be read is fatal here, said on the early console.
    fn bring_up_memory(
        entry: &Entry,
        dtb: Region,
        fdt: &Fdt<'_>,
        platform: Result<Platform, kernel::platform::PlatformError>,
        initrd: Option<Region>,
        uart: Option<kernel::platform::Console>,
    ) -> (Platform, memory::MemInfo) {
        let (handover, redist, uefi, esp_files) = match &platform {
            Ok(p) => (
                p.handover,
                p.gic.as_ref().map(|g| g.redist.clone()).unwrap_or_default(),
                p.uefi,
                p.esp_files,
            ),
            Err(_) => (None, alloc::vec::Vec::new(), None, None),
        };
        let mut uefi_failed = None;
        let memory_map = match uefi.map(|info| memory::uefi_memory_map(fdt, info)) {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => {
                uefi_failed = Some(e);
                MemoryMap::from_fdt(fdt)
            }
            None => MemoryMap::from_fdt(fdt),
        };
        let boot = memory::BootRanges {
            image_pa: entry.image_pa,
            dtb,
            initrd,
            handover,
            esp_files,
        };
        let devices = memory::EarlyDevices {
            console: uart.as_ref().map(|u| u.regs),
            redistributors: &redist,
        };
        let (mem, console_va) = memory::init(memory_map, &boot, &devices);
        if let Some(va) = console_va {
            // SAFETY: `va` maps the UART `console::init` took over, as Device memory.
            unsafe { console::move_to(va as usize) };
        }
        // From here on the DTB is read through the linear map.
        let platform = platform.unwrap_or_else(|e| panic!("{e}"));
        let mem = mem.unwrap_or_else(|e| panic!("{e}"));
        if let Some(e) = uefi_failed {
            println!(
                "warning: {e}; RAM from the DTB's /memory nodes instead: the UEFI runtime services may not survive this kernel"
            );
        }
        (platform, mem)
    }

    /// The command line (a bad one is ignored, with a warning), the log at its `loglevel=`,
    /// and the first lines of the log.
    fn command_line_and_log(entry: &Entry, platform: &Platform) -> Cmdline {
        let cmdline = Cmdline::parse(&platform.bootargs).unwrap_or_else(|e| {
            println!("warning: {e}; ignoring the command line");
            Cmdline::default()
        });
        let loglevel = cmdline
            .get("loglevel")
            .and_then(|v| v.parse().ok())
            .unwrap_or(7);
        console::init_log(console::level_from_loglevel(loglevel));
        arch::SEMIHOSTING.store(
            cmdline.has("semihosting"),
            core::sync::atomic::Ordering::Relaxed,
        );
        log::info!(
            "kernel {}: entered at EL{}, image at {:#x}, DTB at {:#x}",
            env!("CARGO_PKG_VERSION"),
            entry.el,
            entry.image_pa,
            entry.dtb_pa
        );
        log::debug!("boot: counter at entry {:#x}", entry.ticks);
        log::info!(
            "machine: {}; command line: {}",
            platform.model,
            platform.bootargs
        );
        for why in &platform.console.passed_over {
            log::warn!("console: passed over {why}");
        }
        if let Some((u, rule)) = &platform.console.console {
            log::info!("console: {} ({:?}, from {rule})", u.path, u.kind);
        }
        cmdline
    }

    /// The GIC reset and this CPU's tick started, then every other CPU the DTB lists.
    /// Returns the CPUs online and the microseconds it took to start the others.
    fn start_cpus(sys: &System) -> (usize, u64) {
        let boot_index = sys
            .platform
            .mpidrs()
            .iter()
            .position(|&m| m == arch::mpidr());
        arch::set_cpu_index(boot_index.unwrap_or(0));
        irq::init_boot_cpu(boot_index.unwrap_or(0));
        let (cpus, smp_us) = smp::start_secondaries();
        log::info!("smp: {cpus} CPUs online ({smp_us} us to start the others)");
        (cpus, smp_us)
    }

    /// `/init.rc`, or the file `init=` names.
    fn run_boot_script(sys: &System) {
        let init = sys.cmdline.get("init").unwrap_or("/init.rc");
        match files::find(init) {
            Some(text) => match core::str::from_utf8(text) {
                Ok(t) => shell::run_script(init, t),
                Err(_) => println!("{init}: not a text file"),
            },
            None if sys.cmdline.get("init").is_some() => println!("{init}: no such file"),
            None => {}
        }
    }

    /// Exit status (under `semihosting`) after a panic.
    const EXIT_PANIC: u32 = 1;

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        use core::fmt::Write;
        let mut out = console::emergency_print();
        let _ = writeln!(out, "\r\nPANIC: {info}");
        // With a crash kernel loaded (kexec -p), it takes over from here.
        let (x, sp, pc) = arch::registers_here();
        crash::enter_crash_kernel(&x, sp, pc, 0);
        let _ = writeln!(out, "halted");
        arch::fatal_stop(EXIT_PANIC);
    }
}
