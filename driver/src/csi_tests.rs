//! Tests of the generated CSI protocol code: redacting `Debug` for secret
//! fields, the set of redacted messages, and the wire format (field numbers).

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use prost_reflect::{DescriptorPool, Value};

use crate::csi::v1::{self, volume_capability};
use crate::csi::{FILE_DESCRIPTOR_SET, SECRET_BEARING_MESSAGES};

/// A realistic cephx key; it must never show up in `Debug` output.
const SECRET: &str = "AQBsecretvalue==";
const KEY: &str = "userKey";

fn secrets() -> HashMap<String, String> {
    HashMap::from([
        (KEY.to_owned(), SECRET.to_owned()),
        ("userID".to_owned(), format!("{SECRET}-id")),
    ])
}

fn mount_capability() -> v1::VolumeCapability {
    v1::VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume {
                fs_type: "ceph".to_owned(),
                mount_flags: vec!["noatime".to_owned()],
                volume_mount_group: String::new(),
            },
        )),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
        }),
    }
}

/// Asserts both `{:?}` and `{:#?}` of `msg` hide the secret values but show
/// the secret keys, the redaction marker and every string in `visible`.
fn assert_redacted<T: std::fmt::Debug>(msg: &T, visible: &[&str]) {
    for text in [format!("{msg:?}"), format!("{msg:#?}")] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
        assert!(!text.contains("AQB"), "secret prefix leaked: {text}");
        assert!(text.contains(KEY), "secret key missing: {text}");
        assert!(text.contains("userID"), "secret key missing: {text}");
        assert!(text.contains("\"<redacted>\""), "marker missing: {text}");
        for needle in visible {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
    }
}

#[test]
fn node_stage_volume_request_debug_redacts_secrets() {
    let msg = v1::NodeStageVolumeRequest {
        volume_id: "vol-0001".to_owned(),
        publish_context: HashMap::from([("attached".to_owned(), "yes".to_owned())]),
        staging_target_path: "/var/lib/kubelet/staging/vol-0001".to_owned(),
        volume_capability: Some(mount_capability()),
        secrets: secrets(),
        volume_context: HashMap::from([("fsName".to_owned(), "cephfs".to_owned())]),
    };
    assert_redacted(
        &msg,
        &[
            "NodeStageVolumeRequest",
            "vol-0001",
            "/var/lib/kubelet/staging/vol-0001",
            "attached",
            "fsName",
            "cephfs",
            "noatime",
            "MultiNodeMultiWriter",
        ],
    );
}

#[test]
fn create_volume_request_debug_redacts_secrets() {
    let msg = v1::CreateVolumeRequest {
        name: "pvc-1234".to_owned(),
        capacity_range: Some(v1::CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_capability()],
        parameters: HashMap::from([("type".to_owned(), "cephfs".to_owned())]),
        secrets: secrets(),
        mutable_parameters: HashMap::from([("iops".to_owned(), "100".to_owned())]),
        ..Default::default()
    };
    assert_redacted(
        &msg,
        &[
            "CreateVolumeRequest",
            "pvc-1234",
            "1073741824",
            "cephfs",
            "iops",
        ],
    );
}

#[test]
fn node_publish_volume_request_debug_redacts_secrets() {
    let msg = v1::NodePublishVolumeRequest {
        volume_id: "vol-0002".to_owned(),
        staging_target_path: "/staging/vol-0002".to_owned(),
        target_path: "/pods/abc/volumes/vol-0002".to_owned(),
        volume_capability: Some(mount_capability()),
        readonly: true,
        secrets: secrets(),
        ..Default::default()
    };
    assert_redacted(
        &msg,
        &["vol-0002", "/pods/abc/volumes/vol-0002", "readonly: true"],
    );
}

#[test]
fn delete_volume_request_debug_redacts_secrets() {
    let msg = v1::DeleteVolumeRequest {
        volume_id: "vol-0003".to_owned(),
        secrets: secrets(),
    };
    assert_redacted(&msg, &["DeleteVolumeRequest", "vol-0003"]);
}

#[test]
fn create_snapshot_request_debug_redacts_secrets() {
    let msg = v1::CreateSnapshotRequest {
        source_volume_id: "vol-0004".to_owned(),
        name: "snap-1".to_owned(),
        secrets: secrets(),
        parameters: HashMap::from([("pool".to_owned(), "rbd".to_owned())]),
        accessibility_requirements: None,
    };
    assert_redacted(&msg, &["vol-0004", "snap-1", "pool", "rbd"]);
}

#[test]
fn other_secret_bearing_requests_debug_redact_secrets() {
    assert_redacted(
        &v1::ControllerPublishVolumeRequest {
            volume_id: "vol-0005".to_owned(),
            node_id: "node-a".to_owned(),
            secrets: secrets(),
            ..Default::default()
        },
        &["vol-0005", "node-a"],
    );
    assert_redacted(
        &v1::ControllerUnpublishVolumeRequest {
            volume_id: "vol-0006".to_owned(),
            node_id: "node-b".to_owned(),
            secrets: secrets(),
        },
        &["vol-0006", "node-b"],
    );
    assert_redacted(
        &v1::ValidateVolumeCapabilitiesRequest {
            volume_id: "vol-0007".to_owned(),
            secrets: secrets(),
            ..Default::default()
        },
        &["vol-0007"],
    );
    assert_redacted(
        &v1::ControllerExpandVolumeRequest {
            volume_id: "vol-0008".to_owned(),
            secrets: secrets(),
            ..Default::default()
        },
        &["vol-0008"],
    );
    assert_redacted(
        &v1::NodeExpandVolumeRequest {
            volume_id: "vol-0009".to_owned(),
            volume_path: "/pods/x".to_owned(),
            secrets: secrets(),
            ..Default::default()
        },
        &["vol-0009", "/pods/x"],
    );
    assert_redacted(
        &v1::ControllerModifyVolumeRequest {
            volume_id: "vol-0010".to_owned(),
            secrets: secrets(),
            mutable_parameters: HashMap::from([("qos".to_owned(), "gold".to_owned())]),
        },
        &["vol-0010", "qos", "gold"],
    );
    assert_redacted(
        &v1::DeleteSnapshotRequest {
            snapshot_id: "snap-2".to_owned(),
            secrets: secrets(),
        },
        &["snap-2"],
    );
    assert_redacted(
        &v1::ListSnapshotsRequest {
            snapshot_id: "snap-3".to_owned(),
            secrets: secrets(),
            ..Default::default()
        },
        &["snap-3"],
    );
    assert_redacted(
        &v1::CreateVolumeGroupSnapshotRequest {
            name: "group-1".to_owned(),
            source_volume_ids: vec!["vol-0011".to_owned()],
            secrets: secrets(),
            ..Default::default()
        },
        &["group-1", "vol-0011"],
    );
}

/// Every redacted message, built by generated code with all its secret
/// fields filled in, keeps the values out of its `Debug` output.
#[test]
fn every_secret_bearing_message_redacts_every_secret_field() {
    let sentinel = "AQBprobeSentinel==";
    let key = "probe-key";
    let probes = crate::csi::secret_debug_probes(sentinel, key);
    let probed: Vec<&str> = probes.iter().map(|p| p.message).collect();
    assert_eq!(probed, SECRET_BEARING_MESSAGES);
    for probe in &probes {
        assert!(probe.secret_fields > 0, "nothing probed in {probe:?}");
        for text in [&probe.debug, &probe.pretty] {
            assert!(!text.contains(sentinel), "secret leaked: {probe:?}");
            assert!(text.contains("\"<redacted>\""), "marker missing: {probe:?}");
            if probe.map_keys {
                assert!(text.contains(key), "secret key missing: {probe:?}");
            }
        }
    }
}

/// Messages without secret fields keep prost's derived `Debug`.
#[test]
fn messages_without_secrets_print_everything() {
    let msg = v1::NodeUnstageVolumeRequest {
        volume_id: "vol-0012".to_owned(),
        staging_target_path: "/staging/vol-0012".to_owned(),
    };
    let text = format!("{msg:?}");
    assert!(text.contains("vol-0012") && text.contains("/staging/vol-0012"));
    let text = format!("{:?}", mount_capability());
    assert!(text.contains("MultiNodeMultiWriter"), "{text}");
}

/// Names of the messages of `csi.v1` that have a `csi_secret` field, read
/// straight from the descriptor embedded in the crate.
fn secret_bearing_messages_in_descriptor() -> BTreeSet<String> {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    let secret = pool.get_extension_by_name("csi.v1.csi_secret").unwrap();
    assert_eq!(secret.number(), 1059);
    pool.all_messages()
        .filter(|m| m.package_name() == "csi.v1")
        .filter(|m| {
            m.fields().any(|f| {
                let options = f.options();
                options.has_extension(&secret)
                    && *options.get_extension(&secret) == Value::Bool(true)
            })
        })
        .map(|m| m.full_name().to_owned())
        .collect()
}

#[test]
fn redacted_messages_match_descriptor_secret_fields() {
    let from_descriptor = secret_bearing_messages_in_descriptor();
    let redacted: BTreeSet<String> = SECRET_BEARING_MESSAGES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(redacted.len(), SECRET_BEARING_MESSAGES.len(), "duplicates");
    assert_eq!(redacted, from_descriptor);

    // The CSI v1.13.0 messages with `[(csi_secret) = true]` fields.
    let spec: BTreeSet<String> = [
        "CreateVolumeRequest",
        "DeleteVolumeRequest",
        "ControllerPublishVolumeRequest",
        "ControllerUnpublishVolumeRequest",
        "ValidateVolumeCapabilitiesRequest",
        "ControllerModifyVolumeRequest",
        "CreateSnapshotRequest",
        "DeleteSnapshotRequest",
        "ListSnapshotsRequest",
        "GetSnapshotRequest",
        "ControllerExpandVolumeRequest",
        "NodeStageVolumeRequest",
        "NodePublishVolumeRequest",
        "NodeExpandVolumeRequest",
        "CreateVolumeGroupSnapshotRequest",
        "DeleteVolumeGroupSnapshotRequest",
        "GetVolumeGroupSnapshotRequest",
        "GetMetadataAllocatedRequest",
        "GetMetadataDeltaRequest",
        "ControllerListVolumeHealthRequest",
        "ControllerGetVolumeHealthRequest",
        "NodeGetStorageHealthRequest",
    ]
    .iter()
    .map(|name| format!("csi.v1.{name}"))
    .collect();
    assert_eq!(from_descriptor, spec);
}

#[test]
fn descriptor_carries_spec_options() {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    for (name, number) in [
        ("csi.v1.csi_secret", 1059),
        ("csi.v1.alpha_field", 1060),
        ("csi.v1.alpha_enum", 1060),
        ("csi.v1.alpha_enum_value", 1060),
        ("csi.v1.alpha_message", 1060),
        ("csi.v1.alpha_method", 1060),
        ("csi.v1.alpha_service", 1060),
    ] {
        let ext = pool.get_extension_by_name(name).unwrap();
        assert_eq!(ext.number(), number, "{name}");
    }
    let file = pool.get_file_by_name("csi.proto").unwrap();
    assert_eq!(file.package_name(), "csi.v1");
    let go_package = file
        .file_descriptor_proto()
        .options
        .as_ref()
        .and_then(|o| o.go_package.clone());
    assert_eq!(
        go_package.as_deref(),
        Some("github.com/container-storage-interface/spec/lib/go/csi")
    );
    let services: Vec<String> = file.services().map(|s| s.name().to_owned()).collect();
    assert_eq!(
        services,
        [
            "Identity",
            "Controller",
            "GroupController",
            "SnapshotMetadata",
            "Node"
        ]
    );
}

#[test]
fn enum_values_match_spec() {
    use v1::controller_service_capability::rpc::Type as Ctrl;
    use v1::node_service_capability::rpc::Type as NodeCap;
    use v1::plugin_capability::service::Type as PluginService;
    use volume_capability::access_mode::Mode;

    assert_eq!(Mode::SingleNodeWriter as i32, 1);
    assert_eq!(Mode::MultiNodeMultiWriter as i32, 5);
    assert_eq!(Mode::SingleNodeSingleWriter as i32, 6);
    assert_eq!(Mode::SingleNodeMultiWriter as i32, 7);
    assert_eq!(PluginService::GroupControllerService as i32, 3);
    assert_eq!(PluginService::SnapshotMetadataService as i32, 4);
    assert_eq!(Ctrl::ListVolumesPublishedNodes as i32, 10);
    assert_eq!(Ctrl::SingleNodeMultiWriter as i32, 13);
    assert_eq!(Ctrl::ModifyVolume as i32, 14);
    assert_eq!(Ctrl::GetSnapshot as i32, 15);
    assert_eq!(NodeCap::VolumeCondition as i32, 4);
    assert_eq!(NodeCap::VolumeMountGroup as i32, 6);
    assert_eq!(v1::volume_usage::Unit::Inodes as i32, 2);
    // v1.13.
    assert_eq!(PluginService::SnapshotAccessibilityConstraints as i32, 5);
    assert_eq!(Ctrl::GetVolumeHealth as i32, 16);
    assert_eq!(Ctrl::ListVolumeHealth as i32, 17);
    assert_eq!(NodeCap::GetVolumeHealth as i32, 7);
    assert_eq!(NodeCap::GetStorageHealth as i32, 8);
    assert_eq!(v1::VolumeHealthErrorType::DataLoss as i32, 3);
    assert_eq!(v1::StorageHealthErrorType::StorageUnreachable as i32, 2);
}

#[test]
fn v1_13_field_numbers() {
    let topo = v1::Topology {
        segments: [("zone".to_owned(), "a".to_owned())].into(),
    };
    let snap = v1::Snapshot {
        snapshot_id: "s".to_owned(),
        accessible_topology: vec![topo.clone()],
        ..Default::default()
    };
    // accessible_topology = 7 (tag 0x3a), after snapshot_id = 2 (tag 0x12).
    let bytes = snap.encode_to_vec();
    assert_eq!(&bytes[..3], [0x12, 1, b's']);
    assert_eq!(bytes[3], 0x3a);
    let req = v1::CreateSnapshotRequest {
        accessibility_requirements: Some(v1::TopologyRequirement {
            requisite: vec![topo],
            preferred: Vec::new(),
        }),
        ..Default::default()
    };
    // accessibility_requirements = 5 (tag 0x2a).
    assert_eq!(req.encode_to_vec()[0], 0x2a);
    let health = v1::NodeGetVolumeHealthRequest {
        volume_id: "v".to_owned(),
        volume_publish_path: "/p".to_owned(),
        staging_target_path: "/s".to_owned(),
    };
    assert_eq!(
        health.encode_to_vec(),
        [0x0a, 1, b'v', 0x12, 2, b'/', b'p', 0x1a, 2, b'/', b's']
    );
    let entry = v1::volume_health::VolumeHealthEntry {
        status: v1::VolumeHealthErrorType::Inaccessible as i32,
        reason: "R".to_owned(),
        message: String::new(),
    };
    assert_eq!(entry.encode_to_vec(), [0x08, 2, 0x12, 1, b'R']);
}

// ---------------------------------------------------------------------------
// Wire format.

/// A length-delimited field (wire type 2) with a one-byte tag and length.
fn len_field(number: u8, payload: &[u8]) -> Vec<u8> {
    assert!(number < 16 && payload.len() < 128);
    let mut out = vec![(number << 3) | 2, payload.len() as u8];
    out.extend_from_slice(payload);
    out
}

/// One `map<string, string>` entry: key is field 1, value is field 2.
fn map_entry(number: u8, key: &str, value: &str) -> Vec<u8> {
    let mut entry = len_field(1, key.as_bytes());
    entry.extend(len_field(2, value.as_bytes()));
    len_field(number, &entry)
}

#[test]
fn node_stage_volume_request_field_numbers() {
    // volume_id = 1, staging_target_path = 3, secrets = 5 (written out by hand).
    let bytes: Vec<u8> = [
        &[0x0a, 0x05][..],
        b"vol-1",
        &[0x1a, 0x06],
        b"/stage",
        &[0x2a, 0x0e, 0x0a, 0x07],
        b"userKey",
        &[0x12, 0x03],
        b"AQB",
    ]
    .concat();
    let msg = v1::NodeStageVolumeRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.volume_id, "vol-1");
    assert_eq!(msg.staging_target_path, "/stage");
    assert_eq!(msg.secrets.get("userKey").map(String::as_str), Some("AQB"));
    assert!(msg.publish_context.is_empty() && msg.volume_context.is_empty());
    assert_eq!(msg.encode_to_vec(), bytes);

    // publish_context = 2, volume_capability = 4, volume_context = 6.
    let mut bytes = map_entry(2, "pc", "1");
    bytes.extend(len_field(4, &len_field(3, &[0x08, 0x01])));
    bytes.extend(map_entry(6, "vc", "2"));
    let msg = v1::NodeStageVolumeRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.publish_context["pc"], "1");
    assert_eq!(msg.volume_context["vc"], "2");
    let mode = msg.volume_capability.unwrap().access_mode.unwrap().mode();
    assert_eq!(mode, volume_capability::access_mode::Mode::SingleNodeWriter);
}

#[test]
fn create_volume_request_field_numbers() {
    // name = 1, secrets = 5, mutable_parameters = 8.
    let mut bytes = len_field(1, b"pvc-9");
    bytes.extend(map_entry(5, "k", "v"));
    bytes.extend(map_entry(8, "m", "n"));
    let msg = v1::CreateVolumeRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.name, "pvc-9");
    assert_eq!(msg.secrets["k"], "v");
    assert_eq!(msg.mutable_parameters["m"], "n");
    assert!(msg.parameters.is_empty());
    assert_eq!(msg.encode_to_vec(), bytes);

    // parameters = 4 must not land in secrets.
    let msg = v1::CreateVolumeRequest::decode(map_entry(4, "p", "q").as_slice()).unwrap();
    assert_eq!(msg.parameters["p"], "q");
    assert!(msg.secrets.is_empty());
}

#[test]
fn node_publish_volume_request_field_numbers() {
    // target_path = 4, readonly = 6 (varint), secrets = 7.
    let mut bytes = len_field(4, b"/target");
    bytes.extend([0x30, 0x01]);
    bytes.extend(map_entry(7, "k", "v"));
    let msg = v1::NodePublishVolumeRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.target_path, "/target");
    assert!(msg.readonly);
    assert_eq!(msg.secrets["k"], "v");
    assert_eq!(msg.encode_to_vec(), bytes);
}

#[test]
fn controller_modify_volume_request_field_numbers() {
    // volume_id = 1, secrets = 2, mutable_parameters = 3.
    let mut bytes = len_field(1, b"vol");
    bytes.extend(map_entry(2, "k", "v"));
    bytes.extend(map_entry(3, "m", "n"));
    let msg = v1::ControllerModifyVolumeRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.volume_id, "vol");
    assert_eq!(msg.secrets["k"], "v");
    assert_eq!(msg.mutable_parameters["m"], "n");
    assert_eq!(msg.encode_to_vec(), bytes);
}

#[test]
fn volume_capability_field_numbers() {
    // mount = 2 { fs_type = 1 }, access_mode = 3 { mode = 1 = 7 }.
    let mut bytes = len_field(2, &len_field(1, b"ext4"));
    bytes.extend(len_field(3, &[0x08, 0x07]));
    let cap = v1::VolumeCapability::decode(bytes.as_slice()).unwrap();
    let Some(volume_capability::AccessType::Mount(mount)) = &cap.access_type else {
        panic!("not a mount capability: {cap:?}");
    };
    assert_eq!(mount.fs_type, "ext4");
    assert_eq!(
        cap.access_mode.unwrap().mode(),
        volume_capability::access_mode::Mode::SingleNodeMultiWriter
    );
    assert_eq!(cap.encode_to_vec(), bytes);
}

#[test]
fn node_get_volume_stats_response_field_numbers() {
    // usage = 1 { available = 1, unit = 4 }, volume_condition = 2 { abnormal = 1, message = 2 }.
    let mut bytes = len_field(1, &[0x08, 0x2a, 0x20, 0x01]);
    let mut condition = vec![0x08, 0x01];
    condition.extend(len_field(2, b"degraded"));
    bytes.extend(len_field(2, &condition));
    let msg = v1::NodeGetVolumeStatsResponse::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.usage[0].available, 42);
    assert_eq!(msg.usage[0].unit(), v1::volume_usage::Unit::Bytes);
    let condition = msg.volume_condition.as_ref().unwrap();
    assert!(condition.abnormal);
    assert_eq!(condition.message, "degraded");
    assert_eq!(msg.encode_to_vec(), bytes);
}

#[test]
fn group_snapshot_request_field_numbers() {
    // group_snapshot_id = 1, snapshot_ids = 2, secrets = 3.
    let mut bytes = len_field(1, b"g");
    bytes.extend(len_field(2, b"s1"));
    bytes.extend(len_field(2, b"s2"));
    bytes.extend(map_entry(3, "k", "v"));
    let msg = v1::DeleteVolumeGroupSnapshotRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.group_snapshot_id, "g");
    assert_eq!(msg.snapshot_ids, ["s1", "s2"]);
    assert_eq!(msg.secrets["k"], "v");
    assert_eq!(msg.encode_to_vec(), bytes);
}

#[test]
fn messages_round_trip() {
    let create = v1::CreateVolumeRequest {
        name: "pvc-rt".to_owned(),
        capacity_range: Some(v1::CapacityRange {
            required_bytes: 5,
            limit_bytes: 10,
        }),
        volume_capabilities: vec![mount_capability()],
        parameters: HashMap::from([("a".to_owned(), "b".to_owned())]),
        secrets: secrets(),
        volume_content_source: Some(v1::VolumeContentSource {
            r#type: Some(v1::volume_content_source::Type::Snapshot(
                v1::volume_content_source::SnapshotSource {
                    snapshot_id: "snap".to_owned(),
                },
            )),
        }),
        accessibility_requirements: Some(v1::TopologyRequirement {
            requisite: vec![v1::Topology {
                segments: HashMap::from([("zone".to_owned(), "z1".to_owned())]),
            }],
            preferred: vec![],
        }),
        mutable_parameters: HashMap::from([("c".to_owned(), "d".to_owned())]),
    };
    let decoded = v1::CreateVolumeRequest::decode(create.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, create);

    let snapshot = v1::CreateSnapshotResponse {
        snapshot: Some(v1::Snapshot {
            size_bytes: 1,
            snapshot_id: "snap".to_owned(),
            source_volume_id: "vol".to_owned(),
            creation_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            ready_to_use: true,
            group_snapshot_id: "group".to_owned(),
            accessible_topology: vec![v1::Topology {
                segments: HashMap::from([("zone".to_owned(), "a".to_owned())]),
            }],
        }),
    };
    let decoded = v1::CreateSnapshotResponse::decode(snapshot.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, snapshot);

    let probe = v1::ProbeResponse { ready: Some(false) };
    let bytes = probe.encode_to_vec();
    // ready = 1 is a google.protobuf.BoolValue; an explicit false is still sent.
    assert_eq!(bytes, [0x0a, 0x00]);
    assert_eq!(v1::ProbeResponse::decode(bytes.as_slice()).unwrap(), probe);
}
