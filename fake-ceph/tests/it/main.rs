//! Integration tests of fake-ceph: commands through `router().oneshot`, mounts, faults,
//! one real-socket test, the binary, and the shapes of real Ceph's answers.

#![allow(clippy::unwrap_used)]

mod support;

mod binary;
mod commands;
mod confinement;
mod connections;
mod durable;
mod faults;
mod golden;
mod mounts;
mod props;
mod rados;
mod socket;
mod volumes;
