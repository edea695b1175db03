//! The authenticated caller, and the checks every handler uses to decide what it may see.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ipnet::IpNet;
use slipway_core::time::{Timestamp, now};
use slipway_core::token::PlainToken;
use slipway_core::{Ability, AbilitySet, Role};
use slipway_store::AccessToken;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Acts for a user, within that user's roles.
    Personal,
    /// Belongs to an organisation (for CI); survives members leaving; acts with the admin role.
    Organization,
}

impl TokenKind {
    /// How the kind is stored (the `kind` column on both backends).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Personal => "personal",
            TokenKind::Organization => "organization",
        }
    }

    pub fn parse(text: &str) -> Option<TokenKind> {
        [TokenKind::Personal, TokenKind::Organization].into_iter().find(|k| k.as_str() == text)
    }
}

/// What a stored token grants, parsed from its row: the same for every request made with it, so
/// it is parsed once per version of the row (see [`GrantCache`]) and shared.
#[derive(Debug)]
pub struct Grant {
    pub token_id: String,
    /// `token:<id>`: the name rate limits and idempotency keys give this token.
    pub subject_key: String,
    pub kind: TokenKind,
    pub user_id: Option<String>,
    /// The only organisation this token may act in (always set for organisation tokens).
    pub organization_id: Option<String>,
    pub abilities: AbilitySet,
    pub server_ids: Option<Vec<String>>,
    pub site_ids: Option<Vec<String>>,
    pub allowed_ips: Option<Vec<IpNet>>,
    pub expires_at: Option<Timestamp>,
    /// A dashboard session (its expiry is the session's lifetime, not a limit the person set).
    pub dashboard_session: bool,
}

/// Who is calling: resolved from a personal or organisation access token, or from a JWT
/// obtained by exchanging one. Its grant's fields read through it (`principal.token_id`).
#[derive(Debug, Clone)]
pub struct Principal {
    grant: Arc<Grant>,
    /// Set when the request came with a JWT from this exchange family.
    pub jwt_family: Option<String>,
    /// The user's roles as this request read them, so that its extractors and its handler ask
    /// the database once. A principal is made for each request (never cached across requests),
    /// so a role changed or removed holds from the next request, as without this.
    roles_seen: Arc<Mutex<RolesSeen>>,
}

impl std::ops::Deref for Principal {
    type Target = Grant;

    fn deref(&self) -> &Grant {
        &self.grant
    }
}

/// The parsed grants of tokens in use, each kept with the stored row it was parsed from. The
/// read cache hands back the same `Arc` for as long as a row is unchanged, so a pointer match
/// means the very same row and its parse is reused; any change to the row (a revocation, new
/// abilities) evicts it there, the next read is a new `Arc`, and it is parsed again. Holding the
/// row keeps its address from being reused by another.
#[derive(Debug, Default)]
pub struct GrantCache(Mutex<GrantsByToken>);

/// By token id: the row a grant was parsed from, and the grant.
type GrantsByToken = HashMap<String, (Arc<AccessToken>, Arc<Grant>)>;

/// Entries before the map is simply cleared; far above one instance's tokens in use.
const GRANT_CACHE_ENTRIES: usize = 10_000;

impl GrantCache {
    /// The grant of `row`, parsed or reused.
    pub fn grant(&self, row: &Arc<AccessToken>) -> Result<Arc<Grant>, AuthFailure> {
        if let Some((seen, grant)) = self.lock().get(&row.id)
            && Arc::ptr_eq(seen, row)
        {
            return Ok(grant.clone());
        }
        let grant = Arc::new(Grant::of_token(row)?);
        // A row no cache shares (PostgreSQL reads a fresh one each time) never comes back.
        if Arc::strong_count(row) > 1 {
            let mut map = self.lock();
            if map.len() >= GRANT_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(row.id.clone(), (row.clone(), grant.clone()));
        }
        Ok(grant)
    }

    fn lock(&self) -> MutexGuard<'_, GrantsByToken> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct RolesSeen {
    /// Every organisation of the user, with the role there (`organizations`).
    all: Option<Vec<(String, Role)>>,
    /// The role in one organisation, or none (`role_in`).
    each: HashMap<String, Option<Role>>,
}

/// Why authentication failed. Each becomes a 401 except a disallowed address (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
    AddressNotAllowed,
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Missing => ApiError::Unauthenticated { presented: false },
            AuthFailure::Invalid => ApiError::Unauthenticated { presented: true },
            AuthFailure::AddressNotAllowed => {
                ApiError::Forbidden("This token may not be used from your network address.".into())
            }
        }
    }
}

fn json_list(text: &Option<String>) -> Option<Vec<String>> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

/// Whether a stored token may still be used at `at`: neither revoked nor expired. The API and
/// the dashboard's sessions both ask this one question.
pub fn is_active(row: &AccessToken, at: Timestamp) -> bool {
    row.revoked_at.is_none() && row.expires_at.is_none_or(|expiry| expiry > at)
}

/// The key a token's requests are counted and remembered under (rate limits, idempotency keys),
/// the same for the API and for a dashboard session holding that token.
pub fn subject_key(token_id: &str) -> String {
    format!("token:{token_id}")
}

/// Refuses a token that is revoked or expired.
fn check_active(row: &AccessToken) -> Result<(), AuthFailure> {
    if !is_active(row, now()) {
        return Err(AuthFailure::Invalid);
    }
    Ok(())
}

impl Grant {
    fn of_token(row: &AccessToken) -> Result<Grant, AuthFailure> {
        let abilities: Vec<String> = serde_json::from_str(&row.abilities).map_err(|_| AuthFailure::Invalid)?;
        let abilities = AbilitySet::parse("abilities", &abilities).map_err(|_| AuthFailure::Invalid)?;
        // A kind this version does not know grants nothing: guessing would hand a token the
        // wrong powers.
        let kind = TokenKind::parse(&row.kind).ok_or_else(|| {
            tracing::error!(token = %row.id, kind = %row.kind, "a stored token has an unknown kind; refusing it");
            AuthFailure::Invalid
        })?;
        let allowed_ips = json_list(&row.allowed_ips)
            .map(|list| list.iter().filter_map(|c| c.parse::<IpNet>().ok()).collect::<Vec<_>>());
        Ok(Grant {
            token_id: row.id.clone(),
            subject_key: subject_key(&row.id),
            kind,
            user_id: row.user_id.clone(),
            organization_id: row.organization_id.clone(),
            abilities,
            server_ids: json_list(&row.server_ids),
            site_ids: json_list(&row.site_ids),
            allowed_ips,
            expires_at: row.expires_at,
            dashboard_session: row.created_via == "dashboard",
        })
    }
}

impl Principal {
    fn new(grant: Arc<Grant>) -> Principal {
        Principal { grant, jwt_family: None, roles_seen: Arc::default() }
    }

    /// The principal a stored token stands for, provided it is neither revoked nor expired.
    pub fn from_active_token(row: &AccessToken) -> Result<Principal, AuthFailure> {
        check_active(row)?;
        Self::of_token(row)
    }

    /// What a stored token would be allowed, whether or not it is still active.
    pub fn of_token(row: &AccessToken) -> Result<Principal, AuthFailure> {
        Ok(Principal::new(Arc::new(Grant::of_token(row)?)))
    }

    /// Resolves the `Authorization` header: `Bearer` or `Token` (any case), then a Slipway
    /// token or a JWT. Revocation and expiry hold from the very next request: the row is read (or
    /// taken from the read cache, which every change to it evicts) each time.
    pub async fn authenticate(
        state: &AppState,
        header: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Principal, AuthFailure> {
        let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(AuthFailure::Missing)?;
        let (scheme, credential) = header.split_once(char::is_whitespace).ok_or(AuthFailure::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
            return Err(AuthFailure::Invalid);
        }
        let credential = credential.trim();
        let principal = if credential.starts_with(slipway_core::token::TOKEN_PREFIX) {
            // Typos and made-up strings fail the checksum here, before any database work.
            let token = PlainToken::parse(credential).map_err(|_| AuthFailure::Invalid)?;
            let row = state.store.token_by_hash(&token.hash()).await.map_err(|_| AuthFailure::Invalid)?;
            let row = row.ok_or(AuthFailure::Invalid)?;
            check_active(&row)?;
            Principal::new(state.grants.grant(&row)?)
        } else if credential.split('.').count() == 3 {
            let claims = state.jwt.verify_access(credential).map_err(|_| AuthFailure::Invalid)?;
            // The parent token and the exchange family must both still be live.
            let family_token = state.store.active_token_family(&claims.fam).await.map_err(|_| AuthFailure::Invalid)?;
            if family_token.as_deref() != Some(claims.tid.as_str()) {
                return Err(AuthFailure::Invalid);
            }
            let row = state.store.token(&claims.tid).await.map_err(|_| AuthFailure::Invalid)?;
            let mut principal = Principal::from_active_token(&row.ok_or(AuthFailure::Invalid)?)?;
            principal.jwt_family = Some(claims.fam);
            principal
        } else {
            return Err(AuthFailure::Invalid);
        };
        if let Some(allowed) = &principal.allowed_ips {
            let permitted = ip.is_some_and(|ip| allowed.iter().any(|net| net.contains(&ip)));
            if !permitted {
                return Err(AuthFailure::AddressNotAllowed);
            }
        }
        Ok(principal)
    }

    /// The user behind a personal token; organisation tokens have none.
    pub fn user_id(&self) -> Result<&str, ApiError> {
        self.user_id.as_deref().ok_or_else(|| {
            ApiError::Forbidden("This endpoint needs a personal access token; organisation tokens have no user.".into())
        })
    }

    /// Every organisation visible to this principal, with the role it acts with there.
    pub async fn organizations(&self, state: &AppState) -> Result<Vec<(String, Role)>, ApiError> {
        Ok(match (&self.organization_id, self.kind) {
            // A token bound to one organisation still needs its user to be a member of it (a
            // member removed since keeps the token, not the access).
            (Some(only), _) => match self.role_in(state, only).await {
                Ok(role) => vec![(only.clone(), role)],
                Err(ApiError::NotFound) => vec![],
                Err(e) => return Err(e),
            },
            (None, TokenKind::Personal) => {
                if let Some(all) = &self.roles_seen().all {
                    return Ok(all.clone());
                }
                let all: Vec<(String, Role)> = state
                    .store
                    .memberships_of(self.user_id()?)
                    .await?
                    .iter()
                    .filter_map(|o| Role::parse(&o.role).map(|role| (o.id.clone(), role)))
                    .collect();
                self.roles_seen().all = Some(all.clone());
                all
            }
            (None, TokenKind::Organization) => vec![],
        })
    }

    /// The role this principal acts with in `organization_id`, or 404 when the organisation is
    /// not visible to it (not a member, or the token is restricted to another organisation).
    pub async fn role_in(&self, state: &AppState, organization_id: &str) -> Result<Role, ApiError> {
        if self.organization_id.as_deref().is_some_and(|only| only != organization_id) {
            return Err(ApiError::NotFound);
        }
        match self.kind {
            TokenKind::Organization => Ok(Role::Admin),
            TokenKind::Personal => {
                let user = self.user_id()?;
                let seen = self.roles_seen().each.get(organization_id).copied();
                let role = match seen {
                    Some(role) => role,
                    None => {
                        let role = state.store.role_of(organization_id, user).await?.as_deref().and_then(Role::parse);
                        self.roles_seen().each.insert(organization_id.to_string(), role);
                        role
                    }
                };
                role.ok_or(ApiError::NotFound)
            }
        }
    }

    fn roles_seen(&self) -> MutexGuard<'_, RolesSeen> {
        // Nothing panics while holding it; a poisoned memo is still a correct one.
        self.roles_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Effective permission: the token's abilities ∩ the role in the organisation. 404 when the
    /// organisation is not visible, 403 naming the ability when it is but the ability is missing.
    pub async fn authorize_in(
        &self,
        state: &AppState,
        organization_id: &str,
        ability: Ability,
    ) -> Result<Role, ApiError> {
        let role = self.role_in(state, organization_id).await?;
        if !self.abilities.allows(ability) {
            return Err(ApiError::missing_ability(ability));
        }
        if !role.allows(ability) {
            return Err(ApiError::Forbidden(format!(
                "Your role in this organization ({role}) does not allow {ability}."
            )));
        }
        Ok(role)
    }

    /// Whether this principal may manage (see, edit, revoke, rotate) another token: only one
    /// it entirely covers, so a narrow token can never reach a wider token's secret or settings.
    pub fn covers_token(&self, target: &Principal) -> bool {
        if self.token_id == target.token_id {
            return true;
        }
        let ids_within = |mine: &Option<Vec<String>>, theirs: &Option<Vec<String>>| match (mine, theirs) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|id| mine.contains(id)),
        };
        let nets_within = match (&self.allowed_ips, &target.allowed_ips) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|net| mine.iter().any(|outer| outer.contains(net))),
        };
        // A dashboard session's expiry bounds the session, not what its person may manage.
        let own_expiry = self.expires_at.filter(|_| !self.dashboard_session);
        let expiry_within = match (own_expiry, target.expires_at) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs <= mine,
        };
        // Each list narrows on its own, except that a token with both acts on its servers
        // themselves, which a token restricted to sites alone never does.
        let servers_within =
            ids_within(&self.server_ids, &target.server_ids) && !(self.site_only() && target.server_ids.is_some());
        self.abilities.covers(&target.abilities)
            && self.organization_id.as_ref().is_none_or(|only| target.organization_id.as_ref() == Some(only))
            && servers_within
            && ids_within(&self.site_ids, &target.site_ids)
            && nets_within
            && expiry_within
    }

    /// A JWT is a short-lived stand-in for its parent token: it may use the parent's abilities
    /// but never turn them into a credential that outlives it (a new token, a rotated secret,
    /// another exchange), which would survive the revocation of its family.
    pub fn refuse_if_jwt(&self, what: &str) -> Result<(), ApiError> {
        if self.jwt_family.is_some() {
            return Err(ApiError::Forbidden(format!("A JWT cannot {what}; use an access token (slp_…) for that.")));
        }
        Ok(())
    }

    /// Whether this principal may manage the stored token `row`: a live token it entirely
    /// covers ([`Principal::covers_token`]). The same rule for personal and organisation tokens.
    pub fn may_manage(&self, row: &AccessToken) -> bool {
        row.revoked_at.is_none() && Principal::of_token(row).is_ok_and(|target| self.covers_token(&target))
    }

    /// Tokens restricted to some servers or sites never act at the organisation level (members,
    /// settings, organisation tokens, git providers and repositories, the audit log, new
    /// servers): from there they could hand themselves, or someone else, what their restriction
    /// withholds.
    pub fn refuse_if_restricted(&self) -> Result<(), ApiError> {
        if self.server_ids.is_some() || self.site_ids.is_some() {
            return Err(ApiError::Forbidden(
                "This token is restricted to some servers or sites, so it cannot act on the organization \
                 (members, settings, organization tokens, git providers and repositories, the audit log, \
                 new servers)."
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether the token's server restriction lets it reach this server at all (its sites
    /// included). See [`Principal::may_act_on_server`] for the server itself.
    pub fn may_touch_server(&self, server_id: &str) -> bool {
        self.server_ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == server_id))
    }

    /// Restricted to some sites and not to servers: it acts on no server itself.
    pub fn site_only(&self) -> bool {
        self.server_ids.is_none() && self.site_ids.is_some()
    }

    /// Whether the token may act on this server itself: its SSH keys, firewall, daemons,
    /// databases, operations, its removal. A token restricted to some sites, and not to
    /// servers, reaches a server only through those sites: the server's own items would give it
    /// every other site on it (a daemon runs as any user, an SSH key logs in).
    pub fn may_act_on_server(&self, server_id: &str) -> bool {
        match &self.server_ids {
            Some(ids) => ids.iter().any(|i| i == server_id),
            None => self.site_ids.is_none(),
        }
    }

    /// Whether this server hosts one of the sites the token is restricted to (false for a token
    /// without a site restriction).
    pub async fn hosts_its_sites(&self, state: &AppState, server_id: &str) -> Result<bool, ApiError> {
        let Some(ids) = &self.site_ids else { return Ok(false) };
        if ids.is_empty() || !self.may_touch_server(server_id) {
            return Ok(false);
        }
        let one = slipway_core::PageRequest::new(1, 1);
        let (sites, _) = state.store.sites_of_server(server_id, Some(ids), Some(one)).await?;
        Ok(!sites.is_empty())
    }

    pub fn may_touch_site(&self, site_id: &str) -> bool {
        self.site_ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == site_id))
    }
}

/// Handlers take `principal: Principal`; the guard middleware put it there. A route whose spec
/// entry declares no security never has one, so asking for it there is a 401, not a panic.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        parts.extensions.get::<Principal>().cloned().ok_or(ApiError::Unauthenticated { presented: false })
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    fn row(kind: &str) -> AccessToken {
        AccessToken {
            id: "01TOKEN".into(),
            kind: kind.into(),
            user_id: Some("01USER".into()),
            organization_id: None,
            name: "t".into(),
            token_hash: "h".into(),
            abilities: r#"["*"]"#.into(),
            server_ids: None,
            site_ids: None,
            allowed_ips: None,
            expires_at: None,
            created_at: now(),
            created_via: "api".into(),
            created_by: None,
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_kind_this_version_does_not_know_grants_nothing() {
        assert!(matches!(Principal::of_token(&row("robot")), Err(AuthFailure::Invalid)));
        assert_eq!(Principal::of_token(&row("personal")).unwrap().kind, TokenKind::Personal);
        assert_eq!(Principal::of_token(&row("organization")).unwrap().kind, TokenKind::Organization);
    }
}
