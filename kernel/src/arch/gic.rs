//! The GIC: GICv2 (the GIC-400 of the Raspberry Pi 4 and Juno, QEMU's default) and GICv3
//! (QEMU `gic-version=3`, with its redistributors), from the DTB.
//!
//! A kernel that arrives by kexec finds the GIC as the previous kernel left it: enabled,
//! interrupts enabled, pending or active, a CPU interface with active priorities (when the
//! previous kernel jumped from inside a handler), redistributors asleep or with LPIs on. So
//! nothing is assumed: [`Gic::reset_distributor`] (once, on the boot CPU) and
//! [`Gic::init_cpu`] (on every CPU) disable, un-pend and deactivate every interrupt, wake the
//! redistributor, clear the active priorities and drain the CPU interface, and only then
//! enable anything. [`Gic::quiesce_cpu`] and [`Gic::quiesce_all`] leave it that way for the
//! next kernel.
//!
//! Every interrupt is Group 1 at priority [`PRIORITY`], level-sensitive, routed to the boot
//! CPU (SPIs). Register offsets are from the GIC architecture specification (IHI 0048B for
//! GICv2, IHI 0069H for GICv3), named below.

use super::mmio::Regs;
use core::arch::asm;

/// The priority of every interrupt this kernel enables (lower is more urgent).
pub const PRIORITY: u8 = 0xa0;
/// The CPU interface's priority mask: everything more urgent than this is signalled.
const PRIORITY_MASK: u32 = 0xf0;
/// INTIDs from here up are special (1020-1023: spurious and friends).
const SPECIAL: u32 = 1020;
/// SGIs are INTIDs 0..16, PPIs 16..32, SPIs from 32.
const FIRST_SPI: u32 = 32;
/// The most interrupts a drain loop acknowledges before giving up (a GIC that keeps
/// signalling is broken; the loop must end).
const DRAIN_LIMIT: u32 = 1024;

/// Distributor registers (offsets from `GICD` base), GICv2 and GICv3.
mod gicd {
    pub const CTLR: usize = 0x000;
    pub const TYPER: usize = 0x004;
    /// `TYPER.ITLinesNumber`: 32 * (N + 1) interrupt lines.
    pub const TYPER_IT_LINES_MASK: u32 = 0x1f;
    /// `TYPER.SecurityExtn`.
    pub const TYPER_SECURITY_EXTN: u32 = 1 << 10;
    pub const IGROUPR: usize = 0x080;
    pub const ISENABLER: usize = 0x100;
    pub const ICENABLER: usize = 0x180;
    pub const ICPENDR: usize = 0x280;
    pub const ICACTIVER: usize = 0x380;
    pub const IPRIORITYR: usize = 0x400;
    /// GICv2: `ITARGETSR` (one byte per interrupt: the CPU interfaces it goes to).
    pub const ITARGETSR: usize = 0x800;
    pub const ICFGR: usize = 0xc00;
    /// GICv2: software-generated interrupts.
    pub const SGIR: usize = 0xf00;
    /// GICv2: `SGIR.TargetListFilter` = 0 (the list), `CPUTargetList` at bit 16.
    pub const SGIR_TARGETS_SHIFT: u32 = 16;
    /// GICv2: `CPENDSGIR` (clears pending SGIs, a byte per SGI).
    pub const CPENDSGIR: usize = 0xf10;
    /// GICv3: `IROUTER<n>` (64-bit, affinity routing), for SPI n at 0x6000 + 8n.
    pub const IROUTER: usize = 0x6000;
    /// `CTLR` (non-secure view / single security state): enable Group 1 (bit 0 NS, bit 1
    /// with DS=1 or as Group 1A), affinity routing (GICv3).
    pub const CTLR_ENABLE_G1: u32 = 1 << 0;
    pub const CTLR_ENABLE_G1A: u32 = 1 << 1;
    pub const CTLR_ARE_NS: u32 = 1 << 4;
    /// GICv3 `CTLR.RWP`: a write to CTLR is still in progress.
    pub const CTLR_RWP: u32 = 1 << 31;
}

/// GICv2 CPU interface registers (offsets from `GICC` base).
mod gicc {
    pub const CTLR: usize = 0x000;
    /// `CTLR.EnableGrp1` in the non-secure view (`EnableGrp0` without security extensions).
    pub const CTLR_ENABLE: u32 = 1 << 0;
    pub const PMR: usize = 0x004;
    pub const BPR: usize = 0x008;
    pub const IAR: usize = 0x00c;
    pub const EOIR: usize = 0x010;
    /// `IAR.InterruptID`.
    pub const IAR_ID_MASK: u32 = 0x3ff;
    /// Active priorities, four words.
    pub const APR: usize = 0x0d0;
}

/// GICv3 redistributor registers: `RD_base` frame, then the `SGI_base` frame 64 KiB above.
mod gicr {
    pub const CTLR: usize = 0x0000;
    /// `CTLR.EnableLPIs`.
    pub const CTLR_ENABLE_LPIS: u32 = 1 << 0;
    /// `CTLR.RWP`: a write is still in progress.
    pub const CTLR_RWP: u32 = 1 << 3;
    /// `TYPER` (64-bit): `Affinity` in bits 63:32, `Last` bit 4, `VLPIS` bit 1.
    pub const TYPER: usize = 0x0008;
    pub const TYPER_LAST: u64 = 1 << 4;
    pub const TYPER_VLPIS: u64 = 1 << 1;
    pub const TYPER_AFFINITY_SHIFT: u32 = 32;
    pub const WAKER: usize = 0x0014;
    /// `WAKER.ProcessorSleep`, `WAKER.ChildrenAsleep`.
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
    pub const PROPBASER: usize = 0x0070;
    pub const PENDBASER: usize = 0x0078;
    /// The frames of one redistributor: RD + SGI (+ VLPI + reserved with `VLPIS`).
    pub const FRAME: usize = 0x1_0000;
    pub const SGI: usize = FRAME;
    /// In the SGI frame: the private interrupts' group, enables, pending, active, priority
    /// and configuration registers, at the distributor's offsets for INTIDs 0..32.
    pub const IGROUPR0: usize = SGI + 0x080;
    pub const ISENABLER0: usize = SGI + 0x100;
    pub const ICENABLER0: usize = SGI + 0x180;
    pub const ICPENDR0: usize = SGI + 0x280;
    pub const ICACTIVER0: usize = SGI + 0x380;
    pub const IPRIORITYR: usize = SGI + 0x400;
    pub const ICFGR1: usize = SGI + 0xc04;
}

/// GICv3 CPU interface (system registers) bits.
mod icc {
    /// `ICC_SRE_EL1`: system-register interface on, FIQ and IRQ bypass disabled.
    pub const SRE_ENABLE: u64 = 0b111;
    /// `ICC_CTLR_EL1.PRIbits` (bits 10:8): priority bits implemented, minus one.
    pub const CTLR_PRIBITS_SHIFT: u64 = 8;
    pub const CTLR_PRIBITS_MASK: u64 = 0x7;
    /// `ICC_SGI1R_EL1` fields.
    pub const SGI1R_INTID_SHIFT: u64 = 24;
    pub const SGI1R_AFF1_SHIFT: u64 = 16;
    pub const SGI1R_AFF2_SHIFT: u64 = 32;
    pub const SGI1R_AFF3_SHIFT: u64 = 48;
}

/// A redistributor with LPIs enabled when this kernel found it: its tables belong to the
/// previous kernel and the GIC may still write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveLpis {
    /// The CPU (MPIDR affinity) it serves.
    pub mpidr: u64,
    /// `GICR_PROPBASER` and `GICR_PENDBASER` as found.
    pub propbaser: u64,
    /// See `propbaser`.
    pub pendbaser: u64,
    /// Whether clearing `EnableLPIs` took (it may not: IMPLEMENTATION DEFINED).
    pub disabled: bool,
}

/// A mapped GIC.
#[derive(Clone, Debug)]
pub struct Gic {
    /// 2 or 3.
    pub version: u8,
    /// The distributor.
    dist: Regs,
    /// The GICv2 CPU interface ([`Regs::NONE`] on a GICv3).
    cpu: Regs,
    /// GICv3: the redistributor regions.
    redist: alloc::vec::Vec<Regs>,
    /// Interrupt lines the distributor implements (a multiple of 32).
    lines: u32,
    /// GICv2: the distributor has the security extensions (so this non-secure kernel sees
    /// only Group 1, which firmware set up).
    security: bool,
}

/// Reads or writes a GICv3 CPU-interface system register (`aarch64-cpu` has no `ICC_*_EL1`).
macro_rules! icc_read {
    ($reg:literal) => {{
        let v: u64;
        // SAFETY: reading a GICv3 CPU-interface register has no side effect but for IAR
        // (acknowledge), which callers use on purpose; SRE is enabled before any is read.
        unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) };
        v
    }};
}
macro_rules! icc_write {
    ($reg:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: writing the GICv3 CPU-interface registers changes only what this CPU
        // signals; callers order them as the architecture requires (isb after SRE, IGRPEN).
        unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nomem, nostack)) };
    }};
}

fn isb() {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// This CPU's affinity as GICR_TYPER.Affinity encodes it: Aff3.Aff2.Aff1.Aff0, a byte each.
fn packed_affinity(mpidr: u64) -> u64 {
    (mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000)
}

impl Gic {
    /// A GIC whose registers are mapped at these (VA, size) blocks, as the DTB sizes them.
    ///
    /// # Safety
    /// `dist`, `cpu` (GICv2 only) and every `redist` region must map this GIC's registers as
    /// Device memory, for as long as the kernel runs.
    pub unsafe fn new(
        version: u8,
        dist: (usize, usize),
        cpu: Option<(usize, usize)>,
        redist: alloc::vec::Vec<(usize, usize)>,
    ) -> Self {
        // SAFETY: the caller's promise, for each block.
        let (dist, cpu, redist) = unsafe {
            (
                Regs::new(dist.0, dist.1),
                cpu.map_or(Regs::NONE, |(va, len)| Regs::new(va, len)),
                redist.iter().map(|&(va, len)| Regs::new(va, len)).collect(),
            )
        };
        let typer = dist.read32(gicd::TYPER);
        let lines = 32 * ((typer & gicd::TYPER_IT_LINES_MASK) + 1);
        Gic {
            version,
            dist,
            cpu,
            redist,
            lines: lines.min(SPECIAL),
            security: version == 2 && typer & gicd::TYPER_SECURITY_EXTN != 0,
        }
    }

    fn wait_dist(&self) {
        if self.version == 3 {
            while self.dist.read32(gicd::CTLR) & gicd::CTLR_RWP != 0 {
                core::hint::spin_loop();
            }
        }
    }

    fn redistributors(&self) -> impl Iterator<Item = (Regs, u64)> + '_ {
        redistributors(&self.redist)
    }

    /// This CPU's redistributor (from `RD_base`), if the DTB's regions hold one for it.
    fn my_redistributor(&self, mpidr: u64) -> Option<Regs> {
        let me = packed_affinity(mpidr);
        self.redistributors()
            .find(|&(_, aff)| aff == me)
            .map(|(rd, _)| rd)
    }

    /// Disables, un-pends and deactivates every shared interrupt, then sets them up (Group 1,
    /// [`PRIORITY`], level, routed to `boot_mpidr`, or GICv2 CPU interface mask `boot_mask`)
    /// and enables the distributor. Run once, on the boot CPU, before any CPU enables its
    /// interface.
    pub fn reset_distributor(&self, boot_mpidr: u64) {
        let d = self.dist;
        d.write32(gicd::CTLR, 0);
        self.wait_dist();
        let priority = u32::from_ne_bytes([PRIORITY; 4]);
        for word in (FIRST_SPI / 32)..(self.lines / 32) {
            let w = 4 * word as usize;
            d.write32(gicd::ICENABLER + w, u32::MAX);
            d.write32(gicd::ICPENDR + w, u32::MAX);
            d.write32(gicd::ICACTIVER + w, u32::MAX);
            // Group 1 (GICv3, and GICv2 without security extensions: there Group 0 would
            // be signalled as IRQ too, but one group everywhere keeps this simple). With
            // security extensions these are the secure world's: RAZ/WI from here.
            if !self.security {
                d.write32(
                    gicd::IGROUPR + w,
                    if self.version == 3 { u32::MAX } else { 0 },
                );
            }
        }
        // A byte per interrupt in IPRIORITYR and ITARGETSR, two bits in ICFGR.
        let targets = u32::from_ne_bytes([self.cpu_mask(); 4]);
        for n in (FIRST_SPI..self.lines).step_by(4) {
            d.write32(gicd::IPRIORITYR + n as usize, priority);
            if self.version == 2 {
                d.write32(gicd::ITARGETSR + n as usize, targets);
            }
        }
        for n in (FIRST_SPI..self.lines).step_by(16) {
            // Level-sensitive (0b00 per interrupt), as the DTB's UARTs are.
            d.write32(gicd::ICFGR + n as usize / 4, 0);
        }
        if self.version == 3 {
            let aff = boot_mpidr & 0xff_00ff_ffff;
            for n in FIRST_SPI..self.lines {
                let route = gicd::IROUTER + 8 * n as usize;
                d.write32(route, aff as u32);
                d.write32(route + 4, (aff >> 32) as u32);
            }
        }
        self.wait_dist();
        let enable = if self.version == 3 {
            d.write32(gicd::CTLR, gicd::CTLR_ARE_NS);
            self.wait_dist();
            gicd::CTLR_ARE_NS | gicd::CTLR_ENABLE_G1 | gicd::CTLR_ENABLE_G1A
        } else {
            gicd::CTLR_ENABLE_G1
        };
        d.write32(gicd::CTLR, enable);
        self.wait_dist();
    }

    /// GICv2: this CPU's interface number as a target mask (ITARGETSR0..7 read as the
    /// reading CPU's own bit).
    pub fn cpu_mask(&self) -> u8 {
        if self.version != 2 {
            return 0;
        }
        (0..8)
            .map(|i| self.dist.read32(gicd::ITARGETSR + 4 * i))
            .map(|w| (w | w >> 8 | w >> 16 | w >> 24) as u8)
            .find(|&m| m != 0)
            .unwrap_or(1)
    }

    /// Resets this CPU's private interrupts (SGIs and PPIs) and its CPU interface as if
    /// from power-on (waking its GICv3 redistributor, clearing active priorities, draining
    /// anything still signalled), then enables the interface. (LPIs a previous kernel left
    /// on were dealt with at boot: [`take_over_lpis`].)
    pub fn init_cpu(&self, mpidr: u64) -> Result<(), &'static str> {
        let priority = u32::from_ne_bytes([PRIORITY; 4]);
        if self.version == 3 {
            let rd = self
                .my_redistributor(mpidr)
                .ok_or("no GICv3 redistributor for this CPU in the DTB's regions")?;
            // Wake-up: ProcessorSleep off, then wait for ChildrenAsleep to clear.
            let waker = rd.read32(gicr::WAKER);
            rd.write32(gicr::WAKER, waker & !gicr::WAKER_PROCESSOR_SLEEP);
            while rd.read32(gicr::WAKER) & gicr::WAKER_CHILDREN_ASLEEP != 0 {
                core::hint::spin_loop();
            }
            rd.write32(gicr::ICENABLER0, u32::MAX);
            rd.write32(gicr::ICPENDR0, u32::MAX);
            rd.write32(gicr::ICACTIVER0, u32::MAX);
            rd.write32(gicr::IGROUPR0, u32::MAX);
            for i in 0..8 {
                rd.write32(gicr::IPRIORITYR + 4 * i, priority);
            }
            rd.write32(gicr::ICFGR1, 0);
            while rd.read32(gicr::CTLR) & gicr::CTLR_RWP != 0 {
                core::hint::spin_loop();
            }
            icc_write!("icc_sre_el1", icc_read!("icc_sre_el1") | icc::SRE_ENABLE);
            isb();
            icc_write!("icc_igrpen1_el1", 0);
            icc_write!("icc_pmr_el1", u64::from(PRIORITY_MASK));
            icc_write!("icc_bpr1_el1", 0);
            icc_write!("icc_ctlr_el1", 0); // EOImode 0: EOI drops priority and deactivates
            clear_active_priorities_v3();
            isb();
        } else {
            let (d, c) = (self.dist, self.cpu);
            c.write32(gicc::CTLR, 0);
            d.write32(gicd::ICENABLER, u32::MAX);
            d.write32(gicd::ICPENDR, u32::MAX);
            d.write32(gicd::ICACTIVER, u32::MAX);
            for i in 0..4 {
                d.write32(gicd::CPENDSGIR + 4 * i, u32::MAX);
            }
            if !self.security {
                d.write32(gicd::IGROUPR, 0);
            }
            for i in 0..8 {
                d.write32(gicd::IPRIORITYR + 4 * i, priority);
            }
            c.write32(gicc::PMR, PRIORITY_MASK);
            c.write32(gicc::BPR, 0);
            for i in 0..4 {
                c.write32(gicc::APR + 4 * i, 0);
            }
        }
        // Anything still signalled (it should be nothing): acknowledge and end it.
        for _ in 0..DRAIN_LIMIT {
            match self.ack() {
                Some(id) => self.eoi(id),
                None => break,
            }
        }
        if self.version == 3 {
            icc_write!("icc_igrpen1_el1", 1);
            isb();
        } else {
            self.cpu.write32(gicc::CTLR, gicc::CTLR_ENABLE);
        }
        Ok(())
    }

    /// Enables interrupt `intid`: an SPI for everyone, an SGI or PPI for this CPU (whose
    /// redistributor is `mpidr`'s).
    pub fn enable(&self, intid: u32, mpidr: u64) {
        let (word, bit) = (4 * (intid as usize / 32), 1 << (intid % 32));
        if intid < FIRST_SPI && self.version == 3 {
            if let Some(rd) = self.my_redistributor(mpidr) {
                rd.write32(gicr::ISENABLER0, bit);
            }
        } else {
            self.dist.write32(gicd::ISENABLER + word, bit);
        }
    }

    /// Acknowledges the most urgent signalled interrupt, if any.
    pub fn ack(&self) -> Option<u32> {
        let id = if self.version == 3 {
            icc_read!("icc_iar1_el1") as u32
        } else {
            self.cpu.read32(gicc::IAR) & gicc::IAR_ID_MASK
        };
        (id < SPECIAL).then_some(id)
    }

    /// Ends interrupt `intid` (priority drop and deactivation).
    pub fn eoi(&self, intid: u32) {
        if self.version == 3 {
            icc_write!("icc_eoir1_el1", u64::from(intid));
            isb();
        } else {
            self.cpu.write32(gicc::EOIR, intid);
        }
    }

    /// Sends SGI `sgi` to the CPU `mpidr` (GICv3), or with interface mask `mask` (GICv2).
    pub fn send_sgi(&self, sgi: u32, mpidr: u64, mask: u8) {
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        if self.version == 3 {
            let target_list = 1u64 << (mpidr & 0xf);
            let v = (u64::from(sgi) << icc::SGI1R_INTID_SHIFT)
                | (((mpidr >> 8) & 0xff) << icc::SGI1R_AFF1_SHIFT)
                | (((mpidr >> 16) & 0xff) << icc::SGI1R_AFF2_SHIFT)
                | (((mpidr >> 32) & 0xff) << icc::SGI1R_AFF3_SHIFT)
                | target_list;
            icc_write!("icc_sgi1r_el1", v);
            isb();
        } else {
            self.dist.write32(
                gicd::SGIR,
                (u32::from(mask) << gicd::SGIR_TARGETS_SHIFT) | sgi,
            );
        }
    }

    /// Before this CPU leaves for good (kexec): its interface off and its active priorities
    /// dropped, its private interrupts disabled, un-pended and deactivated. Interrupts must
    /// be masked.
    pub fn quiesce_cpu(&self, mpidr: u64) {
        if self.version == 3 {
            icc_write!("icc_igrpen1_el1", 0);
            isb();
            clear_active_priorities_v3();
            if let Some(rd) = self.my_redistributor(mpidr) {
                rd.write32(gicr::ICENABLER0, u32::MAX);
                rd.write32(gicr::ICPENDR0, u32::MAX);
                rd.write32(gicr::ICACTIVER0, u32::MAX);
            }
        } else {
            self.cpu.write32(gicc::CTLR, 0);
            for i in 0..4 {
                self.cpu.write32(gicc::APR + 4 * i, 0);
            }
            self.dist.write32(gicd::ICENABLER, u32::MAX);
            self.dist.write32(gicd::ICPENDR, u32::MAX);
            self.dist.write32(gicd::ICACTIVER, u32::MAX);
            for i in 0..4 {
                self.dist.write32(gicd::CPENDSGIR + 4 * i, u32::MAX);
            }
        }
    }

    /// The last CPU before a kexec: the distributor off with every shared interrupt
    /// disabled, un-pended and deactivated, every redistributor's private interrupts too,
    /// and this CPU's interface as [`Gic::quiesce_cpu`] leaves it.
    pub fn quiesce_all(&self, mpidr: u64) {
        self.quiesce_cpu(mpidr);
        let d = self.dist;
        d.write32(gicd::CTLR, 0);
        self.wait_dist();
        for word in (FIRST_SPI / 32)..(self.lines / 32) {
            let w = 4 * word as usize;
            d.write32(gicd::ICENABLER + w, u32::MAX);
            d.write32(gicd::ICPENDR + w, u32::MAX);
            d.write32(gicd::ICACTIVER + w, u32::MAX);
        }
        self.wait_dist();
        let rds: alloc::vec::Vec<Regs> = self.redistributors().map(|(rd, _)| rd).collect();
        for rd in rds {
            rd.write32(gicr::ICENABLER0, u32::MAX);
            rd.write32(gicr::ICPENDR0, u32::MAX);
            rd.write32(gicr::ICACTIVER0, u32::MAX);
        }
    }
}

/// Every redistributor in the regions `redist`: its frames (from `RD_base`) and the
/// affinity it serves (`GICR_TYPER.Affinity`), frame by frame until `GICR_TYPER.Last`.
fn redistributors(redist: &[Regs]) -> impl Iterator<Item = (Regs, u64)> + '_ {
    redist.iter().flat_map(|region| {
        let mut at = Some(0);
        core::iter::from_fn(move || {
            let offset = at?;
            if offset + 2 * gicr::FRAME > region.size() {
                return None;
            }
            let typer = region.sub(offset, 2 * gicr::FRAME).read64(gicr::TYPER);
            let frames = if typer & gicr::TYPER_VLPIS != 0 { 4 } else { 2 };
            let frames = frames.min((region.size() - offset) / gicr::FRAME);
            at = (typer & gicr::TYPER_LAST == 0).then_some(offset + frames * gicr::FRAME);
            Some((
                region.sub(offset, frames * gicr::FRAME),
                typer >> gicr::TYPER_AFFINITY_SHIFT,
            ))
        })
    })
}

/// At boot, before any frame is allocated: every redistributor that a previous kernel left
/// with `EnableLPIs` set is asked to stop (clearing the bit may not be supported: it is
/// IMPLEMENTATION DEFINED once set). Returns what was found, so that tables still in use
/// can be reserved.
///
/// # Safety
/// Each `(va, size)` must map a GICv3 redistributor region as Device memory.
pub unsafe fn take_over_lpis(redist: &[(usize, usize)]) -> alloc::vec::Vec<LiveLpis> {
    let redist: alloc::vec::Vec<Regs> = redist
        .iter()
        // SAFETY: each region maps a redistributor region as Device memory (the caller's
        // promise).
        .map(|&(va, len)| unsafe { Regs::new(va, len) })
        .collect();
    let mut found = alloc::vec::Vec::new();
    for (rd, aff) in redistributors(&redist) {
        let ctlr = rd.read32(gicr::CTLR);
        if ctlr & gicr::CTLR_ENABLE_LPIS == 0 {
            continue;
        }
        let (propbaser, pendbaser) = (rd.read64(gicr::PROPBASER), rd.read64(gicr::PENDBASER));
        rd.write32(gicr::CTLR, ctlr & !gicr::CTLR_ENABLE_LPIS);
        while rd.read32(gicr::CTLR) & gicr::CTLR_RWP != 0 {
            core::hint::spin_loop();
        }
        let disabled = rd.read32(gicr::CTLR) & gicr::CTLR_ENABLE_LPIS == 0;
        // Back from GICR_TYPER's packed Aff3.Aff2.Aff1.Aff0 to MPIDR's layout.
        let mpidr = (aff & 0xff_ffff) | ((aff & 0xff00_0000) << 8);
        found.push(LiveLpis {
            mpidr,
            propbaser,
            pendbaser,
            disabled,
        });
    }
    found
}

/// Clears `ICC_AP1R<n>_EL1` (as many as `ICC_CTLR_EL1.PRIbits` implements): an interrupt
/// that was active when the previous kernel jumped leaves its priority there, masking every
/// interrupt of equal or lower priority until cleared.
fn clear_active_priorities_v3() {
    let pribits =
        ((icc_read!("icc_ctlr_el1") >> icc::CTLR_PRIBITS_SHIFT) & icc::CTLR_PRIBITS_MASK) + 1;
    icc_write!("icc_ap1r0_el1", 0);
    if pribits >= 6 {
        icc_write!("icc_ap1r1_el1", 0);
    }
    if pribits >= 7 {
        icc_write!("icc_ap1r2_el1", 0);
        icc_write!("icc_ap1r3_el1", 0);
    }
}
