//! The MDS's perf counters as `perf dump` shows them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use super::*;

impl Mds {
    /// The `perf dump` JSON: the MDS sections Ceph has (`mds`, `mds_server`,
    /// `mds_sessions`, `mds_mem`) with every counter Ceph 16.2 reports; the ones the
    /// model does not drive stay 0.
    pub fn perf_dump(&self, started: Instant) -> Value {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let sessions = self.sessions.read();
        let n = sessions.len() as u64;
        let uptime_sum: f64 = sessions
            .values()
            .map(|s| s.opened.elapsed().as_secs_f64())
            .sum();
        drop(sessions);
        let inodes = self.inodes();
        let caps = self.caps();
        let mds = self.mds_section(started, inodes, caps);
        let server = self.server_section();

        let rss = self.rss_estimate() / 1024;
        json!({
            "mds": mds,
            "mds_server": server,
            "mds_sessions": {
                "session_count": n,
                "session_add": load(&c.session_add),
                "session_remove": load(&c.session_remove),
                "sessions_open": n,
                "sessions_stale": 0,
                "total_load": 0,
                "average_load": 0,
                "avg_session_uptime": if n == 0 { 0.0 } else { uptime_sum / n as f64 },
                "mdthresh_evicted": 0,
            },
            "mds_mem": {
                "ino": inodes,
                "ino+": load(&c.inodes_added),
                "ino-": load(&c.inodes_removed),
                "dir": 0,
                "dir+": 0,
                "dir-": 0,
                "dn": inodes,
                "dn+": load(&c.inodes_added),
                "dn-": load(&c.inodes_removed),
                "cap": caps,
                "cap+": load(&c.caps_added),
                "cap-": load(&c.caps_removed),
                "rss": rss,
                "heap": rss,
            },
        })
    }

    /// The `mds` section: requests, replies and their latency, the cache's inodes and
    /// caps, the uptime; every other counter Ceph has there, at 0.
    fn mds_section(
        &self,
        started: Instant,
        inodes: u64,
        caps: u64,
    ) -> serde_json::Map<String, Value> {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let req = load(&c.request);
        let mut mds = serde_json::Map::new();
        mds.insert("request".into(), json!(req));
        mds.insert("reply".into(), json!(load(&c.reply.count)));
        mds.insert("reply_latency".into(), c.reply.dump());
        for k in [
            "slow_reply",
            "forward",
            "dir_fetch",
            "dir_commit",
            "dir_split",
            "dir_merge",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("inodes".into(), json!(inodes));
        for k in [
            "inodes_top",
            "inodes_bottom",
            "inodes_pin_tail",
            "inodes_pinned",
            "inodes_expired",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("inodes_with_caps".into(), json!(inodes.min(caps)));
        mds.insert("caps".into(), json!(caps));
        mds.insert("subtrees".into(), json!(2));
        for k in [
            "traverse",
            "traverse_hit",
            "traverse_forward",
            "traverse_discover",
            "traverse_dir_fetch",
            "traverse_remote_ino",
            "traverse_lock",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("load_cent".into(), json!(req * 100));
        for k in [
            "q",
            "exported",
            "exported_inodes",
            "imported",
            "imported_inodes",
            "openino_dir_fetch",
            "openino_backtrace_fetch",
            "openino_peer_discover",
            "root_rfiles",
            "root_rbytes",
            "root_rsnaps",
            "scrub_backtrace_fetch",
            "scrub_set_tag",
            "scrub_backtrace_repaired",
            "scrub_inotable_repaired",
            "scrub_dir_inodes",
            "scrub_dir_base_inodes",
            "scrub_dirfrag_rstats",
            "scrub_file_inodes",
            "handle_inode_file_caps",
            "ceph_cap_op_revoke",
            "ceph_cap_op_grant",
            "ceph_cap_op_trunc",
            "ceph_cap_op_flushsnap_ack",
            "ceph_cap_op_flush_ack",
            "handle_client_caps",
            "handle_client_caps_dirty",
            "handle_client_cap_release",
            "process_request_cap_release",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("uptime".into(), json!(started.elapsed().as_secs_f64()));
        mds
    }

    /// The `mds_server` section: client requests and sessions handled, and the latency
    /// of each kind of request.
    fn server_section(&self) -> serde_json::Map<String, Value> {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let hcr = load(&c.handle_client_request);
        let mut server = serde_json::Map::new();
        server.insert("dispatch_client_request".into(), json!(hcr));
        server.insert("dispatch_server_request".into(), json!(0));
        server.insert("handle_client_request".into(), json!(hcr));
        server.insert(
            "handle_client_session".into(),
            json!(load(&c.handle_client_session)),
        );
        server.insert("handle_peer_request".into(), json!(0));
        for (i, kind) in REQ_KINDS.iter().enumerate() {
            server.insert(format!("req_{kind}_latency"), c.req[i].dump());
        }
        server.insert("cap_revoke_eviction".into(), json!(0));
        server.insert("cap_acquisition_throttle".into(), json!(0));
        server
    }
}
