//! The CSI sidecars of a real-mode run: the containers of deploy/'s controller Deployment
//! other than the driver's (external-provisioner, -resizer and -snapshotter, and
//! -attacher when the overlay requires attach), each run as a process with the
//! container's own arguments, on the driver controller's socket, under deploy/'s
//! ServiceAccount, with its metrics on a loopback port; and the reading of their
//! `csi_sidecar_operations_seconds` counts, the controller's CSI calls by method and
//! code as the sidecars saw them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::ControlPlane;

/// The release and namespace real mode installs deploy/'s chart as, and the controller's
/// ServiceAccount the chart makes for that release.
pub(super) const RELEASE: &str = "cephfs-csi";
/// See [`RELEASE`].
pub(super) const NAMESPACE: &str = "cephfs-csi";
const ACCOUNT: &str = "cephfs-csi-controller";
/// The driver's container in the controller Deployment.
const DRIVER_CONTAINER: &str = "cephfs-csi";
/// The sidecars real mode can run: each container's name is its program's.
const PROGRAMS: [&str; 4] = [
    "csi-provisioner",
    "csi-attacher",
    "csi-resizer",
    "csi-snapshotter",
];

/// A sidecar container of deploy/'s controller Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// Its program.
    pub program: &'static str,
    /// Its container's arguments, as deploy/ gives them.
    pub args: Vec<String>,
}

/// The sidecars of a rendered controller Deployment: every container but the driver's.
/// A container real mode has no program for is an error naming it.
pub fn of_deployment(deployment: &serde_json::Value) -> anyhow::Result<Vec<Sidecar>> {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .context("the controller Deployment has no containers")?;
    let mut sidecars = Vec::new();
    for c in containers {
        let name = c["name"].as_str().unwrap_or_default();
        if name == DRIVER_CONTAINER {
            continue;
        }
        let Some(program) = PROGRAMS.into_iter().find(|p| *p == name) else {
            bail!("deploy/'s controller has a container {name:?}, which real mode cannot run");
        };
        let args = c["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        sidecars.push(Sidecar { program, args });
    }
    Ok(sidecars)
}

/// A container's arguments for a process here: `$(ADDRESS)` is the controller's socket,
/// `$(NAMESPACE)` deploy/'s namespace; leader election is off (one replica, and nothing
/// here restarts a sidecar whose lease a busy machine let lapse, as a kubelet restarts a
/// container); the ServiceAccount's kubeconfig, a metrics endpoint and `--v=2` added.
fn local_args(
    args: &[String],
    socket: &Path,
    kubeconfig: &Path,
    port: u16,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for a in args {
        if a.starts_with("--leader-election-namespace") || a.starts_with("--http-endpoint") {
            continue;
        }
        if a.starts_with("--leader-election") {
            out.push("--leader-election=false".to_owned());
            continue;
        }
        let a = a
            .replace("$(ADDRESS)", &format!("unix://{}", socket.display()))
            .replace("$(NAMESPACE)", NAMESPACE);
        if a.contains("$(") {
            bail!("a sidecar argument names a variable real mode does not set: {a}");
        }
        out.push(a);
    }
    out.push(format!("--kubeconfig={}", kubeconfig.display()));
    out.push(format!("--http-endpoint=127.0.0.1:{port}"));
    out.push("--v=2".to_owned());
    Ok(out)
}

/// A free loopback port (bound, then released for the sidecar).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Starts the sidecars; the URLs of their metrics.
pub async fn start(
    cp: &mut ControlPlane,
    socket: &Path,
    sidecars: &[Sidecar],
) -> anyhow::Result<Vec<String>> {
    let account = cp.service_account_kubeconfig(NAMESPACE, ACCOUNT).await?;
    let mut urls = Vec::new();
    for s in sidecars {
        let port = free_port()?;
        cp.run(s.program, &local_args(&s.args, socket, &account, port)?)?;
        urls.push(format!("http://127.0.0.1:{port}/metrics"));
    }
    // A sidecar that cannot start (bad flag, no socket) exits at once: say so now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cp.check_all_running()?;
    Ok(urls)
}

/// Adds a sidecar's operation counts at `url` into `into`, by (method, code) in the
/// simulator's spelling (`CreateVolume`, `DeadlineExceeded`). A sidecar that cannot be
/// read adds nothing, with a warning.
pub async fn scrape(url: &str, into: &mut BTreeMap<(String, String), u64>) {
    let text = match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("reading {url}: {e}");
            return;
        }
    };
    for (k, n) in parse_operation_counts(&text) {
        *into.entry(k).or_default() += n;
    }
}

/// `csi_sidecar_operations_seconds_count{...method_name="/csi.v1.Controller/X",
/// grpc_status_code="Y"} N` lines.
fn parse_operation_counts(text: &str) -> Vec<((String, String), u64)> {
    let label = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!("{key}=\""))? + key.len() + 2;
        let end = line[at..].find('"')?;
        Some(line[at..at + end].to_owned())
    };
    text.lines()
        .filter(|l| l.starts_with("csi_sidecar_operations_seconds_count{"))
        .filter_map(|l| {
            let method = label(l, "method_name")?;
            let method = method.rsplit('/').next()?.to_owned();
            let code = match label(l, "grpc_status_code")?.as_str() {
                "OK" => "Ok".to_owned(),
                "Canceled" => "Cancelled".to_owned(),
                other => other.to_owned(),
            };
            let n: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some(((method, code), n as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_run_with_deploys_arguments_on_the_local_socket() {
        let deployment = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "csi-provisioner", "args": ["--csi-address=$(ADDRESS)",
                "--leader-election=true", "--leader-election-namespace=$(NAMESPACE)",
                "--timeout=150s"]},
            {"name": "cephfs-csi", "args": ["--mode=controller"]},
            {"name": "csi-snapshotter"},
        ]}}}});
        let sidecars = of_deployment(&deployment).unwrap();
        assert_eq!(
            sidecars.iter().map(|s| s.program).collect::<Vec<_>>(),
            ["csi-provisioner", "csi-snapshotter"]
        );
        let args = local_args(
            &sidecars[0].args,
            Path::new("/tmp/c.sock"),
            Path::new("/tmp/sa.kubeconfig"),
            4242,
        )
        .unwrap();
        assert_eq!(
            args,
            [
                "--csi-address=unix:///tmp/c.sock",
                "--leader-election=false",
                "--timeout=150s",
                "--kubeconfig=/tmp/sa.kubeconfig",
                "--http-endpoint=127.0.0.1:4242",
                "--v=2",
            ]
        );
        let odd = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "liveness-probe"}]}}}});
        let e = of_deployment(&odd).unwrap_err().to_string();
        assert!(e.contains("\"liveness-probe\""), "{e}");
        let e = local_args(&["--x=$(POD)".into()], Path::new("s"), Path::new("k"), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("$(POD)"), "{e}");
    }

    #[test]
    fn operation_counts_are_read_by_method_and_code() {
        let text = r#"# HELP csi_sidecar_operations_seconds [ALPHA] Container Storage Interface operation duration with gRPC error code status total
# TYPE csi_sidecar_operations_seconds histogram
csi_sidecar_operations_seconds_bucket{driver_name="cephfs.csi.trainride",grpc_status_code="OK",method_name="/csi.v1.Controller/CreateVolume",le="0.1"} 3
csi_sidecar_operations_seconds_count{driver_name="cephfs.csi.trainride",grpc_status_code="OK",method_name="/csi.v1.Controller/CreateVolume"} 10
csi_sidecar_operations_seconds_count{driver_name="cephfs.csi.trainride",grpc_status_code="DeadlineExceeded",method_name="/csi.v1.Controller/CreateVolume"} 2
csi_sidecar_operations_seconds_count{driver_name="cephfs.csi.trainride",grpc_status_code="Canceled",method_name="/csi.v1.Identity/Probe"} 1
"#;
        assert_eq!(
            parse_operation_counts(text),
            vec![
                (("CreateVolume".into(), "Ok".into()), 10),
                (("CreateVolume".into(), "DeadlineExceeded".into()), 2),
                (("Probe".into(), "Cancelled".into()), 1),
            ]
        );
    }
}
