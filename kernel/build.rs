//! Links the kernel binary with the boot crate's linker script (bare-metal target only), and
//! builds in the certificates `scripts/build.sh --trust CERT` names (`HOBBY_TRUST`, paths
//! separated by `:`), for verified kexec: `$OUT_DIR/trusted.bin` holds each file as a
//! little-endian `u32` length and its bytes (empty: none). The kernel parses them at boot.
use std::io::Write;

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let script = format!("{dir}/../boot/kernel.ld");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rerun-if-changed={script}");
    }
    println!("cargo:rerun-if-changed=src/arch/vectors.S");

    println!("cargo:rerun-if-env-changed=HOBBY_TRUST");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("trusted.bin");
    let mut blob = Vec::new();
    for path in std::env::var("HOBBY_TRUST").unwrap_or_default().split(':') {
        if path.is_empty() {
            continue;
        }
        println!("cargo:rerun-if-changed={path}");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("HOBBY_TRUST: {path}: {e}"));
        let len = u32::try_from(bytes.len()).expect("a certificate file under 4 GiB");
        blob.extend_from_slice(&len.to_le_bytes());
        blob.extend_from_slice(&bytes);
    }
    std::fs::File::create(&out)
        .and_then(|mut f| f.write_all(&blob))
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
