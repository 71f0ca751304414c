//! harness: the mock-cluster simulator, the CSI conformance bench and the load generator.
//!
//! [`conformance`] checks any CSI endpoint against the spec (csi-sanity's rules and
//! more); [`load`] drives one RPC against any CSI endpoint and reports latency.

pub mod conformance;
pub mod load;
