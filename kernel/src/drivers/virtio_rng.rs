//! virtio-rng (QEMU `-device virtio-rng-device`) through `virtio-drivers`, asked once per
//! use: the transport is made, `N` bytes requested, and the device reset again as the
//! transport is dropped. Only a transport whose device ID says "entropy source" is touched:
//! making a transport over another device (a disk in use) and dropping it would reset it.

use super::virtio_blk::KernelHal;
use crate::arch::mmio::Regs;
use crate::{memory, SYSTEM};
use alloc::string::String;
use core::ptr::NonNull;
use kernel::platform::DiskController;
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};

/// virtio-mmio's `DeviceID` register, and the entropy source's ID (virtio 1.2, 5.4).
const DEVICE_ID: usize = 0x008;
const ENTROPY_SOURCE: u32 = 4;

/// `N` random bytes from the first virtio-rng device, `Ok(None)` if there is none.
pub fn read<const N: usize>() -> Result<Option<[u8; N]>, String> {
    let sys = SYSTEM.get().expect("booted");
    let fdt = fdt::Fdt::new(sys.fdt).map_err(|e| alloc::format!("virtio-rng: the DTB: {e:?}"))?;
    let nodes = kernel::platform::find_disks(&fdt, None).map_err(|e| alloc::format!("{e}"))?;
    for n in nodes
        .iter()
        .filter(|n| n.kind == DiskController::VirtioMmio)
    {
        let va = memory::map_device(n.regs).map_err(|e| alloc::format!("{}: {e}", n.path))?;
        // SAFETY: `va` maps the node's virtio-mmio registers as Device memory, for good.
        let regs = unsafe { Regs::new(va as usize, n.regs.size() as usize) };
        if regs.read32(DEVICE_ID) != ENTROPY_SOURCE {
            continue;
        }
        let header =
            NonNull::new(va as *mut VirtIOHeader).expect("device-window addresses are not 0");
        // SAFETY: as above: the header and the configuration space after it.
        let transport = unsafe { MmioTransport::new(header, n.regs.size() as usize) }
            .map_err(|e| alloc::format!("{}: virtio-mmio: {e}", n.path))?;
        let mut rng = VirtIORng::<KernelHal, _>::new(transport)
            .map_err(|e| alloc::format!("{}: virtio-rng: {e}", n.path))?;
        let mut out = [0u8; N];
        let mut done = 0;
        while done < N {
            let got = rng
                .request_entropy(&mut out[done..])
                .map_err(|e| alloc::format!("{}: virtio-rng: {e}", n.path))?;
            if got == 0 {
                return Err(alloc::format!("{}: virtio-rng gave nothing", n.path));
            }
            done += got;
        }
        return Ok(Some(out));
    }
    Ok(None)
}
