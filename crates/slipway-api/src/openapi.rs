//! The OpenAPI document: the `ApiDoc` root, and a finishing pass that declares the error
//! responses every operation can give, derived from the operation's shape so that none is
//! forgotten when a route is added.

use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

use crate::envelope::{PageLinks, PageMetaSchema};
use crate::error::{ErrorBody, ValidationErrorBody};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Slipway API",
        description = "Manage servers and sites: provisioning, zero-downtime deploys and everything around them. \
                       JSON in and out; errors always carry a `message`, and validation errors (422) an `errors` \
                       object keyed by field. See docs/api.md for conventions.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only"),
    ),
    modifiers(&SecurityScheme),
    tags(
        (name = "meta", description = "The API's index and description."),
        (name = "account", description = "Setup, login, logout, the current user and two-factor authentication."),
        (name = "tokens", description = "Personal access tokens."),
        (name = "auth", description = "Exchanging an access token for short-lived JWTs."),
        (name = "organizations", description = "Organizations, members, roles and organization tokens."),
        (name = "audit", description = "The audit log."),
        (name = "servers", description = "Servers Slipway manages over SSH."),
        (name = "ssh-keys", description = "Keys that may log in to a server as its deploy user."),
        (name = "network-rules", description = "A server's firewall rules."),
        (name = "databases", description = "Databases on a server's own engine (MariaDB/MySQL or PostgreSQL)."),
        (name = "database-users", description = "Database users: generated passwords, grants per database, allowed hosts, a site's DB_* variables."),
        (name = "sites", description = "Sites on a server: create, edit, suspend, delete."),
        (name = "deployments", description = "Deploying, rolling back, releases and deployment logs."),
        (name = "environment", description = "A site's environment variables (encrypted at rest)."),
        (name = "backups", description = "Backup storages (S3-compatible or a server's directory) and backups."),
        (name = "events", description = "What happened (events), and the channels that send it out: signed webhooks, Slack, Discord, email."),
        (name = "git", description = "Git providers, repositories, deploy keys and incoming push webhooks."),
        (name = "health", description = "Health, readiness and metrics for operators."),
        (name = "operations", description = "The jobs behind every action on a server: status, log, cancel."),
    ),
    components(schemas(
        ErrorBody,
        ValidationErrorBody,
        PageMetaSchema,
        PageLinks,
        crate::schema::GitKind,
        crate::schema::ServerProvider,
        crate::schema::PhpVersion,
        crate::schema::DatabaseType,
        crate::schema::RestartableService,
        slipway_core::InstallStatus,
        slipway_core::RunStatus,
    ))
)]
pub struct ApiDoc;

/// `token`: `Authorization: Bearer <token>` (or `Token <token>`); the scopes listed on an
/// operation are the ability it requires.
#[derive(Debug)]
struct SecurityScheme;

impl utoipa::Modify for SecurityScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme as Scheme};
        let components = api.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A personal or organization access token (`slp_…`) or a JWT from /api/v1/auth/exchange. \
                 `Authorization: Token <token>` is accepted too. An operation's scopes name the ability it requires.",
            ))
            .build();
        components.add_security_scheme(crate::auth::rules::SCHEME, Scheme::Http(scheme));
    }
}

/// Shared responses, referenced by status from every operation that can give them.
const SHARED: [(&str, &str, &str, &str); 10] = [
    ("400", "BadRequest", "The body is not valid JSON.", "ErrorBody"),
    (
        "409",
        "Conflict",
        "The request conflicts with the resource's state (the message says how), or a request with the same \
         Idempotency-Key is still being processed.",
        "ErrorBody",
    ),
    ("401", "Unauthenticated", "No token, or a token that is invalid, expired or revoked.", "ErrorBody"),
    ("403", "Forbidden", "The token lacks the ability this operation requires (the message names it).", "ErrorBody"),
    ("429", "TooManyRequests", "Rate limited; `Retry-After` says when to try again.", "ErrorBody"),
    ("404", "NotFound", "No such resource, or not visible to you.", "ErrorBody"),
    ("413", "PayloadTooLarge", "The body is larger than the configured limit.", "ErrorBody"),
    ("415", "UnsupportedMediaType", "The body is not sent as application/json.", "ErrorBody"),
    (
        "422",
        "ValidationFailed",
        "The input is invalid: a body field, a query parameter or the Idempotency-Key header; `errors` says which \
         and why.",
        "ValidationErrorBody",
    ),
    ("500", "ServerError", "An unexpected failure; the cause is in the server log under the request id.", "ErrorBody"),
];

/// Adds the shared responses to the components and to every operation that can produce them.
pub fn finish(api: &mut utoipa::openapi::OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    for (_, name, description, schema) in SHARED {
        let content = Content::new(Some(Ref::from_schema_name(schema)));
        components.responses.insert(
            name.to_string(),
            RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build()),
        );
    }
    for (path, item) in api.paths.paths.iter_mut() {
        let has_path_params = path.contains('{');
        let is_api = path.starts_with("/api/v1");
        let ops = [
            (false, &mut item.get),
            (false, &mut item.put),
            (true, &mut item.post),
            (false, &mut item.delete),
            (false, &mut item.patch),
        ];
        for (is_post, op) in ops.into_iter().filter_map(|(is_post, op)| Some((is_post, op.as_mut()?))) {
            let mut statuses = vec!["500"];
            if op.request_body.is_some() {
                statuses.extend(["400", "413", "415", "422"]);
            }
            if has_path_params {
                statuses.push("404");
            }
            // `{server}` may be a name, and two of the caller's servers may share it.
            if path.contains("{server}") {
                statuses.push("409");
            }
            // Any query parameter can be given a value that does not parse.
            if has_query_params(op) {
                statuses.push("422");
            }
            if op.security.is_some() {
                statuses.extend(["401", "403"]);
            }
            // Every POST may carry an Idempotency-Key: a malformed one is a 422, and the body is
            // then read (413 over the limit); for an authenticated caller, a retry while the
            // first request runs is a 409.
            if is_post {
                statuses.extend(["413", "422"]);
                if op.security.is_some() {
                    statuses.push("409");
                }
            }
            if is_api {
                statuses.push("429");
            }
            // OpenAPI 3.1 requires a description on every response object.
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && response.description.trim().is_empty()
                {
                    response.description = default_description(status).into();
                }
            }
            for status in statuses {
                let (_, name, _, _) = SHARED.iter().find(|(s, ..)| *s == status).expect("shared response exists");
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
            }
        }
    }
}

/// The words for a success status whose handler gave none.
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted: the work runs as an operation; follow it for the outcome",
        "204" => "No content",
        _ => "Response",
    }
}

fn has_query_params(op: &Operation) -> bool {
    use utoipa::openapi::path::ParameterIn;
    op.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query)))
}

/// The finished document as the JSON it is served as, made once.
#[derive(Debug, Clone)]
pub struct Document(axum::body::Bytes);

impl Document {
    /// The document as published: with the wire schemas' required fields stated.
    pub fn of(api: &utoipa::openapi::OpenApi) -> Self {
        let mut document = serde_json::to_value(api).expect("the OpenAPI document serialises");
        crate::resources::require_non_null_fields(&mut document);
        Document(serde_json::to_vec(&document).expect("the OpenAPI document serialises").into())
    }
}

impl axum::response::IntoResponse for Document {
    fn into_response(self) -> axum::response::Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}
