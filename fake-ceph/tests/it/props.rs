//! Property tests: no input from the network panics the fake or escapes its data dir.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::Fake;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("cephfs"),
            Just("csi"),
            Just(".."),
            Just("/"),
            Just(""),
            Just("a/b"),
            Just("_nogroup"),
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_command() -> impl Strategy<Value = Value> {
    let prefixes = fake_ceph::cluster::command_prefixes();
    let keys = prop::sample::subsequence(
        vec![
            "vol_name",
            "group_name",
            "sub_name",
            "snap_name",
            "target_sub_name",
            "size",
            "new_size",
            "mode",
            "pool_layout",
            "force",
            "entity",
            "caps",
            "key_name",
            "value",
            "clone_name",
            "auth_id",
            "pool",
            "namespace",
            "object",
            "keys",
            "vals",
            "filters",
            "format",
            "no_shrink",
            "retain_snapshots",
        ],
        0..8,
    );
    (
        prop::sample::select(prefixes),
        keys,
        prop::collection::vec(arb_json(), 8),
    )
        .prop_map(|(p, keys, vals)| {
            let mut m = serde_json::Map::new();
            m.insert("prefix".into(), json!(p));
            for (k, v) in keys.into_iter().zip(vals) {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn any_command_gets_a_ceph_answer_and_stays_inside(cmd in arb_command()) {
        let f = Fake::new();
        rt().block_on(async {
            f.ok(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"})).await;
            let r = tokio::time::timeout(std::time::Duration::from_secs(10), f.cmd(cmd.clone())).await
                .expect("a command without hang faults answers");
            prop_assert!(r.ret <= 0, "{cmd} -> {r:?}");
            if r.ret < 0 {
                prop_assert!(!r.outs.is_empty(), "{cmd} -> {r:?}");
            }
            // Everything the fake created lies under its file system tree.
            let root = f.cluster.data_dir().to_path_buf();
            for e in std::fs::read_dir(&root).unwrap() {
                prop_assert_eq!(e.unwrap().file_name(), std::ffi::OsString::from("fs"));
            }
            Ok(())
        })?;
    }

    #[test]
    fn any_body_is_answered(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let f = Fake::new();
        rt().block_on(async {
            let key = f.admin_key.clone();
            let (status, v) = f.http("POST", "/request", Some(("client.admin", &key)), body).await;
            prop_assert_eq!(status, axum::http::StatusCode::OK);
            prop_assert!(v["ret"].as_i64().unwrap() <= 0);
            Ok(())
        })?;
    }

    #[test]
    fn caps_parser_never_panics(text in ".{0,60}", svc in prop::sample::select(vec!["mon", "mgr", "mds", "osd"])) {
        let _ = fake_ceph::cephx::Caps::parse(&[(svc.to_owned(), text)]);
    }

    #[test]
    fn client_paths_never_escape(parts in prop::collection::vec(prop_oneof![Just(".."), Just("."), Just("a"), Just("/"), Just("b/..")], 0..8)) {
        let rel = parts.join("/");
        let base = std::path::Path::new("/data/fs/cephfs/volumes/csi/v/u");
        if let Ok(p) = fake_ceph::tree::join_within(base, &rel) {
            prop_assert!(p.starts_with(base), "{rel} -> {}", p.display());
        }
    }
}
