//! Kernel CephFS mounts, and the host side that every mounter shares.
//!
//! [`KernelMounter`] runs
//! `mount -t ceph <mon1,mon2>:<root_path> <target> -o name=<user>,secretfile=<file>,mds_namespace=<fs>[,ro][,<options>]`.
//! The key goes to a 0600 file in a private 0700 directory, which is removed as soon as
//! `mount` returns (also on failure and timeout); it is never on a command line, and any
//! occurrence of it in the tool's output is replaced before the output reaches an error
//! or a log.
//!
//! [`HostTools`] holds what the three mounters share: the `mount`/`umount` programs, the
//! mount table, the deadlines, bind mounts, unmounting (lazily when the mount is
//! corrupted or `umount` hangs), the state of a mount point and `statvfs`. Everything that
//! may touch a hung mount (stat, statvfs, umount) runs with a deadline: `stat` and
//! `statvfs` on a blocking thread that is abandoned when the deadline passes (a hung
//! network mount can keep that thread until the kernel gives up).

use std::ffi::OsString;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::mountinfo::{self, MountEntry};
use super::{CephMount, FsStats, MountError, MountState, Mounter};

/// How long `mount` (and `ceph-fuse`) may take by default.
pub const DEFAULT_MOUNT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `umount` may take by default before a lazy unmount is tried.
pub const DEFAULT_UMOUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stat`/`statvfs` of a mount point may take by default.
pub const DEFAULT_STAT_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many bytes of a tool's output are kept.
const MAX_CAPTURE: u64 = 64 << 10;
/// Unmount at most this many stacked mounts at one target.
const MAX_STACKED: usize = 8;

/// The host programs, files and deadlines the mounters use. The defaults are the real
/// ones; tests point `mount`/`umount` at scripts and `mountinfo` at a fixture file.
#[derive(Debug, Clone)]
pub struct HostTools {
    /// The `mount` program.
    pub mount: PathBuf,
    /// The `umount` program.
    pub umount: PathBuf,
    /// The mount table (`/proc/self/mountinfo`).
    pub mountinfo: PathBuf,
    /// Where private key directories are created (the system temp dir by default).
    pub key_dir: PathBuf,
    /// Deadline of a mount command (`mount -t ceph`, `ceph-fuse`, `mount --bind`).
    pub mount_timeout: Duration,
    /// Deadline of `umount`; after it a lazy unmount is tried.
    pub umount_timeout: Duration,
    /// Deadline of `stat`/`statvfs` of a mount point.
    pub stat_timeout: Duration,
}

impl Default for HostTools {
    fn default() -> Self {
        Self {
            mount: PathBuf::from("mount"),
            umount: PathBuf::from("umount"),
            mountinfo: PathBuf::from(mountinfo::PROC_SELF_MOUNTINFO),
            key_dir: std::env::temp_dir(),
            mount_timeout: DEFAULT_MOUNT_TIMEOUT,
            umount_timeout: DEFAULT_UMOUNT_TIMEOUT,
            stat_timeout: DEFAULT_STAT_TIMEOUT,
        }
    }
}

/// What a finished command printed. Any secret has been replaced already.
#[derive(Debug, Clone)]
pub(crate) struct CmdOutput {
    /// Whether it exited 0.
    pub success: bool,
    /// The exit code, if it exited (not killed by a signal).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl CmdOutput {
    /// A one-line-ish account of a failure: stderr, else stdout, else the exit status.
    pub fn message(&self) -> String {
        let e = self.stderr.trim();
        if !e.is_empty() {
            return e.to_owned();
        }
        let o = self.stdout.trim();
        if !o.is_empty() {
            return o.to_owned();
        }
        match self.code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_owned(),
        }
    }
}

/// Replaces every occurrence of `secret` in `text`.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret.map(str::trim) {
        Some(s) if !s.is_empty() => text.replace(s, "<redacted>"),
        _ => text.to_owned(),
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> MountError {
    let context = context.into();
    move |source| MountError::Io { context, source }
}

fn read_capture(mut f: std::fs::File, secret: Option<&str>) -> String {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.take(MAX_CAPTURE).read_to_end(&mut buf);
    }
    scrub(&String::from_utf8_lossy(&buf), secret)
}

/// Runs `program args` with stdin closed and a deadline. Output is captured in anonymous
/// temp files rather than pipes: a tool that forks a daemon (ceph-fuse) may leave the
/// daemon holding them, which must neither block us nor break the daemon. On timeout the
/// process is killed and [`MountError::Timeout`] names `what`. `secret` is scrubbed from
/// the output.
pub(crate) async fn run_command(
    program: &Path,
    args: &[OsString],
    deadline: Duration,
    secret: Option<&str>,
    what: &str,
) -> Result<CmdOutput, MountError> {
    let out = tempfile::tempfile().map_err(io_err("creating a capture file"))?;
    let err = tempfile::tempfile().map_err(io_err("creating a capture file"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(io_err("capture file"))?)
        .stderr(err.try_clone().map_err(io_err("capture file"))?)
        // Untranslated messages, so that errors can be recognised.
        .env("LC_ALL", "C")
        .kill_on_drop(true);
    tracing::debug!(program = %program.display(), ?args, "running");
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            MountError::Unavailable(format!("{} not found", program.display()))
        } else {
            MountError::Io {
                context: format!("starting {}", program.display()),
                source: e,
            }
        }
    })?;
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(io_err(format!("waiting for {}", program.display()))(e)),
        Err(_) => {
            let _ = child.start_kill();
            // A process stuck in the kernel may not die at once; the runtime reaps it later.
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            let stderr = read_capture(err, secret);
            tracing::warn!(what, stderr = %stderr.trim(), ?deadline, "command timed out");
            return Err(MountError::Timeout(format!("{what} (after {deadline:?})")));
        }
    };
    Ok(CmdOutput {
        success: status.success(),
        code: status.code(),
        stdout: read_capture(out, secret),
        stderr: read_capture(err, secret),
    })
}

/// A private directory (0700) for key and config files; removed by [`SecretDir::remove`]
/// or, failing that, when dropped.
pub(crate) struct SecretDir {
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for SecretDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretDir")
            .field("path", &self.dir.path())
            .finish()
    }
}

impl SecretDir {
    /// Creates a fresh private directory under `base` (created if missing).
    pub fn new(base: &Path) -> Result<Self, MountError> {
        std::fs::create_dir_all(base)
            .map_err(io_err(format!("creating key directory {}", base.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("cephfs-csi-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)
            .map_err(io_err(format!(
                "creating a private directory in {}",
                base.display()
            )))?;
        Ok(Self { dir })
    }

    /// Writes `contents` to a new 0600 file `name` in the directory; its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, MountError> {
        use std::io::Write;
        let path = self.dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        f.write_all(contents)
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) {
        let path = self.dir.path().to_path_buf();
        if let Err(e) = self.dir.close() {
            tracing::warn!(path = %path.display(), error = %e, "could not remove private key directory");
        }
    }
}

/// The errno a mount tool's message stands for, if it can be told.
pub(crate) fn errno_from_message(msg: &str) -> Option<i32> {
    let lower = msg.to_ascii_lowercase();
    // Specific messages of ceph-fuse and mount.ceph first.
    if lower.contains("non-allowable root") {
        return Some(libc::EPERM);
    }
    if lower.contains("failed to fetch mon config")
        || lower.contains("handle_auth_bad_method")
        || lower.contains("authentication")
    {
        return Some(libc::EACCES);
    }
    // `mount error 13 = ...`, `mount error(2): ...`, `failed with (1) ...`.
    if let Some(n) = number_after(&lower, "mount error(")
        .or_else(|| number_after(&lower, "mount error "))
        .or_else(|| parenthesised_number(&lower))
    {
        return Some(n);
    }
    const WORDS: &[(&str, i32)] = &[
        ("permission denied", libc::EACCES),
        ("operation not permitted", libc::EPERM),
        ("no such file or directory", libc::ENOENT),
        ("no mds server is up", libc::ETIMEDOUT),
        ("cluster is laggy", libc::ETIMEDOUT),
        ("timed out", libc::ETIMEDOUT),
        ("transport endpoint is not connected", libc::ENOTCONN),
        (
            "cannot send after transport endpoint shutdown",
            libc::ESHUTDOWN,
        ),
        ("device or resource busy", libc::EBUSY),
        ("no such device", libc::ENODEV),
        ("unknown filesystem type", libc::ENODEV),
        ("invalid argument", libc::EINVAL),
        ("input/output error", libc::EIO),
        ("not empty", libc::ENOTEMPTY),
    ];
    WORDS
        .iter()
        .find(|(w, _)| lower.contains(w))
        .map(|(_, e)| *e)
}

fn number_after(s: &str, prefix: &str) -> Option<i32> {
    s.match_indices(prefix).find_map(|(i, _)| {
        let digits: String = s[i + prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok().filter(|n| (1..4096).contains(n))
    })
}

/// The first ` (<digits>)` in `s` (after a space: `mount(2)` is a manual section).
fn parenthesised_number(s: &str) -> Option<i32> {
    s.match_indices('(').find_map(|(i, _)| {
        if i > 0 && !s[..i].ends_with(char::is_whitespace) {
            return None;
        }
        let rest = &s[i + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || !rest[digits.len()..].starts_with(')') {
            return None;
        }
        digits.parse().ok().filter(|n| (1..4096).contains(n))
    })
}

/// Whether `umount` said there was nothing to unmount.
fn says_not_mounted(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "not mounted",
        "no mount point specified",
        "no such file or directory",
        "mountpoint not found",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// `statvfs(3)` of `path`.
fn statvfs(path: &Path) -> io::Result<FsStats> {
    fn wide<T: TryInto<u64>>(v: T) -> u64 {
        v.try_into().unwrap_or(u64::MAX)
    }
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    let frsize = if wide(st.f_frsize) > 0 {
        wide(st.f_frsize)
    } else {
        wide(st.f_bsize)
    };
    let blocks = wide(st.f_blocks);
    let free = wide(st.f_bfree);
    let avail = wide(st.f_bavail);
    Ok(FsStats {
        total_bytes: blocks.saturating_mul(frsize),
        available_bytes: avail.saturating_mul(frsize),
        used_bytes: blocks.saturating_sub(free).saturating_mul(frsize),
    })
}

/// Runs blocking `f` on a blocking thread with a deadline; `Err(ETIMEDOUT)` if it takes
/// longer (the thread is abandoned).
async fn blocking_with_deadline<T: Send + 'static>(
    deadline: Duration,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    // The blocking thread logs in the caller's span (its node and volume).
    let span = tracing::Span::current();
    let f = move || span.in_scope(f);
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(io::Error::other(format!("blocking task failed: {join}"))),
        Err(_) => Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)),
    }
}

/// `stat` of `path` with a deadline: `Ok` if it answers, else the errno (ETIMEDOUT when it
/// hangs).
pub(crate) async fn stat_errno(path: &Path, deadline: Duration) -> Result<(), i32> {
    let p = path.to_path_buf();
    blocking_with_deadline(deadline, move || std::fs::metadata(&p).map(|_| ()))
        .await
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

impl HostTools {
    /// The mount table.
    pub(crate) async fn mount_entries(&self) -> Result<Vec<MountEntry>, MountError> {
        let text = tokio::fs::read_to_string(&self.mountinfo)
            .await
            .map_err(io_err(format!("reading {}", self.mountinfo.display())))?;
        Ok(mountinfo::parse(&text))
    }

    /// The topmost mount at `target`, if any.
    pub(crate) async fn find_mount(&self, target: &Path) -> Result<Option<MountEntry>, MountError> {
        let entries = self.mount_entries().await?;
        let t = target.to_path_buf();
        // Resolving the parent may touch the file system: keep it off the runtime.
        blocking_with_deadline(self.stat_timeout, move || {
            Ok(mountinfo::find(&entries, &t).cloned())
        })
        .await
        .map_err(io_err(format!("looking up {}", target.display())))
    }

    /// NotMounted if `target` is not in the mount table; Mounted if `stat` answers in time;
    /// Corrupted(errno) otherwise.
    pub(crate) async fn state(&self, target: &Path) -> MountState {
        match self.find_mount(target).await {
            Ok(None) => MountState::NotMounted,
            Ok(Some(_)) => match stat_errno(target, self.stat_timeout).await {
                Ok(()) => MountState::Mounted,
                Err(e) => MountState::Corrupted(e),
            },
            Err(e) => {
                tracing::warn!(target = %target.display(), error = %e, "cannot read the mount table");
                MountState::Corrupted(match e {
                    MountError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
                    _ => libc::EIO,
                })
            }
        }
    }

    /// Brings `target` to a state where it can be mounted: Ok(true) if a healthy mount is
    /// there already, Ok(false) if nothing is (a corrupted mount is unmounted first).
    pub(crate) async fn prepare_target(&self, target: &Path) -> Result<bool, MountError> {
        match self.state(target).await {
            MountState::Mounted => Ok(true),
            MountState::NotMounted => Ok(false),
            MountState::Corrupted(errno) => {
                tracing::warn!(target = %target.display(), errno, "corrupted mount: unmounting before mounting again");
                self.unmount(target).await?;
                Ok(false)
            }
        }
    }

    async fn run_mount(
        &self,
        args: Vec<OsString>,
        target: &Path,
        what: &str,
    ) -> Result<(), MountError> {
        let out = run_command(&self.mount, &args, self.mount_timeout, None, what).await?;
        if out.success {
            return Ok(());
        }
        let message = out.message();
        Err(MountError::Failed {
            target: target.to_path_buf(),
            errno: errno_from_message(&message),
            message,
        })
    }

    async fn remount(&self, target: &Path, read_only: bool) -> Result<(), MountError> {
        let opts = if read_only {
            "remount,bind,ro"
        } else {
            "remount,bind,rw"
        };
        self.run_mount(
            vec!["-o".into(), opts.into(), target.as_os_str().to_owned()],
            target,
            "mount -o remount",
        )
        .await
    }

    /// `mount --bind source target`, then `mount -o remount,bind,ro target` if asked.
    /// Idempotent: a healthy mount at `target` is kept (its read-only flag adjusted); a
    /// corrupted one is replaced. If the remount fails the bind is undone.
    pub(crate) async fn bind(
        &self,
        source: &Path,
        target: &Path,
        read_only: bool,
    ) -> Result<(), MountError> {
        if self.prepare_target(target).await? {
            if let Some(e) = self.find_mount(target).await?
                && e.is_read_only() != read_only
            {
                self.remount(target, read_only).await?;
            }
            return Ok(());
        }
        tokio::fs::create_dir_all(target)
            .await
            .map_err(|e| MountError::Io {
                context: format!("creating the mount point {}", target.display()),
                source: e,
            })?;
        self.run_mount(
            vec![
                "--bind".into(),
                source.as_os_str().to_owned(),
                target.as_os_str().to_owned(),
            ],
            target,
            "mount --bind",
        )
        .await?;
        if read_only && let Err(e) = self.remount(target, true).await {
            if let Err(undo) = self.unmount(target).await {
                tracing::warn!(target = %target.display(), error = %undo, "could not undo a bind mount");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn umount_once(&self, target: &Path, lazy: bool) -> Result<CmdOutput, MountError> {
        let mut args: Vec<OsString> = Vec::new();
        if lazy {
            args.push("-l".into());
        }
        args.push(target.as_os_str().to_owned());
        let what = if lazy { "umount -l" } else { "umount" };
        run_command(&self.umount, &args, self.umount_timeout, None, what).await
    }

    /// Unmounts everything mounted at `target`. Nothing mounted is success. A corrupted
    /// mount (stat fails) or a `umount` that hangs is unmounted lazily (`umount -l`).
    pub(crate) async fn unmount(&self, target: &Path) -> Result<(), MountError> {
        let failed = |message: String| MountError::Unmount {
            target: target.to_path_buf(),
            message,
        };
        for _ in 0..MAX_STACKED {
            if self.find_mount(target).await?.is_none() {
                return Ok(());
            }
            let message = match self.umount_once(target, false).await {
                Ok(o) if o.success => continue,
                Ok(o) if says_not_mounted(&o.message()) => return Ok(()),
                Ok(o) => {
                    let message = o.message();
                    match self.state(target).await {
                        MountState::NotMounted => return Ok(()),
                        MountState::Mounted => return Err(failed(message)),
                        MountState::Corrupted(errno) => {
                            tracing::warn!(target = %target.display(), errno, %message, "umount of a corrupted mount failed: unmounting lazily");
                            message
                        }
                    }
                }
                Err(MountError::Timeout(what)) => {
                    tracing::warn!(target = %target.display(), "umount hung: unmounting lazily");
                    format!("{what} timed out")
                }
                Err(e) => return Err(e),
            };
            match self.umount_once(target, true).await {
                Ok(o) if o.success => {}
                Ok(o) if says_not_mounted(&o.message()) => return Ok(()),
                Ok(o) => return Err(failed(format!("{message}; umount -l: {}", o.message()))),
                Err(e) => return Err(failed(format!("{message}; umount -l: {e}"))),
            }
        }
        match self.find_mount(target).await? {
            None => Ok(()),
            Some(_) => Err(failed(format!(
                "still mounted after {MAX_STACKED} unmounts"
            ))),
        }
    }

    /// `statvfs` of `target`, with a deadline.
    pub(crate) async fn stats(&self, target: &Path) -> Result<FsStats, MountError> {
        let p = target.to_path_buf();
        blocking_with_deadline(self.stat_timeout, move || statvfs(&p))
            .await
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ETIMEDOUT) {
                    MountError::Timeout(format!("statvfs of {}", target.display()))
                } else {
                    MountError::Io {
                        context: format!("statvfs of {}", target.display()),
                        source: e,
                    }
                }
            })
    }
}

fn invalid(target: &Path, message: impl Into<String>) -> MountError {
    MountError::Failed {
        target: target.to_path_buf(),
        message: message.into(),
        errno: Some(libc::EINVAL),
    }
}

/// Checks the parts of a mount request that end up in option strings: no separators
/// that would let one value smuggle in another option.
pub(crate) fn validate(m: &CephMount) -> Result<(), MountError> {
    let t = &m.target;
    let bad = |s: &str| {
        s.is_empty()
            || s.chars()
                .any(|c| c == ',' || c == '=' || c.is_whitespace() || c.is_control())
    };
    if m.monitors.is_empty() {
        return Err(invalid(t, "no monitors"));
    }
    if m.monitors.iter().any(|x| bad(x) || x.contains('/')) {
        return Err(invalid(t, format!("invalid monitor list {:?}", m.monitors)));
    }
    if bad(&m.user_id) || m.user_id.starts_with("client.") {
        return Err(invalid(
            t,
            format!("invalid user id {:?} (without client.)", m.user_id),
        ));
    }
    if bad(&m.fs_name) {
        return Err(invalid(
            t,
            format!("invalid file system name {:?}", m.fs_name),
        ));
    }
    if !m.root_path.starts_with('/') || m.root_path.chars().any(|c| c.is_control()) {
        return Err(invalid(
            t,
            format!("invalid root path {:?} (must be absolute)", m.root_path),
        ));
    }
    if m.key().trim().is_empty() {
        return Err(invalid(t, "no key"));
    }
    Ok(())
}

/// Splits extra options (each may hold several, comma-separated) and drops empty ones.
/// Options that carry or point to a secret, or that the mounter sets itself, are refused.
pub(crate) fn extra_options(m: &CephMount, reserved: &[&str]) -> Result<Vec<String>, MountError> {
    let mut out = Vec::new();
    for o in m.options.iter().flat_map(|o| o.split(',')) {
        let o = o.trim();
        if o.is_empty() {
            continue;
        }
        if o.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(&m.target, format!("invalid mount option {o:?}")));
        }
        let name = o.split_once('=').map_or(o, |(n, _)| n);
        if reserved.contains(&name) {
            // Do not echo the value: it may be a secret.
            return Err(invalid(
                &m.target,
                format!("mount option {name} is set by the driver"),
            ));
        }
        out.push(o.to_owned());
    }
    Ok(out)
}

const KERNEL_RESERVED: &[&str] = &[
    "secret",
    "secretfile",
    "name",
    "mds_namespace",
    "fs",
    "key",
    "keyfile",
];

/// The `mount` argv of a kernel mount: `-t ceph <mons>:<root> <target> -o <options>`.
pub(crate) fn kernel_mount_args(
    m: &CephMount,
    secret_file: &Path,
) -> Result<Vec<OsString>, MountError> {
    validate(m)?;
    let secret_file = secret_file
        .to_str()
        .filter(|s| !s.contains(',') && !s.chars().any(char::is_whitespace))
        .ok_or_else(|| {
            invalid(
                &m.target,
                format!("unusable key file path {}", secret_file.display()),
            )
        })?;
    let mut opts = vec![
        format!("name={}", m.user_id),
        format!("secretfile={secret_file}"),
    ];
    // No file system name: the cluster's default file system (as the kernel defaults).
    if !m.fs_name.is_empty() {
        opts.push(format!("mds_namespace={}", m.fs_name));
    }
    if m.read_only {
        opts.push("ro".into());
    }
    opts.extend(extra_options(m, KERNEL_RESERVED)?);
    Ok(vec![
        "-t".into(),
        "ceph".into(),
        format!("{}:{}", m.monitors.join(","), m.root_path).into(),
        m.target.as_os_str().to_owned(),
        "-o".into(),
        opts.join(",").into(),
    ])
}

/// Mounts with the kernel client (`mount -t ceph`).
#[derive(Debug, Clone, Default)]
pub struct KernelMounter {
    tools: HostTools,
}

impl KernelMounter {
    /// The real `mount`, `umount` and `/proc/self/mountinfo`, with default deadlines.
    pub fn new() -> Self {
        Self::default()
    }

    /// With other `mount` and `umount` programs (tests use scripts).
    pub fn with_programs(mount: PathBuf, umount: PathBuf) -> Self {
        Self::with_tools(HostTools {
            mount,
            umount,
            ..HostTools::default()
        })
    }

    /// With every host setting given.
    pub fn with_tools(tools: HostTools) -> Self {
        Self { tools }
    }

    /// With another deadline for `mount` (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.tools.mount_timeout = timeout;
        self
    }

    /// The host settings.
    pub fn tools(&self) -> &HostTools {
        &self.tools
    }
}

#[async_trait::async_trait]
impl Mounter for KernelMounter {
    fn name(&self) -> &'static str {
        "kernel"
    }

    async fn mount_cephfs(&self, m: &CephMount) -> Result<(), MountError> {
        validate(m)?;
        if self.tools.prepare_target(&m.target).await? {
            tracing::debug!(target = %m.target.display(), "already mounted");
            return Ok(());
        }
        let dir = SecretDir::new(&self.tools.key_dir)?;
        let result = async {
            let secret_file = dir.write("secret", m.key().trim().as_bytes())?;
            let args = kernel_mount_args(m, &secret_file)?;
            run_command(
                &self.tools.mount,
                &args,
                self.tools.mount_timeout,
                Some(m.key()),
                "mount -t ceph",
            )
            .await
        }
        .await;
        dir.remove();
        let out = result?;
        if out.success {
            tracing::info!(target = %m.target.display(), root = %m.root_path, "mounted (kernel)");
            return Ok(());
        }
        let message = out.message();
        Err(MountError::Failed {
            target: m.target.clone(),
            errno: errno_from_message(&message),
            message,
        })
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

/// Test support shared by the mounters' tests: scripts that stand in for `mount`,
/// `umount` and `ceph-fuse`, and a mountinfo fixture they edit.
#[cfg(test)]
pub(crate) mod testutil {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::super::CephMount;
    use super::HostTools;

    pub const KEY: &str = "AQBkZXNwZXJhdGVseXNlY3JldGtleTEyMzQ1Ng==";

    /// A temp dir with a `log` of every invocation (one line per call: the program name
    /// and its argv, NUL-separated), a `mountinfo` fixture and fake programs.
    pub struct Bench {
        pub dir: tempfile::TempDir,
    }

    impl Bench {
        pub fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("mountinfo"), ROOT_LINE).unwrap();
            std::fs::create_dir(dir.path().join("keys")).unwrap();
            Self { dir }
        }

        pub fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// Writes an executable script `name` (sh); `$LOG`, `$MOUNTINFO` and `$DIR` are
        /// set for it.
        pub fn script(&self, name: &str, body: &str) -> PathBuf {
            let p = self.path(name);
            let text = format!(
                "#!/bin/sh\nDIR='{d}'\nLOG=\"$DIR/log\"\nMOUNTINFO=\"$DIR/mountinfo\"\n{{ printf '%s' '{name}'; for a in \"$@\"; do printf '\\t%s' \"$a\"; done; printf '\\n'; }} >> \"$LOG\"\n{body}\n",
                d = self.dir.path().display()
            );
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        }

        /// Invocations so far: each is program name then args.
        pub fn calls(&self) -> Vec<Vec<String>> {
            std::fs::read_to_string(self.path("log"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.split('\t').map(str::to_owned).collect())
                .collect()
        }

        /// Adds `target` to the mountinfo fixture.
        pub fn add_mount(&self, target: &Path, fs_type: &str, opts: &str) {
            let mut s = std::fs::read_to_string(self.path("mountinfo")).unwrap();
            s.push_str(&format!(
                "900 1 0:99 / {} {opts} - {fs_type} src rw\n",
                target.display()
            ));
            std::fs::write(self.path("mountinfo"), s).unwrap();
        }

        pub fn tools(&self, mount: PathBuf, umount: PathBuf) -> HostTools {
            HostTools {
                mount,
                umount,
                mountinfo: self.path("mountinfo"),
                key_dir: self.path("keys"),
                ..HostTools::default()
            }
        }

        /// Key files left behind in the key dir.
        pub fn leftover_keys(&self) -> Vec<PathBuf> {
            std::fs::read_dir(self.path("keys"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        }
    }

    /// Shell that appends a mountinfo line for the path in argument `$1`-style variable
    /// `T` (set by the caller's script body).
    pub const ADD_MOUNT: &str =
        "printf '900 1 0:99 / %s rw,relatime - %s src rw\\n' \"$T\" \"$FSTYPE\" >> \"$MOUNTINFO\"";

    /// Shell that removes the mountinfo line of `$T`.
    pub const REMOVE_MOUNT: &str = "grep -v \" $T \" \"$MOUNTINFO\" > \"$MOUNTINFO.new\"; mv \"$MOUNTINFO.new\" \"$MOUNTINFO\"";

    const ROOT_LINE: &str = "1 0 254:0 / / rw,relatime - ext4 /dev/vda rw\n";

    pub fn request(target: &Path) -> CephMount {
        CephMount {
            monitors: vec!["10.0.0.1:6789".into(), "10.0.0.2:6789".into()],
            fs_name: "cephfs".into(),
            root_path: "/volumes/csi/csi-vol-1/4b2c".into(),
            user_id: "vol1".into(),
            key: KEY.into(),
            options: vec![],
            read_only: false,
            target: target.to_path_buf(),
            node_id: "node-1".into(),
            admin_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn no_key_in(calls: &[Vec<String>]) {
        for c in calls {
            for a in c {
                assert!(!a.contains(KEY), "key on a command line: {c:?}");
            }
        }
    }

    #[test]
    fn kernel_argv() {
        let target = PathBuf::from("/staging/vol 1");
        let secret = Path::new("/tmp/cephfs-csi-x/secret");
        struct Case {
            read_only: bool,
            options: Vec<&'static str>,
            want_opts: &'static str,
        }
        let base = "name=vol1,secretfile=/tmp/cephfs-csi-x/secret,mds_namespace=cephfs";
        let cases = [
            Case {
                read_only: false,
                options: vec![],
                want_opts: base,
            },
            Case {
                read_only: true,
                options: vec![],
                want_opts: "name=vol1,secretfile=/tmp/cephfs-csi-x/secret,mds_namespace=cephfs,ro",
            },
            Case {
                read_only: true,
                options: vec!["noatime", "", "recover_session=clean,wsize=4096"],
                want_opts: "name=vol1,secretfile=/tmp/cephfs-csi-x/secret,mds_namespace=cephfs,ro,noatime,recover_session=clean,wsize=4096",
            },
        ];
        for c in cases {
            let mut m = request(&target);
            m.read_only = c.read_only;
            m.options = c.options.iter().map(|s| (*s).to_owned()).collect();
            let args = kernel_mount_args(&m, secret).unwrap();
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                args,
                [
                    "-t",
                    "ceph",
                    "10.0.0.1:6789,10.0.0.2:6789:/volumes/csi/csi-vol-1/4b2c",
                    "/staging/vol 1",
                    "-o",
                    c.want_opts
                ]
            );
            assert!(!args.iter().any(|a| a.contains(KEY)));
        }
    }

    #[test]
    fn kernel_argv_refuses_injection() {
        let target = PathBuf::from("/staging/x");
        let secret = Path::new("/tmp/k/secret");
        type Edit = Box<dyn Fn(&mut CephMount)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "fs name with comma",
                Box::new(|m: &mut CephMount| m.fs_name = "cephfs,ro".into()),
            ),
            (
                "user with =",
                Box::new(|m: &mut CephMount| m.user_id = "a=b".into()),
            ),
            (
                "client. prefix",
                Box::new(|m: &mut CephMount| m.user_id = "client.vol1".into()),
            ),
            (
                "no monitors",
                Box::new(|m: &mut CephMount| m.monitors.clear()),
            ),
            (
                "monitor with comma",
                Box::new(|m: &mut CephMount| m.monitors = vec!["a,b".into()]),
            ),
            (
                "relative root",
                Box::new(|m: &mut CephMount| m.root_path = "volumes/x".into()),
            ),
            (
                "secret option",
                Box::new(|m: &mut CephMount| m.options = vec![format!("secret={KEY}")]),
            ),
            (
                "secretfile option",
                Box::new(|m: &mut CephMount| m.options = vec!["secretfile=/etc/x".into()]),
            ),
            (
                "name option",
                Box::new(|m: &mut CephMount| m.options = vec!["noatime,name=admin".into()]),
            ),
            (
                "space in option",
                Box::new(|m: &mut CephMount| m.options = vec!["a b".into()]),
            ),
            (
                "empty key",
                Box::new(|m: &mut CephMount| m.key = " ".into()),
            ),
        ];
        for (what, f) in cases {
            let mut m = request(&target);
            f(&mut m);
            let e = kernel_mount_args(&m, secret).unwrap_err();
            match &e {
                MountError::Failed { errno, message, .. } => {
                    assert_eq!(*errno, Some(libc::EINVAL), "{what}");
                    assert!(!message.contains(KEY), "{what}: {message}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        let m = request(&target);
        assert!(kernel_mount_args(&m, Path::new("/tmp/a,b/secret")).is_err());
    }

    #[test]
    fn errnos_from_messages() {
        let cases: &[(&str, Option<i32>)] = &[
            (
                "2026-11-26T10:02:19.945+0000 7f2c4a7fc6c0 -1 client.4236 mds.0 rejected us (non-allowable root '/')\nceph-fuse[1209]: ceph mount failed with (1) Operation not permitted",
                Some(libc::EPERM),
            ),
            (
                "monclient(hunting): handle_auth_bad_method server allowed_methods [2] but i only support [2]\nfailed to fetch mon config (--no-mon-config to skip)",
                Some(libc::EACCES),
            ),
            (
                "ceph mount failed with (13) Permission denied",
                Some(libc::EACCES),
            ),
            ("mount error 13 = Permission denied", Some(libc::EACCES)),
            (
                "mount error(2): No such file or directory",
                Some(libc::ENOENT),
            ),
            (
                "mount error: no mds server is up or the cluster is laggy",
                Some(libc::ETIMEDOUT),
            ),
            (
                "mount: /x: unknown filesystem type 'ceph'.",
                Some(libc::ENODEV),
            ),
            (
                "mount(2) system call failed: Connection timed out.",
                Some(libc::ETIMEDOUT),
            ),
            ("fuse: mountpoint is not empty", Some(libc::ENOTEMPTY)),
            ("ceph-fuse[12]: starting ceph client", None),
            ("", None),
        ];
        for (msg, want) in cases {
            assert_eq!(errno_from_message(msg), *want, "{msg}");
        }
    }

    #[test]
    fn scrubs_secrets() {
        assert_eq!(
            scrub(&format!("bad key {KEY} here {KEY}"), Some(KEY)),
            "bad key <redacted> here <redacted>"
        );
        assert_eq!(scrub("x", Some("")), "x");
        assert_eq!(scrub("x", None), "x");
    }

    #[tokio::test]
    async fn key_file_is_private_and_removed_after_mount() {
        let b = Bench::new();
        let target = b.path("target");
        std::fs::create_dir(&target).unwrap();
        // The fake mount checks the secret file's mode and contents while it runs, and
        // the directory's, then "mounts".
        let mount = b.script(
            "mount",
            &format!(
                r#"for a in "$@"; do case "$a" in *secretfile=*) f=${{a#*secretfile=}}; f=${{f%%,*}};; esac; done
[ "$(stat -c %a "$f")" = 600 ] || {{ echo "bad file mode" >&2; exit 1; }}
[ "$(stat -c %a "$(dirname "$f")")" = 700 ] || {{ echo "bad dir mode" >&2; exit 1; }}
[ "$(cat "$f")" = '{KEY}' ] || {{ echo "bad contents" >&2; exit 1; }}
echo "$f" > "$DIR/secretfile"
T="$4"; FSTYPE=ceph; {ADD_MOUNT}"#
            ),
        );
        let umount = b.script("umount", &format!("T=\"$1\"; {REMOVE_MOUNT}"));
        let k = KernelMounter::with_tools(b.tools(mount, umount));
        let m = request(&target);
        k.mount_cephfs(&m).await.unwrap();
        let secret_file = std::fs::read_to_string(b.path("secretfile")).unwrap();
        assert!(!Path::new(secret_file.trim()).exists(), "key file removed");
        assert!(b.leftover_keys().is_empty(), "{:?}", b.leftover_keys());
        assert_eq!(k.state(&target).await, MountState::Mounted);
        // Idempotent: mounted already, mount is not run again.
        k.mount_cephfs(&m).await.unwrap();
        let calls = b.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            calls[0][1..5],
            [
                "-t",
                "ceph",
                "10.0.0.1:6789,10.0.0.2:6789:/volumes/csi/csi-vol-1/4b2c",
                target.to_str().unwrap()
            ]
        );
        no_key_in(&calls);
        // Unmount, twice.
        k.unmount(&target).await.unwrap();
        k.unmount(&target).await.unwrap();
        assert_eq!(k.state(&target).await, MountState::NotMounted);
        let calls = b.calls();
        assert_eq!(
            calls.len(),
            2,
            "the second unmount finds nothing: {calls:?}"
        );
        assert_eq!(calls[1], ["umount", target.to_str().unwrap()]);
    }

    #[tokio::test]
    async fn failed_mount_scrubs_the_key_and_removes_it() {
        let b = Bench::new();
        let target = b.path("t");
        std::fs::create_dir(&target).unwrap();
        let mount = b.script(
            "mount",
            &format!("echo \"mount error 13 = Permission denied (key {KEY})\" >&2; exit 32"),
        );
        let umount = b.script("umount", "exit 0");
        let k = KernelMounter::with_tools(b.tools(mount, umount));
        let e = k.mount_cephfs(&request(&target)).await.unwrap_err();
        match &e {
            MountError::Failed { errno, message, .. } => {
                assert_eq!(*errno, Some(libc::EACCES));
                assert!(message.contains("<redacted>"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains(KEY));
        assert!(!format!("{e:?}").contains(KEY));
        assert!(b.leftover_keys().is_empty());
    }

    #[tokio::test]
    async fn mount_timeout_kills_and_cleans_up() {
        let b = Bench::new();
        let target = b.path("t");
        std::fs::create_dir(&target).unwrap();
        let mount = b.script("mount", "exec sleep 30");
        let umount = b.script("umount", "exit 0");
        let k = KernelMounter::with_tools(b.tools(mount, umount))
            .with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let e = k.mount_cephfs(&request(&target)).await.unwrap_err();
        assert!(matches!(e, MountError::Timeout(_)), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(b.leftover_keys().is_empty());
    }

    #[tokio::test]
    async fn missing_program_is_unavailable() {
        let b = Bench::new();
        let target = b.path("t");
        std::fs::create_dir(&target).unwrap();
        let k =
            KernelMounter::with_tools(b.tools(b.path("no-such-mount"), b.path("no-such-umount")));
        let e = k.mount_cephfs(&request(&target)).await.unwrap_err();
        assert!(matches!(e, MountError::Unavailable(_)), "{e:?}");
        assert!(b.leftover_keys().is_empty());
    }

    #[tokio::test]
    async fn bind_and_read_only_remount() {
        let b = Bench::new();
        let src = b.path("src");
        let target = b.path("pub");
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&target).unwrap();
        let mount = b.script(
            "mount",
            &format!(
                r#"if [ "$1" = --bind ]; then T="$3"; FSTYPE=ext4; {ADD_MOUNT}; fi
if [ "$1" = -o ] && [ "$2" = remount,bind,ro ]; then sed -i "s# $3 rw,# $3 ro,#" "$MOUNTINFO"; fi"#
            ),
        );
        let umount = b.script("umount", &format!("T=\"$1\"; {REMOVE_MOUNT}"));
        let k = KernelMounter::with_tools(b.tools(mount, umount));
        k.bind(&src, &target, true).await.unwrap();
        k.bind(&src, &target, true).await.unwrap();
        let calls = b.calls();
        let t = target.to_str().unwrap();
        let s = src.to_str().unwrap();
        assert_eq!(
            calls,
            [
                vec!["mount", "--bind", s, t],
                vec!["mount", "-o", "remount,bind,ro", t],
            ],
            "the second bind is a no-op"
        );
        assert_eq!(k.state(&target).await, MountState::Mounted);
        k.unmount(&target).await.unwrap();
        assert_eq!(k.state(&target).await, MountState::NotMounted);
    }

    #[tokio::test]
    async fn failed_read_only_remount_undoes_the_bind() {
        let b = Bench::new();
        let src = b.path("src");
        let target = b.path("pub");
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&target).unwrap();
        let mount = b.script(
            "mount",
            &format!(
                r#"if [ "$1" = --bind ]; then T="$3"; FSTYPE=ext4; {ADD_MOUNT}; exit 0; fi
echo "mount: $3: permission denied." >&2; exit 32"#
            ),
        );
        let umount = b.script("umount", &format!("T=\"$1\"; {REMOVE_MOUNT}"));
        let k = KernelMounter::with_tools(b.tools(mount, umount));
        let e = k.bind(&src, &target, true).await.unwrap_err();
        assert!(
            matches!(
                e,
                MountError::Failed {
                    errno: Some(libc::EACCES),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(k.state(&target).await, MountState::NotMounted);
        assert_eq!(b.calls().last().unwrap()[0], "umount");
    }

    #[tokio::test]
    async fn unmount_treats_not_mounted_as_success() {
        let b = Bench::new();
        let target = b.path("t");
        std::fs::create_dir(&target).unwrap();
        // In the table (stale fixture), but umount says it is not mounted.
        b.add_mount(&target, "ceph", "rw");
        let mount = b.script("mount", "exit 0");
        let umount = b.script("umount", "echo \"umount: $1: not mounted.\" >&2; exit 32");
        let k = KernelMounter::with_tools(b.tools(mount, umount));
        k.unmount(&target).await.unwrap();
        // Nothing in the table: umount is not even run.
        let b2 = Bench::new();
        let k2 = KernelMounter::with_tools(
            b2.tools(b2.script("mount", "exit 1"), b2.script("umount", "exit 1")),
        );
        k2.unmount(&b2.path("nope")).await.unwrap();
        assert!(b2.calls().is_empty());
    }

    #[tokio::test]
    async fn corrupted_mount_is_unmounted_lazily() {
        let b = Bench::new();
        // A mount point whose stat fails: a path that does not exist stands in for a dead
        // mount (stat answers ENOENT, as an evicted ceph-fuse root does).
        let target = b.path("gone");
        b.add_mount(&target, "fuse.ceph-fuse", "rw");
        let umount = b.script(
            "umount",
            &format!(
                r#"if [ "$1" = -l ]; then T="$2"; {REMOVE_MOUNT}; exit 0; fi
echo "umount: $1: target is busy." >&2; exit 32"#
            ),
        );
        let k = KernelMounter::with_tools(b.tools(b.script("mount", "exit 0"), umount));
        assert_eq!(k.state(&target).await, MountState::Corrupted(libc::ENOENT));
        k.unmount(&target).await.unwrap();
        let t = target.to_str().unwrap();
        assert_eq!(b.calls(), [vec!["umount", t], vec!["umount", "-l", t]]);
        assert_eq!(k.state(&target).await, MountState::NotMounted);
    }

    #[tokio::test]
    async fn busy_healthy_mount_is_an_error() {
        let b = Bench::new();
        let target = b.path("busy");
        std::fs::create_dir(&target).unwrap();
        b.add_mount(&target, "ceph", "rw");
        let umount = b.script(
            "umount",
            "echo \"umount: $1: target is busy.\" >&2; exit 32",
        );
        let k = KernelMounter::with_tools(b.tools(b.script("mount", "exit 0"), umount));
        let e = k.unmount(&target).await.unwrap_err();
        assert!(matches!(e, MountError::Unmount { .. }), "{e:?}");
        assert!(e.to_string().contains("busy"), "{e}");
        assert_eq!(b.calls().len(), 1, "no lazy unmount of a healthy mount");
    }

    #[tokio::test]
    async fn hung_umount_falls_back_to_lazy() {
        let b = Bench::new();
        let target = b.path("hung");
        std::fs::create_dir(&target).unwrap();
        b.add_mount(&target, "ceph", "rw");
        let umount = b.script(
            "umount",
            &format!(r#"if [ "$1" = -l ]; then T="$2"; {REMOVE_MOUNT}; exit 0; fi; exec sleep 30"#),
        );
        let mut tools = b.tools(b.script("mount", "exit 0"), umount);
        tools.umount_timeout = Duration::from_millis(300);
        let k = KernelMounter::with_tools(tools);
        k.unmount(&target).await.unwrap();
        assert_eq!(b.calls().last().unwrap()[1], "-l");
    }

    #[tokio::test]
    async fn corrupted_mount_is_replaced_on_mount() {
        let b = Bench::new();
        let target = b.path("t");
        // Listed, but stat fails (the directory does not exist): corrupted.
        b.add_mount(&target, "ceph", "rw");
        let mount = b.script(
            "mount",
            &format!(r#"mkdir -p "$4"; T="$4"; FSTYPE=ceph; {ADD_MOUNT}"#),
        );
        let umount = b.script("umount", &format!("T=\"$1\"; {REMOVE_MOUNT}"));
        let k = KernelMounter::with_tools(b.tools(mount, umount));
        k.mount_cephfs(&request(&target)).await.unwrap();
        let names: Vec<String> = b.calls().iter().map(|c| c[0].clone()).collect();
        assert_eq!(names, ["umount", "mount"]);
        assert_eq!(k.state(&target).await, MountState::Mounted);
    }

    #[tokio::test]
    async fn stats_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let k = KernelMounter::new();
        let s = k.stats(dir.path()).await.unwrap();
        assert!(s.total_bytes > 0);
        assert!(s.used_bytes <= s.total_bytes);
        assert!(s.available_bytes <= s.total_bytes);
        let e = k.stats(&dir.path().join("missing")).await.unwrap_err();
        assert!(matches!(e, MountError::Io { .. }), "{e:?}");
    }
}
