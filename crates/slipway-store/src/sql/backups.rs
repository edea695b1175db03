//! Backup storages ([`BackupStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{SqlStore, as_u64, columns, exact_fields, insert_into, push_id_list};
use crate::model::{Backup, BackupFilter, BackupSchedule, BackupStorage, BackupTarget};
use crate::{BackupStore, StoreError, StoreResult};

/// The columns of `backup_storages`: the fields of [`BackupStorage`] (see `sql/mod.rs`).
macro_rules! backup_storage_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, organization_id, name, kind, config, secret, created_at, updated_at }
    };
}
backup_storage_fields!(exact_fields!(BackupStorage));

/// The columns of `backups`: the fields of [`Backup`].
macro_rules! backup_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, organization_id, kind, server_id, database_id, site_id, storage_id, object_key, status, size_bytes,
            sha256, manifest, error, job_id, started_at, finished_at, created_at, verified_at, verification_error,
            restored_at, schedule_id
        }
    };
}
backup_fields!(exact_fields!(Backup));

/// The columns of `backup_schedules`: the fields of [`BackupSchedule`].
macro_rules! backup_schedule_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, organization_id, server_id, database_id, site_id, storage_id, frequency, keep_last, keep_daily,
            keep_weekly, keep_monthly, verify, next_run_at, created_at, updated_at
        }
    };
}
backup_schedule_fields!(exact_fields!(BackupSchedule));

/// Adds `filter`'s conditions to a query whose `WHERE` is open.
fn push_filter<DB>(q: &mut QueryBuilder<DB>, filter: &BackupFilter)
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let status = filter.status.map(|s| s.as_str().to_string());
    let filters = [
        ("status", &status),
        ("kind", &filter.kind),
        ("database_id", &filter.database_id),
        ("schedule_id", &filter.schedule_id),
    ];
    for (column, value) in filters {
        if let Some(value) = value {
            q.push(format!(" AND {column} = ")).push_bind(value.clone());
        }
    }
}

macro_rules! impl_backup_store {
    ($db:ty) => {
        #[async_trait]
        impl BackupStore for SqlStore<$db> {
            async fn insert_backup_storage(&self, v: &BackupStorage) -> StoreResult<()> {
                backup_storage_fields!(insert_into!($db, "backup_storages", v))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn backup_storage(&self, id: &str) -> StoreResult<Option<BackupStorage>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    backup_storage_fields!(columns!()),
                    " FROM backup_storages WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn backup_storages_of(
                &self,
                organization_ids: &[String],
                page: PageRequest,
            ) -> StoreResult<(Vec<BackupStorage>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count =
                    QueryBuilder::<$db>::new("SELECT COUNT(*) FROM backup_storages WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                let total: i64 =
                    count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    backup_storage_fields!(columns!()),
                    " FROM backup_storages WHERE organization_id IN ("
                ));
                push_id_list!(select, organization_ids);
                select.push(" ORDER BY id LIMIT ").push_bind(page.limit()).push(" OFFSET ").push_bind(page.offset());
                let rows = select.build_query_as().fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn update_backup_storage(&self, v: &BackupStorage) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE backup_storages SET name = $2, config = $3, secret = $4, updated_at = $5 WHERE id = $1",
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

            async fn delete_backup_storage(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM backup_storages WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_backup(&self, v: &Backup) -> StoreResult<()> {
                backup_fields!(insert_into!($db, "backups", v))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn backup(&self, id: &str) -> StoreResult<Option<Backup>> {
                sqlx::query_as(concat!("SELECT ", backup_fields!(columns!()), " FROM backups WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)
            }

            async fn backups_of(
                &self,
                organization_ids: &[String],
                filter: &BackupFilter,
                page: PageRequest,
            ) -> StoreResult<(Vec<Backup>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM (SELECT 1 FROM backups WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                push_filter(&mut count, filter);
                count.push(" LIMIT ").push_bind(page.count_limit()).push(") AS counted");
                let total: i64 =
                    count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    backup_fields!(columns!()),
                    " FROM backups WHERE organization_id IN ("
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

            async fn update_backup(&self, v: &Backup) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE backups SET status = $2, size_bytes = $3, sha256 = $4, manifest = $5, error = $6, \
                     job_id = $7, started_at = $8, finished_at = $9, verified_at = $10, verification_error = $11, \
                     restored_at = $12 WHERE id = $1",
                )
                .bind(&v.id)
                .bind(&v.status)
                .bind(v.size_bytes)
                .bind(&v.sha256)
                .bind(&v.manifest)
                .bind(&v.error)
                .bind(&v.job_id)
                .bind(v.started_at)
                .bind(v.finished_at)
                .bind(v.verified_at)
                .bind(&v.verification_error)
                .bind(v.restored_at)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_backup(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM backups WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_backup_schedule(&self, v: &BackupSchedule) -> StoreResult<()> {
                backup_schedule_fields!(insert_into!($db, "backup_schedules", v))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn backup_schedule(&self, id: &str) -> StoreResult<Option<BackupSchedule>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    backup_schedule_fields!(columns!()),
                    " FROM backup_schedules WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn backup_schedules_of(&self, target: BackupTarget<'_>) -> StoreResult<Vec<BackupSchedule>> {
                let (sql, id) = match target {
                    BackupTarget::Database(id) => (
                        concat!("SELECT ", backup_schedule_fields!(columns!()),
                                " FROM backup_schedules WHERE database_id = $1 ORDER BY id"),
                        id,
                    ),
                    BackupTarget::Site(id) => (
                        concat!("SELECT ", backup_schedule_fields!(columns!()),
                                " FROM backup_schedules WHERE site_id = $1 ORDER BY id"),
                        id,
                    ),
                };
                sqlx::query_as(sql)
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn backup_schedules_after(
                &self,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<BackupSchedule>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    backup_schedule_fields!(columns!()),
                    " FROM backup_schedules WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)
            }

            async fn update_backup_schedule(&self, v: &BackupSchedule) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE backup_schedules SET storage_id = $2, frequency = $3, keep_last = $4, keep_daily = $5, \
                     keep_weekly = $6, keep_monthly = $7, verify = $8, next_run_at = $9, updated_at = $10 WHERE id = $1",
                )
                .bind(&v.id)
                .bind(&v.storage_id)
                .bind(&v.frequency)
                .bind(v.keep_last)
                .bind(v.keep_daily)
                .bind(v.keep_weekly)
                .bind(v.keep_monthly)
                .bind(v.verify)
                .bind(v.next_run_at)
                .bind(v.updated_at)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn move_backup_schedule_run(
                &self,
                id: &str,
                from: crate::Timestamp,
                to: crate::Timestamp,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE backup_schedules SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2",
                )
                .bind(id)
                .bind(from)
                .bind(to)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_backup_schedule(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM backup_schedules WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

impl_backup_store!(Sqlite);
impl_backup_store!(Postgres);
