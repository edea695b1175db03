//! Access tokens, and the token families and refresh tokens of the JWT exchange ([`TokenStore`]).

use std::sync::Arc;

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::Timestamp;
use sqlx::{Postgres, Sqlite};

use super::{SqlStore, as_u64, columns, exact_fields, insert_into};
use crate::cache::ReadCache;
use crate::model::{AccessToken, RefreshToken, TokenChanges};
use crate::{StoreError, StoreResult, TokenStore};

/// The columns of `access_tokens`: the fields of [`AccessToken`] (see `sql/mod.rs`).
macro_rules! access_token_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, kind, user_id, organization_id, name, token_hash, abilities, server_ids, site_ids, allowed_ips,
            expires_at, created_at, created_via, created_by, last_used_at, last_used_ip, revoked_at
        }
    };
}
access_token_fields!(exact_fields!(AccessToken));

/// The columns of `refresh_tokens`: the fields of [`RefreshToken`].
macro_rules! refresh_token_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, family_id, token_hash, expires_at, used_at, created_at }
    };
}
refresh_token_fields!(exact_fields!(RefreshToken));

macro_rules! impl_token_store {
    ($db:ty) => {
        #[async_trait]
        impl TokenStore for SqlStore<$db> {
            async fn insert_token(&self, t: &AccessToken) -> StoreResult<()> {
                access_token_fields!(insert_into!($db, "access_tokens", t))
                    .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn token(&self, id: &str) -> StoreResult<Option<AccessToken>> {
                sqlx::query_as(concat!("SELECT ", access_token_fields!(columns!()), " FROM access_tokens WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<Arc<AccessToken>>> {
                if let Some(hit) = self.cache.as_ref().and_then(|c| c.token(token_hash)) {
                    return Ok(Some(hit));
                }
                let generation = self.cache.as_ref().map(ReadCache::generation);
                let row: Option<AccessToken> = sqlx::query_as(concat!("SELECT ", access_token_fields!(columns!()), " FROM access_tokens WHERE token_hash = $1"))
                    .bind(token_hash).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let row = row.map(Arc::new);
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
                    "SELECT ", access_token_fields!(columns!()), " FROM access_tokens WHERE user_id = $1 AND kind = 'personal' \
                     AND revoked_at IS NULL ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(user_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn tokens_expiring(
                &self,
                from: Timestamp,
                until: Timestamp,
                after_id: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<AccessToken>> {
                sqlx::query_as(concat!(
                    "SELECT ", access_token_fields!(columns!()), " FROM access_tokens WHERE organization_id IS NOT NULL \
                     AND revoked_at IS NULL AND expires_at > $1 AND expires_at <= $2 AND id > $3 ORDER BY id LIMIT $4"
                ))
                .bind(from).bind(until).bind(after_id.unwrap_or("")).bind(limit)
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn tokens_of_organization(&self, organization_id: &str, page: PageRequest) -> StoreResult<(Vec<AccessToken>, u64)> {
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM access_tokens WHERE organization_id = $1 AND kind = 'organization' AND revoked_at IS NULL",
                )
                .bind(organization_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(concat!(
                    "SELECT ", access_token_fields!(columns!()), " FROM access_tokens WHERE organization_id = $1 AND kind = 'organization' \
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

            async fn change_password(
                &self,
                user_id: &str,
                password_hash: &str,
                keep_session: Option<&str>,
                at: Timestamp,
            ) -> StoreResult<(bool, Vec<String>)> {
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                let done = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(user_id).bind(password_hash).bind(at).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                if done.rows_affected() != 1 {
                    tx.rollback().await.map_err(StoreError::from_sqlx)?;
                    return Ok((false, Vec::new()));
                }
                let keep = keep_session.unwrap_or("");
                let ended: Vec<String> = sqlx::query_scalar(
                    "UPDATE access_tokens SET revoked_at = $3 \
                     WHERE user_id = $1 AND created_via = 'dashboard' AND revoked_at IS NULL AND id <> $2 RETURNING id",
                )
                .bind(user_id).bind(keep).bind(at).fetch_all(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                drop(self.evict_after(|c| {
                    c.evict_user(user_id);
                    for id in &ended {
                        c.evict_token(id);
                    }
                }));
                Ok((true, ended))
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
                access_token_fields!(insert_into!($db, "access_tokens", new))
                    .build().execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
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
                refresh_token_fields!(insert_into!($db, "refresh_tokens", first))
                    .build().execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)
            }

            async fn refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
                sqlx::query_as(concat!("SELECT ", refresh_token_fields!(columns!()), " FROM refresh_tokens WHERE token_hash = $1"))
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
                refresh_token_fields!(insert_into!($db, "refresh_tokens", next))
                    .build().execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
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
        }
    };
}

impl_token_store!(Sqlite);
impl_token_store!(Postgres);
