//! The node authorizer's informer: writes reach its graph after their lag, and the graph
//! applies them tick by tick (the API server asks the graph on the kubelets' reads).
//!
//! It imports the vocabulary and the context, no other module of the simulation.

use std::time::Duration;

use crate::authz::{Graph, GraphOp};

use super::context::Ctx;
use super::vocab::Event;

/// Whether the graph's tick loop runs.
#[derive(Debug, Default)]
pub(crate) struct NodeAuthorizer {
    ticking: bool,
}

impl NodeAuthorizer {
    fn tick_len(ctx: &Ctx<'_>) -> Duration {
        Duration::from_millis(ctx.p.authz.tick_ms)
    }

    /// A write reaches the graph: it is queued, and the tick loop starts if it is idle.
    pub(crate) fn write_arrived(&mut self, ctx: &mut Ctx<'_>, graph: &mut Graph, op: GraphOp) {
        graph.enqueue(op);
        if !self.ticking {
            self.ticking = true;
            ctx.after(Self::tick_len(ctx), Event::GraphTick);
        }
    }

    /// One tick: the graph applies what it can; the loop goes on while writes wait.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>, graph: &mut Graph) {
        graph.tick(Self::tick_len(ctx));
        if graph.pending() > 0 {
            ctx.after(Self::tick_len(ctx), Event::GraphTick);
        } else {
            self.ticking = false;
        }
    }
}
