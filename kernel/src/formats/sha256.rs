//! SHA-256 (FIPS 180-4) around a pluggable compression function.
//!
//! The padding and buffering live here, as plain Rust tested on the host; the block
//! function is chosen by the caller. The kernel passes the CPU's SHA-2 instructions when
//! `ID_AA64ISAR0_EL1` says it has them (QEMU's `max` and `cortex-a72`, Juno's A57/A53), and
//! the `sha2` crate's portable function otherwise (the Raspberry Pi 4's A72 has no
//! cryptographic extension). The `sha2` crate cannot choose by itself on bare metal: its
//! run-time detection exists only under Linux and macOS.

/// A SHA-256 block function: folds whole 64-byte blocks into the state.
pub type Compress = fn(&mut [u32; 8], &[[u8; 64]]);

/// The initial hash value (FIPS 180-4, 5.3.3).
pub const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The round constants (FIPS 180-4, 4.2.2), for block functions that need them.
#[rustfmt::skip]
pub const K: [u32; 64] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4,
    0xab1c_5ed5, 0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe,
    0x9bdc_06a7, 0xc19b_f174, 0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f,
    0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da, 0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7,
    0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967, 0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc,
    0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85, 0xa2bf_e8a1, 0xa81a_664b,
    0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070, 0x19a4_c116,
    0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7,
    0xc671_78f2,
];

/// A running SHA-256.
#[derive(Clone)]
pub struct Sha256 {
    compress: Compress,
    state: [u32; 8],
    buf: [u8; 64],
    buffered: usize,
    len: u64,
}

impl Sha256 {
    /// A new hash that folds blocks with `compress`.
    pub fn new(compress: Compress) -> Self {
        Self {
            compress,
            state: H0,
            buf: [0; 64],
            buffered: 0,
            len: 0,
        }
    }

    /// Adds `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let n = data.len().min(64 - self.buffered);
            self.buf[self.buffered..self.buffered + n].copy_from_slice(&data[..n]);
            self.buffered += n;
            data = &data[n..];
            if self.buffered < 64 {
                return;
            }
            (self.compress)(&mut self.state, core::slice::from_ref(&self.buf));
            self.buffered = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        if !blocks.is_empty() {
            (self.compress)(&mut self.state, blocks);
        }
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// Pads and returns the digest.
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; 72];
        pad[0] = 0x80;
        // The 0x80 byte, zeros up to 56 mod 64, then the bit length.
        let zeros = (119 - self.buffered) % 64;
        pad[1 + zeros..9 + zeros].copy_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad[..9 + zeros]);
        debug_assert_eq!(self.buffered, 0);
        self.len = len;
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// The digest of `data`.
    pub fn digest(compress: Compress, data: &[u8]) -> [u8; 32] {
        let mut h = Self::new(compress);
        h.update(data);
        h.finish()
    }
}

/// A digest from its 64 hex digits (either case), as a user types one.
pub fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// A digest as 64 lower-case hex digits.
pub fn hex(digest: &[u8; 32]) -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn hex_both_ways() {
        let d: [u8; 32] = core::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(parse_hex(&hex(&d)), Some(d));
        assert_eq!(parse_hex(&hex(&d).to_uppercase()), Some(d));
        assert_eq!(parse_hex(&hex(&d)[1..]), None);
        assert_eq!(parse_hex(&alloc::format!("{}g", &hex(&d)[1..])), None);
        assert_eq!(parse_hex(""), None);
    }

    fn soft(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        sha2::block_api::compress256(state, blocks);
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            hex(&Sha256::digest(soft, b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&Sha256::digest(soft, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_length_and_split_matches_sha2() {
        let data: alloc::vec::Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..data.len() {
            let want: [u8; 32] = sha2::Sha256::digest(&data[..n]).into();
            assert_eq!(Sha256::digest(soft, &data[..n]), want, "length {n}");
            for split in [1, 63, 64, 65, n / 2] {
                let split = split.min(n);
                let mut h = Sha256::new(soft);
                h.update(&data[..split]);
                h.update(&data[split..n]);
                assert_eq!(h.finish(), want, "length {n} split {split}");
            }
        }
    }
}
