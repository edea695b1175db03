//! Deployments: deploy, roll back, convert to zero downtime, schedule, cancel, and read them
//! with their logs and the releases they left.

use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use slipway_core::time::now;
use slipway_core::{InstallStatus, RunStatus};
use slipway_engine::deploy::{ACTION_DEPLOY, ACTION_ENABLE_ZERO_DOWNTIME, ACTION_ROLLBACK, DeployJob};
use slipway_store::{Deployment, Site, SiteChanges};
use utoipa::{IntoParams, ToSchema};

pub use crate::resources::{DeploymentResource, LogLine, ReleaseResource};

use crate::audit::AuditSlot;
use crate::auth::Principal;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{After, Json, Page, Query};
use crate::jobs::enqueue;
use crate::state::AppState;

use super::*;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// What started it: `api` (default), `cli` or `dashboard`.
    pub trigger: Option<String>,
}

/// Who started a deployment by hand: `api` (default), `cli` or `dashboard`.
fn checked_trigger(trigger: Option<String>) -> Result<String, ApiError> {
    let trigger = trigger.unwrap_or_else(|| "api".into());
    if !["api", "cli", "dashboard"].contains(&trigger.as_str()) {
        return Err(ApiError::validation("trigger", "The trigger must be api, cli or dashboard."));
    }
    Ok(trigger)
}

/// What a deployment is to do.
pub(crate) enum Plan {
    /// Build the branch's newest commit, or `commit` (a pushed one).
    Deploy {
        commit: Option<String>,
    },
    Rollback {
        release: String,
    },
    EnableZeroDowntime,
}

/// Every way of starting a deployment (deploy, rollback, schedule, an env change with
/// `?deploy=true`, a push) refuses a site that is going away or whose installation failed.
pub(crate) fn refuse_unless_deployable(site: &Site) -> Result<(), ApiError> {
    match site.status {
        InstallStatus::Removing => Err(ApiError::validation("site", "The site is being removed.")),
        InstallStatus::Failed => Err(ApiError::Conflict(format!(
            "The site is not installed: {}. Update the site to install it again, then deploy.",
            site.status_reason.as_deref().unwrap_or("its installation failed")
        ))),
        _ => Ok(()),
    }
}

/// Queues a deployment (or rollback) of a site; the message says whether it waits behind one.
pub(crate) async fn start_deployment(
    state: &AppState,
    site: &Site,
    principal: Option<&Principal>,
    trigger: &str,
    plan: Plan,
    run_at: Option<slipway_core::time::Timestamp>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    refuse_unless_deployable(site)?;
    // A rollback deploys a kept release: its commit is known already, and shown.
    let rolled_back_to = match &plan {
        Plan::Rollback { release } => state.store.deployment(release).await?,
        _ => None,
    };
    let (action, release_of, requested_commit) = match plan {
        Plan::Deploy { commit } => (ACTION_DEPLOY, None, commit),
        Plan::Rollback { release } => (ACTION_ROLLBACK, Some(release), None),
        Plan::EnableZeroDowntime => (ACTION_ENABLE_ZERO_DOWNTIME, None, None),
    };
    let (busy, _) = state.store.deployments_of_site(&site.id, slipway_core::PageRequest::new(1, 1)).await?;
    let waiting = busy.first().is_some_and(|d| !d.status.is_finished());
    let deployment = Deployment {
        id: slipway_core::new_id(),
        site_id: site.id.clone(),
        server_id: site.server_id.clone(),
        organization_id: site.organization_id.clone(),
        job_id: slipway_core::new_id(),
        status: RunStatus::Queued,
        trigger_kind: trigger.into(),
        triggered_by_user: principal.and_then(|p| p.user_id.clone()),
        triggered_by_token: principal.map(|p| p.token_id.clone()),
        release_of,
        commit_sha: rolled_back_to.as_ref().and_then(|d| d.commit_sha.clone()),
        commit_message: rolled_back_to.as_ref().and_then(|d| d.commit_message.clone()),
        commit_author: rolled_back_to.as_ref().and_then(|d| d.commit_author.clone()),
        port: None,
        failed_step: None,
        failure_reason: None,
        release_present: false,
        created_at: now(),
        started_at: None,
        finished_at: None,
        requested_commit,
        action: action.into(),
        steps: None,
    };
    state.store.insert_deployment(&deployment).await?;
    state.store.record_site_deployment(&site.id, RunStatus::Queued, None, None).await?;
    let payload = DeployJob { deployment_id: deployment.id.clone() };
    let mut spec = slipway_engine::SITE_DEPLOY.about_site(site, payload).with_id(deployment.job_id.clone());
    if let Some(at) = run_at {
        spec = spec.at(at);
    }
    enqueue(state, spec).await?;
    let message = if let Some(at) = run_at {
        format!("Deployment scheduled for {}.", at.to_rfc3339())
    } else if waiting {
        "Queued behind the deployment in progress; it starts when that one ends.".to_string()
    } else {
        "Deployment queued.".to_string()
    };
    Ok(Accepted { message, data: crate::resources::deployment(&deployment) })
}

/// Deploy the site's branch: fetch, build, start and health-check the new release, then switch
/// to it atomically. One deployment runs at a time per site; another request waits behind it
/// (the message says so). Follow the deployment (or its log) for the outcome.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/deploy", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = Option<DeployRequest>,
    security(("token" = ["site:deploy"])),
    responses((status = 202, body = Accepted<DeploymentResource>))
)]
pub async fn deploy_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<DeployRequest>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    refuse_unless_deployable(&v.site)?;
    let trigger = checked_trigger(body.trigger)?;
    if !has_repository(&v.site) {
        return Err(ApiError::validation(
            "repository_url",
            "The site has no repository to deploy; set repository_url or git_repository_id.",
        ));
    }
    let accepted =
        start_deployment(&state, &v.site, Some(&v.principal), &trigger, Plan::Deploy { commit: None }, None).await?;
    audit_site(&audit, &v.site, "site.deploy", Some(format!("deployment {}", accepted.data.id)));
    Ok(accepted)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The release to go back to (see `releases`); default the one before the live one.
    pub release: Option<String>,
}

/// Switch back to a kept release (health-checked first, like a deploy).
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/rollback", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = Option<RollbackRequest>,
    security(("token" = ["site:deploy"])),
    responses((status = 202, body = Accepted<DeploymentResource>))
)]
pub async fn rollback_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<RollbackRequest>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    refuse_unless_deployable(&v.site)?;
    if !v.site.zero_downtime {
        return Err(ApiError::validation(
            "release",
            "This site deploys in place and keeps no releases; enable zero-downtime deploys to roll back.",
        ));
    }
    let releases = state.store.releases_of_site(&v.site.id).await?;
    let current = v.site.current_release.as_deref();
    let wanted = body.release;
    let target = match wanted {
        Some(id) => releases.iter().find(|r| r.id == id).ok_or_else(|| {
            ApiError::validation("release", "No such release is kept on the server; see GET …/releases.")
        })?,
        None => {
            // The newest kept release older than the live one.
            let current_index = releases.iter().position(|r| Some(r.id.as_str()) == current);
            let candidates = match current_index {
                Some(i) => &releases[i + 1..],
                None => &releases[..],
            };
            candidates
                .first()
                .ok_or_else(|| ApiError::validation("release", "There is no earlier release to roll back to."))?
        }
    };
    if Some(target.id.as_str()) == current {
        return Err(ApiError::validation("release", "This release is already live."));
    }
    let plan = Plan::Rollback { release: target.id.clone() };
    let accepted = start_deployment(&state, &v.site, Some(&v.principal), "rollback", plan, None).await?;
    audit_site(&audit, &v.site, "site.rollback", Some(format!("to release {}", target.id)));
    Ok(accepted)
}

/// Convert an in-place site to releases with an atomic switch, without downtime: the live
/// working tree is copied into a first release, which is started and health-checked next to the
/// running site, then switched to like any deploy (the answer is that deployment). A site never
/// deployed is converted at once (200). Needs `site:update` and `site:deploy`.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/enable-zero-downtime", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = Option<DeployRequest>,
    security(("token" = ["site:update", "site:deploy"])),
    responses(
        (status = 202, body = Accepted<DeploymentResource>),
        (status = 200, description = "A site never deployed, converted at once", body = Data<SiteResource>)
    )
)]
pub async fn enable_zero_downtime(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<DeployRequest>,
) -> Result<axum::response::Response, ApiError> {
    refuse_unless_deployable(&v.site)?;
    use axum::response::IntoResponse;
    let trigger = checked_trigger(body.trigger)?;
    if v.site.zero_downtime {
        return Err(ApiError::validation("zero_downtime", "This site already deploys with zero downtime."));
    }
    // Any deployment not ended (scheduled ones included) would run in place after the conversion.
    if state.store.unfinished_deployments_of_site(&v.site.id).await? > 0 {
        return Err(ApiError::Conflict(
            "A deployment is queued, scheduled or running; convert the site when it ends (or cancel it).".into(),
        ));
    }
    if v.site.current_release.is_none() {
        let changes = SiteChanges { zero_downtime: Some(true), ..Default::default() };
        state.store.update_site(&v.site.id, &changes).await?;
        let site = state.store.site(&v.site.id).await?.ok_or(ApiError::NotFound)?;
        audit_site(&audit, &site, "site.enable-zero-downtime", None);
        return Ok(Data { data: site_resource(&state, &site, None) }.into_response());
    }
    let mut accepted =
        start_deployment(&state, &v.site, Some(&v.principal), &trigger, Plan::EnableZeroDowntime, None).await?;
    accepted.message = "Converting to zero-downtime releases: the live site is copied into a first release, \
                        health-checked and switched to."
        .into();
    audit_site(&audit, &v.site, "site.enable-zero-downtime", Some(format!("deployment {}", accepted.data.id)));
    Ok(accepted.into_response())
}

/// The site's deployments, newest first.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), crate::extract::PageParams, crate::extract::CursorParams),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<DeploymentResource>))
)]
pub async fn list_deployments(
    State(state): State<AppState>,
    v: VisibleSite,
    Page(cursor): Page,
) -> Result<Paginated<DeploymentResource>, ApiError> {
    let (rows, total) = state.store.deployments_of_site(&v.site.id, cursor.seeking()).await?;
    Ok(cursor.seek_page(rows.iter().map(crate::resources::deployment).collect(), total, |d| &d.id))
}

/// A deployment of this site, from `{deployment}`, or 404.
pub(crate) async fn find_deployment(state: &AppState, v: &VisibleSite, parts_id: &str) -> Result<Deployment, ApiError> {
    match state.store.deployment(parts_id).await? {
        Some(d) if d.site_id == v.site.id => Ok(d),
        _ => Err(ApiError::NotFound),
    }
}

/// One deployment.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path)),
    security(("token" = ["site:read"]), ("token" = ["site:deploy"])),
    responses((status = 200, body = Data<DeploymentResource>))
)]
pub async fn get_deployment(
    State(state): State<AppState>,
    v: VisibleSite,
    ids: axum::extract::Path<(String, String, String)>,
) -> Result<Data<DeploymentResource>, ApiError> {
    let d = find_deployment(&state, &v, &ids.2).await?;
    Ok(Data { data: crate::resources::deployment(&d) })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Only lines after this `seq` (to follow a running deployment).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<After>,
}

/// The deployment's log (secrets masked), oldest first, up to 1000 lines after `after`.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}/log", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path), LogQuery),
    security(("token" = ["site:read"]), ("token" = ["site:deploy"])),
    responses((status = 200, body = Data<Vec<LogLine>>))
)]
pub async fn deployment_log(
    State(state): State<AppState>,
    v: VisibleSite,
    ids: axum::extract::Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Data<Vec<LogLine>>, ApiError> {
    let d = find_deployment(&state, &v, &ids.2).await?;
    let lines = state.store.job_log(&d.job_id, query.after.unwrap_or_default().0, 1000).await?;
    let data = lines.into_iter().map(crate::resources::log_line).collect();
    Ok(Data { data })
}

/// Stop a deployment: a queued one never starts; a running one has its remote process killed,
/// its half-built release removed and the site unlocked, with the previous release serving.
/// Once the switch has begun it runs to its end (the answer is then 409 or the deploy succeeds).
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}/cancel", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path)),
    security(("token" = ["site:deploy"])),
    responses(
        (status = 202, body = Accepted<DeploymentResource>),
        (status = 409, description = "The deployment has already ended (succeeded, failed or cancelled)", body = crate::error::ErrorBody),
    )
)]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    ids: axum::extract::Path<(String, String, String)>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    let d = find_deployment(&state, &v, &ids.2).await?;
    let message = match state.store.cancel_job(&d.job_id, now()).await? {
        slipway_store::CancelOutcome::Cancelled => {
            let update = slipway_store::DeploymentUpdate {
                status: Some(RunStatus::Cancelled),
                failure_reason: Some("cancelled before it started".into()),
                finished_at: Some(now()),
                ..Default::default()
            };
            state.store.update_deployment(&d.id, &update).await?;
            state.store.record_site_deployment(&v.site.id, RunStatus::Cancelled, None, None).await?;
            "Cancelled before it started."
        }
        slipway_store::CancelOutcome::Requested => "Cancellation requested; the deployment stops within seconds.",
        slipway_store::CancelOutcome::AlreadyFinished => {
            return Err(ApiError::Conflict("The deployment has already finished.".into()));
        }
        slipway_store::CancelOutcome::NotFound => return Err(ApiError::NotFound),
    };
    audit_site(&audit, &v.site, "deployment.cancel", Some(format!("deployment {}", d.id)));
    let d = state.store.deployment(&d.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Accepted { message: message.into(), data: crate::resources::deployment(&d) })
}

/// Releases kept on the server, newest first, and which one is live.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/releases", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), crate::extract::PageParams),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<ReleaseResource>))
)]
pub async fn list_releases(
    State(state): State<AppState>,
    v: VisibleSite,
    Page(cursor): Page,
) -> Result<Paginated<ReleaseResource>, ApiError> {
    // At most `keep_releases` (50): paged here.
    let releases = state.store.releases_of_site(&v.site.id).await?;
    let data = cursor
        .slice(&releases)
        .iter()
        .map(|r| ReleaseResource {
            id: r.id.clone(),
            commit_sha: r.commit_sha.clone(),
            commit_message: r.commit_message.clone(),
            created_at: r.created_at,
            current: v.site.current_release.as_deref() == Some(r.id.as_str()),
        })
        .collect();
    Ok(cursor.page(data, releases.len() as u64))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeploy {
    /// When to deploy, RFC 3339 (e.g. `2026-12-01T02:00:00Z`); within a year from now.
    pub at: String,
}

/// Deploy at a given time. The deployment is `queued` until then (listed with the others), and
/// runs like any deploy; `cancel-scheduled-deploy` drops it.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/schedule-deploy", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = ScheduleDeploy,
    security(("token" = ["site:deploy"])),
    responses((status = 202, body = Accepted<DeploymentResource>))
)]
pub async fn schedule_deploy(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<ScheduleDeploy>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    refuse_unless_deployable(&v.site)?;
    let at = chrono::DateTime::parse_from_rfc3339(body.at.trim())
        .map_err(|_| ApiError::validation("at", "The at field must be an RFC 3339 time, e.g. 2026-12-01T02:00:00Z."))?
        .with_timezone(&Utc);
    if at <= now() || at > now() + chrono::Duration::days(366) {
        return Err(ApiError::validation("at", "The at field must be in the future, within a year."));
    }
    if !has_repository(&v.site) {
        return Err(ApiError::validation(
            "repository_url",
            "The site has no repository to deploy; set repository_url or git_repository_id.",
        ));
    }
    let accepted =
        start_deployment(&state, &v.site, Some(&v.principal), "schedule", Plan::Deploy { commit: None }, Some(at))
            .await?;
    audit_site(&audit, &v.site, "site.schedule-deploy", Some(format!("deployment {} at {at}", accepted.data.id)));
    Ok(accepted)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledSchedule {
    /// The scheduled deployments that were cancelled.
    pub cancelled: Vec<String>,
}

/// Cancel the site's scheduled deployments that have not started.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/cancel-scheduled-deploy", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:deploy"])),
    responses((status = 200, body = Data<CancelledSchedule>))
)]
pub async fn cancel_scheduled_deploy(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
) -> Result<Data<CancelledSchedule>, ApiError> {
    let mut cancelled = Vec::new();
    let mut page = 1;
    loop {
        let (rows, _) = state.store.deployments_of_site(&v.site.id, slipway_core::PageRequest::new(page, 100)).await?;
        if rows.is_empty() {
            break;
        }
        for d in rows.iter().filter(|d| d.trigger_kind == "schedule" && d.status == RunStatus::Queued) {
            if state.store.cancel_job(&d.job_id, now()).await? == slipway_store::CancelOutcome::Cancelled {
                let update = slipway_store::DeploymentUpdate {
                    status: Some(RunStatus::Cancelled),
                    failure_reason: Some("scheduled deploy cancelled".into()),
                    finished_at: Some(now()),
                    ..Default::default()
                };
                state.store.update_deployment(&d.id, &update).await?;
                cancelled.push(d.id.clone());
            }
        }
        page += 1;
    }
    if !cancelled.is_empty() {
        // The site read `queued` for them: it reads what its newest other deployment is, or
        // `cancelled` when they were its only ones.
        let (newest, _) = state.store.deployments_of_site(&v.site.id, slipway_core::PageRequest::new(1, 100)).await?;
        let status = newest.iter().find(|d| !cancelled.contains(&d.id)).map_or(RunStatus::Cancelled, |d| d.status);
        state.store.record_site_deployment(&v.site.id, status, None, None).await?;
    }
    audit_site(&audit, &v.site, "site.cancel-scheduled-deploy", Some(format!("{} cancelled", cancelled.len())));
    Ok(Data { data: CancelledSchedule { cancelled } })
}
