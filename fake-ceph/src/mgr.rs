//! The mgr thread and blocking work: where `volumes` (mgr) commands run, one after
//! another, off the async runtime ([`MgrThread`]), and how other blocking work (file
//! system calls, metadata commits) avoids stalling the runtime ([`off_runtime`]). A leaf:
//! it runs closures and knows nothing of what they do.

use tokio::runtime::RuntimeFlavor;

/// Runs blocking work (file system calls) without stalling the async runtime: in place
/// on a multi-threaded runtime (the thread hands its other tasks over), on the blocking
/// pool on a current-thread one, and directly outside any runtime. `None` if it panicked.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Some(tokio::task::block_in_place(work))
        }
        Ok(_) => tokio::task::spawn_blocking(work).await.ok(),
        Err(_) => Some(work()),
    }
}

type MgrJob = Box<dyn FnOnce() + Send + 'static>;

/// What the mgr thread is sent: a job, or the word to stop (its owner is dropped while
/// others may still hold senders).
pub(crate) enum MgrMessage {
    Job(MgrJob),
    Stop,
}

/// A handle to queue jobs on the mgr thread.
#[derive(Clone)]
pub(crate) struct MgrSender(std::sync::mpsc::Sender<MgrMessage>);

impl std::fmt::Debug for MgrSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MgrSender").finish_non_exhaustive()
    }
}

/// One thread that runs `volumes` commands in arrival order, as the mgr's `volumes`
/// module serves them. They all hold the cluster state's lock while they touch the tree,
/// so they run one at a time anyway; a dedicated thread spares each of them handing a
/// runtime worker over to a new thread (`block_in_place`), which costs more than the
/// command itself on a fast file system.
#[derive(Debug)]
pub(crate) struct MgrThread {
    jobs: MgrSender,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MgrThread {
    pub(crate) fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fake-ceph-mgr".into())
            .spawn(move || mgr_loop(&rx))
            .ok();
        Self {
            jobs: MgrSender(tx),
            thread,
        }
    }

    /// A handle to queue jobs on, or `None` if the thread could not be started.
    pub(crate) fn clone_sender(&self) -> Option<MgrSender> {
        self.thread.as_ref().map(|_| self.jobs.clone())
    }
}

fn mgr_loop(rx: &std::sync::mpsc::Receiver<MgrMessage>) {
    while let Ok(MgrMessage::Job(job)) = rx.recv() {
        // A panicking job answers `None` to its caller (its sender is dropped); the
        // thread goes on serving the others.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
    // Stopped: jobs still queued are dropped with the receiver, and their callers get
    // `None`.
}

impl Drop for MgrThread {
    fn drop(&mut self) {
        let _ = self.jobs.0.send(MgrMessage::Stop);
        if let Some(t) = self.thread.take() {
            // The last handle on the cluster can be dropped by a job on the thread
            // itself: it cannot wait for itself, and it stops at the next message.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Runs `work` on the mgr thread and waits for it without blocking the runtime; without
/// a mgr thread, as [`off_runtime`] does. `None` if it panicked or the thread stopped.
pub(crate) async fn on_mgr_thread<T: Send + 'static>(
    mgr: Option<MgrSender>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let Some(mgr) = mgr else {
        return off_runtime(work).await;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: MgrJob = Box::new(move || {
        let _ = tx.send(work());
    });
    mgr.0.send(MgrMessage::Job(job)).ok()?;
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    #[tokio::test]
    async fn mgr_thread_runs_jobs_in_order_and_survives_a_panic() {
        let mgr = MgrThread::start();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        assert_eq!(
            on_mgr_thread(mgr.clone_sender(), move || o.lock().push(1)).await,
            Some(())
        );
        assert_eq!(
            on_mgr_thread(mgr.clone_sender(), || -> u32 { panic!("handler bug") }).await,
            None
        );
        let o = order.clone();
        assert_eq!(
            on_mgr_thread(mgr.clone_sender(), move || {
                o.lock().push(2);
                7
            })
            .await,
            Some(7)
        );
        assert_eq!(*order.lock(), vec![1, 2]);
        drop(mgr);
    }

    #[tokio::test]
    async fn a_stopped_mgr_thread_answers_none_and_the_last_handle_can_drop_on_it() {
        let mgr = MgrThread::start();
        let jobs = mgr.clone_sender();
        drop(mgr);
        assert_eq!(on_mgr_thread(jobs, || 1).await, None);
        // The thread drops the last handle on its owner from a job: no self-join.
        let mgr = Arc::new(Mutex::new(Some(MgrThread::start())));
        let sender = mgr.lock().as_ref().and_then(MgrThread::clone_sender);
        let m = mgr.clone();
        drop(mgr);
        assert_eq!(
            on_mgr_thread(sender, move || drop(m.lock().take())).await,
            Some(())
        );
    }
}
