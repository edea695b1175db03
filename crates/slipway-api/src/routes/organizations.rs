//! Organisations, their members and roles, and organisation tokens (for CI; they belong to the
//! organisation and survive any member leaving). Owners and admins manage; admins cannot touch
//! owners; the last owner can be neither demoted nor removed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::identity::{Email, check_label};
use slipway_core::time::now;
use slipway_core::{FieldErrors, Role};
use slipway_store::{Member, Organization, StoreError};
use utoipa::ToSchema;

use crate::audit::AuditSlot;
use crate::auth::principal::TokenKind;
use crate::auth::{Authorized, Principal, Target};
use crate::envelope::{Data, Paginated};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Page};
use crate::routes::tokens::{
    CreateToken, NewTokenResource, TokenRequest, TokenResource, count_token_creation, issue, new_token_response,
};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationResource {
    pub id: String,
    pub name: String,
    /// Your role in it.
    pub role: String,
    /// Longest lifetime of tokens that can act in it, in seconds; `null` = no limit.
    pub max_token_lifetime_seconds: Option<i64>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// An organisation named by `{organization}` that the caller may act on as the route requires,
/// with the caller's role in it; 404 when it does not exist or the caller is not a member.
pub type VisibleOrganization = Authorized<OnOrganization<false>>;

/// The same, for owners and admins only: members, settings and organisation tokens.
pub type ManagedOrganization = Authorized<OnOrganization<true>>;

#[derive(Debug)]
pub struct OnOrganization<const MANAGERS_ONLY: bool> {
    pub organization: Organization,
}

impl<const MANAGERS_ONLY: bool> Target for OnOrganization<MANAGERS_ONLY> {
    const ORGANIZATION_LEVEL: bool = true;
    const MANAGERS_ONLY: bool = MANAGERS_ONLY;

    async fn load(parts: &mut Parts, state: &AppState, _: &Principal) -> Result<Self, ApiError> {
        let id = &crate::extract::path_param(parts, state, "organization").await?;
        Ok(OnOrganization { organization: state.store.organization(id).await?.ok_or(ApiError::NotFound)? })
    }

    fn organization_id(&self) -> &str {
        &self.organization.id
    }
}

impl<const M: bool> Authorized<OnOrganization<M>> {
    fn resource(&self) -> OrganizationResource {
        OrganizationResource {
            id: self.organization.id.clone(),
            name: self.organization.name.clone(),
            role: self.role.as_str().into(),
            max_token_lifetime_seconds: self.organization.max_token_lifetime_seconds,
            created_at: self.organization.created_at,
        }
    }
}

/// The organizations you belong to, with your role in each.
#[utoipa::path(
    get, path = "/api/v1/organizations", tag = "organizations",
    params(crate::extract::PageParams),
    security(("token" = ["organization:read"])),
    responses((status = 200, body = Paginated<OrganizationResource>))
)]
pub async fn list_organizations(
    State(state): State<AppState>,
    principal: Principal,
    Page(cursor): Page,
) -> Result<Paginated<OrganizationResource>, ApiError> {
    let (items, total) = match (&principal.kind, &principal.organization_id) {
        // A token bound to one organisation sees only that one.
        (_, Some(only)) => {
            let org = state.store.organization(only).await?.ok_or(ApiError::NotFound)?;
            let role = principal.role_in(&state, only).await?;
            let item = OrganizationResource {
                id: org.id,
                name: org.name,
                role: role.as_str().into(),
                max_token_lifetime_seconds: org.max_token_lifetime_seconds,
                created_at: org.created_at,
            };
            let items = if cursor.request.page == 1 { vec![item] } else { vec![] };
            (items, 1)
        }
        (TokenKind::Personal, None) => {
            let (rows, total) = state.store.organizations_of(principal.user_id()?, cursor.request).await?;
            let items = rows
                .into_iter()
                .map(|o| OrganizationResource {
                    id: o.id,
                    name: o.name,
                    role: o.role,
                    max_token_lifetime_seconds: o.max_token_lifetime_seconds,
                    created_at: o.created_at,
                })
                .collect();
            (items, total)
        }
        (TokenKind::Organization, None) => (vec![], 0),
    };
    Ok(cursor.page(items, total))
}

/// One organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{organization}", tag = "organizations",
    params(("organization" = String, Path)),
    security(("token" = ["organization:read"])),
    responses((status = 200, body = Data<OrganizationResource>))
)]
pub async fn get_organization(org: VisibleOrganization) -> Result<Data<OrganizationResource>, ApiError> {
    Ok(Data { data: org.resource() })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Maximum lifetime, in seconds, of tokens that can act in this organization (at least
    /// 3600, at most ten years); `0` removes the limit. Applies to tokens created from now on.
    #[schema(minimum = 0, maximum = 315360000)]
    pub max_token_lifetime_seconds: Option<i64>,
}

/// Rename an organization or set its maximum token lifetime (owners and admins).
#[utoipa::path(
    patch, path = "/api/v1/organizations/{organization}", tag = "organizations",
    params(("organization" = String, Path)),
    request_body = Option<UpdateOrganization>,
    security(("token" = ["organization:update"])),
    responses((status = 200, body = Data<OrganizationResource>))
)]
pub async fn update_organization(
    State(state): State<AppState>,
    org: ManagedOrganization,
    audit: AuditSlot,
    Json(body): Json<UpdateOrganization>,
) -> Result<Data<OrganizationResource>, ApiError> {
    let mut errors = FieldErrors::new();
    if let Some(name) = &body.name {
        check_label(&mut errors, "name", name);
    }
    let lifetime = match body.max_token_lifetime_seconds {
        None => None,
        Some(0) => Some(None),
        Some(s) if (3600..=10 * 365 * 24 * 3600).contains(&s) => Some(Some(s)),
        Some(_) => {
            errors.add(
                "max_token_lifetime_seconds",
                "The max_token_lifetime_seconds must be 0 (no limit) or between 3600 and ten years.",
            );
            None
        }
    };
    errors.into_result()?;
    state.store.update_organization(&org.organization.id, body.name.as_deref().map(str::trim), lifetime).await?;
    audit.note(|n| {
        n.organization_id = Some(org.organization.id.clone());
        n.resource_id = Some(org.organization.id.clone());
    });
    let fresh = state.store.organization(&org.organization.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: Authorized { target: OnOrganization { organization: fresh }, ..org }.resource() })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResource {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberResource {
    fn from(m: Member) -> Self {
        MemberResource { user_id: m.user_id, email: m.email, name: m.name, role: m.role, joined_at: m.created_at }
    }
}

/// Members of an organization and their roles.
#[utoipa::path(
    get, path = "/api/v1/organizations/{organization}/members", tag = "organizations",
    params(("organization" = String, Path), crate::extract::PageParams),
    security(("token" = ["organization:read"])),
    responses((status = 200, body = Paginated<MemberResource>))
)]
pub async fn list_members(
    State(state): State<AppState>,
    org: VisibleOrganization,
    Page(cursor): Page,
) -> Result<Paginated<MemberResource>, ApiError> {
    let (rows, total) = state.store.members(&org.organization.id, cursor.request).await?;
    Ok(cursor.page(rows.into_iter().map(MemberResource::from).collect(), total))
}

/// A role as requests name it.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::Owner => Role::Owner,
            RoleName::Admin => Role::Admin,
            RoleName::Member => Role::Member,
            RoleName::Viewer => Role::Viewer,
        }
    }
}

/// Admins manage admins, members and viewers; only owners manage owners.
fn may_assign(actor: Role, from: Option<Role>, to: Option<Role>) -> bool {
    actor == Role::Owner || (actor == Role::Admin && from != Some(Role::Owner) && to != Some(Role::Owner))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The email of an existing Slipway user.
    #[schema(format = Email)]
    pub email: String,
    pub role: RoleName,
}

/// Add an existing user to the organization (owners and admins; only owners add owners).
#[utoipa::path(
    post, path = "/api/v1/organizations/{organization}/members", tag = "organizations",
    params(("organization" = String, Path)),
    request_body = AddMember,
    security(("token" = ["organization:update"])),
    responses((status = 201, body = Data<MemberResource>))
)]
pub async fn add_member(
    State(state): State<AppState>,
    org: ManagedOrganization,
    audit: AuditSlot,
    Json(body): Json<AddMember>,
) -> Result<(StatusCode, Data<MemberResource>), ApiError> {
    let role = Role::from(body.role);
    let email = Email::parse(&body.email).map_err(|m| ApiError::validation("email", m))?;
    if !may_assign(org.role, None, Some(role)) {
        return Err(ApiError::Forbidden("Only owners can add owners.".into()));
    }
    let user =
        state.store.user_by_email(&email.normalized()).await?.ok_or_else(|| {
            ApiError::validation("email", "No Slipway user has this email; they need an account first.")
        })?;
    match state.store.add_member(&org.organization.id, &user.id, role.as_str()).await {
        Err(StoreError::Conflict(_)) => return Err(ApiError::validation("email", "This user is already a member.")),
        other => other?,
    }
    audit.note(|n| {
        n.organization_id = Some(org.organization.id.clone());
        n.resource_id = Some(user.id.clone());
        n.detail = Some(format!("role {role}"));
    });
    let member = state.store.member(&org.organization.id, &user.id).await?.ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Data { data: member.into() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: RoleName,
}

async fn target_member(state: &AppState, org: &ManagedOrganization, user: &str) -> Result<Member, ApiError> {
    state.store.member(&org.organization.id, user).await?.ok_or(ApiError::NotFound)
}

/// Change a member's role (the last owner cannot be demoted).
#[utoipa::path(
    patch, path = "/api/v1/organizations/{organization}/members/{user}", tag = "organizations",
    params(("organization" = String, Path), ("user" = String, Path, description = "User id")),
    request_body = ChangeRole,
    security(("token" = ["organization:update"])),
    responses((status = 200, body = Data<MemberResource>), (status = 409, body = ErrorBody))
)]
pub async fn change_member(
    State(state): State<AppState>,
    org: ManagedOrganization,
    Path(path): Path<(String, String)>,
    audit: AuditSlot,
    Json(body): Json<ChangeRole>,
) -> Result<Data<MemberResource>, ApiError> {
    let user = path.1;
    let member = target_member(&state, &org, &user).await?;
    let role = Role::from(body.role);
    if !may_assign(org.role, Role::parse(&member.role), Some(role)) {
        return Err(ApiError::Forbidden("Only owners can change owners or make owners.".into()));
    }
    state.store.change_member_role(&org.organization.id, &user, role.as_str()).await?;
    audit.note(|n| {
        n.organization_id = Some(org.organization.id.clone());
        n.resource_id = Some(user.clone());
        n.detail = Some(format!("{} -> {role}", member.role));
    });
    Ok(Data { data: target_member(&state, &org, &user).await?.into() })
}

/// Remove a member (the last owner cannot be removed). Their organization tokens keep working;
/// their personal tokens lose access to this organization at once.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{organization}/members/{user}", tag = "organizations",
    params(("organization" = String, Path), ("user" = String, Path, description = "User id")),
    security(("token" = ["organization:update"])),
    responses((status = 204, description = "Removed"), (status = 409, body = ErrorBody))
)]
pub async fn remove_member(
    State(state): State<AppState>,
    org: ManagedOrganization,
    Path(path): Path<(String, String)>,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    let user = path.1;
    let member = target_member(&state, &org, &user).await?;
    if !may_assign(org.role, Role::parse(&member.role), None) {
        return Err(ApiError::Forbidden("Only owners can remove owners.".into()));
    }
    state.store.remove_member(&org.organization.id, &user).await?;
    audit.note(|n| {
        n.organization_id = Some(org.organization.id.clone());
        n.resource_id = Some(user.clone());
    });
    Ok(StatusCode::NO_CONTENT)
}

/// The organization's tokens (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/organizations/{organization}/tokens", tag = "organizations",
    params(("organization" = String, Path), crate::extract::PageParams),
    security(("token" = ["token:read"])),
    responses((status = 200, body = Paginated<TokenResource>))
)]
pub async fn list_organization_tokens(
    State(state): State<AppState>,
    org: ManagedOrganization,
    Page(cursor): Page,
) -> Result<Paginated<TokenResource>, ApiError> {
    let (rows, total) = state.store.tokens_of_organization(&org.organization.id, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(TokenResource::from).collect(), total))
}

/// Create an organization token (owners and admins). It acts with the admin role, limited to
/// its abilities, and keeps working when the member who created it leaves.
#[utoipa::path(
    post, path = "/api/v1/organizations/{organization}/tokens", tag = "organizations",
    params(("organization" = String, Path)),
    request_body = CreateToken,
    security(("token" = ["token:create"])),
    responses((status = 201, body = Data<NewTokenResource>), (status = 429, body = ErrorBody))
)]
pub async fn create_organization_token(
    State(state): State<AppState>,
    org: ManagedOrganization,
    audit: AuditSlot,
    report: Option<axum::Extension<crate::ratelimit::RateLimitReport>>,
    Json(body): Json<CreateToken>,
) -> Result<Response, ApiError> {
    count_token_creation(&state, &org.principal.subject_key, report.as_deref()).await?;
    if body.organization_id.as_ref().is_some_and(|o| *o != org.organization.id) {
        return Err(ApiError::validation(
            "organization_id",
            "An organization token belongs to the organization in the URL.",
        ));
    }
    let request = TokenRequest {
        kind: TokenKind::Organization,
        user_id: None,
        name: body.name,
        abilities: body.abilities,
        organization_id: Some(org.organization.id.clone()),
        server_ids: body.server_ids,
        site_ids: body.site_ids,
        allowed_ips: body.allowed_ips,
        expires_at: body.expires_at,
        created_via: "api",
        created_by: org.principal.user_id.clone(),
    };
    let (row, plain) = issue(&state, Some(&org.principal), request).await?;
    audit.note(|n| {
        n.organization_id = Some(org.organization.id.clone());
        n.resource_id = Some(row.id.clone());
    });
    Ok(new_token_response(&row, &plain))
}

/// Revoke an organization token (owners and admins).
#[utoipa::path(
    delete, path = "/api/v1/organizations/{organization}/tokens/{id}", tag = "organizations",
    params(("organization" = String, Path), ("id" = String, Path, description = "Token id")),
    security(("token" = ["token:delete"])),
    responses((status = 204, description = "Revoked"))
)]
pub async fn revoke_organization_token(
    State(state): State<AppState>,
    org: ManagedOrganization,
    Path(path): Path<(String, String)>,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    let id = path.1;
    // As for personal tokens: only one the caller entirely covers (abilities, restrictions,
    // expiry), so a narrow token cannot revoke a wider one.
    let token = state.store.token(&id).await?.filter(|t| {
        t.kind == crate::auth::TokenKind::Organization.as_str()
            && t.organization_id.as_deref() == Some(org.organization.id.as_str())
            && org.principal.may_manage(t)
    });
    let token = token.ok_or(ApiError::NotFound)?;
    state.store.revoke_token(&token.id, now()).await?;
    crate::routes::tokens::announce(&state, &token, "token.revoked").await;
    audit.note(|n| {
        n.organization_id = Some(org.organization.id.clone());
        n.resource_id = Some(token.id.clone());
    });
    Ok(StatusCode::NO_CONTENT)
}
