//! libFuzzer entry point of the `cmdline` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::cmdline_target(data);
});
