//! fake-manila: a Keystone v3 + Manila v2 fake that provisions CephFS shares on fake-ceph.
//!
//! Not built yet: this crate holds its place in the workspace layout until its issue
//! (fake-manila and the Manila provisioner) is worked on. It exports nothing.
