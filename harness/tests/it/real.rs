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
