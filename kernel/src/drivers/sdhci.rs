//! SD cards behind a standard SD Host Controller (SDHCI, the SD Association's Host
//! Controller Simplified Specification): the Raspberry Pi 4's EMMC2 (where a board's card
//! is) and its Arasan controller (where QEMU's `raspi4b` puts `-drive if=sd`). Reading only,
//! by programmed I/O (no DMA: QEMU's models advertise none that the Pi's use), polled.
//!
//! Every access is 32 bits wide: the BCM2835/2711 controllers drop narrower writes (U-Boot's
//! and Linux's drivers shadow the 16-bit registers for the same reason).

use crate::arch;
use crate::arch::mmio::Regs;
use crate::memory;
use alloc::string::String;
use kernel::storage::{BlockDevice, IoError, BLOCK};
use mm::memmap::Region;

/// Register offsets (32-bit words) and fields.
mod reg {
    /// Block size (bits 11:0) and block count (31:16).
    pub const BLKSIZECNT: usize = 0x04;
    /// The command's argument.
    pub const ARG1: usize = 0x08;
    /// Transfer mode (15:0) and command (31:16).
    pub const CMDTM: usize = 0x0c;
    /// Response words 0 to 3.
    pub const RESP0: usize = 0x10;
    /// The data port.
    pub const DATA: usize = 0x20;
    /// Present state.
    pub const STATUS: usize = 0x24;
    /// Host control (7:0), power control (15:8).
    pub const CONTROL0: usize = 0x28;
    /// Clock control (15:0), timeout (19:16), software reset (26:24).
    pub const CONTROL1: usize = 0x2c;
    /// Normal (15:0) and error (31:16) interrupt status; write 1 to clear.
    pub const INTERRUPT: usize = 0x30;
    /// Which interrupt statuses are recorded.
    pub const IRPT_MASK: usize = 0x34;
    /// Which raise the interrupt line (none: polled).
    pub const IRPT_EN: usize = 0x38;

    /// `STATUS`: a command is in progress / data lines busy / a block is ready to be read /
    /// a card is inserted.
    pub const CMD_INHIBIT: u32 = 1 << 0;
    pub const DAT_INHIBIT: u32 = 1 << 1;
    pub const CARD_INSERTED: u32 = 1 << 16;
    /// `CONTROL0`: bus power on, at 3.3 V.
    pub const POWER_ON_3V3: u32 = (1 | (0b111 << 1)) << 8;
    /// `CONTROL1`: internal clock on / stable / SD clock on, a slow divider (QEMU ignores
    /// it; a card starts at 400 kHz or less), the longest data timeout, the resets.
    pub const CLK_INTLEN: u32 = 1 << 0;
    pub const CLK_STABLE: u32 = 1 << 1;
    pub const CLK_EN: u32 = 1 << 2;
    pub const CLK_DIV_SLOW: u32 = 0x80 << 8;
    pub const DATA_TOUNIT_MAX: u32 = 0xe << 16;
    pub const SRST_HC: u32 = 1 << 24;
    pub const SRST_CMD: u32 = 1 << 25;
    pub const SRST_DATA: u32 = 1 << 26;
    /// `INTERRUPT`: command done, transfer done, read buffer ready, an error (any of 31:16).
    pub const CMD_DONE: u32 = 1 << 0;
    pub const DATA_DONE: u32 = 1 << 1;
    pub const READ_RDY: u32 = 1 << 5;
    pub const ERR: u32 = 1 << 15;
    /// `CMDTM` transfer-mode bits: block count enable, auto CMD12, read, multi-block.
    pub const TM_BLKCNT_EN: u32 = 1 << 1;
    pub const TM_AUTO_CMD12: u32 = 1 << 2;
    pub const TM_READ: u32 = 1 << 4;
    pub const TM_MULTI: u32 = 1 << 5;
    /// `CMDTM` command bits: response 136 bits / 48 bits / 48 with busy, CRC and index
    /// checks, data present; the index at 29:24.
    pub const RSP_136: u32 = 1 << 16;
    pub const RSP_48: u32 = 2 << 16;
    pub const RSP_48_BUSY: u32 = 3 << 16;
    pub const CRC_CHECK: u32 = 1 << 19;
    pub const INDEX_CHECK: u32 = 1 << 20;
    pub const DATA_PRESENT: u32 = 1 << 21;
    pub const INDEX_SHIFT: u32 = 24;
}

/// The SD commands used, with their response kinds.
mod cmd {
    use super::reg::*;
    pub const GO_IDLE: u32 = 0;
    pub const ALL_SEND_CID: u32 = (2 << INDEX_SHIFT) | RSP_136 | CRC_CHECK;
    pub const SEND_RCA: u32 = (3 << INDEX_SHIFT) | RSP_48 | CRC_CHECK | INDEX_CHECK;
    pub const SELECT: u32 = (7 << INDEX_SHIFT) | RSP_48_BUSY | CRC_CHECK | INDEX_CHECK;
    pub const SEND_IF_COND: u32 = (8 << INDEX_SHIFT) | RSP_48 | CRC_CHECK | INDEX_CHECK;
    pub const SEND_CSD: u32 = (9 << INDEX_SHIFT) | RSP_136 | CRC_CHECK;
    pub const SET_BLOCKLEN: u32 = (16 << INDEX_SHIFT) | RSP_48 | CRC_CHECK | INDEX_CHECK;
    pub const READ_SINGLE: u32 =
        (17 << INDEX_SHIFT) | RSP_48 | CRC_CHECK | INDEX_CHECK | DATA_PRESENT;
    pub const READ_MULTIPLE: u32 =
        (18 << INDEX_SHIFT) | RSP_48 | CRC_CHECK | INDEX_CHECK | DATA_PRESENT;
    pub const APP_CMD: u32 = (55 << INDEX_SHIFT) | RSP_48 | CRC_CHECK | INDEX_CHECK;
    /// ACMD41: R3, whose CRC and index are not checked.
    pub const SD_SEND_OP_COND: u32 = (41 << INDEX_SHIFT) | RSP_48;
    /// CMD8's argument: 2.7-3.6 V, check pattern 0xaa.
    pub const IF_COND_3V3: u32 = 0x1aa;
    /// ACMD41's argument: high capacity supported, 3.2-3.4 V.
    pub const OCR_HCS_3V3: u32 = 0x40ff_8000;
    /// OCR: powered up / high capacity (block addressing).
    pub const OCR_BUSY_DONE: u32 = 1 << 31;
    pub const OCR_CCS: u32 = 1 << 30;
}

/// How long a command or a block may take.
const TIMEOUT_US: u64 = 1_000_000;
/// How long a card may take to power up (ACMD41 until ready).
const POWER_UP_US: u64 = 2_000_000;
/// Blocks per multi-block read (the block count field is 16 bits).
const MAX_BLOCKS: usize = 0xffff;

/// An SD card, initialized and selected.
pub struct SdCard {
    regs: Regs,
    /// Blocks of 512 bytes.
    blocks: u64,
    /// SDHC/SDXC cards take block numbers; standard-capacity ones byte addresses.
    block_addressed: bool,
}

impl SdCard {
    fn wait(&self, what: &str, done: impl Fn(&Regs) -> bool, us: u64) -> Result<(), String> {
        let t0 = arch::ticks();
        while !done(&self.regs) {
            if arch::ticks_to_us(arch::ticks() - t0) > us {
                return Err(alloc::format!("sdhci: timed out waiting for {what}"));
            }
            core::hint::spin_loop();
        }
        Ok(())
    }

    /// Issues `command` (with transfer mode `tm`) and waits until it is done; the response's
    /// first word.
    fn command(&self, command: u32, arg: u32, tm: u32) -> Result<u32, String> {
        let busy = reg::CMD_INHIBIT
            | if command & reg::DATA_PRESENT != 0 {
                reg::DAT_INHIBIT
            } else {
                0
            };
        self.wait(
            "the command line",
            |r| r.read32(reg::STATUS) & busy == 0,
            TIMEOUT_US,
        )?;
        self.regs.write32(reg::INTERRUPT, u32::MAX);
        self.regs.write32(reg::ARG1, arg);
        self.regs.write32(reg::CMDTM, command | tm);
        let index = command >> reg::INDEX_SHIFT;
        self.wait(
            "a command",
            |r| r.read32(reg::INTERRUPT) & (reg::CMD_DONE | reg::ERR) != 0,
            TIMEOUT_US,
        )?;
        let irq = self.regs.read32(reg::INTERRUPT);
        if irq & reg::ERR != 0 {
            self.reset_lines();
            return Err(alloc::format!(
                "sdhci: CMD{index} failed (error status {:#06x})",
                irq >> 16
            ));
        }
        self.regs.write32(reg::INTERRUPT, reg::CMD_DONE);
        Ok(self.regs.read32(reg::RESP0))
    }

    fn app_command(&self, command: u32, arg: u32, rca: u32) -> Result<u32, String> {
        self.command(cmd::APP_CMD, rca << 16, 0)?;
        self.command(command, arg, 0)
    }

    fn reset_lines(&self) {
        let c1 = self.regs.read32(reg::CONTROL1);
        self.regs
            .write32(reg::CONTROL1, c1 | reg::SRST_CMD | reg::SRST_DATA);
        let _ = self.wait(
            "the lines' reset",
            |r| r.read32(reg::CONTROL1) & (reg::SRST_CMD | reg::SRST_DATA) == 0,
            TIMEOUT_US,
        );
        self.regs.write32(reg::INTERRUPT, u32::MAX);
    }

    /// Resets the controller, powers and clocks the card, and takes it through
    /// identification to the transfer state.
    fn init(&mut self) -> Result<(), String> {
        let r = &self.regs;
        r.write32(reg::CONTROL1, reg::SRST_HC);
        self.wait(
            "the controller's reset",
            |r| r.read32(reg::CONTROL1) & reg::SRST_HC == 0,
            TIMEOUT_US,
        )?;
        r.write32(reg::CONTROL0, reg::POWER_ON_3V3);
        r.write32(
            reg::CONTROL1,
            reg::CLK_DIV_SLOW | reg::DATA_TOUNIT_MAX | reg::CLK_INTLEN,
        );
        self.wait(
            "a stable clock",
            |r| r.read32(reg::CONTROL1) & reg::CLK_STABLE != 0,
            TIMEOUT_US,
        )?;
        let c1 = r.read32(reg::CONTROL1);
        r.write32(reg::CONTROL1, c1 | reg::CLK_EN);
        r.write32(reg::IRPT_MASK, u32::MAX);
        r.write32(reg::IRPT_EN, 0);
        self.command(cmd::GO_IDLE, 0, 0)?;
        let echo = self.command(cmd::SEND_IF_COND, cmd::IF_COND_3V3, 0)?;
        if echo & 0xfff != cmd::IF_COND_3V3 {
            return Err(alloc::format!(
                "sdhci: CMD8 echoed {echo:#x}: not an SD 2.0 card"
            ));
        }
        let t0 = arch::ticks();
        let ocr = loop {
            let ocr = self.app_command(cmd::SD_SEND_OP_COND, cmd::OCR_HCS_3V3, 0)?;
            if ocr & cmd::OCR_BUSY_DONE != 0 {
                break ocr;
            }
            if arch::ticks_to_us(arch::ticks() - t0) > POWER_UP_US {
                return Err("sdhci: the card did not power up (ACMD41)".into());
            }
        };
        self.block_addressed = ocr & cmd::OCR_CCS != 0;
        self.command(cmd::ALL_SEND_CID, 0, 0)?;
        let rca = self.command(cmd::SEND_RCA, 0, 0)? >> 16;
        self.command(cmd::SEND_CSD, rca << 16, 0)?;
        let csd = [0, 1, 2, 3].map(|i| self.regs.read32(reg::RESP0 + 4 * i));
        self.blocks = csd_blocks(csd);
        self.command(cmd::SELECT, rca << 16, 0)?;
        if !self.block_addressed {
            self.command(cmd::SET_BLOCKLEN, BLOCK as u32, 0)?;
        }
        Ok(())
    }

    /// Reads `buf.len() / 512` (at most [`MAX_BLOCKS`]) blocks from `lba`.
    fn read_run(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), String> {
        let n = buf.len() / BLOCK;
        let arg = if self.block_addressed {
            lba
        } else {
            lba * BLOCK as u64
        };
        let arg =
            u32::try_from(arg).map_err(|_| alloc::format!("sdhci: block {lba} out of reach"))?;
        self.regs
            .write32(reg::BLKSIZECNT, ((n as u32) << 16) | BLOCK as u32);
        let (command, tm) = if n == 1 {
            (cmd::READ_SINGLE, reg::TM_READ)
        } else {
            (
                cmd::READ_MULTIPLE,
                reg::TM_READ | reg::TM_BLKCNT_EN | reg::TM_MULTI | reg::TM_AUTO_CMD12,
            )
        };
        self.command(command, arg, tm)?;
        for block in buf.chunks_exact_mut(BLOCK) {
            self.wait(
                "a block",
                |r| r.read32(reg::INTERRUPT) & (reg::READ_RDY | reg::ERR) != 0,
                TIMEOUT_US,
            )?;
            if self.regs.read32(reg::INTERRUPT) & reg::ERR != 0 {
                let e = self.regs.read32(reg::INTERRUPT) >> 16;
                self.reset_lines();
                return Err(alloc::format!(
                    "sdhci: read at block {lba}: error status {e:#06x}"
                ));
            }
            self.regs.write32(reg::INTERRUPT, reg::READ_RDY);
            for word in block.chunks_exact_mut(4) {
                word.copy_from_slice(&self.regs.read32(reg::DATA).to_le_bytes());
            }
        }
        self.wait(
            "the transfer's end",
            |r| r.read32(reg::INTERRUPT) & (reg::DATA_DONE | reg::ERR) != 0,
            TIMEOUT_US,
        )?;
        self.regs.write32(reg::INTERRUPT, reg::DATA_DONE);
        Ok(())
    }
}

/// The card's size in 512-byte blocks from its CSD, as the controller presents it: the 128
/// bits without their CRC byte, so CSD bit `b` is response bit `b - 8`.
fn csd_blocks(r: [u32; 4]) -> u64 {
    let bits = |hi: u32, lo: u32| -> u64 {
        // CSD bits hi..=lo.
        let wide =
            (r[0] as u128) | (r[1] as u128) << 32 | (r[2] as u128) << 64 | (r[3] as u128) << 96;
        ((wide >> (lo - 8)) & ((1u128 << (hi - lo + 1)) - 1)) as u64
    };
    match bits(127, 126) {
        // CSD 2.0 (SDHC/SDXC): (C_SIZE + 1) × 512 KiB.
        1 => (bits(69, 48) + 1) * 1024,
        // CSD 1.0: (C_SIZE + 1) × 2^(C_SIZE_MULT + 2) blocks of 2^READ_BL_LEN bytes.
        _ => {
            let bytes = (bits(73, 62) + 1) << (bits(49, 47) + 2) << bits(83, 80);
            bytes / BLOCK as u64
        }
    }
}

impl BlockDevice for SdCard {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), IoError> {
        for (i, run) in buf.chunks_mut(MAX_BLOCKS * BLOCK).enumerate() {
            self.read_run(lba + (i * MAX_BLOCKS) as u64, run)
                .map_err(IoError::Device)?;
        }
        Ok(())
    }
}

/// The card behind the controller at `regs`, if one is inserted.
pub fn probe(path: &str, regs: Region) -> Result<Option<SdCard>, String> {
    let va = memory::map_device(regs).map_err(|e| alloc::format!("{path}: mapping: {e}"))?;
    // SAFETY: `va` maps the controller's registers (`regs.size()` bytes) as Device memory,
    // for good; only this driver touches them.
    let regs = unsafe { Regs::new(va as usize, regs.size() as usize) };
    if regs.read32(reg::STATUS) & reg::CARD_INSERTED == 0 {
        return Ok(None);
    }
    let mut card = SdCard {
        regs,
        blocks: 0,
        block_addressed: false,
    };
    card.init().map_err(|e| alloc::format!("{path}: {e}"))?;
    Ok(Some(card))
}
