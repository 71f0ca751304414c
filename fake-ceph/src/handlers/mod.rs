//! Every command handler, by the part of Ceph that answers it. Each module's `COMMANDS`
//! table (signature and handler) is gathered by the registry in [`crate::cluster`].
//!
//! Handlers see the cluster through [`crate::state`] (the state, the caller, the
//! handler type) and the parts' models; nothing here is imported by those, so the
//! dependencies run one way: models, then state, then handlers, then the registry.

pub(crate) mod auth;
pub(crate) mod fsmap;
pub(crate) mod mds;
pub(crate) mod rados;
pub(crate) mod volumes;
