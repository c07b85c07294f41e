//! libFuzzer entry point of the `gicv3` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::gicv3_target(data);
});
