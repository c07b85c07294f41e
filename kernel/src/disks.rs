//! The disks this kernel found, by name (`virtio0`, ..., `mmc0`, ... in DTB order), their
//! partitions, and the file systems on them. Found the first time something asks (a shell
//! command, `boot`), not at boot: finding them walks the whole DTB and probes each
//! controller.

use crate::drivers::sdhci::{self, SdCard};
use crate::drivers::virtio_blk::{self, VirtioDisk};
use crate::println;
use crate::SYSTEM;
use alloc::string::String;
use alloc::vec::Vec;
use kernel::formats::partition::{self, Kind, PartError, Partition};
use kernel::platform::DiskController;
use kernel::storage::fs::Fs;
use kernel::storage::{BlockDevice, IoError, Volume, BLOCK};
use spin::{Mutex, Once};

/// A disk: its name, the device, what its partition table says.
pub struct Disk {
    /// `virtio0`, ...
    pub name: String,
    /// The DTB node of its controller.
    pub node: String,
    dev: Device,
    /// Its partitions, or why they cannot be read.
    pub parts: Result<Vec<Partition>, PartError>,
}

/// A disk's device.
enum Device {
    /// virtio-blk (its queue inline: boxed).
    Virtio(alloc::boxed::Box<VirtioDisk>),
    /// An SD card.
    Sd(SdCard),
}

impl BlockDevice for Device {
    fn blocks(&self) -> u64 {
        match self {
            Device::Virtio(d) => d.blocks(),
            Device::Sd(d) => d.blocks(),
        }
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), IoError> {
        match self {
            Device::Virtio(d) => d.read_blocks(lba, buf),
            Device::Sd(d) => d.read_blocks(lba, buf),
        }
    }
}

// SAFETY: a disk's device (its queue and MMIO pointers) is only used under the `DISKS` lock.
unsafe impl Send for Disk {}

static DISKS: Once<Mutex<Vec<Disk>>> = Once::new();

/// Every disk, found on the first call.
pub fn all() -> &'static Mutex<Vec<Disk>> {
    DISKS.call_once(|| Mutex::new(probe()))
}

fn probe() -> Vec<Disk> {
    let sys = SYSTEM.get().expect("booted");
    let nodes = match fdt::Fdt::new(sys.fdt)
        .map_err(|e| alloc::format!("{e:?}"))
        .and_then(|f| {
            let gic = sys.platform.gic.as_ref().and_then(|g| g.phandle);
            kernel::platform::find_disks(&f, gic).map_err(|e| alloc::format!("{e}"))
        }) {
        Ok(n) => n,
        Err(e) => {
            println!("disks: the DTB's disk controllers cannot be read: {e}");
            return Vec::new();
        }
    };
    let mut disks: Vec<Disk> = Vec::new();
    let (mut virtio, mut mmc) = (0, 0);
    for n in &nodes {
        let found = match n.kind {
            DiskController::VirtioMmio => {
                virtio_blk::probe(n).map(|d| d.map(|d| Device::Virtio(alloc::boxed::Box::new(d))))
            }
            DiskController::Sdhci => sdhci::probe(&n.path, n.regs).map(|d| d.map(Device::Sd)),
        };
        let mut dev = match found {
            Ok(Some(dev)) => dev,
            Ok(None) => continue,
            Err(e) => {
                println!("disks: {e}");
                continue;
            }
        };
        let name = match dev {
            Device::Virtio(_) => {
                virtio += 1;
                alloc::format!("virtio{}", virtio - 1)
            }
            Device::Sd(_) => {
                mmc += 1;
                alloc::format!("mmc{}", mmc - 1)
            }
        };
        let blocks = dev.blocks();
        let parts = partition::read(blocks, |lba, buf| dev.read_blocks(lba, buf).is_ok());
        disks.push(Disk {
            name,
            node: n.path.clone(),
            dev,
            parts,
        });
    }
    disks
}

/// Reads through the registry's lock: what a [`Volume`] on a disk holds.
#[derive(Clone, Copy)]
pub struct DiskHandle(usize);

impl BlockDevice for DiskHandle {
    fn blocks(&self) -> u64 {
        all().lock()[self.0].dev.blocks()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), IoError> {
        all().lock()[self.0].dev.read_blocks(lba, buf)
    }
}

/// Partition `part` of disk `name` (`part` 0: the whole disk), as a volume.
pub fn volume(name: &str, part: usize) -> Result<Volume<DiskHandle>, String> {
    let disks = all().lock();
    let Some(i) = disks.iter().position(|d| d.name == name) else {
        let known: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        return Err(alloc::format!(
            "{name}: no such disk (disks: {})",
            if known.is_empty() {
                String::from("none")
            } else {
                known.join(" ")
            }
        ));
    };
    let d = &disks[i];
    if part == 0 {
        return Ok(Volume::new(DiskHandle(i), 0, d.dev.blocks()));
    }
    let parts = d
        .parts
        .as_ref()
        .map_err(|e| alloc::format!("{name}: {e}"))?;
    let p = parts
        .iter()
        .find(|p| p.number == part)
        .ok_or_else(|| alloc::format!("{name}p{part}: no such partition"))?;
    Ok(Volume::new(DiskHandle(i), p.start, p.blocks))
}

/// The disk the EFI stub's ESP files make (see [`crate::files::esp`]).
const ESP_DISK: &str = "esp0";

/// Every partition of every disk, `esp0p1` included: `(disk, partition)`.
pub fn partitions() -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = crate::files::esp()
        .map(|_| (String::from(ESP_DISK), 1))
        .into_iter()
        .collect();
    for d in all().lock().iter() {
        for p in d.parts.iter().flatten() {
            out.push((d.name.clone(), p.number));
        }
    }
    out
}

/// The file system on partition `part` of disk `name`.
pub fn mount(name: &str, part: usize) -> Result<Fs<Volume<DiskHandle>>, String> {
    if name == ESP_DISK {
        if let Some(files) = crate::files::esp() {
            return match part {
                1 => Ok(Fs::Archive(files)),
                _ => Err(alloc::format!(
                    "{name}p{part}: no such partition (esp0 has one)"
                )),
            };
        }
    }
    let v = volume(name, part)?;
    Fs::mount(v).map_err(|e| alloc::format!("{name}p{part}: {e}"))
}

/// `disks`: every disk, its partitions and their file systems.
pub fn show() {
    /// What `disks` shows of a disk, copied out of the registry (mounting needs its lock).
    struct Shown {
        name: String,
        node: String,
        blocks: u64,
        parts: Result<Vec<Partition>, PartError>,
    }
    let shown: Vec<Shown> = all()
        .lock()
        .iter()
        .map(|d| Shown {
            name: d.name.clone(),
            node: d.node.clone(),
            blocks: d.dev.blocks(),
            parts: d.parts.clone(),
        })
        .collect();
    if let Some(files) = crate::files::esp() {
        let bytes: usize = files.iter().map(|f| f.data.len()).sum();
        println!(
            "disk {ESP_DISK}: {} files, {} KiB, read by the EFI stub from the volume it was started from",
            files.len(),
            bytes >> 10
        );
        println!("  {ESP_DISK}p1: files in memory");
    }
    if shown.is_empty() && crate::files::esp().is_none() {
        return println!("disks: none");
    }
    for Shown {
        name,
        node,
        blocks,
        parts,
    } in shown
    {
        println!(
            "disk {name}: {} MiB ({blocks} blocks of {BLOCK}) at {node}",
            (blocks * BLOCK as u64) >> 20
        );
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                println!("  {name}: {e}");
                continue;
            }
        };
        for p in parts {
            let kind = match &p.kind {
                Kind::Mbr(t) => alloc::format!("mbr type {t:#04x}"),
                Kind::Gpt { name, .. } if p.is_esp() => alloc::format!("gpt esp \"{name}\""),
                Kind::Gpt { name, .. } => alloc::format!("gpt \"{name}\""),
            };
            let fs = match mount(&name, p.number) {
                Ok(fs) => String::from(fs.kind()),
                Err(e) => alloc::format!("({e})"),
            };
            println!(
                "  {name}p{}: {} MiB at block {}, {kind}, {fs}",
                p.number,
                (p.blocks * BLOCK as u64) >> 20,
                p.start
            );
        }
    }
}
