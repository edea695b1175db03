//! Cron jobs: commands a server's cron daemon runs on a schedule, with every run recorded.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_core::InstallStatus;
use slipway_engine::items::cron::{self, CronSpec, NAMED, Schedule};
use slipway_engine::items::{CronJobs, DEPLOY_USER, ItemKind, MAX_COMMAND};
use slipway_store::{Server, ServerItem};
use utoipa::ToSchema;

use super::{ItemRoutes, OnItem};
use crate::auth::Authorized;
use crate::envelope::Paginated;
use crate::error::ApiError;
use crate::extract::Page;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct CrontabResource {
    pub id: String,
    pub server_id: String,
    pub name: String,
    /// Run with `sh -c` as `user`, exactly as written.
    #[schema(example = "php artisan schedule:run")]
    pub command: String,
    pub user: String,
    /// As given: `minutely`, `hourly`, `nightly`, `weekly`, `monthly`, `reboot`, or five cron fields.
    #[schema(example = "*/15 * * * *")]
    pub frequency: String,
    /// The schedule in the cron file: five fields (the server's local time) or `@reboot`.
    #[schema(example = "*/15 * * * *")]
    pub schedule: String,
    /// The site it runs for (as the site's user, in its current release), if any.
    pub site_id: Option<String>,
    /// The directory it runs in: the site's current release, or the user's home.
    pub directory: Option<String>,
    /// `installing`, `waiting` (no run due yet), `running`, `succeeded` (the last run exited 0),
    /// `failed` (the last run exited non-zero, or the job cannot run; the reason says which),
    /// `missed` (a run was due more than 90 s ago and none started), `removing`, `removed`, or
    /// `unknown` when the server could not be asked. Read from the server when the job is read.
    pub status: String,
    pub status_reason: Option<String>,
    pub operation_id: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCrontab {
    /// A label; defaults to the command.
    #[schema(example = "scheduler", max_length = 255)]
    pub name: Option<String>,
    /// One line, run with `sh -c` (its own quoting is kept; `%` is plain text).
    #[schema(example = "php artisan schedule:run", min_length = 1, max_length = 4096)]
    pub command: String,
    /// `minutely`, `hourly`, `nightly`, `weekly`, `monthly`, `reboot`, or five cron fields of
    /// numbers, `*`, `,`, `-` and `/` in the server's local time (e.g. `*/15 * * * *`).
    #[schema(example = "nightly")]
    pub frequency: String,
    /// The Unix user it runs as; default `slipway`. It must exist on the server. Not with
    /// `site_id`.
    #[schema(example = "slipway")]
    pub user: Option<String>,
    /// A site on this server: the job then runs as the site's own user in its current release,
    /// with the environment variables of the live release.
    #[schema(min_length = 1)]
    pub site_id: Option<String>,
}

#[derive(Debug)]
pub struct CrontabRoutes;

impl ItemRoutes for CrontabRoutes {
    const KIND: &'static dyn ItemKind = &CronJobs;
    const PARAM: &'static str = "crontab";
    const AUDIT: &'static str = "crontab";
    const REMOVING: &'static str = "Removing the cron job.";
    type Spec = CronSpec;
    type Create = CreateCrontab;
    type Resource = CrontabResource;

    fn validate(_: &Server, body: CreateCrontab, _: &[ServerItem]) -> Result<(String, CronSpec), ApiError> {
        let mut errors = FieldErrors::new();
        let name = super::label_or_command(&mut errors, body.name, &body.command);
        if body.site_id.is_some() && body.user.is_some() {
            errors.add("user", "A site's cron job runs as the site's own user; leave user out.");
        }
        let spec = CronSpec {
            command: body.command,
            // A site's user is filled in once the site is found (check_on_server).
            user: body.user.unwrap_or_else(|| DEPLOY_USER.into()),
            // Stored as cron reads it (single spaces), a name as given.
            frequency: match Schedule::parse(&body.frequency) {
                Ok(_) if NAMED.iter().any(|(n, _)| *n == body.frequency) => body.frequency,
                Ok(schedule) => schedule.cron_field().to_string(),
                Err(_) => body.frequency,
            },
            site_id: body.site_id,
            directory: None,
            site_root: None,
        };
        for (field, why) in spec.problems() {
            errors.add(field, why);
        }
        errors.into_result()?;
        Ok((name, spec))
    }

    /// A site's job takes the site's user and current release; the user must exist on the
    /// server (see [`super::check_user`]).
    async fn check_on_server(state: &AppState, server: &Server, spec: &mut CronSpec) -> Result<(), ApiError> {
        if let Some(site_id) = &spec.site_id {
            let site = state.store.site(site_id).await?.filter(|s| s.server_id == server.id);
            let site = match site {
                Some(site) if site.status != InstallStatus::Removing => site,
                Some(_) => return Err(ApiError::validation("site_id", "That site is being removed.")),
                None => return Err(ApiError::validation("site_id", "No site with this id on this server.")),
            };
            let paths = slipway_engine::sites::SitePaths::of(&site).map_err(ApiError::internal)?;
            spec.directory = Some(format!("{}/current", paths.root));
            spec.site_root = Some(paths.root);
            spec.user = paths.user;
        }
        let checked = super::check_user(state, server, &spec.user).await;
        match (checked, &spec.site_id) {
            (Err(_), Some(_)) => Err(ApiError::validation(
                "site_id",
                format!(
                    "The site's user {} does not exist on the server yet; wait until the site is installed.",
                    spec.user
                ),
            )),
            (checked, _) => checked,
        }
    }

    fn resource(item: &ServerItem, spec: CronSpec, operation_id: Option<String>) -> CrontabResource {
        CrontabResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            name: item.name.clone(),
            schedule: Schedule::parse(&spec.frequency).map(|s| s.cron_field().to_string()).unwrap_or_default(),
            command: spec.command,
            user: spec.user,
            frequency: spec.frequency,
            site_id: spec.site_id,
            directory: spec.directory,
            status: item.shown_status().into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

// The limit the schema states is the one the engine checks.
const _: () = assert!(MAX_COMMAND == 4096);

crate::server_item_routes! {
    routes: CrontabRoutes, input: CreateCrontab, resource: CrontabResource, tag: "crontabs",
    collection: "/api/v1/servers/{server}/crontabs", item: "/api/v1/servers/{server}/crontabs/{crontab}",
    param: "crontab", read: "crontab:read", create: "crontab:create", update: "crontab:update", delete: "crontab:delete",
    list: list_crontabs = "The server's cron jobs, each with its status read from its run records on the server.",
    create: create_crontab = "Run a command on a schedule: Slipway writes a cron file that runs it and records every run.\nAnswers 201 with the job `installing`; follow `operation_id`, then read the job for its status.",
    show: get_crontab = "One cron job, with its status read from its run records on the server.",
    update: update_crontab = "Change a cron job: the same fields as creating it, all of them. Answers 200 with the job
`installing`; follow `operation_id`.",
    delete: delete_crontab = "Remove a cron job (its cron file, command and run records). Answers 202 with the job `removing`.",
}

/// One recorded run of a cron job.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrontabRun {
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// Null while it runs, or when it ended without recording it.
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    /// `running`, `succeeded`, `failed`, or `interrupted` (killed, or the server stopped, before
    /// it could record its end).
    pub status: String,
    /// The last 64 KiB of its output (stdout and stderr together); bytes that are not UTF-8 are
    /// shown as U+FFFD.
    pub output: String,
}

/// The job's runs, newest first, read from the server (the last 100 are kept there). 503 when
/// the server cannot be read.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/crontabs/{crontab}/runs", tag = "crontabs",
    params(("server" = String, Path), ("crontab" = String, Path), crate::extract::PageParams),
    security(("token" = ["crontab:read"])),
    responses(
        (status = 200, body = crate::envelope::Paginated<CrontabRun>),
        (status = 503, description = "The server could not be reached or read.", body = crate::error::ErrorBody),
    )
)]
pub async fn crontab_runs(
    State(state): State<AppState>,
    v: Authorized<OnItem<CrontabRoutes>>,
    Page(cursor): Page,
) -> Result<Paginated<CrontabRun>, ApiError> {
    let spec: CronSpec = super::spec(&v.item)?;
    super::require_provisioned(&v.server)?;
    let job = cron::job_name(&v.item.id);
    let request = cursor.request;
    let offset = u64::try_from(request.offset()).unwrap_or(0);
    let reading = cron::read(&state.engine, &v.server, &[(job.clone(), spec.user)], offset, request.per_page, true)
        .await
        .map_err(|why| ApiError::Unavailable(format!("Could not read the runs from the server: {why}")))?;
    let on_server = reading.jobs.get(&job).cloned().unwrap_or_default();
    let runs = on_server
        .runs
        .into_iter()
        .map(|run| CrontabRun {
            started_at: run.started_at,
            finished_at: run.finished_at,
            exit_code: run.exit_code,
            status: run.outcome().into(),
            output: String::from_utf8_lossy(run.output.as_deref().unwrap_or_default()).into_owned(),
        })
        .collect();
    Ok(cursor.page(runs, on_server.total_runs))
}

/// Registers the cron routes beyond the four every item kind has.
pub fn extra_router(
    router: utoipa_axum::router::OpenApiRouter<AppState>,
) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router.routes(utoipa_axum::routes!(crontab_runs))
}
