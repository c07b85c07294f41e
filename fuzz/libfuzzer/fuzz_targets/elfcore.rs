//! libFuzzer entry point of the `elfcore` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::elfcore_target(data);
});
