//! The CSI sidecars of a real-mode run: the real external-provisioner (and, when the
//! CSIDriver requires attach, external-attacher) on the driver controller's socket,
//! under deploy/'s ServiceAccount, each with its metrics on a loopback port; and the
//! reading of their `csi_sidecar_operations_seconds` counts, the controller's CSI calls
//! by method and code as the sidecars saw them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use super::ControlPlane;

/// deploy/'s namespace and the controller's ServiceAccount.
const NAMESPACE: &str = "cephfs-csi";
const ACCOUNT: &str = "cephfs-csi-controller";

/// A free loopback port (bound, then released for the sidecar).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Starts the sidecars; the URLs of their metrics.
pub async fn start(
    cp: &mut ControlPlane,
    socket: &Path,
    attach_required: bool,
) -> anyhow::Result<Vec<String>> {
    let account = cp.service_account_kubeconfig(NAMESPACE, ACCOUNT).await?;
    let mut names: Vec<&'static str> = vec!["csi-provisioner"];
    if attach_required {
        names.push("csi-attacher");
    }
    let mut urls = Vec::new();
    for name in names {
        let port = free_port()?;
        let mut args = vec![
            format!("--csi-address=unix://{}", socket.display()),
            format!("--kubeconfig={}", account.display()),
            "--leader-election=false".to_owned(),
            format!("--http-endpoint=127.0.0.1:{port}"),
            "--v=2".to_owned(),
        ];
        // deploy/'s timeouts: a Manila share can take minutes.
        args.push(if name == "csi-provisioner" {
            "--timeout=60s".to_owned()
        } else {
            "--timeout=150s".to_owned()
        });
        cp.run(name, &args)?;
        urls.push(format!("http://127.0.0.1:{port}/metrics"));
    }
    // A sidecar that cannot start (bad flag, no socket) exits at once: say so now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cp.check_running("csi-provisioner")?;
    if attach_required {
        cp.check_running("csi-attacher")?;
    }
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
