//! VolumeHealth (Controller, CSI v1.13): csi-sanity's 3 specs of
//! ControllerGetVolumeHealth and ControllerListVolumeHealth, plus the rules the
//! CSI spec adds (a listed entry names a volume; an unknown volume is NotFound).

use driver::csi::v1::controller_service_capability::rpc::Type as T;
use driver::csi::v1::*;
use tonic::Code;

use super::{Check, Group, checks};
use crate::conformance::context::{Ctx, Outcome, ensure, expect_code, fail, fake_volume_id, ok};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::VolumeHealth;
        sanity "ControllerGetVolumeHealth › should fail when no volume id is provided"
            = "ControllerGetVolumeHealth [Controller Server] should fail when no volume id is provided" => get_no_id,
        sanity "ControllerGetVolumeHealth › should return health for a valid volume"
            = "ControllerGetVolumeHealth [Controller Server] should return health for a valid volume" => get_works,
        extra "ControllerGetVolumeHealth › an unknown volume is NotFound" => get_unknown,
        sanity "ControllerListVolumeHealth › should return appropriate response"
            = "ControllerListVolumeHealth [Controller Server] should return appropriate response" => list,
        extra "ControllerListVolumeHealth › every entry names a volume, and pages end" => list_entries,
    ]
}

fn need_get(cx: &Ctx) -> Outcome {
    cx.need_ctrl(
        T::GetVolumeHealth,
        "ControllerGetVolumeHealth not supported",
    )
}

fn need_list(cx: &Ctx) -> Outcome {
    cx.need_ctrl(
        T::ListVolumeHealth,
        "ControllerListVolumeHealth not supported",
    )
}

async fn get_no_id(cx: Ctx) -> Outcome {
    need_get(&cx)?;
    expect_code(
        "ControllerGetVolumeHealth without volume_id",
        cx.ctrl()
            .controller_get_volume_health(ControllerGetVolumeHealthRequest::default())
            .await,
        &[Code::InvalidArgument],
    )
}

async fn get_works(cx: Ctx) -> Outcome {
    need_get(&cx)?;
    // As csi-sanity: no CreateVolume gate, and no secrets in the health request.
    let v = cx
        .sanity_volume("sanity-controller-get-volume-health")
        .await?;
    let r = ok(
        "ControllerGetVolumeHealth",
        cx.ctrl()
            .controller_get_volume_health(ControllerGetVolumeHealthRequest {
                volume_id: v.volume_id.clone(),
                secrets: Default::default(),
            })
            .await,
    )?;
    let h = r
        .volume_health
        .ok_or_else(|| fail("ControllerGetVolumeHealth returned no volume_health"))?;
    ensure!(
        h.volume_id == v.volume_id,
        "ControllerGetVolumeHealth({}) returned the health of volume {:?}",
        v.volume_id,
        h.volume_id
    );
    Ok(())
}

async fn get_unknown(cx: Ctx) -> Outcome {
    need_get(&cx)?;
    expect_code(
        "ControllerGetVolumeHealth of an unknown volume",
        cx.ctrl()
            .controller_get_volume_health(ControllerGetVolumeHealthRequest {
                volume_id: fake_volume_id(),
                secrets: Default::default(),
            })
            .await,
        &[Code::NotFound],
    )
}

async fn list(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    ok(
        "ControllerListVolumeHealth",
        cx.ctrl()
            .controller_list_volume_health(ControllerListVolumeHealthRequest::default())
            .await,
    )
    .map(drop)
}

async fn list_entries(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    // CSI spec: LIST_VOLUME_HEALTH implies GET_VOLUME_HEALTH.
    ensure!(
        cx.has_ctrl(T::GetVolumeHealth)?,
        "LIST_VOLUME_HEALTH advertised without GET_VOLUME_HEALTH"
    );
    let mut token = String::new();
    for _ in 0..10_000 {
        let r = ok(
            "ControllerListVolumeHealth",
            cx.ctrl()
                .controller_list_volume_health(ControllerListVolumeHealthRequest {
                    max_entries: 1,
                    starting_token: token.clone(),
                    secrets: Default::default(),
                })
                .await,
        )?;
        ensure!(
            r.entries.len() <= 1,
            "ControllerListVolumeHealth with max_entries 1 returned {} entries",
            r.entries.len()
        );
        for e in &r.entries {
            ensure!(
                !e.volume_id.is_empty(),
                "ControllerListVolumeHealth: an entry with an empty volume_id"
            );
            for s in &e.health_statuses {
                ensure!(
                    !s.reason.is_empty(),
                    "ControllerListVolumeHealth: volume {}: a status without a reason",
                    e.volume_id
                );
            }
        }
        if r.next_token.is_empty() {
            return Ok(());
        }
        ensure!(
            r.next_token != token,
            "ControllerListVolumeHealth: next_token repeats the starting_token"
        );
        token = r.next_token;
    }
    Err(fail("ControllerListVolumeHealth: pagination does not end"))
}
