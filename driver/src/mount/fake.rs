//! The fake mounter: CephFS on fake-ceph, without a kernel client or FUSE.
//!
//! A mount is an MDS session on fake-ceph: `POST {admin_url}/mds/sessions` with HTTP Basic
//! credentials (`client.<user_id>` and its key) and
//! `{"fs_name", "root", "client_metadata": {"hostname": <node id>, "mount_point": <target>}}`.
//! fake-ceph answers with the session id, a session token and the local directory that
//! is the mounted root; the mounter then puts that directory at the target:
//!
//! - [`FakeMountMode::Bind`]: `mount --bind <local_path> <target>` (+ a read-only remount);
//!   needs the right to mount (root).
//! - [`FakeMountMode::Symlink`]: the target, an empty directory made by the CO, is replaced
//!   by a symlink to the local directory. Read-only is recorded but **not enforced** in
//!   this mode: writes through a read-only symlinked volume succeed. The fake makes no
//!   mounts in this mode and does not read the mount table (a bind mount left by an
//!   earlier run in Bind mode is not seen).
//! - [`FakeMountMode::Auto`]: Bind when the effective uid is 0, else Symlink.
//!
//! Each staging mount is recorded in `<state_dir>/fake-mounts/<encoded target>.json`
//! (0600, in a 0700 directory): session id, token, fake-ceph URL, local path, kind. The
//! token is a per-mount handle, not a cephx key: with it (header `X-Session-Token`) a
//! restarted driver, which has no key at unstage time, can check, use and close the
//! session. Publish targets have no record of their own. In symlink mode a publish target
//! is a symlink to the staging target (itself a symlink to the local directory), so the
//! link names its staging record; a bind mount is resolved to the staging mount whose
//! local directory it shows (same device and inode).
//!
//! Every HTTP call has a deadline (10 s by default) and one `reqwest::Client` serves all
//! of them. fake-ceph's `ret` becomes [`MountError::Failed`]`{errno: -ret}`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kernel::HostTools;
use super::mountinfo;
use super::{CephMount, FsStats, MountError, MountState, Mounter};

/// Default deadline of each call to fake-ceph.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The header fake-ceph reads a session token from.
pub const SESSION_TOKEN_HEADER: &str = "X-Session-Token";

/// Records live in this subdirectory of the state dir.
const RECORDS_DIR: &str = "fake-mounts";

/// How the fake mounter puts fake-ceph's directory at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FakeMountMode {
    /// Bind when the effective uid is 0, else Symlink.
    #[default]
    Auto,
    /// Bind mounts (`mount --bind`).
    Bind,
    /// Symlinks in place of the target directories; read-only is not enforced.
    Symlink,
}

impl FakeMountMode {
    /// Auto decided: Bind as root, else Symlink.
    pub fn resolve(self) -> Self {
        match self {
            Self::Auto if effective_uid() == Some(0) => Self::Bind,
            Self::Auto => Self::Symlink,
            m => m,
        }
    }
}

/// The effective uid, from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Bind,
    Symlink,
}

/// A staging mount, as recorded on disk.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    session_id: u64,
    token: String,
    url: String,
    local_path: PathBuf,
    kind: Kind,
    target: PathBuf,
    #[serde(default)]
    read_only: bool,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("session_id", &self.session_id)
            .field("token", &"<redacted>")
            .field("url", &self.url)
            .field("local_path", &self.local_path)
            .field("kind", &self.kind)
            .field("target", &self.target)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// The file name of a target's record: the normalized path, percent-encoded (bytes
/// outside `[A-Za-z0-9._-]` become `%XX`); a long one is cut and given an FNV-1a hash of
/// the whole path. The record also holds the target, which is checked on load.
fn record_name(target: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut name = super::file_name(mountinfo::normalize(target).as_os_str().as_bytes());
    name.push_str(".json");
    name
}

/// What came back from fake-ceph.
#[derive(Debug)]
enum Answer {
    /// A 2xx JSON body.
    Json(Value),
    /// 401: bad credentials or token.
    Unauthorized,
    /// Another HTTP status.
    Status(u16, String),
    /// No answer (connection refused, reset, bad body, ...).
    Unreachable(String),
    /// No answer in time.
    TimedOut,
}

/// Whether a session is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    Open,
    Gone,
    Unreachable,
}

fn ret_of(v: &Value) -> i64 {
    v.get("ret")
        .and_then(Value::as_i64)
        .unwrap_or(-i64::from(libc::EIO))
}

fn outs_of(v: &Value) -> String {
    v.get("outs")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned()
}

fn errno_of_ret(ret: i64) -> Option<i32> {
    i32::try_from(-ret).ok().filter(|e| *e > 0)
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> MountError {
    move |source| MountError::Io { context, source }
}

/// Removes a file; one already gone is success.
fn remove_if_present(path: &Path) -> Result<(), MountError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
    }
}

fn errno_of_io(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Mounts by opening sessions on fake-ceph.
#[derive(Debug, Clone)]
pub struct FakeMounter {
    state_dir: PathBuf,
    mode: FakeMountMode,
    client: Result<reqwest::Client, String>,
    http_timeout: Duration,
    tools: HostTools,
}

impl FakeMounter {
    /// Records under `state_dir/fake-mounts`; `mode` is resolved now (Auto → Bind as
    /// root). Uses the real `mount`/`umount` (Bind mode) and default deadlines.
    pub fn new(state_dir: PathBuf, mode: FakeMountMode) -> Self {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"));
        Self {
            state_dir,
            mode: mode.resolve(),
            client,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            tools: HostTools::default(),
        }
    }

    /// With this HTTP client (and its connection pool) instead of one of its own: many
    /// node plugins in one process (the simulator) share one pool rather than hold a
    /// pool each.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Ok(client);
        self
    }

    /// With another deadline for each call to fake-ceph (default 10 s).
    pub fn with_http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// With another deadline for bind mounts (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.tools.mount_timeout = timeout;
        self
    }

    /// With other host programs, mount table and deadlines (Bind mode; tests).
    pub fn with_tools(mut self, tools: HostTools) -> Self {
        self.tools = tools;
        self
    }

    /// The mode in use (never Auto).
    pub fn mode(&self) -> FakeMountMode {
        self.mode
    }

    /// Where records are kept.
    pub fn records_dir(&self) -> PathBuf {
        self.state_dir.join(RECORDS_DIR)
    }

    fn client(&self) -> Result<&reqwest::Client, MountError> {
        self.client
            .as_ref()
            .map_err(|e| MountError::Unavailable(e.clone()))
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        let resp = match rb.timeout(self.http_timeout).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Answer::TimedOut,
            Err(e) => return Answer::Unreachable(e.without_url().to_string()),
        };
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Answer::Unauthorized;
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Answer::TimedOut,
            Err(e) => return Answer::Unreachable(e.without_url().to_string()),
        };
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Answer::Status(status.as_u16(), text.chars().take(512).collect());
        }
        match serde_json::from_slice(&body) {
            Ok(v) => Answer::Json(v),
            Err(e) => Answer::Unreachable(format!("fake-ceph answered with bad JSON: {e}")),
        }
    }

    fn with_token(&self, rb: reqwest::RequestBuilder, rec: &Record) -> reqwest::RequestBuilder {
        match reqwest::header::HeaderValue::from_str(&rec.token) {
            Ok(mut v) => {
                v.set_sensitive(true);
                rb.header(SESSION_TOKEN_HEADER, v)
            }
            // An unusable token cannot match: fake-ceph will refuse the call.
            Err(_) => rb,
        }
    }

    fn session_url(rec: &Record) -> String {
        format!("{}/mds/sessions/{}", rec.url, rec.session_id)
    }

    /// `GET /mds/sessions/{id}` with the token.
    async fn session(&self, rec: &Record) -> Session {
        let Ok(client) = self.client() else {
            return Session::Unreachable;
        };
        let rb = self.with_token(client.get(Self::session_url(rec)), rec);
        match self.send(rb).await {
            Answer::Json(v) if ret_of(&v) == 0 => {
                let state = v.pointer("/session/state").and_then(Value::as_str);
                if state.is_none_or(|s| s == "open") {
                    Session::Open
                } else {
                    Session::Gone
                }
            }
            // ENOTCONN: closed or evicted. 401: the token is no longer known (fake-ceph
            // restarted and reused the id). 404: no such session route or id.
            Answer::Json(_) | Answer::Unauthorized | Answer::Status(404, _) => Session::Gone,
            Answer::Status(..) | Answer::Unreachable(_) | Answer::TimedOut => Session::Unreachable,
        }
    }

    /// `DELETE /mds/sessions/{id}` with the token; a session already gone is success.
    async fn close_session(&self, rec: &Record, target: &Path) -> Result<(), MountError> {
        let client = self.client()?;
        let rb = self.with_token(client.delete(Self::session_url(rec)), rec);
        let failed = |message: String| MountError::Unmount {
            target: target.to_path_buf(),
            message,
        };
        match self.send(rb).await {
            Answer::Json(v) => match ret_of(&v) {
                0 => Ok(()),
                r if errno_of_ret(r) == Some(libc::ENOTCONN) => Ok(()),
                r => Err(failed(format!(
                    "closing session {} failed ({r}): {}",
                    rec.session_id,
                    outs_of(&v)
                ))),
            },
            Answer::Unauthorized | Answer::Status(404, _) => {
                tracing::info!(session = rec.session_id, "session already gone");
                Ok(())
            }
            Answer::Status(code, body) => Err(failed(format!(
                "closing session {}: HTTP {code}: {body}",
                rec.session_id
            ))),
            Answer::Unreachable(e) => Err(failed(format!(
                "closing session {}: fake-ceph at {} unreachable: {e}",
                rec.session_id, rec.url
            ))),
            Answer::TimedOut => Err(MountError::Timeout(format!(
                "closing session {} at {}",
                rec.session_id, rec.url
            ))),
        }
    }

    /// `POST /mds/sessions`: the session's record (not yet written).
    async fn open_session(
        &self,
        m: &CephMount,
        url: &str,
        kind: Kind,
    ) -> Result<Record, MountError> {
        let client = self.client()?;
        let failed = |message: String, errno: Option<i32>| MountError::Failed {
            target: m.target.clone(),
            message,
            errno,
        };
        let body = json!({
            // No name: fake-ceph's first file system, as a real client gets the default.
            "fs_name": (!m.fs_name.is_empty()).then_some(&m.fs_name),
            "root": m.root_path,
            "client_metadata": {
                "hostname": m.node_id,
                "mount_point": m.target.to_string_lossy(),
            },
        });
        let rb = client
            .post(format!("{url}/mds/sessions"))
            .basic_auth(format!("client.{}", m.user_id), Some(m.key().trim()))
            .json(&body);
        let v = match self.send(rb).await {
            Answer::Json(v) => v,
            Answer::Unauthorized => {
                return Err(failed(
                    format!("client.{}: authentication failed", m.user_id),
                    Some(libc::EACCES),
                ));
            }
            Answer::Status(code, body) => {
                return Err(failed(
                    format!("fake-ceph: HTTP {code}: {body}"),
                    Some(libc::EIO),
                ));
            }
            Answer::Unreachable(e) => {
                return Err(failed(
                    format!("fake-ceph at {url} unreachable: {e}"),
                    Some(libc::EIO),
                ));
            }
            Answer::TimedOut => {
                return Err(MountError::Timeout(format!(
                    "opening a session on {url} for {}",
                    m.target.display()
                )));
            }
        };
        let ret = ret_of(&v);
        if ret != 0 {
            return Err(failed(outs_of(&v), errno_of_ret(ret)));
        }
        let (Some(session_id), Some(token), Some(local_path)) = (
            v.get("id").and_then(Value::as_u64),
            v.get("token").and_then(Value::as_str),
            v.get("local_path").and_then(Value::as_str),
        ) else {
            return Err(failed(
                "fake-ceph's answer lacks id, token or local_path".into(),
                Some(libc::EIO),
            ));
        };
        Ok(Record {
            session_id,
            token: token.to_owned(),
            url: url.to_owned(),
            local_path: PathBuf::from(local_path),
            kind,
            target: mountinfo::normalize(&m.target),
            read_only: m.read_only,
        })
    }

    fn record_path(&self, target: &Path) -> PathBuf {
        self.records_dir().join(record_name(target))
    }

    fn write_record(&self, rec: &Record) -> Result<(), MountError> {
        Self::write_json(&self.records_dir(), &self.record_path(&rec.target), rec)
    }

    /// The staging record a symlinked publish target shows: its link names the staging
    /// target, whose record is found in O(1).
    async fn load_linked(&self, target: &Path) -> Option<Record> {
        let link = std::fs::read_link(target).ok()?;
        if !link.is_absolute() {
            return None;
        }
        self.load(&link)
    }

    /// Writes `value` as JSON to `path` in `dir` (created 0700), atomically.
    fn write_json<T: Serialize>(dir: &Path, path: &Path, value: &T) -> Result<(), MountError> {
        use std::io::Write;
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("securing {}", dir.display())))?;
        let text = serde_json::to_vec_pretty(value).map_err(|e| MountError::Io {
            context: "encoding a mount record".into(),
            source: std::io::Error::other(e),
        })?;
        // A temp file is created 0600; renaming it into place is atomic. No fsync: the
        // record must survive the driver process, which the page cache does; a machine
        // crash takes the mounts it describes with it.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(io_err(format!("creating a record in {}", dir.display())))?;
        tmp.write_all(&text)
            .map_err(io_err(format!("writing {}", path.display())))?;
        tmp.persist(path)
            .map_err(|e| io_err(format!("writing {}", path.display()))(e.error))?;
        Ok(())
    }

    fn remove_record(&self, target: &Path) -> Result<(), MountError> {
        remove_if_present(&self.record_path(target))
    }

    fn parse_record(path: &Path) -> Option<Record> {
        let text = std::fs::read(path).ok()?;
        match serde_json::from_slice(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable mount record");
                None
            }
        }
    }

    /// The record of a staging target, if any.
    fn load(&self, target: &Path) -> Option<Record> {
        let rec = Self::parse_record(&self.record_path(target))?;
        (rec.target == mountinfo::normalize(target)).then_some(rec)
    }

    fn all_records(&self) -> Vec<Record> {
        let Ok(rd) = std::fs::read_dir(self.records_dir()) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| Self::parse_record(&p))
            .collect()
    }

    /// `(dev, ino)` of what `path` leads to (following symlinks), with a deadline.
    async fn identity(&self, path: &Path) -> Option<(u64, u64)> {
        let p = path.to_path_buf();
        let work = tokio::task::spawn_blocking(move || {
            std::fs::metadata(&p).map(|m| (m.dev(), m.ino())).ok()
        });
        tokio::time::timeout(self.tools.stat_timeout, work)
            .await
            .ok()?
            .ok()?
    }

    /// The record of `target`: its own (a staging target), or that of the staging mount
    /// whose directory it shows (a publish target).
    async fn resolve(&self, target: &Path) -> Option<Record> {
        if let Some(r) = self.load(target) {
            return Some(r);
        }
        if let Some(r) = self.load_linked(target).await {
            return Some(r);
        }
        // A bind-mounted publish target (or a link an older driver made straight to the
        // local directory): find the staging mount whose directory it shows.
        let id = self.identity(target).await?;
        for rec in self.all_records() {
            if self.identity(&rec.local_path).await == Some(id) {
                return Some(rec);
            }
        }
        None
    }

    // The fake's paths are local (the CO's directories, the state dir, links into
    // fake-ceph's tree), never a network mount that could hang, so they are read and
    // changed with plain blocking calls: each takes microseconds, less than handing it
    // to the blocking pool would.
    async fn is_symlink(path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    }

    /// Whether the symlink at `target` is one this mounter made: a staging target's
    /// link to its session's directory (the record says which), a publish target's link
    /// to a staging target with a record or to a recorded session's directory, or a link
    /// whose destination is gone (a publish link whose staging mount went first). Anything else at a target is someone
    /// else's, and is left alone.
    fn ours(&self, target: &Path) -> bool {
        let Ok(link) = std::fs::read_link(target) else {
            return false;
        };
        if let Some(rec) = self.load(target) {
            return link == rec.local_path;
        }
        link.is_absolute()
            && (self.load(&link).is_some()
                || std::fs::symlink_metadata(&link)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                // An older driver linked publish targets straight to the session's
                // directory: found by a scan of the records.
                || self.all_records().iter().any(|r| r.local_path == link))
    }

    /// Whether something of ours (a symlink or a mount) is at `target`. In symlink mode
    /// the fake makes no mounts, so the mount table is not read.
    async fn present(&self, target: &Path) -> Result<bool, MountError> {
        if Self::is_symlink(target).await {
            return Ok(self.ours(target));
        }
        Ok(self.mode == FakeMountMode::Bind && self.tools.find_mount(target).await?.is_some())
    }

    /// Replaces the (empty) directory `target` with a symlink to `to`. An existing
    /// symlink is replaced; a missing target is created.
    async fn put_symlink(&self, to: &Path, target: &Path) -> Result<(), MountError> {
        let failed = |message: String, errno: Option<i32>| MountError::Failed {
            target: target.to_path_buf(),
            message,
            errno,
        };
        match std::fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => {
                if std::fs::read_link(target).is_ok_and(|l| l == to) {
                    return Ok(());
                }
                std::fs::remove_file(target).map_err(|e| {
                    failed(
                        format!("removing the old symlink: {e}"),
                        Some(errno_of_io(&e)),
                    )
                })?;
            }
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir(target).map_err(|e| {
                    failed(
                        format!("the target must be an empty directory: {e}"),
                        Some(errno_of_io(&e)),
                    )
                })?;
            }
            Ok(_) => {
                return Err(failed(
                    "the target is not a directory".into(),
                    Some(libc::ENOTDIR),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(format!("{e}"), Some(errno_of_io(&e)))),
        }
        std::os::unix::fs::symlink(to, target).map_err(|e| {
            failed(
                format!("symlinking to {}: {e}", to.display()),
                Some(errno_of_io(&e)),
            )
        })
    }

    /// Removes what is at `target`: a symlink becomes an empty directory again (as a
    /// real unmount leaves the mount point) unless `keep_dir` is false; a mount is
    /// unmounted.
    async fn remove_local(&self, target: &Path, keep_dir: bool) -> Result<(), MountError> {
        if Self::is_symlink(target).await {
            if !self.ours(target) {
                return Err(MountError::Failed {
                    target: target.to_path_buf(),
                    message: "a symlink this driver did not make is at the target; left alone"
                        .into(),
                    errno: Some(libc::EPERM),
                });
            }
            match std::fs::remove_file(target) {
                Ok(()) => {}
                // Gone meanwhile (another process tidied up): nothing left to remove.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(io_err(format!("removing the symlink {}", target.display()))(e));
                }
            }
            if !keep_dir {
                return Ok(());
            }
            match std::fs::create_dir(target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(format!("recreating {}", target.display()))(e)),
            }
            return Ok(());
        }
        self.tools.unmount(target).await
    }

    /// Undoes what is at `target`: the link or mount, then the session and its record
    /// if `target` is a staging target.
    async fn release(&self, target: &Path, keep_dir: bool) -> Result<(), MountError> {
        self.remove_local(target, keep_dir).await?;
        if let Some(rec) = self.load(target) {
            self.close_session(&rec, target).await?;
            self.remove_record(target)?;
            tracing::info!(target = %target.display(), session = rec.session_id, "unmounted (fake)");
        }
        Ok(())
    }

    /// Puts the session's directory at the target.
    async fn attach(&self, rec: &Record) -> Result<(), MountError> {
        match rec.kind {
            Kind::Bind => {
                self.tools
                    .bind(&rec.local_path, &rec.target, rec.read_only)
                    .await
            }
            Kind::Symlink => {
                if rec.read_only {
                    tracing::debug!(target = %rec.target.display(), "read-only is not enforced in symlink mode");
                }
                self.put_symlink(&rec.local_path, &rec.target).await
            }
        }
    }

    fn kind(&self) -> Kind {
        match self.mode {
            FakeMountMode::Bind => Kind::Bind,
            FakeMountMode::Symlink | FakeMountMode::Auto => Kind::Symlink,
        }
    }

    fn url_of(m: &CephMount) -> Result<String, MountError> {
        let url = m
            .admin_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                MountError::Unavailable(
                    "the fake mounter needs the fake-ceph URL (admin_url)".into(),
                )
            })?;
        Ok(url.to_owned())
    }
}

#[async_trait::async_trait]
impl Mounter for FakeMounter {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn mount_cephfs(&self, m: &CephMount) -> Result<(), MountError> {
        let url = Self::url_of(m)?;
        if m.user_id.is_empty() || m.key().trim().is_empty() {
            return Err(MountError::Failed {
                target: m.target.clone(),
                message: "no user id or key".into(),
                errno: Some(libc::EINVAL),
            });
        }
        // Idempotent: our mount is there and its session open.
        if let Some(rec) = self.load(&m.target) {
            if self.present(&m.target).await? && self.session(&rec).await == Session::Open {
                tracing::debug!(target = %m.target.display(), "already mounted");
                return Ok(());
            }
            tracing::info!(target = %m.target.display(), session = rec.session_id, "replacing a stale fake mount");
            self.unmount(&m.target).await?;
        } else if self.present(&m.target).await? {
            tracing::info!(target = %m.target.display(), "removing an unrecorded mount before mounting");
            self.remove_local(&m.target, true).await?;
        }
        let rec = self.open_session(m, &url, self.kind()).await?;
        // Recorded before it is attached, so that a crash in between leaves a session that
        // a later unmount can close.
        let undo = |e: MountError| async {
            if let Err(c) = self.close_session(&rec, &m.target).await {
                tracing::warn!(target = %m.target.display(), error = %c, "could not close the session of a failed mount");
            }
            if let Err(r) = self.remove_record(&m.target) {
                tracing::warn!(error = %r, "could not remove a mount record");
            }
            e
        };
        if let Err(e) = self.write_record(&rec) {
            return Err(undo(e).await);
        }
        if let Err(e) = self.attach(&rec).await {
            return Err(undo(e).await);
        }
        tracing::info!(
            target = %m.target.display(),
            root = %m.root_path,
            session = rec.session_id,
            kind = ?rec.kind,
            "mounted (fake)"
        );
        Ok(())
    }

    async fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), MountError> {
        if self.mode == FakeMountMode::Bind {
            return self.tools.bind(source, target, read_only).await;
        }
        if !self.present(source).await? {
            return Err(MountError::Failed {
                target: target.to_path_buf(),
                message: format!("{} is not mounted", source.display()),
                errno: Some(libc::ENOENT),
            });
        }
        if read_only {
            tracing::debug!(target = %target.display(), "read-only is not enforced in symlink mode");
        }
        // A link to the staging target (not to what it shows), so that the link itself
        // says which staging mount this is.
        self.put_symlink(&mountinfo::normalize(source), target)
            .await
    }

    async fn unmount(&self, target: &Path) -> Result<(), MountError> {
        self.release(target, true).await
    }

    async fn unmount_and_remove(&self, target: &Path) -> Result<(), MountError> {
        // A symlink is removed, not turned back into a directory only to be removed.
        self.release(target, false).await?;
        super::remove_mount_point(target).await
    }

    async fn has_work_at(&self, target: &Path) -> bool {
        // A record without its link (a crash between the two) still holds a session.
        self.load(target).is_some() || self.present(target).await.unwrap_or(true)
    }

    async fn state(&self, target: &Path) -> MountState {
        let present = match self.present(target).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target = %target.display(), error = %e, "cannot tell what is mounted");
                return MountState::Corrupted(libc::EIO);
            }
        };
        if !present {
            return MountState::NotMounted;
        }
        match self.resolve(target).await {
            Some(rec) => match self.session(&rec).await {
                Session::Open => MountState::Mounted,
                Session::Gone => MountState::Corrupted(libc::ENOTCONN),
                Session::Unreachable => MountState::Corrupted(libc::EIO),
            },
            // Not ours (or its directory is gone): as stat sees it.
            None => match super::kernel::stat_errno(target, self.tools.stat_timeout).await {
                Ok(()) => MountState::Mounted,
                Err(e) => MountState::Corrupted(e),
            },
        }
    }

    async fn stats(&self, target: &Path) -> Result<FsStats, MountError> {
        let failed = |message: String, errno: Option<i32>| MountError::Failed {
            target: target.to_path_buf(),
            message,
            errno,
        };
        let Some(rec) = self.resolve(target).await else {
            if self.present(target).await? {
                return self.tools.stats(target).await;
            }
            return Err(failed(
                "nothing is mounted there".into(),
                Some(libc::ENOENT),
            ));
        };
        let client = self.client()?;
        let rb = self
            .with_token(
                client.post(format!("{}/ops", Self::session_url(&rec))),
                &rec,
            )
            .json(&json!({"ops": [{"op": "statfs"}]}));
        let v = match self.send(rb).await {
            Answer::Json(v) => v,
            Answer::Unauthorized | Answer::Status(404, _) => {
                return Err(failed(
                    format!("session {} is gone", rec.session_id),
                    Some(libc::ENOTCONN),
                ));
            }
            Answer::Status(code, body) => {
                return Err(failed(
                    format!("fake-ceph: HTTP {code}: {body}"),
                    Some(libc::EIO),
                ));
            }
            Answer::Unreachable(e) => {
                return Err(failed(
                    format!("fake-ceph at {} unreachable: {e}", rec.url),
                    Some(libc::EIO),
                ));
            }
            Answer::TimedOut => {
                return Err(MountError::Timeout(format!(
                    "statfs of {} on {}",
                    target.display(),
                    rec.url
                )));
            }
        };
        let ret = ret_of(&v);
        if ret != 0 {
            return Err(failed(outs_of(&v), errno_of_ret(ret)));
        }
        let r = v.pointer("/results/0").cloned().unwrap_or(Value::Null);
        let ret = ret_of(&r);
        if ret != 0 {
            return Err(failed(outs_of(&r), errno_of_ret(ret)));
        }
        let field = |k: &str| r.pointer(&format!("/output/{k}")).and_then(Value::as_u64);
        match (
            field("total_bytes"),
            field("used_bytes"),
            field("free_bytes"),
        ) {
            (Some(total), Some(used), Some(free)) => Ok(FsStats {
                total_bytes: total,
                available_bytes: free,
                used_bytes: used,
            }),
            _ => Err(failed(
                format!("unexpected statfs answer: {r}"),
                Some(libc::EIO),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
