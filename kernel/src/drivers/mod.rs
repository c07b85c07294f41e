//! Devices the kernel drives itself: the console UART (PL011 or the BCM2835 mini UART), the
//! Raspberry Pi's PM watchdog, virtio-blk disks, SD cards (SDHCI). (The GIC is `arch::gic`; the interrupt
//! subsystem `irq`; the disks' registry `disks`.)

pub mod board;
pub mod console;
pub mod sdhci;
pub mod virtio_blk;
