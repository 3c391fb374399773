#![no_main]
//! See `monitor::fuzzing::decode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::decode(data));
