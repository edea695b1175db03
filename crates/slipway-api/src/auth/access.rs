//! Authorization in one place. The route table ([`super::rules`]) says which abilities an
//! operation needs; the guard has already checked them against the token. What is left needs the
//! resource: which organisation owns it, and the caller's role there. [`Authorized`] does that
//! for any [`Target`] named by the path, before the request body is read, so a caller who may
//! not act gets 403 (or 404 when the resource is not visible to them) and never a 422 first.
//! [`Caller`] does the same for operations whose organisation comes from the body.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use slipway_core::Role;

use super::Principal;
use super::rules::Rule;
use crate::error::ApiError;
use crate::state::AppState;

/// A resource a route acts on, loaded from the path. `load` answers 404 when the resource does
/// not exist or the token's server and site restrictions keep it out of reach.
pub trait Target: Sized + Send {
    /// Organisation-level resources (members, settings, organisation tokens, git providers and
    /// repositories shared across the organisation, the audit log) are refused to tokens
    /// restricted to some servers or sites: such a token could otherwise widen its own reach.
    const ORGANIZATION_LEVEL: bool = false;

    /// Managed by owners and admins only, whatever the role table allows (members, settings
    /// and organisation tokens).
    const MANAGERS_ONLY: bool = false;

    fn load(
        parts: &mut Parts,
        state: &AppState,
        principal: &Principal,
    ) -> impl Future<Output = Result<Self, ApiError>> + Send;

    fn organization_id(&self) -> &str;
}

/// A record the whole organisation shares (a git provider or repository, a backup storage, a
/// backup), named by one path segment.
pub trait SharedRecord: Sized + Send + Sync + 'static {
    /// The path segment naming it (`backup_storage`).
    const PARAM: &'static str;

    fn find(state: &AppState, id: &str)
    -> impl Future<Output = Result<Option<Self>, slipway_store::StoreError>> + Send;

    fn organization_id(&self) -> &str;
}

/// A [`SharedRecord`] named by the path: 404 when there is none, and as an organisation-level
/// target, refused to tokens restricted to some servers or sites.
#[derive(Debug)]
pub struct Shared<R>(R);

impl<R> Shared<R> {
    pub fn record(&self) -> &R {
        &self.0
    }
}

impl<R: SharedRecord> Target for Shared<R> {
    const ORGANIZATION_LEVEL: bool = true;

    async fn load(parts: &mut Parts, state: &AppState, _: &Principal) -> Result<Self, ApiError> {
        let id = crate::extract::path_param(parts, state, R::PARAM).await?;
        Ok(Shared(R::find(state, &id).await?.ok_or(ApiError::NotFound)?))
    }

    fn organization_id(&self) -> &str {
        self.0.organization_id()
    }
}

/// A [`Target`] the caller may act on as the route requires, with the role they act with.
#[derive(Debug)]
pub struct Authorized<T> {
    pub target: T,
    pub principal: Principal,
    pub role: Role,
}

impl<T> Deref for Authorized<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.target
    }
}

/// The rule the guard matched for this request.
fn rule_of(parts: &Parts) -> Result<Arc<Rule>, ApiError> {
    parts.extensions.get::<Arc<Rule>>().cloned().ok_or_else(|| ApiError::internal("a route without an access rule"))
}

impl<T: Target> FromRequestParts<AppState> for Authorized<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let rule = rule_of(parts)?;
        if T::ORGANIZATION_LEVEL {
            principal.refuse_if_restricted()?;
        }
        let target = T::load(parts, state, &principal).await?;
        let role = principal.role_in(state, target.organization_id()).await?;
        rule.check_role(&principal.abilities, role)?;
        if T::MANAGERS_ONLY && !role.manages_organization() {
            return Err(ApiError::Forbidden(format!(
                "Your role in this organization ({role}) does not allow this: only owners and admins manage it."
            )));
        }
        Ok(Authorized { target, principal, role })
    }
}

/// The caller of an operation whose organisation is not in the path (listing across
/// organisations, creating where the body says). Extraction already refuses a caller whose role
/// allows the operation in none of their organisations; [`Caller::authorize_in`] checks the one
/// the request names.
#[derive(Debug)]
pub struct Caller {
    pub principal: Principal,
    rule: Arc<Rule>,
}

impl Caller {
    /// The role in `organization_id`, provided it allows the route's abilities; 404 when the
    /// organisation is not visible to the caller.
    pub async fn authorize_in(&self, state: &AppState, organization_id: &str) -> Result<Role, ApiError> {
        let role = self.principal.role_in(state, organization_id).await?;
        self.rule.check_role(&self.principal.abilities, role)?;
        Ok(role)
    }

    /// The organisation a new resource goes in, authorised for the route: the one the body asks
    /// for, the one the token is bound to, or the only one the caller may act in (else a field
    /// error asks for it). Called before the rest of the body is validated.
    pub async fn organization_for_new(&self, state: &AppState, asked: Option<&str>) -> Result<String, ApiError> {
        let field = |m: &str| ApiError::validation("organization_id", m.to_string());
        let organization = match (asked.map(str::trim), &self.principal.organization_id) {
            (Some(a), Some(only)) if a != only => {
                return Err(field("This token is restricted to another organization."));
            }
            (Some(a), _) => a.to_string(),
            (None, Some(only)) => only.clone(),
            // Never a guess: with several organizations, the caller says which.
            (None, None) => {
                let mut visible = self.roles(state).await?;
                if visible.len() != 1 {
                    return Err(field("The organization_id is required when you belong to several organizations."));
                }
                visible.remove(0).0
            }
        };
        match self.authorize_in(state, &organization).await {
            Err(ApiError::NotFound) => Err(field("No such organization among yours.")),
            other => other.map(|_| organization),
        }
    }

    /// The organisations the caller may act in as the route requires.
    pub async fn organizations(&self, state: &AppState) -> Result<Vec<String>, ApiError> {
        Ok(self.roles(state).await?.into_iter().filter(|(_, role)| self.allows(*role)).map(|(id, _)| id).collect())
    }

    fn allows(&self, role: Role) -> bool {
        self.rule.check_role(&self.principal.abilities, role).is_ok()
    }

    async fn roles(&self, state: &AppState) -> Result<Vec<(String, Role)>, ApiError> {
        self.principal.organizations(state).await
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let caller = Caller { principal, rule: rule_of(parts)? };
        let roles = caller.roles(state).await?;
        if let Some((_, role)) = roles.first()
            && !roles.iter().any(|(_, role)| caller.allows(*role))
        {
            // Say why with the role of the first organisation: the same 403 as on a resource.
            caller.rule.check_role(&caller.principal.abilities, *role)?;
        }
        Ok(caller)
    }
}

/// A [`Caller`] of an organisation-level operation (see [`Target::ORGANIZATION_LEVEL`]).
#[derive(Debug)]
pub struct OrganizationCaller(pub Caller);

impl Deref for OrganizationCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequestParts<AppState> for OrganizationCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Principal::from_request_parts(parts, state).await?.refuse_if_restricted()?;
        Ok(OrganizationCaller(Caller::from_request_parts(parts, state).await?))
    }
}

impl<T> Authorized<T> {
    /// An ability the request needs beyond the route's, because of what it asks for (revealing
    /// secret values, deploying after a change): checked against the token and the role alike.
    pub fn require_also(&self, ability: slipway_core::Ability) -> Result<(), ApiError> {
        if !self.principal.abilities.allows(ability) {
            return Err(ApiError::missing_ability(ability));
        }
        if !self.role.allows(ability) {
            return Err(ApiError::Forbidden(format!(
                "Your role in this organization ({}) does not allow {ability}.",
                self.role
            )));
        }
        Ok(())
    }
}
