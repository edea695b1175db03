//! Accounts: first-owner setup, registration (off by default), password login (with a TOTP
//! second factor when enabled), the current user, and enrolling in two-factor authentication.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::identity::{Email, check_label};
use slipway_core::password::{dummy_hash, hash_password, password_problem, verify_password};
use slipway_core::token::sha256_hex;
use slipway_core::{FieldErrors, totp};
use slipway_store::{NewUser, StoreError, User};
use utoipa::ToSchema;

use crate::audit::AuditSlot;
use crate::auth::Principal;
use crate::auth::principal::TokenKind;
use crate::envelope::Data;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::ratelimit::RateLimitReport;
use crate::routes::tokens::{NewTokenResource, TokenRequest, issue, new_token_response};
use crate::state::AppState;

/// Settings key holding the SHA-256 of the one-time setup code while no user exists.
pub const SETUP_CODE_SETTING: &str = "setup_code_hash";

pub type ClientIp = Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

fn ip_of(ip: &ClientIp) -> Option<IpAddr> {
    ip.as_ref().map(|c| c.0.0.ip())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationMembership {
    pub id: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResource {
    pub id: String,
    pub email: String,
    pub name: String,
    pub two_factor_enabled: bool,
    pub organizations: Vec<OrganizationMembership>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

pub async fn user_resource(state: &AppState, user: &User) -> Result<UserResource, ApiError> {
    let orgs = state.store.memberships_of(&user.id).await?;
    Ok(UserResource {
        id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        two_factor_enabled: user.totp_enabled,
        organizations: orgs
            .iter()
            .map(|o| OrganizationMembership { id: o.id.clone(), name: o.name.clone(), role: o.role.clone() })
            .collect(),
        created_at: user.created_at,
    })
}

/// Counts an attempt against the login limit, per client address and per account.
async fn count_auth_attempt(
    state: &AppState,
    ip: Option<IpAddr>,
    account: Option<&str>,
    report: Option<&RateLimitReport>,
) -> Result<(), ApiError> {
    let limit = state.config.rate_limits.auth_per_minute;
    let mut keys: Vec<String> = ip.map(|i| format!("ip:{i}")).into_iter().collect();
    if let Some(account) = account {
        keys.push(format!("account:{}", account.to_lowercase()));
    }
    for key in keys {
        let d = state.limiter.hit("auth", &key, limit, 60).await?;
        if let Some(r) = report {
            r.record(&d);
        }
        if !d.allowed {
            return Err(d.into_error());
        }
    }
    Ok(())
}

/// Validated fields of a new account.
struct NewAccount {
    email: Email,
    name: String,
    password: String,
}

fn validate_account(email: &str, name: &str, password: &str, errors: &mut FieldErrors) -> Option<NewAccount> {
    let email = Email::parse(email).map_err(|m| errors.add("email", m)).ok();
    check_label(errors, "name", name);
    if let Some(problem) = password_problem(password) {
        errors.add("password", problem);
    }
    Some(NewAccount { email: email?, name: name.trim().to_string(), password: password.to_string() })
}

/// Creates a user and a new organisation they own; hashing runs off the async executor.
async fn create_account(
    state: &AppState,
    account: NewAccount,
    organization_name: &str,
) -> Result<(Arc<User>, String), ApiError> {
    let password = account.password;
    let password_hash =
        tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(ApiError::internal)?;
    let new = NewUser {
        id: slipway_core::new_id(),
        email_normalized: account.email.normalized(),
        email: account.email.as_str().to_string(),
        name: account.name,
        password_hash,
    };
    let organization_id = slipway_core::new_id();
    match state.store.create_user_with_organization(&new, &organization_id, organization_name.trim(), "owner").await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(ApiError::validation("email", "The email has already been taken.")),
        Err(e) => return Err(e.into()),
    }
    let user = state.store.user(&new.id).await?.ok_or(ApiError::NotFound)?;
    Ok((user, organization_id))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The one-time code `slipway serve` printed on its first start.
    #[schema(min_length = 1)]
    pub code: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// At least 12 characters.
    #[schema(format = Password, min_length = 12)]
    pub password: String,
    #[schema(min_length = 1, max_length = 255)]
    pub organization: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupResult {
    pub user: UserResource,
    pub organization_id: String,
    /// A token for the new owner, with every ability. Shown once.
    pub token: NewTokenResource,
}

/// Whether `code` is the live setup code (constant-time on the hashes).
pub async fn setup_code_matches(state: &AppState, code: &str) -> Result<bool, ApiError> {
    let stored = state.store.setting(SETUP_CODE_SETTING).await?.unwrap_or_default();
    if stored.is_empty() || state.store.count_users().await? > 0 {
        return Ok(false);
    }
    let given = sha256_hex(code.trim());
    Ok(given.len() == stored.len() && given.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
}

/// Creates the first owner and organisation with the setup code, then retires the code.
pub async fn run_setup(state: &AppState, body: SetupRequest, ip: Option<IpAddr>) -> Result<SetupResult, ApiError> {
    count_auth_attempt(state, ip, None, None).await?;
    if !setup_code_matches(state, &body.code).await? {
        return Err(ApiError::validation("code", "The setup code is invalid or was already used."));
    }
    let mut errors = FieldErrors::new();
    check_label(&mut errors, "organization", &body.organization);
    let account = validate_account(&body.email, &body.name, &body.password, &mut errors);
    errors.into_result()?;
    let account = account.expect("valid when there are no errors");
    // Spend the code atomically: of two concurrent attempts, only one gets past this point.
    let stored = state.store.setting(SETUP_CODE_SETTING).await?.unwrap_or_default();
    if stored.is_empty() || !state.store.swap_setting(SETUP_CODE_SETTING, &stored, "").await? {
        return Err(ApiError::validation("code", "The setup code is invalid or was already used."));
    }
    let (user, organization_id) = create_account(state, account, &body.organization).await?;
    let (row, plain) = issue(state, None, login_token(&user.id, "setup", "setup", None, None)).await?;
    Ok(SetupResult {
        user: user_resource(state, &user).await?,
        organization_id,
        token: NewTokenResource { token: (&row).into(), plain_text_token: plain.expose().to_string() },
    })
}

fn login_token(
    user_id: &str,
    name: &str,
    via: &'static str,
    abilities: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
) -> TokenRequest {
    TokenRequest {
        kind: TokenKind::Personal,
        user_id: Some(user_id.to_string()),
        name: name.to_string(),
        abilities,
        organization_id: None,
        server_ids: None,
        site_ids: None,
        allowed_ips: None,
        expires_at,
        created_via: via,
        created_by: None,
    }
}

/// Create the first owner and organization with the one-time code printed on first start.
/// Works only while no user exists; the code stops working once used.
#[utoipa::path(
    post, path = "/api/v1/setup", tag = "account",
    request_body = SetupRequest,
    responses((status = 201, body = Data<SetupResult>), (status = 429, body = ErrorBody))
)]
pub async fn setup(
    State(state): State<AppState>,
    ip: ClientIp,
    audit: AuditSlot,
    Json(body): Json<SetupRequest>,
) -> Result<Response, ApiError> {
    let result = run_setup(&state, body, ip_of(&ip)).await?;
    audit.note(|n| {
        n.actor_user_id = Some(result.user.id.clone());
        n.organization_id = Some(result.organization_id.clone());
        n.resource_id = Some(result.user.id.clone());
    });
    Ok((StatusCode::CREATED, axum::Json(Data { data: result })).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// At least 12 characters.
    #[schema(format = Password, min_length = 12)]
    pub password: String,
    /// Name of the organization to create; defaults to "<name>'s organization".
    #[schema(min_length = 1, max_length = 255)]
    pub organization: Option<String>,
}

/// Create an account and its organization. Off unless the server enables registration.
#[utoipa::path(
    post, path = "/api/v1/register", tag = "account",
    request_body = RegisterRequest,
    responses((status = 201, body = Data<UserResource>), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody))
)]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    audit: AuditSlot,
    report: Option<Extension<RateLimitReport>>,
    Json(body): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    if !state.config.registration_enabled {
        return Err(ApiError::Forbidden(
            "Registration is disabled on this server; ask an administrator for an account.".into(),
        ));
    }
    count_auth_attempt(&state, ip_of(&ip), Some(&body.email), report.as_deref()).await?;
    let mut errors = FieldErrors::new();
    let organization = body.organization.clone().unwrap_or_else(|| format!("{}'s organization", body.name.trim()));
    check_label(&mut errors, "organization", &organization);
    let account = validate_account(&body.email, &body.name, &body.password, &mut errors);
    errors.into_result()?;
    let (user, organization_id) = create_account(&state, account.expect("valid"), &organization).await?;
    audit.note(|n| {
        n.actor_user_id = Some(user.id.clone());
        n.organization_id = Some(organization_id);
        n.resource_id = Some(user.id.clone());
    });
    Ok((StatusCode::CREATED, axum::Json(Data { data: user_resource(&state, &user).await? })).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// A wrong or unknown one is the same 422 on `email` as a wrong password.
    #[schema(format = Email)]
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
    /// The 6-digit code from the authenticator app, or a recovery code, when 2FA is on.
    pub otp: Option<String>,
    /// Label of the token created; defaults to "login".
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Abilities of the token created; defaults to every ability.
    #[schema(max_items = 100)]
    pub abilities: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

const BAD_CREDENTIALS: &str = "These credentials do not match our records.";

/// Exchange an email and password (and a one-time code when 2FA is on) for a token.
#[utoipa::path(
    post, path = "/api/v1/login", tag = "account",
    request_body = LoginRequest,
    responses((status = 201, body = Data<NewTokenResource>), (status = 429, body = ErrorBody))
)]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    audit: AuditSlot,
    report: Option<Extension<RateLimitReport>>,
    in_process: Option<Extension<crate::InProcess>>,
    Json(body): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let user = match Email::parse(&body.email) {
        Ok(email) => state.store.user_by_email(&email.normalized()).await?,
        Err(_) => None,
    };
    // Every attempt, a rate-limited or failed one too, is recorded against the account it names
    // (when that exists), so its owner can see the attempts.
    audit.note(|n| n.actor_user_id = user.as_ref().map(|u| u.id.clone()));
    count_auth_attempt(&state, ip_of(&ip), Some(body.email.trim()), report.as_deref()).await?;
    // Verify against a dummy hash for unknown accounts, so timing does not reveal which exist.
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_string());
    let password = body.password.clone();
    let password_ok =
        tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.map_err(ApiError::internal)?;
    let Some(user) = user.as_ref().filter(|_| password_ok).cloned() else {
        audit.note(|n| {
            n.action = Some("login.failed".into());
            n.detail = Some("bad credentials".into());
        });
        return Err(ApiError::validation("email", BAD_CREDENTIALS));
    };
    if user.totp_enabled {
        let Some(code) = body.otp.as_deref().filter(|c| !c.trim().is_empty()) else {
            audit.note(|n| {
                n.action = Some("login.failed".into());
                n.detail = Some("one-time code missing".into());
            });
            return Err(ApiError::validation("otp", "A one-time code is required for this account."));
        };
        if !check_second_factor(&state, &user, code).await? {
            audit.note(|n| {
                n.action = Some("login.2fa_failed".into());
                n.detail = Some("wrong one-time code".into());
            });
            return Err(ApiError::validation("otp", "The one-time code is not valid."));
        }
    }
    count_token_limit(&state, &user.id, report.as_deref()).await?;
    let name = body.name.clone().unwrap_or_else(|| "login".into());
    // A dashboard login's token is its session; only such tokens are accepted in the cookie.
    let via = if in_process.is_some() { "dashboard" } else { "login" };
    let mut expires_at = body.expires_at;
    if in_process.is_some() {
        // A session lasts as long as the dashboard asks, but never longer than an organization
        // of the user allows tokens to live: then it ends sooner instead of refusing the login.
        let organizations = crate::routes::tokens::token_organizations(&state, Some(&user.id), None).await?;
        if let Some((limit, _)) = crate::routes::tokens::lifetime_cap(&state, &organizations, None).await? {
            expires_at = Some(expires_at.map_or(limit, |asked| asked.min(limit)));
        }
    }
    let (row, plain) = issue(&state, None, login_token(&user.id, &name, via, body.abilities, expires_at)).await?;
    audit.note(|n| {
        n.token_id = Some(row.id.clone());
        n.resource_id = Some(row.id.clone());
    });
    Ok(new_token_response(&row, &plain))
}

async fn count_token_limit(state: &AppState, user_id: &str, report: Option<&RateLimitReport>) -> Result<(), ApiError> {
    crate::routes::tokens::count_token_creation(state, &format!("user:{user_id}"), report).await
}

/// A TOTP code (not replayable) or an unused recovery code (spent on use).
async fn check_second_factor(state: &AppState, user: &User, code: &str) -> Result<bool, ApiError> {
    let Some(sealed) = &user.totp_secret else { return Ok(false) };
    let secret = state.secrets.open(&totp_context(&user.id), sealed).map_err(ApiError::internal)?;
    let unix = slipway_core::time::now().timestamp().max(0) as u64;
    if let Some(counter) = totp::verify(&secret, code, unix) {
        return Ok(state.store.record_totp_counter(&user.id, counter as i64).await?);
    }
    let Some(stored) = &user.recovery_codes else { return Ok(false) };
    let mut hashes: Vec<String> = serde_json::from_str(stored).unwrap_or_default();
    let wanted = sha256_hex(&totp::normalize_recovery_code(code));
    let Some(pos) = hashes.iter().position(|h| *h == wanted) else { return Ok(false) };
    hashes.remove(pos);
    let remaining = serde_json::to_string(&hashes).expect("strings serialise");
    Ok(state.store.swap_recovery_codes(&user.id, stored, &remaining).await?)
}

pub fn totp_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// The user behind the token, with their organizations and roles.
#[utoipa::path(
    get, path = "/api/v1/user", tag = "account",
    security(("token" = [])),
    responses((status = 200, body = Data<UserResource>), (status = 403, body = ErrorBody))
)]
pub async fn current_user(State(state): State<AppState>, principal: Principal) -> Result<Data<UserResource>, ApiError> {
    let user = state.store.user(principal.user_id()?).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: user_resource(&state, &user).await? })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    /// Your current password: a token alone cannot change how you sign in.
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorEnrolment {
    /// The secret in base32, for typing into an authenticator app.
    pub secret: String,
    /// The `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// Checks the account password for a security change. It counts against the login limit for
/// the account, so a stolen token cannot be used to guess the password faster than a login can.
async fn confirm_password(
    state: &AppState,
    principal: &Principal,
    password: &str,
    audit: &AuditSlot,
) -> Result<Arc<User>, ApiError> {
    confirm_password_in(state, principal, password, audit, "password").await
}

/// [`confirm_password`], naming `field` in the 422 when the password is wrong.
async fn confirm_password_in(
    state: &AppState,
    principal: &Principal,
    password: &str,
    audit: &AuditSlot,
    field: &str,
) -> Result<Arc<User>, ApiError> {
    let user = state.store.user(principal.user_id()?).await?.ok_or(ApiError::NotFound)?;
    count_auth_attempt(state, None, Some(&user.email), None).await?;
    let (hash, password) = (user.password_hash.clone(), password.to_string());
    let ok =
        tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.map_err(ApiError::internal)?;
    if ok {
        Ok(user)
    } else {
        audit.note(|n| {
            n.action = Some("password_confirmation.failed".into());
            n.detail = Some("wrong password for a security change".into());
        });
        Err(ApiError::validation(field, "The password is incorrect."))
    }
}

/// Start enrolling in two-factor authentication: returns a new secret. 2FA is on only after
/// `/user/two-factor/confirm` with a code from the app.
#[utoipa::path(
    post, path = "/api/v1/user/two-factor", tag = "account",
    request_body = PasswordConfirmation,
    security(("token" = [])),
    responses((status = 200, body = Data<TwoFactorEnrolment>), (status = 409, body = ErrorBody))
)]
pub async fn enrol_two_factor(
    State(state): State<AppState>,
    principal: Principal,
    audit: AuditSlot,
    Json(body): Json<PasswordConfirmation>,
) -> Result<Data<TwoFactorEnrolment>, ApiError> {
    let user = confirm_password(&state, &principal, &body.password, &audit).await?;
    if user.totp_enabled {
        return Err(ApiError::Conflict("Two-factor authentication is already enabled; disable it first.".into()));
    }
    let secret = totp::generate_secret();
    let sealed = state.secrets.seal(&totp_context(&user.id), &secret);
    state.store.set_user_two_factor(&user.id, Some(&sealed), false, None).await?;
    Ok(Data {
        data: TwoFactorEnrolment {
            secret: totp::base32(&secret),
            otpauth_uri: totp::otpauth_uri(&secret, &user.email, "Slipway"),
        },
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorCode {
    /// A current 6-digit code from the authenticator app.
    #[schema(min_length = 1)]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Single-use codes for when the app is lost. Shown once.
    pub recovery_codes: Vec<String>,
}

/// Turn two-factor authentication on with a code from the app; returns recovery codes, once.
#[utoipa::path(
    post, path = "/api/v1/user/two-factor/confirm", tag = "account",
    request_body = TwoFactorCode,
    security(("token" = [])),
    responses((status = 200, body = Data<RecoveryCodes>), (status = 409, body = ErrorBody))
)]
pub async fn confirm_two_factor(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<TwoFactorCode>,
) -> Result<Data<RecoveryCodes>, ApiError> {
    let user = state.store.user(principal.user_id()?).await?.ok_or(ApiError::NotFound)?;
    let Some(sealed) = user.totp_secret.clone().filter(|_| !user.totp_enabled) else {
        return Err(ApiError::Conflict("Start enrolment first, with POST /api/v1/user/two-factor.".into()));
    };
    let secret = state.secrets.open(&totp_context(&user.id), &sealed).map_err(ApiError::internal)?;
    let unix = slipway_core::time::now().timestamp().max(0) as u64;
    let Some(counter) = totp::verify(&secret, &body.code, unix) else {
        return Err(ApiError::validation(
            "code",
            "The code is not valid; check the device's clock and try a new code.",
        ));
    };
    let codes = totp::generate_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(&totp::normalize_recovery_code(c))).collect();
    let hashes = serde_json::to_string(&hashes).expect("strings serialise");
    state.store.set_user_two_factor(&user.id, Some(&sealed), true, Some(&hashes)).await?;
    state.store.record_totp_counter(&user.id, counter as i64).await?;
    Ok(Data { data: RecoveryCodes { recovery_codes: codes } })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTwoFactor {
    #[schema(format = Password)]
    pub password: String,
    /// A current code from the app, or a recovery code.
    #[schema(min_length = 1)]
    pub code: String,
}

/// Turn two-factor authentication off (needs the password and a current or recovery code).
#[utoipa::path(
    post, path = "/api/v1/user/two-factor/disable", tag = "account",
    request_body = DisableTwoFactor,
    security(("token" = [])),
    responses((status = 200, body = crate::routes::tokens::Message))
)]
pub async fn disable_two_factor(
    State(state): State<AppState>,
    principal: Principal,
    audit: AuditSlot,
    Json(body): Json<DisableTwoFactor>,
) -> Result<axum::Json<crate::routes::tokens::Message>, ApiError> {
    let user = confirm_password(&state, &principal, &body.password, &audit).await?;
    if !user.totp_enabled {
        return Err(ApiError::Conflict("Two-factor authentication is not enabled.".into()));
    }
    if !check_second_factor(&state, &user, &body.code).await? {
        return Err(ApiError::validation("code", "The one-time code is not valid."));
    }
    state.store.set_user_two_factor(&user.id, None, false, None).await?;
    Ok(axum::Json(crate::routes::tokens::Message { message: "Two-factor authentication is off.".into() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// Your current password.
    #[schema(format = Password)]
    pub current_password: String,
    /// The new password: at least 12 characters.
    #[schema(format = Password, min_length = 12)]
    pub password: String,
}

/// Change your password (needs the current one). Your other dashboard sessions end; access
/// tokens, command-line logins included, keep working: revoke those separately if need be.
#[utoipa::path(
    put, path = "/api/v1/user/password", tag = "account",
    request_body = ChangePassword,
    security(("token" = [])),
    responses((status = 200, body = crate::routes::tokens::Message))
)]
pub async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    audit: AuditSlot,
    Json(body): Json<ChangePassword>,
) -> Result<axum::Json<crate::routes::tokens::Message>, ApiError> {
    principal.refuse_if_jwt("change the password")?;
    let user = confirm_password_in(&state, &principal, &body.current_password, &audit, "current_password").await?;
    if let Some(problem) = password_problem(&body.password) {
        return Err(ApiError::validation("password", problem));
    }
    let password = body.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(ApiError::internal)?;
    let keep = principal.dashboard_session.then_some(principal.token_id.as_str());
    let (found, ended) = state.store.change_password(&user.id, &hash, keep, slipway_core::time::now()).await?;
    if !found {
        return Err(ApiError::NotFound);
    }
    audit.note(|n| n.detail = Some(format!("{} other dashboard sessions ended", ended.len())));
    let message = match ended.len() {
        0 => "Your password is changed.".to_string(),
        1 => "Your password is changed; your other dashboard session has ended.".to_string(),
        n => format!("Your password is changed; your {n} other dashboard sessions have ended."),
    };
    Ok(axum::Json(crate::routes::tokens::Message { message }))
}
