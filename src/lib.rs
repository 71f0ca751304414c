//! The root package of the workspace. It has no code of its own: its `tests/` hold the
//! end-to-end tests that start the project's binaries, and its `benches/` the criterion
//! benchmarks that put the driver, the fakes and the harness together.
//!
//! Start reading at `ARCHITECTURE.md`.
