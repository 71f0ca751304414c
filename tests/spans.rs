//! One process, several plugins (as the harness runs hundreds): every line the driver
//! logs while it serves a call carries the plugin's node and the volume through the
//! call's span, so two node plugins' lines are told apart.
//!
//! A test binary of its own: `tracing` caches each log call site's interest for the
//! whole process, and a call site first reached by another test's thread while this
//! test installs its subscriber can be cached as "never" (seen once in CI: the driver's
//! outcome lines were missing). Alone in its process, nothing else runs meanwhile.

#![allow(clippy::unwrap_used)]

#[path = "e2e/support.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::io::Write;
use std::sync::Arc;

use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use std::sync::Mutex;

use crate::support::*;

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A node-only plugin with node ID `node`, its fake mounter in symlink mode.
async fn node_plugin(ceph: &Ceph, node: &str) -> Csi {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let clusters = parse_clusters(&ceph.cluster_config()).unwrap();
    let mut config = Config::new("cephfs.csi.trainride", node, Mode::Node, clusters);
    config.mounter = MounterKind::Fake;
    config.state_dir = state_dir.clone();
    let mounter: Arc<dyn Mounter> = Arc::new(FakeMounter::new(state_dir, FakeMountMode::Symlink));
    Csi::start_config(dir, config, mounter).await
}

#[test]
fn two_node_plugins_in_one_process_are_told_apart_in_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // A thread-local subscriber and a runtime on this thread: every task of the test
    // (clients, the plugins' servers, fake-ceph) logs here, and no other test does.
    let _default = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = rt.block_on(async {
        let ceph = Ceph::start().await;
        let controller = Csi::start(&ceph).await;
        let mut cc = controller.controller().await;
        let mut vols = Vec::new();
        for name in ["pvc-span-a", "pvc-span-b"] {
            let v = cc
                .create_volume(create_request(&ceph, name, 1 << 30))
                .await
                .unwrap()
                .into_inner()
                .volume
                .unwrap();
            vols.push(v);
        }
        let pa = node_plugin(&ceph, "node-a").await;
        let pb = node_plugin(&ceph, "node-b").await;
        for (plugin, v) in [(&pa, &vols[0]), (&pb, &vols[1])] {
            let mut nc = plugin.node().await;
            let staging = plugin.dir.path().join("staging");
            std::fs::create_dir_all(&staging).unwrap();
            nc.node_stage_volume(stage_req(v, &staging, ceph.secrets()))
                .await
                .unwrap();
            // A second stage of the same volume: answered at once, logged too.
            nc.node_stage_volume(stage_req(v, &staging, ceph.secrets()))
                .await
                .unwrap();
            nc.node_unstage_volume(unstage_req(&v.volume_id, &staging))
                .await
                .unwrap();
            // And a failure, logged with its code.
            let e = nc
                .node_unstage_volume(unstage_req(&v.volume_id, std::path::Path::new("")))
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
        for v in &vols {
            cc.delete_volume(driver::csi::v1::DeleteVolumeRequest {
                volume_id: v.volume_id.clone(),
                secrets: ceph.secrets(),
            })
            .await
            .unwrap();
        }
        (vols[0].volume_id.clone(), vols[1].volume_id.clone())
    });
    drop(rt);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The driver's own lines (its targets are `driver::...`).
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" driver::")).collect();
    let of = |node: &str| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| l.contains(&format!("node={node}")))
            .collect()
    };
    let (on_a, on_b) = (of("node-a"), of("node-b"));
    // Each plugin logged its stage (the fake mount), its unstage and the failure.
    for (node, mine, theirs, lines) in [("node-a", &a, &b, &on_a), ("node-b", &b, &a, &on_b)] {
        assert!(
            lines.iter().any(|l| l.contains("NodeStageVolume")),
            "{node}: no stage line in\n{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("NodeUnstageVolume") && l.contains("InvalidArgument")),
            "{node}: no failure line in\n{text}"
        );
        for l in lines {
            assert!(l.contains(&format!("volume={mine}")), "{node}: {l}");
            assert!(
                !l.contains(theirs.as_str()),
                "{node} names the other volume: {l}"
            );
        }
    }
    // No line of the driver stands outside a call's span: each names a node.
    for l in &lines {
        assert!(
            l.contains("csi{node="),
            "a driver line without its span: {l}"
        );
    }
}
