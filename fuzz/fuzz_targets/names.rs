#![no_main]
//! See `monitor::fuzzing::names`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::names(data));
