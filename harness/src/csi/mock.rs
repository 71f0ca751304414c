//! The in-memory back end ([`MockCsi`]) the controllers' unit tests run against. It
//! imports only the call types of [`super`].

use std::collections::{BTreeMap, BTreeSet};

use super::{CsiCall, CsiOutcome, CsiReply, Leaks};

/// In-memory CSI: volumes, stages and publishes as sets; the first `fail[method]` calls of
/// a method fail with `Unavailable`, and the first `lose_reply[method]` ones do their work
/// but answer `Unavailable` (a reply lost: the call timed out or the plugin died after
/// the work).
#[derive(Debug, Default)]
pub struct MockCsi {
    volumes: BTreeSet<String>,
    staged: BTreeSet<(usize, String)>,
    published: BTreeSet<(usize, String)>,
    pub(super) results: BTreeMap<u64, CsiOutcome>,
    /// Calls of a method still to fail.
    pub fail: BTreeMap<&'static str, u32>,
    /// Calls of a method still to do their work and answer `Unavailable`.
    pub lose_reply: BTreeMap<&'static str, u32>,
    /// Every call made, by method.
    pub calls: BTreeMap<&'static str, u32>,
}

impl MockCsi {
    pub(super) fn start(&mut self, id: u64, call: CsiCall) {
        let m = call.method();
        *self.calls.entry(m).or_default() += 1;
        if let Some(n) = self.fail.get_mut(m)
            && *n > 0
        {
            *n -= 1;
            self.results
                .insert(id, Err((tonic::Code::Unavailable, "injected".into())));
            return;
        }
        // As the driver: a node call without a volume ID is refused.
        let no_id = match &call {
            CsiCall::NodeStage { volume_id, .. }
            | CsiCall::NodePublish { volume_id, .. }
            | CsiCall::NodeUnpublish { volume_id, .. }
            | CsiCall::NodeUnstage { volume_id, .. } => volume_id.is_empty(),
            _ => false,
        };
        if no_id {
            self.results.insert(
                id,
                Err((tonic::Code::InvalidArgument, "volume_id missing".into())),
            );
            return;
        }
        let r = match call {
            CsiCall::CreateVolume { name } => {
                let volume_id = format!("vol-{name}");
                self.volumes.insert(volume_id.clone());
                Ok(CsiReply::Created {
                    volume_id,
                    context: BTreeMap::from([("subvolumePath".into(), format!("/v/{name}"))]),
                })
            }
            CsiCall::DeleteVolume { volume_id } => {
                self.volumes.remove(&volume_id);
                Ok(CsiReply::Done)
            }
            CsiCall::NodeStage { node, staging, .. } => {
                self.staged.insert((node, staging));
                Ok(CsiReply::Done)
            }
            CsiCall::NodeUnstage { node, staging, .. } => {
                self.staged.remove(&(node, staging));
                Ok(CsiReply::Done)
            }
            CsiCall::NodePublish {
                node,
                target,
                staging,
                ..
            } => {
                if self.staged.contains(&(node, staging)) {
                    self.published.insert((node, target));
                    Ok(CsiReply::Done)
                } else {
                    Err((tonic::Code::FailedPrecondition, "not staged".into()))
                }
            }
            CsiCall::NodeUnpublish { node, target, .. } => {
                self.published.remove(&(node, target));
                Ok(CsiReply::Done)
            }
            CsiCall::ControllerPublish { .. } | CsiCall::ControllerUnpublish { .. } => {
                Ok(CsiReply::Done)
            }
        };
        let r = match self.lose_reply.get_mut(m) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err((tonic::Code::Unavailable, "reply lost".into()))
            }
            _ => r,
        };
        self.results.insert(id, r);
    }

    pub(super) fn finish(&mut self, id: u64) -> CsiOutcome {
        self.results
            .remove(&id)
            .unwrap_or_else(|| Err((tonic::Code::Internal, "unknown call".into())))
    }

    pub(super) fn leaks(&self) -> Leaks {
        Leaks {
            mds_sessions: self.staged.len(),
            subvolumes: self.volumes.len(),
            mount_records: self.published.len(),
            ..Leaks::default()
        }
    }
}
