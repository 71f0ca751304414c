//! Names the simulated cluster gives its objects, shared by the stack, the simulation
//! and the fault plans (a leaf: it imports nothing from the crate).

/// The deterministic name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{:04}", i + 1)
}
