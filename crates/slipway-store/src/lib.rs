//! Slipway's persistent state behind one [`Store`] trait, with a SQLite and a PostgreSQL
//! implementation.
//!
//! `Store` is made of parts, one per concern: [`SettingsStore`], [`IdentityStore`],
//! [`TokenStore`], [`LimitStore`], [`AuditStore`], [`JobStore`], [`ServerStore`], [`SiteStore`],
//! [`GitStore`], [`BackupStore`], [`NotificationStore`] and [`RetentionStore`]. Callers hold an `Arc<dyn Store>` and call the parts'
//! methods on it directly; [`prelude`] imports every part for code that needs them in scope.
//!
//! Both backends share every query: each part is implemented once, in a file of its own under
//! `src/sql/` (`ServerStore` in `sql/servers.rs`), by a macro that the file instantiates for
//! `SqlStore<Sqlite>` and `SqlStore<Postgres>`; SQL text uses the `$1` placeholders that both
//! drivers accept. Only the migrations (column types) are per backend. A conformance suite
//! (`tests/conformance.rs`) runs every case against both.
//!
//! A table whose rows are read or written whole declares its columns once, in its part's file:
//! a `thing_fields!` macro lists the row type's fields, which are named as the columns, and the
//! SELECT list (`columns!`), the INSERT and its binds (`insert_into!`) and a compile-time check
//! that the list matches the struct (`exact_fields!`) all come from it (see `sql/mod.rs`).
//!
//! To add a method: declare it, with its doc comment, in the part trait it belongs to below;
//! implement it in that part's `impl_…_store!` macro in `src/sql/`; add a case to the
//! conformance suite.
//!
//! To add a table: a migration for each backend (same number in `migrations/sqlite` and
//! `migrations/postgres`; a number only one backend needed, such as PostgreSQL's 0021, stays
//! unused in the other); its row type in `model.rs` (`sqlx::FromRow`, fields named as the
//! columns); its `thing_fields!` declaration with `thing_fields!(exact_fields!(Thing));` in the
//! file of its concern; its methods as above. A new concern is a new part: a trait here, added
//! to `Store`'s supertraits and to [`prelude`], and a new file in `src/sql/` declared in
//! `sql/mod.rs`. A table that grows with use also belongs in [`COUNTED_TABLES`], and probably
//! in a [`PruneRule`].
//!
//! A list method takes a [`PageRequest`] and returns its page with the matching rows counted
//! up to `page.count_limit()` (`SELECT COUNT(*) FROM (SELECT 1 … LIMIT n)`), not all of them, for
//! any table that grows with use: the API turns a count that reached the limit into an unknown
//! total, so a long list's first page stays as cheap as a short one's.

mod cache;
mod connect;
mod error;
pub mod model;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::Timestamp;
use slipway_core::{InstallStatus, RunStatus, ServerStatus};

pub use connect::{ConnectOptions, connect, redact_url};
pub use error::StoreError;
pub use model::*;

/// The store trait and its parts, for code that calls store methods on a concrete store or
/// names one of the parts: `use slipway_store::prelude::*;`. (On `dyn Store` and `S: Store` the
/// parts' methods can be called without importing them.)
pub mod prelude {
    pub use crate::{
        AuditStore, BackupStore, GitStore, IdentityStore, JobStore, LimitStore, NotificationStore, RetentionStore,
        ServerStore, SettingsStore, SiteStore, Store, TokenStore,
    };
}

/// Shorthand for the store's results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything Slipway keeps. Implementations must behave identically; the conformance suite
/// is the definition of "identically".
///
/// The methods are grouped by concern into the traits this one requires (`SettingsStore`,
/// `IdentityStore`, …), so that each concern is implemented in a file of its own. Their methods
/// can be called on `dyn Store` (and on `S: Store`) without importing them; code that calls
/// them on a concrete store imports [`prelude`].
#[async_trait]
pub trait Store:
    SettingsStore
    + IdentityStore
    + TokenStore
    + LimitStore
    + AuditStore
    + JobStore
    + ServerStore
    + SiteStore
    + GitStore
    + BackupStore
    + NotificationStore
    + RetentionStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    fn backend(&self) -> Backend;

    /// Applies pending embedded migrations; returns how many were applied.
    async fn migrate(&self) -> Result<usize, StoreError>;

    /// A round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the pool; later calls fail with [`StoreError::Closed`] or a pool error.
    async fn close(&self);
}

/// Instance-wide settings: a small key-value table.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Stores `value` unless the key already has one, and returns the value now stored. When
    /// several replicas race, all of them get the first writer's value.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Replaces a setting only if it still holds `expected`; true when this call replaced it.
    async fn swap_setting(&self, key: &str, expected: &str, new: &str) -> Result<bool, StoreError>;
}

/// Users, organisations and their memberships.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn count_users(&self) -> StoreResult<i64>;
    /// Fails with [`StoreError::Conflict`] when the email is taken.
    async fn create_user(&self, user: &NewUser) -> StoreResult<()>;
    /// A user, a new organisation and their membership with `role`, atomically.
    async fn create_user_with_organization(
        &self,
        user: &NewUser,
        organization_id: &str,
        organization_name: &str,
        role: &str,
    ) -> StoreResult<()>;
    /// Shared (`Arc`) for the same reason as `memberships_of`.
    async fn user(&self, id: &str) -> StoreResult<Option<Arc<User>>>;
    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>>;
    /// Sets (or clears) the sealed TOTP secret, whether it is enabled, and the recovery codes.
    async fn set_user_two_factor(
        &self,
        id: &str,
        secret: Option<&[u8]>,
        enabled: bool,
        recovery_codes: Option<&str>,
    ) -> StoreResult<()>;
    /// Records a used TOTP counter; false when it is not newer than the last one (a replay).
    async fn record_totp_counter(&self, id: &str, counter: i64) -> StoreResult<bool>;
    /// Replaces the stored recovery codes, but only if they still equal `expected` (so two
    /// concurrent logins cannot spend the same code).
    async fn swap_recovery_codes(&self, id: &str, expected: &str, new: &str) -> StoreResult<bool>;
    async fn create_organization(&self, id: &str, name: &str, owner_user_id: &str) -> StoreResult<()>;
    async fn organization(&self, id: &str) -> StoreResult<Option<Organization>>;
    /// Organisations with this exact name (names are not unique), oldest first.
    async fn organizations_named(&self, name: &str) -> StoreResult<Vec<Organization>>;
    async fn organizations_of(&self, user_id: &str, page: PageRequest)
    -> StoreResult<(Vec<OrganizationWithRole>, u64)>;
    /// Every organisation of a user with their role (at most 1000), in one query. Shared
    /// (`Arc`): on SQLite every authenticated request reads it from the read cache, and a
    /// shared copy costs no allocation.
    async fn memberships_of(&self, user_id: &str) -> StoreResult<Arc<[OrganizationWithRole]>>;
    async fn update_organization(
        &self,
        id: &str,
        name: Option<&str>,
        max_token_lifetime_seconds: Option<Option<i64>>,
    ) -> StoreResult<()>;
    async fn role_of(&self, organization_id: &str, user_id: &str) -> StoreResult<Option<String>>;
    async fn members(&self, organization_id: &str, page: PageRequest) -> StoreResult<(Vec<Member>, u64)>;
    async fn member(&self, organization_id: &str, user_id: &str) -> StoreResult<Option<Member>>;
    /// Fails with [`StoreError::Conflict`] when the user is already a member.
    async fn add_member(&self, organization_id: &str, user_id: &str, role: &str) -> StoreResult<()>;
    /// Fails with [`StoreError::LastOwner`] when it would leave the organisation without an owner.
    async fn change_member_role(&self, organization_id: &str, user_id: &str, role: &str) -> StoreResult<bool>;
    /// Fails with [`StoreError::LastOwner`] when it would leave the organisation without an owner.
    async fn remove_member(&self, organization_id: &str, user_id: &str) -> StoreResult<bool>;
}

/// Access tokens, and the token families and refresh tokens of the JWT exchange.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: &AccessToken) -> StoreResult<()>;
    async fn token(&self, id: &str) -> StoreResult<Option<AccessToken>>;
    /// Shared (`Arc`) for the same reason as `memberships_of`; the same `Arc` comes back for as
    /// long as the cached row is unchanged, so a caller may key work derived from it on the
    /// pointer.
    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<Arc<AccessToken>>>;
    /// A user's personal tokens that are not revoked, newest first.
    async fn tokens_of_user(&self, user_id: &str, page: PageRequest) -> StoreResult<(Vec<AccessToken>, u64)>;
    /// An organisation's organisation tokens that are not revoked, newest first.
    /// Unrevoked tokens bound to an organisation that expire after `from` and by `until`, by id
    /// after `after_id`, at most `limit`.
    async fn tokens_expiring(
        &self,
        from: Timestamp,
        until: Timestamp,
        after_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AccessToken>>;
    async fn tokens_of_organization(
        &self,
        organization_id: &str,
        page: PageRequest,
    ) -> StoreResult<(Vec<AccessToken>, u64)>;
    async fn update_token(&self, id: &str, changes: &TokenChanges) -> StoreResult<bool>;
    /// Revokes a token unless it already is; true when this call revoked it.
    async fn revoke_token(&self, id: &str, at: Timestamp) -> StoreResult<bool>;
    /// Replaces a user's password hash and, in the same transaction, revokes their dashboard
    /// sessions other than `keep_session`; returns the ids of the sessions revoked. `false`
    /// in the first place when there is no such user.
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<(bool, Vec<String>)>;
    /// Revokes `old_id` and inserts `new` in one transaction; false (and nothing written) when
    /// `old_id` was already revoked.
    async fn rotate_token(&self, old_id: &str, new: &AccessToken, at: Timestamp) -> StoreResult<bool>;
    async fn touch_token(&self, id: &str, at: Timestamp, ip: Option<&str>) -> StoreResult<()>;

    // JWT exchange: token families and their refresh tokens.

    async fn create_token_family(&self, family_id: &str, token_id: &str, first: &RefreshToken) -> StoreResult<()>;
    async fn refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;
    /// Marks `id` used and stores `next` in one transaction; false when `id` was already used.
    async fn use_refresh_token(&self, id: &str, at: Timestamp, next: &RefreshToken) -> StoreResult<bool>;
    async fn revoke_token_family(&self, family_id: &str, at: Timestamp) -> StoreResult<()>;
    /// The parent token id of a family that is not revoked.
    async fn active_token_family(&self, family_id: &str) -> StoreResult<Option<String>>;
    /// The parent token id of a family, revoked or not (to say whose family an event concerns).
    async fn token_family_parent(&self, family_id: &str) -> StoreResult<Option<String>>;
}

/// Rate-limit windows and idempotency keys, shared by every replica on the same database.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Counts one hit on `key` in the window starting at `window_start` (Unix seconds) and
    /// returns the count so far. Shared by every replica using the same database.
    async fn rate_limit_hit(&self, key: &str, window_start: i64, expires_at: i64) -> StoreResult<i64>;
    /// Claims `key` for a request, or says what to do instead. A stored record older than
    /// `not_before` counts as absent, and so does one still in progress whose holder has not
    /// refreshed it (`idempotency_heartbeat`) since `stale_before`: its process died.
    async fn idempotency_begin(
        &self,
        principal: &str,
        key: &str,
        request_hash: &str,
        now: Timestamp,
        not_before: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<IdempotencyBegin>;
    /// The holder of an in-progress key is still working on it.
    async fn idempotency_heartbeat(&self, principal: &str, key: &str, now: Timestamp) -> StoreResult<()>;
    async fn idempotency_finish(
        &self,
        principal: &str,
        key: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> StoreResult<()>;
    async fn idempotency_abandon(&self, principal: &str, key: &str) -> StoreResult<()>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Newest first.
    async fn audit_events(&self, filter: &AuditFilter, page: PageRequest) -> StoreResult<(Vec<AuditEvent>, u64)>;
    /// Audit events at or after `since`, oldest first, after the id `after` (a cursor), for
    /// export.
    async fn audit_events_since(
        &self,
        since: Timestamp,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>>;
}

/// Durable jobs and their logs.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Changes whenever job `job_id`'s log is appended, its worker ends it or its deployment is
    /// updated, so a reader following its log (the deployment log stream) wakes at once instead
    /// of on its next poll, and is not woken by other jobs' writes. Writes by this process show
    /// at once; on PostgreSQL other replicas' show through `NOTIFY`, which can be lost while a
    /// connection is re-made (every reader is then woken). A job ended otherwise (reaped,
    /// cancelled before it ran) wakes no one: readers still poll too.
    fn job_activity(&self, job_id: &str) -> tokio::sync::watch::Receiver<u64>;
    async fn enqueue_job(&self, job: &NewJob) -> StoreResult<()>;
    async fn job(&self, id: &str) -> StoreResult<Option<Job>>;
    /// Jobs about one resource (e.g. `server:<id>`), newest first.
    async fn jobs_for_resource(&self, resource_key: &str, page: PageRequest) -> StoreResult<(Vec<Job>, u64)>;
    /// The database's own clock. Replicas time leases by it (see `slipway-jobs`'s clock), so a
    /// replica whose clock is wrong cannot take over a job whose lease is still live.
    async fn database_time(&self) -> StoreResult<Timestamp>;
    /// Claims the next due job whose resource has no running job, with a lease until
    /// `lease_until`, in one committed statement; `None` when there is nothing to do (or another
    /// worker won the race).
    async fn claim_job(&self, worker: &str, now: Timestamp, lease_until: Timestamp) -> StoreResult<Option<Job>> {
        self.claim_job_within(worker, now, lease_until, i64::MAX).await
    }
    /// The same, skipping jobs of a server that has `per_server` jobs running already, so one
    /// busy server never takes every slot from the others. Two replicas claiming at the same
    /// moment may each start one: the cap is for fairness, `resource_key` is the lock.
    async fn claim_job_within(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
        per_server: i64,
    ) -> StoreResult<Option<Job>>;
    /// Renews the lease of a job this worker holds.
    async fn heartbeat_job(&self, id: &str, worker: &str, lease_until: Timestamp) -> StoreResult<Heartbeat>;
    /// Records how a job this worker holds ended; false when the lease was lost meanwhile.
    async fn finish_job(&self, id: &str, worker: &str, end: &JobEnd, at: Timestamp) -> StoreResult<bool>;
    async fn cancel_job(&self, id: &str, at: Timestamp) -> StoreResult<CancelOutcome>;
    /// Recovers jobs whose lease expired before `now` (their worker died): idempotent jobs with
    /// attempts left go back to the queue at `retry_at(attempts)`, the others fail as interrupted.
    async fn reap_jobs(
        &self,
        now: Timestamp,
        retry_at: &(dyn Fn(i64) -> Timestamp + Send + Sync),
    ) -> StoreResult<Reaped>;
    /// The last log line number of a job (0 when it has none).
    async fn last_job_log_seq(&self, job_id: &str) -> StoreResult<i64>;
    /// Appends lines numbered from `first_seq`, each with the time it was produced, in one
    /// statement. Only the lease holder writes a job's log and it numbers its own lines, so
    /// there is no read first.
    async fn append_job_log(&self, job_id: &str, first_seq: i64, entries: &[NewLogLine]) -> StoreResult<()>;
    /// Log lines after `after_seq`, oldest first.
    async fn job_log(&self, job_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<JobLogLine>>;
}

/// Servers, their organisations' login keys, and what Slipway keeps on a server.
#[async_trait]
pub trait ServerStore: Send + Sync {
    /// The organisation's login key pair, creating it with `new` (public, sealed private) on
    /// first use; concurrent callers all get the first one stored.
    async fn organization_key(&self, organization_id: &str, new: (&str, &[u8])) -> StoreResult<(String, Vec<u8>)>;
    async fn insert_server(&self, server: &Server) -> StoreResult<()>;
    async fn server(&self, id: &str) -> StoreResult<Option<Server>>;
    /// Servers of these organisations (optionally only these ids), oldest first.
    async fn servers_of(
        &self,
        organization_ids: &[String],
        only: Option<&[String]>,
        page: PageRequest,
    ) -> StoreResult<(Vec<Server>, u64)>;
    /// Servers of these organisations with this name (names are not unique: callers say so when
    /// there are several), oldest first, at most 10.
    async fn servers_named(&self, organization_ids: &[String], name: &str) -> StoreResult<Vec<Server>>;
    /// How many sites each of these servers has (servers without sites are left out).
    async fn site_counts(&self, server_ids: &[String]) -> StoreResult<Vec<(String, i64)>>;
    async fn update_server(&self, id: &str, changes: &ServerChanges) -> StoreResult<bool>;
    async fn set_server_status(&self, id: &str, status: ServerStatus, reason: Option<&str>) -> StoreResult<()>;
    /// Sets a server that reads `unreachable` to `status`, without a reason; one whose status
    /// moved on meanwhile (provisioning, failed) is left as it is. Whether it was changed.
    async fn set_server_reachable(&self, id: &str, status: ServerStatus) -> StoreResult<bool>;
    /// Records what the first contact learned: the host key to pin and the operating system.
    async fn record_server_contact(&self, id: &str, host_key: Option<&str>, os: Option<&str>) -> StoreResult<()>;
    /// Accepts a new host key (after a reinstall), replacing the pinned one and forgetting any
    /// offered one.
    async fn replace_host_key(&self, id: &str, host_key: Option<&str>) -> StoreResult<()>;
    /// Remembers the key a server offered instead of the pinned one, for an admin to accept.
    async fn record_offered_host_key(&self, id: &str, host_key: &str) -> StoreResult<()>;
    async fn mark_provisioned(&self, id: &str, at: Timestamp) -> StoreResult<()>;
    /// Forgets a server, its sites and items, and its backup schedules (its backups stay).
    async fn delete_server(&self, id: &str) -> StoreResult<bool>;

    // What Slipway keeps on a server.

    async fn insert_server_item(&self, item: &ServerItem) -> StoreResult<()>;
    async fn server_item(&self, id: &str) -> StoreResult<Option<ServerItem>>;
    /// Replaces an item's name and spec and marks it `installing` again (its sync applies the
    /// change); false when it is gone or being removed.
    async fn update_server_item(&self, id: &str, name: &str, spec: &str) -> StoreResult<bool>;
    /// Replaces an item's spec with what the server now has (an activation that took effect, a
    /// probe's finding), keeping its status; false when it is gone or being removed.
    async fn set_server_item_spec(&self, id: &str, spec: &str) -> StoreResult<bool>;
    /// [`Store::set_server_item_spec`] only while the spec is still `expected`: a writer that
    /// read the item a while ago (a probe) cannot undo a change made meanwhile. False when the
    /// spec changed, or the item is gone or being removed.
    async fn replace_server_item_spec(&self, id: &str, expected: &str, spec: &str) -> StoreResult<bool>;
    /// A server's items of one kind, oldest first; `None` for all of them.
    async fn server_items(
        &self,
        server_id: &str,
        kind: &str,
        page: Option<PageRequest>,
    ) -> StoreResult<(Vec<ServerItem>, u64)>;
    /// Sets the status (and reason) of these items; items not among them are left alone, and an
    /// item being removed keeps `removing` (unless that is the status set).
    /// Items of one kind on every server, by id, `limit` at a time after id `after` (periodic
    /// work such as watching certificates walks them all).
    async fn items_of_kind(&self, kind: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<ServerItem>>;
    async fn set_server_items_status(
        &self,
        ids: &[String],
        status: InstallStatus,
        reason: Option<&str>,
    ) -> StoreResult<()>;
    /// Deletes these items if they are still being removed (status `removing`).
    async fn delete_removed_server_items(&self, ids: &[String]) -> StoreResult<()>;
}

/// Sites, their deployments and their environment variables.
#[async_trait]
pub trait SiteStore: Send + Sync {
    /// Stores a site, choosing its `app_port` (the next free pair on the server; the given value
    /// is ignored); returns the site as stored. A domain already on the server is a `Conflict`.
    async fn insert_site(&self, site: &Site) -> StoreResult<Site>;
    async fn site(&self, id: &str) -> StoreResult<Option<Site>>;
    /// The site at `domain` on a server (a domain is unique per server).
    async fn site_by_domain(&self, server_id: &str, domain: &str) -> StoreResult<Option<Site>>;
    /// A server's sites (optionally only these ids), oldest first; all of them without a page.
    async fn sites_of_server(
        &self,
        server_id: &str,
        only: Option<&[String]>,
        page: Option<PageRequest>,
    ) -> StoreResult<(Vec<Site>, u64)>;
    /// Sites across servers as `filter` says, oldest first, with their total count.
    async fn sites_where(&self, filter: SiteFilter<'_>, page: PageRequest) -> StoreResult<(Vec<Site>, u64)>;
    async fn update_site(&self, id: &str, changes: &SiteChanges) -> StoreResult<bool>;
    async fn set_site_status(&self, id: &str, status: InstallStatus, reason: Option<&str>) -> StoreResult<()>;
    /// Records a deployment's progress on its site: the status always; what is live now (the
    /// release's deployment id and the app's port) and the time only when given.
    async fn record_site_deployment(
        &self,
        id: &str,
        deployment_status: RunStatus,
        live: Option<(&str, Option<i64>)>,
        deployed_at: Option<Timestamp>,
    ) -> StoreResult<()>;
    async fn delete_site(&self, id: &str) -> StoreResult<bool>;

    async fn insert_deployment(&self, deployment: &Deployment) -> StoreResult<()>;
    async fn deployment(&self, id: &str) -> StoreResult<Option<Deployment>>;
    async fn deployment_by_job(&self, job_id: &str) -> StoreResult<Option<Deployment>>;
    /// A site's deployments, newest first.
    async fn deployments_of_site(&self, site_id: &str, page: PageRequest) -> StoreResult<(Vec<Deployment>, u64)>;
    /// How many of a site's deployments are queued (scheduled ones too) or running.
    async fn unfinished_deployments_of_site(&self, site_id: &str) -> StoreResult<u64>;
    async fn update_deployment(&self, id: &str, update: &DeploymentUpdate) -> StoreResult<()>;
    /// Deployments whose release is on the server, newest first.
    async fn releases_of_site(&self, site_id: &str) -> StoreResult<Vec<Deployment>>;

    /// Sets a variable (sealed value), creating or replacing it.
    async fn put_site_env(&self, site_id: &str, key: &str, sealed: &[u8]) -> StoreResult<()>;
    async fn delete_site_env(&self, site_id: &str, key: &str) -> StoreResult<bool>;
    /// All of a site's variables, by key.
    async fn site_env(&self, site_id: &str) -> StoreResult<Vec<SiteEnvVar>>;
}

/// Git providers, repositories and webhook deliveries.
#[async_trait]
pub trait GitStore: Send + Sync {
    async fn insert_git_provider(&self, provider: &GitProvider) -> StoreResult<()>;
    async fn git_provider(&self, id: &str) -> StoreResult<Option<GitProvider>>;
    /// The providers of these organisations, oldest first.
    async fn git_providers_of(
        &self,
        organization_ids: &[String],
        page: PageRequest,
    ) -> StoreResult<(Vec<GitProvider>, u64)>;
    async fn delete_git_provider(&self, id: &str) -> StoreResult<bool>;

    async fn insert_git_repository(&self, repository: &GitRepository) -> StoreResult<()>;
    async fn git_repository(&self, id: &str) -> StoreResult<Option<GitRepository>>;
    async fn git_repository_by_webhook(&self, webhook_uuid: &str) -> StoreResult<Option<GitRepository>>;
    async fn git_repositories_of(
        &self,
        organization_ids: &[String],
        page: PageRequest,
    ) -> StoreResult<(Vec<GitRepository>, u64)>;
    async fn update_git_repository(&self, id: &str, changes: &GitRepositoryChanges) -> StoreResult<bool>;
    async fn delete_git_repository(&self, id: &str) -> StoreResult<bool>;
    /// Sites that deploy this repository.
    async fn sites_of_repository(&self, repository_id: &str) -> StoreResult<Vec<Site>>;

    async fn insert_webhook_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()>;
    /// Notes that the repository received the delivery with this id: `true` the first time,
    /// `false` when it already had (a replay). Atomic: of concurrent claims exactly one wins.
    async fn claim_webhook_delivery(&self, repository_id: &str, delivery_id: &str, at: Timestamp) -> StoreResult<bool>;
    /// Forgets a claim, so that a delivery that failed before it did anything can be sent again.
    async fn release_webhook_delivery(&self, repository_id: &str, delivery_id: &str) -> StoreResult<bool>;
    /// A site's webhook deliveries, newest first.
    async fn webhook_deliveries_of_site(
        &self,
        site_id: &str,
        page: PageRequest,
    ) -> StoreResult<(Vec<WebhookDelivery>, u64)>;
}

/// Where backups go (storages), for whole organisations.
#[async_trait]
pub trait BackupStore: Send + Sync {
    async fn insert_backup_storage(&self, storage: &BackupStorage) -> StoreResult<()>;
    async fn backup_storage(&self, id: &str) -> StoreResult<Option<BackupStorage>>;
    /// The storages of these organisations, oldest first.
    async fn backup_storages_of(
        &self,
        organization_ids: &[String],
        page: PageRequest,
    ) -> StoreResult<(Vec<BackupStorage>, u64)>;
    /// Replaces a storage's name, config and sealed secret; `false` when it is gone.
    async fn update_backup_storage(&self, storage: &BackupStorage) -> StoreResult<bool>;
    async fn delete_backup_storage(&self, id: &str) -> StoreResult<bool>;

    async fn insert_backup(&self, backup: &Backup) -> StoreResult<()>;
    async fn backup(&self, id: &str) -> StoreResult<Option<Backup>>;
    /// The backups of these organisations that `filter` keeps, newest first.
    async fn backups_of(
        &self,
        organization_ids: &[String],
        filter: &BackupFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<Backup>, u64)>;
    /// Replaces a backup's outcome fields (status, size, checksum, manifest, error, times).
    async fn update_backup(&self, backup: &Backup) -> StoreResult<bool>;
    /// Forgets a backup (its object was deleted by retention); `false` when it is gone.
    async fn delete_backup(&self, id: &str) -> StoreResult<bool>;

    async fn insert_backup_schedule(&self, schedule: &BackupSchedule) -> StoreResult<()>;
    async fn backup_schedule(&self, id: &str) -> StoreResult<Option<BackupSchedule>>;
    /// The schedules of one database or site, oldest first.
    async fn backup_schedules_of(&self, target: BackupTarget<'_>) -> StoreResult<Vec<BackupSchedule>>;
    /// Up to `limit` schedules after `after` (by id), for a walk over all of them.
    async fn backup_schedules_after(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<BackupSchedule>>;
    /// Replaces a schedule's settings and next run; `false` when it is gone.
    async fn update_backup_schedule(&self, schedule: &BackupSchedule) -> StoreResult<bool>;
    async fn delete_backup_schedule(&self, id: &str) -> StoreResult<bool>;
    /// Moves a schedule's next run from `from` to `to`, only if it is still `from` (an edit made
    /// meanwhile wins); `false` when it was not.
    async fn move_backup_schedule_run(&self, id: &str, from: Timestamp, to: Timestamp) -> StoreResult<bool>;
}

/// Events, the channels they are sent to, and each delivery.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Stores an event once: `false` when one with its id is already kept.
    async fn insert_event(&self, event: &Event) -> StoreResult<bool>;
    async fn event(&self, id: &str) -> StoreResult<Option<Event>>;
    /// The events of these organisations that `filter` keeps, newest first.
    async fn events_of(
        &self,
        organization_ids: &[String],
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<Event>, u64)>;

    async fn insert_notification_channel(&self, channel: &NotificationChannel) -> StoreResult<()>;
    async fn notification_channel(&self, id: &str) -> StoreResult<Option<NotificationChannel>>;
    /// The channels of these organisations, oldest first.
    async fn notification_channels_of(
        &self,
        organization_ids: &[String],
        page: PageRequest,
    ) -> StoreResult<(Vec<NotificationChannel>, u64)>;
    /// Replaces a channel's name, config and sealed secret; `false` when it is gone.
    async fn update_notification_channel(&self, channel: &NotificationChannel) -> StoreResult<bool>;
    /// Deletes a channel and its deliveries.
    async fn delete_notification_channel(&self, id: &str) -> StoreResult<bool>;

    /// Stores a delivery unless the channel already has one for its event (`false` then).
    async fn insert_notification_delivery(&self, delivery: &NotificationDelivery) -> StoreResult<bool>;
    async fn notification_delivery(&self, id: &str) -> StoreResult<Option<NotificationDelivery>>;
    /// The deliveries of one event, oldest first.
    async fn notification_deliveries_of_event(&self, event_id: &str) -> StoreResult<Vec<NotificationDelivery>>;
    /// A channel's deliveries, newest first.
    async fn notification_deliveries_of(
        &self,
        channel_id: &str,
        page: PageRequest,
    ) -> StoreResult<(Vec<NotificationDelivery>, u64)>;
    /// The channel's newest delivery with this group key.
    async fn latest_notification_delivery(
        &self,
        channel_id: &str,
        group_key: &str,
    ) -> StoreResult<Option<NotificationDelivery>>;
    /// Counts one more identical event folded into a delivery.
    async fn add_notification_repeat(&self, id: &str) -> StoreResult<()>;
    /// Makes a finished delivery pending again (to be sent once more), with a new deadline;
    /// `false` when it is still pending or gone.
    async fn reopen_notification_delivery(&self, id: &str, deadline_at: Timestamp) -> StoreResult<bool>;
    /// Records an attempt's outcome (status, attempts, response, error, next attempt, deadline)
    /// unless a later attempt was already recorded: `false` then, or when the delivery is gone.
    async fn record_notification_attempt(&self, delivery: &NotificationDelivery) -> StoreResult<bool>;
}

/// Deleting old rows, and the database's size and upkeep.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes at most `limit` rows that `rule` makes old enough (a few statements of at most
    /// `limit` rows each for rules that cover several tables); returns how many went. Call it
    /// until it returns 0.
    async fn prune(&self, rule: &PruneRule, limit: i64) -> StoreResult<u64>;
    /// Rows in each of [`COUNTED_TABLES`].
    async fn table_counts(&self) -> StoreResult<Vec<(&'static str, i64)>>;
    /// Bytes the database takes (SQLite: the main file, without its WAL; PostgreSQL: the
    /// database's size on the server).
    async fn database_size(&self) -> StoreResult<i64>;
    /// SQLite in incremental auto-vacuum mode: gives free pages back to the file system when
    /// they are more than a quarter of the file (otherwise they are reused by later writes);
    /// returns the pages freed. Nothing to do on PostgreSQL, whose autovacuum does this.
    async fn reclaim_free_pages(&self) -> StoreResult<i64>;
    /// Rewrites the database compactly (`VACUUM`; on SQLite it also turns on incremental
    /// auto-vacuum for databases made before it was the default). Blocks writers while it runs.
    async fn compact(&self) -> StoreResult<()>;
}
