//! Interrupts: the GIC (`arch::gic`), the timer tick on every CPU, the console's receive
//! interrupt, IPIs (SGIs) between CPUs, and devices' interrupts ([`register_device`]: a
//! disk's request done).
//!
//! Every CPU runs with IRQs unmasked once its CPU interface is up, and idles in `wfi` (with
//! IRQs masked around the check, so that a wake-up between the check and the `wfi` is not
//! lost). Handlers take no lock that interrupted code could hold: they touch atomics, the
//! console's receive ring and the registers of their own device. The one exception is the
//! kexec-from-a-handler test (`kexec.from_irq`), which runs the whole kexec path from the
//! timer handler of a CPU that was idle.

use crate::arch::gic::Gic;
use crate::arch::mmio::Regs;
use crate::arch::{self, timer};
use crate::drivers::console;
use crate::{memory, println, SYSTEM};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use spin::Once;

/// The tick rate while a CPU works.
pub const HZ: u64 = 100;
/// The longest an idle CPU goes without a tick, in milliseconds (10 Hz): idle CPUs cost
/// the emulator (and a board's power budget) little, and every CPU still ticks.
pub const IDLE_TICK_MS: u64 = 100;
/// The most CPUs with per-CPU interrupt state (as many as the spin-table pen has slots).
pub const MAX_CPUS: usize = boot::SPIN_SLOTS;

/// SGIs this kernel sends.
pub mod sgi {
    /// Answer with a pong ([`super::ping`]).
    pub const PING: u32 = 1;
    /// Only wake up from `wfi` (and look at what changed).
    pub const WAKE: u32 = 2;
}

static GIC: Once<Option<Gic>> = Once::new();
/// Per-CPU (DTB index) state, written by that CPU's handlers.
struct PerCpu {
    mpidr: AtomicU64,
    /// GICv2 CPU interface mask.
    mask: AtomicU8,
    online: AtomicBool,
    ticks: AtomicU64,
    /// Timer interrupts' lateness, deadline (CVAL) to handler, in counter ticks.
    late_sum: AtomicU64,
    late_max: AtomicU64,
    uart: AtomicU64,
    ipis: AtomicU64,
    /// Device interrupts ([`register_device`]).
    devices: AtomicU64,
    spurious: AtomicU64,
    /// Last ping sequence number received, and answered.
    ping: AtomicU64,
    pong: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const PER_CPU_INIT: PerCpu = PerCpu {
    mpidr: AtomicU64::new(0),
    mask: AtomicU8::new(0),
    online: AtomicBool::new(false),
    ticks: AtomicU64::new(0),
    late_sum: AtomicU64::new(0),
    late_max: AtomicU64::new(0),
    uart: AtomicU64::new(0),
    ipis: AtomicU64::new(0),
    devices: AtomicU64::new(0),
    spurious: AtomicU64::new(0),
    ping: AtomicU64::new(0),
    pong: AtomicU64::new(0),
};
static PER_CPU: [PerCpu; MAX_CPUS] = [PER_CPU_INIT; MAX_CPUS];
/// The tick period in counter ticks.
static PERIOD: AtomicU64 = AtomicU64::new(0);
/// The index of the CPU whose next tick runs [`TICK_JOB`] ([`NO_CPU`]: none).
static JOB_CPU: AtomicUsize = AtomicUsize::new(NO_CPU);
const NO_CPU: usize = usize::MAX;
/// What that tick runs (see [`run_from_next_tick`]).
static TICK_JOB: spin::Mutex<Option<fn()>> = spin::Mutex::new(None);

/// A device's interrupt: `handler(regs)` runs in the IRQ handler, and touches only that
/// device's registers (to acknowledge it) and atomics; whoever waits for the device wakes
/// from `wfi` ([`wait_for`]) and looks at the device itself.
struct DeviceIrq {
    intid: u32,
    handler: fn(Regs),
    regs: Regs,
}

/// Registered device interrupts (written with IRQs masked on the writing CPU, so that its
/// own handler never waits for the lock it holds).
static DEVICE_IRQS: spin::Mutex<alloc::vec::Vec<DeviceIrq>> =
    spin::Mutex::new(alloc::vec::Vec::new());

/// Routes the device interrupt `intid` to this CPU and runs `handler(regs)` when it comes.
/// `false` when there is no GIC to route it (the caller then polls).
pub fn register_device(intid: u32, handler: fn(Regs), regs: Regs) -> bool {
    let Some(gic) = gic() else { return false };
    let masked = arch::mask_irq();
    DEVICE_IRQS.lock().push(DeviceIrq {
        intid,
        handler,
        regs,
    });
    arch::restore_irq(masked);
    gic.enable(intid, arch::mpidr());
    true
}

/// The GIC, once [`init_boot_cpu`] mapped it (`None`: the DTB names none this kernel drives).
pub fn gic() -> Option<&'static Gic> {
    GIC.get().and_then(Option::as_ref)
}

fn this() -> Option<&'static PerCpu> {
    PER_CPU.get(arch::cpu_index())
}

fn map_gic() -> Option<Gic> {
    let g = SYSTEM.get()?.platform.gic.clone()?;
    let map = |r: mm::memmap::Region| match memory::map_device(r) {
        Ok(va) => Some((va as usize, r.size() as usize)),
        Err(e) => {
            println!("irq: cannot map the GIC at {r}: {e}");
            None
        }
    };
    let dist = map(g.dist)?;
    let cpu = match g.cpu {
        Some(c) => Some(map(c)?),
        None => None,
    };
    // memory::init mapped the redistributors already (it had to stop LPIs before handing
    // out frames).
    let redist = memory::redistributor_windows().to_vec();
    if redist.len() != g.redist.len() {
        println!("irq: cannot map every GICv3 redistributor region the DTB lists");
        return None;
    }
    if g.version == 2 && cpu.is_none() {
        println!("irq: the GICv2 in the DTB has no CPU interface region");
        return None;
    }
    // SAFETY: every region was just mapped as Device memory and stays mapped.
    Some(unsafe { Gic::new(g.version, dist, cpu, redist) })
}

/// The boot CPU: maps and resets the GIC (whatever state it was left in), sets up its own
/// interface, the console's receive interrupt and the tick, and unmasks IRQs.
pub fn init_boot_cpu(index: usize) {
    let gic = GIC.call_once(map_gic);
    let Some(gic) = gic.as_ref() else {
        println!("irq: no GIC this kernel drives: no tick, no interrupts");
        return;
    };
    gic.reset_distributor(arch::mpidr());
    init_cpu(gic, index);
    let sys = SYSTEM.get().expect("booted");
    if let Some(irq) = sys.platform.console.uart().and_then(|c| c.irq) {
        gic.enable(irq, arch::mpidr());
        console::enable_rx_interrupt();
    }
    for l in memory::live_lpis() {
        println!(
            "irq: cpu {:#x}: the previous kernel left LPIs on (PROPBASER {:#x}, PENDBASER {:#x}): {}",
            l.mpidr,
            l.propbaser,
            l.pendbaser,
            if l.disabled {
                "turned them off"
            } else {
                "EnableLPIs stays set, its tables stay reserved"
            }
        );
    }
}

/// A secondary CPU, from `secondary_main`: its interface and tick, IRQs unmasked.
pub fn init_secondary(index: usize) {
    if let Some(gic) = gic() {
        init_cpu(gic, index);
    }
}

fn init_cpu(gic: &Gic, index: usize) {
    let mpidr = arch::mpidr();
    if let Err(e) = gic.init_cpu(mpidr) {
        return println!("irq: cpu {mpidr:#x}: {e}");
    }
    if let Some(p) = PER_CPU.get(index) {
        p.mpidr.store(mpidr, Ordering::Relaxed);
        p.mask.store(gic.cpu_mask(), Ordering::Relaxed);
        p.online.store(true, Ordering::Release);
    }
    gic.enable(sgi::PING, mpidr);
    gic.enable(sgi::WAKE, mpidr);
    if let Some(t) = SYSTEM.get().and_then(|s| s.platform.timer_irq) {
        gic.enable(t, mpidr);
        let period = arch::counter_hz() / HZ;
        PERIOD.store(period, Ordering::Relaxed);
        timer::start(period);
    }
    arch::unmask_irq();
}

/// Called from the IRQ vector: handles every signalled interrupt, then returns.
pub fn handle() {
    let Some(gic) = gic() else { return };
    let timer_irq = SYSTEM.get().and_then(|s| s.platform.timer_irq);
    let uart_irq = SYSTEM
        .get()
        .and_then(|s| s.platform.console.uart())
        .and_then(|c| c.irq);
    let me = this();
    let mut handled = false;
    while let Some(id) = gic.ack() {
        handled = true;
        if Some(id) == timer_irq {
            tick(me);
            if JOB_CPU.load(Ordering::Acquire) == arch::cpu_index() {
                // The tick stays active (not yet ended) while the job runs.
                let job = TICK_JOB.lock().take();
                if let Some(job) = job {
                    job();
                }
                JOB_CPU.store(NO_CPU, Ordering::Release);
            }
        } else if Some(id) == uart_irq {
            console::rx_interrupt();
            if let Some(p) = me {
                p.uart.fetch_add(1, Ordering::Relaxed);
            }
        } else if id == sgi::PING {
            if let Some(p) = me {
                p.ipis.fetch_add(1, Ordering::Relaxed);
                p.pong
                    .store(p.ping.load(Ordering::Acquire), Ordering::Release);
            }
        } else if id == sgi::WAKE {
            if let Some(p) = me {
                p.ipis.fetch_add(1, Ordering::Relaxed);
            }
        } else if let Some(d) = DEVICE_IRQS.lock().iter().find(|d| d.intid == id) {
            (d.handler)(d.regs);
            if let Some(p) = me {
                p.devices.fetch_add(1, Ordering::Relaxed);
            }
        } else if let Some(p) = me {
            p.spurious.fetch_add(1, Ordering::Relaxed);
        }
        gic.eoi(id);
    }
    if !handled {
        if let Some(p) = me {
            p.spurious.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn tick(me: Option<&PerCpu>) {
    let period = PERIOD.load(Ordering::Relaxed);
    let late = timer::rearm(period);
    if let Some(p) = me {
        p.ticks.fetch_add(1, Ordering::Relaxed);
        p.late_sum.fetch_add(late, Ordering::Relaxed);
        p.late_max.fetch_max(late, Ordering::Relaxed);
    }
}

/// Waits for an interrupt with IRQs masked around `ready`, so that one arriving between
/// the check and the `wfi` still ends the `wfi`: returns `ready()`'s first `Some`. While it
/// waits, this CPU's tick is stretched to [`IDLE_TICK_MS`] apart (a slower tick when idle);
/// it runs at [`HZ`] again from the moment the CPU wakes.
pub fn wait_for<T>(ready: impl FnMut() -> Option<T>) -> T {
    wait_until(None, ready)
}

/// [`wait_for`], with a tick no later than `deadline` (virtual counter) while it waits.
pub fn wait_until<T>(deadline: Option<u64>, mut ready: impl FnMut() -> Option<T>) -> T {
    let period = PERIOD.load(Ordering::Relaxed);
    let ticking = period != 0 && this().is_some_and(|p| p.online.load(Ordering::Relaxed));
    loop {
        let masked = arch::mask_irq();
        let r = ready();
        if r.is_none() {
            if ticking {
                let idle = timer::now() + IDLE_TICK_MS * arch::counter_hz() / 1000;
                timer::set_deadline(deadline.map_or(idle, |d| d.min(idle)));
            }
            aarch64_cpu::asm::wfi();
            if ticking && !timer::due() {
                // Woken by something else: the periodic tick again. (A tick that is due
                // stays due, and its handler sets the next one.)
                timer::set_deadline(timer::now() + period);
            }
        }
        arch::restore_irq(masked);
        if let Some(v) = r {
            return v;
        }
    }
}

/// Wakes the CPU `index` from `wfi` (SGI [`sgi::WAKE`]).
pub fn wake(index: usize) {
    if let (Some(gic), Some(p)) = (gic(), PER_CPU.get(index)) {
        if p.online.load(Ordering::Acquire) {
            gic.send_sgi(
                sgi::WAKE,
                p.mpidr.load(Ordering::Relaxed),
                p.mask.load(Ordering::Relaxed),
            );
        }
    }
}

/// This CPU leaves for good (kexec): IRQs masked, its timer stopped, its interface off with
/// active priorities dropped and its private interrupts quiet.
pub fn leave_cpu() {
    arch::mask_all();
    arch::timers_off();
    if let Some(gic) = gic() {
        gic.quiesce_cpu(arch::mpidr());
    }
    if let Some(p) = this() {
        p.online.store(false, Ordering::Release);
    }
}

/// The boot CPU, last before a kexec: as [`leave_cpu`], and the whole GIC quiet.
pub fn leave_all() {
    arch::mask_all();
    arch::timers_off();
    if let Some(gic) = gic() {
        gic.quiesce_all(arch::mpidr());
    }
}

/// There is no tick to run a job from: no GIC this kernel drives, or no timer interrupt in
/// the DTB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoTick;

/// Runs `job` from inside this CPU's next timer interrupt handler, idling until it has run
/// (the chain's `kexec.from_irq` runs `kexec -e` there, which returns only if it failed).
pub fn run_from_next_tick(job: fn()) -> Result<(), NoTick> {
    if gic().is_none() || SYSTEM.get().and_then(|s| s.platform.timer_irq).is_none() {
        return Err(NoTick);
    }
    *TICK_JOB.lock() = Some(job);
    JOB_CPU.store(arch::cpu_index(), Ordering::Release);
    let next_tick = timer::now() + PERIOD.load(Ordering::Relaxed);
    wait_until(Some(next_tick), || {
        (JOB_CPU.load(Ordering::Acquire) == NO_CPU).then_some(())
    });
    Ok(())
}

/// The `ipi` command: pings every other online CPU with an SGI and prints the round trip.
pub fn ping() -> Result<(), alloc::string::String> {
    let gic = gic().ok_or("no GIC")?;
    let me = arch::cpu_index();
    let mut any = false;
    for (i, p) in PER_CPU.iter().enumerate() {
        if i == me || !p.online.load(Ordering::Acquire) {
            continue;
        }
        any = true;
        let seq = p.ping.load(Ordering::Relaxed) + 1;
        p.ping.store(seq, Ordering::Release);
        let t0 = arch::ticks();
        gic.send_sgi(
            sgi::PING,
            p.mpidr.load(Ordering::Relaxed),
            p.mask.load(Ordering::Relaxed),
        );
        let answered = loop {
            if p.pong.load(Ordering::Acquire) == seq {
                break true;
            }
            if arch::ticks_to_us(arch::ticks() - t0) > 1_000_000 {
                break false;
            }
            core::hint::spin_loop();
        };
        let rtt = arch::ticks() - t0;
        let mpidr = p.mpidr.load(Ordering::Relaxed);
        if answered {
            println!(
                "ipi: cpu{i} mpidr={mpidr:#x} rtt_us={} rtt_ticks={rtt}",
                arch::ticks_to_us(rtt)
            );
        } else {
            println!("ipi: cpu{i} mpidr={mpidr:#x} no answer within 1000 ms");
        }
    }
    if !any {
        println!("ipi: no other CPU online");
    }
    Ok(())
}

/// One CPU's interrupt counts, for `cpus` and `irqs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Timer interrupts taken.
    pub ticks: u64,
    /// Their lateness, deadline to handler: mean and maximum, in µs.
    pub late_mean_us: u64,
    /// See `late_mean_us`.
    pub late_max_us: u64,
    /// Console receive interrupts.
    pub uart: u64,
    /// SGIs received.
    pub ipis: u64,
    /// Device interrupts (a disk's request done).
    pub devices: u64,
    /// Interrupts acknowledged that nobody handles, and empty acknowledges.
    pub spurious: u64,
}

/// The counts of the CPU with DTB index `index`.
pub fn stats(index: usize) -> Option<Stats> {
    let p = PER_CPU.get(index)?;
    let ticks = p.ticks.load(Ordering::Relaxed);
    let mean = p.late_sum.load(Ordering::Relaxed) / ticks.max(1);
    Some(Stats {
        ticks,
        late_mean_us: arch::ticks_to_us(mean),
        late_max_us: arch::ticks_to_us(p.late_max.load(Ordering::Relaxed)),
        uart: p.uart.load(Ordering::Relaxed),
        ipis: p.ipis.load(Ordering::Relaxed),
        devices: p.devices.load(Ordering::Relaxed),
        spurious: p.spurious.load(Ordering::Relaxed),
    })
}

/// The `irqs` command.
pub fn list() {
    let Some(gic) = gic() else {
        return println!("irqs: no GIC");
    };
    let sys = SYSTEM.get().expect("booted");
    println!(
        "irqs: GICv{} tick={HZ}Hz timer_intid={} uart_intid={}",
        gic.version,
        sys.platform
            .timer_irq
            .map_or("-".into(), |i| alloc::format!("{i}")),
        sys.platform
            .console
            .uart()
            .and_then(|c| c.irq)
            .map_or("-".into(), |i| alloc::format!("{i}")),
    );
    for (i, p) in PER_CPU.iter().enumerate() {
        if p.ticks.load(Ordering::Relaxed) == 0 && !p.online.load(Ordering::Relaxed) {
            continue;
        }
        let st = stats(i).unwrap_or_default();
        println!(
            "cpu{i}  ticks={} timer_late_us_mean={} timer_late_us_max={} uart={} ipi={} spurious={} devices={}",
            st.ticks, st.late_mean_us, st.late_max_us, st.uart, st.ipis, st.spurious, st.devices
        );
    }
}
