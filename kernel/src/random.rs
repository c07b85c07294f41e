//! The entropy pool ([`kernel::entropy::Pool`]) as this kernel feeds it: at boot what the
//! boot loader gave (`/chosen/rng-seed`, `/chosen/kaslr-seed`, and what our EFI stub got
//! from the firmware's EFI_RNG_PROTOCOL), `RNDR` where the CPU has
//! it, the counter (without credit); at each kexec load a hardware RNG if the board has one
//! this kernel drives (virtio-rng), asked then rather than at boot because finding it walks
//! the whole DTB. Every next kernel's `kaslr-seed` and `rng-seed` come out of it, new each
//! time, so that a chain of kernels keeps passing fresh entropy on.

use crate::{arch, println, SYSTEM};
use alloc::string::String;
use kernel::entropy::{Pool, Unseeded};
use spin::Mutex;

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

/// Bytes taken from `RNDR` at boot.
const RNDR_BYTES: usize = 32;
/// Bytes asked of a hardware RNG at each kexec load.
const HW_BYTES: usize = 32;

/// Feeds the pool what the boot gave, and says where it stands.
pub fn init() {
    let sys = SYSTEM.get().expect("booted");
    let mut pool = POOL.lock();
    pool.add("counter", &arch::ticks().to_le_bytes(), false);
    pool.add("rng-seed", &sys.platform.rng_seed, true);
    pool.add("kaslr-seed", &sys.platform.kaslr_seed, true);
    pool.add("efi-rng", &sys.platform.efi_rng_seed, true);
    let mut rndr = [0u8; RNDR_BYTES];
    if rndr.chunks_mut(8).all(|c| {
        arch::rndr()
            .map(|v| c.copy_from_slice(&v.to_le_bytes()))
            .is_some()
    }) {
        pool.add("RNDR", &rndr, true);
    }
    println!("random: {}", state(&pool));
}

/// `seeded from A (N bytes), B (M bytes)` or what is missing.
fn state(pool: &Pool) -> String {
    let from: alloc::vec::Vec<String> = pool
        .sources()
        .iter()
        .map(|(s, n)| alloc::format!("{s} ({n} bytes)"))
        .collect();
    if pool.seeded() {
        alloc::format!("seeded from {}", from.join(", "))
    } else if from.is_empty() {
        String::from(
            "no entropy yet (no rng-seed or kaslr-seed, no RNDR); hardware RNGs are asked at kexec",
        )
    } else {
        alloc::format!(
            "not seeded yet: only {}; hardware RNGs are asked at kexec",
            from.join(", ")
        )
    }
}

/// Fresh `kaslr-seed` and `rng-seed` for the next kernel, after asking the board's hardware
/// RNG for more.
pub fn next_kernel_seeds() -> Result<([u8; 8], [u8; 64]), Unseeded> {
    let hw = crate::drivers::virtio_rng::read::<HW_BYTES>();
    let mut pool = POOL.lock();
    pool.add("counter", &arch::ticks().to_le_bytes(), false);
    match hw {
        Ok(Some(bytes)) => pool.add("virtio-rng", &bytes, true),
        Ok(None) => {}
        Err(e) => println!("random: {e}"),
    }
    let mut kaslr = [0u8; 8];
    let mut rng = [0u8; 64];
    pool.fill(&mut kaslr)?;
    pool.fill(&mut rng)?;
    Ok((kaslr, rng))
}
