//! Git providers, repositories and webhook deliveries ([`GitStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::{Timestamp, now};
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::sites::site_fields;
use super::{SqlStore, as_u64, columns, exact_fields, insert_into, push_id_list};
use crate::model::{GitProvider, GitRepository, GitRepositoryChanges, Site, WebhookDelivery};
use crate::{GitStore, StoreError, StoreResult};

/// The columns of `git_providers`: the fields of [`GitProvider`] (see `sql/mod.rs`).
macro_rules! git_provider_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, organization_id, name, kind, access_token, created_at, updated_at }
    };
}
git_provider_fields!(exact_fields!(GitProvider));

/// The columns of `git_repositories`: the fields of [`GitRepository`].
macro_rules! git_repository_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, organization_id, provider_id, kind, url, branch, deploy_key_public, deploy_key_private, webhook_uuid,
            webhook_secret, created_at, updated_at
        }
    };
}
git_repository_fields!(exact_fields!(GitRepository));

/// The columns of `webhook_deliveries`: the fields of [`WebhookDelivery`].
macro_rules! webhook_delivery_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, repository_id, site_id, received_at, event, branch, commit_sha, outcome, reason, deployment_id,
            delivery_id
        }
    };
}
webhook_delivery_fields!(exact_fields!(WebhookDelivery));

macro_rules! impl_git_store {
    ($db:ty) => {
        #[async_trait]
        impl GitStore for SqlStore<$db> {
            async fn insert_git_provider(&self, v: &GitProvider) -> StoreResult<()> {
                git_provider_fields!(insert_into!($db, "git_providers", v))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn git_provider(&self, id: &str) -> StoreResult<Option<GitProvider>> {
                sqlx::query_as(concat!("SELECT ", git_provider_fields!(columns!()), " FROM git_providers WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn git_providers_of(&self, organization_ids: &[String], page: PageRequest) -> StoreResult<(Vec<GitProvider>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM git_providers WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!(
                    "SELECT ", git_provider_fields!(columns!()), " FROM git_providers WHERE organization_id IN ("
                ));
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
                git_repository_fields!(insert_into!($db, "git_repositories", v))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn git_repository(&self, id: &str) -> StoreResult<Option<GitRepository>> {
                sqlx::query_as(concat!("SELECT ", git_repository_fields!(columns!()), " FROM git_repositories WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn git_repository_by_webhook(&self, webhook_uuid: &str) -> StoreResult<Option<GitRepository>> {
                sqlx::query_as(concat!("SELECT ", git_repository_fields!(columns!()), " FROM git_repositories WHERE webhook_uuid = $1"))
                    .bind(webhook_uuid).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn git_repositories_of(&self, organization_ids: &[String], page: PageRequest) -> StoreResult<(Vec<GitRepository>, u64)> {
                if organization_ids.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM git_repositories WHERE organization_id IN (");
                push_id_list!(count, organization_ids);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut select = QueryBuilder::<$db>::new(concat!("SELECT ", git_repository_fields!(columns!()), " FROM git_repositories WHERE organization_id IN ("));
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
                sqlx::query_as(concat!("SELECT ", site_fields!(columns!()), " FROM sites WHERE git_repository_id = $1 ORDER BY id"))
                    .bind(repository_id).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn insert_webhook_delivery(&self, v: &WebhookDelivery) -> StoreResult<()> {
                webhook_delivery_fields!(insert_into!($db, "webhook_deliveries", v))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
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
                    "SELECT ", webhook_delivery_fields!(columns!()), " FROM webhook_deliveries WHERE site_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(site_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries WHERE site_id = $1 LIMIT $2) AS counted",
                )
                .bind(site_id).bind(page.count_limit()).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }
        }
    };
}

impl_git_store!(Sqlite);
impl_git_store!(Postgres);
