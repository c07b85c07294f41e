//! virtio-blk over virtio-mmio (QEMU `virt`'s `-device virtio-blk-device`), through rcore-os's
//! `virtio-drivers` (the queue, the transport, the block requests); this file is the crate's
//! `Hal`: DMA memory from the frame allocator and the physical address of a buffer.
//!
//! QEMU's virtio-mmio devices are DMA-coherent (the DTB says `dma-coherent`): no cache
//! maintenance around a request.
//!
//! A request's completion is awaited in `wfi` when the device's interrupt reaches the GIC
//! (its handler only acknowledges it at the transport), and polled otherwise: the CPU
//! sleeps while the device works rather than spinning (and under `-icount` the wait costs
//! no guest instructions, as a DMA transfer costs none).

use crate::arch::mmio::Regs;
use crate::memory::{self, FrameBuf, FRAMES};
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use kernel::platform::DiskNode;
use kernel::storage::{BlockDevice, IoError, BLOCK};
use mm::addr::VirtAddr;
use mm::memmap::Region;
use mm::PAGE_SIZE;
use spin::Mutex;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal};

/// The most bytes one request reads (a larger read is split; each part is one request).
const MAX_REQUEST: usize = 4 << 20;
/// virtio-mmio's `InterruptStatus` and `InterruptACK` registers (virtio 1.2, 4.2.2), and
/// the size of the register block the handler needs.
const INTERRUPT_STATUS: usize = 0x60;
const INTERRUPT_ACK: usize = 0x64;
const ACK_REGS: usize = 0x68;

/// Buffers that are not physically contiguous (a secondary CPU's stack) go through a bounce
/// buffer while the device uses them: (its physical address, the buffer).
static BOUNCES: Mutex<Vec<(u64, FrameBuf)>> = Mutex::new(Vec::new());

/// `virtio-drivers`' view of the kernel's memory.
pub struct KernelHal;

// SAFETY: DMA memory is zeroed, page-aligned frames owned by the queue until `dma_dealloc`;
// `share` returns the physical address of exactly the buffer's bytes (or of a bounce buffer
// of the same length, copied in and out), valid until `unshare`.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _dir: BufferDirection) -> (u64, NonNull<u8>) {
        let buf = FrameBuf::alloc(pages as u64 * PAGE_SIZE).expect("out of memory for a virtqueue");
        let pa = buf.pa();
        let va = buf.leak();
        va.fill(0);
        (
            pa.get(),
            NonNull::new(va.as_mut_ptr()).expect("linear-map addresses are not 0"),
        )
    }

    unsafe fn dma_dealloc(paddr: u64, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        FRAMES.free(paddr, pages as u64);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: u64, size: usize) -> NonNull<u8> {
        let va = memory::map_device(Region::new(paddr, size as u64)).expect("mapping MMIO");
        NonNull::new(va as *mut u8).expect("device-window addresses are not 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, dir: BufferDirection) -> u64 {
        let (va, len) = (buffer.cast::<u8>().as_ptr() as u64, buffer.len() as u64);
        if let Some(pa) = memory::contiguous_pa(VirtAddr(va), len) {
            return pa.get();
        }
        let mut bounce = FrameBuf::alloc(len).expect("out of memory for a DMA bounce buffer");
        if dir != BufferDirection::DeviceToDriver {
            // SAFETY: the caller's buffer, valid for `len` bytes while shared.
            bounce.copy_from_slice(unsafe { buffer.as_ref() });
        }
        let pa = bounce.pa().get();
        BOUNCES.lock().push((pa, bounce));
        pa
    }

    unsafe fn unshare(paddr: u64, mut buffer: NonNull<[u8]>, dir: BufferDirection) {
        let mut bounces = BOUNCES.lock();
        let Some(i) = bounces.iter().position(|b| b.0 == paddr) else {
            return; // shared in place
        };
        let (_, bounce) = bounces.swap_remove(i);
        if dir != BufferDirection::DriverToDevice {
            // SAFETY: the caller's buffer, valid and not aliased while shared.
            unsafe { buffer.as_mut() }.copy_from_slice(&bounce);
        }
    }
}

/// A virtio block device.
pub struct VirtioDisk {
    blk: VirtIOBlk<KernelHal, MmioTransport<'static>>,
    /// Its interrupt is routed here: requests are awaited in `wfi`.
    interrupts: bool,
}

impl VirtioDisk {
    /// Reads one request's worth from block `lba` into `buf`.
    fn read_request(&mut self, lba: u64, buf: &mut [u8]) -> virtio_drivers::Result {
        if !self.interrupts {
            return self.blk.read_blocks(lba as usize, buf);
        }
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // The queue holds one request at a time, and this function reaches
        // `complete_read_blocks` below before it returns.
        // SAFETY: `req`, `buf` and `resp` are not touched until that call.
        let token = unsafe {
            self.blk
                .read_blocks_nb(lba as usize, &mut req, buf, &mut resp)?
        };
        crate::irq::wait_for(|| self.blk.peek_used().filter(|&t| t == token));
        // SAFETY: the same buffers as `read_blocks_nb` was given, for the request it queued.
        unsafe { self.blk.complete_read_blocks(token, &req, buf, &mut resp) }
    }
}

/// The device's interrupt: acknowledged at the transport (which lowers the line); the
/// reader waiting in `wfi` then looks at the used ring itself.
fn acknowledge(regs: Regs) {
    let pending = regs.read32(INTERRUPT_STATUS);
    regs.write32(INTERRUPT_ACK, pending);
}

impl BlockDevice for VirtioDisk {
    fn blocks(&self) -> u64 {
        self.blk.capacity()
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), IoError> {
        for (i, chunk) in buf.chunks_mut(MAX_REQUEST).enumerate() {
            let at = lba + (i * MAX_REQUEST / BLOCK) as u64;
            self.read_request(at, chunk)
                .map_err(|e| IoError::Device(alloc::format!("virtio-blk: block {at}: {e}")))?;
        }
        Ok(())
    }
}

/// The virtio-mmio transport at `node`'s registers, if it is a block device. Empty
/// transports (QEMU's `virt` lists 32; most have device ID 0) give `Ok(None)`.
pub fn probe(node: &DiskNode) -> Result<Option<VirtioDisk>, String> {
    let (path, regs) = (node.path.as_str(), node.regs);
    let va = memory::map_device(regs).map_err(|e| alloc::format!("{path}: mapping: {e}"))?;
    let header = NonNull::new(va as *mut VirtIOHeader).expect("device-window addresses are not 0");
    // SAFETY: `va` maps the node's registers (the header and the config space after it,
    // `regs.size()` bytes) as Device memory, for good.
    let transport = match unsafe { MmioTransport::new(header, regs.size() as usize) } {
        Ok(t) => t,
        Err(MmioError::InvalidDeviceID(_)) => return Ok(None),
        Err(e) => return Err(alloc::format!("{path}: virtio-mmio: {e}")),
    };
    if transport.device_type() != DeviceType::Block {
        return Ok(None);
    }
    let mut blk =
        VirtIOBlk::new(transport).map_err(|e| alloc::format!("{path}: virtio-blk: {e}"))?;
    // SAFETY: the transport's registers, mapped above for good; the handler reads the
    // interrupt status and writes the acknowledgement, nothing else.
    let ack_regs = unsafe { Regs::new(va as usize, ACK_REGS) };
    let interrupts = node
        .irq
        .is_some_and(|irq| crate::irq::register_device(irq, acknowledge, ack_regs));
    if interrupts {
        blk.enable_interrupts();
    } else {
        blk.disable_interrupts();
    }
    Ok(Some(VirtioDisk { blk, interrupts }))
}
