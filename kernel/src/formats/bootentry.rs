//! Boot entries as distributions write them, read from a partition's text files:
//!
//! - `extlinux/extlinux.conf` (U-Boot's distro boot, syslinux's syntax; what Debian's
//!   `u-boot-menu` writes): `default`, `timeout` (tenths of a second), `menu title`, and per
//!   `label`: `menu label`, `linux`/`kernel`, `initrd` (comma-separated), `append`,
//!   `fdt`/`devicetree`, `fdtdir`/`devicetreedir`, `menu default`. Paths that start with `/`
//!   are from the partition's root; others from the directory that holds `extlinux/` (as
//!   U-Boot resolves them against its `${prefix}`).
//! - Boot Loader Specification Type 1 entries (`/loader/entries/*.conf`): `title`,
//!   `version`, `sort-key`, `linux`, `initrd` (repeatable), `options` (repeatable, joined),
//!   `devicetree`; `/loader/loader.conf`'s `default` (a glob) and `timeout` (seconds).
//! - The Raspberry Pi firmware's `config.txt` (`kernel=`, `initramfs FILE`, `device_tree=`,
//!   `cmdline=`, the `[pi4]`/`[all]` section filters) with `cmdline.txt`.
//!
//! Each becomes an [`Entry`]: what to load and with which command line. Reading the files
//! and loading them is the kernel's part.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Which configuration an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `extlinux/extlinux.conf`.
    Extlinux,
    /// A Boot Loader Specification Type 1 entry.
    Bls,
    /// The Raspberry Pi firmware's `config.txt` and `cmdline.txt`.
    RpiConfig,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Extlinux => "extlinux",
            Source::Bls => "bls",
            Source::RpiConfig => "config.txt",
        })
    }
}

/// One way to boot: a kernel, its initrds, its command line and maybe a DTB, all on the
/// same partition (paths from its root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it came from.
    pub source: Source,
    /// Its name in the configuration: the `label`, the BLS file's name without `.conf`,
    /// `config.txt`.
    pub id: String,
    /// What a menu shows.
    pub title: String,
    /// The kernel (an arm64 Image, or an Image.gz).
    pub kernel: String,
    /// Initrds, in order (loaded one after the other: Linux unpacks concatenated archives).
    pub initrds: Vec<String>,
    /// The command line, if the entry gives one.
    pub append: Option<String>,
    /// A DTB file, if the entry names one.
    pub dtb: Option<String>,
    /// A directory of DTBs (`fdtdir`): the board's DTB would be in it, under the name its
    /// firmware knows (which this kernel does not: it keeps the running DTB and says so).
    pub dtb_dir: Option<String>,
}

/// A configuration's entries, its default and its timeout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Menu {
    /// The entries, in the configuration's order (BLS: in the specification's order).
    pub entries: Vec<Entry>,
    /// The default entry's index.
    pub default: Option<usize>,
    /// How long a menu waits, in tenths of a second.
    pub timeout_ds: Option<u32>,
}

/// Why a configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// A line this parser cannot read.
    Line {
        /// The file.
        file: &'static str,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// An entry without a kernel.
    NoKernel {
        /// The file.
        file: &'static str,
        /// The entry.
        id: String,
    },
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Line { file, line, why } => write!(f, "{file}, line {line}: {why}"),
            EntryError::NoKernel { file, id } => {
                write!(f, "{file}: entry '{id}' names no kernel")
            }
        }
    }
}

/// `path` from the partition's root: absolute as it is, relative from `dir`.
fn resolve(dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), path)
    }
}

/// The first word of `line` (lower-cased) and the rest, trimmed.
fn keyword(line: &str) -> (String, &str) {
    let line = line.trim();
    match line.find(|c: char| c.is_whitespace()) {
        Some(i) => (line[..i].to_ascii_lowercase(), line[i..].trim()),
        None => (line.to_ascii_lowercase(), ""),
    }
}

/// Whether a configuration line's key names a file: `linux`, `kernel`, `initrd`, `fdt`,
/// `devicetree`, in any case. (A `match`, not a table of slices: see [`files_named`].)
fn names_a_file(key: &[u8]) -> bool {
    let mut lower = [0u8; 16];
    if key.len() > lower.len() {
        return false;
    }
    for (l, k) in lower.iter_mut().zip(key) {
        *l = k.to_ascii_lowercase();
    }
    matches!(
        &lower[..key.len()],
        b"linux" | b"kernel" | b"initrd" | b"fdt" | b"devicetree"
    )
}

/// Every file an extlinux.conf or a BLS entry may name, without parsing it: the values of
/// its `linux`, `kernel`, `initrd` (several, comma-separated), `fdt` and `devicetree`
/// lines, as paths from the partition's root without the leading `/`, resolved as
/// [`extlinux`] and [`bls`] resolve them (a relative path from `/boot` if `under_boot`,
/// else from the root), each once, added to `out`. A superset of what the parsers take.
///
/// The EFI stub calls this before the kernel is relocated: it uses no `core::fmt`, no
/// table of references (a constant array of slices holds absolute addresses) and nothing
/// that can panic.
pub fn files_named(text: &[u8], under_boot: bool, out: &mut Vec<Vec<u8>>) {
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        let key_end = line
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(line.len());
        let (key, value) = line.split_at(key_end);
        if !names_a_file(key) {
            continue;
        }
        for part in value.split(|&b| b == b',') {
            let token = part
                .trim_ascii()
                .split(|b| b.is_ascii_whitespace())
                .next()
                .unwrap_or(&[]);
            let Some(&first) = token.first() else {
                continue;
            };
            let mut path = Vec::new();
            if first != b'/' && under_boot {
                path.extend_from_slice(b"boot/");
            }
            path.extend_from_slice(token.strip_prefix(b"/").unwrap_or(token));
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
}

/// Reads `extlinux.conf`; `prefix` is the directory that holds its `extlinux/` directory
/// (`/` or `/boot`), for relative paths.
pub fn extlinux(text: &str, prefix: &str) -> Result<Menu, EntryError> {
    const FILE: &str = "extlinux.conf";
    let mut menu = Menu::default();
    let mut default_label = None;
    let mut current: Option<(Entry, bool)> = None;
    let mut finished: Vec<(Entry, bool)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| EntryError::Line {
            file: FILE,
            line: n + 1,
            why,
        };
        let (key, rest) = keyword(line);
        let (key, rest) = if key == "menu" {
            let (sub, r) = keyword(rest);
            (format!("menu {sub}"), r)
        } else {
            (key, rest)
        };
        if key == "label" {
            finished.extend(current.take());
            current = Some((
                Entry {
                    source: Source::Extlinux,
                    id: rest.to_string(),
                    title: rest.to_string(),
                    kernel: String::new(),
                    initrds: Vec::new(),
                    append: None,
                    dtb: None,
                    dtb_dir: None,
                },
                false,
            ));
            continue;
        }
        match (key.as_str(), current.as_mut()) {
            ("default", _) => default_label = Some(rest.to_string()),
            ("timeout", _) => {
                let t = rest
                    .parse()
                    .map_err(|_| bad(format!("timeout '{rest}' is not a number")))?;
                menu.timeout_ds = Some(t);
            }
            ("menu title" | "prompt" | "ontimeout" | "totaltimeout" | "menu hidden", _) => {}
            ("menu label", Some((e, _))) => e.title = rest.to_string(),
            ("menu default", Some((_, d))) => *d = true,
            ("linux" | "kernel", Some((e, _))) => e.kernel = resolve(prefix, rest),
            ("initrd", Some((e, _))) => e.initrds.extend(
                rest.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| resolve(prefix, p)),
            ),
            ("append", Some((e, _))) => e.append = Some(rest.to_string()),
            ("fdt" | "devicetree", Some((e, _))) => e.dtb = Some(resolve(prefix, rest)),
            ("fdtdir" | "devicetreedir", Some((e, _))) => e.dtb_dir = Some(resolve(prefix, rest)),
            ("fdtoverlays" | "localboot" | "ipappend" | "kaslrseed", Some(_)) => {}
            (k, None) => return Err(bad(format!("'{k}' outside any label"))),
            (k, Some(_)) => return Err(bad(format!("unknown keyword '{k}'"))),
        }
    }
    finished.extend(current.take());
    for (e, _) in &finished {
        if e.kernel.is_empty() {
            return Err(EntryError::NoKernel {
                file: FILE,
                id: e.id.clone(),
            });
        }
    }
    menu.default = finished
        .iter()
        .position(|(_, d)| *d)
        .or_else(|| {
            let want = default_label.as_deref()?;
            finished.iter().position(|(e, _)| e.id == want)
        })
        .or((!finished.is_empty()).then_some(0));
    menu.entries = finished.into_iter().map(|(e, _)| e).collect();
    Ok(menu)
}

/// Reads one Boot Loader Specification Type 1 entry, `name` being its file's name.
pub fn bls(name: &str, text: &str) -> Result<BlsEntry, EntryError> {
    const FILE: &str = "loader/entries/*.conf";
    let id = name.strip_suffix(".conf").unwrap_or(name).to_string();
    let mut e = BlsEntry {
        entry: Entry {
            source: Source::Bls,
            id: id.clone(),
            title: id.clone(),
            kernel: String::new(),
            initrds: Vec::new(),
            append: None,
            dtb: None,
            dtb_dir: None,
        },
        version: None,
        sort_key: None,
    };
    let mut options: Vec<&str> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = keyword(line);
        match key.as_str() {
            "title" => e.entry.title = rest.to_string(),
            "version" => e.version = Some(rest.to_string()),
            "sort-key" => e.sort_key = Some(rest.to_string()),
            "linux" => e.entry.kernel = resolve("/", rest),
            "initrd" => e.entry.initrds.push(resolve("/", rest)),
            "options" => options.push(rest),
            "devicetree" => e.entry.dtb = Some(resolve("/", rest)),
            "machine-id" | "architecture" | "devicetree-overlay" => {}
            "efi" => {
                return Err(EntryError::Line {
                    file: FILE,
                    line: n + 1,
                    why: format!("{id}: an EFI program, not a kernel this kernel can kexec"),
                })
            }
            _ => {} // the specification says unknown keys are ignored
        }
    }
    if e.entry.kernel.is_empty() {
        return Err(EntryError::NoKernel { file: FILE, id });
    }
    if !options.is_empty() {
        e.entry.append = Some(options.join(" "));
    }
    Ok(e)
}

/// A BLS entry and what orders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlsEntry {
    /// The entry.
    pub entry: Entry,
    /// `version`.
    pub version: Option<String>,
    /// `sort-key`.
    pub sort_key: Option<String>,
}

/// `/loader/loader.conf`: the default entry's glob and the timeout (seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoaderConf {
    /// `default`: a glob over entry names (`*` and `?`).
    pub default: Option<String>,
    /// `timeout`, in seconds.
    pub timeout_s: Option<u32>,
}

/// Reads `loader.conf` (unknown keys, and values that are not numbers, are passed over as
/// systemd-boot passes them over).
pub fn loader_conf(text: &str) -> LoaderConf {
    let mut c = LoaderConf::default();
    for line in text.lines() {
        let (key, rest) = keyword(line);
        match key.as_str() {
            "default" => c.default = Some(rest.to_string()),
            "timeout" => c.timeout_s = rest.parse().ok(),
            _ => {}
        }
    }
    c
}

/// Orders BLS entries as the specification says (entries with a `sort-key` first, by it;
/// then by `version`, newest first; then by name) and picks the default with `conf`.
pub fn bls_menu(mut entries: Vec<BlsEntry>, conf: &LoaderConf) -> Menu {
    entries.sort_by(|a, b| {
        use core::cmp::Ordering;
        match (&a.sort_key, &b.sort_key) {
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            _ => {}
        }
        match version_cmp(b.version.as_deref(), a.version.as_deref()) {
            Ordering::Equal => a.entry.id.cmp(&b.entry.id),
            o => o,
        }
    });
    let default = conf
        .default
        .as_deref()
        .and_then(|g| {
            entries
                .iter()
                .position(|e| glob(g, &e.entry.id) || glob(g, &format!("{}.conf", e.entry.id)))
        })
        .or((!entries.is_empty()).then_some(0));
    Menu {
        entries: entries.into_iter().map(|e| e.entry).collect(),
        default,
        timeout_ds: conf.timeout_s.map(|s| s.saturating_mul(10)),
    }
}

/// Compares versions as the specification's `strverscmp`-like order does: runs of digits by
/// value, everything else by bytes. `None` sorts below every version.
fn version_cmp(a: Option<&str>, b: Option<&str>) -> core::cmp::Ordering {
    use core::cmp::Ordering;
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a.as_bytes(), b.as_bytes()),
        (a, b) => return a.is_some().cmp(&b.is_some()),
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (x, y) = (trim_zeros(&a[si..i]), trim_zeros(&b[sj..j]));
            match x.len().cmp(&y.len()).then(x.cmp(y)) {
                Ordering::Equal => {}
                o => return o,
            }
        } else {
            match a[i].cmp(&b[j]) {
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
                o => return o,
            }
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

/// `*` and `?` globbing, as `loader.conf`'s `default` uses it.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// The Pi firmware's boot files: `config.txt` (as a Pi 4 reads it: `[all]`, `[pi4]` and
/// `[pi4]`-like filters apply, other model filters do not) and the `cmdline.txt` it names
/// (`read` reads a file of the partition by name, or gives `None`).
pub fn rpi_config(
    config_txt: &str,
    mut read: impl FnMut(&str) -> Option<String>,
) -> Result<Entry, EntryError> {
    const FILE: &str = "config.txt";
    let mut kernel = None;
    let mut initrd = None;
    let mut dtb = None;
    let mut cmdline_file = String::from("cmdline.txt");
    let mut applies = true;
    for (n, raw) in config_txt.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(filter) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let f = filter.trim().to_ascii_lowercase();
            applies = match f.as_str() {
                "all" | "pi4" | "pi400" | "cm4" | "cm4s" | "board-type=0x11" => true,
                "none" | "tryboot" => false,
                // Another model's section.
                _ if ["pi", "cm", "board-type"].iter().any(|p| f.starts_with(p)) => false,
                // Conditions on GPIOs, displays or serial numbers: the firmware decides
                // them; for the kernel's files they are taken as true.
                _ => true,
            };
            continue;
        }
        if !applies {
            continue;
        }
        if let Some(rest) = line.strip_prefix("initramfs") {
            // `initramfs FILE [followkernel|ADDRESS]`: no `=`.
            let file = rest.split_whitespace().next().ok_or(EntryError::Line {
                file: FILE,
                line: n + 1,
                why: "initramfs without a file".into(),
            })?;
            initrd = Some(resolve("/", file));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "kernel" => kernel = Some(resolve("/", value.trim())),
            "device_tree" => dtb = Some(resolve("/", value.trim())),
            "cmdline" => cmdline_file = value.trim().to_string(),
            _ => {}
        }
    }
    let append = read(&cmdline_file).map(|c| c.lines().next().unwrap_or("").trim().to_string());
    Ok(Entry {
        source: Source::RpiConfig,
        id: "config.txt".into(),
        title: "Raspberry Pi firmware's config.txt".into(),
        // A Pi 4 with `arm_64bit=1` and no `kernel=` loads kernel8.img.
        kernel: kernel.unwrap_or_else(|| "/kernel8.img".into()),
        initrds: initrd.into_iter().collect(),
        append,
        dtb,
        dtb_dir: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// What Debian's u-boot-menu writes (a separate /boot partition: paths from its root).
    const DEBIAN: &str = "\
## /boot/extlinux/extlinux.conf
##
## IMPORTANT WARNING
##
## The configuration of this file is generated automatically.

default l0
menu title U-Boot menu
prompt 0
timeout 50


label l0
\tmenu label Debian GNU/Linux 13 (trixie) 6.12.48+deb13-arm64
\tlinux /vmlinuz-6.12.48+deb13-arm64
\tinitrd /initrd.img-6.12.48+deb13-arm64
\tfdtdir /dtbs/6.12.48+deb13-arm64/
\tappend root=/dev/vda2 ro quiet

label l0r
\tmenu label Debian GNU/Linux 13 (trixie) 6.12.48+deb13-arm64 (rescue target)
\tlinux /vmlinuz-6.12.48+deb13-arm64
\tinitrd /initrd.img-6.12.48+deb13-arm64
\tappend root=/dev/vda2 ro single
";

    #[test]
    fn extlinux_as_debian_writes_it() {
        let m = extlinux(DEBIAN, "/").unwrap();
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.default, Some(0));
        assert_eq!(m.timeout_ds, Some(50));
        let e = &m.entries[0];
        assert_eq!(e.title, "Debian GNU/Linux 13 (trixie) 6.12.48+deb13-arm64");
        assert_eq!(e.kernel, "/vmlinuz-6.12.48+deb13-arm64");
        assert_eq!(e.initrds, vec!["/initrd.img-6.12.48+deb13-arm64"]);
        assert_eq!(e.append.as_deref(), Some("root=/dev/vda2 ro quiet"));
        assert_eq!(e.dtb_dir.as_deref(), Some("/dtbs/6.12.48+deb13-arm64/"));
        assert_eq!(m.entries[1].id, "l0r");
    }

    #[test]
    fn extlinux_relative_paths_menu_default_and_several_initrds() {
        let text = "DEFAULT second\nLABEL first\n  KERNEL Image\nLABEL second\n  LINUX ../Image\n  INITRD a.cpio, b.cpio\n  FDT dtb/board.dtb\nlabel third\n  menu default\n  linux /x\n";
        let m = extlinux(text, "/boot").unwrap();
        assert_eq!(m.entries[0].kernel, "/boot/Image");
        assert_eq!(m.entries[1].initrds, vec!["/boot/a.cpio", "/boot/b.cpio"]);
        assert_eq!(m.entries[1].dtb.as_deref(), Some("/boot/dtb/board.dtb"));
        assert_eq!(m.default, Some(2), "menu default wins over default");
        let m = extlinux(
            "default second\nlabel first\nlinux /a\nlabel second\nlinux /b\n",
            "/",
        )
        .unwrap();
        assert_eq!(m.default, Some(1));
        let m = extlinux("default nothing\nlabel first\nlinux /a\n", "/").unwrap();
        assert_eq!(
            m.default,
            Some(0),
            "an unknown default falls back to the first"
        );
    }

    #[test]
    fn files_named_cover_what_the_parsers_take() {
        let ext = "DEFAULT second\nLABEL first\n  KERNEL Image\nLABEL second\n  LINUX ../Image\n  INITRD a.cpio, b.cpio\n  FDT dtb/board.dtb\n  APPEND root=/dev/vda1\nlabel third\n  menu default\n  linux /x\n";
        let bls_text = "title T\nlinux /vmlinuz-6\ninitrd /initrd.img-6\ninitrd /extra.img\ndevicetree /dtbs/b.dtb\noptions root=/dev/sda2 initrd=/not-a-file\n";
        for (under_boot, text, parsed) in [
            (true, ext, extlinux(ext, "/boot").unwrap().entries),
            (false, ext, extlinux(ext, "/").unwrap().entries),
            (
                false,
                bls_text,
                alloc::vec![bls("a.conf", bls_text).unwrap().entry],
            ),
        ] {
            let mut named = Vec::new();
            files_named(text.as_bytes(), under_boot, &mut named);
            for e in &parsed {
                let wanted = core::iter::once(&e.kernel)
                    .chain(&e.initrds)
                    .chain(e.dtb.as_ref());
                for w in wanted {
                    let w = w.trim_start_matches('/').as_bytes();
                    assert!(named.iter().any(|n| n == w), "{w:?} not in {named:?}");
                }
            }
            // Options and append lines name no file.
            assert!(!named.iter().any(|n| n.ends_with(b"not-a-file")));
            assert!(!named.iter().any(|n| n.starts_with(b"root=")));
        }
        let mut named = Vec::new();
        files_named(
            b"linux a\nLINUX a\ninitrd ,, \nfdtdir /d\n",
            false,
            &mut named,
        );
        assert_eq!(named, [b"a".to_vec()]);
    }

    #[test]
    fn extlinux_errors_are_named() {
        assert_eq!(
            extlinux("label a\n  append x\n", "/")
                .unwrap_err()
                .to_string(),
            "extlinux.conf: entry 'a' names no kernel"
        );
        assert_eq!(
            extlinux("linux /x\n", "/").unwrap_err().to_string(),
            "extlinux.conf, line 1: 'linux' outside any label"
        );
        assert_eq!(
            extlinux("timeout soon\n", "/").unwrap_err().to_string(),
            "extlinux.conf, line 1: timeout 'soon' is not a number"
        );
        assert_eq!(
            extlinux("label a\n linux /x\n frobnicate\n", "/")
                .unwrap_err()
                .to_string(),
            "extlinux.conf, line 3: unknown keyword 'frobnicate'"
        );
        assert_eq!(extlinux("", "/").unwrap(), Menu::default());
    }

    #[test]
    fn bls_entries_in_the_specifications_order() {
        let a = bls(
            "debian-6.1.conf",
            "title Debian 6.1\nversion 6.1.0-40\nlinux /6.1/linux\ninitrd /6.1/initrd\noptions root=/dev/vda2\noptions ro\n",
        )
        .unwrap();
        assert_eq!(a.entry.append.as_deref(), Some("root=/dev/vda2 ro"));
        assert_eq!(a.entry.kernel, "/6.1/linux");
        let b = bls(
            "debian-6.12.conf",
            "title Debian 6.12\nversion 6.12.48\nlinux /6.12/linux\n",
        )
        .unwrap();
        let c = bls("rescue.conf", "title Rescue\nsort-key zz\nlinux /r\n").unwrap();
        let m = bls_menu(vec![a.clone(), c, b], &LoaderConf::default());
        let ids: Vec<&str> = m.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["rescue", "debian-6.12", "debian-6.1"]);
        assert_eq!(m.default, Some(0));
        let conf = loader_conf("default debian-6.1*\ntimeout 3\n# a comment\n");
        let m = bls_menu(vec![a.clone()], &conf);
        assert_eq!((m.default, m.timeout_ds), (Some(0), Some(30)));
        assert_eq!(
            bls("x.conf", "title X\n").unwrap_err().to_string(),
            "loader/entries/*.conf: entry 'x' names no kernel"
        );
        assert!(bls("u.conf", "efi /EFI/x.efi\n").is_err());
    }

    #[test]
    fn versions_compare_by_number() {
        use core::cmp::Ordering::*;
        assert_eq!(version_cmp(Some("6.12.1"), Some("6.9.9")), Greater);
        assert_eq!(version_cmp(Some("6.1.0-40"), Some("6.1.0-9")), Greater);
        assert_eq!(version_cmp(Some("1.0"), Some("1.0")), Equal);
        assert_eq!(version_cmp(None, Some("1")), Less);
        assert!(glob("deb*-6.?", "debian-6.1") && !glob("deb*-6.?", "debian-6.12"));
    }

    #[test]
    fn rpi_config_as_the_firmware_reads_it() {
        let config = "\
# Debian's raspi-firmware writes this
arm_64bit=1
enable_uart=1
[pi3]
kernel=wrong.img
[pi4]
kernel=vmlinuz-6.12.48+deb13-arm64
initramfs initrd.img-6.12.48+deb13-arm64 followkernel
[all]
device_tree=bcm2711-rpi-4-b.dtb
[none]
kernel=never.img
[tryboot]
kernel=tryboot.img
";
        let e = rpi_config(config, |f| {
            (f == "cmdline.txt").then(|| "console=ttyS1,115200 root=/dev/mmcblk0p2 rw\n".into())
        })
        .unwrap();
        assert_eq!(e.kernel, "/vmlinuz-6.12.48+deb13-arm64");
        assert_eq!(e.initrds, vec!["/initrd.img-6.12.48+deb13-arm64"]);
        assert_eq!(e.dtb.as_deref(), Some("/bcm2711-rpi-4-b.dtb"));
        assert_eq!(
            e.append.as_deref(),
            Some("console=ttyS1,115200 root=/dev/mmcblk0p2 rw")
        );
        let plain = rpi_config("cmdline=boot.txt\n", |_| None).unwrap();
        assert_eq!(
            (plain.kernel.as_str(), plain.append),
            ("/kernel8.img", None)
        );
        assert!(rpi_config("initramfs\n", |_| None).is_err());
    }
}
