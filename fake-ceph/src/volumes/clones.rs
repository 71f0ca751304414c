//! The clone reconciler: clones advance lazily, replayed to the present whenever a
//! command touches the volume ([`Volumes::tick`]), so no background task is needed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::errno;
use crate::tree::{copy_tree, du};

use super::*;
use crate::fault::Faults;
use crate::mds::Mds;
use crate::tree::DataDir;

/// What the clone reconciler needs of the cluster: the time now, where the trees are,
/// the faults in force with the seeded draws that decide them, and the MDS that a
/// finishing clone charges.
pub(crate) struct CloneWorld<'a> {
    pub(crate) now: Instant,
    pub(crate) data: &'a DataDir,
    pub(crate) faults: &'a Faults,
    pub(crate) draw: &'a dyn Fn() -> f64,
    pub(crate) mds: &'a Mds,
}

impl Volumes {
    /// Advances clones to `now`, replaying what the cloner threads did meanwhile: a
    /// pending clone starts when it has waited `snapshot_clone_delay` plus the pickup
    /// time and a cloner is free (oldest first); an in-progress one finishes after its
    /// copy time, copying the snapshot's data (or failing), and frees its cloner at that
    /// moment for the next one.
    pub(crate) fn tick(&mut self, world: &CloneWorld<'_>) {
        struct Active {
            seq: u64,
            key: (String, String, String),
            started: Option<Instant>,
            eligible: Instant,
            duration: Duration,
            bytes: u64,
            src_dir: Option<PathBuf>,
            source: CloneSource,
        }
        let now = world.now;
        let opts = self.options.clone();
        if opts.pause_cloning {
            return;
        }
        let mut active: Vec<Active> = Vec::new();
        for ((fs, g), group) in &self.groups {
            for (name, sv) in &group.subvolumes {
                let (Some(job), State::Pending | State::InProgress) = (&sv.clone, sv.state) else {
                    continue;
                };
                let src_dir = self.snapshot_data_dir(world.data, &job.source);
                let bytes = src_dir.as_deref().map_or(0, du);
                let mut duration = opts.clone_time;
                if opts.clone_bytes_per_sec > 0 {
                    duration +=
                        Duration::from_secs_f64(bytes as f64 / opts.clone_bytes_per_sec as f64);
                }
                active.push(Active {
                    seq: job.seq,
                    key: (fs.clone(), g.clone(), name.clone()),
                    started: job.started,
                    eligible: job.queued + opts.snapshot_clone_delay + opts.clone_pickup,
                    duration,
                    bytes,
                    src_dir,
                    source: job.source.clone(),
                });
            }
        }
        active.sort_by_key(|a| a.seq);
        let max = opts.max_concurrent_clones.max(1);
        let mut free_since: Option<Instant> = None;
        loop {
            let finish = active
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.started.map(|s| (s + a.duration, i)))
                .min();
            let running = active.iter().filter(|a| a.started.is_some()).count();
            let start = if running < max {
                active
                    .iter()
                    .enumerate()
                    .find(|(_, a)| a.started.is_none())
                    .map(|(i, a)| (free_since.map_or(a.eligible, |f| f.max(a.eligible)), i))
            } else {
                None
            };
            match (
                finish.filter(|(t, _)| *t <= now),
                start.filter(|(t, _)| *t <= now),
            ) {
                (Some((tf, i)), s) if s.is_none_or(|(ts, _)| tf <= ts) => {
                    let job = active.remove(i);
                    free_since = Some(tf);
                    self.finish_clone(world, &job.key, job.src_dir, job.bytes, &job.source);
                }
                (_, Some((ts, i))) => {
                    active[i].started = Some(ts);
                    let (fs, g, n) = &active[i].key;
                    if let Some(sv) = self.sv_mut(fs, g, n) {
                        sv.state = State::InProgress;
                        if let Some(j) = sv.clone.as_mut() {
                            j.started = Some(ts);
                        }
                    }
                }
                _ => break,
            }
        }
    }

    /// Completes a clone: copies the snapshot's data, or records why it failed.
    fn finish_clone(
        &mut self,
        world: &CloneWorld<'_>,
        key: &(String, String, String),
        src_dir: Option<PathBuf>,
        bytes: u64,
        source: &CloneSource,
    ) {
        let (fs, g, n) = key;
        let injected = world.faults.decide("clone", world.draw).fail;
        let Some(sv) = self.sv_mut(fs, g, n) else {
            return;
        };
        let dest = world
            .data
            .fs_root(fs)
            .join("volumes")
            .join(g)
            .join(n)
            .join(&sv.uuid);
        let quota = sv.realm.max_bytes();
        let outcome = if let Some(e) = injected {
            Err((e, crate::error::strerror(e).to_owned()))
        } else if quota > 0 && bytes > quota {
            Err((errno::EDQUOT, "Disk quota exceeded".to_owned()))
        } else {
            match src_dir {
                Some(src) => copy_tree(&src, &dest)
                    .map(|_| ())
                    .map_err(|e| (e.raw_os_error().unwrap_or(errno::EIO), e.to_string())),
                None => Err((errno::ENOENT, "source snapshot does not exist".to_owned())),
            }
        };
        match outcome {
            Ok(()) => {
                sv.state = State::Complete;
                sv.realm.set_used(bytes);
                if let Some(j) = sv.clone.as_mut() {
                    j.failure = None;
                }
            }
            Err(f) => {
                sv.state = State::Failed;
                if let Some(j) = sv.clone.as_mut() {
                    j.failure = Some(f);
                }
            }
        }
        world.mds.charge_internal(4);
        self.detach_pending_clone(source, n, g);
    }

    fn snapshot_data_dir(&self, data: &DataDir, src: &CloneSource) -> Option<PathBuf> {
        let sv = self
            .groups
            .get(&(src.volume.clone(), src.group.clone()))?
            .subvolumes
            .get(&src.subvolume)?;
        let snap = sv.snapshots.get(&src.snapshot)?;
        Some(
            data.fs_root(&src.volume)
                .join("volumes")
                .join(&src.group)
                .join(&src.subvolume)
                .join(".snap")
                .join(&src.snapshot)
                .join(&snap.uuid),
        )
    }
}
