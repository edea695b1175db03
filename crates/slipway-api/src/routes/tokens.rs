//! Personal access tokens: list, create, read, edit (narrow only), revoke, rotate, and the
//! token in use (`/tokens/current`, `/logout`). Shared issuing rules live in [`issue`].

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use slipway_core::time::{Timestamp, now};
use slipway_core::token::PlainToken;
use slipway_core::{AbilitySet, FieldErrors, identity};
use slipway_store::{AccessToken, TokenChanges};
use utoipa::ToSchema;

use crate::audit::AuditSlot;
use crate::auth::Principal;
use crate::auth::principal::TokenKind;
use crate::envelope::{Data, Paginated};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Page};
use crate::state::AppState;

/// A token as the API shows it. The secret is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResource {
    pub id: String,
    pub name: String,
    /// `personal` (acts for a user) or `organization` (belongs to an organization).
    pub kind: String,
    pub abilities: Vec<String>,
    /// The only organization this token may act in; `null` = every organization of its user.
    pub organization_id: Option<String>,
    pub server_ids: Option<Vec<String>>,
    pub site_ids: Option<Vec<String>>,
    /// CIDR ranges the token may be used from; `null` = anywhere.
    pub allowed_ips: Option<Vec<String>>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub expires_at: Option<DateTime<Utc>>,
    pub expired: bool,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// `api`, `login`, `dashboard`, `cli` or `setup`.
    pub created_via: String,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
}

/// A token just created or rotated: the only time `plain_text_token` is ever shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenResource {
    #[serde(flatten)]
    pub token: TokenResource,
    /// The secret. Store it now: Slipway keeps only a hash and cannot show it again.
    pub plain_text_token: String,
}

fn list(text: &Option<String>) -> Option<Vec<String>> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

impl From<&AccessToken> for TokenResource {
    fn from(t: &AccessToken) -> Self {
        TokenResource {
            id: t.id.clone(),
            name: t.name.clone(),
            kind: t.kind.clone(),
            abilities: serde_json::from_str(&t.abilities).unwrap_or_default(),
            organization_id: t.organization_id.clone(),
            server_ids: list(&t.server_ids),
            site_ids: list(&t.site_ids),
            allowed_ips: list(&t.allowed_ips),
            expires_at: t.expires_at,
            expired: t.expires_at.is_some_and(|at| at <= now()),
            created_at: t.created_at,
            created_via: t.created_via.clone(),
            last_used_at: t.last_used_at,
            last_used_ip: t.last_used_ip.clone(),
        }
    }
}

pub fn new_token_response(row: &AccessToken, plain: &PlainToken) -> Response {
    let body = Data { data: NewTokenResource { token: row.into(), plain_text_token: plain.expose().to_string() } };
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[schema(example = "CI deploys", min_length = 1, max_length = 255)]
    pub name: String,
    /// Ability patterns; defaults to the abilities of the token making the request.
    #[schema(example = json!(["site:deploy"]), max_items = 100)]
    pub abilities: Option<Vec<String>>,
    #[schema(min_length = 1)]
    pub organization_id: Option<String>,
    /// Servers of your organizations the token may touch (at most 100).
    #[schema(min_items = 1, max_items = 100)]
    pub server_ids: Option<Vec<String>>,
    /// Sites of your organizations the token may touch (at most 100).
    #[schema(min_items = 1, max_items = 100)]
    pub site_ids: Option<Vec<String>>,
    /// Addresses or CIDR ranges the token may be used from (at most 50).
    #[schema(example = json!(["203.0.113.0/24"]), min_items = 1, max_items = 50)]
    pub allowed_ips: Option<Vec<String>>,
    /// In the future; no later than the creator's expiry or an organization's maximum lifetime.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Everything a new token will be, before it is checked against its creator.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub kind: TokenKind,
    pub user_id: Option<String>,
    pub name: String,
    pub abilities: Option<Vec<String>>,
    pub organization_id: Option<String>,
    pub server_ids: Option<Vec<String>>,
    pub site_ids: Option<Vec<String>>,
    pub allowed_ips: Option<Vec<String>>,
    pub expires_at: Option<Timestamp>,
    pub created_via: &'static str,
    pub created_by: Option<String>,
}

/// Validates a token request against the token making it (`None` when a password made it),
/// fills defaults from the creator, applies organisation lifetime limits, and stores it.
pub async fn issue(
    state: &AppState,
    creator: Option<&Principal>,
    req: TokenRequest,
) -> Result<(AccessToken, PlainToken), ApiError> {
    if let Some(c) = creator {
        c.refuse_if_jwt("create tokens")?;
    }
    let mut errors = FieldErrors::new();
    identity::check_label(&mut errors, "name", &req.name);

    let abilities = match (&req.abilities, creator) {
        (Some(items), _) => parse_abilities(items)?,
        (None, Some(c)) => c.abilities.clone(),
        (None, None) => AbilitySet::everything(),
    };
    if let Some(c) = creator
        && !c.abilities.covers(&abilities)
    {
        let wider: Vec<String> = c.abilities.uncovered(&abilities).iter().map(|p| p.to_string()).collect();
        errors.add("abilities", format!("A token cannot grant abilities it does not hold: {}.", wider.join(", ")));
    }

    let organization_id = match (req.organization_id.clone(), creator.and_then(|c| c.organization_id.clone())) {
        (Some(asked), Some(only)) if asked != only => {
            errors.add("organization_id", "A token restricted to one organization cannot create one for another.");
            None
        }
        (asked, only) => asked.or(only),
    };
    if let (Some(org), Some(user)) = (&organization_id, &req.user_id)
        && req.kind == TokenKind::Personal
        && state.store.role_of(org, user).await?.is_none()
    {
        errors.add("organization_id", "You are not a member of this organization.");
    }

    if creator.is_some_and(Principal::site_only) {
        refuse_servers_from_site_token(&mut errors, req.server_ids.as_ref());
    }
    let server_ids =
        narrow_ids(&mut errors, "server_ids", req.server_ids.clone(), creator.and_then(|c| c.server_ids.clone()));
    let site_ids = narrow_ids(&mut errors, "site_ids", req.site_ids.clone(), creator.and_then(|c| c.site_ids.clone()));
    let allowed_ips =
        narrow_networks(&mut errors, req.allowed_ips.clone(), creator.and_then(|c| c.allowed_ips.clone()));
    let organizations = token_organizations(state, req.user_id.as_deref(), organization_id.as_deref()).await?;
    check_resources_exist(state, &mut errors, req.server_ids.as_deref(), req.site_ids.as_deref(), &organizations)
        .await?;

    let cap = lifetime_cap(state, &organizations, creator).await?;
    let expires_at = match (req.expires_at, cap) {
        (Some(at), _) if at <= now() => {
            errors.add("expires_at", "The expiry must be in the future.");
            None
        }
        (Some(at), Some((limit, why))) if at > limit => {
            errors.add("expires_at", format!("The expiry may not be later than {} ({why}).", limit.to_rfc3339()));
            None
        }
        (Some(at), _) => Some(at),
        (None, cap) => cap.map(|(limit, _)| limit),
    };
    errors.into_result()?;

    let plain = PlainToken::generate();
    let to_json = |v: &Option<Vec<String>>| v.as_ref().map(|v| serde_json::to_string(v).expect("strings serialise"));
    let row = AccessToken {
        id: slipway_core::new_id(),
        kind: req.kind.as_str().into(),
        user_id: req.user_id,
        organization_id,
        name: req.name.trim().to_string(),
        token_hash: plain.hash(),
        abilities: serde_json::to_string(&abilities.to_strings()).expect("strings serialise"),
        server_ids: to_json(&server_ids),
        site_ids: to_json(&site_ids),
        allowed_ips: to_json(&allowed_ips),
        expires_at,
        created_at: now(),
        created_via: req.created_via.into(),
        created_by: req.created_by,
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
    };
    state.store.insert_token(&row).await?;
    if row.created_via == "api" {
        announce(state, &row, "token.created").await;
    }
    Ok((row, plain))
}

/// Tells the token's organisation's channels that it was created or revoked. Tokens bound to no
/// organisation (a person's own, across their organisations) have nobody else to tell.
pub async fn announce(state: &AppState, token: &AccessToken, event_type: &'static str) {
    let Some(org) = &token.organization_id else { return };
    let path = slipway_engine::notify::tokens::path(token, org);
    let subject = slipway_engine::notify::Subject {
        resource_type: "token",
        id: token.id.clone(),
        name: token.name.clone(),
        path: Some(path),
        server_id: None,
        site_id: None,
    };
    let what = if event_type == "token.created" { "created" } else { "revoked" };
    let summary = format!("Access token {:?} ({}) was {what}", token.name, token.kind);
    let data = serde_json::json!({
        "kind": token.kind,
        "abilities": serde_json::from_str::<serde_json::Value>(&token.abilities).unwrap_or_default(),
        "expires_at": token.expires_at,
        "user_id": token.user_id,
    });
    let event = slipway_engine::notify::EventSpec::new(event_type, org, subject, summary).data(data);
    slipway_engine::notify::emit(&state.engine, event).await;
}

/// A token restricted to sites alone reaches no server itself; with `server_ids` added it would
/// act on those servers (their keys, daemons, databases), so neither a token it makes nor an edit
/// of it may name servers.
fn refuse_servers_from_site_token(errors: &mut FieldErrors, asked: Option<&Vec<String>>) {
    if asked.is_some() {
        errors.add(
            "server_ids",
            "A token restricted to sites cannot name servers: with server_ids it would act on the servers themselves.",
        );
    }
}

/// A requested id list must stay within the creator's (which it inherits when not given).
fn narrow_ids(
    errors: &mut FieldErrors,
    field: &str,
    asked: Option<Vec<String>>,
    limit: Option<Vec<String>>,
) -> Option<Vec<String>> {
    match (asked, limit) {
        (Some(asked), _) if asked.len() > MAX_RESOURCE_IDS => {
            errors.add(field, format!("The {field} may not have more than {MAX_RESOURCE_IDS} items."));
            None
        }
        (Some(asked), Some(limit)) if !asked.iter().all(|id| limit.contains(id)) => {
            errors.add(field, format!("The {field} must be within those of the token making the request."));
            None
        }
        (Some(asked), _) if asked.is_empty() => {
            errors.add(field, format!("The {field} may not be empty; omit it for no restriction."));
            None
        }
        (Some(asked), _) if asked.iter().any(|id| id.is_empty() || id.len() > 64) => {
            errors.add(field, format!("The {field} must be resource ids."));
            None
        }
        (asked, limit) => asked.or(limit),
    }
}

fn narrow_networks(
    errors: &mut FieldErrors,
    asked: Option<Vec<String>>,
    limit: Option<Vec<IpNet>>,
) -> Option<Vec<String>> {
    let Some(asked) = asked else { return limit.map(|nets| nets.iter().map(ToString::to_string).collect()) };
    if asked.is_empty() {
        errors.add("allowed_ips", "The allowed_ips may not be empty; omit it for no restriction.");
        return None;
    }
    if asked.len() > MAX_NETWORKS {
        errors.add("allowed_ips", format!("The allowed_ips may not have more than {MAX_NETWORKS} items."));
        return None;
    }
    let mut parsed = Vec::new();
    for (i, text) in asked.iter().enumerate() {
        let net = text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match net {
            Ok(net) if limit.as_ref().is_none_or(|l| l.iter().any(|outer| outer.contains(&net))) => {
                parsed.push(net.trunc())
            }
            Ok(_) => errors
                .add(format!("allowed_ips.{i}"), "Each range must be within those of the token making the request."),
            Err(_) => errors.add(format!("allowed_ips.{i}"), format!("{text:?} is not an IP address or CIDR range.")),
        }
    }
    Some(parsed.iter().map(ToString::to_string).collect())
}

/// The latest expiry allowed: the creator's own, and the shortest maximum lifetime set by any
/// organisation the token can act in.
pub(crate) async fn lifetime_cap(
    state: &AppState,
    organizations: &[String],
    creator: Option<&Principal>,
) -> Result<Option<(Timestamp, String)>, ApiError> {
    // A dashboard session's expiry is when the person must log in again, not a limit on what
    // they create: a token made in the dashboard for CI must outlive the session.
    let mut cap: Option<(Timestamp, String)> = creator
        .filter(|c| !c.dashboard_session)
        .and_then(|c| c.expires_at)
        .map(|at| (at, "the expiry of the token making the request".into()));
    let mut consider = |at: Timestamp, why: String| {
        if cap.as_ref().is_none_or(|(current, _)| at < *current) {
            cap = Some((at, why));
        }
    };
    for org in organizations {
        if let Some(o) = state.store.organization(org).await?
            && let Some(seconds) = o.max_token_lifetime_seconds
        {
            consider(now() + chrono::Duration::seconds(seconds), format!("the maximum token lifetime of {}", o.name));
        }
    }
    Ok(cap)
}

/// The most abilities, servers or sites, and networks a token may list (stated in the schema
/// as `maxItems` and in docs/api.md).
pub const MAX_ABILITIES: usize = 100;
pub const MAX_RESOURCE_IDS: usize = 100;
pub const MAX_NETWORKS: usize = 50;

fn parse_abilities(items: &[String]) -> Result<AbilitySet, ApiError> {
    if items.len() > MAX_ABILITIES {
        return Err(ApiError::validation(
            "abilities",
            format!("The abilities may not have more than {MAX_ABILITIES} items."),
        ));
    }
    AbilitySet::parse("abilities", items).map_err(ApiError::Validation)
}

/// The organisations a token can act in: the one it is bound to, else every organisation of
/// its user.
pub(crate) async fn token_organizations(
    state: &AppState,
    user_id: Option<&str>,
    organization_id: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    Ok(match (organization_id, user_id) {
        (Some(org), _) => vec![org.to_string()],
        (None, Some(user)) => state.store.memberships_of(user).await?.iter().map(|o| o.id.clone()).collect(),
        (None, None) => vec![],
    })
}

/// Servers and sites a token is restricted to must exist in an organisation it can act in: a
/// restriction to made-up ids means nothing. 422 naming the unknown ids.
async fn check_resources_exist(
    state: &AppState,
    errors: &mut FieldErrors,
    server_ids: Option<&[String]>,
    site_ids: Option<&[String]>,
    organizations: &[String],
) -> Result<(), ApiError> {
    for (field, kind, ids) in [("server_ids", "server", server_ids), ("site_ids", "site", site_ids)] {
        // Lists refused already (too long, outside the creator's) are not looked up.
        let Some(ids) = ids.filter(|_| errors.get(field).is_none()) else { continue };
        let mut unknown = Vec::new();
        for id in ids {
            let organization = match kind {
                "server" => state.store.server(id).await?.map(|s| s.organization_id),
                _ => state.store.site(id).await?.map(|s| s.organization_id),
            };
            if !organization.is_some_and(|o| organizations.contains(&o)) {
                unknown.push(id.as_str());
            }
        }
        if !unknown.is_empty() {
            errors.add(field, format!("No {kind} of your organizations has these ids: {}.", unknown.join(", ")));
        }
    }
    Ok(())
}

/// A personal token of the caller's user, from the `{id}` path segment; 404 for anyone else's.
#[derive(Debug)]
pub struct OwnToken(pub AccessToken);

impl FromRequestParts<AppState> for OwnToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound)?;
        let user = principal.user_id()?;
        match state.store.token(&id).await? {
            // Only a token the caller entirely covers: a narrow token must not reach (nor
            // rotate and receive the secret of) a wider one of the same user.
            Some(t)
                if t.user_id.as_deref() == Some(user)
                    && t.kind == TokenKind::Personal.as_str()
                    && principal.may_manage(&t) =>
            {
                Ok(OwnToken(t))
            }
            _ => Err(ApiError::NotFound),
        }
    }
}

/// The token-creation limit (10 a minute per caller by default).
pub async fn count_token_creation(
    state: &AppState,
    key: &str,
    report: Option<&crate::ratelimit::RateLimitReport>,
) -> Result<(), ApiError> {
    let d = state.limiter.hit("token-create", key, state.config.rate_limits.token_create_per_minute, 60).await?;
    if let Some(report) = report {
        report.record(&d);
    }
    if d.allowed { Ok(()) } else { Err(d.into_error()) }
}

/// List your personal access tokens (never their secrets).
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    params(crate::extract::PageParams),
    security(("token" = ["token:read"])),
    responses((status = 200, body = Paginated<TokenResource>))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Page(cursor): Page,
) -> Result<Paginated<TokenResource>, ApiError> {
    let (rows, total) = state.store.tokens_of_user(principal.user_id()?, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(TokenResource::from).collect(), total))
}

/// Create a personal access token. It can hold only abilities and restrictions the token
/// making the request has; the secret is in the response and never shown again. A JWT cannot
/// create tokens (403): use an access token.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens",
    request_body = CreateToken,
    security(("token" = ["token:create"])),
    responses((status = 201, body = Data<NewTokenResource>), (status = 429, body = ErrorBody))
)]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    audit: AuditSlot,
    report: Option<axum::Extension<crate::ratelimit::RateLimitReport>>,
    Json(body): Json<CreateToken>,
) -> Result<Response, ApiError> {
    count_token_creation(&state, &principal.subject_key, report.as_deref()).await?;
    let request = TokenRequest {
        kind: TokenKind::Personal,
        user_id: Some(principal.user_id()?.to_string()),
        name: body.name,
        abilities: body.abilities,
        organization_id: body.organization_id,
        server_ids: body.server_ids,
        site_ids: body.site_ids,
        allowed_ips: body.allowed_ips,
        expires_at: body.expires_at,
        created_via: "api",
        created_by: None,
    };
    let (row, plain) = issue(&state, Some(&principal), request).await?;
    audit.note(|n| {
        n.resource_id = Some(row.id.clone());
    });
    Ok(new_token_response(&row, &plain))
}

/// The token used for this request: what it is and what it may do.
#[utoipa::path(
    get, path = "/api/v1/tokens/current", tag = "tokens",
    security(("token" = [])),
    responses((status = 200, body = Data<TokenResource>))
)]
pub async fn current_token(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Data<TokenResource>, ApiError> {
    let row = state.store.token(&principal.token_id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: (&row).into() })
}

/// Revoke what authenticated this request: the access token, or for a JWT only its exchange
/// family (its JWTs and refresh tokens); the parent token stays valid.
#[utoipa::path(
    delete, path = "/api/v1/tokens/current", tag = "tokens",
    security(("token" = [])),
    responses((status = 204, description = "Revoked"))
)]
pub async fn revoke_current_token(
    State(state): State<AppState>,
    principal: Principal,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    revoke_principal(&state, &principal, &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes exactly what authenticated the request: the access token, or for a JWT its
/// exchange family (every JWT and refresh token of it), leaving the parent token valid.
async fn revoke_principal(state: &AppState, principal: &Principal, audit: &AuditSlot) -> Result<(), ApiError> {
    match &principal.jwt_family {
        Some(family) => {
            state.store.revoke_token_family(family, now()).await?;
            audit.note(|n| {
                n.resource_id = Some(family.clone());
                n.detail = Some("the JWT family used for the request; its parent token stays valid".into());
            });
        }
        None => {
            state.store.revoke_token(&principal.token_id, now()).await?;
            audit.note(|n| {
                n.resource_id = Some(principal.token_id.clone());
            });
        }
    }
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "Logged out.")]
    pub message: String,
}

/// Log out: revoke what authenticated this request (the access token, or a JWT's family).
#[utoipa::path(
    post, path = "/api/v1/logout", tag = "account",
    security(("token" = [])),
    responses((status = 200, body = Message))
)]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    audit: AuditSlot,
) -> Result<axum::Json<Message>, ApiError> {
    revoke_principal(&state, &principal, &audit).await?;
    Ok(axum::Json(Message { message: "Logged out.".into() }))
}

/// One of your tokens.
#[utoipa::path(
    get, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    security(("token" = ["token:read"])),
    responses((status = 200, body = Data<TokenResource>))
)]
pub async fn get_token(OwnToken(token): OwnToken) -> Data<TokenResource> {
    Data { data: (&token).into() }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateToken {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Must be within the token's current abilities: editing never widens a token.
    #[schema(max_items = 100)]
    pub abilities: Option<Vec<String>>,
    #[schema(min_items = 1, max_items = 100)]
    pub server_ids: Option<Vec<String>>,
    #[schema(min_items = 1, max_items = 100)]
    pub site_ids: Option<Vec<String>>,
    #[schema(min_items = 1, max_items = 50)]
    pub allowed_ips: Option<Vec<String>>,
    /// May only move the expiry earlier (or set one where there was none).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Rename a token or narrow what it may do. Nothing here can widen a token; for more, create
/// a new one.
#[utoipa::path(
    patch, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    request_body = Option<UpdateToken>,
    security(("token" = ["token:update"])),
    responses((status = 200, body = Data<TokenResource>))
)]
pub async fn update_token(
    State(state): State<AppState>,
    OwnToken(token): OwnToken,
    audit: AuditSlot,
    Json(body): Json<UpdateToken>,
) -> Result<Data<TokenResource>, ApiError> {
    let current = Principal::from_active_token(&token).map_err(|_| ApiError::NotFound)?;
    let mut errors = FieldErrors::new();
    let mut changes = TokenChanges::default();
    if let Some(name) = &body.name {
        identity::check_label(&mut errors, "name", name);
        changes.name = Some(name.trim().to_string());
    }
    if let Some(items) = &body.abilities {
        let asked = parse_abilities(items)?;
        if !current.abilities.covers(&asked) {
            errors.add("abilities", "Editing a token cannot widen its abilities.");
        }
        changes.abilities = Some(serde_json::to_string(&asked.to_strings()).expect("strings serialise"));
    }
    if current.site_only() {
        refuse_servers_from_site_token(&mut errors, body.server_ids.as_ref());
    }
    if body.server_ids.is_some() {
        let ids = narrow_ids(&mut errors, "server_ids", body.server_ids.clone(), current.server_ids.clone());
        changes.server_ids = Some(ids.map(|v| serde_json::to_string(&v).expect("strings serialise")));
    }
    if body.site_ids.is_some() {
        let ids = narrow_ids(&mut errors, "site_ids", body.site_ids.clone(), current.site_ids.clone());
        changes.site_ids = Some(ids.map(|v| serde_json::to_string(&v).expect("strings serialise")));
    }
    if body.allowed_ips.is_some() {
        let nets = narrow_networks(&mut errors, body.allowed_ips.clone(), current.allowed_ips.clone());
        changes.allowed_ips = Some(nets.map(|v| serde_json::to_string(&v).expect("strings serialise")));
    }
    if let Some(at) = body.expires_at {
        if at <= now() {
            errors.add("expires_at", "The expiry must be in the future.");
        } else if current.expires_at.is_some_and(|existing| at > existing) {
            errors.add("expires_at", "Editing a token can only move its expiry earlier.");
        }
        changes.expires_at = Some(Some(at));
    }
    let organizations = token_organizations(&state, token.user_id.as_deref(), token.organization_id.as_deref()).await?;
    check_resources_exist(&state, &mut errors, body.server_ids.as_deref(), body.site_ids.as_deref(), &organizations)
        .await?;
    errors.into_result()?;
    state.store.update_token(&token.id, &changes).await?;
    audit.note(|n| {
        n.resource_id = Some(token.id.clone());
    });
    let row = state.store.token(&token.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: (&row).into() })
}

/// Revoke one of your tokens. Takes effect on the very next request.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    security(("token" = ["token:delete"])),
    responses((status = 204, description = "Revoked"))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    OwnToken(token): OwnToken,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_token(&token.id, now()).await?;
    announce(&state, &token, "token.revoked").await;
    audit.note(|n| {
        n.resource_id = Some(token.id.clone());
    });
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a token: a new secret with the same settings; the old secret stops working at once.
/// Send an `Idempotency-Key` so that a retry returns the same new secret instead of failing.
/// A JWT cannot rotate tokens (403): use an access token.
#[utoipa::path(
    post, path = "/api/v1/tokens/{id}/rotate", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    security(("token" = ["token:update"])),
    responses((status = 201, body = Data<NewTokenResource>), (status = 429, body = ErrorBody))
)]
pub async fn rotate_token(
    State(state): State<AppState>,
    principal: Principal,
    OwnToken(token): OwnToken,
    audit: AuditSlot,
    report: Option<axum::Extension<crate::ratelimit::RateLimitReport>>,
) -> Result<Response, ApiError> {
    principal.refuse_if_jwt("rotate tokens")?;
    if token.created_via == "dashboard" {
        return Err(ApiError::Conflict("A dashboard session cannot be rotated: revoke it, and log in again.".into()));
    }
    count_token_creation(&state, &principal.subject_key, report.as_deref()).await?;
    let (row, plain) = rotate(&state, &token).await?;
    audit.note(|n| {
        n.resource_id = Some(token.id.clone());
        n.detail = Some(format!("replaced by {}", row.id));
    });
    Ok(new_token_response(&row, &plain))
}

/// Replaces `old` by a token with a new secret and the same settings, atomically.
pub async fn rotate(state: &AppState, old: &AccessToken) -> Result<(AccessToken, PlainToken), ApiError> {
    let plain = PlainToken::generate();
    let row = AccessToken {
        id: slipway_core::new_id(),
        token_hash: plain.hash(),
        created_at: now(),
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
        ..old.clone()
    };
    if !state.store.rotate_token(&old.id, &row, now()).await? {
        return Err(ApiError::NotFound);
    }
    Ok((row, plain))
}
