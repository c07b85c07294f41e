//! Boot from disk: virtio-blk disks made by the real tools (`sfdisk`, `mkfs.fat` + `mcopy`,
//! `mkfs.ext4 -d`), their files in the shell, kexec from them, boot entries and the menu,
//! and hostile images.

use crate::*;

/// A partition to put on a disk image: its type and contents.
pub(crate) enum Part<'a> {
    /// FAT (`mkfs.fat -F bits`) of `mib` MiB with these files (paths from the root).
    Fat {
        bits: u32,
        mib: u64,
        files: &'a [(&'a str, &'a [u8])],
    },
    /// ext4 (`mkfs.ext4 -d`) of `mib` MiB with these files.
    Ext4 {
        mib: u64,
        files: &'a [(&'a str, &'a [u8])],
    },
}

fn run_tool(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}: run scripts/setup.sh"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// Partition `i`'s file system, made in `dir` by its tool: `mkfs.fat` and `mcopy` (with
/// `mmd` for directories), or `mkfs.ext4 -d` from a directory tree.
fn volume(dir: &Path, i: usize, p: &Part<'_>) -> PathBuf {
    let vol = dir.join(format!("p{i}.img"));
    let (mib, files) = match p {
        Part::Fat { mib, files, .. } | Part::Ext4 { mib, files } => (*mib, *files),
    };
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    match p {
        Part::Fat { bits, .. } => {
            run_tool(
                Command::new("mkfs.fat")
                    .args(["-F", &bits.to_string()])
                    .arg(&vol),
            );
            for (path, data) in files {
                let host = dir.join("file");
                std::fs::write(&host, data).unwrap();
                let dirs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                for n in 1..dirs.len() {
                    let _ = Command::new("mmd")
                        .args(["-i"])
                        .arg(&vol)
                        .arg(format!("::/{}", dirs[..n].join("/")))
                        .output();
                }
                run_tool(
                    Command::new("mcopy")
                        .args(["-i"])
                        .arg(&vol)
                        .arg(&host)
                        .arg(format!("::{path}")),
                );
            }
        }
        Part::Ext4 { .. } => {
            let root = dir.join(format!("root{i}"));
            std::fs::create_dir_all(&root).unwrap();
            for (path, data) in files {
                let f = root.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(&f, data).unwrap();
            }
            run_tool(
                Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-d"])
                    .arg(&root)
                    .arg(&vol),
            );
        }
    }
    vol
}

/// A disk image (`gpt` or MBR, as a Pi's SD card has) with `parts`, each starting at a
/// 1 MiB boundary; written as `sfdisk` writes the table and each file system by its tool.
pub(crate) fn disk_image(name: &str, gpt: bool, parts: &[Part<'_>]) -> PathBuf {
    let dir = scratch(&format!("disk-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let total: u64 = 2 + parts
        .iter()
        .map(|p| match p {
            Part::Fat { mib, .. } | Part::Ext4 { mib, .. } => *mib,
        })
        .sum::<u64>();
    let img = scratch(&format!("{name}.img"));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(total << 20)
        .unwrap();
    let mut table = String::from(if gpt { "label: gpt\n" } else { "label: dos\n" });
    let mut start = 1u64 << 20;
    let mut placed = Vec::new();
    for p in parts {
        let (mib, kind) = match p {
            Part::Fat { mib, .. } => (*mib, if gpt { "U" } else { "c" }),
            Part::Ext4 { mib, .. } => (*mib, "L"),
        };
        table.push_str(&format!(
            "start={}, size={}, type={kind}\n",
            start / 512,
            (mib << 20) / 512
        ));
        placed.push(start);
        start += mib << 20;
    }
    let mut sfdisk = Command::new("sfdisk");
    sfdisk.args(["-q"]).arg(&img).stdin(Stdio::piped());
    let mut child = sfdisk
        .spawn()
        .expect("sfdisk (fdisk): run scripts/setup.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk {table}");
    for (i, (p, at)) in parts.iter().zip(placed).enumerate() {
        let vol = volume(&dir, i, p);
        let data = std::fs::read(&vol).unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&data).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    img
}

/// A GPT disk as a UEFI VM's: an ESP with a BLS entry for this kernel, and an ext4 root
/// with `extlinux.conf` naming this kernel too (with another command line), a data file.
fn vm_disk(name: &str, data: &[u8]) -> PathBuf {
    let image = std::fs::read(image()).unwrap();
    // The extlinux entry's own DTB: QEMU's, with a model that says where it came from.
    let dtb = scratch(&format!("{name}-board.dtb"));
    edit_dtb(
        &fixture("virt-1g.dtb"),
        &dtb,
        &[("/", "model", dt_string("hobby,entry-fdt"))],
    );
    let dtb = std::fs::read(&dtb).unwrap();
    disk_image(
        name,
        true,
        &[
            Part::Fat {
                bits: 16,
                mib: 16,
                files: &[
                    ("/hobby/Image", &image),
                    (
                        "/loader/entries/hobby.conf",
                        b"title Hobby kernel (BLS)\nversion 1\nlinux /hobby/Image\noptions console=ttyAMA0 panic=-1 from-bls\n",
                    ),
                    ("/loader/loader.conf", b"default hobby*\ntimeout 3\n"),
                    ("/Long File Name.txt", b"long names work\n"),
                ],
            },
            Part::Ext4 {
                mib: 24,
                files: &[
                    ("/boot/Image", &image),
                    ("/boot/board.dtb", &dtb),
                    (
                        "/boot/extlinux/extlinux.conf",
                        b"default hobby\ntimeout 20\nlabel hobby\n  menu label Hobby kernel (extlinux)\n  linux /boot/Image\n  fdt board.dtb\n  append console=ttyAMA0 panic=-1 from-extlinux\n",
                    ),
                    ("/data.bin", data),
                ],
            },
        ],
    )
}

#[test]
fn files_on_a_gpt_disk_and_kexec_from_it() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i ^ (i >> 11)) as u8).collect();
    let disk = vm_disk("vm", &data);
    let rd = initramfs(
        "disk-files.cpio",
        Some(
            "disks\nls virtio0p1:/\ncat \"virtio0p1:/Long File Name.txt\"\nls virtio0p2:/boot\n\
             sha256 virtio0p2:/data.bin virtio0p2:/boot/Image\nirqs\n\
             boot 0 --watchdog=2\nboot 0 --watchdog=0\n\
             kexec -l virtio0p2:/boot/Image --append=\"console=ttyAMA0 panic=-1 second-from-disk\"\n\
             kexec -e\n",
        ),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        disks: vec![disk],
        until: Some("second-from-disk"),
        ..Default::default()
    });
    let out = &run.out;
    assert!(out.contains("disk virtio0: 42 MiB"), "{out}");
    assert!(
        out.contains("virtio0p1: 16 MiB at block 2048, gpt esp"),
        "{out}"
    );
    assert!(run.out.contains("fat16"), "{out}");
    assert!(
        out.contains("virtio0p2: 24 MiB at block 34816, gpt"),
        "{out}"
    );
    assert!(out.contains(", ext4"), "{out}");
    assert!(out.contains("virtio0p1:/Long File Name.txt"), "{out}");
    assert!(out.contains("long names work"), "{out}");
    assert!(
        out.contains("d          0  virtio0p2:/boot/extlinux"),
        "{out}"
    );
    let image_hash = host_sha256(&std::fs::read(image()).unwrap());
    for (hash, file) in [
        (host_sha256(&data), "virtio0p2:/data.bin"),
        (image_hash, "virtio0p2:/boot/Image"),
    ] {
        assert!(out.contains(&format!("{hash}  {file} (")), "{file}: {out}");
    }
    // The reads were awaited in `wfi`, woken by the disk's interrupt: at least one per
    // request (the image and the data file are several requests of 4 MiB or less each).
    let devices = run
        .lines("cpu0  ticks=")
        .next()
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("devices="))
        })
        .and_then(|n| n.parse::<u64>().ok())
        .expect("irqs' cpu0 line");
    assert!(devices >= 2, "{devices} device interrupts: {out}");
    // The fail-safe asked for on a machine without a watchdog, or with no time: named.
    assert!(
        out.contains("boot.watchdog: this board has no watchdog this kernel drives"),
        "{out}"
    );
    assert!(
        out.contains("boot: watchdog=0: whole seconds, at least 1"),
        "{out}"
    );
    assert!(out.contains("image (virtio0p2:/boot/Image)"), "{out}");
    assert!(
        run.line("machine:").is_some()
            && out.contains("command line: console=ttyAMA0 panic=-1 second-from-disk"),
        "{out}"
    );
}

#[test]
fn boot_menu_boots_the_default_unattended_and_a_typed_choice() {
    let disk = vm_disk("menu", b"x");
    // Unattended: the BLS entry (the ESP's, found first) after the command line's 1 s.
    let run = boot(Boot {
        el: 2,
        disks: vec![disk.clone()],
        append: Some("boot.menu boot.timeout=1".into()),
        until: Some("kernel# "),
        ..Default::default()
    });
    let out = &run.out;
    assert!(
        out.contains("boot: 0* virtio0p1 bls 'hobby' \"Hobby kernel (BLS)\""),
        "{out}"
    );
    assert!(
        out.contains("boot: 1: virtio0p2 extlinux 'hobby' \"Hobby kernel (extlinux)\""),
        "{out}"
    );
    assert!(out.contains("boot: 'hobby' in 1.0 s"), "{out}");
    assert!(
        out.contains("command line: console=ttyAMA0 panic=-1 from-bls"),
        "{out}"
    );
    // Typed: entry 1 chosen at the menu.
    let run = boot(Boot {
        el: 2,
        disks: vec![disk],
        append: Some("boot.menu boot.timeout=30".into()),
        typed: Some("1\r"),
        typed_after: Some("type an entry's number"),
        until: Some("from-extlinux"),
        ..Default::default()
    });
    assert!(
        run.out.contains("boot: hobby from virtio0p2: /boot/Image"),
        "{}",
        run.out
    );
    // With the entry's `fdt` (relative: from /boot) as its DTB.
    assert!(
        run.out.contains(
            "machine: hobby,entry-fdt; command line: console=ttyAMA0 panic=-1 from-extlinux"
        ),
        "{}",
        run.out
    );
}

/// A Pi 4's card as Debian's raspi-firmware lays it out: an MBR, a FAT32 boot partition
/// (`fat_mib`) with `config.txt` (another model's section to pass over) and `cmdline.txt`,
/// Debian's kernel and `initrd`, and an empty ext4 root (`root_mib`).
fn pi_card(name: &str, initrd: &[u8], fat_mib: u64, root_mib: u64, cmdline: &str) -> PathBuf {
    let linux = linux_image();
    disk_image(
        name,
        false,
        &[
            Part::Fat {
                bits: 32,
                mib: fat_mib,
                files: &[
                    ("/vmlinuz", &linux),
                    ("/initrd.img", initrd),
                    (
                        "/config.txt",
                        b"arm_64bit=1\nenable_uart=1\n[pi3]\nkernel=wrong\n[pi4]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n[all]\n",
                    ),
                    ("/cmdline.txt", format!("{cmdline}\n").as_bytes()),
                ],
            },
            Part::Ext4 {
                mib: root_mib,
                files: &[],
            },
        ],
    )
}

/// `run` booted the card's config.txt entry from `disk`'s first partition, unattended, into
/// Debian's Linux, which reached its init with the card's command line (ending `cmdline_end`)
/// and powered off.
fn assert_card_booted_linux(run: &Run, disk: &str, cmdline_end: &str) {
    let out = &run.out;
    assert!(
        out.contains(&format!("boot: 0* {disk}p1 config.txt")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "boot: config.txt from {disk}p1: /vmlinuz, initrd /initrd.img"
        )),
        "{out}"
    );
    assert!(out.contains("LINUX-UP 6."), "{out}");
    assert!(
        run.line("LINUX-CMDLINE")
            .is_some_and(|l| l.ends_with(cmdline_end)),
        "{out}"
    );
    assert_eq!(run.status, Some(0), "Linux powered off: {out}");
}

#[test]
fn a_pi_style_card_boots_debian_linux_with_its_cmdline() {
    // The card as a virtio disk on `virt`.
    let card = pi_card(
        "picard",
        &linux_initramfs("", false, &[]),
        64,
        8,
        "console=ttyAMA0 panic=-1 root=/dev/mmcblk0p2 from-cmdline-txt",
    );
    let run = boot(Boot {
        el: 2,
        disks: vec![card],
        append: Some("boot.menu boot.timeout=0".into()),
        ..Default::default()
    });
    assert_card_booted_linux(&run, "virtio0", "root=/dev/mmcblk0p2 from-cmdline-txt");
}

#[test]
fn extlinux_on_ext4_boots_debian_linux_with_two_initrds() {
    // Debian's kernel on an ext4 root as u-boot-menu lays it out, its initramfs in two
    // parts (`initrd a,b`), which Linux unpacks one after the other.
    let linux = linux_image();
    let rd1 = linux_initramfs(
        "echo \"LINUX-EXTRA $(/bin/busybox cat /extra)\"",
        false,
        &[],
    );
    let rd2 = cpio::build(&[("extra", S_IFREG | 0o644, b"from the second initrd")]);
    let disk = disk_image(
        "extlinux-linux",
        true,
        &[Part::Ext4 {
            mib: 48,
            files: &[
                ("/boot/vmlinuz-6", &linux),
                ("/boot/initrd.img-6", &rd1),
                ("/boot/extra.img", &rd2),
                (
                    "/boot/extlinux/extlinux.conf",
                    b"default l0\ntimeout 50\n\nlabel l0\n\tmenu label Debian GNU/Linux\n\tlinux /boot/vmlinuz-6\n\tinitrd /boot/initrd.img-6, /boot/extra.img\n\tfdtdir /usr/lib/linux-image-6/\n\tappend console=ttyAMA0 panic=-1 root=/dev/vda1 from-extlinux\n",
                ),
            ],
        }],
    );
    let run = boot(Boot {
        el: 2,
        disks: vec![disk],
        append: Some("boot.menu boot.timeout=0".into()),
        ..Default::default()
    });
    let out = &run.out;
    assert!(
        out.contains("boot: 0* virtio0p1 extlinux 'l0' \"Debian GNU/Linux\""),
        "{out}"
    );
    assert!(out.contains("fdtdir /usr/lib/linux-image-6/: the board's DTB name is the firmware's; keeping the running DTB"), "{out}");
    assert!(
        out.contains(
            "boot: l0 from virtio0p1: /boot/vmlinuz-6, initrd /boot/initrd.img-6 /boot/extra.img"
        ),
        "{out}"
    );
    assert!(
        run.line("LINUX-CMDLINE")
            .is_some_and(|l| l.ends_with("root=/dev/vda1 from-extlinux")),
        "{out}"
    );
    assert_eq!(
        run.line("LINUX-EXTRA"),
        Some("LINUX-EXTRA from the second initrd"),
        "{out}"
    );
    assert_eq!(run.status, Some(0), "Linux powered off: {out}");
}

#[test]
fn hostile_disks_are_named_and_the_shell_goes_on() {
    let image = std::fs::read(image()).unwrap();
    let good = disk_image(
        "hostile-base",
        true,
        &[Part::Ext4 {
            mib: 8,
            files: &[("/boot/Image", &image)],
        }],
    );
    let bytes = std::fs::read(&good).unwrap();
    // 1: the ext4 superblock's magic kept but its counts zeroed: corrupt.
    let mut corrupt = bytes.clone();
    let sb = (1 << 20) + 1024;
    corrupt[sb..sb + 8].fill(0);
    // 2: a GPT whose partition runs past the disk (the table rewritten by sfdisk, then
    // the disk cut short).
    let mut short = bytes.clone();
    short.truncate(5 << 20);
    let write = |name: &str, b: &[u8]| {
        let p = scratch(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let disks = vec![
        write("hostile-short.img", &short),
        write("hostile-corrupt.img", &corrupt),
    ];
    let rd = initramfs(
        "hostile-disks.cpio",
        Some(
            "disks\nls virtio0p1:/\nls virtio1p1:/boot\nkexec -l virtio1p1:/boot/Image\n\
             cat virtio9p1:/x\ncat virtio0p7:/x\ncat virtio0:/x\necho STILL-HERE\npoweroff\n",
        ),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        disks,
        ..Default::default()
    });
    let out = &run.out;
    // virtio0 is the corrupt one (QEMU gives the first -device the last slot).
    assert!(
        out.contains("virtio0p1:") && out.contains("ext4: "),
        "{out}"
    );
    assert!(
        out.contains("virtio1: GPT header: usable blocks outside the disk"),
        "{out}"
    );
    assert!(
        out.contains("virtio9: no such disk (disks: virtio0 virtio1)"),
        "{out}"
    );
    assert!(out.contains("virtio0p7: no such partition"), "{out}");
    assert!(
        out.contains("virtio0:/x: a disk file is named DISKpN:/PATH"),
        "{out}"
    );
    assert!(out.contains("STILL-HERE"), "{out}");
    assert_eq!(run.status, Some(0), "{out}");
}

#[test]
fn raspi4b_sd_card_boots_debian_linux_with_all_cpus() {
    // The card in QEMU's SD slot (`-drive if=sd`: the Arasan SDHCI, mmc@7e300000; a board's
    // card is on EMMC2, the same kind of controller). 128 MiB: QEMU wants an SD image's size
    // a power of two.
    let card = pi_card(
        "rpi4-card",
        &pi_linux_initramfs(),
        96,
        30,
        "console=ttyAMA0,115200 panic=-1 root=/dev/mmcblk0p2 from-the-sd-card",
    );
    let run = boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(fixture("rpi4-qemu.dtb")),
        append: Some("boot.menu boot.timeout=0".into()),
        qemu_args: vec![
            "-drive".into(),
            format!("if=sd,format=raw,file={}", card.display()),
        ],
        ..Default::default()
    });
    assert!(run.out.contains("ready el=2 cpus=4"), "{}", run.out);
    assert_card_booted_linux(&run, "mmc0", "root=/dev/mmcblk0p2 from-the-sd-card");
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 4"), "{}", run.out);
}

/// The index among `run`'s `boot:` lines of the first that starts with `text` (failing,
/// with the output, if none does).
fn boot_line(run: &Run, text: &str) -> usize {
    run.lines("boot: ")
        .position(|l| l.starts_with(text))
        .unwrap_or_else(|| panic!("no line {text:?}: {}", run.out))
}

#[test]
fn raspi4b_pm_watchdog_resets_at_once_and_the_record_survives() {
    // QEMU's raspi4b models the PM block without a countdown: arming the watchdog resets
    // the machine at once (a board would wait 2 s). The boot record in RAM survives the
    // reset; the PM block cannot tell its own reset from Linux's reboot, so the attempt
    // counts as failed, and with its only entry tried the menu leaves for the shell.
    let card = pi_card(
        "rpi4-watchdog",
        &cpio::build(&[("init", S_IFREG | 0o755, b"never run")]),
        96,
        30,
        "console=ttyAMA0,115200 panic=-1",
    );
    let run = boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(fixture("rpi4-qemu.dtb")),
        append: Some("boot.menu boot.timeout=0 boot.watchdog=2".into()),
        qemu_args: vec![
            "-drive".into(),
            format!("if=sd,format=raw,file={}", card.display()),
        ],
        reboot: true,
        until: Some("none came up"),
        ..Default::default()
    });
    let out = &run.out;
    let at = |text: &str| boot_line(&run, text);
    let armed = at("boot: the bcm2835-pm watchdog armed for 2 s (attempt ");
    let failed = at("boot: 'config.txt' did not come up: the bcm2835-pm watchdog reset the board");
    let none = at("boot: every entry was tried and none came up; the shell");
    assert!(armed < failed && failed < none, "{out}");
    assert_eq!(run.lines("ready el=2 cpus=4").count(), 2, "{out}");
    assert!(!out.contains("Booting Linux"), "{out}");
}

#[test]
fn watchdog_falls_back_after_an_entry_that_hangs() {
    // Entry 0's kernel hangs at its first instruction (our Image with `b .` there); entry 1
    // is this kernel. With boot.watchdog=2 the 6300ESB resets the machine 2 s after the
    // jump into entry 0; the kernel starts again, finds the boot record, falls back to
    // entry 1 with the watchdog armed again, and that kernel stops it as it comes up.
    const BRANCH_TO_SELF: u32 = 0x1400_0000;
    let image = std::fs::read(image()).unwrap();
    let hang =
        crate::kexec::patched_image(|b| b[..4].copy_from_slice(&BRANCH_TO_SELF.to_le_bytes()));
    let disk = disk_image(
        "watchdog",
        true,
        &[Part::Ext4 {
            mib: 8,
            files: &[
                ("/boot/hang.Image", &hang),
                ("/boot/Image", &image),
                (
                    "/boot/extlinux/extlinux.conf",
                    b"default hang\nlabel hang\n  linux /boot/hang.Image\n  append console=ttyAMA0 never-seen\nlabel good\n  linux /boot/Image\n  append console=ttyAMA0 panic=-1 fallback-ok\n",
                ),
            ],
        }],
    );
    let run = boot(Boot {
        el: 2,
        disks: vec![disk],
        append: Some("boot.menu boot.timeout=0 boot.watchdog=2".into()),
        qemu_args: vec!["-device".into(), "i6300esb".into()],
        reboot: true,
        until: Some("watchdog stopped"),
        ..Default::default()
    });
    let out = &run.out;
    let lines: Vec<&str> = run.lines("boot: ").collect();
    let at = |text: &str| boot_line(&run, text);
    // First start: entry 0 with the watchdog; second: the fallback; third: entry 1 itself.
    let armed: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("boot: the i6300esb watchdog armed for 2 s (attempt "))
        .collect();
    assert_eq!(armed.len(), 2, "{out}");
    let failed = at("boot: 'hang' did not come up: the i6300esb watchdog reset the board");
    let fallback = at("boot: falling back to 1 'good'");
    let up = at("boot: came up as 'good' (attempt ");
    assert!(
        at("boot: hang from virtio0p1: /boot/hang.Image") < failed,
        "{out}"
    );
    assert!(failed < fallback && fallback < up, "{out}");
    // The attempt that came up is the second one armed.
    let attempt = |l: &str| {
        l.split("(attempt ")
            .nth(1)
            .map(|r| r[..r.find(')').unwrap()].to_string())
    };
    assert_eq!(attempt(lines[up]), attempt(armed[1]), "{out}");
    assert_eq!(run.lines("ready ").count(), 3, "{out}");
    assert!(
        out.contains("command line: console=ttyAMA0 panic=-1 fallback-ok"),
        "{out}"
    );
    assert!(!out.contains("never-seen"), "{out}");
}
