//! Crash kexec: this kernel as Linux's crash kernel and as its own, and Linux reading ours.

use crate::*;

/// This kernel as Linux's crash kernel: Debian's newest Linux (6.12, `crashkernel=64M`) loads
/// it with kexec-tools' `kexec -p`, writes a unique line to its log and panics through sysrq.
/// This kernel starts in the crash region, reads the ELF core header, the CPUs' registers and
/// VMCOREINFO, walks the dead kernel's printk ring buffer and prints its last lines and the
/// panic message; `dmesg` shows the unique line, `vmcore` the ranges, `mem` that only the
/// 64 MiB region is free.
#[test]
fn crash_kernel_for_linux_shows_the_dead_kernels_log() {
    crash_kernel_for_linux("linux-6.12");
}

/// The same with Debian 12's own Linux 6.1 panicking: its kexec-tools (2.0.26) writes one
/// range of the ELF core header wrong (it cannot find `_text`), which this kernel names and
/// leaves out; the log comes through VMCOREINFO all the same.
#[test]
fn crash_kernel_for_linux_6_1() {
    let run = crash_kernel_for_linux("linux");
    assert!(
        run.out.contains("is larger than RAM: ignored"),
        "{}",
        run.out
    );
}

pub(crate) fn crash_kernel_for_linux(fixture_dir: &str) -> Run {
    let mark = format!(
        "CRASH-MARK-{} the line before the panic",
        std::process::id()
    );
    // (The `sleep` lets the console drain: a panic right after the echo once lost its line
    // in the tty's buffer.)
    // After the report, a normal kexec from the crash region into a fresh Linux, which
    // takes all of RAM again: the reboot.
    let fresh = linux_initramfs("", false, &[]);
    let ours = initramfs(
        &format!("crash-ours-{fixture_dir}.cpio"),
        Some("dmesg\nvmcore\nmem\nkexec -l /Image --initrd=/fresh.cpio --append=\"console=ttyAMA0 panic=-1 fresh-after-crash\"\nkexec -e\n"),
        &[("Image", &linux_image()), ("fresh.cpio", &fresh)],
    );
    let ours = std::fs::read(ours).unwrap();
    let hobby = std::fs::read(image()).unwrap();
    let first = linux_initramfs(
        &format!(
            "echo \"{mark}\" > /dev/kmsg\n\
             /sbin/kexec -p /hobby.Image --initrd=/hobby.cpio --append=\"console=ttyAMA0\"\n\
             echo \"LINUX-CRASH-LOADED $(/bin/busybox cat /sys/kernel/kexec_crash_loaded)\"\n\
             /bin/busybox sleep 1\n\
             echo c > /proc/sysrq-trigger"
        ),
        true,
        &[("hobby.Image", &hobby), ("hobby.cpio", &ours)],
    );
    let path = scratch(&format!("crash-first-{fixture_dir}.cpio"));
    std::fs::write(&path, first).unwrap();
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        linux: Some((
            fixture(format!("{fixture_dir}/Image")),
            path,
            "console=ttyAMA0 crashkernel=160M panic=-1".into(),
        )),
        ..Default::default()
    });
    assert_eq!(
        run.line("LINUX-CRASH-LOADED"),
        Some("LINUX-CRASH-LOADED 1"),
        "{}",
        run.out
    );
    let version = std::fs::read_to_string(fixture(format!("{fixture_dir}/version"))).unwrap();
    let head = run
        .line("crash: capture kernel for Linux ")
        .unwrap_or_else(|| panic!("no crash report:\n{}", run.out));
    assert!(head.contains(version.trim()), "{head}");
    assert!(head.contains("1 CPUs' registers"), "{head}");
    // The panicking CPU's PC and LR are kernel addresses (the image, above PAGE_END).
    let cpu = run.fields("crash: cpu0 ");
    for r in ["pc", "lr"] {
        let v = u64::from_str_radix(cpu[r].trim_start_matches("0x"), 16).unwrap();
        assert!(v >= 0xffff_8000_0000_0000, "{r} {v:#x}");
    }
    assert_eq!(
        run.line("crash: panic: "),
        Some("crash: panic: Kernel panic - not syncing: sysrq triggered crash")
    );
    assert!(
        run.out.contains("crash| ") && run.out.contains("Bye!"),
        "{}",
        run.out
    );
    // `dmesg`: the whole log, the line written before the panic in it, in order.
    let dmesg: Vec<&str> = run
        .out
        .lines()
        .skip_while(|l| !l.starts_with("/init.rc: dmesg"))
        .take_while(|l| !l.starts_with("/init.rc: vmcore"))
        .collect();
    let at = |s: &str| dmesg.iter().position(|l| l.contains(s));
    let (m, p) = (
        at(&mark),
        at("Kernel panic - not syncing: sysrq triggered crash"),
    );
    assert!(m.is_some() && p.is_some() && m < p, "{}", run.out);
    assert!(
        dmesg
            .iter()
            .any(|l| l.contains("Booting Linux on physical CPU")),
        "{}",
        run.out
    );
    // `vmcore`: three ranges of the old kernel's memory; `mem`: only the crash region free.
    assert!(run.lines("vmcore: load ").count() >= 2, "{}", run.out);
    let frames: u64 = run.fields("frames ")["free"].parse().unwrap();
    assert!(
        frames < (160 << 20) / 4096,
        "free frames {frames}: more than the crash region"
    );
    assert!(run.out.contains("crashed kernel"), "{}", run.out);
    // The fresh Linux (the second LINUX-CMDLINE: the first is the panicking one's).
    let cmdline = run
        .lines("LINUX-CMDLINE")
        .nth(1)
        .unwrap_or_else(|| panic!("no fresh Linux after the crash kernel:\n{}", run.out));
    assert!(cmdline.contains("fresh-after-crash"), "{cmdline}");
    assert_eq!(run.status, Some(0));
    run
}

/// As a crash kernel, what cannot be read is named and the shell still comes up: an ELF core
/// header that is not one, one outside RAM, and VMCOREINFO from a Linux whose printk ring
/// buffer this kernel cannot read (no `prb`: before 5.10). The memory outside
/// `linux,usable-memory-range` is never allocated.
#[test]
fn bad_crash_hand_overs_are_named() {
    const HDR: u64 = 0x7000_0000;
    const NOTES: u64 = 0x7000_1000;
    // An ELF core header with one PT_NOTE at NOTES, and there a VMCOREINFO note.
    let info = b"OSRELEASE=4.19.0\nNUMBER(VA_BITS)=48\nNUMBER(kimage_voffset)=0xffff7fff80000000\nNUMBER(PHYS_OFFSET)=0x40000000\nOFFSET(atomic_long_t.counter)=0\n";
    let note = kernel::formats::vmcore::write_note(
        b"VMCOREINFO",
        kernel::formats::vmcore::NT_VMCOREINFO,
        info,
    );
    let mut core = kernel::formats::vmcore::write_core_header(
        &[mm::memmap::Region::new(NOTES, note.len() as u64)],
        &[],
    );
    core.resize((NOTES - HDR) as usize, 0);
    core.extend_from_slice(&note);
    let garbage = vec![0x5au8; 4096];
    for (name, at, data, expect) in [
        (
            "crash-garbage",
            HDR,
            &garbage,
            "crash: ELF core header: not an AArch64 core file (no ELF magic)",
        ),
        (
            "crash-outside",
            0x1_0000_0000,
            &garbage,
            "crash: cannot read the ELF core header at 0x0100000000-0x0100001000: not in RAM",
        ),
        (
            "crash-old-linux",
            HDR,
            &core,
            "crash: cannot read the dead kernel's log: VMCOREINFO has no SYMBOL(prb)",
        ),
    ] {
        let dtb = chosen_dtb(
            name,
            &[
                ("linux,elfcorehdr", &[at, 4096]),
                ("linux,usable-memory-range", &[0x4000_0000, 0x1000_0000]),
            ],
        );
        let rd = initramfs(
            &format!("{name}.cpio"),
            Some("mem\necho still alive\npoweroff\n"),
            &[],
        );
        let run = boot(Boot {
            el: 2,
            initrd: Some(rd),
            dtb: Some(dtb),
            qemu_args: load_at(name, data, HDR),
            ..Default::default()
        });
        assert!(
            run.out.contains(expect),
            "missing '{expect}' in:\n{}",
            run.out
        );
        let frames: u64 = run.fields("frames ")["free"].parse().unwrap();
        assert!(
            frames < (256 << 20) / 4096,
            "{name}: {frames} free frames, more than the usable range"
        );
        assert!(run.out.contains("still alive"), "{}", run.out);
        assert_eq!(run.status, Some(0));
    }
}

/// This kernel's own crashes: with `crashkernel=32M` it reserves a region, `kexec -p --self`
/// loads a crash kernel into it, and a panic (the `panic` command), or an unexpected
/// exception (`fault`), with four CPUs running, stops the others and enters it. The crash
/// kernel reads the ELF core header, the registers and the dead kernel's log ring, and shows
/// its last lines (the line printed before the crash among them) and the panic; it brings
/// all four CPUs up again.
#[test]
fn crash_kernel_for_itself_shows_the_last_lines() {
    for (name, crash, expect) in [
        (
            "self-panic",
            "panic the test panic",
            "crash: panic: PANIC: panicked at ",
        ),
        ("self-fault", "fault", "crash: panic: EXCEPTION: Data Abort"),
    ] {
        let mark = format!("CRASH-SELF-MARK-{name} before the crash");
        let rd = initramfs(
            &format!("{name}.cpio"),
            Some(&format!(
                "echo {mark}\nkexec -p --self --append=\"init=/capture.rc\"\n{crash}\n"
            )),
            &[("capture.rc", b"vmcore\ndmesg\npoweroff\n")],
        );
        let run = boot(Boot {
            el: 2,
            smp: 4,
            initrd: Some(rd),
            append: Some("crashkernel=32M".into()),
            ..Default::default()
        });
        assert!(run.line("crash: reserved ").is_some(), "{}", run.out);
        assert!(
            run.out.contains(
                "kexec: crash kernel loaded: a panic or an unexpected exception enters it"
            ),
            "{}",
            run.out
        );
        let head = run
            .line("crash: capture kernel for this kernel ")
            .unwrap_or_else(|| panic!("{name}: no crash report:\n{}", run.out));
        assert!(head.contains("1 CPUs' registers"), "{head}");
        // `dmesg` in the crash kernel: the old kernel's whole log, the mark in it.
        let dmesg: Vec<&str> = run
            .out
            .lines()
            .skip_while(|l| !l.starts_with("/capture.rc: dmesg"))
            .collect();
        assert!(dmesg.iter().any(|l| *l == mark), "{name}: {}", run.out);
        assert!(
            run.out.contains(expect),
            "{name}: missing '{expect}' in:\n{}",
            run.out
        );
        if name == "self-panic" {
            assert!(run.out.contains("the test panic"), "{}", run.out);
        }
        let cpu = run.fields("crash: cpu0 ");
        let pc = u64::from_str_radix(cpu["pc"].trim_start_matches("0x"), 16).unwrap();
        assert!(
            pc >= 0xffff_8000_0000_0000,
            "pc {pc:#x} is in the kernel image"
        );
        // The crash kernel's `ready` (the first after the jump; `dmesg` repeats the old
        // one later), with the other CPUs stopped and back.
        let ready = run
            .out
            .lines()
            .skip_while(|l| !l.starts_with("crash: entering the crash kernel"))
            .find(|l| l.starts_with("ready "))
            .unwrap_or_else(|| panic!("the crash kernel never got ready:\n{}", run.out));
        assert!(ready.contains("cpus=4"), "{ready}");
        assert!(
            run.out.lines().any(|l| l.starts_with("vmcore: load ")),
            "{}",
            run.out
        );
        assert_eq!(run.status, Some(0));
    }
}

/// Debian's Linux 6.1 as this kernel's crash kernel (`kexec -p`, 96 MiB): after this kernel
/// panics, Linux's `/proc/vmcore` holds the RAM outside the crash region as the ELF core
/// header describes it, and this kernel's log ring in it with the line printed before.
#[test]
fn linux_as_crash_kernel_reads_our_vmcore() {
    let mark = "CRASH-SELF-MARK-for-linux";
    let linux_rd = linux_initramfs(
        &format!(
            "echo \"LINUX-VMCORE-SIZE $(/bin/busybox stat -c %s /proc/vmcore)\"\n\
             echo \"LINUX-VMCORE-MARK $(/bin/busybox grep -o -m 1 '{mark}[a-z-]*' /proc/vmcore)\""
        ),
        false,
        &[],
    );
    let rd = initramfs(
        "linux-capture.cpio",
        Some(&format!(
            "echo {mark}-before-the-panic\nkexec -p /Image --initrd=/linux.cpio --append=\"console=ttyAMA0 panic=-1\"\npanic for Linux\n"
        )),
        &[("Image", &linux_image()), ("linux.cpio", &linux_rd)],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        append: Some("crashkernel=96M".into()),
        ..Default::default()
    });
    assert!(
        run.out.contains("OF: fdt: Reserving 4 KiB of memory at"),
        "Linux found the ELF core header: {}",
        run.out
    );
    let size: u64 = run
        .line("LINUX-VMCORE-SIZE ")
        .unwrap_or_else(|| panic!("no /proc/vmcore:\n{}", run.out))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // 1 GiB of RAM less the 96 MiB region, plus the header.
    assert!(
        (928 << 20..=(930 << 20)).contains(&size),
        "/proc/vmcore is {size} bytes"
    );
    assert_eq!(
        run.line("LINUX-VMCORE-MARK "),
        Some(format!("LINUX-VMCORE-MARK {mark}-before-the-panic").as_str()),
        "{}",
        run.out
    );
}
