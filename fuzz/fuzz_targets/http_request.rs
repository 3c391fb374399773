#![no_main]
//! See `monitor::fuzzing::http_request`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::http_request(data));
