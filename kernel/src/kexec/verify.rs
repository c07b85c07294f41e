//! Verified kexec in the running kernel: the trust set gathered at boot, the policy, the
//! check every load makes, and what the next kernel is told.
//!
//! Sources, in the order they are read (a certificate found twice counts once):
//! 1. `/chosen/hobby,kexec-db` and `-dbx`: what the kernel before trusted and revoked, and
//!    `hobby,kexec-verify`, its policy, a floor for this one's;
//! 2. the certificates built into the Image (`scripts/build.sh --trust CERT`);
//! 3. `/chosen/hobby,uefi-db` and `-dbx`: UEFI's `db` and `dbx`, read by our EFI stub;
//! 4. the initramfs's `/etc/kexec/trusted/`: each file a DER or PEM certificate.
//!
//! The policy is `kexec.verify=off|warn|enforce` on the command line, raised to the kernel
//! before's (a chain never loosens on its own), and for one load to `kexec -l --verify`'s.

use crate::kexec::KexecError;
use crate::{arch, files, println, SYSTEM};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use kernel::formats::sha256;
use kernel::trust::{self, Anchor, Policy, TrustSet, Verified};
use spin::Once;

/// The certificates `scripts/build.sh --trust` built in (see `build.rs` for the format).
static BUILT_IN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trusted.bin"));

/// Where trusted certificate files are looked for in the initramfs.
pub const TRUSTED_DIR: &str = "/etc/kexec/trusted/";

/// The trust set and the policy, from boot on.
pub struct Trust {
    /// What decides.
    pub set: TrustSet,
    /// `kexec.verify=`, at least the kernel before's.
    pub policy: Policy,
}

static TRUST: Once<Trust> = Once::new();

/// The trust this kernel runs with ([`init`] ran at boot).
pub fn get() -> &'static Trust {
    TRUST.call_once(|| Trust {
        set: TrustSet::default(),
        policy: Policy::Off,
    })
}

/// Gathers the trust set and the policy, and reports them: a `trust:` line, one line per
/// trusted certificate, and a warning for each source that cannot be used.
pub fn init() {
    let sys = SYSTEM.get().expect("booted");
    let chosen = &sys.platform.trust;
    let compress = arch::sha2::compress().0;
    let mut set = TrustSet::default();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut sources: Vec<(String, &str)> = Vec::new();

    let mut lists = |what: &'static str, db: &[u8], dbx: &[u8], set: &mut TrustSet| {
        if db.is_empty() && dbx.is_empty() {
            return;
        }
        let before = set.anchors.len();
        let n = set.add_db(db).unwrap_or_else(|e| {
            println!("trust: warning: {what}'s trusted list is ignored: {e}");
            0
        });
        let r = set.add_dbx(dbx, compress).unwrap_or_else(|e| {
            println!("trust: warning: {what}'s revoked list is ignored: {e}");
            0
        });
        sources.extend(set.anchors[before..].iter().map(|a| (a.name.clone(), what)));
        counts.push((what, n + r));
    };
    lists("the kernel before", &chosen.db, &chosen.dbx, &mut set);
    lists("UEFI db/dbx", &chosen.uefi_db, &chosen.uefi_dbx, &mut set);

    let mut add_files = |what: &'static str, files: Vec<(String, &[u8])>, set: &mut TrustSet| {
        let mut n = 0;
        for (name, bytes) in files {
            match Anchor::parse_file(bytes) {
                Ok(certs) => {
                    for a in certs {
                        let cn = a.name.clone();
                        if set.add_anchor(a) {
                            sources.push((cn, what));
                            n += 1;
                        }
                    }
                }
                Err(e) => println!("trust: warning: {name} is ignored: {e}"),
            }
        }
        counts.push((what, n));
    };
    add_files("built in", built_in(), &mut set);
    let files = initramfs_files();
    match initramfs_untrusted(chosen) {
        None => add_files("initramfs", files, &mut set),
        Some(why) if !files.is_empty() => println!("trust: {TRUSTED_DIR} is not read: {why}"),
        Some(_) => {}
    }
    for name in set.drop_revoked_anchors(compress) {
        println!("trust: certificate '{name}' is revoked (dbx): not trusted");
        sources.retain(|(n, _)| *n != name);
    }

    let asked = sys.cmdline.get("kexec.verify");
    let mut policy = match asked.map(|v| (v, Policy::parse(v))) {
        None => Policy::Off,
        Some((_, Some(p))) => p,
        Some((v, None)) => {
            println!("trust: warning: kexec.verify={v} is not off, warn or enforce: enforce");
            Policy::Enforce
        }
    };
    match chosen.policy.as_deref().map(|v| (v, Policy::parse(v))) {
        Some((_, Some(before))) if before > policy => {
            println!(
                "trust: kexec.verify={} from the kernel before (this command line asks {})",
                before.name(),
                policy.name()
            );
            policy = before;
        }
        Some((v, None)) => {
            println!("trust: warning: hobby,kexec-verify = '{v}' from the kernel before is unknown: enforce");
            policy = Policy::Enforce;
        }
        _ => {}
    }
    report(&set, policy, &counts, &sources);
    TRUST.call_once(|| Trust { set, policy });
}

/// The `trust:` lines.
fn report(set: &TrustSet, policy: Policy, counts: &[(&str, usize)], sources: &[(String, &str)]) {
    if policy == Policy::Off && set.is_empty() {
        return;
    }
    let from: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
    println!(
        "{} (from: {})",
        summary(set, policy),
        if from.is_empty() {
            "nothing".to_string()
        } else {
            from.join(", ")
        }
    );
    for (name, what) in sources {
        println!("trust: certificate '{name}' ({what})");
    }
}

/// `trust: kexec.verify=<policy> certificates=<N> image-hashes=<N> revoked=<N>`.
fn summary(set: &TrustSet, policy: Policy) -> String {
    format!(
        "trust: kexec.verify={} certificates={} image-hashes={} revoked={}",
        policy.name(),
        set.anchors.len(),
        set.allowed_images.len(),
        set.revoked_count()
    )
}

/// Why the initramfs may not add trusted certificates, if it may not: nothing signs an
/// initramfs, so once something vouched for this kernel (the kernel before verified it, or
/// UEFI Secure Boot started it), certificates come only from what that covered: the Image,
/// the firmware's `db`, the kernel before. Only the first kernel of a chain that nothing
/// checked takes them from its initramfs (it is as trustworthy as its boot medium).
fn initramfs_untrusted(chosen: &kernel::platform::ChosenTrust) -> Option<String> {
    if let Some(p) = chosen.policy.as_deref() {
        if Policy::parse(p) != Some(Policy::Off) {
            return Some(format!(
                "the kernel before verified kexec (kexec.verify={p}), and an initramfs is not signed"
            ));
        }
    }
    chosen.uefi_secure_boot.then(|| {
        "UEFI Secure Boot started this kernel, and an initramfs is not signed: build certificates in (scripts/build.sh --trust) or enroll them in db".to_string()
    })
}

/// The certificate files built into the Image.
fn built_in() -> Vec<(String, &'static [u8])> {
    let mut out = Vec::new();
    let mut rest = BUILT_IN;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some((file, tail)) = tail.split_at_checked(len) else {
            break;
        };
        out.push((format!("built-in certificate {}", out.len()), file));
        rest = tail;
    }
    out
}

/// The files under [`TRUSTED_DIR`] in the initramfs.
fn initramfs_files() -> Vec<(String, &'static [u8])> {
    files::entries()
        .iter()
        .filter(|e| e.is_file() && e.path.starts_with(TRUSTED_DIR))
        .map(|e| (e.path.clone(), e.data))
        .collect()
}

/// Checks the image a load is about to place, under the running policy raised to `asked`
/// (`kexec -l --verify`): reports what was verified, or, under `warn`, why not; under
/// `enforce` an image that does not verify is refused. Returns how many of the image's bytes
/// to load: a verified image without its certificate table (nothing unsigned is loaded).
pub fn check(name: &str, image: &[u8], asked: Policy, itself: bool) -> Result<usize, KexecError> {
    let t = get();
    let policy = t.policy.max(asked);
    if policy == Policy::Off {
        return Ok(image.len());
    }
    if itself {
        // The running kernel's bytes: whatever checked them is this code itself.
        println!(
            "kexec: itself: the running kernel, not checked again (kexec.verify={})",
            policy.name()
        );
        return Ok(image.len());
    }
    match trust::verify_image(image, &t.set, arch::sha2::compress().0) {
        Ok(v) => {
            let digest = sha256::hex(&v.digest);
            match v.signer {
                Some(s) => println!(
                    "kexec: verified {name}: signed by '{}', trusted through '{}' (authenticode sha256 {digest})",
                    s.signer, s.anchor
                ),
                None => println!("kexec: verified {name}: its authenticode sha256 {digest} is trusted"),
            }
            Ok(v.signed_len)
        }
        Err(e) if policy == Policy::Warn => {
            println!("kexec: warning: {name} is not verified (kexec.verify=warn, loading it anyway): {e}");
            Ok(image.len())
        }
        Err(e) => Err(KexecError::Verify(name.to_string(), e)),
    }
}

/// What the next kernel's `/chosen` is told: the policy, the trust set as signature lists
/// (property name and value), and the properties to remove (UEFI's lists, already merged).
pub fn next_chosen() -> Vec<(&'static str, Option<Vec<u8>>)> {
    let t = get();
    let keep = |v: Vec<u8>| (!v.is_empty()).then_some(v);
    let (db, dbx) = (keep(t.set.db_lists()), keep(t.set.dbx_lists()));
    // Nothing to say when nothing is checked or trusted: the properties are only removed.
    let policy = (t.policy != Policy::Off || db.is_some() || dbx.is_some())
        .then(|| [t.policy.name().as_bytes(), b"\0"].concat());
    alloc::vec![
        ("hobby,kexec-verify", policy),
        ("hobby,kexec-db", db),
        ("hobby,kexec-dbx", dbx),
        ("hobby,uefi-db", None),
        ("hobby,uefi-dbx", None),
    ]
}

/// The `trust` shell command: alone, the policy and the trusted certificates; `trust verify
/// FILE...` checks each file as a load would, and times the check against a plain SHA-256
/// of the same bytes (the cost of verifying, beyond reading).
pub fn command(args: &[String]) -> Result<(), String> {
    let t = get();
    match args.get(1).map(String::as_str) {
        None => {
            println!("{}", summary(&t.set, t.policy));
            for a in &t.set.anchors {
                println!("trust: certificate '{}'", a.name);
            }
            Ok(())
        }
        Some("verify") if args.len() > 2 => {
            let compress = arch::sha2::compress().0;
            for p in &args[2..] {
                let f = files::read(p)?;
                let t0 = arch::ticks();
                let result = trust::verify_image(&f, &t.set, compress);
                let t1 = arch::ticks();
                let plain = sha256::Sha256::digest(compress, &f);
                let t2 = arch::ticks();
                let (verify_us, sha_us) = (
                    arch::ticks_to_us(t1 - t0).max(1),
                    arch::ticks_to_us(t2 - t1).max(1),
                );
                let what = match result {
                    Ok(Verified {
                        signer: Some(s), ..
                    }) => {
                        format!(
                            "verified: signed by '{}', trusted through '{}'",
                            s.signer, s.anchor
                        )
                    }
                    Ok(Verified { signer: None, .. }) => "verified: its digest is trusted".into(),
                    Err(e) => format!("not verified: {e}"),
                };
                println!(
                    "trust: {p}: {what} ({} bytes, verify_us={verify_us} sha256_us={sha_us} ratio={}.{:02}, sha256 {})",
                    f.len(),
                    verify_us / sha_us,
                    verify_us * 100 / sha_us % 100,
                    sha256::hex(&plain)
                );
            }
            Ok(())
        }
        _ => Err("usage: trust [verify FILE...]".into()),
    }
}
