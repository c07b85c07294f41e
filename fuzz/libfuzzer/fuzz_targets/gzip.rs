//! libFuzzer entry point of the `gzip` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::gzip_target(data);
});
