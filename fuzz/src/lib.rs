//! The fuzz targets' harnesses (issue 14): what each `fuzz_targets/*.rs` runs per input.
//!
//! Each harness keeps one runtime and one system under test across inputs (global state
//! is fine in a fuzz harness, never in the crates it drives), rebuilt every so many
//! inputs so that what inputs create cannot grow without bound, and checks invariants
//! after every input: a broken one panics, which libFuzzer reports as a crash with the
//! input that caused it.
//!
//! - [`ceph_command`]: fake-ceph's command pipeline (`Cluster::execute`, what
//!   `POST /request` and `POST /tell/mds.<name>` call), with raw JSON bodies and commands
//!   built from the fake's own signatures.
//! - [`ceph_session`]: client operations of an MDS session on a subvolume, through
//!   `POST /mds/sessions/{id}/ops` in process; nothing outside the session's root may be
//!   read, listed or changed, whatever symlinks the tree holds.
//! - [`manila_http`]: requests to fake-manila's Keystone and Manila routers; never a 5xx
//!   but the injected faults', never a key in an answer.
//! - [`csi`]: sequences of CSI calls to the driver's Identity, Controller and Node
//!   services on fake-ceph; never `Unknown`, never a key in an error, nothing made
//!   outside the temporary directories.

pub mod ceph_command;
pub mod ceph_session;
pub mod csi;
pub mod manila_http;
pub mod support;
