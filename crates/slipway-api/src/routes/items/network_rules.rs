//! A server's firewall rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::server_input::{Cidr, PortRange};
use slipway_core::{FieldErrors, identity};
use slipway_engine::items::{ItemKind, NetworkRuleSpec, NetworkRules, Protocol, RuleAction};
use slipway_store::{Server, ServerItem};
use utoipa::ToSchema;

use super::ItemRoutes;
use crate::error::ApiError;

#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkRuleResource {
    pub id: String,
    pub server_id: String,
    pub name: String,
    /// A port (`80`) or an inclusive range (`8000-8100`).
    #[schema(example = "3306")]
    pub port: String,
    pub protocol: Protocol,
    /// `any`, or an address or network in CIDR form.
    #[schema(example = "203.0.113.0/24")]
    pub from: String,
    pub action: RuleAction,
    /// `installing`, `installed`, `failed`, `removing`, or `removed`.
    pub status: String,
    pub status_reason: Option<String>,
    pub operation_id: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// A port as a number or as text (`"8000-8100"`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PortInput {
    Number(u64),
    Text(String),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkRule {
    #[schema(example = "MySQL from the office", min_length = 1, max_length = 255)]
    pub name: String,
    /// A port (`3306`) or an inclusive range (`"8000-8100"`).
    pub port: PortInput,
    /// `tcp` (default) or `udp`.
    pub protocol: Option<Protocol>,
    /// `any` (default), or an address or network in CIDR form.
    pub from: Option<String>,
    /// `allow` (default) or `deny`.
    pub action: Option<RuleAction>,
}

#[derive(Debug)]
pub struct NetworkRuleRoutes;

impl ItemRoutes for NetworkRuleRoutes {
    const KIND: &'static dyn ItemKind = &NetworkRules;
    const PARAM: &'static str = "network_rule";
    const AUDIT: &'static str = "network-rule";
    const REMOVING: &'static str = "Removing the rule.";
    type Spec = NetworkRuleSpec;
    type Create = CreateNetworkRule;
    type Resource = NetworkRuleResource;

    fn validate(
        server: &Server,
        body: CreateNetworkRule,
        _: &[ServerItem],
    ) -> Result<(String, NetworkRuleSpec), ApiError> {
        let mut errors = FieldErrors::new();
        identity::check_label(&mut errors, "name", &body.name);
        let port_text = match &body.port {
            PortInput::Number(n) => n.to_string(),
            PortInput::Text(t) => t.clone(),
        };
        let ports = PortRange::parse(&port_text).map_err(|m| errors.add("port", format!("The port {m}."))).ok();
        let from = match body.from.as_deref().map(str::trim) {
            None | Some("any") => None,
            Some(text) => {
                Cidr::parse(text).map_err(|m| errors.add("from", format!("The from {m}."))).ok().map(|c| c.to_string())
            }
        };
        errors.into_result()?;
        let spec = NetworkRuleSpec {
            ports: ports.expect("valid"),
            protocol: body.protocol.unwrap_or(Protocol::Tcp),
            from,
            action: body.action.unwrap_or(RuleAction::Allow),
        };
        let ssh_port = u16::try_from(server.ssh_port).unwrap_or(22);
        if spec.locks_out_ssh(ssh_port) {
            return Err(ApiError::validation(
                "port",
                format!(
                    "This rule would block SSH on port {ssh_port}, which Slipway needs to manage the server; \
                     Slipway keeps that port open."
                ),
            ));
        }
        Ok((body.name, spec))
    }

    fn resource(item: &ServerItem, spec: NetworkRuleSpec, operation_id: Option<String>) -> NetworkRuleResource {
        NetworkRuleResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            name: item.name.clone(),
            port: spec.ports.to_string(),
            protocol: spec.protocol,
            from: spec.from.unwrap_or_else(|| "any".into()),
            action: spec.action,
            status: item.shown_status().into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

crate::server_item_routes! {
    routes: NetworkRuleRoutes, input: CreateNetworkRule, resource: NetworkRuleResource, tag: "network-rules",
    collection: "/api/v1/servers/{server}/network-rules",
    item: "/api/v1/servers/{server}/network-rules/{network_rule}",
    param: "network_rule", read: "network-rule:read", create: "network-rule:create", update: "network-rule:update", delete: "network-rule:delete",
    list: list_network_rules = "The server's firewall rules. Inbound traffic is dropped unless allowed: Slipway's SSH port is\nalways open, 80 and 443 are open unless a deny rule closes them, and deny rules are checked\nbefore allow rules.",
    create: create_network_rule = "Add a firewall rule. A rule that would block Slipway's own SSH access is refused (422).\nAnswers 201 with the rule `installing`; follow `operation_id` to see it applied.",
    show: get_network_rule = "One rule.",
    update: update_network_rule = "Change a firewall rule: the same fields as creating it, all of them. Answers 200 with the rule
`installing`; follow `operation_id`.",
    delete: delete_network_rule = "Remove a firewall rule. Answers 202 with the rule `removing`.",
}
