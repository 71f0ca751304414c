//! The mgr `volumes` module's commands, one module per family, and their table. The
//! model they work on is [`crate::volumes::Volumes`].

mod access;
mod common;
mod groups;
mod options;
mod snapshots;
mod subvolumes;

use crate::command::{ArgSpec, ArgType, CommandSpec, Daemon, opt, req};
use crate::state::{CommandTable, Handler};

use access::*;
use groups::*;
use options::*;
use snapshots::*;
use subvolumes::*;

const FORMAT: ArgSpec = opt("format", ArgType::Str);
const VOL: ArgSpec = req("vol_name", ArgType::Str);
const SUB: ArgSpec = req("sub_name", ArgType::Str);
const GROUP: ArgSpec = opt("group_name", ArgType::Str);
const GROUP_REQ: ArgSpec = req("group_name", ArgType::Str);
const SNAP: ArgSpec = req("snap_name", ArgType::Str);
const KEY: ArgSpec = req("key_name", ArgType::Str);
const FORCE: ArgSpec = opt("force", ArgType::Bool);
const SIZE: ArgSpec = opt("size", ArgType::Int);
const POOL: ArgSpec = opt("pool_layout", ArgType::Str);
const UID: ArgSpec = opt("uid", ArgType::Int);
const GID: ArgSpec = opt("gid", ArgType::Int);
const MODE: ArgSpec = opt("mode", ArgType::Str);
const AUTH_ID: ArgSpec = req("auth_id", ArgType::Str);

macro_rules! vcmd {
    ($prefix:literal, $perm:literal, $args:expr, $handler:expr) => {
        (
            CommandSpec {
                prefix: $prefix,
                daemon: Daemon::Mgr,
                module: "volumes",
                perm: $perm,
                args: $args,
            },
            $handler as Handler,
        )
    };
}

/// The `volumes` module's commands.
pub(crate) const COMMANDS: CommandTable = &[
    vcmd!(
        "fs subvolumegroup create",
        "rw",
        &[FORMAT, VOL, GROUP_REQ, SIZE, POOL, UID, GID, MODE],
        group_create
    ),
    vcmd!(
        "fs subvolumegroup rm",
        "rw",
        &[FORMAT, VOL, GROUP_REQ, FORCE],
        group_rm
    ),
    vcmd!("fs subvolumegroup ls", "r", &[FORMAT, VOL], group_ls),
    vcmd!(
        "fs subvolumegroup getpath",
        "r",
        &[FORMAT, VOL, GROUP_REQ],
        group_getpath
    ),
    vcmd!(
        "fs subvolumegroup info",
        "r",
        &[FORMAT, VOL, GROUP_REQ],
        group_info
    ),
    vcmd!("fs subvolumegroup exist", "r", &[FORMAT, VOL], group_exist),
    vcmd!(
        "fs subvolume create",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            SIZE,
            GROUP,
            POOL,
            UID,
            GID,
            MODE,
            opt("namespace_isolated", ArgType::Bool)
        ],
        subvolume_create
    ),
    vcmd!(
        "fs subvolume rm",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            GROUP,
            FORCE,
            opt("retain_snapshots", ArgType::Bool)
        ],
        subvolume_rm
    ),
    vcmd!(
        "fs subvolume getpath",
        "rw",
        &[FORMAT, VOL, SUB, GROUP],
        subvolume_getpath
    ),
    vcmd!(
        "fs subvolume info",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        subvolume_info
    ),
    vcmd!("fs subvolume ls", "r", &[FORMAT, VOL, GROUP], subvolume_ls),
    vcmd!(
        "fs subvolume exist",
        "r",
        &[FORMAT, VOL, GROUP],
        subvolume_exist
    ),
    vcmd!(
        "fs subvolume resize",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            req("new_size", ArgType::Any),
            GROUP,
            opt("no_shrink", ArgType::Bool)
        ],
        subvolume_resize
    ),
    vcmd!(
        "fs subvolume metadata set",
        "rw",
        &[FORMAT, VOL, SUB, KEY, req("value", ArgType::Str), GROUP],
        metadata_set
    ),
    vcmd!(
        "fs subvolume metadata get",
        "r",
        &[FORMAT, VOL, SUB, KEY, GROUP],
        metadata_get
    ),
    vcmd!(
        "fs subvolume metadata ls",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        metadata_ls
    ),
    vcmd!(
        "fs subvolume metadata rm",
        "rw",
        &[FORMAT, VOL, SUB, KEY, GROUP, FORCE],
        metadata_rm
    ),
    vcmd!(
        "fs subvolume snapshot metadata set",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            SNAP,
            KEY,
            req("value", ArgType::Str),
            GROUP
        ],
        metadata_set
    ),
    vcmd!(
        "fs subvolume snapshot metadata get",
        "r",
        &[FORMAT, VOL, SUB, SNAP, KEY, GROUP],
        metadata_get
    ),
    vcmd!(
        "fs subvolume snapshot metadata ls",
        "r",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        metadata_ls
    ),
    vcmd!(
        "fs subvolume snapshot metadata rm",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, KEY, GROUP, FORCE],
        metadata_rm
    ),
    vcmd!(
        "fs subvolume snapshot create",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_create
    ),
    vcmd!(
        "fs subvolume snapshot rm",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP, FORCE],
        snapshot_rm
    ),
    vcmd!(
        "fs subvolume snapshot ls",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        snapshot_ls
    ),
    vcmd!(
        "fs subvolume snapshot info",
        "r",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_info
    ),
    vcmd!(
        "fs subvolume snapshot protect",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_protect
    ),
    vcmd!(
        "fs subvolume snapshot unprotect",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_protect
    ),
    vcmd!(
        "fs subvolume snapshot clone",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            SNAP,
            req("target_sub_name", ArgType::Str),
            POOL,
            GROUP,
            opt("target_group_name", ArgType::Str)
        ],
        snapshot_clone
    ),
    vcmd!(
        "fs clone status",
        "r",
        &[FORMAT, VOL, req("clone_name", ArgType::Str), GROUP],
        clone_status
    ),
    vcmd!(
        "fs clone cancel",
        "r",
        &[FORMAT, VOL, req("clone_name", ArgType::Str), GROUP],
        clone_cancel
    ),
    vcmd!(
        "fs subvolume authorize",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            AUTH_ID,
            GROUP,
            opt("access_level", ArgType::Str),
            opt("tenant_id", ArgType::Str),
            opt("allow_existing_id", ArgType::Bool)
        ],
        subvolume_authorize
    ),
    vcmd!(
        "fs subvolume deauthorize",
        "rw",
        &[FORMAT, VOL, SUB, AUTH_ID, GROUP],
        subvolume_deauthorize
    ),
    vcmd!(
        "fs subvolume authorized_list",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        subvolume_authorized_list
    ),
    vcmd!(
        "fs subvolume evict",
        "rw",
        &[FORMAT, VOL, SUB, AUTH_ID, GROUP],
        subvolume_evict
    ),
    (
        CommandSpec {
            prefix: "config set",
            daemon: Daemon::Mon,
            module: "config",
            perm: "rw",
            args: &[
                req("who", ArgType::Str),
                req("name", ArgType::Str),
                req("value", ArgType::Str),
                opt("force", ArgType::Bool),
            ],
        },
        config_set,
    ),
    (
        CommandSpec {
            prefix: "config rm",
            daemon: Daemon::Mon,
            module: "config",
            perm: "rw",
            args: &[req("who", ArgType::Str), req("name", ArgType::Str)],
        },
        config_rm,
    ),
    (
        CommandSpec {
            prefix: "config get",
            daemon: Daemon::Mon,
            module: "config",
            perm: "r",
            args: &[req("who", ArgType::Str), req("key", ArgType::Str)],
        },
        config_get,
    ),
];
