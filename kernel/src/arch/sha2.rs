//! SHA-256 blocks with the Armv8 cryptographic extension (`SHA256H`, `SHA256H2`,
//! `SHA256SU0`, `SHA256SU1`, in `sha256.S`), chosen at run time: the Raspberry Pi 4's Cortex-A72 is built
//! without the extension, QEMU's `cortex-a72` and `max` and Juno's cores have it.

use aarch64_cpu::registers::{Readable, ID_AA64ISAR0_EL1};
use kernel::formats::sha256::{Compress, Sha256, K};

/// `ID_AA64ISAR0_EL1.SHA2`, bits [15:12]: 0b0001 = SHA-256 instructions, 0b0010 = also
/// SHA-512.
const ISAR0_SHA2_SHIFT: u64 = 12;
const ISAR0_SHA2_MASK: u64 = 0xf;

/// Whether this CPU implements the SHA-256 instructions.
pub fn has_sha256() -> bool {
    (ID_AA64ISAR0_EL1.get() >> ISAR0_SHA2_SHIFT) & ISAR0_SHA2_MASK >= 1
}

/// The block function for this CPU, and its name for the console.
pub fn compress() -> (Compress, &'static str) {
    if has_sha256() {
        (compress_ce, "sha2-instructions")
    } else {
        portable()
    }
}

/// The portable block function (RustCrypto's `sha2`), whatever the CPU has, and its name.
pub fn portable() -> (Compress, &'static str) {
    (sha2::block_api::compress256, "portable")
}

/// SHA-256 of `data` with the best block function this CPU has.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(compress().0, data)
}

fn compress_ce(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    assert!(
        has_sha256(),
        "SHA-256 instructions used on a CPU without them"
    );
    // SAFETY: the CPU implements FEAT_SHA256 (checked above); the function reads
    // `blocks.len()` whole blocks and the 64 constants, and writes only `state`.
    unsafe { sha256_blocks_ce(state, blocks.as_ptr(), blocks.len(), &K) }
}

unsafe extern "C" {
    /// See `sha256.S` for the register contract.
    fn sha256_blocks_ce(state: &mut [u32; 8], blocks: *const [u8; 64], n: usize, k: &[u32; 64]);
}
