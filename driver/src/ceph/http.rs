//! The HTTP admin transport: Ceph command JSON posted to `<url>/request`
//! (`?target=mgr` for mgr commands), authenticated with HTTP Basic as the cephx entity,
//! as fake-ceph (and the mgr `restful` module) serve it.

use std::time::Duration;

use serde_json::Value;

use super::{Answer, CephError, Credentials, Target, Transport, errno};
use crate::cause::Cause;

/// Posts commands to one base URL. One client (and its connection pool) per cluster.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base: String,
}

impl HttpTransport {
    /// A transport to `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self, CephError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| CephError::Transport {
                prefix: "http".into(),
                message: "cannot build an HTTP client".into(),
                cause: Some(Cause::new(e)),
            })?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn command(
        &self,
        creds: &Credentials,
        target: Target,
        cmd: &Value,
        timeout: Duration,
    ) -> Result<Answer, CephError> {
        let prefix = cmd["prefix"].as_str().unwrap_or("").to_owned();
        let url = match target {
            Target::Mon => format!("{}/request", self.base),
            Target::Mgr => format!("{}/request?target=mgr", self.base),
        };
        let send = async {
            let resp = self
                .client
                .post(&url)
                .basic_auth(creds.entity(), Some(creds.key()))
                .body(cmd.to_string())
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = match tokio::time::timeout(timeout, send).await {
            Err(_) => return Err(CephError::Timeout { prefix, timeout }),
            // The error text of reqwest names the URL, never the credentials.
            Ok(Err(e)) => {
                return Err(CephError::Transport {
                    prefix,
                    message: "no answer".into(),
                    cause: Some(Cause::new(e)),
                });
            }
            Ok(Ok(r)) => r,
        };
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(CephError::Unauthorized { prefix });
        }
        if !status.is_success() {
            return Err(CephError::Transport {
                prefix,
                message: format!("HTTP {status}"),
                cause: None,
            });
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| CephError::Transport {
            prefix: prefix.clone(),
            message: "bad answer".into(),
            cause: Some(Cause::new(e)),
        })?;
        // An answer without `ret` is taken for an I/O error.
        let ret = v["ret"].as_i64().unwrap_or(-i64::from(errno::EIO));
        let outs = v["outs"].as_str().unwrap_or("").to_owned();
        if ret < 0 {
            return Err(CephError::Command {
                prefix,
                errno: i32::try_from(-ret).unwrap_or(errno::EIO),
                message: outs,
            });
        }
        Ok(Answer {
            outb: v["outb"].as_str().unwrap_or("").to_owned(),
            outs,
        })
    }

    async fn reachable(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.client.get(format!("{}/", self.base)).send()).await,
            Ok(Ok(r)) if r.status().is_success()
        )
    }
}
