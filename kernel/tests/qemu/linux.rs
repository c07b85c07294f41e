//! Into Debian's Linux and back from its kexec-tools.

use crate::*;

pub(crate) const S_IFDIR: u32 = 0o040000;

pub(crate) const S_IFLNK: u32 = 0o120000;

/// Debian's arm64 Linux Image (`scripts/fixtures.sh`).
pub(crate) fn linux_image() -> Vec<u8> {
    std::fs::read(fixture("linux/Image")).unwrap()
}

/// Every directory, file and symlink under `dir`, as cpio entries (paths relative to `dir`).
pub(crate) fn tree(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let perm = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.push((
                    rel,
                    S_IFLNK | 0o777,
                    target.to_string_lossy().into_owned().into_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((rel, S_IFDIR | perm, Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, S_IFREG | perm, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A Linux initramfs: busybox (and kexec-tools with its libraries if `kexec_tools`), `/init`
/// running `script` after mounting /dev, /proc and /sys, plus `files`.
pub(crate) fn linux_initramfs(script: &str, kexec_tools: bool, files: &[(&str, &[u8])]) -> Vec<u8> {
    let userland = fixture("userland");
    let mut entries: Vec<(String, u32, Vec<u8>)> = if kexec_tools {
        tree(&userland)
    } else {
        vec![
            ("bin".into(), S_IFDIR | 0o755, Vec::new()),
            (
                "bin/busybox".into(),
                S_IFREG | 0o755,
                std::fs::read(userland.join("bin/busybox")).unwrap(),
            ),
        ]
    };
    for d in ["dev", "proc", "sys"] {
        entries.push((d.into(), S_IFDIR | 0o755, Vec::new()));
    }
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t devtmpfs dev /dev\n\
         exec </dev/console >/dev/console 2>&1\n\
         /bin/busybox mount -t proc proc /proc\n\
         /bin/busybox mount -t sysfs sys /sys\n\
         export PATH=/sbin:/bin\n\
         echo \"LINUX-UP $(/bin/busybox uname -r)\"\n\
         echo \"LINUX-CMDLINE $(/bin/busybox cat /proc/cmdline)\"\n\
         echo \"LINUX-CPUS $(/bin/busybox nproc)\"\n\
         {script}\n\
         /bin/busybox poweroff -f\n"
    );
    entries.push(("init".into(), S_IFREG | 0o755, init.into_bytes()));
    for (n, d) in files {
        entries.push((n.to_string(), S_IFREG | 0o644, d.to_vec()));
    }
    let refs: Vec<(&str, u32, &[u8])> = entries
        .iter()
        .map(|(n, m, d)| (n.as_str(), *m, d.as_slice()))
        .collect();
    cpio::build(&refs)
}

pub(crate) fn host_sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This kernel kexecs Debian's Linux with a busybox initramfs holding a 1 MiB data file.
pub(crate) fn kexec_into_linux(el: u8, cache_model: Option<&'static str>) -> Run {
    let mut data = vec![0u8; 1 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 + i / 4096) as u8;
    }
    let linux_rd = linux_initramfs(
        "echo \"LINUX-HASH $(/bin/busybox sha256sum /data)\"\n\
         /bin/busybox dmesg | /bin/busybox grep -E 'started at EL|kvm \\['",
        false,
        &[("data", &data)],
    );
    let image = linux_image();
    let rd = initramfs(
        &format!("tolinux-el{el}.cpio"),
        Some("kexec -l /Image --initrd=/linux.cpio --append=\"console=ttyAMA0 panic=-1 from-hobby-kernel\"\nkexec -e\n"),
        &[("Image", &image), ("linux.cpio", &linux_rd)],
    );
    let run = boot(Boot {
        el,
        initrd: Some(rd),
        cache_model,
        ..Default::default()
    });
    let hash = host_sha256(&data);
    assert!(run.out.contains("LINUX-UP 6."), "{}", run.out);
    assert!(
        run.line("LINUX-CMDLINE")
            .unwrap()
            .ends_with("console=ttyAMA0 panic=-1 from-hobby-kernel"),
        "{}",
        run.out
    );
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 1"));
    assert!(
        run.out.contains(&format!("LINUX-HASH {hash}  /data")),
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0), "Linux powered off");
    // QEMU's seeds fed this kernel's pool; Linux got fresh ones from it.
    assert!(
        run.out
            .contains("random: seeded from rng-seed (32 bytes), kaslr-seed (8 bytes)"),
        "{}",
        run.out
    );
    assert!(run.out.contains("KASLR enabled"), "{}", run.out);
    run
}

#[test]
fn kexec_into_linux_at_el2_with_kvm() {
    let run = kexec_into_linux(2, None);
    assert!(
        run.out.contains("CPU: All CPU(s) started at EL2"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("kvm [1]: Hyp mode initialized successfully"),
        "{}",
        run.out
    );
}

#[test]
fn kexec_into_linux_at_el1() {
    let run = kexec_into_linux(1, None);
    assert!(
        run.out.contains("CPU: All CPU(s) started at EL1"),
        "{}",
        run.out
    );
}

#[test]
fn linux_kexecs_this_kernel_which_chains_and_kexecs_linux_again() {
    let linux = linux_image();
    let second = linux_initramfs("echo SECOND-LINUX-OK", false, &[]);
    let ours = cpio::build(&[
        (
            "init.rc",
            S_IFREG | 0o644,
            b"kexec -l /Image --initrd=/second.cpio --append=\"console=ttyAMA0 panic=-1 second-linux\"\nkexec -e\n",
        ),
        ("Image", S_IFREG | 0o644, &linux),
        ("second.cpio", S_IFREG | 0o644, &second),
    ]);
    let hobby = std::fs::read(image()).unwrap();
    let first = linux_initramfs(
        "/sbin/kexec -i -l /hobby.Image --initrd=/hobby.cpio --append=\"kexec.chain=3 kexec.payload=8M\"\n\
         echo KEXEC-E-NOW\n\
         /sbin/kexec -e",
        true,
        &[("hobby.Image", &hobby), ("hobby.cpio", &ours)],
    );
    let path = scratch("linux-first.cpio");
    std::fs::write(&path, first).unwrap();
    let mut cmd_linux = Boot {
        el: 2,
        mem: "2G",
        ..Default::default()
    };
    cmd_linux.linux = Some((
        fixture("linux/Image"),
        path,
        "console=ttyAMA0 panic=-1 first-linux".into(),
    ));
    let run = boot(cmd_linux);
    assert!(run.out.contains("KEXEC-E-NOW"), "{}", run.out);
    let entered = run
        .line("kernel 0.1.0: entered at")
        .unwrap_or_else(|| panic!("{}", run.out));
    assert!(entered.contains("entered at EL2"), "{entered}");
    check_chain(&run, 3, "2");
    let second_cmdline = run.lines("LINUX-CMDLINE").nth(1).unwrap();
    assert!(
        second_cmdline.trim_end().ends_with("second-linux"),
        "{second_cmdline}"
    );
    assert!(run.out.contains("SECOND-LINUX-OK"), "{}", run.out);
}

#[test]
fn linux_image_gz_at_8g_with_a_128m_file() {
    // Linux checks the hash of a 128 MiB file that this kernel handed over in its initrd,
    // and the Image is gzip-compressed.
    let mut data = vec![0u8; 128 << 20];
    for (i, c) in data.chunks_mut(8).enumerate() {
        c.copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    }
    let linux_rd = linux_initramfs(
        "echo \"LINUX-HASH $(/bin/busybox sha256sum /big)\"",
        false,
        &[("big", &data)],
    );
    let image_gz = gzip(&linux_image());
    let rd = initramfs(
        "tolinux-8g.cpio",
        Some("kexec -l /Image.gz --initrd=/linux.cpio --append=\"console=ttyAMA0 panic=-1\"\nkexec\nkexec -e\n"),
        &[("Image.gz", &image_gz), ("linux.cpio", &linux_rd)],
    );
    let run = boot(Boot {
        el: 2,
        mem: "8G",
        initrd: Some(rd),
        ..Default::default()
    });
    assert!(run.out.contains("image (/Image.gz)"), "{}", run.out);
    let hash = host_sha256(&data);
    assert!(
        run.out.contains(&format!("LINUX-HASH {hash}  /big")),
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0));
}

#[test]
fn bad_linux_images_are_named() {
    let linux = linux_image();
    // The header of a 64K-page kernel (flags bits 1-2 = 3), on the real Image.
    let mut k64 = linux[..1 << 20].to_vec();
    let flags = u64::from_le_bytes(k64[24..32].try_into().unwrap());
    k64[24..32].copy_from_slice(&((flags & !0b110) | 0b110).to_le_bytes());
    let gz = gzip(&linux);
    let truncated_gz = gz[..gz.len() / 2].to_vec();
    // Larger than what is left free once the initramfs holds it: even written in place
    // (zero copy) the image and initrd cannot fit.
    let big = vec![3u8; 240 << 20];
    let rd = initramfs(
        "badlinux.cpio",
        Some("kexec -l /Image-64k\nkexec -l /Image.gz\nkexec -l /Image --initrd=/big\necho still alive\npoweroff\n"),
        &[("Image-64k", &k64), ("Image.gz", &truncated_gz), ("Image", &linux), ("big", &big)],
    );
    let run = boot(Boot {
        el: 2,
        mem: "512M",
        initrd: Some(rd),
        ..Default::default()
    });
    // Too big for memory: refused up front, or when the list runs out of frames.
    assert!(
        run.out.contains("kexec: the segments need ")
            || run.out.contains("kexec: entry list: out of memory after"),
        "{}",
        run.out
    );
    for e in [
        "kexec: /Image-64k: Image header flags: 64K pages",
        "kexec: /Image.gz: Image.gz: ",
        "still alive",
    ] {
        assert!(run.out.contains(e), "missing '{e}' in:\n{}", run.out);
    }
    assert_eq!(run.status, Some(0));
}

/// `virt` with 4 CPUs: a 10-hop chain with every CPU up at every hop, then Linux, which
/// brings all four up again.
pub(crate) fn smp_chain_then_linux(el: u8, gic3: bool) -> Run {
    let linux_rd = linux_initramfs(TIMER_COUNTS, false, &[]);
    let rd = initramfs(
        &format!("smp-el{el}.cpio"),
        Some("sleep 250\ncpus\nkexec -l /Image --initrd=/linux.cpio --append=\"console=ttyAMA0 panic=-1\"\nkexec -e\n"),
        &[("Image", &linux_image()), ("linux.cpio", &linux_rd)],
    );
    let run = boot(Boot {
        el,
        smp: 4,
        gic3,
        initrd: Some(rd),
        append: Some("kexec.chain=10 kexec.payload=16M".into()),
        ..Default::default()
    });
    let lines = check_chain(&run, 10, &el.to_string());
    for l in &lines {
        assert_eq!(l["cpus"], "4", "every CPU up at every hop: {l:?}");
    }
    for i in 1..4 {
        assert!(
            run.out
                .contains(&format!("cpu{i}  mpidr={i:#x}  el={el}  online")),
            "{}",
            run.out
        );
    }
    // The last generation's tick ran on every CPU, and so does Linux's after it.
    assert_eq!(cpu_ticks(&run).len(), 4, "{}", run.out);
    assert!(cpu_ticks(&run).iter().all(|&t| t > 0), "{}", run.out);
    assert_linux_timer_counts(&run, 4);
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 4"), "{}", run.out);
    assert!(
        run.out.contains("SMP: Total of 4 processors activated"),
        "{}",
        run.out
    );
    run
}

#[test]
fn smp_4_cpus_chain_and_linux_at_el2() {
    let run = smp_chain_then_linux(2, false);
    assert!(
        run.out.contains("CPU: All CPU(s) started at EL2"),
        "{}",
        run.out
    );
}

#[test]
fn smp_4_cpus_chain_and_linux_at_el1() {
    let run = smp_chain_then_linux(1, false);
    assert!(
        run.out.contains("CPU: All CPU(s) started at EL1"),
        "{}",
        run.out
    );
}

/// QEMU `virt` shaped like a Juno r2: RAM at 0x8000_0000 (2 GiB less the 16 MiB the
/// firmware keeps) and at 0x8_8000_0000 (6 GiB), from QEMU's own DTB with its memory
/// rewritten, over 39 GiB of sparse guest RAM (virt's RAM starts at 0x4000_0000).
pub(crate) fn juno_shaped_dtb() -> PathBuf {
    qemu_dtb_with_banks(
        "juno-shaped.dtb",
        "39G",
        true,
        &[
            (0x8000_0000, (2 << 30) - (16 << 20)),
            (0x8_8000_0000, 6 << 30),
        ],
    )
}

#[test]
fn juno_shaped_virt_chain_then_linux() {
    let linux_rd = linux_initramfs("", false, &[]);
    let rd = initramfs(
        "juno.cpio",
        Some("mem\nkexec -l /Image --initrd=/linux.cpio --append=\"console=ttyAMA0 panic=-1\"\nkexec -e\n"),
        &[("Image", &linux_image()), ("linux.cpio", &linux_rd)],
    );
    let run = boot(Boot {
        el: 2,
        mem: "39G",
        smp: 2,
        sparse_ram: true,
        load: Load::dtb_as_is(juno_shaped_dtb()),
        initrd: Some(rd),
        append: Some("kexec.chain=4 kexec.payload=32M".into()),
        ..Default::default()
    });
    // 2 GiB - 16 MiB + 6 GiB, two CPUs.
    let ready = run.fields("ready ");
    assert_eq!(
        (ready["el"].as_str(), ready["mem"].as_str()),
        ("2", "8176"),
        "{}",
        run.out
    );
    assert_eq!(ready["cpus"], "2");
    let lines = check_chain(&run, 4, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "2");
        // Both banks are 1 GiB-block mapped: still 2 + 4 transitional pages.
        if l["hop"] != "0/4" {
            assert_eq!(l["ttpages"], "7", "{l:?}");
        }
    }
    assert!(
        run.out.contains("bank      0x0080000000-0x00ff000000"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("bank      0x0880000000-0x0a00000000"),
        "{}",
        run.out
    );
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 2"), "{}", run.out);
    assert!(
        run.out.contains("CPU: All CPU(s) started at EL2"),
        "{}",
        run.out
    );
}

/// A Linux initramfs for `raspi4b`: Linux powers a Pi off through the watchdog driver, a
/// module in Debian, which its `/init` loads first.
pub(crate) fn pi_linux_initramfs() -> Vec<u8> {
    let version = std::fs::read_to_string(fixture("linux/version")).unwrap();
    let wdt = std::fs::read(fixture(format!(
        "linux/root/lib/modules/{}/kernel/drivers/watchdog/bcm2835_wdt.ko",
        version.trim()
    )))
    .unwrap();
    linux_initramfs(
        "/bin/busybox insmod /bcm2835_wdt.ko",
        false,
        &[("bcm2835_wdt.ko", &wdt)],
    )
}

/// Every frame allocation a kexec load makes fails once (`failalloc kexec`, a test build):
/// on `raspi4b` with the real Pi 4 DTB, so that the load needs a pen page for its spin-table
/// CPUs as well as the image, initrd and DTB segments and the control pages. Every attempt
/// that hits its failure is refused with a named error and gives every frame back (or, when
/// the failure is a claim, loads by copying instead); then the same load and `kexec -e` boot
/// Linux with all four CPUs.
#[test]
fn every_frame_allocation_of_a_kexec_load_fails_once() {
    let linux_rd = pi_linux_initramfs();
    let args = "/Image --initrd=/linux.cpio --append=\"console=ttyAMA0,115200 panic=-1\"";
    let rd = initramfs(
        "failalloc.cpio",
        Some(&format!(
            "failalloc kexec {args}\nkexec -l {args}\nkexec -e\n"
        )),
        &[("Image", &linux_image()), ("linux.cpio", &linux_rd)],
    );
    let run = boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(fixture("rpi4-qemu.dtb")),
        initrd: Some(rd),
        image: Some(fault_image().to_path_buf()),
        ..Default::default()
    });
    let attempts: Vec<HashMap<String, String>> =
        run.lines("failalloc: n=").map(fields_of).collect();
    let total: usize = run
        .line("failalloc: done: a load makes ")
        .unwrap_or_else(|| panic!("no end of the sweep:\n{}", run.out))
        .split_whitespace()
        .nth(5)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        total >= 12,
        "control pages, list, pen and claims: {total} allocations"
    );
    assert_eq!(attempts.len(), total + 1);
    let mut errors = 0;
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["n"], (i + 1).to_string());
        assert_eq!(
            a["free"],
            a["before"],
            "attempt {}: frames not given back",
            i + 1
        );
        assert_eq!(
            a["failed"],
            if i < total { "true" } else { "false" },
            "{a:?}"
        );
    }
    for l in run.lines("failalloc: n=") {
        if let Some(e) = l.split_once("outcome=error: ").map(|(_, e)| e) {
            errors += 1;
            assert!(e.len() > 10 && !e.contains("PANIC"), "a named error: {l}");
        }
    }
    assert!(
        errors >= 10,
        "most failures refuse the load: {errors} of {total}"
    );
    for e in [
        "outcome=error: out of memory for the spin-table CPUs' pen page",
        "outcome=error: entry list: out of memory",
        "outcome=error: out of memory for control pages",
        "outcome=error: transitional tables: no memory left for a translation table",
    ] {
        assert!(run.out.contains(e), "missing '{e}' in:\n{}", run.out);
    }
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 4"), "{}", run.out);
}

/// `raspi4b` with the real Pi 4 DTB: this kernel runs its chain (`append`), and its last
/// generation's script (`cpus`, `mem`) kexecs Debian's Linux, which prints `LINUX-CPUS`.
pub(crate) fn raspi4b_chain_into_linux(
    name: &str,
    append: &str,
    cache_model: Option<&'static str>,
) -> Run {
    let linux_rd = pi_linux_initramfs();
    // Under the cache model Linux keeps its layout (`nokaslr`): its self-relocation would
    // double its time there, and the model's subject is the hand-over, not Linux.
    let nokaslr = if cache_model.is_some() {
        " nokaslr"
    } else {
        ""
    };
    let rd = initramfs(
        name,
        Some(&format!("cpus\nmem\nkexec -l /Image --initrd=/linux.cpio --append=\"console=ttyAMA0,115200 panic=-1{nokaslr}\"\nkexec -e\n")),
        &[("Image", &linux_image()), ("linux.cpio", &linux_rd)],
    );
    // The seeds the Pi's firmware writes into /chosen (QEMU's raspi4b boot stub writes
    // none, and leaves out the RNG200 it does not model).
    let dtb = scratch(&format!("{name}.dtb"));
    let seed: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(151) ^ 0x5a).collect();
    edit_dtb(
        &fixture("rpi4-qemu.dtb"),
        &dtb,
        &[
            ("/chosen", "rng-seed", seed),
            (
                "/chosen",
                "kaslr-seed",
                0x1234_5678_9abc_def0u64.to_be_bytes().to_vec(),
            ),
        ],
    );
    boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(dtb),
        initrd: Some(rd),
        append: Some(append.into()),
        cache_model,
        ..Default::default()
    })
}

/// QEMU raspi4b with Debian's real Pi 4 DTB (what QEMU does not model disabled, so that
/// Linux can boot on it too): 4 spin-table CPUs, a 10-hop chain with all four up and parked
/// in the pen at every hop, then Linux, which releases all four from the pen.
#[test]
fn raspi4b_chain_then_linux() {
    let run = raspi4b_chain_into_linux("rpi4.cpio", "kexec.chain=10 kexec.payload=16M", None);
    let lines = check_chain(&run, 10, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "every CPU up at every hop: {l:?}");
    }
    // The firmware's page 0 and the pen page stay reserved; the console is the PL011 at its
    // translated address.
    assert!(
        run.out.contains("reserved  0x0000000000-0x0000001000"),
        "{}",
        run.out
    );
    let rsv = run
        .out
        .lines()
        .filter(|l| l.starts_with("reserved") && l.contains("memreserve"))
        .count();
    assert_eq!(rsv, 2, "{}", run.out);
    assert!(run.out.contains("machine: Raspberry Pi 4 Model B"));
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 4"), "{}", run.out);
    assert!(
        run.out.contains("CPU: All CPU(s) started at EL2"),
        "{}",
        run.out
    );
    // The firmware's seeds, then fresh ones from each generation to the next (64 bytes of
    // rng-seed where the firmware's were 64 too), and Linux randomises its layout.
    let seeded = run
        .lines("random: seeded from rng-seed (64 bytes), kaslr-seed (8 bytes)")
        .count();
    assert_eq!(seeded, 11, "{}", run.out);
    assert!(run.out.contains("KASLR enabled"), "{}", run.out);
}

/// Debian's Pi 4 DTB as it is (`stdout-path = "serial1:115200n8"`) and no `console=`: the
/// console is the mini UART, input and output.
#[test]
fn raspi4b_console_on_the_mini_uart() {
    let rd = initramfs("mini.cpio", Some("echo on the mini uart\n"), &[]);
    let run = boot(Boot {
        el: 2,
        raspi4b: true,
        serial1: true,
        dtb: Some(fixture("bcm2711-rpi-4-b.dtb")),
        initrd: Some(rd),
        typed: Some("irqs\npoweroff\n"),
        ..Default::default()
    });
    assert!(run.line("ready el=2 cpus=4").is_some(), "{}", run.out);
    assert!(
        run.out
            .contains("console: /soc/serial@7e215040 (MiniUart, from stdout-path)"),
        "{}",
        run.out
    );
    assert!(run.out.contains("\non the mini uart"), "{}", run.out);
    // What was typed came through the mini UART's receive interrupt (the AUX block's SPI 93).
    assert!(
        run.out
            .contains("irqs: GICv2 tick=100Hz timer_intid=27 uart_intid=125"),
        "{}",
        run.out
    );
    assert!(irq_counts(&run)[0]["uart"] > 0, "{}", run.out);
    assert_eq!(run.status, Some(0));
}
