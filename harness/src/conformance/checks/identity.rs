//! Identity: csi-sanity's 3 specs, plus stability of the answers.

use driver::csi::v1::*;

use super::{Check, Group, checks};
use crate::conformance::context::{Ctx, Outcome, ensure, ok};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::Identity;
        sanity "GetPluginCapabilities › should return appropriate capabilities" => plugin_capabilities,
        sanity "Probe › should return appropriate information" => probe,
        sanity "GetPluginInfo › should return appropriate information" => plugin_info,
        extra "GetPluginInfo and GetPluginCapabilities › are the same on every call" => stable,
    ]
}

async fn plugin_capabilities(cx: Ctx) -> Outcome {
    use plugin_capability::{Type, service, volume_expansion};
    let r = ok(
        "GetPluginCapabilities",
        cx.ident()
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await,
    )?;
    for c in &r.capabilities {
        match &c.r#type {
            Some(Type::Service(s)) => ensure!(
                service::Type::try_from(s.r#type).is_ok_and(|t| t != service::Type::Unknown),
                "unknown service capability {}",
                s.r#type
            ),
            Some(Type::VolumeExpansion(e)) => ensure!(
                volume_expansion::Type::try_from(e.r#type)
                    .is_ok_and(|t| t != volume_expansion::Type::Unknown),
                "unknown volume expansion capability {}",
                e.r#type
            ),
            None => ensure!(false, "a capability with no type"),
        }
    }
    Ok(())
}

async fn probe(cx: Ctx) -> Outcome {
    // CSI spec: a not-ready plugin may answer OK with ready=false, or FAILED_PRECONDITION.
    ok("Probe", cx.ident().probe(ProbeRequest {}).await)?;
    Ok(())
}

async fn plugin_info(cx: Ctx) -> Outcome {
    let r = ok(
        "GetPluginInfo",
        cx.ident().get_plugin_info(GetPluginInfoRequest {}).await,
    )?;
    ensure!(!r.name.is_empty(), "GetPluginInfo: name is empty");
    // CSI spec: at most 63 characters, domain-name notation, alphanumeric at both ends.
    ensure!(
        r.name.len() <= 63,
        "GetPluginInfo: name {:?} is longer than 63 characters",
        r.name
    );
    let re = regex::Regex::new(r"^[a-zA-Z0-9][A-Za-z0-9\-._]{0,61}[a-zA-Z0-9]$|^[a-zA-Z0-9]$")
        .expect("a valid regex");
    ensure!(
        re.is_match(&r.name),
        "GetPluginInfo: name {:?} is not in domain-name notation",
        r.name
    );
    ensure!(
        !r.vendor_version.is_empty(),
        "GetPluginInfo: vendor_version is empty"
    );
    Ok(())
}

async fn stable(cx: Ctx) -> Outcome {
    let a = ok(
        "GetPluginInfo",
        cx.ident().get_plugin_info(GetPluginInfoRequest {}).await,
    )?;
    let b = ok(
        "GetPluginInfo",
        cx.ident().get_plugin_info(GetPluginInfoRequest {}).await,
    )?;
    ensure!(
        a.name == b.name && a.vendor_version == b.vendor_version,
        "GetPluginInfo changed between calls: {:?} then {:?}",
        (a.name, a.vendor_version),
        (b.name, b.vendor_version)
    );
    let c = ok(
        "GetPluginCapabilities",
        cx.ident()
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await,
    )?;
    let d = ok(
        "GetPluginCapabilities",
        cx.ident()
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await,
    )?;
    ensure!(
        c == d,
        "GetPluginCapabilities changed between calls: {c:?} then {d:?}"
    );
    Ok(())
}
