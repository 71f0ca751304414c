//! The module's options at run time: `config set|rm|get` of `mgr/volumes/<name>`.

use crate::command::Args;
use crate::error::{CephError, CephResult, Reply};
use crate::state::{Caller, Inner};
use crate::store::RecordKey;

use crate::volumes::*;

// ---------------------------------------------------------------------------------
// Module options (`config set mgr mgr/volumes/<name> <value>`)

pub(super) fn config_set(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let who = args.req_str("who")?;
    let name = args.req_str("name")?;
    let value = args.req_str("value")?;
    let Some(opt) = name.strip_prefix("mgr/volumes/") else {
        // Other options are accepted and have no effect on the fake.
        let _ = who;
        return Ok(Reply::ok(""));
    };
    let mut sh = inner.shared.lock();
    let v = &mut sh.volumes;
    set_option(&mut v.options, opt, value)?;
    v.overrides.insert(opt.to_owned(), value.to_owned());
    v.marks.mark(RecordKey::Options);
    inner.purger.set_paused(v.options.pause_purging);
    Ok(Reply::ok(""))
}

pub(super) fn config_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = args.req_str("name")?;
    if let Some(opt) = name.strip_prefix("mgr/volumes/") {
        // Back to what the cluster was started with.
        let d = inner.config.volumes.clone();
        let mut sh = inner.shared.lock();
        let v = &mut sh.volumes;
        let o = &mut v.options;
        match opt {
            "max_concurrent_clones" => o.max_concurrent_clones = d.max_concurrent_clones,
            "snapshot_clone_no_wait" => o.snapshot_clone_no_wait = d.snapshot_clone_no_wait,
            "snapshot_clone_delay" => o.snapshot_clone_delay = d.snapshot_clone_delay,
            "pause_cloning" => o.pause_cloning = d.pause_cloning,
            "pause_purging" => {
                o.pause_purging = d.pause_purging;
                inner.purger.set_paused(o.pause_purging);
            }
            _ => {}
        }
        if v.overrides.remove(opt).is_some() {
            v.marks.mark(RecordKey::Options);
        }
    }
    // Removing an option that is not set succeeds, as in Ceph.
    Ok(Reply::ok(""))
}

pub(super) fn config_get(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let key = args.req_str("key")?;
    let sh = inner.shared.lock();
    let o = &sh.volumes.options;
    let v = match key.strip_prefix("mgr/volumes/") {
        Some("max_concurrent_clones") => o.max_concurrent_clones.to_string(),
        Some("snapshot_clone_no_wait") => o.snapshot_clone_no_wait.to_string(),
        Some("snapshot_clone_delay") => o.snapshot_clone_delay.as_secs().to_string(),
        Some("pause_cloning") => o.pause_cloning.to_string(),
        Some("pause_purging") => o.pause_purging.to_string(),
        _ => return Err(CephError::noent(format!("unrecognized key '{key}'"))),
    };
    Ok(Reply::ok(format!("{v}\n")))
}
