//! Verified kexec: Images signed with `scripts/sign.sh` (the snakeoil key Debian's EDK2
//! ships for tests), chains that check every hop, Debian's signed Linux against the Debian
//! Secure Boot CA, and each refusal with its reason.

use crate::*;
use std::sync::OnceLock;

/// The snakeoil key and certificate of Debian's qemu-efi-aarch64 (key password "snakeoil"):
/// the certificate is in `AAVMF_VARS.snakeoil.fd`'s `db`.
pub(crate) const SNAKEOIL_KEY: &str = "/usr/share/qemu-efi-aarch64/PkKek-1-snakeoil.key";
pub(crate) const SNAKEOIL_CERT: &str = "/usr/share/qemu-efi-aarch64/PkKek-1-snakeoil.pem";

/// `image` signed by `scripts/sign.sh` with the snakeoil key, as `out`.
fn sign(image: &Path, out: PathBuf) -> PathBuf {
    let status = Command::new(root().join("scripts/sign.sh"))
        .args([SNAKEOIL_KEY, SNAKEOIL_CERT])
        .arg(image)
        .arg(&out)
        .env("SIGN_KEY_PASS", "snakeoil")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scripts/sign.sh runs");
    assert!(status.success(), "scripts/sign.sh failed");
    out
}

/// The Image under test signed by `scripts/sign.sh` with the snakeoil key.
pub(crate) fn signed_image() -> &'static Path {
    static SIGNED: OnceLock<PathBuf> = OnceLock::new();
    SIGNED.get_or_init(|| sign(image(), scratch("kernel.signed.Image")))
}

/// This kernel built with the Debian Secure Boot CA in it (`scripts/build.sh --trust`, in a
/// target directory of its own so as not to replace the Image under test), and that Image
/// signed with the snakeoil key.
pub(crate) fn debian_trusting_images() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(root().join("scripts/build.sh"))
            .arg("--trust")
            .arg(fixture("debian-uefi-ca.der"))
            .env("CARGO_TARGET_DIR", root().join("target/trusted-build"))
            .output()
            .expect("scripts/build.sh runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let built = PathBuf::from(stdout.lines().last().unwrap());
        let signed = sign(&built, scratch("kernel.debian-trusting.signed.Image"));
        (built, signed)
    })
}

/// The Authenticode SHA-256 of a PE file, computed on the host by the kernel's library.
pub(crate) fn authenticode(pe: &[u8]) -> String {
    fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        sha2::block_api::compress256(state, blocks);
    }
    let digest = kernel::trust::pe::Pe::parse(pe)
        .expect("a PE file")
        .authenticode_sha256(compress);
    kernel::formats::sha256::hex(&digest)
}

/// The `trust: kexec.verify=` line's fields.
fn trust_line(run: &Run) -> Vec<HashMap<String, String>> {
    run.lines("trust: kexec.verify=").map(fields_of).collect()
}

/// A chain of signed self-kexecs under `kexec.verify=enforce` (the trust set from the
/// initramfs at the first hop, then handed on), ending in Debian's signed Linux, which is
/// verified against the Debian Secure Boot CA from shim-unsigned.
#[test]
fn signed_chain_ends_in_debians_signed_linux() {
    let signed = std::fs::read(signed_image()).unwrap();
    let linux = linux_image();
    let linux_rd = linux_initramfs("echo LINUX-VERIFIED-BOOT", false, &[]);
    let debian_ca = std::fs::read(fixture("debian-uefi-ca.der")).unwrap();
    let snakeoil = std::fs::read(SNAKEOIL_CERT).unwrap();
    // /init.rc runs once the chain's last hop has passed.
    let rd = initramfs(
        "verified-chain.cpio",
        Some("kexec -l /linux/Image --initrd=/linux.cpio --append=\"console=ttyAMA0 panic=-1\"\nkexec -e\n"),
        &[
            ("signed.Image", &signed),
            ("linux/Image", &linux),
            ("linux.cpio", &linux_rd),
            ("etc/kexec/trusted/snakeoil.pem", &snakeoil),
            ("etc/kexec/trusted/debian-uefi-ca.der", &debian_ca),
        ],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        append: Some(
            "kexec.verify=enforce kexec.chain=2 kexec.chain.image=/signed.Image kexec.payload=1M"
                .into(),
        ),
        ..Default::default()
    });
    let out = &run.out;
    assert!(out.contains("chain: PASS"), "{out}");
    // Three generations: the first trusts the initramfs's two files, the others what the
    // kernel before handed on.
    let trust = trust_line(&run);
    assert_eq!(trust.len(), 3, "{out}");
    for (hop, t) in trust.iter().enumerate() {
        assert_eq!(t["kexec.verify"], "enforce");
        assert_eq!(t["certificates"], "2", "hop {hop}");
    }
    assert!(run.out.contains("(from: initramfs 2)"), "{out}");
    assert_eq!(
        run.lines("trust: certificate 'SnakeOil' (the kernel before)")
            .count(),
        2,
        "{out}"
    );
    // Each hop verified the signed Image; its digest is the one the host computes.
    let signed_digest = authenticode(&signed);
    let verified: Vec<&str> = run.lines("kexec: verified /signed.Image: ").collect();
    assert_eq!(verified.len(), 2, "{out}");
    for v in verified {
        assert_eq!(
            v,
            format!("kexec: verified /signed.Image: signed by 'SnakeOil', trusted through 'SnakeOil' (authenticode sha256 {signed_digest})")
        );
    }
    let linux_line = format!(
        "kexec: verified /linux/Image: signed by 'Debian Secure Boot Signer 2022 - linux', trusted through 'Debian Secure Boot CA' (authenticode sha256 {})",
        authenticode(&linux)
    );
    assert!(run.line(&linux_line).is_some(), "{out}");
    assert!(out.contains("LINUX-VERIFIED-BOOT"), "{out}");
    assert_eq!(run.status, Some(0), "Linux powered off: {out}");
}

/// The refusal test's initramfs: images that do not verify, one that does, and the next
/// kernel's own initramfs; returns it and the two images whose digests the test checks.
fn refusals_initramfs() -> (PathBuf, Vec<u8>, Vec<u8>) {
    let signed = std::fs::read(signed_image()).unwrap();
    let unsigned = std::fs::read(image()).unwrap();
    let mut changed = signed.clone();
    changed[0x2000] ^= 1;
    let linux = linux_image();
    let snakeoil = std::fs::read(SNAKEOIL_CERT).unwrap();
    let debian_ca = std::fs::read(fixture("debian-uefi-ca.der")).unwrap();
    // The next kernel's initramfs (unsigned, like any) tries to add the Debian CA: the
    // kernel before verified this one, so it is not read, and Debian's Linux stays refused.
    let second = cpio::build(&[
        (
            "init.rc",
            S_IFREG | 0o644,
            b"kexec -l /unsigned.Image\nkexec -l /linux/Image\npoweroff\n",
        ),
        ("unsigned.Image", S_IFREG | 0o644, &unsigned),
        ("linux/Image", S_IFREG | 0o644, &linux),
        (
            "etc/kexec/trusted/debian-uefi-ca.der",
            S_IFREG | 0o644,
            &debian_ca,
        ),
    ]);
    let script = "kexec -l /unsigned.Image\n\
                  kexec -l /changed.Image\n\
                  kexec -l /linux/Image\n\
                  kexec -l /Image.gz\n\
                  kexec -l --self\n\
                  kexec -l /signed.Image --initrd=/second.cpio --append=\"kexec.verify=off\"\n\
                  kexec -e\n";
    let rd = initramfs(
        "verified-refusals.cpio",
        Some(script),
        &[
            ("unsigned.Image", &unsigned),
            ("changed.Image", &changed),
            ("signed.Image", &signed),
            ("linux/Image", &linux),
            ("Image.gz", &gzip(&unsigned)),
            ("etc/kexec/trusted/snakeoil.pem", &snakeoil),
            ("second.cpio", &second),
        ],
    );
    (rd, signed, changed)
}

/// Under `kexec.verify=enforce`, each image that does not verify is refused with its reason;
/// `--self` is the running kernel; a next kernel asked for `kexec.verify=off` keeps its
/// predecessor's `enforce`, and its initramfs adds no trust.
#[test]
fn enforce_refuses_with_a_reason() {
    let (rd, signed, changed) = refusals_initramfs();
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        append: Some("kexec.verify=enforce".into()),
        ..Default::default()
    });
    let out = &run.out;
    let refused = |file: &str, why: &str| {
        let line = format!("{file} is refused (kexec.verify=enforce): {why}");
        assert!(out.contains(&line), "no '{line}' in:\n{out}");
    };
    refused(
        "/unsigned.Image",
        "not signed (the PE security directory is empty)",
    );
    refused(
        "/changed.Image",
        &format!(
            "the image's Authenticode digest is {}, the signature covers {}: the image was changed",
            authenticode(&changed),
            authenticode(&signed)
        ),
    );
    refused(
        "/linux/Image",
        "signed by 'Debian Secure Boot Signer 2022 - linux' (issued by 'Debian Secure Boot CA'), which no trusted certificate is or issued",
    );
    // An Image.gz is verified as inflated: the PE inside it.
    refused(
        "/Image.gz",
        "not signed (the PE security directory is empty)",
    );
    assert!(
        out.contains("kexec: itself: the running kernel, not checked again (kexec.verify=enforce)"),
        "{out}"
    );
    // The next kernel: asked for off, kept at enforce, and refuses again.
    assert!(
        out.contains(
            "trust: kexec.verify=enforce from the kernel before (this command line asks off)"
        ),
        "{out}"
    );
    assert_eq!(
        out.matches("/unsigned.Image is refused (kexec.verify=enforce)")
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("trust: /etc/kexec/trusted/ is not read: the kernel before verified kexec (kexec.verify=enforce), and an initramfs is not signed"),
        "{out}"
    );
    assert_eq!(
        out.matches("/linux/Image is refused (kexec.verify=enforce): signed by 'Debian Secure Boot Signer 2022 - linux'").count(),
        2,
        "{out}"
    );
    assert_eq!(run.status, Some(0), "{out}");
}

/// With `kexec.verify` off, `kexec -l --verify` checks one load, `--verify=warn` reports and
/// goes on; a certificate file that cannot be read is named and skipped.
#[test]
fn verify_for_one_load_and_warn() {
    let signed = std::fs::read(signed_image()).unwrap();
    let unsigned = std::fs::read(image()).unwrap();
    let snakeoil = std::fs::read(SNAKEOIL_CERT).unwrap();
    let script = "kexec -l /unsigned.Image\n\
                  kexec -l --verify /unsigned.Image\n\
                  kexec -l --verify=warn /unsigned.Image\n\
                  kexec -l --verify /signed.Image\n\
                  kexec -l --verify=maybe /signed.Image\n\
                  poweroff\n";
    let rd = initramfs(
        "verified-once.cpio",
        Some(script),
        &[
            ("unsigned.Image", &unsigned),
            ("signed.Image", &signed),
            ("etc/kexec/trusted/snakeoil.pem", &snakeoil),
            (
                "etc/kexec/trusted/broken.pem",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            ),
        ],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        ..Default::default()
    });
    let out = &run.out;
    let t = &trust_line(&run)[0];
    assert_eq!(
        (t["kexec.verify"].as_str(), t["certificates"].as_str()),
        ("off", "1"),
        "{out}"
    );
    assert!(
        out.contains("trust: warning: /etc/kexec/trusted/broken.pem is ignored: PEM block 0 is unterminated or not base64"),
        "{out}"
    );
    assert_eq!(out.matches("kexec: entry=").count(), 3, "{out}");
    assert!(
        out.contains("/unsigned.Image is refused (kexec.verify=enforce): not signed"),
        "{out}"
    );
    assert!(
        out.contains("kexec: warning: /unsigned.Image is not verified (kexec.verify=warn, loading it anyway): not signed"),
        "{out}"
    );
    assert!(
        out.contains("kexec: verified /signed.Image: signed by 'SnakeOil'"),
        "{out}"
    );
    assert!(
        out.contains("--verify=maybe: expected off, warn or enforce"),
        "{out}"
    );
    assert_eq!(run.status, Some(0), "{out}");
}

/// UEFI Secure Boot with Debian's EDK2 and its snakeoil keys: a writable copy of
/// `AAVMF_VARS.snakeoil.fd` as the variable store, its boot-manager wait off.
fn secure_boot_args(name: &str) -> Vec<String> {
    let vars = scratch(name);
    std::fs::copy("/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd", &vars).unwrap();
    vec![
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        "-boot".into(),
        "menu=on,splash-time=0".into(),
    ]
}

/// Under Secure Boot (Debian's EDK2 with its snakeoil keys) the firmware refuses the
/// unsigned Image.
#[test]
fn secure_boot_refuses_the_unsigned_image() {
    let refused = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        qemu_args: secure_boot_args("sb-unsigned-vars.fd"),
        until: Some("No bootable option or device was found"),
        ..Default::default()
    });
    assert!(
        refused
            .out
            .contains("No bootable option or device was found")
            && !refused.out.contains("efistub:"),
        "the unsigned Image must not start: {}",
        refused.out
    );
}

/// Under Secure Boot the signed Image starts; its EFI stub hands UEFI's `db` and `dbx` on,
/// and under `kexec.verify=enforce` a chain of signed self-kexecs trusts the firmware's key
/// (and the Debian CA built into the Image) and ends in Debian's signed Linux.
#[test]
fn secure_boot_db_decides_the_chain() {
    // The Debian CA is built into the signed Image (what the firmware checked); the copy in
    // the initramfs is not read under Secure Boot.
    let (_, signed_path) = debian_trusting_images();
    let signed = std::fs::read(signed_path).unwrap();
    let linux = linux_image();
    let linux_rd = linux_initramfs("echo LINUX-AFTER-SECURE-BOOT", false, &[]);
    let debian_ca = std::fs::read(fixture("debian-uefi-ca.der")).unwrap();
    let rd = initramfs(
        "secure-boot-chain.cpio",
        Some("kexec -l /linux/Image --initrd=/linux.cpio --append=\"console=ttyAMA0 panic=-1\"\nkexec -e\n"),
        &[
            ("signed.Image", &signed),
            ("linux/Image", &linux),
            ("linux.cpio", &linux_rd),
            ("etc/kexec/trusted/debian-uefi-ca.der", &debian_ca),
        ],
    );
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        image: Some(signed_path.clone()),
        initrd: Some(rd),
        append: Some(
            "kexec.verify=enforce kexec.chain=2 kexec.chain.image=/signed.Image kexec.payload=1M"
                .into(),
        ),
        qemu_args: secure_boot_args("sb-signed-vars.fd"),
        ..Default::default()
    });
    let out = &run.out;
    // db holds the snakeoil certificate, dbx one placeholder hash (of nothing).
    assert!(
        out.contains("efistub: UEFI db: 0x00000000000003a7 bytes, for verified kexec"),
        "{out}"
    );
    assert!(
        out.contains("efistub: UEFI dbx: 0x000000000000004c bytes, for verified kexec"),
        "{out}"
    );
    let trust = trust_line(&run);
    assert_eq!(trust.len(), 3, "{out}");
    assert_eq!(
        (
            trust[0]["certificates"].as_str(),
            trust[0]["revoked"].as_str()
        ),
        ("2", "1"),
        "{out}"
    );
    assert!(
        out.contains("trust: certificate 'SnakeOil' (UEFI db/dbx)"),
        "{out}"
    );
    assert!(
        out.contains("trust: certificate 'Debian Secure Boot CA' (built in)"),
        "{out}"
    );
    assert!(
        out.contains("trust: /etc/kexec/trusted/ is not read: UEFI Secure Boot started this kernel, and an initramfs is not signed"),
        "{out}"
    );
    assert!(out.contains("chain: PASS"), "{out}");
    assert_eq!(
        run.lines(
            "kexec: verified /signed.Image: signed by 'SnakeOil', trusted through 'SnakeOil'"
        )
        .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("kexec: verified /linux/Image: signed by 'Debian Secure Boot Signer 2022 - linux', trusted through 'Debian Secure Boot CA'"),
        "{out}"
    );
    assert!(out.contains("LINUX-AFTER-SECURE-BOOT"), "{out}");
    assert_eq!(run.status, Some(0), "Linux powered off: {out}");
}

/// `scripts/build.sh --trust CERT` builds a certificate into the Image: with nothing in the
/// initramfs, the Image trusts what it was built with.
#[test]
fn built_in_certificate() {
    let (built, _) = debian_trusting_images();
    let rd = initramfs(
        "built-in-trust.cpio",
        Some("kexec -l --verify /linux/Image\npoweroff\n"),
        &[("linux/Image", &linux_image())],
    );
    let run = boot(Boot {
        el: 2,
        image: Some(built.clone()),
        initrd: Some(rd),
        ..Default::default()
    });
    let out = &run.out;
    assert!(
        out.contains(
            "trust: kexec.verify=off certificates=1 image-hashes=0 revoked=0 (from: built in 1)"
        ),
        "{out}"
    );
    assert!(
        out.contains("trust: certificate 'Debian Secure Boot CA' (built in)"),
        "{out}"
    );
    assert!(
        out.contains("kexec: verified /linux/Image: signed by 'Debian Secure Boot Signer 2022 - linux', trusted through 'Debian Secure Boot CA'"),
        "{out}"
    );
    assert_eq!(run.status, Some(0), "{out}");
}

/// `boot` loads through the same check: under `kexec.verify=enforce` an extlinux entry with
/// an unsigned kernel is refused with the reason, and the one with Debian's signed kernel
/// boots, verified against the Debian CA from the initramfs.
#[test]
fn boot_entries_are_verified() {
    let linux = linux_image();
    let unsigned = std::fs::read(image()).unwrap();
    let rd = linux_initramfs("echo LINUX-FROM-A-VERIFIED-ENTRY", false, &[]);
    let disk = disk_image(
        "verified-entries",
        true,
        &[Part::Ext4 {
            mib: 48,
            files: &[
                ("/boot/vmlinuz-6", &linux),
                ("/boot/hobby.Image", &unsigned),
                ("/boot/initrd.img-6", &rd),
                (
                    "/boot/extlinux/extlinux.conf",
                    b"default hobby\n\nlabel hobby\n\tlinux /boot/hobby.Image\n\nlabel debian\n\tlinux /boot/vmlinuz-6\n\tinitrd /boot/initrd.img-6\n\tappend console=ttyAMA0 panic=-1\n",
                ),
            ],
        }],
    );
    let debian_ca = std::fs::read(fixture("debian-uefi-ca.der")).unwrap();
    let init = initramfs(
        "verified-entries.cpio",
        Some("boot hobby\nboot debian\n"),
        &[("etc/kexec/trusted/debian-uefi-ca.der", &debian_ca)],
    );
    let run = boot(Boot {
        el: 2,
        disks: vec![disk],
        initrd: Some(init),
        append: Some("kexec.verify=enforce".into()),
        ..Default::default()
    });
    let out = &run.out;
    assert!(
        out.contains("virtio0p1:/boot/hobby.Image is refused (kexec.verify=enforce): not signed (the PE security directory is empty)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "kexec: verified virtio0p1:/boot/vmlinuz-6: signed by 'Debian Secure Boot Signer 2022 - linux', trusted through 'Debian Secure Boot CA' (authenticode sha256 {})",
            authenticode(&linux)
        )),
        "{out}"
    );
    assert!(out.contains("LINUX-FROM-A-VERIFIED-ENTRY"), "{out}");
    assert_eq!(run.status, Some(0), "Linux powered off: {out}");
}
