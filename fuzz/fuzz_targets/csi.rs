//! The `csi` target: see `trainride_fuzz::csi`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trainride_fuzz::csi::run(data));
