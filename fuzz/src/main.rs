//! Host fuzzing of every parser and editor the kernel runs on input it did not make, built
//! from the same code the kernel runs (the `kernel`, `kexec` and `mm` libraries).
//!
//! On the stable toolchain, without an external fuzzing engine: each target starts from a
//! seed corpus (real files: Debian's Images and DTBs, QEMU's DTBs, initramfs images; plus a few
//! built here) and feeds the code mutated copies (bit flips, interesting integers at every
//! width and byte order, lengths set to the input's own size ± 1, cuts, duplications,
//! splices). An input whose outcome (the error's text, without numbers) was never seen
//! before joins the corpus, so the search reaches every error path a parser names. Each input
//! is checked for:
//! - **panics** (caught; the input is saved and the run fails);
//! - **hangs**: a watchdog aborts the run when one input takes longer than `HANG`;
//! - **allocations larger than the input justifies**: a counting allocator fails the run
//!   when the bytes live at once exceed `16 × input + 2 MiB` (the gzip target inflates into up to 1 MiB).
//!
//! `scripts/fuzz.sh [SECONDS]` runs every target; `cargo run -p fuzz --profile fuzz -- --help`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(test)]
mod regressions;
mod targets;

/// One input may take at most this long.
const HANG: Duration = Duration::from_secs(10);

/// Counts the bytes live, and the most live at once since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The input being run, for the watchdog to save when it hangs.
static CURRENT: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let live = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A fuzz target: the kernel's code on one input. `Err` carries the outcome's text.
pub type Target = fn(&[u8]) -> Result<(), String>;

/// A small, fast generator (xorshift64*); the run's seed makes it reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(6) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = [0, 0xff, 0x7f, 0x80, 1, rng.next() as u8][rng.below(6)];
            }
            2 | 3 if len >= 8 => {
                // An integer where headers keep them: 4- or 8-byte aligned, either order.
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                let i = (rng.below(len - width + 1) / width) * width;
                let v: u64 = match rng.below(8) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => len as u64,
                    3 => (len as u64).wrapping_add(1),
                    4 => (len as u64).wrapping_sub(1),
                    5 => 0x8000_0000,
                    6 => 1 << rng.below(64),
                    _ => rng.next(),
                };
                let bytes = if rng.below(2) == 0 {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                let bytes = if width == 4 {
                    &bytes[if rng.below(2) == 0 { 4 } else { 0 }..][..4]
                } else {
                    &bytes[..]
                };
                input[i..i + width].copy_from_slice(bytes);
            }
            4 if len > 0 => input.truncate(rng.below(len)),
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                input.drain(a..b);
            }
            6 if len > 0 && len < 64 << 20 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let piece = input[a..b].to_vec();
                let at = rng.below(len);
                input.splice(at..at, piece);
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() && len > 0 {
                    let a = rng.below(other.len());
                    let n = rng.below(other.len() - a).min(4096);
                    let at = rng.below(len);
                    let end = (at + n).min(len);
                    input.splice(at..end, other[a..a + n].iter().copied());
                }
            }
            _ => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let piece: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, piece);
            }
        }
    }
}

/// The outcome without its numbers: "segment 3 at 0x1234" and "segment 4 at 0x99" are the
/// same path through the code.
fn shape(outcome: &Result<(), String>) -> String {
    match outcome {
        Ok(()) => "ok".into(),
        Err(e) => e
            .chars()
            .map(|c| if c.is_ascii_hexdigit() { '#' } else { c })
            .collect::<String>()
            .split_whitespace()
            .filter(|w| !w.starts_with('/'))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

struct Stats {
    inputs: u64,
    corpus: usize,
    outcomes: usize,
}

fn fuzz_one(
    name: &str,
    target: Target,
    seeds: Vec<Vec<u8>>,
    budget: Budget,
    rng_seed: u64,
    crashes: &Path,
    progress: &Arc<AtomicU64>,
) -> Result<Stats, String> {
    let mut corpus = seeds;
    corpus.push(Vec::new());
    let mut seen = HashSet::new();
    let mut rng = Rng(rng_seed | 1);
    let start = Instant::now();
    let mut inputs = 0u64;
    let mut i = 0;
    loop {
        let done = match budget {
            Budget::Time(d) => start.elapsed() >= d,
            Budget::Inputs(n) => inputs >= n,
        };
        if done {
            break;
        }
        // Seeds first, as they are; then mutations.
        let input = if i < corpus.len() {
            i += 1;
            corpus[i - 1].clone()
        } else {
            let mut x = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut x, &corpus);
            x
        };
        CURRENT.lock().unwrap().clone_from(&input);
        progress.store(start.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| target(&input)));
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        inputs += 1;
        let limit = 16 * input.len() + (2 << 20);
        let failure = match &outcome {
            Err(p) => Some(format!(
                "panic: {}",
                p.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("?")
            )),
            Ok(_) if peak > limit => Some(format!(
                "{peak} bytes live at once for a {}-byte input (limit {limit})",
                input.len()
            )),
            Ok(_) => None,
        };
        if let Some(why) = failure {
            let path = crashes.join(format!("{name}-{inputs}.bin"));
            std::fs::create_dir_all(crashes).ok();
            std::fs::write(&path, &input).ok();
            return Err(format!("{name}: {why} (input saved as {})", path.display()));
        }
        let outcome = outcome.expect("no panic");
        if seen.insert(shape(&outcome)) && input.len() <= 64 << 20 && corpus.len() < 4096 {
            corpus.push(input);
        }
    }
    Ok(Stats {
        inputs,
        corpus: corpus.len(),
        outcomes: seen.len(),
    })
}

#[derive(Clone, Copy)]
enum Budget {
    Time(Duration),
    Inputs(u64),
}

fn read_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    out
}

const USAGE: &str = "usage: fuzz [--seconds S | --inputs N] [--seeds DIR] [--crashes DIR] [--seed N] [TARGET...]
  Seeds for target T are the files in DIR/T (plus the built-in ones); crashes go to
  --crashes (default target/fuzz-crashes; seeds default target/fuzz-seeds). Without TARGETs, every target runs.";

fn main() {
    let mut args = std::env::args().skip(1);
    let mut budget = Budget::Time(Duration::from_secs(10));
    let mut seeds_dir = PathBuf::from("target/fuzz-seeds");
    let mut crashes = PathBuf::from("target/fuzz-crashes");
    let mut rng_seed = 0x5eed_u64;
    let mut names = Vec::new();
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| panic!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--seconds" => budget = Budget::Time(Duration::from_secs(val().parse().expect(USAGE))),
            "--inputs" => budget = Budget::Inputs(val().parse().expect(USAGE)),
            "--seeds" => seeds_dir = val().into(),
            "--crashes" => crashes = val().into(),
            "--seed" => rng_seed = val().parse().expect(USAGE),
            "--help" | "-h" => {
                println!(
                    "{USAGE}\ntargets: {}",
                    targets::ALL
                        .iter()
                        .map(|t| t.0)
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                return;
            }
            t => names.push(t.to_string()),
        }
    }
    let chosen: Vec<_> = targets::ALL
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.0))
        .collect();
    if !names.is_empty() && chosen.len() != names.len() {
        eprintln!("unknown target in {names:?}\n{USAGE}");
        std::process::exit(2);
    }
    // Quiet panics: they are caught and reported as results.
    panic::set_hook(Box::new(|_| {}));
    let progress = Arc::new(AtomicU64::new(0));
    {
        // The watchdog: a target that makes no progress for HANG is a hang.
        let progress = progress.clone();
        let crashes = crashes.clone();
        std::thread::spawn(move || {
            let mut last = (0, Instant::now());
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let p = progress.load(Ordering::Relaxed);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if p != 0 && last.1.elapsed() > HANG {
                    let path = crashes.join("hang.bin");
                    std::fs::create_dir_all(&crashes).ok();
                    if let Ok(input) = CURRENT.try_lock() {
                        std::fs::write(&path, &*input).ok();
                    }
                    println!(
                        "fuzz: FAIL an input ran for more than {HANG:?}: a hang (saved as {})",
                        path.display()
                    );
                    std::process::exit(3);
                }
            }
        });
    }
    let mut failed = false;
    for (name, target, builtin) in chosen {
        let mut seeds = builtin();
        seeds.extend(read_seeds(&seeds_dir.join(name)));
        let n_seeds = seeds.len();
        let t0 = Instant::now();
        match fuzz_one(name, *target, seeds, budget, rng_seed, &crashes, &progress) {
            Ok(s) => println!(
                "fuzz: {name:<9} inputs={:<9} seeds={n_seeds:<3} corpus={:<5} outcomes={:<4} seconds={:.0} ok",
                s.inputs,
                s.corpus,
                s.outcomes,
                t0.elapsed().as_secs_f64()
            ),
            Err(e) => {
                println!("fuzz: FAIL {e}");
                failed = true;
            }
        }
        progress.store(0, Ordering::Relaxed);
    }
    if failed {
        std::process::exit(1);
    }
}
