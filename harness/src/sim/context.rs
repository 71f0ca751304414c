//! What every component of the simulation works through: the clock and its event
//! queue, the API clients' wire (token buckets and latency), the CSI calls in flight,
//! the event log and the counters, bundled as a [`Ctx`] for one handler at a time.
//!
//! It imports only the vocabulary ([`super::vocab`]); every controller, the API server
//! and the world may import it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use crate::csi::{CsiCall, CsiOutcome, is_final};
use crate::fault::Plugin;
use crate::params::{Params, StorageBackend};
use crate::report::{EventLog, Stats};
use crate::time::{SimTime, TokenBucket};

use super::vocab::{AfterCall, Component, Event, PROCESS_DELAY, Request, plugin_of};

#[derive(Debug)]
struct Entry {
    at: SimTime,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The simulated clock and the events waiting on it. Events at the same instant run in
/// the order they were scheduled.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    now: SimTime,
    seq: u64,
    queue: BinaryHeap<Reverse<Entry>>,
}

impl Clock {
    /// The simulated time.
    pub(crate) fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at `at` (not before now).
    pub(crate) fn at(&mut self, at: SimTime, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Entry {
            at: at.max(self.now),
            seq: self.seq,
            event,
        }));
    }

    /// The next event and its time, without moving the clock.
    pub(crate) fn pop(&mut self) -> Option<(SimTime, Event)> {
        self.queue.pop().map(|Reverse(e)| (e.at, e.event))
    }

    /// Moves the clock to `t`.
    pub(crate) fn advance(&mut self, t: SimTime) {
        self.now = t;
    }
}

/// The API clients' side of the wire: each client's token bucket, and the latency of a
/// request to the API server.
#[derive(Debug)]
pub(crate) struct Wire {
    /// Each client's token bucket, by client name.
    pub(crate) clients: BTreeMap<String, TokenBucket>,
    rng: ChaCha8Rng,
}

impl Wire {
    /// A wire for `clients`, drawing latencies from `rng`.
    pub(crate) fn new(clients: BTreeMap<String, TokenBucket>, rng: ChaCha8Rng) -> Self {
        Self { clients, rng }
    }
}

/// The CSI calls in flight, and what the fault plan decided of them.
#[derive(Debug)]
pub(crate) struct CsiCalls {
    rng: ChaCha8Rng,
    next_id: u64,
    /// Calls issued and not finished: the call, what follows it, when it started.
    pub(crate) in_flight: BTreeMap<u64, (CsiCall, AfterCall, SimTime)>,
    /// Calls issued since the back end last heard: started by the run loop.
    pub(crate) to_start: Vec<(u64, CsiCall)>,
    /// Plugins killed and not restarted yet: calls to them fail at once.
    pub(crate) down: BTreeSet<Plugin>,
    /// Outcomes the simulation decided itself (calls a kill cut, calls to a killed
    /// plugin), taken instead of the real ones.
    pub(crate) decided: BTreeMap<u64, CsiOutcome>,
    /// Calls refused because their plugin was down.
    pub(crate) refused: u64,
}

impl CsiCalls {
    /// No call yet; latencies drawn from `rng`.
    pub(crate) fn new(rng: ChaCha8Rng) -> Self {
        Self {
            rng,
            next_id: 0,
            in_flight: BTreeMap::new(),
            to_start: Vec::new(),
            down: BTreeSet::new(),
            decided: BTreeMap::new(),
            refused: 0,
        }
    }

    /// The calls to `plugin` under way and not decided yet.
    pub(crate) fn under_way(&self, plugin: Plugin) -> Vec<u64> {
        self.in_flight
            .iter()
            .filter(|(id, (c, _, _))| plugin_of(c) == plugin && !self.decided.contains_key(*id))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The outcome of a finished CSI call, as its caller takes it.
#[derive(Debug)]
pub(crate) struct Finished {
    /// What follows the call.
    pub(crate) then: AfterCall,
    /// The outcome.
    pub(crate) out: CsiOutcome,
    /// The call failed without a final answer: it may have done its work.
    pub(crate) uncertain: bool,
    /// The failure, as the caller records it.
    pub(crate) error: Option<String>,
}

/// A work queue: the keys to look at, and whether a pass is scheduled.
#[derive(Debug, Default)]
pub(crate) struct WorkQueue {
    /// Keys to look at in the next pass.
    pub(crate) dirty: BTreeSet<String>,
    /// A pass is scheduled.
    pub(crate) pending: bool,
}

/// One handler's view of the shared machinery.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The simulated time.
    pub(crate) now: SimTime,
    /// The scenario.
    pub(crate) p: &'a Params,
    /// The clock.
    pub(crate) clock: &'a mut Clock,
    /// The event log.
    pub(crate) log: &'a mut EventLog,
    /// Counters for the report.
    pub(crate) stats: &'a mut Stats,
    /// The API clients' wire.
    pub(crate) wire: &'a mut Wire,
    /// The CSI calls.
    pub(crate) csi: &'a mut CsiCalls,
}

impl Ctx<'_> {
    /// Schedules `event` at `at`.
    pub(crate) fn at(&mut self, at: SimTime, event: Event) {
        self.clock.at(at, event);
    }

    /// Schedules `event` after `d`.
    pub(crate) fn after(&mut self, d: Duration, event: Event) {
        self.clock.at(self.now.after(d), event);
    }

    /// Writes a line of the event log.
    pub(crate) fn event(&mut self, component: &str, what: &str, object: &str, result: &str) {
        self.log.push(self.now, component, what, object, result);
    }

    /// Sends `request` from `client`: it reaches the API server when the client's token
    /// bucket and the API latency allow.
    pub(crate) fn api(&mut self, client: &str, request: Request) {
        let bucket = self
            .wire
            .clients
            .get_mut(client)
            .expect("every client has a bucket");
        let go = bucket.reserve(self.now);
        let lat = self.p.api_latency.sample(&mut self.wire.rng);
        self.at(
            go.after(lat),
            Event::Api {
                client: client.to_owned(),
                request,
            },
        );
    }

    /// Schedules a reconcile pass of `component` unless one is (`pending`). Work queues
    /// are drained by workers right away; the kubelet's reconciler and the attach-detach
    /// controller's run every 100 ms.
    pub(crate) fn kick(&mut self, pending: &mut bool, component: Component) {
        if !*pending {
            *pending = true;
            let d = match component {
                Component::Kubelet(_) | Component::AttachDetach => PROCESS_DELAY,
                _ => Duration::ZERO,
            };
            self.after(d, Event::Process(component));
        }
    }

    /// What Manila's own steps add to `call` on the Manila back end (nothing on CephFS).
    fn manila_delay(&mut self, call: &CsiCall) -> Duration {
        if self.p.backend != StorageBackend::Manila {
            return Duration::ZERO;
        }
        let m = &self.p.manila;
        let rng = &mut self.csi.rng;
        match call {
            CsiCall::CreateVolume { .. } => m.share_create.sample(rng) + m.access_apply.sample(rng),
            CsiCall::DeleteVolume { .. } => m.share_delete.sample(rng),
            _ => Duration::ZERO,
        }
    }

    /// Issues a CSI call from `component` about `object`; `then` is done with its
    /// outcome when its simulated duration has passed.
    pub(crate) fn csi(&mut self, component: &str, call: CsiCall, then: AfterCall, object: &str) {
        let lat = {
            let l = &self.p.csi_latency;
            match &call {
                CsiCall::CreateVolume { .. } => l.create,
                CsiCall::DeleteVolume { .. } => l.delete,
                CsiCall::ControllerPublish { .. } | CsiCall::ControllerUnpublish { .. } => {
                    l.publish_controller
                }
                CsiCall::NodeStage { .. } => l.stage,
                CsiCall::NodeUnstage { .. } => l.unstage,
                CsiCall::NodePublish { .. } | CsiCall::NodeUnpublish { .. } => l.publish,
            }
        }
        .sample(&mut self.csi.rng)
            + self.manila_delay(&call);
        self.csi.next_id += 1;
        let id = self.csi.next_id;
        self.event(component, call.method(), object, "start");
        let plugin = plugin_of(&call);
        self.csi
            .in_flight
            .insert(id, (call.clone(), then, self.now));
        if self.csi.down.contains(&plugin) {
            // Nothing listens on a killed plugin's socket: the call fails at once.
            self.csi.refused += 1;
            self.csi.decided.insert(
                id,
                Err((
                    tonic::Code::Unavailable,
                    format!("the {plugin} plugin is not running"),
                )),
            );
            self.after(Duration::ZERO, Event::CsiDone { id });
            return;
        }
        self.csi.to_start.push((id, call));
        self.after(lat, Event::CsiDone { id });
    }

    /// Takes call `id`'s outcome `out`: counts and logs it, and hands back what follows
    /// (none if the call is not in flight).
    pub(crate) fn finish_call(&mut self, id: u64, out: CsiOutcome) -> Option<Finished> {
        let (call, then, started) = self.csi.in_flight.remove(&id)?;
        let code = match &out {
            Ok(_) => tonic::Code::Ok,
            Err((c, _)) => *c,
        };
        self.stats.rpc(call.method(), code, self.now.since(started));
        let (component, object) = then.caller_and_object();
        self.event(&component, call.method(), &object, &format!("{code:?}"));
        let uncertain = out.is_err() && !is_final(code);
        let error = out.as_ref().err().map(|(c, m)| format!("{c:?}: {m}"));
        Some(Finished {
            then,
            out,
            uncertain,
            error,
        })
    }
}
