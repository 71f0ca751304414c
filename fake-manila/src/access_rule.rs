//! Access rules: allow, deny, the lists (the `access_list` action before 2.45,
//! `/share-access-rules` from 2.45), and the transitions that authorize and deauthorize
//! cephx users on the share's subvolume.
//!
//! The cephx key (`access_key`) is a secret: it appears only in access-rule views, which
//! only the share's project (and admins) can read, and never in a log line.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::message::{Action, Detail};
use crate::resources;
use crate::state::{AccessRule, AppState, Db, RuleState, Share, ShareStatus};
use crate::time::Timestamp;
use crate::wire::{Ctx, accepted, parse_metadata, reply};

/// The view of a rule; `with_share` adds `share_id` (allow answers and `show`).
pub fn rule_view(ctx: &Ctx, r: &AccessRule, with_share: bool) -> Value {
    let mut o = json!({"id": r.id});
    if with_share {
        o["share_id"] = json!(r.share_id);
    }
    o["access_level"] = json!(r.access_level);
    o["access_to"] = json!(r.access_to);
    o["access_type"] = json!(r.access_type);
    let state = if ctx.at_least(28) {
        r.state.as_str()
    } else {
        // Before 2.28 rules show `new` until applied; a rule being denied is still
        // `active`.
        match r.state {
            RuleState::QueuedToApply | RuleState::Applying => "new",
            RuleState::Error => "error",
            _ => "active",
        }
    };
    o["state"] = json!(state);
    if ctx.at_least(21) {
        o["access_key"] = json!(r.access_key.as_ref().map(|k| k.expose()));
    }
    if ctx.at_least(33) {
        o["created_at"] = json!(r.created_at.manila());
        o["updated_at"] = json!(r.updated_at.map(|t| t.manila()));
    }
    if ctx.at_least(45) {
        o["metadata"] = json!(r.metadata);
    }
    o
}

/// A share whose rules the caller may read or change: its project's, or any for an
/// admin. Rules of other projects' shares (public or not) are 404.
fn owned_share<'a>(ctx: &Ctx, db: &'a Db, id: &str) -> ApiResult<&'a Share> {
    match db.shares.get(id) {
        Some(s) if ctx.is_admin() || s.project_id == ctx.project_id() => Ok(s),
        _ => Err(ApiError::not_found(format!(
            "Share {} could not be found.",
            id.chars().take(64).collect::<String>()
        ))),
    }
}

fn rule_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Access rule {} not found.",
        id.chars().take(64).collect::<String>()
    ))
}

fn rules_of<'a>(db: &'a Db, share_id: &str) -> Vec<&'a AccessRule> {
    let mut v: Vec<&AccessRule> = db
        .rules
        .values()
        .filter(|r| r.share_id == share_id)
        .collect();
    v.sort_by_key(|r| r.seq);
    v
}

/// A cephx ID as Manila checks it (`manila/api/validation` and the CephFS driver).
fn check_cephx_id(to: &str) -> ApiResult<()> {
    if to.is_empty() || to.len() > 255 {
        return Err(ApiError::bad_request(
            "Invalid access_to: the Ceph ID must be 1 to 255 characters.",
        ));
    }
    if to.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::bad_request(
            "Ceph IDs must be printable and may not contain whitespace.",
        ));
    }
    if to.contains('.') {
        return Err(ApiError::bad_request("Ceph IDs may not contain periods."));
    }
    Ok(())
}

/// The `allow_access` action: 200 with the new rule in `queued_to_apply`.
pub fn allow(ctx: &Ctx, share_id: &str, arg: &Value) -> ApiResult<Response> {
    let m = arg
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    let access_type = m
        .get("access_type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Must specify 'access_type'"))?;
    let access_to = m
        .get("access_to")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Must specify 'access_to'"))?;
    let level = match m.get("access_level") {
        None | Some(Value::Null) => "rw",
        Some(v) => v.as_str().unwrap_or("?"),
    };
    let cephx_ok = ctx.at_least(13);
    match access_type {
        "ip" | "user" | "cert" => {}
        "cephx" if cephx_ok => check_cephx_id(access_to)?,
        _ => {
            return Err(ApiError::bad_request(if cephx_ok {
                "Only 'ip', 'user', 'cert' or 'cephx' access types are supported."
            } else {
                "Only 'ip', 'user', or 'cert' access types are supported."
            }));
        }
    }
    if !matches!(level, "rw" | "ro") {
        return Err(ApiError::bad_request(format!(
            "Invalid share access level: {}.",
            level.chars().take(32).collect::<String>()
        )));
    }
    let metadata = if ctx.at_least(45) {
        parse_metadata(m.get("metadata"))?
    } else {
        Default::default()
    };
    let state = ctx.state.clone();
    let mut db = state.db();
    let share = owned_share(ctx, &db, share_id)?;
    if share.status != ShareStatus::Available {
        return Err(ApiError::bad_request(format!(
            "Invalid share: Share {share_id} status must be available, but is {}.",
            share.status.as_str()
        )));
    }
    let project = share.project_id.clone();
    if rules_of(&db, share_id)
        .iter()
        .any(|r| r.access_type == access_type && r.access_to == access_to)
    {
        return Err(ApiError::bad_request(format!(
            "Share access {access_type}:{} exists.",
            access_to.chars().take(64).collect::<String>()
        )));
    }
    let faults = state.faults();
    // The CephFS driver refuses anything but cephx, and the ID Manila itself uses.
    let own_id = state
        .ceph()
        .config()
        .identity
        .entity
        .strip_prefix("client.")
        .unwrap_or("")
        .to_owned();
    // Why the driver will refuse the rule, and the detail of the message Manila's CephFS
    // driver leaves then (InvalidShareAccessType → 021, InvalidShareAccess → 020; any
    // other driver failure leaves none).
    let fail = if state.draw(faults.access_error_rate) {
        Some(Refusal {
            why: "injected fault",
            detail: None,
        })
    } else if access_type != "cephx" {
        Some(Refusal {
            why: "only cephx access is supported by the CephFS native driver",
            detail: Some(Detail::UnsupportedClientAccess),
        })
    } else if access_to == own_id {
        Some(Refusal {
            why: "the Ceph ID Manila uses cannot be granted",
            detail: Some(Detail::ForbiddenClientAccess),
        })
    } else {
        None
    };
    let id = state.new_uuid();
    let rule = AccessRule {
        id: id.clone(),
        seq: db.seq(),
        share_id: share_id.to_owned(),
        access_type: access_type.to_owned(),
        access_to: access_to.to_owned(),
        access_level: level.to_owned(),
        state: RuleState::QueuedToApply,
        access_key: None,
        created_at: Timestamp::now(),
        updated_at: None,
        metadata,
    };
    let view = rule_view(ctx, &rule, true);
    db.rules.insert(id.clone(), rule);
    drop(db);
    tokio::spawn(apply(state, id, project, fail));
    reply(StatusCode::OK, json!({"access": view}))
}

fn set_rule_state(state: &AppState, id: &str, st: RuleState) -> Option<AccessRule> {
    let mut db = state.db();
    let r = db.rules.get_mut(id)?;
    r.state = st;
    r.updated_at = Some(Timestamp::now());
    Some(r.clone())
}

/// Why a rule ends in `error` without Ceph being asked.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    /// For the log line.
    why: &'static str,
    /// The detail of the user message left, if any.
    detail: Option<Detail>,
}

/// Leaves the user message of a refused rule (about its share, as Manila's driver does).
fn refusal_message(state: &AppState, db: &mut Db, project: &str, share_id: &str, d: Detail) {
    resources::add_message(state, db, project, Action::UpdateAccessRules, d, share_id);
}

async fn apply(state: AppState, id: String, project: String, fail: Option<Refusal>) {
    let delay = state.config().delays.access;
    crate::state::pause(delay).await;
    let lock = {
        let db = state.db();
        let Some(r) = db.rules.get(&id) else { return };
        let Some(s) = db.shares.get(&r.share_id) else {
            return;
        };
        s.access_lock.clone()
    };
    let _guard = lock.lock().await;
    {
        let mut db = state.db();
        let Some(r) = db.rules.get_mut(&id) else {
            return;
        };
        // A deny that came first wins.
        if r.state != RuleState::QueuedToApply {
            return;
        }
        r.state = RuleState::Applying;
        r.updated_at = Some(Timestamp::now());
    }
    crate::state::pause(delay).await;
    let Some(rule) = state.db().rules.get(&id).cloned() else {
        return;
    };
    if let Some(refusal) = fail {
        state.metrics().transition("access_apply", false);
        tracing::info!(rule_id = %id, share_id = %rule.share_id, why = refusal.why, "access rule failed");
        set_rule_state(&state, &id, RuleState::Error);
        if let Some(detail) = refusal.detail {
            let mut db = state.db();
            refusal_message(&state, &mut db, &project, &rule.share_id, detail);
        }
        return;
    }
    let level = if rule.access_level == "ro" { "r" } else { "rw" };
    let result = state
        .ceph()
        .authorize(&rule.share_id, &rule.access_to, level, &project)
        .await;
    state.metrics().transition("access_apply", result.is_ok());
    let mut db = state.db();
    match result {
        Ok(key) => {
            if let Some(r) = db.rules.get_mut(&id) {
                r.access_key = Some(key);
                if r.state == RuleState::Applying {
                    r.state = RuleState::Active;
                }
                r.updated_at = Some(Timestamp::now());
            }
            tracing::debug!(rule_id = %id, share_id = %rule.share_id, "access rule active");
        }
        Err(e) => {
            tracing::warn!(rule_id = %id, share_id = %rule.share_id, error = %e, "access rule failed");
            if let Some(r) = db.rules.get_mut(&id) {
                r.state = RuleState::Error;
                r.updated_at = Some(Timestamp::now());
            }
            // Manila's CephFS driver turns Ceph's "not allowed" (an auth ID that the
            // volumes module did not create) into InvalidShareAccess; other errors leave
            // the rule in `error` without a message.
            if e.to_string().to_ascii_lowercase().contains("not allowed") {
                refusal_message(
                    &state,
                    &mut db,
                    &project,
                    &rule.share_id,
                    Detail::ForbiddenClientAccess,
                );
            }
        }
    }
}

/// The `deny_access` action: 202; the rule goes `queued_to_deny` → `denying` → gone.
pub fn deny(ctx: &Ctx, share_id: &str, arg: &Value) -> ApiResult<Response> {
    let access_id = arg
        .get("access_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Must specify 'access_id'"))?;
    let state = ctx.state.clone();
    let mut db = state.db();
    owned_share(ctx, &db, share_id)?;
    let r = db
        .rules
        .get_mut(access_id)
        .filter(|r| r.share_id == share_id)
        .ok_or_else(|| rule_not_found(access_id))?;
    if matches!(r.state, RuleState::QueuedToDeny | RuleState::Denying) {
        // Already on its way out: the repeat succeeds.
        return accepted();
    }
    r.state = RuleState::QueuedToDeny;
    r.updated_at = Some(Timestamp::now());
    drop(db);
    tokio::spawn(revoke(state, access_id.to_owned()));
    accepted()
}

async fn revoke(state: AppState, id: String) {
    let delay = state.config().delays.access;
    crate::state::pause(delay).await;
    let lock = {
        let db = state.db();
        let Some(r) = db.rules.get(&id) else { return };
        let Some(s) = db.shares.get(&r.share_id) else {
            return;
        };
        s.access_lock.clone()
    };
    let _guard = lock.lock().await;
    let Some(rule) = set_rule_state(&state, &id, RuleState::Denying) else {
        return;
    };
    crate::state::pause(delay).await;
    let result = if rule.access_type == "cephx" {
        state
            .ceph()
            .deauthorize(&rule.share_id, &rule.access_to)
            .await
    } else {
        Ok(())
    };
    state.metrics().transition("access_deny", result.is_ok());
    let mut db = state.db();
    match result {
        Ok(()) => {
            db.rules.remove(&id);
            tracing::debug!(rule_id = %id, share_id = %rule.share_id, "access rule denied");
        }
        Err(e) => {
            tracing::warn!(rule_id = %id, share_id = %rule.share_id, error = %e, "access deny failed");
            if let Some(r) = db.rules.get_mut(&id) {
                r.state = RuleState::Error;
            }
        }
    }
}

/// The `access_list` action (2.0–2.44).
pub fn access_list_action(ctx: &Ctx, share_id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    owned_share(ctx, &db, share_id)?;
    let list: Vec<Value> = rules_of(&db, share_id)
        .into_iter()
        .map(|r| rule_view(ctx, r, false))
        .collect();
    reply(StatusCode::OK, json!({"access_list": list}))
}

/// `GET /share-access-rules?share_id=` (≥ 2.45).
pub fn list(ctx: &Ctx) -> ApiResult<Response> {
    let share_id = ctx
        .q("share_id")
        .ok_or_else(|| ApiError::bad_request("The 'share_id' parameter is required."))?;
    let db = ctx.state.db();
    owned_share(ctx, &db, share_id)?;
    let list: Vec<Value> = rules_of(&db, share_id)
        .into_iter()
        .filter(|r| ctx.q("access_type").is_none_or(|x| x == r.access_type))
        .filter(|r| ctx.q("access_to").is_none_or(|x| x == r.access_to))
        .filter(|r| ctx.q("access_level").is_none_or(|x| x == r.access_level))
        .filter(|r| ctx.q("state").is_none_or(|x| x == r.state.as_str()))
        .map(|r| rule_view(ctx, r, false))
        .collect();
    reply(StatusCode::OK, json!({"access_list": list}))
}

/// `GET /share-access-rules/{id}` (≥ 2.45).
pub fn show(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let r = db.rules.get(id).ok_or_else(|| rule_not_found(id))?;
    owned_share(ctx, &db, &r.share_id).map_err(|_| rule_not_found(id))?;
    reply(StatusCode::OK, json!({"access": rule_view(ctx, r, true)}))
}
