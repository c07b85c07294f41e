//! libFuzzer entry point of the `ext4` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::ext4_target(data);
});
