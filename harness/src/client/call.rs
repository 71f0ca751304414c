//! Helpers around one CSI call: a short description of a failed call's status, and
//! the repetition of a call the plugin answered Aborted. Imports nothing of the crate.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::{Code, Status};

/// `Code: message`, short.
pub fn describe(s: &Status) -> String {
    let mut m = s.message().to_owned();
    if m.len() > 200 {
        m.truncate(200);
        m.push('…');
    }
    format!("{:?}: {m}", s.code())
}

/// Repeats `call` while it answers Aborted, with exponential backoff (20 ms doubling up
/// to 2 s), for up to `window` (CSI spec: Aborted means an operation is pending; the CO
/// retries); `on_repeat` is called before each repeat.
pub async fn repeat_aborted<T, F, Fut>(
    window: Duration,
    mut on_repeat: impl FnMut(),
    mut call: F,
) -> Result<tonic::Response<T>, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let deadline = Instant::now() + window;
    let mut delay = Duration::from_millis(20);
    loop {
        match call().await {
            Err(e) if e.code() == Code::Aborted && Instant::now() + delay < deadline => {
                on_repeat();
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            r => return r,
        }
    }
}
