//! The serial console: the UART the DTB and the command line name (a PL011 or a BCM2835 mini
//! UART; `kernel::platform::find_console`), up from the first steps of Rust through an early
//! window; `print!`/`println!`, the `log` backend, and a lock-free emergency path for
//! exceptions and panics. A UART that takes no byte for 50 ms is given up (output then goes
//! to the log ring only) rather than waited on forever.

use crate::arch::mmio::Regs;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use kernel::platform::UartKind;
use spin::Mutex;

/// PL011 registers and bits (ARM PrimeCell UART PL011 TRM, DDI 0183).
mod pl011 {
    /// The register block's size (PrimeCell: 4 KiB).
    pub const BLOCK: usize = 0x1000;
    /// Data register.
    pub const DR: usize = 0x00;
    /// Flag register.
    pub const FR: usize = 0x18;
    /// FR: transmit FIFO full.
    pub const FR_TXFF: u32 = 1 << 5;
    /// FR: receive FIFO empty.
    pub const FR_RXFE: u32 = 1 << 4;
    /// FR: UART busy transmitting.
    pub const FR_BUSY: u32 = 1 << 3;
    /// Line control register.
    pub const LCR_H: usize = 0x2c;
    /// LCR_H: FIFOs enabled.
    pub const LCR_H_FEN: u32 = 1 << 4;
    /// LCR_H: 8-bit words.
    pub const LCR_H_WLEN_8: u32 = 0b11 << 5;
    /// Control register.
    pub const CR: usize = 0x30;
    /// CR: UART enable.
    pub const CR_UARTEN: u32 = 1 << 0;
    /// CR: transmit enable.
    pub const CR_TXE: u32 = 1 << 8;
    /// CR: receive enable.
    pub const CR_RXE: u32 = 1 << 9;
    /// Interrupt mask set/clear register.
    pub const IMSC: usize = 0x38;
    /// IMSC/ICR: receive and receive-timeout interrupts (a byte waits; bytes wait and the
    /// line went quiet).
    pub const INT_RX: u32 = 1 << 4;
    pub const INT_RT: u32 = 1 << 6;
    /// Interrupt clear register.
    pub const ICR: usize = 0x44;
    /// ICR: every interrupt.
    pub const ICR_ALL: u32 = 0x7ff;
}

/// BCM2835 auxiliary mini UART registers, from `AUX_MU_IO` (BCM2835 ARM Peripherals §2.2).
mod mini {
    /// The `AUX_MU_*` block's size (its DTB node's `reg`).
    pub const BLOCK: usize = 0x40;
    /// `AUX_MU_IO_REG`: data.
    pub const IO: usize = 0x00;
    /// `AUX_MU_IER_REG`: interrupt enables (bit 0 receive, per the datasheet's errata).
    pub const IER: usize = 0x04;
    pub const IER_RX: u32 = 1 << 0;
    /// `AUX_MU_LSR_REG`: line status.
    pub const LSR: usize = 0x14;
    /// LSR: a byte is waiting.
    pub const LSR_DATA_READY: u32 = 1 << 0;
    /// LSR: the transmitter can take a byte.
    pub const LSR_TX_EMPTY: u32 = 1 << 5;
}

/// Virtual address of the UART's registers; 0 until [`init`].
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Set when the console is a mini UART (the firmware has set it up; this kernel only uses it).
static MINI: AtomicBool = AtomicBool::new(false);
/// Set when the UART stopped taking bytes: output goes on to the log ring only.
static STALLED: AtomicBool = AtomicBool::new(false);
/// Serialises normal output so that lines do not interleave.
static LOCK: Mutex<()> = Mutex::new(());

/// How long one byte may wait for room in the transmitter before the console gives up on
/// the UART (one that is disabled or unclocked never makes room). A 16-byte FIFO drains in
/// 17 ms at 9600 baud.
const TX_TIMEOUT_US: u64 = 50_000;

/// Bytes of console output kept in RAM, for a crash kernel to show after a panic.
pub const LOG_SIZE: usize = 64 << 10;

/// The last [`LOG_SIZE`] bytes printed (exceptions and panics included), in a ring: byte `n`
/// of the output is at `n % LOG_SIZE`; `head` counts every byte ever written. Every byte is
/// an atomic, so CPUs printing at once (the lock-free emergency path among them) never race;
/// a reader (the crash kernel, which reads the ring's memory after a panic) may see a byte
/// at the edge written a moment later than `head` said.
pub struct LogRing {
    buf: [AtomicU8; LOG_SIZE],
    head: core::sync::atomic::AtomicU64,
}

/// The console's log ring.
pub static LOG: LogRing = LogRing {
    buf: [const { AtomicU8::new(0) }; LOG_SIZE],
    head: core::sync::atomic::AtomicU64::new(0),
};

impl LogRing {
    fn push(&self, b: u8) {
        let at = self.head.fetch_add(1, Ordering::Relaxed) as usize % LOG_SIZE;
        self.buf[at].store(b, Ordering::Relaxed);
    }

    /// The ring's address (its bytes, laid out as `u8`s) and the count of bytes ever written.
    pub fn location(&self) -> (*const u8, u64) {
        (
            self.buf.as_ptr() as *const u8,
            self.head.load(Ordering::Relaxed),
        )
    }
}

/// Waits until `ready()` or [`TX_TIMEOUT_US`] has passed; `false` on the timeout.
fn wait_for(mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    let start = crate::arch::ticks();
    loop {
        if ready() {
            return true;
        }
        if crate::arch::ticks_to_us(crate::arch::ticks().wrapping_sub(start)) > TX_TIMEOUT_US {
            return false;
        }
    }
}

/// The console UART's registers, once [`init`] ran: a PL011's block, or the mini UART's
/// `AUX_MU_*` block.
fn uart() -> Option<Regs> {
    let base = BASE.load(Ordering::Acquire);
    let len = if MINI.load(Ordering::Relaxed) {
        mini::BLOCK
    } else {
        pl011::BLOCK
    };
    // SAFETY: a non-zero BASE was set by `init` or `move_to`, whose callers promised that it
    // maps this UART's registers as Device memory, for good.
    (base != 0).then(|| unsafe { Regs::new(base, len) })
}

fn put_raw(uart: Regs, b: u8) {
    if STALLED.load(Ordering::Relaxed) {
        return;
    }
    let mini = MINI.load(Ordering::Relaxed);
    let room = || {
        if mini {
            uart.read32(mini::LSR) & mini::LSR_TX_EMPTY != 0
        } else {
            uart.read32(pl011::FR) & pl011::FR_TXFF == 0
        }
    };
    if !wait_for(room) {
        // Nothing can say so on this UART: the log ring (`dmesg`, a crash kernel) keeps it.
        STALLED.store(true, Ordering::Relaxed);
        for b in b"\n[console: the UART took no byte for 50 ms: output goes to the log only]\n" {
            LOG.push(*b);
        }
        return;
    }
    uart.write32(if mini { mini::IO } else { pl011::DR }, b as u32);
}

/// Takes over the UART mapped at `base` as the console. A PL011 is set to 8N1 with FIFOs and
/// its interrupts masked, the baud rate left as the firmware set it (QEMU ignores it); a
/// mini UART is used as the firmware set it up.
///
/// # Safety
/// `base` must be the virtual address of a UART of `kind`'s registers, mapped as Device
/// memory for good (for the mini UART, its `AUX_MU_IO` block).
pub unsafe fn init(base: usize, kind: UartKind) {
    let mini = kind == UartKind::MiniUart;
    MINI.store(mini, Ordering::Relaxed);
    STALLED.store(false, Ordering::Relaxed);
    if !mini {
        // SAFETY: the caller's promise.
        let uart = unsafe { Regs::new(base, pl011::BLOCK) };
        let idle = wait_for(|| uart.read32(pl011::FR) & pl011::FR_BUSY == 0);
        uart.write32(pl011::CR, 0);
        uart.write32(pl011::LCR_H, pl011::LCR_H_WLEN_8 | pl011::LCR_H_FEN);
        uart.write32(pl011::IMSC, 0);
        uart.write32(pl011::ICR, pl011::ICR_ALL);
        uart.write32(pl011::CR, pl011::CR_UARTEN | pl011::CR_TXE | pl011::CR_RXE);
        STALLED.store(!idle, Ordering::Relaxed);
    }
    BASE.store(base, Ordering::Release);
}

/// The same UART, now mapped at `base` (the kernel's own tables replaced the early window).
///
/// # Safety
/// `base` must map the UART [`init`] took over, as Device memory, for good.
pub unsafe fn move_to(base: usize) {
    BASE.store(base, Ordering::Release);
}

/// Bytes the receive interrupt took from the UART, for the shell: one producer (the
/// interrupt, on the boot CPU, where SPIs go) and one consumer (the shell, on the boot CPU,
/// with IRQs masked while it looks).
struct RxRing {
    buf: [AtomicU8; RX_RING],
    head: AtomicUsize,
    tail: AtomicUsize,
}
const RX_RING: usize = 256;
static RX: RxRing = RxRing {
    buf: [const { AtomicU8::new(0) }; RX_RING],
    head: AtomicUsize::new(0),
    tail: AtomicUsize::new(0),
};
/// Bytes the ring had no room for.
static RX_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Turns on the UART's receive interrupt (its GIC line is enabled by `irq`).
pub fn enable_rx_interrupt() {
    let Some(uart) = uart() else {
        return;
    };
    if MINI.load(Ordering::Relaxed) {
        uart.write32(mini::IER, mini::IER_RX);
    } else {
        uart.write32(pl011::ICR, pl011::INT_RX | pl011::INT_RT);
        uart.write32(pl011::IMSC, pl011::INT_RX | pl011::INT_RT);
    }
}

/// The receive interrupt: moves every waiting byte into the ring (which ends the level
/// interrupt: it holds while the FIFO has data).
pub fn rx_interrupt() {
    while let Some(b) = try_read() {
        let head = RX.head.load(Ordering::Relaxed);
        let next = (head + 1) % RX_RING;
        if next == RX.tail.load(Ordering::Acquire) {
            RX_DROPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        RX.buf[head].store(b, Ordering::Relaxed);
        RX.head.store(next, Ordering::Release);
    }
    if let (Some(uart), false) = (uart(), MINI.load(Ordering::Relaxed)) {
        uart.write32(pl011::ICR, pl011::INT_RX | pl011::INT_RT);
    }
}

/// The next received byte: from the ring the interrupt fills, else straight from the UART
/// (no receive interrupt, or bytes that came while IRQs were masked).
pub fn next_byte() -> Option<u8> {
    let tail = RX.tail.load(Ordering::Relaxed);
    if tail != RX.head.load(Ordering::Acquire) {
        let b = RX.buf[tail].load(Ordering::Relaxed);
        RX.tail.store((tail + 1) % RX_RING, Ordering::Release);
        return Some(b);
    }
    try_read()
}

/// Reads a byte if one is waiting in the UART itself.
pub fn try_read() -> Option<u8> {
    let uart = uart()?;
    if MINI.load(Ordering::Relaxed) {
        return (uart.read32(mini::LSR) & mini::LSR_DATA_READY != 0)
            .then(|| uart.read32(mini::IO) as u8);
    }
    (uart.read32(pl011::FR) & pl011::FR_RXFE == 0).then(|| uart.read32(pl011::DR) as u8)
}

/// A writer straight to the UART (a lone LF becomes CRLF). Output is dropped before [`init`].
pub struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let Some(uart) = uart() else {
            return Ok(());
        };
        let mut prev = 0;
        for b in s.bytes() {
            if b == b'\n' && prev != b'\r' {
                put_raw(uart, b'\r');
            }
            put_raw(uart, b);
            LOG.push(b);
            prev = b;
        }
        Ok(())
    }
}

/// The lock-free path for exception reports and panics: never blocks, never allocates.
pub fn emergency_print() -> Uart {
    Uart
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _g = LOCK.lock();
    let _ = Uart.write_fmt(args);
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::drivers::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::drivers::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `log` backend. The level follows Linux's `loglevel=` numbering: a message is printed when
/// its Linux level (error 3, warning 4, info 6, debug 7) is below the number.
struct Logger;

static LEVEL: AtomicU8 = AtomicU8::new(0);

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        // Crates' own messages (virtio-drivers') only from warnings up: the console's lines
        // are the kernel's.
        let crate_level = if m.target().starts_with("kernel") {
            log::Level::Trace
        } else {
            log::Level::Warn
        };
        m.level() <= crate_level && m.level() as u8 <= LEVEL.load(Ordering::Relaxed)
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        match r.level() {
            log::Level::Error => println!("error: {}", r.args()),
            log::Level::Warn => println!("warning: {}", r.args()),
            log::Level::Info => println!("{}", r.args()),
            _ => println!("{}: {}", r.level().as_str().to_ascii_lowercase(), r.args()),
        }
    }
    fn flush(&self) {}
}

/// Maps a Linux `loglevel=` value to a `log` filter.
pub fn level_from_loglevel(n: u32) -> log::LevelFilter {
    match n {
        0 => log::LevelFilter::Off,
        1..=4 => log::LevelFilter::Error,
        5 | 6 => log::LevelFilter::Warn,
        7 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    }
}

/// Installs the logger with `filter`.
pub fn init_log(filter: log::LevelFilter) {
    static LOGGER: Logger = Logger;
    LEVEL.store(filter as u8, Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(filter);
}
