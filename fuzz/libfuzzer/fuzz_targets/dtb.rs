//! libFuzzer entry point of the `dtb` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::dtb_target(data);
});
