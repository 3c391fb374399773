#![no_main]
//! See `monitor::fuzzing::replay`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::replay(data));
