//! ceph-fuse mounts.
//!
//! [`FuseMounter`] runs
//! `ceph-fuse <target> -m <mons> -c <conf> -n client.<id> --keyfile=<file> -r <root_path> -o nonempty[,ro][,<options>] --client_mds_namespace=<fs>`
//! where `<conf>` is a minimal `ceph.conf` and `<file>` holds the key, both in a private
//! 0700 directory (files 0600) that is removed once ceph-fuse has reported back.
//!
//! ceph-fuse forks: the foreground process waits for the daemon to mount, prints
//! `ceph-fuse[<pid>]: starting fuse` on stderr and exits 0; on failure it exits non-zero
//! with the reason on stderr (`mds.0 rejected us (non-allowable root '/')` → EPERM,
//! `(13) Permission denied` or an authentication failure → EACCES). Success is exit 0
//! and the target in the mount table. The foreground process has a deadline; if it
//! passes, the process is killed and, should the daemon have mounted meanwhile, the
//! target is unmounted lazily. (A daemon that mounts even later is found by the next
//! `mount_cephfs`, which then succeeds without mounting again.)
//!
//! Bind mounts, unmounting (`umount`, lazily when the mount is dead: there is no
//! `fusermount` here), state and statistics are the host's, as for the kernel mounter.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::kernel::{
    HostTools, SecretDir, errno_from_message, extra_options, run_command, validate,
};
use super::{CephMount, FsStats, MountError, MountState, Mounter};

/// The ceph.conf given to ceph-fuse: no monitors (they are on the command line).
pub const MINIMAL_CONF: &str = "[global]\nfuse_set_user_groups = false\nfuse_big_writes = true\n";

/// How often the mount table is read while waiting for the mount to show.
const POLL: Duration = Duration::from_millis(20);

const FUSE_RESERVED: &[&str] = &[
    "keyfile",
    "key",
    "keyring",
    "secret",
    "secretfile",
    "name",
    "client_mds_namespace",
];

/// The `ceph-fuse` argv.
pub(crate) fn fuse_args(
    m: &CephMount,
    keyfile: &Path,
    conf: &Path,
) -> Result<Vec<OsString>, MountError> {
    validate(m)?;
    let mut opts = vec!["nonempty".to_owned()];
    if m.read_only {
        opts.push("ro".into());
    }
    opts.extend(extra_options(m, FUSE_RESERVED)?);
    let mut keyfile_arg = OsString::from("--keyfile=");
    keyfile_arg.push(keyfile.as_os_str());
    let mut args = vec![
        m.target.as_os_str().to_owned(),
        "-m".into(),
        m.monitors.join(",").into(),
        "-c".into(),
        conf.as_os_str().to_owned(),
        "-n".into(),
        format!("client.{}", m.user_id).into(),
        keyfile_arg,
        "-r".into(),
        m.root_path.clone().into(),
        "-o".into(),
        opts.join(",").into(),
    ];
    // No file system name: the cluster's default file system.
    if !m.fs_name.is_empty() {
        args.push(format!("--client_mds_namespace={}", m.fs_name).into());
    }
    Ok(args)
}

/// The daemon's pid from `ceph-fuse[<pid>]: starting fuse`.
fn started_pid(stderr: &str) -> Option<u32> {
    stderr.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("ceph-fuse[")?;
        let (pid, tail) = rest.split_once(']')?;
        tail.contains("starting fuse")
            .then(|| pid.parse().ok())
            .flatten()
    })
}

/// The errno of a failed ceph-fuse: EPERM for a refused root, EACCES for a bad key, else
/// whatever the message says.
fn fuse_errno(msg: &str) -> Option<i32> {
    errno_from_message(msg)
}

/// Mounts with ceph-fuse.
#[derive(Debug, Clone)]
pub struct FuseMounter {
    ceph_fuse: PathBuf,
    tools: HostTools,
}

impl Default for FuseMounter {
    /// As [`FuseMounter::new`] with the default deadline (60 s).
    fn default() -> Self {
        Self::new(super::kernel::DEFAULT_MOUNT_TIMEOUT)
    }
}

impl FuseMounter {
    /// `ceph-fuse` from `PATH`, the real `mount`/`umount` and mount table; `timeout` is
    /// how long ceph-fuse (and a bind mount) may take to report back.
    pub fn new(timeout: Duration) -> Self {
        Self::with_tools(PathBuf::from("ceph-fuse"), HostTools::default()).with_timeout(timeout)
    }

    /// With other `ceph-fuse`, `mount` and `umount` programs (tests use scripts).
    pub fn with_programs(ceph_fuse: PathBuf, mount: PathBuf, umount: PathBuf) -> Self {
        Self::with_tools(
            ceph_fuse,
            HostTools {
                mount,
                umount,
                ..HostTools::default()
            },
        )
    }

    /// With every host setting given.
    pub fn with_tools(ceph_fuse: PathBuf, tools: HostTools) -> Self {
        Self { ceph_fuse, tools }
    }

    /// With another deadline for ceph-fuse to report back (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.tools.mount_timeout = timeout;
        self
    }

    /// The host settings.
    pub fn tools(&self) -> &HostTools {
        &self.tools
    }

    /// Polls the mount table until `target` shows up or `until` passes.
    async fn wait_listed(&self, target: &Path, until: Instant) -> Result<bool, MountError> {
        loop {
            if self.tools.find_mount(target).await?.is_some() {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn run(&self, m: &CephMount, dir: &SecretDir) -> Result<(), MountError> {
        let keyfile = dir.write("keyfile", m.key().trim().as_bytes())?;
        let conf = dir.write("ceph.conf", MINIMAL_CONF.as_bytes())?;
        let args = fuse_args(m, &keyfile, &conf)?;
        let deadline = self.tools.mount_timeout;
        let until = Instant::now() + deadline;
        let out = match run_command(&self.ceph_fuse, &args, deadline, Some(m.key()), "ceph-fuse")
            .await
        {
            Ok(out) => out,
            Err(e @ MountError::Timeout(_)) => {
                // The daemon may have mounted after all: do not leave a mount behind that
                // the caller believes failed.
                if self.tools.find_mount(&m.target).await?.is_some() {
                    tracing::warn!(target = %m.target.display(), "ceph-fuse timed out but the target got mounted: unmounting");
                    if let Err(u) = self.tools.unmount(&m.target).await {
                        tracing::warn!(target = %m.target.display(), error = %u, "could not unmount after a timeout");
                    }
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if !out.success {
            let message = out.message();
            return Err(MountError::Failed {
                target: m.target.clone(),
                errno: fuse_errno(&message),
                message,
            });
        }
        // Exit 0: the daemon mounted. The table should already list it; allow a moment.
        let settle = until.max(Instant::now() + Duration::from_millis(200));
        if !self.wait_listed(&m.target, settle).await? {
            return Err(MountError::Failed {
                target: m.target.clone(),
                message: format!(
                    "ceph-fuse exited 0 but the target is not mounted: {}",
                    out.message()
                ),
                errno: None,
            });
        }
        tracing::info!(
            target = %m.target.display(),
            root = %m.root_path,
            pid = ?started_pid(&out.stderr),
            "mounted (ceph-fuse)"
        );
        Ok(())
    }
}

#[async_trait::async_trait]
impl Mounter for FuseMounter {
    fn name(&self) -> &'static str {
        "fuse"
    }

    async fn mount_cephfs(&self, m: &CephMount) -> Result<(), MountError> {
        validate(m)?;
        if self.tools.prepare_target(&m.target).await? {
            tracing::debug!(target = %m.target.display(), "already mounted");
            return Ok(());
        }
        let dir = SecretDir::new(&self.tools.key_dir)?;
        let result = self.run(m, &dir).await;
        dir.remove();
        result
    }

    async fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), MountError> {
        self.tools.bind(source, target, read_only).await
    }

    async fn unmount(&self, target: &Path) -> Result<(), MountError> {
        self.tools.unmount(target).await
    }

    async fn state(&self, target: &Path) -> MountState {
        self.tools.state(target).await
    }

    async fn stats(&self, target: &Path) -> Result<FsStats, MountError> {
        self.tools.stats(target).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::testutil::*;
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn fuse_argv() {
        let target = PathBuf::from("/staging/v");
        let cases: &[(bool, &[&str], &str)] = &[
            (false, &[], "nonempty"),
            (true, &[], "nonempty,ro"),
            (
                false,
                &["allow_other", "debug,,"],
                "nonempty,allow_other,debug",
            ),
        ];
        for (ro, options, want) in cases {
            let mut m = request(&target);
            m.read_only = *ro;
            m.options = options.iter().map(|s| (*s).to_owned()).collect();
            let args = fuse_args(&m, Path::new("/k/keyfile"), Path::new("/k/ceph.conf")).unwrap();
            assert_eq!(
                strings(&args),
                [
                    "/staging/v",
                    "-m",
                    "10.0.0.1:6789,10.0.0.2:6789",
                    "-c",
                    "/k/ceph.conf",
                    "-n",
                    "client.vol1",
                    "--keyfile=/k/keyfile",
                    "-r",
                    "/volumes/csi/csi-vol-1/4b2c",
                    "-o",
                    want,
                    "--client_mds_namespace=cephfs",
                ]
            );
        }
        let mut m = request(&target);
        m.options = vec![format!("keyfile={KEY}")];
        let e = fuse_args(&m, Path::new("/k/keyfile"), Path::new("/k/c")).unwrap_err();
        assert!(!e.to_string().contains(KEY), "{e}");
    }

    #[test]
    fn finds_the_daemon_pid() {
        let cases: &[(&str, Option<u32>)] = &[
            (
                "2026-11-26T10:02:19.793+0000 7fc308adc240 -1 init, newargv = 0x55eb28938070 newargc=15\nceph-fuse[1128]: starting ceph client\nceph-fuse[1128]: starting fuse\n",
                Some(1128),
            ),
            ("ceph-fuse[1209]: starting ceph client\n", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(started_pid(s), *want, "{s}");
        }
    }

    /// A ceph-fuse stand-in: checks its key and conf files, then behaves as `behaviour`
    /// says (`ok`: lists the mount; `rootdenied`; `badkey`; `nolist`: exits 0 without
    /// mounting; `hang`).
    fn fake_ceph_fuse(b: &Bench, behaviour: &str) -> PathBuf {
        b.script(
            "ceph-fuse",
            &format!(
                r#"T="$1"; FSTYPE=fuse.ceph-fuse
for a in "$@"; do case "$a" in --keyfile=*) k=${{a#--keyfile=}};; esac; done
c="$5"
[ "$(stat -c %a "$k")" = 600 ] || {{ echo "bad key mode" >&2; exit 9; }}
[ "$(stat -c %a "$c")" = 600 ] || {{ echo "bad conf mode" >&2; exit 9; }}
[ "$(stat -c %a "$(dirname "$k")")" = 700 ] || {{ echo "bad dir mode" >&2; exit 9; }}
[ "$(cat "$k")" = '{KEY}' ] || {{ echo "bad key" >&2; exit 9; }}
grep -q 'fuse_set_user_groups = false' "$c" || {{ echo "bad conf" >&2; exit 9; }}
echo "$k" > "$DIR/keyfile"
echo "2026-11-26T10:02:19.793+0000 7fc308adc240 -1 init, newargv = 0x55eb28938070 newargc=15" >&2
echo "ceph-fuse[1128]: starting ceph client" >&2
case {behaviour} in
ok) {ADD_MOUNT}; echo "ceph-fuse[1128]: starting fuse" >&2; exit 0;;
rootdenied) echo "2026-11-26T10:02:19.945+0000 7f2c4a7fc6c0 -1 client.4236 mds.0 rejected us (non-allowable root '/')" >&2
  echo "ceph-fuse[1128]: ceph mount failed with (1) Operation not permitted" >&2; exit 1;;
badkey) echo "monclient(hunting): handle_auth_bad_method server allowed_methods [2] but i only support [2]" >&2
  echo "failed to fetch mon config (--no-mon-config to skip) key={KEY}" >&2; exit 1;;
nolist) exit 0;;
hang) exec sleep 30;;
esac"#
            ),
        )
    }

    fn mounter(b: &Bench, behaviour: &str) -> FuseMounter {
        let umount = b.script("umount", &format!("T=\"$1\"; {REMOVE_MOUNT}"));
        let mount = b.script("mount", "exit 0");
        FuseMounter::with_tools(fake_ceph_fuse(b, behaviour), b.tools(mount, umount))
    }

    #[tokio::test]
    async fn mounts_and_cleans_up_key_files() {
        let b = Bench::new();
        let target = b.path("staging");
        std::fs::create_dir(&target).unwrap();
        let f = mounter(&b, "ok");
        let m = request(&target);
        f.mount_cephfs(&m).await.unwrap();
        let keyfile = std::fs::read_to_string(b.path("keyfile")).unwrap();
        assert!(!Path::new(keyfile.trim()).exists());
        assert!(b.leftover_keys().is_empty(), "{:?}", b.leftover_keys());
        assert_eq!(f.state(&target).await, MountState::Mounted);
        f.mount_cephfs(&m).await.unwrap();
        let calls = b.calls();
        assert_eq!(calls.len(), 1, "mounted once: {calls:?}");
        assert_eq!(calls[0][0], "ceph-fuse");
        for a in &calls[0] {
            assert!(!a.contains(KEY), "key on the command line: {a}");
        }
        f.unmount(&target).await.unwrap();
        assert_eq!(f.state(&target).await, MountState::NotMounted);
    }

    #[tokio::test]
    async fn failures_map_to_errnos_without_the_key() {
        for (behaviour, errno) in [("rootdenied", libc::EPERM), ("badkey", libc::EACCES)] {
            let b = Bench::new();
            let target = b.path("staging");
            std::fs::create_dir(&target).unwrap();
            let e = mounter(&b, behaviour)
                .mount_cephfs(&request(&target))
                .await
                .unwrap_err();
            match &e {
                MountError::Failed {
                    errno: got,
                    message,
                    ..
                } => {
                    assert_eq!(*got, Some(errno), "{behaviour}: {message}");
                    assert!(!message.contains(KEY), "{message}");
                }
                other => panic!("{behaviour}: {other:?}"),
            }
            assert!(b.leftover_keys().is_empty(), "{behaviour}");
        }
    }

    #[tokio::test]
    async fn exit_zero_without_a_mount_is_a_failure() {
        let b = Bench::new();
        let target = b.path("staging");
        std::fs::create_dir(&target).unwrap();
        let f = mounter(&b, "nolist").with_timeout(Duration::from_millis(300));
        let e = f.mount_cephfs(&request(&target)).await.unwrap_err();
        assert!(e.to_string().contains("not mounted"), "{e}");
        assert!(b.leftover_keys().is_empty());
    }

    #[tokio::test]
    async fn a_hung_ceph_fuse_times_out() {
        let b = Bench::new();
        let target = b.path("staging");
        std::fs::create_dir(&target).unwrap();
        let f = mounter(&b, "hang").with_timeout(Duration::from_millis(300));
        let e = f.mount_cephfs(&request(&target)).await.unwrap_err();
        assert!(matches!(e, MountError::Timeout(_)), "{e:?}");
        assert!(b.leftover_keys().is_empty());
    }
}
