//! Expansion (Controller): csi-sanity's 3 specs, plus repeats.

use driver::csi::v1::controller_service_capability::rpc::Type as T;
use driver::csi::v1::*;
use tonic::Code;

use super::{Check, Group, checks};
use crate::conformance::context::{Ctx, Outcome, ensure, expect_code, ok};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::Expansion;
        sanity "ExpandVolume › should fail if no volume id is given"
            = "ExpandVolume [Controller Server] should fail if no volume id is given" => no_id,
        sanity "ExpandVolume › should fail if no capacity range is given"
            = "ExpandVolume [Controller Server] should fail if no capacity range is given" => no_range,
        extra "ExpandVolume › should fail if no capacity range is given for an existing volume" => no_range_existing,
        sanity "ExpandVolume › should work"
            = "ExpandVolume [Controller Server] should work" => works,
        extra "ExpandVolume › every repeat succeeds with at least the requested size" => repeats,
    ]
}

fn need(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::ExpandVolume, "ControllerExpandVolume not supported")
}

fn req(cx: &Ctx, id: &str, size: Option<i64>) -> ControllerExpandVolumeRequest {
    ControllerExpandVolumeRequest {
        volume_id: id.to_owned(),
        capacity_range: size.map(|s| CapacityRange {
            required_bytes: s,
            limit_bytes: 0,
        }),
        secrets: cx.secrets("ControllerExpandVolumeSecret"),
        volume_capability: Some(cx.cap()),
    }
}

async fn no_id(cx: Ctx) -> Outcome {
    need(&cx)?;
    expect_code(
        "ControllerExpandVolume without volume_id",
        cx.ctrl()
            .controller_expand_volume(req(&cx, "", Some(cx.s.expand_size)))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn no_range(cx: Ctx) -> Outcome {
    need(&cx)?;
    // As csi-sanity: no volume ID either, and only the secrets.
    let r = ControllerExpandVolumeRequest {
        secrets: cx.secrets("ControllerExpandVolumeSecret"),
        ..Default::default()
    };
    expect_code(
        "ControllerExpandVolume without volume_id and capacity_range",
        cx.ctrl().controller_expand_volume(r).await,
        &[Code::InvalidArgument],
    )
}

async fn no_range_existing(cx: Ctx) -> Outcome {
    need(&cx)?;
    let v = cx.volume_or_fake().await?;
    expect_code(
        "ControllerExpandVolume without capacity_range",
        cx.ctrl()
            .controller_expand_volume(req(&cx, &v.volume_id, None))
            .await,
        &[Code::InvalidArgument],
    )
}

/// Expands to the expand size; csi-sanity wants exactly that capacity back.
async fn expand(cx: &Ctx, id: &str) -> Outcome {
    let r = ok(
        "ControllerExpandVolume",
        cx.ctrl()
            .controller_expand_volume(req(cx, id, Some(cx.s.expand_size)))
            .await,
    )?;
    ensure!(
        r.capacity_bytes == cx.s.expand_size,
        "ControllerExpandVolume to {}: capacity_bytes {}",
        cx.s.expand_size,
        r.capacity_bytes
    );
    Ok(())
}

async fn works(cx: Ctx) -> Outcome {
    need(&cx)?;
    let v = cx.sanity_volume("sanity-expand-volume").await?;
    expand(&cx, &v.volume_id).await
}

async fn repeats(cx: Ctx) -> Outcome {
    need(&cx)?;
    let v = cx.create_volume().await?;
    for _ in 0..cx.s.idempotent_count.min(3) {
        expand(&cx, &v.volume_id).await?;
    }
    cx.delete(&v.volume_id).await
}
