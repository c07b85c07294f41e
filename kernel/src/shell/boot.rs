//! `boot`: the boot entries on every disk's partitions, as distributions write them
//! (`kernel::formats::bootentry`: extlinux.conf, BLS Type 1, the Pi's config.txt), and
//! kexec of one; and the start-up menu (`boot.menu`) that makes this kernel a boot loader.
//!
//! Where each partition is looked at: `/extlinux/extlinux.conf` and
//! `/boot/extlinux/extlinux.conf` (the prefixes U-Boot's distro boot tries),
//! `/loader/entries/*.conf` with `/loader/loader.conf`, and `/config.txt`.
//!
//! With `boot.watchdog=SECONDS` (or `boot N --watchdog=SECONDS`) the board's watchdog is
//! armed before the jump ([`super::failsafe`]); after a reset by it, the menu falls back to
//! the next entry not yet tried.

use super::failsafe::{self, Attempt};
use crate::kexec::{self, ImageSource, InitrdSource, LoadRequest};
use crate::{arch, disks, println, SYSTEM};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kernel::formats::bootentry::{self, Entry, Menu, Source};
use kernel::formats::bootrecord;
use kernel::storage::fs::Fs;
use kernel::storage::ReadAt;

/// Configuration files larger than this are not read.
const MAX_CONFIG: u64 = 1 << 20;

/// An entry and the partition it is on.
pub struct Found {
    /// `virtio0`, ...
    pub disk: String,
    /// Partition number.
    pub part: usize,
    /// The entry.
    pub entry: Entry,
}

impl Found {
    /// A path of the entry's partition as `kexec` takes it.
    fn path(&self, p: &str) -> String {
        format!("{}p{}:{p}", self.disk, self.part)
    }
}

/// Every entry found, the default's index, the timeout (tenths of a second) of the first
/// configuration that has one.
pub struct Scan {
    /// The entries, partition by partition.
    pub entries: Vec<Found>,
    /// Which one boots by default.
    pub default: Option<usize>,
    /// How long the menu waits.
    pub timeout_ds: Option<u32>,
}

fn read_text<V: ReadAt + 'static>(fs: &mut Fs<V>, path: &str) -> Option<String> {
    let n = fs.file_size(path).ok().filter(|&n| n <= MAX_CONFIG)?;
    let mut b = alloc::vec![0u8; n as usize];
    fs.read_file(path, &mut b, |_| {}).ok()?;
    String::from_utf8(b).ok()
}

/// The menus on one mounted partition (errors named on the console, the rest kept).
fn menus<V: ReadAt + 'static>(fs: &mut Fs<V>, at: &str) -> Vec<Menu> {
    let mut out = Vec::new();
    for prefix in ["/", "/boot"] {
        let conf = format!("{}/extlinux/extlinux.conf", prefix.trim_end_matches('/'));
        if let Some(text) = read_text(fs, &conf) {
            match bootentry::extlinux(&text, prefix) {
                Ok(m) => out.push(m),
                Err(e) => println!("boot: {at}:{conf}: {e}"),
            }
        }
    }
    if let Ok(list) = fs.read_dir("/loader/entries") {
        let mut bls = Vec::new();
        for e in list
            .iter()
            .filter(|e| !e.is_dir && e.name.ends_with(".conf"))
        {
            let path = format!("/loader/entries/{}", e.name);
            match read_text(fs, &path).map(|t| bootentry::bls(&e.name, &t)) {
                Some(Ok(b)) => bls.push(b),
                Some(Err(err)) => println!("boot: {at}:{path}: {err}"),
                None => println!("boot: {at}:{path}: cannot be read"),
            }
        }
        let conf = read_text(fs, "/loader/loader.conf")
            .map(|t| bootentry::loader_conf(&t))
            .unwrap_or_default();
        if !bls.is_empty() {
            out.push(bootentry::bls_menu(bls, &conf));
        }
    }
    if let Some(text) = read_text(fs, "/config.txt") {
        match bootentry::rpi_config(&text, |f| read_text(fs, &format!("/{f}"))) {
            Ok(e) => out.push(Menu {
                default: Some(0),
                entries: alloc::vec![e],
                timeout_ds: None,
            }),
            Err(e) => println!("boot: {at}:/config.txt: {e}"),
        }
    }
    out
}

/// Looks at every partition of every disk.
pub fn scan() -> Scan {
    let parts = disks::partitions();
    let mut scan = Scan {
        entries: Vec::new(),
        default: None,
        timeout_ds: None,
    };
    for (disk, part) in parts {
        let Ok(mut fs) = disks::mount(&disk, part) else {
            continue;
        };
        for m in menus(&mut fs, &format!("{disk}p{part}")) {
            if scan.default.is_none() {
                scan.default = m.default.map(|d| d + scan.entries.len());
            }
            scan.timeout_ds = scan.timeout_ds.or(m.timeout_ds);
            scan.entries
                .extend(m.entries.into_iter().map(|entry| Found {
                    disk: disk.clone(),
                    part,
                    entry,
                }));
        }
    }
    scan
}

/// The menu's lines: `boot: N: DISKpN SOURCE 'ID' "TITLE"`, the default marked.
fn show(s: &Scan) {
    if s.entries.is_empty() {
        return println!("boot: no entries on any disk");
    }
    for (i, f) in s.entries.iter().enumerate() {
        println!(
            "boot: {i}{} {}p{} {} '{}' \"{}\"",
            if s.default == Some(i) { "*" } else { ":" },
            f.disk,
            f.part,
            f.entry.source,
            f.entry.id,
            f.entry.title
        );
    }
}

/// Loads entry `f` with kexec and enters it, with the watchdog armed just before the jump
/// if `attempt` says so; returns only on failure.
fn boot(f: &Found, attempt: Option<Attempt>) -> Result<(), String> {
    let e = &f.entry;
    let initrds = if e.initrds.is_empty() {
        String::new()
    } else {
        format!(", initrd {}", e.initrds.join(" "))
    };
    println!(
        "boot: {} from {}p{}: {}{initrds}",
        e.id, f.disk, f.part, e.kernel
    );
    let mut req = LoadRequest::new(ImageSource::File(f.path(&e.kernel)));
    req.initrd = match e.initrds.as_slice() {
        [] => InitrdSource::None,
        [one] => InitrdSource::File(f.path(one)),
        many => InitrdSource::Files(many.iter().map(|p| f.path(p)).collect()),
    };
    req.append = e.append.clone();
    match (&e.dtb, &e.dtb_dir, e.source) {
        // The Pi firmware loaded device_tree= and completed it (memory, serial numbers):
        // the running DTB is that one.
        (_, _, Source::RpiConfig) => {}
        (Some(d), _, _) => req.dtb = Some(f.path(d)),
        (None, Some(dir), _) => println!(
            "boot: {}: fdtdir {dir}: the board's DTB name is the firmware's; keeping the running DTB",
            e.id
        ),
        (None, None, _) => {}
    }
    req.boot_attempt = attempt.as_ref().map(Attempt::number);
    kexec::load(&req).map_err(|err| format!("boot: {}: {err}", e.id))?;
    if let Some(a) = &attempt {
        a.arm();
    }
    let err = kexec::execute().map_err(|err| format!("boot: {}: {err}", e.id));
    if let Some(a) = &attempt {
        a.disarm();
    }
    err
}

/// The entry `which` names, and its index: its index, or its ID.
fn pick<'a>(s: &'a Scan, which: &str) -> Option<(usize, &'a Found)> {
    match which.parse::<usize>() {
        Ok(i) => s.entries.get(i).map(|f| (i, f)),
        Err(_) => s
            .entries
            .iter()
            .enumerate()
            .find(|(_, f)| f.entry.id == which),
    }
}

/// The watchdog's timeout a `boot.watchdog=` or `--watchdog=` value asks for.
fn watchdog_seconds(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("boot: watchdog={v}: whole seconds, at least 1"))
}

/// `boot` lists the entries; `boot N|ID [--watchdog=SECONDS]` boots one.
pub fn command(w: &[String]) -> Result<(), String> {
    let s = scan();
    let mut which = None;
    let mut seconds = None;
    for a in &w[1..] {
        match a.strip_prefix("--watchdog=") {
            Some(v) => seconds = Some(watchdog_seconds(v)?),
            None if which.is_none() => which = Some(a.as_str()),
            None => return Err(format!("boot: {a}: one entry at a time")),
        }
    }
    let Some(which) = which else {
        show(&s);
        return Ok(());
    };
    let (i, f) = pick(&s, which)
        .ok_or_else(|| format!("boot: no entry '{which}' (boot alone lists them)"))?;
    let attempt = seconds
        .map(|secs| Attempt::prepare(i, &f.entry.id, 0, secs))
        .transpose()?;
    boot(f, attempt)
}

/// Boots entry `i` from the menu, with the fail-safe if the command line asks for it
/// (without it, named, if this board cannot have it).
fn boot_from_menu(s: &Scan, i: usize, tried: u64) {
    let sys = SYSTEM.get().expect("booted");
    let f = &s.entries[i];
    let attempt = match sys.cmdline.get("boot.watchdog").map(watchdog_seconds) {
        None => None,
        Some(Err(e)) => {
            println!("{e}; booting without the fail-safe");
            None
        }
        Some(Ok(secs)) => match Attempt::prepare(i, &f.entry.id, tried, secs) {
            Ok(a) => Some(a),
            Err(e) => {
                println!("boot: {e}; booting without the fail-safe");
                None
            }
        },
    };
    if let Err(e) = boot(f, attempt) {
        println!("{e}");
    }
}

/// After an entry did not come up (the watchdog reset the board): the entry to boot
/// instead and the entries tried so far, or `None` for the shell.
fn after_failure(s: &Scan, default: Option<usize>) -> Option<(Option<usize>, u64)> {
    let Some(rec) = failsafe::failed() else {
        return Some((default, 0));
    };
    let failed = rec.entry as usize;
    if !s
        .entries
        .get(failed)
        .is_some_and(|f| rec.names(&f.entry.id))
    {
        println!(
            "boot: the entries changed since '{}' was tried; from the default again",
            rec.id
        );
        return Some((default, 0));
    }
    match bootrecord::fallback(s.entries.len(), failed, rec.tried) {
        Some(i) => {
            println!("boot: falling back to {i} '{}'", s.entries[i].entry.id);
            Some((Some(i), rec.tried))
        }
        None => {
            println!("boot: every entry was tried and none came up; the shell");
            None
        }
    }
}

/// At start-up with `boot.menu` on the command line: shows the entries and boots the
/// default (`boot.default=N|ID`, else the configuration's) after the timeout
/// (`boot.timeout=SECONDS`, else the configuration's, else 5 s), unless a key is pressed:
/// digits and Enter boot that entry, any other key leaves the menu for the shell.
pub fn menu_at_start() {
    let sys = SYSTEM.get().expect("booted");
    if !sys.cmdline.has("boot.menu") {
        return;
    }
    let s = scan();
    show(&s);
    let default = match sys.cmdline.get("boot.default") {
        Some(d) => pick(&s, d).map(|(i, _)| i),
        None => s.default,
    };
    let Some((default, tried)) = after_failure(&s, default) else {
        return;
    };
    let Some(default) = default else {
        return println!("boot: nothing to boot; the shell");
    };
    let timeout_ds: u64 = match sys.cmdline.get("boot.timeout").map(str::parse::<u64>) {
        Some(Ok(t)) => t * 10,
        Some(Err(_)) => {
            println!("boot: boot.timeout= takes whole seconds; 5 s");
            50
        }
        None => s.timeout_ds.map_or(50, u64::from),
    };
    println!(
        "boot: '{}' in {}.{} s; type an entry's number and Enter, or another key for the shell",
        s.entries[default].entry.id,
        timeout_ds / 10,
        timeout_ds % 10
    );
    let t0 = arch::ticks();
    let mut typed = String::new();
    loop {
        if typed.is_empty() && arch::ticks_to_us(arch::ticks() - t0) >= timeout_ds * 100_000 {
            break;
        }
        let Some(b) = crate::drivers::console::next_byte() else {
            core::hint::spin_loop();
            continue;
        };
        match b {
            // A NUL is no key (QEMU's serial sometimes hands one over at start).
            0 => {}
            b'0'..=b'9' => {
                typed.push(b as char);
                crate::print!("{}", b as char);
            }
            b'\r' | b'\n' if !typed.is_empty() => {
                println!();
                match pick(&s, &typed) {
                    Some((i, _)) => return boot_from_menu(&s, i, tried),
                    None => {
                        println!("boot: no entry {typed}; the shell");
                        return;
                    }
                }
            }
            _ => {
                println!();
                return println!("boot: stopped by a key ({b:#04x}); the shell");
            }
        }
    }
    boot_from_menu(&s, default, tried);
}
