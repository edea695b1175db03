//! Events, notification channels and deliveries ([`NotificationStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::{Timestamp, now};
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{SqlStore, as_u64, columns, exact_fields, insert_into, push_id_list};
use crate::model::{Event, EventFilter, NotificationChannel, NotificationDelivery};
use crate::{NotificationStore, StoreError, StoreResult};

/// The columns of `events`: the fields of [`Event`] (see `sql/mod.rs`).
macro_rules! event_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, organization_id, event_type, resource_type, resource_id, resource_name, resource_path, server_id,
            site_id, summary, data, occurred_at
        }
    };
}
event_fields!(exact_fields!(Event));

/// The columns of `notification_channels`: the fields of [`NotificationChannel`].
macro_rules! channel_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, organization_id, name, kind, config, secret, created_at, updated_at }
    };
}
channel_fields!(exact_fields!(NotificationChannel));

/// The columns of `notification_deliveries`: the fields of [`NotificationDelivery`].
macro_rules! delivery_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, channel_id, organization_id, event_id, event_type, group_key, status, attempts, repeats, folded,
            response_code, duration_ms, error, next_attempt_at, deadline_at, created_at, updated_at
        }
    };
}
delivery_fields!(exact_fields!(NotificationDelivery));

/// Adds `filter`'s conditions to a query whose `WHERE` is open.
fn push_filter<DB>(q: &mut QueryBuilder<DB>, filter: &EventFilter)
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let filters = [
        ("event_type", &filter.event_type),
        ("resource_type", &filter.resource_type),
        ("resource_id", &filter.resource_id),
        ("server_id", &filter.server_id),
        ("site_id", &filter.site_id),
    ];
    for (column, value) in filters {
        if let Some(value) = value {
            q.push(format!(" AND {column} = ")).push_bind(value.clone());
        }
    }
}

macro_rules! impl_notification_store {
    ($db:ty) => {
        #[async_trait]
        impl NotificationStore for SqlStore<$db> {
            async fn insert_event(&self, v: &Event) -> StoreResult<bool> {
                let mut insert = event_fields!(insert_into!($db, "events", v));
                insert.push(" ON CONFLICT (id) DO NOTHING");
                let done = insert.build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn event(&self, id: &str) -> StoreResult<Option<Event>> {
                sqlx::query_as(concat!("SELECT ", event_fields!(columns!()), " FROM events WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)
            }

            async fn events_of(
                &self,
                organization_ids: &[String],
                filter: &EventFilter,
                page: PageRequest,
            ) -> StoreResult<(Vec<Event>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                push_filter(&mut count, filter);
                count.push(" LIMIT ").push_bind(page.count_limit()).push(") AS counted");
                let total: i64 =
                    count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    event_fields!(columns!()),
                    " FROM events WHERE organization_id IN ("
                ));
                push_id_list!(select, organization_ids);
                push_filter(&mut select, filter);
                select
                    .push(" ORDER BY id DESC LIMIT ")
                    .push_bind(page.limit())
                    .push(" OFFSET ")
                    .push_bind(page.offset());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn insert_notification_channel(&self, v: &NotificationChannel) -> StoreResult<()> {
                channel_fields!(insert_into!($db, "notification_channels", v))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn notification_channel(&self, id: &str) -> StoreResult<Option<NotificationChannel>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    channel_fields!(columns!()),
                    " FROM notification_channels WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn notification_channels_of(
                &self,
                organization_ids: &[String],
                page: PageRequest,
            ) -> StoreResult<(Vec<NotificationChannel>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count =
                    QueryBuilder::<$db>::new("SELECT COUNT(*) FROM notification_channels WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                let total: i64 =
                    count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    channel_fields!(columns!()),
                    " FROM notification_channels WHERE organization_id IN ("
                ));
                push_id_list!(select, organization_ids);
                select.push(" ORDER BY id LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.offset());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn update_notification_channel(&self, v: &NotificationChannel) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE notification_channels SET name = $2, config = $3, secret = $4, updated_at = $5 \
                     WHERE id = $1",
                )
                .bind(&v.id)
                .bind(&v.name)
                .bind(&v.config)
                .bind(&v.secret)
                .bind(v.updated_at)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_notification_channel(&self, id: &str) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                sqlx::query("DELETE FROM notification_deliveries WHERE channel_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                let done = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_notification_delivery(&self, v: &NotificationDelivery) -> StoreResult<bool> {
                let mut insert = delivery_fields!(insert_into!($db, "notification_deliveries", v));
                insert.push(" ON CONFLICT (channel_id, event_id) DO NOTHING");
                let done = insert.build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn notification_delivery(&self, id: &str) -> StoreResult<Option<NotificationDelivery>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    delivery_fields!(columns!()),
                    " FROM notification_deliveries WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn notification_deliveries_of_event(&self, event_id: &str) -> StoreResult<Vec<NotificationDelivery>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    delivery_fields!(columns!()),
                    " FROM notification_deliveries WHERE event_id = $1 ORDER BY id"
                ))
                .bind(event_id)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn notification_deliveries_of(
                &self,
                channel_id: &str,
                page: PageRequest,
            ) -> StoreResult<(Vec<NotificationDelivery>, u64)> {
                let total: i64 =
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM notification_deliveries WHERE channel_id = $1 LIMIT $2) AS counted",
                    )
                        .bind(channel_id)
                        .bind(page.count_limit())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(concat!(
                    "SELECT ",
                    delivery_fields!(columns!()),
                    " FROM notification_deliveries WHERE channel_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(channel_id)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn latest_notification_delivery(
                &self,
                channel_id: &str,
                group_key: &str,
            ) -> StoreResult<Option<NotificationDelivery>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    delivery_fields!(columns!()),
                    " FROM notification_deliveries WHERE channel_id = $1 AND group_key = $2 \
                     ORDER BY created_at DESC, id DESC LIMIT 1"
                ))
                .bind(channel_id)
                .bind(group_key)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn add_notification_repeat(&self, id: &str) -> StoreResult<()> {
                sqlx::query("UPDATE notification_deliveries SET repeats = repeats + 1 WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn reopen_notification_delivery(&self, id: &str, deadline_at: Timestamp) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE notification_deliveries SET status = 'pending', error = NULL, next_attempt_at = $2, \
                     deadline_at = $3, updated_at = $2 WHERE id = $1 AND status <> 'pending'",
                )
                .bind(id)
                .bind(now())
                .bind(deadline_at)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_notification_attempt(&self, v: &NotificationDelivery) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE notification_deliveries SET status = $2, attempts = $3, response_code = $4, \
                     duration_ms = $5, error = $6, next_attempt_at = $7, deadline_at = $8, updated_at = $9 \
                     WHERE id = $1 AND attempts < $3",
                )
                .bind(&v.id)
                .bind(&v.status)
                .bind(v.attempts)
                .bind(v.response_code)
                .bind(v.duration_ms)
                .bind(&v.error)
                .bind(v.next_attempt_at)
                .bind(v.deadline_at)
                .bind(v.updated_at)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

impl_notification_store!(Sqlite);
impl_notification_store!(Postgres);
