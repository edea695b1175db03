//! Throwaway databases for tests: a SQLite file in a fresh directory, or a fresh PostgreSQL
//! database (created on the server named by `SLIPWAY_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) that is dropped when the guard goes.
//! A PostgreSQL server that cannot be reached fails the test: CI must exercise both backends.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::Connection;

use crate::{ConnectOptions, Store, connect};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug)]
pub enum TestDatabase {
    Sqlite { dir: PathBuf, url: String },
    Postgres { admin_url: String, name: String, url: String },
}

impl TestDatabase {
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("slipway-test-{}", slipway_core::new_id().to_lowercase()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        let url = format!("sqlite://{}/slipway.db", dir.display());
        TestDatabase::Sqlite { dir, url }
    }

    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("slipway_test_{}", slipway_core::new_id().to_lowercase());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url} (set SLIPWAY_TEST_POSTGRES_URL): {e}"));
        // The name is ours (a ULID), so it is safe to splice into the statement.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("admin URL parses");
        url.set_path(&name);
        TestDatabase::Postgres { admin_url, name, url: url.to_string() }
    }

    /// One of each backend, for tests that must hold on both.
    pub async fn each() -> [TestDatabase; 2] {
        [TestDatabase::sqlite().await, TestDatabase::postgres().await]
    }

    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite { url, .. } | TestDatabase::Postgres { url, .. } => url,
        }
    }

    /// A connected store with every migration applied.
    pub async fn store(&self) -> Arc<dyn Store> {
        let store = self.connect().await;
        store.migrate().await.expect("migrations apply");
        store
    }

    /// A connected store, not migrated.
    pub async fn connect(&self) -> Arc<dyn Store> {
        connect(self.url(), &ConnectOptions::default()).await.expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            TestDatabase::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDatabase::Postgres { admin_url, name, .. } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop may run inside a runtime: do the async work on a thread of its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                    rt.block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                            .execute(&mut admin)
                            .await
                            .ok()
                    })
                })
                .join();
            }
        }
    }
}

pub fn postgres_admin_url() -> String {
    std::env::var("SLIPWAY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// A server record in organisation `organization_id`, with a new id, not yet stored.
pub fn server(organization_id: &str, name: &str) -> crate::Server {
    let now = slipway_core::time::now();
    crate::Server {
        id: slipway_core::new_id(),
        organization_id: organization_id.into(),
        name: name.into(),
        provider: "custom".into(),
        ip_address: "127.0.0.1".into(),
        ssh_port: 22,
        ssh_user: "root".into(),
        region: None,
        size: None,
        php_version: None,
        database_type: "none".into(),
        webserver: "nginx".into(),
        status: slipway_core::ServerStatus::Pending,
        status_reason: None,
        monitoring_enabled: false,
        os: None,
        host_key: None,
        offered_host_key: None,
        node: false,
        provisioned_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// A personal token row for `user_id` with `abilities`, not yet stored, and its secret.
pub fn personal_token(user_id: &str, abilities: &[&str]) -> (crate::AccessToken, slipway_core::token::PlainToken) {
    let plain = slipway_core::token::PlainToken::generate();
    let row = crate::AccessToken {
        id: slipway_core::new_id(),
        kind: "personal".into(),
        user_id: Some(user_id.into()),
        organization_id: None,
        name: "test".into(),
        token_hash: plain.hash(),
        abilities: format!("[{}]", abilities.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(",")),
        server_ids: None,
        site_ids: None,
        allowed_ips: None,
        expires_at: None,
        created_at: slipway_core::time::now(),
        created_via: "api".into(),
        created_by: None,
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
    };
    (row, plain)
}

/// An installed static site for `domain` on `server`, with a new id, not yet stored.
pub fn site(server: &crate::Server, domain: &str) -> crate::Site {
    let now = slipway_core::time::now();
    crate::Site {
        id: slipway_core::new_id(),
        server_id: server.id.clone(),
        organization_id: server.organization_id.clone(),
        domain: domain.into(),
        aliases: "[]".into(),
        project_type: slipway_core::site_input::ProjectType::Static,
        web_directory: String::new(),
        repository_url: None,
        repository_branch: "main".into(),
        deploy_script: String::new(),
        app_command: None,
        health_check_path: "/".into(),
        health_check_status: 200,
        health_check_timeout: 30,
        zero_downtime: true,
        keep_releases: 5,
        app_port: 0,
        status: slipway_core::InstallStatus::Installed,
        status_reason: None,
        suspended: false,
        deployment_status: None,
        last_deployed_at: None,
        current_release: None,
        active_port: None,
        created_at: now,
        updated_at: now,
        git_repository_id: None,
        shared_paths: "[]".into(),
    }
}

/// A user record (password hashed for real), with a new id, not yet stored.
pub fn user(email: &str, name: &str, password: &str) -> crate::NewUser {
    crate::NewUser {
        id: slipway_core::new_id(),
        email: email.into(),
        email_normalized: email.to_lowercase(),
        name: name.into(),
        password_hash: slipway_core::password::hash_password(password),
    }
}
