//! Fuzz targets for every parser and editor the kernel runs on input it did not make, built
//! from the same code the kernel runs (the `kernel`, `kexec` and `mm` libraries).
//!
//! The targets live here, on stable Rust, and are shared by two users:
//! - `fuzz/libfuzzer/`, a cargo-fuzz project (nightly, libFuzzer, AddressSanitizer; outside
//!   the workspace): one fuzz target per entry of [`targets::ALL`], run by
//!   `scripts/fuzz.sh [SECONDS] [TARGET...]`;
//! - `cargo test`, which replays every input the fuzzer ever failed on
//!   (`fuzz/regressions/<target>-<what>.bin`) and every built-in seed.
//!
//! The `seeds` binary writes the built-in seeds into a directory, next to the real-file seeds
//! scripts/fuzz.sh gathers.

pub mod targets;

#[cfg(test)]
mod regressions;

/// A fuzz target: the kernel's code on one input. `Err` carries the outcome's text: errors are
/// the expected answer to bad input, a panic is a failure.
pub type Target = fn(&[u8]) -> Result<(), String>;

/// A target's built-in seeds.
pub type Seeds = fn() -> Vec<Vec<u8>>;

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    targets::ALL.iter().find(|t| t.0 == name).map(|t| t.1)
}
