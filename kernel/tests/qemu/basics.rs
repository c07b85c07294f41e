//! Booting at EL2 and EL1, memory sizes and banks, the shell, the initramfs and bad input.

use crate::*;

#[test]
fn boots_at_el2_with_1g() {
    let rd = initramfs("el2.cpio", Some(POWEROFF), &[]);
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    assert_ready(&run, "2", "1024");
    assert!(run.out.contains("entered at EL2"));
}

#[test]
fn boots_at_el1() {
    let rd = initramfs("el1.cpio", Some(POWEROFF), &[]);
    let run = boot(Boot {
        el: 1,
        initrd: Some(rd),
        ..Default::default()
    });
    assert_ready(&run, "1", "1024");
}

#[test]
fn boots_with_128m() {
    let rd = initramfs("m128.cpio", Some("mem\necho init.rc ran\npoweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        mem: "128M",
        initrd: Some(rd),
        ..Default::default()
    });
    assert_ready(&run, "2", "128");
    // 128 MiB at 0x4000_0000: one level-1 entry's worth of 2 MiB blocks, in one L2 table.
    let l = linear_use(&run);
    assert_eq!(
        (
            l["tables"].as_str(),
            l["blocks_2m"].as_str(),
            l["pages_4k"].as_str()
        ),
        ("2", "64", "0")
    );
}

#[test]
fn boots_with_8g_using_1g_blocks() {
    let rd = initramfs("m8g.cpio", Some("mem\necho init.rc ran\npoweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        mem: "8G",
        initrd: Some(rd),
        ..Default::default()
    });
    assert_ready(&run, "2", "8192");
    let l = linear_use(&run);
    assert_eq!(
        (
            l["tables"].as_str(),
            l["blocks_1g"].as_str(),
            l["blocks_2m"].as_str()
        ),
        ("1", "8", "0")
    );
    let frames = run.fields("frames");
    let free: u64 = frames["free"].parse().unwrap();
    // 8 GiB is 2097152 frames; the image, DTB and initrd take a few hundred.
    assert!((2_090_000..2_097_152).contains(&free), "free frames {free}");
}

#[test]
fn two_banks_with_a_hole() {
    let rd = initramfs(
        "two-bank.cpio",
        Some("mem\necho init.rc ran\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        load: Load::dtb_as_is(two_bank_dtb()),
        initrd: Some(rd),
        ..Default::default()
    });
    assert_ready(&run, "2", "1280");
    let banks: Vec<&str> = run.lines("bank ").collect();
    assert_eq!(banks.len(), 2, "{}", run.out);
    assert!(banks[0].contains("0x0040000000-0x0060000000"), "{banks:?}");
    assert!(banks[1].contains("0x0080000000-0x00b0000000"), "{banks:?}");
    // 1280 MiB = 327680 frames, less the image, DTB and initrd.
    let free: u64 = run.fields("frames")["free"].parse().unwrap();
    assert!((325_000..327_680).contains(&free), "free frames {free}");
}

#[test]
fn fault_reports_a_data_abort_with_its_address() {
    let rd = initramfs("fault.cpio", Some("fault 0xffff900000001230\n"), &[]);
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    // Under `semihosting` the report ends QEMU with status 2.
    assert_eq!(run.status, Some(2), "{}", run.out);
    let ex = run
        .line("EXCEPTION:")
        .unwrap_or_else(|| panic!("no report:\n{}", run.out));
    assert!(
        ex.contains("Data Abort (current EL)") && ex.contains("EC 0x25"),
        "{ex}"
    );
    let f = run.line("  ESR").unwrap();
    assert!(f.contains("FAR 0xffff900000001230"), "{f}");
    assert!(run
        .out
        .contains("translation fault at level 0 on a read of 0xffff900000001230"));
    // Where it happened: at EL1 with the MMU and both caches on (SCTLR_EL1 read then).
    let el = run.line("  EL").unwrap();
    assert!(
        el.starts_with("  EL1  SCTLR_EL1 0x") && el.ends_with(": MMU on, D-cache on, I-cache on"),
        "{el}"
    );
    // Every general register is in the report.
    assert!(run.out.contains(" x30 0x"), "{}", run.out);
}

#[test]
fn files_from_a_gzip_initramfs() {
    let cpio_bytes = cpio::build(&[
        (
            "init.rc",
            S_IFREG | 0o644,
            b"cat /etc/greeting\nls /etc\necho init.rc ran\npoweroff\n",
        ),
        (
            "etc/greeting",
            S_IFREG | 0o644,
            b"hello from a gzip initramfs\n",
        ),
    ]);
    let path = scratch("gz.cpio.gz");
    std::fs::write(&path, gzip(&cpio_bytes)).unwrap();
    let run = boot(Boot {
        el: 2,
        initrd: Some(path),
        ..Default::default()
    });
    assert_ready(&run, "2", "1024");
    assert!(run.out.contains("hello from a gzip initramfs"));
    assert!(run.out.contains("       28  /etc/greeting"), "{}", run.out);
}

#[test]
fn corrupt_initramfs_is_reported_and_the_shell_comes_up() {
    let mut bytes = cpio::build(&[("init.rc", S_IFREG | 0o644, b"poweroff\n")]);
    bytes[6 + 8 * 6] = b'z'; // the filesize field of the first header
    let path = scratch("corrupt.cpio");
    std::fs::write(&path, &bytes).unwrap();
    let run = boot(Boot {
        el: 2,
        initrd: Some(path),
        typed: Some("echo shell works\r"),
        until: Some("shell works\r\nkernel# "),
        ..Default::default()
    });
    assert!(
        run.out.contains("initramfs: cpio: header at byte 0: field filesize is not hexadecimal; continuing without files"),
        "{}",
        run.out
    );
    assert!(run.line("ready ").is_some());
    assert!(run.out.contains("shell works"), "{}", run.out);
}

#[test]
fn truncated_gzip_initramfs_is_reported() {
    let path = scratch("trunc.cpio.gz");
    let full = gzip(&cpio::build(&[("a", S_IFREG, &[7u8; 5000])]));
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let run = boot(Boot {
        el: 1,
        initrd: Some(path),
        until: Some("kernel# "),
        ..Default::default()
    });
    assert!(run.out.contains("initramfs: gzip:"), "{}", run.out);
    assert!(run.line("ready el=1").is_some());
}

#[test]
fn shell_line_editing_over_serial() {
    // "ecxo" + two backspaces + "ho hi" = "echo hi"; ^U kills a line; ↑ recalls "echo hi".
    let run = boot(Boot {
        el: 2,
        typed: Some("ecxo\x7f\x7fho hi\rjunk\x15echo second\r\x1b[A\x1b[A\r"),
        until: Some("echo hi\x1b[K\r\nhi\r\nkernel# "),
        ..Default::default()
    });
    let lines: Vec<&str> = run.out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.contains(&"hi"), "{}", run.out);
    assert!(lines.contains(&"second"), "{}", run.out);
    assert!(!run.out.contains("unknown command"), "{}", run.out);
}

#[test]
fn init_parameter_names_the_script() {
    let rd = initramfs(
        "initparam.cpio",
        None,
        &[(
            "etc/boot.rc",
            b"echo custom script\necho init.rc ran\npoweroff\n",
        )],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        append: Some("init=/etc/boot.rc".into()),
        ..Default::default()
    });
    assert!(
        run.out.contains("/etc/boot.rc: echo custom script"),
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0));
}
