//! UEFI: the EFI stub under EDK2 and U-Boot, Linux's EFI stub, the UEFI memory map.

use crate::*;

/// Lines a Linux `/init` prints about its UEFI runtime services: how many variables efivarfs
/// lists, and what `rtc0` (`rtc-efi`: EDK2 disables the PL031) reads.
pub(crate) const EFI_RUNTIME_CHECK: &str = "/bin/busybox insmod /efivarfs.ko\n\
     /bin/busybox mount -t efivarfs none /sys/firmware/efi/efivars\n\
     echo \"LINUX-EFIVARS $(/bin/busybox ls /sys/firmware/efi/efivars | /bin/busybox wc -l)\"\n\
     echo \"LINUX-RTC $(/bin/busybox cat /sys/class/rtc/rtc0/name) $(/bin/busybox cat /sys/class/rtc/rtc0/date)\"";

pub(crate) fn efivarfs_module() -> Vec<u8> {
    let version = std::fs::read_to_string(fixture("linux/version")).unwrap();
    std::fs::read(fixture(format!(
        "linux/root/lib/modules/{}/kernel/fs/efivarfs/efivarfs.ko",
        version.trim()
    )))
    .unwrap()
}

/// The real-world chain: EDK2 boots Debian's Linux through its EFI stub, whose kexec-tools
/// loads this kernel (the DTB it passes carries the UEFI memory map and system table); this
/// kernel takes its RAM from the UEFI map, chains 3 hops with 64 MiB, and kexecs Linux again,
/// whose runtime services still work: efivarfs lists the same variables and rtc-efi reads
/// the clock.
#[test]
fn uefi_linux_then_this_kernel_then_linux_with_runtime_services() {
    let linux = linux_image();
    let efivarfs = efivarfs_module();
    let last = linux_initramfs(EFI_RUNTIME_CHECK, false, &[("efivarfs.ko", &efivarfs)]);
    let ours = cpio::build(&[
        (
            "init.rc",
            S_IFREG | 0o644,
            b"mem\nkexec -l /Image --initrd=/last.cpio --append=\"console=ttyAMA0 panic=-1 last-linux\"\nkexec -e\n",
        ),
        ("Image", S_IFREG | 0o644, &linux),
        ("last.cpio", S_IFREG | 0o644, &last),
    ]);
    let hobby = std::fs::read(image()).unwrap();
    let first = linux_initramfs(
        &format!(
            "{EFI_RUNTIME_CHECK}\n\
             /sbin/kexec -l /hobby.Image --initrd=/hobby.cpio --append=\"kexec.chain=3 kexec.payload=64M\"\n\
             /sbin/kexec -e"
        ),
        true,
        &[("hobby.Image", &hobby), ("hobby.cpio", &ours), ("efivarfs.ko", &efivarfs)],
    );
    let path = scratch("uefi-first.cpio");
    std::fs::write(&path, first).unwrap();
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        load: Load::Uefi { acpi: false },
        linux: Some((
            fixture("linux/Image"),
            path,
            "console=ttyAMA0 panic=-1".into(),
        )),
        ..Default::default()
    });
    assert!(
        run.out.contains("by EDK II"),
        "Linux came through UEFI: {}",
        run.out
    );
    // This kernel: RAM from the UEFI map, the firmware's regions and the map reserved.
    let source = run
        .line("memory map: UEFI, ")
        .unwrap_or_else(|| panic!("the UEFI map was not used: {}", run.out));
    assert!(source.contains("descriptors"), "{source}");
    for kind in [
        "uefi runtime-services-data",
        "uefi runtime-services-code",
        "uefi memory map",
    ] {
        assert!(
            run.out
                .lines()
                .any(|l| l.starts_with("reserved") && l.contains(kind)),
            "no '{kind}' reservation: {}",
            run.out
        );
    }
    Chain {
        hops: 3,
        same_free: true,
        ..Default::default()
    }
    .check(&run);
    // The last Linux: the same variables, and the EFI clock.
    assert_runtime_services_as_before(&run);
    let last_cmdline = run.lines("LINUX-CMDLINE").nth(1).unwrap();
    assert!(
        last_cmdline.trim_end().ends_with("last-linux"),
        "{last_cmdline}"
    );
}

/// Both Linuxes of `run` listed the same EFI variables (some) and the second read the clock
/// through rtc-efi, without complaint about the system table.
fn assert_runtime_services_as_before(run: &Run) {
    let vars: Vec<&str> = run.lines("LINUX-EFIVARS").collect();
    assert_eq!(vars.len(), 2, "{}", run.out);
    assert_eq!(vars[0], vars[1], "{}", run.out);
    let n: u32 = vars[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n > 0, "{}", vars[0]);
    let rtc: Vec<&str> = run.lines("LINUX-RTC").collect();
    assert_eq!(rtc.len(), 2, "{}", run.out);
    // `name` is the driver and the device, then the date.
    assert!(
        rtc[1].starts_with("LINUX-RTC rtc-efi rtc-efi.0 20"),
        "{}",
        rtc[1]
    );
    assert!(
        !run.out.contains("System table signature incorrect"),
        "{}",
        run.out
    );
}

/// This kernel's EFI stub, started by EDK2 from fw_cfg (`-kernel -initrd -append`): the
/// command line from LoadOptions, the initrd through LoadFile2, the DTB from the
/// configuration table, the Image moved to a 2 MiB-aligned allocation, boot services exited,
/// the UEFI map in `/chosen`; then the kernel at the firmware's EL, which chains on.
pub(crate) fn efi_stub_from_edk2(el: u8) {
    let rd = initramfs(
        &format!("efi-stub-el{el}.cpio"),
        Some("mem\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el,
        load: Load::Uefi { acpi: false },
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=16M efi-stub-test".into()),
        ..Default::default()
    });
    assert!(run.out.contains("efistub: initrd at 0x"), "{}", run.out);
    let moved = run
        .line("efistub: moved the Image to 0x")
        .or_else(|| run.line("efistub: running in place at "))
        .unwrap_or_else(|| panic!("{}", run.out));
    let entered = run.line("kernel 0.1.0: entered at").unwrap();
    assert!(entered.contains(&format!("entered at EL{el}")), "{entered}");
    if let Some(to) = moved.strip_prefix("efistub: moved the Image to ") {
        assert!(
            entered.contains(&format!("image at {:#x}", hex(to))),
            "{moved} / {entered}"
        );
        assert_eq!(hex(to) % (2 << 20), 0);
    }
    let cmdline = run
        .line("machine: linux,dummy-virt; command line:")
        .unwrap();
    assert!(cmdline.contains("efi-stub-test"), "LoadOptions: {cmdline}");
    assert!(run.out.contains("memory map: UEFI, "), "{}", run.out);
    // Every generation's image hash is the file's: the stub left the Image as it was.
    check_chain(&run, 2, &el.to_string());
}

#[test]
fn efi_stub_from_edk2_at_el2() {
    efi_stub_from_edk2(2);
}

#[test]
fn efi_stub_from_edk2_at_el1() {
    efi_stub_from_edk2(1);
}

/// From this kernel's own stub to Linux: EDK2 starts this kernel through its EFI stub, it
/// chains 2 hops and kexecs Debian's Linux, which finds the runtime services the stub's
/// `/chosen` describes intact (efivarfs lists variables, rtc-efi reads the clock).
#[test]
fn efi_stub_then_a_chain_then_linux_with_runtime_services() {
    let last = linux_initramfs(
        EFI_RUNTIME_CHECK,
        false,
        &[("efivarfs.ko", &efivarfs_module())],
    );
    let rd = initramfs(
        "efi-stub-linux.cpio",
        Some("kexec -l /Image --initrd=/last.cpio --append=\"console=ttyAMA0 panic=-1 after-stub\"\nkexec -e\n"),
        &[("Image", &linux_image()), ("last.cpio", &last)],
    );
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        load: Load::Uefi { acpi: false },
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=16M".into()),
        ..Default::default()
    });
    Chain {
        hops: 2,
        same_free: true,
        ..Default::default()
    }
    .check(&run);
    let vars = run
        .line("LINUX-EFIVARS")
        .unwrap_or_else(|| panic!("{}", run.out));
    let n: u32 = vars
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n > 0, "{vars}: {}", run.out);
    let rtc = run.line("LINUX-RTC").unwrap();
    assert!(rtc.starts_with("LINUX-RTC rtc-efi rtc-efi.0 20"), "{rtc}");
    assert!(run.out.contains("efi: EFI v2.70 by EDK II"), "{}", run.out);
}

/// EDK2's boot manager starts the Image from an EFI system partition as
/// `\EFI\BOOT\BOOTAA64.EFI`: no load options, no initrd; the kernel comes up and answers.
#[test]
fn efi_stub_from_an_esp() {
    let esp = esp(
        "esp",
        &[("EFI/BOOT/BOOTAA64.EFI", &std::fs::read(image()).unwrap())],
    );
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        esp: Some(esp),
        typed: Some("mem\npoweroff\n"),
        ..Default::default()
    });
    assert!(run.out.contains("initramfs: none"), "{}", run.out);
    assert!(run.line("ready el=2 cpus=1").is_some(), "{}", run.out);
    assert!(run.out.contains("memory map: UEFI, "), "{}", run.out);
    assert_eq!(run.status, Some(0), "{}", run.out);
}

/// A fresh EFI system partition directory holding `files` (path, bytes).
pub(crate) fn esp(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = scratch(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, data) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    dir
}

/// From EDK2's shell (its `startup.nsh`), as a user types it: `kernel.efi initrd=\rd.cpio
/// ...`: the stub reads the initrd from the volume it was loaded from (no LoadFile2 there);
/// a missing file is named and the stub returns to the shell.
#[test]
fn efi_stub_initrd_from_the_boot_volume() {
    let kernel = std::fs::read(image()).unwrap();
    let rd = cpio::build(&[(
        "init.rc",
        S_IFREG | 0o644,
        b"echo initrd from the volume\npoweroff\n",
    )]);
    let dir = esp(
        "esp-initrd",
        &[
            ("kernel.efi", &kernel),
            ("rd.cpio", &rd),
            (
                "startup.nsh",
                b"fs0:\\kernel.efi initrd=\\rd.cpio esp-initrd\r\n",
            ),
        ],
    );
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        esp: Some(dir),
        ..Default::default()
    });
    assert!(
        run.out.contains("(initrd= on the boot volume)"),
        "{}",
        run.out
    );
    assert!(run.out.contains("\ninitrd from the volume"), "{}", run.out);
    assert_eq!(run.status, Some(0));

    let dir = esp(
        "esp-missing",
        &[
            ("kernel.efi", &kernel),
            ("startup.nsh", b"fs0:\\kernel.efi initrd=\\missing.cpio\r\n"),
        ],
    );
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        esp: Some(dir),
        until: Some("efistub: cannot boot"),
        ..Default::default()
    });
    assert!(
        run.out.contains(
            "efistub: cannot boot: initrd=: no such file on the boot volume (EFI status 0x800000000000000e)"
        ),
        "{}",
        run.out
    );
    assert!(!run.out.contains("kernel 0.1.0: entered"), "{}", run.out);
}

/// Boot entries on the ESP, read by the stub through the firmware's file protocol before
/// ExitBootServices (no block driver for this disk in the kernel): the menu lists them on
/// `esp0p1` (an extlinux.conf with a relative path, and a BLS entry) and boots the BLS
/// one, another copy of this kernel, with its command line and the initrd it names.
#[test]
fn efi_stub_boots_an_entry_from_the_esp() {
    let kernel = std::fs::read(image()).unwrap();
    let rd = cpio::build(&[(
        "init.rc",
        S_IFREG | 0o644,
        b"echo the entry's initrd\nls esp0p1:/loader/entries\npoweroff\n",
    )]);
    let dir = esp(
        "esp-entries",
        &[
            ("kernel.efi", &kernel),
            (
                "startup.nsh",
                b"fs0:\\kernel.efi boot.menu boot.timeout=0 boot.default=hobby\r\n",
            ),
            ("loader/loader.conf", b"default hobby*\n"),
            (
                "loader/entries/hobby.conf",
                b"title Hobby from the ESP\nlinux /vmlinuz-hobby\ninitrd /initrd-hobby.img\noptions console=ttyAMA0 panic=-1 from-the-esp\n",
            ),
            ("vmlinuz-hobby", &kernel),
            ("initrd-hobby.img", &rd),
            (
                "extlinux/extlinux.conf",
                b"label other\n  linux vmlinuz-hobby\n  append console=ttyAMA0 other\n",
            ),
        ],
    );
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        esp: Some(dir),
        ..Default::default()
    });
    let out = &run.out;
    assert!(
        out.contains("efistub: boot entries and their files at 0x"),
        "{out}"
    );
    assert!(
        out.contains("boot: 0* esp0p1 extlinux 'other' \"other\""),
        "{out}"
    );
    assert!(
        out.contains("boot: 1: esp0p1 bls 'hobby' \"Hobby from the ESP\""),
        "{out}"
    );
    assert!(
        out.contains("boot: hobby from esp0p1: /vmlinuz-hobby, initrd /initrd-hobby.img"),
        "{out}"
    );
    assert!(
        out.contains("command line: console=ttyAMA0 panic=-1 from-the-esp"),
        "{out}"
    );
    assert!(out.contains("\nthe entry's initrd"), "{out}");
    // The next kernel does not inherit the ESP's files (their memory is not reserved
    // for it).
    assert!(out.contains("esp0: no such disk"), "{out}");
    assert_eq!(run.status, Some(0), "{out}");
}

/// Debian's U-Boot on QEMU virt `booti`s the Image (preloaded), which chains on.
#[test]
fn uboot_booti_boots_the_kernel() {
    let rd = initramfs("uboot-booti.cpio", Some("poweroff\n"), &[]);
    let size = std::fs::metadata(&rd).unwrap().len();
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        load: Load::UBoot(format!(
            "setenv bootargs 'semihosting kexec.chain=2 kexec.payload=16M from-booti'; booti {UBOOT_KERNEL:#x} {UBOOT_INITRD:#x}:{size:x} ${{fdtcontroladdr}}"
        )),
        ..Default::default()
    });
    assert!(run.out.contains("U-Boot 2023.01"), "{}", run.out);
    let entered = run
        .line("kernel 0.1.0: entered at EL2")
        .unwrap_or_else(|| panic!("{}", run.out));
    assert!(
        entered.contains(&format!("image at {UBOOT_KERNEL:#x}")),
        "{entered}"
    );
    assert!(run.out.contains("from-booti"), "{}", run.out);
    check_chain(&run, 2, "2");
}

/// U-Boot's `bootefi` starts the Image through its EFI stub, after `fatload`ing it from a
/// virtio disk (U-Boot 2023.01 needs to have loaded the image itself); the stub takes the
/// command line from `bootargs` and the initrd from `initrd=` on that disk; the kernel
/// chains on, every hop's image hash the file's.
#[test]
fn uboot_bootefi_boots_the_efi_stub() {
    let rd = cpio::build(&[("init.rc", S_IFREG | 0o644, b"poweroff\n")]);
    let dir = esp(
        "uboot-disk",
        &[
            ("kernel.efi", &std::fs::read(image()).unwrap()),
            ("rd.cpio", &rd),
        ],
    );
    let run = boot(Boot {
        el: 2,
        esp: Some(dir),
        load: Load::UBoot(format!(
            "virtio scan; fatload virtio 0:1 {UBOOT_KERNEL:#x} kernel.efi; setenv bootargs 'initrd=/rd.cpio semihosting kexec.chain=2 kexec.payload=16M from-bootefi'; bootefi {UBOOT_KERNEL:#x} ${{fdtcontroladdr}}"
        )),
        ..Default::default()
    });
    assert!(
        run.out.contains("(initrd= on the boot volume)"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("efistub: moved the Image to")
            || run.out.contains("efistub: running in place"),
        "{}",
        run.out
    );
    assert!(run.out.contains("from-bootefi"), "{}", run.out);
    check_chain(&run, 2, "2");
}

/// An `ExitBootServices` that keeps failing (the test knob `efistub.wrong_map_key` hands
/// EDK2 a stale map key every time): the stub gives up after its retries, says so, and never
/// enters the kernel.
#[test]
fn efi_stub_gives_up_when_exit_boot_services_keeps_failing() {
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        initrd: Some(initramfs("efi-ebs.cpio", Some("poweroff\n"), &[])),
        append: Some("efistub.wrong_map_key".into()),
        until: Some("efistub: cannot boot"),
        ..Default::default()
    });
    assert!(
        run.out.contains(
            "efistub: cannot boot: ExitBootServices kept failing: the memory map changed at every try (EFI status 0x8000000000000015)"
        ),
        "{}",
        run.out
    );
    assert!(!run.out.contains("kernel 0.1.0: entered"), "{}", run.out);
}

/// With ACPI on, EDK2 publishes no DTB: the stub says so and returns to the firmware.
#[test]
fn efi_stub_without_a_dtb_says_so() {
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: true },
        initrd: Some(initramfs("efi-acpi.cpio", Some("poweroff\n"), &[])),
        until: Some("efistub: cannot boot"),
        ..Default::default()
    });
    // EDK2 clears the screen before the first line: the escape codes come first.
    let line = run
        .out
        .lines()
        .find(|l| l.contains("efistub: cannot boot: the firmware publishes no DTB"))
        .unwrap_or_else(|| panic!("{}", run.out));
    assert!(line.contains("acpi=off"), "{line}");
    assert!(!run.out.contains("kernel 0.1.0: entered"), "{}", run.out);
}

/// A DTB whose `/chosen` names a UEFI memory map that cannot be used: one named warning, and
/// the kernel boots on the DTB's `/memory` instead.
#[test]
fn a_bad_uefi_memory_map_is_named_and_the_kernel_boots() {
    for (case, desc_size, desc_ver, expect) in [
        ("ver", 48u32, 2u32, "UEFI memory map: /chosen linux,uefi-mmap-desc-ver is 2, only version 1 exists"),
        ("size", 24, 1, "UEFI memory map: /chosen linux,uefi-mmap-desc-size is 24, smaller than a 40-byte descriptor"),
    ] {
        let dtb = scratch(&format!("bad-uefi-{case}.dtb"));
        std::fs::copy(fixture("virt-1g.dtb"), &dtb).unwrap();
        let put = |args: &[&str]| {
            let st = Command::new("fdtput").arg(&dtb).args(args).status().unwrap();
            assert!(st.success(), "fdtput {args:?}");
        };
        put(&["-t", "x", "/chosen", "linux,uefi-system-table", "0", "40001000"]);
        put(&["-t", "x", "/chosen", "linux,uefi-mmap-start", "0", "40000000"]);
        put(&["-t", "x", "/chosen", "linux,uefi-mmap-size", "60"]);
        put(&["-t", "x", "/chosen", "linux,uefi-mmap-desc-size", &format!("{desc_size:x}")]);
        put(&["-t", "x", "/chosen", "linux,uefi-mmap-desc-ver", &format!("{desc_ver:x}")]);
        let run = boot(Boot {
            el: 2,
            load: Load::dtb_as_is(dtb),
            initrd: Some(initramfs(
                "bad-uefi.cpio",
                Some("mem\necho init.rc ran\npoweroff\n"),
                &[],
            )),
            ..Default::default()
        });
        let warning = format!(
            "warning: {expect}; RAM from the DTB's /memory nodes instead: the UEFI runtime services may not survive this kernel"
        );
        assert!(run.line(&warning).is_some(), "{warning}: {}", run.out);
        assert!(run.out.contains("memory map: the DTB's /memory nodes"), "{}", run.out);
        assert_ready(&run, "2", "1024");
    }
}

/// The EFI stub asks the firmware's EFI_RNG_PROTOCOL (EDK2 has one with a virtio-rng device)
/// for 64 bytes, and the kernel's entropy pool takes them; the next kernel does not get them
/// again (only fresh seeds from the pool).
#[test]
fn efi_rng_protocol_feeds_the_pool_once() {
    let rd = initramfs("efi-rng.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        initrd: Some(rd),
        append: Some("kexec.chain=1 kexec.payload=1M".into()),
        qemu_args: vec!["-device".into(), "virtio-rng-pci".into()],
        ..Default::default()
    });
    let out = &run.out;
    assert!(
        out.contains(
            "efistub: EFI_RNG_PROTOCOL: 0x0000000000000040 bytes for the kernel's entropy pool"
        ),
        "{out}"
    );
    let random: Vec<&str> = run.lines("random: ").collect();
    assert_eq!(
        random,
        [
            "random: seeded from rng-seed (32 bytes), kaslr-seed (8 bytes), efi-rng (64 bytes)",
            "random: seeded from rng-seed (64 bytes), kaslr-seed (8 bytes)"
        ],
        "{out}"
    );
    assert!(out.contains("chain: PASS"), "{out}");
}
