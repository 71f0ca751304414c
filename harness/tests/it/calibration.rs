//! CALIBRATION.md names every parameter a scenario takes.

/// The dotted keys of every leaf of `v` (`authz.lag.median_ms`); lists are leaves.
fn keys(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(x, &key, out);
            }
        }
        None => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_parameter_has_its_source_in_calibration_md() {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../CALIBRATION.md"));
    let params = serde_json::to_value(harness::params::Params::default()).unwrap();
    let mut all = Vec::new();
    keys(&params, "", &mut all);
    assert!(all.len() > 60, "{all:?}");
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "not in CALIBRATION.md: {missing:?}");
}
