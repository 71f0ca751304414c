//! A Keystone v3 subset: version documents, password and application-credential
//! authentication, token validation, and the project look-ups clients make.
//!
//! One domain (`default`, named `Default`). Users, projects and application credentials
//! come from [`IdentityConfig`]; IDs that the config does not fix derive from the seed.
//! Tokens are opaque random strings, drawn from the OS's RNG unless a seed was given
//! ([`TokenSource`]), held in memory until they expire, at most
//! [`Config::tokens_per_user`](crate::Config::tokens_per_user) per user: one user's
//! flood evicts only that user's oldest tokens.
//!
//! This module holds the identity model (users, projects, application credentials,
//! tokens, the catalog); Keystone's HTTP handlers are [`crate::keystone`]'s. A leaf
//! below the service's state: it imports nothing of the HTTP surface.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::http::StatusCode;
use parking_lot::Mutex;
use rand::rngs::SysRng;
use rand::{Rng, SeedableRng, TryRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::config::IdentityConfig;
use crate::error::KeystoneError;
use crate::secret::{Secret, constant_time_eq};
use crate::time::Timestamp;

/// The domain every user and project is in.
pub const DOMAIN_ID: &str = "default";
/// Its name.
pub const DOMAIN_NAME: &str = "Default";

/// A project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// 32 hex digits (or the configured ID).
    pub id: String,
    /// Its name.
    pub name: String,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    name: String,
    password: Secret,
    project_id: String,
    roles: Vec<String>,
}

#[derive(Debug, Clone)]
struct AppCredential {
    id: String,
    name: String,
    secret: Secret,
    user_id: String,
}

/// What a token stands for.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// The user's ID.
    pub user_id: String,
    /// The user's name.
    pub user_name: String,
    /// The project the token is scoped to.
    pub project: Project,
    /// Role names on that project.
    pub roles: Vec<String>,
    /// How it was obtained (`password`, `application_credential`, `token`).
    pub methods: Vec<String>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
    /// Its audit ID (not a secret).
    pub audit_id: String,
    /// The application credential it came from, if any: `(id, name)`.
    pub app_cred: Option<(String, String)>,
}

impl TokenInfo {
    /// Whether the token carries the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// Users, projects, credentials and the live tokens.
#[derive(Debug)]
pub struct Identity {
    projects: Vec<Project>,
    users: Vec<User>,
    app_creds: Vec<AppCredential>,
    role_ids: HashMap<String, String>,
    tokens: Mutex<TokenStore>,
    secrets: TokenSource,
}

/// Where tokens (and their audit IDs) are drawn from.
#[derive(Debug)]
pub enum TokenSource {
    /// The operating system's RNG (`getrandom`): nobody can predict a token, not even
    /// from the seed. What a service started without a seed uses.
    Os,
    /// A stream seeded from the master seed, for reproducible simulations and tests.
    Seeded(Box<Mutex<ChaCha8Rng>>),
}

impl TokenSource {
    /// Seeded from `seed` when one is given (a stream of its own, so that tokens do not
    /// shift IDs), the OS's RNG otherwise.
    pub fn new(seed: Option<u64>) -> Self {
        match seed {
            // "tokens" in ASCII: a stream apart from the IDs' and the faults'.
            Some(seed) => Self::Seeded(Box::new(Mutex::new(ChaCha8Rng::seed_from_u64(
                seed ^ 0x746f_6b65_6e73,
            )))),
            None => Self::Os,
        }
    }

    /// Fills `buf` with random bytes; Keystone's 500 if the OS has none to give.
    fn fill(&self, buf: &mut [u8]) -> Result<(), KeystoneError> {
        match self {
            TokenSource::Os => SysRng.try_fill_bytes(buf).map_err(|e| {
                tracing::error!(error = %e, "the OS's RNG failed");
                KeystoneError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An unexpected error prevented the server from fulfilling your request.",
                )
            }),
            TokenSource::Seeded(rng) => {
                rng.lock().fill_bytes(buf);
                Ok(())
            }
        }
    }
}

/// How often (in tokens issued) every user's expired tokens are purged.
const PURGE_EVERY: u64 = 1024;

/// The live tokens. Each user's are also kept in issue order (which, with one TTL, is
/// expiry order), so that a user past its bound loses its own oldest token and nobody
/// else's, and expired tokens are found from the front.
#[derive(Debug)]
struct TokenStore {
    /// The most tokens one user holds (at least 1).
    per_user: usize,
    tokens: HashMap<Secret, Held>,
    /// User ID → issue number → token.
    by_user: HashMap<String, BTreeMap<u64, Secret>>,
    /// Tokens issued so far: the next issue number.
    issued: u64,
}

#[derive(Debug)]
struct Held {
    info: Arc<TokenInfo>,
    seq: u64,
}

impl TokenStore {
    fn new(per_user: usize) -> Self {
        Self {
            per_user: per_user.max(1),
            tokens: HashMap::new(),
            by_user: HashMap::new(),
            issued: 0,
        }
    }

    /// The token's info if it is held and has not expired (an expired one is dropped).
    fn get(&mut self, token: &str, now: Timestamp) -> Option<Arc<TokenInfo>> {
        let info = self.tokens.get(token)?.info.clone();
        if info.expires_at <= now {
            self.remove(token);
            return None;
        }
        Some(info)
    }

    /// Drops a token; false if it was not held.
    fn remove(&mut self, token: &str) -> bool {
        let Some(held) = self.tokens.remove(token) else {
            return false;
        };
        let user = &held.info.user_id;
        if let Some(list) = self.by_user.get_mut(user) {
            list.remove(&held.seq);
            if list.is_empty() {
                self.by_user.remove(user);
            }
        }
        true
    }

    /// Drops `user`'s oldest token; false if the user holds none.
    fn pop_oldest(&mut self, user: &str) -> bool {
        let Some(list) = self.by_user.get_mut(user) else {
            return false;
        };
        let Some((seq, token)) = list.pop_first() else {
            self.by_user.remove(user);
            return false;
        };
        if list.is_empty() {
            self.by_user.remove(user);
        }
        if self.tokens.get(&token).is_some_and(|h| h.seq == seq) {
            self.tokens.remove(&token);
        }
        true
    }

    /// Drops `user`'s expired tokens, oldest first, up to the first live one.
    fn purge_user(&mut self, user: &str, now: Timestamp) {
        loop {
            let front = self.by_user.get(user).and_then(|l| l.first_key_value());
            let Some((seq, token)) = front else {
                return;
            };
            let live = self
                .tokens
                .get(token)
                .is_some_and(|h| h.seq == *seq && h.info.expires_at > now);
            if live {
                return;
            }
            self.pop_oldest(user);
        }
    }

    /// Holds a new token. The user's expired tokens go first; if the user still holds
    /// `per_user`, its oldest go; every [`PURGE_EVERY`] tokens, every user's expired
    /// ones go.
    fn insert(&mut self, token: String, info: Arc<TokenInfo>, now: Timestamp) {
        let user = info.user_id.clone();
        self.purge_user(&user, now);
        while self.by_user.get(&user).map_or(0, BTreeMap::len) >= self.per_user {
            if !self.pop_oldest(&user) {
                break;
            }
        }
        self.issued += 1;
        if self.issued.is_multiple_of(PURGE_EVERY) {
            let users: Vec<String> = self.by_user.keys().cloned().collect();
            for u in users {
                self.purge_user(&u, now);
            }
        }
        let token = Secret::new(token);
        let seq = self.issued;
        // 256 random bits do not repeat; were one to, the newer token would replace the
        // older, whose index entry then drops out when it reaches the front.
        self.tokens.insert(token.clone(), Held { info, seq });
        self.by_user.entry(user).or_default().insert(seq, token);
    }
}

/// 32 lower-case hex digits from the RNG, as Keystone's IDs look.
pub fn hex_id(rng: &mut ChaCha8Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Identity {
    /// Builds the directory from the config; IDs not fixed there come from `rng`, tokens
    /// from `secrets`. Each user holds at most `tokens_per_user` tokens (at least 1):
    /// past that, its oldest is revoked.
    pub fn new(
        config: &IdentityConfig,
        tokens_per_user: usize,
        secrets: TokenSource,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self, String> {
        let mut projects: Vec<Project> = config
            .projects
            .iter()
            .map(|p| Project {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect();
        for p in &projects {
            if p.id.is_empty() || !p.id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                return Err(format!(
                    "project {}: the ID must be hex digits and dashes",
                    p.name
                ));
            }
        }
        let mut users = Vec::new();
        let mut role_ids = HashMap::new();
        for u in &config.users {
            if users.iter().any(|x: &User| x.name == u.name) {
                return Err(format!("user {} is listed twice", u.name));
            }
            let project_id = match projects.iter().find(|p| p.name == u.project) {
                Some(p) => p.id.clone(),
                None => {
                    let p = Project {
                        id: hex_id(rng),
                        name: u.project.clone(),
                    };
                    let id = p.id.clone();
                    projects.push(p);
                    id
                }
            };
            for r in &u.roles {
                if !role_ids.contains_key(r) {
                    role_ids.insert(r.clone(), hex_id(rng));
                }
            }
            users.push(User {
                id: u.id.clone().unwrap_or_else(|| hex_id(rng)),
                name: u.name.clone(),
                password: u.password.clone(),
                project_id,
                roles: u.roles.clone(),
            });
        }
        let mut app_creds = Vec::new();
        for a in &config.application_credentials {
            let user = users
                .iter()
                .find(|u| u.name == a.user)
                .ok_or_else(|| format!("application credential {}: no user {}", a.name, a.user))?;
            app_creds.push(AppCredential {
                id: a.id.clone().unwrap_or_else(|| hex_id(rng)),
                name: a.name.clone(),
                secret: a.secret.clone(),
                user_id: user.id.clone(),
            });
        }
        Ok(Self {
            projects,
            users,
            app_creds,
            role_ids,
            tokens: Mutex::new(TokenStore::new(tokens_per_user)),
            secrets,
        })
    }

    /// A project by ID.
    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    /// A project by name.
    pub fn project_by_name(&self, name: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.name == name)
    }

    /// All projects.
    pub fn projects(&self) -> &[Project] {
        &self.projects
    }

    /// The token's info if it exists and has not expired.
    pub fn validate(&self, token: &str) -> Option<Arc<TokenInfo>> {
        self.tokens.lock().get(token, Timestamp::now())
    }

    /// Revokes a token; false if it was not valid.
    pub fn revoke(&self, token: &str) -> bool {
        self.tokens.lock().remove(token)
    }

    fn store(&self, token: String, info: TokenInfo) -> Arc<TokenInfo> {
        let info = Arc::new(info);
        self.tokens
            .lock()
            .insert(token, info.clone(), Timestamp::now());
        info
    }

    /// How many tokens are held (live or not yet purged).
    pub fn token_count(&self) -> usize {
        self.tokens.lock().tokens.len()
    }

    fn user_by_ref(&self, user: &Value) -> Result<&User, KeystoneError> {
        let denied =
            || KeystoneError::unauthorized("The request you have made requires authentication.");
        if let Some(id) = user.get("id").and_then(Value::as_str) {
            return self.users.iter().find(|u| u.id == id).ok_or_else(denied);
        }
        let name = user
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| KeystoneError::bad_request("Expecting to find id or name in user."))?;
        check_domain(user.get("domain"))?;
        self.users
            .iter()
            .find(|u| u.name == name)
            .ok_or_else(denied)
    }

    fn scope_project(&self, scope: Option<&Value>, user: &User) -> Result<Project, KeystoneError> {
        let Some(scope) = scope.filter(|s| !s.is_null() && s.as_str() != Some("unscoped")) else {
            // No scope: the user's default project, as Keystone scopes to it.
            return self
                .project(&user.project_id)
                .cloned()
                .ok_or_else(|| KeystoneError::unauthorized("No project to scope to."));
        };
        let Some(p) = scope.get("project") else {
            return Err(KeystoneError::unauthorized(
                "Only project-scoped tokens are offered by this Keystone.",
            ));
        };
        let project = if let Some(id) = p.get("id").and_then(Value::as_str) {
            self.project(id)
        } else if let Some(name) = p.get("name").and_then(Value::as_str) {
            check_domain(p.get("domain"))?;
            self.project_by_name(name)
        } else {
            return Err(KeystoneError::bad_request(
                "Expecting to find id or name in project.",
            ));
        };
        let project = project.ok_or_else(|| {
            KeystoneError::unauthorized(format!(
                "User {} has no access to the requested project.",
                user.id
            ))
        })?;
        if project.id != user.project_id {
            return Err(KeystoneError::unauthorized(format!(
                "User {} has no access to project {}",
                user.id, project.id
            )));
        }
        Ok(project.clone())
    }

    /// Authenticates a `POST /v3/auth/tokens` body; the new token and its info.
    pub fn authenticate(
        &self,
        body: &Value,
        ttl: std::time::Duration,
    ) -> Result<(String, Arc<TokenInfo>), KeystoneError> {
        let denied =
            || KeystoneError::unauthorized("The request you have made requires authentication.");
        let auth = body
            .get("auth")
            .ok_or_else(|| KeystoneError::bad_request("'auth' is a required property"))?;
        let identity = auth
            .get("identity")
            .ok_or_else(|| KeystoneError::bad_request("'identity' is a required property"))?;
        let methods: Vec<String> = identity
            .get("methods")
            .and_then(Value::as_array)
            .ok_or_else(|| KeystoneError::bad_request("'methods' is a required property"))?
            .iter()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect();
        let scope = auth.get("scope");
        let (user, project, app_cred) = match methods.first().map(String::as_str) {
            Some("password") => {
                let pw = identity
                    .get("password")
                    .and_then(|p| p.get("user"))
                    .ok_or_else(|| KeystoneError::bad_request("'user' is a required property"))?;
                let user = self.user_by_ref(pw)?;
                let given = pw.get("password").and_then(Value::as_str).unwrap_or("");
                if !constant_time_eq(given.as_bytes(), user.password.expose().as_bytes()) {
                    return Err(denied());
                }
                let project = self.scope_project(scope, user)?;
                (user, project, None)
            }
            Some("application_credential") => {
                let ac = identity.get("application_credential").ok_or_else(|| {
                    KeystoneError::bad_request("'application_credential' is a required property")
                })?;
                let secret = ac.get("secret").and_then(Value::as_str).unwrap_or("");
                let cred = if let Some(id) = ac.get("id").and_then(Value::as_str) {
                    self.app_creds.iter().find(|c| c.id == id)
                } else {
                    let name = ac.get("name").and_then(Value::as_str).unwrap_or("");
                    let owner = ac.get("user").ok_or_else(|| {
                        KeystoneError::bad_request(
                            "Could not find user for application credential.",
                        )
                    })?;
                    let owner = self.user_by_ref(owner)?;
                    self.app_creds
                        .iter()
                        .find(|c| c.name == name && c.user_id == owner.id)
                }
                .ok_or_else(denied)?;
                if !constant_time_eq(secret.as_bytes(), cred.secret.expose().as_bytes()) {
                    return Err(denied());
                }
                if scope.is_some_and(|s| !s.is_null()) {
                    return Err(KeystoneError::unauthorized(
                        "Application credentials cannot request a scope.",
                    ));
                }
                let user = self
                    .users
                    .iter()
                    .find(|u| u.id == cred.user_id)
                    .ok_or_else(denied)?;
                let project = self.scope_project(None, user)?;
                (user, project, Some((cred.id.clone(), cred.name.clone())))
            }
            Some("token") => {
                let old = identity
                    .get("token")
                    .and_then(|t| t.get("id"))
                    .and_then(Value::as_str)
                    .and_then(|t| self.validate(t))
                    .ok_or_else(denied)?;
                let user = self
                    .users
                    .iter()
                    .find(|u| u.id == old.user_id)
                    .ok_or_else(denied)?;
                let project = self.scope_project(scope, user)?;
                (user, project, None)
            }
            Some(other) => {
                return Err(KeystoneError::unauthorized(format!(
                    "Attempted to authenticate with an unsupported method: {}",
                    other.chars().take(64).collect::<String>()
                )));
            }
            None => return Err(KeystoneError::bad_request("'methods' must not be empty")),
        };
        let now = Timestamp::now();
        let mut raw = [0u8; 32];
        self.secrets.fill(&mut raw)?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut audit = [0u8; 12];
        self.secrets.fill(&mut audit)?;
        let info = TokenInfo {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            project,
            roles: user.roles.clone(),
            methods: methods.into_iter().take(1).collect(),
            issued_at: now,
            expires_at: now.plus(ttl),
            audit_id: audit.iter().map(|b| format!("{b:02x}")).collect(),
            app_cred,
        };
        let info = self.store(token.clone(), info);
        Ok((token, info))
    }

    /// The `{"token": ...}` body for a token.
    pub fn token_body(&self, info: &TokenInfo, keystone_url: &str, manila_url: &str) -> Value {
        let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
        let roles: Vec<Value> = info
            .roles
            .iter()
            .map(|r| json!({"id": self.role_ids.get(r).cloned().unwrap_or_default(), "name": r}))
            .collect();
        let mut token = json!({
            "methods": info.methods,
            "user": {"id": info.user_id, "name": info.user_name, "domain": domain, "password_expires_at": null},
            "audit_ids": [info.audit_id],
            "expires_at": info.expires_at.keystone(),
            "issued_at": info.issued_at.keystone(),
            "project": {"id": info.project.id, "name": info.project.name, "domain": domain},
            "is_domain": false,
            "roles": roles,
            "catalog": catalog(keystone_url, manila_url),
        });
        if let Some((id, name)) = &info.app_cred {
            token["application_credential"] = json!({"id": id, "name": name, "restricted": true});
        }
        json!({"token": token})
    }
}

fn check_domain(domain: Option<&Value>) -> Result<(), KeystoneError> {
    let Some(d) = domain else {
        return Ok(());
    };
    let ok = match (
        d.get("id").and_then(Value::as_str),
        d.get("name").and_then(Value::as_str),
    ) {
        (Some(id), _) => id == DOMAIN_ID,
        (None, Some(name)) => name == DOMAIN_NAME,
        (None, None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(KeystoneError::unauthorized(
            "The request you have made requires authentication.",
        ))
    }
}

/// The service catalog: `identity` (Keystone's `/v3`) and `sharev2` (Manila's `/v2`, no
/// project ID in the URL), each with public, internal and admin endpoints in
/// `RegionOne`. There is no legacy v1 `share` entry: gophercloud takes the first entry
/// of the `shared-file-system` family without looking at its version.
pub fn catalog(keystone_url: &str, manila_url: &str) -> Value {
    let entry = |ty: &str, name: &str, id: &str, url: String| {
        let endpoints: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                json!({"id": format!("{id}{i}"), "interface": iface, "region": "RegionOne",
                       "region_id": "RegionOne", "url": url})
            })
            .collect();
        json!({"type": ty, "name": name, "id": id, "endpoints": endpoints})
    };
    json!([
        entry(
            "identity",
            "keystone",
            "5b0a4b0e5ec24f7f9c6e4a1c2a6c0b10",
            format!("{keystone_url}/v3")
        ),
        entry(
            "sharev2",
            "manilav2",
            "9d4f8e3a1b2c4d5e8f7a6b5c4d3e2f20",
            format!("{manila_url}/v2")
        ),
    ])
}

/// Keystone's v3 version object.
pub fn version_object(keystone_url: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{keystone_url}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;

    use super::*;

    fn password(user: &str) -> Value {
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": user}}}}})
    }

    fn issue(id: &Identity, user: &str, ttl: Duration) -> String {
        id.authenticate(&password(user), ttl).expect("token").0
    }

    fn identity(tokens_per_user: usize, secrets: TokenSource) -> Identity {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        Identity::new(
            &IdentityConfig::default(),
            tokens_per_user,
            secrets,
            &mut rng,
        )
        .expect("identity")
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_users_flood_evicts_only_its_own_oldest_tokens() {
        let id = identity(100, TokenSource::Os);
        let admin = issue(&id, "admin", HOUR);
        let demo: Vec<String> = (0..1000).map(|_| issue(&id, "demo", HOUR)).collect();
        // One user's bound each: memory stays bounded by users x bound.
        assert_eq!(id.token_count(), 1 + 100);
        assert!(
            id.validate(&admin).is_some(),
            "another user's token survives"
        );
        assert!(
            demo[900..].iter().all(|t| id.validate(t).is_some()),
            "the newest survive"
        );
        assert!(
            demo[..900].iter().all(|t| id.validate(t).is_none()),
            "the oldest go"
        );
        // Revoking makes room without evicting.
        assert!(id.revoke(&demo[999]));
        let newer = issue(&id, "demo", HOUR);
        assert!(id.validate(&demo[900]).is_some());
        assert!(id.validate(&newer).is_some());
        assert_eq!(id.token_count(), 1 + 100);
    }

    #[test]
    fn debug_shows_no_token_password_or_credential_secret() {
        let id = identity(10, TokenSource::new(Some(1)));
        let token = issue(&id, "demo", HOUR);
        let shown = format!("{id:?}");
        assert!(!shown.contains(&token), "a token in {shown}");
        // The default users' passwords are their names: look for the field's value.
        assert!(!shown.contains("password: \"demo\""), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn expired_tokens_are_purged() {
        let id = identity(10_000, TokenSource::Os);
        // Expired at once: each new one of the user's purges the earlier.
        for _ in 0..5 {
            issue(&id, "admin", Duration::ZERO);
        }
        assert_eq!(id.token_count(), 1);
        // Another user's tokens: the periodic sweep drops the admin's expired one.
        for _ in 0..PURGE_EVERY {
            issue(&id, "demo", HOUR);
        }
        assert_eq!(
            id.token_count(),
            usize::try_from(PURGE_EVERY).expect("small")
        );
    }

    #[test]
    fn tokens_follow_the_seed_only_when_one_is_given() {
        let first = |seed| issue(&identity(10, TokenSource::new(seed)), "demo", HOUR);
        assert_eq!(first(Some(7)), first(Some(7)));
        assert_ne!(first(Some(7)), first(Some(8)));
        assert_ne!(first(None), first(None));
    }
}
