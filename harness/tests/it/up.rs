//! `harness up`: the binary started as a process, used through what it prints (sockets,
//! secrets, parameters) with a CSI client over gRPC, then stopped with SIGTERM.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use harness::client::endpoint::{Target, channel};
use serde_json::Value;
use tonic::transport::Channel;

/// The child is killed if a test fails before it is stopped.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `harness up` with `args` and reads the JSON document it prints; its stderr is
/// collected by a thread (a full pipe would stall it).
fn start(args: &[&str]) -> (Up, Value, std::thread::JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("up")
        .args(args)
        .env("HARNESS_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });
    let mut up = Up(child);
    let doc = serde_json::Deserializer::from_reader(stdout)
        .into_iter::<Value>()
        .next();
    match doc {
        Some(Ok(doc)) => (up, doc, stderr),
        other => {
            let _ = up.0.kill();
            let log = stderr.join().unwrap();
            panic!("no JSON document on stdout ({other:?}); stderr:\n{log}");
        }
    }
}

fn strings(v: &Value) -> HashMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn dial(endpoint: &Value) -> Channel {
    let target: Target = endpoint.as_str().unwrap().parse().unwrap();
    channel(&target, Duration::from_secs(60)).unwrap()
}

fn cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(Default::default())),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
        }),
    }
}

/// A node plugin of the document and the paths a kubelet would use on it.
struct Node {
    channel: Channel,
    client: NodeClient<Channel>,
    kubelet: PathBuf,
}

impl Node {
    fn staging(&self, vol: &str) -> PathBuf {
        self.kubelet.join("plugins/staging").join(vol)
    }

    fn target(&self, vol: &str) -> PathBuf {
        self.kubelet.join("pods/p1/volumes").join(vol)
    }

    async fn stage_and_publish(&mut self, v: &Volume, secrets: &HashMap<String, String>) {
        let staging = self.staging(&v.volume_id);
        let target = self.target(&v.volume_id);
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        self.client
            .node_stage_volume(NodeStageVolumeRequest {
                volume_id: v.volume_id.clone(),
                staging_target_path: path(&staging),
                volume_capability: Some(cap()),
                secrets: secrets.clone(),
                volume_context: v.volume_context.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        self.client
            .node_publish_volume(NodePublishVolumeRequest {
                volume_id: v.volume_id.clone(),
                staging_target_path: path(&staging),
                target_path: path(&target),
                volume_capability: Some(cap()),
                volume_context: v.volume_context.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn unpublish_and_unstage(&mut self, v: &Volume) {
        self.client
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: v.volume_id.clone(),
                target_path: path(&self.target(&v.volume_id)),
            })
            .await
            .unwrap();
        self.client
            .node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: v.volume_id.clone(),
                staging_target_path: path(&self.staging(&v.volume_id)),
            })
            .await
            .unwrap();
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Sends SIGTERM and waits for the exit status.
fn terminate(up: &mut Up) -> std::process::ExitStatus {
    let pid = up.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = up.0.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "harness up did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The whole cycle through `harness up --nodes 2 --backend <backend>`: a volume created,
/// staged and published on both nodes (a file written on one is read on the other),
/// unpublished, unstaged and deleted; a second volume left staged; SIGTERM; exit 0 and
/// nothing left on disk.
async fn cycle(backend: &str) {
    let (mut up, doc, stderr) = tokio::task::spawn_blocking({
        let backend = backend.to_owned();
        move || start(&["--nodes", "2", "--backend", &backend, "--seed", "3"])
    })
    .await
    .unwrap();
    assert_eq!(doc["backend"], backend);
    let dir = PathBuf::from(doc["dir"].as_str().unwrap());
    assert!(dir.is_dir());
    let secrets = strings(&doc["secrets"]);
    let parameters = strings(&doc["parameters"]);
    assert_eq!(doc["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(doc["nodes"][1]["node_id"], "node-0002");
    assert!(
        doc["ceph"]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(doc["cluster_config"][0]["admin"]["url"], doc["ceph"]["url"]);
    if backend == "manila" {
        let auth_url = doc["manila"]["auth_url"].as_str().unwrap();
        assert_eq!(secrets["os-authURL"], auth_url);
        assert!(auth_url.ends_with("/v3"), "{auth_url}");
        assert_eq!(parameters["type"], "cephfstype");
        // Manila has an endpoint of its own, whose root lists Manila's versions.
        let manila_url = doc["manila"]["url"].as_str().unwrap();
        assert_ne!(format!("{manila_url}/v3"), auth_url);
        let r = reqwest::get(format!("{manila_url}/")).await.unwrap();
        assert_eq!(r.status(), 300);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["versions"][0]["id"], "v2.0");
        assert_eq!(v["versions"].as_array().map(Vec::len), Some(1));
    } else {
        assert_eq!(
            secrets["adminKey"],
            doc["ceph"]["admin_key"].as_str().unwrap()
        );
        assert_eq!(parameters["clusterID"], "c1");
        assert!(doc["manila"].is_null());
    }
    let sc = &doc["storage_class"]["parameters"];
    assert_eq!(
        sc["csi.storage.k8s.io/provisioner-secret-name"],
        "trainride-csi"
    );

    let controller = dial(&doc["controller"]["endpoint"]);
    let mut identity = IdentityClient::new(controller.clone());
    identity.probe(ProbeRequest {}).await.unwrap();
    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, doc["driver_name"].as_str().unwrap());
    let mut ctl = ControllerClient::new(controller);
    let mut nodes: Vec<Node> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ch = dial(&n["endpoint"]);
            Node {
                client: NodeClient::new(ch.clone()),
                channel: ch,
                kubelet: PathBuf::from(n["kubelet_dir"].as_str().unwrap()),
            }
        })
        .collect();
    for n in &mut nodes {
        let mut id = IdentityClient::new(n.channel.clone());
        id.probe(ProbeRequest {}).await.unwrap();
    }
    let create = |name: &str| CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![cap()],
        parameters: parameters.clone(),
        secrets: secrets.clone(),
        ..Default::default()
    };
    let v = ctl
        .create_volume(create("pvc-up-1"))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    if backend == "manila" {
        assert_eq!(v.volume_context["shareID"], v.volume_id);
        assert!(v.volume_context.contains_key("shareAccessID"));
    } else {
        // The controller has controllerCredentials: RPCs without secrets work.
        let listed = ctl
            .list_volumes(ListVolumesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.entries.len(), 1);
        assert_eq!(
            listed.entries[0].volume.as_ref().unwrap().volume_id,
            v.volume_id
        );
    }
    for n in &mut nodes {
        n.stage_and_publish(&v, &secrets).await;
    }
    // One CephFS tree behind both nodes' mounts.
    std::fs::write(
        nodes[0].target(&v.volume_id).join("hello"),
        b"from node-0001",
    )
    .unwrap();
    assert_eq!(
        std::fs::read(nodes[1].target(&v.volume_id).join("hello")).unwrap(),
        b"from node-0001"
    );
    for n in &mut nodes {
        n.unpublish_and_unstage(&v).await;
    }
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: v.volume_id.clone(),
        secrets: secrets.clone(),
    })
    .await
    .unwrap();

    // A volume left staged and published: stopping removes it with everything else.
    let left = ctl
        .create_volume(create("pvc-up-2"))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    nodes[1].stage_and_publish(&left, &secrets).await;

    let status = tokio::task::spawn_blocking(move || {
        let s = terminate(&mut up);
        (s, up)
    })
    .await
    .unwrap();
    let log = stderr.join().unwrap();
    assert!(status.0.success(), "{:?}\n{log}", status.0);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(log.contains("removed what was left"), "{log}");
    // The secrets went to stdout only: not into the debug log.
    assert!(
        !log.contains(doc["ceph"]["admin_key"].as_str().unwrap()),
        "the admin key in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_up_serves_the_cephfs_back_end_until_sigterm() {
    cycle("cephfs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_up_serves_the_manila_back_end_until_sigterm() {
    cycle("manila").await;
}
