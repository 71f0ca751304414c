//! Integration tests of the `driver` crate.

mod uds;
