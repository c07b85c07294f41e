//! The targets: each runs the kernel's own code on one input, as the kernel does at boot or
//! at `kexec -l`, and returns the outcome's text. Panics are the failures; errors are the
//! expected answer to bad input.

use crate::{Seeds, Target};
use kernel::formats::{chain, cmdline, cpio, dtb, efi, gzip, vmcore};
use kernel::platform::{gicv3, Platform};
use mm::memmap::{MemoryMap, Region};

/// Every target: name, function, built-in seeds (written next to the real-file seeds by
/// scripts/fuzz.sh, and replayed by `cargo test`).
pub const ALL: &[(&str, Target, Seeds)] = &[
    ("image", image, image_seeds),
    ("gzip", gzip_target, gzip_seeds),
    ("cpio", cpio_target, cpio_seeds),
    ("dtb", dtb_target, no_seeds),
    ("uefi", uefi_target, uefi_seeds),
    ("efi", efi_target, efi_seeds),
    ("cmdline", cmdline_target, cmdline_seeds),
    ("chain", chain_target, chain_seeds),
    ("gicv3", gicv3_target, gicv3_seeds),
    ("elfcore", elfcore_target, elfcore_seeds),
    ("partition", partition_target, partition_seeds),
    ("fat", fat_target, no_seeds),
    ("ext4", ext4_target, no_seeds),
    ("bootentry", bootentry_target, bootentry_seeds),
    ("authenticode", authenticode_target, authenticode_seeds),
    ("pkcs7", pkcs7_target, pkcs7_seeds),
];

fn no_seeds() -> Vec<Vec<u8>> {
    Vec::new()
}

fn text<E: core::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// An Image (or Image.gz after inflating) at `kexec -l`: the header checks.
pub fn image(data: &[u8]) -> Result<(), String> {
    kexec::image::parse(data).map(|_| ()).map_err(text)
}

fn image_seeds() -> Vec<Vec<u8>> {
    let mut h = vec![0u8; 4096];
    h[0..2].copy_from_slice(b"MZ");
    h[0x10..0x18].copy_from_slice(&(2u64 << 20).to_le_bytes());
    h[0x18..0x20].copy_from_slice(&0b1010u64.to_le_bytes());
    h[0x38..0x3c].copy_from_slice(b"ARM\x64");
    h[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    h[0x40..0x44].copy_from_slice(b"PE\0\0");
    vec![h]
}

/// An Image.gz or a gzip initramfs: the trailer's size, then inflating into a buffer of that
/// size (capped: the kernel allocates it only after checking it against free memory).
pub fn gzip_target(data: &[u8]) -> Result<(), String> {
    if !gzip::is_gzip(data) {
        return Err("not gzip".into());
    }
    let n = gzip::announced_size(data).map_err(text)?;
    let mut out = vec![0u8; n.min(1 << 20)];
    gzip::decompress_into(data, &mut out)
        .map(|_| ())
        .map_err(text)
}

fn gzip_seeds() -> Vec<Vec<u8>> {
    // A stored (uncompressed) deflate block of "hello\n", with a correct CRC and size.
    let payload = b"hello\n";
    let mut g = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    g.extend_from_slice(&[1, payload.len() as u8, 0, !(payload.len() as u8), 0xff]);
    g.extend_from_slice(payload);
    g.extend_from_slice(&0x363a_3020u32.to_le_bytes()); // crc32("hello\n")
    g.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    vec![g]
}

/// The initramfs at boot: every entry, its name and data.
pub fn cpio_target(data: &[u8]) -> Result<(), String> {
    let entries = cpio::parse(data).map_err(text)?;
    let mut sum = 0usize;
    for e in &entries {
        sum = sum.wrapping_add(e.path.len() + e.data.len() + e.is_file() as usize);
    }
    std::hint::black_box(sum);
    Ok(())
}

fn cpio_seeds() -> Vec<Vec<u8>> {
    vec![
        cpio::build(&[
            ("init.rc", 0o100644, b"echo hi\n"),
            ("bin", 0o040755, b""),
            ("bin/x", 0o100755, &[0u8; 300]),
        ]),
        cpio::build(&[]),
    ]
}

/// A DTB as the kernel reads one at boot (compacted, then the board and the memory map), and
/// as `kexec -l` edits one: the edit must give a DTB the kernel's own reader accepts.
pub fn dtb_target(data: &[u8]) -> Result<(), String> {
    let blob = dtb::compact(data).map_err(text)?;
    let fdt = fdt::Fdt::new(&blob).map_err(|e| format!("fdt: {e:?}"))?;
    let platform = Platform::from_fdt(&fdt).map_err(text);
    let map = MemoryMap::from_fdt(&fdt).map_err(text);
    let start = 0x4800_0000u64.to_be_bytes();
    let end = 0x4900_0000u64.to_be_bytes();
    let edits = [
        dtb::Edit {
            node: "/chosen",
            prop: "bootargs",
            value: Some(b"console=ttyAMA0\0"),
        },
        dtb::Edit {
            node: "/chosen",
            prop: "linux,initrd-start",
            value: Some(&start),
        },
        dtb::Edit {
            node: "/chosen",
            prop: "linux,initrd-end",
            value: Some(&end),
        },
        dtb::Edit {
            node: "/chosen",
            prop: "kaslr-seed",
            value: None,
        },
        dtb::Edit {
            node: "/cpus/cpu@1",
            prop: "cpu-release-addr",
            value: Some(&start),
        },
    ];
    let edited = dtb::edit(&blob, &edits, &[(0x4000_0000, 0x1000)]).map_err(text)?;
    // What kexec hands on must read back: the next kernel is us, or Linux.
    let again =
        dtb::compact(&edited).unwrap_or_else(|e| panic!("the edited DTB does not read back: {e}"));
    let f2 = fdt::Fdt::new(&again).unwrap_or_else(|e| panic!("edited DTB: fdt: {e:?}"));
    let chosen = f2.find_node("/chosen").expect("the edit made /chosen");
    assert!(
        chosen.property("bootargs").is_some(),
        "bootargs set by the edit is missing"
    );
    platform.map(|_| ())?;
    map.map(|_| ())
}

/// A UEFI memory map as an EFI stub hands it over: the first 8 bytes give the descriptor
/// size and version (`linux,uefi-mmap-desc-size`/`-ver`), the rest is the map.
pub fn uefi_target(data: &[u8]) -> Result<(), String> {
    if data.len() < 8 {
        return Err("short".into());
    }
    let size = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let ver = u32::from_le_bytes(data[4..8].try_into().unwrap());
    let descs = mm::uefi::parse(&data[8..], size, ver).map_err(text)?;
    let _ = mm::uefi::banks(&descs);
    let tree = empty_dtb();
    let fdt = fdt::Fdt::new(&tree).expect("a valid built-in DTB");
    MemoryMap::from_uefi(&fdt, &descs, Region::new(0x4000_0000, data.len() as u64))
        .map(|_| ())
        .map_err(text)
}

/// A minimal DTB (an empty root node): the UEFI target needs a tree for `/reserved-memory`.
fn empty_dtb() -> Vec<u8> {
    // Header (10 words), an empty reservation block (16 bytes), then BEGIN_NODE "", END_NODE,
    // END; no strings.
    let words: [u32; 10] = [0xd00d_feed, 72, 56, 72, 40, 17, 16, 0, 0, 16];
    let mut b: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    b.extend_from_slice(&[0; 16]);
    for w in [1u32, 0, 2, 9] {
        b.extend_from_slice(&w.to_be_bytes());
    }
    b
}

fn uefi_seeds() -> Vec<Vec<u8>> {
    // Two conventional-memory descriptors (type 7), 48-byte stride, version 1.
    let mut v = Vec::new();
    v.extend_from_slice(&48u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for (start, pages) in [(0x4000_0000u64, 0x1000u64), (0x8000_0000, 0x100)] {
        let mut d = [0u8; 48];
        d[0..4].copy_from_slice(&7u32.to_le_bytes());
        d[8..16].copy_from_slice(&start.to_le_bytes());
        d[24..32].copy_from_slice(&pages.to_le_bytes());
        d[32..40].copy_from_slice(&0xfu64.to_le_bytes()); // UC | WC | WT | WB
        v.extend_from_slice(&d);
    }
    vec![v]
}

/// The EFI system table and its configuration tables, as the kernel reads them through
/// `linux,uefi-system-table`: the input is physical memory from 0, the table at offset 0.
pub fn efi_target(data: &[u8]) -> Result<(), String> {
    let mut read = |pa: u64, buf: &mut [u8]| {
        let Ok(at) = usize::try_from(pa) else {
            return false;
        };
        match data.get(at..).and_then(|d| d.get(..buf.len())) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    };
    efi::config_tables(0, &mut read).map(|_| ()).map_err(text)
}

fn efi_seeds() -> Vec<Vec<u8>> {
    let mut m = vec![0u8; 512];
    m[0..8].copy_from_slice(&0x5453_5953_2049_4249u64.to_le_bytes()); // "IBI SYST"
    m[104..112].copy_from_slice(&2u64.to_le_bytes()); // two tables
    m[112..120].copy_from_slice(&256u64.to_le_bytes()); // at 256
    vec![m]
}

/// `/chosen/bootargs` and shell lines: words, sizes.
pub fn cmdline_target(data: &[u8]) -> Result<(), String> {
    let s = String::from_utf8_lossy(data);
    let words = cmdline::split_words(&s).map_err(text)?;
    for w in &words {
        let _ = cmdline::parse_size(w);
    }
    let c = cmdline::Cmdline::parse(&s).map_err(text)?;
    for key in ["kexec.chain", "kexec.payload", "init", "loglevel"] {
        let _ = c.get(key);
        let _ = c.get_size(key);
    }
    Ok(())
}

fn cmdline_seeds() -> Vec<Vec<u8>> {
    vec![
        b"console=ttyAMA0 kexec.chain=3 kexec.payload=64M init=/init.rc".to_vec(),
        b"kexec -l /Image --append=\"console=ttyAMA0 earlycon\" --base=0x40000000".to_vec(),
    ]
}

/// The chain's hand-over block, named in the DTB by a previous kernel.
pub fn chain_target(data: &[u8]) -> Result<(), String> {
    let (h, payload) = chain::Header::read(data).map_err(text)?;
    std::hint::black_box((h, chain::hash(payload)));
    Ok(())
}

fn chain_seeds() -> Vec<Vec<u8>> {
    let mut b = vec![0u8; chain::HEADER_PAGE + 64];
    chain::Header {
        hop: 1,
        total: 2,
        payload_len: 64,
        ..Default::default()
    }
    .write(&mut b);
    vec![b]
}

/// GICv3 redistributor registers a previous kernel left (`GICR_PROPBASER`, `GICR_PENDBASER`).
pub fn gicv3_target(data: &[u8]) -> Result<(), String> {
    let w = |i: usize| {
        data.get(i..i + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    match gicv3::lpi_tables(w(0), w(8)) {
        Some((a, b)) if a.start > a.end || b.start > b.end => panic!("inverted region"),
        Some(_) => Ok(()),
        None => Err("no tables".into()),
    }
}

fn gicv3_seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x4008_0000u64 | 15).to_le_bytes());
    v.extend_from_slice(&0x400a_0000u64.to_le_bytes());
    vec![v]
}

/// A crash kernel's `linux,elfcorehdr` (the ELF core header kexec-tools writes), and the
/// notes it points at: here the input is both.
pub fn elfcore_target(data: &[u8]) -> Result<(), String> {
    let h = vmcore::parse_core_header(data).map_err(text);
    for n in vmcore::notes(data).map_err(text)? {
        match (n.name, n.ty) {
            (b"CORE", vmcore::NT_PRSTATUS) => {
                std::hint::black_box(vmcore::PrStatus::parse(n.desc));
            }
            (b"VMCOREINFO", _) => {
                let info = vmcore::VmcoreInfo::parse(n.desc);
                std::hint::black_box((info.release(), info.symbol("prb"), info.number("VA_BITS")));
                let _ = vmcore::Translate::from_info(&info);
            }
            _ => {}
        }
    }
    h.map(|_| ())
}

fn elfcore_seeds() -> Vec<Vec<u8>> {
    // An ELF core header with a PT_NOTE and a PT_LOAD, then a VMCOREINFO note.
    let load = vmcore::Load {
        paddr: 0x4000_0000,
        vaddr: 0xffff_0000_0000_0000,
        size: 1 << 30,
    };
    let header = vmcore::write_core_header(&[Region::new(0x4100_0000, 0x100)], &[load]);
    let info = b"OSRELEASE=6.12.0\nSYMBOL(prb)=ffff800082345678\nNUMBER(VA_BITS)=48\nNUMBER(kimage_voffset)=0xffff7fff40000000\nNUMBER(PHYS_OFFSET)=0x40000000\n";
    vec![
        header,
        vmcore::write_note(b"VMCOREINFO", vmcore::NT_VMCOREINFO, info),
    ]
}

/// A disk's first blocks, read as a partition table (MBR or GPT) the way the kernel reads a
/// disk it found: every entry checked against the disk's size.
pub fn partition_target(data: &[u8]) -> Result<(), String> {
    use kernel::formats::partition;
    let blocks = (data.len() / partition::BLOCK) as u64;
    partition::read(blocks, |lba, buf| {
        let at = lba as usize * partition::BLOCK;
        match data.get(at..at + buf.len()) {
            Some(b) => {
                buf.copy_from_slice(b);
                true
            }
            None => false,
        }
    })
    .map(|_| ())
    .map_err(text)
}

fn partition_seeds() -> Vec<Vec<u8>> {
    // An MBR with a FAT and a Linux partition, as a Pi's card has.
    let mut d = vec![0u8; 64 * 512];
    for (i, (t, start, n)) in [(0x0cu8, 8u32, 16u32), (0x83, 24, 40)].iter().enumerate() {
        let e = &mut d[446 + 16 * i..][..16];
        e[4] = *t;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&n.to_le_bytes());
    }
    d[510] = 0x55;
    d[511] = 0xaa;
    vec![d]
}

/// A volume read as the kernel reads a FAT partition: mount, list the root and one level
/// below, read every file (those the kernel would read: smaller than the input, as it
/// refuses files larger than free memory).
pub fn fat_target(data: &[u8]) -> Result<(), String> {
    use kernel::storage::fat::Fat;
    use kernel::storage::{MemDisk, Volume};
    let blocks = (data.len() / 512) as u64;
    let fat = std::cell::RefCell::new(
        Fat::mount(Volume::new(MemDisk(data.to_vec()), 0, blocks)).map_err(text)?,
    );
    walk(
        |p| {
            fat.borrow_mut()
                .read_dir(p)
                .map(|v| v.into_iter().map(|e| (e.name, e.is_dir, e.size)).collect())
                .map_err(text)
        },
        data.len(),
        |p, buf| fat.borrow_mut().read_file(p, buf, |_| {}).map_err(text),
    )
}

/// A volume read as the kernel reads an ext2/3/4 partition (through `ext4-view`).
pub fn ext4_target(data: &[u8]) -> Result<(), String> {
    use kernel::storage::fs::Fs;
    use kernel::storage::{MemDisk, Volume};
    let blocks = (data.len() / 512) as u64;
    let fs = std::cell::RefCell::new(
        Fs::mount(Volume::new(MemDisk(data.to_vec()), 0, blocks)).map_err(text)?,
    );
    walk(
        |p| {
            fs.borrow_mut()
                .read_dir(p)
                .map(|v| v.into_iter().map(|e| (e.name, e.is_dir, e.size)).collect())
                .map_err(text)
        },
        data.len(),
        |p, buf| fs.borrow_mut().read_file(p, buf, |_| {}).map_err(text),
    )
}

/// The root and the directories in it: every file no larger than `limit` read.
fn walk<E: core::fmt::Display>(
    mut list: impl FnMut(&str) -> Result<Vec<(String, bool, u64)>, E>,
    limit: usize,
    mut read: impl FnMut(&str, &mut [u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut dirs = vec![String::from("/")];
    let mut depth = 0;
    while let Some(dir) = dirs.pop() {
        for (name, is_dir, size) in list(&dir).map_err(text)? {
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if is_dir && depth < 2 {
                dirs.push(path);
            } else if !is_dir && size as usize <= limit {
                let mut buf = vec![0u8; size as usize];
                let _ = read(&path, &mut buf);
            }
        }
        depth += 1;
    }
    Ok(())
}

/// Text read as each boot configuration the kernel reads (and scanned as the EFI stub scans
/// it for file names): extlinux.conf, a BLS entry and
/// loader.conf, the Pi's config.txt (with itself as cmdline.txt).
pub fn bootentry_target(data: &[u8]) -> Result<(), String> {
    use kernel::formats::bootentry;
    // The EFI stub's scan for the files the entries name, on any bytes.
    let mut named = Vec::new();
    bootentry::files_named(data, true, &mut named);
    let conf = core::str::from_utf8(data).map_err(text)?;
    let a = bootentry::extlinux(conf, "/boot").map(|_| ()).map_err(text);
    let b = bootentry::bls("x.conf", conf).map(|e| {
        bootentry::bls_menu(vec![e], &bootentry::loader_conf(conf));
    });
    let c = bootentry::rpi_config(conf, |_| Some(conf.into()));
    a.and(b.map_err(text)).and(c.map(|_| ()).map_err(text))
}

fn bootentry_seeds() -> Vec<Vec<u8>> {
    vec![
        b"default l0\ntimeout 50\nlabel l0\n\tmenu label Debian\n\tlinux /vmlinuz\n\tinitrd /initrd.img\n\tfdtdir /dtbs/\n\tappend root=/dev/vda2 ro\n".to_vec(),
        b"title Debian\nversion 6.12.1\nsort-key debian\nlinux /6.12/linux\ninitrd /6.12/initrd\noptions root=/dev/vda2\ndefault deb*\ntimeout 3\n".to_vec(),
        b"arm_64bit=1\n[pi4]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n[all]\ndevice_tree=bcm2711-rpi-4-b.dtb\ncmdline=cmdline.txt\n".to_vec(),
    ]
}

/// The verified-kexec test data (scripts/trust-testdata.sh): a CA, and a small PE file signed
/// through an intermediate.
const TRUST_ROOT: &[u8] = include_bytes!("../../kernel/src/trust/testdata/root.der");
const TRUST_SIGNED: &[u8] = include_bytes!("../../kernel/src/trust/testdata/tiny.signed.efi");
const TRUST_DEEP: &[u8] = include_bytes!("../../kernel/src/trust/testdata/tiny.deep.efi");
const TRUST_INTERMEDIATE: &[u8] = include_bytes!("../../kernel/src/trust/testdata/int.pem");

fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    sha2::block_api::compress256(state, blocks);
}

fn test_trust() -> kernel::trust::TrustSet {
    let mut t = kernel::trust::TrustSet::default();
    t.add_anchor(kernel::trust::Anchor::from_der(TRUST_ROOT).expect("the test CA"));
    t
}

/// A PE file at `kexec -l` under `kexec.verify=enforce`: the PE headers, the certificate
/// table, the Authenticode digest, each PKCS#7 and the chain to a trusted CA.
pub fn authenticode_target(data: &[u8]) -> Result<(), String> {
    kernel::trust::verify_image(data, &test_trust(), compress)
        .map(|_| ())
        .map_err(text)
}

fn authenticode_seeds() -> Vec<Vec<u8>> {
    vec![TRUST_SIGNED.to_vec(), TRUST_DEEP.to_vec()]
}

/// Bytes as each thing verified kexec decodes from outside: a PKCS#7 SignedData checked
/// against the test image's digest, a certificate file (`/etc/kexec/trusted/`), and UEFI
/// `db`/`dbx` signature lists.
pub fn pkcs7_target(data: &[u8]) -> Result<(), String> {
    let mut trust = test_trust();
    let digest = [0x5a; 32];
    let a = kernel::trust::signed_data::verify(data, &digest, &trust, compress).map(|_| ());
    let b = kernel::trust::Anchor::parse_file(data).map(|_| ());
    let c = trust.add_db(data).map(|_| ());
    let d = trust.add_dbx(data, compress).map(|_| ());
    a.map_err(text)
        .and(b.map_err(text))
        .and(c.map_err(text))
        .and(d.map_err(text))
}

fn pkcs7_seeds() -> Vec<Vec<u8>> {
    // The signed file's PKCS#7: after the WIN_CERTIFICATE header at the security
    // directory's offset.
    let secdir = 0x40 + 4 + 20 + 112 + 8 * 4;
    let at = u32::from_le_bytes(TRUST_SIGNED[secdir..secdir + 4].try_into().unwrap()) as usize;
    let p7 = TRUST_SIGNED[at + 8..].to_vec();
    let mut t = test_trust();
    t.allowed_images.push([1; 32]);
    t.revoked_tbs.push([2; 32]);
    vec![
        p7,
        TRUST_ROOT.to_vec(),
        TRUST_INTERMEDIATE.to_vec(),
        t.db_lists(),
        t.dbx_lists(),
    ]
}
