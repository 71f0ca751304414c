//! Peak resident memory of this process and every process under it (the control
//! plane's components and the sidecars), sampled: the figure a real-mode run reports
//! as its peak RSS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A sampler running until dropped.
#[derive(Debug)]
pub struct PeakRss {
    peak_kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PeakRss {
    /// Samples every `period`.
    pub fn sample_every(period: Duration) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let peak = peak_kib.clone();
        let task = tokio::spawn(async move {
            loop {
                let now = tree_rss_kib(std::process::id());
                peak.fetch_max(now, Ordering::Relaxed);
                tokio::time::sleep(period).await;
            }
        });
        Self { peak_kib, task }
    }

    /// The largest sum seen, MiB.
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// `(pid, ppid, rss KiB)` of every process readable in /proc.
fn processes() -> Vec<(u32, u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command may hold spaces and parentheses: fields follow the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = fields.get(1)?.parse().ok()?;
        let rss_pages: u64 = fields.get(21)?.parse().ok()?;
        Some((pid, ppid, rss_pages * 4))
    })
    .collect()
}

/// The resident memory of `root` and its descendants, KiB.
pub fn tree_rss_kib(root: u32) -> u64 {
    let procs = processes();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut rss = BTreeMap::new();
    for (pid, ppid, kib) in procs {
        children.entry(ppid).or_default().push(pid);
        rss.insert(pid, kib);
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![root];
    let mut total = 0;
    while let Some(p) = todo.pop() {
        if !seen.insert(p) {
            continue;
        }
        total += rss.get(&p).copied().unwrap_or(0);
        todo.extend(children.get(&p).into_iter().flatten());
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_counts_in_the_tree() {
        let alone = tree_rss_kib(std::process::id());
        assert!(alone > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let with_child = tree_rss_kib(std::process::id());
        let child_alone = tree_rss_kib(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(child_alone > 0);
        assert!(with_child >= child_alone, "{with_child} < {child_alone}");
    }
}
