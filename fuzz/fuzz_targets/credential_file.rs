#![no_main]
//! See `monitor::fuzzing::credential_file`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::credential_file(data));
