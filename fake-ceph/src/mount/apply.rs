//! One client operation applied to the tree through a mount: caps, quota and size
//! checks, the file system call, and its answer.

use std::sync::atomic::Ordering;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use rustix::fs::OFlags;

use crate::cephx::Perm;
use crate::error::{CephError, CephResult, errno};
use crate::mds::*;

use super::*;

impl Mount {
    /// Runs one operation: a dead session or a down MDS fails before the MDS sees it;
    /// anything else is an MDS request and is counted (but for quota refusals, which
    /// the client makes on its own, and statfs, which the monitors answer).
    pub(super) fn apply(&self, op: &Op, read_budget: &mut u64) -> CephResult<OpOutput> {
        // statfs is answered from the client's cached quota and the monitors' pool
        // statistics: it keeps working in an evicted ceph-fuse mount (seen on 16.2.15).
        let evicted = self.session.state.load(Ordering::SeqCst) == STATE_EVICTED;
        if let Some(e) = self.dead_session_error()
            && !(evicted && matches!(op, Op::Statfs))
        {
            return Err(e);
        }
        let mds = &self.cluster.inner.mds;
        if mds.is_down() {
            return Err(CephError::new(errno::ETIMEDOUT, "no MDS is active"));
        }
        let started = Instant::now();
        // Whether the path existed decides create vs open, mkdir vs lookup.
        let mut existed = true;
        let result = self.apply_op(op, &mut existed, read_budget);
        if let Some(kind) = op.request_kind(existed)
            && !matches!(&result, Err(e) if e.errno == errno::EDQUOT)
        {
            mds.record_request(kind, started.elapsed());
        }
        result
    }

    /// One operation on the tree; the longer ones are steps of their own.
    pub(super) fn apply_op(
        &self,
        op: &Op,
        existed: &mut bool,
        read_budget: &mut u64,
    ) -> CephResult<OpOutput> {
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let path = op.path();
        let out = match op {
            Op::Mkdir { .. } => {
                let e = self.check(op, path, true, true)?;
                *existed = !e.created();
                if e.open_dir().is_err() {
                    return Err(CephError::new(errno::EEXIST, "File exists"));
                }
                self.charge(if e.created() { 1 } else { 0 });
                OpOutput::Done
            }
            Op::Write {
                offset, len, data, ..
            } => self.write(op, offset, len, data, existed)?,
            Op::Truncate { size, .. } => self.truncate(op, size)?,
            Op::Read { offset, len, .. } => self.read(op, offset, len, read_budget)?,
            Op::Stat { .. } => {
                let e = self.check(op, path, true, false)?;
                let m = e.stat().map_err(io)?;
                self.charge(0);
                OpOutput::Stat(StatInfo {
                    is_dir: is_dir(&m),
                    size: size_of(&m),
                    mode: m.st_mode & 0o7777,
                })
            }
            Op::Readdir { .. } => self.readdir(op)?,
            Op::Unlink { .. } => self.unlink(op)?,
            Op::Rmdir { .. } => {
                let e = self.check(op, path, false, false)?;
                if e.is_root() {
                    return Err(CephError::new(errno::EBUSY, "Device or resource busy"));
                }
                let (dir, name) = e.parent_and_name().map_err(io)?;
                rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::REMOVEDIR)
                    .map_err(|x| io(x.into()))?;
                self.charge(-1);
                OpOutput::Done
            }
            Op::Rename { to, .. } => {
                let from = self.check(op, path, false, false)?;
                let dest = self.check(op, to, false, false)?;
                let (fd, fname) = from.parent_and_name().map_err(io)?;
                let (td, tname) = dest.parent_and_name().map_err(io)?;
                rustix::fs::renameat(fd, fname, td, tname).map_err(|x| io(x.into()))?;
                self.charge(0);
                OpOutput::Done
            }
            Op::Getxattr { name, .. } => {
                let e = self.check(op, path, true, false)?;
                self.charge(0);
                OpOutput::Data(self.getxattr(&e, name)?)
            }
            Op::Setxattr { name, value, .. } => self.setxattr(op, name, value)?,
            Op::Statfs => {
                self.charge(0);
                OpOutput::Statfs(self.statfs_now())
            }
        };
        Ok(out)
    }

    /// Writes `data` (base64) at `offset`, or extends the file to `offset + len`, charged to the quota realm.
    fn write(
        &self,
        op: &Op,
        offset: &u64,
        len: &u64,
        data: &Option<String>,
        existed: &mut bool,
    ) -> CephResult<OpOutput> {
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let realm = self.session.realm.as_deref();
        let path = op.path();
        let bytes = match data {
            Some(d) => Some(
                B64.decode(d)
                    .map_err(|_| CephError::inval("data is not base64"))?,
            ),
            None => None,
        };
        let e = self.check(op, path, true, false)?;
        let old = e.stat().ok();
        *existed = old.is_some();
        if old.as_ref().is_some_and(is_dir) {
            return Err(CephError::new(errno::EISDIR, "Is a directory"));
        }
        let old_len = old.as_ref().map_or(0, size_of);
        let end = offset.saturating_add(bytes.as_ref().map_or(*len, |b| b.len() as u64));
        if end > MAX_FILE_SIZE {
            return Err(file_too_large());
        }
        let grow = end.saturating_sub(old_len);
        if let Some(r) = realm {
            r.charge(grow)?;
        }
        let res = (|| -> std::io::Result<()> {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = e.open(OFlags::WRONLY | OFlags::CREATE, 0o666)?;
            match &bytes {
                Some(b) => {
                    f.seek(SeekFrom::Start(*offset))?;
                    f.write_all(b)?;
                }
                None if end > old_len => f.set_len(end)?,
                None => {}
            }
            Ok(())
        })();
        if let Err(err) = res {
            if let Some(r) = realm {
                r.release(grow);
            }
            return Err(io(err));
        }
        self.charge(if old.is_none() { 1 } else { 0 });
        Ok(OpOutput::Done)
    }

    /// Sets a file's size, charging or releasing the quota realm.
    fn truncate(&self, op: &Op, size: &u64) -> CephResult<OpOutput> {
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let realm = self.session.realm.as_deref();
        let path = op.path();
        if *size > MAX_FILE_SIZE {
            return Err(file_too_large());
        }
        let e = self.check(op, path, true, false)?;
        let old = size_of(&e.stat().map_err(io)?);
        let f = e.open(OFlags::WRONLY, 0).map_err(io)?;
        if let Some(r) = realm {
            if *size > old {
                r.charge(size - old)?;
            } else {
                r.release(old - size);
            }
        }
        if let Err(err) = f.set_len(*size) {
            if let Some(r) = realm {
                if *size > old {
                    r.release(size - old);
                } else {
                    let _ = r.charge(old - size);
                }
            }
            return Err(io(err));
        }
        self.charge(0);
        Ok(OpOutput::Done)
    }

    /// Reads at most one object's worth, within what is left of the request's budget.
    fn read(
        &self,
        op: &Op,
        offset: &u64,
        len: &u64,
        read_budget: &mut u64,
    ) -> CephResult<OpOutput> {
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let path = op.path();
        // Like a file system, a read may return less than asked: at most one
        // object of the default layout per operation, within the request's
        // budget. Nothing left of the budget is EAGAIN (read on in a new
        // request), never an empty read, which would mean the end of the file.
        let want = (*len).min(MAX_READ_BYTES).min(*read_budget);
        if want == 0 && *len > 0 {
            return Err(CephError::new(
                errno::EAGAIN,
                format!(
                    "this request has read {MAX_REQUEST_READ_BYTES} bytes already: \
                     read on in another request"
                ),
            ));
        }
        let e = self.check(op, path, true, false)?;
        let f = e.open(OFlags::RDONLY, 0).map_err(io)?;
        let buf = read_at_most(&f, *offset, want).map_err(io)?;
        *read_budget -= buf.len() as u64;
        self.charge(0);
        Ok(OpOutput::Data(B64.encode(buf)))
    }

    /// Lists a directory, sorted.
    fn readdir(&self, op: &Op) -> CephResult<OpOutput> {
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let path = op.path();
        let e = self.check(op, path, true, false)?;
        let dir = e.open_dir().map_err(io)?;
        let mut names: Vec<String> = crate::beneath::read_dir(std::os::fd::AsFd::as_fd(&dir))
            .map_err(io)?
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        self.charge(0);
        Ok(OpOutput::Entries(names))
    }

    /// Removes a file, releasing its bytes from the quota realm.
    fn unlink(&self, op: &Op) -> CephResult<OpOutput> {
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let realm = self.session.realm.as_deref();
        let path = op.path();
        let e = self.check(op, path, false, false)?;
        if e.is_root() {
            return Err(CephError::new(errno::EISDIR, "Is a directory"));
        }
        let m = e.stat().map_err(io)?;
        if is_dir(&m) {
            return Err(CephError::new(errno::EISDIR, "Is a directory"));
        }
        let (dir, name) = e.parent_and_name().map_err(io)?;
        rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty()).map_err(|x| io(x.into()))?;
        if let Some(r) = realm {
            r.release(size_of(&m));
        }
        self.charge(-1);
        Ok(OpOutput::Done)
    }

    /// Sets `ceph.quota.max_bytes` of a subvolume root (the only xattr modelled).
    fn setxattr(&self, op: &Op, name: &str, value: &str) -> CephResult<OpOutput> {
        let realm = self.session.realm.as_deref();
        let path = op.path();
        if name != "ceph.quota.max_bytes" {
            return Err(CephError::new(errno::EOPNOTSUPP, "Operation not supported"));
        }
        let v: u64 = value
            .trim()
            .parse()
            .map_err(|_| CephError::inval("Invalid argument"))?;
        let e = self.check(op, path, true, false)?;
        if !self.session.caps.mds_allows(
            &self.session.fs,
            &self.session.root,
            Perm {
                p: true,
                ..Perm::RW
            },
        ) {
            return Err(CephError::new(errno::EACCES, "Permission denied"));
        }
        match realm {
            Some(r) if e.rel().is_empty() => {
                // The quota is the subvolume's: its record changes (and is
                // committed before the operation is answered, by `run`).
                let sh = self.cluster.inner.shared.lock();
                r.set_max_bytes(v);
                sh.volumes.mark_path(&self.session.fs, &self.session.root);
            }
            _ => {
                return Err(CephError::new(
                    errno::EOPNOTSUPP,
                    "quotas are only modelled on subvolume roots",
                ));
            }
        }
        self.charge(0);
        Ok(OpOutput::Done)
    }
}

fn is_dir(m: &rustix::fs::Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(m.st_mode) == rustix::fs::FileType::Directory
}

fn size_of(m: &rustix::fs::Stat) -> u64 {
    u64::try_from(m.st_size).unwrap_or(0)
}

/// Reads up to `len` bytes at `offset`; fewer at the end of the file.
fn read_at_most(f: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = Vec::new();
    let mut at = offset;
    let mut chunk = vec![0u8; 64 << 10];
    while (buf.len() as u64) < len {
        let want = usize::try_from((len - buf.len() as u64).min(chunk.len() as u64))
            .unwrap_or(chunk.len());
        let n = f.read_at(&mut chunk[..want], at)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        at = at.saturating_add(n as u64);
    }
    Ok(buf)
}
