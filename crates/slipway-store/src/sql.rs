//! The SQL implementation of [`Store`], written once and instantiated for SQLite and PostgreSQL.
//!
//! Rules for code in `impl_store!`: placeholders are `$1`, `$2`, …; only types both drivers
//! encode alike are bound (text, integers, bool, bytes, `chrono::DateTime<Utc>`); a statement
//! that truly differs between the two goes through `dialect()` and is covered by the
//! conformance suite.

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::{Timestamp, now};
use sqlx::migrate::Migrator;
use sqlx::{Database, Pool, Postgres, QueryBuilder, Sqlite};

use crate::cache::ReadCache;
use crate::error::StoreError;
use crate::model::*;
use crate::{Backend, Store, StoreResult};

macro_rules! user_columns {
    () => {
        "id, email, name, password_hash, totp_secret, totp_enabled, totp_last_counter, recovery_codes, created_at, updated_at"
    };
}
macro_rules! token_columns {
    () => {
        "id, kind, user_id, organization_id, name, token_hash, abilities, server_ids, site_ids, allowed_ips, \
         expires_at, created_at, created_via, created_by, last_used_at, last_used_ip, revoked_at"
    };
}
macro_rules! org_columns {
    () => {
        "id, name, max_token_lifetime_seconds, created_at, updated_at"
    };
}
macro_rules! job_columns {
    () => {
        "id, kind, payload, organization_id, resource_key, idempotent, status, attempts, max_attempts, run_at, \
         lease_owner, lease_expires_at, cancel_requested_at, created_at, started_at, finished_at, exit_code, failure_reason"
    };
}
macro_rules! server_columns {
    () => {
        "id, organization_id, name, provider, ip_address, ssh_port, ssh_user, region, size, php_version, database_type, \
         webserver, status, status_reason, monitoring_enabled, os, host_key, offered_host_key, node, provisioned_at, \
         created_at, updated_at"
    };
}
macro_rules! server_item_columns {
    () => {
        "id, server_id, kind, name, spec, status, status_reason, created_at, updated_at"
    };
}
macro_rules! site_columns {
    () => {
        "id, server_id, organization_id, domain, aliases, project_type, web_directory, repository_url, repository_branch, \
         deploy_script, app_command, health_check_path, health_check_status, health_check_timeout, zero_downtime, \
         keep_releases, app_port, status, status_reason, suspended, deployment_status, last_deployed_at, current_release, \
         active_port, created_at, updated_at, git_repository_id, shared_paths"
    };
}
macro_rules! deployment_columns {
    () => {
        "id, site_id, server_id, organization_id, job_id, status, trigger_kind, triggered_by_user, triggered_by_token, \
         release_of, commit_sha, commit_message, commit_author, port, failed_step, failure_reason, release_present, \
         created_at, started_at, finished_at, requested_commit, action"
    };
}
macro_rules! git_repository_columns {
    () => {
        "id, organization_id, provider_id, kind, url, branch, deploy_key_public, deploy_key_private, webhook_uuid, \
         webhook_secret, created_at, updated_at"
    };
}
macro_rules! delivery_columns {
    () => {
        "id, repository_id, site_id, received_at, event, branch, commit_sha, outcome, reason, deployment_id, delivery_id"
    };
}
macro_rules! audit_columns {
    () => {
        "id, occurred_at, actor_user_id, token_id, organization_id, action, method, route, resource_id, status, \
         outcome, client_ip, user_agent, request_id, detail"
    };
}

/// SQL true when job `$j` belongs to one of its site's last `$2` deployments, whose log is
/// kept whatever its age.
macro_rules! kept_deployment_job {
    ($j:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM deployments d WHERE d.job_id = ",
            $j,
            ".id AND \
             (SELECT COUNT(*) FROM deployments n WHERE n.site_id = d.site_id AND n.id > d.id) < $2)"
        )
    };
}

/// Binds each id, comma-separated, and closes the `IN (` list the caller opened.
macro_rules! push_id_list {
    ($q:expr, $ids:expr) => {{
        let mut list = $q.separated(", ");
        for id in $ids {
            list.push_bind(id.clone());
        }
        $q.push(")");
    }};
}

fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

pub(crate) struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    /// Only where this process makes every write (SQLite); see `cache.rs`.
    cache: Option<ReadCache>,
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self { pool, cache: None }
    }

    pub(crate) fn with_read_cache(pool: Pool<DB>) -> Self {
        Self { pool, cache: Some(ReadCache::default()) }
    }

    /// Evicts when the returned guard drops, i.e. after the write has committed (or failed):
    /// evicting before the write would let a concurrent read cache the old row again.
    fn evict_after<F: FnOnce(&ReadCache)>(&self, f: F) -> EvictOnDrop<'_, F> {
        EvictOnDrop { cache: self.cache.as_ref(), evict: Some(f) }
    }
}

struct EvictOnDrop<'a, F: FnOnce(&ReadCache)> {
    cache: Option<&'a ReadCache>,
    evict: Option<F>,
}

impl<F: FnOnce(&ReadCache)> Drop for EvictOnDrop<'_, F> {
    fn drop(&mut self) {
        if let (Some(cache), Some(evict)) = (self.cache, self.evict.take()) {
            evict(cache);
        }
    }
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("backend", &DB::NAME).finish_non_exhaustive()
    }
}

macro_rules! impl_store {
    ($db:ty, $backend:expr, $migrator:expr, $claim_lock:literal) => {
        #[async_trait]
        impl Store for SqlStore<$db> {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn migrate(&self) -> Result<usize, StoreError> {
                let before = applied_count(&self.pool).await?;
                $migrator.run(&self.pool).await?;
                let after = applied_count(&self.pool).await?;
                Ok(after.saturating_sub(before))
            }

            async fn ping(&self) -> Result<(), StoreError> {
                if self.pool.is_closed() {
                    return Err(StoreError::Closed);
                }
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)
            }

            async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(value)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                // Read back: when another writer won the race, its value is the one that counts.
                self.setting(key).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
            }

            async fn count_users(&self) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn create_user(&self, user: &NewUser) -> StoreResult<()> {
                let at = now();
                sqlx::query(
                    "INSERT INTO users (id, email, email_normalized, name, password_hash, totp_enabled, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6)",
                )
                .bind(&user.id).bind(&user.email).bind(&user.email_normalized).bind(&user.name).bind(&user.password_hash).bind(at)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn create_user_with_organization(&self, user: &NewUser, organization_id: &str, organization_name: &str, role: &str) -> StoreResult<()> {
                let _evict = self.evict_after(|c| c.evict_memberships(&user.id));
                let at = now();
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                sqlx::query(
                    "INSERT INTO users (id, email, email_normalized, name, password_hash, totp_enabled, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6)",
                )
                .bind(&user.id).bind(&user.email).bind(&user.email_normalized).bind(&user.name).bind(&user.password_hash).bind(at)
                .execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                    .bind(organization_id).bind(organization_name).bind(at)
                    .execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(organization_id).bind(&user.id).bind(role).bind(at)
                    .execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)
            }

            async fn user(&self, id: &str) -> StoreResult<Option<User>> {
                if let Some(hit) = self.cache.as_ref().and_then(|c| c.user(id)) {
                    return Ok(Some(hit));
                }
                let generation = self.cache.as_ref().map(ReadCache::generation);
                let row: Option<User> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if let (Some(cache), Some(g), Some(user)) = (&self.cache, generation, &row) {
                    cache.put_user(g, user);
                }
                Ok(row)
            }

            async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>> {
                sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE email_normalized = $1"))
                    .bind(email_normalized).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn set_user_two_factor(&self, id: &str, secret: Option<&[u8]>, enabled: bool, recovery_codes: Option<&str>) -> StoreResult<()> {
                let _evict = self.evict_after(|c| c.evict_user(id));
                sqlx::query(
                    "UPDATE users SET totp_secret = $2, totp_enabled = $3, recovery_codes = $4, totp_last_counter = NULL, \
                     updated_at = $5 WHERE id = $1",
                )
                .bind(id).bind(secret).bind(enabled).bind(recovery_codes).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn record_totp_counter(&self, id: &str, counter: i64) -> StoreResult<bool> {
                let _evict = self.evict_after(|c| c.evict_user(id));
                let done = sqlx::query(
                    "UPDATE users SET totp_last_counter = $2 WHERE id = $1 AND (totp_last_counter IS NULL OR totp_last_counter < $2)",
                )
                .bind(id).bind(counter).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn swap_recovery_codes(&self, id: &str, expected: &str, new: &str) -> StoreResult<bool> {
                let _evict = self.evict_after(|c| c.evict_user(id));
                let done = sqlx::query("UPDATE users SET recovery_codes = $3, updated_at = $4 WHERE id = $1 AND recovery_codes = $2")
                    .bind(id).bind(expected).bind(new).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_organization(&self, id: &str, name: &str, owner_user_id: &str) -> StoreResult<()> {
                let _evict = self.evict_after(|c| c.evict_memberships(owner_user_id));
                let at = now();
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                    .bind(id).bind(name).bind(at).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
                    .bind(id).bind(owner_user_id).bind(at).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)
            }

            async fn organization(&self, id: &str) -> StoreResult<Option<Organization>> {
                sqlx::query_as(concat!("SELECT ", org_columns!(), " FROM organizations WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn organizations_named(&self, name: &str) -> StoreResult<Vec<Organization>> {
                sqlx::query_as(concat!("SELECT ", org_columns!(), " FROM organizations WHERE name = $1 ORDER BY id LIMIT 100"))
                    .bind(name).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn organizations_of(&self, user_id: &str, page: PageRequest) -> StoreResult<(Vec<OrganizationWithRole>, u64)> {
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE user_id = $1")
                    .bind(user_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(
                    "SELECT o.id, o.name, o.max_token_lifetime_seconds, o.created_at, o.updated_at, m.role \
                     FROM organizations o JOIN memberships m ON m.organization_id = o.id \
                     WHERE m.user_id = $1 ORDER BY o.id LIMIT $2 OFFSET $3",
                )
                .bind(user_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn memberships_of(&self, user_id: &str) -> StoreResult<Vec<OrganizationWithRole>> {
                if let Some(hit) = self.cache.as_ref().and_then(|c| c.memberships(user_id)) {
                    return Ok(hit);
                }
                let generation = self.cache.as_ref().map(ReadCache::generation);
                let rows: Vec<OrganizationWithRole> = sqlx::query_as(
                    "SELECT o.id, o.name, o.max_token_lifetime_seconds, o.created_at, o.updated_at, m.role \
                     FROM organizations o JOIN memberships m ON m.organization_id = o.id \
                     WHERE m.user_id = $1 ORDER BY o.id LIMIT 1000",
                )
                .bind(user_id).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if let (Some(cache), Some(g)) = (&self.cache, generation) {
                    cache.put_memberships(g, user_id, &rows);
                }
                Ok(rows)
            }

            async fn update_organization(&self, id: &str, name: Option<&str>, max_token_lifetime_seconds: Option<Option<i64>>) -> StoreResult<()> {
                let _evict = self.evict_after(ReadCache::evict_all_memberships);
                let (set_max, max) = match max_token_lifetime_seconds { Some(v) => (true, v), None => (false, None) };
                sqlx::query(
                    "UPDATE organizations SET name = COALESCE($2, name), \
                     max_token_lifetime_seconds = CASE WHEN $3 THEN $4 ELSE max_token_lifetime_seconds END, \
                     updated_at = $5 WHERE id = $1",
                )
                .bind(id).bind(name).bind(set_max).bind(max).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn role_of(&self, organization_id: &str, user_id: &str) -> StoreResult<Option<String>> {
                sqlx::query_scalar("SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2")
                    .bind(organization_id).bind(user_id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn members(&self, organization_id: &str, page: PageRequest) -> StoreResult<(Vec<Member>, u64)> {
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE organization_id = $1")
                    .bind(organization_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(
                    "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
                     JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1 ORDER BY u.id LIMIT $2 OFFSET $3",
                )
                .bind(organization_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn member(&self, organization_id: &str, user_id: &str) -> StoreResult<Option<Member>> {
                sqlx::query_as(
                    "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
                     JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1 AND m.user_id = $2",
                )
                .bind(organization_id).bind(user_id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn add_member(&self, organization_id: &str, user_id: &str, role: &str) -> StoreResult<()> {
                let _evict = self.evict_after(|c| c.evict_memberships(user_id));
                sqlx::query("INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(organization_id).bind(user_id).bind(role).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn change_member_role(&self, organization_id: &str, user_id: &str, role: &str) -> StoreResult<bool> {
                let _evict = self.evict_after(|c| c.evict_memberships(user_id));
                self.guarded_membership_change(organization_id, user_id, Some(role)).await
            }

            async fn remove_member(&self, organization_id: &str, user_id: &str) -> StoreResult<bool> {
                let _evict = self.evict_after(|c| c.evict_memberships(user_id));
                self.guarded_membership_change(organization_id, user_id, None).await
            }

            async fn insert_token(&self, t: &AccessToken) -> StoreResult<()> {
                insert_token_query::<$db>(t).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn token(&self, id: &str) -> StoreResult<Option<AccessToken>> {
                sqlx::query_as(concat!("SELECT ", token_columns!(), " FROM access_tokens WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<AccessToken>> {
                if let Some(hit) = self.cache.as_ref().and_then(|c| c.token(token_hash)) {
                    return Ok(Some(hit));
                }
                let generation = self.cache.as_ref().map(ReadCache::generation);
                let row: Option<AccessToken> = sqlx::query_as(concat!("SELECT ", token_columns!(), " FROM access_tokens WHERE token_hash = $1"))
                    .bind(token_hash).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if let (Some(cache), Some(g), Some(token)) = (&self.cache, generation, &row) {
                    cache.put_token(g, token);
                }
                Ok(row)
            }

            async fn tokens_of_user(&self, user_id: &str, page: PageRequest) -> StoreResult<(Vec<AccessToken>, u64)> {
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM access_tokens WHERE user_id = $1 AND kind = 'personal' AND revoked_at IS NULL",
                )
                .bind(user_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(concat!(
                    "SELECT ", token_columns!(), " FROM access_tokens WHERE user_id = $1 AND kind = 'personal' \
                     AND revoked_at IS NULL ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(user_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn tokens_of_organization(&self, organization_id: &str, page: PageRequest) -> StoreResult<(Vec<AccessToken>, u64)> {
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM access_tokens WHERE organization_id = $1 AND kind = 'organization' AND revoked_at IS NULL",
                )
                .bind(organization_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(concat!(
                    "SELECT ", token_columns!(), " FROM access_tokens WHERE organization_id = $1 AND kind = 'organization' \
                     AND revoked_at IS NULL ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(organization_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn update_token(&self, id: &str, c: &TokenChanges) -> StoreResult<bool> {
                let _evict = self.evict_after(|c| c.evict_token(id));
                let flag = |o: &Option<Option<String>>| o.is_some();
                let val = |o: &Option<Option<String>>| o.clone().flatten();
                let done = sqlx::query(
                    "UPDATE access_tokens SET name = COALESCE($2, name), abilities = COALESCE($3, abilities), \
                     server_ids = CASE WHEN $4 THEN $5 ELSE server_ids END, \
                     site_ids = CASE WHEN $6 THEN $7 ELSE site_ids END, \
                     allowed_ips = CASE WHEN $8 THEN $9 ELSE allowed_ips END, \
                     expires_at = CASE WHEN $10 THEN $11 ELSE expires_at END \
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id).bind(&c.name).bind(&c.abilities)
                .bind(flag(&c.server_ids)).bind(val(&c.server_ids))
                .bind(flag(&c.site_ids)).bind(val(&c.site_ids))
                .bind(flag(&c.allowed_ips)).bind(val(&c.allowed_ips))
                .bind(c.expires_at.is_some()).bind(c.expires_at.flatten())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_token(&self, id: &str, at: Timestamp) -> StoreResult<bool> {
                let _evict = self.evict_after(|c| c.evict_token(id));
                let done = sqlx::query("UPDATE access_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn rotate_token(&self, old_id: &str, new: &AccessToken, at: Timestamp) -> StoreResult<bool> {
                let _evict = self.evict_after(|c| c.evict_token(old_id));
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                let done = sqlx::query("UPDATE access_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(old_id).bind(at).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                if done.rows_affected() != 1 {
                    tx.rollback().await.map_err(StoreError::from_sqlx)?;
                    return Ok(false);
                }
                insert_token_query::<$db>(new).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(true)
            }

            async fn touch_token(&self, id: &str, at: Timestamp, ip: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE access_tokens SET last_used_at = $2, last_used_ip = $3 WHERE id = $1")
                    .bind(id).bind(at).bind(ip).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn create_token_family(&self, family_id: &str, token_id: &str, first: &RefreshToken) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO token_families (id, token_id, created_at) VALUES ($1, $2, $3)")
                    .bind(family_id).bind(token_id).bind(first.created_at)
                    .execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                insert_refresh_query::<$db>(first).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)
            }

            async fn refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
                sqlx::query_as(
                    "SELECT id, family_id, token_hash, expires_at, used_at, created_at FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(token_hash).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn use_refresh_token(&self, id: &str, at: Timestamp, next: &RefreshToken) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                let done = sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                    .bind(id).bind(at).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                if done.rows_affected() != 1 {
                    tx.rollback().await.map_err(StoreError::from_sqlx)?;
                    return Ok(false);
                }
                insert_refresh_query::<$db>(next).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(true)
            }

            async fn revoke_token_family(&self, family_id: &str, at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE token_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(family_id).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn active_token_family(&self, family_id: &str) -> StoreResult<Option<String>> {
                sqlx::query_scalar("SELECT token_id FROM token_families WHERE id = $1 AND revoked_at IS NULL")
                    .bind(family_id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn token_family_parent(&self, family_id: &str) -> StoreResult<Option<String>> {
                sqlx::query_scalar("SELECT token_id FROM token_families WHERE id = $1")
                    .bind(family_id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn rate_limit_hit(&self, key: &str, window_start: i64, expires_at: i64) -> StoreResult<i64> {
                sqlx::query_scalar(
                    "INSERT INTO rate_limits (key, window_start, count, expires_at) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 RETURNING count",
                )
                .bind(key).bind(window_start).bind(expires_at)
                .fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn idempotency_begin(&self, principal: &str, key: &str, request_hash: &str, at: Timestamp, not_before: Timestamp, stale_before: Timestamp) -> StoreResult<IdempotencyBegin> {
                // A key older than the retention window counts as new, and so does one whose
                // holder died before it stored a response.
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND (created_at < $3 \
                     OR (status IS NULL AND COALESCE(heartbeat_at, created_at) < $4))",
                )
                .bind(principal).bind(key).bind(not_before).bind(stale_before)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (principal, key, request_hash, created_at, heartbeat_at) \
                     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (principal, key) DO NOTHING",
                )
                .bind(principal).bind(key).bind(request_hash).bind(at)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if inserted.rows_affected() == 1 {
                    return Ok(IdempotencyBegin::Started);
                }
                let row: Option<(String, Option<i64>, Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT request_hash, status, content_type, body FROM idempotency_keys WHERE principal = $1 AND key = $2",
                )
                .bind(principal).bind(key).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(match row {
                    None => IdempotencyBegin::InProgress,
                    Some((hash, _, _, _)) if hash != request_hash => IdempotencyBegin::Mismatch,
                    Some((_, None, _, _)) => IdempotencyBegin::InProgress,
                    Some((_, Some(status), content_type, body)) => IdempotencyBegin::Replay {
                        status: u16::try_from(status).unwrap_or(500),
                        content_type,
                        body: body.unwrap_or_default(),
                    },
                })
            }

            async fn idempotency_heartbeat(&self, principal: &str, key: &str, at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE idempotency_keys SET heartbeat_at = $3 WHERE principal = $1 AND key = $2 AND status IS NULL")
                    .bind(principal).bind(key).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn idempotency_finish(&self, principal: &str, key: &str, status: u16, content_type: Option<&str>, body: &[u8]) -> StoreResult<()> {
                sqlx::query("UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 WHERE principal = $1 AND key = $2")
                    .bind(principal).bind(key).bind(i64::from(status)).bind(content_type).bind(body)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn idempotency_abandon(&self, principal: &str, key: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND status IS NULL")
                    .bind(principal).bind(key).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn insert_audit_event(&self, e: &AuditEvent) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO audit_events (", audit_columns!(), ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ))
                .bind(&e.id).bind(e.occurred_at).bind(&e.actor_user_id).bind(&e.token_id).bind(&e.organization_id)
                .bind(&e.action).bind(&e.method).bind(&e.route).bind(&e.resource_id).bind(e.status).bind(&e.outcome)
                .bind(&e.client_ip).bind(&e.user_agent).bind(&e.request_id).bind(&e.detail)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn audit_events(&self, filter: &AuditFilter, page: PageRequest) -> StoreResult<(Vec<AuditEvent>, u64)> {
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM audit_events WHERE ");
                push_audit_filter(&mut count, filter);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE "));
                push_audit_filter(&mut select, filter);
                select.push(" ORDER BY id DESC LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.offset());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn enqueue_job(&self, j: &NewJob) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO jobs (id, kind, payload, organization_id, resource_key, idempotent, status, attempts, \
                     max_attempts, run_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $8, $9)",
                )
                .bind(&j.id).bind(&j.kind).bind(&j.payload).bind(&j.organization_id).bind(&j.resource_key)
                .bind(j.idempotent).bind(j.max_attempts).bind(j.run_at).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn job(&self, id: &str) -> StoreResult<Option<Job>> {
                sqlx::query_as(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn jobs_for_resource(&self, resource_key: &str, page: PageRequest) -> StoreResult<(Vec<Job>, u64)> {
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE resource_key = $1")
                    .bind(resource_key).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(concat!(
                    "SELECT ", job_columns!(), " FROM jobs WHERE resource_key = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(resource_key).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn claim_job(&self, worker: &str, at: Timestamp, lease_until: Timestamp) -> StoreResult<Option<Job>> {
                let claimed = sqlx::query_as(concat!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires_at = $3, \
                     started_at = COALESCE(started_at, $2) \
                     WHERE status = 'queued' AND id = (SELECT j.id FROM jobs j WHERE j.status = 'queued' AND j.run_at <= $2 \
                       AND (j.resource_key IS NULL OR NOT EXISTS \
                         (SELECT 1 FROM jobs r WHERE r.resource_key = j.resource_key AND r.status = 'running')) \
                       ORDER BY j.run_at, j.id LIMIT 1", $claim_lock, ") \
                     RETURNING ", job_columns!()
                ))
                .bind(worker).bind(at).bind(lease_until)
                .fetch_optional(&self.pool).await;
                match claimed {
                    Ok(job) => Ok(job),
                    // Two workers raced for jobs of the same resource; the unique index let one win.
                    Err(e) => match StoreError::from_sqlx(e) {
                        StoreError::Conflict(_) => Ok(None),
                        other => Err(other),
                    },
                }
            }

            async fn heartbeat_job(&self, id: &str, worker: &str, lease_until: Timestamp) -> StoreResult<Heartbeat> {
                let row: Option<(Option<Timestamp>,)> = sqlx::query_as(
                    "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running' \
                     RETURNING cancel_requested_at",
                )
                .bind(id).bind(worker).bind(lease_until)
                .fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(match row {
                    None => Heartbeat::Lost,
                    Some((Some(_),)) => Heartbeat::CancelRequested,
                    Some((None,)) => Heartbeat::Held,
                })
            }

            async fn finish_job(&self, id: &str, worker: &str, end: &JobEnd, at: Timestamp) -> StoreResult<bool> {
                let query = match end {
                    // A retry of a job someone asked to cancel is a cancellation instead.
                    JobEnd::Retry { run_at, reason } => sqlx::query(
                        "UPDATE jobs SET \
                         status = CASE WHEN cancel_requested_at IS NULL THEN 'queued' ELSE 'cancelled' END, \
                         finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE $5 END, \
                         run_at = $3, \
                         failure_reason = CASE WHEN cancel_requested_at IS NULL THEN $4 ELSE 'cancelled by request' END, \
                         lease_owner = NULL, lease_expires_at = NULL \
                         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                    )
                    .bind(id).bind(worker).bind(*run_at).bind(reason.clone()).bind(at),
                    other => {
                        let (status, reason, code) = match other {
                            JobEnd::Succeeded => ("succeeded", None, None),
                            JobEnd::Failed { reason, exit_code } => ("failed", Some(reason.clone()), *exit_code),
                            JobEnd::Cancelled { reason } => ("cancelled", Some(reason.clone()), None),
                            JobEnd::Retry { .. } => unreachable!("handled above"),
                        };
                        sqlx::query(
                            "UPDATE jobs SET status = $3, failure_reason = $4, exit_code = $5, finished_at = $6, \
                             lease_owner = NULL, lease_expires_at = NULL \
                             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                        )
                        .bind(id).bind(worker).bind(status).bind(reason).bind(code).bind(at)
                    }
                };
                let done = query.execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn cancel_job(&self, id: &str, at: Timestamp) -> StoreResult<CancelOutcome> {
                let queued = sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', finished_at = $2, failure_reason = 'cancelled before it started' \
                     WHERE id = $1 AND status = 'queued'",
                )
                .bind(id).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if queued.rows_affected() == 1 {
                    return Ok(CancelOutcome::Cancelled);
                }
                let running = sqlx::query(
                    "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, $2) WHERE id = $1 AND status = 'running'",
                )
                .bind(id).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if running.rows_affected() == 1 {
                    return Ok(CancelOutcome::Requested);
                }
                Ok(match self.job(id).await? {
                    Some(_) => CancelOutcome::AlreadyFinished,
                    None => CancelOutcome::NotFound,
                })
            }

            async fn reap_jobs(&self, at: Timestamp, retry_at: &(dyn Fn(i64) -> Timestamp + Send + Sync)) -> StoreResult<Reaped> {
                let expired: Vec<(String, bool, i64, i64, Option<Timestamp>)> = sqlx::query_as(
                    "SELECT id, idempotent, attempts, max_attempts, cancel_requested_at FROM jobs \
                     WHERE status = 'running' AND lease_expires_at < $1",
                )
                .bind(at).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut reaped = Reaped::default();
                for (id, idempotent, attempts, max_attempts, cancel_requested) in expired {
                    // Each update re-checks the lease, so a heartbeat that arrived meanwhile wins.
                    let (done, requeued) = if cancel_requested.is_some() {
                        // Someone asked to stop it: it ends cancelled, it does not run again.
                        let q = sqlx::query(
                            "UPDATE jobs SET status = 'cancelled', finished_at = $2, lease_owner = NULL, lease_expires_at = NULL, \
                             failure_reason = 'cancelled by request' WHERE id = $1 AND status = 'running' AND lease_expires_at < $2",
                        )
                        .bind(&id).bind(at);
                        (q.execute(&self.pool).await.map_err(StoreError::from_sqlx)?, false)
                    } else if idempotent && attempts < max_attempts {
                        let q = sqlx::query(
                            "UPDATE jobs SET status = 'queued', run_at = $2, lease_owner = NULL, lease_expires_at = NULL, \
                             failure_reason = 'interrupted; retrying' \
                             WHERE id = $1 AND status = 'running' AND lease_expires_at < $3",
                        )
                        .bind(&id).bind(retry_at(attempts)).bind(at);
                        (q.execute(&self.pool).await.map_err(StoreError::from_sqlx)?, true)
                    } else {
                        let q = sqlx::query(
                            "UPDATE jobs SET status = 'failed', finished_at = $2, lease_owner = NULL, lease_expires_at = NULL, \
                             failure_reason = 'interrupted' WHERE id = $1 AND status = 'running' AND lease_expires_at < $2",
                        )
                        .bind(&id).bind(at);
                        (q.execute(&self.pool).await.map_err(StoreError::from_sqlx)?, false)
                    };
                    if done.rows_affected() == 1 {
                        if requeued { reaped.requeued.push(id) } else { reaped.failed.push(id) }
                    }
                }
                Ok(reaped)
            }

            async fn last_job_log_seq(&self, job_id: &str) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id = $1")
                    .bind(job_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn append_job_log(&self, job_id: &str, first_seq: i64, entries: &[(String, String)], at: Timestamp) -> StoreResult<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let mut insert = QueryBuilder::<$db>::new("INSERT INTO job_logs (job_id, seq, at, stream, line) ");
                insert.push_values(entries.iter().enumerate(), |mut row, (i, (stream, line))| {
                    row.push_bind(job_id.to_string()).push_bind(first_seq + i as i64).push_bind(at)
                        .push_bind(stream.clone()).push_bind(line.clone());
                });
                insert.build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn job_log(&self, job_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<JobLogLine>> {
                sqlx::query_as("SELECT seq, at, stream, line FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
                    .bind(job_id).bind(after_seq).bind(limit)
                    .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn swap_setting(&self, key: &str, expected: &str, new: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE settings SET value = $3, updated_at = $4 WHERE key = $1 AND value = $2")
                    .bind(key).bind(expected).bind(new).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn organization_key(&self, organization_id: &str, new: (&str, &[u8])) -> StoreResult<(String, Vec<u8>)> {
                sqlx::query(
                    "INSERT INTO organization_keys (organization_id, public_key, private_key, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (organization_id) DO NOTHING",
                )
                .bind(organization_id).bind(new.0).bind(new.1).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                sqlx::query_as("SELECT public_key, private_key FROM organization_keys WHERE organization_id = $1")
                    .bind(organization_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn insert_server(&self, v: &Server) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO servers (", server_columns!(), ") VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
                ))
                .bind(&v.id).bind(&v.organization_id).bind(&v.name).bind(&v.provider).bind(&v.ip_address).bind(v.ssh_port)
                .bind(&v.ssh_user).bind(&v.region).bind(&v.size).bind(&v.php_version).bind(&v.database_type).bind(&v.webserver)
                .bind(&v.status).bind(&v.status_reason).bind(v.monitoring_enabled).bind(&v.os).bind(&v.host_key)
                .bind(&v.offered_host_key).bind(v.node).bind(v.provisioned_at).bind(v.created_at).bind(v.updated_at)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn server(&self, id: &str) -> StoreResult<Option<Server>> {
                sqlx::query_as(concat!("SELECT ", server_columns!(), " FROM servers WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn servers_of(&self, organization_ids: &[String], only: Option<&[String]>, page: PageRequest) -> StoreResult<(Vec<Server>, u64)> {
                if organization_ids.is_empty() || only.is_some_and(<[String]>::is_empty) {
                    return Ok((Vec::new(), 0));
                }
                let filter = |q: &mut QueryBuilder<$db>| {
                    q.push("organization_id IN (");
                    push_id_list!(q, organization_ids);
                    if let Some(only) = only {
                        q.push(" AND id IN (");
                        push_id_list!(q, only);
                    }
                };
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM servers WHERE ");
                filter(&mut count);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!("SELECT ", server_columns!(), " FROM servers WHERE "));
                filter(&mut select);
                select.push(" ORDER BY id LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.offset());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn servers_named(&self, organization_ids: &[String], name: &str) -> StoreResult<Vec<Server>> {
                if organization_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = QueryBuilder::<$db>::new(concat!("SELECT ", server_columns!(), " FROM servers WHERE name = "));
                q.push_bind(name.to_string()).push(" AND organization_id IN (");
                push_id_list!(q, organization_ids);
                q.push(" ORDER BY id LIMIT 10");
                q.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn site_counts(&self, server_ids: &[String]) -> StoreResult<Vec<(String, i64)>> {
                if server_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = QueryBuilder::<$db>::new("SELECT server_id, COUNT(*) FROM sites WHERE server_id IN (");
                push_id_list!(q, server_ids);
                q.push(" GROUP BY server_id");
                q.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn update_server(&self, id: &str, c: &ServerChanges) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE servers SET name = COALESCE($2, name), ip_address = COALESCE($3, ip_address), \
                     ssh_port = COALESCE($4, ssh_port), monitoring_enabled = COALESCE($5, monitoring_enabled), updated_at = $6, \
                     php_version = COALESCE($7, php_version) WHERE id = $1",
                )
                .bind(id).bind(&c.name).bind(&c.ip_address).bind(c.ssh_port).bind(c.monitoring_enabled).bind(now())
                .bind(&c.php_version)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_server_status(&self, id: &str, status: &str, reason: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE servers SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1")
                    .bind(id).bind(status).bind(reason).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn record_server_contact(&self, id: &str, host_key: Option<&str>, os: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE servers SET host_key = COALESCE(host_key, $2), os = COALESCE($3, os), updated_at = $4 WHERE id = $1")
                    .bind(id).bind(host_key).bind(os).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn replace_host_key(&self, id: &str, host_key: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE servers SET host_key = $2, offered_host_key = NULL, updated_at = $3 WHERE id = $1")
                    .bind(id).bind(host_key).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn record_offered_host_key(&self, id: &str, host_key: &str) -> StoreResult<()> {
                sqlx::query("UPDATE servers SET offered_host_key = $2, updated_at = $3 WHERE id = $1")
                    .bind(id).bind(host_key).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn mark_provisioned(&self, id: &str, at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE servers SET status = 'active', status_reason = NULL, provisioned_at = $2, updated_at = $2 WHERE id = $1")
                    .bind(id).bind(at)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn delete_server(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM servers WHERE id = $1")
                    .bind(id).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_server_item(&self, v: &ServerItem) -> StoreResult<()> {
                sqlx::query(concat!("INSERT INTO server_items (", server_item_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                    .bind(&v.id).bind(&v.server_id).bind(&v.kind).bind(&v.name).bind(&v.spec).bind(&v.status)
                    .bind(&v.status_reason).bind(v.created_at).bind(v.updated_at)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn server_item(&self, id: &str) -> StoreResult<Option<ServerItem>> {
                sqlx::query_as(concat!("SELECT ", server_item_columns!(), " FROM server_items WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn server_items(&self, server_id: &str, kind: &str, page: Option<PageRequest>) -> StoreResult<(Vec<ServerItem>, u64)> {
                let (limit, offset) = page.map_or((i64::MAX, 0), |p| (p.limit(), p.offset()));
                let rows: Vec<ServerItem> = sqlx::query_as(concat!(
                    "SELECT ", server_item_columns!(), " FROM server_items WHERE server_id = $1 AND kind = $2 ORDER BY id LIMIT $3 OFFSET $4"
                ))
                .bind(server_id).bind(kind).bind(limit).bind(offset)
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM server_items WHERE server_id = $1 AND kind = $2")
                    .bind(server_id).bind(kind).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn set_server_items_status(&self, ids: &[String], status: &str, reason: Option<&str>) -> StoreResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut q = QueryBuilder::<$db>::new("UPDATE server_items SET status = ");
                q.push_bind(status.to_string()).push(", status_reason = ").push_bind(reason.map(str::to_string));
                // An item being removed stays so: a sync that read it earlier must not revive it.
                let guard = if status == "removing" { "" } else { "status <> 'removing' AND " };
                q.push(", updated_at = ").push_bind(now()).push(" WHERE ").push(guard).push("id IN (");
                push_id_list!(q, ids);
                q.build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn delete_removed_server_items(&self, ids: &[String]) -> StoreResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut q = QueryBuilder::<$db>::new("DELETE FROM server_items WHERE status = 'removing' AND id IN (");
                push_id_list!(q, ids);
                q.build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn insert_site(&self, v: &Site) -> StoreResult<Site> {
                sqlx::query(concat!(
                    "INSERT INTO sites (", site_columns!(), ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, COALESCE((SELECT MAX(app_port) FROM sites WHERE server_id = $2), 19998) + 2, \
                     $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27"
                ))
                .bind(&v.id).bind(&v.server_id).bind(&v.organization_id).bind(&v.domain).bind(&v.aliases)
                .bind(&v.project_type).bind(&v.web_directory).bind(&v.repository_url).bind(&v.repository_branch)
                .bind(&v.deploy_script).bind(&v.app_command).bind(&v.health_check_path).bind(v.health_check_status)
                .bind(v.health_check_timeout).bind(v.zero_downtime).bind(v.keep_releases)
                .bind(&v.status).bind(&v.status_reason).bind(v.suspended).bind(&v.deployment_status)
                .bind(v.last_deployed_at).bind(&v.current_release).bind(v.active_port).bind(v.created_at).bind(v.updated_at)
                .bind(&v.git_repository_id).bind(&v.shared_paths)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                self.site(&v.id).await?.ok_or_else(|| StoreError::Conflict("site vanished".into()))
            }

            async fn site(&self, id: &str) -> StoreResult<Option<Site>> {
                sqlx::query_as(concat!("SELECT ", site_columns!(), " FROM sites WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn site_by_domain(&self, server_id: &str, domain: &str) -> StoreResult<Option<Site>> {
                sqlx::query_as(concat!("SELECT ", site_columns!(), " FROM sites WHERE server_id = $1 AND domain = $2"))
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
                };
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM sites WHERE ");
                filter(&mut count);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let (limit, offset) = page.map_or((i64::MAX, 0), |p| (p.limit(), p.offset()));
                let mut select = QueryBuilder::<$db>::new(concat!("SELECT ", site_columns!(), " FROM sites WHERE "));
                filter(&mut select);
                select.push(" ORDER BY id LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
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

            async fn set_site_status(&self, id: &str, status: &str, reason: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE sites SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1")
                    .bind(id).bind(status).bind(reason).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn record_site_deployment(&self, id: &str, deployment_status: &str, live: Option<(&str, Option<i64>)>, deployed_at: Option<Timestamp>) -> StoreResult<()> {
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
                sqlx::query(concat!(
                    "INSERT INTO deployments (", deployment_columns!(), ") VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
                ))
                .bind(&v.id).bind(&v.site_id).bind(&v.server_id).bind(&v.organization_id).bind(&v.job_id).bind(&v.status)
                .bind(&v.trigger_kind).bind(&v.triggered_by_user).bind(&v.triggered_by_token).bind(&v.release_of)
                .bind(&v.commit_sha).bind(&v.commit_message).bind(&v.commit_author).bind(v.port).bind(&v.failed_step)
                .bind(&v.failure_reason).bind(v.release_present).bind(v.created_at).bind(v.started_at).bind(v.finished_at)
                .bind(&v.requested_commit).bind(&v.action)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn deployment(&self, id: &str) -> StoreResult<Option<Deployment>> {
                sqlx::query_as(concat!("SELECT ", deployment_columns!(), " FROM deployments WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn deployment_by_job(&self, job_id: &str) -> StoreResult<Option<Deployment>> {
                sqlx::query_as(concat!("SELECT ", deployment_columns!(), " FROM deployments WHERE job_id = $1"))
                    .bind(job_id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn deployments_of_site(&self, site_id: &str, page: PageRequest) -> StoreResult<(Vec<Deployment>, u64)> {
                let rows: Vec<Deployment> = sqlx::query_as(concat!(
                    "SELECT ", deployment_columns!(), " FROM deployments WHERE site_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(site_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE site_id = $1")
                    .bind(site_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn unfinished_deployments_of_site(&self, site_id: &str) -> StoreResult<u64> {
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM deployments WHERE site_id = $1 AND status IN ('queued', 'running')",
                )
                .bind(site_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(as_u64(total))
            }

            async fn update_deployment(&self, id: &str, u: &DeploymentUpdate) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE deployments SET status = COALESCE($2, status), commit_sha = COALESCE($3, commit_sha), \
                     commit_message = COALESCE($4, commit_message), commit_author = COALESCE($5, commit_author), \
                     port = COALESCE($6, port), failed_step = COALESCE($7, failed_step), \
                     failure_reason = COALESCE($8, failure_reason), release_present = COALESCE($9, release_present), \
                     started_at = COALESCE($10, started_at), finished_at = COALESCE($11, finished_at) WHERE id = $1",
                )
                .bind(id).bind(&u.status).bind(&u.commit_sha).bind(&u.commit_message).bind(&u.commit_author).bind(u.port)
                .bind(&u.failed_step).bind(&u.failure_reason).bind(u.release_present).bind(u.started_at).bind(u.finished_at)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn releases_of_site(&self, site_id: &str) -> StoreResult<Vec<Deployment>> {
                sqlx::query_as(concat!(
                    "SELECT ", deployment_columns!(), " FROM deployments WHERE site_id = $1 AND release_present ORDER BY id DESC"
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
                sqlx::query_as("SELECT site_id, key, value, created_at, updated_at FROM site_env WHERE site_id = $1 ORDER BY key")
                    .bind(site_id).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn insert_git_provider(&self, v: &GitProvider) -> StoreResult<()> {
                sqlx::query("INSERT INTO git_providers (id, organization_id, name, kind, access_token, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&v.id).bind(&v.organization_id).bind(&v.name).bind(&v.kind).bind(&v.access_token).bind(v.created_at).bind(v.updated_at)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn git_provider(&self, id: &str) -> StoreResult<Option<GitProvider>> {
                sqlx::query_as("SELECT id, organization_id, name, kind, access_token, created_at, updated_at FROM git_providers WHERE id = $1")
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn git_providers_of(&self, organization_ids: &[String], page: PageRequest) -> StoreResult<(Vec<GitProvider>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM git_providers WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(
                    "SELECT id, organization_id, name, kind, access_token, created_at, updated_at FROM git_providers WHERE organization_id IN (",
                );
                push_id_list!(select, organization_ids);
                select.push(" ORDER BY id LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.offset());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn delete_git_provider(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM git_providers WHERE id = $1")
                    .bind(id).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_git_repository(&self, v: &GitRepository) -> StoreResult<()> {
                sqlx::query(concat!("INSERT INTO git_repositories (", git_repository_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"))
                    .bind(&v.id).bind(&v.organization_id).bind(&v.provider_id).bind(&v.kind).bind(&v.url).bind(&v.branch)
                    .bind(&v.deploy_key_public).bind(&v.deploy_key_private).bind(&v.webhook_uuid).bind(&v.webhook_secret)
                    .bind(v.created_at).bind(v.updated_at)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn git_repository(&self, id: &str) -> StoreResult<Option<GitRepository>> {
                sqlx::query_as(concat!("SELECT ", git_repository_columns!(), " FROM git_repositories WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn git_repository_by_webhook(&self, webhook_uuid: &str) -> StoreResult<Option<GitRepository>> {
                sqlx::query_as(concat!("SELECT ", git_repository_columns!(), " FROM git_repositories WHERE webhook_uuid = $1"))
                    .bind(webhook_uuid).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn git_repositories_of(&self, organization_ids: &[String], page: PageRequest) -> StoreResult<(Vec<GitRepository>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM git_repositories WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!("SELECT ", git_repository_columns!(), " FROM git_repositories WHERE organization_id IN ("));
                push_id_list!(select, organization_ids);
                select.push(" ORDER BY id LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.offset());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn update_git_repository(&self, id: &str, c: &GitRepositoryChanges) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE git_repositories SET url = COALESCE($2, url), branch = COALESCE($3, branch), \
                     deploy_key_public = CASE WHEN $4 THEN $5 ELSE deploy_key_public END, \
                     deploy_key_private = CASE WHEN $4 THEN $6 ELSE deploy_key_private END, \
                     webhook_secret = CASE WHEN $7 THEN $8 ELSE webhook_secret END, updated_at = $9 WHERE id = $1",
                )
                .bind(id).bind(&c.url).bind(&c.branch)
                .bind(c.deploy_key.is_some()).bind(c.deploy_key.as_ref().map(|k| k.0.clone())).bind(c.deploy_key.as_ref().map(|k| k.1.clone()))
                .bind(c.webhook_secret.is_some()).bind(c.webhook_secret.clone().flatten()).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_git_repository(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM git_repositories WHERE id = $1")
                    .bind(id).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn sites_of_repository(&self, repository_id: &str) -> StoreResult<Vec<Site>> {
                sqlx::query_as(concat!("SELECT ", site_columns!(), " FROM sites WHERE git_repository_id = $1 ORDER BY id"))
                    .bind(repository_id).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn insert_webhook_delivery(&self, v: &WebhookDelivery) -> StoreResult<()> {
                sqlx::query(concat!("INSERT INTO webhook_deliveries (", delivery_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
                    .bind(&v.id).bind(&v.repository_id).bind(&v.site_id).bind(v.received_at).bind(&v.event).bind(&v.branch)
                    .bind(&v.commit_sha).bind(&v.outcome).bind(&v.reason).bind(&v.deployment_id).bind(&v.delivery_id)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn claim_webhook_delivery(&self, repository_id: &str, delivery_id: &str, at: Timestamp) -> StoreResult<bool> {
                // The primary key is the arbiter: a replay (even a concurrent one) inserts nothing.
                let done = sqlx::query(
                    "INSERT INTO webhook_delivery_ids (repository_id, delivery_id, received_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (repository_id, delivery_id) DO NOTHING",
                )
                .bind(repository_id).bind(delivery_id).bind(at)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_webhook_delivery(&self, repository_id: &str, delivery_id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM webhook_delivery_ids WHERE repository_id = $1 AND delivery_id = $2")
                    .bind(repository_id).bind(delivery_id)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn webhook_deliveries_of_site(&self, site_id: &str, page: PageRequest) -> StoreResult<(Vec<WebhookDelivery>, u64)> {
                let rows: Vec<WebhookDelivery> = sqlx::query_as(concat!(
                    "SELECT ", delivery_columns!(), " FROM webhook_deliveries WHERE site_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(site_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE site_id = $1")
                    .bind(site_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn prune(&self, rule: &PruneRule, limit: i64) -> StoreResult<u64> {
                // Each statement deletes the rows a bounded subquery picks, so one batch is one
                // short write whatever the table's size. Row-value `IN` works on both backends.
                let run = |sql: &'static str, cutoff: Timestamp| {
                    sqlx::query(sql).bind(cutoff).bind(limit).execute(&self.pool)
                };
                let rows = |r: Result<<$db as Database>::QueryResult, sqlx::Error>| {
                    r.map(|d| d.rows_affected()).map_err(StoreError::from_sqlx)
                };
                match rule {
                    PruneRule::AuditEvents { before } => rows(run(
                        "DELETE FROM audit_events WHERE id IN \
                         (SELECT id FROM audit_events WHERE occurred_at < $1 LIMIT $2)", *before).await),
                    PruneRule::Tokens { before } => {
                        let refresh = rows(run(
                            "DELETE FROM refresh_tokens WHERE id IN \
                             (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)", *before).await)?;
                        let families = rows(run(
                            "DELETE FROM token_families WHERE id IN (SELECT f.id FROM token_families f \
                             WHERE f.revoked_at < $1 OR (f.created_at < $1 AND NOT EXISTS \
                             (SELECT 1 FROM refresh_tokens r WHERE r.family_id = f.id)) LIMIT $2)", *before).await)?;
                        // Their families and refresh tokens go with them (ON DELETE CASCADE).
                        let tokens = rows(run(
                            "DELETE FROM access_tokens WHERE id IN (SELECT id FROM access_tokens \
                             WHERE revoked_at < $1 UNION SELECT id FROM access_tokens WHERE expires_at < $1 LIMIT $2)",
                            *before).await)?;
                        Ok(refresh + families + tokens)
                    }
                    PruneRule::JobLogs { before, keep_deployments } => {
                        let done = sqlx::query(concat!(
                            "DELETE FROM job_logs WHERE (job_id, seq) IN (SELECT l.job_id, l.seq FROM jobs j \
                             JOIN job_logs l ON l.job_id = j.id \
                             WHERE j.status IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < $1 \
                             AND NOT ", kept_deployment_job!("j"), " LIMIT $3)"
                        ))
                        .bind(*before).bind(*keep_deployments).bind(limit)
                        .execute(&self.pool).await;
                        rows(done)
                    }
                    PruneRule::Jobs { before, logs_before, keep_deployments } => {
                        // Finished jobs whose log is no longer kept; their log lines are already
                        // gone (JobLogs runs first), so the cascade deletes little.
                        let done = sqlx::query(concat!(
                            "DELETE FROM jobs WHERE id IN (SELECT j.id FROM jobs j \
                             WHERE j.status IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < $1 \
                             AND j.finished_at < $4 AND NOT ", kept_deployment_job!("j"), " LIMIT $3)"
                        ))
                        .bind(*before).bind(*keep_deployments).bind(limit).bind(*logs_before)
                        .execute(&self.pool).await;
                        rows(done)
                    }
                    PruneRule::WebhookDeliveries { before } => {
                        let deliveries = rows(run(
                            "DELETE FROM webhook_deliveries WHERE id IN \
                             (SELECT id FROM webhook_deliveries WHERE received_at < $1 LIMIT $2)", *before).await)?;
                        let ids = rows(run(
                            "DELETE FROM webhook_delivery_ids WHERE (repository_id, delivery_id) IN \
                             (SELECT repository_id, delivery_id FROM webhook_delivery_ids WHERE received_at < $1 LIMIT $2)",
                            *before).await)?;
                        Ok(deliveries + ids)
                    }
                    PruneRule::IdempotencyKeys { before } => rows(run(
                        "DELETE FROM idempotency_keys WHERE (principal, key) IN \
                         (SELECT principal, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)", *before).await),
                    PruneRule::RateLimits { now_unix } => rows(
                        sqlx::query(
                            "DELETE FROM rate_limits WHERE (key, window_start) IN \
                             (SELECT key, window_start FROM rate_limits WHERE expires_at < $1 LIMIT $2)",
                        )
                        .bind(*now_unix).bind(limit).execute(&self.pool).await,
                    ),
                }
            }

            async fn table_counts(&self) -> StoreResult<Vec<(&'static str, i64)>> {
                let mut counts = Vec::with_capacity(COUNTED_TABLES.len());
                for table in COUNTED_TABLES {
                    // The names are our own constants, so splicing them is safe.
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                        .fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                    counts.push((table, n));
                }
                Ok(counts)
            }

            async fn database_size(&self) -> StoreResult<i64> {
                let sql = match $backend {
                    Backend::Sqlite => "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s",
                    Backend::Postgres => "SELECT pg_database_size(current_database())",
                };
                sqlx::query_scalar(sql).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn reclaim_free_pages(&self) -> StoreResult<i64> {
                if $backend != Backend::Sqlite {
                    return Ok(0);
                }
                let (mode, pages, free): (i64, i64, i64) = sqlx::query_as(
                    "SELECT a.auto_vacuum, p.page_count, f.freelist_count \
                     FROM pragma_auto_vacuum() a, pragma_page_count() p, pragma_freelist_count() f",
                )
                .fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                // 2 = incremental. Below a quarter, later writes reuse the free pages anyway.
                if mode != 2 || free * 4 < pages {
                    return Ok(0);
                }
                sqlx::query("PRAGMA incremental_vacuum").execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(free)
            }

            async fn compact(&self) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await.map_err(StoreError::from_sqlx)?;
                if $backend == Backend::Sqlite {
                    // Takes effect with the VACUUM that follows, on databases made before it.
                    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut *conn).await.map_err(StoreError::from_sqlx)?;
                }
                sqlx::query("VACUUM").execute(&mut *conn).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn audit_events_since(&self, since: Timestamp, after: Option<&str>, limit: i64) -> StoreResult<Vec<AuditEvent>> {
                sqlx::query_as(concat!(
                    "SELECT ", audit_columns!(), " FROM audit_events WHERE occurred_at >= $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(since).bind(after.unwrap_or("")).bind(limit)
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

// SQLite runs one writer at a time, so its single-statement claim is atomic as it is; on
// PostgreSQL, SKIP LOCKED lets concurrent workers pass over a row another worker is claiming.
impl_store!(Sqlite, Backend::Sqlite, SQLITE_MIGRATIONS, "");
impl_store!(Postgres, Backend::Postgres, POSTGRES_MIGRATIONS, " FOR UPDATE SKIP LOCKED");

macro_rules! impl_membership_guard {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// Changes (`Some(role)`) or removes (`None`) a membership unless that would leave the
            /// organisation without an owner. The organisation row is written first so that
            /// concurrent changes to the same organisation run one after the other (a row lock on
            /// PostgreSQL, the write lock on SQLite) and cannot both remove "the other" owner.
            async fn guarded_membership_change(
                &self,
                organization_id: &str,
                user_id: &str,
                role: Option<&str>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
                    .bind(organization_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                let current: Option<String> =
                    sqlx::query_scalar("SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2")
                        .bind(organization_id)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                let Some(current) = current else { return Ok(false) };
                if current == "owner" && role != Some("owner") {
                    let owners: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM memberships WHERE organization_id = $1 AND role = 'owner'",
                    )
                    .bind(organization_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                    if owners <= 1 {
                        return Err(StoreError::LastOwner);
                    }
                }
                let change = match role {
                    Some(role) => {
                        sqlx::query("UPDATE memberships SET role = $3 WHERE organization_id = $1 AND user_id = $2")
                            .bind(organization_id)
                            .bind(user_id)
                            .bind(role)
                    }
                    None => sqlx::query("DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2")
                        .bind(organization_id)
                        .bind(user_id),
                };
                change.execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(true)
            }
        }
    };
}

impl_membership_guard!(Sqlite);
impl_membership_guard!(Postgres);

fn insert_token_query<'q, DB>(t: &'q AccessToken) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Timestamp: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Timestamp>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(concat!(
        "INSERT INTO access_tokens (",
        token_columns!(),
        ") \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&t.id)
    .bind(&t.kind)
    .bind(&t.user_id)
    .bind(&t.organization_id)
    .bind(&t.name)
    .bind(&t.token_hash)
    .bind(&t.abilities)
    .bind(&t.server_ids)
    .bind(&t.site_ids)
    .bind(&t.allowed_ips)
    .bind(t.expires_at)
    .bind(t.created_at)
    .bind(&t.created_via)
    .bind(&t.created_by)
    .bind(t.last_used_at)
    .bind(&t.last_used_ip)
    .bind(t.revoked_at)
}

fn insert_refresh_query<'q, DB>(r: &'q RefreshToken) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database,
    &'q String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Timestamp: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Timestamp>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, token_hash, expires_at, used_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&r.id).bind(&r.family_id).bind(&r.token_hash).bind(r.expires_at).bind(r.used_at).bind(r.created_at)
}

/// Appends the visibility rule and the optional filters of an audit query.
fn push_audit_filter<DB>(q: &mut QueryBuilder<DB>, f: &AuditFilter)
where
    DB: Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Timestamp: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    // Visibility: the caller's own events, or events in organisations they administer.
    q.push("(");
    let mut any = false;
    if let Some(user) = &f.own_user_id {
        q.push("actor_user_id = ").push_bind(user.clone());
        any = true;
    }
    if !f.organization_ids.is_empty() {
        if any {
            q.push(" OR ");
        }
        q.push("organization_id IN (");
        push_id_list!(q, &f.organization_ids);
        any = true;
    }
    if !any {
        q.push("1 = 0");
    }
    q.push(")");
    for (column, value) in
        [("actor_user_id", &f.actor), ("token_id", &f.token), ("outcome", &f.outcome), ("resource_id", &f.resource)]
    {
        if let Some(v) = value {
            q.push(" AND ").push(column).push(" = ").push_bind(v.clone());
        }
    }
    // An action matches itself and its sub-events: `login` finds `login.failed` too. (Compared
    // with substr rather than LIKE, whose `_` would match any character.)
    if let Some(action) = &f.action {
        let prefix = format!("{action}.");
        q.push(" AND (action = ").push_bind(action.clone());
        q.push(format!(" OR substr(action, 1, {}) = ", prefix.chars().count())).push_bind(prefix).push(")");
    }
    if let Some(from) = f.from {
        q.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND occurred_at <= ").push_bind(to);
    }
    if let Some(before) = &f.before {
        q.push(" AND id < ").push_bind(before.clone());
    }
}

/// Number of migrations recorded as applied (0 before the first run).
async fn applied_count<DB>(pool: &Pool<DB>) -> Result<usize, StoreError>
where
    DB: Database,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    // The table does not exist before the first migration; that counts as zero.
    match sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = true")
        .fetch_one(pool)
        .await
    {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(sqlx::Error::Database(_)) => Ok(0),
        Err(e) => Err(StoreError::from_sqlx(e)),
    }
}
