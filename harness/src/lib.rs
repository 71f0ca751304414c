//! harness: the mock-cluster simulator, the CSI conformance bench and the load generator.
//!
//! Not built yet: this crate holds its place in the workspace layout until its issues
//! (the simulator; the conformance bench and load generator) are worked on. It exports
//! nothing.
