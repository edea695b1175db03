//! The API serves the types of `slipway-wire` and the client reads them. They read leniently
//! (`#[serde(default)]`), so the API document states their required fields in a pass of its
//! own; this holds that pass to the types, field by field: the same properties, and a field may
//! be null exactly when the schema does not require it.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use slipway_client::wire;

/// Each field of `T` and whether it is required (not an `Option`, so never null).
fn fields<T: Default + Serialize>() -> (BTreeSet<String>, BTreeSet<String>) {
    let value = serde_json::to_value(T::default()).expect("a wire type serialises");
    let object = value.as_object().expect("a wire type is an object");
    let all = object.keys().cloned().collect();
    let required = object.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()).collect();
    (all, required)
}

/// The schema's properties and its required ones.
fn schema(document: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = &document["components"]["schemas"][name];
    let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("no schema {name}: {schema}"));
    let required = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str);
    (properties.keys().cloned().collect(), required.map(str::to_string).collect())
}

fn check<T: Default + Serialize>(document: &Value, name: &str, problems: &mut Vec<String>) {
    let (ours, ours_required) = fields::<T>();
    let (theirs, theirs_required) = schema(document, name);
    if ours != theirs {
        problems.push(format!(
            "{name}: only in the API {:?}, only in slipway-wire {:?}",
            theirs.difference(&ours).collect::<Vec<_>>(),
            ours.difference(&theirs).collect::<Vec<_>>()
        ));
    } else if ours_required != theirs_required {
        problems.push(format!(
            "{name}: required in the API but optional here {:?}, the other way round {:?}",
            theirs_required.difference(&ours_required).collect::<Vec<_>>(),
            ours_required.difference(&theirs_required).collect::<Vec<_>>()
        ));
    }
}

#[test]
fn wire_types_match_the_api_schemas() {
    let document = serde_json::to_value(slipway_api::openapi()).expect("the API document serialises");
    let mut problems = Vec::new();
    check::<wire::Server>(&document, "ServerResource", &mut problems);
    check::<wire::Authorization>(&document, "Authorization", &mut problems);
    check::<wire::Site>(&document, "SiteResource", &mut problems);
    check::<wire::Repository>(&document, "Repository", &mut problems);
    check::<wire::HealthCheck>(&document, "HealthCheck", &mut problems);
    check::<wire::Deployment>(&document, "DeploymentResource", &mut problems);
    check::<wire::Operation>(&document, "OperationResource", &mut problems);
    check::<wire::LogLine>(&document, "LogLine", &mut problems);
    check::<wire::Release>(&document, "ReleaseResource", &mut problems);
    assert!(problems.is_empty(), "slipway-wire and the API document differ:\n{}", problems.join("\n"));
}
