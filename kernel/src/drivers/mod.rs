//! Devices the kernel drives itself: the console UART (PL011 or the BCM2835 mini UART) and
//! the Raspberry Pi's PM watchdog. (The GIC is `arch::gic`; the interrupt subsystem `irq`.)

pub mod board;
pub mod console;
