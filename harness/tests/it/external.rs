//! `harness run --ceph-url/--os-auth-url`: the simulation on back ends it did not start,
//! holding things of their own that the run must neither count nor touch.

use std::time::Duration;

use driver::ceph::Target;
use harness::csi::External;
use harness::inventory::{CephAccess, Inventory, ManilaAccess};
use harness::{BackendKind, Output};
use serde_json::json;

use crate::{assert_clean, scenario};

/// A fake-ceph served on loopback as its own binary would serve it.
struct Ceph {
    cluster: fake_ceph::Cluster,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_ceph(seed: u64) -> Ceph {
    let dir = tempfile::tempdir().unwrap();
    let cluster = fake_ceph::Cluster::new(fake_ceph::Config {
        seed,
        data_dir: Some(dir.path().join("data")),
        ..Default::default()
    })
    .unwrap();
    let app = fake_ceph::router(cluster.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    Ceph {
        cluster,
        url,
        _dir: dir,
    }
}

/// A fake-manila over `ceph`, with its default users and quotas, Keystone and Manila on
/// loopback ports of their own, as its binary serves them; its state and Keystone's auth
/// URL (the binary's first stdout line).
async fn start_manila(ceph: &Ceph) -> (fake_manila::AppState, String) {
    let l = fake_manila::Listeners::loopback().await.unwrap();
    let mut config = fake_manila::Config::new(
        l.keystone_url(),
        l.manila_url(),
        fake_manila::CephConfig {
            url: ceph.url.clone(),
            identity: fake_manila::CephIdentity {
                entity: "client.admin".into(),
                key: fake_manila::Secret::new(ceph.cluster.admin_key()),
            },
            fs_name: "cephfs".into(),
            group: None,
            timeout: Duration::from_secs(30),
        },
    );
    config.delays = fake_manila::Delays::all(Duration::ZERO);
    let auth_url = format!("{}/v3", l.keystone_url());
    let state = fake_manila::AppState::new(config).unwrap();
    l.spawn(state.clone());
    (state, auth_url)
}

fn external(ceph: &Ceph, os_auth_url: Option<String>) -> External {
    External {
        ceph_url: ceph.url.clone(),
        ceph_conf: None,
        ceph_admin_key: ceph.cluster.admin_key(),
        os_auth_url,
        os_user: "demo".into(),
        os_password: "demo".into(),
        os_project: "demo".into(),
        os_domain: "Default".into(),
    }
}

/// Runs `p` with `seed` on `x`, the event log in memory.
async fn run_on(
    p: harness::params::Params,
    seed: u64,
    x: External,
) -> anyhow::Result<harness::Run> {
    harness::run(p, seed, BackendKind::External(x), Output::Memory).await
}

async fn subvolumes(cluster: &fake_ceph::Cluster, group: Option<&str>) -> Vec<String> {
    let mut ls = json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"});
    if let Some(g) = group {
        ls["group_name"] = json!(g);
    }
    let r = cluster.admin_command(ls).await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    serde_json::from_str::<Vec<serde_json::Value>>(&r.outb)
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_an_external_fake_ceph_mounts_there_and_leaves_its_own_volumes_alone() {
    let ceph = start_ceph(7).await;
    // Somebody else's volume and user, there before the run.
    for cmd in [
        json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}),
        json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi",
               "sub_name": "not-the-harness"}),
        json!({"prefix": "auth get-or-create", "entity": "client.someone"}),
    ] {
        let r = ceph.cluster.admin_command(cmd).await;
        assert_eq!(r.ret, 0, "{}", r.outs);
    }
    let p = scenario("idle-10k", &["shares=2", "replicas=4"]);
    let r = run_on(p, 3, external(&ceph, None)).await.unwrap();
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running");
    assert_clean(&r);
    // The node plugins' mounts were sessions at the external MDS, seen in its counters.
    assert_eq!(s.wall.fake_ceph_peak_sessions, 2 * 4);
    let hcr = ceph.cluster.perf_dump()["mds_server"]["handle_client_request"]
        .as_u64()
        .unwrap();
    assert_eq!(s.wall.fake_ceph_hcr, hcr);
    // Its volumes were made there and are gone; the other one is untouched.
    assert_eq!(
        subvolumes(&ceph.cluster, Some("csi")).await,
        ["not-the-harness"]
    );
    assert_eq!(ceph.cluster.session_count(), 0);
    let r = ceph
        .cluster
        .admin_command(json!({"prefix": "auth get", "entity": "client.someone"}))
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_an_external_fake_manila_provisions_its_shares_there() {
    let ceph = start_ceph(8).await;
    let (manila, url) = start_manila(&ceph).await;
    let p = scenario("idle-1k-manila", &["shares=2", "replicas=4"]);
    let r = run_on(p, 4, external(&ceph, Some(url))).await.unwrap();
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running");
    assert_clean(&r);
    let created: usize = s
        .rpcs
        .iter()
        .filter(|row| row.method == "CreateVolume" && row.code == "Ok")
        .map(|row| row.sim.count)
        .sum();
    assert_eq!(created, 2);
    // fake-manila made the shares (and their subvolumes) and deleted them again.
    assert!(manila.db().shares.is_empty());
    assert!(manila.db().rules.is_empty());
    assert!(subvolumes(&ceph.cluster, None).await.is_empty());
    assert_eq!(ceph.cluster.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manila_back_end_without_an_auth_url_is_refused_before_anything_starts() {
    let ceph = start_ceph(9).await;
    let p = scenario("idle-1k-manila", &["shares=1", "replicas=1"]);
    let e = run_on(p, 1, external(&ceph, None)).await.unwrap_err();
    assert!(format!("{e:#}").contains("--os-auth-url"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busy_workload_is_refused_on_external_back_ends() {
    let ceph = start_ceph(11).await;
    let p = scenario("busy-1k", &["shares=1", "replicas=1"]);
    let e = run_on(p, 1, external(&ceph, None)).await.unwrap_err();
    assert!(
        format!("{e:#}").contains("embedded back ends only"),
        "{e:#}"
    );
    // Refused before anything was made: not even the csi group.
    let r = ceph
        .cluster
        .admin_command(
            json!({"prefix": "fs subvolumegroup getpath", "vol_name": "cephfs",
                              "group_name": "csi"}),
        )
        .await;
    assert_eq!(r.ret, -2, "{}", r.outs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leak_check_counts_what_appeared_since_the_baseline() {
    let ceph = start_ceph(10).await;
    let (_manila, auth_url) = start_manila(&ceph).await;
    let access = CephAccess::new(&ceph.url, &ceph.cluster.admin_key()).unwrap();
    let secrets = [
        ("os-authURL", auth_url),
        ("os-userName", "demo".into()),
        ("os-password", "demo".into()),
        ("os-projectName", "demo".into()),
        ("os-domainName", "Default".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let manila = ManilaAccess::new(&secrets).unwrap();
    let os = driver::manila::Backend::new(Duration::from_secs(30)).unwrap();
    let creds = driver::manila::keystone::OsCredentials::from_secrets(&secrets).unwrap();
    let groups = [Some("csi"), None];
    // The csi group does not exist yet: it holds nothing.
    let before = Inventory::take(&access, "cephfs", &groups, Some(&manila))
        .await
        .unwrap();
    for cmd in [
        json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}),
        json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi",
               "sub_name": "a"}),
        json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "b"}),
        json!({"prefix": "auth get-or-create", "entity": "client.x"}),
    ] {
        let target = if cmd["prefix"] == "auth get-or-create" {
            Target::Mon
        } else {
            Target::Mgr
        };
        access.command(target, cmd).await.unwrap();
    }
    // A share with a cephx rule: one share, one rule, one more subvolume and cephx user.
    let share = os
        .client(&creds)
        .create_share(&driver::manila::api::NewShare {
            name: "s".into(),
            size: 1,
            share_type: "cephfstype".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    while os
        .client(&creds)
        .share(&share.id)
        .await
        .unwrap()
        .unwrap()
        .status
        != "available"
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    os.client(&creds)
        .allow_cephx(&share.id, "alice")
        .await
        .unwrap();
    // The rule's cephx user exists once Manila has applied it.
    while os.client(&creds).access_rules(&share.id).await.unwrap()[0]
        .access_key
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _mount = ceph
        .cluster
        .mount(
            "client.admin",
            &ceph.cluster.admin_key(),
            serde_json::from_value(json!({"root": "/"})).unwrap(),
        )
        .await
        .unwrap();
    let after = Inventory::take(&access, "cephfs", &groups, Some(&manila))
        .await
        .unwrap();
    let n = after.since(&before, Some(&manila)).await.unwrap();
    assert_eq!(n.subvolumes, 3);
    assert_eq!(n.cephx_users, 2);
    assert_eq!(n.sessions, 1);
    assert_eq!(n.shares, 1);
    assert_eq!(n.access_rules, 1);
    // Nothing is new against itself.
    let none = after.since(&after, Some(&manila)).await.unwrap();
    assert_eq!(none, Default::default());
}
