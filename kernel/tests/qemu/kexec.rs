//! kexec: the chain self-test, zero copy, placement, loading files, bad input.

use crate::*;

/// SHA-256 (hex) of the Image under test, as `sha256sum` prints it.
pub(crate) fn image_sha256() -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(image()).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Image's `image_size` header field.
pub(crate) fn image_size() -> u64 {
    let bytes = std::fs::read(image()).unwrap();
    u64::from_le_bytes(bytes[16..24].try_into().unwrap())
}

/// Every `chain: hop=` line's fields, in order.
pub(crate) fn chain_lines(run: &Run) -> Vec<HashMap<String, String>> {
    run.out
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("chain: hop="))
        .map(fields_of)
        .collect()
}

pub(crate) fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// What a finished chain's `chain:` lines must show. Always: one line per generation with its
/// hop number, hop 0 without a payload and every later one with it checked, 2 MiB-aligned
/// loads (but [`Chain::first_load`]'s), then `chain: PASS`. The rest as asked.
#[derive(Default)]
pub(crate) struct Chain<'a> {
    /// Hops after the first kernel.
    pub(crate) hops: usize,
    /// Every generation's EL of entry.
    pub(crate) el: Option<&'a str>,
    /// Every generation's CPUs online.
    pub(crate) cpus: Option<&'a str>,
    /// Every generation's pristine Image is the file under test (by SHA-256).
    pub(crate) image: bool,
    /// Where the first kernel was loaded, if a boot loader put it anywhere.
    pub(crate) first_load: Option<u64>,
    /// The same free frames at every hop from the first (no leak).
    pub(crate) same_free: bool,
    /// The self-test's own placement: transitional tables, a new address every hop, one
    /// overlapping the running kernel, the last generation's history, and a power-off.
    pub(crate) placement: bool,
}

impl Chain<'_> {
    /// Asserts all of it; returns the lines' fields.
    pub(crate) fn check(&self, run: &Run) -> Vec<HashMap<String, String>> {
        let lines = chain_lines(run);
        assert_eq!(lines.len(), self.hops + 1, "{}", run.out);
        let sha = self.image.then(image_sha256);
        let size = image_size();
        let mut overlapped = false;
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["hop"], format!("{i}/{}", self.hops), "{l:?}");
            if let Some(el) = self.el {
                assert_eq!(l["el"], el, "hop {i}: a chain stays at its EL");
            }
            if let Some(cpus) = self.cpus {
                assert_eq!(l["cpus"], cpus, "hop {i}: {l:?}");
            }
            if let Some(sha) = &sha {
                assert_eq!(
                    &l["image"], sha,
                    "hop {i}: pristine Image differs from the file"
                );
            }
            let load = hex(&l["load"]);
            match (i, self.first_load) {
                (0, Some(at)) => assert_eq!(load, at, "{}", run.out),
                _ => assert_eq!(load % (2 << 20), 0, "hop {i}: load {load:#x}"),
            }
            if i == 0 {
                assert_eq!(l["payload"], "none");
                continue;
            }
            assert_eq!(l["payload"], "ok", "hop {i}");
            if self.same_free {
                assert_eq!(
                    l["free"], lines[1]["free"],
                    "hop {i}: free frames changed (a leak)"
                );
            }
            if self.placement {
                assert!(l["ttpages"].parse::<u64>().unwrap() >= 5, "{l:?}");
                let prev = hex(&lines[i - 1]["load"]);
                assert_ne!(load, prev, "hop {i}: same address as the previous hop");
                overlapped |= load.abs_diff(prev) < size;
            }
        }
        if self.placement {
            assert!(overlapped, "no hop overlapped the running kernel");
            check_history(run, &lines);
        }
        assert!(run.line("chain: PASS").is_some(), "{}", run.out);
        if self.placement {
            assert_eq!(run.status, Some(0), "init.rc powers off after the chain");
        }
        lines
    }
}

/// The self-test's chain of `hops` hops at `el`, checked in full ([`Chain`]).
pub(crate) fn check_chain(run: &Run, hops: usize, el: &str) -> Vec<HashMap<String, String>> {
    Chain {
        hops,
        el: Some(el),
        image: true,
        same_free: true,
        placement: true,
        ..Default::default()
    }
    .check(run)
}

/// The last generation's `chain: history` lines: one per generation, in order, each with
/// the free frames that generation's own `chain:` line printed, ready times rising.
pub(crate) fn check_history(run: &Run, lines: &[HashMap<String, String>]) {
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

pub(crate) fn chain_boot(el: u8, mem: &'static str, append: &str) -> Run {
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
    let totals: Vec<HashMap<String, String>> = run.lines("kexec: entry=").map(fields_of).collect();
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
    let segs: Vec<&str> = run.lines("segment ").collect();
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
        load: Load::dtb_as_is(two_bank_dtb()),
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
    let custom_dtb = kernel::formats::dtb::edit(
        &std::fs::read(fixture("virt-1g.dtb")).unwrap(),
        &[kernel::formats::dtb::Edit {
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
    let readies: Vec<&str> = run.lines("ready ").collect();
    assert_eq!(readies.len(), 2, "{}", run.out);
    assert!(readies[1].starts_with("ready el=2"));
    assert_eq!(run.status, Some(0));
}

/// The Image with its header changed by `f`.
pub(crate) fn patched_image(f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = std::fs::read(image()).unwrap();
    f(&mut b);
    b
}

/// Files no kexec should take, by the name the script below gives them: broken Image
/// headers and PE headers, DTBs the fuzzer found, a DTB and an initrd too large.
fn bad_kexec_inputs() -> Vec<(&'static str, Vec<u8>)> {
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
        kernel::formats::dtb::edit_chosen(&base, &[("filler", Some(&filler))]).unwrap()
    };
    // More than free memory once the initramfs holding it (in 256 MiB) is reserved; small
    // enough that QEMU still finds room for its DTB after that initramfs (QEMU puts the
    // initrd 128 MiB into RAM: this and the archive's patched Image copies, about 1 MiB
    // each, must stay under 128 MiB together).
    let big_initrd = vec![7u8; 114 << 20];
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
    vec![
        ("not-image", not_image),
        ("truncated", truncated),
        ("zero-size", zero),
        ("huge", huge),
        ("big-endian", be),
        ("64k", k64),
        ("big.dtb", big_dtb),
        ("big-initrd", big_initrd),
        ("pe-outside", pe_outside),
        ("pe-unsigned", pe_unsigned),
        ("dtb-nameoff", dtb_nameoff),
        ("dtb-utf8", dtb_utf8),
        ("dtb-nesting", dtb_nesting),
        ("dtb-root", dtb_root),
        ("dtb-cut", dtb_cut),
    ]
}

#[test]
fn bad_kexec_input_is_named_and_the_shell_survives() {
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
    let inputs = bad_kexec_inputs();
    let files: Vec<(&str, &[u8])> = inputs.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let rd = initramfs("bad.cpio", Some(script), &files);
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
pub(crate) fn chosen_dtb(name: &str, props: &[(&str, &[u64])]) -> PathBuf {
    let dtb = scratch(&format!("{name}.dtb"));
    let props: Vec<(&str, &str, Vec<u8>)> = props
        .iter()
        .map(|(prop, values)| ("/chosen", *prop, dt_u64s(values)))
        .collect();
    edit_dtb(&fixture("virt-1g.dtb"), &dtb, &props);
    dtb
}

/// QEMU arguments that put `data` (written to a scratch file) into guest RAM at `addr`.
pub(crate) fn load_at(name: &str, data: &[u8], addr: u64) -> Vec<String> {
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
    use kernel::formats::chain::{self, Header, HopRecord};
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
        load: Load::dtb_as_is(dtb),
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

/// The next kernel's seeds come from this kernel's entropy pool: with no seeds in the DTB,
/// a virtio-rng device seeds it at the kexec and the next generation gets fresh ones;
/// with no source at all the next kernel gets none, and both kernels say so.
#[test]
fn next_kernel_seeds_from_virtio_rng_and_none_without_a_source() {
    let dtb = scratch("virt-1g-no-seeds.dtb");
    let blob = std::fs::read(fixture("virt-1g.dtb")).unwrap();
    let edits = [
        kernel::formats::dtb::Edit {
            node: "/chosen",
            prop: "rng-seed",
            value: None,
        },
        kernel::formats::dtb::Edit {
            node: "/chosen",
            prop: "kaslr-seed",
            value: None,
        },
    ];
    std::fs::write(
        &dtb,
        kernel::formats::dtb::edit(&blob, &edits, &[]).unwrap(),
    )
    .unwrap();
    let rd = initramfs("seeds.cpio", Some("poweroff\n"), &[]);
    for rng in [true, false] {
        let run = boot(Boot {
            el: 2,
            load: Load::DtbAsIs {
                dtb: dtb.clone(),
                image_at: 0x28_0000,
                initrd_at: 0,
            },
            initrd: Some(rd.clone()),
            append: Some("kexec.chain=1 kexec.payload=1M".into()),
            qemu_args: if rng {
                vec!["-device".into(), "virtio-rng-device".into()]
            } else {
                vec![]
            },
            ..Default::default()
        });
        let randoms: Vec<&str> = run.lines("random: ").collect();
        assert_eq!(randoms.len(), 2, "{}", run.out);
        assert!(
            randoms[0].starts_with("random: no entropy yet"),
            "{}",
            run.out
        );
        if rng {
            assert_eq!(
                randoms[1], "random: seeded from rng-seed (64 bytes), kaslr-seed (8 bytes)",
                "{}",
                run.out
            );
        } else {
            assert!(
                run.out.contains(
                    "kexec: no kaslr-seed or rng-seed for the next kernel: 0 of 32 bytes of entropy"
                ),
                "{}",
                run.out
            );
            assert!(
                randoms[1].starts_with("random: no entropy yet"),
                "{}",
                run.out
            );
        }
        assert!(run.out.contains("chain: PASS"), "{}", run.out);
    }
}

/// What is not signed can be pinned: `--initrd-sha256=` and `--dtb-sha256=` refuse a file
/// whose SHA-256 is another, name both digests, and let the right one through.
#[test]
fn pinned_initrd_and_dtb_digests() {
    let image = std::fs::read(image()).unwrap();
    let next = cpio::build(&[("init.rc", S_IFREG | 0o644, b"poweroff\n")]);
    let right = host_sha256(&next);
    let wrong = "ab".repeat(32);
    let script = format!(
        "kexec -l /Image --initrd=/next.cpio --initrd-sha256={wrong}\n\
         kexec -l /Image --dtb-sha256={right}\n\
         kexec -l /Image --initrd=/next.cpio --initrd-sha256=12345\n\
         kexec -l /Image --initrd=/next.cpio --initrd-sha256={} --append=\"console=ttyAMA0 pinned-ok\"\n\
         kexec -e\n",
        right.to_uppercase()
    );
    let rd = initramfs(
        "pinned.cpio",
        Some(&script),
        &[("Image", &image), ("next.cpio", &next)],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    let out = &run.out;
    assert!(
        out.contains(&format!(
            "initrd /next.cpio: its SHA-256 is {right}, where {wrong} was asked for: refused"
        )),
        "{out}"
    );
    assert!(
        out.contains("--dtb-sha256: no such file is given to check"),
        "{out}"
    );
    assert!(
        out.contains("--initrd-sha256=12345: a SHA-256 is 64 hex digits"),
        "{out}"
    );
    assert!(
        out.contains("command line: console=ttyAMA0 pinned-ok"),
        "{out}"
    );
    assert_eq!(run.status, Some(0), "{out}");
}
