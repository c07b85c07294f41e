//! libFuzzer entry point of the `cpio` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::cpio_target(data);
});
