//! The kernel's random numbers, for the seeds it hands the next kernel (`kaslr-seed`,
//! `rng-seed`): a ChaCha20 generator (RustCrypto's `chacha20`, its `ChaCha20Rng`) whose
//! 256-bit key is SHA-256 over every input, and which rekeys itself from its own output
//! at every use ("fast key erasure", as Linux's CRNG does): no two requests get the same
//! bytes, and memory read later does not give earlier outputs back.
//!
//! Inputs are credited or not: what a boot loader or a hardware RNG gives counts towards
//! being seeded (32 bytes, 256 bits); the counter's value when something happens is mixed
//! in without credit (under `-icount` it is not random at all). Until 32 bytes are credited
//! [`Pool::fill`] refuses: the next kernel then gets no seeds, as before, rather than
//! predictable ones.

use chacha20::rand_core::{Rng, SeedableRng};
use chacha20::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// Credited bytes after which the pool gives out bytes.
pub const SEEDED: usize = 32;
/// The most sources [`Pool::sources`] keeps by name.
const MAX_SOURCES: usize = 8;
/// Domain separation for the key derivation.
const LABEL: &[u8] = b"hobby-kernel entropy v1";

/// Why [`Pool::fill`] gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unseeded {
    /// Bytes credited so far.
    pub credited: usize,
}

impl core::fmt::Display for Unseeded {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} of {SEEDED} bytes of entropy (no rng-seed or kaslr-seed from the boot loader, \
             no RNDR, no hardware RNG)",
            self.credited
        )
    }
}

/// The entropy pool and its generator.
pub struct Pool {
    key: [u8; 32],
    credited: usize,
    sources: [(&'static str, usize); MAX_SOURCES],
    n_sources: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

impl Pool {
    /// An empty pool.
    pub const fn new() -> Self {
        Pool {
            key: [0; 32],
            credited: 0,
            sources: [("", 0); MAX_SOURCES],
            n_sources: 0,
        }
    }

    /// Mixes `bytes` from `source` into the key; with `credit`, they count towards
    /// [`SEEDED`] (at most 32 bytes from one input).
    pub fn add(&mut self, source: &'static str, bytes: &[u8], credit: bool) {
        if bytes.is_empty() {
            return;
        }
        let mut h = Sha256::new();
        h.update(LABEL);
        h.update(self.key);
        h.update((source.len() as u64).to_le_bytes());
        h.update(source.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
        self.key = h.finalize().into();
        if !credit {
            return;
        }
        let n = bytes.len().min(32);
        self.credited += n;
        match self.sources[..self.n_sources]
            .iter_mut()
            .find(|s| s.0 == source)
        {
            Some(s) => s.1 += bytes.len(),
            None if self.n_sources < MAX_SOURCES => {
                self.sources[self.n_sources] = (source, bytes.len());
                self.n_sources += 1;
            }
            None => {}
        }
    }

    /// Whether it has had [`SEEDED`] credited bytes.
    pub fn seeded(&self) -> bool {
        self.credited >= SEEDED
    }

    /// The credited sources and how many bytes each gave.
    pub fn sources(&self) -> &[(&'static str, usize)] {
        &self.sources[..self.n_sources]
    }

    /// Fills `out` with fresh bytes, if seeded; the key is replaced by the generator's
    /// first 32 bytes first.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), Unseeded> {
        if !self.seeded() {
            return Err(Unseeded {
                credited: self.credited,
            });
        }
        let mut rng = ChaCha20Rng::from_seed(self.key);
        rng.fill_bytes(&mut self.key);
        rng.fill_bytes(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseeded_pools_refuse_and_seeded_ones_never_repeat() {
        let mut p = Pool::new();
        let mut a = [0u8; 64];
        p.add("counter", &42u64.to_le_bytes(), false);
        assert_eq!(p.fill(&mut a), Err(Unseeded { credited: 0 }));
        p.add("kaslr-seed", &[7; 8], true);
        assert_eq!(p.fill(&mut a), Err(Unseeded { credited: 8 }));
        p.add("rng-seed", &[9; 64], true);
        assert!(p.seeded());
        assert_eq!(p.sources(), [("kaslr-seed", 8), ("rng-seed", 64)]);
        let mut b = [0u8; 64];
        p.fill(&mut a).unwrap();
        p.fill(&mut b).unwrap();
        assert_ne!(a, b, "each fill is new");
        assert_ne!(a, [0; 64]);
        // The same inputs give the same stream (it is a generator), other inputs another.
        let mut q = Pool::new();
        q.add("counter", &42u64.to_le_bytes(), false);
        q.add("kaslr-seed", &[7; 8], true);
        q.add("rng-seed", &[9; 64], true);
        let mut c = [0u8; 64];
        q.fill(&mut c).unwrap();
        assert_eq!(a, c);
        let mut r = Pool::new();
        r.add("kaslr-seed", &[7; 8], true);
        r.add("rng-seed", &[9; 64], true);
        r.fill(&mut c).unwrap();
        assert_ne!(a, c, "the uncredited counter still counts");
        // The output is not the input handed on.
        assert!(!a.windows(8).any(|w| w == [9; 8]));
    }
}
