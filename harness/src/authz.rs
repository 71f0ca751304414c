//! The node authorizer's graph (k8s `plugin/pkg/auth/authorizer/node`), with the lag
//! that gives kubelets `no path found to object`.
//!
//! The apiserver fills the graph from its own informers: a write reaches the graph's
//! queue after the informer lag, and one writer applies the queued events in order. Each
//! event costs graph work (`write_base + write_per_fanout × fanout`, the fan-out being the
//! pods that share a PVC, and so a secret, with the event's pod: the index recomputation of
//! k8s #87688). Authorising a node's GET costs graph capacity too (`read_cost`, the read
//! lock and the traversal); the model gives reads the capacity first and the writer what
//! is left in each tick. **[inferred]** This lumps the read lock and the apiserver CPU the
//! authorizer shares with everything else into one capacity: when kubelets retry GETs
//! fast enough to use it all, the graph stops catching up, the GETs keep failing and so
//! keep coming (the metastable loop of reference §3.3).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A graph update, as the populator's informer handlers make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphOp {
    /// A VolumeAttachment for `node` (edge VA → node).
    AddVa {
        /// VA name.
        name: String,
        /// `spec.nodeName`.
        node: String,
    },
    /// The VA is gone.
    DelVa {
        /// VA name.
        name: String,
    },
    /// A pod bound to `node` (edges pod → node, PVC → pod, PV → PVC, secret → PV).
    AddPod {
        /// Pod name.
        name: String,
        /// `spec.nodeName`.
        node: String,
        /// Its PVCs.
        pvcs: Vec<String>,
    },
    /// A pod status update (re-indexes its PVCs' vertices).
    UpdatePod {
        /// Pod name.
        name: String,
    },
    /// The pod is gone.
    DelPod {
        /// Pod name.
        name: String,
    },
}

/// The graph and its single writer.
#[derive(Debug, Default)]
pub struct Graph {
    vas: BTreeMap<String, String>,
    pods: BTreeMap<String, (String, Vec<String>)>,
    pvc_pods: BTreeMap<String, usize>,
    /// (node, pvc) → pods on that node using it.
    node_pvc: BTreeMap<(String, String), usize>,
    queue: VecDeque<(GraphOp, Duration)>,
    /// Work already done on the head of the queue.
    head_done: Duration,
    reads_this_tick: u64,
    read_debt: Duration,
    write_base: Duration,
    write_per_fanout: Duration,
    read_cost: Duration,
    /// Events applied.
    pub applied: u64,
    /// Node GETs refused.
    pub denied: u64,
    /// Node GETs allowed.
    pub allowed: u64,
    /// The longest the queue has been, in events.
    pub max_queue: usize,
}

impl Graph {
    /// An empty graph with these costs.
    pub fn new(write_base: Duration, write_per_fanout: Duration, read_cost: Duration) -> Self {
        Self {
            write_base,
            write_per_fanout,
            read_cost,
            ..Default::default()
        }
    }

    /// Queues an event (it has passed the informer lag); its cost is fixed now.
    pub fn enqueue(&mut self, op: GraphOp) {
        let fanout = match &op {
            GraphOp::AddPod { pvcs, .. } => pvcs
                .iter()
                .map(|c| self.pvc_pods.get(c).copied().unwrap_or(0))
                .sum(),
            GraphOp::UpdatePod { name } | GraphOp::DelPod { name } => {
                self.pods.get(name).map_or(0, |(_, pvcs)| {
                    pvcs.iter()
                        .map(|c| self.pvc_pods.get(c).copied().unwrap_or(0))
                        .sum()
                })
            }
            _ => 0,
        };
        let cost = self.write_base + self.write_per_fanout * fanout as u32;
        self.queue.push_back((op, cost));
        self.max_queue = self.max_queue.max(self.queue.len());
    }

    /// Events waiting for the writer.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// One accounting period of `tick`: reads made during it take their share of the
    /// capacity, the writer applies what the rest allows. Returns the events applied.
    pub fn tick(&mut self, tick: Duration) -> usize {
        let reads = std::mem::take(&mut self.reads_this_tick);
        // Reads beyond one tick's capacity carry over (they wait for the lock or the CPU).
        self.read_debt += self.read_cost * reads.min(u64::from(u32::MAX)) as u32;
        let used = self.read_debt.min(tick);
        self.read_debt -= used;
        let mut budget = tick - used;
        let mut n = 0;
        while let Some((_, cost)) = self.queue.front() {
            let left = cost.saturating_sub(self.head_done);
            if left > budget {
                self.head_done += budget;
                break;
            }
            budget -= left;
            self.head_done = Duration::ZERO;
            let (op, _) = self.queue.pop_front().expect("front exists");
            self.apply(op);
            n += 1;
        }
        n
    }

    fn apply(&mut self, op: GraphOp) {
        self.applied += 1;
        match op {
            GraphOp::AddVa { name, node } => {
                self.vas.insert(name, node);
            }
            GraphOp::DelVa { name } => {
                self.vas.remove(&name);
            }
            GraphOp::AddPod { name, node, pvcs } => {
                if self.pods.contains_key(&name) {
                    return;
                }
                for c in &pvcs {
                    *self.pvc_pods.entry(c.clone()).or_default() += 1;
                    *self.node_pvc.entry((node.clone(), c.clone())).or_default() += 1;
                }
                self.pods.insert(name, (node, pvcs));
            }
            GraphOp::UpdatePod { .. } => {}
            GraphOp::DelPod { name } => {
                if let Some((node, pvcs)) = self.pods.remove(&name) {
                    for c in pvcs {
                        dec(&mut self.pvc_pods, c.clone());
                        dec(&mut self.node_pvc, (node.clone(), c));
                    }
                }
            }
        }
    }

    /// A kubelet of `node` GETs VolumeAttachment `va`: allowed iff the edge VA → node is in
    /// the graph (a missing vertex is refused the same way).
    pub fn may_get_va(&mut self, node: &str, va: &str) -> bool {
        self.reads_this_tick += 1;
        let ok = self.vas.get(va).is_some_and(|n| n == node);
        self.count(ok)
    }

    /// A kubelet of `node` GETs the secret of a PV bound to `pvc`: allowed iff a pod on the
    /// node uses the PVC in the graph (secret → PV → PVC → pod → node).
    pub fn may_get_secret_via(&mut self, node: &str, pvc: &str) -> bool {
        self.reads_this_tick += 1;
        let ok = self
            .node_pvc
            .contains_key(&(node.to_owned(), pvc.to_owned()));
        self.count(ok)
    }

    fn count(&mut self, ok: bool) -> bool {
        if ok {
            self.allowed += 1;
        } else {
            self.denied += 1;
        }
        ok
    }

    /// Pods and VAs in the graph (for leak checks).
    pub fn vertices(&self) -> (usize, usize) {
        (self.pods.len(), self.vas.len())
    }
}

fn dec<K: Ord>(m: &mut BTreeMap<K, usize>, k: K) {
    if let Some(v) = m.get_mut(&k) {
        *v -= 1;
        if *v == 0 {
            m.remove(&k);
        }
    }
}

/// The Node authorizer's refusal, as the 2018 apiserver worded it.
pub fn forbidden(node: &str, resource: &str) -> String {
    format!(
        "User \"system:node:{node}\" cannot get {resource} at the cluster scope: no path found to object"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_kubelet_read_before_the_edge_is_refused_and_after_it_is_allowed() {
        let mut g = Graph::new(us(20), us(2), us(50));
        assert!(!g.may_get_va("node-0001", "csi-a"));
        g.enqueue(GraphOp::AddVa {
            name: "csi-a".into(),
            node: "node-0001".into(),
        });
        // Queued is not applied: still refused.
        assert!(!g.may_get_va("node-0001", "csi-a"));
        g.tick(Duration::from_millis(100));
        assert!(g.may_get_va("node-0001", "csi-a"));
        // Another node has no path to it.
        assert!(!g.may_get_va("node-0002", "csi-a"));
        g.enqueue(GraphOp::DelVa {
            name: "csi-a".into(),
        });
        g.tick(Duration::from_millis(100));
        assert!(!g.may_get_va("node-0001", "csi-a"));
        assert_eq!((g.allowed, g.denied), (1, 4));
        assert!(
            forbidden("node-0001", "volumeattachments.storage.k8s.io")
                .ends_with("no path found to object")
        );
    }

    #[test]
    fn secrets_are_reachable_through_a_pod_on_the_node() {
        let mut g = Graph::new(us(20), us(2), us(50));
        g.enqueue(GraphOp::AddPod {
            name: "app-0".into(),
            node: "n1".into(),
            pvcs: vec!["share-0".into()],
        });
        assert!(!g.may_get_secret_via("n1", "share-0"));
        g.tick(Duration::from_millis(100));
        assert!(g.may_get_secret_via("n1", "share-0"));
        assert!(!g.may_get_secret_via("n2", "share-0"));
        assert!(!g.may_get_secret_via("n1", "share-1"));
        g.enqueue(GraphOp::DelPod {
            name: "app-0".into(),
        });
        g.tick(Duration::from_millis(100));
        assert!(!g.may_get_secret_via("n1", "share-0"));
        assert_eq!(g.vertices(), (0, 0));
    }

    #[test]
    fn the_writer_is_paced_by_its_capacity_and_starved_by_reads() {
        // 10 ms per event: 10 events per 100 ms tick.
        let mut g = Graph::new(us(10_000), us(0), us(1_000));
        for i in 0..30 {
            g.enqueue(GraphOp::AddVa {
                name: format!("va-{i}"),
                node: "n".into(),
            });
        }
        assert_eq!(g.tick(Duration::from_millis(100)), 10);
        // 50 reads of 1 ms take half the next tick.
        for _ in 0..50 {
            g.may_get_va("n", "nope");
        }
        assert_eq!(g.tick(Duration::from_millis(100)), 5);
        // 150 reads take all of it and half of the next tick: the writer stalls, then
        // gets half a tick.
        for _ in 0..150 {
            g.may_get_va("n", "nope");
        }
        assert_eq!(g.tick(Duration::from_millis(100)), 0);
        assert_eq!(g.pending(), 15);
        assert_eq!(g.tick(Duration::from_millis(100)), 5);
        assert_eq!(g.tick(Duration::from_millis(100)), 10);
    }

    #[test]
    fn pod_events_cost_more_with_more_pods_sharing_their_pvcs() {
        let mut g = Graph::new(us(0), us(1_000), us(0));
        for i in 0..5 {
            g.enqueue(GraphOp::AddPod {
                name: format!("p{i}"),
                node: format!("n{i}"),
                pvcs: vec!["c".into()],
            });
            g.tick(Duration::from_secs(1));
        }
        // The sixth pod's event costs 5 ms (five pods share its PVC): 2 ms ticks need three.
        g.enqueue(GraphOp::AddPod {
            name: "p5".into(),
            node: "n5".into(),
            pvcs: vec!["c".into()],
        });
        assert_eq!(g.tick(Duration::from_millis(2)), 0);
        assert_eq!(g.tick(Duration::from_millis(2)), 0);
        assert_eq!(g.tick(Duration::from_millis(2)), 1);
    }
}
