//! The Deployment and ReplicaSet controllers: the ReplicaSet's pods are created or
//! deleted until as many are live as it asks for (the Deployment controller's part,
//! carrying the count over, is the scaling request the scenario sends).
//!
//! It owns its expectations (creations and deletions on their way); it imports the
//! vocabulary, the context and the object builders, no other module of the simulation.

use std::collections::BTreeSet;

use crate::api::{Store, deleting};

use super::context::Ctx;
use super::objects::{replica, replica_set_name};
use super::vocab::{Component, Request};

/// The ReplicaSet controller's state.
#[derive(Debug, Default)]
pub(crate) struct ReplicaSets {
    pending: bool,
    /// Pods asked for and not created yet.
    creating: usize,
    /// Pods asked to go whose deletion has not reached the API server yet.
    deleting: BTreeSet<String>,
    /// The next pod's number.
    next_pod: usize,
}

impl ReplicaSets {
    /// A pod or the ReplicaSet changed.
    pub(crate) fn watch(&mut self, ctx: &mut Ctx<'_>) {
        ctx.kick(&mut self.pending, Component::ReplicaSets);
    }

    /// A pod it asked for was created.
    pub(crate) fn pod_created(&mut self) {
        self.creating = self.creating.saturating_sub(1);
    }

    /// A deletion of `pod` reached the API server.
    pub(crate) fn deletion_seen(&mut self, pod: &str) {
        self.deleting.remove(pod);
    }

    /// One pass: creates or deletes pods until as many are live as asked for.
    pub(crate) fn reconcile(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.pending = false;
        let Some(rs) = store.replica_sets.get(&replica_set_name()) else {
            return;
        };
        let want = rs.spec.replicas.unwrap_or(0).max(0) as usize;
        // Creations and deletions on their way count as done (the controller's
        // expectations).
        let live: Vec<String> = store
            .pods
            .iter()
            .filter(|(n, p)| !deleting(&p.metadata) && !self.deleting.contains(*n))
            .map(|(n, _)| n.clone())
            .collect();
        let have = live.len() + self.creating;
        if have < want {
            for _ in have..want {
                self.creating += 1;
                let n = self.next_pod;
                self.next_pod += 1;
                let pod = replica(n, rs.spec.template.as_ref());
                ctx.api("kcm", Request::CreatePod(Box::new(pod)));
            }
        } else if have > want {
            // Newest first, as the ReplicaSet controller prefers pods not yet Running.
            for pod in live.iter().rev().take(have - want) {
                self.deleting.insert(pod.clone());
                ctx.api("kcm", Request::DeletePod { pod: pod.clone() });
            }
        }
    }
}
