//! libFuzzer entry point of the `image` target (fuzz/src/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::targets::image(data);
});
