//! The kexec-chain self-test (`kexec.chain=N`, `kexec.payload=SIZE`, `kexec.mmu=on|off|both`,
//! `kexec.copy=auto|all`, `kexec.chain.image=FILE`):
//! each generation reports itself on a `chain:` line, checks what the previous one handed over
//! (`kernel::formats::chain`), and kexecs a fresh copy of itself at another address.

use crate::kexec::MIB;
use crate::kexec::{execute, load, pristine_image, ImageSource, KexecError, LoadRequest};
use crate::memory::{self, FRAMES};
use crate::{arch, println, SYSTEM};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kernel::formats::chain::{self, Header, HopRecord};
use kexec::place;
use kexec::place::IMAGE_ALIGN;
use mm::memmap::Region;
use mm::PAGE_SIZE;

/// The kexec-chain self-test (`kexec.chain=N`): reports this generation, checks what the
/// previous one handed over, and unless this is the last hop, kexecs the next.
pub fn chain_step(ready_ticks: u64, cpus: usize, smp_up_us: u64) {
    let sys = SYSTEM.get().expect("booted");
    let settings = match Settings::from_cmdline(&sys.cmdline) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => return println!("chain: FAIL {e}"),
    };
    let Settings {
        total,
        payload_len,
        mmu,
        copy_all,
    } = settings;
    let received = match Received::read() {
        Ok(r) => r,
        Err(e) => return println!("chain: FAIL {e}"),
    };
    let free = FRAMES.free_frames();
    report(&received, total, ready_ticks, cpus, free, smp_up_us);
    if let Some(f) = received.check(cpus, free) {
        return println!("chain: FAIL {f}");
    }
    let hop = received.hop();
    if hop == 0 {
        memcpy_benchmark();
    }
    let mut history = received.history;
    history.push(HopRecord {
        hop,
        ready_ticks,
        free,
    });
    if hop >= total {
        // The whole chain, as each generation recorded itself and handed it on.
        for r in &history {
            println!(
                "chain: history hop={} ready_us={} free={}",
                r.hop,
                arch::ticks_to_us(r.ready_ticks),
                r.free
            );
        }
        return println!("chain: PASS");
    }
    let mmu_off = mmu == Mmu::Off || (mmu == Mmu::Both && hop % 2 == 1);
    let how = How { mmu_off, copy_all };
    let prev = received.header.map(|(h, _)| h);
    if let Err(e) = chain_next(hop, total, payload_len, how, cpus, prev, &history) {
        println!("chain: FAIL hop {} load: {e}", hop + 1);
    }
}

/// How the next hop relocates (`kexec.mmu=`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mmu {
    /// MMU on (the default).
    On,
    /// MMU off.
    Off,
    /// Alternating, to compare the two in one run.
    Both,
}

/// The chain's settings from the command line.
struct Settings {
    /// `kexec.chain=N`: hops in all.
    total: u64,
    /// `kexec.payload=SIZE` (16 MiB by default).
    payload_len: u64,
    /// `kexec.mmu=on|off|both`.
    mmu: Mmu,
    /// `kexec.copy=all` (every page copied at kexec -e, as Linux does) rather than `auto`
    /// (zero copy where the destination is free).
    copy_all: bool,
}

impl Settings {
    /// `None` without `kexec.chain=`; a message for a value that cannot be used.
    fn from_cmdline(c: &kernel::formats::cmdline::Cmdline) -> Result<Option<Self>, String> {
        let Some(n) = c.get("kexec.chain") else {
            return Ok(None);
        };
        let total = n
            .parse::<u64>()
            .map_err(|_| format!("kexec.chain={n} is not a number"))?;
        let payload_len = match c.get_size("kexec.payload") {
            None => 16 * MIB,
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(format!("kexec.payload: {e}")),
        };
        let mmu = match c.get("kexec.mmu").unwrap_or("on") {
            "on" => Mmu::On,
            "off" => Mmu::Off,
            "both" => Mmu::Both,
            other => return Err(format!("kexec.mmu={other}: expected on, off or both")),
        };
        let copy_all = match c.get("kexec.copy").unwrap_or("auto") {
            "auto" => false,
            "all" => true,
            other => return Err(format!("kexec.copy={other}: expected auto or all")),
        };
        Ok(Some(Settings {
            total,
            payload_len,
            mmu,
            copy_all,
        }))
    }
}

/// What the previous generation handed over: its header (and whether the payload hashed
/// as it said), and the history of every generation before this one.
struct Received {
    header: Option<(Header, bool)>,
    history: Vec<HopRecord>,
    history_error: Option<chain::HistoryError>,
}

impl Received {
    /// Reads the hand-over block the DTB names; the first generation has none.
    fn read() -> Result<Self, chain::HeaderError> {
        let sys = SYSTEM.get().expect("booted");
        let mut r = Received {
            header: None,
            history: Vec::new(),
            history_error: None,
        };
        if let Some(region) = sys.platform.handover {
            // SAFETY: the hand-over block is reserved RAM that nothing else uses.
            let block = unsafe { memory::phys_slice(region) };
            let (h, payload) = Header::read(block)?;
            match h.history(block) {
                Ok(recs) => r.history = recs,
                Err(e) => r.history_error = Some(e),
            }
            r.header = Some((h, chain::hash(payload) == h.payload_hash));
        }
        Ok(r)
    }

    /// This generation's hop number.
    fn hop(&self) -> u64 {
        self.header.map_or(0, |(h, _)| h.hop)
    }

    /// What is wrong with the hand-over, for a receiver with `cpus` online and `free`
    /// frames, or `None`.
    fn check(&self, cpus: usize, free: u64) -> Option<String> {
        let sys = SYSTEM.get().expect("booted");
        let (h, payload_ok) = self.header?;
        let hop = h.hop;
        Some(if !payload_ok {
            format!("payload hash mismatch at hop {hop}")
        } else if let Some(e) = self.history_error {
            format!("hop {hop}: {e}")
        } else if sys.entry_el != h.first_el {
            format!(
                "entered at EL{} but the chain started at EL{}",
                sys.entry_el, h.first_el
            )
        } else if h.cpus != 0 && h.cpus != cpus as u64 {
            format!(
                "CPUs online: {cpus} at hop {hop}, {} at hop {}: a CPU did not come back",
                h.cpus,
                hop - 1
            )
        } else if h.free_ref != 0 && h.free_ref != free {
            format!(
                "free frames {free} at hop {hop}, {} at hop 1: a leak",
                h.free_ref
            )
        } else {
            return None;
        })
    }
}

/// This generation's `chain:` line.
fn report(r: &Received, total: u64, ready_ticks: u64, cpus: usize, free: u64, smp_up_us: u64) {
    let sys = SYSTEM.get().expect("booted");
    let image_hash = kernel::formats::sha256::hex(&arch::sha2::sha256(&pristine_image()));
    let payload = match r.header {
        None => "none",
        Some((_, true)) => "ok",
        Some((_, false)) => "bad",
    };
    let prev = r.header.map(|(h, _)| h);
    let (ttpages, reloc_us, rate, hop_us, reloc_mmu, smp_down_us) = match prev {
        Some(h) => {
            let us = arch::ticks_to_us(h.reloc_end.saturating_sub(h.reloc_start)).max(1);
            let rate = h.copied * 1_000_000 / us / MIB;
            let hop_us = arch::ticks_to_us(ready_ticks.saturating_sub(h.exec_ticks));
            let m = if h.mmu_off != 0 { "off" } else { "on" };
            (h.ttpages, us, rate, hop_us, m, h.smp_down_us)
        }
        None => (0, 0, 0, 0, "-", 0),
    };
    println!(
        "chain: hop={}/{total} el={} cpus={cpus} load={:#x} free={free} image={image_hash} payload={payload} ttpages={ttpages} reloc_us={reloc_us} reloc_rate={rate}MiB/s reloc_mmu={reloc_mmu} hop_us={hop_us} smp_up_us={smp_up_us} smp_down_us={smp_down_us} copied={}",
        r.hop(),
        sys.entry_el,
        sys.image_pa,
        prev.map_or(0, |h| h.copied)
    );
}

/// How the next hop is loaded.
#[derive(Clone, Copy)]
struct How {
    mmu_off: bool,
    copy_all: bool,
}

fn chain_next(
    hop: u64,
    total: u64,
    payload_len: u64,
    how: How,
    cpus: usize,
    prev: Option<Header>,
    history: &[HopRecord],
) -> Result<(), KexecError> {
    let free = history.last().expect("this hop's record").free;
    let sys = SYSTEM.get().expect("booted");
    let mut header = Header {
        hop: hop + 1,
        total,
        first_el: prev.map_or(sys.entry_el, |h| h.first_el),
        // The reference for free= is the second generation's (hop 1's) count.
        free_ref: match prev {
            Some(h) if h.free_ref != 0 => h.free_ref,
            Some(_) => free,
            None => 0,
        },
        payload_len,
        cpus: cpus as u64,
        ..Default::default()
    };
    // The block is built in frames (it can be far larger than the heap) and copied into the
    // entry list's source pages by the load; then its frames go back.
    header.history_len = history.len() as u64;
    let block_len = header.block_len();
    let mut block = memory::FrameBuf::alloc(block_len).ok_or(KexecError::NoMemory(block_len))?;
    let payload = &mut block[chain::HEADER_PAGE..][..payload_len as usize];
    chain::fill(payload, hop + 1);
    header.payload_hash = chain::hash(payload);
    chain::put_history(&mut header, &mut block, history);
    header.write(&mut block);

    // `kexec.chain.image=FILE`: a file (a signed copy of this kernel, say) instead of the
    // running Image, with the running initramfs.
    let mut req = match sys.cmdline.get("kexec.chain.image") {
        Some(f) => LoadRequest::new(ImageSource::File(f.into())),
        None => LoadRequest::new(ImageSource::Itself),
    };
    req.initrd = crate::kexec::InitrdSource::Current;
    req.mmu_off = how.mmu_off;
    req.copy_all = how.copy_all;
    req.base = next_base(hop + 1)?;
    req.handover = Some(&block);
    load(&req)?;
    drop(block); // the load copied it
    if sys.cmdline.has("kexec.from_irq") {
        // From inside the timer interrupt's handler: the next kernel finds that interrupt
        // just taken, and must not depend on this kernel having tidied up after it.
        return kexec_from_next_tick();
    }
    execute()
}

/// Why `kexec -e` from the tick's handler came back (it returns only on failure).
static FROM_TICK_FAILED: spin::Mutex<Option<KexecError>> = spin::Mutex::new(None);

/// Runs `kexec -e` from inside this CPU's next timer interrupt handler; returns only if it
/// failed, or there is no tick to run it from.
fn kexec_from_next_tick() -> Result<(), KexecError> {
    fn job() {
        *FROM_TICK_FAILED.lock() = execute().err();
    }
    crate::irq::run_from_next_tick(job).map_err(|crate::irq::NoTick| KexecError::NoTick)?;
    match FROM_TICK_FAILED.lock().take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Where hop `hop` puts the next kernel: on odd hops the 2 MiB slot next to the running
/// kernel (overlapping its pages whenever its image_size exceeds 2 MiB: those are copied), on
/// every fourth hop wherever `kexec -l` puts it by default (`None`: free memory, written in
/// place), otherwise slots spread over all of usable memory.
fn next_base(hop: u64) -> Result<Option<u64>, KexecError> {
    let sys = SYSTEM.get().expect("booted");
    let map = memory::memory_map().expect("memory::init ran");
    let usable = place::usable(map);
    let size = mm::align_up(boot::symbols::image_size(), PAGE_SIZE);
    let slots: Vec<u64> = place::slots(&usable, &[], size, IMAGE_ALIGN, 0).collect();
    let others: Vec<u64> = slots
        .iter()
        .copied()
        .filter(|&s| s != sys.image_pa)
        .collect();
    if others.is_empty() {
        return Err(KexecError::Place(place::PlaceError::NoRoom {
            what: "image",
            bytes: size,
            usable: usable.iter().map(Region::size).sum(),
        }));
    }
    if hop % 2 == 1 {
        let near = others
            .iter()
            .copied()
            .min_by_key(|&s| s.abs_diff(sys.image_pa))
            .expect("non-empty");
        return Ok(Some(near));
    }
    if hop.is_multiple_of(4) {
        return Ok(None);
    }
    // A multiplicative walk over the slots: a different slot each even hop.
    let i = (hop / 2).wrapping_mul(0x9e37_79b9) as usize % others.len();
    Ok(Some(others[i]))
}

/// Copies 16 MiB between two buffers and reports the rate, for comparison with the
/// relocation's rate in the same run.
/// The chain's `memcpy:` line: 16 MiB copied between page-aligned buffers, the median of
/// five copies. The destination is written once before timing: under QEMU the first touch of
/// a guest page costs the host a page fault, which is not the copy's cost.
fn memcpy_benchmark() {
    const LEN: u64 = 16 * MIB;
    let (Some(mut a), Some(mut b)) = (memory::FrameBuf::alloc(LEN), memory::FrameBuf::alloc(LEN))
    else {
        return println!("memcpy: not enough memory for 2 x 16 MiB");
    };
    chain::fill(&mut a, 1);
    b.fill(0);
    let mut us = [0u64; 5];
    for t in us.iter_mut() {
        let t0 = arch::ticks();
        b.copy_from_slice(&a);
        *t = arch::ticks_to_us(arch::ticks() - t0).max(1);
    }
    us.sort_unstable();
    let us = us[us.len() / 2];
    println!(
        "memcpy: {LEN} bytes in {us} us = {} MiB/s",
        LEN * 1_000_000 / us / MIB
    );
}
