//! Integration tests of fake-manila: the router in process (`oneshot`), backed by an
//! in-process fake-ceph served on a loopback socket, and the binary (assert_cmd).

mod access;
mod binary;
mod ceph_restart;
mod endpoints;
mod faults;
mod keystone;
mod message;
mod microversion;
mod quota;
mod robustness;
mod share;
mod snapshot;
mod support;
