//! Devices the kernel drives itself: the console UART (PL011 or the BCM2835 mini UART), the
//! Raspberry Pi's PM watchdog (its reset, and as the boot fail-safe's watchdog with the
//! 6300ESB), virtio-blk disks, SD cards (SDHCI). (The GIC is `arch::gic`; the interrupt
//! subsystem `irq`; the disks' registry `disks`.)

pub mod board;
pub mod console;
pub mod sdhci;
pub mod virtio_blk;
pub mod virtio_rng;
pub mod watchdog;
