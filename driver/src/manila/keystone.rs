//! Keystone v3: OpenStack credentials from the CSI secrets, tokens and the Manila
//! endpoint from the service catalog, cached per set of credentials and renewed before
//! they expire.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde_json::{Value, json};

use super::ManilaError;
use crate::cause::Cause;

/// Renew a token this long before Keystone says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// OpenStack credentials as the Manila CSI plugin reads them from a Secret
/// (`os-authURL`, `os-userName`, `os-password`, ...). `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OsCredentials {
    auth_url: String,
    region: String,
    interface: String,
    user_name: String,
    user_id: String,
    password: String,
    user_domain_name: String,
    user_domain_id: String,
    project_name: String,
    project_id: String,
    project_domain_name: String,
    project_domain_id: String,
    trust_id: String,
    app_cred_id: String,
    app_cred_name: String,
    app_cred_secret: String,
}

impl fmt::Debug for OsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsCredentials")
            .field("auth_url", &self.auth_url)
            .field("user", &self.user())
            .field("project", &self.project())
            .finish_non_exhaustive()
    }
}

impl OsCredentials {
    /// Reads the `os-*` keys of CSI secrets. The auth URL and one way to authenticate (a
    /// user with a password, or an application credential) are required.
    pub fn from_secrets(s: &HashMap<String, String>) -> Result<Self, ManilaError> {
        let get = |k: &str| s.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let c = Self {
            auth_url: get("os-authURL").trim_end_matches('/').to_owned(),
            region: get("os-region"),
            interface: match get("os-endpointType").as_str() {
                "" => "public".to_owned(),
                other => other.to_owned(),
            },
            user_name: get("os-userName"),
            user_id: get("os-userID"),
            password: s.get("os-password").cloned().unwrap_or_default(),
            user_domain_name: first(&get("os-userDomainName"), &get("os-domainName")),
            user_domain_id: first(&get("os-userDomainID"), &get("os-domainID")),
            project_name: get("os-projectName"),
            project_id: get("os-projectID"),
            project_domain_name: first(&get("os-projectDomainName"), &get("os-domainName")),
            project_domain_id: first(&get("os-projectDomainID"), &get("os-domainID")),
            trust_id: get("os-trustID"),
            app_cred_id: get("os-applicationCredentialID"),
            app_cred_name: get("os-applicationCredentialName"),
            app_cred_secret: s
                .get("os-applicationCredentialSecret")
                .cloned()
                .unwrap_or_default(),
        };
        if c.auth_url.is_empty() {
            return Err(ManilaError::BadSecrets("os-authURL missing".into()));
        }
        if !(c.auth_url.starts_with("http://") || c.auth_url.starts_with("https://")) {
            return Err(ManilaError::BadSecrets(
                "os-authURL must be an http(s) URL".into(),
            ));
        }
        let app_cred = !c.app_cred_id.is_empty() || !c.app_cred_name.is_empty();
        if app_cred {
            if c.app_cred_secret.is_empty() {
                return Err(ManilaError::BadSecrets(
                    "os-applicationCredentialSecret missing".into(),
                ));
            }
            if c.app_cred_id.is_empty() && c.user_name.is_empty() && c.user_id.is_empty() {
                return Err(ManilaError::BadSecrets(
                    "an application credential given by name needs os-userName or os-userID".into(),
                ));
            }
        } else {
            if c.user_name.is_empty() && c.user_id.is_empty() {
                return Err(ManilaError::BadSecrets(
                    "os-userName or os-userID missing".into(),
                ));
            }
            if c.password.is_empty() {
                return Err(ManilaError::BadSecrets("os-password missing".into()));
            }
            if c.trust_id.is_empty() && c.project_name.is_empty() && c.project_id.is_empty() {
                return Err(ManilaError::BadSecrets(
                    "os-projectName or os-projectID missing".into(),
                ));
            }
        }
        Ok(c)
    }

    fn user(&self) -> &str {
        if self.user_id.is_empty() {
            &self.user_name
        } else {
            &self.user_id
        }
    }

    fn project(&self) -> &str {
        if self.project_id.is_empty() {
            &self.project_name
        } else {
            &self.project_id
        }
    }

    /// `{"id": ...}` or `{"name": ..., "domain": ...}` of the user.
    fn user_ref(&self) -> Value {
        if !self.user_id.is_empty() {
            json!({"id": self.user_id})
        } else {
            json!({"name": self.user_name, "domain": domain(&self.user_domain_id, &self.user_domain_name)})
        }
    }

    /// The body of `POST /v3/auth/tokens`.
    fn auth_body(&self) -> Value {
        if !self.app_cred_id.is_empty() || !self.app_cred_name.is_empty() {
            let mut ac = json!({"secret": self.app_cred_secret});
            if self.app_cred_id.is_empty() {
                ac["name"] = json!(self.app_cred_name);
                ac["user"] = self.user_ref();
            } else {
                ac["id"] = json!(self.app_cred_id);
            }
            // An application credential carries its own project scope.
            return json!({"auth": {"identity": {"methods": ["application_credential"],
                                                "application_credential": ac}}});
        }
        let mut user = self.user_ref();
        user["password"] = json!(self.password);
        let scope = if !self.trust_id.is_empty() {
            json!({"OS-TRUST:trust": {"id": self.trust_id}})
        } else if !self.project_id.is_empty() {
            json!({"project": {"id": self.project_id}})
        } else {
            json!({"project": {"name": self.project_name,
                               "domain": domain(&self.project_domain_id, &self.project_domain_name)}})
        };
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                        "scope": scope}})
    }
}

fn first(a: &str, b: &str) -> String {
    if a.is_empty() { b } else { a }.to_owned()
}

/// A domain reference; Keystone's default domain when none is given.
fn domain(id: &str, name: &str) -> Value {
    if !id.is_empty() {
        json!({"id": id})
    } else if !name.is_empty() {
        json!({"name": name})
    } else {
        json!({"id": "default"})
    }
}

/// A token and where Manila is, for one set of credentials. `Debug` never shows the
/// token (a [`SecretString`]).
#[derive(Clone, Debug)]
pub struct Session {
    /// The token (`X-Auth-Token`).
    pub token: SecretString,
    /// Manila's v2 endpoint, without a trailing slash.
    pub endpoint: String,
    /// When the token expires (seconds since the epoch).
    expires_at: u64,
}

/// Issues and caches Keystone tokens.
pub struct Keystone {
    http: reqwest::Client,
    timeout: Duration,
    cache: parking_lot::Mutex<HashMap<OsCredentials, Session>>,
}

impl fmt::Debug for Keystone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystone")
            .field("cached_sessions", &self.cache.lock().len())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Keystone {
    /// A client whose every request has `timeout`.
    pub fn new(http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            http,
            timeout,
            cache: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// A valid session for `creds`: the cached one unless it is about to expire.
    pub async fn session(&self, creds: &OsCredentials) -> Result<Session, ManilaError> {
        if let Some(s) = self.cache.lock().get(creds)
            && s.expires_at > now_secs() + RENEW_BEFORE.as_secs()
        {
            return Ok(s.clone());
        }
        let s = self.authenticate(creds).await?;
        self.cache.lock().insert(creds.clone(), s.clone());
        Ok(s)
    }

    /// Forgets the session of `creds` (Manila refused its token).
    pub fn forget(&self, creds: &OsCredentials) {
        self.cache.lock().remove(creds);
    }

    async fn authenticate(&self, creds: &OsCredentials) -> Result<Session, ManilaError> {
        let url = if creds.auth_url.ends_with("/v3") {
            format!("{}/auth/tokens", creds.auth_url)
        } else {
            format!("{}/v3/auth/tokens", creds.auth_url)
        };
        // A token request that died on a connection Keystone had closed goes again once
        // (at worst Keystone issues a second token).
        let mut resent = false;
        let resp = loop {
            let send = self.http.post(&url).json(&creds.auth_body()).send();
            match tokio::time::timeout(self.timeout, send).await {
                Err(_) => return Err(ManilaError::Timeout("Keystone".into())),
                Ok(Err(e)) if !resent && super::closed_under_us(&e) => resent = true,
                Ok(Err(e)) => {
                    return Err(ManilaError::Unreachable {
                        what: "Keystone".into(),
                        cause: Cause::new(e),
                    });
                }
                Ok(Ok(r)) => break r,
            }
        };
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ManilaError::Unauthorized(format!(
                "Keystone refused the credentials of {} (HTTP {})",
                creds.user(),
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(ManilaError::from_status(status.as_u16(), "Keystone", ""));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(SecretString::from)
            .ok_or_else(|| ManilaError::Protocol {
                what: "Keystone sent no X-Subject-Token".into(),
                cause: None,
            })?;
        let body: Value = tokio::time::timeout(self.timeout, resp.json())
            .await
            .map_err(|_| ManilaError::Timeout("Keystone".into()))?
            .map_err(|e| ManilaError::Protocol {
                what: "Keystone answer".into(),
                cause: Some(Cause::new(e)),
            })?;
        let t = &body["token"];
        let expires_at = t["expires_at"]
            .as_str()
            .and_then(parse_iso8601)
            .unwrap_or_else(|| now_secs() + 3600);
        let endpoint =
            manila_endpoint(&t["catalog"], &creds.interface, &creds.region).ok_or_else(|| {
                ManilaError::Protocol {
                    what: format!(
                        "the service catalog has no {} sharev2 endpoint{}",
                        creds.interface,
                        if creds.region.is_empty() {
                            String::new()
                        } else {
                            format!(" in region {}", creds.region)
                        }
                    ),
                    cause: None,
                }
            })?;
        Ok(Session {
            token,
            endpoint,
            expires_at,
        })
    }
}

/// The Manila v2 endpoint of a catalog: a `sharev2` (or `shared-file-system`) entry
/// with the interface and, if given, the region.
fn manila_endpoint(catalog: &Value, interface: &str, region: &str) -> Option<String> {
    for kind in ["sharev2", "shared-file-system"] {
        for svc in catalog.as_array().into_iter().flatten() {
            if svc["type"] != kind {
                continue;
            }
            for ep in svc["endpoints"].as_array().into_iter().flatten() {
                let region_ok =
                    region.is_empty() || ep["region"] == region || ep["region_id"] == region;
                if ep["interface"] == interface
                    && region_ok
                    && let Some(url) = ep["url"].as_str()
                {
                    return Some(url.trim_end_matches('/').to_owned());
                }
            }
        }
    }
    None
}

/// Seconds since the epoch of `2026-11-26T12:00:00[.ffffff][Z]` (UTC).
pub fn parse_iso8601(s: &str) -> Option<u64> {
    crate::timefmt::parse_utc(s).and_then(|t| u64::try_from(t.seconds).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn password_auth_by_name_and_by_id() {
        let c = OsCredentials::from_secrets(&secrets(&[
            ("os-authURL", "http://k:5000/v3"),
            ("os-userName", "demo"),
            ("os-password", "pw"),
            ("os-projectName", "demo"),
            ("os-domainName", "Default"),
        ]))
        .unwrap();
        assert_eq!(
            c.auth_body(),
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user":
                {"name": "demo", "domain": {"name": "Default"}, "password": "pw"}}},
                "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}})
        );
        let c = OsCredentials::from_secrets(&secrets(&[
            ("os-authURL", "http://k:5000"),
            ("os-userID", "u1"),
            ("os-password", "pw"),
            ("os-projectID", "p1"),
        ]))
        .unwrap();
        assert_eq!(
            c.auth_body()["auth"]["identity"]["password"]["user"],
            json!({"id": "u1", "password": "pw"})
        );
        assert_eq!(
            c.auth_body()["auth"]["scope"],
            json!({"project": {"id": "p1"}})
        );
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn application_credentials_and_trusts() {
        let c = OsCredentials::from_secrets(&secrets(&[
            ("os-authURL", "http://k:5000/v3"),
            ("os-applicationCredentialID", "ac1"),
            ("os-applicationCredentialSecret", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(
            c.auth_body(),
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"secret": "s3cret", "id": "ac1"}}}})
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = OsCredentials::from_secrets(&secrets(&[
            ("os-authURL", "http://k:5000/v3"),
            ("os-userName", "trustee"),
            ("os-password", "pw"),
            ("os-trustID", "t1"),
        ]))
        .unwrap();
        assert_eq!(
            c.auth_body()["auth"]["scope"],
            json!({"OS-TRUST:trust": {"id": "t1"}})
        );
    }

    #[test]
    fn incomplete_credentials_say_what_is_missing() {
        for (pairs, want) in [
            (vec![("os-userName", "u")], "os-authURL"),
            (vec![("os-authURL", "ftp://x")], "http"),
            (vec![("os-authURL", "http://k")], "os-userName"),
            (
                vec![("os-authURL", "http://k"), ("os-userName", "u")],
                "os-password",
            ),
            (
                vec![
                    ("os-authURL", "http://k"),
                    ("os-userName", "u"),
                    ("os-password", "p"),
                ],
                "os-projectName",
            ),
            (
                vec![
                    ("os-authURL", "http://k"),
                    ("os-applicationCredentialID", "a"),
                ],
                "os-applicationCredentialSecret",
            ),
        ] {
            let e = OsCredentials::from_secrets(&secrets(&pairs)).unwrap_err();
            assert!(e.to_string().contains(want), "{e} should name {want}");
        }
    }

    #[test]
    fn the_catalog_gives_the_sharev2_endpoint_of_the_interface_and_region() {
        let catalog = json!([
            {"type": "identity", "endpoints": [{"interface": "public", "region": "R1", "url": "http://k/v3"}]},
            {"type": "sharev2", "endpoints": [
                {"interface": "internal", "region": "R1", "url": "http://internal/v2"},
                {"interface": "public", "region": "R2", "url": "http://r2/v2/"},
                {"interface": "public", "region": "R1", "url": "http://r1/v2"}]}
        ]);
        assert_eq!(
            manila_endpoint(&catalog, "public", "R1").as_deref(),
            Some("http://r1/v2")
        );
        assert_eq!(
            manila_endpoint(&catalog, "public", "").as_deref(),
            Some("http://r2/v2")
        );
        assert_eq!(
            manila_endpoint(&catalog, "internal", "").as_deref(),
            Some("http://internal/v2")
        );
        assert_eq!(manila_endpoint(&catalog, "admin", ""), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601("2026-11-26T12:00:00.000000Z"),
            Some(1_795_694_400)
        );
        assert_eq!(
            parse_iso8601("2026-11-26T12:00:00"),
            parse_iso8601("2026-11-26 12:00:00.5")
        );
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    #[test]
    fn a_session_never_shows_its_token() {
        let s = Session {
            token: SecretString::from("gAAAAABtokentokentoken"),
            endpoint: "http://manila/v2".into(),
            expires_at: 1,
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("gAAAAAB"), "{shown}");
        assert!(shown.contains("http://manila/v2"), "{shown}");
    }
}
