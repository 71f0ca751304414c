//! The codes of user messages (`/messages`, ≥ 2.37) and the text Manila shows for them.
//!
//! Manila stores only an action ID and a detail ID with each message; the API builds
//! `user_message` as `"<action text>: <detail text>"` from the two tables of
//! `manila/message/message_field.py` (`Action`, `Detail`). Only the entries this fake
//! emits are listed; their codes and texts are Manila's, so clients that filter on
//! `action_id`/`detail_id` or show the text see what a real cloud gives them.

/// What was being done when something failed (`action_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `001`: the scheduler placing a new share.
    AllocateHost,
    /// `002`: the share manager creating a share.
    Create,
    /// `005`: a periodic status update (an asynchronous create from a snapshot).
    Update,
    /// `008`: extending a share.
    Extend,
    /// `009`: shrinking a share.
    Shrink,
    /// `010`: applying access rules.
    UpdateAccessRules,
}

impl Action {
    /// The code clients see and filter on.
    pub fn id(self) -> &'static str {
        match self {
            Action::AllocateHost => "001",
            Action::Create => "002",
            Action::Update => "005",
            Action::Extend => "008",
            Action::Shrink => "009",
            Action::UpdateAccessRules => "010",
        }
    }

    /// Manila's text for it.
    pub fn text(self) -> &'static str {
        match self {
            Action::AllocateHost => "allocate host",
            Action::Create => "create",
            Action::Update => "update",
            Action::Extend => "extend",
            Action::Shrink => "shrink",
            Action::UpdateAccessRules => "update access rules",
        }
    }
}

/// Why it failed (`detail_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// `001`: any failure without a more specific detail.
    UnknownError,
    /// `002`: the scheduler found no host, no particular filter to blame.
    NoValidHost,
    /// `008`: no host passed the capabilities filter (e.g. a protocol the back end does
    /// not serve: the scheduler turns the share protocol into a `storage_protocol`
    /// capability requirement).
    FilterCapabilities,
    /// `015`: the driver failed to extend; the share is in `extending_error`.
    DriverFailedExtend,
    /// `017`: an asynchronous create from a snapshot (a CephFS clone) failed.
    DriverFailedCreatingFromSnap,
    /// `018`: the driver refused to shrink below the used space; the share is back in
    /// `available` at its old size.
    DriverRefusedShrink,
    /// `020`: the back end refused the client ID (Manila's own, or one Ceph will not
    /// touch).
    ForbiddenClientAccess,
    /// `021`: an access type or level the driver does not support (anything but cephx).
    UnsupportedClientAccess,
}

impl Detail {
    /// The code clients see and filter on.
    pub fn id(self) -> &'static str {
        match self {
            Detail::UnknownError => "001",
            Detail::NoValidHost => "002",
            Detail::FilterCapabilities => "008",
            Detail::DriverFailedExtend => "015",
            Detail::DriverFailedCreatingFromSnap => "017",
            Detail::DriverRefusedShrink => "018",
            Detail::ForbiddenClientAccess => "020",
            Detail::UnsupportedClientAccess => "021",
        }
    }

    /// Manila's text for it.
    pub fn text(self) -> &'static str {
        match self {
            Detail::UnknownError => "An unknown error occurred.",
            Detail::NoValidHost => {
                "No storage could be allocated for this share request. Trying again with a \
                 different size or share type may succeed."
            }
            Detail::FilterCapabilities => {
                "No storage could be allocated for this share request, Capabilities filter \
                 didn't succeed."
            }
            Detail::DriverFailedExtend => {
                "Share Driver failed to extend share, The share status has been set to \
                 extending_error. This action cannot be re-attempted until the status has been \
                 rectified. Contact your administrator to determine the cause of this failure."
            }
            Detail::DriverFailedCreatingFromSnap => {
                "Share Driver has failed to create the share from snapshot. This operation can \
                 be re-attempted by creating a new share. Contact your administrator to \
                 determine the cause of this failure."
            }
            Detail::DriverRefusedShrink => {
                "Share Driver refused to shrink the share. The size to be shrunk is smaller \
                 than the current used space. The share status has been set to available. \
                 Please select a size greater than the current used space."
            }
            Detail::ForbiddenClientAccess => {
                "Failed to grant access to client. The client ID used may be forbidden. You \
                 may try again with a different client identifier."
            }
            Detail::UnsupportedClientAccess => {
                "Failed to grant access to client. The access level or type may be \
                 unsupported. You may try again with a different access level or access type."
            }
        }
    }
}

/// The `user_message` of a message, as Manila's view builds it.
pub fn user_message(action: Action, detail: Detail) -> String {
    format!("{}: {}", action.text(), detail.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(action: Action, detail: Detail, codes: (&str, &str), text: &str) {
        assert_eq!((action.id(), detail.id()), codes, "{action:?}/{detail:?}");
        assert_eq!(user_message(action, detail), text, "{action:?}/{detail:?}");
    }

    /// Every pair the fake emits, pinned to Manila's codes and wording.
    #[test]
    fn codes_and_texts_are_manilas() {
        check(
            Action::AllocateHost,
            Detail::NoValidHost,
            ("001", "002"),
            "allocate host: No storage could be allocated for this share request. Trying again with a different size or share type may succeed.",
        );
        check(
            Action::AllocateHost,
            Detail::FilterCapabilities,
            ("001", "008"),
            "allocate host: No storage could be allocated for this share request, Capabilities filter didn't succeed.",
        );
        check(
            Action::Create,
            Detail::UnknownError,
            ("002", "001"),
            "create: An unknown error occurred.",
        );
        check(
            Action::Update,
            Detail::DriverFailedCreatingFromSnap,
            ("005", "017"),
            "update: Share Driver has failed to create the share from snapshot. This operation can be re-attempted by creating a new share. Contact your administrator to determine the cause of this failure.",
        );
        check(
            Action::Extend,
            Detail::DriverFailedExtend,
            ("008", "015"),
            "extend: Share Driver failed to extend share, The share status has been set to extending_error. This action cannot be re-attempted until the status has been rectified. Contact your administrator to determine the cause of this failure.",
        );
        check(
            Action::Shrink,
            Detail::DriverRefusedShrink,
            ("009", "018"),
            "shrink: Share Driver refused to shrink the share. The size to be shrunk is smaller than the current used space. The share status has been set to available. Please select a size greater than the current used space.",
        );
        check(
            Action::UpdateAccessRules,
            Detail::ForbiddenClientAccess,
            ("010", "020"),
            "update access rules: Failed to grant access to client. The client ID used may be forbidden. You may try again with a different client identifier.",
        );
        check(
            Action::UpdateAccessRules,
            Detail::UnsupportedClientAccess,
            ("010", "021"),
            "update access rules: Failed to grant access to client. The access level or type may be unsupported. You may try again with a different access level or access type.",
        );
    }
}
