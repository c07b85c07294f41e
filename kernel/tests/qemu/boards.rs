//! Boards as they ship: load addresses, consoles, memory maps, SErrors, the SD card.

use crate::*;

/// `virt` with the Image at RAM + 0x280000 (not 2 MiB aligned, as a boot loader's
/// `kernel_addr_r` may say; RAM + 0x80000 is where QEMU keeps its own DTB): it runs where it
/// was put, and kexecs on.
#[test]
fn virt_image_at_ram_plus_2_5m() {
    let rd = initramfs("at-2.5m.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        load: Load::DtbAsIs {
            dtb: fixture("virt-1g.dtb"),
            image_at: 0x28_0000,
            initrd_at: 0,
        },
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=4M".into()),
        ..Default::default()
    });
    assert!(
        run.out.contains("entered at EL2, image at 0x40280000"),
        "{}",
        run.out
    );
    Chain {
        hops: 2,
        cpus: Some("1"),
        image: true,
        first_load: Some(0x4028_0000),
        ..Default::default()
    }
    .check(&run);
}

/// A Pi 4 whose firmware loads `kernel8.img` at 0x80000 (older firmware, `kernel_old=1`,
/// `kernel_address=0x80000`), behind TF-A: four CPUs, then kexec on.
#[test]
fn raspi4b_tfa_image_at_512k() {
    let rd = initramfs("tfa-512k.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        raspi4b: true,
        load: Load::Firmware {
            stack: "tfa",
            image_at: 0x8_0000,
            initrd_at: 0,
            memory: None,
        },
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=4M".into()),
        ..Default::default()
    });
    Chain {
        hops: 2,
        cpus: Some("4"),
        image: true,
        first_load: Some(0x8_0000),
        ..Default::default()
    }
    .check(&run);
}

/// A Pi 4 DTB as Raspberry Pi OS's looks after `dtoverlay=disable-bt` (the PL011 is
/// `serial0` and the console, the mini UART disabled) with `console=ttyS0` on the command
/// line: no mini UART to be had, and it says so on the PL011 instead of spinning on a UART
/// that is off.
#[test]
fn raspi4b_disable_bt_dtb_with_console_tty_s0() {
    let dtb = scratch("rpi4-disable-bt.dtb");
    edit_dtb(
        &fixture("rpi4-qemu.dtb"),
        &dtb,
        &[
            ("/chosen", "stdout-path", dt_string("serial0:115200n8")),
            ("/soc/serial@7e215040", "status", dt_string("disabled")),
        ],
    );
    let rd = initramfs("disable-bt.cpio", Some(POWEROFF), &[]);
    let run = boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(dtb),
        initrd: Some(rd),
        append: Some("console=ttyS0,115200".into()),
        ..Default::default()
    });
    assert!(run.line("ready el=2 cpus=4").is_some(), "{}", run.out);
    assert!(
        run.out.contains(
            "warning: console: passed over console=ttyS0,115200: the DTB has no enabled mini UART (brcm,bcm2835-aux-uart)"
        ),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("console: /soc/serial@7e201000 (Pl011, from stdout-path)"),
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0), "{}", run.out);
}

/// A DTB the platform cannot be read from (an initrd that ends before it starts): the
/// kernel says why on the console it names, before it has its own page tables. (Before the
/// early console, this stopped without a word.)
#[test]
fn a_bad_dtb_is_named_on_the_early_console() {
    let dtb = scratch("initrd-backwards.dtb");
    edit_dtb(
        &fixture("virt-1g.dtb"),
        &dtb,
        &[
            ("/chosen", "linux,initrd-start", dt_u64s(&[0x4800_0000])),
            ("/chosen", "linux,initrd-end", dt_u64s(&[0x4700_0000])),
        ],
    );
    let run = boot(Boot {
        el: 2,
        load: Load::dtb_as_is(dtb),
        until: Some("halted"),
        ..Default::default()
    });
    assert!(run.line("PANIC: ").is_some(), "{}", run.out);
    assert!(
        run.out.contains(
            "DTB /chosen: linux,initrd-end 0x47000000 is below linux,initrd-start 0x48000000"
        ),
        "{}",
        run.out
    );
}

/// An SError (a virtual one, made pending through the EL2 stub by the test build's `serror`:
/// QEMU raises no physical SError) is taken and reported like any other exception. Before,
/// SErrors stayed masked: the abort stayed pending and nothing was said.
#[test]
fn an_serror_is_reported() {
    let rd = initramfs("serror.cpio", Some("serror\npoweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        image: Some(fault_image().to_path_buf()),
        initrd: Some(rd),
        ..Default::default()
    });
    assert!(
        run.out
            .contains("EXCEPTION: SError (EC 0x2f), SError, EL1 on SP_EL0"),
        "{}",
        run.out
    );
    assert!(
        !run.out.contains("serror: pending, not taken"),
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(2), "{}", run.out);
}

/// A Pi 4's `/memory` as its firmware writes it: several ranges, the VideoCore's carve-out
/// below 1 GiB left out (here a 2 GB board's, all that QEMU's raspi4b has: 0-0x3b400000 and
/// 0x40000000-0x80000000), behind TF-A: both ranges are RAM, and the chain runs through them.
#[test]
fn raspi4b_firmware_memory_map_in_two_ranges() {
    let rd = initramfs("rpi4-2g-map.cpio", Some("mem\npoweroff\n"), &[]);
    let run = boot(Boot {
        raspi4b: true,
        load: Load::Firmware {
            stack: "tfa",
            image_at: 0,
            initrd_at: 0,
            memory: Some("0 0 3b400000 0 40000000 40000000"),
        },
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=64M".into()),
        ..Default::default()
    });
    Chain {
        hops: 2,
        cpus: Some("4"),
        image: true,
        first_load: Some(0x100_0000),
        ..Default::default()
    }
    .check(&run);
    // 948 MiB + 1 GiB.
    assert_eq!(run.fields("ready ")["mem"], "1972", "{}", run.out);
    for bank in [
        "bank      0x0000000000-0x003b400000",
        "bank      0x0040000000-0x0080000000",
    ] {
        assert!(run.out.contains(bank), "{bank}: {}", run.out);
    }
}

/// A 4 or 8 GB Pi 4's upper RAM as its firmware writes it (0x40000000-0xfc000000, up to the
/// peripherals, and 4 GiB from 0x1_0000_0000), on `virt` (whose RAM cannot start at 0, so
/// the low range is left out), over 8 GiB of sparse guest RAM: the RAM above 4 GiB is
/// mapped, allocated from and kexec'd through.
#[test]
fn pi4_8g_upper_ranges_on_virt() {
    let dtb = qemu_dtb_with_banks(
        "pi4-8g-shaped.dtb",
        "8G",
        true,
        &[(0x4000_0000, 0xbc00_0000), (0x1_0000_0000, 1 << 32)],
    );
    let rd = initramfs("pi4-8g.cpio", Some("mem\npoweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        mem: "8G",
        sparse_ram: true,
        load: Load::dtb_as_is(dtb),
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=64M".into()),
        ..Default::default()
    });
    Chain {
        hops: 2,
        cpus: Some("1"),
        image: true,
        first_load: Some(0x4020_0000),
        ..Default::default()
    }
    .check(&run);
    // 3008 MiB + 4 GiB.
    assert_eq!(run.fields("ready ")["mem"], "7104", "{}", run.out);
    assert!(
        run.out.contains("bank      0x0100000000-0x0200000000"),
        "{}",
        run.out
    );
}

/// An initrd put right after the Image *file* (inside its `image_size`, which the boot
/// protocol keeps free: BSS, heap and tables go there): the kernel says so and does not read
/// what its own BSS overwrote.
#[test]
fn an_initrd_inside_image_size_is_named() {
    let rd = initramfs("inside.cpio", Some(POWEROFF), &[]);
    let file_end = IMAGE_OFFSET + std::fs::metadata(image()).unwrap().len();
    let initrd_at = (file_end + 0xfff) & !0xfff;
    let run = boot(Boot {
        el: 2,
        load: Load::DtbAsIs {
            dtb: fixture("virt-1g.dtb"),
            image_at: 0,
            initrd_at,
        },
        initrd: Some(rd),
        until: Some("kernel# "),
        ..Default::default()
    });
    let start = 0x4000_0000 + initrd_at;
    let line = run
        .line("initramfs: ")
        .unwrap_or_else(|| panic!("{}", run.out));
    assert!(
        line.starts_with(&format!("initramfs: {start:#012x}"))
            && line.contains("lies inside the kernel's image_size")
            && line.ends_with("not read"),
        "{}",
        run.out
    );
    assert!(run.line("ready el=2").is_some(), "{}", run.out);
    assert!(!run.out.contains("init.rc ran"), "{}", run.out);
}

/// The card `scripts/sdcard.sh --tfa --image` writes, booted from its own files (read back
/// out of the disk image's FAT partition) the way a Pi 4's firmware would: BL31 from
/// `armstub=`, the kernel at the address its header asks for (0x200000; `config.txt` has no
/// `kernel_address`), the initramfs right after its `image_size` (`followkernel`), the card's
/// DTB (BL31 edits it as on a board) with `cmdline.txt` as bootargs.
#[test]
fn raspi4b_boots_the_sdcard_files() {
    let rd = initramfs("sdcard.cpio", Some("echo from the card\npoweroff\n"), &[]);
    let card = scratch("sdcard");
    let disk = scratch("sdcard.img");
    let out = Command::new(root().join("scripts/sdcard.sh"))
        .args(["--tfa", "--image"])
        .arg(&disk)
        .arg(&card)
        .arg(image())
        .arg(&rd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The files as the firmware reads them: out of the FAT partition at 1 MiB.
    let files = scratch("sdcard-files");
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(&files).unwrap();
    let st = Command::new("mcopy")
        .arg("-s")
        .arg("-i")
        .arg(format!("{}@@1M", disk.display()))
        .arg("::/")
        .arg(&files)
        .status()
        .expect("mcopy (mtools: scripts/setup.sh)");
    assert!(st.success());
    let read = |f: &str| std::fs::read_to_string(files.join(f)).unwrap();
    let config = read("config.txt");
    let lines: Vec<&str> = config.lines().collect();
    for want in [
        "arm_64bit=1",
        "armstub=bl31.bin",
        "kernel=kernel8.img",
        "initramfs rootfs.cpio followkernel",
    ] {
        assert!(lines.contains(&want), "{want}: {config}");
    }
    assert!(!config.contains("kernel_address"), "{config}");
    // BL31 as Debian ships it (the QEMU-only patch is not on the card): no CPU_OFF comes
    // back in QEMU, so this boots without a kexec.
    assert_eq!(
        std::fs::read(files.join("bl31.bin")).unwrap(),
        std::fs::read(fixture("firmware/bl31.bin")).unwrap()
    );
    let kernel8 = files.join("kernel8.img");
    let image_size =
        u64::from_le_bytes(std::fs::read(&kernel8).unwrap()[16..24].try_into().unwrap());
    const KERNEL: u64 = 0x20_0000;
    let followkernel = (KERNEL + image_size + 0xfff) & !0xfff;
    let run = boot(Boot {
        raspi4b: true,
        load: Load::Firmware {
            stack: "tfa-board",
            image_at: KERNEL,
            initrd_at: followkernel,
            memory: None,
        },
        serial1: true,
        image: Some(kernel8),
        initrd: Some(files.join("rootfs.cpio")),
        dtb: Some(files.join("bcm2711-rpi-4-b.dtb")),
        append: Some(read("cmdline.txt").trim().to_string()),
        ..Default::default()
    });
    assert!(run.line("ready el=2 cpus=4").is_some(), "{}", run.out);
    assert!(run.out.contains("image at 0x200000"), "{}", run.out);
    // BL31 names serial0 (the PL011, on the Bluetooth pins with this DTB) in stdout-path;
    // the card's cmdline.txt names the mini UART, on GPIO 14/15.
    assert_eq!(read("cmdline.txt"), "console=ttyS0,115200\n");
    assert!(
        run.out
            .contains("command line: semihosting console=ttyS0,115200"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("console: /soc/serial@7e215040 (MiniUart, from console=)"),
        "{}",
        run.out
    );
    assert!(run.out.contains("\nfrom the card"), "{}", run.out);
    assert_eq!(run.status, Some(0), "{}", run.out);
}
