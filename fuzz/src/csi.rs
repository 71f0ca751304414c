//! The driver's CSI handling: up to eight calls per input to its Identity, Controller and
//! Node services, in process (the tonic service traits, as the gRPC server calls them),
//! on a driver in `all` mode whose cluster is an in-process fake-ceph on a loopback port
//! and whose node mounts with the fake mounter in symlink mode. Its state dir, the
//! kubelet-like directory of staging and target paths, fake-ceph's data dir and the
//! process's working directory are all in one temporary directory.
//!
//! Requests are built from the input: names, IDs (of volumes and snapshots this input
//! created, damaged ones, well-formed ones of nothing, any string), secrets (the admin's,
//! as `userID`/`userKey` or `adminID`/`adminKey`, a wrong key, missing, any map),
//! capabilities (mount or block, any access mode, mount flags), parameters and volume
//! contexts (the ones CreateVolume answered, changed here and there), capacities and
//! paths (staging and target paths under the kubelet directory, as a CO makes them, or
//! any string).
//!
//! Invariants: no panic; no status is `Unknown`; no error message carries a key (the
//! admin's or the wrong one sent), unless a request since the stack was built carried it
//! outside its secrets (`support::Secrets`);
//! nothing appears in the working directory or beside the temporary directory's own
//! entries. After each input the harness unpublishes, unstages and deletes what the input
//! left, as a CO would, and empties the kubelet directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Unstructured;
use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::controller::ControllerService;
use driver::csi::v1::controller_server::Controller;
use driver::csi::v1::identity_server::Identity;
use driver::csi::v1::node_server::Node;
use driver::csi::v1::volume_content_source::{SnapshotSource, VolumeSource};
use driver::csi::v1::*;
use driver::Driver;
use driver::identity::IdentityService;
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use driver::node::NodeService;
use parking_lot::Mutex;
use serde_json::json;
use tonic::{Code, Request, Status};

use crate::support::{Entry, Secrets, diff, listing, runtime};

/// Inputs between two fresh stacks: what failed calls leave behind stays bounded.
const RESET_EVERY: u64 = 2_000;

/// A well-formed cephx key that no entity has.
const WRONG_KEY: &str = "AQDfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz==";

const NAMES: &[&str] = &["pvc-1", "pvc-2", "snap-1", "snap-2", "a", ""];

const PARAM_KEYS: &[&str] = &[
    "clusterID",
    "fsName",
    "pool",
    "volumeNamePrefix",
    "mounter",
    "kernelMountOptions",
    "fuseMountOptions",
    "subvolumeGroup",
    "staticVolume",
    "rootPath",
    "subvolumePath",
    "subvolumeName",
    "monitors",
    "csi.storage.k8s.io/pvc/name",
    "csi.storage.k8s.io/pv/name",
];

const PARAM_VALUES: &[&str] = &[
    "c1",
    "c2",
    "cephfs",
    "nofs",
    "cephfs.cephfs.data",
    "nopool",
    "csi-vol-",
    "kernel",
    "fuse",
    "fake",
    "true",
    "false",
    "/",
    "/volumes/csi",
    "/volumes/csi/../..",
    "relative",
    "127.0.0.1:6789",
    "noatime,ro",
    "",
    "..",
];

const FLAGS: &[&str] = &["noatime", "ro", "rw", "nosuid,nodev", "context=x", ""];

struct State {
    identity: IdentityService,
    controller: ControllerService,
    node: NodeService,
    root: tempfile::TempDir,
    kubelet: PathBuf,
    cwd: PathBuf,
    admin_key: String,
    /// The admin's key and the wrong one.
    keys: Secrets,
    top: Vec<Entry>,
    ceph_server: tokio::task::JoinHandle<()>,
    inputs: u64,
}

impl Drop for State {
    fn drop(&mut self) {
        self.ceph_server.abort();
    }
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// What one input has made so far, for later calls to name.
#[derive(Default)]
struct Made {
    volumes: Vec<(String, HashMap<String, String>)>,
    snapshots: Vec<String>,
    staged: Vec<(String, String)>,
    published: Vec<(String, String)>,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut guard = STATE.lock();
    if guard.as_ref().is_none_or(|s| s.inputs >= RESET_EVERY) {
        *guard = None;
        *guard = Some(State::new());
    }
    let st = guard.as_mut().expect("just built");
    st.inputs += 1;
    let mut u = Unstructured::new(data);
    runtime().block_on(async {
        let mut made = Made::default();
        let n = u.int_in_range(1..=8).unwrap_or(1);
        for _ in 0..n {
            if st.call(&mut u, &mut made).await.is_err() {
                break;
            }
        }
        st.clean(made).await;
    });
    let now = listing(st.root.path(), &[&st.kubelet]);
    let top: Vec<Entry> = now
        .into_iter()
        .filter(|e| e.path.parent() == Some(st.root.path()) || e.path.starts_with(&st.cwd))
        .collect();
    assert!(
        top == st.top,
        "something was made outside its place: {}",
        diff(&st.top, &top)
    );
}

impl State {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("a temporary directory");
        let kubelet = root.path().join("kubelet");
        let cwd = root.path().join("cwd");
        let state_dir = root.path().join("state");
        std::fs::create_dir(&kubelet).expect("kubelet dir");
        std::fs::create_dir(&cwd).expect("working dir");
        // A relative path the driver wrongly accepted would land here.
        std::env::set_current_dir(&cwd).expect("chdir");
        let mut ceph_config = fake_ceph::Config {
            data_dir: Some(root.path().join("ceph")),
            seed: 14,
            ..fake_ceph::Config::default()
        };
        ceph_config.volumes.clone_time = Duration::from_millis(20);
        ceph_config.volumes.clone_pickup = Duration::ZERO;
        let cluster = fake_ceph::Cluster::new(ceph_config).expect("fake-ceph starts");
        let admin_key = cluster.admin_key();
        let keyring = root.path().join("keyring");
        std::fs::write(&keyring, format!("[client.admin]\n\tkey = {admin_key}\n"))
            .expect("keyring");
        let (url, ceph_server) = runtime().block_on(async {
            let r = cluster
                .admin_command(json!({"prefix": "fs subvolumegroup create",
                                      "vol_name": "cephfs", "group_name": "csi"}))
                .await;
            assert_eq!(r.ret, 0, "{}", r.outs);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let addr = listener.local_addr().expect("a bound address");
            let app = fake_ceph::router(cluster);
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (format!("http://{addr}"), server)
        });
        let clusters = json!([{"clusterID": "c1", "monitors": ["127.0.0.1:6789"],
            "cephFS": {"subvolumeGroup": "csi"},
            "admin": {"transport": "http", "url": url},
            "controllerCredentials": {"userID": "admin", "keyFile": keyring}}]);
        let clusters = parse_clusters(&clusters.to_string()).expect("a cluster config");
        let mut config = Config::new("cephfs.csi.trainride", "node-0001", Mode::All, clusters);
        config.mounter = MounterKind::Fake;
        config.ceph_timeout = Duration::from_secs(5);
        config.mount_timeout = Duration::from_secs(5);
        config.clone_wait = Duration::from_millis(200);
        config.state_dir = state_dir.clone();
        let fake: Arc<dyn Mounter> = Arc::new(FakeMounter::new(state_dir, FakeMountMode::Symlink));
        let driver = Arc::new(Driver::new(config, vec![fake]).expect("a driver"));
        let mut st = Self {
            identity: IdentityService::new(driver.clone()),
            controller: ControllerService::new(driver.clone()),
            node: NodeService::new(driver),
            root,
            kubelet,
            cwd,
            keys: Secrets::default(),
            admin_key,
            top: Vec::new(),
            ceph_server,
            inputs: 0,
        };
        // The driver makes its state dir on first use; make it now, so that it is part
        // of what is expected.
        std::fs::create_dir_all(st.root.path().join("state")).expect("state dir");
        st.keys.add("the admin's key", st.admin_key.as_bytes());
        st.keys.add("the wrong key", WRONG_KEY.as_bytes());
        st.top = listing(st.root.path(), &[&st.kubelet])
            .into_iter()
            .filter(|e| e.path.parent() == Some(st.root.path()) || e.path.starts_with(&st.cwd))
            .collect();
        st
    }

    /// Checks one answer: a proper code and no key in the message. `shown` is the
    /// request's `Debug`, which redacts its secrets.
    fn check<T>(&mut self, what: &str, shown: &str, r: &Result<T, Status>) {
        self.keys.saw(shown.as_bytes());
        let Err(s) = r else { return };
        assert!(
            s.code() != Code::Unknown,
            "{what} answered Unknown: {s:?} to {shown}"
        );
        let mut texts = vec![s.message().as_bytes().to_vec()];
        texts.extend(s.metadata().iter().map(|kv| format!("{kv:?}").into_bytes()));
        for t in texts {
            if let Some(key) = self.keys.shown_in(&t) {
                panic!("{what}'s error carries {key}: {s:?} to {shown}");
            }
        }
    }

    /// One call the input describes.
    async fn call(&mut self, u: &mut Unstructured<'_>, made: &mut Made) -> arbitrary::Result<()> {
        macro_rules! rpc {
            ($svc:expr, $method:ident, $req:expr) => {{
                let req = $req;
                // Debug of a request redacts its secrets.
                let shown = format!("{req:?}");
                let r = $svc
                    .$method(Request::new(req))
                    .await
                    .map(|r| r.into_inner());
                self.check(stringify!($method), &shown, &r);
                r
            }};
        }
        match u.int_in_range(0..=23)? {
            0 => drop(rpc!(
                self.identity,
                get_plugin_info,
                GetPluginInfoRequest {}
            )),
            1 => drop(rpc!(
                self.identity,
                get_plugin_capabilities,
                GetPluginCapabilitiesRequest {}
            )),
            2 => drop(rpc!(self.identity, probe, ProbeRequest {})),
            3 | 4 => {
                let source = match u.int_in_range(0..=3)? {
                    0 => Some(volume_content_source::Type::Snapshot(SnapshotSource {
                        snapshot_id: self.snap_id(u, made)?,
                    })),
                    1 => Some(volume_content_source::Type::Volume(VolumeSource {
                        volume_id: self.vol_id(u, made)?,
                    })),
                    _ => None,
                };
                let req = CreateVolumeRequest {
                    name: name(u)?,
                    capacity_range: capacity(u)?,
                    volume_capabilities: caps(u)?,
                    parameters: params(u)?,
                    secrets: self.secrets(u)?,
                    volume_content_source: source.map(|t| VolumeContentSource { r#type: Some(t) }),
                    ..Default::default()
                };
                if let Ok(r) = rpc!(self.controller, create_volume, req)
                    && let Some(v) = r.volume
                {
                    made.volumes.push((v.volume_id, v.volume_context));
                }
            }
            5 => drop(rpc!(
                self.controller,
                delete_volume,
                DeleteVolumeRequest {
                    volume_id: self.vol_id(u, made)?,
                    secrets: self.secrets(u)?,
                }
            )),
            6 => drop(rpc!(
                self.controller,
                controller_publish_volume,
                ControllerPublishVolumeRequest {
                    volume_id: self.vol_id(u, made)?,
                    node_id: (*u.choose(&["node-0001", "node-0002", ""])?).to_owned(),
                    volume_capability: cap(u)?,
                    readonly: u.arbitrary()?,
                    secrets: self.secrets(u)?,
                    volume_context: self.context(u, made)?,
                }
            )),
            7 => drop(rpc!(
                self.controller,
                controller_unpublish_volume,
                ControllerUnpublishVolumeRequest {
                    volume_id: self.vol_id(u, made)?,
                    node_id: (*u.choose(&["node-0001", "node-0002", ""])?).to_owned(),
                    secrets: self.secrets(u)?,
                }
            )),
            8 => drop(rpc!(
                self.controller,
                validate_volume_capabilities,
                ValidateVolumeCapabilitiesRequest {
                    volume_id: self.vol_id(u, made)?,
                    volume_context: self.context(u, made)?,
                    volume_capabilities: caps(u)?,
                    parameters: params(u)?,
                    secrets: self.secrets(u)?,
                    mutable_parameters: HashMap::new(),
                }
            )),
            9 => drop(rpc!(
                self.controller,
                list_volumes,
                ListVolumesRequest {
                    max_entries: small_i32(u)?,
                    starting_token: token(u)?,
                }
            )),
            10 => drop(rpc!(
                self.controller,
                get_capacity,
                GetCapacityRequest {
                    volume_capabilities: caps(u)?,
                    parameters: params(u)?,
                    accessible_topology: None,
                }
            )),
            11 => drop(rpc!(
                self.controller,
                controller_get_capabilities,
                ControllerGetCapabilitiesRequest {}
            )),
            12 => {
                let req = CreateSnapshotRequest {
                    source_volume_id: self.vol_id(u, made)?,
                    name: name(u)?,
                    secrets: self.secrets(u)?,
                    parameters: params(u)?,
                    ..Default::default()
                };
                if let Ok(r) = rpc!(self.controller, create_snapshot, req)
                    && let Some(s) = r.snapshot
                {
                    made.snapshots.push(s.snapshot_id);
                }
            }
            13 => drop(rpc!(
                self.controller,
                delete_snapshot,
                DeleteSnapshotRequest {
                    snapshot_id: self.snap_id(u, made)?,
                    secrets: self.secrets(u)?,
                }
            )),
            14 => drop(rpc!(
                self.controller,
                list_snapshots,
                ListSnapshotsRequest {
                    max_entries: small_i32(u)?,
                    starting_token: token(u)?,
                    source_volume_id: if u.arbitrary()? {
                        self.vol_id(u, made)?
                    } else {
                        String::new()
                    },
                    snapshot_id: if u.arbitrary()? {
                        self.snap_id(u, made)?
                    } else {
                        String::new()
                    },
                    secrets: self.secrets(u)?,
                }
            )),
            15 => drop(rpc!(
                self.controller,
                get_snapshot,
                GetSnapshotRequest {
                    snapshot_id: self.snap_id(u, made)?,
                    secrets: self.secrets(u)?,
                }
            )),
            16 => drop(rpc!(
                self.controller,
                controller_expand_volume,
                ControllerExpandVolumeRequest {
                    volume_id: self.vol_id(u, made)?,
                    capacity_range: capacity(u)?,
                    secrets: self.secrets(u)?,
                    volume_capability: cap(u)?,
                }
            )),
            17 => drop(rpc!(
                self.controller,
                controller_get_volume,
                ControllerGetVolumeRequest {
                    volume_id: self.vol_id(u, made)?,
                }
            )),
            18 => drop(rpc!(
                self.controller,
                controller_modify_volume,
                ControllerModifyVolumeRequest {
                    volume_id: self.vol_id(u, made)?,
                    secrets: self.secrets(u)?,
                    mutable_parameters: params(u)?,
                }
            )),
            19 => {
                let volume_id = self.vol_id(u, made)?;
                let staging = self.path(u, "staging")?;
                made.staged.push((volume_id.clone(), staging.clone()));
                drop(rpc!(
                    self.node,
                    node_stage_volume,
                    NodeStageVolumeRequest {
                        volume_id,
                        publish_context: HashMap::new(),
                        staging_target_path: staging,
                        volume_capability: cap(u)?,
                        secrets: self.secrets(u)?,
                        volume_context: self.context(u, made)?,
                    }
                ));
            }
            20 => {
                let volume_id = self.vol_id(u, made)?;
                let staging = match made.staged.last() {
                    Some((_, p)) if u.ratio(3, 4)? => p.clone(),
                    _ => self.path(u, "staging")?,
                };
                let target = self.path(u, "target")?;
                made.published.push((volume_id.clone(), target.clone()));
                drop(rpc!(
                    self.node,
                    node_publish_volume,
                    NodePublishVolumeRequest {
                        volume_id,
                        publish_context: HashMap::new(),
                        staging_target_path: staging,
                        target_path: target,
                        volume_capability: cap(u)?,
                        readonly: u.arbitrary()?,
                        secrets: self.secrets(u)?,
                        volume_context: self.context(u, made)?,
                    }
                ));
            }
            21 => {
                let (volume_id, path) = match u.int_in_range(0..=2)? {
                    0 if !made.published.is_empty() => u.choose(&made.published)?.clone(),
                    1 if !made.staged.is_empty() => u.choose(&made.staged)?.clone(),
                    _ => (self.vol_id(u, made)?, self.path(u, "target")?),
                };
                if u.arbitrary()? {
                    drop(rpc!(
                        self.node,
                        node_unpublish_volume,
                        NodeUnpublishVolumeRequest {
                            volume_id,
                            target_path: path,
                        }
                    ));
                } else {
                    drop(rpc!(
                        self.node,
                        node_unstage_volume,
                        NodeUnstageVolumeRequest {
                            volume_id,
                            staging_target_path: path,
                        }
                    ));
                }
            }
            22 => {
                let volume_id = self.vol_id(u, made)?;
                let path = match made.published.last() {
                    Some((_, p)) if u.ratio(3, 4)? => p.clone(),
                    _ => self.path(u, "target")?,
                };
                if u.arbitrary()? {
                    drop(rpc!(
                        self.node,
                        node_get_volume_stats,
                        NodeGetVolumeStatsRequest {
                            volume_id,
                            volume_path: path,
                            staging_target_path: self.path(u, "staging")?,
                        }
                    ));
                } else {
                    drop(rpc!(
                        self.node,
                        node_expand_volume,
                        NodeExpandVolumeRequest {
                            volume_id,
                            volume_path: path,
                            capacity_range: capacity(u)?,
                            staging_target_path: self.path(u, "staging")?,
                            volume_capability: cap(u)?,
                            secrets: self.secrets(u)?,
                        }
                    ));
                }
            }
            _ => {
                drop(rpc!(
                    self.node,
                    node_get_capabilities,
                    NodeGetCapabilitiesRequest {}
                ));
                drop(rpc!(self.node, node_get_info, NodeGetInfoRequest {}));
            }
        }
        Ok(())
    }

    /// Undoes what an input left, as a CO would: unpublish, unstage, delete; then the
    /// kubelet directory is emptied.
    async fn clean(&self, made: Made) {
        for (volume_id, target_path) in made.published.into_iter().rev() {
            let _ = self
                .node
                .node_unpublish_volume(Request::new(NodeUnpublishVolumeRequest {
                    volume_id,
                    target_path,
                }))
                .await;
        }
        for (volume_id, staging_target_path) in made.staged.into_iter().rev() {
            let _ = self
                .node
                .node_unstage_volume(Request::new(NodeUnstageVolumeRequest {
                    volume_id,
                    staging_target_path,
                }))
                .await;
        }
        for snapshot_id in made.snapshots {
            let _ = self
                .controller
                .delete_snapshot(Request::new(DeleteSnapshotRequest {
                    snapshot_id,
                    secrets: self.admin_secrets(),
                }))
                .await;
        }
        for (volume_id, _) in made.volumes {
            let _ = self
                .controller
                .delete_volume(Request::new(DeleteVolumeRequest {
                    volume_id,
                    secrets: self.admin_secrets(),
                }))
                .await;
        }
        let _ = std::fs::remove_dir_all(&self.kubelet);
        std::fs::create_dir(&self.kubelet).expect("kubelet dir");
    }

    fn admin_secrets(&self) -> HashMap<String, String> {
        HashMap::from([
            ("adminID".to_owned(), "admin".to_owned()),
            ("adminKey".to_owned(), self.admin_key.clone()),
        ])
    }

    fn secrets(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<HashMap<String, String>> {
        let pair = |a: &str, b: &str, k: &str| {
            HashMap::from([
                (a.to_owned(), "admin".to_owned()),
                (b.to_owned(), k.to_owned()),
            ])
        };
        Ok(match u.int_in_range(0..=7)? {
            0..=2 => self.admin_secrets(),
            3 => pair("userID", "userKey", &self.admin_key),
            4 => pair("adminID", "adminKey", WRONG_KEY),
            5 => HashMap::new(),
            6 => HashMap::from([("userID".to_owned(), string(u)?)]),
            _ => HashMap::from([(string(u)?, string(u)?), (string(u)?, string(u)?)]),
        })
    }

    fn vol_id(&self, u: &mut Unstructured<'_>, made: &Made) -> arbitrary::Result<String> {
        if !made.volumes.is_empty() && u.ratio(2, 3)? {
            let id = u.choose(&made.volumes)?.0.clone();
            return if u.ratio(1, 8)? {
                damage(u, &id)
            } else {
                Ok(id)
            };
        }
        other_id(u)
    }

    fn snap_id(&self, u: &mut Unstructured<'_>, made: &Made) -> arbitrary::Result<String> {
        if !made.snapshots.is_empty() && u.ratio(2, 3)? {
            let id = u.choose(&made.snapshots)?.clone();
            return if u.ratio(1, 8)? {
                damage(u, &id)
            } else {
                Ok(id)
            };
        }
        other_id(u)
    }

    /// The context CreateVolume answered (changed now and then), or another.
    fn context(
        &self,
        u: &mut Unstructured<'_>,
        made: &Made,
    ) -> arbitrary::Result<HashMap<String, String>> {
        let mut ctx = if !made.volumes.is_empty() && u.ratio(3, 4)? {
            u.choose(&made.volumes)?.1.clone()
        } else {
            HashMap::new()
        };
        for _ in 0..u.int_in_range(0..=2)? {
            ctx.insert(key(u)?, value(u)?);
        }
        Ok(ctx)
    }

    /// A staging or target path under the kubelet directory (its parent made, as a CO
    /// makes it), or any string; an absolute one outside the temporary directory is
    /// moved under it, since a CO's choice of path is not the driver's to question.
    fn path(&self, u: &mut Unstructured<'_>, kind: &str) -> arbitrary::Result<String> {
        if u.ratio(1, 8)? {
            let raw: String = u.arbitrary()?;
            return Ok(if raw.starts_with('/') {
                format!("{}{raw}", self.kubelet.display())
            } else {
                raw
            });
        }
        let i = u.int_in_range(0..=2)?;
        let dir = self.kubelet.join(format!("{kind}-{i}"));
        let path = dir.join("mount");
        let _ = std::fs::create_dir_all(&dir);
        if kind == "staging" && u.ratio(3, 4)? {
            let _ = std::fs::create_dir(&path);
        }
        Ok(path.display().to_string())
    }
}

/// An ID of something that does not exist, or not an ID at all.
fn other_id(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=4)? {
        0 => "0001-0002-c1-0000000000000001-00000000-0000-0000-0000-000000000000".into(),
        1 => format!(
            "0001-0002-c{}-{:016x}-{}",
            u.int_in_range(0..=9)?,
            u.int_in_range(0..=3u64)?,
            "123e4567-e89b-12d3-a456-426614174000"
        ),
        2 => String::new(),
        _ => string(u)?,
    })
}

/// An ID with one byte changed, cut short or lengthened.
fn damage(u: &mut Unstructured<'_>, id: &str) -> arbitrary::Result<String> {
    let mut b = id.as_bytes().to_vec();
    match u.int_in_range(0..=2)? {
        0 if !b.is_empty() => {
            let i = u.choose_index(b.len())?;
            b[i] = u.arbitrary()?;
        }
        1 => b.truncate(u.choose_index(b.len() + 1)?),
        _ => b.extend_from_slice(u.arbitrary::<String>()?.as_bytes()),
    }
    Ok(String::from_utf8_lossy(&b).into_owned())
}

fn string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=5)? {
        0 => "x".repeat(u.int_in_range(120..=140)?),
        1 | 2 => (*u.choose(PARAM_VALUES)?).to_owned(),
        _ => u.arbitrary()?,
    })
}

fn name(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 4)? {
        return string(u);
    }
    Ok((*u.choose(NAMES)?).to_owned())
}

fn token(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => String::new(),
        1 => u.int_in_range(0..=5u32)?.to_string(),
        _ => string(u)?,
    })
}

fn small_i32(u: &mut Unstructured<'_>) -> arbitrary::Result<i32> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary()?,
        _ => u.int_in_range(0..=3)?,
    })
}

fn key(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 8)? {
        return u.arbitrary();
    }
    Ok((*u.choose(PARAM_KEYS)?).to_owned())
}

fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    string(u)
}

fn params(u: &mut Unstructured<'_>) -> arbitrary::Result<HashMap<String, String>> {
    let mut p = HashMap::new();
    if !u.ratio(1, 8)? {
        p.insert("clusterID".to_owned(), "c1".to_owned());
        p.insert("fsName".to_owned(), "cephfs".to_owned());
    }
    for _ in 0..u.int_in_range(0..=2)? {
        p.insert(key(u)?, value(u)?);
    }
    Ok(p)
}

fn capacity(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<CapacityRange>> {
    let bytes = |u: &mut Unstructured<'_>| -> arbitrary::Result<i64> {
        Ok(match u.int_in_range(0..=6)? {
            0 => u.arbitrary()?,
            1 => -1,
            2 => i64::MAX,
            3 => 0,
            4 => 1,
            _ => 1 << 30,
        })
    };
    Ok(match u.int_in_range(0..=3)? {
        0 => None,
        _ => Some(CapacityRange {
            required_bytes: bytes(u)?,
            limit_bytes: bytes(u)?,
        }),
    })
}

fn cap(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<VolumeCapability>> {
    if u.ratio(1, 8)? {
        return Ok(None);
    }
    let access_type = match u.int_in_range(0..=5)? {
        0 => None,
        1 => Some(volume_capability::AccessType::Block(
            volume_capability::BlockVolume {},
        )),
        _ => {
            let mut flags = Vec::new();
            for _ in 0..u.int_in_range(0..=2)? {
                flags.push(if u.ratio(1, 4)? {
                    u.arbitrary()?
                } else {
                    (*u.choose(FLAGS)?).to_owned()
                });
            }
            Some(volume_capability::AccessType::Mount(
                volume_capability::MountVolume {
                    fs_type: (*u.choose(&["", "ceph", "ext4"])?).to_owned(),
                    mount_flags: flags,
                    volume_mount_group: if u.ratio(1, 8)? {
                        u.arbitrary()?
                    } else {
                        String::new()
                    },
                },
            ))
        }
    };
    let mode = match u.int_in_range(0..=7)? {
        0 => None,
        1 => Some(u.arbitrary()?),
        _ => Some(u.int_in_range(1..=7)?),
    };
    Ok(Some(VolumeCapability {
        access_type,
        access_mode: mode.map(|mode| volume_capability::AccessMode { mode }),
    }))
}

fn caps(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<VolumeCapability>> {
    let mut v = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        if let Some(c) = cap(u)? {
            v.push(c);
        }
    }
    if v.is_empty() && u.ratio(7, 8)? {
        v.push(VolumeCapability {
            access_type: Some(volume_capability::AccessType::Mount(Default::default())),
            access_mode: Some(volume_capability::AccessMode {
                mode: volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
            }),
        });
    }
    Ok(v)
}
