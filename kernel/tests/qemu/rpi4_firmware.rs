//! The Pi 4's firmware stacks (`scripts/rpi4-firmware.sh`): TF-A, U-Boot, both.

use crate::*;

/// Every `cpuN` line of `cpus`: (state, method).
pub(crate) fn cpu_methods(run: &Run) -> Vec<(String, String)> {
    run.out
        .lines()
        .filter(|l| l.starts_with("cpu") && l.contains("mpidr="))
        .map(|l| {
            let f: Vec<&str> = l.split("  ").map(str::trim).collect();
            let method = f.iter().find_map(|w| w.strip_prefix("method=")).unwrap();
            (f[3].to_string(), method.to_string())
        })
        .collect()
}

/// The control for the TF-A emulation: Debian's Linux under Debian's TF-A (BL31 as the
/// armstub, with the test-only warm-reset patch) kexecs Linux with kexec-tools, and the second
/// Linux brings up all four CPUs through PSCI, as on a board. Under the BL31 as shipped, QEMU
/// (which does not model the warm reset its CPU_OFF asks for) loses them: see the next test.
#[test]
fn raspi4b_tfa_linux_kexecs_linux_with_4_cpus() {
    let linux = linux_image();
    let second = linux_initramfs("echo SECOND-LINUX-OK", false, &[]);
    let first = linux_initramfs(
        "/sbin/kexec -l /linux.Image --initrd=/second.cpio --append=\"console=ttyAMA0,115200 panic=-1 second-linux\"\n\
         /sbin/kexec -e",
        true,
        &[("linux.Image", &linux), ("second.cpio", &second)],
    );
    let path = scratch("tfa-linux-first.cpio");
    std::fs::write(&path, first).unwrap();
    let run = boot(Boot {
        raspi4b: true,
        load: Load::firmware("tfa"),
        linux: Some((
            fixture("linux/Image"),
            path,
            "console=ttyAMA0,115200 panic=-1 first-linux".into(),
        )),
        ..Default::default()
    });
    assert!(
        run.out.contains("Changed device tree to advertise PSCI"),
        "{}",
        run.out
    );
    let psci = run
        .out
        .matches("psci: PSCIv1.1 detected in firmware.")
        .count();
    assert_eq!(psci, 2, "both Linuxes use TF-A's PSCI: {}", run.out);
    let cpus: Vec<&str> = run.lines("LINUX-CPUS").collect();
    assert_eq!(cpus, ["LINUX-CPUS 4", "LINUX-CPUS 4"], "{}", run.out);
    assert!(run.out.contains("SECOND-LINUX-OK"), "{}", run.out);
}

/// This kernel under TF-A: four CPUs through PSCI, all four back at every hop of a chain
/// (each hop turns them off with CPU_OFF and on again with CPU_ON), then Linux, which finds
/// PSCI and four CPUs.
#[test]
fn raspi4b_tfa_chain_then_linux() {
    let linux_rd = linux_initramfs("", false, &[]);
    let rd = initramfs(
        "tfa-chain.cpio",
        Some("cpus\nmem\nkexec -l /Image --initrd=/linux.cpio --append=\"console=ttyAMA0,115200 panic=-1\"\nkexec -e\n"),
        &[("Image", &linux_image()), ("linux.cpio", &linux_rd)],
    );
    let run = boot(Boot {
        raspi4b: true,
        load: Load::firmware("tfa"),
        initrd: Some(rd),
        append: Some("kexec.chain=4 kexec.payload=16M".into()),
        ..Default::default()
    });
    let lines = check_chain(&run, 4, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "every CPU back at every hop: {l:?}");
    }
    let methods = cpu_methods(&run);
    assert_eq!(methods.len(), 4, "{}", run.out);
    for (state, method) in &methods[1..] {
        assert_eq!(
            (state.as_str(), method.as_str()),
            ("online", "psci"),
            "{}",
            run.out
        );
    }
    // BL31 keeps its own memory out of every kernel's reach.
    assert!(
        run.out.contains("reserved-memory no-map atf@0"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("psci: PSCIv1.1 detected in firmware."),
        "{}",
        run.out
    );
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 4"), "{}", run.out);
}

/// Debian's BL31 as shipped: in QEMU a CPU that made CPU_OFF never comes back (QEMU ignores
/// the RMR_EL3 warm-reset request it ends with). Each lost CPU gets its own line, the chain
/// names the loss, and the kernel goes on with the CPUs it has.
#[test]
fn raspi4b_tfa_as_shipped_names_every_cpu_that_does_not_return() {
    let rd = initramfs("tfa-board.cpio", Some("cpus\npoweroff\n"), &[]);
    let run = boot(Boot {
        raspi4b: true,
        load: Load::firmware("tfa-board"),
        initrd: Some(rd),
        append: Some("kexec.chain=1 kexec.payload=1M".into()),
        ..Default::default()
    });
    let lines = chain_lines(&run);
    assert_eq!(lines.len(), 2, "{}", run.out);
    assert_eq!(
        (lines[0]["cpus"].as_str(), lines[1]["cpus"].as_str()),
        ("4", "1")
    );
    for mpidr in ["0x1", "0x2", "0x3"] {
        let lost = format!("smp: cpu {mpidr}: did not report in within 10000 ms");
        assert!(run.out.contains(&lost), "{lost}: {}", run.out);
    }
    assert_eq!(
        run.line("chain: FAIL"),
        Some("chain: FAIL CPUs online: 1 at hop 1, 4 at hop 0: a CPU did not come back"),
        "{}",
        run.out
    );
    let failed = cpu_methods(&run)
        .iter()
        .filter(|(s, _)| s == "failed")
        .count();
    assert_eq!(failed, 3, "{}", run.out);
    assert_eq!(
        run.status,
        Some(0),
        "the shell goes on and powers off: {}",
        run.out
    );
}

/// A 2-hop chain on `raspi4b` through a Pi 4 firmware stack, with all four CPUs started by
/// `method` at every hop.
pub(crate) fn rpi4_firmware_chain(firmware: &'static str, method: &str) -> Run {
    let rd = initramfs(
        &format!("{}.cpio", firmware.replace('+', "-")),
        Some("cpus\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        raspi4b: true,
        load: Load::firmware(firmware),
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=16M".into()),
        ..Default::default()
    });
    assert!(run.out.contains("U-Boot 2023.01"), "{}", run.out);
    let lines = check_chain(&run, 2, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "{l:?}");
    }
    for (state, m) in &cpu_methods(&run)[1..] {
        assert_eq!((state.as_str(), m.as_str()), ("online", method));
    }
    run
}

/// Debian's U-Boot (`rpi_arm64`) `booti`s this kernel, which finds four spin-table CPUs and
/// kexecs on from there.
#[test]
fn raspi4b_uboot_boots_the_kernel_which_kexecs_on() {
    let run = rpi4_firmware_chain("uboot", "spin-table");
    assert!(run.out.contains("u-boot: booti 0x1000000"), "{}", run.out);
}

/// TF-A, then U-Boot, then this kernel (the stack of a Pi 4 with `armstub=bl31.bin` and
/// `kernel=u-boot.bin`): PSCI CPUs, kept across a kexec.
#[test]
fn raspi4b_tfa_then_uboot_then_the_kernel() {
    let run = rpi4_firmware_chain("tfa+uboot", "psci");
    assert!(run.out.contains("NOTICE:  BL31: v2.8"), "{}", run.out);
}

#[test]
fn smp_4_cpus_chain_and_linux_with_gicv3() {
    // The GICv3 distributor and CPU interface (system registers) are quiesced at every hop;
    // Linux then sets up its GICv3 from scratch.
    let run = smp_chain_then_linux(2, true);
    assert!(run.out.contains("GICv3"), "{}", run.out);
}
