//! The real local control plane (issue 16), run when `TRAINRIDE_KUBE_BIN` names the
//! directory `ci/install-kube.sh` printed (`.ci/run` sets it); without it these tests
//! say so and check nothing.

use std::path::PathBuf;

use harness::real::{ControlPlane, kubectl};

fn kube_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("TRAINRIDE_KUBE_BIN").map(PathBuf::from);
    if bin.is_none() {
        println!("skipped: TRAINRIDE_KUBE_BIN is not set (ci/install-kube.sh builds the programs)");
    }
    bin
}

/// Scenario `name` with `sets` applied.
fn params(name: &str, sets: &[&str]) -> harness::params::Params {
    let mut p = harness::params::Params::load(name).unwrap();
    for set in sets {
        p = p.set(set).unwrap();
    }
    p
}

/// Real mode's options: the programs and the repository's deploy/.
fn options(kube_bin: PathBuf) -> harness::real::RealOptions {
    harness::real::RealOptions {
        kube_bin,
        deploy: concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy").into(),
    }
}

/// Scenario `p` on a local control plane through the library's real-mode entry, its
/// reports in a temporary directory (returned with the summary).
async fn real_run(p: &harness::params::Params) -> (harness::Summary, tempfile::TempDir) {
    let bin = kube_bin().expect("checked by the caller");
    let out = tempfile::tempdir().unwrap();
    let s = harness::real::run::run_and_report(p, 1, &options(bin), out.path())
        .await
        .unwrap();
    (s, out)
}

const VA: &str = r#"{"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
  "metadata": {"name": "va-of-node-a"},
  "spec": {"attacher": "cephfs.csi.trainride", "nodeName": "node-a",
           "source": {"persistentVolumeName": "pv-a"}}}"#;

/// The control plane comes up with the real node authorizer: a node reads the
/// VolumeAttachment of its own node, another node is refused with today's wording of
/// 2018's error, and after `stop` no component is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_authorizer_refuses_another_nodes_volume_attachment() {
    let Some(bin) = kube_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&bin, dir.path()).await.unwrap();
    let va_file = dir.path().join("va.json");
    std::fs::write(&va_file, VA).unwrap();
    cp.kubectl(&["apply", "-f", va_file.to_str().unwrap()])
        .await
        .unwrap();
    let (a, b) = (
        cp.node_kubeconfig("node-a").unwrap(),
        cp.node_kubeconfig("node-b").unwrap(),
    );
    // The authorizer's graph follows an informer: the first read may come a little early.
    let mut own = Err(anyhow::anyhow!("not tried"));
    for _ in 0..50 {
        own = kubectl(
            &bin,
            &a,
            &["get", "volumeattachment", "va-of-node-a", "-o", "name"],
        )
        .await;
        if own.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        own.unwrap().trim(),
        "volumeattachment.storage.k8s.io/va-of-node-a"
    );
    let refused = kubectl(&bin, &b, &["get", "volumeattachment", "va-of-node-a"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("User \"system:node:node-b\" cannot get resource \"volumeattachments\"")
            && refused.contains("no relationship found between node 'node-b' and this object"),
        "{refused}"
    );
    // A VolumeAttachment not made yet is refused in the same words (authorization runs
    // before storage), and a node may not list VolumeAttachments at all.
    let missing = kubectl(&bin, &a, &["get", "volumeattachment", "va-not-yet-made"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("no relationship found between node 'node-a' and this object"),
        "{missing}"
    );
    let listed = kubectl(&bin, &a, &["get", "volumeattachments"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        listed.contains("cannot list resource \"volumeattachments\""),
        "{listed}"
    );
    // A hollow kubelet's own client (kube-rs, node-b's certificate) meets the same 403.
    let hollow = harness::real::NodeIdentity::connect(&b, "node-b")
        .await
        .unwrap();
    let vas: kube::Api<k8s_openapi::api::storage::v1::VolumeAttachment> =
        kube::Api::all(hollow.client().clone());
    match vas.get("va-of-node-a").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message
                    .contains("no relationship found between node 'node-b' and this object"),
                "{s:?}"
            );
        }
        other => panic!("node-b read node-a's VolumeAttachment: {other:?}"),
    }
    let logs = dir.path().join("log");
    let pids: Vec<String> = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .map(|n| {
        assert!(logs.join(format!("{n}.log")).is_file(), "no log of {n}");
        n.to_string()
    })
    .collect();
    cp.stop().await;
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let dir_text = dir.path().display().to_string();
    for name in pids {
        assert!(
            !ps.lines()
                .any(|l| l.contains(&name) && l.contains(&dir_text)),
            "{name} still runs after stop"
        );
    }
}

/// `kubectl get` of one field, or `None` while the object does not exist.
async fn field(cp: &ControlPlane, args: &[&str]) -> Option<String> {
    cp.kubectl(args).await.ok().map(|s| s.trim().to_owned())
}

/// Polls `check` every 200 ms for up to `secs` seconds; on failure shows the end of
/// the log that should say why.
async fn eventually<F, Fut>(secs: u64, what: &str, log: &std::path::Path, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check().await {
        if std::time::Instant::now() >= until {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "no {what} within {secs} s; {}:\n{}",
                log.display(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Writes `doc` to `dir/<name>.json` and applies it as the admin.
async fn apply(cp: &ControlPlane, dir: &std::path::Path, name: &str, doc: serde_json::Value) {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, doc.to_string()).unwrap();
    cp.kubectl(&["apply", "-f", path.to_str().unwrap()])
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e:#}"));
}

/// Waits up to 60 s until `kubectl -n default get <object> -o jsonpath=<path>` prints
/// `want` (`object`: "pvc claim-1"); on failure shows the end of `log`.
async fn wait_for(cp: &ControlPlane, log: &std::path::Path, object: &str, path: &str, want: &str) {
    let jsonpath = format!("jsonpath={path}");
    let mut args = vec!["-n", "default", "get"];
    args.extend(object.split(' '));
    args.extend(["-o", jsonpath.as_str()]);
    let what = format!("{object} {path} = {want}");
    eventually(60, &what, log, || async {
        field(cp, &args).await.as_deref() == Some(want)
    })
    .await;
}

/// Calls of `method` that ended Ok, as the sidecars counted them.
fn ok_calls(rpcs: &std::collections::BTreeMap<(String, String), u64>, method: &str) -> u64 {
    rpcs.get(&(method.to_owned(), "Ok".to_owned()))
        .copied()
        .unwrap_or(0)
}

/// A claim of the local cluster's StorageClass `cephfs` in `default`, from `source`.
fn claim(name: &str, source: Option<&str>) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"storageClassName": "cephfs", "accessModes": ["ReadWriteMany"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    });
    if let Some(snapshot) = source {
        doc["spec"]["dataSource"] = serde_json::json!({
            "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot,
        });
    }
    doc
}

/// The controller Deployment's sidecars, run by real mode with deploy/'s chart's own
/// arguments, ServiceAccount and RBAC, beside the real snapshot-controller: the real
/// external-provisioner makes a claim's volume, external-snapshotter snapshots it,
/// the provisioner restores a second claim from the snapshot, external-resizer expands
/// the first claim; the sidecars' metrics count each call; deleting everything removes
/// every PV and VolumeSnapshotContent and leaves nothing in fake-ceph.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_sidecars_provision_snapshot_restore_and_expand_with_deploys_rbac() {
    let Some(bin) = kube_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = params("attempt-3-skip-attach", &["shares=1", "replicas=1"]);
    let cluster = harness::real::cluster::LocalCluster::start(&p, 1, &options(bin), dir.path())
        .await
        .unwrap();
    let cp = &cluster.cp;
    let log = |name: &str| dir.path().join("log").join(format!("{name}.log"));
    apply(cp, dir.path(), "claim-1", claim("claim-1", None)).await;
    let provisioner = log("csi-provisioner");
    wait_for(cp, &provisioner, "pvc claim-1", "{.status.phase}", "Bound").await;
    let snapshot = serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "snap-1", "namespace": "default"},
        "spec": {"volumeSnapshotClassName": "cephfs",
                 "source": {"persistentVolumeClaimName": "claim-1"}},
    });
    apply(cp, dir.path(), "snap-1", snapshot).await;
    let snapshotter = log("csi-snapshotter");
    wait_for(
        cp,
        &snapshotter,
        "volumesnapshot snap-1",
        "{.status.readyToUse}",
        "true",
    )
    .await;
    apply(cp, dir.path(), "claim-2", claim("claim-2", Some("snap-1"))).await;
    wait_for(cp, &provisioner, "pvc claim-2", "{.status.phase}", "Bound").await;
    assert_eq!(cluster.stack.inventory().await.unwrap().subvolumes.len(), 2);
    cp.kubectl(&[
        "-n",
        "default",
        "patch",
        "pvc",
        "claim-1",
        "--type=merge",
        "-p",
        r#"{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}"#,
    ])
    .await
    .unwrap();
    let resizer = log("csi-resizer");
    wait_for(
        cp,
        &resizer,
        "pvc claim-1",
        "{.status.capacity.storage}",
        "2Gi",
    )
    .await;
    let rpcs = cluster.controller_rpcs().await;
    assert_eq!(ok_calls(&rpcs, "CreateVolume"), 2, "{rpcs:?}");
    assert_eq!(ok_calls(&rpcs, "CreateSnapshot"), 1, "{rpcs:?}");
    assert_eq!(ok_calls(&rpcs, "ControllerExpandVolume"), 1, "{rpcs:?}");
    for args in [
        ["-n", "default", "delete", "pvc", "claim-2"],
        ["-n", "default", "delete", "volumesnapshot", "snap-1"],
        ["-n", "default", "delete", "pvc", "claim-1"],
    ] {
        cp.kubectl(&args).await.unwrap();
    }
    eventually(
        60,
        "every PV and snapshot content gone",
        &log("csi-provisioner"),
        || async {
            field(cp, &["get", "pv,volumesnapshotcontent", "-o", "name"])
                .await
                .is_some_and(|s| s.is_empty())
        },
    )
    .await;
    let rpcs = cluster.controller_rpcs().await;
    // The provisioner may delete a volume more than once (a PV update that conflicts is
    // retried); the driver answers each Ok, and fake-ceph's leak check below is the proof.
    assert!(ok_calls(&rpcs, "DeleteVolume") >= 2, "{rpcs:?}");
    assert!(ok_calls(&rpcs, "DeleteSnapshot") >= 1, "{rpcs:?}");
    let leaks = cluster.stop(false).await;
    assert!(leaks.none(), "left in fake-ceph: {leaks:?}");
}

/// A hollow kubelet registers itself as a kubelet does, under its own node identity:
/// its Node (Ready, with the attach-detach annotation), its Lease and its CSINode with
/// the driver; NodeRestriction refuses it another node's Node and CSINode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hollow_kubelet_registers_itself_and_nothing_else() {
    use harness::real::NodeIdentity;
    let Some(bin) = kube_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&bin, dir.path()).await.unwrap();
    let node = NodeIdentity::connect(&cp.node_kubeconfig("node-a").unwrap(), "node-a")
        .await
        .unwrap();
    node.register().await.unwrap();
    // Registering again (a restarted kubelet) keeps what is there.
    node.register().await.unwrap();
    node.register_driver("cephfs.csi.trainride", "node-a")
        .await
        .unwrap();
    let ready = cp
        .kubectl(&[
            "get",
            "node",
            "node-a",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ])
        .await
        .unwrap();
    assert_eq!(ready.trim(), "True");
    let annotation = cp
        .kubectl(&["get", "node", "node-a", "-o", r#"jsonpath={.metadata.annotations.volumes\.kubernetes\.io/controller-managed-attach-detach}"#])
        .await
        .unwrap();
    assert_eq!(annotation.trim(), "true");
    let drivers = cp
        .kubectl(&[
            "get",
            "csinode",
            "node-a",
            "-o",
            "jsonpath={.spec.drivers[*].name}={.spec.drivers[*].nodeID}",
        ])
        .await
        .unwrap();
    assert_eq!(drivers.trim(), "cephfs.csi.trainride=node-a");
    let lease = cp
        .kubectl(&[
            "-n",
            "kube-node-lease",
            "get",
            "lease",
            "node-a",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .await
        .unwrap();
    assert_eq!(lease.trim(), "node-a");
    // node-a posing as node-b: NodeRestriction says no.
    let imposter = NodeIdentity::connect(&cp.node_kubeconfig("node-a").unwrap(), "node-b")
        .await
        .unwrap();
    let refused = format!("{:#}", imposter.register().await.unwrap_err());
    assert!(
        refused.contains("registering Node node-b")
            && refused.contains("node \"node-a\" is not allowed to modify node \"node-b\""),
        "{refused}"
    );
    assert!(
        cp.kubectl(&["get", "node", "node-b"]).await.is_err(),
        "node-b was registered"
    );
    cp.stop().await;
}

/// `harness run --control-plane real`'s library entry on scenario `name` at s=5 x r=10:
/// every pod Running through the real provisioner (and attacher), hollow kubelets and
/// the driver's node plugins; a clean teardown; the reports and every component's log
/// in the output directory.
async fn small_real_run(name: &str) -> harness::Summary {
    let p = params(
        name,
        &[
            "shares=5",
            "replicas=10",
            "stall_s=120",
            "max_deploy_s=300",
            "max_teardown_s=300",
            "hold_s=3",
        ],
    );
    let (s, out) = real_run(&p).await;
    // The pods were held Running `hold_s` before the deploy phase ended.
    let all = s.all_running_s.expect("all Running");
    assert!(
        s.sim_total_s >= all + 3.0,
        "no hold: {all} {}",
        s.sim_total_s
    );
    assert_eq!(s.mode, "real control plane");
    assert_eq!(s.outcome, "all pods Running", "{:?}", s.pods_not_running);
    assert_eq!((s.running, s.replicas), (10, 10));
    assert!(s.claims.values().all(|c| c == "Bound"), "{:?}", s.claims);
    assert!(s.clean, "{:?} {:?}", s.leaked_objects, s.leaks);
    assert!(s.leaks.none(), "{:?}", s.leaks);
    let ok = |m: &str| {
        s.rpcs
            .iter()
            .filter(|r| r.method == m && r.code == "Ok")
            .map(|r| r.sim.count)
            .sum::<usize>()
    };
    // One stage per volume per node, one publish per volume per pod, all undone.
    for m in [
        "NodeStageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeUnstageVolume",
    ] {
        assert_eq!(ok(m), 50, "{m}: {:?}", s.rpcs);
    }
    assert_eq!(ok("CreateVolume"), 5, "{:?}", s.rpcs);
    assert!(ok("DeleteVolume") >= 5, "{:?}", s.rpcs);
    // The kubelets' requests went through the kubelet's client rate limit (50 QPS).
    let (requests, _, longest) = s.api_clients["kubelet"];
    assert!(requests >= 10, "{:?}", s.api_clients);
    assert!(longest < 2.0, "{:?}", s.api_clients);
    let log = out.path().join("cluster").join("log");
    for f in [
        "kube-apiserver.log",
        "kube-controller-manager.log",
        "snapshot-controller.log",
        "csi-provisioner.log",
        "csi-resizer.log",
        "csi-snapshotter.log",
    ] {
        assert!(log.join(f).is_file(), "no {f}");
    }
    for f in ["summary.json", "report.md"] {
        assert!(out.path().join(f).is_file(), "no {f}");
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_with_skip_attach_runs_every_pod_and_leaves_nothing() {
    if kube_bin().is_none() {
        return;
    }
    let s = small_real_run("attempt-3-skip-attach").await;
    assert!(
        !s.rpcs.iter().any(|r| r.method == "ControllerPublishVolume"),
        "{:?}",
        s.rpcs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_with_attach_required_goes_through_volume_attachments() {
    if kube_bin().is_none() {
        return;
    }
    let s = small_real_run("attempt-1-attach-wreck").await;
    // The attach-detach controller made one VolumeAttachment per volume per node and
    // the real external-attacher published each.
    let published: usize = s
        .rpcs
        .iter()
        .filter(|r| r.method == "ControllerPublishVolume" && r.code == "Ok")
        .map(|r| r.sim.count)
        .sum();
    assert!(published >= 50, "{:?}", s.rpcs);
}

/// flaky-ceph-1k at s=5 x r=10 on the real control plane: fake-ceph fails subvolume
/// creates (20%) and MDS session opens (10%) and slows every volumes command; the real
/// external-provisioner's and the hollow kubelets' retries bring every pod up with one
/// volume per claim (`small_real_run`'s exact counts), and the failures were met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_on_flaky_ceph_retries_until_every_pod_runs() {
    if kube_bin().is_none() {
        return;
    }
    let s = small_real_run("flaky-ceph-1k").await;
    let failed: usize = s
        .rpcs
        .iter()
        .filter(|r| ["CreateVolume", "NodeStageVolume"].contains(&r.method.as_str()))
        .filter(|r| r.code != "Ok")
        .map(|r| r.sim.count)
        .sum();
    assert!(failed > 0, "no failure met: {:?}", s.rpcs);
}

/// A fault plan's anchors are the simulator's events: real mode refuses one, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_mode_refuses_a_fault_plan() {
    let plan = r#"fault_plan=[{"at": "start", "after_s": 0.5,
        "action": {"kill": {"plugin": "controller"}}}]"#;
    let p = params("soak", &[plan]);
    assert_eq!(p.fault_plan.len(), 1);
    let options = options("/nonexistent".into());
    let out = tempfile::tempdir().unwrap();
    let e = harness::real::run::run(&p, 1, &options, out.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("fault plans") && e.contains("soak"), "{e}");
}

/// `harness run --kubeconfig`'s library entry on a cluster it did not start (a local
/// one, up for the test): the workload in a namespace of its own, every pod Running,
/// everything it made removed (namespace included), nothing left in the back end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workload_runs_on_an_existing_cluster_through_its_kubeconfig() {
    let Some(bin) = kube_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = params(
        "attempt-3-skip-attach",
        &[
            "shares=3",
            "replicas=4",
            "stall_s=120",
            "max_teardown_s=300",
            "hold_s=0",
        ],
    );
    let options = options(bin);
    let cluster = harness::real::cluster::LocalCluster::start(&p, 1, &options, dir.path())
        .await
        .unwrap();
    let kubeconfig = cluster.cp.admin_kubeconfig();
    let s = harness::real::run::run_on_cluster(&p, 7, &kubeconfig, "cephfs").await;
    let namespaces = cluster
        .cp
        .kubectl(&["get", "namespaces", "-o", "name"])
        .await
        .unwrap();
    let staged = cluster.tally.counts();
    let leaks = cluster.stop(false).await;
    let s = s.unwrap();
    assert_eq!(s.mode, "cluster");
    assert_eq!(s.outcome, "all pods Running", "{:?}", s.pods_not_running);
    assert_eq!(s.running, 4);
    assert!(s.claims.values().all(|c| c == "Bound"), "{:?}", s.claims);
    assert!(s.clean, "{:?}", s.leaked_objects);
    assert!(
        !namespaces.contains("namespace/trainride-7"),
        "{namespaces}"
    );
    // The cluster's kubelets did the node work: 3 volumes on each of 4 nodes.
    let staged: usize = staged
        .rpcs
        .iter()
        .filter(|((m, c), _)| m == "NodeStageVolume" && c == "Ok")
        .map(|(_, v)| v.len())
        .sum();
    assert_eq!(staged, 12);
    assert!(leaks.none(), "{leaks:?}");
}

/// Attempt #2's script in real time: the Deployment grows in steps and pods not Running
/// soon enough are deleted (here after 1 s, so that some are, mid-mount); the kubelets
/// undo whatever they had staged or published for them and teardown leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_in_steps_kills_stuck_pods_and_leaves_nothing() {
    if kube_bin().is_none() {
        return;
    }
    let p = params(
        "attempt-2-incremental",
        &[
            "shares=3",
            "replicas=6",
            "step=2",
            "step_interval_s=2",
            "kill_stuck_after_s=1",
            "stall_s=60",
            "max_deploy_s=20",
            "max_teardown_s=300",
        ],
    );
    let (s, _out) = real_run(&p).await;
    assert!(s.pods_killed > 0, "no pod was stuck for 1 s: {s:?}");
    assert!(s.pods_created > 6, "no replacement: {}", s.pods_created);
    assert!(s.clean, "{:?} {:?}", s.leaked_objects, s.leaks);
    assert!(s.leaks.none(), "{:?}", s.leaks);
}

/// What a user applies is accepted by real programs: `helm lint --strict` passes on
/// deploy/'s chart, and `kubectl apply --dry-run=server` accepts the chart as `helm
/// template` renders it (defaults, attach required, Manila, no snapshotter) and the
/// examples (kubectl from the same release, the VolumeSnapshot CRDs installed); a bad
/// `backend` is refused when rendering, naming the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_is_accepted_by_a_real_api_server() {
    let Some(bin) = kube_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&bin, dir.path()).await.unwrap();
    cp.kubectl(&["create", "namespace", "cephfs-csi"])
        .await
        .unwrap();
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let chart = format!("{deploy}/chart");
    cp.helm(&["lint", "--strict", &chart])
        .await
        .unwrap_or_else(|e| panic!("helm lint: {e:#}"));
    let accepted = |out: &str| {
        out.lines()
            .filter(|l| l.contains("(server dry run)"))
            .count()
    };
    for (sets, objects, has) in [
        (
            vec![],
            10,
            vec![
                "deployment.apps/cephfs-csi-controller",
                "daemonset.apps/cephfs-csi-node",
            ],
        ),
        (
            vec!["attachRequired=true"],
            10,
            vec!["csidriver.storage.k8s.io/cephfs.csi.trainride"],
        ),
        (
            vec!["backend=manila"],
            10,
            vec!["configmap/cephfs-csi-config"],
        ),
        (vec!["sidecars.snapshotter.enabled=false"], 10, vec![]),
    ] {
        let mut args = vec![
            "template",
            "cephfs-csi",
            chart.as_str(),
            "--namespace",
            "cephfs-csi",
        ];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let yaml = cp
            .helm(&args)
            .await
            .unwrap_or_else(|e| panic!("{sets:?}: {e:#}"));
        let file = dir.path().join("chart.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let out = cp
            .kubectl(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()])
            .await
            .unwrap_or_else(|e| panic!("the chart with {sets:?} refused: {e:#}"));
        assert_eq!(accepted(&out), objects, "{sets:?}\n{out}");
        for name in has {
            assert!(out.contains(name), "{sets:?}: no {name}\n{out}");
        }
        // The attacher's container and rights come with attach, the snapshotter's go
        // without it.
        let attach = sets.contains(&"attachRequired=true");
        assert_eq!(yaml.contains("name: csi-attacher"), attach, "{sets:?}");
        assert_eq!(yaml.contains("--attach-required"), attach, "{sets:?}");
        let snapshots = !sets.contains(&"sidecars.snapshotter.enabled=false");
        assert_eq!(
            yaml.contains("name: csi-snapshotter"),
            snapshots,
            "{sets:?}"
        );
        assert_eq!(
            yaml.contains("volumesnapshotcontents"),
            snapshots,
            "{sets:?}"
        );
        assert_eq!(
            yaml.contains("--backend=manila"),
            sets.contains(&"backend=manila")
        );
    }
    let e = cp
        .helm(&["template", "cephfs-csi", &chart, "--set", "backend=nfs"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("backend must be cephfs or manila, not \"nfs\""),
        "{e}"
    );
    let out = cp
        .kubectl(&[
            "apply",
            "--dry-run=server",
            "-k",
            &format!("{deploy}/examples"),
        ])
        .await
        .unwrap_or_else(|e| panic!("deploy/examples refused: {e:#}"));
    assert_eq!(accepted(&out), 6, "{out}");
    cp.stop().await;
}

/// Ctrl-C in the middle of a real-mode run: the binary stops every component it started
/// and leaves no process, no temporary directory of its own and no socket behind; the
/// components' logs stay in the output directory.
#[test]
fn ctrl_c_stops_a_real_run_and_leaves_nothing() {
    use std::time::{Duration, Instant};
    let Some(bin) = kube_bin() else { return };
    let out = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args(["run", "attempt-3-skip-attach", "--control-plane", "real"])
        .arg("--kube-bin")
        .arg(&bin)
        // Every Manila share stays in `creating`: no claim binds and no pod runs, so the
        // run waits in its deploy phase until interrupted.
        .args([
            "--set",
            "shares=2",
            "--set",
            "replicas=3",
            "--set",
            "backend=manila",
        ])
        .args(["--set", "manila_faults.stuck_creating_rate=1.0"])
        .args(["--set", "stall_s=600", "--set", "max_deploy_s=600"])
        .arg("--out")
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Up to the sidecars: the cluster is there and the workload about to start.
    let sidecar_log = out.path().join("cluster/log/csi-provisioner.log");
    let pid = child.id();
    let until = Instant::now() + Duration::from_secs(120);
    while !sidecar_log.is_file() {
        assert!(Instant::now() < until, "the run never started its sidecars");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let owned_dirs = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("harness-real-") && name.contains(&format!("-{pid}."))
            })
            .map(|e| e.path().display().to_string())
            .collect()
    };
    assert!(!owned_dirs().is_empty() || !std::path::Path::new("/dev/shm").is_dir());
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "the run did not stop within 60 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "an interrupted run succeeded");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let out_text = out.path().display().to_string();
    let left: Vec<&str> = ps.lines().filter(|l| l.contains(&out_text)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(owned_dirs().is_empty(), "left: {:?}", owned_dirs());
    assert!(out.path().join("cluster/log/kube-apiserver.log").is_file());
}
