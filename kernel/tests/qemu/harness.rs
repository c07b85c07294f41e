//! The harness: building and finding the Image, initramfs images, booting QEMU (`Boot`,
//! `boot`) and reading what the kernel printed (`Run`).

#[allow(unused_imports)]
use crate::*;
pub(crate) use kernel::formats::cpio::{self, S_IFREG};
pub(crate) use std::collections::HashMap;
pub(crate) use std::io::{Read, Write};
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Command, Stdio};
pub(crate) use std::sync::mpsc;
pub(crate) use std::sync::OnceLock;
pub(crate) use std::time::{Duration, Instant};

/// Per boot; generous so that a slower CI machine does not fail a chain (the chains take
/// about 15 s here). Only a failing test ever waits this long.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(180);

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What `script` (relative to the tree, with its arguments after spaces) builds: the path it
/// prints as its last line, unless `env` names it already (as `scripts/test.sh` does).
pub(crate) fn built(env: &str, script: &str, hint: &str) -> PathBuf {
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

pub(crate) fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| built("KERNEL_IMAGE", "scripts/build.sh", ""))
}

/// The test Image with failure injection (`scripts/build.sh --fault-inject`): `$FAULT_IMAGE`
/// (set by `scripts/test.sh`), or built now.
pub(crate) fn fault_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| built("FAULT_IMAGE", "scripts/build.sh --fault-inject", ""))
}

/// The cache-model plugin: `$CACHE_MODEL` (set by `scripts/test.sh`), or built now.
pub(crate) fn cache_model() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        built(
            "CACHE_MODEL",
            "tools/cache-model/build.sh",
            " (scripts/setup.sh installs gcc and glib)",
        )
    })
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/qemu-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes an initramfs holding `files` (and `/init.rc` = `script`, if given).
pub(crate) fn initramfs(name: &str, script: Option<&str>, files: &[(&str, &[u8])]) -> PathBuf {
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
pub(crate) struct Boot {
    pub(crate) el: u8,
    pub(crate) mem: &'static str,
    pub(crate) cpu: &'static str,
    /// CPUs (`-smp`); 0 = 1.
    pub(crate) smp: u32,
    /// `virt` with a GICv3 instead of the default GICv2.
    pub(crate) gic3: bool,
    /// Route the second UART (the Pi's mini UART) to stdout instead of the first.
    pub(crate) serial1: bool,
    /// (With [`Load::Firmware`]: also the DTB's own `stdout-path`, not the PL011.)
    /// `raspi4b` instead of `virt` (its own CPUs and RAM; single-threaded TCG, since its
    /// spinning secondaries otherwise starve the boot CPU). [`Load::Firmware`] implies it.
    pub(crate) raspi4b: bool,
    /// How the kernel gets into the machine.
    pub(crate) load: Load,
    pub(crate) initrd: Option<PathBuf>,
    pub(crate) dtb: Option<PathBuf>,
    /// Boot this (kernel, initrd, command line) instead of our Image: Linux.
    pub(crate) linux: Option<(PathBuf, PathBuf, String)>,
    /// A sparse file as guest RAM (`memory-backend-file`), for machines whose RAM reaches
    /// far beyond what the host could allocate.
    pub(crate) sparse_ram: bool,
    /// This directory as a disk, the EFI system partition (QEMU's `fat:` drive, read-only;
    /// see `esp()`): under [`Load::Uefi`] there is no `-kernel` then.
    pub(crate) esp: Option<PathBuf>,
    pub(crate) append: Option<String>,
    /// Bytes typed once the prompt (or `typed_after`) appears.
    pub(crate) typed: Option<&'static str>,
    /// What to wait for before typing `typed` (default: the shell's prompt).
    pub(crate) typed_after: Option<&'static str>,
    /// Disk images, each a virtio-blk device (raw): the kernel names them virtio0, virtio1,
    /// ... in the DTB's order, which is the reverse of this (QEMU gives the first device
    /// the last virtio-mmio transport).
    pub(crate) disks: Vec<PathBuf>,
    /// Before typing: leave the kernel idle at its prompt this long, measuring QEMU's host
    /// CPU time meanwhile (`Run::idle_cpu`).
    pub(crate) idle: Option<Duration>,
    /// Stop (kill QEMU) once this text has been printed.
    pub(crate) until: Option<&'static str>,
    /// Our kernel's Image, if not the one under test (`image()`): a patched copy.
    pub(crate) image: Option<PathBuf>,
    /// Run under the cache model (`tools/cache-model`), its report in this scratch file.
    pub(crate) cache_model: Option<&'static str>,
    /// More QEMU arguments, last.
    pub(crate) qemu_args: Vec<String>,
    /// Let a reset restart the machine (no `-no-reboot`): a watchdog that fires starts the
    /// kernel again.
    pub(crate) reboot: bool,
}

/// How the kernel (our Image, or `Boot::linux`) gets into the machine.
#[derive(Default)]
pub(crate) enum Load {
    /// QEMU's `-kernel`, with QEMU's DTB or `Boot::dtb`.
    #[default]
    Direct,
    /// This DTB handed over exactly as it is (`scripts/dtb-as-is.sh`), the Image and the
    /// initrd at these offsets from its lowest bank (0: [`IMAGE_OFFSET`] and the script's
    /// default).
    DtbAsIs {
        dtb: PathBuf,
        image_at: u64,
        initrd_at: u64,
    },
    /// On `raspi4b`, through this Pi 4 firmware stack (`scripts/rpi4-firmware.sh`: `tfa`,
    /// `tfa-board`, `uboot`, `tfa+uboot`) with `Boot::dtb` (default: `rpi4-qemu.dtb`), the
    /// Image and the initrd at these addresses (0: the script's defaults), `/memory`'s reg
    /// cells as the firmware would write them (`RPI4_MEMORY`; default: the 960 MiB QEMU's
    /// mailbox reports).
    Firmware {
        stack: &'static str,
        image_at: u64,
        initrd_at: u64,
        memory: Option<&'static str>,
    },
    /// `virt` under UEFI firmware: Debian's EDK2 (`QEMU_EFI.fd`) as `-bios`, with
    /// `acpi=off` (unless `acpi`: then EDK2 publishes no DTB), booting from fw_cfg or from
    /// `Boot::esp`.
    Uefi { acpi: bool },
    /// `virt` (EL2, 1 GiB, 1 CPU) under Debian's U-Boot (`u-boot-qemu`) as `-bios`, which
    /// runs this `bootcmd` (put in the DTB's `/config`) at once; the Image is preloaded at
    /// [`UBOOT_KERNEL`] and the initrd at [`UBOOT_INITRD`].
    UBoot(String),
}

impl Load {
    /// `DtbAsIs` with the script's default offsets.
    pub(crate) fn dtb_as_is(dtb: PathBuf) -> Self {
        Load::DtbAsIs {
            dtb,
            image_at: 0,
            initrd_at: 0,
        }
    }

    /// `Firmware` with the script's defaults.
    pub(crate) fn firmware(stack: &'static str) -> Self {
        Load::Firmware {
            stack,
            image_at: 0,
            initrd_at: 0,
            memory: None,
        }
    }
}

pub(crate) struct Run {
    pub(crate) out: String,
    /// QEMU's exit status, or `None` if it was killed (timeout or `until`).
    pub(crate) status: Option<i32>,
    /// The cache model's report, when it ran.
    pub(crate) cache: Option<String>,
    /// QEMU's host CPU use during `Boot::idle`, as a fraction of one core.
    pub(crate) idle_cpu: Option<f64>,
}

impl Run {
    pub(crate) fn line(&self, prefix: &str) -> Option<&str> {
        self.out
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .find(|l| l.starts_with(prefix))
    }

    /// Every line starting with `prefix`, in order.
    pub(crate) fn lines<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.out
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(move |l| l.starts_with(prefix))
    }

    /// The `key=value` fields of the first line starting with `prefix`.
    pub(crate) fn fields(&self, prefix: &str) -> HashMap<String, String> {
        let line = self
            .line(prefix)
            .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{}", self.out));
        fields_of(line)
    }
}

/// The `key=value` words of a console line.
pub(crate) fn fields_of(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Debian's EDK2 for QEMU virt (`qemu-efi-aarch64`, which `scripts/setup.sh` installs).
pub(crate) const EDK2: &str = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";

/// Debian's U-Boot for QEMU virt (`u-boot-qemu`, which `scripts/setup.sh` installs).
pub(crate) const UBOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// Where `Boot::uboot` preloads the Image and the initrd (U-Boot's `kernel_addr_r` and
/// `ramdisk_addr_r` on QEMU virt).
pub(crate) const UBOOT_KERNEL: u64 = 0x4040_0000;

pub(crate) const UBOOT_INITRD: u64 = 0x4400_0000;

/// Boots `b` in QEMU and collects what the kernel printed (see [`Boot`] and [`Run`]).
pub(crate) fn boot(b: Boot) -> Run {
    // Our kernel ends QEMU with a status on a panic (1) or an unexpected exception (2).
    let append = format!("semihosting {}", b.append.as_deref().unwrap_or(""));
    let mut cmd = Command::new("qemu-system-aarch64");
    machine_args(&mut cmd, &b);
    if b.linux.is_none() {
        cmd.args(["-semihosting-config", "enable=on,target=native"]);
    }
    if let Load::UBoot(bootcmd) = &b.load {
        uboot_args(&mut cmd, &b, bootcmd);
    }
    load_args(&mut cmd, &b, &append);
    for (i, d) in b.disks.iter().enumerate() {
        cmd.args([
            "-drive",
            &format!("file={},if=none,format=raw,id=disk{i}", d.display()),
            "-device",
            &format!("virtio-blk-device,drive=disk{i}"),
        ]);
    }
    cmd.args(&b.qemu_args);
    let report = b.cache_model.map(scratch);
    if let Some(r) = &report {
        let _ = std::fs::remove_file(r);
        cmd.args(cache_model_args(&b, r));
    }
    run_qemu(cmd, &b, report)
}

/// The machine: `virt` (EL, GIC, CPU, RAM, CPUs, UEFI firmware) or `raspi4b`, the serial
/// ports, no network, no reboot.
fn machine_args(cmd: &mut Command, b: &Boot) {
    let machine = match (b.el, b.gic3) {
        (1, false) => "virt",
        (1, true) => "virt,gic-version=3",
        (_, false) => "virt,virtualization=on",
        (_, true) => "virt,virtualization=on,gic-version=3",
    };
    let machine = match b.load {
        Load::Uefi { acpi: false } => format!("{machine},acpi=off"),
        _ => machine.to_string(),
    };
    if let Load::Uefi { .. } = b.load {
        cmd.args(["-bios", EDK2]);
    }
    if let Load::Firmware { .. } = b.load {
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
    cmd.args(["-nic", "none"]);
    if !b.reboot {
        cmd.arg("-no-reboot");
    }
}

/// `virt` under Debian's U-Boot, which runs `bootcmd` (put in the DTB's `/config`), with the
/// Image and the initrd preloaded.
fn uboot_args(cmd: &mut Command, b: &Boot, bootcmd: &str) {
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

/// How the kernel gets in: an ESP under UEFI, a Pi 4 firmware stack, Linux with `-kernel`,
/// the DTB as it is, or our Image with `-kernel` (the default).
fn load_args(cmd: &mut Command, b: &Boot, append: &str) {
    if let Some(esp) = &b.esp {
        cmd.args([
            "-drive",
            &format!(
                "file=fat:{},format=raw,if=virtio,readonly=on",
                esp.display()
            ),
        ]);
        return;
    }
    match &b.load {
        Load::Firmware {
            stack,
            image_at,
            initrd_at,
            memory,
        } => firmware_args(cmd, b, append, stack, (*image_at, *initrd_at), *memory),
        Load::DtbAsIs {
            dtb,
            image_at,
            initrd_at,
        } if b.linux.is_none() => {
            let image = b.image.as_deref().unwrap_or_else(|| image());
            cmd.args(dtb_as_is_args(dtb, image, b, (*image_at, *initrd_at)));
        }
        Load::UBoot(_) => {}
        _ => direct_args(cmd, b, append),
    }
}

/// A Pi 4 firmware stack (`scripts/rpi4-firmware.sh`) loading our Image or `b.linux`, the
/// Image and initrd at `at` (0: the script's defaults).
fn firmware_args(
    cmd: &mut Command,
    b: &Boot,
    append: &str,
    stack: &str,
    at: (u64, u64),
    memory: Option<&str>,
) {
    {
        let (kernel, initrd, cmdline) = match &b.linux {
            Some((k, i, a)) => (k.clone(), i.clone(), a.clone()),
            None => (
                b.image.clone().unwrap_or_else(|| image().to_path_buf()),
                b.initrd.clone().expect("an initrd"),
                append.to_string(),
            ),
        };
        let dtb = b.dtb.clone().unwrap_or_else(|| fixture("rpi4-qemu.dtb"));
        // scripts/rpi4-firmware.sh's knobs.
        let mut env = Vec::new();
        if at.0 != 0 {
            env.push(("KERNEL_ADDR", format!("{:#x}", at.0)));
        }
        if at.1 != 0 {
            env.push(("INITRD_ADDR", format!("{:#x}", at.1)));
        }
        if let Some(m) = memory {
            env.push(("RPI4_MEMORY", m.to_string()));
        }
        if b.serial1 {
            // The console the DTB names (the mini UART in Debian's), not the PL011.
            env.push(("RPI4_STDOUT_PATH", String::new()));
        }
        cmd.args(rpi4_firmware_args(
            stack, &kernel, &initrd, &dtb, &cmdline, &env,
        ));
    }
}

/// QEMU's `-kernel`: Linux (`b.linux`) or our Image with `b`'s initrd, DTB and command line.
fn direct_args(cmd: &mut Command, b: &Boot, append: &str) {
    if let Some((kernel, initrd, append)) = &b.linux {
        cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
        cmd.args(["-append", append]);
    } else {
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
        cmd.args(["-append", append]);
    }
}

/// Runs QEMU: reads its output until it exits, `b.until` shows up or [`TIMEOUT`] passes;
/// types `b.typed` at the first prompt; measures QEMU's CPU use while idle if asked.
fn run_qemu(mut cmd: Command, b: &Boot, report: Option<PathBuf>) -> Run {
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
            if out.contains(b.typed_after.unwrap_or("kernel# ")) {
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
pub(crate) fn cache_model_args(b: &Boot, report: &Path) -> Vec<String> {
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
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
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
pub(crate) fn rpi4_firmware_args(
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
    script
        .arg(firmware)
        .arg(&dir)
        .args([kernel, initrd, dtb])
        .arg(cmdline);
    printed_args(script)
}

/// The lines a script that prints QEMU arguments (one a line) printed; its failure, with
/// what it said, fails the test.
pub(crate) fn printed_args(mut script: Command) -> Vec<String> {
    let name = format!("{:?}", script.get_program());
    let out = script.output().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        out.status.success(),
        "{name}: {}",
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
pub(crate) fn pi_console_on_pl011(dtb: &Path) -> PathBuf {
    let copy = scratch(&format!(
        "pl011-{}",
        dtb.file_name().unwrap().to_string_lossy()
    ));
    edit_dtb(
        dtb,
        &copy,
        &[("/chosen", "stdout-path", dt_string("serial0:115200n8"))],
    );
    copy
}

/// Writes `dtb` to `out` with these properties of existing nodes set, as the kernel's own
/// editor (`kernel::formats::dtb::edit`, what kexec hands on) sets them. (Nodes it does not
/// create: tests that add nodes use `fdtput -c`.)
pub(crate) fn edit_dtb(dtb: &Path, out: &Path, props: &[(&str, &str, Vec<u8>)]) {
    let edits: Vec<kernel::formats::dtb::Edit<'_>> = props
        .iter()
        .map(|(node, prop, value)| kernel::formats::dtb::Edit {
            node,
            prop,
            value: Some(value),
        })
        .collect();
    let blob = std::fs::read(dtb).unwrap();
    let edited = kernel::formats::dtb::edit(&blob, &edits, &[])
        .unwrap_or_else(|e| panic!("{}: {e}", dtb.display()));
    std::fs::write(out, edited).unwrap();
}

/// A DTB string property's value.
pub(crate) fn dt_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A DTB property of 64-bit values, each as two big-endian cells.
pub(crate) fn dt_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// Where `scripts/dtb-as-is.sh` puts the Image by default, from the DTB's lowest bank.
pub(crate) const IMAGE_OFFSET: u64 = 0x20_0000;

/// QEMU arguments that boot `image` with `dtb` unchanged (`scripts/dtb-as-is.sh`, which
/// `qemu.sh --dtb` uses too), with `b`'s initrd, command line and offsets.
pub(crate) fn dtb_as_is_args(dtb: &Path, image: &Path, b: &Boot, at: (u64, u64)) -> Vec<String> {
    // A directory per boot: tests that run at once may hand the same DTB over.
    static BOOTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BOOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = dtb.file_name().unwrap().to_string_lossy();
    let dir = scratch(&format!("dtb-as-is-{n}-{name}"));
    let mut script = Command::new(root().join("scripts/dtb-as-is.sh"));
    for (var, at) in [("IMAGE_OFFSET", at.0), ("INITRD_OFFSET", at.1)] {
        if at != 0 {
            script.env(var, format!("{at:#x}"));
        }
    }
    script
        .arg(&dir)
        .arg(dtb)
        .arg(image)
        .arg(b.append.as_deref().unwrap_or(""));
    if let Some(rd) = &b.initrd {
        script.arg(rd);
    }
    printed_args(script)
}

/// gzip-compresses `data` with the host's gzip (fed from a thread, so that a large input
/// cannot deadlock against gzip's full output pipe).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
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

pub(crate) const POWEROFF: &str = "echo init.rc ran\npoweroff\n";

pub(crate) fn assert_ready(run: &Run, el: &str, mem_mib: &str) {
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

/// `mem` prints "pagetable linear tables=N blocks_1g=..."; returns those fields.
pub(crate) fn linear_use(run: &Run) -> HashMap<String, String> {
    run.fields("pagetable linear")
}

/// QEMU's own virt DTB for `mem` of RAM (`-machine dumpdtb`, over sparse guest RAM if
/// `sparse`), with its /memory replaced by `banks` (one node each), as `fdtput` edits it.
pub(crate) fn qemu_dtb_with_banks(
    name: &str,
    mem: &str,
    sparse: bool,
    banks: &[(u64, u64)],
) -> PathBuf {
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
pub(crate) fn two_bank_dtb() -> PathBuf {
    qemu_dtb_with_banks(
        "two-bank.dtb",
        "2G",
        false,
        &[(0x4000_0000, 512 << 20), (0x8000_0000, 768 << 20)],
    )
}

/// A tool from Rust's `llvm-tools` component (`scripts/setup.sh` adds it), as
/// `scripts/build.sh` finds `llvm-objcopy`.
pub(crate) fn llvm_tool(name: &str) -> PathBuf {
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

/// The path of a fixture under `target/fixtures`, which must exist: a missing one fails
/// naming the script that makes it.
pub(crate) fn fixture(name: impl AsRef<Path>) -> PathBuf {
    let path = root().join("target/fixtures").join(name);
    assert!(
        path.exists(),
        "fixture {} is missing: scripts/fixtures.sh makes it (scripts/test.sh runs it)",
        path.display()
    );
    path
}
