//! libFuzzer entry for `udpchat_fuzz::targets::group_line` (docs/FUZZING.md).
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    udpchat_fuzz::targets::group_line(data);
});
