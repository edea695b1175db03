//! Servers, organisations' login keys, and what Slipway keeps on a server ([`ServerStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::{Timestamp, now};
use slipway_core::{InstallStatus, ServerStatus};
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{
    IdOrder, SqlStore, as_u64, columns, exact_fields, insert_into, list_page, page_bounds, push_id_list, push_seek,
};
use crate::model::{Server, ServerChanges, ServerItem};
use crate::{ServerStore, StoreError, StoreResult};

/// The columns of `servers`: the fields of [`Server`] (see `sql/mod.rs`).
macro_rules! server_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, organization_id, name, provider, ip_address, ssh_port, ssh_user, region, size, php_version,
            database_type, webserver, status, status_reason, monitoring_enabled, os, host_key, offered_host_key, node,
            provisioned_at, created_at, updated_at
        }
    };
}
server_fields!(exact_fields!(Server));

/// The columns of `server_items`: the fields of [`ServerItem`].
macro_rules! server_item_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, server_id, kind, name, spec, status, status_reason, created_at, updated_at }
    };
}
server_item_fields!(exact_fields!(ServerItem, not_stored(state)));

macro_rules! impl_server_store {
    ($db:ty) => {
        #[async_trait]
        impl ServerStore for SqlStore<$db> {
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
                server_fields!(insert_into!($db, "servers", v))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn server(&self, id: &str) -> StoreResult<Option<Server>> {
                sqlx::query_as(concat!("SELECT ", server_fields!(columns!()), " FROM servers WHERE id = $1"))
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
                    push_seek(q, Some(page), IdOrder::Ascending);
                };
                Ok(list_page!(self, $db, Server, server_fields!(columns!()), "servers", &filter, IdOrder::Ascending, page_bounds(Some(page))))
            }

            async fn servers_named(&self, organization_ids: &[String], name: &str) -> StoreResult<Vec<Server>> {
                if organization_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = QueryBuilder::<$db>::new(concat!("SELECT ", server_fields!(columns!()), " FROM servers WHERE name = "));
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

            async fn set_server_status(&self, id: &str, status: ServerStatus, reason: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE servers SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1")
                    .bind(id).bind(status).bind(reason).bind(now())
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn set_server_reachable(&self, id: &str, status: ServerStatus) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE servers SET status = $2, status_reason = NULL, updated_at = $3 WHERE id = $1 AND status = $4",
                )
                .bind(id).bind(status).bind(now()).bind(ServerStatus::Unreachable)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() > 0)
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
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                // Its backup schedules have nothing left to back up (its backups stay).
                sqlx::query("DELETE FROM backup_schedules WHERE server_id = $1")
                    .bind(id).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                let done = sqlx::query("DELETE FROM servers WHERE id = $1")
                    .bind(id).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_server_item(&self, v: &ServerItem) -> StoreResult<()> {
                server_item_fields!(insert_into!($db, "server_items", v))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn server_item(&self, id: &str) -> StoreResult<Option<ServerItem>> {
                sqlx::query_as(concat!("SELECT ", server_item_fields!(columns!()), " FROM server_items WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn update_server_item(&self, id: &str, name: &str, spec: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE server_items SET name = $2, spec = $3, status = 'installing', status_reason = NULL, \
                     updated_at = $4 WHERE id = $1 AND status <> 'removing'",
                )
                .bind(id).bind(name).bind(spec).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_server_item_spec(&self, id: &str, spec: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE server_items SET spec = $2, updated_at = $3 WHERE id = $1 AND status <> 'removing'",
                )
                .bind(id).bind(spec).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn replace_server_item_spec(&self, id: &str, expected: &str, spec: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE server_items SET spec = $3, updated_at = $4 WHERE id = $1 AND spec = $2 AND status <> 'removing'",
                )
                .bind(id).bind(expected).bind(spec).bind(now())
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn server_items(&self, server_id: &str, kind: &str, page: Option<PageRequest>) -> StoreResult<(Vec<ServerItem>, u64)> {
                let (limit, offset) = page.map_or((i64::MAX, 0), |p| (p.limit(), p.offset()));
                let rows: Vec<ServerItem> = sqlx::query_as(concat!(
                    "SELECT ", server_item_fields!(columns!()), " FROM server_items WHERE server_id = $1 AND kind = $2 ORDER BY id LIMIT $3 OFFSET $4"
                ))
                .bind(server_id).bind(kind).bind(limit).bind(offset)
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM server_items WHERE server_id = $1 AND kind = $2")
                    .bind(server_id).bind(kind).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn items_of_kind(&self, kind: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<ServerItem>> {
                sqlx::query_as(concat!(
                    "SELECT ", server_item_fields!(columns!()), " FROM server_items WHERE kind = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(kind).bind(after.unwrap_or("")).bind(i64::from(limit))
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn set_server_items_status(&self, ids: &[String], status: InstallStatus, reason: Option<&str>) -> StoreResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut q = QueryBuilder::<$db>::new("UPDATE server_items SET status = ");
                q.push_bind(status.to_string()).push(", status_reason = ").push_bind(reason.map(str::to_string));
                // An item being removed stays so: a sync that read it earlier must not revive it.
                let guard = if status == InstallStatus::Removing { "" } else { "status <> 'removing' AND " };
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
        }
    };
}

impl_server_store!(Sqlite);
impl_server_store!(Postgres);
