//! Identity: csi-sanity's 3 specs, plus the CSI spec's own rules on the plugin
//! name and version, and stability of the answers.
//!
//! As csi-sanity, the specs ask every Identity endpoint: the node plugin's and,
//! when `--controller-endpoint` is another one, the controller's.

use driver::csi::v1::*;

use super::{Check, Group, checks};
use crate::conformance::context::{Ctx, Outcome, ensure, ok};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::Identity;
        sanity "GetPluginCapabilities › should return appropriate capabilities"
            = "Identity Service GetPluginCapabilities should return appropriate capabilities" => plugin_capabilities,
        sanity "Probe › should return appropriate information"
            = "Identity Service Probe should return appropriate information" => probe,
        sanity "GetPluginInfo › should return appropriate information"
            = "Identity Service GetPluginInfo should return appropriate information" => plugin_info,
        extra "GetPluginInfo › the name is in domain-name notation and vendor_version is set, as the CSI spec requires" => plugin_info_spec,
        extra "GetPluginInfo and GetPluginCapabilities › are the same on every call" => stable,
    ]
}

async fn plugin_capabilities(cx: Ctx) -> Outcome {
    use plugin_capability::{Type, service, volume_expansion};
    for (which, mut c) in cx.identities() {
        let r = ok(
            &format!("GetPluginCapabilities ({which})"),
            c.get_plugin_capabilities(GetPluginCapabilitiesRequest {})
                .await,
        )?;
        // csi-sanity knows every service and expansion type of CSI v1.13 but UNKNOWN.
        for c in &r.capabilities {
            match &c.r#type {
                Some(Type::Service(s)) => ensure!(
                    service::Type::try_from(s.r#type).is_ok_and(|t| t != service::Type::Unknown),
                    "{which}: unknown service capability {}",
                    s.r#type
                ),
                Some(Type::VolumeExpansion(e)) => ensure!(
                    volume_expansion::Type::try_from(e.r#type)
                        .is_ok_and(|t| t != volume_expansion::Type::Unknown),
                    "{which}: unknown volume expansion capability {}",
                    e.r#type
                ),
                None => ensure!(false, "{which}: a capability with no type"),
            }
        }
    }
    Ok(())
}

async fn probe(cx: Ctx) -> Outcome {
    // csi-sanity requires an OK answer (its FAILED_PRECONDITION branch is
    // unreachable: it first expects no error).
    for (which, mut c) in cx.identities() {
        ok(&format!("Probe ({which})"), c.probe(ProbeRequest {}).await)?;
    }
    Ok(())
}

/// csi-sanity's pattern for the plugin name: a letter at both ends, letters,
/// digits, `-`, `.`, `_` and `\` between (its character class has an escaped
/// backslash), at most 63 characters in all.
fn sanity_name_ok(name: &str) -> bool {
    let re =
        regex::Regex::new(r"^[a-zA-Z][A-Za-z0-9\-\\._]{0,61}[a-zA-Z]$").expect("a valid regex");
    re.is_match(name)
}

async fn plugin_info(cx: Ctx) -> Outcome {
    for (which, mut c) in cx.identities() {
        let r = ok(
            &format!("GetPluginInfo ({which})"),
            c.get_plugin_info(GetPluginInfoRequest {}).await,
        )?;
        ensure!(!r.name.is_empty(), "GetPluginInfo ({which}): name is empty");
        ensure!(
            r.name.len() <= 63,
            "GetPluginInfo ({which}): name {:?} is longer than 63 characters",
            r.name
        );
        ensure!(
            sanity_name_ok(&r.name),
            "GetPluginInfo ({which}): name {:?} is not in domain-name notation (csi-sanity: a letter at both ends, letters, digits, '-', '.', '_' between)",
            r.name
        );
    }
    Ok(())
}

async fn plugin_info_spec(cx: Ctx) -> Outcome {
    let r = ok(
        "GetPluginInfo",
        cx.ident().get_plugin_info(GetPluginInfoRequest {}).await,
    )?;
    // CSI spec: at most 63 characters, domain-name notation, alphanumeric at both ends.
    let re = regex::Regex::new(r"^[a-zA-Z0-9][A-Za-z0-9\-._]{0,61}[a-zA-Z0-9]$|^[a-zA-Z0-9]$")
        .expect("a valid regex");
    ensure!(
        re.is_match(&r.name),
        "GetPluginInfo: name {:?} is not in domain-name notation",
        r.name
    );
    // CSI spec: vendor_version is REQUIRED.
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

#[cfg(test)]
mod tests {
    use super::sanity_name_ok;

    fn check(name: &str, expected: bool) {
        assert_eq!(sanity_name_ok(name), expected, "{name:?}");
    }

    #[test]
    fn plugin_names_as_csi_sanity_judges_them() {
        check("cephfs.csi.trainride", true);
        check("mini.csi.example.com", true);
        check("a-b_c.d", true);
        check("ab", true);
        // A letter at both ends: no digit, no single character.
        check("csi.example.com2", false);
        check("2csi.example.com", false);
        check("a", false);
        check("mini driver!", false);
        check("a\\b", true);
        check("a/b", false);
        check("a+b", false);
        check(&format!("a{}b", "x".repeat(61)), true);
        check(&format!("a{}b", "x".repeat(62)), false);
    }
}
