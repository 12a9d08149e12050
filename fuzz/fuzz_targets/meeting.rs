//! libFuzzer entry for `udpchat_fuzz::targets::meeting` (docs/FUZZING.md).
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    udpchat_fuzz::targets::meeting(data);
});
