//! Boots the kernel in QEMU and checks what it prints.
//!
//! The Image comes from `$KERNEL_IMAGE` (set by `scripts/test.sh`) or from the last line of
//! `scripts/build.sh`. Every test builds its own initramfs with the kernel's own cpio writer,
//! usually with an `/init.rc` that ends in `poweroff`, so QEMU exits by itself with status 0.

use kernel::cpio::{self, S_IFREG};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Per boot; generous so that a slower CI machine does not fail a chain (the chains take
/// about 15 s here). Only a failing test ever waits this long.
const TIMEOUT: Duration = Duration::from_secs(180);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What `script` (relative to the tree, with its arguments after spaces) builds: the path it
/// prints as its last line, unless `env` names it already (as `scripts/test.sh` does).
fn built(env: &str, script: &str, hint: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let mut words = script.split_whitespace();
    let out = Command::new(root().join(words.next().unwrap()))
        .args(words)
        .output()
        .expect(script);
    assert!(
        out.status.success(),
        "{script} failed{hint}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{script} printed no path"));
    PathBuf::from(last.trim())
}

fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| built("KERNEL_IMAGE", "scripts/build.sh", ""))
}

/// The test Image with failure injection (`scripts/build.sh --fault-inject`): `$FAULT_IMAGE`
/// (set by `scripts/test.sh`), or built now.
fn fault_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| built("FAULT_IMAGE", "scripts/build.sh --fault-inject", ""))
}

/// The cache-model plugin: `$CACHE_MODEL` (set by `scripts/test.sh`), or built now.
fn cache_model() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        built(
            "CACHE_MODEL",
            "tools/cache-model/build.sh",
            " (scripts/setup.sh installs gcc and glib)",
        )
    })
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/qemu-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes an initramfs holding `files` (and `/init.rc` = `script`, if given).
fn initramfs(name: &str, script: Option<&str>, files: &[(&str, &[u8])]) -> PathBuf {
    let mut all: Vec<(&str, u32, &[u8])> = files
        .iter()
        .map(|(n, d)| (*n, S_IFREG | 0o644, *d))
        .collect();
    if let Some(s) = script {
        all.push(("init.rc", S_IFREG | 0o644, s.as_bytes()));
    }
    let path = scratch(name);
    std::fs::write(&path, cpio::build(&all)).unwrap();
    path
}

#[derive(Default)]
struct Boot {
    el: u8,
    mem: &'static str,
    cpu: &'static str,
    /// CPUs (`-smp`); 0 = 1.
    smp: u32,
    /// `virt` with a GICv3 instead of the default GICv2.
    gic3: bool,
    /// Route the second UART (the Pi's mini UART) to stdout instead of the first.
    serial1: bool,
    /// (With `firmware`: also the DTB's own `stdout-path`, not the PL011.)
    /// `raspi4b` instead of `virt` (its own CPUs and RAM; single-threaded TCG, since its
    /// spinning secondaries otherwise starve the boot CPU).
    raspi4b: bool,
    /// On `raspi4b`, boot through this Pi 4 firmware stack (`scripts/rpi4-firmware.sh`:
    /// `tfa`, `tfa-board`, `uboot`, `tfa+uboot`) with `dtb` (default: `rpi4-qemu.dtb`).
    firmware: Option<&'static str>,
    initrd: Option<PathBuf>,
    dtb: Option<PathBuf>,
    /// Hand the kernel this DTB exactly as it is (see `loader_args`), instead of `-kernel`.
    dtb_as_is: Option<PathBuf>,
    /// Boot this (kernel, initrd, command line) with `-kernel` instead of our Image: Linux.
    linux: Option<(PathBuf, PathBuf, String)>,
    /// Where `dtb_as_is` puts things: the start of the DTB's first bank (0 = virt's RAM).
    load_base: u64,
    /// Where `dtb_as_is` puts the Image, from `load_base` (0 = [`IMAGE_OFFSET`]); with
    /// `firmware`, the Image's address (0 = `scripts/rpi4-firmware.sh`'s default).
    image_at: u64,
    /// Where `dtb_as_is` puts the initrd, from `load_base` (0 = [`INITRD_OFFSET`]); with
    /// `firmware`, the initrd's address (0 = `scripts/rpi4-firmware.sh`'s default).
    initrd_at: u64,
    /// With `firmware`: `/memory`'s reg cells as the firmware would write them
    /// (`RPI4_MEMORY`; default: the 960 MiB QEMU's mailbox reports).
    firmware_memory: Option<&'static str>,
    /// A sparse file as guest RAM (`memory-backend-file`), for machines whose RAM reaches
    /// far beyond what the host could allocate.
    sparse_ram: bool,
    /// `virt` under UEFI firmware: Debian's EDK2 (`QEMU_EFI.fd`) as `-bios`, with
    /// `acpi=off` so that it hands over a DTB, booting `linux` (or our Image) from fw_cfg.
    uefi: bool,
    /// With `uefi`: ACPI left on (EDK2 then publishes no DTB).
    acpi: bool,
    /// `virt` (EL2, 1 GiB, 1 CPU) under Debian's U-Boot (`u-boot-qemu`) as `-bios`, which
    /// runs this `bootcmd` (put in the DTB's `/config`) at once; the Image is preloaded at
    /// [`UBOOT_KERNEL`] and the initrd at [`UBOOT_INITRD`].
    uboot: Option<String>,
    /// With `uefi`: no `-kernel`; this directory is the EFI system partition (QEMU's
    /// `fat:` drive, read-only; see `esp()`).
    esp: Option<PathBuf>,
    append: Option<String>,
    /// Bytes typed once the prompt appears.
    typed: Option<&'static str>,
    /// Before typing: leave the kernel idle at its prompt this long, measuring QEMU's host
    /// CPU time meanwhile (`Run::idle_cpu`).
    idle: Option<Duration>,
    /// Stop (kill QEMU) once this text has been printed.
    until: Option<&'static str>,
    /// Our kernel's Image, if not the one under test (`image()`): a patched copy.
    image: Option<PathBuf>,
    /// Run under the cache model (`tools/cache-model`), its report in this scratch file.
    cache_model: Option<&'static str>,
    /// More QEMU arguments, last.
    qemu_args: Vec<String>,
}

struct Run {
    out: String,
    /// QEMU's exit status, or `None` if it was killed (timeout or `until`).
    status: Option<i32>,
    /// The cache model's report, when it ran.
    cache: Option<String>,
    /// QEMU's host CPU use during `Boot::idle`, as a fraction of one core.
    idle_cpu: Option<f64>,
}

impl Run {
    fn line(&self, prefix: &str) -> Option<&str> {
        self.out
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .find(|l| l.starts_with(prefix))
    }

    /// The `key=value` fields of the first line starting with `prefix`.
    fn fields(&self, prefix: &str) -> HashMap<String, String> {
        let line = self
            .line(prefix)
            .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{}", self.out));
        fields_of(line)
    }
}

/// The `key=value` words of a console line.
fn fields_of(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Debian's EDK2 for QEMU virt (`qemu-efi-aarch64`, which `scripts/setup.sh` installs).
const EDK2: &str = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";
/// Debian's U-Boot for QEMU virt (`u-boot-qemu`, which `scripts/setup.sh` installs).
const UBOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
/// Where `Boot::uboot` preloads the Image and the initrd (U-Boot's `kernel_addr_r` and
/// `ramdisk_addr_r` on QEMU virt).
const UBOOT_KERNEL: u64 = 0x4040_0000;
const UBOOT_INITRD: u64 = 0x4400_0000;

fn boot(b: Boot) -> Run {
    let machine = match (b.el, b.gic3) {
        (1, false) => "virt",
        (1, true) => "virt,gic-version=3",
        (_, false) => "virt,virtualization=on",
        (_, true) => "virt,virtualization=on,gic-version=3",
    };
    let machine = match (b.uefi, b.acpi) {
        (true, false) => format!("{machine},acpi=off"),
        _ => machine.to_string(),
    };
    let mut cmd = Command::new("qemu-system-aarch64");
    if b.uefi {
        cmd.args(["-bios", EDK2]);
    }
    if b.raspi4b && b.firmware.is_some() {
        // The rest comes from rpi4_firmware_args.
        cmd.args(["-M", "raspi4b"]);
    } else if b.raspi4b {
        // Its CPUs and RAM are fixed; single-threaded TCG (see the test).
        cmd.args(["-M", "raspi4b", "-accel", "tcg,thread=single"]);
    } else {
        cmd.args([
            "-M",
            &machine,
            "-cpu",
            if b.cpu.is_empty() {
                "cortex-a72"
            } else {
                b.cpu
            },
        ]);
        cmd.args(["-m", if b.mem.is_empty() { "1G" } else { b.mem }]);
        cmd.args(["-smp", &b.smp.max(1).to_string()]);
    }
    if b.sparse_ram {
        let file = scratch("sparse-ram");
        let _ = std::fs::remove_file(&file);
        cmd.args([
            "-object",
            &format!(
                "memory-backend-file,id=ram,size={},mem-path={},share=on",
                b.mem,
                file.display()
            ),
            "-machine",
            "memory-backend=ram",
        ]);
    }

    if b.serial1 {
        cmd.args(["-display", "none", "-serial", "null", "-serial", "stdio"]);
    } else {
        cmd.arg("-nographic");
    }
    cmd.args(["-nic", "none", "-no-reboot"]);
    // Our kernel ends QEMU with a status on a panic (1) or an unexpected exception (2).
    let append = format!("semihosting {}", b.append.as_deref().unwrap_or(""));
    if b.linux.is_none() {
        cmd.args(["-semihosting-config", "enable=on,target=native"]);
    }
    if let Some(bootcmd) = &b.uboot {
        let dtb = scratch("uboot-virt.dtb");
        std::fs::copy(fixture("virt-1g.dtb"), &dtb).unwrap();
        for args in [
            &["-c", "/config"][..],
            &["-t", "s", "/config", "bootcmd", bootcmd],
            &["-t", "i", "/config", "bootdelay", "0"],
        ] {
            let st = Command::new("fdtput")
                .arg(&dtb)
                .args(args)
                .status()
                .unwrap();
            assert!(st.success(), "fdtput {args:?}");
        }
        cmd.args(["-bios", UBOOT]).arg("-dtb").arg(&dtb);
        let kernel = b.image.clone().unwrap_or_else(|| image().to_path_buf());
        cmd.args([
            "-device",
            &format!(
                "loader,file={},addr={UBOOT_KERNEL:#x},force-raw=on",
                kernel.display()
            ),
        ]);
        if let Some(rd) = &b.initrd {
            cmd.args([
                "-device",
                &format!(
                    "loader,file={},addr={UBOOT_INITRD:#x},force-raw=on",
                    rd.display()
                ),
            ]);
        }
    }
    if let Some(esp) = &b.esp {
        cmd.args([
            "-drive",
            &format!(
                "file=fat:{},format=raw,if=virtio,readonly=on",
                esp.display()
            ),
        ]);
    } else if let Some(firmware) = b.firmware {
        assert!(b.raspi4b, "firmware stacks are the Pi 4's");
        let (kernel, initrd, cmdline) = match &b.linux {
            Some((k, i, a)) => (k.clone(), i.clone(), a.clone()),
            None => (
                b.image.clone().unwrap_or_else(|| image().to_path_buf()),
                b.initrd.clone().expect("an initrd"),
                append.clone(),
            ),
        };
        let dtb = b.dtb.clone().unwrap_or_else(|| fixture("rpi4-qemu.dtb"));
        // scripts/rpi4-firmware.sh's knobs.
        let mut env = Vec::new();
        if b.image_at != 0 {
            env.push(("KERNEL_ADDR", format!("{:#x}", b.image_at)));
        }
        if b.initrd_at != 0 {
            env.push(("INITRD_ADDR", format!("{:#x}", b.initrd_at)));
        }
        if let Some(m) = b.firmware_memory {
            env.push(("RPI4_MEMORY", m.to_string()));
        }
        if b.serial1 {
            // The console the DTB names (the mini UART in Debian's), not the PL011.
            env.push(("RPI4_STDOUT_PATH", String::new()));
        }
        cmd.args(rpi4_firmware_args(
            firmware, &kernel, &initrd, &dtb, &cmdline, &env,
        ));
    } else if let Some((kernel, initrd, append)) = &b.linux {
        cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
        cmd.args(["-append", append]);
    } else if let Some(dtb) = &b.dtb_as_is {
        let base = if b.load_base == 0 {
            0x4000_0000
        } else {
            b.load_base
        };
        let image_offset = if b.image_at == 0 {
            IMAGE_OFFSET
        } else {
            b.image_at
        };
        let initrd_offset = if b.initrd_at == 0 {
            INITRD_OFFSET
        } else {
            b.initrd_at
        };
        cmd.args(loader_args(
            dtb,
            base,
            (image_offset, initrd_offset),
            b.initrd.as_deref(),
            b.append.as_deref(),
        ));
    } else if b.uboot.is_none() {
        cmd.arg("-kernel")
            .arg(b.image.as_deref().unwrap_or_else(|| image()));
        if let Some(i) = &b.initrd {
            cmd.arg("-initrd").arg(i);
        }
        if let Some(d) = &b.dtb {
            match (b.raspi4b, b.serial1) {
                (true, false) => cmd.arg("-dtb").arg(pi_console_on_pl011(d)),
                _ => cmd.arg("-dtb").arg(d),
            };
        }
        cmd.args(["-append", &append]);
    }
    cmd.args(&b.qemu_args);
    let report = b.cache_model.map(scratch);
    if let Some(r) = &report {
        let _ = std::fs::remove_file(r);
        cmd.args(cache_model_args(&b, r));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("qemu-system-aarch64 (run scripts/setup.sh)");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // QEMU's own complaints (a loader overlap, a bad option), for the failure message.
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let mut typed = false;
    let pid = child.id();
    let mut idle_from: Option<(Instant, f64)> = None;
    let mut idle_cpu = None;
    let start = Instant::now();
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break child.wait().unwrap().code();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let (Some(idle), None, true) = (b.idle, idle_cpu, out.contains("kernel# ")) {
            let (t0, cpu0) = *idle_from.get_or_insert_with(|| (Instant::now(), cpu_seconds(pid)));
            if t0.elapsed() < idle {
                continue;
            }
            idle_cpu = Some((cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64());
        }
        if let (Some(t), false) = (b.typed, typed) {
            if out.contains("kernel# ") {
                child
                    .stdin
                    .as_mut()
                    .unwrap()
                    .write_all(t.as_bytes())
                    .unwrap();
                typed = true;
            }
        }
        if b.until.is_some_and(|u| out.contains(u)) || start.elapsed() > TIMEOUT {
            // Give the rest of the line a moment to arrive.
            std::thread::sleep(Duration::from_millis(200));
            while let Ok(bytes) = rx.try_recv() {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
    };
    if b.sparse_ram {
        // The guest's RAM file: sparse, but what the guest touched takes disk space.
        let _ = std::fs::remove_file(scratch("sparse-ram"));
    }
    let cache = report.map(|r| {
        std::fs::read_to_string(&r)
            .unwrap_or_else(|e| panic!("no cache-model report at {}: {e}\n{out}", r.display()))
    });
    if status.is_some_and(|s| s != 0) {
        let err = stderr.join().unwrap_or_default();
        out.push_str(&format!(
            "\n[QEMU exited with {status:?}; its stderr: {err}]"
        ));
    }
    Run {
        out,
        status,
        cache,
        idle_cpu,
    }
}

/// QEMU's arguments for running `b` under the cache model, its report in `report`. Several
/// CPUs: round-robin TCG, one CPU at a time, which the model tells apart by VMPIDR_EL2;
/// without EL2 there is no such register, so multi-threaded TCG, where QEMU's own vCPU index
/// is right (tools/cache-model explains). `raspi4b` runs round-robin already.
fn cache_model_args(b: &Boot, report: &Path) -> Vec<String> {
    let mut plugin = format!("{},out={}", cache_model().display(), report.display());
    let mut args = Vec::new();
    if b.smp > 1 && !b.raspi4b {
        let threads = if b.el == 1 { "multi" } else { "single" };
        args.extend(["-accel".to_string(), format!("tcg,thread={threads}")]);
        if b.el == 1 {
            plugin.push_str(",cpus=index");
        }
    }
    args.extend(["-plugin".to_string(), plugin]);
    args
}

/// User plus system CPU time of process `pid` (all its threads), in seconds, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    const CLOCK_TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f[11].parse().unwrap(), f[12].parse().unwrap());
    (utime + stime) / CLOCK_TICKS
}

/// QEMU's arguments for booting `kernel` through a Pi 4 firmware stack, from
/// `scripts/rpi4-firmware.sh` (which lays out memory as the firmware would).
fn rpi4_firmware_args(
    firmware: &str,
    kernel: &Path,
    initrd: &Path,
    dtb: &Path,
    cmdline: &str,
    env: &[(&str, String)],
) -> Vec<String> {
    let stem = initrd.file_stem().unwrap().to_string_lossy();
    let dir = scratch(&format!("fw-{}-{stem}", firmware.replace('+', "-")));
    let mut script = Command::new(root().join("scripts/rpi4-firmware.sh"));
    script.envs(env.iter().map(|(k, v)| (k, v)));
    let out = script
        .arg(firmware)
        .arg(&dir)
        .args([kernel, initrd, dtb])
        .arg(cmdline)
        .output()
        .expect("scripts/rpi4-firmware.sh");
    assert!(
        out.status.success(),
        "scripts/rpi4-firmware.sh {firmware}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A Pi 4 DTB with `stdout-path` at `serial0`, the PL011, which QEMU's first serial port
/// (what most tests read) is: as Raspberry Pi OS's DTB says with `enable_uart=1` and
/// `dtoverlay=disable-bt`. Debian's says `serial1`, the mini UART (`Boot::serial1` reads it).
fn pi_console_on_pl011(dtb: &Path) -> PathBuf {
    let copy = scratch(&format!(
        "pl011-{}",
        dtb.file_name().unwrap().to_string_lossy()
    ));
    std::fs::copy(dtb, &copy).unwrap();
    let st = Command::new("fdtput")
        .arg(&copy)
        .args(["-t", "s", "/chosen", "stdout-path", "serial0:115200n8"])
        .status()
        .expect("fdtput (device-tree-compiler)");
    assert!(st.success(), "fdtput stdout-path");
    copy
}

/// Where `loader_args` puts things, from the start of RAM: all in the first 512 MiB.
/// (QEMU keeps its own DTB in virt's first MiB even without `-kernel`.)
const SHIM_OFFSET: u64 = 0x10_0000;
const IMAGE_OFFSET: u64 = 0x20_0000;
const DTB_OFFSET: u64 = 0x400_0000;
const INITRD_OFFSET: u64 = 0x800_0000;

/// QEMU arguments that boot the kernel with `dtb` unchanged.
///
/// With `-kernel`, QEMU replaces a `-dtb`'s `/memory` and `/chosen`. Instead this loads the
/// Image, a copy of the DTB (with `/chosen` bootargs and initrd set by `fdtput`) and the
/// initrd with `-device loader`, and starts the CPU (at its highest EL) in a four-instruction
/// shim that enters the Image as the boot protocol asks: x0 = DTB, x1..x3 = 0 (from reset).
fn loader_args(
    dtb: &Path,
    base: u64,
    (image_offset, initrd_offset): (u64, u64),
    initrd: Option<&Path>,
    append: Option<&str>,
) -> Vec<String> {
    let (shim_pa, image_pa) = (base + SHIM_OFFSET, base + image_offset);
    let (dtb_pa, initrd_pa) = (base + DTB_OFFSET, base + initrd_offset);
    let copy = scratch(&format!(
        "as-is-{}",
        dtb.file_name().unwrap().to_string_lossy()
    ));
    std::fs::copy(dtb, &copy).unwrap();
    let fdtput = |args: &[&str]| {
        let st = Command::new("fdtput")
            .arg(&copy)
            .args(args)
            .status()
            .expect("fdtput (device-tree-compiler)");
        assert!(st.success(), "fdtput {args:?}");
    };
    fdtput(&["-t", "s", "/chosen", "bootargs", append.unwrap_or("")]);
    let mut args = Vec::new();
    if let Some(rd) = initrd {
        let len = std::fs::metadata(rd).unwrap().len();
        let (start, end) = (initrd_pa, initrd_pa + len);
        for (prop, v) in [("linux,initrd-start", start), ("linux,initrd-end", end)] {
            fdtput(&[
                "-t",
                "x",
                "/chosen",
                prop,
                &format!("{:x}", v >> 32),
                &format!("{:x}", v & 0xffff_ffff),
            ]);
        }
        args.push(format!(
            "loader,file={},addr={start:#x},force-raw=on",
            rd.display()
        ));
    }
    // ldr x0, [pc, #16]; ldr x4, [pc, #20]; br x4; nop; .quad dtb_pa; .quad image_pa
    let mut shim = Vec::new();
    for insn in [0x5800_0080u32, 0x5800_00a4, 0xd61f_0080, 0xd503_201f] {
        shim.extend_from_slice(&insn.to_le_bytes());
    }
    shim.extend_from_slice(&dtb_pa.to_le_bytes());
    shim.extend_from_slice(&image_pa.to_le_bytes());
    let shim_path = scratch("boot-shim.bin");
    std::fs::write(&shim_path, shim).unwrap();
    args.push(format!(
        "loader,file={},addr={dtb_pa:#x},force-raw=on",
        copy.display()
    ));
    args.push(format!(
        "loader,file={},addr={image_pa:#x},force-raw=on",
        image().display()
    ));
    args.push(format!(
        "loader,file={},addr={shim_pa:#x},force-raw=on,cpu-num=0",
        shim_path.display()
    ));
    args.into_iter()
        .flat_map(|a| ["-device".to_string(), a])
        .collect()
}

/// gzip-compresses `data` with the host's gzip (fed from a thread, so that a large input
/// cannot deadlock against gzip's full output pipe).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = Command::new("gzip")
        .arg("-6nc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = gz.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = gz.wait_with_output().unwrap().stdout;
    writer.join().unwrap();
    out
}

const POWEROFF: &str = "echo init.rc ran\npoweroff\n";

fn assert_ready(run: &Run, el: &str, mem_mib: &str) {
    let f = run.fields("ready ");
    assert_eq!(f["el"], el, "{}", run.out);
    assert_eq!(f["mem"], mem_mib, "{}", run.out);
    assert_eq!(f["cpus"], "1");
    let ticks: u64 = f["ticks"].parse().unwrap();
    let us: u64 = f["us"].parse().unwrap();
    assert!(
        ticks > 0 && us > 0,
        "time since entry is measured: {ticks} ticks, {us} us"
    );
    assert!(
        run.out.contains("/init.rc: echo init.rc ran\ninit.rc ran")
            || run
                .out
                .contains("/init.rc: echo init.rc ran\r\ninit.rc ran"),
        "init.rc is echoed and run:\n{}",
        run.out
    );
    assert_eq!(
        run.status,
        Some(0),
        "poweroff ends QEMU with status 0:\n{}",
        run.out
    );
}

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

/// `mem` prints "pagetable linear tables=N blocks_1g=..."; returns those fields.
fn linear_use(run: &Run) -> HashMap<String, String> {
    run.fields("pagetable linear")
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

/// QEMU's own virt DTB for `mem` of RAM (`-machine dumpdtb`, over sparse guest RAM if
/// `sparse`), with its /memory replaced by `banks` (one node each), as `fdtput` edits it.
fn qemu_dtb_with_banks(name: &str, mem: &str, sparse: bool, banks: &[(u64, u64)]) -> PathBuf {
    let dtb = scratch(name);
    let ram = scratch(&format!("{name}.ram"));
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args([
        "-M",
        &format!("virt,virtualization=on,dumpdtb={}", dtb.display()),
    ])
    .args([
        "-cpu",
        "cortex-a72",
        "-smp",
        "2",
        "-m",
        mem,
        "-nographic",
        "-nic",
        "none",
    ]);
    if sparse {
        cmd.args([
            "-object",
            &format!(
                "memory-backend-file,id=ram,size={mem},mem-path={},share=on",
                ram.display()
            ),
            "-machine",
            "memory-backend=ram",
        ]);
    }
    assert!(cmd.stdin(Stdio::null()).status().unwrap().success());
    let _ = std::fs::remove_file(&ram);
    let fdtput = |args: &[&str]| {
        let st = Command::new("fdtput")
            .arg(&dtb)
            .args(args)
            .status()
            .expect("fdtput (device-tree-compiler)");
        assert!(st.success(), "fdtput {args:?}");
    };
    let cells = |v: u64| [format!("{:x}", v >> 32), format!("{:x}", v & 0xffff_ffff)];
    for (i, &(start, size)) in banks.iter().enumerate() {
        // The first bank reuses QEMU's node; the others get new ones.
        let node = if i == 0 {
            "/memory@40000000".to_string()
        } else {
            let n = format!("/memory@{start:x}");
            fdtput(&["-c", &n]);
            fdtput(&["-t", "s", &n, "device_type", "memory"]);
            n
        };
        let [a0, a1] = cells(start);
        let [s0, s1] = cells(size);
        fdtput(&["-t", "x", &node, "reg", &a0, &a1, &s0, &s1]);
    }
    dtb
}

/// QEMU's own DTB for 2 GiB, with /memory changed into two banks and a hole:
/// 0x4000_0000 + 512 MiB, then 0x8000_0000 + 768 MiB.
fn two_bank_dtb() -> PathBuf {
    qemu_dtb_with_banks(
        "two-bank.dtb",
        "2G",
        false,
        &[(0x4000_0000, 512 << 20), (0x8000_0000, 768 << 20)],
    )
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
        dtb_as_is: Some(two_bank_dtb()),
        initrd: Some(rd),
        ..Default::default()
    });
    assert_ready(&run, "2", "1280");
    let banks: Vec<&str> = run.out.lines().filter(|l| l.starts_with("bank ")).collect();
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

// ---- kexec ---------------------------------------------------------------------------------

/// SHA-256 (hex) of the Image under test, as `sha256sum` prints it.
fn image_sha256() -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(image()).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Image's `image_size` header field.
fn image_size() -> u64 {
    let bytes = std::fs::read(image()).unwrap();
    u64::from_le_bytes(bytes[16..24].try_into().unwrap())
}

/// Every `chain: hop=` line's fields, in order.
fn chain_lines(run: &Run) -> Vec<HashMap<String, String>> {
    run.out
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("chain: hop="))
        .map(fields_of)
        .collect()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Checks a finished chain of `hops` hops: every generation's line, then `chain: PASS`.
fn check_chain(run: &Run, hops: usize, el: &str) -> Vec<HashMap<String, String>> {
    let lines = chain_lines(run);
    assert_eq!(lines.len(), hops + 1, "{}", run.out);
    let sha = image_sha256();
    let size = image_size();
    let mut overlapped = false;
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["hop"], format!("{i}/{hops}"), "{l:?}");
        assert_eq!(l["el"], el, "hop {i}: a chain stays at its EL");
        assert_eq!(
            l["image"], sha,
            "hop {i}: pristine Image differs from the file"
        );
        let load = hex(&l["load"]);
        assert_eq!(load % (2 << 20), 0, "hop {i}: load {load:#x}");
        if i == 0 {
            assert_eq!(l["payload"], "none");
            continue;
        }
        assert_eq!(l["payload"], "ok", "hop {i}");
        assert!(l["ttpages"].parse::<u64>().unwrap() >= 5, "{l:?}");
        assert_eq!(
            l["free"], lines[1]["free"],
            "hop {i}: free frames changed (a leak)"
        );
        let prev = hex(&lines[i - 1]["load"]);
        assert_ne!(load, prev, "hop {i}: same address as the previous hop");
        overlapped |= load.abs_diff(prev) < size;
    }
    assert!(overlapped, "no hop overlapped the running kernel");
    check_history(run, &lines);
    assert!(run.line("chain: PASS").is_some(), "{}", run.out);
    assert_eq!(run.status, Some(0), "init.rc powers off after the chain");
    lines
}

/// The last generation's `chain: history` lines: one per generation, in order, each with
/// the free frames that generation's own `chain:` line printed, ready times rising.
fn check_history(run: &Run, lines: &[HashMap<String, String>]) {
    let hist: Vec<HashMap<String, String>> = run
        .out
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("chain: history hop="))
        .map(fields_of)
        .collect();
    assert_eq!(
        hist.len(),
        lines.len(),
        "one history record per generation: {}",
        run.out
    );
    let mut last = 0u64;
    for (i, (h, l)) in hist.iter().zip(lines).enumerate() {
        assert_eq!(h["hop"], i.to_string(), "{h:?}");
        assert_eq!(h["free"], l["free"], "hop {i}: the history's free frames");
        let t: u64 = h["ready_us"].parse().unwrap();
        assert!(i == 0 || t > last, "hop {i}: ready_us {t} not after {last}");
        last = t;
    }
}

fn chain_boot(el: u8, mem: &'static str, append: &str) -> Run {
    let rd = initramfs("chain.cpio", Some("echo after the chain\npoweroff\n"), &[]);
    boot(Boot {
        el,
        mem,
        initrd: Some(rd),
        append: Some(append.into()),
        ..Default::default()
    })
}

#[test]
fn chain_of_20_hops_at_el2() {
    let run = chain_boot(2, "1G", "kexec.chain=20 kexec.payload=64M");
    let lines = check_chain(&run, 20, "2");
    // 1 GiB is one 1 GiB block: root + level 1 of the linear copy, four idmap tables.
    assert_eq!(lines[1]["ttpages"], "6");
    assert!(run.out.contains("after the chain"));
    assert!(run.line("memcpy: ").is_some());
    // Zero copy: hops placed in free memory copy nothing at kexec -e; hops placed over the
    // running kernel copy the pages it uses, and far less than the whole image and payload.
    let copied: Vec<u64> = lines[1..]
        .iter()
        .map(|l| l["copied"].parse().unwrap())
        .collect();
    let whole = image_size() + (64 << 20);
    assert!(
        copied.iter().filter(|&&c| c == 0).count() >= 5,
        "{copied:?}"
    );
    assert!(copied.iter().any(|&c| c > 0), "{copied:?}");
    assert!(copied.iter().all(|&c| c < whole), "{copied:?}");
}

/// `kexec.copy=all`: every page of every hop goes through the relocation copy, as Linux
/// does it.
#[test]
fn chain_copying_every_page() {
    let run = chain_boot(2, "1G", "kexec.chain=6 kexec.payload=64M kexec.copy=all");
    let lines = check_chain(&run, 6, "2");
    for l in &lines[1..] {
        let copied: u64 = l["copied"].parse().unwrap();
        assert!(copied >= image_size() + (64 << 20), "{l:?}");
    }
}

/// The `kexec` listing says per segment what is written in place and what is copied at
/// `kexec -e`: a self-kexec with the default placement copies almost nothing, one over the
/// running kernel (`--base=` its own base) copies what it overlaps, `--copy-all` copies all;
/// the last one is executed.
#[test]
fn kexec_listing_shows_copied_and_in_place_bytes() {
    let rd = initramfs(
        "zerocopy.cpio",
        Some("kexec -l --self\nkexec -l --self --base=0x40000000\nkexec -l --self --copy-all --append=\"init=/next.rc\"\nkexec -e\n"),
        &[("next.rc", b"echo NEXT-OK\npoweroff\n")],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    let totals: Vec<HashMap<String, String>> = run
        .out
        .lines()
        .filter(|l| l.starts_with("kexec: entry="))
        .map(fields_of)
        .collect();
    assert_eq!(totals.len(), 3, "{}", run.out);
    let n = |i: usize, k: &str| totals[i][k].parse::<u64>().unwrap();
    let size = image_size();
    assert!(
        n(0, "copied") < 64 << 10,
        "default placement: {:?}",
        totals[0]
    );
    assert!(n(0, "in_place") >= size, "{:?}", totals[0]);
    assert!(
        n(1, "copied") >= 4096 && n(1, "in_place") > 0,
        "over the kernel: {:?}",
        totals[1]
    );
    assert_eq!(n(2, "in_place"), 0, "{:?}", totals[2]);
    assert!(n(2, "copied") >= size, "{:?}", totals[2]);
    // Per segment: copied + in_place is the segment's destination size.
    let segs: Vec<&str> = run
        .out
        .lines()
        .filter(|l| l.starts_with("segment "))
        .collect();
    assert!(segs.len() >= 9, "{}", run.out);
    for l in segs {
        let f = fields_of(l);
        let (c, p): (u64, u64) = (f["copied"].parse().unwrap(), f["in_place"].parse().unwrap());
        assert!(c + p > 0 && (c + p) % 4096 == 0, "{l}");
    }
    assert!(
        run.out.contains("NEXT-OK"),
        "the copied load boots: {}",
        run.out
    );
    assert_eq!(run.status, Some(0));
}

#[test]
fn chain_of_20_hops_at_el1() {
    let run = chain_boot(1, "1G", "kexec.chain=20 kexec.payload=64M");
    check_chain(&run, 20, "1");
}

#[test]
fn chain_on_8g() {
    let run = chain_boot(2, "8G", "kexec.chain=20 kexec.payload=64M");
    let lines = check_chain(&run, 20, "2");
    // Eight 1 GiB blocks still fit in one level-1 table.
    assert_eq!(lines[1]["ttpages"], "6");
}

#[test]
fn chain_with_the_mmu_off() {
    let run = chain_boot(2, "1G", "kexec.chain=20 kexec.payload=64M kexec.mmu=off");
    check_chain(&run, 20, "2");
    assert!(run.out.contains("MMU off relocation"), "{}", run.out);
}

#[test]
fn chain_on_two_banks() {
    let rd = initramfs("chain2.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        dtb_as_is: Some(two_bank_dtb()),
        initrd: Some(rd),
        append: Some("kexec.chain=20 kexec.payload=64M".into()),
        ..Default::default()
    });
    let lines = check_chain(&run, 20, "2");
    for l in &lines {
        let load = hex(&l["load"]);
        assert!(
            !(0x6000_0000..0x8000_0000).contains(&load),
            "loaded in the hole: {l:?}"
        );
    }
}

#[test]
fn kexec_a_file_with_its_own_initrd_dtb_and_command_line() {
    // A DTB file for the next kernel: QEMU's own (1 GiB, as this machine) with another /model.
    let custom_dtb = kernel::dtb::edit(
        &std::fs::read(fixture("virt-1g.dtb")).unwrap(),
        &[kernel::dtb::Edit {
            node: "/",
            prop: "model",
            value: Some(b"custom kexec DTB\0"),
        }],
        &[],
    )
    .unwrap();
    let next = cpio::build(&[(
        "init.rc",
        S_IFREG | 0o644,
        b"echo second kernel here\npoweroff\n",
    )]);
    let image_bytes = std::fs::read(image()).unwrap();
    let rd = initramfs(
        "kfile.cpio",
        Some("kexec -l /Image --initrd=/next.cpio --dtb=/custom.dtb --append=\"loglevel=7 marker=42\"\nkexec\nkexec -e\n"),
        &[
            ("Image", &image_bytes),
            ("next.cpio", &next),
            ("custom.dtb", &custom_dtb),
        ],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    assert!(run.out.contains("segment 0"), "{}", run.out);
    assert!(run.out.contains("image (/Image)"), "{}", run.out);
    assert!(run.out.contains("initrd (/next.cpio)"), "{}", run.out);
    let show = run.line("kexec: entry=").unwrap();
    assert!(
        show.contains("el2=stub") && show.contains("mmu=on"),
        "{show}"
    );
    assert!(
        run.out.contains("command line: loglevel=7 marker=42"),
        "{}",
        run.out
    );
    assert!(run.out.contains("second kernel here"), "{}", run.out);
    assert!(run.out.contains("DTB (from /custom.dtb)"), "{}", run.out);
    assert!(
        run.out
            .contains("machine: custom kexec DTB; command line: loglevel=7 marker=42"),
        "{}",
        run.out
    );
    // The second kernel came up at EL2 as well.
    let readies: Vec<&str> = run
        .out
        .lines()
        .filter(|l| l.starts_with("ready "))
        .collect();
    assert_eq!(readies.len(), 2, "{}", run.out);
    assert!(readies[1].starts_with("ready el=2"));
    assert_eq!(run.status, Some(0));
}

/// The Image with its header changed by `f`.
fn patched_image(f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = std::fs::read(image()).unwrap();
    f(&mut b);
    b
}

#[test]
fn bad_kexec_input_is_named_and_the_shell_survives() {
    let set = |off: usize, v: u64| {
        move |b: &mut Vec<u8>| b[off..off + 8].copy_from_slice(&v.to_le_bytes())
    };
    let flags = u64::from_le_bytes(std::fs::read(image()).unwrap()[24..32].try_into().unwrap());
    let not_image = vec![0x5au8; 8192];
    let truncated = patched_image(|b| b.truncate(40));
    let zero = patched_image(set(16, 0));
    let huge = patched_image(set(16, 1 << 40));
    let be = patched_image(set(24, flags | 1));
    let k64 = patched_image(set(24, (flags & !0b110) | 0b110));
    // A DTB over 2 MiB: the running kind, with a 3 MiB property.
    let big_dtb = {
        let base = std::fs::read(fixture("virt-1g.dtb")).unwrap();
        let filler = vec![1u8; 3 << 20];
        kernel::dtb::edit_chosen(&base, &[("filler", Some(&filler))]).unwrap()
    };
    let big_initrd = vec![7u8; 120 << 20];
    // PE/COFF: the offset at 0x3c past the end, and pointing at no PE signature.
    let pe_outside = patched_image(|b| {
        let len = b.len() as u32;
        b[0x3c..0x40].copy_from_slice(&(len - 2).to_le_bytes())
    });
    let pe_unsigned = patched_image(|b| b[0x3c..0x40].copy_from_slice(&0x100u32.to_le_bytes()));
    // DTBs the fuzzer found (fuzz/regressions/): each once made the fdt crate panic.
    let regressions = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let read_reg = |n: &str| std::fs::read(regressions.join(n)).unwrap();
    let dtb_nameoff = read_reg("dtb-slice-start-out-of-range.bin");
    let dtb_utf8 = read_reg("dtb-name-not-utf8.bin");
    let dtb_nesting = read_reg("dtb-begin-end-mismatch.bin");
    let dtb_root = read_reg("dtb-root-named.bin");
    let dtb_cut = std::fs::read(fixture("virt-1g.dtb")).unwrap()[..1000].to_vec();
    let script = "\
kexec -e
kexec -l /pe-outside
kexec -l /pe-unsigned
kexec -l --self --dtb=/dtb-nameoff
kexec -l --self --dtb=/dtb-utf8
kexec -l --self --dtb=/dtb-nesting
kexec -l --self --dtb=/dtb-root
kexec -l --self --dtb=/dtb-cut
kexec -l /not-image
kexec -l /truncated
kexec -l /zero-size
kexec -l /huge
kexec -l /big-endian
kexec -l /64k
kexec -l --self --dtb=/big.dtb
kexec -l --self --initrd=/big-initrd
kexec -l --self --frobnicate
kexec -l /missing
kexec
echo still alive
poweroff
";
    let rd = initramfs(
        "bad.cpio",
        Some(script),
        &[
            ("not-image", &not_image),
            ("truncated", &truncated),
            ("zero-size", &zero),
            ("huge", &huge),
            ("big-endian", &be),
            ("64k", &k64),
            ("big.dtb", &big_dtb),
            ("big-initrd", &big_initrd),
            ("pe-outside", &pe_outside),
            ("pe-unsigned", &pe_unsigned),
            ("dtb-nameoff", &dtb_nameoff),
            ("dtb-utf8", &dtb_utf8),
            ("dtb-nesting", &dtb_nesting),
            ("dtb-root", &dtb_root),
            ("dtb-cut", &dtb_cut),
        ],
    );
    let run = boot(Boot {
        el: 2,
        mem: "256M",
        initrd: Some(rd),
        ..Default::default()
    });
    let expect = [
        "kexec: nothing loaded: use kexec -l first",
        "kexec: /pe-outside: Image's PE/COFF header: the offset at 0x3c (",
        "kexec: /pe-unsigned: Image's PE/COFF header: [",
        "names string 0x",
        "kexec: /dtb-utf8: DTB: property at structure offset",
        "DTB: nodes do not nest at structure offset",
        "DTB: the root node has a name",
        "kexec: /dtb-cut: DTB: 1000 bytes, but its header needs",
        "kexec: /not-image: not an arm64 Image: magic at 0x38 is",
        "kexec: /truncated: not an arm64 Image: 40 bytes, shorter than the 64-byte header",
        "kexec: /zero-size: Image header: image_size is 0",
        "kexec: image (image_size): 1099511627776 bytes do not fit in usable memory",
        "kexec: /big-endian: Image header flags: big-endian kernel",
        "kexec: /64k: Image header flags: 64K pages",
        "kexec: the next DTB is ",
        "kexec: the segments need ",
        "unknown option '--frobnicate'",
        "kexec: /missing: no such file in the initramfs",
        "kexec: nothing loaded",
        "still alive",
    ];
    for e in expect {
        assert!(run.out.contains(e), "missing '{e}' in:\n{}", run.out);
    }
    assert_eq!(run.status, Some(0));
}

/// QEMU's virt DTB (`virt-1g.dtb`) with `/chosen` properties set to 64-bit values (each a
/// pair of cells, as the root's `#address-cells = #size-cells = 2` encode them).
fn chosen_dtb(name: &str, props: &[(&str, &[u64])]) -> PathBuf {
    let dtb = scratch(&format!("{name}.dtb"));
    std::fs::copy(fixture("virt-1g.dtb"), &dtb).unwrap();
    for (prop, values) in props {
        let cells: Vec<String> = values
            .iter()
            .flat_map(|v| [v >> 32, v & 0xffff_ffff])
            .map(|c| format!("{c:x}"))
            .collect();
        let st = Command::new("fdtput")
            .arg(&dtb)
            .args(["-t", "x", "/chosen", prop])
            .args(&cells)
            .status()
            .expect("fdtput (device-tree-compiler)");
        assert!(st.success(), "fdtput {prop}");
    }
    dtb
}

/// QEMU arguments that put `data` (written to a scratch file) into guest RAM at `addr`.
fn load_at(name: &str, data: &[u8], addr: u64) -> Vec<String> {
    let file = scratch(&format!("{name}.bin"));
    std::fs::write(&file, data).unwrap();
    vec![
        "-device".into(),
        format!("loader,file={},addr={addr:#x},force-raw=on", file.display()),
    ]
}

/// A hand-over block as a previous kernel would leave it, but broken: the payload's hash
/// wrong, or a hop missing from the history. Loaded into RAM by QEMU and named in the DTB's
/// `/chosen/kexec,handover-*`; the kernel names the fault on its `chain: FAIL` line and goes
/// on to its boot script.
#[test]
fn bad_handover_blocks_are_named() {
    use kernel::chain::{self, Header, HopRecord};
    const AT: u64 = 0x7000_0000;
    let block = |lose_a_hop: bool, bad_hash: bool| {
        let mut h = Header {
            hop: 2,
            total: 3,
            first_el: 2,
            payload_len: 8192,
            cpus: 1,
            ..Default::default()
        };
        let recs: Vec<HopRecord> = (0..2)
            .map(|i| HopRecord {
                hop: i,
                ready_ticks: 1000 + i,
                free: 9,
            })
            .collect();
        let recs = if lose_a_hop { vec![recs[1]] } else { recs };
        h.history_len = recs.len() as u64;
        let mut b = vec![0u8; h.block_len() as usize];
        chain::fill(&mut b[chain::HEADER_PAGE..][..8192], 2);
        h.payload_hash = chain::hash(&b[chain::HEADER_PAGE..][..8192]) ^ u64::from(bad_hash);
        chain::put_history(&mut h, &mut b, &recs);
        h.write(&mut b);
        b
    };
    for (name, b, expect) in [
        (
            "ho-hash",
            block(false, true),
            "chain: FAIL payload hash mismatch at hop 2",
        ),
        (
            "ho-lost",
            block(true, false),
            "chain: FAIL hop 2: history has 1 hops, expected 2",
        ),
    ] {
        let dtb = chosen_dtb(
            name,
            &[
                ("kexec,handover-start", &[AT]),
                ("kexec,handover-end", &[AT + b.len() as u64]),
            ],
        );
        let rd = initramfs(
            &format!("{name}.cpio"),
            Some("echo still alive\npoweroff\n"),
            &[],
        );
        let run = boot(Boot {
            el: 2,
            initrd: Some(rd),
            dtb: Some(dtb),
            append: Some("kexec.chain=3".into()),
            qemu_args: load_at(name, &b, AT),
            ..Default::default()
        });
        assert!(
            run.out.contains(expect),
            "missing '{expect}' in:\n{}",
            run.out
        );
        assert_eq!(run.out.matches("chain: FAIL").count(), 1, "{}", run.out);
        assert!(run.out.contains("still alive"), "{}", run.out);
        assert_eq!(run.status, Some(0));
    }
}

#[test]
fn kexec_refuses_reserved_memory_and_holes() {
    // Two banks, and a no-map firmware carve-out in the first.
    let dtb = two_bank_dtb();
    let fdtput = |args: &[&str]| {
        assert!(Command::new("fdtput")
            .arg(&dtb)
            .args(args)
            .status()
            .unwrap()
            .success());
    };
    fdtput(&["-c", "/reserved-memory"]);
    fdtput(&["-t", "x", "/reserved-memory", "#address-cells", "2"]);
    fdtput(&["-t", "x", "/reserved-memory", "#size-cells", "2"]);
    fdtput(&["-t", "x", "/reserved-memory", "ranges"]);
    fdtput(&["-c", "/reserved-memory/fw@50000000"]);
    fdtput(&[
        "-t",
        "x",
        "/reserved-memory/fw@50000000",
        "reg",
        "0",
        "50000000",
        "0",
        "100000",
    ]);
    fdtput(&["-t", "x", "/reserved-memory/fw@50000000", "no-map"]);
    let rd = initramfs(
        "reserved.cpio",
        Some("kexec -l --self --base=0x4fe00000\nkexec -l --self --base=0x5fe00000\nkexec -l --self --base=0x40300000\necho still alive\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        dtb_as_is: Some(dtb),
        initrd: Some(rd),
        ..Default::default()
    });
    assert!(
        run.out.contains("kexec: image: destination 0x004fe00000-")
            && run
                .out
                .contains("touches 0x50000000, which is reserved by the firmware or not RAM"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("touches 0x60000000"),
        "the hole: {}",
        run.out
    );
    assert!(
        run.out.contains("--base=0x40300000: not 2 MiB aligned"),
        "{}",
        run.out
    );
    assert!(run.out.contains("still alive"));
    assert_eq!(run.status, Some(0));
}

// ---- Linux ---------------------------------------------------------------------------------

const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

/// The path of a fixture under `target/fixtures`, which must exist: a missing one fails
/// naming the script that makes it.
fn fixture(name: impl AsRef<Path>) -> PathBuf {
    let path = root().join("target/fixtures").join(name);
    assert!(
        path.exists(),
        "fixture {} is missing: scripts/fixtures.sh makes it (scripts/test.sh runs it)",
        path.display()
    );
    path
}

/// Debian's arm64 Linux Image (`scripts/fixtures.sh`).
fn linux_image() -> Vec<u8> {
    std::fs::read(fixture("linux/Image")).unwrap()
}

/// Every directory, file and symlink under `dir`, as cpio entries (paths relative to `dir`).
fn tree(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
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
fn linux_initramfs(script: &str, kexec_tools: bool, files: &[(&str, &[u8])]) -> Vec<u8> {
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

fn host_sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This kernel kexecs Debian's Linux with a busybox initramfs holding a 1 MiB data file.
fn kexec_into_linux(el: u8, cache_model: Option<&'static str>) -> Run {
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
    let second_cmdline = run
        .out
        .lines()
        .filter(|l| l.starts_with("LINUX-CMDLINE"))
        .nth(1)
        .unwrap();
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
fn smp_chain_then_linux(el: u8, gic3: bool) -> Run {
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
fn juno_shaped_dtb() -> PathBuf {
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
        dtb_as_is: Some(juno_shaped_dtb()),
        load_base: 0x8000_0000,
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
fn pi_linux_initramfs() -> Vec<u8> {
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
    let attempts: Vec<HashMap<String, String>> = run
        .out
        .lines()
        .filter(|l| l.starts_with("failalloc: n="))
        .map(fields_of)
        .collect();
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
    for l in run.out.lines().filter(|l| l.starts_with("failalloc: n=")) {
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
fn raspi4b_chain_into_linux(name: &str, append: &str, cache_model: Option<&'static str>) -> Run {
    let linux_rd = pi_linux_initramfs();
    let rd = initramfs(
        name,
        Some("cpus\nmem\nkexec -l /Image --initrd=/linux.cpio --append=\"console=ttyAMA0,115200 panic=-1\"\nkexec -e\n"),
        &[("Image", &linux_image()), ("linux.cpio", &linux_rd)],
    );
    boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(fixture("rpi4-qemu.dtb")),
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

// ---- memory routines ---------------------------------------------------------------------

/// `arch/mem.S`'s memcpy, memmove, memset and memcmp agree with byte-at-a-time references
/// over every size to 300 bytes (and larger ones), every alignment within 16 bytes and
/// overlaps both ways (`memcheck`).
#[test]
fn memory_routines_match_their_references() {
    let rd = initramfs("memcheck.cpio", Some("memcheck\npoweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    let cases: u64 = run.fields("memcheck: ok")["cases"].parse().unwrap();
    assert!(cases > 90_000, "{cases} cases");
    assert_eq!(run.status, Some(0));
}

/// `sha256` hashes initramfs files with the CPU's SHA-2 instructions (QEMU's cortex-a72 has
/// them) and with the portable code, and both give the host's digests, at every length
/// around a block boundary and for a 3 MiB file.
#[test]
fn sha256_with_and_without_the_sha2_instructions() {
    use sha2::{Digest, Sha256};
    let big: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let lens = [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000];
    let names: Vec<String> = lens.iter().map(|n| format!("f{n}")).collect();
    let mut files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(lens)
        .map(|(name, n)| (name.as_str(), &big[..n]))
        .collect();
    files.push(("big", &big));
    let list: String = files.iter().map(|(n, _)| format!(" /{n}")).collect();
    let script = format!("sha256{list}\nsha256 --portable{list}\npoweroff\n");
    let rd = initramfs("sha256.cpio", Some(&script), &files);
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    for engine in ["sha2-instructions", "portable"] {
        for (name, data) in &files {
            let want: String = Sha256::digest(data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let line = run
                .out
                .lines()
                .find(|l| {
                    l.contains(&format!("  /{name} (")) && l.ends_with(&format!(", {engine})"))
                })
                .unwrap_or_else(|| panic!("no {engine} line for /{name}:\n{}", run.out));
            assert_eq!(
                line.split_whitespace().next(),
                Some(want.as_str()),
                "{engine} /{name}"
            );
            assert!(line.contains(&format!("({} bytes,", data.len())), "{line}");
        }
    }
    assert_eq!(run.status, Some(0));
}

// ---- interrupts ------------------------------------------------------------------------------

/// A Linux `/init` line that prints the architected timer's line of `/proc/interrupts`.
const TIMER_COUNTS: &str = "echo \"LINUX-TIMER $(/bin/busybox grep arch_timer /proc/interrupts)\"";

/// Every CPU's tick count from the last `cpus` listing printed.
fn cpu_ticks(run: &Run) -> Vec<u64> {
    let mut last = Vec::new();
    for l in run
        .out
        .lines()
        .filter(|l| l.starts_with("cpu") && l.contains("mpidr="))
    {
        if l.starts_with("cpu0 ") {
            last.clear();
        }
        if let Some(t) = l.split_whitespace().find_map(|w| w.strip_prefix("ticks=")) {
            last.push(t.parse().unwrap());
        }
    }
    last
}

/// Linux's timer interrupts counted on each of `cpus` CPUs (`TIMER_COUNTS`).
fn assert_linux_timer_counts(run: &Run, cpus: usize) {
    let line = run
        .line("LINUX-TIMER")
        .unwrap_or_else(|| panic!("no LINUX-TIMER line: {}", run.out));
    let counts: Vec<u64> = line
        .split_whitespace()
        .skip(2) // "LINUX-TIMER", "11:"
        .take(cpus)
        .map(|c| c.parse().unwrap_or_else(|_| panic!("{line}")))
        .collect();
    assert_eq!(counts.len(), cpus, "{line}");
    assert!(
        counts.iter().all(|&c| c > 0),
        "a CPU without timer interrupts: {line}"
    );
}

/// The `irqs` lines: per CPU, the named counters.
fn irq_counts(run: &Run) -> Vec<HashMap<String, u64>> {
    run.out
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("cpu") && l.contains("timer_late_us_mean="))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
                .collect()
        })
        .collect()
}

/// Four CPUs idle at the prompt for 3 s: QEMU uses little host CPU (the tick slows to
/// 10 Hz when a CPU idles), the tick ran on every CPU, the typed line is answered (through the UART's receive interrupt) and every CPU
/// answers an IPI.
fn idle_tick_and_ipis(gic3: bool) {
    let run = boot(Boot {
        el: 2,
        smp: 4,
        gic3,
        initrd: Some(initramfs("idle.cpio", None, &[])),
        idle: Some(Duration::from_secs(3)),
        typed: Some("irqs\nipi\ncpus\npoweroff\n"),
        ..Default::default()
    });
    let cpu = run.idle_cpu.expect("measured");
    // A generous bound (the measured figure is in the README): polling would be 1.0 or more.
    assert!(
        cpu < 0.10,
        "QEMU used {:.0}% of a core at the idle prompt",
        cpu * 100.0
    );
    let irqs = irq_counts(&run);
    assert_eq!(irqs.len(), 4, "{}", run.out);
    for (i, c) in irqs.iter().enumerate() {
        // Idle, a CPU ticks at 10 Hz: about 30 ticks in 3 s (fewer if the host is slow).
        assert!(c["ticks"] >= 10, "cpu{i}: {c:?}");
        assert!(c["timer_late_us_max"] < 1_000_000, "cpu{i}: {c:?}");
    }
    assert!(
        irqs[0]["uart"] > 0,
        "the typed line came by interrupt: {:?}",
        irqs[0]
    );
    let version = if gic3 { "GICv3" } else { "GICv2" };
    assert!(run.out.contains(&format!(
        "irqs: {version} tick=100Hz timer_intid=27 uart_intid=33"
    )));
    for i in 1..4 {
        let ipi = run
            .line(&format!("ipi: cpu{i} mpidr={i:#x} rtt_us="))
            .unwrap_or_else(|| panic!("cpu{i} did not answer: {}", run.out));
        assert!(ipi.contains("rtt_ticks="), "{ipi}");
    }
    assert_eq!(run.status, Some(0));
}

#[test]
fn idle_tick_and_ipis_on_gicv2() {
    idle_tick_and_ipis(false);
}

#[test]
fn idle_tick_and_ipis_on_gicv3() {
    idle_tick_and_ipis(true);
}

/// Every hop kexecs from inside its boot CPU's timer interrupt handler (the tick active and
/// not ended), and with `kexec.gic=dirty` leaves the GIC as it is (distributor on, every
/// interrupt enabled, the tick's priority held in the CPU interface, its timer running):
/// each next kernel must reset the GIC to take a single tick, and it takes all of them, since
/// its own kexec needs one.
fn kexec_from_a_timer_interrupt(gic3: bool) {
    let rd = initramfs(
        &format!("from-irq-{gic3}.cpio"),
        Some("sleep 250\ncpus\nirqs\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        smp: 4,
        gic3,
        initrd: Some(rd),
        append: Some("kexec.chain=4 kexec.payload=16M kexec.from_irq kexec.gic=dirty".into()),
        ..Default::default()
    });
    let lines = check_chain(&run, 4, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "{l:?}");
    }
    let ticks = cpu_ticks(&run);
    assert_eq!(ticks.len(), 4, "{}", run.out);
    assert!(ticks.iter().all(|&t| t > 0), "{ticks:?}: {}", run.out);
}

#[test]
fn kexec_from_a_timer_interrupt_gicv2() {
    kexec_from_a_timer_interrupt(false);
}

#[test]
fn kexec_from_a_timer_interrupt_gicv3() {
    kexec_from_a_timer_interrupt(true);
}

/// Linux on a GICv3 with its ITS (4 CPUs) kexecs this kernel, which finds the redistributors
/// with LPIs on, turns them off, chains, and kexecs Linux, which brings up its GIC (LPIs and
/// all) again and counts timer interrupts on every CPU.
#[test]
fn linux_gicv3_lpis_then_this_kernel_then_linux() {
    let linux = linux_image();
    let last = linux_initramfs(TIMER_COUNTS, false, &[]);
    let ours = cpio::build(&[
        (
            "init.rc",
            S_IFREG | 0o644,
            b"irqs\nkexec -l /Image --initrd=/last.cpio --append=\"console=ttyAMA0 panic=-1 last-linux\"\nkexec -e\n",
        ),
        ("Image", S_IFREG | 0o644, &linux),
        ("last.cpio", S_IFREG | 0o644, &last),
    ]);
    let hobby = std::fs::read(image()).unwrap();
    let first = linux_initramfs(
        "/sbin/kexec -l /hobby.Image --initrd=/hobby.cpio --append=\"kexec.chain=2 kexec.payload=4M\"\n\
         /sbin/kexec -e",
        true,
        &[("hobby.Image", &hobby), ("hobby.cpio", &ours)],
    );
    let path = scratch("lpi-first.cpio");
    std::fs::write(&path, first).unwrap();
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        smp: 4,
        gic3: true,
        linux: Some((
            fixture("linux/Image"),
            path,
            "console=ttyAMA0 panic=-1".into(),
        )),
        ..Default::default()
    });
    assert!(
        run.out.contains("ITS@0x0000000008080000"),
        "Linux used the ITS: {}",
        run.out
    );
    for i in 0..4 {
        let found = format!("irq: cpu {i:#x}: the previous kernel left LPIs on");
        assert!(run.out.contains(&found), "{found}: {}", run.out);
    }
    assert!(run.out.contains("turned them off"), "{}", run.out);
    check_chain_lines_only(&run, 2);
    let last_cmdline = run
        .out
        .lines()
        .filter(|l| l.starts_with("LINUX-CMDLINE"))
        .nth(1)
        .unwrap();
    assert!(
        last_cmdline.trim_end().ends_with("last-linux"),
        "{last_cmdline}"
    );
    assert_eq!(
        run.out
            .lines()
            .filter(|l| l.starts_with("LINUX-CPUS 4"))
            .count(),
        2
    );
    assert!(!run.out.contains("Booted with LPIs enabled"), "{}", run.out);
    assert_linux_timer_counts(&run, 4);
}

/// A chain's generations all passed (without `check_chain`'s status check: Linux ends it).
fn check_chain_lines_only(run: &Run, hops: usize) {
    let lines = chain_lines(run);
    assert_eq!(lines.len(), hops + 1, "{}", run.out);
    for l in &lines[1..] {
        assert_eq!(l["payload"], "ok", "{l:?}");
        assert_eq!(l["cpus"], "4", "{l:?}");
    }
    assert!(run.line("chain: PASS").is_some(), "{}", run.out);
}

// ---- UEFI ----------------------------------------------------------------------------------

/// Lines a Linux `/init` prints about its UEFI runtime services: how many variables efivarfs
/// lists, and what `rtc0` (`rtc-efi`: EDK2 disables the PL031) reads.
const EFI_RUNTIME_CHECK: &str = "/bin/busybox insmod /efivarfs.ko\n\
     /bin/busybox mount -t efivarfs none /sys/firmware/efi/efivars\n\
     echo \"LINUX-EFIVARS $(/bin/busybox ls /sys/firmware/efi/efivars | /bin/busybox wc -l)\"\n\
     echo \"LINUX-RTC $(/bin/busybox cat /sys/class/rtc/rtc0/name) $(/bin/busybox cat /sys/class/rtc/rtc0/date)\"";

fn efivarfs_module() -> Vec<u8> {
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
        uefi: true,
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
    check_chain_lines(&run, 3);
    // The last Linux: the same variables, and the EFI clock.
    let vars: Vec<&str> = run
        .out
        .lines()
        .filter(|l| l.starts_with("LINUX-EFIVARS"))
        .collect();
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
    let rtc: Vec<&str> = run
        .out
        .lines()
        .filter(|l| l.starts_with("LINUX-RTC"))
        .collect();
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
    let last_cmdline = run
        .out
        .lines()
        .filter(|l| l.starts_with("LINUX-CMDLINE"))
        .nth(1)
        .unwrap();
    assert!(
        last_cmdline.trim_end().ends_with("last-linux"),
        "{last_cmdline}"
    );
}

/// This kernel's EFI stub, started by EDK2 from fw_cfg (`-kernel -initrd -append`): the
/// command line from LoadOptions, the initrd through LoadFile2, the DTB from the
/// configuration table, the Image moved to a 2 MiB-aligned allocation, boot services exited,
/// the UEFI map in `/chosen`; then the kernel at the firmware's EL, which chains on.
fn efi_stub_from_edk2(el: u8) {
    let rd = initramfs(
        &format!("efi-stub-el{el}.cpio"),
        Some("mem\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el,
        uefi: true,
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
        uefi: true,
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=16M".into()),
        ..Default::default()
    });
    check_chain_lines(&run, 2);
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
        uefi: true,
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
fn esp(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
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
        uefi: true,
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
        uefi: true,
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

/// Debian's U-Boot on QEMU virt `booti`s the Image (preloaded), which chains on.
#[test]
fn uboot_booti_boots_the_kernel() {
    let rd = initramfs("uboot-booti.cpio", Some("poweroff\n"), &[]);
    let size = std::fs::metadata(&rd).unwrap().len();
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        uboot: Some(format!(
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
        uboot: Some(format!(
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
        uefi: true,
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
        uefi: true,
        acpi: true,
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
            dtb_as_is: Some(dtb),
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

/// A chain's generations all passed, each with its payload (without `check_chain`'s exit
/// status and overlap checks: Linux ends these runs).
fn check_chain_lines(run: &Run, hops: usize) {
    let lines = chain_lines(run);
    assert_eq!(lines.len(), hops + 1, "{}", run.out);
    for l in &lines[1..] {
        assert_eq!(l["payload"], "ok", "{l:?}");
        assert_eq!(l["free"], lines[1]["free"], "{l:?}");
    }
    assert!(run.line("chain: PASS").is_some(), "{}", run.out);
}

// ---- the Pi 4's firmware stacks (scripts/rpi4-firmware.sh) ---------------------------------

/// Every `cpuN` line of `cpus`: (state, method).
fn cpu_methods(run: &Run) -> Vec<(String, String)> {
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
        firmware: Some("tfa"),
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
    let cpus: Vec<&str> = run
        .out
        .lines()
        .filter(|l| l.starts_with("LINUX-CPUS"))
        .collect();
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
        firmware: Some("tfa"),
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
        firmware: Some("tfa-board"),
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
fn rpi4_firmware_chain(firmware: &'static str, method: &str) -> Run {
    let rd = initramfs(
        &format!("{}.cpio", firmware.replace('+', "-")),
        Some("cpus\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        raspi4b: true,
        firmware: Some(firmware),
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

// ---- the cache model -------------------------------------------------------------------------

/// The cache model's `key=value` counters (`tools/cache-model`), from its report.
fn cache_report(run: &Run) -> HashMap<String, u64> {
    let report = run.cache.as_deref().expect("run under the cache model");
    report
        .lines()
        .filter(|l| l.starts_with("cache-model: ") && !l.contains(" pa=") && !l.contains(" gen="))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Violations per generation (a kernel, from CPU 0 turning its MMU on to the next time:
/// its life, its kexec hand-over and the next kernel's entry with the MMU off).
fn cache_generations(run: &Run) -> Vec<u64> {
    let report = run.cache.as_deref().expect("run under the cache model");
    report
        .lines()
        .filter_map(|l| l.strip_prefix("cache-model: gen="))
        .map(|l| {
            let v = l.split_whitespace().nth(1).unwrap();
            v.strip_prefix("violations=").unwrap().parse().unwrap()
        })
        .collect()
}

/// Real caches would have held what this run needed: no violation, and the model saw
/// cacheable and non-cacheable accesses, cache maintenance and instruction fetches (so a
/// model that sees nothing fails), and could place every `dc` operand.
fn assert_coherent(run: &Run) {
    let r = cache_report(run);
    let report = run.cache.as_deref().unwrap();
    assert_eq!(r["violations"], 0, "{report}");
    for seen in [
        "cacheable",
        "non_cacheable",
        "fetch_checks",
        "dc_civac",
        "ic_iallu",
    ] {
        assert!(r[seen] > 0, "the model saw no {seen}: {report}");
    }
    assert_eq!(
        r["unresolved_dc"], 0,
        "dc operands the model could not place: {report}"
    );
}

fn cache_model_chain(el: u8, report: &'static str) {
    let rd = initramfs(&format!("cm-chain-el{el}.cpio"), Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el,
        initrd: Some(rd),
        append: Some("kexec.chain=4 kexec.payload=4M kexec.mmu=both".into()),
        cache_model: Some(report),
        ..Default::default()
    });
    let lines = check_chain(&run, 4, &el.to_string());
    let modes: Vec<&str> = lines[1..].iter().map(|l| l["reloc_mmu"].as_str()).collect();
    assert_eq!(
        modes,
        ["on", "off", "on", "off"],
        "both relocation modes ran"
    );
    let copied: Vec<u64> = lines[1..]
        .iter()
        .map(|l| l["copied"].parse().unwrap())
        .collect();
    assert!(
        copied.contains(&0) && copied.iter().any(|&c| c > 0),
        "hops written in place and hops copied both ran under the model: {copied:?}"
    );
    assert_coherent(&run);
}

/// A 4-hop chain at EL2, relocating with the MMU on and off in turn, under the cache model.
#[test]
fn cache_model_chain_at_el2() {
    cache_model_chain(2, "cm-chain-el2.txt");
}

/// The same at EL1.
#[test]
fn cache_model_chain_at_el1() {
    cache_model_chain(1, "cm-chain-el1.txt");
}

/// The crash path under the model: `kexec -p --self` into the `crashkernel=` region (every
/// segment written in place at load time, nothing copied at the panic), a panic, the ELF
/// core header written at the panic, and the crash kernel reading the old log ring: every
/// access coherent.
#[test]
fn cache_model_crash_kexec() {
    let rd = initramfs(
        "cm-crash.cpio",
        Some("echo CM-CRASH-MARK\nkexec -p --self --append=\"init=/capture.rc\"\npanic under the model\n"),
        &[("capture.rc", b"poweroff\n")],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        append: Some("crashkernel=32M".into()),
        cache_model: Some("cm-crash.txt"),
        ..Default::default()
    });
    assert!(run.out.contains("crash| CM-CRASH-MARK"), "{}", run.out);
    assert!(run.out.contains("crash: panic: PANIC: "), "{}", run.out);
    assert_eq!(run.status, Some(0));
    assert_coherent(&run);
}

/// `kexec -l` of a file (this Image, with its own initrd and command line), under the model.
#[test]
fn cache_model_kexec_a_file() {
    let next = initramfs("cm-next.cpio", Some("echo FILE-KEXEC-OK\npoweroff\n"), &[]);
    let image = std::fs::read(image()).unwrap();
    let next = std::fs::read(next).unwrap();
    let rd = initramfs(
        "cm-file.cpio",
        Some("kexec -l /Image --initrd=/next.cpio --append=\"cache-model-file\"\nkexec -e\n"),
        &[("Image", &image), ("next.cpio", &next)],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        cache_model: Some("cm-file.txt"),
        ..Default::default()
    });
    assert!(run.out.contains("FILE-KEXEC-OK"), "{}", run.out);
    assert!(
        run.out.contains("command line: cache-model-file"),
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0));
    assert_coherent(&run);
}

/// Debian's Linux kexec'd at EL2, under the model: this kernel, the hand-over and Linux's
/// entry up to turning its MMU on (generations 0 and 1) are clean. What Linux does after
/// that is Linux's (the model also reports its text patching, as when QEMU boots it).
#[test]
fn cache_model_kexec_into_linux() {
    let run = kexec_into_linux(2, Some("cm-linux.txt"));
    let gens = cache_generations(&run);
    let report = run.cache.as_deref().unwrap();
    assert!(gens.len() >= 3, "Linux never turned its MMU on: {report}");
    assert_eq!(gens[..2], [0, 0], "{report}");
    let r = cache_report(&run);
    for seen in [
        "cacheable",
        "non_cacheable",
        "fetch_checks",
        "dc_civac",
        "ic_iallu",
    ] {
        assert!(r[seen] > 0, "the model saw no {seen}: {report}");
    }
}

/// EDK2 starts the Image through its EFI stub, which copies it to a 2 MiB-aligned address
/// with the caches on, cleans it, turns its MMU off and enters it; then a kexec: under the
/// model, no violation anywhere (the firmware included). EDK2's own `dc` operands at EL2
/// are often not placeable (`unresolved_dc`): an unapplied clean or invalidate can only add
/// reports, never hide one, so zero violations stands.
#[test]
fn cache_model_efi_stub_self_move() {
    let rd = initramfs("cm-efi.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        uefi: true,
        initrd: Some(rd),
        append: Some("kexec.chain=1 kexec.payload=4M".into()),
        cache_model: Some("cm-efi.txt"),
        ..Default::default()
    });
    assert!(
        run.out.contains("efistub: moved the Image to"),
        "{}",
        run.out
    );
    check_chain(&run, 1, "2");
    let r = cache_report(&run);
    let report = run.cache.as_deref().unwrap();
    assert_eq!(r["violations"], 0, "{report}");
    // The stub cleans with dc civac (arch::clean_inval_dcache), as the kernel does.
    for seen in [
        "cacheable",
        "non_cacheable",
        "fetch_checks",
        "dc_civac",
        "ic_iallu",
    ] {
        assert!(r[seen] > 0, "the model saw no {seen}: {report}");
    }
}

/// The Image under test with one instruction of the relocation page replaced by a `nop`:
/// the second `dc civac, x9` (the MMU-on copy's clean) or the `ic iallu`.
fn without_maintenance(which: u32, nth: usize) -> PathBuf {
    const NOP: u32 = 0xd503_201f;
    const B_SELF: u32 = 0x1400_0000;
    let mut bytes = std::fs::read(image()).unwrap();
    let word = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    // The relocation page: 4 KiB aligned, with 16 `b .` vector slots at +0x800.
    let page = (0..bytes.len() - 0x1000)
        .step_by(0x1000)
        .find(|&p| (0..16).all(|k| word(&bytes, p + 0x800 + 0x80 * k) == B_SELF))
        .expect("the relocation page");
    let hits: Vec<usize> = (page..page + 0x800)
        .step_by(4)
        .filter(|&a| word(&bytes, a) == which)
        .collect();
    let at = hits[nth];
    bytes[at..at + 4].copy_from_slice(&NOP.to_le_bytes());
    let path = scratch(&format!("no-{which:08x}-{nth}.Image"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The negative control: a relocation page without its clean, or without its I-cache
/// invalidation, passes the chain in plain QEMU, and the model catches it.
#[test]
fn cache_model_catches_missing_maintenance() {
    const DC_CIVAC_X9: u32 = 0xd50b_7e29;
    const IC_IALLU: u32 = 0xd508_751f;
    for (image, report, kind) in [
        (
            without_maintenance(DC_CIVAC_X9, 1),
            "cm-no-civac.txt",
            "fetch-stale",
        ),
        (
            without_maintenance(IC_IALLU, 0),
            "cm-no-iallu.txt",
            "fetch-stale",
        ),
    ] {
        let rd = initramfs("cm-neg.cpio", Some("poweroff\n"), &[]);
        let run = boot(Boot {
            el: 2,
            initrd: Some(rd),
            image: Some(image),
            // Every page through the relocation loop: that is the code under test.
            append: Some("kexec.chain=2 kexec.payload=4M kexec.copy=all".into()),
            cache_model: Some(report),
            ..Default::default()
        });
        assert!(run.line("chain: PASS").is_some(), "{}", run.out);
        let r = cache_report(&run);
        assert!(
            r["violations"] > 0 && r[kind] > 0,
            "{report}: {:?}",
            run.cache
        );
    }
}

/// The model followed `cpus` CPUs (told apart by MPIDR unless `by_index`), and saw each
/// reset that PSCI made (`resets` counts power-on too).
fn assert_model_cpus(run: &Run, cpus: u64, by_index: bool) {
    let r = cache_report(run);
    let report = run.cache.as_deref().unwrap();
    assert_eq!(r["cpus"], cpus, "CPUs the model followed: {report}");
    assert_eq!(r["by_mpidr"], u64::from(!by_index), "{report}");
    assert_eq!(r["cpu_slot_clashes"], 0, "{report}");
}

/// A Raspberry Pi 4 as QEMU models it, 4 CPUs from spin tables, under the model with one
/// I-cache and one TLB per CPU: a chain whose every hop parks CPUs 1-3 in the pen (which they
/// never leave by a reset, so their I-caches keep what they held) and releases them into the
/// next kernel; relocation with the MMU on and off in turn; `copy` "auto" (zero copy) or
/// "all". Every CPU clean, every hop.
fn cache_model_raspi4b_chain(copy: &str, report: &'static str) -> Run {
    let rd = initramfs(
        &format!("cm-rpi4-{copy}.cpio"),
        Some("cpus\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(fixture("rpi4-qemu.dtb")),
        initrd: Some(rd),
        append: Some(format!(
            "kexec.chain=3 kexec.payload=4M kexec.mmu=both kexec.copy={copy}"
        )),
        cache_model: Some(report),
        ..Default::default()
    });
    let lines = check_chain(&run, 3, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "every CPU up at every hop: {l:?}");
    }
    run
}

#[test]
fn cache_model_raspi4b_spin_table_chain_zero_copy() {
    let run = cache_model_raspi4b_chain("auto", "cm-rpi4-auto.txt");
    assert_coherent(&run);
    assert_model_cpus(&run, 4, false);
}

/// The same with every page copied by the relocation (`kexec.copy=all`), then Debian's
/// Linux, which releases CPUs 1-3 from the pen: this kernel's generations and the hand-over
/// to Linux up to its MMU are clean on every CPU. (Linux's own reports after that are its
/// text patching and user pages, as in `cache_model_kexec_into_linux`: not asserted.)
#[test]
fn cache_model_raspi4b_spin_table_chain_copy_all_then_linux() {
    let run = raspi4b_chain_into_linux(
        "cm-rpi4-linux.cpio",
        "kexec.chain=2 kexec.payload=4M kexec.mmu=both kexec.copy=all",
        Some("cm-rpi4-linux.txt"),
    );
    let lines = check_chain(&run, 2, "2");
    for l in &lines[1..] {
        assert_eq!(l["cpus"], "4", "{l:?}");
        assert!(l["copied"].parse::<u64>().unwrap() > 0, "{l:?}");
    }
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 4"), "{}", run.out);
    let gens = cache_generations(&run);
    let report = run.cache.as_deref().unwrap();
    // The boot, three kernels of ours (the last one's hand-over and Linux's entry with it).
    assert!(gens.len() >= 5, "Linux never turned its MMU on: {report}");
    assert_eq!(gens[..4], [0, 0, 0, 0], "{report}");
    assert_model_cpus(&run, 4, false);
}

/// A Pi 4 under TF-A (BL31 as the armstub, PSCI; the test-only warm-reset patch), under the
/// model: CPU_OFF/CPU_ON at every hop go through BL31 at EL3 (its MMU and caches on), and
/// each CPU comes back through its reset vector, with empty caches.
#[test]
fn cache_model_raspi4b_tfa_chain() {
    let rd = initramfs("cm-tfa.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        raspi4b: true,
        firmware: Some("tfa"),
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=4M kexec.mmu=both".into()),
        cache_model: Some("cm-tfa.txt"),
        ..Default::default()
    });
    let lines = check_chain(&run, 2, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "{l:?}");
    }
    assert_coherent(&run);
    assert_model_cpus(&run, 4, false);
    // Power-on, and the warm reset after each CPU_OFF (3 CPUs, 2 hops).
    assert!(cache_report(&run)["resets"] >= 4 + 2 * 3, "{:?}", run.cache);
}

/// `virt` with 4 PSCI CPUs under the model: every hop turns CPUs 1-3 off (CPU_OFF) and on
/// again (CPU_ON resets them: empty caches), and runs its kexec from inside the tick's
/// handler with the GIC left dirty. At EL2 (GICv3; CPUs told apart by VMPIDR_EL2 under
/// round-robin TCG) and at EL1 (GICv2; no EL2, so multi-threaded TCG and QEMU's index).
fn cache_model_virt_psci_chain(el: u8, gic3: bool, report: &'static str) {
    let rd = initramfs(&format!("cm-psci-el{el}.cpio"), Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el,
        smp: 4,
        gic3,
        initrd: Some(rd),
        append: Some(
            "kexec.chain=2 kexec.payload=4M kexec.mmu=both kexec.from_irq kexec.gic=dirty".into(),
        ),
        cache_model: Some(report),
        ..Default::default()
    });
    let lines = check_chain(&run, 2, &el.to_string());
    for l in &lines {
        assert_eq!(l["cpus"], "4", "every CPU back at every hop: {l:?}");
    }
    assert_coherent(&run);
    assert_model_cpus(&run, 4, el == 1);
    // Power-on (4) and CPU_ON after CPU_OFF at each of the 2 hops (3 each).
    assert!(cache_report(&run)["resets"] >= 4 + 2 * 3, "{:?}", run.cache);
}

#[test]
fn cache_model_virt_psci_chain_el2_gicv3() {
    cache_model_virt_psci_chain(2, true, "cm-psci-el2.txt");
}

#[test]
fn cache_model_virt_psci_chain_el1_gicv2() {
    cache_model_virt_psci_chain(1, false, "cm-psci-el1.txt");
}

/// `kexec -p` with 4 CPUs under the model, then a panic: CPUs 1-3 stop (CPU_OFF), the ELF
/// core header is written and the crash kernel (this one, in its region) starts its CPUs
/// again and reads the old log; and the same on a Pi 4, whose spin-table CPUs stop in a loop
/// of the dead kernel (no pen at a panic), which the crash kernel leaves alone.
#[test]
fn cache_model_crash_kexec_with_4_cpus() {
    for raspi4b in [false, true] {
        let rd = initramfs(
            &format!("cm-crash-smp-{raspi4b}.cpio"),
            Some("echo CM-SMP-CRASH\nkexec -p --self --append=\"init=/capture.rc\"\npanic with 4 CPUs\n"),
            &[("capture.rc", b"cpus\npoweroff\n")],
        );
        let report: &'static str = if raspi4b {
            "cm-crash-rpi4.txt"
        } else {
            "cm-crash-smp.txt"
        };
        let run = boot(Boot {
            el: 2,
            smp: 4,
            raspi4b,
            dtb: raspi4b.then(|| fixture("rpi4-qemu.dtb")),
            initrd: Some(rd),
            append: Some("crashkernel=32M".into()),
            cache_model: Some(report),
            ..Default::default()
        });
        assert!(run.out.contains("crash| CM-SMP-CRASH"), "{}", run.out);
        assert!(!run.out.contains("did not stop"), "{}", run.out);
        let capture_cpus = if raspi4b {
            // Not waited for: each would cost the 10 s start timeout.
            assert!(
                run.out.contains(
                    "smp: cpu 0x1: not started: a crash kernel cannot release spin-table CPUs"
                ),
                "{}",
                run.out
            );
            ["online (boot)", "failed", "failed", "failed"]
        } else {
            ["online (boot)", "online", "online", "online"]
        };
        let cpus = last_cpu_listing(&run);
        let states: Vec<&str> = cpus.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(states, capture_cpus, "{}", run.out);
        let r = cache_report(&run);
        assert_eq!(r["violations"], 0, "{:?}", run.cache);
        assert_model_cpus(&run, 4, false);
    }
}

/// The SMP negative controls (the test Image's `fault.skip=`, kernel/src/fault.rs): each
/// leaves out one piece of maintenance that only another CPU needs, passes in plain QEMU,
/// and is caught. The pen without its `ic iallu`: CPUs 1-3 fetch the next kernel through
/// I-caches that still hold the old one. The pen page invalidated with `ic iallu` (this CPU
/// only): CPUs 1-3 fetch the pen's new code through stale I-caches. A mailbox not cleaned:
/// the released CPU reads memory (caches off) below the boot CPU's dirty line.
#[test]
fn cache_model_catches_missing_smp_maintenance() {
    for (skip, kind) in [
        ("pen-iallu", "fetch-stale"),
        ("pen-ialluis", "fetch-stale"),
        ("mailbox-clean", "nc-load-dirty"),
    ] {
        let report: &'static str = Box::leak(format!("cm-rpi4-no-{skip}.txt").into_boxed_str());
        let rd = initramfs("cm-rpi4-neg.cpio", Some("poweroff\n"), &[]);
        let run = boot(Boot {
            el: 2,
            raspi4b: true,
            dtb: Some(fixture("rpi4-qemu.dtb")),
            initrd: Some(rd),
            image: Some(fault_image().to_path_buf()),
            append: Some(format!("kexec.chain=1 kexec.payload=4M fault.skip={skip}")),
            cache_model: Some(report),
            ..Default::default()
        });
        let lines = chain_lines(&run);
        assert_eq!(lines.last().unwrap()["cpus"], "4", "{}", run.out);
        assert!(run.line("chain: PASS").is_some(), "{skip}: {}", run.out);
        let r = cache_report(&run);
        let cache = run.cache.as_deref().unwrap();
        assert!(r[kind] > 0, "{skip}: no {kind}: {cache}");
        // Reported against CPUs 1-3, never the boot CPU, which did its own maintenance.
        let cpus: Vec<&str> = cache
            .lines()
            .filter(|l| l.starts_with(&format!("cache-model: {kind}: ")))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("cpu")))
            .collect();
        assert!(
            !cpus.is_empty() && cpus.iter().all(|c| *c != "cpu0"),
            "{skip}: {cache}"
        );
    }
}

// ---- a CPU that does not answer ----------------------------------------------------------------

/// Boots the test Image on `virt` at EL2 with 4 PSCI CPUs, wedges CPU `wedged` (interrupts
/// masked, spinning: it never answers the stop request) and runs `then`; `next.rc` is the
/// next kernel's (or the crash kernel's) script.
fn wedged_run(wedged: usize, then: &str, scratch_name: &str, append: &str) -> Run {
    let rd = initramfs(
        scratch_name,
        Some(&format!("wedge {wedged}\n{then}")),
        &[("next.rc", b"cpus\npoweroff\n")],
    );
    boot(Boot {
        el: 2,
        smp: 4,
        gic3: true,
        initrd: Some(rd),
        image: Some(fault_image().to_path_buf()),
        append: Some(append.into()),
        ..Default::default()
    })
}

/// The CPUs (`cpus` lines) of the last kernel that listed them: (state, method) each.
fn last_cpu_listing(run: &Run) -> Vec<(String, String)> {
    let all = cpu_methods(run);
    all[all.len() - 4..].to_vec()
}

/// A CPU spinning with interrupts masked when `kexec -e` comes: within the stop bound the
/// kexec names it and goes on; the next kernel starts the other CPUs and names the one it
/// could not have (PSCI says it is still on).
#[test]
fn kexec_goes_on_without_a_wedged_cpu() {
    let run = wedged_run(
        3,
        "kexec -l --self --append=\"init=/next.rc\"\nkexec -e\n",
        "wedge-kexec.cpio",
        "",
    );
    assert!(
        run.out
            .contains("wedge: cpu3 (mpidr 0x3) spins with interrupts masked"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("smp: cpu 0x3 did not stop within 2000 ms: left running where it was"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("kexec: going on without 1 CPU(s) that did not stop"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("smp: cpu 0x3: PSCI CPU_ON returned"),
        "{}",
        run.out
    );
    assert!(run.out.contains("smp: 3 CPUs online"), "{}", run.out);
    let cpus = last_cpu_listing(&run);
    let states: Vec<&str> = cpus.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["online (boot)", "online", "online", "failed"],
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0));
}

/// The same at a panic with a crash kernel loaded: the crash path names the CPU, goes on,
/// and the crash kernel reports the CPUs it got.
#[test]
fn crash_kexec_goes_on_without_a_wedged_cpu() {
    let run = wedged_run(
        2,
        "kexec -p --self --append=\"init=/next.rc\"\npanic with a wedged CPU\n",
        "wedge-crash.cpio",
        "crashkernel=32M",
    );
    assert!(
        run.out
            .contains("smp: cpu 0x2 did not stop within 2000 ms: left running where it was"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("crash: going on without 1 CPU(s) that did not stop"),
        "{}",
        run.out
    );
    assert!(run.out.contains("crash: panic: PANIC: "), "{}", run.out);
    let cpus = last_cpu_listing(&run);
    let states: Vec<&str> = cpus.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["online (boot)", "online", "failed", "online"],
        "{}",
        run.out
    );
}

// ---- crash kexec -----------------------------------------------------------------------------

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

fn crash_kernel_for_linux(fixture_dir: &str) -> Run {
    let mark = format!(
        "CRASH-MARK-{} the line before the panic",
        std::process::id()
    );
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
    assert!(
        run.out
            .lines()
            .filter(|l| l.starts_with("vmcore: load "))
            .count()
            >= 2,
        "{}",
        run.out
    );
    let frames: u64 = run.fields("frames ")["free"].parse().unwrap();
    assert!(
        frames < (160 << 20) / 4096,
        "free frames {frames}: more than the crash region"
    );
    assert!(run.out.contains("crashed kernel"), "{}", run.out);
    // The fresh Linux (the second LINUX-CMDLINE: the first is the panicking one's).
    let cmdline = run
        .out
        .lines()
        .filter(|l| l.starts_with("LINUX-CMDLINE"))
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
    let note = kernel::vmcore::write_note(b"VMCOREINFO", kernel::vmcore::NT_VMCOREINFO, info);
    let mut core = kernel::vmcore::write_core_header(
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

// ---- boards as they ship: load addresses, consoles, memory maps -------------------------------

/// A chain of `hops` whose first kernel was loaded at `first_load` (anywhere) and whose later
/// ones at 2 MiB-aligned addresses of this kernel's choosing, every one the same Image, every
/// one with `cpus` CPUs.
fn assert_chain_from(run: &Run, hops: usize, first_load: u64, cpus: &str) {
    let lines = chain_lines(run);
    assert_eq!(lines.len(), hops + 1, "{}", run.out);
    assert_eq!(hex(&lines[0]["load"]), first_load, "{}", run.out);
    let sha = image_sha256();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            l["image"], sha,
            "hop {i}: pristine Image differs from the file"
        );
        assert_eq!(l["cpus"], cpus, "hop {i}: {l:?}");
        if i > 0 {
            assert_eq!(l["payload"], "ok", "hop {i}");
            assert_eq!(hex(&l["load"]) % (2 << 20), 0, "hop {i}: {l:?}");
        }
    }
    assert!(run.line("chain: PASS").is_some(), "{}", run.out);
}

/// `virt` with the Image at RAM + 0x280000 (not 2 MiB aligned, as a boot loader's
/// `kernel_addr_r` may say; RAM + 0x80000 is where QEMU keeps its own DTB): it runs where it
/// was put, and kexecs on.
#[test]
fn virt_image_at_ram_plus_2_5m() {
    let rd = initramfs("at-2.5m.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        dtb_as_is: Some(fixture("virt-1g.dtb")),
        image_at: 0x28_0000,
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=4M".into()),
        ..Default::default()
    });
    assert!(
        run.out.contains("entered at EL2, image at 0x40280000"),
        "{}",
        run.out
    );
    assert_chain_from(&run, 2, 0x4028_0000, "1");
}

/// A Pi 4 whose firmware loads `kernel8.img` at 0x80000 (older firmware, `kernel_old=1`,
/// `kernel_address=0x80000`), behind TF-A: four CPUs, then kexec on.
#[test]
fn raspi4b_tfa_image_at_512k() {
    let rd = initramfs("tfa-512k.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        raspi4b: true,
        firmware: Some("tfa"),
        image_at: 0x8_0000,
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=4M".into()),
        ..Default::default()
    });
    assert_chain_from(&run, 2, 0x8_0000, "4");
}

/// A Pi 4 DTB as Raspberry Pi OS's looks after `dtoverlay=disable-bt` (the PL011 is
/// `serial0` and the console, the mini UART disabled) with `console=ttyS0` on the command
/// line: no mini UART to be had, and it says so on the PL011 instead of spinning on a UART
/// that is off.
#[test]
fn raspi4b_disable_bt_dtb_with_console_tty_s0() {
    let dtb = scratch("rpi4-disable-bt.dtb");
    std::fs::copy(fixture("rpi4-qemu.dtb"), &dtb).unwrap();
    for args in [
        ["/chosen", "stdout-path", "serial0:115200n8"],
        ["/soc/serial@7e215040", "status", "disabled"],
    ] {
        let st = Command::new("fdtput")
            .arg(&dtb)
            .arg("-t")
            .arg("s")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success());
    }
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
    std::fs::copy(fixture("virt-1g.dtb"), &dtb).unwrap();
    for (prop, v) in [
        ("linux,initrd-start", "48000000"),
        ("linux,initrd-end", "47000000"),
    ] {
        let st = Command::new("fdtput")
            .arg(&dtb)
            .args(["-t", "x", "/chosen", prop, "0", v])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let run = boot(Boot {
        el: 2,
        dtb_as_is: Some(dtb),
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

// ---- the Image's code ----------------------------------------------------------------------

/// The kernel ELF's `.text` (next to the Image: `scripts/build.sh` makes both), through
/// `llvm-objcopy` from Rust's `llvm-tools`, as `scripts/build.sh` uses it.
fn kernel_text() -> Vec<u8> {
    let elf = image().with_extension("");
    let objcopy = llvm_tool("llvm-objcopy");
    let out = scratch("kernel.text");
    let st = Command::new(&objcopy)
        .args(["-O", "binary", "--only-section=.text"])
        .arg(&elf)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", objcopy.display()));
    assert!(
        st.success(),
        "llvm-objcopy --only-section=.text {}",
        elf.display()
    );
    std::fs::read(out).unwrap()
}

/// Offsets of Cortex-A53 erratum 835769 sequences in `code`: a 64-bit multiply-accumulate
/// (`MADD`/`MSUB` on X registers, `SMADDL`/`SMSUBL`/`UMADDL`/`UMSUBL`; not the `MUL` aliases,
/// whose accumulator is XZR) right after a load or store (Arm ARM: the "Loads and Stores"
/// encoding group, op0 = x1x0).
fn a53_835769_sequences(code: &[u8]) -> Vec<usize> {
    const MAC64_MASK: u32 = 0xff60_0000; // sf, op54, 11011, op31 (without U), o0 free
    const MADD_MSUB_X: u32 = 0x9b00_0000;
    const XMADDL_XMSUBL: u32 = 0x9b20_0000; // SMADDL/SMSUBL, and with U (bit 23) UMADDL/UMSUBL
    const RA_SHIFT: u32 = 10;
    const XZR: u32 = 31;
    let words: Vec<u32> = code
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let is_mac64 = |i: u32| {
        matches!(i & MAC64_MASK, MADD_MSUB_X | XMADDL_XMSUBL) && (i >> RA_SHIFT) & 31 != XZR
    };
    let is_load_store = |i: u32| (i >> 25) & 0b0101 == 0b0100;
    (1..words.len())
        .filter(|&k| is_mac64(words[k]) && is_load_store(words[k - 1]))
        .map(|k| 4 * k)
        .collect()
}

#[test]
fn a53_835769_detector_knows_the_sequences() {
    let code = |w: &[u32]| w.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>();
    let ldr = 0xf940_0020; // ldr x0, [x1]
    let madd = 0x9b02_0c20; // madd x0, x1, x2, x3
    let umaddl = 0x9ba2_0c20; // umaddl x0, w1, w2, x3
    let mul = 0x9b02_7c20; // mul x0, x1, x2 (madd with xzr)
    let madd_w = 0x1b02_0c20; // madd w0, w1, w2, w3
    let nop = 0xd503_201f;
    assert_eq!(a53_835769_sequences(&code(&[ldr, madd])), [4]);
    assert_eq!(a53_835769_sequences(&code(&[ldr, umaddl])), [4]);
    assert!(a53_835769_sequences(&code(&[ldr, nop, madd])).is_empty());
    assert!(a53_835769_sequences(&code(&[ldr, mul, ldr, madd_w])).is_empty());
}

/// Offsets of Cortex-A53 erratum 843419 sequences in `code` (which starts on a page
/// boundary, as `.text` does): an `ADRP` in a page's last two words, a load or store, at most
/// one more instruction, then a load or store (unsigned offset) based on the `ADRP`'s
/// register. (LLD's `--fix-cortex-a53-843419` looks for the same, more finely.)
fn a53_843419_sequences(code: &[u8]) -> Vec<usize> {
    const ADRP_MASK: u32 = 0x9f00_0000;
    const ADRP: u32 = 0x9000_0000;
    const LS_UIMM_MASK: u32 = 0x3b00_0000;
    const LS_UIMM: u32 = 0x3900_0000;
    let words: Vec<u32> = code
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let is_load_store = |i: u32| (i >> 25) & 0b0101 == 0b0100;
    (0..words.len().saturating_sub(2))
        .filter(|&k| {
            let (adrp, rd) = (words[k], words[k] & 31);
            let based_on_rd = |i: u32| i & LS_UIMM_MASK == LS_UIMM && (i >> 5) & 31 == rd;
            matches!((4 * k) & 0xfff, 0xff8 | 0xffc)
                && adrp & ADRP_MASK == ADRP
                && is_load_store(words[k + 1])
                && (based_on_rd(words[k + 2]) || words.get(k + 3).is_some_and(|&i| based_on_rd(i)))
        })
        .map(|k| 4 * k)
        .collect()
}

#[test]
fn a53_843419_detector_knows_the_sequences() {
    let at = |offset: usize, w: &[u32]| {
        let mut code = vec![0u8; offset];
        code.extend(w.iter().flat_map(|i| i.to_le_bytes()));
        code
    };
    let adrp_x1 = 0x9000_0001; // adrp x1, 0
    let str_x0 = 0xf900_0040; // str x0, [x2]
    let ldr_via_x1 = 0xf940_0023; // ldr x3, [x1]
    let ldr_via_x4 = 0xf940_0083; // ldr x3, [x4]
    let nop = 0xd503_201f;
    let found = |offset, w: &[u32]| a53_843419_sequences(&at(offset, w));
    assert_eq!(found(0xff8, &[adrp_x1, str_x0, ldr_via_x1]), [0xff8]);
    assert_eq!(found(0xffc, &[adrp_x1, str_x0, nop, ldr_via_x1]), [0xffc]);
    assert!(found(0xff8, &[adrp_x1, str_x0, ldr_via_x4, nop]).is_empty());
    assert!(found(0xff8, &[adrp_x1, nop, ldr_via_x1, nop]).is_empty());
    assert!(found(0xff0, &[adrp_x1, str_x0, ldr_via_x1, nop]).is_empty());
}

/// The Image is built with the Cortex-A53 errata fixes Linux builds with
/// (`.cargo/config.toml`): no load or store is followed at once by a 64-bit
/// multiply-accumulate (835769), and no ADRP at a page's end feeds a load or store (843419).
#[test]
fn image_has_no_a53_erratum_sequence() {
    let text = kernel_text();
    assert!(text.len() > 64 << 10, "{} bytes of .text", text.len());
    for (erratum, found) in [
        (835769, a53_835769_sequences(&text)),
        (843419, a53_843419_sequences(&text)),
    ] {
        assert!(
            found.is_empty(),
            "{} erratum {erratum} sequences in .text, at offsets {:x?}",
            found.len(),
            &found[..found.len().min(8)]
        );
    }
}

/// A Pi 4's `/memory` as its firmware writes it: several ranges, the VideoCore's carve-out
/// below 1 GiB left out (here a 2 GB board's, all that QEMU's raspi4b has: 0-0x3b400000 and
/// 0x40000000-0x80000000), behind TF-A: both ranges are RAM, and the chain runs through them.
#[test]
fn raspi4b_firmware_memory_map_in_two_ranges() {
    let rd = initramfs("rpi4-2g-map.cpio", Some("mem\npoweroff\n"), &[]);
    let run = boot(Boot {
        raspi4b: true,
        firmware: Some("tfa"),
        firmware_memory: Some("0 0 3b400000 0 40000000 40000000"),
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=64M".into()),
        ..Default::default()
    });
    assert_chain_from(&run, 2, 0x100_0000, "4");
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
        dtb_as_is: Some(dtb),
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=64M".into()),
        ..Default::default()
    });
    assert_chain_from(&run, 2, 0x4020_0000, "1");
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
        dtb_as_is: Some(fixture("virt-1g.dtb")),
        initrd: Some(rd),
        initrd_at,
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
        firmware: Some("tfa-board"),
        serial1: true,
        image: Some(kernel8),
        image_at: KERNEL,
        initrd: Some(files.join("rootfs.cpio")),
        initrd_at: followkernel,
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

/// `name`'s offset in the Image whose ELF is next to `image` (`scripts/build.sh` writes
/// both), through `llvm-nm` from Rust's `llvm-tools`.
fn symbol_offset(image: &Path, name: &str) -> usize {
    let elf = image.with_extension("");
    let nm = llvm_tool("llvm-nm");
    let out = Command::new(&nm).arg(&elf).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let addr = |sym: &str| {
        table
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == sym).then(|| u64::from_str_radix(f[0], 16).unwrap())
            })
            .unwrap_or_else(|| panic!("{sym} not in {}", elf.display()))
    };
    (addr(name) - addr("_text")) as usize
}

/// A tool from Rust's `llvm-tools` component (`scripts/setup.sh` adds it), as
/// `scripts/build.sh` finds `llvm-objcopy`.
fn llvm_tool(name: &str) -> PathBuf {
    let rustc = |args: &[&str]| {
        let out = Command::new("rustc").args(args).output().unwrap().stdout;
        String::from_utf8(out).unwrap()
    };
    let host = rustc(&["-vV"])
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap();
    Path::new(rustc(&["--print", "sysroot"]).trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin")
        .join(name)
}

/// Early cache hygiene, under the model, with a loader that leaves dirty lines over the
/// image's BSS, heap and tables (the test stub's `fault.efi=dirty-bss`, as EDK2 zero-filling
/// SizeOfImage with its caches on would): each of the two defences alone keeps the boot
/// clean, and without both the boot code's MMU-off writes of its early tables land under
/// dirty lines (`nc-store-dirty`), which plain QEMU never shows.
#[test]
fn cache_model_early_tables_under_dirty_lines() {
    // The fault Image with the boot code's invalidate of its early tables made a `nop`.
    const NOP: u32 = 0xd503_201f;
    let mut bytes = std::fs::read(fault_image()).unwrap();
    let at = symbol_offset(fault_image(), "early_tables_inval");
    assert_eq!(bytes[at + 3] & 0xfc, 0x94, "a bl at early_tables_inval");
    bytes[at..at + 4].copy_from_slice(&NOP.to_le_bytes());
    let no_inval = scratch("no-early-inval.Image");
    std::fs::write(&no_inval, bytes).unwrap();

    let rd = initramfs("cm-efi-dirty.cpio", Some("poweroff\n"), &[]);
    let run = |image: &Path, skip_clean: bool, report: &'static str| {
        let skip = if skip_clean {
            " fault.skip=efi-clean-bss"
        } else {
            ""
        };
        let run = boot(Boot {
            el: 2,
            uefi: true,
            image: Some(image.to_path_buf()),
            initrd: Some(rd.clone()),
            append: Some(format!(
                "fault.efi=dirty-bss{skip} kexec.chain=1 kexec.payload=4M"
            )),
            cache_model: Some(report),
            ..Default::default()
        });
        assert!(run.line("chain: PASS").is_some(), "{report}: {}", run.out);
        let r = cache_report(&run);
        let cache = run.cache.clone().unwrap();
        (r, cache)
    };
    // Both defences: the stub cleans the whole image_size; nothing dirty is left to drop.
    let (both, report) = run(fault_image(), false, "cm-efi-dirty-both.txt");
    assert_eq!(both["violations"], 0, "{report}");
    // The stub's clean of the file only: the boot code's invalidate drops the dirty lines.
    let (inval, report) = run(fault_image(), true, "cm-efi-dirty-inval.txt");
    assert_eq!(inval["violations"], 0, "{report}");
    assert!(
        inval["discarded_dirty"] > both["discarded_dirty"],
        "the boot code dropped the loader's dirty lines: {report}"
    );
    // The stub's clean alone.
    let (clean, report) = run(&no_inval, false, "cm-efi-dirty-clean.txt");
    assert_eq!(clean["violations"], 0, "{report}");
    // Neither: the early tables are written under dirty lines.
    let (neither, report) = run(&no_inval, true, "cm-efi-dirty-neither.txt");
    assert!(neither["nc-store-dirty"] > 0, "{report}");
}
