//! End-to-end tests: the CephFS CSI driver against fake-ceph, over real gRPC.

#![allow(clippy::unwrap_used)]

mod support;

mod attach;
mod clones;
mod contract;
mod lifecycle;
mod manila;
mod processes;
mod races;
mod real_ceph;
mod standing;
