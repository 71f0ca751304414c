//! Every failure the driver answers becomes a gRPC status here, and only here: Ceph's
//! (by errno, by name), a mounter's, Keystone's and Manila's (by HTTP status). A message
//! carries the call's context, the failure and each cause under it ([`crate::cause`]),
//! never a credential: errors hold none (the transports scrub keys from what they keep).
//!
//! It imports the error types and nothing that serves: the services import it.

use tonic::Status;

use crate::cause::chain;
use crate::ceph::CephError;
use crate::errno::{EACCES, EAGAIN, EEXIST, EINVAL, ENOENT, ENOTEMPTY, EPERM};
use crate::manila::ManilaError;
use crate::mount::MountError;

/// `context: failure: cause: ...`.
fn message(context: &str, e: &(dyn std::error::Error + 'static)) -> String {
    if context.is_empty() {
        chain(e)
    } else {
        format!("{context}: {}", chain(e))
    }
}

/// The status of a Ceph failure during `context` (the command or step).
pub fn ceph(context: &str, e: &CephError) -> Status {
    let msg = message(context, e);
    match e {
        CephError::Timeout { .. } => Status::deadline_exceeded(msg),
        CephError::Unauthorized { .. } => Status::unauthenticated(msg),
        CephError::Transport { .. } => Status::unavailable(msg),
        CephError::Unsupported(_) => Status::failed_precondition(msg),
        CephError::Command { errno, .. } => match *errno {
            ENOENT => Status::not_found(msg),
            EEXIST => Status::already_exists(msg),
            EAGAIN => Status::aborted(msg),
            EACCES | EPERM => Status::permission_denied(msg),
            EINVAL => Status::invalid_argument(msg),
            ENOTEMPTY => Status::failed_precondition(msg),
            _ => Status::internal(msg),
        },
    }
}

/// The status of a failed mount or unmount during `context`.
pub fn mount(context: &str, e: &MountError) -> Status {
    let msg = message(context, e);
    match e {
        MountError::Failed {
            errno: Some(EPERM | EACCES),
            ..
        } => Status::permission_denied(msg),
        MountError::Failed {
            errno: Some(ENOENT),
            ..
        } => Status::not_found(msg),
        MountError::Timeout(_) => Status::deadline_exceeded(msg),
        MountError::Unavailable(_) => Status::failed_precondition(msg),
        _ => Status::internal(msg),
    }
}

/// The status of a failed Keystone or Manila call. Manila's HTTP answers map as the
/// Manila CSI plugin's do: 400/422 the request, 413 and quota 403s exhaustion, other
/// 403s and 406 a state the request cannot be served in, 409 a conflict to retry, the
/// rest (5xx) an outage.
pub fn manila(e: &ManilaError) -> Status {
    let msg = message("", e);
    match e {
        ManilaError::BadSecrets(_) | ManilaError::Invalid(_) => Status::invalid_argument(msg),
        ManilaError::Unauthorized(_) => Status::unauthenticated(msg),
        ManilaError::Timeout(_) => Status::deadline_exceeded(msg),
        ManilaError::Unreachable { .. } => Status::unavailable(msg),
        ManilaError::Protocol { .. } => Status::internal(msg),
        ManilaError::NotFound(_) => Status::not_found(msg),
        ManilaError::Http { code, message, .. } => match code {
            400 | 422 => Status::invalid_argument(msg),
            413 => Status::resource_exhausted(msg),
            403 if message.to_ascii_lowercase().contains("quota") => {
                Status::resource_exhausted(msg)
            }
            403 | 406 => Status::failed_precondition(msg),
            409 => Status::aborted(msg),
            _ => Status::unavailable(msg),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::Cause;
    use tonic::Code;

    fn command(errno: i32) -> CephError {
        CephError::Command {
            prefix: "fs subvolume create".into(),
            errno,
            message: "refused".into(),
        }
    }

    #[test]
    fn ceph_errnos_map_to_csi_codes() {
        let code = |errno| ceph("create", &command(errno)).code();
        assert_eq!(code(ENOENT), Code::NotFound);
        assert_eq!(code(EEXIST), Code::AlreadyExists);
        assert_eq!(code(EAGAIN), Code::Aborted);
        assert_eq!(code(EPERM), Code::PermissionDenied);
        assert_eq!(code(EACCES), Code::PermissionDenied);
        assert_eq!(code(EINVAL), Code::InvalidArgument);
        assert_eq!(code(ENOTEMPTY), Code::FailedPrecondition);
        assert_eq!(code(crate::errno::EIO), Code::Internal);
        let s = ceph("creating volume 'a'", &command(ENOENT));
        assert_eq!(
            s.message(),
            "creating volume 'a': fs subvolume create: [errno 2] refused"
        );
    }

    #[test]
    fn a_transport_failure_names_its_cause() {
        let e = CephError::Transport {
            prefix: "fs ls".into(),
            message: "no answer".into(),
            cause: Some(Cause::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))),
        };
        let s = ceph("listing", &e);
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "listing: fs ls: no answer: connection refused");
    }

    #[test]
    fn mount_errnos_map_to_csi_codes() {
        let failed = |errno| MountError::Failed {
            target: "/t".into(),
            message: "mount error".into(),
            errno,
        };
        assert_eq!(
            mount("stage", &failed(Some(EPERM))).code(),
            Code::PermissionDenied
        );
        assert_eq!(
            mount("stage", &failed(Some(EACCES))).code(),
            Code::PermissionDenied
        );
        assert_eq!(mount("stage", &failed(Some(ENOENT))).code(), Code::NotFound);
        assert_eq!(mount("stage", &failed(None)).code(), Code::Internal);
        assert_eq!(
            mount("stage", &MountError::Timeout("mount".into())).code(),
            Code::DeadlineExceeded
        );
        assert_eq!(
            mount("stage", &MountError::Unavailable("no mount.ceph".into())).code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn manila_http_errors_map_to_csi_codes() {
        let code = |c: u16, m: &str| manila(&ManilaError::from_status(c, "POST /shares", m)).code();
        assert_eq!(code(400, "bad size"), Code::InvalidArgument);
        assert_eq!(code(401, ""), Code::Unauthenticated);
        assert_eq!(code(404, ""), Code::NotFound);
        assert_eq!(code(413, "Quota exceeded"), Code::ResourceExhausted);
        assert_eq!(
            code(403, "Requested share exceeds allowed project quota"),
            Code::ResourceExhausted
        );
        assert_eq!(
            code(403, "Share still has 1 dependent snapshots."),
            Code::FailedPrecondition
        );
        assert_eq!(code(409, ""), Code::Aborted);
        assert_eq!(code(500, ""), Code::Unavailable);
        assert_eq!(code(503, ""), Code::Unavailable);
        assert_eq!(
            manila(&ManilaError::Invalid("Share type not found.".into())).code(),
            Code::InvalidArgument
        );
        let unreachable = ManilaError::Unreachable {
            what: "Keystone".into(),
            cause: Cause::new(std::io::Error::other("connection refused")),
        };
        let s = manila(&unreachable);
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "Keystone: unreachable: connection refused");
    }
}
