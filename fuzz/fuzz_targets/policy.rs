#![no_main]
//! See `monitor::fuzzing::policy`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::policy(data));
