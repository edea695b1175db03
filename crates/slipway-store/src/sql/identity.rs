//! Users, organisations and memberships ([`IdentityStore`]).

use std::sync::Arc;

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::now;
use sqlx::{Postgres, Sqlite};

use super::{SqlStore, as_u64, columns, exact_fields, insert_into};
use crate::cache::ReadCache;
use crate::model::{Member, NewUser, Organization, OrganizationWithRole, User};
use crate::{IdentityStore, StoreError, StoreResult};

/// The columns of `users` that a [`User`] holds (see `sql/mod.rs`): all but `email_normalized`,
/// which only the lookup by email reads.
macro_rules! user_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, email, name, password_hash, totp_secret, totp_enabled, totp_last_counter, recovery_codes, created_at,
            updated_at
        }
    };
}
user_fields!(exact_fields!(User));

/// The columns of `users` that a [`NewUser`] gives; `insert_user!` adds the rest.
macro_rules! new_user_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, email, email_normalized, name, password_hash }
    };
}
new_user_fields!(exact_fields!(NewUser));

/// The INSERT of a new user, made at `$at`, with two-factor authentication off (its other
/// columns stay empty until set).
macro_rules! insert_user {
    ($db:ty, $user:expr, $at:expr) => {
        new_user_fields!(insert_into!(
            $db,
            "users",
            $user,
            extra(totp_enabled = sql("FALSE"), created_at = bind($at), updated_at = bind($at))
        ))
    };
}

/// The columns of `organizations`: the fields of [`Organization`]. (An organisation is created
/// from a name, not from an `Organization`, so its inserts list their columns themselves.)
macro_rules! organization_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, name, max_token_lifetime_seconds, created_at, updated_at }
    };
}
organization_fields!(exact_fields!(Organization));

macro_rules! impl_identity_store {
    ($db:ty) => {
        #[async_trait]
        impl IdentityStore for SqlStore<$db> {
            async fn count_users(&self) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn create_user(&self, user: &NewUser) -> StoreResult<()> {
                let at = now();
                insert_user!($db, user, at).build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn create_user_with_organization(&self, user: &NewUser, organization_id: &str, organization_name: &str, role: &str) -> StoreResult<()> {
                let _evict = self.evict_after(|c| c.evict_memberships(&user.id));
                let at = now();
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                insert_user!($db, user, at).build().execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                    .bind(organization_id).bind(organization_name).bind(at)
                    .execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(organization_id).bind(&user.id).bind(role).bind(at)
                    .execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)
            }

            async fn user(&self, id: &str) -> StoreResult<Option<Arc<User>>> {
                if let Some(hit) = self.cache.as_ref().and_then(|c| c.user(id)) {
                    return Ok(Some(hit));
                }
                let generation = self.cache.as_ref().map(ReadCache::generation);
                let row: Option<User> = sqlx::query_as(concat!("SELECT ", user_fields!(columns!()), " FROM users WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let row = row.map(Arc::new);
                if let (Some(cache), Some(g), Some(user)) = (&self.cache, generation, &row) {
                    cache.put_user(g, user);
                }
                Ok(row)
            }

            async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>> {
                sqlx::query_as(concat!("SELECT ", user_fields!(columns!()), " FROM users WHERE email_normalized = $1"))
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
                sqlx::query_as(concat!("SELECT ", organization_fields!(columns!()), " FROM organizations WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn organizations_named(&self, name: &str) -> StoreResult<Vec<Organization>> {
                sqlx::query_as(concat!("SELECT ", organization_fields!(columns!()), " FROM organizations WHERE name = $1 ORDER BY id LIMIT 100"))
                    .bind(name).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn organizations_of(&self, user_id: &str, page: PageRequest) -> StoreResult<(Vec<OrganizationWithRole>, u64)> {
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE user_id = $1")
                    .bind(user_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(
                    concat!(
                        "SELECT ", organization_fields!(columns!("o.")), ", m.role \
                         FROM organizations o JOIN memberships m ON m.organization_id = o.id \
                         WHERE m.user_id = $1 ORDER BY o.id LIMIT $2 OFFSET $3"
                    ),
                )
                .bind(user_id).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn memberships_of(&self, user_id: &str) -> StoreResult<Arc<[OrganizationWithRole]>> {
                if let Some(hit) = self.cache.as_ref().and_then(|c| c.memberships(user_id)) {
                    return Ok(hit);
                }
                let generation = self.cache.as_ref().map(ReadCache::generation);
                let rows: Vec<OrganizationWithRole> = sqlx::query_as(
                    concat!(
                        "SELECT ", organization_fields!(columns!("o.")), ", m.role \
                         FROM organizations o JOIN memberships m ON m.organization_id = o.id \
                         WHERE m.user_id = $1 ORDER BY o.id LIMIT 1000"
                    ),
                )
                .bind(user_id).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows: Arc<[OrganizationWithRole]> = rows.into();
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
        }
    };
}

impl_identity_store!(Sqlite);
impl_identity_store!(Postgres);

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
