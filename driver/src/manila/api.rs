//! The Manila v2 calls the provisioner makes, at microversion 2.45 (the first with
//! `GET /share-access-rules`; `access_key` appears from 2.21, per-rule states from
//! 2.28, `/messages` from 2.37).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use secrecy::{ExposeSecret as _, SecretString};

use super::ManilaError;
use super::keystone::{Keystone, OsCredentials};
use crate::cause::Cause;

/// The microversion of every request.
pub const MICROVERSION: &str = "2.45";

/// A share, as far as the provisioner reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Share {
    /// The share's UUID.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Size in GiB.
    pub size: u64,
    /// `creating`, `available`, `error`, ...
    pub status: String,
    /// `CEPHFS`, `NFS`, ...
    #[serde(default)]
    pub share_proto: String,
    /// The snapshot it was created from.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Metadata (Manila's CephFS driver may put `__mount_options` here).
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

/// An access rule (`access_key` is `None` until Manila has applied it). `Debug` never
/// shows the key (a [`SecretString`]).
#[derive(Clone, Debug, Deserialize)]
pub struct AccessRule {
    /// The rule's UUID.
    pub id: String,
    /// `cephx`, `ip`, ...
    pub access_type: String,
    /// The cephx client ID.
    pub access_to: String,
    /// `rw` or `ro`.
    pub access_level: String,
    /// `queued_to_apply`, `applying`, `active`, `error`, ...
    #[serde(default)]
    pub state: String,
    /// The cephx key, once active.
    #[serde(default)]
    pub access_key: Option<SecretString>,
}

/// An export location.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportLocation {
    /// `mon1:6789,mon2:6789:/volumes/_nogroup/<share>/<uuid>` for CephFS.
    pub path: String,
    /// Whether clients should prefer it.
    #[serde(default)]
    pub preferred: bool,
    /// Admin-only locations are not for clients.
    #[serde(default)]
    pub is_admin_only: bool,
}

/// A snapshot.
#[derive(Debug, Clone, Deserialize)]
pub struct ShareSnapshot {
    /// The snapshot's UUID.
    pub id: String,
    /// The share it was taken of.
    pub share_id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// `creating`, `available`, `error`, ...
    pub status: String,
    /// Size in GiB.
    #[serde(default)]
    pub size: u64,
    /// `2026-11-26T12:00:00.000000`.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct NewShare {
    /// The name (the CSI request name).
    pub name: String,
    /// GiB.
    pub size: u64,
    /// The share type.
    pub share_type: String,
    /// Availability zone, if any.
    pub availability_zone: Option<String>,
    /// Share network, if any.
    pub share_network_id: Option<String>,
    /// Snapshot to create from, if any.
    pub snapshot_id: Option<String>,
    /// Metadata.
    pub metadata: serde_json::Map<String, Value>,
}

/// A Manila client for one set of credentials.
#[derive(Debug)]
pub struct Manila<'a> {
    /// Tokens and the endpoint.
    pub keystone: &'a Keystone,
    /// HTTP.
    pub http: &'a reqwest::Client,
    /// The credentials.
    pub creds: &'a OsCredentials,
    /// Deadline of each request.
    pub timeout: Duration,
}

impl Manila<'_> {
    /// Sends a request; a 401 renews the token once. A 404 is `ManilaError::NotFound`
    /// with Manila's message.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ManilaError> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        // A GET or DELETE that died on a connection the server had closed goes again
        // once (a POST might have been served: it is not resent).
        let idempotent = method == reqwest::Method::GET || method == reqwest::Method::DELETE;
        let mut resent = false;
        let mut attempt = 0;
        while attempt < 2 {
            let session = self.keystone.session(self.creds).await?;
            let mut rb = self
                .http
                .request(method.clone(), format!("{}{path}", session.endpoint))
                .header("X-Auth-Token", session.token.expose_secret())
                .header("X-OpenStack-Manila-API-Version", MICROVERSION)
                .header("Accept", "application/json");
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = match tokio::time::timeout(self.timeout, rb.send()).await {
                Err(_) => return Err(ManilaError::Timeout(what)),
                Ok(Err(e)) if idempotent && !resent && super::closed_under_us(&e) => {
                    resent = true;
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(ManilaError::Unreachable {
                        what,
                        cause: Cause::new(e),
                    });
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status().as_u16();
            let text = match tokio::time::timeout(self.timeout, resp.text()).await {
                Err(_) => return Err(ManilaError::Timeout(what)),
                Ok(Err(e)) => {
                    return Err(ManilaError::Unreachable {
                        what,
                        cause: Cause::new(e),
                    });
                }
                Ok(Ok(t)) => t,
            };
            match status {
                401 if attempt == 0 => {
                    self.keystone.forget(self.creds);
                    attempt += 1;
                    continue;
                }
                404 => {
                    return Err(ManilaError::NotFound(format!(
                        "{what}: {}",
                        fault_message(&text)
                    )));
                }
                s if (200..300).contains(&s) => {
                    if text.trim().is_empty() {
                        return Ok(Value::Null);
                    }
                    return serde_json::from_str(&text).map_err(|e| ManilaError::Protocol {
                        what,
                        cause: Some(Cause::new(e)),
                    });
                }
                s => return Err(ManilaError::from_status(s, &what, &fault_message(&text))),
            }
        }
        Err(ManilaError::Unauthorized(format!(
            "{what}: Manila refused a fresh token"
        )))
    }

    fn decode<T: serde::de::DeserializeOwned>(v: &Value, key: &str) -> Result<T, ManilaError> {
        serde_json::from_value(v[key].clone()).map_err(|e| ManilaError::Protocol {
            what: format!("'{key}' in Manila's answer"),
            cause: Some(Cause::new(e)),
        })
    }

    /// `GET /shares/{id}`.
    pub async fn share(&self, id: &str) -> Result<Option<Share>, ManilaError> {
        match found(
            self.send(reqwest::Method::GET, &format!("/shares/{}", enc(id)), None)
                .await,
        )? {
            Some(v) => Self::decode(&v, "share").map(Some),
            None => Ok(None),
        }
    }

    /// `GET /shares/detail?name=`: the shares with exactly this name.
    pub async fn shares_named(&self, name: &str) -> Result<Vec<Share>, ManilaError> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/shares/detail?name={}", enc(name)),
                None,
            )
            .await?;
        let all: Vec<Share> = Self::decode(&v, "shares")?;
        Ok(all
            .into_iter()
            .filter(|s| s.name.as_deref() == Some(name))
            .collect())
    }

    /// Every share of the project: `GET /shares/detail`, page by page (Manila answers at
    /// most `osapi_max_limit`, 1000 by default, a request).
    pub async fn shares(&self) -> Result<Vec<Share>, ManilaError> {
        const PAGE: usize = 1000;
        let mut all: Vec<Share> = Vec::new();
        loop {
            let v = self
                .send(
                    reqwest::Method::GET,
                    &format!("/shares/detail?limit={PAGE}&offset={}", all.len()),
                    None,
                )
                .await?;
            let page: Vec<Share> = Self::decode(&v, "shares")?;
            let n = page.len();
            all.extend(page);
            if n < PAGE {
                return Ok(all);
            }
        }
    }

    /// `POST /shares` (CEPHFS).
    pub async fn create_share(&self, n: &NewShare) -> Result<Share, ManilaError> {
        let mut share = json!({"share_proto": "CEPHFS", "size": n.size, "name": n.name,
            "description": "provisioned by cephfs-csi", "metadata": n.metadata});
        // No type: Manila's default share type.
        if !n.share_type.is_empty() {
            share["share_type"] = json!(n.share_type);
        }
        if let Some(az) = &n.availability_zone {
            share["availability_zone"] = json!(az);
        }
        if let Some(sn) = &n.share_network_id {
            share["share_network_id"] = json!(sn);
        }
        if let Some(s) = &n.snapshot_id {
            share["snapshot_id"] = json!(s);
        }
        // A 404 here names something the request refers to: the share type, the
        // snapshot, the share network.
        let v = self
            .send(
                reqwest::Method::POST,
                "/shares",
                Some(&json!({"share": share})),
            )
            .await
            .map_err(|e| match e {
                ManilaError::NotFound(m) => ManilaError::Invalid(m),
                e => e,
            })?;
        Self::decode(&v, "share")
    }

    /// `DELETE /shares/{id}`; `false` if it was already gone.
    pub async fn delete_share(&self, id: &str) -> Result<bool, ManilaError> {
        Ok(found(
            self.send(
                reqwest::Method::DELETE,
                &format!("/shares/{}", enc(id)),
                None,
            )
            .await,
        )?
        .is_some())
    }

    /// A share action (`extend`, `allow_access`, ...).
    async fn action(&self, id: &str, body: Value) -> Result<Value, ManilaError> {
        self.send(
            reqwest::Method::POST,
            &format!("/shares/{}/action", enc(id)),
            Some(&body),
        )
        .await
    }

    /// `extend`.
    pub async fn extend(&self, id: &str, new_size: u64) -> Result<(), ManilaError> {
        self.action(id, json!({"extend": {"new_size": new_size}}))
            .await
            .map(|_| ())
    }

    /// `allow_access` of a cephx client, read-write.
    pub async fn allow_cephx(&self, id: &str, client: &str) -> Result<AccessRule, ManilaError> {
        let v = self
            .action(
                id,
                json!({"allow_access": {"access_type": "cephx", "access_to": client, "access_level": "rw"}}),
            )
            .await?;
        Self::decode(&v, "access")
    }

    /// `GET /share-access-rules?share_id=`.
    pub async fn access_rules(&self, share_id: &str) -> Result<Vec<AccessRule>, ManilaError> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/share-access-rules?share_id={}", enc(share_id)),
                None,
            )
            .await?;
        Self::decode(&v, "access_list")
    }

    /// `GET /shares/{id}/export_locations`.
    pub async fn export_locations(&self, id: &str) -> Result<Vec<ExportLocation>, ManilaError> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/shares/{}/export_locations", enc(id)),
                None,
            )
            .await?;
        Self::decode(&v, "export_locations")
    }

    /// `POST /snapshots`.
    pub async fn create_snapshot(
        &self,
        share_id: &str,
        name: &str,
    ) -> Result<ShareSnapshot, ManilaError> {
        let v = self
            .send(
                reqwest::Method::POST,
                "/snapshots",
                Some(&json!({"snapshot": {"share_id": share_id, "name": name,
                                          "description": "snapshotted by cephfs-csi"}})),
            )
            .await?;
        Self::decode(&v, "snapshot")
    }

    /// `GET /snapshots/{id}`.
    pub async fn snapshot(&self, id: &str) -> Result<Option<ShareSnapshot>, ManilaError> {
        match found(
            self.send(
                reqwest::Method::GET,
                &format!("/snapshots/{}", enc(id)),
                None,
            )
            .await,
        )? {
            Some(v) => Self::decode(&v, "snapshot").map(Some),
            None => Ok(None),
        }
    }

    /// `GET /snapshots/detail?name=`: the snapshots with exactly this name.
    pub async fn snapshots_named(&self, name: &str) -> Result<Vec<ShareSnapshot>, ManilaError> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/snapshots/detail?name={}", enc(name)),
                None,
            )
            .await?;
        let all: Vec<ShareSnapshot> = Self::decode(&v, "snapshots")?;
        Ok(all
            .into_iter()
            .filter(|s| s.name.as_deref() == Some(name))
            .collect())
    }

    /// `DELETE /snapshots/{id}`; `false` if it was already gone.
    pub async fn delete_snapshot(&self, id: &str) -> Result<bool, ManilaError> {
        Ok(found(
            self.send(
                reqwest::Method::DELETE,
                &format!("/snapshots/{}", enc(id)),
                None,
            )
            .await,
        )?
        .is_some())
    }

    /// The newest user message about a resource (why a share went to `error`), if any.
    pub async fn last_message(&self, resource_id: &str) -> Option<String> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/messages?resource_id={}", enc(resource_id)),
                None,
            )
            .await
            .ok()?;
        v["messages"]
            .as_array()?
            .iter()
            .filter_map(|m| m["user_message"].as_str())
            .next_back()
            .map(str::to_owned)
    }
}

/// A 404 as `None`.
pub fn found<T>(r: Result<T, ManilaError>) -> Result<Option<T>, ManilaError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ManilaError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `message` of a Manila fault body (`{"itemNotFound": {"code": 404, "message": ...}}`).
fn fault_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.as_object()?
                .values()
                .find_map(|f| f["message"].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| text.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_bodies_give_their_message() {
        assert_eq!(
            fault_message(
                r#"{"overLimit": {"code": 413, "message": "Quota exceeded", "retryAfter": "0"}}"#
            ),
            "Quota exceeded"
        );
        assert_eq!(fault_message("plain"), "plain");
    }

    #[test]
    fn names_are_encoded() {
        assert_eq!(enc("pvc-1"), "pvc-1");
        assert_eq!(enc("a b&c=d/e"), "a%20b%26c%3Dd%2Fe");
    }

    #[test]
    fn access_keys_do_not_show_in_debug() {
        let r: AccessRule = serde_json::from_value(json!({"id": "r", "access_type": "cephx",
            "access_to": "alice", "access_level": "rw", "state": "active",
            "access_key": "AQBsecretsecret=="}))
        .unwrap();
        assert!(!format!("{r:?}").contains("AQBsecret"));
    }
}
