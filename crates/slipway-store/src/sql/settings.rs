//! Instance-wide settings ([`SettingsStore`]).

use async_trait::async_trait;
use slipway_core::time::now;
use sqlx::{Postgres, Sqlite};

use super::SqlStore;
use crate::{SettingsStore, StoreError};

macro_rules! impl_settings_store {
    ($db:ty) => {
        #[async_trait]
        impl SettingsStore for SqlStore<$db> {
            async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)
            }

            async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(value)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                // Read back: when another writer won the race, its value is the one that counts.
                self.setting(key).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
            }

            async fn swap_setting(&self, key: &str, expected: &str, new: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE settings SET value = $3, updated_at = $4 WHERE key = $1 AND value = $2")
                    .bind(key)
                    .bind(expected)
                    .bind(new)
                    .bind(now())
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

impl_settings_store!(Sqlite);
impl_settings_store!(Postgres);
