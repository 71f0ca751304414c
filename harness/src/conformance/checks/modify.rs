//! ModifyVolume (Controller): csi-sanity's 6 specs.

use std::collections::HashMap;

use driver::csi::v1::controller_service_capability::rpc::Type as T;
use driver::csi::v1::*;
use tonic::Code;

use super::{Check, Group, checks};
use crate::conformance::context::{Ctx, Outcome, expect_code, ok, unique};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::ModifyVolume;
        sanity "ModifyVolume › should fail if no volume id is given"
            = "ModifyVolume [Controller Server] should fail if no volume id is given" => no_id,
        sanity "ModifyVolume › should fail if volume does not exist"
            = "ModifyVolume [Controller Server] should fail if volume does not exist" => unknown,
        sanity "ModifyVolume › should fail if specified mutable parameters are not supported by the volume"
            = "ModifyVolume [Controller Server] should fail if specified mutable parameters are not supported by the volume" => unsupported,
        sanity "ModifyVolume › should modify a volume created without a volume attribute class"
            = "ModifyVolume [Controller Server] should modify a volume created without a volume attribute class" => without_vac,
        sanity "ModifyVolume › should modify a volume created with a volume attribute class"
            = "ModifyVolume [Controller Server] should modify a volume created with a volume attribute class" => with_vac,
        sanity "ModifyVolume › should fail to modify a volume created with a volume attribute class if new mutable parameters are not supported by volume"
            = "ModifyVolume [Controller Server] should fail to modify a volume created with a volume attribute class if new mutable parameters are not supported by volume" => with_vac_unsupported,
    ]
}

fn need(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::ModifyVolume, "ControllerModifyVolume not supported")
}

fn bad() -> HashMap<String, String> {
    [("XXX_FakeKey".to_owned(), "XXX_FakeValue".to_owned())].into()
}

fn req(cx: &Ctx, id: &str, params: HashMap<String, String>) -> ControllerModifyVolumeRequest {
    ControllerModifyVolumeRequest {
        volume_id: id.to_owned(),
        secrets: cx.secrets("ControllerModifyVolumeSecret"),
        mutable_parameters: params,
    }
}

async fn no_id(cx: Ctx) -> Outcome {
    need(&cx)?;
    expect_code(
        "ControllerModifyVolume without volume_id",
        cx.ctrl()
            .controller_modify_volume(req(&cx, "", cx.s.mutable_params.clone()))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn unknown(cx: Ctx) -> Outcome {
    need(&cx)?;
    expect_code(
        "ControllerModifyVolume of an unknown volume",
        cx.ctrl()
            .controller_modify_volume(req(
                &cx,
                "non-existing-volume-id",
                cx.s.mutable_params.clone(),
            ))
            .await,
        &[Code::NotFound],
    )
}

async fn unsupported(cx: Ctx) -> Outcome {
    need(&cx)?;
    let v = cx.sanity_volume("sanity-modify-volume-unsupported").await?;
    expect_code(
        "ControllerModifyVolume with unsupported mutable_parameters",
        cx.ctrl()
            .controller_modify_volume(req(&cx, &v.volume_id, bad()))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn with_vac_volume(cx: &Ctx) -> Result<Volume, crate::conformance::context::Verdict> {
    let mut r = cx.sanity_volume_req(&unique("sanity-modify-volume-with-vac"));
    r.mutable_parameters = cx.s.mutable_params.clone();
    cx.create(r).await
}

async fn without_vac(cx: Ctx) -> Outcome {
    need(&cx)?;
    let v = cx.sanity_volume("sanity-modify-volume").await?;
    ok(
        "ControllerModifyVolume",
        cx.ctrl()
            .controller_modify_volume(req(&cx, &v.volume_id, cx.s.mutable_params.clone()))
            .await,
    )
    .map(drop)
}

async fn with_vac(cx: Ctx) -> Outcome {
    need(&cx)?;
    let v = with_vac_volume(&cx).await?;
    ok(
        "ControllerModifyVolume",
        cx.ctrl()
            .controller_modify_volume(req(&cx, &v.volume_id, cx.s.mutable_params.clone()))
            .await,
    )
    .map(drop)
}

async fn with_vac_unsupported(cx: Ctx) -> Outcome {
    need(&cx)?;
    let v = with_vac_volume(&cx).await?;
    expect_code(
        "ControllerModifyVolume with unsupported mutable_parameters",
        cx.ctrl()
            .controller_modify_volume(req(&cx, &v.volume_id, bad()))
            .await,
        &[Code::InvalidArgument],
    )
}
