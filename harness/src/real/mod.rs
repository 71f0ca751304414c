//! Real Kubernetes (issue 16): a local control plane built from Kubernetes' own
//! programs, to run the scenarios on the engine users run. `pki.rs` makes its
//! certificates (a leaf); `control_plane.rs` starts, waits for and stops its components.

pub mod cluster;
pub mod control_plane;
pub mod kubelet;
pub mod node;
pub mod pki;
mod rss;
pub mod run;
mod sidecars;
pub mod tally;
pub mod throttle;
pub mod workload;

pub use control_plane::{ControlPlane, PROGRAMS, helm, kubectl};
pub use node::NodeIdentity;
pub use run::{RealOptions, run};
