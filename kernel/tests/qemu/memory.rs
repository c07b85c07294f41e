//! The memory routines (`memcheck`) and SHA-256.

use crate::*;

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
