//! The `ceph_session` target: see `trainride_fuzz::ceph_session`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trainride_fuzz::ceph_session::run(data));
