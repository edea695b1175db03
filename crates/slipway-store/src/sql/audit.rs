//! The audit log ([`AuditStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::Timestamp;
use sqlx::{Database, Postgres, QueryBuilder, Sqlite};

use super::{IdOrder, PageCount, SqlStore, columns, exact_fields, insert_into, push_id_list, push_seek};
use crate::model::{AuditEvent, AuditFilter};
use crate::{AuditStore, StoreError, StoreResult};

/// The columns of `audit_events`: the fields of [`AuditEvent`] (see `sql/mod.rs`).
macro_rules! audit_event_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, occurred_at, actor_user_id, token_id, organization_id, action, method, route, resource_id, status,
            outcome, client_ip, user_agent, request_id, detail
        }
    };
}
audit_event_fields!(exact_fields!(AuditEvent));

macro_rules! impl_audit_store {
    ($db:ty, $hints:expr) => {
        #[async_trait]
        impl AuditStore for SqlStore<$db> {
            async fn insert_audit_event(&self, e: &AuditEvent) -> StoreResult<()> {
                audit_event_fields!(insert_into!($db, "audit_events", e))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn audit_events(
                &self,
                filter: &AuditFilter,
                page: PageRequest,
            ) -> StoreResult<(Vec<AuditEvent>, u64)> {
                let branches = Visible::branches(filter);
                // The branches' events merged newest first (each branch a range of its index in
                // id order; cut at the page's end first where the database needs it, see
                // `IndexHints`). Past the first page the branches give ids alone (their index
                // holds them) and only the page's own rows are read (see `push_page_rows`).
                let by_id = page.skip() > 0;
                let limit_each = $hints.limit_each_branch;
                let mut select = QueryBuilder::<$db>::new(if by_id {
                    concat!("SELECT ", audit_event_fields!(columns!()), " FROM audit_events WHERE id IN (")
                } else {
                    ""
                });
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        select.push(" UNION ALL ");
                    }
                    select.push(if limit_each { "SELECT * FROM (SELECT " } else { "SELECT " });
                    select.push(if by_id { "id" } else { audit_event_fields!(columns!()) });
                    select.push(" FROM audit_events");
                    branch.push_where(&mut select, $hints, filter, page);
                    if limit_each {
                        select.push(" ORDER BY id DESC LIMIT ").push_bind(page.skip() + page.limit());
                        select.push(if i == 0 { ") AS first" } else { ") AS second" });
                    }
                }
                select.push(" ORDER BY id DESC LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.skip());
                if by_id {
                    select.push(") ORDER BY id DESC");
                }
                let rows: Vec<AuditEvent> =
                    select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                // Each branch counted up to the horizon: their sum reaches it exactly when the
                // whole does, and is exact below it (the branches never share an event).
                let first = rows.first().map(|e| e.id.as_str());
                let from = PageCount::new(page.skip(), page.count_limit(), first);
                let mut count = QueryBuilder::<$db>::new("SELECT ");
                for (i, branch) in branches.iter().enumerate() {
                    count.push(if i == 0 { "(" } else { " + (" });
                    let source = |q: &mut QueryBuilder<$db>| {
                        q.push("audit_events");
                        branch.push_where(q, $hints, filter, page);
                    };
                    from.push_query(&mut count, source, IdOrder::Descending);
                    count.push(")");
                }
                let counted: i64 =
                    count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let total = from.total(counted);
                Ok((rows, total))
            }

            async fn audit_events_since(
                &self,
                since: Timestamp,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<AuditEvent>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    audit_event_fields!(columns!()),
                    " FROM audit_events WHERE occurred_at >= $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(since)
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }
        }
    };
}

/// SQLite is told which index each branch reads. Its statistics count every event without an
/// actor (jobs, webhooks) as one value of `actor_user_id`, so left to itself it judges that
/// index useless and scans the whole table for one user's events. It merges the branches in id
/// order as they are; given a `LIMIT` each, it sorted each branch in full first.
const SQLITE_HINTS: IndexHints = IndexHints {
    organizations: " INDEXED BY audit_events_org",
    own: " INDEXED BY audit_events_actor",
    limit_each_branch: false,
};
/// PostgreSQL's statistics know the share of NULLs; its planner chooses the indexes well alone.
/// Without a `LIMIT` on each branch it sorted every event of both to find the newest few (1.3 s
/// for the first page among a million events, against 13 ms with one).
const NO_HINTS: IndexHints = IndexHints { organizations: "", own: "", limit_each_branch: true };

impl_audit_store!(Sqlite, SQLITE_HINTS);
impl_audit_store!(Postgres, NO_HINTS);

/// How each branch is written for one database: what follows `FROM audit_events`, and whether
/// each branch is cut at the page's end before the merge.
#[derive(Clone, Copy)]
struct IndexHints {
    organizations: &'static str,
    own: &'static str,
    limit_each_branch: bool,
}

/// The two ways an event is visible to a caller, which never overlap: it happened in an
/// organisation they administer, or they did it elsewhere. Queried apart, each is a range of
/// its own index. Queried as one `OR`, the planner walks the table (or the whole id index),
/// and a small organisation's page among a million other events took 0.7 s on SQLite.
enum Visible<'a> {
    Own { user: &'a str, outside: &'a [String] },
    Organizations(&'a [String]),
    Nothing,
}

impl<'a> Visible<'a> {
    fn branches(f: &'a AuditFilter) -> Vec<Visible<'a>> {
        let mut branches = Vec::with_capacity(2);
        if let Some(user) = &f.own_user_id {
            branches.push(Visible::Own { user, outside: &f.organization_ids });
        }
        if !f.organization_ids.is_empty() {
            branches.push(Visible::Organizations(&f.organization_ids));
        }
        if branches.is_empty() {
            branches.push(Visible::Nothing);
        }
        branches
    }

    /// ` [hint] WHERE <this branch> AND <the filters> AND <the seek>`.
    fn push_where<DB>(&self, q: &mut QueryBuilder<DB>, hints: IndexHints, f: &AuditFilter, page: PageRequest)
    where
        DB: Database,
        for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> Timestamp: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        match self {
            Visible::Own { user, outside } => {
                q.push(hints.own).push(" WHERE actor_user_id = ").push_bind(user.to_string());
                if !outside.is_empty() {
                    q.push(" AND (organization_id IS NULL OR organization_id NOT IN (");
                    push_id_list!(q, *outside);
                    q.push(")");
                }
            }
            Visible::Organizations(ids) => {
                q.push(hints.organizations).push(" WHERE organization_id IN (");
                push_id_list!(q, *ids);
            }
            Visible::Nothing => {
                q.push(" WHERE 1 = 0");
            }
        }
        push_audit_filter(q, f);
        push_seek(q, Some(page), IdOrder::Descending);
    }
}

/// Appends the optional filters of an audit query (after the visibility rule: `AND …`).
fn push_audit_filter<DB>(q: &mut QueryBuilder<DB>, f: &AuditFilter)
where
    DB: Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Timestamp: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
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
