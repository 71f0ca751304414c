//! Dialing a CSI endpoint: `unix:///abs/path.sock`, `/abs/path.sock` (a Unix socket),
//! `dns:///host:port`, `tcp://host:port` or `http://host:port` (TCP). Imports nothing of
//! the crate.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tonic::transport::{Channel, Endpoint, Uri};

/// Where a CSI service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port` over TCP (plaintext HTTP/2).
    Tcp(String),
}

impl std::str::FromStr for Target {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        if let Some(p) = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix:"))
        {
            if p.starts_with('/') {
                return Ok(Self::Unix(PathBuf::from(p)));
            }
        } else if let Some(a) = ["dns:///", "tcp://", "http://"]
            .iter()
            .find_map(|pre| s.strip_prefix(pre))
        {
            if !a.is_empty() && a.contains(':') {
                return Ok(Self::Tcp(a.to_owned()));
            }
        } else if s.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(s)));
        }
        bail!(
            "bad endpoint '{s}': expected unix:///path.sock, /path.sock, dns:///host:port or tcp://host:port"
        )
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A channel to `target` whose calls time out after `timeout`. The connection is
/// made lazily and re-made after a failure (a restarted driver is reached again).
pub fn channel(target: &Target, timeout: Duration) -> anyhow::Result<Channel> {
    match target {
        Target::Unix(path) => {
            let path = path.clone();
            Ok(Endpoint::try_from("http://[::]:50051")?
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(10))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let s = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                    }
                })))
        }
        Target::Tcp(addr) => Ok(Endpoint::from_shared(format!("http://{addr}"))
            .with_context(|| format!("bad address {addr}"))?
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .connect_lazy()),
    }
}

/// The channels to a driver: its node endpoint and its controller's (the same channel
/// when the controller has no endpoint of its own).
#[derive(Debug, Clone)]
pub struct Channels {
    /// To `--endpoint`.
    pub node: Channel,
    /// To `--controller-endpoint`, or `node`'s.
    pub controller: Channel,
    /// Whether the controller has an endpoint of its own.
    pub split: bool,
}

impl Channels {
    /// Parses `endpoint` and `controller_endpoint` and makes the channels, whose calls
    /// time out after `timeout`.
    pub fn connect(
        endpoint: &str,
        controller_endpoint: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let node_target: Target = endpoint.parse()?;
        let ctrl_target: Target = match controller_endpoint {
            Some(e) => e.parse()?,
            None => node_target.clone(),
        };
        let node = channel(&node_target, timeout)?;
        let split = ctrl_target != node_target;
        let controller = if split {
            channel(&ctrl_target, timeout)?
        } else {
            node.clone()
        };
        Ok(Self {
            node,
            controller,
            split,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str, expected: Option<Target>) {
        assert_eq!(s.parse::<Target>().ok(), expected, "{s}");
    }

    #[test]
    fn targets() {
        check(
            "unix:///run/csi.sock",
            Some(Target::Unix("/run/csi.sock".into())),
        );
        check(
            "unix:/run/csi.sock",
            Some(Target::Unix("/run/csi.sock".into())),
        );
        check("/run/csi.sock", Some(Target::Unix("/run/csi.sock".into())));
        check(
            "dns:///localhost:10000",
            Some(Target::Tcp("localhost:10000".into())),
        );
        check("tcp://127.0.0.1:1", Some(Target::Tcp("127.0.0.1:1".into())));
        check("http://h:2", Some(Target::Tcp("h:2".into())));
        check("", None);
        check("unix://relative.sock", None);
        check("tcp://nohost", None);
        check("relative.sock", None);
    }
}
