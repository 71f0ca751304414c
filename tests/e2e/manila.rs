//! The Manila back end: `cephfs-csi --backend manila` against fake-manila on fake-ceph,
//! over real gRPC; the lifecycle, retries after a crash, Manila's faults and bad input.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use driver::config::{Backend, Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::*;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use fake_manila::{AppState, CephConfig, CephIdentity, Delays, Faults, Secret};
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Ceph, Csi, mount_cap, publish_req, stage_req, unpublish_req, unstage_req};

const GIB: i64 = 1 << 30;

/// fake-ceph and fake-manila on loopback, Keystone and Manila on ports of their own.
pub struct Cloud {
    pub ceph: Ceph,
    pub manila: AppState,
    /// Keystone's auth URL (`http://127.0.0.1:PORT/v3`); the driver finds Manila's
    /// endpoint through its catalog.
    pub auth_url: String,
}

impl Cloud {
    pub async fn start(f: impl FnOnce(&mut fake_manila::Config)) -> Self {
        let ceph = Ceph::start().await;
        let listeners = fake_manila::Listeners::loopback().await.unwrap();
        let mut config = fake_manila::Config::new(
            listeners.keystone_url(),
            listeners.manila_url(),
            CephConfig {
                url: ceph.url.clone(),
                identity: CephIdentity {
                    entity: "client.admin".into(),
                    key: Secret::new(ceph.admin_key.clone()),
                },
                fs_name: "cephfs".into(),
                group: None,
                timeout: Duration::from_secs(10),
            },
        );
        config.delays = Delays::all(Duration::ZERO);
        config.clone_poll = Duration::from_millis(5);
        f(&mut config);
        let auth_url = format!("{}/v3", listeners.keystone_url());
        let manila = AppState::new(config).unwrap();
        listeners.spawn(manila.clone());
        Self {
            ceph,
            manila,
            auth_url,
        }
    }

    /// The OpenStack secrets of the `demo` user.
    pub fn secrets(&self) -> HashMap<String, String> {
        demo_secrets(&self.auth_url)
    }

    /// A driver with the Manila back end; its node mounts with the fake mounter, which
    /// finds fake-ceph through the cluster config (matched by monitors).
    pub async fn driver(&self, wait: Duration) -> Csi {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let clusters = parse_clusters(&self.ceph.cluster_config()).unwrap();
        let mut config = Config::new("cephfs.csi.trainride", "node-0001", Mode::All, clusters);
        config.backend = Backend::Manila;
        config.manila_wait = wait;
        config.mounter = MounterKind::Fake;
        config.ceph_timeout = Duration::from_secs(5);
        config.state_dir = state_dir.clone();
        Csi::start_config(
            dir,
            config,
            Arc::new(FakeMounter::new(state_dir, FakeMountMode::Symlink)),
        )
        .await
    }

    /// The demo project's shares, as Manila lists them.
    pub async fn shares(&self) -> Vec<Value> {
        shares(&self.auth_url).await
    }

    /// Every subvolume in every group of `cephfs`.
    pub async fn subvolumes(&self) -> Vec<String> {
        let c = &self.ceph.cluster;
        let groups = c
            .admin_command(json!({"prefix": "fs subvolumegroup ls", "vol_name": "cephfs"}))
            .await;
        let mut names = vec!["_nogroup".to_owned()];
        for g in serde_json::from_str::<Value>(&groups.outb)
            .unwrap()
            .as_array()
            .unwrap()
        {
            names.push(g["name"].as_str().unwrap().to_owned());
        }
        let mut out = Vec::new();
        for g in names {
            // The implicit group cannot be named (Ceph answers EPERM).
            let mut ls = json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"});
            if g != "_nogroup" {
                ls["group_name"] = json!(g);
            }
            let r = c.admin_command(ls).await;
            if r.ret == 0 {
                for s in serde_json::from_str::<Value>(&r.outb)
                    .unwrap()
                    .as_array()
                    .unwrap()
                {
                    out.push(format!("{g}/{}", s["name"].as_str().unwrap()));
                }
            }
        }
        out
    }

    /// cephx entities other than the cluster's own.
    pub async fn client_users(&self) -> Vec<String> {
        let r = self
            .ceph
            .cluster
            .admin_command(json!({"prefix": "auth ls", "format": "json"}))
            .await;
        serde_json::from_str::<Value>(&r.outb).unwrap()["auth_dump"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["entity"].as_str())
            .filter(|e| {
                e.starts_with("client.")
                    && *e != "client.admin"
                    && !e.starts_with("client.bootstrap-")
            })
            .map(str::to_owned)
            .collect()
    }
}

/// The demo project's shares at the fake-manila whose Keystone is at `auth_url`
/// (found through the catalog, as every client finds it).
pub async fn shares(auth_url: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(
            &json!({"auth": {"identity": {"methods": ["password"], "password": {"user":
            {"name": "demo", "domain": {"name": "Default"}, "password": "demo"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}),
        )
        .send()
        .await
        .unwrap();
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let endpoint = body["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "sharev2")
        .unwrap()["endpoints"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let v: Value = http
        .get(format!("{endpoint}/shares/detail"))
        .header("X-Auth-Token", token)
        .header("X-OpenStack-Manila-API-Version", "2.45")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["shares"].as_array().unwrap().clone()
}

fn demo_secrets(auth_url: &str) -> HashMap<String, String> {
    HashMap::from([
        ("os-authURL".to_owned(), auth_url.to_owned()),
        ("os-userName".to_owned(), "demo".to_owned()),
        ("os-password".to_owned(), "demo".to_owned()),
        ("os-projectName".to_owned(), "demo".to_owned()),
        ("os-domainName".to_owned(), "Default".to_owned()),
    ])
}

pub fn create(cloud: &Cloud, name: &str, size: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: size,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_cap()],
        parameters: HashMap::from([("type".to_owned(), "cephfstype".to_owned())]),
        secrets: cloud.secrets(),
        ..Default::default()
    }
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    r.map(|_| ()).map_or_else(|e| e.code(), |()| Code::Ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_is_created_mounted_written_snapshotted_and_removed() {
    let cloud = Cloud::start(|_| {}).await;
    let csi = cloud.driver(Duration::from_secs(10)).await;
    let mut ctl = csi.controller().await;
    let mut node = csi.node().await;

    let vol = ctl
        .create_volume(create(&cloud, "pvc-m1", GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(vol.capacity_bytes, GIB);
    assert_eq!(vol.volume_context["shareID"], vol.volume_id);
    assert!(vol.volume_context.contains_key("shareAccessID"));
    // Idempotent by name; another size is AlreadyExists.
    let again = ctl
        .create_volume(create(&cloud, "pvc-m1", GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.volume.unwrap().volume_id, vol.volume_id);
    assert_eq!(
        code(ctl.create_volume(create(&cloud, "pvc-m1", 2 * GIB)).await),
        Code::AlreadyExists
    );
    assert_eq!(cloud.shares().await.len(), 1);
    assert_eq!(cloud.subvolumes().await.len(), 1);
    assert_eq!(cloud.client_users().await, ["client.pvc-m1"]);

    // Stage with the OpenStack secrets: the node finds the export location and the key.
    let staging = csi.dir.path().join("staging");
    let target = csi.dir.path().join("pods/p1/volume");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let stage = stage_req(&vol, &staging, cloud.secrets());
    node.node_stage_volume(stage.clone()).await.unwrap();
    node.node_stage_volume(stage).await.unwrap();
    assert_eq!(cloud.ceph.cluster.session_count(), 1);
    node.node_publish_volume(publish_req(&vol, &staging, &target))
        .await
        .unwrap();
    std::fs::write(target.join("hello.txt"), b"hello from manila").unwrap();
    let sub = cloud.subvolumes().await.pop().unwrap();
    let (group, name) = sub.split_once('/').unwrap();
    let mut getpath =
        json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "sub_name": name});
    if group != "_nogroup" {
        getpath["group_name"] = json!(group);
    }
    let path = cloud.ceph.cluster.admin_command(getpath).await.outb;
    let in_tree = cloud
        .ceph
        .cluster
        .fs_root("cephfs")
        .join(path.trim().trim_start_matches('/'))
        .join("hello.txt");
    assert_eq!(
        std::fs::read(&in_tree)
            .unwrap_or_else(|e| panic!("{}: {e} ({sub} {path:?})", in_tree.display())),
        b"hello from manila"
    );

    // Expand through Manila's extend.
    let exp = ctl
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: vol.volume_id.clone(),
            capacity_range: Some(CapacityRange {
                required_bytes: 2 * GIB,
                limit_bytes: 0,
            }),
            secrets: cloud.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exp.capacity_bytes, 2 * GIB);
    assert_eq!(cloud.shares().await[0]["size"], 2);

    // Snapshot, and a new volume from it that holds the file.
    let snap = ctl
        .create_snapshot(CreateSnapshotRequest {
            source_volume_id: vol.volume_id.clone(),
            name: "snap-m1".into(),
            secrets: cloud.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(snap.ready_to_use);
    assert_eq!(snap.size_bytes, 2 * GIB);
    let mut restore = create(&cloud, "pvc-m2", 2 * GIB);
    restore.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: snap.snapshot_id.clone(),
            },
        )),
    });
    let restored = ctl
        .create_volume(restore)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let staging2 = csi.dir.path().join("staging2");
    std::fs::create_dir_all(&staging2).unwrap();
    node.node_stage_volume(stage_req(&restored, &staging2, cloud.secrets()))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(staging2.join("hello.txt")).unwrap(),
        b"hello from manila"
    );

    // A share with a snapshot cannot go yet.
    let del = |id: &str| DeleteVolumeRequest {
        volume_id: id.to_owned(),
        secrets: cloud.secrets(),
    };
    assert_eq!(
        code(ctl.delete_volume(del(&vol.volume_id)).await),
        Code::FailedPrecondition
    );

    // Tear down: nothing left in Manila or Ceph.
    for (vid, path) in [(&restored.volume_id, &staging2), (&vol.volume_id, &staging)] {
        if *vid == vol.volume_id {
            node.node_unpublish_volume(unpublish_req(vid, &target))
                .await
                .unwrap();
        }
        node.node_unstage_volume(unstage_req(vid, path))
            .await
            .unwrap();
    }
    assert_eq!(cloud.ceph.cluster.session_count(), 0);
    ctl.delete_volume(del(&restored.volume_id)).await.unwrap();
    let dsnap = DeleteSnapshotRequest {
        snapshot_id: snap.snapshot_id.clone(),
        secrets: cloud.secrets(),
    };
    ctl.delete_snapshot(dsnap.clone()).await.unwrap();
    ctl.delete_snapshot(dsnap).await.unwrap();
    ctl.delete_volume(del(&vol.volume_id)).await.unwrap();
    ctl.delete_volume(del(&vol.volume_id)).await.unwrap();
    assert!(cloud.shares().await.is_empty());
    assert!(
        cloud.subvolumes().await.is_empty(),
        "{:?}",
        cloud.subvolumes().await
    );
    assert!(
        cloud.client_users().await.is_empty(),
        "{:?}",
        cloud.client_users().await
    );
    // No OpenStack password, token or cephx key in the metrics.
    let metrics = csi.driver.metrics.render();
    assert!(metrics.contains(r#"cephfs_csi_rpcs_total{method="CreateVolume",code="OK"}"#));
    assert!(!metrics.contains("demo"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_after_a_crash_finds_the_same_share() {
    // Shares take 300 ms; the first driver gives up waiting after 50 ms and "crashes".
    let cloud = Cloud::start(|c| c.delays.create = Duration::from_millis(300)).await;
    let first = cloud.driver(Duration::from_millis(50)).await;
    let e = first
        .controller()
        .await
        .create_volume(create(&cloud, "pvc-crash", GIB))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    let _ = first.stop().await;
    let second = cloud.driver(Duration::from_secs(10)).await;
    let vol = second
        .controller()
        .await
        .create_volume(create(&cloud, "pvc-crash", GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let shares = cloud.shares().await;
    assert_eq!(shares.len(), 1, "{shares:?}");
    assert_eq!(shares[0]["id"], vol.volume_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_shares_and_rules_are_rolled_back_with_a_clear_error() {
    let cloud = Cloud::start(|c| {
        c.faults = Faults {
            share_error_rate: 1.0,
            ..Faults::default()
        }
    })
    .await;
    let csi = cloud.driver(Duration::from_secs(10)).await;
    let mut ctl = csi.controller().await;
    let e = ctl
        .create_volume(create(&cloud, "pvc-err", GIB))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(e.message().contains("error"), "{}", e.message());
    assert!(cloud.shares().await.is_empty());
    assert!(cloud.subvolumes().await.is_empty());

    cloud
        .manila
        .set_faults(Faults {
            access_error_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let e = ctl
        .create_volume(create(&cloud, "pvc-rule", GIB))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(e.message().contains("rule"), "{}", e.message());
    assert!(cloud.shares().await.is_empty());
    assert!(cloud.subvolumes().await.is_empty());
    let users = cloud.client_users().await;
    assert!(users.is_empty(), "{users:?}");

    // A share stuck in `creating`: DeadlineExceeded, and a retry finds the same share.
    cloud
        .manila
        .set_faults(Faults {
            stuck_creating_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let quick = cloud.driver(Duration::from_millis(100)).await;
    let mut qctl = quick.controller().await;
    for _ in 0..2 {
        assert_eq!(
            code(qctl.create_volume(create(&cloud, "pvc-stuck", GIB)).await),
            Code::DeadlineExceeded
        );
    }
    assert_eq!(cloud.shares().await.len(), 1);

    // Manila answering 500/503: Unavailable, which the CO retries.
    cloud
        .manila
        .set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    assert_eq!(
        code(ctl.create_volume(create(&cloud, "pvc-5xx", GIB)).await),
        Code::Unavailable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_manila_failed_to_delete_is_an_error_that_names_the_administrator() {
    // Manila leaves a share whose Ceph side it could not remove in `error_deleting`, and
    // refuses its owner's further deletes: only an administrator can act, so the error
    // says so (and not "retry"), on the first delete and on every retry.
    let cloud = Cloud::start(|_| {}).await;
    let csi = cloud.driver(Duration::from_secs(10)).await;
    let mut ctl = csi.controller().await;
    let vol = ctl
        .create_volume(create(&cloud, "pvc-undeletable", GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let rule = "error:fs subvolume rm=1:5"
        .parse::<fake_ceph::FaultSpec>()
        .unwrap()
        .0;
    cloud.ceph.cluster.set_faults(fake_ceph::Faults {
        rules: vec![rule],
        mds_down: false,
    });
    for _ in 0..2 {
        let e = ctl
            .delete_volume(DeleteVolumeRequest {
                volume_id: vol.volume_id.clone(),
                secrets: cloud.secrets(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Internal, "{e:?}");
        assert!(
            e.message().contains("error_deleting") && e.message().contains("administrator"),
            "{}",
            e.message()
        );
    }
    let shares = cloud.shares().await;
    assert_eq!(shares.len(), 1, "{shares:?}");
    assert_eq!(shares[0]["status"], "error_deleting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_matching_code_and_message() {
    let cloud = Cloud::start(|c| c.quotas.gigabytes = 3).await;
    let csi = cloud.driver(Duration::from_secs(10)).await;
    let mut ctl = csi.controller().await;

    let mut r = create(&cloud, "pvc-type", GIB);
    r.parameters.insert("type".into(), "no-such-type".into());
    let e = ctl.create_volume(r).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    let mut r = create(&cloud, "pvc-creds", GIB);
    r.secrets.insert("os-password".into(), "wrong".into());
    let e = ctl.create_volume(r).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains("wrong"), "{}", e.message());

    let mut r = create(&cloud, "pvc-nosecrets", GIB);
    r.secrets.clear();
    let e = ctl.create_volume(r).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("os-authURL"), "{}", e.message());

    let e = ctl
        .create_volume(create(&cloud, "pvc-big", 5 * GIB))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().to_lowercase().contains("quota"),
        "{}",
        e.message()
    );
    assert!(cloud.shares().await.is_empty());

    let mut r = create(&cloud, "pvc-nfs", GIB);
    r.parameters.insert("protocol".into(), "NFS".into());
    assert_eq!(code(ctl.create_volume(r).await), Code::InvalidArgument);

    // Unknown volumes: delete is OK, expand NotFound.
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: "00000000-0000-0000-0000-000000000000".into(),
        secrets: cloud.secrets(),
    })
    .await
    .unwrap();
    assert_eq!(
        code(
            ctl.controller_expand_volume(ControllerExpandVolumeRequest {
                volume_id: "00000000-0000-0000-0000-000000000000".into(),
                capacity_range: Some(CapacityRange {
                    required_bytes: GIB,
                    limit_bytes: 0
                }),
                secrets: cloud.secrets(),
                ..Default::default()
            })
            .await
        ),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binaries_provision_mount_and_remove_a_share() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use crate::processes::{Proc, admin, bin, start_driver_with, start_fake_ceph};

    const PASSWORD: &str = "pa55-Zq9-not-in-any-log";
    let dir = tempfile::tempdir().unwrap();
    let (_ceph, ceph_url, key) = start_fake_ceph(dir.path());
    let users = dir.path().join("users.json");
    std::fs::write(
        &users,
        json!({"users": [
            {"name": "demo", "password": "demo", "project": "demo", "roles": ["member"]},
            {"name": "alice", "password": PASSWORD, "project": "demo", "roles": ["member"]}]})
        .to_string(),
    )
    .unwrap();
    let secrets = |url: &str| {
        let mut s = demo_secrets(url);
        s.insert("os-userName".into(), "alice".into());
        s.insert("os-password".into(), PASSWORD.into());
        s
    };
    let mut child = Command::new(bin("fake-manila"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--ceph-url",
            &ceph_url,
            "--delay-ms",
            "0",
        ])
        .arg("--ceph-keyring")
        .arg(dir.path().join("keyring"))
        .arg("--users")
        .arg(&users)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Keystone's auth URL first, then Manila's endpoint (found by the driver through
    // the catalog, not told).
    let (mut line, mut manila_line) = (String::new(), String::new());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    out.read_line(&mut manila_line).unwrap();
    let _manila = Proc(child);
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(url.ends_with("/v3"), "{url}");
    assert!(
        manila_line.starts_with("http://127.0.0.1:"),
        "{manila_line}"
    );
    let config = dir.path().join("clusters.json");
    std::fs::write(
        &config,
        json!([{"clusterID": "c1", "monitors": ["127.0.0.1:6789"],
                "admin": {"transport": "http", "url": ceph_url}}])
        .to_string(),
    )
    .unwrap();
    let _driver = start_driver_with(dir.path(), &config, &["--backend", "manila"]);
    let channel = crate::support::channel(&dir.path().join("csi.sock")).await;
    let mut ctl = driver::csi::v1::controller_client::ControllerClient::new(channel.clone());
    let mut node = driver::csi::v1::node_client::NodeClient::new(channel);

    let vol = ctl
        .create_volume(CreateVolumeRequest {
            name: "pvc-proc".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: GIB,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_cap()],
            secrets: secrets(&url),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let staging = dir.path().join("staging");
    let target = dir.path().join("pods/p/volume");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    node.node_stage_volume(stage_req(&vol, &staging, secrets(&url)))
        .await
        .unwrap();
    node.node_publish_volume(publish_req(&vol, &staging, &target))
        .await
        .unwrap();
    std::fs::write(target.join("f"), b"written by a pod").unwrap();
    assert_eq!(
        std::fs::read(staging.join("f")).unwrap(),
        b"written by a pod"
    );
    node.node_unpublish_volume(unpublish_req(&vol.volume_id, &target))
        .await
        .unwrap();
    node.node_unstage_volume(unstage_req(&vol.volume_id, &staging))
        .await
        .unwrap();
    let user = admin(
        &ceph_url,
        &key,
        json!({"prefix": "auth get", "entity": "client.pvc-proc", "format": "json"}),
    )
    .await;
    let user: Value = serde_json::from_str(user["outb"].as_str().unwrap()).unwrap();
    let access_key = user[0]["key"].as_str().unwrap().to_owned();
    // A wrong password is refused without being repeated.
    let mut wrong = secrets(&url);
    wrong.insert("os-password".into(), "wrong-pa55-also-secret".into());
    let e = ctl
        .delete_volume(DeleteVolumeRequest {
            volume_id: vol.volume_id.clone(),
            secrets: wrong,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains("wrong-pa55"), "{e:?}");
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        secrets: secrets(&url),
    })
    .await
    .unwrap();
    // The share, its rule, the cephx user and the subvolume are gone.
    assert!(shares(&url).await.is_empty());
    let users = admin(
        &ceph_url,
        &key,
        json!({"prefix": "auth ls", "format": "json"}),
    )
    .await;
    assert!(
        !users["outb"].as_str().unwrap().contains("client.pvc-proc"),
        "{users}"
    );
    let subs = admin(
        &ceph_url,
        &key,
        json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"}),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(subs["outb"].as_str().unwrap()).unwrap(),
        json!([])
    );
    // The driver's debug log names neither password nor key; nor does any file it left.
    let log = std::fs::read_to_string(dir.path().join("driver.log")).unwrap();
    assert!(log.contains("CreateVolume"), "the log is captured: {log}");
    for secret in [
        PASSWORD,
        "wrong-pa55-also-secret",
        access_key.as_str(),
        key.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret in the log: {log}");
    }
    for f in walk_files(&dir.path().join("state")) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(
            !text.contains(&access_key) && !text.contains(PASSWORD),
            "{}",
            f.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_volume_names_its_share_and_rule() {
    let cloud = Cloud::start(|_| {}).await;
    let csi = cloud.driver(Duration::from_secs(10)).await;
    let vol = csi
        .controller()
        .await
        .create_volume(create(&cloud, "pvc-static", GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    // A PV written by hand: the share by name, the rule by ID, no CreateVolume.
    let mut by_name = vol.clone();
    by_name.volume_id = "static-pv-1".into();
    by_name.volume_context = HashMap::from([
        ("shareName".to_owned(), "pvc-static".to_owned()),
        (
            "shareAccessID".to_owned(),
            vol.volume_context["shareAccessID"].clone(),
        ),
    ]);
    let staging = csi.dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut node = csi.node().await;
    node.node_stage_volume(stage_req(&by_name, &staging, cloud.secrets()))
        .await
        .unwrap();
    assert_eq!(cloud.ceph.cluster.session_count(), 1);
    node.node_unstage_volume(unstage_req(&by_name.volume_id, &staging))
        .await
        .unwrap();
    assert_eq!(cloud.ceph.cluster.session_count(), 0);
    // A rule that does not exist, or no rule at all, is refused before any mount.
    by_name
        .volume_context
        .insert("shareAccessID".into(), "nope".into());
    let e = node
        .node_stage_volume(stage_req(&by_name, &staging, cloud.secrets()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    by_name.volume_context.remove("shareAccessID");
    let e = node
        .node_stage_volume(stage_req(&by_name, &staging, cloud.secrets()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(cloud.ceph.cluster.session_count(), 0);
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
