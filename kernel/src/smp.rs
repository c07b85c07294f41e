//! Secondary CPUs: brought up with PSCI `CPU_ON` or from a spin table (`cpu-release-addr`),
//! each on its own stacks (above unmapped guard pages) with the kernel's vectors, and taken
//! down again before a kexec so that no CPU is left running in memory the next kernel owns:
//! PSCI CPUs with `CPU_OFF` (the boot CPU polls `AFFINITY_INFO` until each is off),
//! spin-table CPUs by parking them in a pen (`kexec::pen`) in a page the next kernel's DTB
//! reserves, whose mailboxes become their new `cpu-release-addr`. At a panic, spin-table
//! CPUs (which have no pen then) stop in a loop of this kernel, as Linux's crash stop does.
//! A CPU that does not answer (spinning with interrupts masked) is named and left where it
//! is after [`STOP_TIMEOUT_US`]: the kexec or the crash kexec goes on without it.

use crate::arch::{self, psci};
use crate::memory::{self, FRAMES};
use crate::{println, SYSTEM};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::{PhysAddr, VirtAddr};
use mm::PAGE_SIZE;
use spin::Mutex;

/// Each stack: kernel (SP_EL0) and exception (SP_EL1).
const STACK_SIZE: u64 = 16 * 1024;
/// How long a CPU may take to report in.
const TIMEOUT_US: u64 = 10_000_000;
/// How long the secondaries together may take to leave at a kexec or a panic. One that
/// answers needs microseconds; one that does not is named and left behind after this.
const STOP_TIMEOUT_US: u64 = 2_000_000;

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
    /// The boot CPU asked it to stop here for good (a panic, with no pen to go to).
    pub const PARK: u64 = 5;
    /// Stopped here for good: interrupts masked, in a `wfe` loop of this kernel.
    pub const PARKED: u64 = 6;
    /// Test builds' `wedge`: spin with interrupts masked and never answer again.
    pub const WEDGE: u64 = 7;
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
    /// Where to park on `STOP` (a pen's PA), or 0 for PSCI `CPU_OFF`.
    pen: AtomicU64,
}

// `boot/src/entry.S` reads these fields by offset.
const _: () = {
    use boot::secondary_boot as at;
    use core::mem::offset_of;
    assert!(offset_of!(SecondaryBoot, ttbr1) == at::TTBR1);
    assert!(offset_of!(SecondaryBoot, sp0) == at::SP0);
    assert!(offset_of!(SecondaryBoot, sp1) == at::SP1);
};

/// Where a CPU is, as the boot CPU sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuState {
    /// Started, not reported in yet.
    Starting,
    /// Running this kernel.
    Online,
    /// Left the kernel (PSCI off, parked in the pen, or stopped for a crash kernel).
    Off,
    /// Did not answer when asked to leave: left running where it was.
    Stuck,
    /// Could not be started.
    Failed,
}

/// How a CPU was started, and so how it leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The boot CPU.
    Boot,
    /// PSCI `CPU_ON` / `CPU_OFF`.
    Psci,
    /// A spin table; parked in a pen at kexec. `slot` is its DTB index.
    Spin {
        /// Index among the DTB's CPUs (its pen slot).
        slot: usize,
    },
}

/// One CPU, as `cpus` lists it.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// Its MPIDR affinity (the DTB's `reg`).
    pub mpidr: u64,
    /// The EL it was entered at (0 if it never reported).
    pub el: u64,
    /// Where it is.
    pub state: CpuState,
    /// How it was started.
    pub method: Method,
    block: usize,
}

impl Cpu {
    /// Online and not the boot CPU: one that must leave before a kexec.
    fn is_secondary_online(&self) -> bool {
        self.state == CpuState::Online && self.method != Method::Boot
    }
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
        state: CpuState::Online,
        method: Method::Boot,
        block: 0,
    });
    let t0 = arch::ticks();
    let pa_of = |sym: *const u8| boot::symbols::pa_of(sym, sys.image_pa);
    let entry_pa = pa_of(&raw const boot::symbols::secondary_entry);
    let spin_entry_pa = pa_of(&raw const boot::symbols::secondary_spin_entry);
    // A crash kernel: the crashed kernel stopped its spin-table CPUs where no spin table
    // reaches them (a loop of its own), so their release addresses lead nowhere.
    let capture = memory::memory_map().is_some_and(|m| m.elfcorehdr.is_some());
    for (index, node) in sys.platform.cpus.iter().enumerate() {
        let mpidr = node.mpidr;
        if mpidr == me {
            continue;
        }
        let release = node.release_addr;
        let started = match (release, sys.platform.psci) {
            (Some(_), _) if capture => Err(
                "not started: a crash kernel cannot release spin-table CPUs (the crashed kernel stopped them outside any spin table)".into(),
            ),
            (Some(addr), _) => start_one(index, mpidr, Method::Spin { slot: index }, |block_pa| {
                release_from_spin_table(addr, spin_entry_pa, index, mpidr, block_pa)
            }),
            (None, Some(conduit)) => start_one(index, mpidr, Method::Psci, |block_pa| {
                psci::cpu_on(conduit, mpidr, entry_pa, block_pa)
                    .map_err(|e| format!("PSCI CPU_ON returned {}: {e}", i64::from(e)))
            }),
            (None, None) => Err("no enable method: neither PSCI nor a spin table".into()),
        };
        let cpu = started.unwrap_or_else(|e| {
            println!("smp: cpu {mpidr:#x}: {e}");
            Cpu {
                mpidr,
                el: 0,
                state: CpuState::Failed,
                method: match release {
                    Some(_) => Method::Spin { slot: index },
                    None => Method::Psci,
                },
                block: 0,
            }
        });
        cpus.push(cpu);
    }
    let online = cpus.iter().filter(|c| c.state == CpuState::Online).count();
    (online, arch::ticks_to_us(arch::ticks() - t0))
}

/// Spin-table release: records (MPIDR, boot block) for `secondary_spin_entry`, then writes
/// its address to the CPU's `cpu-release-addr`, cleans both to the PoC and wakes the CPU.
fn release_from_spin_table(
    release: u64,
    spin_entry_pa: u64,
    index: usize,
    mpidr: u64,
    block_pa: u64,
) -> Result<(), String> {
    if index >= boot::SPIN_SLOTS {
        return Err(format!(
            "only {} spin-table CPUs are supported",
            boot::SPIN_SLOTS
        ));
    }
    let table = &raw mut boot::symbols::spin_boot_blocks;
    // SAFETY: only the boot CPU writes the table, one slot per CPU, before releasing it.
    unsafe { (*table)[index] = [mpidr, block_pa] };
    arch::clean_inval_dcache(
        VirtAddr(table as u64),
        (boot::SPIN_SLOTS * core::mem::size_of::<[u64; 2]>()) as u64,
    );
    let mailbox = PhysAddr(release).to_virt();
    // SAFETY: cpu-release-addr is RAM the firmware reserved for exactly this write; the
    // linear map covers it (a /memreserve/ is mapped, only no-map is not).
    unsafe { core::ptr::write_volatile(mailbox.as_mut_ptr::<u64>(), spin_entry_pa) };
    // The CPU reads its mailbox with its caches off.
    if !crate::fault::skips("mailbox-clean") {
        arch::clean_inval_dcache(mailbox, 8);
    }
    arch::sev();
    Ok(())
}

fn start_one(
    index: usize,
    mpidr: u64,
    method: Method,
    kick: impl FnOnce(u64) -> Result<(), String>,
) -> Result<Cpu, String> {
    let block_pa = FRAMES.alloc(1).ok_or("no memory for its boot block")?;
    let sp0 = memory::map_stack(STACK_SIZE).map_err(|e| format!("stack: {e}"))?;
    let sp1 = memory::map_stack(STACK_SIZE).map_err(|e| format!("stack: {e}"))?;
    let va = PhysAddr(block_pa).to_virt();
    // SAFETY: a fresh frame, mapped by the linear map, large enough for the block.
    unsafe {
        va.as_mut_ptr::<SecondaryBoot>().write(SecondaryBoot {
            ttbr1: memory::kernel_root(),
            sp0,
            sp1,
            index: index as u64,
            state: AtomicU64::new(state::STARTING),
            el: AtomicU64::new(0),
            pen: AtomicU64::new(0),
        })
    };
    // The CPU reads the block with its MMU (and caches) off.
    arch::clean_inval_dcache(va, PAGE_SIZE);
    kick(block_pa)?;
    let cpu = Cpu {
        mpidr,
        el: 0,
        state: CpuState::Starting,
        method,
        block: va.get() as usize,
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
        state: CpuState::Online,
        ..cpu
    })
}

/// Where a secondary CPU arrives from `boot/src/entry.S`, on its own stacks, MMU on.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(block: &'static SecondaryBoot, entry_el: u64) -> ! {
    arch::set_cpu_index(block.index as usize);
    arch::unmask_serror();
    crate::irq::init_secondary(block.index as usize);
    block.el.store(entry_el, Ordering::Relaxed);
    block.state.store(state::ONLINE, Ordering::Release);
    arch::sev();
    // Idle in wfi; the tick and IPIs come and go until the boot CPU says STOP or PARK (and
    // sends a wake-up IPI), or a test wedges this CPU.
    let asked = crate::irq::wait_for(|| {
        let s = block.state.load(Ordering::Acquire);
        matches!(s, state::STOP | state::PARK | state::WEDGE).then_some(s)
    });
    match asked {
        state::WEDGE => {
            arch::mask_all();
            loop {
                core::hint::spin_loop();
            }
        }
        state::PARK => {
            crate::irq::leave_cpu();
            block.state.store(state::PARKED, Ordering::Release);
            arch::halt();
        }
        _ => {
            block.state.store(state::LEAVING, Ordering::Release);
            crate::irq::leave_cpu();
            let pen = block.pen.load(Ordering::Acquire);
            if pen != 0 && entry_el == 2 {
                // Into the pen at EL2, MMU off, through the (still intact) EL2 stub.
                arch::hyp_soft_restart(pen);
            }
            let conduit = SYSTEM.get().and_then(|s| s.platform.psci);
            if let (Some(c), 0) = (conduit, pen) {
                // Returns only on failure, reported as STUCK below.
                let _ = psci::cpu_off(c);
            }
            // CPU_OFF returned (or there is no PSCI): this CPU cannot leave.
            block.state.store(state::STUCK, Ordering::Release);
            arch::halt();
        }
    }
}

/// Whether any CPU runs that only a pen can take out of the kernel (spin table), and
/// whether each of those can get there (entered at EL2, where the stub can restart it).
pub fn spin_cpus() -> Result<bool, String> {
    let cpus = CPUS.lock();
    let mut any = false;
    for c in cpus.iter().filter(|c| c.is_secondary_online()) {
        if let Method::Spin { .. } = c.method {
            if c.el != 2 {
                return Err(format!(
                    "cpu {:#x} came from a spin table at EL{}: only an EL2 stub can move it to a pen",
                    c.mpidr, c.el
                ));
            }
            any = true;
        }
    }
    Ok(any)
}

/// (pen slot, MPIDR) of every spin-table CPU online.
pub fn spin_slots() -> Vec<(usize, u64)> {
    CPUS.lock()
        .iter()
        .filter_map(|c| match (c.method, c.state) {
            (Method::Spin { slot }, CpuState::Online) => Some((slot, c.mpidr)),
            _ => None,
        })
        .collect()
}

/// What [`stop_secondaries`] did.
pub struct Stopped {
    /// How long it took, in µs.
    pub us: u64,
    /// CPUs that did not answer within [`STOP_TIMEOUT_US`] and run on where they were
    /// (each named on the console).
    pub stuck: usize,
}

/// Asks every secondary CPU to leave: PSCI CPUs through `CPU_OFF` (polling `AFFINITY_INFO`
/// until each is off), spin-table CPUs into the pen at `pen` (waiting until each has
/// arrived), or, for a crash kernel (`crash`), into a `wfe` loop of this kernel. A CPU that
/// has not left after [`STOP_TIMEOUT_US`] is named and left behind. Allocates nothing on
/// success (kexec -e and the panic path call it); prints through the lock-free console.
pub fn stop_secondaries(pen: Option<PhysAddr>, crash: bool) -> Result<Stopped, String> {
    use core::fmt::Write;
    let conduit = SYSTEM.get().and_then(|s| s.platform.psci);
    let mut cpus = CPUS.lock();
    let t0 = arch::ticks();
    for c in cpus.iter().filter(|c| c.is_secondary_online()) {
        let request = match (c.method, pen, crash) {
            (Method::Spin { .. }, _, true) => state::PARK,
            (Method::Spin { .. }, Some(pen), false) => {
                block(c).pen.store(pen.get(), Ordering::Release);
                state::STOP
            }
            (Method::Spin { .. }, None, false) => {
                return Err(format!(
                    "cpu {:#x} needs a pen and none was prepared",
                    c.mpidr
                ))
            }
            _ => state::STOP,
        };
        // A wedged CPU never reads it; any other answers.
        let _ = block(c).state.compare_exchange(
            state::ONLINE,
            request,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        crate::irq::wake(block(c).index as usize);
    }
    arch::sev();
    let mut stuck = 0;
    for c in cpus.iter_mut().filter(|c| c.is_secondary_online()) {
        loop {
            let off = match (c.method, conduit) {
                (Method::Spin { .. }, _) if crash => {
                    block(c).state.load(Ordering::Acquire) == state::PARKED
                }
                (Method::Spin { slot }, _) => {
                    let flag = pen
                        .unwrap_or_default()
                        .to_virt()
                        .add((kexec::pen::ARRIVED + 8 * slot) as u64);
                    // The CPU writes the flag with its MMU off: read memory, not a stale line.
                    arch::clean_inval_dcache(flag, 8);
                    // SAFETY: the pen page is mapped by the linear map (it is RAM).
                    unsafe { core::ptr::read_volatile(flag.as_ptr::<u64>()) == 1 }
                }
                (_, Some(conduit)) => {
                    psci::affinity_info(conduit, c.mpidr) == Ok(psci::AffinityState::Off)
                }
                (_, None) => return Err(format!("cpu {:#x}: no way to stop it", c.mpidr)),
            };
            if off {
                c.state = CpuState::Off;
                break;
            }
            if block(c).state.load(Ordering::Acquire) == state::STUCK {
                return Err(format!("cpu {:#x}: CPU_OFF failed", c.mpidr));
            }
            if arch::ticks_to_us(arch::ticks() - t0) > STOP_TIMEOUT_US {
                let _ = writeln!(
                    crate::drivers::console::emergency_print(),
                    "smp: cpu {:#x} did not stop within {} ms: left running where it was",
                    c.mpidr,
                    STOP_TIMEOUT_US / 1000
                );
                c.state = CpuState::Stuck;
                stuck += 1;
                break;
            }
        }
    }
    Ok(Stopped {
        us: arch::ticks_to_us(arch::ticks() - t0),
        stuck,
    })
}

/// Test builds' `wedge N`: CPU `N` (as `cpus` numbers them) masks its interrupts and spins,
/// never answering again, as a CPU stuck in a lock would.
#[cfg(feature = "fault-inject")]
pub fn wedge(n: usize) -> Result<u64, String> {
    let cpus = CPUS.lock();
    let c = cpus
        .get(n)
        .filter(|c| c.is_secondary_online())
        .ok_or(format!("cpu{n} is not an online secondary CPU (see cpus)"))?;
    block(c).state.store(state::WEDGE, Ordering::Release);
    crate::irq::wake(block(c).index as usize);
    arch::sev();
    Ok(c.mpidr)
}

/// The `cpus` command.
pub fn list() {
    for (i, c) in CPUS.lock().iter().enumerate() {
        let state = match (c.state, c.method) {
            (CpuState::Online, Method::Boot) => "online (boot)",
            (CpuState::Online, _) => "online",
            (CpuState::Starting, _) => "starting",
            (CpuState::Off, _) => "off",
            (CpuState::Stuck, _) => "stuck",
            (CpuState::Failed, _) => "failed",
        };
        let method = match c.method {
            Method::Boot => "boot",
            Method::Psci => "psci",
            Method::Spin { .. } => "spin-table",
        };
        let index = match (c.method, c.block) {
            (Method::Boot, _) => Some(arch::cpu_index()),
            // A CPU that could not be started has no boot block.
            (_, 0) => None,
            _ => Some(block(c).index as usize),
        };
        let ticks = index.and_then(crate::irq::stats).map_or(0, |s| s.ticks);
        println!(
            "cpu{i}  mpidr={:#x}  el={}  {state}  method={method}  ticks={ticks}",
            c.mpidr, c.el
        );
    }
}
