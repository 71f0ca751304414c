//! driver: the CephFS CSI driver (Identity, Controller, Node) and the Manila provisioner.
//! Its [`csi`] module holds the CSI v1.13.0 protocol: the prost messages, the tonic clients and servers, and a `Debug` that redacts every `csi_secret` field.

pub mod csi {
    //! The Container Storage Interface protocol, spec v1.13.0, generated at build
    //! time from `proto/csi.proto`.
    //!
    //! [`v1`] holds the messages and, per service, a `*_client` and a `*_server`
    //! module. Messages listed in [`SECRET_BEARING_MESSAGES`] carry fields marked
    //! `[(csi_secret) = true]`; their `Debug` prints the keys of those fields and
    //! `"<redacted>"` in place of the values.

    pub mod redact;

    /// The generated CSI v1 messages, clients and servers.
    // Generated code: keep workspace and clippy lints from judging it (it is
    // clean today, but prost/tonic upgrades or proto comments may change that).
    #[allow(
        missing_debug_implementations,
        clippy::all,
        clippy::pedantic,
        clippy::nursery
    )]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/csi.v1.rs"));
    }

    /// The encoded `FileDescriptorSet` of `csi.proto` and its imports,
    /// custom options included (for reflection and descriptor checks).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/csi_descriptor.bin"));

    include!(concat!(env!("OUT_DIR"), "/csi_redacted_debug.rs"));
}

#[cfg(test)]
mod csi_tests;

mod cause;
pub mod ceph;
pub mod config;
pub mod controller;
mod edge;
pub mod errno;
pub mod identity;
mod incoming;
mod instance;
mod journal;
mod locks;
pub mod manila;
mod metrics;
pub mod mount;
pub mod node;
mod registry;
mod rwop;
pub mod server;
mod service;
mod status;
mod timefmt;
mod volume_id;
mod wait;

pub use instance::{Driver, credentials};
pub use metrics::Metrics;
pub use service::{Controller, ControllerBackend};
