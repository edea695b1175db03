//! The authorisation matrix, generated from the OpenAPI document: every operation is either
//! deliberately public or, for every kind of bad credential, refuses the right way. A route
//! added later is covered here without anyone writing a test for it; a new path parameter
//! needs a fixture below, and the test says so.

use slipway_core::{BackupStatus, DeliveryStatus, InstallStatus};
use std::collections::HashMap;

use crate::common::TestApp;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use slipway_core::{Ability, Role};
use slipway_store::testing::TestDatabase;

/// Operations anyone may call. Anything else must declare a `security` requirement.
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1"),
    ("post", "/api/v1/setup"),
    ("post", "/api/v1/register"),
    ("post", "/api/v1/login"),
    ("post", "/api/v1/auth/refresh"),
    // Signed by the git host instead: the signature is checked against the repository's secret.
    ("post", "/webhooks/git-repository/{uuid}"),
];

fn operations() -> Vec<(String, String, Value)> {
    let spec = serde_json::to_value(slipway_api::openapi()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    // Deletions last: an allowed one removes what the other operations on its path need (a
    // backup storage goes at once).
    ops.sort_by_key(|(method, _, _)| method == "delete");
    ops
}

#[test]
fn every_operation_is_guarded_or_deliberately_public() {
    let ops = operations();
    for (method, path, op) in &ops {
        let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
        let secured = op.get("security").is_some();
        assert!(
            public != secured,
            "{method} {path}: public={public} but secured={secured}; declare security or list it in PUBLIC"
        );
        if secured {
            for status in ["401", "403"] {
                assert!(op["responses"].get(status).is_some(), "{method} {path} does not document {status}");
            }
        }
    }
    for (method, path) in PUBLIC {
        assert!(ops.iter().any(|(m, p, _)| m == method && p == path), "stale PUBLIC entry {method} {path}");
    }
}

/// Operations on the caller's own session and account: any valid token may call them, whatever
/// its abilities. Everything else must name the abilities it needs.
const ANY_TOKEN: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/exchange"),
    ("post", "/api/v1/logout"),
    ("get", "/api/v1/tokens/current"),
    ("delete", "/api/v1/tokens/current"),
    ("get", "/api/v1/user"),
    ("post", "/api/v1/user/two-factor"),
    ("post", "/api/v1/user/two-factor/confirm"),
    ("post", "/api/v1/user/two-factor/disable"),
    ("put", "/api/v1/user/password"),
];

/// Operations only owners and admins may perform, whatever abilities the token holds.
const MANAGERS_ONLY: &[&str] = &["/api/v1/organizations/{organization}/tokens"];

/// Operations a token restricted to servers or sites may never perform.
const ORGANIZATION_LEVEL: &[&str] =
    &["/api/v1/organizations/{organization}", "/api/v1/git-providers", "/api/v1/git-repositories"];

/// Routes on a server that a token restricted to some of its sites may call: it reads the server
/// its sites are on, and lists them. Every other route on the server itself refuses it.
const SEEN_THROUGH_SITES: &[(&str, &str)] =
    &[("get", "/api/v1/servers/{server}"), ("get", "/api/v1/servers/{server}/sites")];

/// The abilities an operation needs: any one alternative, each with all of its scopes. An
/// operation without an ability fails here, so a new handler cannot skip the guard.
fn alternatives(method: &str, path: &str, security: &Value) -> Vec<Vec<Ability>> {
    let alternatives: Vec<Vec<Ability>> = security
        .as_array()
        .unwrap()
        .iter()
        .map(|requirement| {
            let scopes = requirement["token"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: security without the token scheme"));
            scopes
                .iter()
                .map(|s| {
                    let text = s.as_str().unwrap();
                    Ability::parse(text).unwrap_or_else(|| panic!("{method} {path}: {text:?} is not an ability"))
                })
                .collect()
        })
        .collect();
    if ANY_TOKEN.contains(&(method, path)) {
        assert!(alternatives.iter().all(Vec::is_empty), "stale ANY_TOKEN entry {method} {path}");
        return Vec::new();
    }
    assert!(
        !alternatives.is_empty() && alternatives.iter().all(|scopes| !scopes.is_empty()),
        "{method} {path}: every security requirement must name an ability (or list it in ANY_TOKEN)"
    );
    alternatives
}

#[test]
fn the_spec_names_the_ability_of_every_guarded_operation() {
    for (method, path, op) in operations() {
        if let Some(security) = op.get("security") {
            alternatives(&method, &path, security);
        }
    }
}

struct Fixtures {
    params: HashMap<&'static str, String>,
    /// Per path prefix overrides (the same name means different things under different parents).
    overrides: Vec<(&'static str, &'static str, String)>,
}

impl Fixtures {
    fn fill(&self, path: &str) -> String {
        let mut out = String::new();
        let mut rest = path;
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').unwrap() + start;
            let name = &rest[start + 1..end];
            let value = self
                .overrides
                .iter()
                .find(|(prefix, param, _)| path.starts_with(prefix) && *param == name)
                .map(|(_, _, v)| v)
                .or_else(|| self.params.get(name))
                .unwrap_or_else(|| panic!("no fixture for {{{name}}} in {path}; add one to the authorization matrix"));
            out.push_str(&rest[..start]);
            out.push_str(value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Two organizations' owners, A's resources for every path parameter, and what fills them in.
struct World {
    app: TestApp,
    a: crate::common::TestUser,
    b: crate::common::TestUser,
    a_spare_token: String,
    server_id: String,
    site_id: String,
    fixtures: Fixtures,
}

async fn world(db: TestDatabase) -> World {
    let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 1_000_000).await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;

    // Resources of A that the path parameters point at.
    let a_spare_token = app.token(&a.id, &["*"], |_| {}).await;
    let a_spare_id = app
        .state
        .store
        .token_by_hash(&slipway_core::token::PlainToken::parse(&a_spare_token).unwrap().hash())
        .await
        .unwrap()
        .unwrap()
        .id
        .clone();
    let org_token =
        app.post_as(&format!("/api/v1/organizations/{}/tokens", a.org_id), &a.token, json!({"name": "ci"})).await;
    assert_eq!(org_token.status, StatusCode::CREATED, "{}", org_token.text());
    let org_token_id = org_token.json()["data"]["id"].as_str().unwrap().to_string();
    let server = app
        .post_as(
            "/api/v1/servers",
            &a.token,
            json!({"name": "web-1", "provider": "custom", "ip_address": "127.0.0.1", "database_type": "mariadb"}),
        )
        .await;
    assert_eq!(server.status, StatusCode::CREATED, "{}", server.text());
    let server_id = server.json()["data"]["id"].as_str().unwrap().to_string();
    let database =
        app.post_as(&format!("/api/v1/servers/{server_id}/databases"), &a.token, json!({"name": "shop"})).await;
    assert_eq!(database.status, StatusCode::CREATED, "{}", database.text());
    let database_id = database.json()["data"]["id"].as_str().unwrap().to_string();
    // A user needs its database active on a server Slipway can ask: stored directly here.
    let database_user = slipway_store::ServerItem {
        id: slipway_core::new_id(),
        server_id: server_id.clone(),
        kind: "database_user".into(),
        name: "shop_app".into(),
        spec: json!({"name": "shop_app", "engine": "mysql", "database_id": database_id, "database": "shop",
                     "grants": [{"database": "shop", "access": "read_write"}], "hosts": ["localhost"],
                     "sealed_password": ""})
        .to_string(),
        status: InstallStatus::Installed,
        status_reason: None,
        created_at: slipway_core::time::now(),
        updated_at: slipway_core::time::now(),
        state: None,
    };
    app.state.store.insert_server_item(&database_user).await.unwrap();
    let operation = app.post_as(&format!("/api/v1/servers/{server_id}/verify"), &a.token, json!({})).await;
    assert_eq!(operation.status, StatusCode::ACCEPTED, "{}", operation.text());
    let operation_id = operation.json()["data"]["id"].as_str().unwrap().to_string();
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgjfV5Zf0tGxJ+R1zQvq3YpJkGk0r1k3D7mJ0m8n9Qb";
    let ssh_key = app
        .post_as(&format!("/api/v1/servers/{server_id}/ssh-keys"), &a.token, json!({"name": "k", "public_key": key}))
        .await;
    assert_eq!(ssh_key.status, StatusCode::CREATED, "{}", ssh_key.text());
    let rule = app
        .post_as(&format!("/api/v1/servers/{server_id}/network-rules"), &a.token, json!({"name": "r", "port": 8080}))
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.text());
    let daemon =
        app.post_as(&format!("/api/v1/servers/{server_id}/daemons"), &a.token, json!({"command": "sleep 1000"})).await;
    assert_eq!(daemon.status, StatusCode::CREATED, "{}", daemon.text());
    let crontab = app
        .post_as(
            &format!("/api/v1/servers/{server_id}/crontabs"),
            &a.token,
            json!({"command": "true", "frequency": "hourly"}),
        )
        .await;
    assert_eq!(crontab.status, StatusCode::CREATED, "{}", crontab.text());
    app.state.store.mark_provisioned(&server_id, slipway_core::time::now()).await.unwrap();
    let site = app
        .post_as(
            &format!("/api/v1/servers/{server_id}/sites"),
            &a.token,
            json!({"domain": "shop.example.com", "project_type": "static", "repository_url": "https://example.com/a.git"}),
        )
        .await;
    assert_eq!(site.status, StatusCode::CREATED, "{}", site.text());
    let site_id = site.json()["data"]["id"].as_str().unwrap().to_string();
    let deployment =
        app.post_as(&format!("/api/v1/servers/{server_id}/sites/{site_id}/deploy"), &a.token, json!({})).await;
    assert_eq!(deployment.status, StatusCode::ACCEPTED, "{}", deployment.text());
    let worker = app
        .post_as(
            &format!("/api/v1/servers/{server_id}/sites/{site_id}/queues"),
            &a.token,
            json!({"command": "sleep 9"}),
        )
        .await;
    assert_eq!(worker.status, StatusCode::CREATED, "{}", worker.text());
    let redirect = app
        .post_as(
            &format!("/api/v1/servers/{server_id}/sites/{site_id}/redirects"),
            &a.token,
            json!({"from": "/old", "to": "/new"}),
        )
        .await;
    assert_eq!(redirect.status, StatusCode::CREATED, "{}", redirect.text());
    let self_signed = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).unwrap();
    let certificate = app
        .post_as(
            &format!("/api/v1/servers/{server_id}/sites/{site_id}/certificates"),
            &a.token,
            json!({"type": "custom", "certificate": self_signed.cert.pem(),
                   "private_key": self_signed.signing_key.serialize_pem(), "activate": false}),
        )
        .await;
    assert_eq!(certificate.status, StatusCode::CREATED, "{}", certificate.text());
    let env = app
        .post_as(
            &format!("/api/v1/servers/{server_id}/sites/{site_id}/environment-variables"),
            &a.token,
            json!({"variables": {"APP_KEY": "secret"}}),
        )
        .await;
    assert_eq!(env.status, StatusCode::OK, "{}", env.text());
    let provider = app.post_as("/api/v1/git-providers", &a.token, json!({"name": "gh", "kind": "github"})).await;
    assert_eq!(provider.status, StatusCode::CREATED, "{}", provider.text());
    let repository = app
        .post_as("/api/v1/git-repositories", &a.token, json!({"url": "git@github.com:acme/shop.git", "kind": "github"}))
        .await;
    assert_eq!(repository.status, StatusCode::CREATED, "{}", repository.text());
    let storage = app
        .post_as(
            "/api/v1/backup-storages",
            &a.token,
            json!({"name": "offsite", "kind": "s3", "bucket": "acme-backups", "access_key_id": "AK",
                   "secret_access_key": "SK", "endpoint": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(storage.status, StatusCode::CREATED, "{}", storage.text());
    // A backup record (making one for real needs a provisioned server with a database).
    let storage_id = storage.json()["data"]["id"].as_str().unwrap().to_string();
    let mut backup = slipway_engine::backups::new_backup(
        &a.org_id,
        &server_id,
        slipway_store::BackupTarget::Database(&database_id),
        &storage_id,
        None,
        BackupStatus::Completed,
    );
    (backup.object_key, backup.size_bytes, backup.sha256) =
        ("databases/x/shop/x.sql.gz".into(), Some(1), Some("00".repeat(32)));
    app.state.store.insert_backup(&backup).await.unwrap();
    let schedule = slipway_store::BackupSchedule {
        id: slipway_core::new_id(),
        organization_id: a.org_id.clone(),
        server_id: server_id.clone(),
        database_id: Some(database_id.clone()),
        site_id: None,
        storage_id: backup.storage_id.clone(),
        frequency: "nightly".into(),
        keep_last: 7,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        verify: false,
        next_run_at: None,
        created_at: slipway_core::time::now(),
        updated_at: slipway_core::time::now(),
    };
    app.state.store.insert_backup_schedule(&schedule).await.unwrap();
    // A notification channel, and a delivery of an event to it (deliveries are made by jobs).
    let channel = app
        .post_as(
            "/api/v1/notification-channels",
            &a.token,
            json!({"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/slipway"}),
        )
        .await;
    assert_eq!(channel.status, StatusCode::CREATED, "{}", channel.text());
    let channel_id = channel.json()["data"]["id"].as_str().unwrap().to_string();
    let event = slipway_store::Event {
        id: slipway_core::new_id(),
        organization_id: a.org_id.clone(),
        event_type: "server.unreachable".into(),
        resource_type: "server".into(),
        resource_id: server_id.clone(),
        resource_name: "web".into(),
        resource_path: None,
        server_id: Some(server_id.clone()),
        site_id: None,
        summary: "web cannot be reached".into(),
        data: "{}".into(),
        occurred_at: slipway_core::time::now(),
    };
    app.state.store.insert_event(&event).await.unwrap();
    let delivery = slipway_store::NotificationDelivery {
        id: slipway_core::new_id(),
        channel_id: channel_id.clone(),
        organization_id: a.org_id.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        group_key: "g".into(),
        status: DeliveryStatus::Failed,
        attempts: 1,
        repeats: 0,
        folded: 0,
        response_code: Some(500),
        duration_ms: Some(1),
        error: Some("the receiver answered 500".into()),
        next_attempt_at: None,
        deadline_at: slipway_core::time::now(),
        created_at: slipway_core::time::now(),
        updated_at: slipway_core::time::now(),
    };
    app.state.store.insert_notification_delivery(&delivery).await.unwrap();
    let fixtures = Fixtures {
        params: HashMap::from([
            ("id", a_spare_id.clone()),
            ("organization", a.org_id.clone()),
            ("user", a.id.clone()),
            ("server", server_id.clone()),
            ("operation", operation_id),
            ("ssh_key", ssh_key.json()["data"]["id"].as_str().unwrap().to_string()),
            ("network_rule", rule.json()["data"]["id"].as_str().unwrap().to_string()),
            ("daemon", daemon.json()["data"]["id"].as_str().unwrap().to_string()),
            ("queue", worker.json()["data"]["id"].as_str().unwrap().to_string()),
            ("redirect", redirect.json()["data"]["id"].as_str().unwrap().to_string()),
            ("certificate", certificate.json()["data"]["id"].as_str().unwrap().to_string()),
            ("crontab", crontab.json()["data"]["id"].as_str().unwrap().to_string()),
            ("database", database_id.clone()),
            ("database_user", database_user.id.clone()),
            ("backup_storage", storage.json()["data"]["id"].as_str().unwrap().to_string()),
            ("backup", backup.id.clone()),
            ("backup_schedule", schedule.id.clone()),
            ("notification_channel", channel_id),
            ("delivery", delivery.id.clone()),
            ("site", site_id.clone()),
            ("deployment", deployment.json()["data"]["id"].as_str().unwrap().to_string()),
            ("key", "APP_KEY".to_string()),
            ("git_provider", provider.json()["data"]["id"].as_str().unwrap().to_string()),
            ("git_repository", repository.json()["data"]["id"].as_str().unwrap().to_string()),
            ("uuid", "nosuchwebhook".to_string()),
        ]),
        overrides: vec![("/api/v1/organizations/{organization}/tokens/{id}", "id", org_token_id)],
    };
    World { app, a, b, a_spare_token, server_id, site_id, fixtures }
}

async fn matrix(db: TestDatabase) {
    let World { app, a, b, a_spare_token, server_id, site_id, fixtures } = world(db).await;

    let expired = app
        .token(&a.id, &["*"], |t| t.expires_at = Some(slipway_core::time::now() - chrono::Duration::seconds(1)))
        .await;
    let revoked = app.token(&a.id, &["*"], |t| t.revoked_at = Some(slipway_core::time::now())).await;
    let mistyped = {
        let mut chars: Vec<char> = a.token.chars().collect();
        chars[8] = if chars[8] == 'x' { 'y' } else { 'x' };
        chars.into_iter().collect::<String>()
    };

    // Members of A's organization in the roles below, and a token of A's restricted to one
    // server: their answers are checked against the role table and the restriction rule.
    let viewer = app.member(&a.org_id, "viewer@example.com", Role::Viewer).await;
    let member = app.member(&a.org_id, "member@example.com", Role::Member).await;
    let restricted_ids = serde_json::to_string(&[&server_id]).unwrap();
    let site_only = serde_json::to_string(&[&site_id]).unwrap();

    let mut checked = 0;
    for (method, path, op) in operations() {
        let Some(security) = op.get("security") else { continue };
        let alternatives = alternatives(&method, &path, security);
        let uri = fixtures.fill(&path);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
        let call = |token: Option<String>| {
            let (method, uri, body) = (method.clone(), uri.clone(), body.clone());
            let app = &app;
            async move { app.call(method, &uri, token.as_deref(), body).await }
        };

        for (case, token) in [
            ("no token", None),
            ("expired", Some(expired.clone())),
            ("revoked", Some(revoked.clone())),
            ("mistyped", Some(mistyped.clone())),
        ] {
            let reply = call(token).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {case}: {}", reply.text());
            assert_eq!(reply.json()["message"], "Unauthenticated.");
            assert!(reply.header("www-authenticate").unwrap().starts_with("Bearer"), "{method} {path}");
        }

        // Every scope of every alternative is needed: a token lacking one of them (and holding
        // no other alternative whole) is refused, naming an ability it lacks.
        for (i, scopes) in alternatives.iter().enumerate() {
            for scope in scopes {
                let mut withheld = vec![*scope];
                withheld.extend(alternatives.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, other)| other[0]));
                let held: Vec<String> =
                    Ability::all().filter(|a| !withheld.contains(a)).map(|a| a.to_string()).collect();
                let held: Vec<&str> = held.iter().map(String::as_str).collect();
                let reply = call(Some(app.token(&a.id, &held, |_| {}).await)).await;
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path} without {scope}: {}", reply.text());
                let message = reply.json()["message"].as_str().unwrap().to_string();
                assert!(
                    withheld.iter().any(|a| message.contains(&a.to_string())),
                    "{method} {path}: 403 must name a missing ability: {message}"
                );
            }
            // ... and holding exactly one alternative is enough to get past the guard (only
            // tried where there are several: these are reads, so nothing changes).
            if alternatives.len() < 2 {
                continue;
            }
            let held: Vec<String> = scopes.iter().map(ToString::to_string).collect();
            let held: Vec<&str> = held.iter().map(String::as_str).collect();
            let reply = call(Some(app.token(&a.id, &held, |_| {}).await)).await;
            assert_ne!(reply.status, StatusCode::FORBIDDEN, "{method} {path} with {held:?}: {}", reply.text());
        }

        // A token restricted to servers or sites never acts at the organization level.
        if ORGANIZATION_LEVEL.iter().any(|prefix| path.starts_with(prefix)) {
            let restricted = app.token(&a.id, &["*"], |t| t.server_ids = Some(restricted_ids.clone())).await;
            let reply = call(Some(restricted)).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{method} {path} with a restricted token: {}",
                reply.text()
            );
        }

        // A token restricted to a site on the server never acts on the server itself (nor
        // creates servers, nor cancels the server's operations, though it follows them).
        let on_the_server = path.starts_with("/api/v1/servers/{server}")
            && !path.starts_with("/api/v1/servers/{server}/sites/{site}")
            && !SEEN_THROUGH_SITES.contains(&(method.as_str().to_lowercase().as_str(), path.as_str()));
        if on_the_server
            || (method == Method::POST
                && (path == "/api/v1/servers" || path == "/api/v1/operations/{operation}/cancel"))
        {
            let site_token = app.token(&a.id, &["*"], |t| t.site_ids = Some(site_only.clone())).await;
            let reply = call(Some(site_token)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path} with a site's token: {}", reply.text());
        }

        if path.contains('{') {
            let reply = call(Some(b.token.clone())).await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {path} with another organization's token: {}",
                reply.text()
            );
        }
        // Roles: a `*` token does what its holder's role allows in the organization, no more.
        // Last, as an allowed call may change what the path points at (a member may delete a site).
        for (user, role) in [(&viewer, Role::Viewer), (&member, Role::Member)] {
            let allowed = (alternatives.is_empty() || alternatives.iter().any(|s| s.iter().all(|a| role.allows(*a))))
                && !(MANAGERS_ONLY.iter().any(|prefix| path.starts_with(prefix)));
            // A fresh token per call: some allowed calls revoke the token that made them.
            let reply = call(Some(app.token(user, &["*"], |_| {}).await)).await;
            if allowed {
                assert_ne!(reply.status, StatusCode::FORBIDDEN, "{method} {path} as {role}: {}", reply.text());
            } else {
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path} as {role}: {}", reply.text());
            }
        }

        checked += 1;
    }
    assert!(checked >= 20, "only {checked} guarded operations were checked");

    // Nothing above succeeded, so A's resources are intact.
    assert_eq!(app.get_as("/api/v1/tokens/current", &a_spare_token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn authorization_matrix_on_sqlite() {
    matrix(TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn authorization_matrix_on_postgres() {
    matrix(TestDatabase::postgres().await).await;
}

/// Every action whose body is optional takes no body, an empty body or `{}`, with or without
/// a JSON content type (curl's `-H "Content-Type: application/json"` with no `-d`).
async fn optional_bodies(db: TestDatabase) {
    let World { app, a, fixtures, .. } = world(db).await;
    let mut checked = 0;
    for (method, path, op) in operations() {
        let optional = op.get("requestBody").is_none_or(|body| body["required"] != true);
        if method != "post" || !optional || op.get("security").is_none() {
            continue;
        }
        let uri = fixtures.fill(&path);
        for (content_type, body) in
            [(None, ""), (Some("application/json"), ""), (Some("application/json"), "{}"), (None, "{}")]
        {
            let mut request = axum::http::Request::post(&uri)
                .header("accept", "application/json")
                // A fresh token each time: logging out revokes the token that asked.
                .header("authorization", format!("Bearer {}", app.token(&a.id, &["*"], |_| {}).await));
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let reply = app.send(request.body(axum::body::Body::from(body)).unwrap()).await;
            // A 422 may say the site's state forbids the action, never that the body is lacking.
            let about_the_body = reply.status == StatusCode::UNPROCESSABLE_ENTITY
                && (reply.text().contains("is required") || reply.text().contains("JSON"));
            assert!(
                ![StatusCode::BAD_REQUEST, StatusCode::UNSUPPORTED_MEDIA_TYPE].contains(&reply.status)
                    && !about_the_body,
                "POST {path} with content type {content_type:?} and body {body:?}: {} {}",
                reply.status,
                reply.text()
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} actions with optional bodies were checked");
}

#[tokio::test]
async fn optional_bodies_may_be_left_out_on_sqlite() {
    optional_bodies(TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn optional_bodies_may_be_left_out_on_postgres() {
    optional_bodies(TestDatabase::postgres().await).await;
}
