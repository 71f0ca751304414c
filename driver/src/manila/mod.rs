//! The Manila back end: a CSI controller that provisions CephFS shares through
//! OpenStack Manila, as the Manila CSI plugin does, and the node-side lookup that turns
//! a share into a CephFS mount for the CephFS node code.
//!
//! - **Credentials** come from the CSI secrets (`os-authURL`, `os-userName`/`os-userID`,
//!   `os-password`, `os-projectName`/`os-projectID`, domains, `os-region`,
//!   `os-endpointType`, application credentials, `os-trustID`); tokens are cached per
//!   set of credentials and renewed before they expire or when Manila refuses one
//!   ([`keystone`]).
//! - **Volumes are shares**: the volume ID is the share's ID. CreateVolume finds the
//!   share by the request name (so a retry, even after a restart, finds the share an
//!   earlier attempt created), else creates it, waits for `available`, grants a cephx
//!   rule (client ID: the `cephfs-clientID` parameter, default the share name) and
//!   waits for its key. A share that ends in `error`, or whose rule does, is deleted
//!   again. Nothing is kept in the driver: Manila is the state.
//! - **Node**: a volume context with `shareID` (or `shareName`) and `shareAccessID` is
//!   resolved with the node-stage secrets into monitors, root path, cephx user and key
//!   (the rule's `access_key`), then staged as a static CephFS volume.
//!
//! StorageClass parameters: `type` (share type; Manila's default type when absent),
//! `availability`, `shareNetworkID`, `appendShareMetadata` (a JSON object),
//! `cephfs-clientID`, `cephfs-mounter` (`kernel`/`fuse`), `cephfs-kernelMountOptions`,
//! `cephfs-fuseMountOptions`; `protocol` must be `CEPHFS` when given.

pub mod api;
pub mod controller;
pub mod keystone;
pub mod node;

use std::time::Duration;

use crate::cause::Cause;

/// A failed call to Keystone or Manila.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManilaError {
    /// The `os-*` secrets are incomplete or malformed.
    #[error("OpenStack secrets: {0}")]
    BadSecrets(String),
    /// Keystone or Manila refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// No answer within the deadline.
    #[error("{0}: no answer in time")]
    Timeout(String),
    /// Could not connect (or no HTTP client).
    #[error("{what}: unreachable")]
    Unreachable {
        /// What was called (`Keystone`, `POST /shares`).
        what: String,
        /// The HTTP client's failure.
        #[source]
        cause: Cause,
    },
    /// An answer of the wrong shape.
    #[error("unexpected answer: {what}")]
    Protocol {
        /// What was wrong with it.
        what: String,
        /// The reader's failure, when one read it.
        #[source]
        cause: Option<Cause>,
    },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// The request names something that does not exist (a share type, a snapshot).
    #[error("{0}")]
    Invalid(String),
    /// Any other HTTP error.
    #[error("{what}: HTTP {code}: {message}")]
    Http {
        /// The status code.
        code: u16,
        /// The request (`POST /shares`).
        what: String,
        /// Manila's message.
        message: String,
    },
}

impl ManilaError {
    /// The error of an HTTP status other than success.
    pub fn from_status(code: u16, what: &str, message: &str) -> Self {
        match code {
            401 => ManilaError::Unauthorized(format!("{what}: {message}")),
            404 => ManilaError::NotFound(format!("{what}: {message}")),
            _ => ManilaError::Http {
                code,
                what: what.to_owned(),
                message: message.to_owned(),
            },
        }
    }
}

/// Whether a request failed because the server closed the pooled keep-alive connection
/// it went out on (one the server dropped as idle, or to make room at its connection
/// limit, just as the client reused it): no answer came, so an idempotent request may
/// be sent again, on a fresh connection.
pub(crate) fn closed_under_us(e: &reqwest::Error) -> bool {
    let mut at: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = at {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            )
        {
            return true;
        }
        at = err.source();
    }
    false
}

/// What the Manila back end shares across calls: one HTTP client and the token cache.
#[derive(Debug)]
pub struct Backend {
    http: reqwest::Client,
    keystone: keystone::Keystone,
    timeout: Duration,
}

impl Backend {
    /// A back end whose requests each have `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, ManilaError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ManilaError::Unreachable {
                what: "HTTP client".into(),
                cause: Cause::new(e),
            })?;
        Ok(Self {
            keystone: keystone::Keystone::new(http.clone(), timeout),
            http,
            timeout,
        })
    }

    /// A Manila client for `creds`.
    pub fn client<'a>(&'a self, creds: &'a keystone::OsCredentials) -> api::Manila<'a> {
        api::Manila {
            keystone: &self.keystone,
            http: &self.http,
            creds,
            timeout: self.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Serves two connections: the first is closed once its request is read (as a
    /// server drops a pooled connection), the second is answered.
    async fn closing_then_answering() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        tokio::spawn(async move {
            for answer in [false, true] {
                let (mut c, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = c.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                if answer {
                    c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                        .await
                        .unwrap();
                }
                drop(c);
            }
        });
        url
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_told_apart_and_a_refused_one_is_not() {
        let url = closing_then_answering().await;
        let http = reqwest::Client::new();
        let e = http.get(&url).send().await.unwrap_err();
        assert!(super::closed_under_us(&e), "{e:?}");
        // Sent again, on a new connection, it is answered.
        assert!(http.get(&url).send().await.unwrap().status().is_success());
        // Nothing listening: not a closed connection (nothing was sent).
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        let e = http.get(&gone).send().await.unwrap_err();
        assert!(!super::closed_under_us(&e), "{e:?}");
    }
}
