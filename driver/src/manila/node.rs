//! The node side of Manila volumes: a share and its cephx rule, looked up with the
//! node-stage secrets, become a static CephFS volume for the CephFS node code.

use std::collections::HashMap;

use secrecy::ExposeSecret as _;
use tonic::Status;

use super::api::ExportLocation;
use super::keystone::OsCredentials;
use crate::csi::v1::NodeStageVolumeRequest;
use crate::instance::Driver;
use crate::status;

/// Whether a volume context describes a Manila share.
pub fn is_manila(ctx: &HashMap<String, String>) -> bool {
    ctx.contains_key("shareID") || ctx.contains_key("shareName")
}

/// The export location a client should use: not admin-only, not empty, the first
/// preferred one, else the first.
pub fn pick_export(locations: &[ExportLocation]) -> Option<&ExportLocation> {
    let usable = || {
        locations
            .iter()
            .filter(|l| !l.is_admin_only && !l.path.trim().is_empty())
    };
    usable().find(|l| l.preferred).or_else(|| usable().next())
}

/// `mon1:6789,mon2:6789:/volumes/_nogroup/share/uuid` split at its last `:` into
/// monitors and the root path.
pub fn split_export(path: &str) -> Option<(Vec<String>, String)> {
    let (mons, root) = path.rsplit_once(':')?;
    if !root.starts_with('/') || mons.is_empty() {
        return None;
    }
    Some((
        mons.split(',').map(str::to_owned).collect(),
        root.to_owned(),
    ))
}

/// The share a volume context names: by `shareID`, else by `shareName` (one share of
/// that name at most).
async fn find_share(
    m: &super::api::Manila<'_>,
    ctx: &HashMap<String, String>,
) -> Result<Option<super::api::Share>, Status> {
    match (ctx.get("shareID"), ctx.get("shareName")) {
        (Some(id), _) if !id.is_empty() => m.share(id).await.map_err(|e| status::manila(&e)),
        (_, Some(name)) if !name.is_empty() => {
            let mut named = m.shares_named(name).await.map_err(|e| status::manila(&e))?;
            if named.len() > 1 {
                return Err(Status::failed_precondition(format!(
                    "{} shares are named {name}",
                    named.len()
                )));
            }
            Ok(named.pop())
        }
        _ => Err(Status::invalid_argument(
            "volume context needs shareID or shareName",
        )),
    }
}

/// Rewrites a NodeStageVolume of a Manila volume into one of a static CephFS volume:
/// monitors and root path from the share's export location, the rule's cephx user and
/// key as `userID`/`userKey`, the mount options the StorageClass asked for, and the
/// `clusterID` of a configured cluster with the same monitors (for its mount options and,
/// with the fake mounter, its admin URL).
pub async fn resolve_stage(
    driver: &Driver,
    mut req: NodeStageVolumeRequest,
) -> Result<NodeStageVolumeRequest, Status> {
    let creds = OsCredentials::from_secrets(&req.secrets).map_err(|e| status::manila(&e))?;
    let backend = driver.manila()?;
    let m = backend.client(&creds);
    let ctx = &req.volume_context;
    let share = find_share(&m, ctx)
        .await?
        .ok_or_else(|| Status::not_found(format!("share of volume {} not found", req.volume_id)))?;
    if share.status != "available" {
        return Err(Status::unavailable(format!(
            "share {} is {}, not available",
            share.id, share.status
        )));
    }
    let access_id = ctx
        .get("shareAccessID")
        .or_else(|| ctx.get("shareAccessIDs"))
        .and_then(|ids| ids.split(',').map(str::trim).find(|s| !s.is_empty()))
        .ok_or_else(|| Status::invalid_argument("volume context needs shareAccessID"))?
        .to_owned();
    let rules = m
        .access_rules(&share.id)
        .await
        .map_err(|e| status::manila(&e))?;
    let rule = rules
        .into_iter()
        .find(|r| r.id == access_id)
        .ok_or_else(|| {
            Status::not_found(format!(
                "access rule {access_id} of share {} not found",
                share.id
            ))
        })?;
    if rule.access_type != "cephx" {
        return Err(Status::invalid_argument(format!(
            "access rule {access_id} is of type {}, not cephx",
            rule.access_type
        )));
    }
    let key = rule
        .access_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Status::unavailable(format!(
                "access rule {access_id} has no key yet ({})",
                rule.state
            ))
        })?;
    let locations = m
        .export_locations(&share.id)
        .await
        .map_err(|e| status::manila(&e))?;
    let export = pick_export(&locations).ok_or_else(|| {
        Status::failed_precondition(format!("share {} has no usable export location", share.id))
    })?;
    let (monitors, root) = split_export(&export.path).ok_or_else(|| {
        Status::failed_precondition(format!(
            "export location {:?} of share {} is not monitors:path",
            export.path, share.id
        ))
    })?;
    let mut new_ctx = HashMap::from([
        ("staticVolume".to_owned(), "true".to_owned()),
        ("rootPath".to_owned(), root),
        ("monitors".to_owned(), monitors.join(",")),
    ]);
    for k in [
        "mounter",
        "kernelMountOptions",
        "fuseMountOptions",
        "fsName",
    ] {
        if let Some(v) = ctx.get(k) {
            new_ctx.insert(k.to_owned(), v.clone());
        }
    }
    // Real Manila records the file system in `__mount_options` (`fs=<name>`).
    if let Some(fs) = share
        .metadata
        .get("__mount_options")
        .and_then(|o| o.split(',').find_map(|kv| kv.strip_prefix("fs=")))
    {
        new_ctx.entry("fsName".to_owned()).or_insert(fs.to_owned());
    }
    let mut sorted = monitors.clone();
    sorted.sort();
    if let Some(c) = driver.config.clusters.iter().find(|c| {
        let mut m = c.monitors.clone();
        m.sort();
        m == sorted
    }) {
        new_ctx.insert("clusterID".to_owned(), c.cluster_id.clone());
    }
    req.volume_context = new_ctx;
    req.secrets = HashMap::from([
        ("userID".to_owned(), rule.access_to.clone()),
        ("userKey".to_owned(), key),
    ]);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(path: &str, preferred: bool, admin: bool) -> ExportLocation {
        ExportLocation {
            path: path.into(),
            preferred,
            is_admin_only: admin,
        }
    }

    #[test]
    fn the_preferred_client_export_location_wins() {
        let l = [
            loc("a:1:/x", false, true),
            loc("b:1:/x", false, false),
            loc("c:1:/x", true, true),
            loc("d:1:/x", true, false),
        ];
        assert_eq!(pick_export(&l).unwrap().path, "d:1:/x");
        assert_eq!(pick_export(&l[..3]).unwrap().path, "b:1:/x");
        assert!(pick_export(&[loc("", true, false)]).is_none());
    }

    #[test]
    fn export_paths_split_at_the_last_colon() {
        assert_eq!(
            split_export("10.0.0.1:6789,10.0.0.2:6789:/volumes/_nogroup/s/u"),
            Some((
                vec!["10.0.0.1:6789".to_owned(), "10.0.0.2:6789".to_owned()],
                "/volumes/_nogroup/s/u".to_owned()
            ))
        );
        assert_eq!(split_export("/volumes/x"), None);
        assert_eq!(split_export("m:relative"), None);
    }
}
