//! libFuzzer entry point of the `authenticode` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::authenticode_target(data);
});
