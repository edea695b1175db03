//! The resources the client reads too. They are the types of `slipway-wire`, so the API and
//! the client (and the dashboard) share one definition; this module makes them from the store's
//! records. The other resources are still declared next to their routes.

use slipway_store::{Deployment, Job, JobLogLine, Server};
pub use slipway_wire::{
    Authorization, CreatedServer, Deployment as DeploymentResource, HealthCheck, LogLine,
    Operation as OperationResource, Release as ReleaseResource, Repository, Server as ServerResource,
    Site as SiteResource,
};

/// The component schemas that come from `slipway-wire`. Its types read leniently
/// (`#[serde(default)]`), which utoipa takes to mean that no field is required; the document
/// requires every field that is never null instead ([`require_non_null_fields`]).
pub(crate) const WIRE_SCHEMAS: [&str; 10] = [
    "ServerResource",
    "Authorization",
    "CreatedServer",
    "SiteResource",
    "Repository",
    "HealthCheck",
    "DeploymentResource",
    "OperationResource",
    "LogLine",
    "ReleaseResource",
];

/// A server as the API shows it; `sites_count` is 0 until the caller counts them.
pub fn server(s: &Server) -> ServerResource {
    ServerResource {
        id: s.id.clone(),
        organization_id: s.organization_id.clone(),
        name: s.name.clone(),
        provider: s.provider.clone(),
        ip_address: s.ip_address.clone(),
        ssh_port: s.ssh_port,
        ssh_user: s.ssh_user.clone(),
        region: s.region.clone(),
        size: s.size.clone(),
        php_version: s.php_version.clone(),
        database_type: s.database_type.clone(),
        webserver: s.webserver.clone(),
        status: s.status.to_string(),
        status_reason: s.status_reason.clone(),
        monitoring_enabled: s.monitoring_enabled,
        os: s.os.clone(),
        host_key_fingerprint: s.host_key.as_deref().and_then(slipway_remote::fingerprint),
        offered_host_key_fingerprint: s.offered_host_key.as_deref().and_then(slipway_remote::fingerprint),
        node: s.node,
        provisioned_at: s.provisioned_at,
        created_at: s.created_at,
        updated_at: s.updated_at,
        sites_count: 0,
    }
}

pub fn deployment(d: &Deployment) -> DeploymentResource {
    DeploymentResource {
        id: d.id.clone(),
        site_id: d.site_id.clone(),
        status: d.status.to_string(),
        action: d.action.clone(),
        trigger: d.trigger_kind.clone(),
        triggered_by_user: d.triggered_by_user.clone(),
        triggered_by_token: d.triggered_by_token.clone(),
        release: d.release_of.clone(),
        commit_sha: d.commit_sha.clone(),
        commit_message: d.commit_message.clone(),
        commit_author: d.commit_author.clone(),
        failed_step: d.failed_step.clone(),
        failure_reason: d.failure_reason.clone(),
        operation_id: d.job_id.clone(),
        created_at: d.created_at,
        started_at: d.started_at,
        finished_at: d.finished_at,
        duration: match (d.started_at, d.finished_at) {
            (Some(s), Some(f)) => Some((f - s).num_milliseconds() as f64 / 1000.0),
            _ => None,
        },
        // Written by Slipway itself; a record it cannot read shows no steps rather than fail.
        steps: d.steps.as_deref().and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default(),
    }
}

pub fn operation(j: &Job) -> OperationResource {
    OperationResource {
        id: j.id.clone(),
        kind: j.kind.clone(),
        status: j.status.to_string(),
        attempts: j.attempts,
        created_at: j.created_at,
        run_at: j.run_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
        exit_code: j.exit_code,
        failure_reason: j.failure_reason.clone(),
    }
}

pub fn log_line(l: JobLogLine) -> LogLine {
    LogLine { seq: l.seq, at: l.at, stream: l.stream, line: l.line }
}

/// States what the server always sends for the wire schemas (see [`WIRE_SCHEMAS`]): every
/// property that is never null is required, and the `default` utoipa gives each property is
/// dropped (it describes the client's leniency, not the API). Generic envelopes inline a copy
/// of a schema, so every copy in the document is replaced, found by being equal to it. Works
/// on the document's JSON, where it is published (served, or written out), and nowhere else.
pub(crate) fn require_non_null_fields(document: &mut serde_json::Value) {
    use serde_json::Value;

    fn nullable(property: &Value) -> bool {
        property["type"].as_array().is_some_and(|types| types.iter().any(|t| t == "null"))
            || property["oneOf"].as_array().is_some_and(|parts| parts.iter().any(|p| p["type"] == "null"))
    }
    /// The schema as sent: an object's non-null properties required, no defaults; an `allOf`
    /// (a flattened field) part by part.
    fn as_sent(schema: &Value) -> Value {
        let mut schema = schema.clone();
        if let Some(parts) = schema.get_mut("allOf").and_then(Value::as_array_mut) {
            for part in parts {
                *part = as_sent(part);
                if let Some(part) = part.as_object_mut() {
                    part.remove("default");
                }
            }
        } else if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for property in properties.values_mut() {
                if let Some(property) = property.as_object_mut() {
                    property.remove("default");
                }
            }
            let required: Vec<Value> =
                properties.iter().filter(|(_, p)| !nullable(p)).map(|(name, _)| Value::from(name.as_str())).collect();
            schema["required"] = Value::Array(required);
        }
        schema
    }
    fn replace(value: &mut Value, fixes: &[(Value, Value)]) {
        if let Some((_, fixed)) = fixes.iter().find(|(original, _)| original == value) {
            *value = fixed.clone();
            return;
        }
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| replace(v, fixes)),
            Value::Object(map) => map.values_mut().for_each(|v| replace(v, fixes)),
            _ => {}
        }
    }

    let fixes: Vec<(Value, Value)> = WIRE_SCHEMAS
        .iter()
        .filter_map(|name| document["components"]["schemas"].get(*name))
        .map(|schema| (schema.clone(), as_sent(schema)))
        .collect();
    replace(document, &fixes);
}
