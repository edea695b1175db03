//! Backup storages ([`BackupStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{SqlStore, as_u64, columns, exact_fields, insert_into, push_id_list};
use crate::model::BackupStorage;
use crate::{BackupStore, StoreError, StoreResult};

/// The columns of `backup_storages`: the fields of [`BackupStorage`] (see `sql/mod.rs`).
macro_rules! backup_storage_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, organization_id, name, kind, config, secret, created_at, updated_at }
    };
}
backup_storage_fields!(exact_fields!(BackupStorage));

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
        }
    };
}

impl_backup_store!(Sqlite);
impl_backup_store!(Postgres);
