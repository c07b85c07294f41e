//! What the kernel learns about the board from the DTB, apart from memory (`mm::memmap`):
//! the console UART (with `ranges` address translation), the PSCI conduit, the CPUs, the
//! initrd and the command line. Board differences come from here, not from constants.

pub mod gicv3;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use fdt::node::FdtNode;
use fdt::Fdt;
use mm::memmap::{cell_counts, decode_reg, Region};

/// How PSCI calls reach the firmware (`/psci` `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// `hvc #0` (a hypervisor, e.g. QEMU without EL2).
    Hvc,
    /// `smc #0` (secure firmware, e.g. TF-A).
    Smc,
}

/// The serial console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Console {
    /// The DTB path of the UART node.
    pub path: String,
    /// Physical address and size of its registers, after `ranges` translation.
    pub regs: Region,
    /// Which kind of UART.
    pub kind: UartKind,
    /// Its interrupt as a GIC INTID, if its interrupt parent is the GIC.
    pub irq: Option<u32>,
}

/// The UARTs the console drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (`arm,pl011`): QEMU virt, Juno, the Pi 4's UART0.
    Pl011,
    /// The BCM2835 auxiliary "mini UART" (`brcm,bcm2835-aux-uart`), the Pi's `serial1`
    /// (`ttyS0` to Linux), which Debian's Pi 4 DTB names in `stdout-path`.
    MiniUart,
}

/// Everything the kernel reads from the DTB at boot, apart from memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `/model`, if present.
    pub model: String,
    /// The console (see [`find_console`]) and the UARTs passed over on the way to it.
    pub console: ConsoleChoice,
    /// The PSCI conduit, if the DTB has a `/psci` node.
    pub psci: Option<PsciConduit>,
    /// The enabled CPUs listed under `/cpus`, in DTB order.
    pub cpus: Vec<CpuNode>,
    /// The initrd (`/chosen/linux,initrd-start`/`-end`), if any.
    pub initrd: Option<Region>,
    /// `/chosen/bootargs`, or empty.
    pub bootargs: String,
    /// The interrupt controller, if it is one this kernel drives.
    pub gic: Option<Gic>,
    /// The EL1 virtual timer's interrupt (`arm,armv8-timer`'s third), as a GIC INTID.
    pub timer_irq: Option<u32>,
    /// The BCM2835-style PM watchdog's registers (power-off and reset on a Raspberry Pi).
    pub pm_watchdog: Option<Region>,
    /// Memory a previous kernel handed over through kexec
    /// (`/chosen/kexec,handover-start`/`-end`).
    pub handover: Option<Region>,
    /// What an EFI stub (ours or Linux's) left in `/chosen`, if UEFI booted this system.
    pub uefi: Option<UefiInfo>,
    /// The files our EFI stub read from its own volume (the ESP's boot entries and what they
    /// name), as a cpio archive (`/chosen/hobby,esp-files-start`/`-end`).
    pub esp_files: Option<Region>,
    /// What the boot loader gave for randomness: `/chosen/rng-seed` and
    /// `/chosen/kaslr-seed` (empty if absent).
    pub rng_seed: Vec<u8>,
    /// See `rng_seed`.
    pub kaslr_seed: Vec<u8>,
    /// Entropy our EFI stub got from the firmware's EFI_RNG_PROTOCOL
    /// (`/chosen/hobby,efi-rng-seed`).
    pub efi_rng_seed: Vec<u8>,
    /// What `/chosen` says for verified kexec.
    pub trust: ChosenTrust,
}

/// The `/chosen` property our EFI stub puts the firmware's EFI_RNG_PROTOCOL bytes in (the
/// next kernel never gets it again).
pub const EFI_RNG_SEED: &str = "hobby,efi-rng-seed";

/// What `/chosen` holds for verified kexec (all empty when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChosenTrust {
    /// `hobby,kexec-verify`: the policy the kernel before ran with (`off`, `warn`,
    /// `enforce`), a floor for this one's.
    pub policy: Option<String>,
    /// `hobby,kexec-db`: the certificates and image hashes the kernel before trusted, as
    /// EFI signature lists.
    pub db: Vec<u8>,
    /// `hobby,kexec-dbx`: what the kernel before held revoked, as EFI signature lists.
    pub dbx: Vec<u8>,
    /// `hobby,uefi-db`: UEFI's `db` variable, as our EFI stub read it.
    pub uefi_db: Vec<u8>,
    /// `hobby,uefi-dbx`: UEFI's `dbx` variable, as our EFI stub read it.
    pub uefi_dbx: Vec<u8>,
    /// `linux,uefi-secure-boot` is 3 (enabled): the firmware checked the Image it started.
    pub uefi_secure_boot: bool,
}

impl ChosenTrust {
    /// Reads `/chosen`'s verified-kexec properties.
    fn from_chosen(chosen: &fdt::node::FdtNode<'_, '_>) -> Self {
        let bytes = |name| {
            chosen
                .property(name)
                .map_or(Vec::new(), |p| p.value.to_vec())
        };
        ChosenTrust {
            // Any bytes count: one that is not a known policy (not even UTF-8) is taken as
            // the strictest, never as absent.
            policy: chosen.property("hobby,kexec-verify").map(|p| {
                String::from_utf8_lossy(p.value)
                    .trim_end_matches('\0')
                    .to_string()
            }),
            db: bytes("hobby,kexec-db"),
            dbx: bytes("hobby,kexec-dbx"),
            uefi_db: bytes("hobby,uefi-db"),
            uefi_dbx: bytes("hobby,uefi-dbx"),
            uefi_secure_boot: chosen
                .property("linux,uefi-secure-boot")
                .and_then(|p| p.as_usize())
                == Some(UEFI_SECURE_BOOT_ENABLED as usize),
        }
    }
}

/// `linux,uefi-secure-boot`'s value for "enabled" (Linux's `efi_secureboot_mode_enabled`).
pub const UEFI_SECURE_BOOT_ENABLED: u32 = 3;

/// The UEFI hand-over in `/chosen`, as Linux's EFI stub writes it
/// (`drivers/firmware/efi/libstub/fdt.c`): passed on unchanged at every kexec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UefiInfo {
    /// `linux,uefi-system-table`: the EFI system table's physical address.
    pub system_table: u64,
    /// `linux,uefi-mmap-start` and `-size`: the memory map.
    pub mmap: Region,
    /// `linux,uefi-mmap-desc-size`.
    pub desc_size: u32,
    /// `linux,uefi-mmap-desc-ver`.
    pub desc_ver: u32,
}

/// The `/chosen` properties of [`UefiInfo`]: all or none.
const UEFI_PROPS: [&str; 5] = [
    "linux,uefi-system-table",
    "linux,uefi-mmap-start",
    "linux,uefi-mmap-size",
    "linux,uefi-mmap-desc-size",
    "linux,uefi-mmap-desc-ver",
];

fn uefi_info(chosen: &FdtNode<'_, '_>) -> Result<Option<UefiInfo>, PlatformError> {
    let mut v = [None; 5];
    for (i, name) in UEFI_PROPS.iter().enumerate() {
        v[i] = read_u32_or_u64(chosen, "/chosen", name)?;
    }
    match v {
        [None, None, None, None, None] => Ok(None),
        [Some(system_table), Some(start), Some(size), Some(desc_size), Some(desc_ver)] => {
            Ok(Some(UefiInfo {
                system_table,
                mmap: Region {
                    start,
                    end: start.saturating_add(size),
                },
                desc_size: desc_size as u32,
                desc_ver: desc_ver as u32,
            }))
        }
        _ => Err(PlatformError::PartialUefi {
            missing: UEFI_PROPS
                .iter()
                .zip(v)
                .find(|(_, v)| v.is_none())
                .map_or("", |(n, _)| n),
        }),
    }
}

/// One CPU node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuNode {
    /// Its MPIDR affinity (`reg`).
    pub mpidr: u64,
    /// Its spin-table `cpu-release-addr`, if its `enable-method` is `spin-table` (`None`: PSCI
    /// or unknown).
    pub release_addr: Option<u64>,
    /// The node's path.
    pub path: String,
}

impl Platform {
    /// Every CPU's MPIDR, in DTB order.
    pub fn mpidrs(&self) -> Vec<u64> {
        self.cpus.iter().map(|c| c.mpidr).collect()
    }

    /// Every CPU's spin-table release address, in DTB order.
    pub fn release_addrs(&self) -> Vec<Option<u64>> {
        self.cpus.iter().map(|c| c.release_addr).collect()
    }
}

/// An Arm Generic Interrupt Controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    /// Architecture version: 2 or 3.
    pub version: u8,
    /// The distributor's registers.
    pub dist: Region,
    /// The GICv2 CPU interface's registers (GICv3 uses system registers).
    pub cpu: Option<Region>,
    /// GICv3: the redistributor regions (`#redistributor-regions` of them, default one),
    /// each a run of per-CPU redistributor frames.
    pub redist: Vec<Region>,
    /// Its `phandle`: the nodes whose `interrupt-parent` it is can interrupt through it.
    pub phandle: Option<u32>,
}

/// The GIC INTID of interrupt specifier `index` of the node at the end of `chain`, if its
/// interrupt parent (its own or its nearest ancestor's `interrupt-parent`) is the GIC with
/// phandle `gic`. GIC specifiers are three cells, `<type number flags>`: type 0 is an SPI
/// (INTID 32 + number), type 1 a PPI (INTID 16 + number).
fn gic_interrupt(chain: &[FdtNode<'_, '_>], gic: Option<u32>, index: usize) -> Option<u32> {
    /// Specifier types (the binding's `GIC_SPI`, `GIC_PPI`).
    const SPI: u64 = 0;
    const PPI: u64 = 1;
    /// SPIs are INTIDs 32..1020, PPIs 16..32.
    const SPI_COUNT: u64 = 988;
    const PPI_COUNT: u64 = 16;
    let parent = chain
        .iter()
        .rev()
        .find_map(|n| n.property("interrupt-parent"))
        .filter(|p| p.value.len() == 4)
        .map(|p| be(p.value) as u32)?;
    if Some(parent) != gic {
        return None;
    }
    let cells = chain.last()?.property("interrupts")?.value;
    let spec = cells.get(12 * index..12 * index + 12)?;
    let (kind, number) = (be(&spec[0..4]), be(&spec[4..8]));
    match kind {
        SPI if number < SPI_COUNT => Some(32 + number as u32),
        PPI if number < PPI_COUNT => Some(16 + number as u32),
        _ => None,
    }
}

/// The architected timer's interrupt for the EL1 virtual timer: the third of
/// `arm,armv8-timer`'s four (secure physical, non-secure physical, virtual, hypervisor).
fn find_timer_irq(fdt: &Fdt<'_>, gic: Option<u32>) -> Result<Option<u32>, PlatformError> {
    /// The virtual timer's position in the binding's `interrupts`.
    const VIRTUAL: usize = 2;
    const COMPATIBLE: &[&str] = &["arm,armv8-timer"];
    // Where every DTB seen puts it (QEMU, the Pi 4, Juno): no walk of the whole tree.
    if let Some(chain) = node_chain(fdt, "/timer") {
        if compatible_with(&chain[chain.len() - 1], COMPATIBLE).is_some() {
            return Ok(gic_interrupt(&chain, gic, VIRTUAL));
        }
    }
    find_node(fdt, &mut |chain, _| {
        if compatible_with(&chain[chain.len() - 1], COMPATIBLE).is_none() {
            return Ok(None);
        }
        Ok(gic_interrupt(chain, gic, VIRTUAL))
    })
}

/// `compatible` strings of the GICs this kernel knows, with their versions.
const GICS: &[(&str, u8)] = &[
    ("arm,gic-v3", 3),
    ("arm,gic-400", 2),
    ("arm,cortex-a15-gic", 2),
    ("arm,cortex-a9-gic", 2),
];

/// Depth first, the first enabled node for which `f` (given the node's chain from the root and
/// its path) returns `Some`.
fn find_node<T>(
    fdt: &Fdt<'_>,
    f: &mut impl FnMut(&[FdtNode<'_, '_>], &str) -> Result<Option<T>, PlatformError>,
) -> Result<Option<T>, PlatformError> {
    fn walk<'b, 'a, T>(
        chain: &mut Vec<FdtNode<'b, 'a>>,
        path: &mut String,
        f: &mut impl FnMut(&[FdtNode<'_, '_>], &str) -> Result<Option<T>, PlatformError>,
    ) -> Result<Option<T>, PlatformError> {
        let node = chain[chain.len() - 1];
        if is_enabled(&node) {
            if let Some(found) = f(chain, path)? {
                return Ok(Some(found));
            }
        }
        for child in node.children() {
            let len = path.len();
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(child.name);
            chain.push(child);
            let found = walk(chain, path, f)?;
            chain.pop();
            path.truncate(len);
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
    let Some(root) = fdt.find_node("/") else {
        return Ok(None);
    };
    walk(&mut alloc::vec![root], &mut String::from("/"), f)
}

fn compatible_with(node: &FdtNode<'_, '_>, names: &[&str]) -> Option<usize> {
    node.compatible()
        .and_then(|c| c.all().find_map(|s| names.iter().position(|n| *n == s)))
}

/// The GIC and the Pi's PM watchdog, in one walk over the tree (each walk costs about as
/// much as the rest of the platform's parsing): the first of each that this kernel knows.
fn find_gic_and_pm_watchdog(fdt: &Fdt<'_>) -> Result<(Option<Gic>, Option<Region>), PlatformError> {
    let (mut gic, mut pm) = (None, None);
    find_node(fdt, &mut |chain, path| {
        if gic.is_none() {
            gic = gic_at(chain, path)?;
        }
        if pm.is_none() {
            pm = pm_watchdog_at(chain, path)?;
        }
        Ok((gic.is_some() && pm.is_some()).then_some(()))
    })?;
    Ok((gic, pm))
}

/// The node at the end of `chain`, if it is a GIC this kernel knows (`GICS`).
fn gic_at(chain: &[FdtNode<'_, '_>], path: &str) -> Result<Option<Gic>, PlatformError> {
    let known = chain[chain.len() - 1]
        .compatible()
        .and_then(|c| c.all().find_map(|s| GICS.iter().find(|g| g.0 == s)));
    let Some(&(_, version)) = known else {
        return Ok(None);
    };
    let Some(dist) = translate_reg_at(chain, path, 0)? else {
        return Ok(None);
    };
    let node = chain[chain.len() - 1];
    let mut redist = Vec::new();
    let cpu = if version == 2 {
        translate_reg_at(chain, path, 1)?
    } else {
        let regions = match node.property("#redistributor-regions") {
            Some(p) if p.value.len() == 4 => be(p.value) as usize,
            Some(p) => {
                return Err(PlatformError::BadProperty {
                    node: path.into(),
                    property: "#redistributor-regions",
                    len: p.value.len(),
                })
            }
            None => 1,
        };
        for i in 1..=regions {
            if let Some(r) = translate_reg_at(chain, path, i)? {
                redist.push(r);
            }
        }
        None
    };
    let phandle = node
        .property("phandle")
        .or_else(|| node.property("linux,phandle"))
        .filter(|p| p.value.len() == 4)
        .map(|p| be(p.value) as u32);
    Ok(Some(Gic {
        version,
        dist,
        cpu,
        redist,
        phandle,
    }))
}

/// The node at the end of `chain`, if it is the BCM2835/BCM2711 power-management watchdog
/// (how a Raspberry Pi powers off or resets without PSCI): its `pm` registers.
fn pm_watchdog_at(chain: &[FdtNode<'_, '_>], path: &str) -> Result<Option<Region>, PlatformError> {
    if compatible_with(
        &chain[chain.len() - 1],
        &["brcm,bcm2835-pm-wdt", "brcm,bcm2835-pm"],
    )
    .is_none()
    {
        return Ok(None);
    }
    translate_reg_at(chain, path, 0)
}

/// A PCI host bridge with ECAM configuration space (`pci-host-ecam-generic`, QEMU
/// `virt`'s), as far as this kernel uses one: to find and set up one device on its first
/// bus (the watchdog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciHost {
    /// Its path.
    pub path: String,
    /// The configuration space of its first bus (`bus-range`'s first): 32 devices of 8
    /// functions of 4 KiB.
    pub ecam: Region,
    /// The 32-bit memory window BARs are placed in: (PCI address, CPU address, size).
    pub mem32: Option<(u64, u64, u64)>,
}

/// Bytes of ECAM configuration space per bus.
const ECAM_BUS: u64 = 1 << 20;
/// `ranges`' `phys.hi` space code: 32-bit memory.
const PCI_SPACE_MEM32: u64 = 0x0200_0000;
const PCI_SPACE_MASK: u64 = 0x0300_0000;

/// The first enabled ECAM PCI host bridge in the DTB. A whole walk of the tree: made when
/// a PCI device is first needed, not at boot.
pub fn find_pci_host(fdt: &Fdt<'_>) -> Result<Option<PciHost>, PlatformError> {
    find_node(fdt, &mut |chain, path| {
        let node = chain[chain.len() - 1];
        if compatible_with(&node, &["pci-host-ecam-generic"]).is_none() {
            return Ok(None);
        }
        let Some(window) = translate_reg_at(chain, path, 0)? else {
            return Ok(None);
        };
        // The window starts with the first bus of `bus-range`.
        let ecam = Region::new(window.start, ECAM_BUS.min(window.size()));
        let (pac, _) = cell_counts(&chain[chain.len() - 2]);
        let mem32 = node.property("ranges").and_then(|r| {
            // Child: 3 cells (phys.hi, mid, lo); parent: `pac`; size: 2.
            let stride = 4 * (3 + pac + 2);
            r.value.chunks_exact(stride).find_map(|e| {
                let cell = |i: usize| be(&e[4 * i..4 * i + 4]);
                let space = cell(0) & PCI_SPACE_MASK;
                let pci = cell(1) << 32 | cell(2);
                let cpu = (0..pac).fold(0, |a, i| a << 32 | cell(3 + i));
                let size = cell(3 + pac) << 32 | cell(4 + pac);
                (space == PCI_SPACE_MEM32 && size > 0).then_some((pci, cpu, size))
            })
        });
        Ok(Some(PciHost {
            path: path.into(),
            ecam,
            mem32,
        }))
    })
}

/// The enabled CPUs under `/cpus`, in DTB order, with their spin-table mailboxes.
fn find_cpus(fdt: &Fdt<'_>) -> Result<Vec<CpuNode>, PlatformError> {
    let mut cpus = Vec::new();
    if let Some(cpus_node) = fdt.find_node("/cpus") {
        let (ac, _) = cell_counts(&cpus_node);
        for cpu in cpus_node.children() {
            let is_cpu = cpu.property("device_type").and_then(|p| p.as_str()) == Some("cpu");
            if !is_cpu || !is_enabled(&cpu) {
                continue;
            }
            if let Some(reg) = cpu.property("reg") {
                if reg.value.len() >= 4 * ac && ac > 0 {
                    let spin = cpu.property("enable-method").and_then(|p| p.as_str())
                        == Some("spin-table");
                    let release = if spin {
                        read_u32_or_u64(&cpu, "/cpus/cpu", "cpu-release-addr")?
                    } else {
                        None
                    };
                    cpus.push(CpuNode {
                        mpidr: be(&reg.value[..4 * ac]),
                        release_addr: release,
                        path: alloc::format!("/cpus/{}", cpu.name),
                    });
                }
            }
        }
    }
    Ok(cpus)
}

/// Which kind of disk controller a DTB node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskController {
    /// A virtio-mmio transport (`virtio,mmio`): a disk if its device ID says so.
    VirtioMmio,
    /// An SD Host Controller (`brcm,bcm2711-emmc2`, `brcm,bcm2835-sdhci`): the Pi 4's.
    Sdhci,
}

/// A disk controller the DTB lists (enabled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskNode {
    /// Its path.
    pub path: String,
    /// What it is.
    pub kind: DiskController,
    /// Its registers.
    pub regs: Region,
    /// Its interrupt's GIC INTID, when it has one through the GIC with phandle `gic`.
    pub irq: Option<u32>,
}

/// Every enabled disk controller in the DTB, in tree order, with its interrupt when it
/// goes to the GIC whose phandle is `gic`. A whole walk of the tree, so the kernel makes it
/// when disks are first used, not at boot.
pub fn find_disks(fdt: &Fdt<'_>, gic: Option<u32>) -> Result<Vec<DiskNode>, PlatformError> {
    let mut found = Vec::new();
    find_node(fdt, &mut |chain, path| {
        let kind = match compatible_with(
            &chain[chain.len() - 1],
            &["virtio,mmio", "brcm,bcm2711-emmc2", "brcm,bcm2835-sdhci"],
        ) {
            Some(0) => DiskController::VirtioMmio,
            Some(_) => DiskController::Sdhci,
            None => return Ok(None::<()>),
        };
        if let Some(regs) = translate_reg_at(chain, path, 0)? {
            found.push(DiskNode {
                path: path.into(),
                kind,
                regs,
                irq: gic_interrupt(chain, gic, 0),
            });
        }
        Ok(None)
    })?;
    Ok(found)
}

/// Why a DTB property could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// A property has a length this kernel cannot read.
    BadProperty {
        /// Node path.
        node: String,
        /// Property name.
        property: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// `linux,initrd-end` is below `linux,initrd-start`.
    InitrdEndBeforeStart {
        /// `linux,initrd-start`.
        start: u64,
        /// `linux,initrd-end`.
        end: u64,
    },
    /// An address that no `ranges` entry of a parent bus translates.
    Untranslatable {
        /// Node path.
        node: String,
        /// The bus address.
        addr: u64,
    },
    /// Some of the `/chosen linux,uefi-*` properties, not all.
    PartialUefi {
        /// The first one missing.
        missing: &'static str,
    },
    /// A path (an alias, `stdout-path`) names the root node where a device is expected.
    RootIsNoDevice {
        /// The path.
        node: String,
    },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::BadProperty {
                node,
                property,
                len,
            } => {
                write!(
                    f,
                    "DTB {node}: property {property} has an unreadable length of {len} bytes"
                )
            }
            PlatformError::InitrdEndBeforeStart { start, end } => write!(
                f,
                "DTB /chosen: linux,initrd-end {end:#x} is below linux,initrd-start {start:#x}"
            ),
            PlatformError::Untranslatable { node, addr } => {
                write!(
                    f,
                    "DTB {node}: no parent bus 'ranges' entry translates address {addr:#x}"
                )
            }
            PlatformError::PartialUefi { missing } => write!(
                f,
                "DTB /chosen: has UEFI memory-map properties but not {missing}: all five or none"
            ),
            PlatformError::RootIsNoDevice { node } => {
                write!(
                    f,
                    "DTB {node}: names the root node, where a device is expected"
                )
            }
        }
    }
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |a, &b| (a << 8) | b as u64)
}

/// A `u32` or `u64` property, as `linux,initrd-start` may be either.
fn read_u32_or_u64(
    node: &FdtNode<'_, '_>,
    path: &str,
    name: &'static str,
) -> Result<Option<u64>, PlatformError> {
    match node.property(name) {
        None => Ok(None),
        Some(p) if p.value.len() == 4 || p.value.len() == 8 => Ok(Some(be(p.value))),
        Some(p) => Err(PlatformError::BadProperty {
            node: path.into(),
            property: name,
            len: p.value.len(),
        }),
    }
}

/// The nodes from the root down to `path` (root first), or `None` if a component is missing.
pub fn node_chain<'b, 'a>(fdt: &'b Fdt<'a>, path: &str) -> Option<Vec<FdtNode<'b, 'a>>> {
    let mut chain = Vec::new();
    let mut node = fdt.find_node("/")?;
    chain.push(node);
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        node = node.children().find(|c| {
            c.name == comp || (!comp.contains('@') && c.name.split('@').next() == Some(comp))
        })?;
        chain.push(node);
    }
    Some(chain)
}

/// The CPU physical address of the first `reg` entry of the last node of `chain`, translated
/// through the `ranges` of every ancestor bus.
pub fn translate_reg(
    chain: &[FdtNode<'_, '_>],
    path: &str,
) -> Result<Option<Region>, PlatformError> {
    translate_reg_at(chain, path, 0)
}

/// As [`translate_reg`], for the `index`-th `reg` entry.
pub fn translate_reg_at(
    chain: &[FdtNode<'_, '_>],
    path: &str,
    index: usize,
) -> Result<Option<Region>, PlatformError> {
    // The root has no parent bus to give a `reg` its meaning: a path (an alias, stdout-path)
    // naming it where a device is expected is the DTB's mistake.
    let &[.., parent, node] = chain else {
        return Err(PlatformError::RootIsNoDevice { node: path.into() });
    };
    let Some(reg) = node.property("reg") else {
        return Ok(None);
    };
    let (ac, sc) = cell_counts(&parent);
    let bad = || PlatformError::BadProperty {
        node: path.into(),
        property: "reg",
        len: reg.value.len(),
    };
    let first = *decode_reg(path, reg.value, ac, sc)
        .map_err(|_| bad())?
        .get(index)
        .ok_or_else(bad)?;
    let mut addr = first.start;
    // Walk up: chain[i] is a bus whose children use its cells, its parent chain[i-1].
    for i in (1..chain.len() - 1).rev() {
        let bus = chain[i];
        let Some(ranges) = bus.property("ranges") else {
            // No ranges: the bus's children are not memory-mapped. Take the address as is.
            continue;
        };
        if ranges.value.is_empty() {
            continue; // identity
        }
        let (cac, csc) = cell_counts(&bus);
        let (pac, _) = cell_counts(&chain[i - 1]);
        let stride = 4 * (cac + pac + csc);
        if stride == 0 || ranges.value.len() % stride != 0 {
            return Err(PlatformError::BadProperty {
                node: path.into(),
                property: "ranges",
                len: ranges.value.len(),
            });
        }
        let hit = ranges.value.chunks_exact(stride).find_map(|e| {
            let child = be(&e[..4 * cac]);
            let parent_addr = be(&e[4 * cac..4 * (cac + pac)]);
            let size = be(&e[4 * (cac + pac)..]);
            (addr >= child && addr - child < size).then(|| parent_addr + (addr - child))
        });
        addr = hit.ok_or(PlatformError::Untranslatable {
            node: path.into(),
            addr,
        })?;
    }
    Ok(Some(Region::new(addr, first.size())))
}

/// Resolves an alias or path (with any `:options` suffix removed) to a node path.
fn resolve_path(aliases: Option<&FdtNode<'_, '_>>, spec: &str) -> Option<String> {
    let name = spec.split(':').next()?;
    if name.starts_with('/') {
        return Some(name.to_string());
    }
    aliases?
        .property(name)
        .and_then(|p| p.as_str())
        .map(|s| s.to_string())
}

fn is_pl011(node: &FdtNode<'_, '_>) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| s == "arm,pl011"))
}

fn is_enabled(node: &FdtNode<'_, '_>) -> bool {
    node.property("status")
        .and_then(|p| p.as_str())
        .is_none_or(|s| s == "okay" || s == "ok")
}

/// Which rule chose the console (for the boot log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleRule {
    /// The command line's `console=` (the last one, as Linux's `/dev/console`).
    Cmdline,
    /// `/chosen/stdout-path`.
    StdoutPath,
    /// The first usable `serial<n>` alias.
    Alias,
}

impl fmt::Display for ConsoleRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConsoleRule::Cmdline => "console=",
            ConsoleRule::StdoutPath => "stdout-path",
            ConsoleRule::Alias => "serial alias",
        })
    }
}

/// The console and how it was found: the UART, the rule that chose it, and the candidates
/// passed over on the way (each with the reason), for the boot log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsoleChoice {
    /// The UART and the rule that chose it.
    pub console: Option<(Console, ConsoleRule)>,
    /// Candidates not taken, each with why (`/soc/serial@7e215040 (console=): disabled`).
    pub passed_over: Vec<String>,
}

impl ConsoleChoice {
    /// The console's UART, if there is one.
    pub fn uart(&self) -> Option<&Console> {
        self.console.as_ref().map(|(c, _)| c)
    }
}

fn uart_kind(node: &FdtNode<'_, '_>) -> Option<UartKind> {
    if is_pl011(node) {
        Some(UartKind::Pl011)
    } else if compatible_with(node, &["brcm,bcm2835-aux-uart"]).is_some() {
        Some(UartKind::MiniUart)
    } else {
        None
    }
}

/// What a `console=` value names: a `serial<n>` alias (`ttyAMA<n>` is the PL011 that alias
/// `serial<n>` names, as Linux numbers them; `serial<n>` itself is what Raspberry Pi's
/// `cmdline.txt` says), or the mini UART (`ttyS0`, its Linux name). `None`: not a UART
/// (`tty0`, `hvc0`, ...).
fn console_arg(value: &str) -> Option<(Option<u32>, Option<UartKind>)> {
    let name = value.split(',').next()?;
    if let Some(n) = name.strip_prefix("ttyAMA") {
        return Some((Some(n.parse().ok()?), Some(UartKind::Pl011)));
    }
    if let Some(n) = name.strip_prefix("serial") {
        return Some((Some(n.parse().ok()?), None));
    }
    (name == "ttyS0").then_some((None, Some(UartKind::MiniUart)))
}

/// The console, as Linux finds it: the last `console=` that names a UART this kernel drives,
/// else `/chosen/stdout-path`, else the `serial0`, `serial1`, ... aliases. UARTs with a
/// `status` other than "okay" are passed over (the firmware turns off what it did not set
/// up: on a Pi with `dtoverlay=disable-bt` the mini UART), and so is a UART of a kind this
/// kernel does not drive, each with its reason in [`ConsoleChoice::passed_over`].
pub fn find_console(
    fdt: &Fdt<'_>,
    bootargs: &str,
    gic: Option<u32>,
) -> Result<ConsoleChoice, PlatformError> {
    let mut choice = ConsoleChoice::default();
    let candidates = console_candidates(fdt, bootargs, gic, &mut choice.passed_over)?;
    let mut tried: Vec<(String, Option<UartKind>)> = Vec::new();
    for (path, rule, want) in candidates {
        if tried.contains(&(path.clone(), want)) {
            continue;
        }
        tried.push((path.clone(), want));
        match console_at(fdt, &path, want, gic)? {
            Ok(console) => {
                choice.console = Some((console, rule));
                return Ok(choice);
            }
            Err(why) => choice
                .passed_over
                .push(alloc::format!("{path} ({rule}): {why}")),
        }
    }
    Ok(choice)
}

/// The UARTs the console may be, best first: the last `console=` (a `serialN` alias, or the
/// mini UART), `stdout-path`, then the `serialN` aliases in order; each with the kind
/// `console=` asked for. What names nothing is said in `passed_over`.
fn console_candidates(
    fdt: &Fdt<'_>,
    bootargs: &str,
    gic: Option<u32>,
    passed_over: &mut Vec<String>,
) -> Result<Vec<(String, ConsoleRule, Option<UartKind>)>, PlatformError> {
    // Looked up once: finding a node walks the whole tree.
    let aliases = fdt.find_node("/aliases");
    let aliases = aliases.as_ref();
    let mut candidates = Vec::new();
    let wanted = bootargs
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("console="))
        .filter_map(|v| Some((v, console_arg(v)?)))
        .next_back();
    match wanted {
        Some((arg, (Some(n), kind))) => match resolve_path(aliases, &alloc::format!("serial{n}")) {
            Some(path) => candidates.push((path, ConsoleRule::Cmdline, kind)),
            None => passed_over.push(alloc::format!(
                "console={arg}: the DTB has no alias serial{n}"
            )),
        },
        // The mini UART, wherever it is.
        Some((arg, (None, kind))) => match find_mini_uart(fdt, gic)? {
            Some(c) => candidates.push((c.path, ConsoleRule::Cmdline, kind)),
            None => passed_over.push(alloc::format!(
                "console={arg}: the DTB has no enabled mini UART (brcm,bcm2835-aux-uart)"
            )),
        },
        None => {}
    }
    if let Some(spec) = fdt
        .find_node("/chosen")
        .and_then(|c| c.property("stdout-path").and_then(|p| p.as_str()))
    {
        match resolve_path(aliases, spec) {
            Some(path) => candidates.push((path, ConsoleRule::StdoutPath, None)),
            None => passed_over.push(alloc::format!("stdout-path \"{spec}\": no such alias")),
        }
    }
    for n in 0..10 {
        if let Some(path) = resolve_path(aliases, &alloc::format!("serial{n}")) {
            candidates.push((path, ConsoleRule::Alias, None));
        }
    }
    Ok(candidates)
}

/// The UART at `path` as a console, or why it cannot be one (`want`: the kind `console=`
/// named).
fn console_at(
    fdt: &Fdt<'_>,
    path: &str,
    want: Option<UartKind>,
    gic: Option<u32>,
) -> Result<Result<Console, &'static str>, PlatformError> {
    let Some(chain) = node_chain(fdt, path) else {
        return Ok(Err("no such node"));
    };
    let node = chain[chain.len() - 1];
    let Some(kind) = uart_kind(&node) else {
        return Ok(Err(
            "not a UART this kernel drives (arm,pl011 or brcm,bcm2835-aux-uart)",
        ));
    };
    if want.is_some_and(|w| w != kind) {
        return Ok(Err("not a PL011, which ttyAMA names"));
    }
    if !is_enabled(&node) {
        return Ok(Err("disabled in the DTB"));
    }
    Ok(match translate_reg(&chain, path)? {
        Some(regs) => Ok(Console {
            path: path.into(),
            regs,
            kind,
            irq: gic_interrupt(&chain, gic, 0),
        }),
        None => Err("no reg"),
    })
}

/// The first enabled BCM2835 mini UART.
pub fn find_mini_uart(fdt: &Fdt<'_>, gic: Option<u32>) -> Result<Option<Console>, PlatformError> {
    find_node(fdt, &mut |chain, path| {
        if compatible_with(&chain[chain.len() - 1], &["brcm,bcm2835-aux-uart"]).is_none() {
            return Ok(None);
        }
        Ok(translate_reg(chain, path)?.map(|regs| Console {
            path: path.into(),
            regs,
            kind: UartKind::MiniUart,
            irq: gic_interrupt(chain, gic, 0),
        }))
    })
}

impl Platform {
    /// Reads the platform description from a DTB.
    pub fn from_fdt(fdt: &Fdt<'_>) -> Result<Self, PlatformError> {
        let model = fdt
            .find_node("/")
            .and_then(|r| r.property("model").and_then(|p| p.as_str()))
            .unwrap_or("")
            .to_string();
        let psci = fdt.find_node("/psci").filter(is_enabled).and_then(|n| {
            match n.property("method").and_then(|p| p.as_str()) {
                Some("hvc") => Some(PsciConduit::Hvc),
                Some("smc") => Some(PsciConduit::Smc),
                _ => None,
            }
        });
        let cpus = find_cpus(fdt)?;
        let mut initrd = None;
        let mut handover = None;
        let mut esp_files = None;
        let (mut rng_seed, mut kaslr_seed, mut efi_rng_seed) = (Vec::new(), Vec::new(), Vec::new());
        let mut trust = ChosenTrust::default();
        let mut bootargs = String::new();
        let mut uefi = None;
        if let Some(chosen) = fdt.find_node("/chosen") {
            uefi = uefi_info(&chosen)?;
            let start = read_u32_or_u64(&chosen, "/chosen", "kexec,handover-start")?;
            let end = read_u32_or_u64(&chosen, "/chosen", "kexec,handover-end")?;
            if let (Some(start), Some(end)) = (start, end) {
                handover = (end > start).then_some(Region { start, end });
            }
            let start = read_u32_or_u64(&chosen, "/chosen", "hobby,esp-files-start")?;
            let end = read_u32_or_u64(&chosen, "/chosen", "hobby,esp-files-end")?;
            if let (Some(start), Some(end)) = (start, end) {
                esp_files = (end > start).then_some(Region { start, end });
            }
            let start = read_u32_or_u64(&chosen, "/chosen", "linux,initrd-start")?;
            let end = read_u32_or_u64(&chosen, "/chosen", "linux,initrd-end")?;
            if let (Some(start), Some(end)) = (start, end) {
                if end < start {
                    return Err(PlatformError::InitrdEndBeforeStart { start, end });
                }
                if end > start {
                    initrd = Some(Region { start, end });
                }
            }
            let bytes = |name| {
                chosen
                    .property(name)
                    .map_or(Vec::new(), |p| p.value.to_vec())
            };
            rng_seed = bytes("rng-seed");
            kaslr_seed = bytes("kaslr-seed");
            efi_rng_seed = bytes(EFI_RNG_SEED);
            trust = ChosenTrust::from_chosen(&chosen);
            if let Some(s) = chosen.property("bootargs").and_then(|p| p.as_str()) {
                bootargs = s.to_string();
            }
        }
        let (gic, pm_watchdog) = find_gic_and_pm_watchdog(fdt)?;
        let gic_phandle = gic.as_ref().and_then(|g| g.phandle);
        Ok(Platform {
            model,
            console: find_console(fdt, &bootargs, gic_phandle)?,
            psci,
            cpus,
            initrd,
            bootargs,
            timer_irq: find_timer_irq(fdt, gic_phandle)?,
            gic,
            pm_watchdog,
            handover,
            uefi,
            esp_files,
            rng_seed,
            kaslr_seed,
            efi_rng_seed,
            trust,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Tests against real DTBs: QEMU's `virt` (from `-machine dumpdtb`) and the Raspberry Pi 4
    //! and Juno r2 DTBs from Debian's arm64 kernel package. `scripts/fixtures.sh` fetches them
    //! into `target/fixtures`.
    use super::*;
    use mm::memmap::{MemoryMap, ReservedKind};

    /// A fixture's bytes; a missing fixture, or a DTB fixture without a valid header, fails
    /// naming the script that makes it.
    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fixtures/");
        let blob = std::fs::read(std::format!("{path}{name}"))
            .unwrap_or_else(|e| panic!("fixture {path}{name}: {e}: run scripts/fixtures.sh first"));
        if name.ends_with(".dtb") {
            if let Err(e) = crate::formats::dtb::header(&blob) {
                panic!(
                    "fixture {path}{name} is not a valid DTB ({e}): scripts/fixtures.sh makes it"
                );
            }
        }
        blob
    }

    #[test]
    fn pci_host() {
        // QEMU virt (highmem): ECAM at 0x40_1000_0000, MEM32 0x10000000 + 0x2eff0000.
        let blob = fixture("virt-1g.dtb");
        let h = find_pci_host(&Fdt::new(&blob).unwrap()).unwrap().unwrap();
        assert_eq!(h.ecam, Region::new(0x40_1000_0000, 1 << 20), "{h:?}");
        assert_eq!(h.mem32, Some((0x1000_0000, 0x1000_0000, 0x2eff_0000)));
        let blob = fixture("bcm2711-rpi-4-b.dtb");
        assert_eq!(find_pci_host(&Fdt::new(&blob).unwrap()).unwrap(), None);
    }

    #[test]
    fn disk_controllers() {
        // QEMU virt lists 32 virtio-mmio transports, 0x200 bytes each from 0x0a000000.
        // Each with its SPI: 16 + n for the transport at 0x0a000000 + 0x200 * n.
        let blob = fixture("virt-1g.dtb");
        let fdt = Fdt::new(&blob).unwrap();
        let gic = find_gic_and_pm_watchdog(&fdt).unwrap().0.unwrap().phandle;
        let d = find_disks(&fdt, gic).unwrap();
        assert_eq!(d.len(), 32);
        assert!(d.iter().all(|n| n.kind == DiskController::VirtioMmio));
        let last = d.iter().find(|n| n.regs == Region::new(0x0a00_3e00, 0x200));
        assert_eq!(last.unwrap().irq, Some(32 + 16 + 31));
        assert!(find_disks(&fdt, None)
            .unwrap()
            .iter()
            .all(|n| n.irq.is_none()));
        // Debian's Pi 4 DTB: the Arasan SDHCI and EMMC2 (the SD card's on a board), each
        // behind the SoC's ranges.
        let blob = fixture("bcm2711-rpi-4-b.dtb");
        let d = find_disks(&Fdt::new(&blob).unwrap(), None).unwrap();
        let at: Vec<u64> = d.iter().map(|n| n.regs.start).collect();
        assert!(at.contains(&0xfe34_0000), "{d:?}");
        assert!(d.iter().all(|n| n.kind == DiskController::Sdhci));
    }

    #[test]
    fn qemu_virt() {
        let blob = fixture("virt-1g.dtb");
        let fdt = Fdt::new(&blob).unwrap();
        let p = Platform::from_fdt(&fdt).unwrap();
        let c = p.console.uart().cloned().unwrap();
        assert_eq!(c.regs, Region::new(0x900_0000, 0x1000));
        assert_eq!(
            p.psci,
            Some(PsciConduit::Smc),
            "virtualization=on makes QEMU use SMC"
        );
        assert_eq!(p.mpidrs(), [0]);
        // The PL011's SPI 1 and the virtual timer's PPI 11, through the root's
        // interrupt-parent.
        assert_eq!(c.irq, Some(33));
        assert_eq!(p.timer_irq, Some(27));
        let gic = p.gic.unwrap();
        assert_eq!((gic.version, gic.dist.start), (2, 0x800_0000));
        assert_eq!(gic.cpu.unwrap().start, 0x801_0000);
        assert!(gic.redist.is_empty());
        let m = MemoryMap::from_fdt(&fdt).unwrap();
        assert_eq!(m.banks, [Region::new(0x4000_0000, 1 << 30)]);
    }

    /// What `find_console` chooses in `blob` edited as `edits` say: (node, property, string
    /// value, or `None` to remove it).
    fn console_choice(blob: &[u8], edits: &[(&str, &str, Option<&str>)]) -> ConsoleChoice {
        let values: Vec<Option<Vec<u8>>> = edits
            .iter()
            .map(|(_, _, v)| v.map(|v| [v.as_bytes(), &[0]].concat()))
            .collect();
        let edits: Vec<crate::formats::dtb::Edit<'_>> = edits
            .iter()
            .zip(&values)
            .map(|(&(node, prop, _), v)| crate::formats::dtb::Edit {
                node,
                prop,
                value: v.as_deref(),
            })
            .collect();
        let out = crate::formats::dtb::edit(blob, &edits, &[]).unwrap();
        Platform::from_fdt(&Fdt::new(&out).unwrap())
            .unwrap()
            .console
    }

    /// Found by libFuzzer: an alias naming the root, which claims to be a PL011. The root has
    /// no parent bus; its `reg` was read through `chain[len - 2]` and the boot panicked.
    #[test]
    fn a_console_path_naming_the_root_is_an_error() {
        let edits = [
            crate::formats::dtb::Edit {
                node: "/",
                prop: "compatible",
                value: Some(b"arm,pl011\0"),
            },
            crate::formats::dtb::Edit {
                node: "/aliases",
                prop: "serial0",
                value: Some(b"/\0"),
            },
        ];
        let out = crate::formats::dtb::edit(&fixture("juno-r2.dtb"), &edits, &[]).unwrap();
        let err = Platform::from_fdt(&Fdt::new(&out).unwrap()).unwrap_err();
        assert!(
            matches!(&err, PlatformError::RootIsNoDevice { node } if node == "/"),
            "{err}"
        );
    }

    const PI_PL011: &str = "/soc/serial@7e201000";
    const PI_MINI: &str = "/soc/serial@7e215040";

    /// The path and rule of the chosen console.
    fn chosen(c: &ConsoleChoice) -> (&str, ConsoleRule) {
        let (uart, rule) = c.console.as_ref().expect("a console");
        (uart.path.as_str(), *rule)
    }

    #[test]
    fn console_follows_the_command_line_then_stdout_path_then_aliases() {
        let blob = fixture("bcm2711-rpi-4-b.dtb");
        let args = |a: &'static str| ("/chosen", "bootargs", Some(a));
        // Linux's names: ttyS0 is the mini UART, ttyAMA<n> the PL011 at serial<n>; the
        // Raspberry Pi's cmdline.txt names aliases; the last console= wins; tty0 is no UART.
        for (bootargs, path) in [
            ("console=ttyS0,115200", PI_MINI),
            ("console=ttyAMA0", PI_PL011),
            ("console=serial0,115200", PI_PL011),
            ("console=serial1", PI_MINI),
            ("console=ttyS0 console=ttyAMA0", PI_PL011),
            ("console=ttyAMA0 console=tty0", PI_PL011),
            ("console=tty0", PI_MINI),
        ] {
            let c = console_choice(&blob, &[args(bootargs)]);
            assert_eq!(c.uart().unwrap().path, path, "{bootargs}: {c:?}");
        }
        // ttyAMA1 would be the PL011 at serial1, but that is the mini UART: stdout-path.
        let c = console_choice(&blob, &[args("console=ttyAMA1")]);
        assert_eq!(chosen(&c), (PI_MINI, ConsoleRule::StdoutPath));
        assert_eq!(c.passed_over.len(), 1, "{c:?}");
        assert!(c.passed_over[0].contains("not a PL011"), "{c:?}");
    }

    #[test]
    fn console_passes_over_disabled_uarts() {
        let blob = fixture("bcm2711-rpi-4-b.dtb");
        // Raspberry Pi OS's DTB after dtoverlay=disable-bt: the PL011 is serial0 and the
        // console, the mini UART disabled.
        let disable_bt = [
            ("/chosen", "stdout-path", Some("serial0:115200n8")),
            (PI_MINI, "status", Some("disabled")),
        ];
        let c = console_choice(&blob, &disable_bt);
        assert_eq!(chosen(&c), (PI_PL011, ConsoleRule::StdoutPath));
        // console=ttyS0 there: no mini UART to be had, said so, and the PL011 instead.
        let mut edits = disable_bt.to_vec();
        edits.push(("/chosen", "bootargs", Some("console=ttyS0,115200")));
        let c = console_choice(&blob, &edits);
        assert_eq!(chosen(&c), (PI_PL011, ConsoleRule::StdoutPath));
        assert_eq!(
            c.passed_over,
            ["console=ttyS0,115200: the DTB has no enabled mini UART (brcm,bcm2835-aux-uart)"]
        );
        // stdout-path names a disabled UART: the next alias that works.
        let c = console_choice(
            &blob,
            &[
                ("/chosen", "stdout-path", Some("serial0:115200n8")),
                (PI_PL011, "status", Some("disabled")),
            ],
        );
        assert_eq!(chosen(&c), (PI_MINI, ConsoleRule::Alias));
        assert_eq!(
            c.passed_over,
            ["/soc/serial@7e201000 (stdout-path): disabled in the DTB"]
        );
        // Nothing enabled at all: no console, and why.
        let c = console_choice(
            &blob,
            &[
                (PI_PL011, "status", Some("disabled")),
                (PI_MINI, "status", Some("fail")),
            ],
        );
        assert!(c.console.is_none(), "{c:?}");
        assert_eq!(c.passed_over.len(), 2, "{c:?}");
    }

    #[test]
    fn raspberry_pi_4() {
        let blob = fixture("bcm2711-rpi-4-b.dtb");
        let fdt = Fdt::new(&blob).unwrap();
        let p = Platform::from_fdt(&fdt).unwrap();
        assert!(p.model.starts_with("Raspberry Pi 4"), "{}", p.model);
        // Debian's DTB: stdout-path = "serial1:115200n8", the mini UART (at bus address
        // 0x7e215040, which /soc ranges put at 0xfe215040).
        let (c, rule) = p.console.console.clone().expect("a console");
        assert_eq!(rule, ConsoleRule::StdoutPath);
        assert_eq!(c.path, "/soc/serial@7e215040");
        assert_eq!(c.kind, UartKind::MiniUart);
        assert_eq!(c.regs.start, 0xfe21_5040);
        assert!(p.console.passed_over.is_empty(), "{:?}", p.console);
        // serial0 is the PL011 at 0x7e201000 (wired to Bluetooth on this DTB).
        let c = console_choice(
            &blob,
            &[("/chosen", "bootargs", Some("console=ttyAMA0,115200"))],
        )
        .uart()
        .cloned()
        .unwrap();
        assert_eq!(c.path, "/soc/serial@7e201000");
        assert_eq!(c.regs, Region::new(0xfe20_1000, 0x200));
        assert_eq!(c.irq, Some(32 + 121), "GIC_SPI 121");
        assert_eq!(p.timer_irq, Some(27));
        let mini = find_mini_uart(&fdt, p.gic.as_ref().unwrap().phandle)
            .unwrap()
            .unwrap();
        assert_eq!(mini.irq, Some(32 + 93), "the AUX block's GIC_SPI 93");
        // A node whose interrupt parent is not the GIC gets no INTID.
        assert_eq!(
            find_mini_uart(&fdt, Some(0xdead)).unwrap().unwrap().irq,
            None
        );
        assert_eq!(
            p.release_addrs(),
            [Some(0xd8), Some(0xe0), Some(0xe8), Some(0xf0)]
        );
        assert_eq!(p.pm_watchdog.as_ref().unwrap().start, 0xfe10_0000);
        // The GIC-400 sits behind the same bus translation.
        let gic = p.gic.as_ref().unwrap();
        assert_eq!((gic.version, gic.dist.start), (2, 0xff84_1000));
        assert_eq!(gic.cpu.as_ref().unwrap().start, 0xff84_2000);
        assert_eq!(p.psci, None, "the stock firmware has no PSCI: spin-table");
        assert_eq!(p.mpidrs(), [0, 1, 2, 3]);
        // As shipped, /memory@0 has reg = <0 0 0>: the firmware fills it in.
        assert_eq!(
            MemoryMap::from_fdt(&fdt),
            Err(mm::memmap::MemMapError::NoMemory)
        );
        // As the firmware leaves it on a 4 GiB board (scripts/fixtures.sh writes it with fdtput).
        let blob = fixture("rpi4-4g.dtb");
        let fdt = Fdt::new(&blob).unwrap();
        let m = MemoryMap::from_fdt(&fdt).unwrap_or_else(|e| {
            panic!("rpi4-4g.dtb has no usable /memory ({e:?}): scripts/fixtures.sh writes it")
        });
        assert_eq!(
            m.banks,
            [
                Region::new(0, 0x3b40_0000),
                Region::new(0x4000_0000, 0xbc00_0000)
            ]
        );
        let first_page = Region::new(0, 0x1000);
        assert!(
            m.reserved
                .iter()
                .any(|r| r.kind == ReservedKind::MemReserve && r.region == first_page),
            "the spin-table page is a /memreserve/: {:?}",
            m.reserved
        );
        assert!(!m.free_regions().iter().any(|r| r.overlaps(&first_page)));
    }

    #[test]
    fn juno_r2() {
        let blob = fixture("juno-r2.dtb");
        let fdt = Fdt::new(&blob).unwrap();
        let p = Platform::from_fdt(&fdt).unwrap();
        let c = p.console.uart().cloned().expect("the SoC PL011");
        assert_eq!(c.regs.start, 0x7ff8_0000);
        assert_eq!(p.psci, Some(PsciConduit::Smc));
        assert_eq!(p.mpidrs(), [0x0, 0x1, 0x100, 0x101, 0x102, 0x103]);
        let gic = p.gic.as_ref().unwrap();
        assert_eq!((gic.version, gic.dist.start), (2, 0x2c01_0000));
        assert_eq!(gic.cpu.as_ref().unwrap().start, 0x2c02_f000);
        assert_eq!(p.timer_irq, Some(27));
        assert!(c.irq.is_some());
        let m = MemoryMap::from_fdt(&fdt).unwrap();
        assert_eq!(
            m.banks,
            [
                Region::new(0x8000_0000, 0x7f00_0000),
                Region::new(0x8_8000_0000, 0x1_8000_0000)
            ]
        );
    }

    #[test]
    fn qemu_virt_gicv3() {
        let blob = fixture("virt-gicv3.dtb");
        let fdt = Fdt::new(&blob).unwrap();
        let p = Platform::from_fdt(&fdt).unwrap();
        let gic = p.gic.as_ref().unwrap();
        assert_eq!(
            (gic.version, gic.dist.start, gic.cpu.as_ref()),
            (3, 0x800_0000, None)
        );
        // One redistributor region: 4 CPUs' frames of 128 KiB each fit in it.
        assert_eq!(gic.redist.len(), 1);
        assert_eq!(gic.redist[0].start, 0x80a_0000);
        assert!(gic.redist[0].size() >= 4 * 0x2_0000);
        assert_eq!(p.timer_irq, Some(27));
        assert_eq!(p.console.uart().unwrap().irq, Some(33));
        assert_eq!(p.mpidrs(), [0, 1, 2, 3]);
    }
}
