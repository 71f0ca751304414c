//! The simulation's unit tests: runs on the mock back end.

use std::time::Instant;

use crate::csi::{Backend, MockCsi};
use crate::params::Params;
use crate::{Output, Run, run_on};

fn params(sets: &[&str]) -> Params {
    let mut p = Params::load("attempt-3-skip-attach").expect("built-in");
    for s in ["shares=1", "replicas=1", "name=unit"].iter().chain(sets) {
        p = p.set(s).expect(s);
    }
    p
}

async fn run_mock(p: Params, seed: u64, mock: MockCsi) -> Run {
    run_on(
        p,
        seed,
        Backend::Mock(mock),
        Output::Memory,
        Instant::now(),
        None,
    )
    .await
    .expect("run")
}

/// (component, what, object, result) of each line, times dropped.
fn lines(r: &Run) -> Vec<(String, String, String, String)> {
    r.events
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (s("c"), s("e"), s("o"), s("r"))
        })
        .collect()
}

fn time_of(r: &Run, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<u64> {
    r.events
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            pred(&v).then(|| v["t_ns"].as_u64().unwrap_or(0))
        })
        .collect()
}

fn plan(steps: serde_json::Value) -> String {
    format!("fault_plan={steps}")
}

fn calls(r: &Run, method: &str, code: &str) -> usize {
    r.summary
        .rpcs
        .iter()
        .filter(|row| row.method == method && row.code == code)
        .map(|row| row.sim.count)
        .sum()
}

#[tokio::test]
async fn a_killed_controller_fails_the_calls_under_way_and_refuses_calls_until_restarted() {
    let steps = serde_json::json!([
        {"at": "start", "after_s": 0.5, "action": {"kill": {"plugin": "controller"}}},
        {"at": "start", "after_s": 4.0, "action": {"restart": {"plugin": "controller"}}},
    ]);
    let r = run_mock(
        params(&["shares=3", "replicas=2", &plan(steps)]),
        3,
        MockCsi::default(),
    )
    .await;
    let f = &r.summary.faults;
    assert_eq!(f.applied("kill"), 1);
    assert_eq!(f.applied("restart"), 1);
    // CreateVolume calls were under way at 0.5 s, and the provisioner's 1 s retries
    // met the plugin down.
    assert!(f.calls_cut > 0, "{f:?}");
    assert!(f.calls_refused > 0, "{f:?}");
    assert_eq!(
        calls(&r, "CreateVolume", "Unavailable") as u64,
        f.calls_cut + f.calls_refused
    );
    assert_eq!(calls(&r, "CreateVolume", "Ok"), 3);
    assert_eq!(r.summary.outcome, "all pods Running");
    assert!(r.summary.clean, "{:?}", r.summary.leaks);
    let l = lines(&r);
    assert!(l.contains(&(
        "fault".into(),
        "kill".into(),
        "controller".into(),
        format!("{} calls cut", f.calls_cut)
    )));
}

#[tokio::test]
async fn a_claim_deleted_while_its_volume_may_be_in_the_making_is_provisioned_and_deleted() {
    // The first CreateVolume makes the volume but its reply is lost; provisioning
    // gives up at 1 s and the claim is deleted. The provisioner goes on until a final
    // answer (external-provisioner's claimsInProgress): the volume gets a PV for the
    // deleted claim, which is released and deleted. Without that, it would leak.
    let mut mock = MockCsi::default();
    mock.lose_reply.insert("CreateVolume", 1);
    let r = run_mock(params(&["max_deploy_s=0.5"]), 1, mock).await;
    assert_eq!(r.summary.outcome, "provisioning did not finish");
    assert!(
        r.summary.claims["share-000"].starts_with("Pending: "),
        "{:?}",
        r.summary.claims
    );
    assert_eq!(r.summary.mock_calls["CreateVolume"], 2);
    assert_eq!(r.summary.mock_calls["DeleteVolume"], 1);
    assert!(
        r.summary.clean,
        "{:?} {:?}",
        r.summary.leaks, r.summary.leaked_objects
    );
}

#[tokio::test]
async fn uncertain_stages_and_publishes_are_undone_when_the_pod_goes() {
    // Every NodeStage (then every NodePublish) does its work and answers
    // Unavailable: the pod never runs, and when it goes the kubelet unmounts what
    // may be mounted (its uncertain state). Without that, the mock would keep the
    // stage (a session) or the publish (a mount).
    for method in ["NodeStageVolume", "NodePublishVolume"] {
        let mut mock = MockCsi::default();
        mock.lose_reply.insert(method, u32::MAX);
        let r = run_mock(params(&["stall_s=60"]), 1, mock).await;
        assert_eq!(r.summary.outcome, "stalled", "{method}");
        assert_eq!(r.summary.running, 0);
        let why = &r.summary.pods_not_running;
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            why.values().all(|w| w.ends_with("Unavailable: reply lost")),
            "{why:?}"
        );
        let undo = match method {
            "NodeStageVolume" => "NodeUnstageVolume",
            _ => "NodeUnpublishVolume",
        };
        assert!(
            r.summary.mock_calls[undo] >= 1,
            "{method}: {:?}",
            r.summary.mock_calls
        );
        assert!(r.summary.clean, "{method}: {:?}", r.summary.leaks);
    }
}

#[tokio::test]
async fn a_volume_is_unstaged_with_the_handle_it_was_staged_with_after_its_pv_is_gone() {
    // Unstaging fails for a while; meanwhile teardown deletes the PV (nothing keeps
    // it without attach). The kubelet unstages from its own record of the mount, as
    // the real one does, not from the PV (the mock refuses an empty volume ID).
    let mut mock = MockCsi::default();
    mock.fail.insert("NodeUnstageVolume", 5);
    let r = run_mock(params(&[]), 1, mock).await;
    let l = lines(&r);
    let deleted = l
        .iter()
        .position(|(c, e, _, r)| c == "provisioner" && e == "DeleteVolume" && r == "Ok")
        .expect("deleted");
    let unstaged = l
        .iter()
        .position(|(_, e, _, r)| e == "NodeUnstageVolume" && r == "Ok")
        .expect("unstaged");
    assert!(deleted < unstaged, "the PV went first");
    assert!(r.summary.clean, "{:?}", r.summary.leaks);
}

#[tokio::test]
async fn the_binder_and_provisioner_bind_a_claim_after_createvolume_retries() {
    let mut mock = MockCsi::default();
    mock.fail.insert("CreateVolume", 3);
    let r = run_mock(params(&[]), 1, mock).await;
    let l = lines(&r);
    // external-provisioner back-off: 1 s doubling.
    let backoffs: Vec<&str> = l
        .iter()
        .filter(|(c, e, _, _)| c == "provisioner" && e == "backoff")
        .map(|(_, _, _, r)| r.as_str())
        .collect();
    assert_eq!(backoffs, ["1000ms", "2000ms", "4000ms"]);
    // The PV controller's steps in order: annotate, (provision), bind.
    let pos = |what: &str, obj: &str| {
        l.iter()
            .position(|(c, e, o, _)| c == "kcm" && e == what && o == obj)
            .expect(what)
    };
    let annotate = pos("annotate", "share-000");
    let bind = pos("bind", "share-000");
    let created = l
        .iter()
        .position(|(c, e, _, r)| c == "provisioner" && e == "CreateVolume" && r == "Ok")
        .expect("created");
    assert!(annotate < created && created < bind);
    // Retries start 1 + 2 + 4 s after the first failure: the claim binds after 7 s.
    assert!(r.summary.provisioned_s.expect("bound") > 7.0);
    assert_eq!(r.summary.mock_calls["CreateVolume"], 4);
    assert_eq!(r.summary.outcome, "all pods Running");
    assert!(r.summary.clean, "{:?}", r.summary.leaked_objects);
}

#[tokio::test]
async fn the_kubelet_backs_off_from_500ms_doubling_to_2m2s() {
    let mut mock = MockCsi::default();
    mock.fail.insert("NodeStageVolume", 11);
    let r = run_mock(params(&[]), 1, mock).await;
    let waits: Vec<String> = lines(&r)
        .into_iter()
        .filter(|(c, e, _, r)| {
            c == "kubelet/node-0001" && e == "backoff" && r.starts_with("MountDevice failed")
        })
        .map(|(_, _, _, r)| r)
        .collect();
    let ms: Vec<u64> = waits
        .iter()
        .map(|w| {
            w.rsplit("for ")
                .next()
                .and_then(|x| x.strip_suffix("ms"))
                .and_then(|x| x.parse().ok())
                .expect("a wait")
        })
        .collect();
    assert_eq!(
        ms,
        [
            500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 122000, 122000, 122000
        ]
    );
    // Each retry comes no earlier than its back-off allows.
    let fails = time_of(&r, |v| {
        v["e"] == "NodeStageVolume" && v["r"] == "Unavailable"
    });
    let starts = time_of(&r, |v| v["e"] == "NodeStageVolume" && v["r"] == "start");
    for (k, w) in ms.iter().enumerate() {
        assert!(starts[k + 1] - fails[k] >= w * 1_000_000, "retry {k}");
    }
    // The 11 above, 3 of them at the cap, and VerifyControllerAttachedVolume's while the
    // volume was not yet reported in use and attached (none at the cap).
    assert!(r.summary.backoffs[0] > 11, "{:?}", r.summary.backoffs);
    assert_eq!(r.summary.backoffs[1], 3);
    assert_eq!(r.summary.outcome, "all pods Running");
    assert!(r.summary.clean);
}

#[tokio::test]
async fn attach_required_goes_through_volumeattachments_one_node_at_a_time_per_volume() {
    let p = params(&[
        "attach_required=true",
        "shares=2",
        "replicas=3",
        "authz.enabled=false",
    ]);
    let r = run_mock(p, 3, MockCsi::default()).await;
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running");
    assert_eq!(s.volume_attachments, 6);
    assert_eq!(s.mock_calls["ControllerPublishVolume"], 6);
    assert_eq!(s.mock_calls["ControllerUnpublishVolume"], 6);
    assert_eq!(s.mock_calls["NodeStageVolume"], 6);
    assert!(s.clean, "{:?}", s.leaked_objects);
    // Pre-1.18 ADC: attaches of one volume never overlap across nodes.
    let l = lines(&r);
    for pv in [
        "pvc-00000000-0000-4000-8000-000000000000",
        "pvc-00000000-0000-4000-8000-000000000001",
    ] {
        let mut open = false;
        for (c, e, o, res) in &l {
            if c == "kcm"
                && e == "create"
                && res == "VolumeAttachment"
                && o.starts_with(&format!("csi-{pv}-"))
            {
                assert!(!open, "two attaches of {pv} at once");
                open = true;
            }
            if c == "adc" && e == "attached" && o == pv {
                open = false;
            }
        }
    }
    // Without attach, no VolumeAttachment at all.
    let r = run_mock(params(&["shares=2", "replicas=3"]), 3, MockCsi::default()).await;
    assert_eq!(r.summary.volume_attachments, 0);
    assert!(!r.summary.mock_calls.contains_key("ControllerPublishVolume"));
    assert!(r.summary.clean);
}

#[tokio::test]
async fn one_seed_gives_one_event_log() {
    let p = params(&["attach_required=true", "shares=2", "replicas=4"]);
    let a = run_mock(p.clone(), 11, MockCsi::default()).await;
    let b = run_mock(p.clone(), 11, MockCsi::default()).await;
    let c = run_mock(p, 12, MockCsi::default()).await;
    assert!(a.events.len() > 100);
    assert_eq!(a.events, b.events);
    assert_eq!(a.summary.events_hash, b.summary.events_hash);
    assert_ne!(a.events, c.events);
}

/// Kubernetes 1.11/1.12: a kubelet copies each volume's device path from its node's
/// volumesAttached once and waits on the VolumeAttachment it names; the attach-detach
/// controller keeps one device path per volume, so the name can be another node's, which
/// the node authorizer refuses for as long as the kubelet asks. 1.13 names its own.
#[tokio::test]
async fn a_1_12_kubelet_waits_for_good_on_another_nodes_attachment_and_1_13_does_not() {
    let base = [
        "attach_required=true",
        "attacher_trivial=true",
        "shares=4",
        "replicas=8",
        "stall_s=600",
        "max_deploy_s=3600",
    ];
    let with = |fix: &str| {
        let mut sets: Vec<&str> = base.to_vec();
        sets.push(fix);
        params(&sets)
    };
    let bug = run_mock(
        with("waitforattach_uses_devicepath=true"),
        1,
        MockCsi::default(),
    )
    .await;
    let l = lines(&bug);
    // (kubelet, VolumeAttachment name) of every device path that named another node's.
    let foreign: Vec<(String, String)> = l
        .iter()
        .filter(|(_, e, _, r)| e == "verify-attached" && r.ends_with("(another node's)"))
        .map(|(c, _, _, r)| {
            let va = r["devicePath ".len()..].split(' ').next().expect("a name");
            (c.clone(), va.to_owned())
        })
        .collect();
    assert!(!foreign.is_empty(), "no kubelet kept another node's name");
    assert_eq!(bug.summary.foreign_device_paths, foreign.len() as u64);
    for (kubelet, va) in &foreign {
        let node = kubelet.trim_start_matches("kubelet/");
        assert!(!va.ends_with(node), "{va} is {node}'s own");
        let gets: Vec<&String> = l
            .iter()
            .filter(|(c, e, o, _)| c == kubelet && e == "get-va" && o == va)
            .map(|(_, _, _, r)| r)
            .collect();
        assert!(
            gets.len() > 3,
            "{kubelet} asked for {va} {} times",
            gets.len()
        );
        assert!(gets.iter().all(|r| r.contains("no path found to object")));
        assert!(
            !l.iter().any(|(c, e, _, _)| c == kubelet && e == "running"),
            "{kubelet}'s pod ran"
        );
    }
    let stuck_nodes: std::collections::BTreeSet<&String> = foreign.iter().map(|(k, _)| k).collect();
    assert_eq!(bug.summary.outcome, "stalled");
    assert_eq!(bug.summary.running, 8 - stuck_nodes.len());
    assert!(bug.summary.clean, "{:?}", bug.summary.leaked_objects);

    let fixed = run_mock(
        with("waitforattach_uses_devicepath=false"),
        1,
        MockCsi::default(),
    )
    .await;
    assert_eq!(fixed.summary.outcome, "all pods Running");
    assert!(
        fixed.summary.forbidden.is_empty(),
        "{:?}",
        fixed.summary.forbidden
    );
    assert!(fixed.summary.clean);
}
