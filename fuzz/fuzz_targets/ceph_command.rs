//! The `ceph_command` target: see `trainride_fuzz::ceph_command`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trainride_fuzz::ceph_command::run(data));
