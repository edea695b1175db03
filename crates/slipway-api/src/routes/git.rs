//! Git providers and repositories, and the incoming push webhooks that deploy sites.
//!
//! A repository can get a deploy key (`setup-deploy-key`: Slipway makes a key pair and keeps the
//! private half encrypted; add the public half to the repository) and auto-deploy
//! (`enable-auto-deploy`: a webhook URL and a secret for the git host). Each push delivered to
//! `POST /webhooks/git-repository/{uuid}` is verified (GitHub `X-Hub-Signature-256`, GitLab
//! `X-Gitlab-Token`, Bitbucket `X-Hub-Signature`, generic `X-Slipway-Signature`), and deploys the
//! pushed commit on every site of the repository whose branch it is, unless the repository has
//! already received that delivery id (a replay); every delivery is recorded in those sites'
//! webhook history. Abilities: `provider:*`; providers and repositories serve the whole
//! organisation, so tokens restricted to some servers or sites cannot reach them at all.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::site_input;
use slipway_core::time::now;
use slipway_core::webhook::{self, Flavor};
use slipway_core::{FieldErrors, identity};
use slipway_store::{GitProvider, GitRepository, GitRepositoryChanges, WebhookDelivery};
use utoipa::ToSchema;

use super::sites::{DeploymentResource, Plan, VisibleSite, start_deployment};
use crate::audit::AuditSlot;
use crate::auth::{Authorized, OrganizationCaller, Shared, SharedRecord};
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::state::AppState;

pub(crate) const KINDS: [&str; 4] = ["github", "gitlab", "bitbucket", "generic"];

use slipway_engine::deploy::{deploy_key_context, repository_url_context};

fn webhook_secret_context(id: &str) -> String {
    format!("git-repository-webhook:{id}")
}

fn provider_token_context(id: &str) -> String {
    format!("git-provider-token:{id}")
}

// --- providers ---

#[derive(Debug, Serialize, ToSchema)]
pub struct GitProviderResource {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// `github`, `gitlab`, `bitbucket` or `generic`.
    pub kind: String,
    /// Whether an access token is stored (it is never shown again).
    pub has_access_token: bool,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&GitProvider> for GitProviderResource {
    fn from(p: &GitProvider) -> Self {
        GitProviderResource {
            id: p.id.clone(),
            organization_id: p.organization_id.clone(),
            name: p.name.clone(),
            kind: p.kind.clone(),
            has_access_token: p.access_token.is_some(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A provider named by `{git_provider}` that the caller may act on, or 404 / 403.
pub type VisibleProvider = Authorized<Shared<GitProvider>>;

impl SharedRecord for GitProvider {
    const PARAM: &'static str = "git_provider";

    async fn find(state: &AppState, id: &str) -> Result<Option<Self>, slipway_store::StoreError> {
        state.store.git_provider(id).await
    }

    fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

/// Git providers of your organizations.
#[utoipa::path(
    get, path = "/api/v1/git-providers", tag = "git",
    params(crate::extract::PageParams),
    security(("token" = ["provider:read"])),
    responses((status = 200, body = Paginated<GitProviderResource>))
)]
pub async fn list_git_providers(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    Page(cursor): Page,
) -> Result<Paginated<GitProviderResource>, ApiError> {
    let orgs = caller.organizations(&state).await?;
    let (rows, total) = state.store.git_providers_of(&orgs, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(GitProviderResource::from).collect(), total))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGitProvider {
    #[schema(example = "GitHub (acme)", min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(value_type = crate::schema::GitKind)]
    pub kind: String,
    /// An access token for the provider's API (stored encrypted, never shown again).
    #[schema(min_length = 1, max_length = 1024)]
    pub access_token: Option<String>,
    pub organization_id: Option<String>,
}

/// Connect a git provider.
#[utoipa::path(
    post, path = "/api/v1/git-providers", tag = "git",
    request_body = CreateGitProvider,
    security(("token" = ["provider:create"])),
    responses((status = 201, body = Data<GitProviderResource>))
)]
pub async fn create_git_provider(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    audit: AuditSlot,
    Json(body): Json<CreateGitProvider>,
) -> Result<(StatusCode, Data<GitProviderResource>), ApiError> {
    let org = caller.organization_for_new(&state, body.organization_id.as_deref()).await?;
    let mut errors = FieldErrors::new();
    identity::check_label(&mut errors, "name", &body.name);
    if !KINDS.contains(&body.kind.as_str()) {
        errors.add("kind", format!("The kind must be one of {}.", KINDS.join(", ")));
    }
    if body.access_token.as_deref().is_some_and(|t| t.is_empty() || t.len() > 1024 || t.chars().any(char::is_control)) {
        errors.add("access_token", "The access_token must be 1 to 1024 printable characters.");
    }
    errors.into_result()?;
    let id = slipway_core::new_id();
    let provider = GitProvider {
        access_token: body.access_token.map(|t| state.secrets.seal(&provider_token_context(&id), t.as_bytes())),
        id,
        organization_id: org,
        name: body.name.trim().to_string(),
        kind: body.kind,
        created_at: now(),
        updated_at: now(),
    };
    state.store.insert_git_provider(&provider).await?;
    audit.note(|n| {
        n.organization_id = Some(provider.organization_id.clone());
        n.resource_id = Some(provider.id.clone());
    });
    Ok((StatusCode::CREATED, Data { data: (&provider).into() }))
}

/// One git provider.
#[utoipa::path(
    get, path = "/api/v1/git-providers/{git_provider}", tag = "git",
    params(("git_provider" = String, Path)),
    security(("token" = ["provider:read"])),
    responses((status = 200, body = Data<GitProviderResource>))
)]
pub async fn get_git_provider(v: VisibleProvider) -> Result<Data<GitProviderResource>, ApiError> {
    Ok(Data { data: v.record().into() })
}

/// Disconnect a git provider (its repositories stay, without it).
#[utoipa::path(
    delete, path = "/api/v1/git-providers/{git_provider}", tag = "git",
    params(("git_provider" = String, Path)),
    security(("token" = ["provider:delete"])),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_git_provider(
    State(state): State<AppState>,
    v: VisibleProvider,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    state.store.delete_git_provider(&v.record().id).await?;
    audit.note(|n| {
        n.organization_id = Some(v.record().organization_id.clone());
        n.resource_id = Some(v.record().id.clone());
    });
    Ok(StatusCode::NO_CONTENT)
}

// --- repositories ---

#[derive(Debug, Serialize, ToSchema)]
pub struct GitRepositoryResource {
    pub id: String,
    pub organization_id: String,
    pub provider_id: Option<String>,
    /// The webhook format its pushes arrive in: `github`, `gitlab`, `bitbucket` or `generic`.
    pub kind: String,
    /// With any credentials replaced by `***`.
    pub url: String,
    pub branch: String,
    /// Add this key to the repository (read-only) so servers can fetch it.
    pub deploy_key_public: Option<String>,
    pub auto_deploy: bool,
    /// Where the git host sends pushes (when auto-deploy is on).
    pub webhook_url: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

fn repository_resource(state: &AppState, r: &GitRepository) -> GitRepositoryResource {
    let url = state
        .secrets
        .open(&repository_url_context(&r.id), &r.url)
        .map(|u| site_input::redact_url(&String::from_utf8_lossy(&u)))
        .unwrap_or_default();
    GitRepositoryResource {
        id: r.id.clone(),
        organization_id: r.organization_id.clone(),
        provider_id: r.provider_id.clone(),
        kind: r.kind.clone(),
        url,
        branch: r.branch.clone(),
        deploy_key_public: r.deploy_key_public.clone(),
        auto_deploy: r.webhook_secret.is_some(),
        webhook_url: r
            .webhook_secret
            .is_some()
            .then(|| format!("{}/webhooks/git-repository/{}", state.config.public_url, r.webhook_uuid)),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// A repository named by `{git_repository}` that the caller may act on, or 404 / 403.
pub type VisibleRepository = Authorized<Shared<GitRepository>>;

impl SharedRecord for GitRepository {
    const PARAM: &'static str = "git_repository";

    async fn find(state: &AppState, id: &str) -> Result<Option<Self>, slipway_store::StoreError> {
        state.store.git_repository(id).await
    }

    fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

/// Git repositories of your organizations.
#[utoipa::path(
    get, path = "/api/v1/git-repositories", tag = "git",
    params(crate::extract::PageParams),
    security(("token" = ["provider:read"])),
    responses((status = 200, body = Paginated<GitRepositoryResource>))
)]
pub async fn list_git_repositories(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    Page(cursor): Page,
) -> Result<Paginated<GitRepositoryResource>, ApiError> {
    let orgs = caller.organizations(&state).await?;
    let (rows, total) = state.store.git_repositories_of(&orgs, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(|r| repository_resource(&state, r)).collect(), total))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGitRepository {
    /// `git@github.com:acme/shop.git`, `https://…`, `ssh://…`.
    #[schema(min_length = 1)]
    pub url: String,
    /// Default `main`.
    pub branch: Option<String>,
    /// The provider it belongs to; its kind sets the webhook format.
    pub provider_id: Option<String>,
    /// The webhook format when there is no provider (default `generic`).
    #[schema(value_type = Option<crate::schema::GitKind>)]
    pub kind: Option<String>,
    pub organization_id: Option<String>,
}

/// Add a git repository.
#[utoipa::path(
    post, path = "/api/v1/git-repositories", tag = "git",
    request_body = CreateGitRepository,
    security(("token" = ["provider:create"])),
    responses((status = 201, body = Data<GitRepositoryResource>))
)]
pub async fn create_git_repository(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    audit: AuditSlot,
    Json(body): Json<CreateGitRepository>,
) -> Result<(StatusCode, Data<GitRepositoryResource>), ApiError> {
    let org = caller.organization_for_new(&state, body.organization_id.as_deref()).await?;
    let mut errors = FieldErrors::new();
    let url = site_input::git_url(&body.url).map_err(|m| errors.add("url", format!("The url {m}."))).ok();
    let branch = site_input::git_branch(body.branch.as_deref().unwrap_or("main"))
        .map_err(|m| errors.add("branch", format!("The branch {m}.")))
        .ok();
    let provider = match &body.provider_id {
        Some(id) => match state.store.git_provider(id).await? {
            Some(p) if p.organization_id == org => Some(p),
            _ => {
                errors.add("provider_id", "No such git provider in this organization.");
                None
            }
        },
        None => None,
    };
    let kind = provider.as_ref().map(|p| p.kind.clone()).or(body.kind.clone()).unwrap_or_else(|| "generic".into());
    if !KINDS.contains(&kind.as_str()) {
        errors.add("kind", format!("The kind must be one of {}.", KINDS.join(", ")));
    }
    errors.into_result()?;
    let id = slipway_core::new_id();
    let repository = GitRepository {
        url: state.secrets.seal(&repository_url_context(&id), url.expect("valid").as_bytes()),
        id,
        organization_id: org,
        provider_id: provider.map(|p| p.id),
        kind,
        branch: branch.expect("valid"),
        deploy_key_public: None,
        deploy_key_private: None,
        // Unguessable: it is the only thing in the webhook URL.
        webhook_uuid: slipway_core::token::random_base62(32),
        webhook_secret: None,
        created_at: now(),
        updated_at: now(),
    };
    state.store.insert_git_repository(&repository).await?;
    audit.note(|n| {
        n.organization_id = Some(repository.organization_id.clone());
        n.resource_id = Some(repository.id.clone());
    });
    Ok((StatusCode::CREATED, Data { data: repository_resource(&state, &repository) }))
}

/// One git repository.
#[utoipa::path(
    get, path = "/api/v1/git-repositories/{git_repository}", tag = "git",
    params(("git_repository" = String, Path)),
    security(("token" = ["provider:read"])),
    responses((status = 200, body = Data<GitRepositoryResource>))
)]
pub async fn get_git_repository(
    State(state): State<AppState>,
    v: VisibleRepository,
) -> Result<Data<GitRepositoryResource>, ApiError> {
    Ok(Data { data: repository_resource(&state, v.record()) })
}

/// Remove a git repository (sites that deploy it keep their releases but cannot deploy again
/// until given another repository).
#[utoipa::path(
    delete, path = "/api/v1/git-repositories/{git_repository}", tag = "git",
    params(("git_repository" = String, Path)),
    security(("token" = ["provider:delete"])),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_git_repository(
    State(state): State<AppState>,
    v: VisibleRepository,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    state.store.delete_git_repository(&v.record().id).await?;
    audit.note(|n| {
        n.organization_id = Some(v.record().organization_id.clone());
        n.resource_id = Some(v.record().id.clone());
    });
    Ok(StatusCode::NO_CONTENT)
}

/// Make a deploy key for the repository (replacing any earlier one). Add the public key to the
/// repository as a read-only deploy key; servers then fetch it with the private key, which
/// Slipway keeps encrypted and copies to the server only for a deploy.
#[utoipa::path(
    post, path = "/api/v1/git-repositories/{git_repository}/setup-deploy-key", tag = "git",
    params(("git_repository" = String, Path)),
    security(("token" = ["provider:update"])),
    responses((status = 200, body = Data<GitRepositoryResource>))
)]
pub async fn setup_deploy_key(
    State(state): State<AppState>,
    v: VisibleRepository,
    audit: AuditSlot,
) -> Result<Data<GitRepositoryResource>, ApiError> {
    let pair = slipway_remote::SshKeypair::generate();
    let sealed = state.secrets.seal(&deploy_key_context(&v.record().id), pair.private_openssh().expose().as_bytes());
    let public = format!("{} slipway-deploy-key", pair.public_openssh());
    let changes = GitRepositoryChanges { deploy_key: Some((public, sealed)), ..Default::default() };
    state.store.update_git_repository(&v.record().id, &changes).await?;
    audit.note(|n| {
        n.organization_id = Some(v.record().organization_id.clone());
        n.resource_id = Some(v.record().id.clone());
    });
    let fresh = state.store.git_repository(&v.record().id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: repository_resource(&state, &fresh) })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AutoDeploy {
    #[serde(flatten)]
    pub repository: GitRepositoryResource,
    /// The secret to configure at the git host (shown once; enabling again makes a new one).
    pub webhook_secret: String,
}

/// Turn auto-deploy on: answers the webhook URL and a new secret to configure at the git host
/// (GitHub/Bitbucket: the webhook's secret; GitLab: its secret token; generic: the HMAC key).
#[utoipa::path(
    post, path = "/api/v1/git-repositories/{git_repository}/enable-auto-deploy", tag = "git",
    params(("git_repository" = String, Path)),
    security(("token" = ["provider:update"])),
    responses((status = 200, body = Data<AutoDeploy>))
)]
pub async fn enable_auto_deploy(
    State(state): State<AppState>,
    v: VisibleRepository,
    audit: AuditSlot,
) -> Result<Data<AutoDeploy>, ApiError> {
    let secret = slipway_core::token::random_base62(40);
    let sealed = state.secrets.seal(&webhook_secret_context(&v.record().id), secret.as_bytes());
    let changes = GitRepositoryChanges { webhook_secret: Some(Some(sealed)), ..Default::default() };
    state.store.update_git_repository(&v.record().id, &changes).await?;
    audit.note(|n| {
        n.organization_id = Some(v.record().organization_id.clone());
        n.resource_id = Some(v.record().id.clone());
    });
    let fresh = state.store.git_repository(&v.record().id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: AutoDeploy { repository: repository_resource(&state, &fresh), webhook_secret: secret } })
}

/// Turn auto-deploy off: the secret is dropped and pushes are refused.
#[utoipa::path(
    post, path = "/api/v1/git-repositories/{git_repository}/disable-auto-deploy", tag = "git",
    params(("git_repository" = String, Path)),
    security(("token" = ["provider:update"])),
    responses((status = 200, body = Data<GitRepositoryResource>))
)]
pub async fn disable_auto_deploy(
    State(state): State<AppState>,
    v: VisibleRepository,
    audit: AuditSlot,
) -> Result<Data<GitRepositoryResource>, ApiError> {
    let changes = GitRepositoryChanges { webhook_secret: Some(None), ..Default::default() };
    state.store.update_git_repository(&v.record().id, &changes).await?;
    audit.note(|n| {
        n.organization_id = Some(v.record().organization_id.clone());
        n.resource_id = Some(v.record().id.clone());
    });
    let fresh = state.store.git_repository(&v.record().id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: repository_resource(&state, &fresh) })
}

// --- incoming webhooks ---

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOutcome {
    /// The deployments this push started.
    pub deployments: Vec<DeploymentResource>,
}

/// Where a git host delivers pushes. No token: the delivery's signature is the proof. Unsigned
/// or badly signed deliveries get 401 and deploy nothing; pushes to branches no site deploys,
/// other events, and a delivery id the repository has already received (GitHub
/// `X-GitHub-Delivery`, GitLab `X-Gitlab-Event-UUID` or `X-Gitlab-Webhook-UUID`, Bitbucket
/// `X-Request-UUID`, generic `X-Slipway-Delivery`) are recorded and ignored. A malformed
/// delivery id (not 1 to 128 visible ASCII characters) on a signed delivery gets 400.
#[utoipa::path(
    post, path = "/webhooks/git-repository/{uuid}", tag = "git",
    params(("uuid" = String, Path)),
    request_body(content = String, content_type = "application/json", description = "The git host's push payload."),
    responses(
        (status = 202, body = Accepted<WebhookOutcome>),
        (status = 200, body = Accepted<WebhookOutcome>, description = "Recorded and ignored (another event or branch, or a duplicate delivery)"),
        (status = 401, description = "The signature is missing or wrong; nothing is deployed", body = crate::error::ErrorBody),
        (status = 409, description = "No site of the repository could start deploying (each is recorded as rejected, with the reason)", body = crate::error::ErrorBody),
    )
)]
pub async fn receive_push(
    State(state): State<AppState>,
    axum::extract::Path(uuid): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Accepted<WebhookOutcome>), ApiError> {
    let repository = state.store.git_repository_by_webhook(&uuid).await?.ok_or(ApiError::NotFound)?;
    let sites = state.store.sites_of_repository(&repository.id).await?;
    let flavor = Flavor::parse(&repository.kind).unwrap_or(Flavor::Generic);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let event = flavor.event_header().and_then(header);
    let delivery_id = webhook::delivery_id(flavor, |name| headers.get(name).map(|v| v.as_bytes()));
    // Kept on every row of the history, even an unsigned one's: it is bounded and printable.
    let shown_id = delivery_id.clone().ok().flatten();
    let record = |site_id: Option<&str>,
                  outcome: &str,
                  reason: Option<String>,
                  pushed: Option<&(String, Option<String>)>,
                  deployment: Option<&str>| {
        WebhookDelivery {
            id: slipway_core::new_id(),
            repository_id: repository.id.clone(),
            site_id: site_id.map(str::to_string),
            received_at: now(),
            event: event.clone(),
            branch: pushed.map(|p| p.0.clone()),
            commit_sha: pushed.and_then(|p| p.1.clone()),
            outcome: outcome.into(),
            reason,
            deployment_id: deployment.map(str::to_string),
            delivery_id: shown_id.clone(),
        }
    };
    let store_all = |outcome: &'static str, reason: String, pushed: Option<(String, Option<String>)>| {
        let deliveries: Vec<WebhookDelivery> = if sites.is_empty() {
            vec![record(None, outcome, Some(reason.clone()), pushed.as_ref(), None)]
        } else {
            sites.iter().map(|s| record(Some(&s.id), outcome, Some(reason.clone()), pushed.as_ref(), None)).collect()
        };
        let store = state.store.clone();
        async move {
            for d in &deliveries {
                store.insert_webhook_delivery(d).await?;
            }
            Ok::<(), ApiError>(())
        }
    };

    let Some(sealed) = &repository.webhook_secret else {
        store_all("rejected", "auto-deploy is off for this repository".into(), None).await?;
        return Err(ApiError::BadSignature("Auto-deploy is off for this repository.".into()));
    };
    let secret = state.secrets.open(&webhook_secret_context(&repository.id), sealed).map_err(ApiError::internal)?;
    if let Err(why) = webhook::verify(flavor, &secret, header(flavor.signature_header()).as_deref(), &body) {
        store_all("rejected", why.to_string(), None).await?;
        return Err(ApiError::BadSignature(format!("The delivery is refused: {why}.")));
    }
    // Signed, so the sender is the git host (or replays it): a malformed id is its mistake, and
    // it is told, rather than have its deliveries silently not told apart.
    let delivery_id = match delivery_id {
        Ok(id) => id,
        Err(malformed) => {
            store_all("rejected", malformed.to_string(), None).await?;
            return Err(ApiError::BadRequest(format!("The delivery is refused: {malformed}.")));
        }
    };
    // The claim is the arbiter: of two identical deliveries, even concurrent ones, one goes on.
    if let Some(id) = &delivery_id
        && !state.store.claim_webhook_delivery(&repository.id, id, now()).await?
    {
        let pushed = if flavor.is_push(event.as_deref()) { webhook::pushed(flavor, &body) } else { None };
        store_all("ignored", format!("duplicate delivery {id}"), pushed).await?;
        return Ok((
            StatusCode::OK,
            Accepted {
                message: format!("Duplicate delivery {id}: already received; nothing to do."),
                data: WebhookOutcome { deployments: vec![] },
            },
        ));
    }
    if !flavor.is_push(event.as_deref()) {
        let reason = format!("not a push event ({})", event.as_deref().unwrap_or("none"));
        store_all("ignored", reason, None).await?;
        return Ok((
            StatusCode::OK,
            Accepted { message: "Not a push; nothing to do.".into(), data: WebhookOutcome { deployments: vec![] } },
        ));
    }
    let Some(pushed) = webhook::pushed(flavor, &body) else {
        store_all("ignored", "not a push to a branch".into(), None).await?;
        return Ok((
            StatusCode::OK,
            Accepted { message: "Not a push to a branch.".into(), data: WebhookOutcome { deployments: vec![] } },
        ));
    };
    let mut deployments = Vec::new();
    let mut refused = Vec::new();
    for site in &sites {
        let delivery = if site.repository_branch != pushed.0 {
            let reason = format!("push to {}; the site deploys {}", pushed.0, site.repository_branch);
            record(Some(&site.id), "ignored", Some(reason), Some(&pushed), None)
        } else if pushed.1.is_none() {
            record(Some(&site.id), "ignored", Some("the branch was deleted".into()), Some(&pushed), None)
        } else {
            let started =
                match start_deployment(&state, site, None, "webhook", Plan::Deploy { commit: pushed.1.clone() }, None)
                    .await
                {
                    Ok(started) => started,
                    // This site cannot deploy now (its installation failed, it is being
                    // removed…): recorded on it, and the other sites of the push still deploy.
                    Err(e) if e.status().is_client_error() => {
                        let reason = refusal(&e);
                        let d = record(Some(&site.id), "rejected", Some(reason.clone()), Some(&pushed), None);
                        state.store.insert_webhook_delivery(&d).await?;
                        refused.push(format!("{}: {reason}", site.domain));
                        continue;
                    }
                    Err(e) => {
                        if deployments.is_empty() {
                            forget_delivery(&state, &repository.id, delivery_id.as_deref()).await;
                        }
                        return Err(e);
                    }
                };
            let d = record(Some(&site.id), "accepted", None, Some(&pushed), Some(&started.data.id));
            deployments.push(started.data);
            d
        };
        state.store.insert_webhook_delivery(&delivery).await?;
    }
    if sites.is_empty() {
        state
            .store
            .insert_webhook_delivery(&record(
                None,
                "ignored",
                Some("no site deploys this repository".into()),
                Some(&pushed),
                None,
            ))
            .await?;
    }
    if deployments.is_empty() && !refused.is_empty() {
        forget_delivery(&state, &repository.id, delivery_id.as_deref()).await;
        return Err(ApiError::Conflict(format!("No site could deploy the push: {}", refused.join("; "))));
    }
    let (status, message) = match (deployments.len(), refused.len()) {
        (0, _) => (StatusCode::OK, format!("Push to {} recorded; no site deploys that branch.", pushed.0)),
        (n, 0) => (StatusCode::ACCEPTED, format!("Deploying {n} site(s).")),
        (n, _) => (StatusCode::ACCEPTED, format!("Deploying {n} site(s); not {}.", refused.join("; "))),
    };
    Ok((status, Accepted { message, data: WebhookOutcome { deployments } }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResource {
    pub id: String,
    pub repository_id: String,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub received_at: DateTime<Utc>,
    pub event: Option<String>,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    /// `accepted`, `ignored` or `rejected`.
    pub outcome: String,
    pub reason: Option<String>,
    /// The deployment it started.
    pub deployment_id: Option<String>,
    /// The git host's id for the delivery (a replay repeats it).
    pub delivery_id: Option<String>,
}

/// The site's incoming push history, newest first, with the deployments pushes started.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/webhooks", tag = "git",
    params(("server" = String, Path), ("site" = String, Path), crate::extract::PageParams),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<DeliveryResource>))
)]
pub async fn site_webhooks(
    State(state): State<AppState>,
    v: VisibleSite,
    Page(cursor): Page,
) -> Result<Paginated<DeliveryResource>, ApiError> {
    let (rows, total) = state.store.webhook_deliveries_of_site(&v.site.id, cursor.request).await?;
    let data = rows
        .into_iter()
        .map(|d| DeliveryResource {
            id: d.id,
            repository_id: d.repository_id,
            received_at: d.received_at,
            event: d.event,
            branch: d.branch,
            commit_sha: d.commit_sha,
            outcome: d.outcome,
            reason: d.reason,
            deployment_id: d.deployment_id,
            delivery_id: d.delivery_id,
        })
        .collect();
    Ok(cursor.page(data, total))
}

/// The words of a refusal, for a delivery's reason (a field error's message, not the generic
/// "The given data was invalid.").
fn refusal(e: &ApiError) -> String {
    match e {
        ApiError::Validation(errors) => {
            let messages: Vec<&str> =
                errors.fields().filter_map(|f| errors.get(f)).flatten().map(String::as_str).collect();
            messages.join(" ")
        }
        other => other.to_string(),
    }
}

/// Nothing deployed: forgets the delivery's id, so that the host's redelivery (once the sites can
/// deploy) is not taken for a duplicate. Once a site deploys, a redelivery would repeat it.
async fn forget_delivery(state: &AppState, repository_id: &str, delivery_id: Option<&str>) {
    if let Some(id) = delivery_id
        && let Err(e) = state.store.release_webhook_delivery(repository_id, id).await
    {
        tracing::warn!(error = %e, "could not forget the id of a failed webhook delivery");
    }
}
