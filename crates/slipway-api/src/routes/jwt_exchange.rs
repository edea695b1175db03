//! The Civo-style exchange: an access token buys a short-lived JWT plus a refresh token.
//! Refresh tokens rotate on every use; presenting one that was already used means it leaked,
//! so the whole family (every JWT and refresh token from that exchange) is revoked.

use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use slipway_core::time::now;
use slipway_core::token::{random_base62, sha256_hex};
use slipway_store::RefreshToken;
use utoipa::ToSchema;

use crate::audit::AuditSlot;
use crate::auth::Principal;
use crate::auth::jwt::{AccessClaims, IdClaims, JwtKeys};
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

const REFRESH_PREFIX: &str = "slpr_";

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// A JWT for `Authorization: Bearer`, valid for `expires_in` seconds.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Single use: trade it at `/auth/refresh` for a new pair. Reusing one revokes the family.
    pub refresh_token: String,
    pub expires_in: u64,
    /// A JWT describing the account (`sub`, `email`, `name`).
    pub id_token: String,
    /// The user id, or the organization id for an organization token.
    pub account_id: String,
}

fn new_refresh(family_id: &str, state: &AppState) -> (RefreshToken, String) {
    let plain = format!("{REFRESH_PREFIX}{}", random_base62(40));
    let row = RefreshToken {
        id: slipway_core::new_id(),
        family_id: family_id.to_string(),
        token_hash: sha256_hex(&plain),
        expires_at: now() + chrono::Duration::from_std(state.config.refresh_ttl).unwrap_or(chrono::Duration::days(30)),
        used_at: None,
        created_at: now(),
    };
    (row, plain)
}

async fn pair(
    state: &AppState,
    principal: &Principal,
    family_id: &str,
    refresh_plain: String,
) -> Result<TokenPair, ApiError> {
    let iat = Utc::now().timestamp();
    let ttl = state.config.jwt_ttl.as_secs();
    let (sub, account_id, email, name) = match &principal.user_id {
        Some(user_id) => {
            let user = state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
            (user_id.clone(), user_id.clone(), Some(user.email.clone()), Some(user.name.clone()))
        }
        None => {
            let org = principal.organization_id.clone().unwrap_or_default();
            (format!("organization:{org}"), org, None, None)
        }
    };
    let access = AccessClaims {
        iss: JwtKeys::issuer().into(),
        sub: sub.clone(),
        tid: principal.token_id.clone(),
        fam: family_id.to_string(),
        abilities: principal.abilities.to_strings(),
        typ: "access".into(),
        iat,
        exp: iat + ttl as i64,
        jti: slipway_core::new_id(),
    };
    let id = IdClaims {
        iss: JwtKeys::issuer().into(),
        aud: "slipway".into(),
        sub,
        email,
        name,
        typ: "id".into(),
        iat,
        exp: iat + ttl as i64,
    };
    Ok(TokenPair {
        access_token: state.jwt.sign(&access),
        token_type: "Bearer".into(),
        refresh_token: refresh_plain,
        expires_in: ttl,
        id_token: state.jwt.sign(&id),
        account_id,
    })
}

/// Exchange the access token used for this request for a short-lived JWT and a refresh token.
/// The JWT carries the token's abilities and restrictions; revoking the token stops both.
#[utoipa::path(
    post, path = "/api/v1/auth/exchange", tag = "auth",
    security(("token" = [])),
    responses((status = 200, body = TokenPair))
)]
pub async fn exchange(
    State(state): State<AppState>,
    principal: Principal,
    audit: AuditSlot,
) -> Result<axum::Json<TokenPair>, ApiError> {
    principal.refuse_if_jwt("be exchanged (renew a JWT at /auth/refresh)")?;
    let family_id = slipway_core::new_id();
    let (first, plain) = new_refresh(&family_id, &state);
    state.store.create_token_family(&family_id, &principal.token_id, &first).await?;
    audit.note(|n| {
        n.resource_id = Some(family_id.clone());
    });
    Ok(axum::Json(pair(&state, &principal, &family_id, plain).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

/// Trade a refresh token for a new JWT and refresh token. Each refresh token works once;
/// presenting a used one revokes its whole family.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = crate::error::ErrorBody),
        (status = 403, description = "The parent token may not be used from this address", body = crate::error::ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ip: crate::routes::account::ClientIp,
    audit: AuditSlot,
    Json(body): Json<RefreshRequest>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    let invalid = || ApiError::Unauthenticated { presented: true };
    let row = state.store.refresh_token_by_hash(&sha256_hex(body.refresh_token.trim())).await?.ok_or_else(invalid)?;
    note_family_owner(&state, &audit, &row.family_id).await?;
    if row.used_at.is_some() {
        state.store.revoke_token_family(&row.family_id, now()).await?;
        audit.note(|n| {
            n.action = Some("jwt.refresh_reuse".into());
            n.detail = Some("a used refresh token was presented; the family is revoked".into());
        });
        return Err(invalid());
    }
    if row.expires_at <= now() {
        return Err(invalid());
    }
    let token_id = state.store.active_token_family(&row.family_id).await?.ok_or_else(invalid)?;
    let parent = state.store.token(&token_id).await?.ok_or_else(invalid)?;
    let principal = Principal::from_active_token(&parent).map_err(|_| invalid())?;
    // The parent's network restriction holds for renewing too, not only for using the JWT.
    if let Some(allowed) = &principal.allowed_ips {
        let client = ip.as_ref().map(|c| c.0.0.ip());
        if !client.is_some_and(|ip| allowed.iter().any(|net| net.contains(&ip))) {
            return Err(ApiError::Forbidden("This token may not be used from your network address.".into()));
        }
    }
    let (next, plain) = new_refresh(&row.family_id, &state);
    if !state.store.use_refresh_token(&row.id, now(), &next).await? {
        // Lost a race with another use of the same token: that is reuse too.
        state.store.revoke_token_family(&row.family_id, now()).await?;
        audit.note(|n| n.action = Some("jwt.refresh_reuse".into()));
        return Err(invalid());
    }
    Ok(axum::Json(pair(&state, &principal, &row.family_id, plain).await?))
}

/// No token authenticates a refresh, so the record names the family's owner: its parent token,
/// that token's user and the organisation it is bound to. A reuse (a leaked refresh token) is
/// then in the owner's audit log, and in the organisation's for an organisation token.
async fn note_family_owner(state: &AppState, audit: &AuditSlot, family_id: &str) -> Result<(), ApiError> {
    let parent = match state.store.token_family_parent(family_id).await? {
        Some(token_id) => state.store.token(&token_id).await?,
        None => None,
    };
    audit.note(|n| {
        n.resource_id = Some(family_id.to_string());
        if let Some(parent) = parent {
            n.actor_user_id = parent.user_id;
            n.token_id = Some(parent.id);
            n.organization_id = parent.organization_id;
        }
    });
    Ok(())
}
