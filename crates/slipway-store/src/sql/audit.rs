//! The audit log ([`AuditStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::Timestamp;
use sqlx::{Database, Postgres, QueryBuilder, Sqlite};

use super::{IdOrder, SqlStore, as_u64, columns, exact_fields, insert_into, push_id_list, push_seek};
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
    ($db:ty) => {
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
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM (SELECT 1 FROM audit_events WHERE ");
                push_audit_filter(&mut count, filter);
                push_seek(&mut count, Some(page), IdOrder::Descending);
                count.push(" LIMIT ").push_bind(page.count_limit()).push(") AS counted");
                let total: i64 =
                    count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    audit_event_fields!(columns!()),
                    " FROM audit_events WHERE "
                ));
                push_audit_filter(&mut select, filter);
                push_seek(&mut select, Some(page), IdOrder::Descending);
                select.push(" ORDER BY id DESC LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.skip());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
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

impl_audit_store!(Sqlite);
impl_audit_store!(Postgres);

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
