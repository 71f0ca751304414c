//! Durable metadata: a fake-ceph with a data dir, killed with SIGKILL, started again on
//! the same directory, keeps every command it acknowledged (issue 14, item 14).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_ceph::{Cluster, Config, Metadata};
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

struct Running {
    child: Child,
    url: String,
}

fn start(data: &Path, keyring: &Path) -> Running {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("fake-ceph"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--keyring-out",
            keyring.to_str().unwrap(),
            "--clone-time-ms",
            "200",
        ])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "first line: {line:?}");
    Running { child, url }
}

/// SIGKILL: no shutdown code runs. The process's log.
fn kill(mut r: Running) -> String {
    r.child.kill().unwrap();
    let out = r.child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn key_of(keyring: &Path) -> String {
    std::fs::read_to_string(keyring)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("key = ").map(str::to_owned))
        .unwrap()
}

/// A server's URL and one HTTP client for it (making a client is slow: its TLS setup).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.to_owned(),
        }
    }
}

/// Sends a command as `entity`; `None` if the server did not answer (it was killed).
async fn try_command(api: &Api, entity: &str, key: &str, cmd: &Value) -> Option<Value> {
    let target = if cmd["prefix"]
        .as_str()
        .is_some_and(|p| p.starts_with("fs subvolume") || p.starts_with("fs clone"))
    {
        "?target=mgr"
    } else {
        ""
    };
    let resp = api
        .http
        .post(format!("{}/request{target}", api.url))
        .basic_auth(entity, Some(key))
        .timeout(Duration::from_secs(10))
        .body(cmd.to_string())
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

/// A command as client.admin that must succeed; its output.
async fn ok(api: &Api, key: &str, cmd: Value) -> String {
    let v = try_command(api, "client.admin", key, &cmd).await.unwrap();
    assert_eq!(v["ret"], 0, "{cmd} -> {v}");
    v["outb"].as_str().unwrap_or_default().to_owned()
}

fn names(outb: &str) -> BTreeSet<String> {
    serde_json::from_str::<Vec<Value>>(outb)
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Every regular file under `dir` but the metadata store, as text.
fn files_but_the_store(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.ends_with("meta/metadata.redb") {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                out.push((p, text));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fake_ceph_keeps_every_acknowledged_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keyring = dir.path().join("admin.keyring");
    let r = start(&data, &keyring);
    let api = Api::new(&r.url);
    let key = key_of(&keyring);
    let fsid = ok(&api, &key, json!({"prefix": "fsid", "format": "json"})).await;
    let vol = |extra: Value| {
        let mut v = json!({"vol_name": "cephfs"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolumegroup create", "group_name": "csi"})),
    )
    .await;
    for (name, size) in [("a", 1 << 30), ("b", 0)] {
        ok(&api, &key, vol(json!({"prefix": "fs subvolume create", "group_name": "csi", "sub_name": name, "size": size}))).await;
    }
    ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume create", "sub_name": "c"})),
    )
    .await;
    let path_a = ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume getpath", "group_name": "csi", "sub_name": "a"})),
    )
    .await;
    ok(&api, &key, vol(json!({"prefix": "fs subvolume metadata set", "group_name": "csi", "sub_name": "a", "key_name": "owner", "value": "pvc-1"}))).await;
    ok(&api, &key, vol(json!({"prefix": "fs subvolume snapshot create", "group_name": "csi", "sub_name": "a", "snap_name": "s1"}))).await;
    ok(&api, &key, vol(json!({"prefix": "fs subvolume snapshot clone", "group_name": "csi", "sub_name": "a", "snap_name": "s1", "target_sub_name": "cl", "target_group_name": "csi"}))).await;
    let alice = ok(&api, &key, vol(json!({"prefix": "fs subvolume authorize", "group_name": "csi", "sub_name": "a", "auth_id": "alice", "tenant_id": "t1", "access_level": "rw"}))).await;
    let alice = alice.trim().to_owned();
    assert!(alice.starts_with("AQ"), "{alice}");
    let bob = ok(&api, &key, json!({"prefix": "auth get-or-create-key", "entity": "client.bob", "caps": ["mon", "allow r", "osd", "allow rw pool=cephfs.cephfs.meta namespace=csi"]})).await;
    let bob = bob.trim().to_owned();
    ok(&api, &key, json!({"prefix": "rados omap set", "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": "csi.volumes.default", "vals": {"csi.volume.pvc-1": "0001", "csi.volume.pvc-2": "0002"}})).await;
    ok(&api, &key, json!({"prefix": "rados omap rm", "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": "csi.volumes.default", "keys": ["csi.volume.pvc-2"]})).await;
    ok(&api, &key, json!({"prefix": "config set", "who": "mgr", "name": "mgr/volumes/max_concurrent_clones", "value": "2"})).await;
    // Killed right after the last acknowledgement.
    let log1 = kill(r);

    // The store is private, and no key is in any other file or in the log.
    let meta = data.join("meta");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&meta), 0o700);
    assert_eq!(mode(&meta.join("metadata.redb")), 0o600);
    for (p, text) in files_but_the_store(&data) {
        for k in [&key, &alice, &bob] {
            assert!(!text.contains(k.as_str()), "{} holds a key", p.display());
        }
    }

    let r = start(&data, &keyring);
    let api = Api::new(&r.url);
    // The keyring written again is the same one, and it still authenticates.
    assert_eq!(key_of(&keyring), key);
    assert_eq!(
        ok(&api, &key, json!({"prefix": "fsid", "format": "json"})).await,
        fsid
    );
    let ls = ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume ls", "group_name": "csi"})),
    )
    .await;
    assert_eq!(names(&ls), set(&["a", "b", "cl"]));
    let ls = ok(&api, &key, vol(json!({"prefix": "fs subvolume ls"}))).await;
    assert_eq!(names(&ls), set(&["c"]));
    assert_eq!(
        ok(
            &api,
            &key,
            vol(json!({"prefix": "fs subvolume getpath", "group_name": "csi", "sub_name": "a"}))
        )
        .await,
        path_a
    );
    let info: Value = serde_json::from_str(
        &ok(
            &api,
            &key,
            vol(json!({"prefix": "fs subvolume info", "group_name": "csi", "sub_name": "a"})),
        )
        .await,
    )
    .unwrap();
    assert_eq!(info["bytes_quota"], 1 << 30);
    assert_eq!(info["state"], "complete");
    assert_eq!(info["path"], path_a.trim());
    assert_eq!(
        ok(&api, &key, vol(json!({"prefix": "fs subvolume metadata get", "group_name": "csi", "sub_name": "a", "key_name": "owner"}))).await,
        "pvc-1\n"
    );
    let snaps = ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume snapshot ls", "group_name": "csi", "sub_name": "a"})),
    )
    .await;
    assert_eq!(names(&snaps), set(&["s1"]));
    // The clone goes on from where it was and completes.
    let mut state = String::new();
    for _ in 0..100 {
        let s: Value = serde_json::from_str(
            &ok(
                &api,
                &key,
                vol(json!({"prefix": "fs clone status", "group_name": "csi", "clone_name": "cl"})),
            )
            .await,
        )
        .unwrap();
        state = s["status"]["state"].as_str().unwrap().to_owned();
        if state == "complete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "complete");
    // cephx users: the key handed out before the crash is the one kept, caps included.
    let got: Value = serde_json::from_str(
        &ok(
            &api,
            &key,
            json!({"prefix": "auth get", "entity": "client.alice", "format": "json"}),
        )
        .await,
    )
    .unwrap();
    assert_eq!(got[0]["key"], alice.as_str());
    assert!(
        got[0]["caps"]["mds"]
            .as_str()
            .unwrap()
            .contains(path_a.trim()),
        "{got}"
    );
    let authorized = ok(
        &api,
        &key,
        vol(
            json!({"prefix": "fs subvolume authorized_list", "group_name": "csi", "sub_name": "a"}),
        ),
    )
    .await;
    assert!(authorized.contains("alice"), "{authorized}");
    // bob authenticates with his key and reads the journal his caps allow.
    let v = try_command(
        &api,
        "client.bob",
        &bob,
        &json!({"prefix": "rados omap get", "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": "csi.volumes.default", "keys": ["csi.volume.pvc-1", "csi.volume.pvc-2"]}),
    )
    .await
    .unwrap();
    assert_eq!(v["ret"], 0, "{v}");
    assert_eq!(
        serde_json::from_str::<Value>(v["outb"].as_str().unwrap()).unwrap(),
        json!({"csi.volume.pvc-1": "0001"})
    );
    assert_eq!(
        ok(&api, &key, json!({"prefix": "config get", "who": "mgr", "key": "mgr/volumes/max_concurrent_clones"})).await,
        "2\n"
    );
    // New commands work, and see the recovered state.
    ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume create", "group_name": "csi", "sub_name": "d"})),
    )
    .await;
    let path_d = ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume getpath", "group_name": "csi", "sub_name": "d"})),
    )
    .await;
    assert_ne!(path_d.rsplit('/').next(), path_a.rsplit('/').next());
    ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume rm", "group_name": "csi", "sub_name": "b"})),
    )
    .await;
    let v = try_command(&api, "client.admin", &key, &vol(json!({"prefix": "fs subvolume snapshot rm", "group_name": "csi", "sub_name": "a", "snap_name": "s1"}))).await.unwrap();
    assert_eq!(v["ret"], 0, "{v}");
    let log2 = kill(r);

    // And those survive a second kill.
    let r = start(&data, &keyring);
    let api = Api::new(&r.url);
    let ls = ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume ls", "group_name": "csi"})),
    )
    .await;
    assert_eq!(names(&ls), set(&["a", "cl", "d"]));
    let snaps = ok(
        &api,
        &key,
        vol(json!({"prefix": "fs subvolume snapshot ls", "group_name": "csi", "sub_name": "a"})),
    )
    .await;
    assert_eq!(names(&snaps), set(&[]));
    let log3 = kill(r);
    for log in [&log1, &log2, &log3] {
        for k in [&key, &alice, &bob] {
            assert!(!log.contains(k.as_str()), "a key reached the log");
        }
    }
    assert!(log2.contains("metadata recovered"), "{log2}");
}

/// Subvolumes on disk in the `_nogroup` group.
fn dirs_in(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_stream_of_creates_lose_no_acknowledged_create_and_leave_nothing_half_made()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keyring = dir.path().join("admin.keyring");
    // Seeded: the kill points are the same on every run.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let acked_subvolumes = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let acked_keys = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let rounds = 6;
    for round in 0..=rounds {
        let r = start(&data, &keyring);
        let api = Api::new(&r.url);
        let key = key_of(&keyring);
        // Everything acknowledged before is here, whole.
        let ls = ok(
            &api,
            &key,
            json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"}),
        )
        .await;
        let listed = names(&ls);
        let acked = acked_subvolumes.lock().unwrap().clone();
        assert!(
            acked.is_subset(&listed),
            "round {round}: lost {:?}",
            acked.difference(&listed).collect::<Vec<_>>()
        );
        let on_disk = dirs_in(&data.join("fs/cephfs/volumes/_nogroup"));
        assert_eq!(
            on_disk, listed,
            "round {round}: the tree and the records differ"
        );
        for name in &listed {
            let p = ok(
                &api,
                &key,
                json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "sub_name": name}),
            )
            .await;
            assert!(
                data.join("fs/cephfs")
                    .join(p.trim().trim_start_matches('/'))
                    .is_dir(),
                "round {round}: {name} has no data directory"
            );
        }
        let keys: Vec<String> = acked_keys.lock().unwrap().iter().cloned().collect();
        if !keys.is_empty() {
            let got = ok(&api, &key, json!({"prefix": "rados omap get", "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": "csi.volumes.default", "keys": keys})).await;
            let got: Value = serde_json::from_str(&got).unwrap();
            for k in &keys {
                assert_eq!(got[k], k.as_str(), "round {round}: omap key {k} lost");
            }
        }
        if round == rounds {
            kill(r);
            break;
        }
        // Four clients create subvolumes and journal entries until the server dies.
        let mut clients = Vec::new();
        for c in 0..4 {
            let (api, key) = (api.clone(), key.clone());
            let subs = acked_subvolumes.clone();
            let omap = acked_keys.clone();
            clients.push(tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("r{round}-c{c}-{i}");
                    let cmd = json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": name});
                    match try_command(&api, "client.admin", &key, &cmd).await {
                        Some(v) if v["ret"] == 0 => {
                            subs.lock().unwrap().insert(name.clone());
                        }
                        Some(v) => panic!("{cmd} -> {v}"),
                        None => return,
                    }
                    let cmd = json!({"prefix": "rados omap set", "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": "csi.volumes.default", "vals": {name.clone(): name.clone()}});
                    match try_command(&api, "client.admin", &key, &cmd).await {
                        Some(v) if v["ret"] == 0 => {
                            omap.lock().unwrap().insert(name);
                        }
                        Some(v) => panic!("{cmd} -> {v}"),
                        None => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..250))).await;
        kill(r);
        for c in clients {
            c.await.unwrap();
        }
    }
    assert!(
        acked_subvolumes.lock().unwrap().len() > 20,
        "too few creates to tell anything: {}",
        acked_subvolumes.lock().unwrap().len()
    );
}

fn durable(data: &Path, seed: u64) -> Config {
    Config {
        data_dir: Some(data.to_path_buf()),
        metadata: Metadata::Durable,
        seed,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_same_seed_draws_new_uuids_and_keeps_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let create = |c: &Cluster, name: &str| {
        let c = c.clone();
        let name = name.to_owned();
        async move {
            let r = c
                .admin_command(json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": name}))
                .await;
            assert_eq!(r.ret, 0, "{}", r.outs);
            let r = c
                .admin_command(json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "sub_name": name}))
                .await;
            r.outb.trim().rsplit('/').next().unwrap().to_owned()
        }
    };
    let c = Cluster::new(durable(&data, 9)).unwrap();
    let (fsid, key) = (c.fsid(), c.admin_key());
    let first = create(&c, "x").await;
    drop(c);
    let c = Cluster::new(durable(&data, 9)).unwrap();
    assert_eq!((c.fsid(), c.admin_key()), (fsid.clone(), key.clone()));
    let second = create(&c, "y").await;
    assert_ne!(first, second, "the same seed drew the same UUID again");
    drop(c);
    // The admin key given on a restart must be the one kept; the file system too.
    let mut cfg = durable(&data, 9);
    cfg.admin_key = Some("AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==".into());
    let e = Cluster::new(cfg).unwrap_err();
    assert!(e.to_string().contains("not the one"), "{e}");
    assert!(!e.to_string().contains("AQ"), "{e}");
    let mut cfg = durable(&data, 9);
    cfg.fs_name = "other".into();
    let e = Cluster::new(cfg).unwrap_err();
    assert!(e.to_string().contains("'cephfs'"), "{e}");
    // In-memory metadata on a used data dir is refused, as before.
    let cfg = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    };
    assert!(Cluster::new(cfg).is_err());
    // Two clusters on one store: the second is refused while the first runs.
    let c = Cluster::new(durable(&data, 9)).unwrap();
    let e = Cluster::new(durable(&data, 9)).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    drop(c);
}

/// A session on `root` (a `getpath` answer) as `entity`.
async fn mount_at(c: &Cluster, entity: &str, key: &str, root: &str) -> fake_ceph::Mount {
    c.mount(
        entity,
        key,
        fake_ceph::MountRequest {
            root: root.trim().to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_session_file_operations_commit_nothing_and_sessions_and_quota_sets_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let c = Cluster::new(durable(&data, 1)).unwrap();
    let r = c
        .admin_command(
            json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "q"}),
        )
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    let path = c
        .admin_command(
            json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "sub_name": "q"}),
        )
        .await
        .outb;
    let commits = c.metadata_commits();
    for cmd in [
        json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "sub_name": "q"}),
        json!({"prefix": "fs subvolume info", "vol_name": "cephfs", "sub_name": "q"}),
        json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"}),
        json!({"prefix": "fs subvolume metadata ls", "vol_name": "cephfs", "sub_name": "q"}),
        json!({"prefix": "auth ls"}),
        json!({"prefix": "fs ls"}),
    ] {
        let r = c.admin_command(cmd).await;
        assert_eq!(r.ret, 0, "{}", r.outs);
    }
    let m = mount_at(&c, "client.admin", &c.admin_key(), &path).await;
    // The session map is kept: opening a session commits it.
    assert_eq!(c.metadata_commits(), commits + 1, "a read committed");
    let commits = c.metadata_commits();
    m.mkdir("d").await.unwrap();
    m.write_file("d/f", b"hello").await.unwrap();
    assert_eq!(m.read_file("d/f").await.unwrap(), b"hello");
    assert_eq!(c.metadata_commits(), commits, "a file op committed");
    m.op(fake_ceph::Op::Setxattr {
        path: String::new(),
        name: "ceph.quota.max_bytes".into(),
        value: "4096".into(),
    })
    .await
    .unwrap();
    assert_eq!(c.metadata_commits(), commits + 1);
    let old_session = m.id();
    drop(m);
    drop(c);
    let c = Cluster::new(durable(&data, 1)).unwrap();
    let info: Value = serde_json::from_str(
        &c.admin_command(
            json!({"prefix": "fs subvolume info", "vol_name": "cephfs", "sub_name": "q"}),
        )
        .await
        .outb,
    )
    .unwrap();
    assert_eq!(info["bytes_quota"], 4096);
    assert_eq!(info["bytes_used"], 5);
    // The session survived, as Ceph's session map does an MDS restart: its client goes
    // on with it.
    assert_eq!(c.session_count(), 1);
    let again = c.session(old_session).expect("the session is kept");
    assert_eq!(again.read_file("d/f").await.unwrap(), b"hello");
    let m = mount_at(&c, "client.admin", &c.admin_key(), &path).await;
    assert_ne!(m.id(), old_session);
    assert_eq!(m.read_file("d/f").await.unwrap(), b"hello");
    // A session closed, or evicted, before a restart is not there after it; one whose
    // entity was removed meanwhile is not reopened.
    let closed = m.id();
    m.unmount();
    let r = c
        .admin_command(
            json!({"prefix": "auth get-or-create", "entity": "client.gone",
                              "caps": ["mds", "allow rw", "mon", "allow r"]}),
        )
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    let gone_key = c.key_of("client.gone").unwrap();
    let g = mount_at(&c, "client.gone", &gone_key, &path).await;
    let gone = g.id();
    let evicted = mount_at(&c, "client.admin", &c.admin_key(), &path)
        .await
        .id();
    let r = c
        .execute_json(
            &c.admin(),
            fake_ceph::Target::Mds("a".into()),
            &json!({"prefix": "session evict", "filters": [format!("id={evicted}")]}),
        )
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    let r = c
        .admin_command(json!({"prefix": "auth rm", "entity": "client.gone"}))
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    // The close is committed by whoever commits next (the HTTP layer commits at once).
    drop((again, g, m));
    drop(c);
    let c = Cluster::new(durable(&data, 1)).unwrap();
    assert!(c.session(old_session).is_some());
    assert!(c.session(closed).is_none(), "a closed session came back");
    assert!(c.session(evicted).is_none(), "an evicted session came back");
    assert!(
        c.session(gone).is_none(),
        "a session of a removed entity came back"
    );
    assert_eq!(c.session_count(), 1);
    drop(c);
    // The dropped session's record went too.
    let c = Cluster::new(durable(&data, 1)).unwrap();
    assert_eq!(c.session_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_commits_and_all_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let c = Cluster::new(durable(&data, 2)).unwrap();
    let before = c.metadata_commits();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..64 {
        let c = c.clone();
        set.spawn(async move {
            let r = c
                .admin_command(json!({"prefix": "rados omap set", "pool": "cephfs.cephfs.meta", "object": "journal", "vals": {format!("k{i}"): format!("v{i}")}}))
                .await;
            assert_eq!(r.ret, 0, "{}", r.outs);
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let commits = c.metadata_commits() - before;
    assert!(
        commits < 64,
        "64 concurrent commands took {commits} commits"
    );
    drop(c);
    let c = Cluster::new(durable(&data, 2)).unwrap();
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    let r = c
        .admin_command(json!({"prefix": "rados omap get", "pool": "cephfs.cephfs.meta", "object": "journal", "keys": keys}))
        .await;
    let got: Value = serde_json::from_str(&r.outb).unwrap();
    assert_eq!(got.as_object().unwrap().len(), 64, "{got}");
}

#[tokio::test(flavor = "current_thread")]
async fn durable_commands_work_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::new(durable(&dir.path().join("data"), 3)).unwrap();
    let r = c
        .admin_command(
            json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "a"}),
        )
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    let r = c
        .admin_command(json!({"prefix": "auth get-or-create", "entity": "client.x", "caps": ["mon", "allow r"]}))
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    assert!(c.metadata_commits() >= 2);
}
