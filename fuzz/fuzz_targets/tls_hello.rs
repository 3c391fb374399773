#![no_main]
//! See `monitor::fuzzing::tls_hello`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::tls_hello(data));
