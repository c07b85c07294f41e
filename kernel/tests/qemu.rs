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

const TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(p) = std::env::var("KERNEL_IMAGE") {
            return PathBuf::from(p);
        }
        let out = Command::new(root().join("scripts/build.sh"))
            .output()
            .expect("scripts/build.sh");
        assert!(
            out.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("build.sh prints the Image path")
                .trim(),
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
    initrd: Option<PathBuf>,
    dtb: Option<PathBuf>,
    /// Hand the kernel this DTB exactly as it is (see `loader_args`), instead of `-kernel`.
    dtb_as_is: Option<PathBuf>,
    append: Option<String>,
    /// Bytes typed once the prompt appears.
    typed: Option<&'static str>,
    /// Stop (kill QEMU) once this text has been printed.
    until: Option<&'static str>,
}

struct Run {
    out: String,
    /// QEMU's exit status, or `None` if it was killed (timeout or `until`).
    status: Option<i32>,
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
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

fn boot(b: Boot) -> Run {
    let machine = if b.el == 1 {
        "virt"
    } else {
        "virt,virtualization=on"
    };
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args([
        "-M",
        machine,
        "-cpu",
        if b.cpu.is_empty() {
            "cortex-a72"
        } else {
            b.cpu
        },
    ]);
    cmd.args(["-m", if b.mem.is_empty() { "1G" } else { b.mem }]);
    cmd.args(["-nographic", "-nic", "none", "-no-reboot"]);
    if let Some(dtb) = &b.dtb_as_is {
        cmd.args(loader_args(dtb, b.initrd.as_deref(), b.append.as_deref()));
    } else {
        cmd.arg("-kernel").arg(image());
        if let Some(i) = &b.initrd {
            cmd.arg("-initrd").arg(i);
        }
        if let Some(d) = &b.dtb {
            cmd.arg("-dtb").arg(d);
        }
        if let Some(a) = &b.append {
            cmd.args(["-append", a]);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("qemu-system-aarch64 (run scripts/setup.sh)");
    let mut stdout = child.stdout.take().unwrap();
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
    let start = Instant::now();
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break child.wait().unwrap().code();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
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
    Run { out, status }
}

/// Where `loader_args` puts things: all in the first 512 MiB of `virt`'s RAM.
/// (QEMU keeps its own DTB in the first MiB even without `-kernel`.)
const SHIM_PA: u64 = 0x4010_0000;
const IMAGE_PA: u64 = 0x4020_0000;
const DTB_PA: u64 = 0x4400_0000;
const INITRD_PA: u64 = 0x4800_0000;

/// QEMU arguments that boot the kernel with `dtb` unchanged.
///
/// With `-kernel`, QEMU replaces a `-dtb`'s `/memory` and `/chosen`. Instead this loads the
/// Image, a copy of the DTB (with `/chosen` bootargs and initrd set by `fdtput`) and the
/// initrd with `-device loader`, and starts the CPU (at its highest EL) in a four-instruction
/// shim that enters the Image as the boot protocol asks: x0 = DTB, x1..x3 = 0 (from reset).
fn loader_args(dtb: &Path, initrd: Option<&Path>, append: Option<&str>) -> Vec<String> {
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
        let (start, end) = (INITRD_PA, INITRD_PA + len);
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
    // ldr x0, [pc, #16]; ldr x4, [pc, #20]; br x4; nop; .quad DTB_PA; .quad IMAGE_PA
    let mut shim = Vec::new();
    for insn in [0x5800_0080u32, 0x5800_00a4, 0xd61f_0080, 0xd503_201f] {
        shim.extend_from_slice(&insn.to_le_bytes());
    }
    shim.extend_from_slice(&DTB_PA.to_le_bytes());
    shim.extend_from_slice(&IMAGE_PA.to_le_bytes());
    let shim_path = scratch("boot-shim.bin");
    std::fs::write(&shim_path, shim).unwrap();
    args.push(format!(
        "loader,file={},addr={DTB_PA:#x},force-raw=on",
        copy.display()
    ));
    args.push(format!(
        "loader,file={},addr={IMAGE_PA:#x},force-raw=on",
        image().display()
    ));
    args.push(format!(
        "loader,file={},addr={SHIM_PA:#x},force-raw=on,cpu-num=0",
        shim_path.display()
    ));
    args.into_iter()
        .flat_map(|a| ["-device".to_string(), a])
        .collect()
}

/// gzip-compresses `data` with the host's gzip.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = Command::new("gzip")
        .arg("-9nc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    gz.stdin.take().unwrap().write_all(data).unwrap();
    gz.wait_with_output().unwrap().stdout
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

/// QEMU's own DTB for 2 GiB, with /memory changed into two banks (two nodes) and a hole.
fn two_bank_dtb() -> PathBuf {
    let dtb = scratch("two-bank.dtb");
    let st = Command::new("qemu-system-aarch64")
        .args([
            "-M",
            &format!("virt,virtualization=on,dumpdtb={}", dtb.display()),
        ])
        .args([
            "-cpu",
            "cortex-a72",
            "-m",
            "2G",
            "-nographic",
            "-nic",
            "none",
        ])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let fdtput = |args: &[&str]| {
        let st = Command::new("fdtput")
            .arg(&dtb)
            .args(args)
            .status()
            .expect("fdtput (device-tree-compiler)");
        assert!(st.success(), "fdtput {args:?}");
    };
    // Bank 1: 0x4000_0000 + 512 MiB. Hole: 0x6000_0000..0x8000_0000. Bank 2: 0x8000_0000 + 768 MiB.
    fdtput(&[
        "-t",
        "x",
        "/memory@40000000",
        "reg",
        "0",
        "40000000",
        "0",
        "20000000",
    ]);
    fdtput(&["-c", "/memory@80000000"]);
    fdtput(&["-t", "s", "/memory@80000000", "device_type", "memory"]);
    fdtput(&[
        "-t",
        "x",
        "/memory@80000000",
        "reg",
        "0",
        "80000000",
        "0",
        "30000000",
    ]);
    dtb
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
    assert!((326_000..327_680).contains(&free), "free frames {free}");
}

#[test]
fn fault_reports_a_data_abort_with_its_address() {
    let rd = initramfs("fault.cpio", Some("fault 0xffff900000001230\n"), &[]);
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        until: Some("halted"),
        ..Default::default()
    });
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
