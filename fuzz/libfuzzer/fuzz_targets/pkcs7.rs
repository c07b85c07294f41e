//! libFuzzer entry point of the `pkcs7` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::pkcs7_target(data);
});
