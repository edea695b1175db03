//! Sites, deployments and environment variables ([`SiteStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::{Timestamp, now};
use slipway_core::{InstallStatus, RunStatus};
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{
    IdOrder, SqlStore, as_u64, columns, exact_fields, insert_into, list_page, page_bounds, push_id_list, push_seek,
};
use crate::model::{Deployment, DeploymentUpdate, Site, SiteChanges, SiteEnvVar, SiteFilter};
use crate::{SiteStore, StoreError, StoreResult};

/// The columns of `sites`: the fields of [`Site`] (see `sql/mod.rs`).
macro_rules! site_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, server_id, organization_id, domain, aliases, project_type, web_directory, repository_url,
            repository_branch, deploy_script, app_command, health_check_path, health_check_status, health_check_timeout,
            zero_downtime, keep_releases, app_port, status, status_reason, suspended, deployment_status,
            last_deployed_at, current_release, active_port, created_at, updated_at, git_repository_id, shared_paths
        }
    };
}
site_fields!(exact_fields!(Site));
pub(super) use site_fields;

/// A site's value for its insert: the field as given, except `app_port`, which the statement
/// chooses itself: the pair after the highest one on the server, read in the same statement.
macro_rules! site_value {
    ($values:ident, $site:ident, app_port) => {
        $values.push("COALESCE((SELECT MAX(app_port) FROM sites WHERE server_id = ");
        $values.push_bind_unseparated(&$site.server_id);
        $values.push_unseparated("), 19998) + 2");
    };
    ($values:ident, $site:ident, $field:ident) => {
        insert_into!(@value _, $values, $site, $field)
    };
}

/// The columns of `deployments`: the fields of [`Deployment`].
macro_rules! deployment_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, site_id, server_id, organization_id, job_id, status, trigger_kind, triggered_by_user,
            triggered_by_token, release_of, commit_sha, commit_message, commit_author, port, failed_step, failure_reason,
            release_present, created_at, started_at, finished_at, requested_commit, action, steps
        }
    };
}
deployment_fields!(exact_fields!(Deployment));

/// The columns of `site_env`: the fields of [`SiteEnvVar`]. (Its one write is an upsert of one
/// value, written out in `put_site_env`.)
macro_rules! site_env_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; site_id, key, value, created_at, updated_at }
    };
}
site_env_fields!(exact_fields!(SiteEnvVar));

macro_rules! impl_site_store {
    ($db:ty) => {
        #[async_trait]
        impl SiteStore for SqlStore<$db> {
            async fn insert_site(&self, v: &Site) -> StoreResult<Site> {
                site_fields!(insert_into!($db, "sites", v, value = site_value))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                self.site(&v.id).await?.ok_or_else(|| StoreError::Conflict("site vanished".into()))
            }

            async fn site(&self, id: &str) -> StoreResult<Option<Site>> {
                sqlx::query_as(concat!("SELECT ", site_fields!(columns!()), " FROM sites WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn site_by_domain(&self, server_id: &str, domain: &str) -> StoreResult<Option<Site>> {
                sqlx::query_as(concat!("SELECT ", site_fields!(columns!()), " FROM sites WHERE server_id = $1 AND domain = $2"))
                    .bind(server_id).bind(domain).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn sites_of_server(&self, server_id: &str, only: Option<&[String]>, page: Option<PageRequest>) -> StoreResult<(Vec<Site>, u64)> {
                if only.is_some_and(<[String]>::is_empty) {
                    return Ok((Vec::new(), 0));
                }
                let filter = |q: &mut QueryBuilder<$db>| {
                    q.push("server_id = ").push_bind(server_id.to_string());
                    if let Some(only) = only {
                        q.push(" AND id IN (");
                        push_id_list!(q, only);
                    }
                    push_seek(q, page, IdOrder::Ascending);
                };
                Ok(list_page!(self, $db, Site, site_fields!(columns!()), "sites", &filter, IdOrder::Ascending, page_bounds(page)))
            }

            async fn sites_where(&self, f: SiteFilter<'_>, page: PageRequest) -> StoreResult<(Vec<Site>, u64)> {
                let nothing = |list: Option<&[String]>| list.is_some_and(<[String]>::is_empty);
                if f.organization_ids.is_empty() || nothing(f.server_ids) || nothing(f.site_ids) {
                    return Ok((Vec::new(), 0));
                }
                let filter = |q: &mut QueryBuilder<$db>| {
                    q.push("organization_id IN (");
                    push_id_list!(q, f.organization_ids);
                    if let Some(only) = f.server_ids {
                        q.push(" AND server_id IN (");
                        push_id_list!(q, only);
                    }
                    if let Some(only) = f.site_ids {
                        q.push(" AND id IN (");
                        push_id_list!(q, only);
                    }
                    if let Some(status) = f.status {
                        q.push(" AND status = ").push_bind(status.to_string());
                    }
                    if let Some(status) = f.deployment_status {
                        q.push(" AND deployment_status = ").push_bind(status.to_string());
                    }
                    push_seek(q, Some(page), IdOrder::Ascending);
                };
                Ok(list_page!(self, $db, Site, site_fields!(columns!()), "sites", &filter, IdOrder::Ascending, page_bounds(Some(page))))
            }

            async fn update_site(&self, id: &str, c: &SiteChanges) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE sites SET aliases = COALESCE($2, aliases), web_directory = COALESCE($3, web_directory), \
                     repository_url = CASE WHEN $4 THEN $5 ELSE repository_url END, \
                     repository_branch = COALESCE($6, repository_branch), deploy_script = COALESCE($7, deploy_script), \
                     app_command = CASE WHEN $8 THEN $9 ELSE app_command END, \
                     health_check_path = COALESCE($10, health_check_path), \
                     health_check_status = COALESCE($11, health_check_status), \
                     health_check_timeout = COALESCE($12, health_check_timeout), \
                     keep_releases = COALESCE($13, keep_releases), suspended = COALESCE($14, suspended), updated_at = $15, \
                     git_repository_id = CASE WHEN $16 THEN $17 ELSE git_repository_id END, \
                     shared_paths = COALESCE($18, shared_paths), zero_downtime = COALESCE($19, zero_downtime) \
                     WHERE id = $1",
                )
                .bind(id).bind(&c.aliases).bind(&c.web_directory)
                .bind(c.repository_url.is_some()).bind(c.repository_url.clone().flatten())
                .bind(&c.repository_branch).bind(&c.deploy_script)
                .bind(c.app_command.is_some()).bind(c.app_command.clone().flatten())
                .bind(&c.health_check_path).bind(c.health_check_status).bind(c.health_check_timeout)
                .bind(c.keep_releases).bind(c.suspended).bind(now())
                .bind(c.git_repository_id.is_some()).bind(c.git_repository_id.clone().flatten())
                .bind(&c.shared_paths).bind(c.zero_downtime)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_site_status(&self, id: &str, status: InstallStatus, reason: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE sites SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1")
                    .bind(id).bind(status).bind(reason).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn record_site_deployment(&self, id: &str, deployment_status: RunStatus, live: Option<(&str, Option<i64>)>, deployed_at: Option<Timestamp>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE sites SET deployment_status = $2, current_release = CASE WHEN $3 THEN $4 ELSE current_release END, \
                     active_port = CASE WHEN $3 THEN $5 ELSE active_port END, \
                     last_deployed_at = COALESCE($6, last_deployed_at), updated_at = $7 WHERE id = $1",
                )
                .bind(id).bind(deployment_status).bind(live.is_some()).bind(live.map(|l| l.0)).bind(live.and_then(|l| l.1))
                .bind(deployed_at).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn delete_site(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM sites WHERE id = $1")
                    .bind(id).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_deployment(&self, v: &Deployment) -> StoreResult<()> {
                deployment_fields!(insert_into!($db, "deployments", v))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn deployment(&self, id: &str) -> StoreResult<Option<Deployment>> {
                sqlx::query_as(concat!("SELECT ", deployment_fields!(columns!()), " FROM deployments WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn deployment_by_job(&self, job_id: &str) -> StoreResult<Option<Deployment>> {
                sqlx::query_as(concat!("SELECT ", deployment_fields!(columns!()), " FROM deployments WHERE job_id = $1"))
                    .bind(job_id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn deployments_of_site(&self, site_id: &str, page: PageRequest) -> StoreResult<(Vec<Deployment>, u64)> {
                let filter = |q: &mut QueryBuilder<$db>| {
                    q.push("site_id = ").push_bind(site_id.to_string());
                    push_seek(q, Some(page), IdOrder::Descending);
                };
                Ok(list_page!(self, $db, Deployment, deployment_fields!(columns!()), "deployments", &filter, IdOrder::Descending, page_bounds(Some(page))))
            }

            async fn unfinished_deployments_of_site(&self, site_id: &str) -> StoreResult<u64> {
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM deployments WHERE site_id = $1 AND status IN ('queued', 'running')",
                )
                .bind(site_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(as_u64(total))
            }

            async fn update_deployment(&self, id: &str, u: &DeploymentUpdate) -> StoreResult<()> {
                // Its job's readers (the deployment's log stream) are woken: they read its status.
                let job_id: Option<String> = sqlx::query_scalar(
                    "UPDATE deployments SET status = COALESCE($2, status), commit_sha = COALESCE($3, commit_sha), \
                     commit_message = COALESCE($4, commit_message), commit_author = COALESCE($5, commit_author), \
                     port = COALESCE($6, port), failed_step = COALESCE($7, failed_step), \
                     failure_reason = COALESCE($8, failure_reason), release_present = COALESCE($9, release_present), \
                     started_at = COALESCE($10, started_at), finished_at = COALESCE($11, finished_at), \
                     steps = COALESCE($12, steps) WHERE id = $1 RETURNING job_id",
                )
                .bind(id).bind(&u.status).bind(&u.commit_sha).bind(&u.commit_message).bind(&u.commit_author).bind(u.port)
                .bind(&u.failed_step).bind(&u.failure_reason).bind(u.release_present).bind(u.started_at).bind(u.finished_at)
                .bind(&u.steps)
                .fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if let Some(job_id) = job_id {
                    self.announce_activity(&job_id).await;
                }
                Ok(())
            }

            async fn releases_of_site(&self, site_id: &str) -> StoreResult<Vec<Deployment>> {
                sqlx::query_as(concat!(
                    "SELECT ", deployment_fields!(columns!()), " FROM deployments WHERE site_id = $1 AND release_present ORDER BY id DESC"
                ))
                .bind(site_id).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn put_site_env(&self, site_id: &str, key: &str, sealed: &[u8]) -> StoreResult<()> {
                let at = now();
                sqlx::query(
                    "INSERT INTO site_env (site_id, key, value, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (site_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(site_id).bind(key).bind(sealed).bind(at)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn delete_site_env(&self, site_id: &str, key: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM site_env WHERE site_id = $1 AND key = $2")
                    .bind(site_id).bind(key).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn site_env(&self, site_id: &str) -> StoreResult<Vec<SiteEnvVar>> {
                sqlx::query_as(concat!("SELECT ", site_env_fields!(columns!()), " FROM site_env WHERE site_id = $1 ORDER BY key"))
                    .bind(site_id).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }
        }
    };
}

impl_site_store!(Sqlite);
impl_site_store!(Postgres);
