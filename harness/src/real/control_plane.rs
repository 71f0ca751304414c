//! A real local Kubernetes control plane in a directory of its own: etcd,
//! kube-apiserver with `--authorization-mode=Node,RBAC` and the NodeRestriction admission
//! plugin (the real node authorizer, the source of 2018's `no path found to object`),
//! kube-controller-manager (attach-detach and PV controllers among its defaults, each
//! with its own service account), kube-scheduler, and the VolumeSnapshot add-on
//! (external-snapshotter's CRDs and snapshot-controller under its own ServiceAccount and
//! RBAC), from the programs and manifests `ci/install-kube.sh` builds and keeps. Each component logs to `<dir>/log/<name>.log`; one that
//! does not come up is an error naming it and the end of its log. [`ControlPlane::stop`]
//! stops them in the reverse order of their start (an API server whose etcd went first
//! hangs in its graceful shutdown), each given 10 s before SIGKILL; dropping a control
//! plane that was not stopped kills what is left.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use super::pki::{Identity, Pki, write_private};

/// The programs a control plane runs, in `bin`.
pub const PROGRAMS: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "snapshot-controller",
];

/// The VolumeSnapshot add-on's manifests, in `bin/../snapshot`, in the order they are
/// applied: the CRDs, then snapshot-controller's ServiceAccount and RBAC.
pub const SNAPSHOT_ADDON: [&str; 4] = [
    "crd-volumesnapshotclasses.yaml",
    "crd-volumesnapshotcontents.yaml",
    "crd-volumesnapshots.yaml",
    "rbac-snapshot-controller.yaml",
];

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    bin: PathBuf,
    api_port: u16,
    pki: Pki,
    children: Vec<(&'static str, Child)>,
}

/// A free loopback port (the listener is closed again: another process may take it
/// first, which only makes a start fail with its log saying so).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The end of a component's log, for an error.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl ControlPlane {
    /// Starts one in `dir` (created if missing) from the programs in `bin`, and waits
    /// until the API server is ready and the controller manager has made the `default`
    /// ServiceAccount (pods cannot be created before).
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let addon = snapshot_addon(bin);
        let needed = PROGRAMS.iter().map(|p| bin.join(p));
        for path in needed.chain(SNAPSHOT_ADDON.iter().map(|f| addon.join(f))) {
            if !path.is_file() {
                bail!(
                    "{} is missing: build the Kubernetes programs with ci/install-kube.sh",
                    path.display()
                );
            }
        }
        for sub in ["log", "etcd"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let pki = Pki::new(&dir.join("pki"))?;
        let mut cp = Self {
            dir: dir.to_owned(),
            bin: bin.to_owned(),
            api_port: free_port()?,
            pki,
            children: Vec::new(),
        };
        let etcd = cp.start_etcd().await?;
        cp.start_apiserver(&etcd).await?;
        cp.start_controllers().await?;
        cp.start_snapshot_controller().await?;
        Ok(cp)
    }

    /// The API server's URL.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin's kubeconfig (`system:masters`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// A kubeconfig for node `name` (`system:node:<name>` in `system:nodes`), made on
    /// first use.
    pub fn node_kubeconfig(&self, name: &str) -> anyhow::Result<PathBuf> {
        let file = format!("node-{name}");
        let path = self.dir.join(format!("{file}.kubeconfig"));
        if !path.exists() {
            let id = self
                .pki
                .client(&file, &format!("system:node:{name}"), &["system:nodes"])?;
            self.write_kubeconfig(&path, &id)?;
        }
        Ok(path)
    }

    /// `helm` with these arguments, its files in this control plane's directory.
    pub async fn helm(&self, args: &[&str]) -> anyhow::Result<String> {
        helm(&self.bin, &self.dir.join("helm"), args).await
    }

    /// `kubectl` as the admin, with these arguments; its stdout, or an error with its
    /// stderr.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        kubectl(&self.bin, &self.admin_kubeconfig(), args).await
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/name` (a token the
    /// API server issues for an hour): how a sidecar runs with the RBAC `deploy/` gives
    /// its account, not as an admin.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        let token = self
            .kubectl(&["-n", namespace, "create", "token", name, "--duration=1h"])
            .await?;
        let path = self.dir.join(format!("sa-{namespace}-{name}.kubeconfig"));
        let doc = self.kubeconfig(serde_json::json!({"token": token.trim()}));
        write_private(&path, &serde_json::to_vec_pretty(&doc)?)?;
        Ok(path)
    }

    /// Runs another program beside the components (a CSI sidecar, say), logging to
    /// `<dir>/log/<name>.log`; it is stopped first. `name`'s program is looked up in the
    /// programs' directory.
    pub fn run(&mut self, name: &'static str, args: &[String]) -> anyhow::Result<()> {
        self.spawn(name, args)
    }

    /// Fails, naming the program and its log's end, if `name` has exited.
    pub fn check_running(&mut self, name: &str) -> anyhow::Result<()> {
        let log = self.dir.join("log").join(format!("{name}.log"));
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| *n == name)
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "{name} exited ({status}); {}:\n{}",
                log.display(),
                log_tail(&log)
            );
        }
        Ok(())
    }

    /// Fails, naming the program and its log's end, if any program has exited.
    pub fn check_all_running(&mut self) -> anyhow::Result<()> {
        let names: Vec<&'static str> = self.children.iter().map(|(n, _)| *n).collect();
        for name in names {
            self.check_running(name)?;
        }
        Ok(())
    }

    /// A kubeconfig of this API server for `user` (its client certificate or token).
    fn kubeconfig(&self, user: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {
                "server": self.api_url(),
                "certificate-authority": self.pki.ca_cert(),
            }}],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user"}}],
            "current-context": "local",
        })
    }

    fn write_kubeconfig(&self, path: &Path, id: &Identity) -> anyhow::Result<()> {
        let doc = self.kubeconfig(serde_json::json!({
            "client-certificate": id.cert,
            "client-key": id.key,
        }));
        // JSON is YAML: kubectl and client-go read it as a kubeconfig.
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)?;
        Ok(())
    }

    fn spawn(&mut self, name: &'static str, args: &[String]) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join("log").join(format!("{name}.log")))?;
        let child = Command::new(self.bin.join(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.push((name, child));
        Ok(())
    }

    /// Waits until `ready` answers true, or fails naming `name` with its log's end (also
    /// when the component exits first).
    async fn wait_ready<F, Fut>(
        &mut self,
        name: &str,
        within: Duration,
        ready: F,
    ) -> anyhow::Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let until = Instant::now() + within;
        loop {
            if ready().await {
                return Ok(());
            }
            self.check_running(name)?;
            if Instant::now() >= until {
                let log = self.dir.join("log").join(format!("{name}.log"));
                bail!(
                    "{name} was not ready within {within:?}; {}:\n{}",
                    log.display(),
                    log_tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// etcd on two free loopback ports; its client URL.
    async fn start_etcd(&mut self) -> anyhow::Result<String> {
        let (client, peer) = (free_port()?, free_port()?);
        let data = self.dir.join("etcd");
        let args = vec![
            "--name=node0".to_owned(),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=node0=http://127.0.0.1:{peer}"),
            // A throwaway store: no fsync (etcd's own flag says it loses data on a crash).
            "--unsafe-no-fsync".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        self.spawn("etcd", &args)?;
        let url = format!("http://127.0.0.1:{client}/health");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        self.wait_ready("etcd", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move { matches!(http.get(&url).send().await, Ok(r) if r.status().is_success()) }
        })
        .await?;
        Ok(format!("http://127.0.0.1:{client}"))
    }

    async fn start_apiserver(&mut self, etcd: &str) -> anyhow::Result<()> {
        let serving = self.pki.server(
            "apiserver",
            "kube-apiserver",
            &[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
                "127.0.0.1",
                "10.96.0.1",
            ],
        )?;
        let sa = self.pki.service_account()?;
        let admin = self
            .pki
            .client("admin", "kubernetes-admin", &["system:masters"])?;
        self.write_kubeconfig(&self.admin_kubeconfig(), &admin)?;
        let args = vec![
            format!("--etcd-servers={etcd}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", self.api_port),
            format!("--tls-cert-file={}", serving.cert.display()),
            format!("--tls-private-key-file={}", serving.key.display()),
            format!("--client-ca-file={}", self.pki.ca_cert().display()),
            format!("--service-account-key-file={}", sa.cert.display()),
            format!("--service-account-signing-key-file={}", sa.key.display()),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            "--authorization-mode=Node,RBAC".to_owned(),
            "--enable-admission-plugins=NodeRestriction".to_owned(),
            "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
            "--allow-privileged=true".to_owned(),
            // No Service endpoints to keep: nothing runs the kubernetes Service's pods.
            "--endpoint-reconciler-type=none".to_owned(),
        ];
        self.spawn("kube-apiserver", &args)?;
        self.wait_for_kubectl("kube-apiserver", &["get", "--raw", "/readyz"])
            .await
    }

    /// Waits up to 90 s until `kubectl <args>` as the admin succeeds; `name` is the
    /// component that makes it succeed.
    async fn wait_for_kubectl(&mut self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let (bin, config) = (self.bin.clone(), self.admin_kubeconfig());
        self.wait_ready(name, Duration::from_secs(90), || {
            let (bin, config) = (bin.clone(), config.clone());
            async move { kubectl(&bin, &config, args).await.is_ok() }
        })
        .await
    }

    async fn start_controllers(&mut self) -> anyhow::Result<()> {
        let kcm = self
            .pki
            .client("controller-manager", "system:kube-controller-manager", &[])?;
        let kcm_config = self.dir.join("controller-manager.kubeconfig");
        self.write_kubeconfig(&kcm_config, &kcm)?;
        let scheduler = self.pki.client("scheduler", "system:kube-scheduler", &[])?;
        let scheduler_config = self.dir.join("scheduler.kubeconfig");
        self.write_kubeconfig(&scheduler_config, &scheduler)?;
        let sa_key = self.dir.join("pki").join("sa.key");
        let args = vec![
            format!("--kubeconfig={}", kcm_config.display()),
            // No HTTPS endpoint of its own: nothing here scrapes it.
            "--secure-port=0".to_owned(),
            "--leader-elect=false".to_owned(),
            "--use-service-account-credentials=true".to_owned(),
            format!("--service-account-private-key-file={}", sa_key.display()),
            format!("--root-ca-file={}", self.pki.ca_cert().display()),
            format!(
                "--cluster-signing-cert-file={}",
                self.pki.ca_cert().display()
            ),
            format!("--cluster-signing-key-file={}", self.pki.ca_key().display()),
        ];
        self.spawn("kube-controller-manager", &args)?;
        let args = vec![
            format!("--kubeconfig={}", scheduler_config.display()),
            "--secure-port=0".to_owned(),
            "--leader-elect=false".to_owned(),
        ];
        self.spawn("kube-scheduler", &args)?;
        self.wait_for_kubectl(
            "kube-controller-manager",
            &["-n", "default", "get", "serviceaccount", "default"],
        )
        .await
    }

    /// Installs the VolumeSnapshot add-on: its CRDs (waiting until the API serves them),
    /// then snapshot-controller under its ServiceAccount. A cluster without it leaves
    /// csi-snapshotter's VolumeSnapshotContents unmade.
    async fn start_snapshot_controller(&mut self) -> anyhow::Result<()> {
        let addon = snapshot_addon(&self.bin);
        for f in SNAPSHOT_ADDON {
            let path = addon.join(f);
            self.kubectl(&["apply", "-f", &path.to_string_lossy()])
                .await
                .with_context(|| format!("installing {}", path.display()))?;
        }
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/volumesnapshotclasses.snapshot.storage.k8s.io",
            "crd/volumesnapshotcontents.snapshot.storage.k8s.io",
            "crd/volumesnapshots.snapshot.storage.k8s.io",
        ])
        .await
        .context("waiting for the VolumeSnapshot CRDs")?;
        let account = self
            .service_account_kubeconfig("kube-system", "snapshot-controller")
            .await?;
        let args = vec![
            format!("--kubeconfig={}", account.display()),
            "--leader-election=false".to_owned(),
            "--v=2".to_owned(),
        ];
        self.spawn("snapshot-controller", &args)
    }

    /// Stops every component, the last started first, each given 10 s after SIGTERM
    /// before SIGKILL.
    pub async fn stop(mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            if let Some(pid) = child
                .id()
                .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    component = name,
                    "did not stop within 10 s of SIGTERM; killing it"
                );
                let _ = child.kill().await;
            }
        }
    }
}

/// Where `ci/install-kube.sh` keeps the VolumeSnapshot add-on: beside `bin`.
fn snapshot_addon(bin: &Path) -> PathBuf {
    bin.parent().unwrap_or(bin).join("snapshot")
}

/// `kubectl --kubeconfig <config> <args>`: its stdout, or an error with its stderr.
pub async fn kubectl(bin: &Path, config: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin.join("kubectl"));
    cmd.arg("--kubeconfig").arg(config);
    output(cmd, "kubectl", args).await
}

/// `helm <args>` from `bin` (`ci/install-kube.sh` builds it), its cache, configuration
/// and data kept under `home`: its stdout, or an error with its stderr.
pub async fn helm(bin: &Path, home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let program = bin.join("helm");
    if !program.is_file() {
        bail!(
            "{} is missing: build it with ci/install-kube.sh",
            program.display()
        );
    }
    let mut cmd = Command::new(program);
    for (var, sub) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        cmd.env(var, home.join(sub));
    }
    output(cmd, "helm", args).await
}

/// Runs `cmd` with `args` to its end: its stdout, or an error naming `name`, the
/// arguments and its stderr.
async fn output(mut cmd: Command, name: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {name}"))?;
    if !out.status.success() {
        bail!(
            "{name} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the programs, the start says which one is missing and how to build them.
    #[tokio::test]
    async fn a_missing_program_is_named() {
        let bin = tempfile::tempdir().unwrap();
        std::fs::write(bin.path().join("etcd"), "").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = ControlPlane::start(bin.path(), dir.path())
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("kube-apiserver is missing"), "{text}");
        assert!(text.contains("ci/install-kube.sh"), "{text}");
    }

    /// A component that exits at once is reported with its log's end.
    #[tokio::test]
    async fn a_component_that_exits_is_reported_with_its_log() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(root.path().join("snapshot")).unwrap();
        for f in SNAPSHOT_ADDON {
            std::fs::write(root.path().join("snapshot").join(f), "kind: List\n").unwrap();
        }
        for p in PROGRAMS {
            let path = bin.join(p);
            std::fs::write(&path, "#!/bin/sh\necho \"$0: cannot listen\" >&2\nexit 3\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let e = ControlPlane::start(&bin, dir.path()).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("etcd exited"), "{text}");
        assert!(text.contains("cannot listen"), "{text}");
    }
}
