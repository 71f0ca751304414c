//! The Ceph contract: one set of checks of every command the driver and fake-manila rely
//! on (answers, error codes, idempotency, caps), run against fake-ceph always and against
//! a real cluster when `TRAINRIDE_REAL_CEPH` names one (`ci/ceph-cluster.sh start`).
//! fake-ceph is reached through the driver's HTTP transport, the real cluster through
//! its `cli` transport (the `ceph` and `rados` commands), so both transports are checked
//! too. Where the two disagree, the real cluster is right.

use std::time::Duration;

use driver::ceph::cli::CliTransport;
use driver::ceph::http::HttpTransport;
use driver::ceph::{Answer, CephError, Credentials, Target, Transport, errno};
use serde_json::{Value, json};

use crate::real_ceph::RealCeph;
use crate::support::Ceph;

const GIB: u64 = 1 << 30;

/// One Ceph cluster as the checks see it.
struct Side {
    name: &'static str,
    transport: Box<dyn Transport>,
    admin: Credentials,
    /// Keeps an in-process fake-ceph alive.
    _fake: Option<Ceph>,
    /// A prefix that keeps names of concurrent and earlier runs apart.
    tag: String,
}

impl Side {
    async fn fake() -> Self {
        let ceph = Ceph::start().await;
        Self {
            name: "fake-ceph",
            transport: Box::new(HttpTransport::new(&ceph.url).unwrap()),
            admin: Credentials::new("admin", ceph.admin_key.as_str()),
            _fake: Some(ceph),
            tag: "ct".into(),
        }
    }

    fn real() -> Option<Self> {
        let r = RealCeph::from_env()?;
        Some(Self {
            name: "real ceph",
            transport: Box::new(CliTransport::new(
                &r.dir.join("ceph.conf"),
                &["127.0.0.1:6789".into()],
                None,
                None,
            )),
            admin: Credentials::new("admin", r.admin_key.as_str()),
            _fake: None,
            tag: format!("ct{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        })
    }

    async fn run(&self, target: Target, cmd: Value) -> Result<Answer, CephError> {
        self.transport
            .command(&self.admin, target, &cmd, Duration::from_secs(60))
            .await
    }

    async fn ok(&self, target: Target, cmd: Value) -> String {
        match self.run(target, cmd.clone()).await {
            Ok(a) => a.outb,
            Err(e) => panic!("{}: {cmd} failed: {e}", self.name),
        }
    }

    async fn ok_json(&self, target: Target, cmd: Value) -> Value {
        let out = self.ok(target, cmd.clone()).await;
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{}: {cmd} gave {out:?}: {e}", self.name))
    }

    /// The errno of a command that must fail.
    async fn errno(&self, target: Target, cmd: Value) -> (i32, String) {
        match self.run(target, cmd.clone()).await {
            Ok(a) => panic!("{}: {cmd} succeeded ({a:?}) but must fail", self.name),
            Err(CephError::Command { errno, message, .. }) => (errno, message),
            Err(e) => panic!("{}: {cmd} failed without an errno: {e}", self.name),
        }
    }

    fn sub(&self, args: Value) -> Value {
        let mut cmd = json!({"vol_name": "cephfs", "group_name": "csi", "format": "json"});
        for (k, v) in args.as_object().unwrap() {
            cmd[k] = v.clone();
        }
        cmd
    }
}

/// Runs a check against fake-ceph, and against the real cluster when there is one.
macro_rules! contract {
    ($check:ident) => {
        mod $check {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fake_ceph() {
                super::$check(&super::Side::fake().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real_ceph() {
                match super::Side::real() {
                    Some(side) => super::$check(&side).await,
                    None => println!("skipped: TRAINRIDE_REAL_CEPH is not set"),
                }
            }
        }
    };
}

contract!(file_systems_monitors_and_capacity);
async fn file_systems_monitors_and_capacity(s: &Side) {
    let fs = s
        .ok_json(Target::Mon, json!({"prefix": "fs ls", "format": "json"}))
        .await;
    let cephfs = fs
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "cephfs")
        .unwrap_or_else(|| panic!("{}: no cephfs in {fs}", s.name));
    assert_eq!(cephfs["metadata_pool"], "cephfs.cephfs.meta", "{}", s.name);
    assert_eq!(
        cephfs["data_pools"],
        json!(["cephfs.cephfs.data"]),
        "{}",
        s.name
    );
    let dump = s
        .ok_json(Target::Mon, json!({"prefix": "fs dump", "format": "json"}))
        .await;
    let f = &dump["filesystems"][0];
    assert_eq!(f["mdsmap"]["fs_name"], "cephfs", "{}", s.name);
    assert!(f["id"].as_i64().is_some(), "{}: {dump}", s.name);
    let mons = s
        .ok_json(Target::Mon, json!({"prefix": "mon dump", "format": "json"}))
        .await;
    let addr = mons["mons"][0]["addr"].as_str().unwrap();
    assert!(addr.starts_with("127.0.0.1:6789"), "{}: {addr}", s.name);
    let df = s
        .ok_json(Target::Mon, json!({"prefix": "df", "format": "json"}))
        .await;
    assert!(
        df["stats"]["total_avail_bytes"].as_u64().unwrap() > 0,
        "{}: {df}",
        s.name
    );
}

contract!(subvolumes_are_idempotent_and_sized);
async fn subvolumes_are_idempotent_and_sized(s: &Side) {
    let name = format!("{}-sv", s.tag);
    let create = s.sub(json!({"prefix": "fs subvolume create", "sub_name": name,
                              "size": GIB, "namespace_isolated": false}));
    s.ok(Target::Mgr, create.clone()).await;
    s.ok(Target::Mgr, create).await;
    let path = s
        .ok(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume getpath", "sub_name": name})),
        )
        .await;
    let path = path.trim();
    assert!(
        path.starts_with(&format!("/volumes/csi/{name}/")),
        "{}: {path}",
        s.name
    );
    let info = s
        .ok_json(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume info", "sub_name": name})),
        )
        .await;
    assert_eq!(info["bytes_quota"], GIB, "{}", s.name);
    assert_eq!(info["state"], "complete", "{}", s.name);
    assert_eq!(info["path"], path, "{}", s.name);
    let ls = s
        .ok_json(Target::Mgr, s.sub(json!({"prefix": "fs subvolume ls"})))
        .await;
    assert!(
        ls.as_array().unwrap().contains(&json!({"name": name})),
        "{}",
        s.name
    );
    // Grow; a no_shrink resize below the current size is refused.
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume resize", "sub_name": name,
                     "new_size": (2 * GIB).to_string(), "no_shrink": true})),
    )
    .await;
    let info = s
        .ok_json(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume info", "sub_name": name})),
        )
        .await;
    assert_eq!(info["bytes_quota"], 2 * GIB, "{}", s.name);
    // Remove; then it is gone, and removing again is ENOENT unless forced.
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume rm", "sub_name": name})),
    )
    .await;
    let (e, m) = s
        .errno(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume getpath", "sub_name": name})),
        )
        .await;
    assert_eq!(e, errno::ENOENT, "{}", s.name);
    assert_eq!(
        m,
        format!("subvolume '{name}' does not exist"),
        "{}",
        s.name
    );
    let (e, _) = s
        .errno(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume rm", "sub_name": name})),
        )
        .await;
    assert_eq!(e, errno::ENOENT, "{}", s.name);
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume rm", "sub_name": name, "force": true})),
    )
    .await;
}

contract!(groups_are_created_on_demand_and_nogroup_is_internal);
async fn groups_are_created_on_demand_and_nogroup_is_internal(s: &Side) {
    let group = format!("{}-g", s.tag);
    let (e, m) = s
        .errno(
            Target::Mgr,
            json!({"prefix": "fs subvolume create", "vol_name": "cephfs",
                   "group_name": group, "sub_name": "x"}),
        )
        .await;
    assert_eq!(e, errno::ENOENT, "{}", s.name);
    assert_eq!(
        m,
        format!("subvolume group '{group}' does not exist"),
        "{}",
        s.name
    );
    let mk =
        json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": group});
    s.ok(Target::Mgr, mk.clone()).await;
    s.ok(Target::Mgr, mk).await;
    s.ok(
        Target::Mgr,
        json!({"prefix": "fs subvolumegroup rm", "vol_name": "cephfs", "group_name": group}),
    )
    .await;
    let (e, m) = s
        .errno(
            Target::Mgr,
            json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "_nogroup"}),
        )
        .await;
    assert_eq!(e, 1, "{}: EPERM", s.name);
    assert_eq!(
        m, "Operation not permitted for group '_nogroup' as it is an internal group.",
        "{}",
        s.name
    );
}

contract!(snapshots_block_removal_and_clones_complete);
async fn snapshots_block_removal_and_clones_complete(s: &Side) {
    let name = format!("{}-snapsrc", s.tag);
    let clone = format!("{}-clone", s.tag);
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume create", "sub_name": name, "size": GIB})),
    )
    .await;
    let snap =
        json!({"prefix": "fs subvolume snapshot create", "sub_name": name, "snap_name": "s1"});
    s.ok(Target::Mgr, s.sub(snap.clone())).await;
    s.ok(Target::Mgr, s.sub(snap)).await;
    let info = s
        .ok_json(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume snapshot info", "sub_name": name, "snap_name": "s1"})),
        )
        .await;
    assert!(info["created_at"].as_str().is_some(), "{}: {info}", s.name);
    assert_eq!(info["has_pending_clones"], "no", "{}", s.name);
    let (e, _) = s
        .errno(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume rm", "sub_name": name})),
        )
        .await;
    assert_eq!(e, errno::ENOTEMPTY, "{}", s.name);
    s.ok(
        Target::Mgr,
        s.sub(
            json!({"prefix": "fs subvolume snapshot clone", "sub_name": name, "snap_name": "s1",
                     "target_sub_name": clone, "target_group_name": "csi"}),
        ),
    )
    .await;
    let mut state = String::new();
    for _ in 0..120 {
        let st = s
            .ok_json(
                Target::Mgr,
                s.sub(json!({"prefix": "fs clone status", "clone_name": clone})),
            )
            .await;
        state = st["status"]["state"].as_str().unwrap().to_owned();
        assert!(
            ["pending", "in-progress", "complete"].contains(&state.as_str()),
            "{}: {st}",
            s.name
        );
        if state == "complete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(state, "complete", "{}", s.name);
    // A missing snapshot removed with force is fine; the real one goes, then the volumes.
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume snapshot rm", "sub_name": name, "snap_name": "nope", "force": true})),
    )
    .await;
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume snapshot rm", "sub_name": name, "snap_name": "s1"})),
    )
    .await;
    for n in [&clone, &name] {
        s.ok(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume rm", "sub_name": n})),
        )
        .await;
    }
}

contract!(clones_are_canceled_and_removed_with_force);
/// What the driver does to a clone no CreateVolume will return: `fs clone cancel` while
/// it runs (EINVAL once it finished), then `fs subvolume rm --force`; the snapshot can go.
async fn clones_are_canceled_and_removed_with_force(s: &Side) {
    let name = format!("{}-cancelsrc", s.tag);
    let clone = format!("{}-canceled", s.tag);
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume create", "sub_name": name, "size": GIB})),
    )
    .await;
    s.ok(
        Target::Mgr,
        s.sub(
            json!({"prefix": "fs subvolume snapshot create", "sub_name": name, "snap_name": "s1"}),
        ),
    )
    .await;
    let (e, _) = s
        .errno(
            Target::Mgr,
            s.sub(json!({"prefix": "fs clone cancel", "clone_name": "nope"})),
        )
        .await;
    assert_eq!(e, errno::ENOENT, "{}", s.name);
    s.ok(
        Target::Mgr,
        s.sub(
            json!({"prefix": "fs subvolume snapshot clone", "sub_name": name, "snap_name": "s1",
                     "target_sub_name": clone, "target_group_name": "csi"}),
        ),
    )
    .await;
    let cancel = s.sub(json!({"prefix": "fs clone cancel", "clone_name": clone}));
    match s.run(Target::Mgr, cancel).await {
        Ok(_) => {
            let st = s
                .ok_json(
                    Target::Mgr,
                    s.sub(json!({"prefix": "fs clone status", "clone_name": clone})),
                )
                .await;
            // The real cluster may take the cancel of an (empty) clone it is finishing
            // and finish it anyway; fake-ceph cancels it.
            let state = st["status"]["state"].as_str().unwrap_or_default();
            if s._fake.is_none() && state == "complete" {
                return finish_clone_test(s, &name, &clone).await;
            }
            assert_eq!(state, "canceled", "{}: {st}", s.name);
            // A canceled clone holds the snapshot no more.
            let info = s
                .ok_json(
                    Target::Mgr,
                    s.sub(json!({"prefix": "fs subvolume snapshot info", "sub_name": name, "snap_name": "s1"})),
                )
                .await;
            assert_eq!(info["has_pending_clones"], "no", "{}: {info}", s.name);
            // Without force a canceled clone stays ("not ready for operation rm").
            let (e, _) = s
                .errno(
                    Target::Mgr,
                    s.sub(json!({"prefix": "fs subvolume rm", "sub_name": clone})),
                )
                .await;
            assert_eq!(e, errno::EAGAIN, "{}", s.name);
        }
        // The real cluster may have finished the (empty) clone already.
        Err(e) => assert_eq!(e.errno(), Some(errno::EINVAL), "{}: {e}", s.name),
    }
    finish_clone_test(s, &name, &clone).await;
}

/// Removes the clone (with force), the snapshot and the source.
async fn finish_clone_test(s: &Side, name: &str, clone: &str) {
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume rm", "sub_name": clone, "force": true})),
    )
    .await;
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume snapshot rm", "sub_name": name, "snap_name": "s1"})),
    )
    .await;
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume rm", "sub_name": name})),
    )
    .await;
}

contract!(omap_objects_behave_like_rados);
async fn omap_objects_behave_like_rados(s: &Side) {
    let obj = format!("{}.csi.volume.test", s.tag);
    let at = |extra: Value| {
        let mut c = json!({"pool": "cephfs.cephfs.meta", "namespace": "csi", "object": obj});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    s.ok(
        Target::Mon,
        at(json!({"prefix": "rados create", "exclusive": true,
                  "vals": {"csi.volname": "pvc-1", "csi.imagename": "csi-vol-1"}})),
    )
    .await;
    let (e, _) = s
        .errno(
            Target::Mon,
            at(json!({"prefix": "rados create", "exclusive": true, "vals": {}})),
        )
        .await;
    assert_eq!(e, errno::EEXIST, "{}", s.name);
    s.ok(
        Target::Mon,
        at(json!({"prefix": "rados omap set", "vals": {"a.1": "x", "a.2": "y y", "b.1": "z"}})),
    )
    .await;
    let got = s
        .ok_json(
            Target::Mon,
            at(json!({"prefix": "rados omap get", "keys": ["csi.volname", "a.2", "missing"]})),
        )
        .await;
    assert_eq!(
        got,
        json!({"csi.volname": "pvc-1", "a.2": "y y"}),
        "{}",
        s.name
    );
    let page = s
        .ok_json(
            Target::Mon,
            at(json!({"prefix": "rados omap list", "start_after": "", "filter_prefix": "a.", "max_return": 1})),
        )
        .await;
    assert_eq!(
        page,
        json!({"vals": {"a.1": "x"}, "more": true}),
        "{}",
        s.name
    );
    let page = s
        .ok_json(
            Target::Mon,
            at(json!({"prefix": "rados omap list", "start_after": "a.1", "filter_prefix": "a.", "max_return": 5})),
        )
        .await;
    assert_eq!(
        page,
        json!({"vals": {"a.2": "y y"}, "more": false}),
        "{}",
        s.name
    );
    s.ok(
        Target::Mon,
        at(json!({"prefix": "rados omap rm", "keys": ["a.1", "never-there"]})),
    )
    .await;
    let got = s
        .ok_json(
            Target::Mon,
            at(json!({"prefix": "rados omap get", "keys": ["a.1"]})),
        )
        .await;
    assert_eq!(got, json!({}), "{}", s.name);
    s.ok(Target::Mon, at(json!({"prefix": "rados rm"}))).await;
    for cmd in [
        json!({"prefix": "rados rm"}),
        json!({"prefix": "rados omap get", "keys": ["a"]}),
        json!({"prefix": "rados omap rm", "keys": ["a"]}),
    ] {
        let (e, _) = s.errno(Target::Mon, at(cmd)).await;
        assert_eq!(e, errno::ENOENT, "{}", s.name);
    }
}

contract!(subvolume_users_get_path_caps_and_go_again);
async fn subvolume_users_get_path_caps_and_go_again(s: &Side) {
    let name = format!("{}-authz", s.tag);
    let user = format!("{}-alice", s.tag);
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume create", "sub_name": name})),
    )
    .await;
    let path = s
        .ok(
            Target::Mgr,
            s.sub(json!({"prefix": "fs subvolume getpath", "sub_name": name})),
        )
        .await;
    s.ok(
        Target::Mgr,
        s.sub(
            json!({"prefix": "fs subvolume authorize", "sub_name": name, "auth_id": user,
                     "access_level": "rw", "tenant_id": "demo"}),
        ),
    )
    .await;
    let entity = s
        .ok_json(
            Target::Mon,
            json!({"prefix": "auth get", "entity": format!("client.{user}"), "format": "json"}),
        )
        .await;
    let caps = &entity[0]["caps"];
    assert_eq!(
        caps["mds"],
        format!("allow rw path={}", path.trim()),
        "{}: {entity}",
        s.name
    );
    let key = entity[0]["key"].as_str().unwrap();
    assert!(key.starts_with("AQ") && key.len() == 40, "{}", s.name);
    // Limited caps: this user may not run admin commands.
    let limited = Credentials::new(&user, key);
    let denied = s
        .transport
        .command(
            &limited,
            Target::Mgr,
            &s.sub(json!({"prefix": "fs subvolume ls"})),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            denied,
            CephError::Command {
                errno: errno::EACCES,
                ..
            } | CephError::Unauthorized { .. }
        ),
        "{}: {denied:?}",
        s.name
    );
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume deauthorize", "sub_name": name, "auth_id": user})),
    )
    .await;
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume evict", "sub_name": name, "auth_id": user})),
    )
    .await;
    let (e, _) = s
        .errno(
            Target::Mon,
            json!({"prefix": "auth get", "entity": format!("client.{user}"), "format": "json"}),
        )
        .await;
    assert_eq!(
        e,
        errno::ENOENT,
        "{}: the user goes with its last caps",
        s.name
    );
    s.ok(
        Target::Mgr,
        s.sub(json!({"prefix": "fs subvolume rm", "sub_name": name})),
    )
    .await;
}
