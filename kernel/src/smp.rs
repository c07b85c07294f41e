//! Secondary CPUs: brought up with PSCI `CPU_ON`, each on its own stacks (above unmapped guard
//! pages) with the kernel's vectors, and taken down again with `CPU_OFF` before a kexec, the
//! boot CPU polling `AFFINITY_INFO` until each one is off, so that no CPU is left running in
//! memory the next kernel owns.

use crate::arch::{self, psci};
use crate::memory::{self, FRAMES};
use crate::{println, SYSTEM};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::platform::PsciConduit;
use mm::layout::phys_to_virt;
use mm::PAGE_SIZE;
use spin::Mutex;

/// Each stack: kernel (SP_EL0) and exception (SP_EL1).
const STACK_SIZE: u64 = 16 * 1024;
/// How long a CPU may take to report in or to turn off.
const TIMEOUT_US: u64 = 2_000_000;

/// States in [`SecondaryBoot::state`].
mod state {
    /// `CPU_ON` issued, not reported in yet.
    pub const STARTING: u64 = 0;
    /// Running `secondary_main`'s idle loop.
    pub const ONLINE: u64 = 1;
    /// The boot CPU asked it to leave.
    pub const STOP: u64 = 2;
    /// Calling `CPU_OFF`.
    pub const LEAVING: u64 = 3;
    /// `CPU_OFF` returned: it could not leave.
    pub const STUCK: u64 = 4;
}

/// What a secondary CPU reads at `secondary_entry` (the layout `boot/src/entry.S` uses),
/// then shares with the boot CPU.
#[repr(C)]
struct SecondaryBoot {
    ttbr1: u64,
    sp0: u64,
    sp1: u64,
    index: u64,
    state: AtomicU64,
    el: AtomicU64,
}

/// One CPU, as `cpus` lists it.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// Its MPIDR affinity (the DTB's `reg`).
    pub mpidr: u64,
    /// The EL it was entered at (0 if it never reported).
    pub el: u64,
    /// `online`, `off`, `failed`, ...
    pub state: &'static str,
    block: usize,
}

static CPUS: Mutex<Vec<Cpu>> = Mutex::new(Vec::new());

fn block(c: &Cpu) -> &'static SecondaryBoot {
    // SAFETY: `block` is the linear-map VA of a frame allocated for this CPU and never freed.
    unsafe { &*(c.block as *const SecondaryBoot) }
}

/// Starts every CPU the DTB lists besides this one. Returns the number of CPUs online
/// (this one included) and the time it took in µs.
pub fn start_secondaries() -> (usize, u64) {
    let sys = SYSTEM.get().expect("booted");
    let me = arch::mpidr();
    let mut cpus = CPUS.lock();
    cpus.push(Cpu {
        mpidr: me,
        el: sys.entry_el,
        state: "online (boot)",
        block: 0,
    });
    let t0 = arch::ticks();
    let Some(conduit) = sys.platform.psci else {
        if sys.platform.cpus.len() > 1 {
            println!("smp: no /psci node: the other CPUs stay where the firmware keeps them");
        }
        return (1, 0);
    };
    let entry_pa = {
        use boot::symbols::{_text, secondary_entry};
        (&raw const secondary_entry) as u64 - (&raw const _text) as u64 + sys.image_pa
    };
    for (index, &mpidr) in sys.platform.cpus.iter().enumerate() {
        if mpidr == me {
            continue;
        }
        let cpu = match start_one(conduit, entry_pa, index, mpidr) {
            Ok(c) => c,
            Err(e) => {
                println!("smp: cpu {mpidr:#x}: {e}");
                Cpu {
                    mpidr,
                    el: 0,
                    state: "failed",
                    block: 0,
                }
            }
        };
        cpus.push(cpu);
    }
    let online = cpus
        .iter()
        .filter(|c| c.state.starts_with("online"))
        .count();
    (online, arch::ticks_to_us(arch::ticks() - t0))
}

fn start_one(conduit: PsciConduit, entry_pa: u64, index: usize, mpidr: u64) -> Result<Cpu, String> {
    let block_pa = FRAMES.alloc(1).ok_or("no memory for its boot block")?;
    let sp0 = memory::map_stack(STACK_SIZE).map_err(|e| format!("stack: {e}"))?;
    let sp1 = memory::map_stack(STACK_SIZE).map_err(|e| format!("stack: {e}"))?;
    let va = phys_to_virt(block_pa);
    // SAFETY: a fresh frame, mapped by the linear map, large enough for the block.
    unsafe {
        (va as *mut SecondaryBoot).write(SecondaryBoot {
            ttbr1: memory::kernel_root(),
            sp0,
            sp1,
            index: index as u64,
            state: AtomicU64::new(state::STARTING),
            el: AtomicU64::new(0),
        })
    };
    // The CPU reads the block with its MMU (and caches) off.
    arch::clean_inval_dcache(va, PAGE_SIZE);
    let r = arch::psci_call(conduit, psci::CPU_ON, mpidr, entry_pa, block_pa);
    if r != 0 {
        return Err(format!("PSCI CPU_ON returned {r}"));
    }
    let cpu = Cpu {
        mpidr,
        el: 0,
        state: "starting",
        block: va as usize,
    };
    let b = block(&cpu);
    let t0 = arch::ticks();
    while b.state.load(Ordering::Acquire) != state::ONLINE {
        if arch::ticks_to_us(arch::ticks() - t0) > TIMEOUT_US {
            return Err(format!("did not report in within {} ms", TIMEOUT_US / 1000));
        }
        core::hint::spin_loop();
    }
    Ok(Cpu {
        el: b.el.load(Ordering::Acquire),
        state: "online",
        ..cpu
    })
}

/// Where a secondary CPU arrives from `boot/src/entry.S`, on its own stacks, MMU on.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(block: &'static SecondaryBoot, entry_el: u64) -> ! {
    block.el.store(entry_el, Ordering::Relaxed);
    block.state.store(state::ONLINE, Ordering::Release);
    arch::sev();
    loop {
        if block.state.load(Ordering::Acquire) == state::STOP {
            block.state.store(state::LEAVING, Ordering::Release);
            let conduit = SYSTEM.get().and_then(|s| s.platform.psci);
            if let Some(c) = conduit {
                arch::psci_call(c, psci::CPU_OFF, 0, 0, 0);
            }
            // CPU_OFF returned (or there is no PSCI): this CPU cannot leave.
            block.state.store(state::STUCK, Ordering::Release);
            arch::halt();
        }
        arch::wfe();
    }
}

/// Asks every secondary CPU to leave (`CPU_OFF`) and waits until PSCI reports each one off.
/// Returns the time it took in µs. Allocates nothing (kexec -e calls it).
pub fn stop_secondaries() -> Result<u64, String> {
    let Some(conduit) = SYSTEM.get().and_then(|s| s.platform.psci) else {
        return Ok(0);
    };
    let mut cpus = CPUS.lock();
    let t0 = arch::ticks();
    for c in cpus.iter().filter(|c| c.state == "online") {
        block(c).state.store(state::STOP, Ordering::Release);
    }
    arch::sev();
    for c in cpus.iter_mut().filter(|c| c.state == "online") {
        loop {
            let r = arch::psci_call(conduit, psci::AFFINITY_INFO, c.mpidr, 0, 0);
            if r == psci::AFFINITY_OFF {
                c.state = "off";
                break;
            }
            if block(c).state.load(Ordering::Acquire) == state::STUCK {
                return Err(format!("cpu {:#x}: CPU_OFF failed", c.mpidr));
            }
            if arch::ticks_to_us(arch::ticks() - t0) > TIMEOUT_US {
                return Err(format!(
                    "cpu {:#x} did not turn off (AFFINITY_INFO {r})",
                    c.mpidr
                ));
            }
        }
    }
    Ok(arch::ticks_to_us(arch::ticks() - t0))
}

/// The `cpus` command.
pub fn list() {
    for (i, c) in CPUS.lock().iter().enumerate() {
        println!("cpu{i}  mpidr={:#x}  el={}  {}", c.mpidr, c.el, c.state);
    }
}
