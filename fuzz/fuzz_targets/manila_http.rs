//! The `manila_http` target: see `trainride_fuzz::manila_http`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trainride_fuzz::manila_http::run(data));
